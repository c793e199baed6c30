//! Tracked links and the open pixel (no auth: the token is HMAC-signed with the daemon's
//! secret, so a forged or altered one is answered 404 and records nothing), short links (the
//! code's claims are in the store; an unknown code is a 404), and Kannel delivery reports.
//! Unsubscribe links open the preference page (`preferences`).

use super::openapi::{tags, ErrorBody};
use super::{now_ms, ApiError, Shared};
use crate::channels::preview::is_test_message_id;
use crate::channels::tracking;
use crate::engine::Event;
use crate::engine::{Claims, TokenKind};
use crate::runtime::Input;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

/// The smallest transparent GIF: 1×1.
const PIXEL: [u8; 43] = [
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

fn claims(st: &Shared, token: &str, kind: TokenKind) -> Result<Claims, ApiError> {
    match tracking::verify(&st.secret, token) {
        Ok(c) if c.kind == kind => Ok(c),
        _ => Err(ApiError::not_found("unknown link")),
    }
}

fn engagement(c: &Claims, kind: &str) -> Event {
    Event {
        contact: c.contact.clone(),
        kind: kind.into(),
        at: now_ms(),
        journey: Some(c.journey.clone()),
        message: Some(c.message.clone()),
        link: c.link.clone(),
        message_id: Some(c.message_id.clone()),
        ..Event::default()
    }
}

/// Records an engagement, unless its contact is not in the store: a link in an old message
/// of an erased contact still works for whoever follows it, but records nothing, so it does
/// not bring the contact back. While the store's database does not answer, the person
/// still reaches the link's target (or gets the pixel); the engagement is logged as lost.
async fn record(st: &Shared, e: Event, what: &'static str) -> Result<(), ApiError> {
    match record_now(st, e, what).await {
        Err(err) if err.status == StatusCode::SERVICE_UNAVAILABLE => {
            tracing::warn!(what, "engagement not recorded: {}", err.message);
            Ok(())
        }
        r => r,
    }
}

async fn record_now(st: &Shared, e: Event, what: &'static str) -> Result<(), ApiError> {
    if st
        .store
        .contact(&e.contact)
        .map_err(super::api::store_err)?
        .is_none()
    {
        tracing::debug!(
            what,
            "engagement of a contact not in the store: not recorded"
        );
        return Ok(());
    }
    st.submit(vec![Input::Event(e)]).await?;
    st.metrics.events_ingested.inc();
    st.metrics.tracked(what);
    Ok(())
}

/// `GET /t/c/{token}`: records `clicked`, redirects to the link's target.
#[utoipa::path(
    get,
    path = "/t/c/{token}",
    tag = tags::TRACKING,
    params(("token" = String, Path, description = "The link's signed token")),
    responses(
        (status = 302, description = "To the link's target (`Location`)"),
        (status = 404, description = "Unknown or forged link", body = ErrorBody),
    )
)]
pub async fn click(
    State(st): State<Shared>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let c = claims(&st, &token, TokenKind::Click)?;
    clicked(&st, c).await
}

/// `GET /s/{code}`: a short link (SMS, push); the same as its signed click.
#[utoipa::path(
    get,
    path = "/s/{code}",
    tag = tags::TRACKING,
    params(("code" = String, Path, description = "The short link's code")),
    responses(
        (status = 302, description = "To the link's target (`Location`)"),
        (status = 404, description = "Unknown link", body = ErrorBody),
    )
)]
pub async fn short(
    State(st): State<Shared>,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    let unknown = || ApiError::not_found("unknown link");
    if !tracking::is_short_code(&code) {
        return Err(unknown());
    }
    let c = st
        .store
        .short_link(&code)
        .map_err(super::api::store_err)?
        .filter(|c| c.kind == TokenKind::Click)
        .ok_or_else(unknown)?;
    clicked(&st, c).await
}

/// Records `clicked` for a link's claims and redirects to its target.
async fn clicked(st: &Shared, c: Claims) -> Result<Response, ApiError> {
    let Some(url) = c.url.clone() else {
        return Err(ApiError::not_found("this link has no target"));
    };
    if axum::http::HeaderValue::from_str(&url).is_err() {
        // Never a 302 without a Location (links rendered before values were encoded).
        return Err(ApiError::not_found("this link's target is not a valid URL"));
    }
    // A test send's links work and record nothing.
    if !is_test_message_id(&c.message_id) {
        record(st, engagement(&c, "clicked"), "clicked").await?;
    }
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, url),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
    )
        .into_response())
}

/// `GET /t/o/{token}`: records `opened`, answers a 1×1 GIF.
#[utoipa::path(
    get,
    path = "/t/o/{token}",
    tag = tags::TRACKING,
    params(("token" = String, Path, description = "The pixel's signed token")),
    responses(
        (status = 200, description = "A transparent 1×1 GIF", content_type = "image/gif", body = Vec<u8>),
        (status = 404, description = "Unknown or forged token", body = ErrorBody),
    )
)]
pub async fn open(
    State(st): State<Shared>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let c = claims(&st, &token, TokenKind::Open)?;
    if !is_test_message_id(&c.message_id) {
        record(&st, engagement(&c, "opened"), "opened").await?;
    }
    Ok((
        [
            (header::CONTENT_TYPE, "image/gif"),
            (header::CACHE_CONTROL, "no-store, max-age=0"),
        ],
        PIXEL.to_vec(),
    )
        .into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KannelReport {
    /// The signed delivery token the SMS channel put in the dlr-url.
    t: String,
    /// Kannel's `%d`: 1 delivered, 2 failed, 4 buffered, 8 accepted by the SMSC, 16 rejected.
    status: String,
}

/// `GET /v1/dlr/kannel?t={token}&status=%d`: a Kannel delivery report. Status 1 records
/// `received`, 2 and 16 record `bounced`; 4 and 8 (in progress) record nothing. The token is
/// signed like tracked links (and must be a delivery token), so a forged report is a 404.
#[utoipa::path(
    get,
    path = "/v1/dlr/kannel",
    tag = tags::PROVIDERS,
    params(KannelReport),
    responses(
        (status = 200, description = "Recorded, or nothing to record"),
        (status = 400, description = "Not a Kannel report", body = ErrorBody),
        (status = 404, description = "Unknown or forged token", body = ErrorBody),
    )
)]
pub async fn kannel(
    State(st): State<Shared>,
    q: Result<Query<KannelReport>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    // A JSON error like every other route, not axum's plain text.
    let Query(q) = q.map_err(|e| {
        ApiError::bad_request(
            "invalid_report",
            format!(
                "a Kannel report is GET {}?t=TOKEN&status=%d: {}",
                crate::channels::sms::KANNEL_DLR_PATH,
                e.body_text()
            ),
        )
    })?;
    if q.status.trim().parse::<u32>().is_err() {
        return Err(ApiError::bad_request(
            "invalid_status",
            format!("unknown Kannel status '{}'", q.status),
        ));
    }
    let event = crate::channels::dlr::kannel_event(&st.secret, &q.t, &q.status, now_ms())
        .map_err(|_| ApiError::not_found("unknown delivery report"))?;
    record_report(&st, event).await
}

/// Records a delivery report's event, if it has one (`received` or `bounced`); answers 200
/// either way, so the gateway does not retry a report that changes nothing.
async fn record_report(st: &Shared, event: Option<Event>) -> Result<Response, ApiError> {
    if let Some(e) = event {
        let what = if e.kind == "received" {
            "received"
        } else {
            "bounced"
        };
        record(st, e, what).await?;
    }
    Ok(StatusCode::OK.into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TwilioToken {
    /// The signed delivery token the SMS channel put in the StatusCallback URL.
    t: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct TwilioStatus {
    message_status: String,
    #[serde(default)]
    error_code: Option<String>,
}

/// `POST /v1/dlr/twilio?t={token}`: a Twilio status callback (form-encoded). `delivered`
/// records `received`, `undelivered` and `failed` record `bounced`; the statuses on the way
/// record nothing. Signed like Kannel's reports: a forged token is a 404.
#[utoipa::path(
    post,
    path = "/v1/dlr/twilio",
    tag = tags::PROVIDERS,
    params(TwilioToken),
    request_body(content = TwilioStatus, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Recorded, or nothing to record"),
        (status = 400, description = "Not a Twilio status callback", body = ErrorBody),
        (status = 404, description = "Unknown or forged token", body = ErrorBody),
    )
)]
pub async fn twilio(
    State(st): State<Shared>,
    q: Result<Query<TwilioToken>, axum::extract::rejection::QueryRejection>,
    form: Result<axum::Form<TwilioStatus>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| {
        ApiError::bad_request(
            "invalid_report",
            format!(
                "a Twilio status callback is POST {}?t=TOKEN: {}",
                crate::channels::sms::TWILIO_DLR_PATH,
                e.body_text()
            ),
        )
    })?;
    let axum::Form(f) = form.map_err(|e| {
        ApiError::bad_request(
            "invalid_report",
            format!(
                "a Twilio status callback is a form with MessageStatus: {}",
                e.body_text()
            ),
        )
    })?;
    let event = crate::channels::dlr::twilio_event(
        &st.secret,
        &q.t,
        &f.message_status,
        f.error_code.as_deref(),
        now_ms(),
    )
    .map_err(|_| ApiError::not_found("unknown delivery report"))?;
    record_report(&st, event).await
}
