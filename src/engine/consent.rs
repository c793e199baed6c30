//! Consent: whether a send may go to a contact. Pure, like the rest of the engine: it reads
//! the contact's profile (`unsubscribed`, `subscriptions`, its addresses) and history
//! (bounces, complaints) as the runtime loaded them.
//!
//! - A marketing journey needs the absence of `unsubscribed: true`, consent to the journey's
//!   `topic` (the profile's `subscriptions.TOPIC`, else the topic's default) and, for SMS and
//!   push, to the channel-wide topic (`subscriptions.sms`, `subscriptions.push`).
//! - Every journey, transactional too, stays away from an address that hard-bounced or
//!   complained, until the profile's address changes.
//! - Webhooks are calls to other systems, not messages to the contact: never suppressed.

use super::model::{Contact, Event, COMPLAINED, MESSAGE_BOUNCED};
use crate::compile::ir::{JourneyIr, MessageIr, Program};
use crate::domain::Channel;
use serde_json::Value;

/// The profile key that holds per-topic consent: `subscriptions: { newsletter: false }`.
pub const SUBSCRIPTIONS: &str = "subscriptions";
/// The profile key that stops all marketing: `unsubscribed: true`.
pub const UNSUBSCRIBED: &str = "unsubscribed";
/// The property of a bounce or complaint that names the address it concerns.
pub const ADDRESS: &str = "address";

/// The profile key that holds a channel's address, for the channels that bounce.
pub fn address_key(channel: Channel) -> Option<&'static str> {
    match channel {
        Channel::Email => Some("email"),
        Channel::Sms => Some("phone"),
        Channel::Push | Channel::Webhook => None,
    }
}

/// A phone number as compared and hashed: its digits, with the leading `+` if it has one
/// (`+39 333 123-4567` is `+393331234567`).
pub fn normalize_phone(p: &str) -> String {
    let t = p.trim();
    let mut out = String::new();
    if t.starts_with('+') {
        out.push('+');
    }
    out.extend(t.chars().filter(char::is_ascii_digit));
    out
}

/// Addresses compare without case and surrounding space (`Ann@X.com ` is `ann@x.com`).
pub fn same_address(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// A yes or no as profiles hold it: a boolean, or the text a CSV import or another system
/// writes (`"true"`, `"false"`, `"yes"`, `"no"`, `"1"`, `"0"`, any case), or 1 and 0.
pub fn yes_or_no(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Some(true),
            "false" | "no" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// The contact's consent to a topic: `subscriptions.TOPIC` when it is a yes or a no, else
/// the default (`default_subscribed`).
pub fn topic_consent(contact: &Contact, topic: &str, default_subscribed: bool) -> bool {
    contact
        .profile
        .get(SUBSCRIPTIONS)
        .and_then(|s| s.get(topic))
        .and_then(yes_or_no)
        .unwrap_or(default_subscribed)
}

/// Whether the contact said no to all marketing (`unsubscribed: true`, or `"true"` from a
/// CSV import).
pub fn unsubscribed(contact: &Contact) -> bool {
    contact.profile.get(UNSUBSCRIBED).and_then(yes_or_no) == Some(true)
}

/// The topics of a contact's `subscriptions` that the program does not know (kept, but worth
/// a warning: a typo in an import means nobody asked).
pub fn unknown_topics(contact: &Contact, program: &Program) -> Vec<String> {
    let Some(Value::Object(subs)) = contact.profile.get(SUBSCRIPTIONS) else {
        return Vec::new();
    };
    subs.keys()
        .filter(|k| {
            !program.topics.contains_key(k.as_str())
                && !crate::compile::ir::CHANNEL_TOPICS.contains(&k.as_str())
        })
        .cloned()
        .collect()
}

/// The address a message goes to, as far as the engine can know it without rendering: a
/// constant `to`, else the profile's address for the channel.
fn address_of(msg: &MessageIr, contact: &Contact) -> Option<String> {
    if let Some(to) = msg.fields.get("to").filter(|t| !t.contains("{{")) {
        return Some(to.clone());
    }
    let key = address_key(msg.channel)?;
    contact
        .profile
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Why a send of `msg` in journey `j` must not go to the contact, if it must not:
/// `unsubscribed`, `topic NAME`, `bounced address` or `complained`.
pub fn suppression(
    program: &Program,
    j: &JourneyIr,
    msg: &MessageIr,
    contact: &Contact,
    events: &[Event],
) -> Option<String> {
    if msg.channel == Channel::Webhook {
        return None;
    }
    if let Some(addr) = address_of(msg, contact) {
        for e in events.iter().rev() {
            let reason = match e.kind.as_str() {
                MESSAGE_BOUNCED | "bounced" => "bounced address",
                COMPLAINED => "complained",
                _ => continue,
            };
            if e.channel.is_some_and(|c| c != msg.channel) {
                continue;
            }
            let hit = e
                .properties
                .get(ADDRESS)
                .and_then(Value::as_str)
                .is_some_and(|a| same_address(a, &addr));
            if hit {
                return Some(reason.into());
            }
        }
    }
    if j.transactional {
        return None;
    }
    if unsubscribed(contact) {
        return Some("unsubscribed".into());
    }
    let channel_topic = match msg.channel {
        Channel::Sms => Some("sms"),
        Channel::Push => Some("push"),
        _ => None,
    };
    if let Some(t) = channel_topic {
        let default = program.topics.get(t).is_none_or(|d| d.default_subscribed);
        if !topic_consent(contact, t, default) {
            return Some(format!("topic {t}"));
        }
    }
    if let Some(t) = &j.topic {
        if !topic_consent(contact, &t.name, t.default_subscribed) {
            return Some(format!("topic {}", t.name));
        }
    }
    None
}

/// Fills in the address a bounce or complaint concerns when its sender did not name it: the
/// contact's current address for the event's channel (email when it names none). So the
/// address stays suppressed after a bounce, and only that address.
pub fn name_the_address(e: &mut Event, contact: &Contact) {
    let kind = e.kind.as_str();
    if !(kind == MESSAGE_BOUNCED || kind == "bounced" || kind == COMPLAINED)
        || e.properties.contains_key(ADDRESS)
    {
        return;
    }
    let channel = e.channel.unwrap_or(Channel::Email);
    let Some(key) = address_key(channel) else {
        return;
    };
    if let Some(a) = contact.profile.get(key).and_then(Value::as_str) {
        e.properties
            .insert(ADDRESS.into(), Value::String(a.to_string()));
    }
}

/// Whether a bounce or complaint may need its address named (see `name_the_address`).
pub fn names_an_address(kind: &str) -> bool {
    kind == MESSAGE_BOUNCED || kind == "bounced" || kind == COMPLAINED
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn contact(profile: Value) -> Contact {
        Contact {
            id: "c".into(),
            profile: profile.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn consent_reads_booleans_and_the_text_of_imports() {
        // A CSV import writes every value as text: "true" must still stop marketing.
        for yes in [
            json!(true),
            json!("true"),
            json!("TRUE"),
            json!("yes"),
            json!("1"),
            json!(1),
        ] {
            assert!(
                unsubscribed(&contact(json!({ "unsubscribed": yes }))),
                "{yes}"
            );
        }
        for no in [
            json!(false),
            json!("false"),
            json!("no"),
            json!(0),
            json!("maybe"),
            json!(null),
        ] {
            assert!(
                !unsubscribed(&contact(json!({ "unsubscribed": no }))),
                "{no}"
            );
        }
        let c = contact(json!({"subscriptions": {"news": "false", "offers": "what"}}));
        assert!(!topic_consent(&c, "news", true));
        // Unreadable or missing: the topic's default.
        assert!(topic_consent(&c, "offers", true));
        assert!(!topic_consent(&c, "offers", false));
        assert!(!topic_consent(&c, "previews", false));
    }

    #[test]
    fn a_bounce_names_the_address_it_concerns() {
        let c = contact(json!({"email": "Ann@Example.com", "phone": "+39 1"}));
        let mut e = Event {
            kind: "bounced".into(),
            ..Event::default()
        };
        name_the_address(&mut e, &c);
        assert_eq!(e.properties[ADDRESS], "Ann@Example.com");
        let mut sms = Event {
            kind: MESSAGE_BOUNCED.into(),
            channel: Some(Channel::Sms),
            ..Event::default()
        };
        name_the_address(&mut sms, &c);
        assert_eq!(sms.properties[ADDRESS], "+39 1");
        // Named by its sender: kept.
        let mut named = Event {
            kind: COMPLAINED.into(),
            properties: serde_json::Map::from_iter([(ADDRESS.to_string(), json!("x@y"))]),
            ..Event::default()
        };
        name_the_address(&mut named, &c);
        assert_eq!(named.properties[ADDRESS], "x@y");
        assert!(same_address(" ann@example.COM", "Ann@Example.com "));
    }
}
