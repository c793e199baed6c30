//! SMS: Twilio's Messages.json API, Kannel's sendsms interface (with a `dlr-url` so delivery
//! reports come back as `received`), a JSON webhook, or, with no provider, a JSON-lines file.

use super::http;
use super::render::RenderedSms;
use super::Attempt;
use crate::config::SmsProvider;
use crate::engine::SendJob;
use serde_json::{json, Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Kannel `dlr-mask`: delivered to the phone (1), not delivered (2), rejected by the SMSC (16).
pub const KANNEL_DLR_MASK: u32 = 1 | 2 | 16;
/// The route of the daemon that takes Kannel's delivery reports.
pub const KANNEL_DLR_PATH: &str = "/v1/dlr/kannel";
/// The route of the daemon that takes Twilio's status callbacks.
pub const TWILIO_DLR_PATH: &str = "/v1/dlr/twilio";
const TWILIO: &str = "https://api.twilio.com";

pub struct SmsSender {
    pub provider: Option<SmsProvider>,
    pub http: reqwest::Client,
    pub file: JsonLines,
    pub public_url: String,
}

impl SmsSender {
    /// `delivery_token` signs the Kannel delivery report URL.
    pub async fn send(&self, job: &SendJob, sms: &RenderedSms, delivery_token: &str) -> Attempt {
        let timeout = Duration::from_secs(30);
        match &self.provider {
            None => {
                let line = json!({
                    "at": chrono::Utc::now().to_rfc3339(),
                    "message_id": job.message_id,
                    "journey": job.journey,
                    "message": job.message,
                    "step": job.step,
                    "contact": job.contact,
                    "to": sms.to,
                    "text": sms.text,
                });
                self.file.append(line).await
            }
            Some(SmsProvider::Twilio {
                account_sid,
                auth_token,
                from,
                base_url,
            }) => {
                let base = base_url.as_deref().unwrap_or(TWILIO).trim_end_matches('/');
                let url = format!("{base}/2010-04-01/Accounts/{account_sid}/Messages.json");
                let callback = format!("{}{TWILIO_DLR_PATH}?t={delivery_token}", self.public_url);
                let req = self
                    .http
                    .post(url)
                    .basic_auth(account_sid, Some(auth_token))
                    .header("Idempotency-Key", &job.message_id)
                    .header("I-Twilio-Idempotency-Token", &job.message_id)
                    .form(&[
                        ("To", sms.to.as_str()),
                        ("From", from),
                        ("Body", &sms.text),
                        ("StatusCallback", &callback),
                    ])
                    .timeout(timeout);
                let (mut a, body) = http::send(req, "Twilio").await;
                if let Attempt::Done(p) = &mut a {
                    if let Some(sid) = body.as_ref().and_then(|b| b.get("sid")).cloned() {
                        p.insert("provider_id".into(), sid);
                    }
                    p.insert(super::dlr::AWAITS_REPORT.into(), true.into());
                }
                a
            }
            Some(SmsProvider::Kannel {
                url,
                username,
                password,
                from,
            }) => {
                let dlr = format!(
                    "{}{KANNEL_DLR_PATH}?t={delivery_token}&status=%d",
                    self.public_url
                );
                let mut q: Vec<(&str, String)> = vec![
                    ("username", username.clone()),
                    ("password", password.clone()),
                    ("to", sms.to.clone()),
                    ("text", sms.text.clone()),
                    ("charset", "UTF-8".into()),
                    ("dlr-mask", KANNEL_DLR_MASK.to_string()),
                    ("dlr-url", dlr),
                ];
                if !sms.text.is_ascii() {
                    // UCS-2: accents and emoji survive.
                    q.push(("coding", "2".into()));
                }
                if let Some(f) = from {
                    q.push(("from", f.clone()));
                }
                let req = self.http.get(url).query(&q).timeout(timeout);
                let mut a = http::send(req, "Kannel").await.0;
                if let Attempt::Done(p) = &mut a {
                    p.insert(super::dlr::AWAITS_REPORT.into(), true.into());
                }
                a
            }
            Some(SmsProvider::Webhook { url, headers }) => {
                let fields = json!({
                    "to": sms.to,
                    "text": sms.text,
                });
                http::post_webhook(
                    &self.http,
                    url,
                    headers,
                    job,
                    fields,
                    timeout,
                    "SMS webhook",
                )
                .await
            }
        }
    }
}

/// An append-only JSON-lines file (the embedded SMS and push outboxes): one object a line,
/// written whole and flushed before the delivery counts.
#[derive(Clone)]
pub struct JsonLines {
    path: PathBuf,
    file: Arc<Mutex<Option<std::fs::File>>>,
}

impl JsonLines {
    pub fn new(path: &Path) -> JsonLines {
        JsonLines {
            path: path.to_path_buf(),
            file: Arc::new(Mutex::new(None)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn append(&self, line: Value) -> Attempt {
        let this = self.clone();
        let r = tokio::task::spawn_blocking(move || this.append_blocking(&line)).await;
        match r {
            Ok(Ok(())) => {
                let mut p = Map::new();
                p.insert("file".into(), self.path.display().to_string().into());
                Attempt::Done(p)
            }
            Ok(Err(e)) => Attempt::retry(format!("{}: {e}", self.path.display())),
            Err(e) => Attempt::retry(format!("{}: {e}", self.path.display())),
        }
    }

    fn append_blocking(&self, line: &Value) -> std::io::Result<()> {
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            *guard = Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        let f = guard.as_mut().expect("opened above");
        let mut bytes = serde_json::to_vec(line).expect("JSON serializes");
        bytes.push(b'\n');
        let r = f.write_all(&bytes).and_then(|_| f.sync_data());
        if r.is_err() {
            // Reopen next time.
            *guard = None;
        }
        r
    }
}
