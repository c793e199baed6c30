//! Signing in and out. The sign-in form is protected from cross-site posts like every other
//! form: `GET /sign-in` sets a short-lived cookie with a random value (`journey_sign_in`)
//! and the form carries its HMAC, which `POST /sign-in` checks.

use super::{cookie, same, secured, sign, Html, Refusal, SESSION_COOKIE, SESSION_SECONDS};
use crate::server::{Scope, Shared};
use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::collections::HashMap;

const SIGN_IN_COOKIE: &str = "journey_sign_in";

/// The sign-in page's style, inline (the stylesheet needs a session), allowed by its hash.
const STYLE: &str = include_str!("assets/sign_in.css");

fn sign_in_csp() -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(STYLE));
    super::CSP.replace(
        "style-src 'self'",
        &format!("style-src 'self' 'sha256-{hash}'"),
    )
}

/// Only paths of this site, never `//elsewhere` (nor what a browser would read as that once
/// it drops tabs and newlines, or turns `\\` into `/`).
fn safe_next(next: Option<&String>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n
                    .chars()
                    .any(|c| c == '\\' || c.is_whitespace() || c.is_control()) =>
        {
            n.clone()
        }
        _ => "/".to_string(),
    }
}

fn cookie_attrs(st: &crate::server::AppState) -> &'static str {
    if st.config.public_url.starts_with("https://") {
        "; Path=/; HttpOnly; SameSite=Strict; Secure"
    } else {
        "; Path=/; HttpOnly; SameSite=Strict"
    }
}

fn form_page(st: &Shared, next: &str, error: Option<&str>, status: StatusCode) -> Response {
    let nonce = crate::store::credentials::random_hex(16);
    let html = super::render(
        "sign_in.html",
        minijinja::context! {
            style => STYLE,
            next => next,
            error => error,
            csrf => sign(&st.secret, "sign-in", &nonce),
        },
    );
    let mut r = (status, Html(html)).into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&sign_in_csp()) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{SIGN_IN_COOKIE}={nonce}; Max-Age=900{}",
        cookie_attrs(st)
    )) {
        h.append(header::SET_COOKIE, v);
    }
    r
}

/// `GET /sign-in[?next=PATH]`.
pub async fn page(State(st): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    form_page(&st, &safe_next(q.get("next")), None, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct SignIn {
    token: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /sign-in` (form: token, csrf, next): a `read` or `admin` token opens a session.
pub async fn sign_in(
    State(st): State<Shared>,
    headers: HeaderMap,
    Form(f): Form<SignIn>,
) -> Result<Response, Refusal> {
    let next = safe_next(f.next.as_ref());
    let expected = cookie(&headers, SIGN_IN_COOKIE).map(|n| sign(&st.secret, "sign-in", n));
    if !expected.is_some_and(|e| same(&e, &f.csrf)) {
        return Err(Refusal::Forbidden(
            "the sign-in form's CSRF token is missing or wrong: open the sign-in page again",
        ));
    }
    let scope = st.token_scope(f.token.trim()).map_err(Refusal::from)?;
    let scope = match scope {
        Some(s @ (Scope::Read | Scope::Admin)) => s,
        Some(_) => {
            return Ok(form_page(
                &st,
                &next,
                Some("this token cannot open the console: use a `read` or `admin` token"),
                StatusCode::FORBIDDEN,
            ))
        }
        None => {
            return Ok(form_page(
                &st,
                &next,
                Some("unknown token"),
                StatusCode::UNAUTHORIZED,
            ))
        }
    };
    let value = super::session_cookie_value(
        &st.secret,
        scope,
        &crate::store::credentials::fingerprint(f.token.trim()),
        super::now_secs(),
    );
    let mut r = super::see_other(&next);
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Max-Age={SESSION_SECONDS}{}",
        cookie_attrs(&st)
    )) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{SIGN_IN_COOKIE}=; Max-Age=0{}",
        cookie_attrs(&st)
    )) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    tracing::info!(scope = scope.as_str(), "console: signed in");
    Ok(r)
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// `POST /sign-out` (form: csrf): the session cookie is cleared.
pub async fn sign_out(
    State(st): State<Shared>,
    headers: HeaderMap,
    Form(f): Form<CsrfOnly>,
) -> Result<Response, Refusal> {
    let s = super::data_session(&st, &headers)?;
    if !same(&s.csrf(&st.secret), &f.csrf) {
        return Err(Refusal::Forbidden(
            "the form's CSRF token is missing or wrong",
        ));
    }
    let mut r = super::see_other("/sign-in");
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}=; Max-Age=0{}",
        cookie_attrs(&st)
    )) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(secured(r))
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn sign_in_goes_back_only_to_this_site() {
        let next = |s: &str| safe_next(Some(&s.to_string()));
        assert_eq!(next("/journeys/a"), "/journeys/a");
        for elsewhere in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "https://evil.example",
            "/\n/x",
        ] {
            assert_eq!(next(elsewhere), "/", "{elsewhere:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
