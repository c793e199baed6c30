//! The one HTTP client of SMS, push and webhooks (reqwest over rustls), and how responses
//! and errors become attempts: 2xx sent; 408, 425, 429 and 5xx retried (honouring
//! `Retry-After`); other statuses failed; timeouts and connection errors retried.

use super::Attempt;
use serde_json::{Map, Value};
use std::time::Duration;

/// The most response bytes kept in a reason.
const BODY_IN_REASON: usize = 300;

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("journey/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .expect("the HTTP client builds (rustls with ring)")
}

/// Sends a request; the response's status decides.
pub async fn send(req: reqwest::RequestBuilder, what: &str) -> (Attempt, Option<Value>) {
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = resp.text().await.unwrap_or_default();
            let json = serde_json::from_str::<Value>(&body).ok();
            (classify(what, status, &body, retry_after), json)
        }
        Err(e) => (classify_error(what, &e), None),
    }
}

pub fn classify(what: &str, status: u16, body: &str, retry_after: Option<Duration>) -> Attempt {
    let mut props = Map::new();
    props.insert("status".into(), status.into());
    if (200..300).contains(&status) {
        return Attempt::Done(props);
    }
    let mut snippet: String = body.trim().chars().take(BODY_IN_REASON).collect();
    if snippet.len() < body.trim().len() {
        snippet.push('…');
    }
    let reason = if snippet.is_empty() {
        format!("{what}: HTTP {status}")
    } else {
        format!("{what}: HTTP {status}: {snippet}")
    };
    if matches!(status, 408 | 425 | 429) || status >= 500 {
        Attempt::Retry {
            reason,
            after: retry_after,
            properties: props,
        }
    } else {
        Attempt::Failed(reason, props)
    }
}

pub fn classify_error(what: &str, e: &reqwest::Error) -> Attempt {
    if e.is_builder() {
        return Attempt::failed(format!("{what}: {e}"));
    }
    let mut text = format!("{what}: {e}");
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        text.push_str(&format!(": {s}"));
        src = s.source();
    }
    if e.is_timeout() {
        text = format!("{what}: timed out");
    }
    Attempt::retry(text)
}

/// A send posted as JSON to a configured webhook (the SMS and push `webhook` providers): the
/// send's identity (`message_id`, `journey`, `message`, `step`, `contact`) and the channel's
/// own `fields`, with the message id as `Idempotency-Key` and the configured headers.
pub async fn post_webhook(
    client: &reqwest::Client,
    url: &str,
    headers: &[(String, String)],
    job: &crate::engine::SendJob,
    fields: Value,
    timeout: Duration,
    what: &str,
) -> Attempt {
    let mut body = serde_json::json!({
        "message_id": job.message_id,
        "journey": job.journey,
        "message": job.message,
        "step": job.step,
        "contact": job.contact,
    });
    if let (Some(b), Value::Object(f)) = (body.as_object_mut(), fields) {
        b.extend(f);
    }
    let mut req = client
        .post(url)
        .header("Idempotency-Key", &job.message_id)
        .json(&body)
        .timeout(timeout);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    send(req, what).await.0
}
