//! The preference page behind every message's unsubscribe link (`/u/{token}`, and the
//! `List-Unsubscribe` header). No login: the token is HMAC-signed with the daemon's secret,
//! so a forged or altered one is a 404 that changes nothing.
//!
//! - `GET` shows the contact's topics (titles from the `topic` definitions of the running
//!   program) with their state, in a plain HTML form that needs no JavaScript. It never
//!   changes anything: mail scanners follow links.
//! - `POST` changes: the form's choices (`action=save`), `action=unsubscribe_all`,
//!   `action=resubscribe`, or RFC 8058's one-click body (`List-Unsubscribe=One-Click`), which
//!   unsubscribes from the message's topic, or from all marketing when its journey has none.
//!
//! Each change is recorded once, as an event attributed to the message whose link was used:
//! `subscription.changed` (`topic`, `value`; `all: true` for a resubscription) or
//! `unsubscribed`. A POST that changes nothing records nothing. Changes run on the live
//! loop's thread (`Shared::control`), like every profile change of the daemon.

use super::{ApiError, Shared};
use crate::channels::tracking;
use crate::compile::ir::{Program, CHANNEL_TOPICS};
use crate::engine::consent::{topic_consent, unsubscribed, SUBSCRIPTIONS, UNSUBSCRIBED};
use crate::engine::{Claims, TokenKind};
use crate::engine::{Contact, Event, SUBSCRIPTION_CHANGED};
use crate::runtime::{Input, RuntimeError};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// One line of the page: a topic, its title and whether the contact receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicState {
    pub name: String,
    pub title: String,
    pub default_subscribed: bool,
    pub subscribed: bool,
}

/// What a POST asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Wish {
    /// RFC 8058: leave the message's topic (`Some`), or all marketing.
    OneClick(Option<String>),
    /// The form: the topics it showed, and those left ticked.
    Save {
        shown: Vec<String>,
        ticked: BTreeSet<String>,
    },
    UnsubscribeAll,
    Resubscribe,
}

/// A change a wish makes: a topic's new value, or `unsubscribed` set or cleared.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Topic(String, bool),
    All(bool),
}

fn verify(st: &Shared, token: &str) -> Result<Claims, ApiError> {
    match tracking::verify(&st.secret, token) {
        Ok(c) if c.kind == TokenKind::Unsubscribe => Ok(c),
        _ => Err(ApiError::not_found("unknown link")),
    }
}

/// The topics the page offers: the program's, plus the channel-wide ones for a contact who
/// has that channel (`phone`: SMS; `push_tokens`: push), in the order of their names.
pub fn topics_for(program: &Program, contact: &Contact) -> Vec<TopicState> {
    let mut out: Vec<TopicState> = program
        .topics
        .values()
        .map(|t| TopicState {
            name: t.name.clone(),
            title: t.title.clone().unwrap_or_else(|| t.name.replace('_', " ")),
            default_subscribed: t.default_subscribed,
            subscribed: false,
        })
        .collect();
    for name in CHANNEL_TOPICS {
        if program.topics.contains_key(name) {
            continue;
        }
        let has = match name {
            "sms" => contact.profile.get("phone").is_some_and(|p| !p.is_null()),
            _ => contact
                .profile
                .get("push_tokens")
                .is_some_and(|p| !p.is_null()),
        };
        if has {
            out.push(TopicState {
                name: name.to_string(),
                title: if name == "sms" {
                    "Text messages (SMS)".into()
                } else {
                    "Push notifications".into()
                },
                default_subscribed: true,
                subscribed: false,
            });
        }
    }
    for t in &mut out {
        t.subscribed = topic_consent(contact, &t.name, t.default_subscribed);
    }
    out
}

/// The changes `wish` makes to `contact`: only what differs from now.
pub fn changes(wish: &Wish, contact: &Contact, topics: &[TopicState]) -> Vec<Change> {
    let is_unsubscribed = unsubscribed(contact);
    match wish {
        Wish::OneClick(Some(t)) => {
            let default = topics
                .iter()
                .find(|s| &s.name == t)
                .is_none_or(|s| s.default_subscribed);
            if topic_consent(contact, t, default) {
                vec![Change::Topic(t.clone(), false)]
            } else {
                Vec::new()
            }
        }
        Wish::OneClick(None) | Wish::UnsubscribeAll => {
            if is_unsubscribed {
                Vec::new()
            } else {
                vec![Change::All(true)]
            }
        }
        Wish::Resubscribe => {
            if is_unsubscribed {
                vec![Change::All(false)]
            } else {
                Vec::new()
            }
        }
        Wish::Save { shown, ticked } => topics
            .iter()
            .filter(|t| shown.contains(&t.name))
            .filter(|t| t.subscribed != ticked.contains(&t.name))
            .map(|t| Change::Topic(t.name.clone(), !t.subscribed))
            .collect(),
    }
}

/// Reads a form body (or RFC 8058's one-click body) into a wish. `topic` is the message's.
pub fn parse_wish(body: &[u8], topic: Option<String>) -> Wish {
    let mut action: Option<String> = None;
    let mut shown = Vec::new();
    let mut ticked = BTreeSet::new();
    for (k, v) in form_urlencoded::parse(body) {
        match k.as_ref() {
            "action" => action = Some(v.into_owned()),
            "shown" => shown.push(v.into_owned()),
            "topic" => {
                ticked.insert(v.into_owned());
            }
            _ => {}
        }
    }
    match action.as_deref() {
        Some("save") => Wish::Save { shown, ticked },
        Some("unsubscribe_all") => Wish::UnsubscribeAll,
        Some("resubscribe") => Wish::Resubscribe,
        // `List-Unsubscribe=One-Click`, or a bare POST to the link: the one-click meaning.
        _ => Wish::OneClick(topic),
    }
}

/// The topic of the message the token was made for: its journey version's, so a message
/// keeps the topic it was sent under; the running journey's if the store lacks the version.
fn message_topic(st: &Shared, c: &Claims) -> Result<Option<String>, ApiError> {
    let instance = c
        .message_id
        .split(':')
        .next()
        .and_then(|i| i.parse::<u64>().ok());
    if let Some(id) = instance {
        let inst = st
            .store
            .instance(&c.contact, id)
            .map_err(super::api::store_err)?;
        if let Some(inst) = inst {
            if let Some(ir) = st
                .store
                .version(&inst.version)
                .map_err(super::api::store_err)?
            {
                return Ok(ir.topic.map(|t| t.name));
            }
        }
    }
    Ok(st
        .program()
        .journeys
        .get(&c.journey)
        .and_then(|j| j.topic.as_ref().map(|t| t.name.clone())))
}

fn contact_of(st: &Shared, c: &Claims) -> Result<Contact, ApiError> {
    st.store
        .contact(&c.contact)
        .map_err(super::api::store_err)?
        .ok_or_else(|| ApiError::not_found("unknown link"))
}

/// The preference page's form (`parse_wish` reads it); a post without `action` is the
/// one-click unsubscribe.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct PreferencesForm {
    /// `save`, `unsubscribe_all` or `resubscribe`.
    action: Option<String>,
    /// `save`: the topics the page showed.
    shown: Option<Vec<String>>,
    /// `save`: the topics ticked.
    topic: Option<Vec<String>>,
    /// RFC 8058's one-click unsubscribe: `One-Click`.
    #[schema(rename = "List-Unsubscribe")]
    list_unsubscribe: Option<String>,
}

/// `GET /u/{token}`: the page. Changes nothing.
#[utoipa::path(
    get,
    path = "/u/{token}",
    tag = super::openapi::tags::TRACKING,
    params(("token" = String, Path, description = "The unsubscribe link's signed token")),
    responses(
        (status = 200, description = "The preference page", content_type = "text/html", body = String),
        (status = 404, description = "Unknown or forged link", body = super::openapi::ErrorBody),
    )
)]
pub async fn page(
    State(st): State<Shared>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let c = verify(&st, &token)?;
    let contact = contact_of(&st, &c)?;
    let topics = topics_for(&st.program(), &contact);
    Ok(html(render(&contact, &topics, None)))
}

/// `POST /u/{token}`: a change from the form or a one-click unsubscribe (RFC 8058).
#[utoipa::path(
    post,
    path = "/u/{token}",
    tag = super::openapi::tags::TRACKING,
    params(("token" = String, Path, description = "The unsubscribe link's signed token")),
    request_body(content = PreferencesForm, content_type = "application/x-www-form-urlencoded", description = "The page's form, or `List-Unsubscribe=One-Click`"),
    responses(
        (status = 200, description = "The preference page, with what changed", content_type = "text/html", body = String),
        (status = 404, description = "Unknown or forged link", body = super::openapi::ErrorBody),
    )
)]
pub async fn change(
    State(st): State<Shared>,
    Path(token): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let c = verify(&st, &token)?;
    let body = super::body_bytes(&st, body)?;
    // Unknown contact: a 404 like a forged link (nothing to change, nothing to create).
    let stored = contact_of(&st, &c)?;
    if crate::channels::preview::is_test_message_id(&c.message_id) {
        let topics = topics_for(&st.program(), &stored);
        let notice = "This link is from a test send: nothing was changed.";
        return Ok(html(render(&stored, &topics, Some(notice))));
    }
    let wish = parse_wish(&body, message_topic(&st, &c)?);
    let program = st.program();
    let claims = c.clone();
    let result = st
        .control(move |rt, sink, now, timeline| {
            // Read and change on the loop's thread: no other change can come between.
            let Some(contact) = rt.store.contact(&claims.contact)? else {
                return Ok::<_, RuntimeError>(None);
            };
            let topics = topics_for(&program, &contact);
            let made = changes(&wish, &contact, &topics);
            if made.is_empty() {
                return Ok(Some((contact, made)));
            }
            let (profile, events) = apply(&contact, &made, Some(&claims), now);
            let updated = Contact {
                id: contact.id.clone(),
                profile,
            };
            rt.upsert_contact(&updated)?;
            let inputs = events.into_iter().map(Input::Event).collect();
            rt.run_at(inputs, now, sink, timeline)?;
            rt.store.flush()?;
            let after = rt.store.contact(&claims.contact)?.unwrap_or(updated);
            Ok(Some((after, made)))
        })
        .await?;
    let Some((contact, made)) = result.map_err(super::api::store_err)? else {
        return Err(ApiError::not_found("unknown link"));
    };
    for ch in &made {
        st.metrics.events_ingested.inc();
        st.metrics.tracked(match ch {
            Change::All(true) => "unsubscribed",
            _ => "subscription_changed",
        });
    }
    let topics = topics_for(&st.program(), &contact);
    let notice = notice(&made, &topics);
    Ok(html(render(&contact, &topics, Some(&notice))))
}

/// The profile keys a set of changes writes (merged into the stored profile by
/// `upsert_contact`), and the events that record them.
/// The events are attributed to the message whose link was used (`c`), if any.
pub(super) fn apply(
    contact: &Contact,
    made: &[Change],
    c: Option<&Claims>,
    now: crate::engine::Millis,
) -> (Map<String, Value>, Vec<Event>) {
    let mut profile = Map::new();
    let mut subs = match contact.profile.get(SUBSCRIPTIONS) {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    let mut events = Vec::new();
    let event = |kind: &str, properties: Map<String, Value>| Event {
        contact: contact.id.clone(),
        kind: kind.into(),
        at: now,
        journey: c.map(|c| c.journey.clone()),
        message: c.map(|c| c.message.clone()),
        message_id: c.map(|c| c.message_id.clone()),
        properties,
        ..Event::default()
    };
    for ch in made {
        match ch {
            Change::Topic(t, v) => {
                subs.insert(t.clone(), Value::Bool(*v));
                events.push(event(
                    SUBSCRIPTION_CHANGED,
                    Map::from_iter([
                        ("topic".to_string(), Value::String(t.clone())),
                        ("value".to_string(), Value::Bool(*v)),
                    ]),
                ));
            }
            Change::All(true) => {
                profile.insert(UNSUBSCRIBED.into(), Value::Bool(true));
                events.push(event("unsubscribed", Map::new()));
            }
            Change::All(false) => {
                profile.insert(UNSUBSCRIBED.into(), Value::Bool(false));
                events.push(event(
                    SUBSCRIPTION_CHANGED,
                    Map::from_iter([
                        ("all".to_string(), Value::Bool(true)),
                        ("value".to_string(), Value::Bool(true)),
                    ]),
                ));
            }
        }
    }
    if made.iter().any(|c| matches!(c, Change::Topic(..))) {
        profile.insert(SUBSCRIPTIONS.into(), Value::Object(subs));
    }
    (profile, events)
}

fn notice(made: &[Change], topics: &[TopicState]) -> String {
    if made.is_empty() {
        return "Nothing changed: your choices were already saved.".into();
    }
    let title = |t: &str| {
        topics
            .iter()
            .find(|s| s.name == t)
            .map_or_else(|| t.to_string(), |s| s.title.clone())
    };
    let parts: Vec<String> = made
        .iter()
        .map(|c| match c {
            Change::Topic(t, true) => format!("you are subscribed to {}", title(t)),
            Change::Topic(t, false) => format!("you are unsubscribed from {}", title(t)),
            Change::All(true) => "you are unsubscribed from all marketing messages".into(),
            Change::All(false) => "you are subscribed again".into(),
        })
        .collect();
    let mut s = format!("Saved: {}.", parts.join("; "));
    if let Some(first) = s.get_mut(7..8) {
        first.make_ascii_uppercase();
    }
    s
}

fn html(body: String) -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(body),
    )
        .into_response()
}

/// Text for HTML, in element content and in double-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page: plain HTML, one form, labels on every box, readable on a phone.
pub fn render(contact: &Contact, topics: &[TopicState], notice: Option<&str>) -> String {
    let all_off = unsubscribed(contact);
    let mut h = String::new();
    h.push_str(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Your subscriptions</title>\n\
         <style>body{font:1.1em/1.5 system-ui,sans-serif;max-width:34em;margin:0 auto;padding:1em}\
         fieldset{border:1px solid #999;padding:.5em 1em}label{display:block;padding:.4em 0}\
         input[type=checkbox]{width:1.3em;height:1.3em;vertical-align:middle;margin-right:.5em}\
         button{font:inherit;padding:.6em 1em;margin:.5em .5em 0 0}</style>\n\
         </head>\n<body>\n<main>\n<h1>Your subscriptions</h1>\n",
    );
    if let Some(n) = notice {
        h.push_str(&format!("<p role=\"status\">{}</p>\n", escape(n)));
    }
    // No `action`: the form posts back to the page's own URL, whatever prefix a proxy puts
    // in front of the daemon.
    h.push_str("<form method=\"post\">\n");
    if all_off {
        h.push_str(
            "<p>You are unsubscribed from all marketing messages. You still receive messages \
             about your orders and your account.</p>\n\
             <button type=\"submit\" name=\"action\" value=\"resubscribe\">Subscribe again</button>\n",
        );
    } else {
        if topics.is_empty() {
            h.push_str("<p>You receive our marketing messages.</p>\n");
        } else {
            h.push_str("<fieldset>\n<legend>Choose what you receive</legend>\n");
            for t in topics {
                let id = format!("topic-{}", escape(&t.name));
                h.push_str(&format!(
                    "<input type=\"hidden\" name=\"shown\" value=\"{name}\">\n\
                     <label for=\"{id}\"><input type=\"checkbox\" id=\"{id}\" name=\"topic\" value=\"{name}\"{checked}>{title}</label>\n",
                    name = escape(&t.name),
                    checked = if t.subscribed { " checked" } else { "" },
                    title = escape(&t.title),
                ));
            }
            h.push_str(
                "</fieldset>\n\
                 <button type=\"submit\" name=\"action\" value=\"save\">Save my choices</button>\n",
            );
        }
        h.push_str(
            "<button type=\"submit\" name=\"action\" value=\"unsubscribe_all\">Unsubscribe from all</button>\n",
        );
    }
    h.push_str("</form>\n</main>\n</body>\n</html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::ir::TopicIr;
    use serde_json::json;

    fn program() -> Program {
        let mut p = Program::default();
        for (name, title, default) in [
            ("newsletter", "The <b>news</b> & more", true),
            ("previews", "Previews", false),
        ] {
            p.topics.insert(
                name.into(),
                TopicIr {
                    name: name.into(),
                    title: Some(title.into()),
                    default_subscribed: default,
                },
            );
        }
        p
    }

    fn contact(profile: Value) -> Contact {
        Contact {
            id: "ann".into(),
            profile: profile.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn the_page_lists_topics_with_their_state_escaped() {
        let c = contact(json!({"phone": "+39", "subscriptions": {"newsletter": false}}));
        let topics = topics_for(&program(), &c);
        let names: Vec<(&str, bool)> = topics
            .iter()
            .map(|t| (t.name.as_str(), t.subscribed))
            .collect();
        assert_eq!(
            names,
            [("newsletter", false), ("previews", false), ("sms", true)]
        );
        let page = render(&c, &topics, Some("Saved <now>"));
        assert!(
            page.contains("The &lt;b&gt;news&lt;/b&gt; &amp; more"),
            "{page}"
        );
        assert!(page.contains("<form method=\"post\">"), "{page}");
        assert!(page.contains("Saved &lt;now&gt;"), "{page}");
        assert!(page.contains("<label for=\"topic-sms\">"), "{page}");
        assert!(page.contains("value=\"sms\" checked>"), "{page}");
        assert!(page.contains("value=\"newsletter\">"), "{page}");
        assert!(!page.contains("<script"), "{page}");
    }

    #[test]
    fn a_wish_changes_only_what_differs() {
        let p = program();
        let c = contact(json!({"subscriptions": {"previews": true}}));
        let topics = topics_for(&p, &c);
        // One click on a newsletter message: leave the newsletter, once.
        let one = parse_wish(b"List-Unsubscribe=One-Click", Some("newsletter".into()));
        assert_eq!(
            changes(&one, &c, &topics),
            [Change::Topic("newsletter".into(), false)]
        );
        let left = contact(json!({"subscriptions": {"newsletter": false}}));
        assert!(changes(&one, &left, &topics_for(&p, &left)).is_empty());
        // One click on a journey without topic: all marketing.
        let all = parse_wish(b"List-Unsubscribe=One-Click", None);
        assert_eq!(changes(&all, &c, &topics), [Change::All(true)]);
        // The form: untick previews, keep the newsletter ticked: one change.
        let save = parse_wish(
            b"action=save&shown=newsletter&shown=previews&topic=newsletter",
            None,
        );
        assert_eq!(
            changes(&save, &c, &topics),
            [Change::Topic("previews".into(), false)]
        );
        // A topic the form did not show is left alone, whatever the boxes say.
        let partial = parse_wish(b"action=save&shown=newsletter", None);
        assert_eq!(
            changes(&partial, &c, &topics),
            [Change::Topic("newsletter".into(), false)]
        );
        // Resubscribe only when unsubscribed.
        let re = parse_wish(b"action=resubscribe", None);
        assert!(changes(&re, &c, &topics).is_empty());
        let off = contact(json!({"unsubscribed": true}));
        assert_eq!(changes(&re, &off, &topics), [Change::All(false)]);
        assert!(changes(&all, &off, &topics).is_empty());
    }
}
