//! Timers: the timing wheel, refilled from the store's timer records, and the timers a batch
//! sets, fires or cancels.

use super::*;

/// The timers of the near future in memory, and what each stands for.
pub(super) struct Timers {
    /// The near future's timers, by entry (one per timer loaded or set; see `WheelEntry`).
    pub(super) wheel: TimingWheel,
    /// What each wheel entry stands for, until it is done (fired and processed, or
    /// cancelled).
    pub(super) entries: HashMap<u64, WheelEntry>,
    /// The newest entry of each instance, so that a moved instance cancels its timer.
    pub(super) live_entry: HashMap<u64, u64>,
    /// Loaded timer records, by key, until each of their timers is done.
    pub(super) records: HashMap<u64, LoadedRecord>,
    pub(super) next_entry: u64,
    /// The wheel loads no further bucket while it holds this many timers
    /// (`WHEEL_MAX_LOADED`).
    pub(super) max_loaded: usize,
    /// Timer records in buckets before this time are loaded (their timers are in the
    /// wheel, or done). A bucket boundary.
    pub(super) loaded_until: Millis,
    /// Told how late each timer fired (ms), for the daemon's metrics.
    pub(super) observer: Option<Box<dyn FnMut(Millis) + Send>>,
}

impl Timers {
    pub(super) fn new(now: Millis) -> Timers {
        Timers {
            wheel: TimingWheel::with_levels(wheel_time(now), WHEEL_LEVELS),
            entries: HashMap::new(),
            live_entry: HashMap::new(),
            records: HashMap::new(),
            next_entry: 0,
            max_loaded: WHEEL_MAX_LOADED,
            loaded_until: Millis::MIN,
            observer: None,
        }
    }
}

/// A timer record in memory: its bucket, and how many of its timers are not done yet (at
/// zero the record is removed).
#[derive(Debug, Clone, Copy)]
pub(super) struct LoadedRecord {
    pub(super) bucket: Millis,
    pub(super) pending: u32,
}

impl Runtime {
    /// Loads the timer records that the wheel's horizon now covers, a bucket at a time, and
    /// no more than `wheel_max_loaded` timers: a dense future (a million contacts who
    /// entered together) stays on disk until the wheel has room for it.
    pub(super) fn refill_wheel(&mut self) -> Result<()> {
        let horizon = self.timers.wheel.horizon_end().min(i64::MAX as u64) as Millis;
        let end = store::bucket_of(horizon);
        while self.timers.loaded_until < end && self.timers.wheel.len() < self.timers.max_loaded {
            // The next bucket that holds anything (nothing is due before it).
            let Some(bucket) = self.store.first_timer_bucket(self.timers.loaded_until)? else {
                self.timers.loaded_until = end;
                break;
            };
            if bucket >= end {
                self.timers.loaded_until = end;
                break;
            }
            let next = bucket + store::TIMER_BUCKET_MS;
            for record in self.store.timer_records(bucket, next)? {
                // Another daemon's partition: its timers are that daemon's to fire.
                if !self
                    .store
                    .works_on_partition(store::record_partition(record.id))
                {
                    continue;
                }
                let mut pending = 0;
                for t in record.timers {
                    if self.track_timer(t, record.id) {
                        pending += 1;
                    }
                }
                if pending > 0 {
                    self.timers.records.insert(
                        record.id,
                        LoadedRecord {
                            bucket: record.bucket,
                            pending,
                        },
                    );
                }
            }
            self.timers.loaded_until = next;
        }
        Ok(())
    }

    /// Puts a timer of a loaded record into the wheel; false if it is beyond the horizon.
    pub(super) fn track_timer(&mut self, t: TimerEntry, record: u64) -> bool {
        let due = t.due;
        let entry = self.new_entry(t, record, false);
        self.insert_entry(entry, due)
    }

    /// Gives a timer of a loaded record its wheel entry (not yet in the wheel). It becomes
    /// its instance's newest entry if `newest` (a timer just set) or if there is none yet.
    pub(super) fn new_entry(&mut self, t: TimerEntry, record: u64, newest: bool) -> u64 {
        let entry = self.timers.next_entry;
        self.timers.next_entry += 1;
        if newest {
            self.timers.live_entry.insert(t.instance, entry);
        } else {
            self.timers.live_entry.entry(t.instance).or_insert(entry);
        }
        self.timers.entries.insert(
            entry,
            WheelEntry {
                due: t.due,
                instance: t.instance,
                contact: t.contact,
                record,
            },
        );
        entry
    }

    /// Puts an entry into the wheel. Beyond the horizon (which a loaded bucket never is)
    /// it is forgotten, and its record stays on disk for a restart to load.
    pub(super) fn insert_entry(&mut self, entry: u64, due: Millis) -> bool {
        if self.timers.wheel.insert(entry, wheel_time(due)).is_ok() {
            return true;
        }
        self.timers.entries.remove(&entry);
        false
    }

    /// A timer is done (processed, or cancelled): its record counts down, and goes in
    /// `batch` when nothing in it is left.
    pub(super) fn timer_done(&mut self, entry: u64, batch: &mut WriteBatch) {
        let Some(w) = self.timers.entries.remove(&entry) else {
            return;
        };
        if self.timers.live_entry.get(&w.instance) == Some(&entry) {
            self.timers.live_entry.remove(&w.instance);
        }
        if let Some(r) = self.timers.records.get_mut(&w.record) {
            r.pending -= 1;
            if r.pending == 0 {
                batch.del_timers(r.bucket, w.record);
                self.timers.records.remove(&w.record);
            }
        }
    }

    /// The timer writes of a batch, before it is applied: fired and cancelled timers are
    /// done, and the timers set go in as one record per bucket. Returns the wheel's
    /// changes, made once the batch is applied: entries to cancel, entries to insert.
    pub(super) fn write_timers(
        &mut self,
        changes: Vec<TimerMove>,
        fired: Vec<u64>,
        batch: &mut WriteBatch,
    ) -> Result<WheelChanges> {
        for entry in fired {
            self.timer_done(entry, batch);
        }
        // An instance may move several times in a batch: only its first and last due count.
        let mut net: HashMap<u64, TimerMove> = HashMap::new();
        let mut order = Vec::new();
        for change in changes {
            match net.get_mut(&change.instance) {
                Some(n) => n.new_due = change.new_due,
                None => {
                    order.push(change.instance);
                    net.insert(change.instance, change);
                }
            }
        }
        let mut cancel = Vec::new();
        // A record per bucket and partition: each partition's records are its holder's.
        let mut buckets: BTreeMap<(Millis, u16), Vec<TimerEntry>> = BTreeMap::new();
        for id in order {
            let TimerMove {
                old_due: old,
                new_due: new,
                contact,
                ..
            } = net.remove(&id).expect("noted above");
            if old == new {
                continue;
            }
            if let Some(old) = old {
                if let Some(&entry) = self.timers.live_entry.get(&id) {
                    if self
                        .timers
                        .entries
                        .get(&entry)
                        .is_some_and(|w| w.due == old)
                    {
                        self.timer_done(entry, batch);
                        cancel.push(entry);
                    }
                }
            }
            if let Some(due) = new {
                buckets
                    .entry((store::bucket_of(due), self.store.partition_of(&contact)))
                    .or_default()
                    .push(TimerEntry {
                        due,
                        instance: id,
                        contact,
                    });
            }
        }
        let mut insert = Vec::new();
        for ((bucket, partition), timers) in buckets {
            let record = store::partitions::record_id(partition, self.store.next_id()?);
            batch.put_timers(bucket, record, &timers);
            if bucket < self.timers.loaded_until {
                // A loaded bucket: its timers go into the wheel (after the batch is applied).
                let n = timers.len() as u32;
                for t in timers {
                    let due = t.due;
                    insert.push(WheelInsert {
                        entry: self.new_entry(t, record, true),
                        due,
                    });
                }
                self.timers
                    .records
                    .insert(record, LoadedRecord { bucket, pending: n });
            }
        }
        Ok(WheelChanges { cancel, insert })
    }

    /// The timers due at `now`, as inputs.
    pub fn due_timers(&mut self, now: Millis) -> Result<Vec<Input>> {
        let mut fired = Vec::new();
        self.timers.wheel.advance(wheel_time(now), &mut fired);
        self.refill_wheel()?;
        self.timers.wheel.advance(wheel_time(now), &mut fired);
        self.counters.timers_fired += fired.len() as u64;
        if let Some(f) = &mut self.timers.observer {
            for (_, due) in &fired {
                f(now - *due as Millis);
            }
        }
        Ok(fired
            .into_iter()
            .filter_map(|(entry, _)| {
                let w = self.timers.entries.get(&entry)?;
                Some(Input::Timer {
                    due: w.due,
                    instance: w.instance,
                    contact: w.contact.clone(),
                    entry,
                })
            })
            .collect())
    }

    /// The next moment something is due: a timer or a segment schedule.
    pub fn next_wake(&self) -> Result<Option<Millis>> {
        let timer = match self.timers.wheel.next_expiry() {
            Some(t) => Some(t as Millis),
            // Nothing is due before the next stored bucket starts.
            None => self.store.first_timer_bucket(self.timers.loaded_until)?,
        };
        let sched = self.next_schedule()?;
        let check = self.next_segment_check()?;
        Ok([timer, sched, check].into_iter().flatten().min())
    }

    pub fn timers_in_memory(&self) -> usize {
        self.timers.wheel.len()
    }
}
