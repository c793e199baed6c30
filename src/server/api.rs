//! `POST /v1/events`, `PUT|GET /v1/contacts/{id}`, `POST /v1/contacts`.

use super::openapi::{tags, ErrorBody};
use super::{body_bytes, json_body, now_ms, ApiError, Scope, Shared};
use crate::config::ServerConfig;
use crate::domain::Channel;
use crate::engine::{
    contact_id_problem, is_reserved_event_type, timezone_problem, Contact, Event, Millis,
    POSTABLE_ENGAGEMENT,
};
use crate::runtime::Input;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

/// An event as the API takes it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    /// Idempotency id: an event whose id was seen before is dropped.
    #[serde(default)]
    id: Option<String>,
    contact: String,
    #[serde(rename = "type")]
    kind: String,
    /// RFC 3339, or milliseconds since the epoch; default: when it arrives.
    #[serde(default)]
    #[schema(value_type = Option<Timestamp>)]
    timestamp: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Object)]
    properties: Map<String, Value>,
    #[serde(default)]
    context: Option<String>,
    #[serde(default)]
    journey: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    link: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<ChannelName>)]
    channel: Option<Channel>,
    #[serde(default)]
    message_id: Option<String>,
}

/// A moment: RFC 3339 text (`2026-03-01T09:00:00Z`) or milliseconds since the epoch.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum Timestamp {
    Text(String),
    Millis(i64),
}

/// A channel's name.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum ChannelName {
    Email,
    Sms,
    Push,
    Webhook,
}

/// The body of `POST /v1/events`: one event, or an array of them.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum EventsIn {
    One(Box<EventIn>),
    Many(Vec<EventIn>),
}

/// The answer to one event.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Accepted {
    /// Always 1.
    accepted: usize,
}

/// The answer of `POST /v1/events`: to one event, or to an array (a batch's answer).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum EventsAnswer {
    One(Accepted),
    Many(BatchAnswer<'static>),
}

/// Parses a timestamp: RFC 3339 text or epoch milliseconds.
pub fn parse_time(v: &Value) -> Result<Millis, String> {
    match v {
        Value::String(s) => crate::engine::calendar::parse_rfc3339(s)
            .ok_or_else(|| format!("timestamp '{s}' is not RFC 3339 (2026-03-01T09:00:00Z)")),
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("timestamp {n} is not whole milliseconds")),
        Value::Null => Err("timestamp is null".into()),
        other => Err(format!(
            "timestamp must be RFC 3339 text or milliseconds, not {other}"
        )),
    }
}

/// True when every string (and key) in `v` is at most `max` bytes: the check without the
/// error's path, so that a value that passes costs no allocation.
fn fits(v: &Value, max: usize) -> bool {
    match v {
        Value::String(s) => s.len() <= max,
        Value::Array(a) => a.iter().all(|x| fits(x, max)),
        Value::Object(o) => o.iter().all(|(k, x)| k.len() <= max && fits(x, max)),
        _ => true,
    }
}

/// Field-length checks: every string (and key) at most `max_field_bytes`.
pub fn check_value(path: &str, v: &Value, limits: &ServerConfig) -> Result<(), String> {
    if fits(v, limits.max_field_bytes) {
        return Ok(());
    }
    match v {
        Value::String(s) if s.len() > limits.max_field_bytes => Err(format!(
            "{path} is {} bytes, over the limit of {} (server.max_field_bytes)",
            s.len(),
            limits.max_field_bytes
        )),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| check_value(&format!("{path}[{i}]"), x, limits)),
        Value::Object(o) => o.iter().try_for_each(|(k, x)| {
            if k.len() > limits.max_field_bytes {
                return Err(format!("a key of {path} is over the field limit"));
            }
            check_value(&format!("{path}.{k}"), x, limits)
        }),
        _ => Ok(()),
    }
}

/// Checks a map of fields (event properties, profile fields, traits): every key and every
/// string at most `max_field_bytes`. `prefix` names the map in errors (`properties.`).
pub fn check_fields(
    prefix: &str,
    fields: &Map<String, Value>,
    limits: &ServerConfig,
) -> Result<(), String> {
    let max = limits.max_field_bytes;
    for (k, v) in fields {
        if k.len() > max {
            let start: String = k.chars().take(24).collect();
            return Err(format!(
                "the key '{start}…' of {} is {} bytes, over the limit of {max} (server.max_field_bytes)",
                if prefix.is_empty() { "the profile" } else { prefix.trim_end_matches('.') },
                k.len()
            ));
        }
        if !fits(v, max) {
            check_value(&format!("{prefix}{k}"), v, limits)?;
        }
    }
    Ok(())
}

/// Checks a profile's fields (or Segment traits): `check_fields`, and a `timezone` must be
/// a zone name.
pub fn check_profile_fields(
    prefix: &str,
    fields: &Map<String, Value>,
    limits: &ServerConfig,
) -> Result<(), String> {
    check_fields(prefix, fields, limits)?;
    if let Some(problem) = fields.get("timezone").and_then(timezone_problem) {
        return Err(format!("{prefix}{problem}"));
    }
    Ok(())
}

/// Checks a contact id, whatever door it came in by: not empty, no control characters,
/// within the field limit.
pub fn check_contact_id(name: &str, id: &str, limits: &ServerConfig) -> Result<(), String> {
    if let Some(p) = contact_id_problem(id) {
        return Err(format!("{name}: {p}"));
    }
    check_str(name, id, limits)
}

/// Why an item was refused: bad input (400), or a type its token may not post (403).
#[derive(Debug)]
pub struct Refused {
    pub status: StatusCode,
    pub message: String,
}

impl From<String> for Refused {
    fn from(message: String) -> Self {
        Refused {
            status: StatusCode::BAD_REQUEST,
            message,
        }
    }
}

impl From<&str> for Refused {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

impl Refused {
    /// The reason label of `journey_events_rejected_total`.
    pub fn reason(&self) -> &'static str {
        if self.status == StatusCode::FORBIDDEN {
            "reserved_type"
        } else {
            "invalid"
        }
    }

    /// The error of a request that was this one item.
    pub fn into_api_error(self, code: &'static str) -> ApiError {
        if self.status == StatusCode::FORBIDDEN {
            ApiError::new(self.status, "reserved_type", self.message)
        } else {
            ApiError::new(self.status, code, self.message)
        }
    }
}

/// Refuses an event type the engine records itself (`is_reserved_event_type`) unless the
/// token may post it: `engagement` and `admin` may post `POSTABLE_ENGAGEMENT`; nobody
/// posts a send's outcome.
pub fn check_type_allowed(kind: &str, scope: Scope) -> Result<(), Refused> {
    if !is_reserved_event_type(kind) {
        return Ok(());
    }
    let postable = POSTABLE_ENGAGEMENT.contains(&kind);
    if postable && scope.allows(Scope::Engagement) {
        return Ok(());
    }
    let why = if postable {
        "; a token of scope `engagement` may post it (journey token create --scope engagement)"
    } else if kind.starts_with("message.") {
        "; a send's outcome is recorded only by the dispatcher"
    } else {
        ""
    };
    Err(Refused {
        status: StatusCode::FORBIDDEN,
        message: format!("event type '{kind}' is reserved: the engine records it itself{why}"),
    })
}

pub fn check_str(name: &str, s: &str, limits: &ServerConfig) -> Result<(), String> {
    if s.len() > limits.max_field_bytes {
        return Err(format!(
            "{name} is {} bytes, over the limit of {} (server.max_field_bytes)",
            s.len(),
            limits.max_field_bytes
        ));
    }
    Ok(())
}

/// Checks what every event needs, whatever door it came in by.
pub fn check_event(e: &Event, limits: &ServerConfig) -> Result<(), String> {
    check_contact_id("contact", &e.contact, limits)?;
    if e.kind.trim().is_empty() {
        return Err("type is empty".into());
    }
    check_str("type", &e.kind, limits)?;
    for (name, v) in [
        ("id", &e.id),
        ("context", &e.context),
        ("journey", &e.journey),
        ("message", &e.message),
        ("link", &e.link),
        ("message_id", &e.message_id),
    ] {
        if let Some(v) = v {
            check_str(name, v, limits)?;
        }
    }
    check_fields("properties.", &e.properties, limits)
}

/// A serde error without its position: an item's position inside its own text says little.
fn without_position(e: serde_json::Error) -> String {
    let text = e.to_string();
    let at = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&at) {
        Some(t) => t.to_string(),
        None => text,
    }
}

/// Parses one event straight from its JSON text into its type (no `serde_json::Value` in
/// between), then checks it.
fn parse_event(
    raw: &RawValue,
    now: Millis,
    limits: &ServerConfig,
    scope: Scope,
) -> Result<Event, Refused> {
    let e: EventIn = serde_json::from_str(raw.get()).map_err(without_position)?;
    check_type_allowed(&e.kind, scope)?;
    let at = match &e.timestamp {
        Some(t) => parse_time(t)?,
        None => now,
    };
    let event = Event {
        id: e.id,
        contact: e.contact,
        kind: e.kind,
        at,
        properties: e.properties,
        context: e.context,
        journey: e.journey,
        message: e.message,
        link: e.link,
        channel: e.channel,
        message_id: e.message_id,
    };
    check_event(&event, limits)?;
    Ok(event)
}

/// One item's result in a batch's answer: `{"index": i, "ok": true}` or
/// `{"error": …, "index": i, "ok": false}`, with `"status": 403` when the item is a type
/// its token may not post.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip)]
    reason: Option<&'static str>,
    index: usize,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
}

impl ItemResult {
    pub fn ok(index: usize) -> ItemResult {
        ItemResult {
            error: None,
            reason: None,
            index,
            ok: true,
            status: None,
        }
    }
    pub fn refused(index: usize, error: String) -> ItemResult {
        ItemResult {
            error: Some(error),
            reason: Some("invalid"),
            index,
            ok: false,
            status: None,
        }
    }
    pub fn refused_for(index: usize, r: Refused) -> ItemResult {
        ItemResult {
            reason: Some(r.reason()),
            error: Some(r.message),
            index,
            ok: false,
            status: (r.status != StatusCode::BAD_REQUEST).then_some(r.status.as_u16()),
        }
    }
}

/// Counts a batch's refused items by reason and, when some were kept (a 207, which SDKs
/// take for success), logs each refusal at WARN: nobody else will see it.
pub fn note_refusals(st: &super::AppState, what: &str, results: &[ItemResult]) {
    let accepted = results.iter().filter(|r| r.ok).count();
    for r in results.iter().filter(|r| !r.ok) {
        let reason = r.reason.unwrap_or("invalid");
        st.metrics.rejected(reason, 1);
        if accepted > 0 {
            tracing::warn!(
                index = r.index,
                reason,
                "{what}: item refused in a partly accepted batch (207): {}",
                r.error.as_deref().unwrap_or("")
            );
        }
    }
}

/// A batch's answer: 200 all kept, 207 some kept, 400 none (403 when every item was a type
/// its token may not post); `code` and `message` when none was kept, `success` on Segment's
/// routes. Its keys in the order a JSON object of them always had (sorted).
#[derive(Serialize, ToSchema)]
pub struct BatchAnswer<'a> {
    accepted: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
    rejected: usize,
    #[schema(value_type = Vec<ItemResult>)]
    results: &'a [ItemResult],
    #[serde(skip_serializing_if = "Option::is_none")]
    success: Option<bool>,
}

/// The answer to a batch: 200 all kept, 207 some kept, 400 none (403 when every item was
/// a type its token may not post). `success` is Segment's field (`/v1/batch`), absent
/// elsewhere.
pub fn batch_response(results: &[ItemResult], accepted: usize, success: Option<bool>) -> Response {
    let rejected = results.len() - accepted;
    let forbidden = rejected > 0
        && results
            .iter()
            .all(|r| r.ok || r.status == Some(StatusCode::FORBIDDEN.as_u16()));
    let status = if rejected == 0 {
        StatusCode::OK
    } else if accepted > 0 {
        StatusCode::MULTI_STATUS
    } else if forbidden {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::BAD_REQUEST
    };
    let none_kept = rejected > 0 && accepted == 0;
    let body = BatchAnswer {
        accepted,
        code: none_kept.then_some(if forbidden {
            "reserved_type"
        } else {
            "invalid_items"
        }),
        message: none_kept.then_some("every item was refused; see results"),
        rejected,
        results,
        success,
    };
    let bytes = serde_json::to_vec(&body).expect("answers serialize");
    (
        status,
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

pub fn check_batch_len(n: usize, limits: &ServerConfig) -> Result<(), ApiError> {
    if n == 0 {
        return Err(ApiError::bad_request("empty_batch", "the batch is empty"));
    }
    if n > limits.max_batch {
        return Err(ApiError::bad_request(
            "batch_too_large",
            format!(
                "a batch of {n} items is over the limit of {} (server.max_batch)",
                limits.max_batch
            ),
        ));
    }
    Ok(())
}

/// What a `POST /v1/events` body holds, each event still as its JSON text.
enum EventsBody<'a> {
    One(&'a RawValue),
    Many(Vec<&'a RawValue>),
}

/// Splits a body into its events' texts without building `serde_json::Value`s: an array's
/// items are checked one by one afterwards, so a bad item is refused alone.
fn events_body(body: &[u8]) -> Result<EventsBody<'_>, ApiError> {
    let invalid_json = |e: serde_json::Error| {
        ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
    };
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice(body)
            .map(EventsBody::Many)
            .map_err(invalid_json),
        Some(b'{') => serde_json::from_slice(body)
            .map(EventsBody::One)
            .map_err(invalid_json),
        _ => {
            // Not an object or an array: say whether it is JSON at all.
            serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(invalid_json)?;
            Err(ApiError::bad_request(
                "invalid_event",
                "the body must be an event object or an array of them",
            ))
        }
    }
}

/// `POST /v1/events`: one event object, or an array of them.
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = tags::INGEST,
    security(("bearer" = []), ("basic" = [])),
    request_body(content = EventsIn, description = "An event, or an array of events (a batch: per-item results, good ones kept)"),
    responses(
        (status = 200, description = "Recorded: `{\"accepted\": 1}` for one event, a batch's answer for an array", body = EventsAnswer),
        (status = 207, description = "Some items of the array kept, some refused", body = BatchAnswer),
        (status = 400, description = "Invalid: the error, or for an array whose every item was refused a batch's answer", body = ErrorBody),
        (status = 403, description = "A type this token may not post, or a token of another scope", body = ErrorBody),
    )
)]
pub async fn post_events(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let scope = st.authorize(&headers, Scope::Ingest)?;
    let body = body_bytes(&st, body)?;
    let limits = &st.config.server;
    let now = now_ms();
    match events_body(&body)? {
        EventsBody::Many(items) => {
            check_batch_len(items.len(), limits)?;
            let mut inputs = Vec::with_capacity(items.len());
            let mut results = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                match parse_event(item, now, limits, scope) {
                    Ok(e) => {
                        inputs.push(Input::Event(e));
                        results.push(ItemResult::ok(i));
                    }
                    Err(err) => results.push(ItemResult::refused_for(i, err)),
                }
            }
            let accepted = inputs.len();
            note_refusals(&st, "POST /v1/events", &results);
            if accepted > 0 {
                st.submit(inputs).await?;
                st.metrics.events_ingested.inc_by(accepted as u64);
            }
            Ok(batch_response(&results, accepted, None))
        }
        EventsBody::One(raw) => {
            let e = parse_event(raw, now, limits, scope).map_err(|err| {
                st.metrics.rejected(err.reason(), 1);
                err.into_api_error("invalid_event")
            })?;
            st.submit(vec![Input::Event(e)]).await?;
            st.metrics.events_ingested.inc();
            Ok((StatusCode::OK, Json(Accepted { accepted: 1 })).into_response())
        }
    }
}

fn check_profile(
    id: &str,
    profile: &Map<String, Value>,
    limits: &ServerConfig,
) -> Result<(), String> {
    check_contact_id("id", id, limits)?;
    check_profile_fields("", profile, limits)
}

/// Upserts contacts on the engine's thread (so no transition overwrites them), durable on return.
pub async fn upsert_contacts(st: &Shared, contacts: Vec<Contact>) -> Result<(), ApiError> {
    let r = st
        .control(move |rt, _, _, _| {
            rt.upsert_contacts(&contacts)?;
            rt.store.flush()?;
            Ok::<_, crate::runtime::RuntimeError>(())
        })
        .await?;
    r.map_err(store_err)
}

/// The answer to an upsert for a token that may not read contacts back.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactAck {
    id: String,
    /// Always true.
    ok: bool,
}

/// The answer of `PUT /v1/contacts/{id}`: the stored contact (a token that may read), or
/// the acknowledgement (an ingest token).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum PutContactAnswer {
    Stored(Contact),
    Acknowledged(ContactAck),
}

/// `PUT /v1/contacts/{id}`: the body is an object of profile fields; the given keys
/// replace the stored ones, others stay. The answer is the stored contact for a token that
/// may read contacts, else `{"id": …, "ok": true}` (an ingest token reads nothing back).
#[utoipa::path(
    put,
    path = "/v1/contacts/{id}",
    tag = tags::CONTACTS,
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The contact's id")),
    request_body(content = Object, description = "Profile fields: the given keys replace the stored ones, others stay", example = json!({"email": "angela@example.com", "first_name": "Angela"})),
    responses(
        (status = 200, description = "Stored", body = PutContactAnswer),
    )
)]
pub async fn put_contact(
    State(st): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let scope = st.authorize(&headers, Scope::Ingest)?;
    let v = json_body(&st, body)?;
    let Value::Object(profile) = v else {
        return Err(ApiError::bad_request(
            "invalid_contact",
            "the body must be an object of profile fields, e.g. {\"email\": \"a@example.com\"}",
        ));
    };
    check_profile(&id, &profile, &st.config.server)
        .map_err(|e| ApiError::bad_request("invalid_contact", e))?;
    upsert_contacts(
        &st,
        vec![Contact {
            id: id.clone(),
            profile,
        }],
    )
    .await?;
    if !scope.allows(Scope::Read) {
        return Ok(Json(ContactAck { id, ok: true }).into_response());
    }
    let c = st.store.contact(&id).map_err(store_err)?;
    Ok(Json(json!(c)).into_response())
}

/// A contact in `POST /v1/contacts`: its `id`, and any other key is a profile field.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ContactIn {
    /// The contact's id (a number is taken as its text).
    id: String,
}

/// `POST /v1/contacts`: an array of `{"id": …, fields…}`; per-item results.
#[utoipa::path(
    post,
    path = "/v1/contacts",
    tag = tags::CONTACTS,
    security(("bearer" = [])),
    request_body(content = Vec<ContactIn>, description = "Contacts: each an object with its `id` (text) and its profile fields", example = json!([{"id": "angela", "email": "angela@example.com"}])),
    responses(
        (status = 200, description = "All kept", body = BatchAnswer),
        (status = 207, description = "Some kept, some refused", body = BatchAnswer),
        (status = 400, description = "Invalid: the error, or, when every item was refused, a batch's answer", body = ErrorBody),
    )
)]
pub async fn post_contacts(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Ingest)?;
    let v = json_body(&st, body)?;
    let Value::Array(items) = v else {
        return Err(ApiError::bad_request(
            "invalid_contacts",
            "the body must be an array of contacts: [{\"id\": \"angela\", \"email\": …}]",
        ));
    };
    let limits = &st.config.server;
    check_batch_len(items.len(), limits)?;
    let mut good = Vec::new();
    let mut results = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let r = match item {
            Value::Object(mut o) => match o.remove("id") {
                Some(Value::String(id)) => {
                    check_profile(&id, &o, limits).map(|_| Contact { id, profile: o })
                }
                Some(Value::Number(n)) => {
                    let id = n.to_string();
                    check_profile(&id, &o, limits).map(|_| Contact { id, profile: o })
                }
                _ => Err("a contact needs an \"id\" (text)".to_string()),
            },
            _ => Err("a contact is an object".to_string()),
        };
        match r {
            Ok(c) => {
                good.push(c);
                results.push(ItemResult::ok(i));
            }
            Err(e) => results.push(ItemResult::refused(i, e)),
        }
    }
    let accepted = good.len();
    if accepted > 0 {
        upsert_contacts(&st, good).await?;
    }
    Ok(batch_response(&results, accepted, None))
}

/// A store error as an answer: 503 when the database did not answer (try again), else 500.
pub fn store_err(e: impl std::fmt::Display) -> ApiError {
    let message = e.to_string();
    if crate::store::is_unavailable_text(&message) {
        return ApiError::store_unavailable(&message);
    }
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store_error", message)
}

/// A contact as `GET /v1/contacts/{id}` shows it (keys sorted, as they always were).
#[derive(Serialize, ToSchema)]
pub struct ContactView {
    /// How many events the contact has.
    events: usize,
    id: String,
    journeys: Vec<InstanceView>,
    #[schema(value_type = Object)]
    profile: Map<String, Value>,
    /// The last 50 events, newest first, `at` in RFC 3339.
    #[schema(value_type = Vec<Object>)]
    recent_events: Vec<Value>,
    /// What in the profile keeps a journey from reaching the contact.
    warnings: Vec<String>,
}

/// A contact's place in a journey.
#[derive(Serialize, ToSchema)]
pub struct InstanceView {
    /// When it moves on, if it waits (RFC 3339).
    due: Option<String>,
    /// Why it ended (`completed`, `converted`, `exited`, …), null while active.
    #[schema(value_type = Option<String>)]
    ended: Option<crate::engine::EndReason>,
    entered_at: String,
    instance: u64,
    journey: String,
    /// What it is held for, if anything (a send waiting for its channel, quiet hours…).
    #[schema(value_type = Option<Object>)]
    parked: Option<Value>,
    /// The steps it went through.
    path: Vec<String>,
    paused: bool,
    sent: Vec<SentView>,
    /// The step it is at (null once ended).
    step: Option<String>,
    version: String,
}

/// A message sent to a contact in a journey.
#[derive(Serialize, ToSchema)]
pub struct SentView {
    at: String,
    message: String,
    message_id: String,
}

/// `GET /v1/contacts/{id}`: profile, journeys with their current steps, recent events
/// (scope `read` or `admin`).
#[utoipa::path(
    get,
    path = "/v1/contacts/{id}",
    tag = tags::CONTACTS,
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The contact's id")),
    responses(
        (status = 200, description = "The contact", body = ContactView),
        (status = 404, description = "No such contact", body = ErrorBody),
    )
)]
pub async fn get_contact(
    State(st): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Read)?;
    Ok(Json(contact_view(&st, id).await?).into_response())
}

/// A contact as `GET /v1/contacts/{id}` and the console show it.
pub(crate) async fn contact_view(st: &Shared, id: String) -> Result<ContactView, ApiError> {
    let store = st.store.clone();
    let paused = st.paused.read().unwrap_or_else(|e| e.into_inner()).clone();
    let program = st.program();
    tokio::task::spawn_blocking(move || {
        let contact = store.contact(&id).map_err(store_err)?;
        let events = store.events_of(&id).map_err(store_err)?;
        let Some(contact) = contact else {
            return Err(ApiError::not_found(format!("no contact '{id}'")));
        };
        let mut journeys = Vec::new();
        let mut versions = std::collections::HashMap::new();
        for inst in store.instances_of(&id).map_err(store_err)? {
            if !versions.contains_key(&inst.version) {
                versions.insert(
                    inst.version.clone(),
                    store.version(&inst.version).map_err(store_err)?,
                );
            }
            let step = match (inst.step, versions.get(&inst.version)) {
                (Some(s), Some(Some(ir))) => ir.steps.get(s as usize).map(|s| s.name.clone()),
                _ => None,
            };
            journeys.push(InstanceView {
                paused: paused.contains(&inst.journey),
                journey: inst.journey,
                instance: inst.id,
                version: inst.version,
                step,
                parked: inst.parked.map(|p| json!(p)),
                due: inst.due.map(crate::runtime::fmt_time),
                entered_at: crate::runtime::fmt_time(inst.entered_at),
                ended: inst.ended,
                path: inst.path,
                sent: inst
                    .sent
                    .iter()
                    .map(|(m, id, at)| SentView {
                        message: m.clone(),
                        message_id: id.clone(),
                        at: crate::runtime::fmt_time(*at),
                    })
                    .collect(),
            });
        }
        let recent: Vec<Value> = events
            .iter()
            .rev()
            .take(50)
            .map(|e| {
                let mut v = json!(e);
                v["at"] = json!(crate::runtime::fmt_time(e.at));
                v
            })
            .collect();
        Ok(ContactView {
            warnings: crate::report::profile_warnings(&contact, &program),
            id: contact.id,
            profile: contact.profile,
            journeys,
            events: events.len(),
            recent_events: recent,
        })
    })
    .await
    .map_err(store_err)?
}
