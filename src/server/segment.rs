//! Segment's HTTP tracking API (`/v1/track`, `/v1/identify`, `/v1/page`, `/v1/screen`,
//! `/v1/group`, `/v1/alias`, `/v1/batch`), so Segment SDKs send here unchanged: point their
//! host at the daemon and use an ingest token as the write key (Basic auth user name, or
//! `writeKey` in the body).
//!
//! Mapping: the contact is `userId`, else `anonymousId`; `track` records an event of type
//! `event` with its `properties`; `page` / `screen` record `page` / `screen` events with
//! `name` in the properties; `identify` merges `traits` into the contact's profile; `group`
//! merges its `traits` into the profile's `groups.{groupId}`; `alias` merges the
//! `previousId` contact into `userId` (`Runtime::merge_contact`). `messageId` is the event's idempotency id,
//! `timestamp` its time (default: now). Segment's `context` object is kept as the
//! `context` property.

use super::api::BatchAnswer;
use super::api::{
    batch_response, check_batch_len, check_contact_id, check_event, check_profile_fields,
    check_type_allowed, parse_time, ItemResult, Refused,
};
use super::openapi::{tags, ErrorBody};
use super::{json_body, now_ms, ApiError, Scope, Shared};
use crate::config::ServerConfig;
use crate::engine::{Contact, Event, Millis};
use crate::runtime::Input;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// The answer to a single call, as Segment's API gives it.
#[derive(Serialize, ToSchema)]
pub struct Success {
    /// Always true.
    success: bool,
}

/// A Segment call (<https://segment.com/docs/connections/sources/catalog/libraries/server/http-api/>):
/// the contact is `userId`, else `anonymousId`.
#[derive(ToSchema)]
#[allow(dead_code, non_snake_case)]
pub struct SegmentCall {
    userId: Option<String>,
    anonymousId: Option<String>,
    /// In a batch: `track`, `identify`, `page`, `screen`, `group` or `alias`.
    r#type: Option<String>,
    /// `track`: the event's type.
    event: Option<String>,
    /// `page`, `screen`: the name, kept in the properties.
    name: Option<String>,
    #[schema(value_type = Option<Object>)]
    properties: Option<Value>,
    /// `identify`, `group`: merged into the profile.
    #[schema(value_type = Option<Object>)]
    traits: Option<Value>,
    /// `group`: the group's id.
    groupId: Option<String>,
    /// `alias`: the contact merged into `userId`.
    previousId: Option<String>,
    /// RFC 3339 or milliseconds; default: now.
    #[schema(value_type = Option<super::api::Timestamp>)]
    timestamp: Option<Value>,
    /// Kept as the event's `context` property.
    #[schema(value_type = Option<Object>)]
    context: Option<Value>,
    /// The event's idempotency id.
    messageId: Option<String>,
    /// The token, when not in the Authorization header.
    writeKey: Option<String>,
}

/// A Segment batch.
#[derive(ToSchema)]
#[allow(dead_code, non_snake_case)]
pub struct SegmentBatch {
    batch: Vec<SegmentCall>,
    /// The context of calls without their own.
    #[schema(value_type = Option<Object>)]
    context: Option<Value>,
    writeKey: Option<String>,
}

enum Item {
    Event(Event),
    Identify(Contact),
    /// `group`: the contact, the group's id and its traits (kept under `groups.{id}`).
    Group(String, String, Map<String, Value>),
    /// `alias`: the previous (anonymous) id, merged into the user.
    Alias(String, String),
    Ignored,
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn object(v: Option<&Value>) -> Map<String, Value> {
    match v {
        Some(Value::Object(o)) => o.clone(),
        _ => Map::new(),
    }
}

fn convert(
    kind: &str,
    v: &Value,
    batch_context: Option<&Value>,
    now: Millis,
    limits: &ServerConfig,
    scope: Scope,
) -> Result<Item, Refused> {
    let Value::Object(o) = v else {
        return Err("a call is a JSON object".into());
    };
    let contact = text(o.get("userId"))
        .or_else(|| text(o.get("anonymousId")))
        .ok_or("a call needs a userId or an anonymousId")?;
    let at = match o
        .get("timestamp")
        .or_else(|| o.get("originalTimestamp"))
        .filter(|t| !t.is_null())
    {
        Some(t) => parse_time(t)?,
        None => now,
    };
    let context = o.get("context").or(batch_context).filter(|c| !c.is_null());
    let mut properties = object(o.get("properties"));
    if let Some(c) = context {
        properties.entry("context").or_insert_with(|| c.clone());
    }
    let id = text(o.get("messageId"));
    let event = |kind: String, properties: Map<String, Value>| -> Result<Item, Refused> {
        check_type_allowed(&kind, scope)?;
        let e = Event {
            id: id.clone(),
            contact: contact.clone(),
            kind,
            at,
            properties,
            ..Event::default()
        };
        check_event(&e, limits)?;
        Ok(Item::Event(e))
    };
    match kind {
        "track" => {
            let name = text(o.get("event")).ok_or("a track call needs an `event` name")?;
            event(name, properties)
        }
        "page" | "screen" => {
            if let Some(n) = text(o.get("name")) {
                properties.insert("name".into(), Value::String(n));
            }
            if let Some(n) = text(o.get("category")) {
                properties.insert("category".into(), Value::String(n));
            }
            event(kind.to_string(), properties)
        }
        "identify" => {
            let mut traits = object(o.get("traits"));
            if traits.is_empty() {
                traits = object(context.and_then(|c| c.get("traits")));
            }
            check_contact_id("userId", &contact, limits)?;
            check_profile_fields("traits.", &traits, limits)?;
            Ok(Item::Identify(Contact {
                id: contact,
                profile: traits,
            }))
        }
        "group" => {
            let group = text(o.get("groupId")).ok_or("a group call needs a `groupId`")?;
            let traits = object(o.get("traits"));
            check_contact_id("userId", &contact, limits)?;
            check_profile_fields("traits.", &traits, limits)?;
            Ok(Item::Group(contact, group, traits))
        }
        "alias" => {
            let previous = text(o.get("previousId")).ok_or("an alias call needs a `previousId`")?;
            check_contact_id("previousId", &previous, limits)?;
            check_contact_id("userId", &contact, limits)?;
            if previous == contact {
                return Ok(Item::Ignored);
            }
            Ok(Item::Alias(previous, contact))
        }
        other => Err(format!("unknown call type '{other}' ({})", CALLS.join(", ")).into()),
    }
}

/// Records converted items: events through the group commit, or, with identifies among
/// them, profiles first and then events in one step on the engine's thread.
async fn record(st: &Shared, items: Vec<Item>) -> Result<(), ApiError> {
    let mut events = Vec::new();
    let mut contacts = Vec::new();
    let mut groups = Vec::new();
    let mut aliases = Vec::new();
    for i in items {
        match i {
            Item::Alias(from, into) => aliases.push((from, into)),
            Item::Event(e) => events.push(Input::Event(e)),
            Item::Identify(c) => contacts.push(c),
            Item::Group(c, g, t) => groups.push((c, g, t)),
            Item::Ignored => {}
        }
    }
    let n = events.len() as u64;
    if contacts.is_empty() && groups.is_empty() && aliases.is_empty() {
        if !events.is_empty() {
            st.submit(events).await?;
        }
    } else {
        let r = st
            .control(move |rt, sink, now, timeline| {
                // Merges first: what follows in the batch is about the user.
                for (from, into) in &aliases {
                    rt.merge_contact(from, into)?;
                }
                for c in &contacts {
                    rt.upsert_contact(c)?;
                }
                // A group's traits merge into what the contact has for that group; other
                // groups stay.
                for (id, group, traits) in groups {
                    let mut all = rt
                        .store
                        .contact(&id)?
                        .and_then(|c| c.profile.get("groups").cloned())
                        .and_then(|g| match g {
                            Value::Object(m) => Some(m),
                            _ => None,
                        })
                        .unwrap_or_default();
                    let entry = all
                        .entry(group)
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(m) = entry {
                        m.extend(traits);
                    } else {
                        *entry = Value::Object(traits);
                    }
                    let mut profile = Map::new();
                    profile.insert("groups".into(), Value::Object(all));
                    rt.upsert_contact(&Contact { id, profile })?;
                }
                rt.run_at(events, now, sink, timeline)?;
                rt.store.flush()?;
                Ok::<_, crate::runtime::RuntimeError>(())
            })
            .await?;
        r.map_err(super::api::store_err)?;
    }
    st.metrics.events_ingested.inc_by(n);
    Ok(())
}

async fn single(
    st: Shared,
    kind: &str,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let v = json_body(&st, body)?;
    let key = text(v.get("writeKey"));
    let scope = st.authorize_or(&headers, Scope::Ingest, key.as_deref())?;
    let item = convert(kind, &v, None, now_ms(), &st.config.server, scope).map_err(|e| {
        st.metrics.rejected(e.reason(), 1);
        e.into_api_error("invalid_call")
    })?;
    record(&st, vec![item]).await?;
    Ok((StatusCode::OK, Json(Success { success: true })).into_response())
}

/// Segment's single calls: each is `POST /v1/<type>`.
const CALLS: [&str; 6] = ["track", "identify", "page", "screen", "group", "alias"];

/// One handler per Segment call, `POST /v1/<type>`, each described for the API's document
/// (utoipa wants a function per operation).
macro_rules! segment_calls {
    ($($call:ident => $doc:literal,)*) => {$(
        #[doc = concat!("`POST /v1/", stringify!($call), "`: ", $doc)]
        #[utoipa::path(
            post,
            path = concat!("/v1/", stringify!($call)),
            tag = tags::SEGMENT,
            security(("basic" = []), ("bearer" = [])),
            request_body(content = SegmentCall, description = concat!("A Segment `", stringify!($call), "` call")),
            responses(
                (status = 200, description = "Recorded", body = Success),
                (status = 400, description = "Invalid", body = ErrorBody),
            )
        )]
        pub async fn $call(
            State(st): State<Shared>,
            headers: HeaderMap,
            body: Result<Bytes, BytesRejection>,
        ) -> Result<Response, ApiError> {
            single(st, stringify!($call), headers, body).await
        }
    )*};
}

segment_calls! {
    track => "Segment's `track`: an event of type `event` with its `properties`.",
    identify => "Segment's `identify`: merges `traits` into the contact's profile.",
    page => "Segment's `page`: a `page` event, `name` in its properties.",
    screen => "Segment's `screen`: a `screen` event, `name` in its properties.",
    group => "Segment's `group`: merges `traits` into the profile's `groups.{groupId}`.",
    alias => "Segment's `alias`: merges the `previousId` contact into `userId`.",
}

/// `POST /v1/batch`: `{"batch": [calls…], "context"?: {…}}`; per-item results, good ones kept.
#[utoipa::path(
    post,
    path = "/v1/batch",
    tag = tags::SEGMENT,
    security(("basic" = []), ("bearer" = [])),
    request_body(content = SegmentBatch, description = "Segment calls, each with its `type`"),
    responses(
        (status = 200, description = "All kept", body = BatchAnswer),
        (status = 207, description = "Some kept, some refused", body = BatchAnswer),
        (status = 400, description = "Invalid: the error, or, when every call was refused, a batch's answer", body = ErrorBody),
    )
)]
pub async fn batch(
    st: State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    batch_calls(st, headers, body).await
}

/// `POST /v1/import`: Segment's older name for `/v1/batch`.
#[utoipa::path(
    post,
    path = "/v1/import",
    tag = tags::SEGMENT,
    security(("basic" = []), ("bearer" = [])),
    request_body(content = SegmentBatch, description = "Segment calls, each with its `type`"),
    responses(
        (status = 200, description = "All kept", body = BatchAnswer),
        (status = 207, description = "Some kept, some refused", body = BatchAnswer),
        (status = 400, description = "Invalid: the error, or, when every call was refused, a batch's answer", body = ErrorBody),
    )
)]
pub async fn import(
    st: State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    batch_calls(st, headers, body).await
}

/// A batch's calls: converted one by one, good ones kept.
async fn batch_calls(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let v = json_body(&st, body)?;
    let key = text(v.get("writeKey"));
    let scope = st.authorize_or(&headers, Scope::Ingest, key.as_deref())?;
    let Some(Value::Array(calls)) = v.get("batch") else {
        return Err(ApiError::bad_request(
            "invalid_batch",
            "a batch is {\"batch\": [calls…]}",
        ));
    };
    let limits = &st.config.server;
    check_batch_len(calls.len(), limits)?;
    let now = now_ms();
    let batch_context = v.get("context");
    let mut items = Vec::new();
    let mut results = Vec::new();
    for (i, call) in calls.iter().enumerate() {
        let kind = call.get("type").and_then(Value::as_str).unwrap_or("");
        match convert(kind, call, batch_context, now, limits, scope) {
            Ok(item) => {
                items.push(item);
                results.push(ItemResult::ok(i));
            }
            Err(e) => results.push(ItemResult::refused_for(i, e)),
        }
    }
    let accepted = items.len();
    super::api::note_refusals(&st, "Segment batch", &results);
    if accepted > 0 {
        record(&st, items).await?;
    }
    let success = accepted == results.len();
    Ok(batch_response(&results, accepted, Some(success)))
}
