//! The web console (`server.console`, on by default): pages where a team sees its journeys
//! run, served by the daemon on its own port. Server-rendered HTML (minijinja templates
//! embedded in the binary), a little plain JavaScript, pictures as SVG made here.
//!
//! Sign-in takes a `read` or `admin` token and sets a session cookie (`journey_console`:
//! scope, expiry and a nonce, signed with the daemon's secret; HttpOnly, SameSite=Strict).
//! Every page, asset and figure needs the session: pages answer a redirect to `/sign-in`,
//! the rest 401. Every form that changes something carries a CSRF token (an HMAC of the
//! session's nonce) that its POST checks; only `admin` sessions may change anything
//! (pause, resume, test sends). Every answer carries a Content-Security-Policy that allows
//! no inline script; message previews are served in a sandboxed iframe with a CSP of their
//! own (`sandbox`), so a message's script cannot run in the console's origin.
//!
//! One module per page group: `auth` (sign-in and out), `journeys` (the list, a journey's
//! graph with live counts from `runtime::figures`, its messages' figures, pause and resume),
//! `messages` (preview and test send), `contacts`, `segments`; `svg` draws the graph (with
//! layout-rs, from `compile::graph`'s dot) and the charts.

mod auth;
mod contacts;
mod journeys;
mod messages;
mod segments;
pub mod svg;

use crate::server::{AppState, Scope, Shared};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::OnceLock;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "journey_console";
/// How long a session lasts, in seconds.
pub const SESSION_SECONDS: i64 = 12 * 3600;

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// The console's routes, merged into the daemon's router when `server.console` is on.
pub fn routes() -> axum::Router<Shared> {
    axum::Router::new()
        .route("/", get(journeys::list))
        .route("/sign-in", get(auth::page).post(auth::sign_in))
        .route("/sign-out", post(auth::sign_out))
        .route("/assets/console.css", get(css))
        .route("/assets/console.js", get(js))
        .route("/journeys/{name}", get(journeys::page))
        .route("/journeys/{name}/counts", get(journeys::counts))
        .route("/journeys/{name}/graph.svg", get(journeys::graph))
        .route("/journeys/{name}/pause", post(journeys::pause))
        .route("/journeys/{name}/resume", post(journeys::resume))
        .route("/journeys/{name}/messages/{message}", get(messages::page))
        .route(
            "/journeys/{name}/messages/{message}/preview.html",
            get(messages::frame),
        )
        .route(
            "/journeys/{name}/messages/{message}/test",
            post(messages::test_send),
        )
        .route("/contacts", get(contacts::search))
        .route("/contacts/{id}", get(contacts::page))
        .route("/segments", get(segments::list))
        .route("/segments/{name}", get(segments::page))
        .route("/segments/{name}/members.csv", get(segments::csv))
        .route("/trends", get(segments::trends))
}

/// A signed-in session.
#[derive(Debug, Clone)]
pub struct Session {
    pub scope: Scope,
    pub expires: i64,
    nonce: String,
    /// The fingerprint of the token signed in with (`credentials::fingerprint`): the
    /// session holds while the token is known with the same scope.
    pub token: String,
}

impl Session {
    pub fn is_admin(&self) -> bool {
        self.scope == Scope::Admin
    }
    /// The CSRF token of this session's forms.
    pub fn csrf(&self, secret: &[u8]) -> String {
        sign(secret, "csrf", &self.nonce)
    }
}

fn sign(secret: &[u8], purpose: &str, text: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(b"journey-console|");
    mac.update(purpose.as_bytes());
    mac.update(b"|");
    mac.update(text.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Constant-time comparison of two strings.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The cookie value of a new session, signed in with the token of fingerprint `token`.
pub fn session_cookie_value(secret: &[u8], scope: Scope, token: &str, now_secs: i64) -> String {
    let body = format!(
        "v1.{}.{}.{}.{token}",
        scope.as_str(),
        now_secs + SESSION_SECONDS,
        crate::store::credentials::random_hex(16)
    );
    let sig = sign(secret, "session", &body);
    format!("{body}.{sig}")
}

/// The session a cookie value carries, when its signature holds and it has not expired.
pub fn parse_session(secret: &[u8], value: &str, now_secs: i64) -> Option<Session> {
    let (body, sig) = value.rsplit_once('.')?;
    if !same(&sign(secret, "session", body), sig) {
        return None;
    }
    let mut parts = body.split('.');
    if parts.next()? != "v1" {
        return None;
    }
    let scope = match parts.next()? {
        "read" => Scope::Read,
        "admin" => Scope::Admin,
        _ => return None,
    };
    let expires: i64 = parts.next()?.parse().ok()?;
    let nonce = parts.next()?.to_string();
    let token = parts.next()?.to_string();
    if parts.next().is_some() || expires <= now_secs {
        return None;
    }
    Some(Session {
        scope,
        expires,
        nonce,
        token,
    })
}

fn now_secs() -> i64 {
    crate::server::now_ms() / 1000
}

/// A cookie of the request, by name.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The request's session, if it has a valid one.
pub fn session(st: &AppState, headers: &HeaderMap) -> Option<Session> {
    let s = parse_session(&st.secret, cookie(headers, SESSION_COOKIE)?, now_secs())?;
    // The token signed in with must still be known, with the same scope: revoking a token
    // ends its sessions (within the token store's few seconds of trust).
    (st.token_scope_by_fingerprint(&s.token) == Some(s.scope)).then_some(s)
}

/// Why a request is not answered.
pub enum Refusal {
    /// No session: pages go to the sign-in page.
    SignIn(String),
    /// No session, for what is not a page (assets, figures).
    Unauthorized,
    /// A session whose scope does not allow it, or a form without its CSRF token.
    Forbidden(&'static str),
    NotFound(String),
    Error(StatusCode, String),
}

impl From<crate::server::ApiError> for Refusal {
    fn from(e: crate::server::ApiError) -> Self {
        if e.status == StatusCode::NOT_FOUND {
            Refusal::NotFound(e.message)
        } else {
            Refusal::Error(e.status, e.message)
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let r = match self {
            Refusal::SignIn(next) => {
                let to = format!(
                    "/sign-in?next={}",
                    percent_encoding::utf8_percent_encode(
                        &next,
                        percent_encoding::NON_ALPHANUMERIC
                    )
                );
                let mut r = StatusCode::SEE_OTHER.into_response();
                r.headers_mut().insert(
                    header::LOCATION,
                    HeaderValue::from_str(&to).unwrap_or(HeaderValue::from_static("/sign-in")),
                );
                r
            }
            Refusal::Unauthorized => {
                (StatusCode::UNAUTHORIZED, "sign in first: /sign-in\n").into_response()
            }
            Refusal::Forbidden(why) => error_page(StatusCode::FORBIDDEN, why),
            Refusal::NotFound(why) => error_page(StatusCode::NOT_FOUND, &why),
            Refusal::Error(status, why) => error_page(status, &why),
        };
        secured(r)
    }
}

fn error_page(status: StatusCode, why: &str) -> Response {
    let html = render(
        "error.html",
        minijinja::context! { title => status.canonical_reason().unwrap_or("Error"), message => why },
    );
    (status, Html(html)).into_response()
}

/// A page's session, or the way to the sign-in page.
pub fn page_session(st: &AppState, headers: &HeaderMap, path: &str) -> Result<Session, Refusal> {
    session(st, headers).ok_or_else(|| Refusal::SignIn(path.to_string()))
}

/// The session of what is not a page, or 401.
pub fn data_session(st: &AppState, headers: &HeaderMap) -> Result<Session, Refusal> {
    session(st, headers).ok_or(Refusal::Unauthorized)
}

/// A form's session: signed in as admin, with the form's CSRF token.
pub fn form_session(st: &AppState, headers: &HeaderMap, csrf: &str) -> Result<Session, Refusal> {
    let s = data_session(st, headers)?;
    if !same(&s.csrf(&st.secret), csrf) {
        return Err(Refusal::Forbidden(
            "the form's CSRF token is missing or wrong: reload the page and try again",
        ));
    }
    if !s.is_admin() {
        return Err(Refusal::Forbidden(
            "this session has scope `read`: sign in with an admin token to change anything",
        ));
    }
    Ok(s)
}

/// The Content-Security-Policy of the console's pages: nothing inline, nothing from
/// elsewhere, no framing of the console.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The headers every console answer carries.
pub fn secured(mut r: Response) -> Response {
    let h = r.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// An HTML answer.
pub struct Html(pub String);

impl IntoResponse for Html {
    fn into_response(self) -> Response {
        secured(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], self.0).into_response())
    }
}

/// A 303 to `to` (after a form).
pub fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    secured(r)
}

fn templates() -> &'static minijinja::Environment<'static> {
    static ENV: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        for (name, text) in [
            ("base.html", include_str!("templates/base.html")),
            ("error.html", include_str!("templates/error.html")),
            ("sign_in.html", include_str!("templates/sign_in.html")),
            ("journeys.html", include_str!("templates/journeys.html")),
            ("journey.html", include_str!("templates/journey.html")),
            ("message.html", include_str!("templates/message.html")),
            ("contacts.html", include_str!("templates/contacts.html")),
            ("contact.html", include_str!("templates/contact.html")),
            ("segments.html", include_str!("templates/segments.html")),
            ("segment.html", include_str!("templates/segment.html")),
            ("trends.html", include_str!("templates/trends.html")),
        ] {
            env.add_template(name, text)
                .expect("the console's templates parse");
        }
        env
    })
}

/// Renders a template (autoescaped: `.html`).
pub fn render(name: &str, ctx: minijinja::Value) -> String {
    match templates().get_template(name).and_then(|t| t.render(ctx)) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("console template {name}: {e:#}");
            format!("<!doctype html><title>Error</title><p>the page could not be drawn: {name}</p>")
        }
    }
}

/// Any serializable value, for a template.
pub fn ser<T: serde::Serialize>(t: T) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(t))
}

/// What every signed-in page's layout reads.
pub fn chrome(st: &AppState, s: &Session, nav: &str) -> minijinja::Value {
    minijinja::context! {
        nav => nav,
        scope => s.scope.as_str(),
        admin => s.is_admin(),
        csrf => s.csrf(&st.secret),
    }
}

async fn css(
    axum::extract::State(st): axum::extract::State<Shared>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    data_session(&st, &headers)?;
    Ok(secured(
        ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response(),
    ))
}

async fn js(
    axum::extract::State(st): axum::extract::State<Shared>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    data_session(&st, &headers)?;
    Ok(secured(
        (
            [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
            JS,
        )
            .into_response(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_signed_and_expire() {
        let secret = b"secret";
        let v = session_cookie_value(secret, Scope::Read, "f00d", 1000);
        let s = parse_session(secret, &v, 1001).expect("valid");
        assert_eq!(s.scope, Scope::Read);
        assert!(parse_session(secret, &v, 1000 + SESSION_SECONDS).is_none());
        assert!(parse_session(b"other", &v, 1001).is_none());
        let forged = v.replacen("v1.read", "v1.admin", 1);
        assert!(parse_session(secret, &forged, 1001).is_none());
    }
}
