//! The outbox: the sends a batch commits, kept until each has its outcome, and recovered after
//! a crash.

use super::*;

/// The outbox in memory: which sends await an outcome, and in which record.
#[derive(Default)]
pub(super) struct Outbox {
    /// Sends committed and not yet reported: message id → its outbox record.
    pub(super) pending: HashMap<String, u64>,
    /// Outbox records and how many of their sends await an outcome; at zero it is removed.
    pub(super) records: HashMap<u64, u32>,
    /// While the store is away (`reconnect`): the sends already handed to the sink, which
    /// are not handed again when the outbox is read back.
    pub(super) handed_before_loss: Option<HashSet<String>>,
}

impl Runtime {
    /// Notes the sends that await an outcome (`recover_outbox` delivers them); records
    /// whose sends all have one are removed.
    pub(super) fn load_outbox(&mut self) -> Result<()> {
        let mut batch = WriteBatch::default();
        let mut outcomes = HashMap::new();
        for (record, jobs) in self.store.outbox_records()? {
            // Another daemon's partition: its sends are that daemon's to deliver.
            if !self
                .store
                .works_on_partition(store::record_partition(record))
            {
                continue;
            }
            let mut pending = 0;
            for job in jobs {
                if !self.store.outcome_recorded(&job, &mut outcomes)? {
                    self.outbox.pending.insert(job.message_id, record);
                    pending += 1;
                }
            }
            if pending == 0 {
                batch.del_outbox(record);
            } else {
                self.outbox.records.insert(record, pending);
            }
        }
        self.store.apply(batch)?;
        Ok(())
    }

    /// A send has its outcome: its record counts down, and goes in `batch` at zero.
    pub(super) fn outbox_done(&mut self, message_id: &str, batch: &mut WriteBatch) {
        let Some(record) = self.outbox.pending.remove(message_id) else {
            return;
        };
        if let Some(pending) = self.outbox.records.get_mut(&record) {
            *pending -= 1;
            if *pending == 0 {
                batch.del_outbox(record);
                self.outbox.records.remove(&record);
            }
        }
    }

    /// A batch's sends whose commit failed: they are not pending (nothing was committed).
    pub(super) fn forget_outbox(&mut self, sends: &[SendJob]) {
        for job in sends {
            if let Some(record) = self.outbox.pending.remove(&job.message_id) {
                self.outbox.records.remove(&record);
            }
        }
    }

    /// The sends of a batch: one outbox record per partition of their contacts (one, unless
    /// several daemons share the store), committed with it.
    pub(super) fn write_outbox(&mut self, sends: &[SendJob], batch: &mut WriteBatch) -> Result<()> {
        if sends.is_empty() {
            return Ok(());
        }
        let mut by_partition: BTreeMap<u16, Vec<SendJob>> = BTreeMap::new();
        for job in sends {
            by_partition
                .entry(self.store.partition_of(&job.contact))
                .or_default()
                .push(job.clone());
        }
        for (partition, jobs) in by_partition {
            let record = store::partitions::record_id(partition, self.store.next_id()?);
            batch.put_outbox(record, &jobs);
            for job in &jobs {
                self.outbox.pending.insert(job.message_id.clone(), record);
            }
            self.outbox.records.insert(record, jobs.len() as u32);
        }
        Ok(())
    }
}
