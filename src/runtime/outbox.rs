//! The outbox: the sends a batch commits, kept until each has its outcome, and recovered after
//! a crash.

use super::*;

impl Runtime {
    /// Notes the sends that await an outcome (`recover_outbox` delivers them); records
    /// whose sends all have one are removed.
    pub(super) fn load_outbox(&mut self) -> Result<()> {
        let mut batch = WriteBatch::default();
        let mut outcomes = HashMap::new();
        for (record, jobs) in self.store.outbox_records()? {
            let mut pending = 0;
            for job in jobs {
                if !self.store.outcome_recorded(&job, &mut outcomes)? {
                    self.outbox_pending.insert(job.message_id, record);
                    pending += 1;
                }
            }
            if pending == 0 {
                batch.del_outbox(record);
            } else {
                self.outbox_records.insert(record, pending);
            }
        }
        self.store.apply(batch)?;
        Ok(())
    }

    /// A send has its outcome: its record counts down, and goes in `batch` at zero.
    pub(super) fn outbox_done(&mut self, message_id: &str, batch: &mut WriteBatch) {
        let Some(record) = self.outbox_pending.remove(message_id) else {
            return;
        };
        if let Some(pending) = self.outbox_records.get_mut(&record) {
            *pending -= 1;
            if *pending == 0 {
                batch.del_outbox(record);
                self.outbox_records.remove(&record);
            }
        }
    }

    /// The sends of a batch: one outbox record, committed with it.
    pub(super) fn write_outbox(&mut self, sends: &[SendJob], batch: &mut WriteBatch) -> Result<()> {
        if sends.is_empty() {
            return Ok(());
        }
        let record = self.store.next_id()?;
        batch.put_outbox(record, sends);
        for job in sends {
            self.outbox_pending.insert(job.message_id.clone(), record);
        }
        self.outbox_records.insert(record, sends.len() as u32);
        Ok(())
    }
}
