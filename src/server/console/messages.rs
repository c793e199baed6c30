//! A message of a journey: its figures and clicks per link, a preview rendered for a chosen
//! contact (subject, text, and the HTML in a sandboxed iframe whose document carries a CSP
//! `sandbox` of its own), and a test send to an address (admin, CSRF).

use super::{chrome, data_session, form_session, page_session, see_other, Html, Refusal};
use crate::server::Shared;
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// What a message preview's document may do: nothing but show itself (no script, no
/// forms, its own opaque origin), with the images and styles a message has.
pub const PREVIEW_CSP: &str = "sandbox; default-src 'none'; img-src * data:; style-src 'unsafe-inline'; font-src * data:; frame-ancestors 'self'";

#[derive(Deserialize, Default)]
pub struct Params {
    contact: Option<String>,
    sent: Option<String>,
}

/// `GET /journeys/{name}/messages/{message}[?contact=ID]`.
pub async fn page(
    State(st): State<Shared>,
    Path((name, message)): Path<(String, String)>,
    Query(q): Query<Params>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let s = page_session(
        &st,
        &headers,
        &format!("/journeys/{name}/messages/{message}"),
    )?;
    let program = st.program();
    let Some(m) = program
        .journeys
        .get(&name)
        .and_then(|j| j.messages.get(&message))
    else {
        return Err(Refusal::NotFound(format!(
            "no message '{message}' in journey '{name}'"
        )));
    };
    let channel = m.channel.as_str();
    let f = st
        .figures()
        .journey(&name)
        .messages
        .get(&message)
        .cloned()
        .unwrap_or_default();
    let contact = q.contact.clone().filter(|c| !c.trim().is_empty());
    let (preview, error) = match &contact {
        Some(c) => match crate::server::render_for(&st, &name, &message, c).await {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e.message)),
        },
        None => (None, None),
    };
    // Clicks per link: the report's scan of this message's recipients.
    let store = st.store.clone();
    let (n2, m2) = (name.clone(), message.clone());
    let links = tokio::task::spawn_blocking(move || {
        crate::report::journey_report(&store, &n2, Some(&m2))
            .ok()
            .and_then(|r| r.messages.into_iter().next())
            .map(|m| m.links)
            .unwrap_or_default()
    })
    .await
    .unwrap_or_default();
    Ok(Html(super::render(
        "message.html",
        minijinja::context! {
            page => chrome(&st, &s, "journeys"),
            name => name,
            message => message,
            channel => channel,
            figures => super::ser(f),
            contact => contact,
            preview => super::ser(preview),
            error => error,
            links => super::ser(links),
            sent => q.sent,
        },
    ))
    .into_response())
}

/// `GET /journeys/{name}/messages/{message}/preview.html?contact=ID`: the HTML alone, for
/// the sandboxed iframe.
pub async fn frame(
    State(st): State<Shared>,
    Path((name, message)): Path<(String, String)>,
    Query(q): Query<Params>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    data_session(&st, &headers)?;
    let contact = q.contact.unwrap_or_default();
    let p = crate::server::render_for(&st, &name, &message, &contact).await?;
    let html = p.html.unwrap_or_else(|| {
        format!(
            "<pre>{}</pre>",
            super::svg::escape(p.text.as_deref().unwrap_or(""))
        )
    });
    let mut r = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        axum::http::HeaderValue::from_static(PREVIEW_CSP),
    );
    Ok(super::secured(r))
}

#[derive(Deserialize)]
pub struct TestForm {
    #[serde(default)]
    csrf: String,
    to: String,
    #[serde(default)]
    contact: Option<String>,
}

/// `POST /journeys/{name}/messages/{message}/test` (admin, CSRF; form: to, contact).
pub async fn test_send(
    State(st): State<Shared>,
    Path((name, message)): Path<(String, String)>,
    headers: HeaderMap,
    Form(f): Form<TestForm>,
) -> Result<Response, Refusal> {
    form_session(&st, &headers, &f.csrf)?;
    let contact = f.contact.as_deref().filter(|c| !c.trim().is_empty());
    let sent = crate::server::send_test(&st, &name, &message, f.to.trim(), contact).await?;
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let mut to = format!(
        "/journeys/{}/messages/{}?sent={}",
        enc(&name),
        enc(&message),
        enc(&sent.to)
    );
    if let Some(c) = contact {
        to.push_str(&format!("&contact={}", enc(c)));
    }
    Ok(see_other(&to))
}
