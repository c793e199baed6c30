//! Merging an anonymous contact into a known one (Segment's `alias`), on the live loop's
//! thread between batches, in one batch: the anonymous contact's events and instances move
//! to the user (same times, ids and message ids), its profile is merged under the user's
//! (the user's values win), and every timer and outbox record that named it names the user.
//! Its short links stay (they resolve for the anonymous id, whose later events are taken to
//! the user by the runtime for as long as it runs).

use super::{segments, Input, Result, Runtime};
use crate::engine::Contact;
use crate::store::WriteBatch;

/// What a merge moved.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Merge {
    pub events: usize,
    pub instances: usize,
    pub timers: usize,
    pub pending_sends: usize,
}

impl Runtime {
    /// Merges contact `from` into `into`: None when the store knows nothing of `from` (or
    /// they are the same). Durable on return.
    pub fn merge_contact(&mut self, from: &str, into: &str) -> Result<Option<Merge>> {
        if from == into {
            return Ok(None);
        }
        let contact = self.store.contact(from)?;
        let events = self.store.events_of(from)?;
        let instances = self.store.instances_of(from)?;
        if contact.is_none() && events.is_empty() && instances.is_empty() {
            return Ok(None);
        }
        let mut report = Merge {
            events: events.len(),
            instances: instances.len(),
            ..Merge::default()
        };
        let mut batch = WriteBatch::default();
        // Out go the anonymous contact's keys (not its short links, which messages carry),
        // before the moved records go in (event dedupe ids are written again with them).
        let keys: Vec<Vec<u8>> = self
            .store
            .contact_keys(from)?
            .into_iter()
            .filter(|k| !matches!(k.first(), Some(b'l') | Some(b'd')))
            .collect();
        batch.del_keys(keys);

        let mut merged = contact.map(|c| c.profile).unwrap_or_default();
        if let Some(user) = self.store.contact(into)? {
            merged.extend(user.profile);
        }
        batch.put_contact(&Contact {
            id: into.to_string(),
            profile: merged,
        });
        for mut e in events {
            e.contact = into.to_string();
            let seq = self.store.next_id()?;
            batch.put_event(&e, seq);
        }
        for mut i in instances {
            i.contact = into.to_string();
            batch.put_instance(&i);
        }

        // Timers and sends that name it, in memory and on disk, name the user.
        for w in self
            .timers
            .entries
            .values_mut()
            .filter(|w| w.contact == from)
        {
            w.contact = into.to_string();
        }
        for h in self.holds.held.iter_mut().filter(|h| h.contact == from) {
            h.contact = into.to_string();
        }
        for record in self
            .store
            .timer_records(crate::engine::Millis::MIN, crate::engine::Millis::MAX)?
        {
            if !record.timers.iter().any(|t| t.contact == from) {
                continue;
            }
            let timers: Vec<_> = record
                .timers
                .into_iter()
                .map(|mut t| {
                    if t.contact == from {
                        report.timers += 1;
                        t.contact = into.to_string();
                    }
                    t
                })
                .collect();
            batch.put_timers(record.bucket, record.id, &timers);
        }
        for (record, jobs) in self.store.outbox_records()? {
            if !jobs.iter().any(|j| j.contact == from) {
                continue;
            }
            let jobs: Vec<_> = jobs
                .into_iter()
                .map(|mut j| {
                    if j.contact == from {
                        if self.outbox.pending.contains_key(&j.message_id) {
                            report.pending_sends += 1;
                        }
                        j.contact = into.to_string();
                    }
                    j
                })
                .collect();
            batch.put_outbox(record, &jobs);
        }
        if !self.deployed.program.segments.is_empty() {
            segments::request_check(&self.store, &mut batch, into)?;
        }
        self.store.apply(batch)?;
        self.store.flush()?;
        self.quiet.remove(from);
        self.quiet.remove(into);
        self.identities
            .aliases
            .insert(from.to_string(), into.to_string());
        self.rebuild_figures()?;
        Ok(Some(report))
    }

    /// Inputs for a merged contact go to the one it was merged into (a late outcome of its
    /// send, a click on a link it was sent).
    pub(super) fn follow_aliases(&self, inputs: Vec<Input>) -> Vec<Input> {
        inputs
            .into_iter()
            .map(|mut i| {
                match &mut i {
                    Input::Event(e) | Input::Delivered { event: e, .. } => {
                        if let Some(to) = self.identities.aliases.get(&e.contact) {
                            e.contact = to.clone();
                        }
                    }
                    _ => {}
                }
                i
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Event, Millis};
    use crate::runtime::sink::MemorySink;

    const NOW: Millis = 1_772_355_600_000;
    const DAY: Millis = 86_400_000;

    /// The anonymous contact's waiting instance moves with its timer: a day later the send
    /// goes to the user, and nothing is left under the anonymous id.
    #[test]
    fn a_merged_contacts_waiting_instance_fires_for_the_user() {
        let mut loaded = crate::lang::Loaded::default();
        crate::lang::add_source(
            &mut loaded,
            "b.journey",
            "journey browse {\n  entry event \"viewed\"\n  policy none\n  wait 1d\n  send email hi { subject \"S\" text \"T\" }\n}\n".into(),
        );
        let program = crate::compile::compile(&loaded).program.expect("compiles");
        let store = crate::bench::pg_server::test_store();
        let mut rt = Runtime::new(store.clone(), NOW, chrono_tz::UTC).unwrap();
        rt.durable = false;
        rt.deploy(program, NOW).unwrap();
        let mut sink = MemorySink::default();
        let mut tl = Vec::new();
        rt.run_at(
            vec![Input::Event(Event {
                contact: "anon".into(),
                kind: "viewed".into(),
                at: NOW,
                ..Event::default()
            })],
            NOW,
            &mut sink,
            &mut tl,
        )
        .unwrap();
        assert_eq!(store.instances_of("anon").unwrap().len(), 1);
        let m = rt.merge_contact("anon", "ada").unwrap().unwrap();
        assert_eq!((m.events, m.instances, m.timers), (1, 1, 1));
        assert!(store.instances_of("anon").unwrap().is_empty());
        assert!(store.events_of("anon").unwrap().is_empty());
        assert_eq!(store.events_of("ada").unwrap()[0].kind, "viewed");
        rt.tick(NOW + DAY + 1_000, &mut sink, &mut tl).unwrap();
        let sent: Vec<&str> = sink
            .delivered
            .iter()
            .map(|(j, _)| j.contact.as_str())
            .collect();
        assert_eq!(sent, ["ada"]);
        assert!(store.events_of("anon").unwrap().is_empty());
        assert_eq!(rt.merge_contact("anon", "ada").unwrap(), None);
    }
}
