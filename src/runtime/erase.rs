//! Erasure of a contact (GDPR article 17), on the live loop's thread between batches: the
//! store's keys of the contact and its share of the timer and outbox records go in one
//! batch, and the runtime's memory (the wheel, the quiet set, held timers, pending sends)
//! forgets it, so that nothing fires or is recorded for it afterwards. What stays is a
//! suppression record per address (`store::Suppression`), under a one-way hash.

use super::{Input, Result, Runtime};
use crate::engine::{Contact, MESSAGE_BOUNCED};
use crate::store::{normalize_address, Suppression, WriteBatch};
use std::collections::HashSet;

/// What an erasure removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Erasure {
    /// Keys removed (profile, events, dedupe ids, instances, memberships, segment check,
    /// short links).
    pub keys: usize,
    pub events: usize,
    pub instances: usize,
    pub timers: usize,
    pub pending_sends: usize,
    /// Suppression records written (one per address, only when there is consent to keep).
    pub suppression_records: usize,
}

impl Runtime {
    /// Erases a contact: None if the store knows nothing of it. Durable on return.
    pub fn erase_contact(&mut self, id: &str) -> Result<Option<Erasure>> {
        let contact = self.store.contact(id)?;
        let events = self.store.events_of(id)?;
        let instances = self.store.instances_of(id)?;
        if contact.is_none() && events.is_empty() && instances.is_empty() {
            return Ok(None);
        }
        let mut batch = WriteBatch::default();
        let mut report = Erasure {
            events: events.len(),
            instances: instances.len(),
            ..Erasure::default()
        };
        let keys = self.store.contact_keys(id)?;
        report.keys = keys.len();
        batch.del_keys(keys);

        // Timers: the wheel's entries of the contact are cancelled and counted down in
        // their records; every stored record that names the contact is rewritten without
        // its timers, or removed when nothing in it is left to do.
        let entries: Vec<u64> = self
            .timers
            .entries
            .iter()
            .filter(|(_, w)| w.contact == id)
            .map(|(e, _)| *e)
            .collect();
        for entry in entries {
            self.timers.wheel.cancel(entry);
            if let Some(w) = self.timers.entries.remove(&entry) {
                if self.timers.live_entry.get(&w.instance) == Some(&entry) {
                    self.timers.live_entry.remove(&w.instance);
                }
                if let Some(r) = self.timers.records.get_mut(&w.record) {
                    r.pending = r.pending.saturating_sub(1);
                }
            }
        }
        for record in self
            .store
            .timer_records(crate::engine::Millis::MIN, crate::engine::Millis::MAX)?
        {
            let before = record.timers.len();
            let rest: Vec<_> = record
                .timers
                .into_iter()
                .filter(|t| t.contact != id)
                .collect();
            if rest.len() == before {
                continue;
            }
            report.timers += before - rest.len();
            let done = self
                .timers
                .records
                .get(&record.id)
                .is_some_and(|r| r.pending == 0);
            if rest.is_empty() || done {
                batch.del_timers(record.bucket, record.id);
                self.timers.records.remove(&record.id);
            } else {
                batch.put_timers(record.bucket, record.id, &rest);
            }
        }
        self.holds.held.retain(|h| h.contact != id);

        // Sends: the contact's are taken out of their records; those still awaiting an
        // outcome are remembered so that a late report of one is dropped.
        for (record, jobs) in self.store.outbox_records()? {
            let before = jobs.len();
            let (mine, rest): (Vec<_>, Vec<_>) = jobs.into_iter().partition(|j| j.contact == id);
            if mine.is_empty() {
                continue;
            }
            debug_assert_eq!(mine.len() + rest.len(), before);
            for job in &mine {
                if self.outbox.pending.remove(&job.message_id).is_some() {
                    report.pending_sends += 1;
                    self.identities.erased_sends.insert(job.message_id.clone());
                    if let Some(n) = self.outbox.records.get_mut(&record) {
                        *n = n.saturating_sub(1);
                    }
                }
            }
            let done = self.outbox.records.get(&record).is_none_or(|n| *n == 0);
            if rest.is_empty() || done {
                batch.del_outbox(record);
                self.outbox.records.remove(&record);
            } else {
                batch.put_outbox(record, &rest);
            }
        }

        // What is kept: the consent of each address, under its hash.
        let consent = consent_of(contact.as_ref(), &events);
        if consent.any() {
            for kind in ["email", "phone"] {
                let Some(addr) = contact
                    .as_ref()
                    .and_then(|c| c.profile.get(kind))
                    .and_then(|v| v.as_str())
                    .and_then(|v| normalize_address(kind, v))
                else {
                    continue;
                };
                let hash = self
                    .store
                    .address_hash(&addr, true)?
                    .expect("made if missing");
                let mut kept = self.store.suppression(&hash)?.unwrap_or_default();
                kept.unsubscribed |= consent.unsubscribed;
                kept.bounced |= consent.bounced;
                kept.complained |= consent.complained;
                batch.put_suppression(&hash, &kept);
                report.suppression_records += 1;
            }
        }
        self.store.apply(batch)?;
        self.store.flush()?;
        self.quiet.remove(id);
        self.rebuild_figures()?;
        Ok(Some(report))
    }

    /// Drops the outcomes of erased contacts' sends from a batch's inputs.
    pub(super) fn drop_erased_outcomes(&mut self, inputs: Vec<Input>) -> Vec<Input> {
        let erased = &mut self.identities.erased_sends;
        inputs
            .into_iter()
            .filter(|i| match i {
                Input::Delivered { message_id, .. } => !erased.remove(message_id),
                _ => true,
            })
            .collect()
    }
}

/// What a contact's profile and history say about consent.
fn consent_of(contact: Option<&Contact>, events: &[crate::engine::Event]) -> Suppression {
    let kinds: HashSet<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let profile_unsubscribed = contact
        .and_then(|c| c.profile.get("unsubscribed"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    Suppression {
        unsubscribed: profile_unsubscribed || kinds.contains("unsubscribed"),
        bounced: kinds.contains(MESSAGE_BOUNCED) || kinds.contains("bounced"),
        complained: kinds.contains("complained"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Channel;
    use crate::engine::{Claims, TokenKind};
    use crate::engine::{Event, SendJob};
    use crate::store::TimerEntry;

    const NOW: i64 = 1_772_355_600_000;

    fn job(contact: &str, instance: u64) -> SendJob {
        SendJob {
            message_id: format!("{instance}:hello"),
            instance,
            journey: "welcome".into(),
            version: "v".into(),
            contact: contact.into(),
            message: "hello".into(),
            step: "hello".into(),
            channel: Channel::Webhook,
            label: None,
            created_at: NOW,
        }
    }

    fn timer(contact: &str, instance: u64, due: i64) -> TimerEntry {
        TimerEntry {
            due,
            instance,
            contact: contact.into(),
        }
    }

    fn claims(contact: &str) -> Claims {
        Claims {
            kind: TokenKind::Click,
            contact: contact.into(),
            message_id: "1:sms".into(),
            journey: "j".into(),
            message: "sms".into(),
            link: Some("shop".into()),
            url: Some("https://maison.example/shop".into()),
        }
    }

    /// Records shared with another contact (timers, outbox) are rewritten without the
    /// erased one's share, or removed when only its share was left; the wheel forgets its
    /// timers; a late outcome of its send does not bring it back; its short links go.
    #[test]
    fn shared_records_lose_the_erased_contacts_share_and_memory_forgets_it() {
        let store = crate::bench::pg_server::test_store();
        let b0 = crate::store::bucket_of(NOW + 500);
        let b1 = crate::store::bucket_of(NOW + 5_000);
        let mut batch = WriteBatch::default();
        for id in ["ann", "bob"] {
            batch.put_contact(&Contact {
                id: id.into(),
                profile: Default::default(),
            });
        }
        batch.put_event(
            &Event {
                id: Some("dedupe-ann".into()),
                contact: "ann".into(),
                kind: "unsubscribed".into(),
                at: NOW - 10,
                ..Event::default()
            },
            1,
        );
        batch.put_timers(
            b0,
            10,
            &[timer("ann", 1, NOW + 500), timer("bob", 2, NOW + 510)],
        );
        batch.put_timers(b1, 11, &[timer("ann", 3, NOW + 5_000)]);
        batch.put_outbox(20, &[job("ann", 1), job("bob", 2)]);
        batch.put_outbox(21, &[job("ann", 3)]);
        batch.put_member("seg", "ann");
        batch.put_member("seg", "bob");
        batch.put_segment_check("ann", NOW + 60_000);
        store.apply(batch).unwrap();
        assert!(store.put_short_link("abc", &claims("ann")).unwrap());
        assert!(store.put_short_link("def", &claims("bob")).unwrap());

        let mut rt = Runtime::new(store.clone(), NOW, chrono_tz::UTC).unwrap();
        assert!(rt.due_timers(NOW).unwrap().is_empty());
        assert_eq!(rt.timers_in_memory(), 3);
        assert_eq!(rt.erase_contact("nobody").unwrap(), None);
        let e = rt.erase_contact("ann").unwrap().expect("known");
        assert_eq!((e.events, e.timers, e.pending_sends), (1, 2, 2));
        // Without an address there is nothing to keep, unsubscribed or not.
        assert_eq!(e.suppression_records, 0);

        assert_eq!(rt.timers_in_memory(), 1);
        let records = store.timer_records(i64::MIN, i64::MAX).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(
            (records[0].id, records[0].timers.clone()),
            (10, vec![timer("bob", 2, NOW + 510)])
        );
        let outbox = store.outbox_records().unwrap();
        assert_eq!(outbox, vec![(20, vec![job("bob", 2)])]);
        assert_eq!(store.short_link("abc").unwrap(), None);
        assert!(store.short_link("def").unwrap().is_some());
        assert!(!store.event_seen("dedupe-ann").unwrap());
        assert_eq!(store.segments_of("ann").unwrap(), Vec::<String>::new());
        assert_eq!(store.segments_of("bob").unwrap(), vec!["seg".to_string()]);
        assert_eq!(store.segment_check("ann").unwrap(), None);
        assert!(store
            .segment_checks_before(i64::MAX, 10)
            .unwrap()
            .is_empty());

        // Only bob's timer fires.
        let due = rt.due_timers(NOW + 10_000).unwrap();
        assert_eq!(due.len(), 1);
        assert!(matches!(&due[0], Input::Timer { contact, .. } if contact == "bob"));
        // A channel's late report of ann's send is dropped: ann does not come back.
        let j = job("ann", 1);
        rt.process(
            vec![Input::Delivered {
                message_id: j.message_id.clone(),
                event: crate::runtime::sent_event(&j, NOW + 20, None),
            }],
            NOW + 20,
        )
        .unwrap();
        assert_eq!(store.contact("ann").unwrap(), None);
        assert!(store.events_of("ann").unwrap().is_empty());
        assert!(
            rt.identities.erased_sends.len() == 1,
            "the other send's report may still come"
        );
    }

    /// An address erased with its consent withdrawn is kept as a hash; the same address
    /// upserted later (in another case) comes back unsubscribed; another address does not.
    #[test]
    fn an_erased_unsubscribed_address_comes_back_unsubscribed() {
        let store = crate::bench::pg_server::test_store();
        let mut rt = Runtime::new(store.clone(), NOW, chrono_tz::UTC).unwrap();
        let mut profile = serde_json::Map::new();
        profile.insert("email".into(), "Ann@Example.com".into());
        profile.insert("phone".into(), "+33 6 12 34 56 78".into());
        profile.insert("unsubscribed".into(), true.into());
        rt.upsert_contact(&Contact {
            id: "ann".into(),
            profile,
        })
        .unwrap();
        let e = rt.erase_contact("ann").unwrap().unwrap();
        assert_eq!(e.suppression_records, 2);
        for (id, field, value, suppressed) in [
            ("a2", "email", " ann@example.COM ", true),
            ("a3", "phone", "+33612345678", true),
            ("a4", "email", "other@example.com", false),
        ] {
            let mut p = serde_json::Map::new();
            p.insert(field.into(), value.into());
            rt.upsert_contact(&Contact {
                id: id.into(),
                profile: p,
            })
            .unwrap();
            let got = store.contact(id).unwrap().unwrap();
            assert_eq!(
                got.profile.get("unsubscribed") == Some(&true.into()),
                suppressed,
                "{id}: {got:?}"
            );
        }
    }
}
