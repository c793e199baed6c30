//! The driver: the one place where engine, store and delivery meet. It turns inputs (events,
//! due timers, enrolments, schedules) into calls of the pure step function, writes every
//! resulting instance, timer, outbox entry and event in one atomic batch per group of inputs
//! (group commit), flushes before it acknowledges, and hands sends to a `Sink`.
//! The daemon, `journey test` and `journey simulate` all run through it; only the clock and
//! the sink differ.

mod erase;
mod merge;
mod push_tokens;
pub use erase::Erasure;
pub mod live;
pub mod segments;
pub mod sink;

use crate::compile::ir::{EntryIr, JourneyIr, Program, StepId};
use crate::engine::calendar::{local_to_utc, next_local_moment, pick_zone};
use crate::engine::cond::ContactView;
use crate::engine::consent;
use crate::engine::step::{self, Input as StepInput, World};
use crate::engine::wheel::TimingWheel;
use crate::engine::{
    Clock, Contact, Effect, Event, Happening, Instance, Millis, SendJob, TimelineEntry,
    MESSAGE_SENT,
};

pub use crate::engine::{MESSAGE_BOUNCED, MESSAGE_FAILED, MESSAGE_UNCERTAIN};
use crate::store::{self, Store, StoreError, TimerEntry, WriteBatch};
use chrono_tz::Tz;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

pub use sink::{Delivery, MemorySink, Sink};

/// The wall clock, for the daemon. Scenarios use `engine::VirtualClock`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as Millis)
            .unwrap_or(0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("journey '{journey}' says `migrate by name`, but its new version has no step named {}: contacts wait there", steps.join(", "))]
    MigrationGap { journey: String, steps: Vec<String> },
    #[error("unknown journey '{0}'")]
    UnknownJourney(String),
    #[error("journey '{0}' is not entered through the API (add `entry api`)")]
    NotApiEntry(String),
    #[error("invalid input: {0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, RuntimeError>;

/// What moves the runtime.
#[derive(Debug, Clone)]
pub enum Input {
    /// A contact event (custom, or engagement with a message).
    Event(Event),
    /// A timer due; stale timers (the instance moved on) are dropped. `entry` is the
    /// wheel's handle on it (its record is removed once every timer in it is done).
    Timer {
        due: Millis,
        instance: u64,
        contact: String,
        entry: u64,
    },
    /// Enrol a contact in a journey (`entry api`, segment schedules, `on join`).
    Enroll { journey: String, contact: String },
    /// A channel delivered a message: its outbox entry goes, its `message.sent` event comes.
    Delivered { message_id: String, event: Event },
    /// A paused journey resumed: the instance is offered the events that arrived since it
    /// reached its step (a click during the pause still answers its check).
    Resume { instance: u64, contact: String },
    /// Time may have changed the contact's segments (a segment check came due, or a
    /// profile or history was written outside a batch): evaluate them again.
    SegmentCheck { contact: String },
}

impl Input {
    fn contact_hint(&self) -> &str {
        match self {
            Input::Event(e) | Input::Delivered { event: e, .. } => &e.contact,
            Input::Enroll { contact, .. } => contact,
            Input::Timer { contact, .. } | Input::Resume { contact, .. } => contact,
            Input::SegmentCheck { contact } => contact,
        }
    }
}

/// Timer moves of a batch, mirrored into the wheel once it is applied:
/// (old due, new due, instance, contact).
type TimerChanges = Vec<(Option<Millis>, Option<Millis>, u64, String)>;

/// What a batch builds while its contacts' inputs run: its writes, its outcome, the timer
/// moves to mirror into the wheel once it is applied, and the wheel entries that fired.
struct BatchInProgress<'b> {
    batch: &'b mut WriteBatch,
    out: &'b mut BatchOutcome,
    timer_changes: TimerChanges,
    fired: Vec<u64>,
}

/// One contact while its inputs run: what its steps read and change. Its moved instances
/// and its record are written once at the end, however often they changed.
struct ContactRound<'p> {
    world: World<'p>,
    instances: Vec<Instance>,
    /// Indexes of the instances that moved.
    dirty: BTreeSet<usize>,
    /// The contact's record is written at the end: it is new, or a step set a field.
    contact_dirty: bool,
    /// Idempotency ids of the events recorded so far.
    seen_ids: HashSet<String>,
}

/// Wheel entries to cancel, and (entry, due) to insert, once a batch is applied.
type WheelChanges = (Vec<u64>, Vec<(u64, Millis)>);

/// A timer in the wheel: what it stands for until it is done.
#[derive(Debug, Clone)]
struct WheelEntry {
    due: Millis,
    instance: u64,
    contact: String,
    /// The timer record it came from.
    record: u64,
}

/// What one batch did.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    pub sends: Vec<SendJob>,
    pub timeline: Vec<TimelineEntry>,
    /// Keys written or removed in the batch.
    pub writes: usize,
    /// Inputs that changed an instance.
    pub transitions: usize,
    /// Events dropped as duplicates of an id already seen.
    pub duplicates: usize,
}

/// What a deploy changed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DeployReport {
    /// (journey, old version or None, new version).
    pub changed: Vec<(String, Option<String>, String)>,
    pub migrated: usize,
    /// Segments evaluated over every contact because their definition is new or changed.
    pub segments: segments::SegmentRefresh,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    pub transitions: u64,
    pub writes: u64,
    pub batches: u64,
    pub timers_fired: u64,
}

/// Where a group commit's time goes, shared with whoever reports it (the daemon's
/// `/metrics`): nanoseconds spent preparing batches (reads, the step function, encoding),
/// applying them to sled, and flushing, with the batches and inputs they carried; and the
/// outbox's depth after the last batch.
#[derive(Debug, Default)]
pub struct StageTimes {
    pub prepare_ns: std::sync::atomic::AtomicU64,
    pub apply_ns: std::sync::atomic::AtomicU64,
    pub flush_ns: std::sync::atomic::AtomicU64,
    pub batches: std::sync::atomic::AtomicU64,
    pub inputs: std::sync::atomic::AtomicU64,
    pub flushes: std::sync::atomic::AtomicU64,
    /// Sends committed and awaiting their outcome, as of the last batch (the daemon's
    /// `journey_outbox_depth`, read without touching the store).
    pub outbox_depth: std::sync::atomic::AtomicU64,
}

impl StageTimes {
    pub fn add(counter: &std::sync::atomic::AtomicU64, since: std::time::Instant) {
        counter.fetch_add(
            since.elapsed().as_nanos() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

/// The most contacts `Runtime::quiet` remembers (it starts over when full): about 5 MB.
const QUIET_CONTACTS_MAX: usize = 100_000;

/// Timers due within this span of now are held in memory; later ones stay on disk until the
/// horizon reaches them. 64^4 ms is about 4.7 hours.
const WHEEL_LEVELS: u32 = 4;

/// Past this many timers in memory the wheel loads no further bucket (about 8 MB); the
/// rest waits on disk until timers fire and make room.
const WHEEL_MAX_LOADED: usize = 50_000;

pub struct Runtime {
    pub store: Store,
    program: Arc<Program>,
    versions: HashMap<String, Arc<JourneyIr>>,
    /// Per (version, step): whether an instance waiting there moves on without reading its
    /// contact's history (`waits_without_history`), worked out once.
    history_free: HashMap<(String, StepId), bool>,
    /// The current version hash of each journey, for new entries.
    heads: HashMap<String, String>,
    /// The near future's timers, by entry (one per timer loaded or set; see `WheelEntry`).
    wheel: TimingWheel,
    /// What each wheel entry stands for, until it is done (fired and processed, or
    /// cancelled).
    wheel_entries: HashMap<u64, WheelEntry>,
    /// The newest entry of each instance, so that a moved instance cancels its timer.
    live_entry: HashMap<u64, u64>,
    /// Loaded timer records: (bucket, entries not yet done). At zero the record is removed.
    records: HashMap<u64, (Millis, u32)>,
    next_entry: u64,
    /// The wheel loads no further bucket while it holds this many timers
    /// (`WHEEL_MAX_LOADED`).
    pub wheel_max_loaded: usize,
    /// Sends committed and not yet reported: message id → its outbox record.
    outbox_pending: HashMap<String, u64>,
    /// Outbox records and how many of their sends await an outcome; at zero it is removed.
    outbox_records: HashMap<u64, u32>,
    /// Timer records in buckets before this time are loaded (their timers are in the
    /// wheel, or done). A bucket boundary.
    loaded_until: Millis,
    pub default_zone: Tz,
    /// Flush after each batch (the daemon); scenarios on a temporary store skip it.
    pub durable: bool,
    pub counters: Counters,
    /// Time spent per stage of the group commit.
    pub stages: Arc<StageTimes>,
    /// Contacts known to be in the store with no instance in flight, as left by the
    /// batches this runtime committed (bounded by `QUIET_CONTACTS_MAX`). While no segment
    /// exists, an event for one of them that no journey enters on is only written: the
    /// contact and its instances are not read (`process_contact`). Instances become active
    /// only in `process_contact`, which updates this set after each batch is applied.
    quiet: HashSet<String>,
    /// Paused journeys: no new entries, and their contacts hold where they are (timers and
    /// events wait until `resume`). Kept in the store's meta `paused`.
    paused: BTreeSet<String>,
    /// Timers of paused journeys that came due: (due, instance, contact, journey, entry).
    /// Their records stay on disk, so a restart finds them again.
    held: Vec<(Millis, u64, String, String, u64)>,
    /// Told how late each timer fired (ms), for the daemon's metrics.
    timer_observer: Option<Box<dyn FnMut(Millis) + Send>>,
    /// Message ids of erased contacts' sends that were awaiting an outcome: a channel's
    /// late report of one is dropped, so that it does not bring the contact back
    /// (`erase_contact`).
    erased_sends: HashSet<String>,
    /// Contacts merged into another (`merge_contact`): their later inputs go to it.
    aliases: HashMap<String, String>,
}

/// Does some journey of the program enter on events of this type?
fn enters_on(program: &Program, kind: &str) -> bool {
    program.journeys.values().any(|j| {
        j.entries
            .iter()
            .any(|en| matches!(en, EntryIr::Event(m) if m.event == kind))
    })
}

fn wheel_time(t: Millis) -> u64 {
    t.max(0) as u64
}

impl Runtime {
    /// A runtime over a store, starting at `now`. Loads the timers of the near future.
    pub fn new(store: Store, now: Millis, default_zone: Tz) -> Result<Runtime> {
        let wheel = TimingWheel::with_levels(wheel_time(now), WHEEL_LEVELS);
        let mut rt = Runtime {
            store,
            program: Arc::new(Program::default()),
            versions: HashMap::new(),
            history_free: HashMap::new(),
            heads: HashMap::new(),
            wheel,
            wheel_entries: HashMap::new(),
            live_entry: HashMap::new(),
            records: HashMap::new(),
            next_entry: 0,
            wheel_max_loaded: WHEEL_MAX_LOADED,
            outbox_pending: HashMap::new(),
            outbox_records: HashMap::new(),
            loaded_until: Millis::MIN,
            default_zone,
            durable: true,
            counters: Counters::default(),
            stages: Arc::default(),
            quiet: HashSet::new(),
            paused: BTreeSet::new(),
            held: Vec::new(),
            timer_observer: None,
            erased_sends: HashSet::new(),
            aliases: HashMap::new(),
        };
        if let Some(v) = rt.store.meta(PAUSED_META)? {
            rt.paused = serde_json::from_slice(&v).unwrap_or_default();
        }
        // The wheel fills at the first `due_timers`: `next_wake` reads the store until then.
        rt.load_outbox()?;
        Ok(rt)
    }

    pub fn program(&self) -> &Arc<Program> {
        &self.program
    }

    /// Calls `f` with the lateness (fired − due, ms) of every timer that fires.
    pub fn set_timer_observer(&mut self, f: impl FnMut(Millis) + Send + 'static) {
        self.timer_observer = Some(Box::new(f));
    }

    /// The paused journeys.
    pub fn paused(&self) -> &BTreeSet<String> {
        &self.paused
    }

    fn save_paused(&mut self) -> Result<()> {
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

    /// Loads a compiled program: a journey whose IR changed gets a new version for new
    /// entries; contacts in flight stay on theirs, unless it says `migrate by name`.
    /// A migration that would strand waiting contacts refuses the whole deploy.
    pub fn deploy(&mut self, program: Program, now: Millis) -> Result<DeployReport> {
        let mut report = DeployReport::default();
        let mut batch = WriteBatch::default();
        let mut migrations: Vec<(Arc<JourneyIr>, String, Arc<JourneyIr>)> = Vec::new();
        for (name, ir) in &program.journeys {
            let hash = ir.content_hash();
            self.heads.insert(name.clone(), hash.clone());
            let head = self.store.head(name)?;
            if head.as_deref() == Some(hash.as_str()) {
                self.versions
                    .entry(hash)
                    .or_insert_with(|| Arc::new(ir.clone()));
                continue;
            }
            if let (Some(old_hash), true) = (&head, ir.migrate_by_name) {
                if let Some(old) = self.version(old_hash)? {
                    let gaps = step::migration_gaps(&old, ir);
                    if !gaps.is_empty() {
                        return Err(RuntimeError::MigrationGap {
                            journey: name.clone(),
                            steps: gaps,
                        });
                    }
                    migrations.push((old, hash.clone(), Arc::new(ir.clone())));
                }
            }
            batch.put_version(&hash, ir);
            batch.set_head(name, &hash);
            for (i, e) in ir.entries.iter().enumerate() {
                if matches!(e, EntryIr::SegmentAt { .. } | EntryIr::SegmentEvery { .. }) {
                    let key = schedule_key(name, i);
                    if self.store.schedule_run(&key)?.is_none() {
                        batch.set_schedule_run(&key, now);
                    }
                }
            }
            self.versions.insert(hash.clone(), Arc::new(ir.clone()));
            report.changed.push((name.clone(), head, hash));
        }
        // Move waiting contacts of migrating journeys to the same-named step.
        for (old, new_hash, new) in migrations {
            for mut inst in self.store.active_of(&new.name)? {
                if inst.version == new_hash {
                    continue;
                }
                let from = inst.step.map(|s| old.step(s).name.clone());
                if let Some(name) = &from {
                    inst.step = new.step_by_name(name);
                }
                inst.version = new_hash.clone();
                batch.put_instance(&inst);
                report.migrated += 1;
            }
        }
        self.store.apply(batch)?;
        if self.durable {
            self.store.flush()?;
        }
        self.program = Arc::new(program);
        report.segments = self.refresh_segments(now)?;
        Ok(report)
    }

    /// Whether nothing an instance can do next reads its contact's history: it waits where
    /// `JourneyIr::wakes_without_history` says so, remembered per version and step.
    fn waits_without_history(&mut self, inst: &Instance) -> Result<bool> {
        let (Some(crate::engine::Parked::Waiting), Some(at)) = (inst.parked, inst.step) else {
            return Ok(false);
        };
        let memo = (inst.version.clone(), at);
        if let Some(known) = self.history_free.get(&memo) {
            return Ok(*known);
        }
        let free = self
            .version(&inst.version)?
            .is_some_and(|ir| ir.wakes_without_history(at));
        self.history_free.insert(memo, free);
        Ok(free)
    }

    fn version(&mut self, hash: &str) -> Result<Option<Arc<JourneyIr>>> {
        if let Some(v) = self.versions.get(hash) {
            return Ok(Some(v.clone()));
        }
        match self.store.version(hash)? {
            Some(ir) => {
                let a = Arc::new(ir);
                self.versions.insert(hash.to_string(), a.clone());
                Ok(Some(a))
            }
            None => Ok(None),
        }
    }

    /// Puts history in the store without running journeys: scenario events before the
    /// start, imports.
    pub fn ingest_history(&mut self, events: &[Event]) -> Result<()> {
        let mut batch = WriteBatch::default();
        let mut created: HashSet<String> = HashSet::new();
        let mut touched: BTreeSet<&str> = BTreeSet::new();
        for e in events {
            touched.insert(&e.contact);
            if !created.contains(&e.contact) && self.store.contact(&e.contact)?.is_none() {
                batch.put_contact(&Contact {
                    id: e.contact.clone(),
                    profile: Default::default(),
                });
                created.insert(e.contact.clone());
            }
            batch.put_event(e, self.store.next_id()?);
        }
        // The history may change segments: checked at the next tick.
        if !self.program.segments.is_empty() {
            for c in touched {
                segments::request_check(&self.store, &mut batch, c)?;
            }
        }
        self.store.apply(batch)?;
        Ok(())
    }

    /// Creates or updates a contact's profile (keys given replace the stored ones).
    pub fn upsert_contact(&mut self, c: &Contact) -> Result<()> {
        let mut merged = self.store.contact(&c.id)?.unwrap_or_else(|| Contact {
            id: c.id.clone(),
            profile: Default::default(),
        });
        for (k, v) in &c.profile {
            merged.profile.insert(k.clone(), v.clone());
        }
        // An address given here that was erased with its consent withdrawn comes back
        // unsubscribed (`erase`; docs/operations.md, "Erasure and export").
        if (c.profile.contains_key("email") || c.profile.contains_key("phone"))
            && merged.profile.get("unsubscribed") != Some(&Value::Bool(true))
            && self
                .store
                .suppression_of(&merged.profile)?
                .is_some_and(|s| s.suppresses_marketing())
        {
            merged
                .profile
                .insert("unsubscribed".into(), Value::Bool(true));
        }
        let mut batch = WriteBatch::default();
        batch.put_contact(&merged);
        // The profile may change segments: checked at the next tick.
        if !self.program.segments.is_empty() {
            segments::request_check(&self.store, &mut batch, &c.id)?;
        }
        self.store.apply(batch)?;
        Ok(())
    }

    // ------------------------------------------------------------ outbox

    /// Notes the sends that await an outcome (`recover_outbox` delivers them); records
    /// whose sends all have one are removed.
    fn load_outbox(&mut self) -> Result<()> {
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
    fn outbox_done(&mut self, message_id: &str, batch: &mut WriteBatch) {
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
    fn write_outbox(&mut self, sends: &[SendJob], batch: &mut WriteBatch) -> Result<()> {
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

    // ------------------------------------------------------------ timers

    /// Loads the timer records that the wheel's horizon now covers, a bucket at a time, and
    /// no more than `wheel_max_loaded` timers: a dense future (a million contacts who
    /// entered together) stays on disk until the wheel has room for it.
    fn refill_wheel(&mut self) -> Result<()> {
        let horizon = self.wheel.horizon_end().min(i64::MAX as u64) as Millis;
        let end = store::bucket_of(horizon);
        while self.loaded_until < end && self.wheel.len() < self.wheel_max_loaded {
            // The next bucket that holds anything (nothing is due before it).
            let Some(bucket) = self.store.first_timer_bucket(self.loaded_until)? else {
                self.loaded_until = end;
                break;
            };
            if bucket >= end {
                self.loaded_until = end;
                break;
            }
            let next = bucket + store::TIMER_BUCKET_MS;
            for record in self.store.timer_records(bucket, next)? {
                let mut pending = 0;
                for t in record.timers {
                    if self.track_timer(t, record.id) {
                        pending += 1;
                    }
                }
                if pending > 0 {
                    self.records.insert(record.id, (record.bucket, pending));
                }
            }
            self.loaded_until = next;
        }
        Ok(())
    }

    /// Puts a timer of a loaded record into the wheel; false if it is beyond the horizon.
    fn track_timer(&mut self, t: TimerEntry, record: u64) -> bool {
        let due = t.due;
        let entry = self.new_entry(t, record, false);
        self.insert_entry(entry, due)
    }

    /// Gives a timer of a loaded record its wheel entry (not yet in the wheel). It becomes
    /// its instance's newest entry if `newest` (a timer just set) or if there is none yet.
    fn new_entry(&mut self, t: TimerEntry, record: u64, newest: bool) -> u64 {
        let entry = self.next_entry;
        self.next_entry += 1;
        if newest {
            self.live_entry.insert(t.instance, entry);
        } else {
            self.live_entry.entry(t.instance).or_insert(entry);
        }
        self.wheel_entries.insert(
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
    fn insert_entry(&mut self, entry: u64, due: Millis) -> bool {
        if self.wheel.insert(entry, wheel_time(due)).is_ok() {
            return true;
        }
        self.wheel_entries.remove(&entry);
        false
    }

    /// A timer is done (processed, or cancelled): its record counts down, and goes in
    /// `batch` when nothing in it is left.
    fn timer_done(&mut self, entry: u64, batch: &mut WriteBatch) {
        let Some(w) = self.wheel_entries.remove(&entry) else {
            return;
        };
        if self.live_entry.get(&w.instance) == Some(&entry) {
            self.live_entry.remove(&w.instance);
        }
        if let Some((bucket, pending)) = self.records.get_mut(&w.record) {
            *pending -= 1;
            if *pending == 0 {
                batch.del_timers(*bucket, w.record);
                self.records.remove(&w.record);
            }
        }
    }

    /// The timer writes of a batch, before it is applied: fired and cancelled timers are
    /// done, and the timers set go in as one record per bucket. Returns the wheel's
    /// changes, made once the batch is applied: entries to cancel, entries to insert.
    fn write_timers(
        &mut self,
        changes: TimerChanges,
        fired: Vec<u64>,
        batch: &mut WriteBatch,
    ) -> Result<WheelChanges> {
        for entry in fired {
            self.timer_done(entry, batch);
        }
        // An instance may move several times in a batch: only its first and last due count.
        let mut net: HashMap<u64, (Option<Millis>, Option<Millis>, String)> = HashMap::new();
        let mut order = Vec::new();
        for (old, new, id, contact) in changes {
            match net.get_mut(&id) {
                Some(n) => n.1 = new,
                None => {
                    order.push(id);
                    net.insert(id, (old, new, contact));
                }
            }
        }
        let mut cancel = Vec::new();
        let mut buckets: BTreeMap<Millis, Vec<TimerEntry>> = BTreeMap::new();
        for id in order {
            let (old, new, contact) = net.remove(&id).expect("noted above");
            if old == new {
                continue;
            }
            if let Some(old) = old {
                if let Some(&entry) = self.live_entry.get(&id) {
                    if self.wheel_entries.get(&entry).is_some_and(|w| w.due == old) {
                        self.timer_done(entry, batch);
                        cancel.push(entry);
                    }
                }
            }
            if let Some(due) = new {
                buckets
                    .entry(store::bucket_of(due))
                    .or_default()
                    .push(TimerEntry {
                        due,
                        instance: id,
                        contact,
                    });
            }
        }
        let mut insert = Vec::new();
        for (bucket, timers) in buckets {
            let record = self.store.next_id()?;
            batch.put_timers(bucket, record, &timers);
            if bucket < self.loaded_until {
                // A loaded bucket: its timers go into the wheel (after the batch is applied).
                let n = timers.len() as u32;
                for t in timers {
                    let due = t.due;
                    insert.push((self.new_entry(t, record, true), due));
                }
                self.records.insert(record, (bucket, n));
            }
        }
        Ok((cancel, insert))
    }

    /// The timers due at `now`, as inputs.
    pub fn due_timers(&mut self, now: Millis) -> Result<Vec<Input>> {
        let mut fired = Vec::new();
        self.wheel.advance(wheel_time(now), &mut fired);
        self.refill_wheel()?;
        self.wheel.advance(wheel_time(now), &mut fired);
        self.counters.timers_fired += fired.len() as u64;
        if let Some(f) = &mut self.timer_observer {
            for (_, due) in &fired {
                f(now - *due as Millis);
            }
        }
        Ok(fired
            .into_iter()
            .filter_map(|(entry, _)| {
                let w = self.wheel_entries.get(&entry)?;
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
        let timer = match self.wheel.next_expiry() {
            Some(t) => Some(t as Millis),
            // Nothing is due before the next stored bucket starts.
            None => self.store.first_timer_bucket(self.loaded_until)?,
        };
        let sched = self.next_schedule()?;
        let check = self.next_segment_check()?;
        Ok([timer, sched, check].into_iter().flatten().min())
    }

    pub fn timers_in_memory(&self) -> usize {
        self.wheel.len()
    }

    // ------------------------------------------------------------ segment schedules

    /// (journey, entry index, moment) of every scheduled entry's next run.
    fn schedules(&self) -> Result<Vec<(String, usize, String, Millis)>> {
        let mut out = Vec::new();
        for (name, j) in &self.program.journeys {
            for (i, e) in j.entries.iter().enumerate() {
                let key = schedule_key(name, i);
                let Some(last) = self.store.schedule_run(&key)? else {
                    continue;
                };
                if let (
                    Some(moment),
                    EntryIr::SegmentAt { segment, .. } | EntryIr::SegmentEvery { segment, .. },
                ) = (next_scheduled_run(e, last, self.default_zone), e)
                {
                    out.push((name.clone(), i, segment.clone(), moment));
                }
            }
        }
        Ok(out)
    }

    fn next_schedule(&self) -> Result<Option<Millis>> {
        Ok(self.schedules()?.into_iter().map(|s| s.3).min())
    }

    /// Enrolments for every schedule due at `now`; each runs once per moment, even after a
    /// restart (the run is recorded with the enrolments). A repeated schedule that missed
    /// several moments while the daemon was down runs once. Segment checks due at `now`
    /// come first (see `segments`).
    pub fn due_schedules(&mut self, now: Millis) -> Result<Vec<Input>> {
        let mut inputs = self.due_segment_checks(now)?;
        let mut batch = WriteBatch::default();
        for (journey, i, segment, moment) in self.schedules()? {
            if moment > now {
                continue;
            }
            let Some(seg) = self.program.segments.get(&segment).cloned() else {
                continue;
            };
            let since = crate::engine::cond::segment_lookback(&self.program, &seg).map(|w| now - w);
            for r in self.store.contacts_with_events_since(since) {
                let (c, events) = r?;
                let view = ContactView {
                    contact: &c,
                    events: &events,
                    program: &self.program,
                    now,
                };
                if view.segment_matches(&seg) {
                    inputs.push(Input::Enroll {
                        journey: journey.clone(),
                        contact: c.id.clone(),
                    });
                }
            }
            batch.set_schedule_run(&schedule_key(&journey, i), moment.max(now));
        }
        self.store.apply(batch)?;
        Ok(inputs)
    }

    // ------------------------------------------------------------ the batch

    /// Runs a group of inputs at `now` and commits them in one batch (flushed when durable).
    pub fn process(&mut self, inputs: Vec<Input>, now: Millis) -> Result<BatchOutcome> {
        use std::sync::atomic::Ordering::Relaxed;
        let started = std::time::Instant::now();
        self.stages.batches.fetch_add(1, Relaxed);
        self.stages.inputs.fetch_add(inputs.len() as u64, Relaxed);
        let mut out = BatchOutcome::default();
        let mut batch = WriteBatch::default();
        let inputs = if self.erased_sends.is_empty() {
            inputs
        } else {
            self.drop_erased_outcomes(inputs)
        };
        let inputs = if self.aliases.is_empty() {
            inputs
        } else {
            self.follow_aliases(inputs)
        };
        // Group by contact, keeping each contact's inputs in order (and contacts in the
        // order they first appear). One id string per contact, not per input.
        let mut group_of: HashMap<&str, usize> = HashMap::with_capacity(inputs.len());
        let mut slots: Vec<usize> = Vec::with_capacity(inputs.len());
        for input in &inputs {
            let next = group_of.len();
            slots.push(*group_of.entry(input.contact_hint()).or_insert(next));
        }
        let mut groups: Vec<(String, Vec<Input>)> =
            vec![(String::new(), Vec::new()); group_of.len()];
        drop(group_of);
        for (input, g) in inputs.into_iter().zip(slots) {
            let group = &mut groups[g];
            if group.1.is_empty() {
                group.0 = input.contact_hint().to_string();
            }
            group.1.push(input);
        }
        let mut work = BatchInProgress {
            batch: &mut batch,
            out: &mut out,
            timer_changes: Vec::new(),
            fired: Vec::new(),
        };
        let mut quiet_after: Vec<(String, bool)> = Vec::with_capacity(groups.len());
        for (contact, inputs) in groups {
            let quiet = self.process_contact(&contact, inputs, now, &mut work)?;
            quiet_after.push((contact, quiet));
        }
        let (cancelled, inserted) =
            self.write_timers(work.timer_changes, work.fired, &mut batch)?;
        self.write_outbox(&out.sends, &mut batch)?;
        out.writes = batch.writes;
        StageTimes::add(&self.stages.prepare_ns, started);
        let applying = std::time::Instant::now();
        self.store.apply(batch)?;
        StageTimes::add(&self.stages.apply_ns, applying);
        if self.durable {
            let flushing = std::time::Instant::now();
            self.store.flush()?;
            StageTimes::add(&self.stages.flush_ns, flushing);
            self.stages.flushes.fetch_add(1, Relaxed);
        }
        self.stages
            .outbox_depth
            .store(self.outbox_pending.len() as u64, Relaxed);
        self.counters.batches += 1;
        self.counters.writes += out.writes as u64;
        self.counters.transitions += out.transitions as u64;
        // So does the set of quiet contacts.
        for (contact, quiet) in quiet_after {
            if !quiet {
                self.quiet.remove(&contact);
            } else if !self.quiet.contains(&contact) {
                if self.quiet.len() >= QUIET_CONTACTS_MAX {
                    self.quiet.clear();
                }
                self.quiet.insert(contact);
            }
        }
        // The wheel mirrors the store only once the batch is applied.
        for entry in cancelled {
            self.wheel.cancel(entry);
        }
        for (entry, due) in inserted {
            self.insert_entry(entry, due);
        }
        Ok(out)
    }

    /// Runs one contact's inputs into the batch in progress. Returns whether the contact is
    /// quiet after them: in the store (it is written if new) with no instance in flight.
    fn process_contact(
        &mut self,
        contact_id: &str,
        inputs: Vec<Input>,
        now: Millis,
        work: &mut BatchInProgress,
    ) -> Result<bool> {
        let program = self.program.clone();
        // A quiet contact's events that nothing enters on, with no segment to keep current:
        // each is its own write, and nothing else happens (see `quiet`).
        if program.segments.is_empty()
            && self.quiet.contains(contact_id)
            && inputs.iter().all(|i| {
                matches!(i, Input::Event(e) if !enters_on(&program, &e.kind)
                    && (!consent::names_an_address(&e.kind)
                        || e.properties.contains_key(consent::ADDRESS)))
            })
        {
            let mut seen_ids: HashSet<String> = HashSet::new();
            for input in inputs {
                if let Input::Event(e) = input {
                    self.record_event(&e, work, &mut seen_ids)?;
                }
            }
            return Ok(true);
        }
        let stored = self.store.contact(contact_id)?;
        // A contact is written with its first event or instance, so one not in the store
        // has neither: nothing more to read.
        let known = stored.is_some();
        let contact = stored.unwrap_or_else(|| Contact {
            id: contact_id.to_string(),
            profile: Default::default(),
        });
        let instances = if known {
            self.store.instances_of(contact_id)?
        } else {
            Vec::new()
        };
        // The history is read only when something may look at it: an entry this event
        // could match, any segment (membership is kept current for all of them), an
        // enrolment, a resume or a segment check, or an instance in flight. An event nobody
        // listens to costs its own write and no read of the past. Nor does an instance
        // waiting in a `check` whose branches read no history (B1's `yes { end } no { end }`):
        // its click, its delivery report and its timer only decide which branch it takes.
        let mut needs_history = !program.segments.is_empty()
            || inputs.iter().any(|i| match i {
                Input::Event(e) | Input::Delivered { event: e, .. } => enters_on(&program, &e.kind),
                Input::Timer { .. } => false,
                Input::Enroll { .. } | Input::Resume { .. } | Input::SegmentCheck { .. } => true,
            });
        for i in instances.iter().filter(|i| i.is_active()) {
            if needs_history {
                break;
            }
            needs_history = !self.waits_without_history(i)?;
        }
        // Whether this contact's inputs can move anything: else an event is only written.
        let acts = needs_history || instances.iter().any(|i| i.is_active());
        let events = if needs_history && known {
            self.store.events_of(contact_id)?
        } else {
            Vec::new()
        };
        let mut round = ContactRound {
            world: World {
                program: &program,
                contact,
                events,
                now,
                default_zone: self.default_zone,
            },
            instances,
            dirty: BTreeSet::new(),
            contact_dirty: !known,
            seen_ids: HashSet::new(),
        };
        let checked = inputs
            .iter()
            .any(|i| matches!(i, Input::SegmentCheck { .. }));

        for input in inputs {
            match input {
                Input::Delivered {
                    message_id,
                    mut event,
                } => {
                    self.outbox_done(&message_id, work.batch);
                    // A bounce keeps the address it concerns: suppressed until it changes.
                    consent::name_the_address(&mut event, &round.world.contact);
                    self.event_input(event, acts, &mut round, work)?;
                }
                Input::Event(mut e) => {
                    consent::name_the_address(&mut e, &round.world.contact);
                    self.event_input(e, acts, &mut round, work)?
                }
                Input::Resume { instance, .. } => {
                    let instances = &round.instances;
                    let Some(idx) = instances.iter().position(|i| i.id == instance) else {
                        continue;
                    };
                    if !instances[idx].is_active() || self.paused.contains(&instances[idx].journey)
                    {
                        continue;
                    }
                    let since = instances[idx].step_since;
                    let events: Vec<Event> = round
                        .world
                        .events
                        .iter()
                        .filter(|e| e.at >= since)
                        .cloned()
                        .collect();
                    for e in &events {
                        if self.feed_event(idx, e, &mut round, work)? {
                            break;
                        }
                    }
                }
                Input::Timer {
                    due,
                    instance,
                    contact,
                    entry,
                } => {
                    let held = round
                        .instances
                        .iter()
                        .find(|i| i.id == instance)
                        .filter(|i| self.paused.contains(&i.journey))
                        .map(|i| i.journey.clone());
                    if let Some(journey) = held {
                        // The key stays on disk; `resume` fires it.
                        self.held.push((due, instance, contact, journey, entry));
                        continue;
                    }
                    work.fired.push(entry);
                    let idx = round.instances.iter().position(|i| i.id == instance);
                    if let Some(idx) = idx {
                        let inst = &mut round.instances[idx];
                        if inst.is_active() && inst.due == Some(due) {
                            // The timer key is already removed: the diff must not remove it again.
                            let fx =
                                self.step_instance(inst, StepInput::Timer(due), &mut round.world)?;
                            let after = inst.due;
                            if after != Some(due) {
                                work.timer_changes.push((
                                    Some(due),
                                    after,
                                    instance,
                                    contact_id.to_string(),
                                ));
                            }
                            round.dirty.insert(idx);
                            work.out.transitions += 1;
                            self.apply_effects(fx, &mut round, work);
                        }
                    }
                }
                // Evaluated with the others after the inputs.
                Input::SegmentCheck { .. } => {}
                Input::Enroll { journey, .. } => {
                    let j = program
                        .journeys
                        .get(&journey)
                        .ok_or_else(|| RuntimeError::UnknownJourney(journey.clone()))?;
                    self.enroll(j, None, &mut round, work)?;
                }
            }
        }
        // Segments: membership, `on join` entries, the next segment check.
        self.update_segments(&mut round, work, checked)?;
        for idx in &round.dirty {
            work.batch.put_instance(&round.instances[*idx]);
        }
        if round.contact_dirty {
            work.batch.put_contact(&round.world.contact);
        }
        Ok(!round.instances.iter().any(|i| i.is_active()))
    }

    /// Writes an event unless its idempotency id was seen before (in the store, or earlier
    /// in this batch); false for a duplicate.
    fn record_event(
        &mut self,
        e: &Event,
        work: &mut BatchInProgress,
        seen_ids: &mut HashSet<String>,
    ) -> Result<bool> {
        if let Some(id) = &e.id {
            if seen_ids.contains(id) || self.store.event_seen(id)? {
                work.out.duplicates += 1;
                return Ok(false);
            }
            seen_ids.insert(id.clone());
        }
        work.batch.put_event(e, self.store.next_id()?);
        Ok(true)
    }

    fn event_input(
        &mut self,
        e: Event,
        // False when the contact's inputs can move nothing (no instance in flight, no
        // entry on this event, no segment): the event is only written.
        acts: bool,
        round: &mut ContactRound,
        work: &mut BatchInProgress,
    ) -> Result<()> {
        if !self.record_event(&e, work, &mut round.seen_ids)? || !acts {
            return Ok(());
        }
        let events = &mut round.world.events;
        events.insert(events.partition_point(|x| x.at <= e.at), e.clone());
        // Waiting instances first: a click wakes its check, a goal ends its journey.
        // Contacts of paused journeys hold: `resume` offers them these events later.
        for idx in 0..round.instances.len() {
            let inst = &round.instances[idx];
            if !inst.is_active() || self.paused.contains(&inst.journey) {
                continue;
            }
            self.feed_event(idx, &e, round, work)?;
        }
        // Then entries: the event may enrol the contact in journeys.
        let program = self.program.clone();
        for j in program.journeys.values() {
            if step::entry_event_matches(j, &e, &round.world.view()) {
                self.enroll(j, Some(&e), round, work)?;
            }
        }
        Ok(())
    }

    /// Offers an event to one instance; true if it moved (or did something).
    fn feed_event(
        &mut self,
        idx: usize,
        e: &Event,
        round: &mut ContactRound,
        work: &mut BatchInProgress,
    ) -> Result<bool> {
        let inst = &mut round.instances[idx];
        let before = (inst.step, inst.parked, inst.due, inst.ended);
        let fx = self.step_instance(inst, StepInput::Event(e), &mut round.world)?;
        if before == (inst.step, inst.parked, inst.due, inst.ended) && fx.is_empty() {
            return Ok(false);
        }
        if before.2 != inst.due {
            let change = (before.2, inst.due, inst.id, inst.contact.clone());
            work.timer_changes.push(change);
        }
        round.dirty.insert(idx);
        work.out.transitions += 1;
        self.apply_effects(fx, round, work);
        Ok(true)
    }

    fn enroll(
        &mut self,
        j: &JourneyIr,
        entry_event: Option<&Event>,
        round: &mut ContactRound,
        work: &mut BatchInProgress,
    ) -> Result<bool> {
        if self.paused.contains(&j.name) {
            return Ok(false);
        }
        let world = &mut round.world;
        let instances = &mut round.instances;
        let earlier: Vec<&Instance> = instances.iter().filter(|i| i.journey == j.name).collect();
        if !step::reentry_allows(j, &earlier, world.now) {
            return Ok(false);
        }
        let hash = match self.heads.get(&j.name) {
            Some(h) => h.clone(),
            None => j.content_hash(),
        };
        let mut inst = Instance {
            id: self.store.next_id()?,
            journey: j.name.clone(),
            version: hash,
            contact: world.contact.id.clone(),
            step: None,
            parked: None,
            ended: None,
            entered_at: world.now,
            step_since: world.now,
            due: None,
            entry_event: entry_event.cloned(),
            path: Vec::new(),
            sent: Vec::new(),
        };
        let fx = step::advance(j, &mut inst, StepInput::Enter, world);
        if let Some(d) = inst.due {
            work.timer_changes
                .push((None, Some(d), inst.id, inst.contact.clone()));
        }
        instances.push(inst);
        round.dirty.insert(instances.len() - 1);
        work.out.transitions += 1;
        self.apply_effects(fx, round, work);
        Ok(true)
    }

    fn step_instance(
        &mut self,
        inst: &mut Instance,
        input: StepInput,
        world: &mut World,
    ) -> Result<Vec<Effect>> {
        let Some(ir) = self.version(&inst.version)? else {
            return Err(RuntimeError::Invalid(format!(
                "instance {} runs version {} of '{}', which the store does not have",
                inst.id, inst.version, inst.journey
            )));
        };
        Ok(step::advance(&ir, inst, input, world))
    }

    fn apply_effects(
        &mut self,
        fx: Vec<Effect>,
        round: &mut ContactRound,
        work: &mut BatchInProgress,
    ) {
        for f in fx {
            match f {
                // Into the batch's outbox record (`write_outbox`).
                Effect::Send(job) => work.out.sends.push(job),
                Effect::SetField { .. } => round.contact_dirty = true,
                Effect::Capped(ev) | Effect::Suppressed(ev) => {
                    // The engine already added it to the world's history.
                    if let Ok(seq) = self.store.next_id() {
                        work.batch.put_event(&ev, seq);
                    }
                }
                Effect::Timeline(t) => work.out.timeline.push(t),
            }
        }
    }
}

impl Runtime {
    /// Processes inputs at `now`, hands the sends to the sink, and processes what the sink
    /// reports (deliveries, failures) until nothing is left to do at this moment.
    pub fn run_at(
        &mut self,
        inputs: Vec<Input>,
        now: Millis,
        sink: &mut dyn Sink,
        timeline: &mut Vec<TimelineEntry>,
    ) -> Result<()> {
        let mut inputs = inputs;
        // Each round is a batch; sends made by a delivery's consequences go in the next one.
        for _ in 0..1_000 {
            if inputs.is_empty() {
                return Ok(());
            }
            let out = self.process(std::mem::take(&mut inputs), now)?;
            timeline.extend(out.timeline);
            for job in out.sends {
                inputs.extend(self.deliver(&job, now, sink));
            }
        }
        Err(RuntimeError::Invalid(
            "deliveries kept causing sends at one instant".into(),
        ))
    }

    /// Delivers what a crash left in the outbox: committed sends whose delivery was not
    /// recorded. A provider that honours the idempotency key sees each at most once.
    pub fn recover_outbox(
        &mut self,
        now: Millis,
        sink: &mut dyn Sink,
        timeline: &mut Vec<TimelineEntry>,
    ) -> Result<usize> {
        // The pending sends are known since the start (`load_outbox` read their contacts'
        // histories once): only the records are read again, for the jobs themselves.
        let jobs: Vec<SendJob> = self
            .store
            .outbox_records()?
            .into_iter()
            .flat_map(|(_, jobs)| jobs)
            .filter(|job| self.outbox_pending.contains_key(&job.message_id))
            .collect();
        let n = jobs.len();
        let mut inputs = Vec::new();
        for job in jobs {
            inputs.extend(self.deliver(&job, now, sink));
        }
        self.run_at(inputs, now, sink, timeline)?;
        Ok(n)
    }

    /// Due schedules and timers at `now`, run to quiescence.
    pub fn tick(
        &mut self,
        now: Millis,
        sink: &mut dyn Sink,
        timeline: &mut Vec<TimelineEntry>,
    ) -> Result<()> {
        let mut inputs = self.due_schedules(now)?;
        inputs.extend(self.due_timers(now)?);
        self.run_at(inputs, now, sink, timeline)
    }

    /// Hands sends to the sink; the inputs record the outcomes known at once (a sink that
    /// reports later sends them through its own way in).
    pub fn deliver_all(
        &mut self,
        jobs: &[SendJob],
        now: Millis,
        sink: &mut dyn Sink,
    ) -> Vec<Input> {
        jobs.iter()
            .filter_map(|job| self.deliver(job, now, sink))
            .collect()
    }

    /// Hands one send to the sink; the input records its outcome (none while pending).
    fn deliver(&mut self, job: &SendJob, now: Millis, sink: &mut dyn Sink) -> Option<Input> {
        let outcome = sink.deliver(job, now);
        let subject = self.subject_of(job);
        let event = delivery_event(job, now, subject, &outcome)?;
        Some(Input::Delivered {
            message_id: job.message_id.clone(),
            event,
        })
    }

    fn subject_of(&mut self, job: &SendJob) -> Option<String> {
        let ir = self.version(&job.version).ok().flatten()?;
        ir.messages
            .get(&job.message)?
            .fields
            .get("subject")
            .cloned()
    }
}

/// The store meta key of the paused journeys (a JSON list of names).
const PAUSED_META: &str = "paused";

/// The store's key of a scheduled entry's last run (`Store::schedule_run`).
pub fn schedule_key(journey: &str, entry: usize) -> String {
    format!("{journey}/{entry}")
}

/// Warnings for the one-shot plans of `program` that a deploy at `now` would never run:
/// `entry segment S at T` with T not after now, in a journey whose plan has not run (or
/// been deployed) before. Repeated plans and plans already recorded are not warned about.
pub fn past_plans(
    store: &Store,
    program: &Program,
    now: Millis,
    default_zone: chrono_tz::Tz,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (name, j) in &program.journeys {
        for (i, e) in j.entries.iter().enumerate() {
            if !matches!(e, EntryIr::SegmentAt { .. }) {
                continue;
            }
            if store.schedule_run(&schedule_key(name, i))?.is_some() {
                continue;
            }
            if next_scheduled_run(e, now, default_zone).is_none() {
                out.push(format!(
                    "journey {name}: `entry {}` is in the past: it will not run",
                    e.describe()
                ));
            }
        }
    }
    Ok(out)
}

/// When a scheduled entry (`entry segment S at …` or `every …`) runs next, given when it
/// last ran (or was deployed): a one-shot plan whose moment is not after that never runs
/// again (None); a repeated one runs at its next moment after it.
pub fn next_scheduled_run(
    entry: &EntryIr,
    last_run: Millis,
    default_zone: chrono_tz::Tz,
) -> Option<Millis> {
    match entry {
        EntryIr::SegmentAt { at, zone, .. } => {
            let tz = pick_zone(zone.as_deref(), None, default_zone);
            let moment = local_to_utc(tz, *at);
            (last_run < moment).then_some(moment)
        }
        EntryIr::SegmentEvery {
            weekday,
            minute_of_day,
            zone,
            ..
        } => {
            let tz = pick_zone(zone.as_deref(), None, default_zone);
            Some(next_local_moment(
                last_run + 1,
                None,
                *weekday,
                *minute_of_day,
                tz,
            ))
        }
        _ => None,
    }
}

/// The event a delivery outcome records: `message.sent`, `message.failed` (with `reason`),
/// `message.bounced` or `message.uncertain`; None while it is pending.
pub fn delivery_event(
    job: &SendJob,
    at: Millis,
    subject: Option<String>,
    outcome: &Delivery,
) -> Option<Event> {
    let mut e = sent_event(job, at, subject);
    match outcome {
        Delivery::Sent => {}
        Delivery::Failed(reason) | Delivery::Bounced(reason) | Delivery::Uncertain(reason) => {
            e.kind = match outcome {
                Delivery::Failed(_) => MESSAGE_FAILED,
                Delivery::Bounced(_) => MESSAGE_BOUNCED,
                _ => MESSAGE_UNCERTAIN,
            }
            .into();
            e.properties
                .insert("reason".into(), Value::String(reason.clone()));
        }
        Delivery::Pending => return None,
    }
    Some(e)
}

/// The `message.sent` event a delivery records.
pub fn sent_event(job: &SendJob, at: Millis, subject: Option<String>) -> Event {
    let mut properties = serde_json::Map::new();
    if let Some(l) = &job.label {
        properties.insert("label".into(), Value::String(l.clone()));
    }
    if let Some(s) = subject {
        properties.insert("subject".into(), Value::String(s));
    }
    properties.insert("step".into(), Value::String(job.step.clone()));
    Event {
        id: None,
        contact: job.contact.clone(),
        kind: MESSAGE_SENT.into(),
        at,
        properties,
        context: None,
        journey: Some(job.journey.clone()),
        message: Some(job.message.clone()),
        link: None,
        channel: Some(job.channel),
        message_id: Some(job.message_id.clone()),
    }
}

/// A timeline line for people: `2026-03-01 09:00  angela  welcome_promo  sent welcome (email)`.
pub fn describe(h: &Happening) -> String {
    match h {
        Happening::Entered => "entered".into(),
        Happening::Step { step } => format!("step {step}"),
        Happening::Sent { message, channel } => format!("sent {message} ({})", channel.as_str()),
        Happening::Held {
            step,
            until,
            reason,
        } => format!("held {step} until {} ({reason})", fmt_time(*until)),
        Happening::Skipped { message, policy } => format!("skipped {message} (policy {policy})"),
        Happening::Branched { step, to } => format!("{step} → {to}"),
        Happening::Set { field, value } => format!("set contact.{field} = {value}"),
        Happening::Ended { reason } => format!(
            "ended ({})",
            serde_json::to_value(reason)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        ),
        Happening::Migrated { from, to } => format!("migrated {from} → {to}"),
        Happening::Error { step, error } => format!("error at {step}: {error}"),
        Happening::Suppressed { message, reason } => format!("suppressed {message} ({reason})"),
    }
}

pub use crate::engine::calendar::fmt_time;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EndReason;

    const T0: Millis = 1_772_355_600_000; // 2026-03-01T09:00:00Z

    fn program(src: &str) -> Program {
        let mut loaded = crate::lang::Loaded::default();
        crate::lang::add_source(&mut loaded, "q.journey", src.to_string());
        crate::compile::compile(&loaded).program.expect("compiles")
    }

    fn event(contact: &str, kind: &str, id: Option<&str>, at: Millis) -> Input {
        Input::Event(Event {
            id: id.map(String::from),
            contact: contact.into(),
            kind: kind.into(),
            at,
            ..Event::default()
        })
    }

    fn run(rt: &mut Runtime, inputs: Vec<Input>, at: Millis) -> BatchOutcome {
        rt.process(inputs, at).unwrap()
    }

    /// Whether a contact's history is read for an instance waiting in a check follows from
    /// what its branches may do: branches that only end (or wait, or split) need none; a
    /// branch that asks about the history, a send (its policy counts sends) or a goal gets
    /// all of it, and answers as if it had always been read.
    #[test]
    fn a_waiting_check_reads_the_history_only_if_a_branch_can_look_at_it() {
        let src = r#"journey plain {
  entry event "signup"
  policy none
  send email hello { subject "Hello" text "hi" }
  check clicked hello within 1h {
    yes { split random { 50% a { wait 1h } 50% b { end } } }
    no { end }
  }
}
journey asks {
  entry event "join"
  policy none
  send email hi { subject "Hi" text "hi" }
  check clicked hi within 1h {
    yes {
      if event "purchase" in last 15d { set contact.buyer = true } else { not_buyer: set contact.buyer = false }
    }
    no { end }
  }
}
journey sends {
  entry event "enrol"
  policy none
  send email one { subject "One" text "hi" }
  check clicked one within 1h {
    yes { end }
    no { send email two { subject "Two" text "hi" } }
  }
}
journey converts {
  entry event "start"
  policy none
  goal event "purchase"
  send email three { subject "Three" text "hi" }
  check clicked three within 1h {
    yes { end }
    no { end }
  }
}"#;
        let dir = tempfile::tempdir().unwrap();
        let mut rt = Runtime::new(Store::open(dir.path()).unwrap(), T0, chrono_tz::UTC).unwrap();
        rt.deploy(program(src), T0).unwrap();
        // ann bought before she joined; bob did not.
        run(&mut rt, vec![event("ann", "purchase", None, T0)], T0);
        let entries = ["signup", "join", "enrol", "start"];
        for contact in ["ann", "bob"] {
            let inputs = entries
                .iter()
                .map(|e| event(contact, e, None, T0 + 1))
                .collect();
            run(&mut rt, inputs, T0 + 1);
        }
        let waiting: BTreeMap<String, bool> = rt
            .store
            .instances_of("ann")
            .unwrap()
            .iter()
            .map(|i| (i.journey.clone(), rt.waits_without_history(i).unwrap()))
            .collect();
        let expected: BTreeMap<String, bool> = [
            ("plain", true),
            ("asks", false),
            ("sends", false),
            ("converts", false),
        ]
        .into_iter()
        .map(|(j, b)| (j.to_string(), b))
        .collect();
        assert_eq!(waiting, expected);
        // The click on `hi` finds the purchase in the history of ann, and none in bob's.
        for contact in ["ann", "bob"] {
            let click = Input::Event(Event {
                contact: contact.into(),
                kind: "clicked".into(),
                at: T0 + 2,
                journey: Some("asks".into()),
                message: Some("hi".into()),
                message_id: rt
                    .store
                    .instances_of(contact)
                    .unwrap()
                    .iter()
                    .find(|i| i.journey == "asks")
                    .and_then(|i| i.last_sent("hi").map(|s| s.1.clone())),
                ..Event::default()
            });
            run(&mut rt, vec![click], T0 + 2);
        }
        let buyer = |c: &str| {
            rt.store
                .contact(c)
                .unwrap()
                .unwrap()
                .profile
                .get("buyer")
                .cloned()
        };
        assert_eq!(buyer("ann"), Some(serde_json::json!(true)));
        assert_eq!(buyer("bob"), Some(serde_json::json!(false)));
    }

    /// The timers a batch sets are one record; cancelled and fired timers count it down and
    /// the last one removes it. Far records stay on disk until the horizon reaches them, a
    /// restarted runtime loads them, and a timer whose instance moved on does nothing.
    #[test]
    fn timers_are_one_record_per_batch_and_go_when_all_are_done() {
        let src = r#"journey nudge {
  entry event "signup"
  goal event "purchase"
  wait 1h
  send email later { subject "Later" text "hi" }
}
journey slow {
  entry event "slow"
  goal event "purchase"
  wait 30d
  send email much_later { subject "Later" text "hi" }
}"#;
        let dir = tempfile::tempdir().unwrap();
        let mut rt = Runtime::new(Store::open(dir.path()).unwrap(), T0, chrono_tz::UTC).unwrap();
        rt.deploy(program(src), T0).unwrap();
        // The wheel fills at its first look at the time.
        assert!(rt.due_timers(T0).unwrap().is_empty());
        let signups: Vec<Input> = (0..50)
            .map(|i| event(&format!("c{i}"), "signup", None, T0))
            .collect();
        let out = run(&mut rt, signups, T0);
        // 50 events, 50 contacts, 50 instances, and one record for the 50 timers.
        assert_eq!(out.writes, 151);
        assert_eq!(rt.store.timer_count().unwrap(), 50);
        assert_eq!(rt.timers_in_memory(), 50);
        // Ten purchases cancel ten timers; the record stays for the other forty.
        let buys: Vec<Input> = (0..10)
            .map(|i| event(&format!("c{i}"), "purchase", None, T0 + 1_000))
            .collect();
        run(&mut rt, buys, T0 + 1_000);
        assert_eq!(rt.timers_in_memory(), 40);
        assert_eq!(
            rt.store.timer_count().unwrap(),
            50,
            "stale until the record goes"
        );
        // A far timer stays on disk, out of the wheel.
        run(&mut rt, vec![event("z", "slow", None, T0)], T0 + 2_000);
        assert_eq!(rt.timers_in_memory(), 40);
        assert_eq!(rt.store.timer_count().unwrap(), 51);
        drop(rt);

        // After a restart: the near record is loaded whole (the ten stale timers too).
        let store = Store::open(dir.path()).unwrap();
        let mut rt = Runtime::new(store, T0 + 3_000, chrono_tz::UTC).unwrap();
        rt.deploy(program(src), T0 + 3_000).unwrap();
        let mut sink = MemorySink::default();
        let mut timeline = Vec::new();
        let due = T0 + 3_600_000;
        assert_eq!(rt.next_wake().unwrap(), Some(store::bucket_of(due)));
        rt.tick(due - 1, &mut sink, &mut timeline).unwrap();
        assert_eq!(rt.timers_in_memory(), 50);
        assert!(sink.delivered.is_empty(), "nothing before its time");
        rt.tick(due, &mut sink, &mut timeline).unwrap();
        // Forty sends; the ten stale timers did nothing; the record is gone.
        assert_eq!(sink.delivered.len(), 40);
        assert_eq!(
            rt.store.timer_count().unwrap(),
            1,
            "only the far one is left"
        );
        assert_eq!(rt.timers_in_memory(), 0);
        let far = rt.store.first_timer().unwrap().unwrap();
        assert_eq!(far.0, T0 + 2_000 + 30 * 86_400_000);
    }

    /// A dense future stays on disk: the wheel loads a bucket at a time while it has room,
    /// and every timer still fires, in order.
    #[test]
    fn the_wheel_loads_no_more_than_it_may_hold() {
        let src = r#"journey later {
  entry event "signup"
  wait 5h
  send email hi { subject "Hi" text "hi" }
}"#;
        let dir = tempfile::tempdir().unwrap();
        let mut rt = Runtime::new(Store::open(dir.path()).unwrap(), T0, chrono_tz::UTC).unwrap();
        rt.deploy(program(src), T0).unwrap();
        for k in 0..5i64 {
            let at = T0 + k * 120_000;
            let signups: Vec<Input> = (0..10)
                .map(|i| event(&format!("c{k}_{i}"), "signup", None, at))
                .collect();
            run(&mut rt, signups, at);
        }
        assert_eq!(
            rt.timers_in_memory(),
            0,
            "five hours out: beyond the horizon"
        );
        drop(rt);
        let mut rt = Runtime::new(Store::open(dir.path()).unwrap(), T0, chrono_tz::UTC).unwrap();
        rt.deploy(program(src), T0).unwrap();
        rt.wheel_max_loaded = 10;
        let mut sink = MemorySink::default();
        let mut timeline = Vec::new();
        let first = T0 + 5 * 3_600_000;
        rt.tick(first - 1, &mut sink, &mut timeline).unwrap();
        assert_eq!(rt.timers_in_memory(), 10, "one bucket, then no more room");
        let last = first + 4 * 120_000;
        for _ in 0..10 {
            rt.tick(last, &mut sink, &mut timeline).unwrap();
        }
        assert_eq!(sink.delivered.len(), 50);
        let order: Vec<&str> = sink
            .delivered
            .iter()
            .map(|(j, _)| &j.contact[..2])
            .collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "earlier buckets fire first");
        assert_eq!(rt.store.timer_count().unwrap(), 0);
    }

    /// A batch's sends are one outbox record. Outcomes count it down; after a restart only
    /// the sends with no outcome are delivered again, and the record then goes.
    #[test]
    fn the_outbox_is_one_record_per_batch_and_a_restart_resends_only_what_has_no_outcome() {
        let src = r#"journey hello {
  entry event "signup"
  send email hi { subject "Hi" text "hi" }
}"#;
        let dir = tempfile::tempdir().unwrap();
        let mut rt = Runtime::new(Store::open(dir.path()).unwrap(), T0, chrono_tz::UTC).unwrap();
        rt.deploy(program(src), T0).unwrap();
        let signups: Vec<Input> = (0..10)
            .map(|i| event(&format!("c{i}"), "signup", None, T0))
            .collect();
        let out = run(&mut rt, signups, T0);
        assert_eq!(out.sends.len(), 10);
        // 10 events, 10 contacts, 10 instances, one outbox record.
        assert_eq!(out.writes, 31);
        assert_eq!(rt.store.outbox_records().unwrap().len(), 1);
        assert_eq!(rt.store.outbox().unwrap().len(), 10);
        let depth = |rt: &Runtime| {
            rt.stages
                .outbox_depth
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        assert_eq!(depth(&rt), 10, "the metric's gauge");
        let reported: Vec<Input> = out.sends[..4]
            .iter()
            .map(|job| Input::Delivered {
                message_id: job.message_id.clone(),
                event: delivery_event(job, T0 + 5, None, &Delivery::Sent).unwrap(),
            })
            .collect();
        run(&mut rt, reported, T0 + 5);
        assert_eq!(depth(&rt), 6);
        assert_eq!(rt.store.outbox_records().unwrap().len(), 1);
        let pending: Vec<String> = rt
            .store
            .outbox()
            .unwrap()
            .into_iter()
            .map(|j| j.message_id)
            .collect();
        let expected: Vec<String> = out.sends[4..]
            .iter()
            .map(|j| j.message_id.clone())
            .collect();
        assert_eq!(pending, expected);
        drop(rt);

        let mut rt =
            Runtime::new(Store::open(dir.path()).unwrap(), T0 + 10, chrono_tz::UTC).unwrap();
        rt.deploy(program(src), T0 + 10).unwrap();
        let mut sink = MemorySink::default();
        let mut timeline = Vec::new();
        assert_eq!(
            rt.recover_outbox(T0 + 10, &mut sink, &mut timeline)
                .unwrap(),
            6
        );
        let resent: Vec<String> = sink
            .delivered
            .iter()
            .map(|(j, _)| j.message_id.clone())
            .collect();
        assert_eq!(resent, expected);
        assert!(rt.store.outbox_records().unwrap().is_empty());
        assert!(rt.store.outbox().unwrap().is_empty());
    }

    /// Events of a contact that nothing listens to skip its reads once it is known, and
    /// everything that may listen (a journey deployed later, an instance in flight, an
    /// idempotency id seen before) is still honoured.
    #[test]
    fn quiet_contacts_are_written_without_reads_and_nothing_is_missed() {
        let mut rt = Runtime::new(Store::temporary().unwrap(), T0, chrono_tz::UTC).unwrap();
        rt.durable = false;
        run(&mut rt, vec![event("ann", "page_view", Some("e1"), T0)], T0);
        assert!(rt.quiet.contains("ann"));
        assert!(rt.store.contact("ann").unwrap().is_some());
        // Quiet now: written directly; an id seen in an earlier batch or in this one is a
        // duplicate.
        let out = run(
            &mut rt,
            vec![
                event("ann", "page_view", Some("e1"), T0 + 1),
                event("ann", "page_view", Some("e2"), T0 + 2),
                event("ann", "page_view", Some("e2"), T0 + 3),
                event("ann", "page_view", None, T0 + 4),
            ],
            T0 + 10,
        );
        assert_eq!(out.duplicates, 2);
        assert_eq!(rt.store.events_of("ann").unwrap().len(), 3);

        // A journey that enters on `signup`, with a goal: ann is still quiet for page views,
        // but her signup enrols her, and from then on her events reach the instance.
        rt.deploy(
            program(
                r#"journey welcome {
  entry event "signup"
  goal event "purchase"
  wait 3d
  send email later { subject "Later" text "hi" }
}"#,
            ),
            T0 + 20,
        )
        .unwrap();
        run(
            &mut rt,
            vec![event("ann", "signup", None, T0 + 30)],
            T0 + 30,
        );
        let inst = rt.store.instances_of("ann").unwrap();
        assert_eq!(inst.len(), 1);
        assert!(inst[0].is_active());
        assert!(!rt.quiet.contains("ann"), "an instance is in flight");
        run(
            &mut rt,
            vec![event("ann", "purchase", None, T0 + 40)],
            T0 + 40,
        );
        let inst = rt.store.instances_of("ann").unwrap();
        assert_eq!(inst[0].ended, Some(EndReason::Converted));
        assert!(rt.quiet.contains("ann"), "the journey ended: quiet again");
        assert_eq!(rt.store.events_of("ann").unwrap().len(), 5);

        // A new contact is read (and written) once before it counts as quiet.
        run(
            &mut rt,
            vec![event("bob", "page_view", None, T0 + 50)],
            T0 + 50,
        );
        assert!(rt.store.contact("bob").unwrap().is_some());
        assert!(rt.quiet.contains("bob"));
    }
}
