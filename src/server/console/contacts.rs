//! Contacts: search by id or email (`/contacts?q=`), and a contact's page (`/contacts/{id}`):
//! profile, consent, journeys with the step each instance is at, the timeline of events and
//! sends: the data of `GET /v1/contacts/{id}` (and `journey contacts show`).

use super::{chrome, page_session, Html, Refusal};
use crate::server::Shared;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// The most contacts a search by email lists.
const SEARCH_LIMIT: usize = 50;

#[derive(Deserialize, Default)]
pub struct Search {
    q: Option<String>,
}

/// `GET /contacts[?q=ID or EMAIL]`: an id that exists opens its page; else contacts whose
/// email is the text (case-insensitive), or contains it.
pub async fn search(
    State(st): State<Shared>,
    Query(q): Query<Search>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let s = page_session(&st, &headers, "/contacts")?;
    let text = q.q.unwrap_or_default().trim().to_string();
    let mut found: Vec<(String, String)> = Vec::new();
    if !text.is_empty() {
        let store = st.store.clone();
        let t = text.clone();
        let (exact, matches) = tokio::task::spawn_blocking(move || {
            let exact = store.contact(&t).ok().flatten().is_some();
            let needle = t.to_lowercase();
            let mut out = Vec::new();
            if !exact {
                for c in store.contacts().flatten() {
                    let email = c
                        .profile
                        .get("email")
                        .and_then(|v| v.as_str())
                        .unwrap_or("")
                        .to_string();
                    if !email.is_empty() && email.to_lowercase().contains(&needle) {
                        out.push((c.id, email));
                        if out.len() >= SEARCH_LIMIT {
                            break;
                        }
                    }
                }
            }
            (exact, out)
        })
        .await
        .unwrap_or((false, Vec::new()));
        if exact {
            let to = format!(
                "/contacts/{}",
                percent_encoding::utf8_percent_encode(&text, percent_encoding::NON_ALPHANUMERIC)
            );
            return Ok(super::see_other(&to));
        }
        found = matches;
    }
    Ok(Html(super::render(
        "contacts.html",
        minijinja::context! { page => chrome(&st, &s, "contacts"), q => text, found => super::ser(found) },
    ))
    .into_response())
}

/// `GET /contacts/{id}`.
pub async fn page(
    State(st): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let s = page_session(&st, &headers, &format!("/contacts/{id}"))?;
    let view = crate::server::contact_view(&st, id.clone()).await?;
    let view = serde_json::to_value(&view).unwrap_or_default();
    // Consent: the profile's subscription fields and the events that changed them.
    let mut consent: Vec<(String, String)> = view["profile"]
        .as_object()
        .map(|p| {
            p.iter()
                .filter(|(k, _)| {
                    k.contains("subscri") || k.contains("consent") || k.contains("unsubscribed")
                })
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    // The consent in effect, as the engine reads it before a send: each topic's answer,
    // and the addresses that bounced or complained (from the contact's events).
    if let Some(profile) = view["profile"].as_object().cloned() {
        use crate::engine::consent::{topic_consent, ADDRESS};
        let contact = crate::engine::Contact {
            id: id.clone(),
            profile: profile.clone(),
        };
        for (name, t) in &st.program().topics {
            let yes = topic_consent(&contact, name, t.default_subscribed);
            consent.push((
                format!("topic {name}"),
                if yes { "subscribed" } else { "not subscribed" }.into(),
            ));
        }
        let store = st.store.clone();
        let who = id.clone();
        let events = tokio::task::spawn_blocking(move || store.events_of(&who))
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_default();
        for e in &events {
            let what = match e.kind.as_str() {
                crate::engine::MESSAGE_BOUNCED | "bounced" => "bounced address",
                crate::engine::COMPLAINED => "complained",
                _ => continue,
            };
            if let Some(a) = e.properties.get(ADDRESS).and_then(|a| a.as_str()) {
                consent.push((what.into(), a.to_string()));
            }
        }
        // What the suppression list holds of its addresses: it outlives the profile (an
        // erasure keeps it), and no journey sends marketing past it.
        let store = st.store.clone();
        let found = tokio::task::spawn_blocking(move || store.suppression_of(&profile))
            .await
            .ok()
            .and_then(|r| r.ok())
            .flatten();
        if let Some(sup) = found.filter(|s| s.any()) {
            let why: Vec<&str> = [
                (sup.unsubscribed, "unsubscribed"),
                (sup.bounced, "bounced"),
                (sup.complained, "complained"),
            ]
            .into_iter()
            .filter_map(|(on, what)| on.then_some(what))
            .collect();
            consent.push(("suppression list".into(), why.join(", ")));
        }
    }
    let profile: Vec<(String, String)> = view["profile"]
        .as_object()
        .map(|p| p.iter().map(|(k, v)| (k.clone(), v.to_string())).collect())
        .unwrap_or_default();
    Ok(Html(super::render(
        "contact.html",
        minijinja::context! {
            page => chrome(&st, &s, "contacts"),
            contact => super::ser(&view),
            profile => super::ser(profile),
            consent => super::ser(consent),
        },
    ))
    .into_response())
}
