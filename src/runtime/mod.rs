//! The driver: the one place where engine, store and delivery meet. It turns inputs (events,
//! due timers, enrolments, schedules) into calls of the pure step function, writes every
//! resulting instance, timer, outbox entry and event in one atomic batch per group of inputs
//! (group commit), flushes before it acknowledges, and hands sends to a `Sink`.
//! The daemon, `journey test` and `journey simulate` all run through it; only the clock and
//! the sink differ.

mod batch;
mod clock;
mod deploys;
mod driving;
mod erase;
mod experiments;
pub mod figures;
mod merge;
mod outbox;
mod pause;
mod push_tokens;
mod reconnect;
mod routing;
mod schedules;
mod timers;
pub use deploys::deployed_versions;
pub use erase::Erasure;
pub use experiments::{journey_record_contact, recorded_decision};
pub use pause::PAUSED_META;
pub use routing::INBOX_TAKE;
pub use schedules::{next_scheduled_run, past_plans, schedule_key};

pub mod live;
pub mod plan;
pub mod segments;
pub mod sink;

use crate::compile::ir::{EntryIr, JourneyIr, Program, StepId};
use crate::engine::calendar::{local_to_utc, next_local_moment, pick_zone, Gap};
use crate::engine::cond::ContactView;
use crate::engine::consent;
use crate::engine::step::{self, Input as StepInput, World};
use crate::engine::wheel::TimingWheel;
use crate::engine::{
    Contact, Effect, Event, Happening, Instance, Millis, SendJob, TimelineEntry, MESSAGE_SENT,
};

pub use crate::engine::{MESSAGE_BOUNCED, MESSAGE_FAILED, MESSAGE_UNCERTAIN};
use crate::store::{self, Store, StoreError, TimerEntry, WriteBatch};
use chrono_tz::Tz;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

pub use clock::{Clock, SystemClock, VirtualClock};
pub use sink::{Delivery, LiveContext, MaySend, MemorySink, Outcome, SendContext, Sink};

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

impl RuntimeError {
    /// Whether the store's database did not answer: the work may be retried once it does.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, RuntimeError::Store(e) if e.is_unavailable())
    }
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

/// An instance's timer moved in a batch (set, moved or cleared); mirrored into the wheel
/// once the batch is applied.
struct TimerMove {
    old_due: Option<Millis>,
    new_due: Option<Millis>,
    instance: u64,
    contact: String,
}

/// What a batch builds while its contacts' inputs run: its writes, its outcome, the timer
/// moves to mirror into the wheel once it is applied, and the wheel entries that fired.
struct BatchInProgress<'b> {
    batch: &'b mut WriteBatch,
    out: &'b mut BatchOutcome,
    timer_changes: Vec<TimerMove>,
    fired: Vec<u64>,
    /// What the batch changes in the live figures, added once it is applied.
    figures: figures::FigureDelta,
}

/// One contact while its inputs run: what its steps read and change. Its moved instances
/// and its record are written once at the end, however often they changed.
struct ContactRound<'p> {
    world: World<'p>,
    instances: Vec<Instance>,
    /// The loaded instances as they were read (the first ones of `instances`), for the
    /// live figures.
    before: Vec<figures::Before>,
    /// Indexes of the instances that moved.
    dirty: BTreeSet<usize>,
    /// The contact's record is written at the end: it is new, or a step set a field.
    contact_dirty: bool,
    /// Idempotency ids of the events recorded so far.
    seen_ids: HashSet<String>,
}

/// What the wheel does once a batch is applied: entries to cancel, entries to insert.
struct WheelChanges {
    cancel: Vec<u64>,
    insert: Vec<WheelInsert>,
}

/// A wheel entry to insert, and when it is due.
struct WheelInsert {
    entry: u64,
    due: Millis,
}

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
    /// The journeys that got a new version.
    pub changed: Vec<VersionChange>,
    pub migrated: usize,
    /// Segments evaluated over every contact because their definition is new or changed.
    pub segments: segments::SegmentRefresh,
}

/// A journey whose deploy made a new version.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VersionChange {
    pub journey: String,
    /// The version new entries took before; none for a new journey.
    pub from: Option<String>,
    pub to: String,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    pub transitions: u64,
    pub writes: u64,
    pub batches: u64,
    pub timers_fired: u64,
    /// Inputs put in another daemon's partition's inbox (`routing`).
    pub routed: u64,
}

/// Where a group commit's time goes, shared with whoever reports it (the daemon's
/// `/metrics`): nanoseconds spent preparing batches (reads, the step function, encoding),
/// applying them to sled, and flushing, with the batches and inputs they carried; and the
/// outbox's depth after the last batch. An observer, when there is one, is told each
/// stage's time of each batch (the daemon's histograms).
#[derive(Default)]
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
    observer: Option<Arc<dyn StageObserver>>,
}

/// A stage of the group commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Reads, the step function, encoding.
    Prepare,
    /// Writing the batch to sled.
    Apply,
    /// Making it durable.
    Flush,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Prepare => "prepare",
            Stage::Apply => "apply",
            Stage::Flush => "flush",
        }
    }
}

/// Told how long each stage of each group commit took.
pub trait StageObserver: Send + Sync {
    fn observe(&self, stage: Stage, took: std::time::Duration);
}

impl StageTimes {
    /// Stage times that also tell `observer`.
    pub fn observed(observer: Arc<dyn StageObserver>) -> StageTimes {
        StageTimes {
            observer: Some(observer),
            ..StageTimes::default()
        }
    }

    /// Adds the time since `since` to `stage`.
    pub fn add(&self, stage: Stage, since: std::time::Instant) {
        let took = since.elapsed();
        let total = match stage {
            Stage::Prepare => &self.prepare_ns,
            Stage::Apply => &self.apply_ns,
            Stage::Flush => &self.flush_ns,
        };
        total.fetch_add(took.as_nanos() as u64, std::sync::atomic::Ordering::Relaxed);
        if let Some(o) = &self.observer {
            o.observe(stage, took);
        }
    }
}

impl std::fmt::Debug for StageTimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageTimes")
            .field("prepare_ns", &self.prepare_ns)
            .field("apply_ns", &self.apply_ns)
            .field("flush_ns", &self.flush_ns)
            .field("batches", &self.batches)
            .field("inputs", &self.inputs)
            .field("flushes", &self.flushes)
            .field("outbox_depth", &self.outbox_depth)
            .finish_non_exhaustive()
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
    /// The program, its versions, and what was worked out about them.
    deployed: deploys::Deployed,
    /// The timing wheel and the timer records it was filled from.
    timers: timers::Timers,
    /// The sends awaiting an outcome.
    outbox: outbox::Outbox,
    /// Paused journeys and their held timers.
    holds: pause::Holds,
    /// Contacts erased or merged while this runtime ran.
    identities: Identities,
    pub default_zone: Tz,
    /// Flush after each batch (the daemon); scenarios on a temporary store skip it.
    pub durable: bool,
    pub counters: Counters,
    /// Time spent per stage of the group commit.
    pub stages: Arc<StageTimes>,
    /// Per journey, step and message counts, kept as batches commit (`figures`), once
    /// `keep_figures` asked for them (the daemon with its console).
    pub figures: Arc<figures::LiveFigures>,
    keeps_figures: bool,
    /// Contacts known to be in the store with no instance in flight, as left by the
    /// batches this runtime committed (bounded by `QUIET_CONTACTS_MAX`). While no segment
    /// exists, an event for one of them that no journey enters on is only written: the
    /// contact and its instances are not read (`process_contact`). Instances become active
    /// only in `process_contact`, which updates this set after each batch is applied.
    quiet: HashSet<String>,
    /// The sends of the batch committing in the background (`process_in_background`),
    /// while one is: taken back from the outbox should its commit fail.
    committing: Option<Vec<SendJob>>,
    /// Whether the last batch settled (`settle`) had failed.
    settle_failed: bool,
    /// Inbox entries taken (`take_inbox`) for the next batch, which removes them.
    inbox_taken: Vec<Vec<u8>>,
}

/// What the runtime remembers of contacts that are gone, for inputs still on their way.
#[derive(Default)]
struct Identities {
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
        let mut rt = Runtime {
            store,
            deployed: deploys::Deployed::default(),
            timers: timers::Timers::new(now),
            outbox: outbox::Outbox::default(),
            holds: pause::Holds::default(),
            identities: Identities::default(),
            default_zone,
            durable: true,
            counters: Counters::default(),
            stages: Arc::default(),
            figures: Arc::default(),
            keeps_figures: false,
            quiet: HashSet::new(),
            committing: None,
            settle_failed: false,
            inbox_taken: Vec::new(),
        };
        rt.load_from_store()?;
        Ok(rt)
    }

    pub fn program(&self) -> &Arc<Program> {
        &self.deployed.program
    }

    /// Calls `f` with the lateness (fired − due, ms) of every timer that fires.
    pub fn set_timer_observer(&mut self, f: impl FnMut(Millis) + Send + 'static) {
        self.timers.observer = Some(Box::new(f));
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
        if !self.deployed.program.segments.is_empty() {
            for c in touched {
                segments::request_check(&self.store, &mut batch, c)?;
            }
        }
        self.store.apply(batch)?;
        Ok(())
    }

    /// `upsert_contact` for many: those of other daemons' partitions go to their inboxes in
    /// one batch.
    pub fn upsert_contacts(&mut self, contacts: &[Contact]) -> Result<()> {
        let routed = self.route_upserts(contacts)?;
        // The rest are upserted here; `upsert_contact` routes any whose partition went to
        // another daemon since.
        for c in contacts.iter().filter(|c| !routed.contains(&c.id)) {
            self.upsert_contact(c)?;
        }
        Ok(())
    }

    /// Creates or updates a contact's profile (keys given replace the stored ones).
    pub fn upsert_contact(&mut self, c: &Contact) -> Result<()> {
        // Another daemon's contact: to its inbox.
        if self.route_upsert(c)? {
            return Ok(());
        }
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
        if !self.deployed.program.segments.is_empty() {
            segments::request_check(&self.store, &mut batch, &c.id)?;
        }
        self.store.apply(batch)?;
        Ok(())
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
        Happening::Withheld { message, reason } => format!("withheld {message} ({reason})"),
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
        let mut rt = Runtime::new(
            crate::bench::pg_server::test_store_at(dir.path()),
            T0,
            chrono_tz::UTC,
        )
        .unwrap();
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
        let mut rt = Runtime::new(
            crate::bench::pg_server::test_store_at(dir.path()),
            T0,
            chrono_tz::UTC,
        )
        .unwrap();
        rt.deploy(program(src), T0).unwrap();
        // The wheel fills at its first look at the time.
        assert!(rt.due_timers(T0).unwrap().is_empty());
        let signups: Vec<Input> = (0..50)
            .map(|i| event(&format!("c{i}"), "signup", None, T0))
            .collect();
        let out = run(&mut rt, signups, T0);
        // 50 events, 50 contacts, 50 instances, and one record for the 50 timers (one per
        // partition of theirs, on a store several daemons may share).
        let records = (0..50)
            .map(|i| rt.store.partition_of(&format!("c{i}")))
            .collect::<BTreeSet<_>>()
            .len();
        assert_eq!(out.writes, 150 + records);
        assert_eq!(rt.store.timer_count().unwrap(), 50);
        assert_eq!(rt.timers_in_memory(), 50);
        // Ten purchases cancel ten timers; the record stays for the other forty.
        let buys: Vec<Input> = (0..10)
            .map(|i| event(&format!("c{i}"), "purchase", None, T0 + 1_000))
            .collect();
        run(&mut rt, buys, T0 + 1_000);
        assert_eq!(rt.timers_in_memory(), 40);
        // Stale until their record goes: a record whose timers were all cancelled goes
        // (on a store of one partition, none of the ten).
        let still: BTreeSet<u16> = (10..50)
            .map(|i| rt.store.partition_of(&format!("c{i}")))
            .collect();
        let stale = (0..10)
            .filter(|i| still.contains(&rt.store.partition_of(&format!("c{i}"))))
            .count();
        assert_eq!(rt.store.timer_count().unwrap(), 40 + stale);
        // A far timer stays on disk, out of the wheel.
        run(&mut rt, vec![event("z", "slow", None, T0)], T0 + 2_000);
        assert_eq!(rt.timers_in_memory(), 40);
        assert_eq!(rt.store.timer_count().unwrap(), 41 + stale);
        drop(rt);

        // After a restart: the near record is loaded whole (the ten stale timers too).
        let store = crate::bench::pg_server::test_store_at(dir.path());
        let mut rt = Runtime::new(store, T0 + 3_000, chrono_tz::UTC).unwrap();
        rt.deploy(program(src), T0 + 3_000).unwrap();
        let mut sink = MemorySink::default();
        let mut timeline = Vec::new();
        let due = T0 + 3_600_000;
        assert_eq!(rt.next_wake().unwrap(), Some(store::bucket_of(due)));
        rt.tick(due - 1, &mut sink, &mut timeline).unwrap();
        assert_eq!(rt.timers_in_memory(), 40 + stale);
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
        let mut rt = Runtime::new(
            crate::bench::pg_server::test_store_at(dir.path()),
            T0,
            chrono_tz::UTC,
        )
        .unwrap();
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
        let mut rt = Runtime::new(
            crate::bench::pg_server::test_store_at(dir.path()),
            T0,
            chrono_tz::UTC,
        )
        .unwrap();
        rt.deploy(program(src), T0).unwrap();
        rt.timers.max_loaded = 10;
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
        let mut rt = Runtime::new(
            crate::bench::pg_server::test_store_at(dir.path()),
            T0,
            chrono_tz::UTC,
        )
        .unwrap();
        rt.deploy(program(src), T0).unwrap();
        let signups: Vec<Input> = (0..10)
            .map(|i| event(&format!("c{i}"), "signup", None, T0))
            .collect();
        let out = run(&mut rt, signups, T0);
        assert_eq!(out.sends.len(), 10);
        // 10 events, 10 contacts, 10 instances, one outbox record (one per partition of
        // theirs, on a store several daemons may share).
        let records = (0..10)
            .map(|i| rt.store.partition_of(&format!("c{i}")))
            .collect::<BTreeSet<_>>()
            .len();
        assert_eq!(out.writes, 30 + records);
        assert_eq!(rt.store.outbox_records().unwrap().len(), records);
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
        let left = (4..10)
            .map(|i| rt.store.partition_of(&format!("c{i}")))
            .collect::<BTreeSet<_>>()
            .len();
        assert_eq!(rt.store.outbox_records().unwrap().len(), left);
        // In the order committed, within a partition.
        let mut pending: Vec<String> = rt
            .store
            .outbox()
            .unwrap()
            .into_iter()
            .map(|j| j.message_id)
            .collect();
        pending.sort();
        let mut expected: Vec<String> = out.sends[4..]
            .iter()
            .map(|j| j.message_id.clone())
            .collect();
        expected.sort();
        assert_eq!(pending, expected);
        drop(rt);

        let mut rt = Runtime::new(
            crate::bench::pg_server::test_store_at(dir.path()),
            T0 + 10,
            chrono_tz::UTC,
        )
        .unwrap();
        rt.deploy(program(src), T0 + 10).unwrap();
        let mut sink = MemorySink::default();
        let mut timeline = Vec::new();
        assert_eq!(
            rt.recover_outbox(T0 + 10, &mut sink, &mut timeline)
                .unwrap(),
            6
        );
        let mut resent: Vec<String> = sink
            .delivered
            .iter()
            .map(|(j, _)| j.message_id.clone())
            .collect();
        resent.sort();
        assert_eq!(resent, expected);
        assert!(rt.store.outbox_records().unwrap().is_empty());
        assert!(rt.store.outbox().unwrap().is_empty());
    }

    /// Events of a contact that nothing listens to skip its reads once it is known, and
    /// everything that may listen (a journey deployed later, an instance in flight, an
    /// idempotency id seen before) is still honoured.
    #[test]
    fn quiet_contacts_are_written_without_reads_and_nothing_is_missed() {
        let mut rt =
            Runtime::new(crate::bench::pg_server::test_store(), T0, chrono_tz::UTC).unwrap();
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
