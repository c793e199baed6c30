//! `DELETE /v1/contacts/{id}` (erasure, GDPR article 17) and `GET /v1/contacts/{id}/export`
//! (access, article 15), both admin. The erasure runs on the live loop's thread between
//! batches (`Runtime::erase_contact`), so that the runtime forgets the contact too; the
//! export reads the store.

use super::api::store_err;
use super::openapi::{tags, ErrorBody};
use super::{now_ms, ApiError, Scope, Shared};
use crate::runtime::Erasure;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

/// The answer of an erasure.
#[derive(Serialize, ToSchema)]
pub struct Erased {
    /// The contact's id.
    erased: String,
    removed: Erasure,
}

/// An erasure handed to the daemon that holds the contact (several daemons share the
/// database): `DELETE /v1/contacts/{id}`'s 202.
#[derive(Serialize, ToSchema)]
pub struct ErasureHanded {
    /// The contact's id.
    erased: String,
    /// The contact's partition, whose holder carries the erasure out.
    partition: u16,
    /// What happens next.
    note: String,
}

/// Everything stored about a contact (`GET /v1/contacts/{id}/export`); times in RFC 3339.
#[derive(Serialize, ToSchema)]
pub struct ContactExport {
    #[schema(value_type = Vec<Object>)]
    events: Vec<Value>,
    exported_at: String,
    /// `journey-contact-export/1`, bumped if this document's shape changes.
    format: &'static str,
    id: String,
    /// Its journeys' instances, as stored.
    #[schema(value_type = Vec<Object>)]
    instances: Vec<Value>,
    /// Messages waiting to be sent to it.
    #[schema(value_type = Vec<Object>)]
    pending_sends: Vec<Value>,
    #[schema(value_type = Option<Object>)]
    profile: Option<Value>,
    segment_check: Option<String>,
    segments: Vec<String>,
    #[schema(value_type = Vec<Object>)]
    short_links: Vec<Value>,
}

/// The export's `format` field: bumped if the document's shape changes.
pub const EXPORT_FORMAT: &str = "journey-contact-export/1";

/// `DELETE /v1/contacts/{id}`: 200 with what was removed, 404 for an unknown contact.
#[utoipa::path(
    delete,
    path = "/v1/contacts/{id}",
    tag = tags::CONTACTS,
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The contact's id")),
    responses(
        (status = 200, description = "Erased: what was removed", body = Erased),
        (status = 202, description = "Handed to the daemon holding the contact's partition (several daemons share the database), which erases it within a second", body = ErasureHanded),
        (status = 404, description = "No such contact", body = ErrorBody),
    )
)]
pub async fn delete_contact(
    State(st): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Admin)?;
    let who = id.clone();
    let erased = st
        .control(move |rt, _, _, _| match rt.route_erasure(&who)? {
            Some(p) => Ok(Err(p)),
            None => rt.erase_contact(&who).map(Ok),
        })
        .await?
        .map_err(store_err)?;
    match erased {
        Err(partition) => Ok((
            StatusCode::ACCEPTED,
            Json(ErasureHanded {
                note: format!(
                    "contact '{id}' is in partition {partition}, which another daemon holds: the erasure is in that partition's inbox and is carried out there within a second"
                ),
                erased: id,
                partition,
            }),
        )
            .into_response()),
        Ok(None) => Err(ApiError::not_found(format!("no contact '{id}'"))),
        Ok(Some(removed)) => Ok(Json(Erased {
            erased: id,
            removed,
        })
        .into_response()),
    }
}

/// Everything stored about a contact as one JSON document, or None if nothing is.
pub fn export(
    store: &crate::store::Store,
    id: &str,
    now: crate::engine::Millis,
) -> crate::store::Result<Option<ContactExport>> {
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
    Ok(Some(ContactExport {
        format: EXPORT_FORMAT,
        exported_at: crate::runtime::fmt_time(now),
        id: id.to_string(),
        profile: contact.map(|c| Value::Object(c.profile)),
        events,
        instances: instances.iter().map(|i| json!(i)).collect(),
        pending_sends: pending.iter().map(|j| json!(j)).collect(),
        segments: store.segments_of(id)?,
        segment_check: store.segment_check(id)?.map(crate::runtime::fmt_time),
        short_links: links,
    }))
}

/// `GET /v1/contacts/{id}/export`: the document of `export`, 404 for an unknown contact.
#[utoipa::path(
    get,
    path = "/v1/contacts/{id}/export",
    tag = tags::CONTACTS,
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The contact's id")),
    responses(
        (status = 200, description = "Everything stored about the contact", body = ContactExport),
        (status = 404, description = "No such contact", body = ErrorBody),
    )
)]
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
