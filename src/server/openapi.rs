//! The API described: the daemon's one route table (`api`), from which both the axum router
//! and the OpenAPI 3.1 document (served at `GET /openapi.json`) are made, so the two cannot
//! differ. Each handler carries its `#[utoipa::path]`; the error shape, the security schemes
//! and the `4XX`/`5XX` answers every operation may give are added here.

use super::{admin, api, erasure, preferences, preview, reports, segment, sms_inbound, track};
use super::{ApiError, Shared};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::OnceLock;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{OpenApi, RefOr};
use utoipa::{Modify, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The body of every error: `{"code": …, "message": …}`, with `details` for some (a
/// deploy's diagnostics, a refused migration's plan). The shape Segment's SDKs read.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable, machine-readable name: `unauthorized`, `not_found`, `invalid_json`, …
    pub code: &'static str,
    /// More about the error (some codes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
    /// For people.
    pub message: String,
}

/// The tags of the document, one per group of routes.
pub mod tags {
    pub const INGEST: &str = "ingest";
    pub const SEGMENT: &str = "segment";
    pub const CONTACTS: &str = "contacts";
    pub const JOURNEYS: &str = "journeys";
    pub const REPORTS: &str = "reports";
    pub const TRACKING: &str = "tracking";
    pub const PROVIDERS: &str = "providers";
    pub const SERVICE: &str = "service";
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "journey",
        description = "The HTTP API of `journey serve`: ingest (events, contacts, Segment's tracking API), \
                       admin (journeys, deploys, reports, erasure), and the links the messages carry. \
                       Tokens are made with `journey token create`; send them as `Authorization: Bearer <token>`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    // The schemas that only query parameters name (bodies' schemas are collected from the
    // handlers).
    components(schemas(
        ErrorBody,
        crate::report::Who,
        crate::report::trend::Metric,
        crate::report::trend::Group,
        reports::AudienceFormat,
    )),
    tags(
        (name = "ingest", description = "Events and contacts in"),
        (name = "segment", description = "Segment's HTTP tracking API, for Segment's SDKs"),
        (name = "contacts", description = "A contact's record: read, export, erase"),
        (name = "journeys", description = "Journeys: figures, enrolments, pause, plans and deploys"),
        (name = "reports", description = "Reports and audiences"),
        (name = "tracking", description = "What messages link to: tracked links, the open pixel, the preference page"),
        (name = "providers", description = "Providers' webhooks: delivery reports, inbound SMS"),
        (name = "service", description = "Health, metrics and this document"),
    )
)]
struct Doc;

/// Security schemes, the common error response, and on every operation the `4XX`/`5XX`
/// answers in the error shape.
struct Described;

impl Modify for Described {
    fn modify(&self, doc: &mut OpenApi) {
        use utoipa::openapi::response::ResponseBuilder;
        use utoipa::openapi::{ContentBuilder, Ref};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A token of `journey token create` (scopes: ingest, engagement, read, admin)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "The token as the user name, as Segment's SDKs send their write key",
                    ))
                    .build(),
            ),
        );
        let error = ResponseBuilder::new()
            .description("An error, in the JSON error shape")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        components
            .responses
            .insert("Error".to_string(), RefOr::T(error));
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                for range in ["4XX", "5XX"] {
                    op.responses
                        .responses
                        .entry(range.to_string())
                        .or_insert_with(|| RefOr::Ref(Ref::new("#/components/responses/Error")));
                }
            }
        }
    }
}

/// The daemon's routes, each with its description: the one table the router and the
/// document are made from.
pub fn api() -> OpenApiRouter<Shared> {
    use utoipa::OpenApi as _;
    OpenApiRouter::with_openapi(Doc::openapi())
        .routes(routes!(super::healthz))
        .routes(routes!(super::cluster::cluster))
        .routes(routes!(super::metrics_text))
        .routes(routes!(openapi_json))
        .routes(routes!(api::post_events))
        .routes(routes!(api::post_contacts))
        .routes(routes!(
            api::get_contact,
            api::put_contact,
            erasure::delete_contact
        ))
        .routes(routes!(erasure::export_contact))
        .routes(routes!(segment::track))
        .routes(routes!(segment::identify))
        .routes(routes!(segment::page))
        .routes(routes!(segment::screen))
        .routes(routes!(segment::group))
        .routes(routes!(segment::alias))
        .routes(routes!(segment::batch))
        .routes(routes!(segment::import))
        .routes(routes!(track::click))
        .routes(routes!(track::short))
        .routes(routes!(track::open))
        .routes(routes!(preferences::page, preferences::change))
        .routes(routes!(track::kannel))
        .routes(routes!(sms_inbound::inbound))
        .routes(routes!(track::twilio))
        .routes(routes!(admin::list))
        .routes(routes!(admin::show))
        .routes(routes!(admin::enroll))
        .routes(routes!(admin::pause))
        .routes(routes!(admin::resume))
        .routes(routes!(reports::journey_report))
        .routes(routes!(reports::audience))
        .routes(routes!(preview::preview))
        .routes(routes!(preview::test_send))
        .routes(routes!(reports::segment))
        .routes(routes!(reports::trend_domains))
        .routes(routes!(admin::plan))
        .routes(routes!(admin::deploy))
}

/// The document, made once.
pub fn document() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(|| {
        // After the routes: the modifier adds to every operation.
        let mut doc = api().into_openapi();
        Described.modify(&mut doc);
        doc
    })
}

/// The paths the daemon's router answers, read from the router itself (axum lists them in
/// its `Debug` output, the only place it does): for the test that the document names every
/// route.
pub fn router_paths() -> Vec<String> {
    let (router, _) = api().split_for_parts();
    let text = format!("{router:?}");
    let Some(start) = text.find("paths: {") else {
        return Vec::new();
    };
    // `paths: {RouteId(3): "/v1/contacts/{id}", RouteId(1): "/healthz", …}`
    let mut rest = &text[start + "paths: {".len()..];
    let mut out = Vec::new();
    while let Some(r) = rest.strip_prefix("RouteId(") {
        let Some((_, after)) = r.split_once("): ") else {
            break;
        };
        let mut de = serde_json::Deserializer::from_str(after).into_iter::<String>();
        let Some(Ok(path)) = de.next() else { break };
        out.push(path);
        rest = after[de.byte_offset()..].trim_start_matches(", ");
    }
    out
}

/// `GET /openapi.json`: this API's OpenAPI 3.1 document. No token: it holds no data.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = tags::SERVICE,
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub async fn openapi_json() -> Response {
    match serde_json::to_vec(document()) {
        Ok(bytes) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response(),
        Err(e) => super::api::store_err(e).into_response(),
    }
}

/// An `ApiError` into its body, for the daemon's error answers.
impl From<&ApiError> for ErrorBody {
    fn from(e: &ApiError) -> Self {
        ErrorBody {
            code: e.code,
            details: e.details.clone(),
            message: e.message.clone(),
        }
    }
}
