//! Webhook steps: the rendered method, URL, headers and body, with the step's timeout (or
//! `webhook.timeout_seconds`) and the message id as `Idempotency-Key`. The response status
//! is recorded as the `status` property of the `message.sent` (2xx) or `message.failed`
//! event, so a journey can branch on it (`wait for event "message.sent" where status == 201`).

use super::http;
use super::render::RenderedWebhook;
use super::Attempt;
use crate::engine::SendJob;
use std::time::Duration;

pub async fn call(
    client: &reqwest::Client,
    job: &SendJob,
    w: &RenderedWebhook,
    timeout: Duration,
) -> Attempt {
    let method = match reqwest::Method::from_bytes(w.method.as_bytes()) {
        Ok(m) => m,
        Err(_) => return Attempt::failed(format!("webhook: unknown method '{}'", w.method)),
    };
    let url = match reqwest::Url::parse(&w.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u,
        Ok(u) => {
            return Attempt::failed(format!("webhook: unsupported URL scheme '{}'", u.scheme()))
        }
        Err(e) => return Attempt::failed(format!("webhook: invalid URL '{}': {e}", w.url)),
    };
    let mut req = client
        .request(method, url)
        .header("Idempotency-Key", &job.message_id)
        .timeout(timeout);
    let has_type = w
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    for (k, v) in &w.headers {
        req = req.header(k, v);
    }
    if let Some(b) = &w.body {
        if !has_type {
            let t = b.trim_start();
            let ct = if t.starts_with('{') || t.starts_with('[') {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            };
            req = req.header("Content-Type", ct);
        }
        req = req.body(b.clone());
    }
    http::send(req, "webhook").await.0
}
