//! When the store's database goes away and comes back (PostgreSQL restarted, the network
//! cut): the runtime forgets what it kept in memory of the store (the wheel, the outbox, the
//! holds) and reads it again as a start does, and the sends it had already handed to the
//! sink are not handed again. The live loop drives it (`live::wait_for_store`).

use super::*;

impl Runtime {
    /// Reads what the runtime keeps of the store: the paused journeys and the outbox (the
    /// wheel fills at the first `due_timers`; `next_wake` reads the store until then).
    pub(super) fn load_from_store(&mut self) -> Result<()> {
        self.holds = pause::Holds::default();
        if let Some(v) = self.store.meta(pause::PAUSED_META)? {
            self.holds.paused = serde_json::from_slice(&v).unwrap_or_default();
        }
        self.outbox.pending.clear();
        self.outbox.records.clear();
        self.load_outbox()?;
        self.rebuild_figures()
    }

    /// The store failed to answer: notes, once per outage, the sends already handed to the
    /// sink (every send pending in memory: a batch whose commit failed took its own back).
    /// Until `deliver_never_handed`, every send handed is added to them.
    pub fn store_lost(&mut self) {
        // A batch committing in the background was never handed: should it have committed
        // after all, its sends come back with the outbox (`reload_from_store`) and go then.
        if let Some(sends) = self.committing.take() {
            self.forget_outbox(&sends);
        }
        // Inbox entries taken by a round that failed were not processed: they stay in the
        // store, to be taken again, and no later batch may remove them unprocessed.
        self.inbox_taken.clear();
        if self.outbox.handed_before_loss.is_none() {
            self.outbox.handed_before_loss = Some(self.outbox.pending.keys().cloned().collect());
        }
    }

    /// The store answers again: what was in memory is read back from it. Timers that a
    /// failed batch fired are still on disk, so they fire again; nothing of that batch was
    /// committed. Call `deliver_never_handed` once the inputs kept meanwhile are processed.
    pub fn reload_from_store(&mut self, now: Millis) -> Result<()> {
        let observer = self.timers.observer.take();
        self.timers = timers::Timers::new(now);
        self.timers.observer = observer;
        self.quiet.clear();
        self.load_from_store()
    }

    /// The partitions this process works on changed (`Store::partition_generation`; the
    /// batch in flight is settled): what it kept in memory is read again for the partitions
    /// it holds now, and the pending sends of the partitions it gained are handed to the
    /// sink: their last holder may have handed them before it stopped, so they may go
    /// twice (the documented at-least-once window; the message id is the same, for the
    /// provider's idempotency). Returns the outcomes known at once, to process.
    pub fn repartition(&mut self, now: Millis, sink: &mut dyn Sink) -> Result<Vec<Input>> {
        let generation = self.store.partition_generation();
        self.store_lost();
        self.store.forget_cached();
        self.reload_from_store(now)?;
        let outcomes = self.deliver_never_handed(now, sink)?;
        self.store.partitions_applied(generation);
        Ok(outcomes)
    }

    /// Hands the sink the committed sends it was never handed (those of a batch whose
    /// commit succeeded although its answer was lost with the connection), once the inputs
    /// kept during the outage are processed: the others are on their way, or their outcomes
    /// were among those inputs. Returns the outcomes known at once, to process.
    pub fn deliver_never_handed(&mut self, now: Millis, sink: &mut dyn Sink) -> Result<Vec<Input>> {
        let Some(handed) = self.outbox.handed_before_loss.take() else {
            return Ok(Vec::new());
        };
        let jobs = match self.pending_jobs_where(|id| !handed.contains(id)) {
            Ok(jobs) => jobs,
            Err(e) => {
                self.outbox.handed_before_loss = Some(handed);
                return Err(e);
            }
        };
        Ok(jobs
            .iter()
            .filter_map(|job| self.deliver(job, now, sink))
            .collect())
    }
}
