//! Work for another daemon: on a database several daemons share, this process advances only
//! the contacts of the partitions it holds. An input for any other contact (an event taken
//! by this daemon's API, a click on its tracking links, an enrolment a schedule made, a
//! delivery report for a send of a partition since handed over) is put in that partition's
//! inbox (`x` keys) in the batch, so it is durable when the batch is acknowledged; the
//! partition's holder takes it into one of its batches, which removes it: each is
//! processed once. Timers, segment checks and resumes of another's contacts are dropped:
//! their state is on disk, and that daemon reads it.

use super::*;

/// An input as the inbox keeps it (JSON, readable in `journey_inbox`; an entry is an array
/// of them: what one batch routed to one partition).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Routed {
    Event {
        event: Event,
    },
    Enroll {
        journey: String,
        contact: String,
    },
    Delivered {
        message_id: String,
        event: Event,
    },
    /// A profile given through the API (`upsert_contact`): applied when taken (an upsert
    /// is idempotent, so one taken again after a crash changes nothing more).
    Upsert {
        contact: Contact,
    },
    /// An erasure asked of a daemon that does not hold the contact.
    Erase {
        contact: String,
    },
}

/// The most inbox entries one round takes.
pub const INBOX_TAKE: usize = 512;

impl Runtime {
    /// Splits off the inputs for contacts of partitions this process does not work on:
    /// those that can be routed go into `batch` as inbox entries of their partitions; the
    /// rest are dropped (see the module). Returns the inputs to process here.
    pub(super) fn route_elsewhere(
        &mut self,
        inputs: Vec<Input>,
        now: Millis,
        batch: &mut WriteBatch,
    ) -> Result<Vec<Input>> {
        if !self.store.is_shared() {
            return Ok(inputs);
        }
        let mut here = Vec::with_capacity(inputs.len());
        // One inbox entry per partition and batch: a row, however many inputs.
        let mut elsewhere: BTreeMap<u16, Vec<Routed>> = BTreeMap::new();
        for input in inputs {
            if self.store.works_on(input.contact_hint()) {
                here.push(input);
                continue;
            }
            let partition = self.store.partition_of(input.contact_hint());
            let routed = match input {
                Input::Event(event) => Routed::Event { event },
                Input::Enroll { journey, contact } => Routed::Enroll { journey, contact },
                Input::Delivered { message_id, event } => Routed::Delivered { message_id, event },
                Input::Timer { .. } | Input::Resume { .. } | Input::SegmentCheck { .. } => continue,
            };
            elsewhere.entry(partition).or_default().push(routed);
            self.counters.routed += 1;
        }
        for (partition, routed) in elsewhere {
            let value = serde_json::to_vec(&routed).expect("inputs serialize");
            batch.put_inbox(partition, now, self.store.next_id()?, value);
        }
        Ok(here)
    }

    /// Puts a profile update for a contact of another daemon's partition in that
    /// partition's inbox, durably. Returns false when the contact is this process's.
    pub(super) fn route_upsert(&mut self, c: &Contact) -> Result<bool> {
        Ok(!self.route_upserts(std::slice::from_ref(c))?.is_empty())
    }

    /// Puts the profile updates of other daemons' contacts in their partitions' inboxes,
    /// in one batch (an entry per partition); returns the ids routed. The others are left
    /// to the caller, who must not ask `works_on` again: a partition can change hands in
    /// between, and a contact neither routed nor upserted would be lost.
    pub(super) fn route_upserts(&mut self, contacts: &[Contact]) -> Result<HashSet<String>> {
        let mut routed = HashSet::new();
        if !self.store.is_shared() {
            return Ok(routed);
        }
        let mut elsewhere: BTreeMap<u16, Vec<Routed>> = BTreeMap::new();
        for c in contacts.iter().filter(|c| !self.store.works_on(&c.id)) {
            routed.insert(c.id.clone());
            elsewhere
                .entry(self.store.partition_of(&c.id))
                .or_default()
                .push(Routed::Upsert { contact: c.clone() });
        }
        if elsewhere.is_empty() {
            return Ok(routed);
        }
        let now = chrono::Utc::now().timestamp_millis();
        let mut batch = WriteBatch::default();
        let mut n = 0;
        for (partition, routed) in elsewhere {
            n += routed.len();
            let value = serde_json::to_vec(&routed).expect("contacts serialize");
            batch.put_inbox(partition, now, self.store.next_id()?, value);
        }
        self.store.apply(batch)?;
        self.counters.routed += n as u64;
        Ok(routed)
    }

    /// Puts the erasure of a contact of another daemon's partition in that partition's
    /// inbox, durably: its holder carries it out when it takes it (within a poll of its
    /// inbox). Returns the partition, or None when the contact is this process's.
    pub fn route_erasure(&mut self, contact: &str) -> Result<Option<u16>> {
        if !self.store.is_shared() || self.store.works_on(contact) {
            return Ok(None);
        }
        let partition = self.store.partition_of(contact);
        let value = serde_json::to_vec(&[Routed::Erase {
            contact: contact.to_string(),
        }])
        .expect("ids serialize");
        let mut batch = WriteBatch::default();
        let now = chrono::Utc::now().timestamp_millis();
        batch.put_inbox(partition, now, self.store.next_id()?, value);
        self.store.apply(batch)?;
        self.counters.routed += 1;
        Ok(Some(partition))
    }

    /// Takes up to `limit` inbox entries of the partitions this process works on, as
    /// inputs; the next batch removes them (with its commit: taken once). An entry that
    /// does not decode is removed and logged.
    pub fn take_inbox(&mut self, limit: usize) -> Result<Vec<Input>> {
        if !self.store.is_shared() {
            return Ok(Vec::new());
        }
        let mut inputs = Vec::new();
        for (key, value) in self.store.inbox(limit)? {
            if inputs.len() >= limit {
                break;
            }
            if self.inbox_taken.contains(&key) {
                continue;
            }
            let routed = match serde_json::from_slice::<Vec<Routed>>(&value) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(
                        key = %hex::encode(&key),
                        "an inbox entry does not decode ({e}); it is dropped"
                    );
                    Vec::new()
                }
            };
            for r in routed {
                match r {
                    Routed::Event { event } => inputs.push(Input::Event(event)),
                    Routed::Enroll { journey, contact } => {
                        inputs.push(Input::Enroll { journey, contact })
                    }
                    Routed::Delivered { message_id, event } => {
                        inputs.push(Input::Delivered { message_id, event })
                    }
                    Routed::Upsert { contact } => {
                        // Before the inputs taken after it (its events may need the
                        // address).
                        self.upsert_contact(&contact)?;
                    }
                    Routed::Erase { contact } => {
                        // At once (inputs taken before it for the contact go with it).
                        inputs.retain(|i: &Input| i.contact_hint() != contact);
                        if let Some(e) = self.erase_contact(&contact)? {
                            tracing::info!(
                                keys = e.keys,
                                "erased a contact, as another daemon was asked"
                            );
                        }
                    }
                }
            }
            self.inbox_taken.push(key);
        }
        Ok(inputs)
    }
}
