//! Pausing and resuming journeys: the paused set, kept in the store's meta, and the contacts
//! that held while a journey was paused.

use super::*;

/// The store meta key of the paused journeys (a JSON list of names).
pub(super) const PAUSED_META: &str = "paused";

impl Runtime {
    /// The paused journeys.
    pub fn paused(&self) -> &BTreeSet<String> {
        &self.paused
    }

    pub(super) fn save_paused(&mut self) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.set_meta(
            PAUSED_META,
            &serde_json::to_vec(&self.paused).expect("names serialize"),
        );
        self.store.apply(batch)?;
        if self.durable {
            self.store.flush()?;
        }
        Ok(())
    }

    /// Pauses a journey: no new entries; its contacts hold where they are. Durable on return.
    pub fn pause(&mut self, journey: &str) -> Result<()> {
        if self.paused.insert(journey.to_string()) {
            self.save_paused()?;
        }
        Ok(())
    }

    /// Resumes a paused journey: each waiting contact is offered the events that arrived
    /// while it held (the first that answers its step moves it), then the timers that came
    /// due fire. Returns how many contacts were waiting.
    pub fn resume(
        &mut self,
        journey: &str,
        now: Millis,
        sink: &mut dyn Sink,
        timeline: &mut Vec<TimelineEntry>,
    ) -> Result<usize> {
        if !self.paused.remove(journey) {
            return Ok(0);
        }
        self.save_paused()?;
        let active = self.store.active_of(journey)?;
        let n = active.len();
        let mut inputs: Vec<Input> = active
            .into_iter()
            .map(|i| Input::Resume {
                instance: i.id,
                contact: i.contact,
            })
            .collect();
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|h| h.3 == journey);
        self.held = rest;
        inputs.extend(
            mine.into_iter()
                .map(|(due, instance, contact, _, entry)| Input::Timer {
                    due,
                    instance,
                    contact,
                    entry,
                }),
        );
        self.run_at(inputs, now, sink, timeline)?;
        Ok(n)
    }
}
