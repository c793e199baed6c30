//! Channels: delivering what the outbox holds (email over SMTP or into a Maildir, SMS and
//! push over provider HTTP APIs or into JSON-lines files, webhook steps), rendering
//! templates, and the signed tokens of tracked links, the open pixel and unsubscribe links.
//! The only module that names lettre and reqwest.
//!
//! `Dispatcher` is the daemon's `Sink`: it answers `Pending` at once, delivers on a tokio
//! runtime with per-channel concurrency and rate limits, retries transient failures with
//! backoff, and reports each outcome to the live loop as an `Input::Delivered`.

pub mod dispatch;
pub mod dlr;
pub mod email;
mod http;
pub mod preview;
pub mod push;
pub mod redact;
pub mod render;
pub mod sms;
pub mod smtp;
pub mod tracking;
pub mod webhook;
pub mod webpush;

pub use dispatch::{AttemptObserver, AttemptOutcome, Dispatcher, DispatcherOptions};

use serde_json::{Map, Value};
use std::time::Duration;

/// The channels' configuration, checked before anything is created: the VAPID key (inline
/// or from its file) and subject, SMTP credentials given in pairs. The daemon calls it before
/// it opens the store or prints a token, so a bad config leaves nothing behind.
pub fn check_config(c: &crate::config::Config) -> Result<(), String> {
    if let Some(crate::config::PushProvider::Webpush {
        vapid_private_key,
        vapid_subject,
        vapid_private_key_file,
    }) = &c.push.provider
    {
        webpush::Vapid::from_config(
            vapid_private_key,
            vapid_private_key_file.as_deref(),
            vapid_subject,
        )
        .map_err(|e| format!("push.provider: {e}"))?;
    }
    if let Some(s) = &c.email.smtp {
        if s.username.is_some() != s.password.is_some() {
            return Err("email.smtp: give both username and password, or neither".into());
        }
    }
    Ok(())
}

/// What one try at a delivery came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// Accepted; the properties go on the `message.sent` event (`status`, provider ids…).
    Done(Map<String, Value>),
    /// Worth trying again (SMTP 4xx, lost connections, HTTP 429/5xx, timeouts), after
    /// `after` if the provider said when.
    Retry {
        reason: String,
        after: Option<Duration>,
        properties: Map<String, Value>,
    },
    /// Given up at once: recorded as `message.failed`.
    Failed(String, Map<String, Value>),
    /// The recipient does not exist: recorded as `message.bounced`.
    Bounced(String),
    /// The message was handed over whole and no answer came (an SMTP server silent after the
    /// final `.`): it may have been accepted. Recorded as `message.uncertain`, never retried
    /// at once (that could send it twice), retried at most once after
    /// `retry.uncertain_retry_ms`.
    Uncertain(String),
}

impl Attempt {
    pub fn retry(reason: impl Into<String>) -> Attempt {
        Attempt::Retry {
            reason: reason.into(),
            after: None,
            properties: Map::new(),
        }
    }
    pub fn failed(reason: impl Into<String>) -> Attempt {
        Attempt::Failed(reason.into(), Map::new())
    }
}
