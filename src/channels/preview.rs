//! The author's loop: a message rendered for one contact as it would be sent (`journey
//! preview`, `GET …/messages/{message}/preview`), and test sends (`journey send-test`,
//! `POST …/messages/{message}/test`) through the configured provider, subject prefixed
//! `[test]`, to a given address.
//!
//! Both go through the dispatcher's own path: `Renderer` (the same templates, partials,
//! tracked links, pixel and unsubscribe URL) and, for email, `email::build` (the MIME
//! message, its From and To) and `Mailer`. Nothing here writes the store: a preview keeps
//! no short links, and the caller records a test send's `message.test` event.

use super::email::{self, Mailer, DEFAULT_FROM};
use super::render::{RenderError, Renderer, Source};
use super::tracking::{verify, MemoryShortLinks};
use super::Attempt;
use crate::compile::ir::{JourneyIr, MessageIr, Program};
use crate::config::Config;
use crate::domain::Channel;
use crate::engine::{Contact, Event, Millis, SendJob, MESSAGE_TEST};
use serde::Serialize;
use std::collections::BTreeMap;

/// One declared link of a message: where it goes, and the tracked URL the message carries.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PreviewLink {
    pub name: Option<String>,
    pub target: String,
    pub url: String,
}

/// A message as it would be sent. Fields that a channel does not have are absent.
#[derive(Debug, Clone, PartialEq, Serialize, Default, utoipa::ToSchema)]
pub struct Preview {
    pub journey: String,
    pub version: String,
    pub message: String,
    pub channel: String,
    pub contact: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Pairs of a header's name and value (webhooks).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Vec<String>>)]
    pub headers: Vec<(String, String)>,
    pub links: Vec<PreviewLink>,
}

/// The journey and message `name` names: `message`, or `journey.message` (needed when
/// several journeys have a message of that name).
pub fn find_message<'a>(
    program: &'a Program,
    name: &str,
) -> Result<(&'a JourneyIr, &'a MessageIr), String> {
    if let Some((j, m)) = name.split_once('.') {
        let journey = program.journeys.get(j).ok_or_else(|| {
            format!(
                "no journey '{j}' (journeys: {})",
                names(program.journeys.keys())
            )
        })?;
        let message = journey.messages.get(m).ok_or_else(|| {
            format!(
                "journey '{j}' has no message '{m}' (messages: {})",
                names(journey.messages.keys())
            )
        })?;
        return Ok((journey, message));
    }
    let found: Vec<(&JourneyIr, &MessageIr)> = program
        .journeys
        .values()
        .filter_map(|j| j.messages.get(name).map(|m| (j, m)))
        .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => {
            let all: Vec<String> = program
                .journeys
                .values()
                .flat_map(|j| j.messages.keys().map(move |m| format!("{}.{m}", j.name)))
                .collect();
            Err(format!(
                "no message '{name}' (messages: {})",
                names(all.iter())
            ))
        }
        many => Err(format!(
            "message '{name}' is in several journeys: name one of {}",
            names(many.iter().map(|(j, _)| format!("{}.{name}", j.name)))
        )),
    }
}

fn names<T: std::fmt::Display>(it: impl Iterator<Item = T>) -> String {
    let v: Vec<String> = it.map(|x| x.to_string()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// The job a preview or test send renders: `id` is its message id (`preview:…`, `test:…`),
/// which its tracked links carry.
pub fn job(journey: &JourneyIr, message: &MessageIr, contact: &str, id: String) -> SendJob {
    SendJob {
        message_id: id,
        instance: 0,
        journey: journey.name.clone(),
        version: journey.content_hash(),
        contact: contact.to_string(),
        message: message.name.clone(),
        step: message.step.clone(),
        channel: message.channel,
        label: journey.label.clone(),
        created_at: 0,
    }
}

/// Renders `message` for `contact` (entered by `event`, if given) as the dispatcher would
/// (the config's default sender and public URL, the daemon's secret). An email is also
/// built into MIME, so an address that would not go out is an error here too.
pub fn render(
    renderer: &Renderer,
    secret: &[u8],
    config: &Config,
    job: &SendJob,
    message: &MessageIr,
    contact: &Contact,
    event: Option<&Event>,
) -> Result<Preview, RenderError> {
    let src = Source {
        job,
        message,
        contact,
        event,
    };
    let mut p = Preview {
        journey: job.journey.clone(),
        version: job.version.clone(),
        message: job.message.clone(),
        channel: job.channel.as_str().to_string(),
        contact: contact.id.clone(),
        ..Preview::default()
    };
    let target = |url: &str| -> PreviewLink {
        let claims = url.rsplit('/').next().and_then(|t| verify(secret, t).ok());
        PreviewLink {
            name: claims.as_ref().and_then(|c| c.link.clone()),
            target: claims.and_then(|c| c.url).unwrap_or_default(),
            url: url.to_string(),
        }
    };
    // Short links made while previewing are kept here, never in the store.
    let kept = MemoryShortLinks::default();
    let short = |codes: &[String]| -> Vec<PreviewLink> {
        codes
            .iter()
            .filter_map(|c| {
                kept.get(c).map(|claims| PreviewLink {
                    name: claims.link.clone(),
                    target: claims.url.clone().unwrap_or_default(),
                    url: format!("{}/s/{c}", renderer.public_url()),
                })
            })
            .collect()
    };
    match job.channel {
        Channel::Email => {
            let e = renderer.email(&src, None)?;
            email::build(&e, job, config.email.from.as_deref()).map_err(|why| {
                RenderError(format!(
                    "journey '{}', step '{}': {why}",
                    job.journey, job.step
                ))
            })?;
            p.from = Some(
                e.from
                    .clone()
                    .or(config.email.from.clone())
                    .unwrap_or_else(|| DEFAULT_FROM.into()),
            );
            p.links = e.links.values().map(|u| target(u)).collect();
            p.subject = Some(e.subject);
            p.reply_to = e.reply_to;
            p.to = Some(e.to);
            p.text = Some(e.text);
            p.html = e.html;
            p.headers = vec![(
                "List-Unsubscribe".into(),
                format!("<{}>", e.unsubscribe_url),
            )];
        }
        Channel::Sms => {
            let s = renderer.sms(&src, &kept)?;
            p.links = short(&s.short_links);
            p.to = Some(s.to);
            p.text = Some(s.text);
        }
        Channel::Push => {
            let push = renderer.push(&src, &kept)?;
            p.links = short(&push.short_links);
            p.title = push.title;
            p.text = push.body;
            p.data = push.data;
            p.to = Some(
                push.targets
                    .iter()
                    .map(|t| match t {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        Channel::Webhook => {
            let w = renderer.webhook(&src)?;
            p.method = Some(w.method);
            p.url = Some(w.url);
            p.headers = w.headers;
            p.text = w.body;
        }
    }
    Ok(p)
}

/// What a test send came to.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TestSent {
    pub journey: String,
    pub message: String,
    pub to: String,
    pub subject: String,
    pub message_id: String,
    /// The provider's answer (`smtp_response`, the Maildir file…).
    #[schema(value_type = Object)]
    pub provider: serde_json::Map<String, serde_json::Value>,
}

/// Why a test send did not go.
#[derive(Debug, Clone, PartialEq)]
pub enum TestSendError {
    /// The address it was to go to is not an email address.
    Address(String),
    /// The message cannot be sent as a test: not an email, or it does not render or build.
    Unsendable(String),
    /// The provider did not take it.
    NotSent(String),
}

impl std::fmt::Display for TestSendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TestSendError::Address(m)
            | TestSendError::Unsendable(m)
            | TestSendError::NotSent(m) => f.write_str(m),
        }
    }
}

/// Sends `message` rendered for `contact` to `to` through the configured provider: the
/// subject prefixed `[test]`, the contact's own address left alone. Email only.
pub async fn send_test(
    renderer: &Renderer,
    config: &Config,
    job: &SendJob,
    message: &MessageIr,
    contact: &Contact,
    event: Option<&Event>,
    to: &str,
) -> Result<TestSent, TestSendError> {
    if let Err(e) = email::check_address(to) {
        return Err(TestSendError::Address(format!(
            "'{to}' is not an email address: {e}"
        )));
    }
    if job.channel != Channel::Email {
        return Err(TestSendError::Unsendable(format!(
            "test sends are for email messages; '{}' is {} (use `journey preview` to see it)",
            job.message,
            job.channel.as_str()
        )));
    }
    let src = Source {
        job,
        message,
        contact,
        event,
    };
    let mut e = renderer
        .email(&src, Some(to))
        .map_err(|e| TestSendError::Unsendable(e.0))?;
    e.subject = format!("[test] {}", e.subject);
    e.to = to.to_string();
    let out =
        email::build(&e, job, config.email.from.as_deref()).map_err(TestSendError::Unsendable)?;
    let mailer = Mailer::new(config.email.smtp.as_ref(), &config.data_dir, 1)
        .map_err(TestSendError::NotSent)?;
    let attempt = mailer.send(&out, job).await;
    match attempt {
        Attempt::Done(provider) => Ok(TestSent {
            journey: job.journey.clone(),
            message: job.message.clone(),
            to: to.to_string(),
            subject: e.subject,
            message_id: job.message_id.clone(),
            provider,
        }),
        other => Err(TestSendError::NotSent(format!(
            "the test send to {to} did not go: {}",
            why(&other)
        ))),
    }
}

fn why(a: &Attempt) -> String {
    if let Attempt::Retry { reason, .. } = a {
        return format!("{reason} (a temporary failure: try again)");
    }
    if let Attempt::Failed(reason, _) = a {
        return reason.clone();
    }
    if let Attempt::Bounced(reason) = a {
        return format!("bounced: {reason}");
    }
    format!("{a:?}")
}

/// The event a test send records on the contact it was rendered for: `message.test`, a
/// reserved type that no report, cap, audience, segment or condition counts.
pub fn test_event(sent: &TestSent, contact: &str, at: Millis) -> Event {
    let mut properties = serde_json::Map::new();
    properties.insert("to".into(), sent.to.clone().into());
    properties.insert("subject".into(), sent.subject.clone().into());
    Event {
        contact: contact.to_string(),
        kind: MESSAGE_TEST.into(),
        at,
        properties,
        journey: Some(sent.journey.clone()),
        message: Some(sent.message.clone()),
        channel: Some(Channel::Email),
        message_id: Some(sent.message_id.clone()),
        ..Event::default()
    }
}

/// Whether a message id is a preview's or a test send's: the clicks, opens and unsubscribes
/// of its links record nothing (a test counts in no report, and changes no one's consent).
pub fn is_test_message_id(id: &str) -> bool {
    id.starts_with("test:") || id.starts_with("preview:")
}

/// A message id for a test send: unique, so the provider never takes it for a retry.
pub fn test_message_id(journey: &str, message: &str, at: Millis) -> String {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    let r: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("test:{journey}:{message}:{at}{r}")
}

/// Prints a preview for people (`text`), as the HTML part alone (`html`), or as JSON.
pub fn format(p: &Preview, how: &str) -> String {
    match how {
        "json" => serde_json::to_string_pretty(p).unwrap_or_default() + "\n",
        "html" => p.html.clone().unwrap_or_default(),
        _ => {
            let mut out = String::new();
            let mut line = |k: &str, v: &Option<String>| {
                if let Some(v) = v {
                    out += &format!("{k}: {v}\n");
                }
            };
            line(
                "Journey",
                &Some(format!("{} (version {})", p.journey, p.version)),
            );
            line("Message", &Some(format!("{} ({})", p.message, p.channel)));
            line("Contact", &Some(p.contact.clone()));
            line("From", &p.from);
            line("Reply-To", &p.reply_to);
            line("To", &p.to);
            line("Subject", &p.subject);
            line("Title", &p.title);
            line("Method", &p.method);
            line("URL", &p.url);
            for (k, v) in &p.headers {
                out += &format!("{k}: {v}\n");
            }
            for (k, v) in &p.data {
                out += &format!("data {k}: {v}\n");
            }
            if let Some(t) = &p.text {
                out += &format!("\n--- text ---\n{}\n", t.trim_end());
            }
            if let Some(h) = &p.html {
                out += &format!("\n--- html ---\n{}\n", h.trim_end());
            }
            if !p.links.is_empty() {
                out += "\n--- links ---\n";
                for l in &p.links {
                    out += &format!(
                        "{} -> {}\n  tracked as {}\n",
                        l.name.as_deref().unwrap_or("(unnamed)"),
                        l.target,
                        l.url
                    );
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_and_preview_ids_are_recognised_and_sends_are_not() {
        let id = test_message_id("j", "m", 5);
        assert!(id.starts_with("test:j:m:5") && is_test_message_id(&id));
        assert_ne!(id, test_message_id("j", "m", 5), "unique");
        assert!(is_test_message_id("preview:j:m"));
        assert!(!is_test_message_id("7:welcome"));
        assert!(!is_test_message_id("7:test:1"));
    }
}
