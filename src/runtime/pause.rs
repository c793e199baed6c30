//! Pausing and resuming journeys: the paused set, kept in the store's meta, and the contacts
//! that held while a journey was paused.

use super::*;

/// Paused journeys and the timers that came due while they were.
#[derive(Default)]
pub(super) struct Holds {
    /// Paused journeys: no new entries, and their contacts hold where they are (timers and
    /// events wait until `resume`). Kept in the store's meta `paused`.
    pub(super) paused: BTreeSet<String>,
    /// Timers of paused journeys that came due. Their records stay on disk, so a restart
    /// finds them again.
    pub(super) held: Vec<HeldTimer>,
}

/// A timer of a paused journey that came due, waiting for `resume`.
#[derive(Debug, Clone)]
pub(super) struct HeldTimer {
    pub(super) due: Millis,
    pub(super) instance: u64,
    pub(super) contact: String,
    pub(super) journey: String,
    /// The wheel entry it fired from.
    pub(super) entry: u64,
}

/// The store meta key of the paused journeys (a JSON list of names).
pub const PAUSED_META: &str = "paused";

impl Runtime {
    /// The paused journeys.
    pub fn paused(&self) -> &BTreeSet<String> {
        &self.holds.paused
    }

    pub(super) fn save_paused(&mut self) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.set_meta(
            PAUSED_META,
            &serde_json::to_vec(&self.holds.paused).expect("names serialize"),
        );
        self.store.apply(batch)?;
        if self.durable {
            self.store.flush()?;
        }
        Ok(())
    }

    /// Pauses a journey: no new entries; its contacts hold where they are. Durable on return.
    pub fn pause(&mut self, journey: &str) -> Result<()> {
        if self.holds.paused.insert(journey.to_string()) {
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
        if !self.holds.paused.remove(journey) {
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
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.holds.held)
            .into_iter()
            .partition(|h| h.journey == journey);
        self.holds.held = rest;
        inputs.extend(mine.into_iter().map(|h| Input::Timer {
            due: h.due,
            instance: h.instance,
            contact: h.contact,
            entry: h.entry,
        }));
        self.run_at(inputs, now, sink, timeline)?;
        Ok(n)
    }
}
