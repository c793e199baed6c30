//! The one HTTP client of SMS, push and webhooks (reqwest over rustls), and how responses
//! and errors become attempts: 2xx sent; 408, 425, 429 and 5xx retried (honouring
//! `Retry-After`); other statuses failed; timeouts and connection errors retried.

use super::Attempt;
use serde_json::{Map, Value};
use std::time::{Duration, SystemTime};

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
            let h = resp.headers();
            let text = |name| {
                h.get(name)
                    .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            };
            let retry_after = text(reqwest::header::RETRY_AFTER)
                .and_then(|v| retry_after(v, text(reqwest::header::DATE), SystemTime::now()));
            let body = resp.text().await.unwrap_or_default();
            let json = serde_json::from_str::<Value>(&body).ok();
            (classify(what, status, &body, retry_after), json)
        }
        Err(e) => (classify_error(what, &e), None),
    }
}

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds, or an HTTP-date, counted from the
/// response's `Date` when it has one (the server's clock, so skew does not matter), else
/// from `now`. A date in the past is no wait; garbage is ignored.
pub fn retry_after(value: &str, date: Option<&str>, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    let from = date
        .and_then(|d| httpdate::parse_http_date(d.trim()).ok())
        .unwrap_or(now);
    Some(at.duration_since(from).unwrap_or(Duration::ZERO))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = httpdate::parse_http_date("Fri, 04 Dec 2026 07:00:00 GMT").unwrap();
        assert_eq!(
            retry_after(" 120 ", None, now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after("Fri, 04 Dec 2026 07:02:00 GMT", None, now),
            Some(Duration::from_secs(120))
        );
        // From the response's Date, whatever our clock says.
        assert_eq!(
            retry_after(
                "Fri, 04 Dec 2026 08:00:30 GMT",
                Some("Fri, 04 Dec 2026 08:00:00 GMT"),
                now
            ),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after("Fri, 04 Dec 2026 06:00:00 GMT", None, now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", None, now), None);
    }
}
