//! `DELETE /v1/contacts/{id}` (erasure, GDPR article 17) and `GET /v1/contacts/{id}/export`
//! (access, article 15), both admin. The erasure runs on the live loop's thread between
//! batches (`Runtime::erase_contact`), so that the runtime forgets the contact too; the
//! export reads the store.

use super::api::store_err;
use super::{now_ms, ApiError, Scope, Shared};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// The export's `format` field: bumped if the document's shape changes.
pub const EXPORT_FORMAT: &str = "journey-contact-export/1";

/// `DELETE /v1/contacts/{id}`: 200 with what was removed, 404 for an unknown contact.
pub async fn delete_contact(
    State(st): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Admin)?;
    let who = id.clone();
    let erased = st
        .control(move |rt, _, _, _| rt.erase_contact(&who))
        .await?
        .map_err(store_err)?;
    match erased {
        None => Err(ApiError::not_found(format!("no contact '{id}'"))),
        Some(e) => Ok(Json(json!({"erased": id, "removed": e})).into_response()),
    }
}

/// Everything stored about a contact as one JSON document, or None if nothing is.
pub fn export(
    store: &crate::store::Store,
    id: &str,
    now: crate::engine::Millis,
) -> crate::store::Result<Option<Value>> {
    let contact = store.contact(id)?;
    let events = store.events_of(id)?;
    let instances = store.instances_of(id)?;
    if contact.is_none() && events.is_empty() && instances.is_empty() {
        return Ok(None);
    }
    let pending: Vec<_> = store
        .outbox()?
        .into_iter()
        .filter(|j| j.contact == id)
        .collect();
    let events: Vec<Value> = events
        .iter()
        .map(|e| {
            let mut v = json!(e);
            v["at"] = json!(crate::runtime::fmt_time(e.at));
            v
        })
        .collect();
    let links: Vec<Value> = store
        .short_links_of(id)?
        .into_iter()
        .map(|(code, claims)| {
            let mut v = json!(claims);
            v["code"] = json!(code);
            v
        })
        .collect();
    Ok(Some(json!({
        "format": EXPORT_FORMAT,
        "exported_at": crate::runtime::fmt_time(now),
        "id": id,
        "profile": contact.map(|c| Value::Object(c.profile)),
        "events": events,
        "instances": instances,
        "pending_sends": pending,
        "segments": store.segments_of(id)?,
        "segment_check": store.segment_check(id)?.map(crate::runtime::fmt_time),
        "short_links": links,
    })))
}

/// `GET /v1/contacts/{id}/export`: the document of `export`, 404 for an unknown contact.
pub async fn export_contact(
    State(st): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Admin)?;
    let store = st.store.clone();
    let now = now_ms();
    let who = id.clone();
    let doc = tokio::task::spawn_blocking(move || export(&store, &who, now))
        .await
        .map_err(store_err)?
        .map_err(store_err)?;
    match doc {
        None => Err(ApiError::not_found(format!("no contact '{id}'"))),
        Some(d) => Ok(Json(d).into_response()),
    }
}
