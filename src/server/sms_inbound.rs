//! `POST /v1/sms/inbound?token=…`: replies to our SMS, from the provider's inbound webhook —
//! Twilio's form post (`From`, `Body`) or a JSON body (`{"from": "+39…", "text": "STOP"}`,
//! `body` for `text` too). A `STOP` (or UNSUBSCRIBE, CANCEL, END, QUIT, STOPALL, OPTOUT)
//! sets the channel-wide topic `subscriptions.sms` to false for every contact with that
//! phone number, a `START` (or YES, UNSTOP, SUBSCRIBE) back to true; anything else is
//! answered and ignored. Each change is a `subscription.changed` event (topic `sms`,
//! `source: sms`), recorded once: a second STOP changes nothing. START does not undo an
//! `unsubscribed: true` from all marketing.
//!
//! The route is protected like a provider's delivery reports, by a token in its URL: the
//! configured `sms.inbound_token`, compared in constant time (off, a 404, without one).
//! Contacts are found by a scan of the store (a read); the change runs on the live loop's
//! thread like every profile change of the daemon.

use super::openapi::{tags, ErrorBody};
use super::preferences::{apply, Change};
use super::{ApiError, Shared};
use crate::engine::consent::{normalize_phone, topic_consent};
use crate::engine::Contact;
use crate::runtime::{Input, RuntimeError};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboundQuery {
    /// The configured `sms.inbound_token`.
    #[serde(default)]
    token: Option<String>,
}

/// What a reply asks for: `Some(false)` stop, `Some(true)` start, None anything else.
pub fn keyword(text: &str) -> Option<bool> {
    let word = text
        .trim()
        .trim_end_matches(['.', '!'])
        .to_ascii_uppercase();
    match word.as_str() {
        "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" | "OPTOUT" | "OPT OUT" => {
            Some(false)
        }
        "START" | "YES" | "UNSTOP" | "SUBSCRIBE" => Some(true),
        _ => None,
    }
}

fn same_token(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// (from, text) of a Twilio form post or a JSON body.
fn parse(headers: &HeaderMap, body: &[u8]) -> Result<(String, String), ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let (from, text) = if is_json {
        let v: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
        })?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        (s("from"), s("text").or_else(|| s("body")))
    } else {
        let mut from = None;
        let mut text = None;
        for (k, v) in form_urlencoded::parse(body) {
            match k.as_ref() {
                "From" => from = Some(v.into_owned()),
                "Body" => text = Some(v.into_owned()),
                _ => {}
            }
        }
        (from, text)
    };
    let from = from.filter(|f| !normalize_phone(f).trim_start_matches('+').is_empty());
    match (from, text) {
        (Some(f), Some(t)) => Ok((f, t)),
        (None, _) => Err(ApiError::bad_request(
            "missing_from",
            "an inbound SMS needs the sender's number: `From` (form) or `from` (JSON)",
        )),
        (_, None) => Err(ApiError::bad_request(
            "missing_text",
            "an inbound SMS needs its text: `Body` (form) or `text` (JSON)",
        )),
    }
}

/// An inbound SMS as JSON.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct InboundSms {
    /// The sender's number.
    from: String,
    /// The text (`body` is taken too).
    text: String,
}

/// Twilio's inbound webhook form (other fields are ignored).
#[derive(ToSchema)]
#[allow(dead_code, non_snake_case)]
pub struct TwilioInbound {
    /// The sender's number.
    From: String,
    /// The text.
    Body: String,
}

/// The answer to a JSON inbound SMS (or to one that accepts JSON).
#[derive(Serialize, ToSchema)]
pub struct InboundAnswer {
    /// `stop`, `start` or `none`.
    action: &'static str,
    /// Contacts whose subscription changed.
    changed: usize,
    /// Contacts with that number.
    matched: usize,
}

/// `POST /v1/sms/inbound?token=…`: a reply to our SMS.
#[utoipa::path(
    post,
    path = "/v1/sms/inbound",
    tag = tags::PROVIDERS,
    params(InboundQuery),
    request_body(
        description = "Twilio's form post (`From`, `Body`) or JSON",
        content(
            (InboundSms = "application/json"),
            (TwilioInbound = "application/x-www-form-urlencoded"),
        )
    ),
    responses(
        (status = 200, description = "Taken: JSON when the request is JSON or accepts it, else an empty TwiML answer",
            content(
                (InboundAnswer = "application/json"),
                (String = "text/xml"),
            )
        ),
        (status = 400, description = "No sender or no text", body = ErrorBody),
        (status = 404, description = "Off (no `sms.inbound_token`) or a wrong token", body = ErrorBody),
    )
)]
pub async fn inbound(
    State(st): State<Shared>,
    Query(q): Query<InboundQuery>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let Some(expected) = st.config.sms.inbound_token.clone() else {
        return Err(ApiError::not_found("no such endpoint"));
    };
    let given = q.token.unwrap_or_default();
    if !same_token(given.as_bytes(), expected.as_bytes()) {
        return Err(ApiError::not_found("no such endpoint"));
    }
    let body = super::body_bytes(&st, body)?;
    let (from, text) = parse(&headers, &body)?;
    let phone = normalize_phone(&from);
    let want = keyword(&text);
    let mut ids = Vec::new();
    if want.is_some() {
        for c in st.store.contacts() {
            let c = c.map_err(super::api::store_err)?;
            let theirs = c.profile.get("phone").and_then(Value::as_str);
            if theirs.is_some_and(|p| normalize_phone(p) == phone) {
                ids.push(c.id);
            }
        }
    }
    let matched = ids.len();
    let program = st.program();
    let changed = match want {
        None => 0,
        Some(want) => {
            let r = st
                .control(move |rt, sink, now, timeline| {
                    let mut changed = 0;
                    for id in ids {
                        let Some(contact) = rt.store.contact(&id)? else {
                            continue;
                        };
                        let default = program
                            .topics
                            .get("sms")
                            .is_none_or(|t| t.default_subscribed);
                        if topic_consent(&contact, "sms", default) == want {
                            continue;
                        }
                        let made = [Change::Topic("sms".into(), want)];
                        let (profile, mut events) = apply(&contact, &made, None, now);
                        for e in &mut events {
                            e.properties
                                .insert("source".into(), Value::String("sms".into()));
                        }
                        rt.upsert_contact(&Contact { id, profile })?;
                        rt.run_at(
                            events.into_iter().map(Input::Event).collect(),
                            now,
                            sink,
                            timeline,
                        )?;
                        changed += 1;
                    }
                    if changed > 0 {
                        rt.store.flush()?;
                    }
                    Ok::<_, RuntimeError>(changed)
                })
                .await?;
            r.map_err(super::api::store_err)?
        }
    };
    for _ in 0..changed {
        st.metrics.events_ingested.inc();
        st.metrics.tracked("subscription_changed");
    }
    let json_reply = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"))
        || headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
    if json_reply {
        let action = match want {
            Some(false) => "stop",
            Some(true) => "start",
            None => "none",
        };
        return Ok(axum::Json(InboundAnswer {
            action,
            matched,
            changed,
        })
        .into_response());
    }
    // Twilio: an empty TwiML answer sends no reply of ours (Twilio answers STOP itself).
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/xml")],
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>",
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_and_numbers() {
        for stop in [
            "STOP",
            "stop",
            " Stop. ",
            "unsubscribe",
            "CANCEL",
            "end",
            "QUIT",
            "stopall",
        ] {
            assert_eq!(keyword(stop), Some(false), "{stop}");
        }
        for start in ["START", "yes", "Unstop", "subscribe!"] {
            assert_eq!(keyword(start), Some(true), "{start}");
        }
        for other in ["stop it", "hello", "", "STOPP"] {
            assert_eq!(keyword(other), None, "{other}");
        }
        assert_eq!(normalize_phone("+39 333 123-4567"), "+393331234567");
        assert_eq!(normalize_phone("(555) 010"), "555010");
        assert!(same_token(b"abc", b"abc"));
        assert!(!same_token(b"abc", b"abd"));
        assert!(!same_token(b"abc", b"abcd"));
    }
}
