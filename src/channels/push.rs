//! Push: FCM HTTP v1 (one request per device token, bearer token), Web Push (RFC 8291 and
//! VAPID, one request per subscription), a JSON webhook, or, with no provider, a JSON-lines
//! file. Opens come back through the events API (`opened` with the message id).

use super::http;
use super::render::RenderedPush;
use super::sms::JsonLines;
use super::webpush::{Subscription, Vapid};
use super::Attempt;
use crate::config::PushProvider;
use crate::engine::SendJob;
use serde_json::{json, Map, Value};
use std::time::Duration;

const FCM: &str = "https://fcm.googleapis.com";

pub struct PushSender {
    pub provider: Option<PushProvider>,
    pub http: reqwest::Client,
    pub file: JsonLines,
    pub vapid: Option<Vapid>,
    /// How long a push service keeps an undelivered Web Push (its `TTL` header).
    pub ttl_seconds: u32,
}

/// What is left to do for one push across attempts: targets that succeeded or failed for
/// good are not tried again.
#[derive(Debug, Clone, Default)]
pub struct PushProgress {
    pub remaining: Vec<Value>,
    pub delivered: usize,
    pub errors: Vec<String>,
    /// Targets the push service answered 404 or 410: the subscription or token is gone,
    /// and is removed from the contact's `push_tokens` (through the live loop).
    pub gone: Vec<Value>,
    started: bool,
}

impl PushSender {
    pub async fn send(
        &self,
        job: &SendJob,
        p: &RenderedPush,
        progress: &mut PushProgress,
    ) -> Attempt {
        if !progress.started {
            progress.remaining = p.targets.clone();
            progress.started = true;
        }
        let timeout = Duration::from_secs(30);
        let data = {
            let mut d: Map<String, Value> = p
                .data
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            d.insert("message_id".into(), job.message_id.clone().into());
            d.insert("journey".into(), job.journey.clone().into());
            d.insert("message".into(), job.message.clone().into());
            d
        };
        match &self.provider {
            None => {
                let line = json!({
                    "at": chrono::Utc::now().to_rfc3339(),
                    "message_id": job.message_id,
                    "journey": job.journey,
                    "message": job.message,
                    "step": job.step,
                    "contact": job.contact,
                    "to": p.targets,
                    "title": p.title,
                    "body": p.body,
                    "data": data,
                });
                self.file.append(line).await
            }
            Some(PushProvider::Webhook { url, headers }) => {
                let fields = json!({
                    "to": p.targets,
                    "title": p.title,
                    "body": p.body,
                    "data": data,
                });
                http::post_webhook(
                    &self.http,
                    url,
                    headers,
                    job,
                    fields,
                    timeout,
                    "push webhook",
                )
                .await
            }
            Some(PushProvider::Fcm {
                project_id,
                access_token,
                base_url,
            }) => {
                let base = base_url.as_deref().unwrap_or(FCM).trim_end_matches('/');
                let url = format!("{base}/v1/projects/{project_id}/messages:send");
                let mut notification = Map::new();
                if let Some(t) = &p.title {
                    notification.insert("title".into(), t.clone().into());
                }
                if let Some(b) = &p.body {
                    notification.insert("body".into(), b.clone().into());
                }
                self.each_target(progress, |target| {
                    let url = url.clone();
                    let body = json!({ "message": {
                        "token": target.as_str().unwrap_or_default(),
                        "notification": notification,
                        "data": data,
                    }});
                    let req = self
                        .http
                        .post(url)
                        .bearer_auth(access_token)
                        .header("Idempotency-Key", &job.message_id)
                        .json(&body)
                        .timeout(timeout);
                    async move {
                        if !target.is_string() {
                            return Attempt::failed("FCM: a push token must be a string");
                        }
                        http::send(req, "FCM").await.0
                    }
                })
                .await
            }
            Some(PushProvider::Webpush { .. }) => {
                let Some(vapid) = &self.vapid else {
                    return Attempt::failed("Web Push: no valid VAPID key configured");
                };
                let payload = json!({ "title": p.title, "body": p.body, "data": data }).to_string();
                let ttl = self.ttl_seconds;
                self.each_target(progress, |target| {
                    let prepared = Subscription::from_json(&target).and_then(|sub| {
                        let req = vapid.request(&sub, payload.as_bytes(), ttl)?;
                        let req = reqwest::Request::try_from(req).map_err(|e| e.to_string())?;
                        Ok(reqwest::RequestBuilder::from_parts(self.http.clone(), req)
                            .header("Urgency", "normal")
                            .header("Idempotency-Key", &job.message_id)
                            .timeout(timeout))
                    });
                    async move {
                        match prepared {
                            Ok(req) => http::send(req, "Web Push").await.0,
                            Err(e) => Attempt::failed(format!("Web Push: {e}")),
                        }
                    }
                })
                .await
            }
        }
    }

    /// Tries every remaining target; the ones that need another try stay.
    async fn each_target<F, Fut>(&self, progress: &mut PushProgress, mut one: F) -> Attempt
    where
        F: FnMut(Value) -> Fut,
        Fut: std::future::Future<Output = Attempt>,
    {
        let mut again = Vec::new();
        let mut last_retry = None;
        for target in std::mem::take(&mut progress.remaining) {
            match one(target.clone()).await {
                Attempt::Done(_) => progress.delivered += 1,
                Attempt::Failed(r, p)
                    if matches!(
                        p.get("status").and_then(Value::as_u64),
                        Some(404) | Some(410)
                    ) =>
                {
                    progress.gone.push(target);
                    progress.errors.push(r)
                }
                Attempt::Failed(r, _) | Attempt::Bounced(r) | Attempt::Uncertain(r) => {
                    progress.errors.push(r)
                }
                a @ Attempt::Retry { .. } => {
                    again.push(target);
                    last_retry = Some(a);
                }
            }
        }
        progress.remaining = again;
        if let Some(r) = last_retry {
            return r;
        }
        if progress.delivered > 0 {
            let mut props = Map::new();
            props.insert("delivered".into(), progress.delivered.into());
            if !progress.errors.is_empty() {
                props.insert("errors".into(), progress.errors.clone().into());
            }
            Attempt::Done(props)
        } else {
            Attempt::failed(progress.errors.join("; "))
        }
    }
}
