//! The author's loop on the daemon: `GET /v1/journeys/{name}/messages/{message}/preview?
//! contact=ID` (scope `read` or `admin`) renders a message of the running version for a
//! stored contact, as the dispatcher would; `POST …/messages/{message}/test` (admin) sends
//! it to `{"to": ADDRESS}` through the configured provider, subject prefixed `[test]`, and
//! records `message.test` on the contact (counted in no report, cap, audience or segment).

use super::api::store_err;
use super::openapi::{tags, ErrorBody};
use super::{json_body, ApiError, Scope, Shared};
use crate::channels::preview::{self, TestSendError};
use crate::channels::render::Renderer;
use crate::compile::ir::{JourneyIr, MessageIr};
use crate::engine::{Contact, Event};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use utoipa::ToSchema;

/// The body of a test send.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TestSendRequest {
    /// The address the test goes to.
    to: String,
    /// Render for this stored contact (and record `message.test` on it); without it, an
    /// empty profile.
    contact: Option<String>,
}
use std::collections::HashMap;

fn message_of(st: &Shared, name: &str, message: &str) -> Result<(JourneyIr, MessageIr), ApiError> {
    let program = st.program();
    let j = program
        .journeys
        .get(name)
        .ok_or_else(|| ApiError::not_found(format!("no journey '{name}'")))?;
    let m = j.messages.get(message).ok_or_else(|| {
        ApiError::not_found(format!(
            "journey '{name}' has no message '{message}' (messages: {})",
            j.messages.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    Ok((j.clone(), m.clone()))
}

/// A stored contact, and the event that last enrolled it in `journey` (what its templates
/// see as `event`).
async fn contact_of(
    st: &Shared,
    id: &str,
    journey: &str,
) -> Result<(Contact, Option<Event>), ApiError> {
    let store = st.store.clone();
    let (id2, journey) = (id.to_string(), journey.to_string());
    let (contact, event) = tokio::task::spawn_blocking(move || {
        let c = store.contact(&id2)?;
        let e = match &c {
            Some(_) => store.latest_entry_event(&id2, &journey)?,
            None => None,
        };
        Ok::<_, crate::store::StoreError>((c, e))
    })
    .await
    .map_err(store_err)?
    .map_err(store_err)?;
    let contact = contact.ok_or_else(|| ApiError::not_found(format!("no contact '{id}'")))?;
    Ok((contact, event))
}

/// `GET /v1/journeys/{name}/messages/{message}/preview?contact=ID`.
#[utoipa::path(
    get,
    path = "/v1/journeys/{name}/messages/{message}/preview",
    tag = tags::JOURNEYS,
    security(("bearer" = [])),
    params(
        ("name" = String, Path, description = "The journey's name"),
        ("message" = String, Path, description = "The message's name"),
        ("contact" = String, Query, description = "The stored contact to render for"),
    ),
    responses(
        (status = 200, description = "The message as it would be sent", body = preview::Preview),
        (status = 400, description = "No contact named", body = ErrorBody),
        (status = 404, description = "No such journey, message or contact", body = ErrorBody),
        (status = 422, description = "The message does not render for this contact", body = ErrorBody),
    )
)]
pub async fn preview(
    State(st): State<Shared>,
    Path((name, message)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Read)?;
    let Some(id) = q.get("contact").filter(|c| !c.is_empty()) else {
        return Err(ApiError::bad_request(
            "missing_contact",
            "name the contact to render for: ?contact=ID",
        ));
    };
    Ok(Json(render_for(&st, &name, &message, id).await?).into_response())
}

/// A message of the running version rendered for a stored contact (the API's preview and
/// the console's).
pub(crate) async fn render_for(
    st: &Shared,
    name: &str,
    message: &str,
    contact: &str,
) -> Result<preview::Preview, ApiError> {
    let (j, m) = message_of(st, name, message)?;
    let (contact, event) = contact_of(st, contact, name).await?;
    let renderer = Renderer::new(&st.secret, &st.config.public_url);
    let job = preview::job(&j, &m, &contact.id, format!("preview:{name}:{message}"));
    preview::render(
        &renderer,
        &st.secret,
        &st.config,
        &job,
        &m,
        &contact,
        event.as_ref(),
    )
    .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "render_error", e.0))
}

#[utoipa::path(
    post,
    path = "/v1/journeys/{name}/messages/{message}/test",
    tag = tags::JOURNEYS,
    security(("bearer" = [])),
    params(
        ("name" = String, Path, description = "The journey's name"),
        ("message" = String, Path, description = "The message's name"),
    ),
    request_body(content = TestSendRequest),
    responses(
        (status = 200, description = "Sent", body = preview::TestSent),
        (status = 400, description = "No address, or not an email address", body = ErrorBody),
        (status = 404, description = "No such journey, message or contact", body = ErrorBody),
        (status = 422, description = "The message cannot be sent as a test: not an email, or it does not render", body = ErrorBody),
        (status = 502, description = "The provider did not take it", body = ErrorBody),
    )
)]
pub async fn test_send(
    State(st): State<Shared>,
    Path((name, message)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Admin)?;
    let v = json_body(&st, body)?;
    let Some(to) = v
        .get("to")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
    else {
        return Err(ApiError::bad_request(
            "missing_to",
            "give the address the test goes to: {\"to\": \"you@example.com\"}",
        ));
    };
    let contact = v.get("contact").and_then(Value::as_str);
    Ok(Json(send_test(&st, &name, &message, to, contact).await?).into_response())
}

/// Sends a message of the running version to `to` as a test, rendered for `contact` (or
/// an empty profile), and records `message.test` on the contact (the API's and the console's).
pub(crate) async fn send_test(
    st: &Shared,
    name: &str,
    message: &str,
    to: &str,
    contact: Option<&str>,
) -> Result<preview::TestSent, ApiError> {
    let (j, m) = message_of(st, name, message)?;
    let contact = match contact {
        Some(id) => Some(contact_of(st, id, name).await?),
        None => None,
    };
    let (rendered_for, event) = contact.clone().unwrap_or_else(|| {
        let c = Contact {
            id: "test".into(),
            profile: Default::default(),
        };
        (c, None)
    });
    let now = super::now_ms();
    let renderer = Renderer::new(&st.secret, &st.config.public_url);
    let job = preview::job(
        &j,
        &m,
        &rendered_for.id,
        preview::test_message_id(name, message, now),
    );
    let sent = preview::send_test(
        &renderer,
        &st.config,
        &job,
        &m,
        &rendered_for,
        event.as_ref(),
        to.trim(),
    )
    .await
    .map_err(|e| match e {
        TestSendError::Address(m) => ApiError::bad_request("invalid_to", m),
        TestSendError::Unsendable(m) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "test_unsendable", m)
        }
        TestSendError::NotSent(m) => ApiError::new(StatusCode::BAD_GATEWAY, "test_not_sent", m),
    })?;
    tracing::info!(journey = %name, message = %message, to = %sent.to, "test send");
    if let Some((c, _)) = contact {
        let event = preview::test_event(&sent, &c.id, now);
        // History only, on the engine's thread: no journey runs on it.
        st.control(move |rt, _, _, _| rt.ingest_history(&[event]))
            .await?
            .map_err(store_err)?;
    }
    Ok(sent)
}
