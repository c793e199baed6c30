//! Reports and audiences (scope `admin`): the answers of `journey report`, `audience`,
//! `segment` and `trend`, read from the daemon's store (which no other process can open
//! while it runs). The data is `crate::report`'s, served as JSON; store scans run on the
//! blocking pool.

use super::api::store_err;
use super::openapi::{tags, ErrorBody};
use super::{now_ms, ApiError, Scope, Shared};
use crate::report::{self, ListFormat, ReportError, TrendParams, Who};
use crate::report::{JourneyReport, Recipient, SegmentAnswer, Trend};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> ApiError {
        match e {
            ReportError::Store(e) => store_err(e),
            ReportError::Invalid(m) => ApiError::bad_request("invalid_query", m),
            other => ApiError::not_found(other.to_string()),
        }
    }
}

/// The query string, or a 400 saying what is wrong with it.
fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|r| ApiError::bad_request("invalid_query", r.body_text()))
}

/// Runs a store scan on the blocking pool and answers its data as JSON.
async fn answer<T: Serialize + Send + 'static>(
    f: impl FnOnce() -> Result<T, ReportError> + Send + 'static,
) -> Result<Response, ApiError> {
    let t = tokio::task::spawn_blocking(f).await.map_err(store_err)??;
    Ok(Json(t).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// One message only.
    message: Option<String>,
}

/// `GET /v1/journeys/{name}/report[?message=M]`: per message, received, opened, clicked…
#[utoipa::path(
    get,
    path = "/v1/journeys/{name}/report",
    tag = tags::REPORTS,
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The journey's name"), ReportQuery),
    responses(
        (status = 200, description = "The journey's report", body = JourneyReport),
        (status = 400, description = "An invalid query", body = ErrorBody),
        (status = 404, description = "No such journey or message", body = ErrorBody),
    )
)]
pub async fn journey_report(
    State(st): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    q: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Admin)?;
    let q = query(q)?;
    let store = st.store.clone();
    answer(move || report::journey_report(&store, &name, q.message.as_deref())).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AudienceQuery {
    who: Who,
    /// With `who=clickers`: those who clicked this link.
    link: Option<String>,
    /// `json` (the default): an array of recipients; `csv` or `jsonl`: the lists
    /// `journey audience` prints.
    format: Option<AudienceFormat>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AudienceFormat {
    Json,
    Csv,
    Jsonl,
}

/// `GET /v1/journeys/{name}/messages/{message}/audience?who=…[&link=L][&format=…]`.
#[utoipa::path(
    get,
    path = "/v1/journeys/{name}/messages/{message}/audience",
    tag = tags::REPORTS,
    security(("bearer" = [])),
    params(
        ("name" = String, Path, description = "The journey's name"),
        ("message" = String, Path, description = "The message's name"),
        AudienceQuery,
    ),
    responses(
        (status = 200, description = "The recipients: JSON (the default), CSV or JSON lines",
            content(
                (Vec<Recipient> = "application/json"),
                (String = "text/csv"),
                (String = "application/x-ndjson"),
            )
        ),
        (status = 400, description = "An invalid query", body = ErrorBody),
        (status = 404, description = "No such journey or message", body = ErrorBody),
    )
)]
pub async fn audience(
    State(st): State<Shared>,
    Path((name, message)): Path<(String, String)>,
    headers: HeaderMap,
    q: Result<Query<AudienceQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Admin)?;
    let q = query(q)?;
    let store = st.store.clone();
    let people = tokio::task::spawn_blocking(move || {
        report::audience(&store, &name, &message, q.who, q.link.as_deref())
    })
    .await
    .map_err(store_err)??;
    let list = match q.format.unwrap_or(AudienceFormat::Json) {
        AudienceFormat::Json => return Ok(Json(people).into_response()),
        AudienceFormat::Csv => ListFormat::Csv,
        AudienceFormat::Jsonl => ListFormat::Jsonl,
    };
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, list.content_type())],
        report::render_audience(&people, list),
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SegmentQuery {
    /// List the members.
    #[serde(default)]
    list: bool,
    /// Evaluate at this moment (RFC 3339 or a date) instead of now.
    at: Option<String>,
    /// The membership the runtime keeps, instead of evaluating the definition.
    #[serde(default)]
    stored: bool,
}

/// `GET /v1/segments/{name}[?list=true][&at=TIME][&stored=true]`: how many contacts, and
/// which with `list`.
#[utoipa::path(
    get,
    path = "/v1/segments/{name}",
    tag = tags::REPORTS,
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The segment's name"), SegmentQuery),
    responses(
        (status = 200, description = "The segment's size, and members with `list`", body = SegmentAnswer),
        (status = 400, description = "An invalid query", body = ErrorBody),
        (status = 404, description = "No such segment", body = ErrorBody),
    )
)]
pub async fn segment(
    State(st): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    q: Result<Query<SegmentQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Admin)?;
    let q = query(q)?;
    let at = report::segment_moment(q.at.as_deref(), q.stored, now_ms())?;
    let program = st.program();
    let store = st.store.clone();
    answer(move || report::segment(&store, &program, &name, at, q.list)).await
}

/// `GET /v1/trend/domains?metric=bounce|open&period=3m&group=week&top=10[&until=…][&journey=J]`.
#[utoipa::path(
    get,
    path = "/v1/trend/domains",
    tag = tags::REPORTS,
    security(("bearer" = [])),
    params(TrendParams),
    responses(
        (status = 200, description = "Bounce or open rates by recipient domain over time", body = Trend),
        (status = 400, description = "An invalid query", body = ErrorBody),
    )
)]
pub async fn trend_domains(
    State(st): State<Shared>,
    headers: HeaderMap,
    q: Result<Query<TrendParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Admin)?;
    let q = query(q)?.query(now_ms())?;
    let store = st.store.clone();
    answer(move || Ok(report::trend(&store, &q)?)).await
}
