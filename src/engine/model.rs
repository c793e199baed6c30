//! The engine's data: contacts, events, journey instances, and the effects a step produces.
//! All of it is serde-serializable: the store keeps these values as they are.

use super::Millis;
use crate::compile::ir::StepId;
use crate::domain::Channel;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Event types the engine treats as engagement with a message it sent.
pub const ENGAGEMENT_TYPES: [&str; 5] =
    ["received", "opened", "clicked", "bounced", "unsubscribed"];
/// Recorded when a channel delivers a message; `received` counts these.
pub const MESSAGE_SENT: &str = "message.sent";
/// Recorded by the runtime when a channel reports at once that the recipient does not exist.
pub const MESSAGE_BOUNCED: &str = "message.bounced";
/// Recorded by the runtime when a channel gives up on a message.
pub const MESSAGE_FAILED: &str = "message.failed";
/// Recorded when a channel handed a message over whole and got no answer (an SMTP server
/// silent after the final `.`): it may or may not have been accepted.
pub const MESSAGE_UNCERTAIN: &str = "message.uncertain";
/// Recorded when a push service answered 404/410 for a device token or Web Push
/// subscription, which is then removed from the contact's `push_tokens`.
pub const PUSH_TOKEN_REMOVED: &str = "push_token.removed";
/// A property of `message.sent` when the provider reports delivery later (Kannel's
/// dlr-url, Twilio's status callback): the message was accepted, not yet received; the
/// `received` verb waits for the provider's `received` report.
pub const AWAITS_REPORT: &str = "awaits_report";
/// Whether a `message.sent` stands for a delivery (`received`): not while its step runs
/// (`pending`), not when a delivery report is to come.
pub fn sent_means_received(e: &Event) -> bool {
    e.kind == MESSAGE_SENT
        && ["pending", AWAITS_REPORT]
            .iter()
            .all(|p| e.properties.get(*p).and_then(Value::as_bool) != Some(true))
}
/// Recorded when a policy delays or skips a send.
pub const MESSAGE_CAPPED: &str = "message.capped";
/// Recorded when the engine does not send a message for want of consent, with the `reason`
/// (`unsubscribed`, `topic NAME`, `bounced address`, `complained`).
pub const MESSAGE_SUPPRESSED: &str = "message.suppressed";
/// A test send (`journey send-test`): recorded on the contact it was rendered for, counted
/// in no report, cap, audience, segment or condition (they count `message.sent`).
pub const MESSAGE_TEST: &str = "message.test";
/// Recorded when a contact changes a topic (preference page, SMS STOP/START), with `topic`
/// and `value`.
pub const SUBSCRIPTION_CHANGED: &str = "subscription.changed";
/// Recorded when a contact enters a journey in its holdout (`holdout N%`): it is sent
/// nothing by the journey, and the report compares its conversion with the rest.
pub const HOLDOUT: &str = "holdout";
/// Recorded when a computed value cannot be computed (`set contact.x = contact.name + 1`
/// with a name that is text), with the `step`, `field` and `reason`; the contact goes on.
pub const SET_FAILED: &str = "set.failed";
/// Recorded on the pseudo-contact `journey:NAME` when an experiment's winner is chosen, with
/// the `experiment`, the `winner`, the `metric` and each arm's `contacts`, `successes` and
/// `rate`: the choice is fixed from then on (restarts included).
pub const EXPERIMENT_DECIDED: &str = "experiment.decided";
/// A spam complaint about an address (forwarded from an email provider): suppresses it.
pub const COMPLAINED: &str = "complained";

/// Whether the engine records events of this type itself (sends and their outcomes,
/// engagement with what it sent, consent changes, delivery reports), so that an ingest
/// client may not post one: forged, it would count as engagement, stop a journey or stand
/// for a delivery. `engagement` tokens may post the types of `POSTABLE_ENGAGEMENT`.
pub fn is_reserved_event_type(kind: &str) -> bool {
    kind.starts_with("message.")
        || kind.starts_with("dlr")
        || matches!(
            kind,
            "clicked"
                | "opened"
                | "received"
                | "bounced"
                | "complained"
                | "unsubscribed"
                | "subscription.changed"
                | "holdout"
                | "set.failed"
                | "experiment.decided"
                | "push_token.removed"
        )
}

/// The reserved types an `engagement` token (or `admin`) may post: what an email
/// provider's webhooks report. Never a send's outcome (`message.*`): only the dispatcher
/// records those.
pub const POSTABLE_ENGAGEMENT: [&str; 4] = ["clicked", "opened", "bounced", "complained"];

/// Why a contact id is refused, if it is: empty, or holding a control character (NUL
/// among them), which no input path accepts.
pub fn contact_id_problem(id: &str) -> Option<String> {
    if id.trim().is_empty() {
        return Some("the contact id is empty".into());
    }
    id.chars().find(|c| c.is_control()).map(|c| {
        format!(
            "the contact id {:?} holds a control character (U+{:04X}); ids are printable text",
            id, c as u32
        )
    })
}

/// Why a profile's `timezone` value is refused, if it is: it must be an IANA zone name
/// (`Europe/Paris`), or null to clear it.
pub fn timezone_problem(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) if s.parse::<chrono_tz::Tz>().is_ok() => None,
        Value::String(s) => Some(format!(
            "timezone: unknown time zone '{s}' (an IANA name such as Europe/Paris)"
        )),
        other => Some(format!(
            "timezone must be an IANA zone name such as Europe/Paris, not {other}"
        )),
    }
}

#[cfg(test)]
mod input_tests {
    use super::*;

    #[test]
    fn the_engines_own_event_types_are_reserved() {
        for k in [
            "message.sent",
            "message.failed",
            "message.bounced",
            "message.uncertain",
            "message.capped",
            "message.suppressed",
            MESSAGE_TEST,
            "clicked",
            "opened",
            "received",
            "bounced",
            "complained",
            "unsubscribed",
            "subscription.changed",
            "dlr",
            "holdout",
            "set.failed",
            "push_token.removed",
        ] {
            assert!(is_reserved_event_type(k), "{k}");
        }
        for k in ["signup", "viewed", "page", "purchase", "messages", "click"] {
            assert!(!is_reserved_event_type(k), "{k}");
        }
        assert!(POSTABLE_ENGAGEMENT
            .iter()
            .all(|k| is_reserved_event_type(k)));
    }

    #[test]
    fn contact_ids_with_control_characters_are_refused() {
        assert_eq!(contact_id_problem("ann@example.com"), None);
        assert_eq!(contact_id_problem("Zoë 42"), None);
        for bad in ["a\0b", "\0", "a\nb", "tab\t", "\u{7f}", "c1\u{85}", " ", ""] {
            assert!(contact_id_problem(bad).is_some(), "{bad:?}");
        }
        assert!(contact_id_problem("a\0").unwrap().contains("U+0000"));
    }

    #[test]
    fn timezones_are_iana_names() {
        assert_eq!(timezone_problem(&Value::from("Europe/Paris")), None);
        assert_eq!(timezone_problem(&Value::Null), None);
        assert!(timezone_problem(&Value::from("Mars/Olympus"))
            .unwrap()
            .contains("Mars/Olympus"));
        assert!(timezone_problem(&Value::from(2)).is_some());
    }
}

/// A contact: an id and a free-form profile (`email`, `phone`, `timezone`, `lists`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct Contact {
    pub id: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub profile: Map<String, Value>,
}

impl Contact {
    pub fn field(&self, name: &str) -> Option<&Value> {
        if name == "id" {
            return None;
        }
        self.profile.get(name)
    }
    pub fn timezone(&self) -> Option<&str> {
        self.profile.get("timezone").and_then(Value::as_str)
    }
}

/// Something a contact did or that happened to it. Engagement events (`clicked`…) and
/// `message.sent` name the journey, message and link they concern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Event {
    /// The sender's idempotency id: an event with a known id is dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub contact: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub at: Millis,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub properties: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journey: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// The message instance an engagement concerns (`instance:step:n`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

impl Event {
    pub fn is_engagement(&self) -> bool {
        ENGAGEMENT_TYPES.contains(&self.kind.as_str()) || self.kind == MESSAGE_SENT
    }
    /// A property of the event as a condition sees it: `context`, message attributes for
    /// message events, else the free-form properties.
    pub fn attribute(&self, name: &str) -> Option<Value> {
        match name {
            "context" => self
                .context
                .clone()
                .map(Value::String)
                .or_else(|| self.properties.get(name).cloned()),
            "journey" if self.journey.is_some() => self.journey.clone().map(Value::String),
            "message" if self.message.is_some() => self.message.clone().map(Value::String),
            "link" if self.link.is_some() => self.link.clone().map(Value::String),
            "channel" if self.channel.is_some() => {
                self.channel.map(|c| Value::String(c.as_str().into()))
            }
            "type" => Some(Value::String(self.kind.clone())),
            _ => self.properties.get(name).cloned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Went past the last step or reached `end`.
    Completed,
    /// The goal event happened.
    Converted,
    /// The exit event happened.
    Exited,
    /// A step could not run (a runtime error, recorded in the timeline).
    Failed,
}

/// What an instance is doing at its current step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parked {
    /// Waiting for time (`wait`), an engagement (`check`) or an event (`wait for event`).
    Waiting,
    /// A send held by quiet hours or a policy cap; retried at `due`.
    Held,
}

/// One contact's passage through one journey version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub id: u64,
    pub journey: String,
    pub version: String,
    pub contact: String,
    /// The current step; None once ended.
    pub step: Option<StepId>,
    pub parked: Option<Parked>,
    pub ended: Option<EndReason>,
    pub entered_at: Millis,
    /// When the contact arrived at the current step.
    pub step_since: Millis,
    /// The pending timer, if any. A timer that fires with another due time is stale.
    pub due: Option<Millis>,
    /// The event that enrolled the contact, readable as `event.x` in templates and `if`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_event: Option<Event>,
    /// Step names passed, in order (capped, so a long loop cannot grow it without bound).
    pub path: Vec<String>,
    /// Sends of this instance: (message name, message id, time).
    pub sent: Vec<(String, String, Millis)>,
}

/// The most path entries an instance keeps.
pub const MAX_PATH: usize = 256;

impl Instance {
    pub fn is_active(&self) -> bool {
        self.ended.is_none()
    }
    pub fn last_sent(&self, message: &str) -> Option<&(String, String, Millis)> {
        self.sent.iter().rev().find(|(m, _, _)| m == message)
    }
}

/// A message to deliver: what the outbox holds until a channel has sent it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendJob {
    /// `instance:step:n`: the idempotency key of this delivery.
    pub message_id: String,
    pub instance: u64,
    pub journey: String,
    pub version: String,
    pub contact: String,
    pub message: String,
    pub step: String,
    pub channel: Channel,
    pub label: Option<String>,
    pub created_at: Millis,
}

/// What one line of a timeline says happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum Happening {
    Entered,
    Step {
        step: String,
    },
    Sent {
        message: String,
        channel: Channel,
    },
    Held {
        step: String,
        until: Millis,
        reason: String,
    },
    Skipped {
        message: String,
        policy: String,
    },
    Branched {
        step: String,
        to: String,
    },
    Set {
        field: String,
        value: Value,
    },
    Ended {
        reason: EndReason,
    },
    Migrated {
        from: String,
        to: String,
    },
    Error {
        step: String,
        error: String,
    },
    /// A send not made for want of consent (`message.suppressed`).
    Suppressed {
        message: String,
        reason: String,
    },
    /// A send not made because the contact is in the journey's holdout.
    Withheld {
        message: String,
        reason: String,
    },
}

/// One line of a timeline: `journey simulate` prints them, the store keeps them per instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: Millis,
    pub contact: String,
    pub journey: String,
    pub instance: u64,
    #[serde(flatten)]
    pub happening: Happening,
}

/// What a step asks the runtime to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Send(SendJob),
    SetField {
        field: String,
        value: Value,
    },
    /// A `message.capped` event to record.
    Capped(Event),
    Timeline(TimelineEntry),
    /// A `message.suppressed` event to record.
    Suppressed(Event),
    /// Another event the engine records on the contact (`holdout`, `set.failed`), already
    /// in the world's history.
    Record(Event),
}

// ---------------------------------------------------------------- tracked links

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// `GET /t/c/{token}`: record `clicked`, redirect to `url`.
    Click,
    /// `GET /t/o/{token}`: record `opened`, answer a 1×1 GIF.
    Open,
    /// `GET|POST /u/{token}`: record `unsubscribed`.
    Unsubscribe,
    /// A provider's delivery report (`GET /v1/dlr/kannel?t={token}&status=…`): see
    /// `channels::dlr`.
    Delivery,
}

/// What a tracking token or a short link code says: the store keeps the claims of short
/// codes, `channels::tracking` signs and verifies tokens carrying them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    #[serde(rename = "k")]
    pub kind: TokenKind,
    #[serde(rename = "c")]
    pub contact: String,
    /// The message id `instance:step[:n]` (the delivery's idempotency key).
    #[serde(rename = "m")]
    pub message_id: String,
    #[serde(rename = "j")]
    pub journey: String,
    /// The message's name in its journey.
    #[serde(rename = "n")]
    pub message: String,
    /// The link's name, for clicks.
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Where a click redirects: the link's rendered URL.
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}
