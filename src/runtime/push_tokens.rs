//! Push targets a push service says are gone (404/410), removed from the contact's
//! `push_tokens` on the live loop's thread: the channels report them as a control, never
//! writing the profile themselves.

use super::{Input, Result, Runtime, Sink, TimelineEntry};
use crate::domain::Channel;
use crate::engine::{Contact, Event, Millis, SendJob, PUSH_TOKEN_REMOVED};
use serde_json::{Map, Value};

/// What identifies a target: a Web Push subscription's endpoint, or the token itself.
fn target_key(v: &Value) -> Value {
    v.get("endpoint").cloned().unwrap_or_else(|| v.clone())
}

impl Runtime {
    /// Removes the `gone` targets from the contact's `push_tokens` and records a
    /// `push_token.removed` event (with the removed endpoints or tokens, and the status the
    /// service answered). Durable on return; the number removed (0: nothing to do).
    pub fn remove_push_targets(
        &mut self,
        job: &SendJob,
        gone: &[Value],
        now: Millis,
        sink: &mut dyn Sink,
        timeline: &mut Vec<TimelineEntry>,
    ) -> Result<usize> {
        let Some(c) = self.store.contact(&job.contact)? else {
            return Ok(0);
        };
        let Some(Value::Array(tokens)) = c.profile.get("push_tokens") else {
            return Ok(0);
        };
        let gone: Vec<Value> = gone.iter().map(target_key).collect();
        let (removed, kept): (Vec<Value>, Vec<Value>) = tokens
            .iter()
            .cloned()
            .partition(|t| gone.contains(&target_key(t)));
        if removed.is_empty() {
            return Ok(0);
        }
        let mut profile = Map::new();
        profile.insert("push_tokens".into(), Value::Array(kept));
        self.upsert_contact(&Contact {
            id: job.contact.clone(),
            profile,
        })?;
        let mut properties = Map::new();
        properties.insert(
            "removed".into(),
            Value::Array(removed.iter().map(target_key).collect()),
        );
        let event = Event {
            contact: job.contact.clone(),
            kind: PUSH_TOKEN_REMOVED.into(),
            at: now,
            properties,
            journey: Some(job.journey.clone()),
            message: Some(job.message.clone()),
            channel: Some(Channel::Push),
            message_id: Some(job.message_id.clone()),
            ..Event::default()
        };
        self.run_at(vec![Input::Event(event)], now, sink, timeline)?;
        self.store.flush()?;
        Ok(removed.len())
    }
}
