//! The live loop: the runtime on a real clock, fed by a channel of inputs. It takes what has
//! arrived (up to a batch), adds due schedules and timers and what the sink reported for the
//! previous batch, commits them as one group (one flush), hands sends to the sink, and
//! sleeps until the next input or the next due time. The daemon and
//! the benchmarks run it; scenarios drive `Runtime` directly on a virtual clock.
//!
//! When the store's database stops answering (PostgreSQL restarted, the network cut), the
//! loop waits for it with backoff: inputs with an acknowledgement are refused meanwhile
//! (their senders retry), the rest (the sink's reports, due schedules) is kept, and once
//! the database answers the runtime reads its state back (`runtime::reconnect`).

use super::{Input, Result, Runtime, RuntimeError, Sink};
use crate::engine::{Millis, TimelineEntry};
use crate::runtime::Clock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Called once the inputs are durable (`Ok`), or could not be committed (`Err`).
pub type Ack = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;

/// Work on the runtime itself, run by the loop's thread between batches (deploys, pausing
/// a journey, contact upserts): whatever needs `&mut Runtime` and is not an input. It
/// answers through its own channel.
pub type Control =
    Box<dyn FnOnce(&mut Runtime, &mut dyn Sink, Millis, &mut Vec<TimelineEntry>) + Send>;

/// Inputs arrive with an optional acknowledgement, called once they are durable.
pub struct Submission {
    pub inputs: Vec<Input>,
    pub ack: Option<Ack>,
    /// Run after the inputs that arrived before it are committed.
    pub control: Option<Control>,
}

impl Submission {
    /// Inputs with an acknowledgement through a std channel (blocking callers).
    pub fn with_channel(
        inputs: Vec<Input>,
    ) -> (
        Submission,
        std::sync::mpsc::Receiver<std::result::Result<(), String>>,
    ) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let ack: Ack = Box::new(move |r| {
            let _ = tx.send(r);
        });
        (
            Submission {
                inputs,
                ack: Some(ack),
                control: None,
            },
            rx,
        )
    }

    /// Inputs with an acknowledgement callback.
    pub fn new(inputs: Vec<Input>, ack: Option<Ack>) -> Submission {
        Submission {
            inputs,
            ack,
            control: None,
        }
    }

    /// Work on the runtime, run by the loop's thread.
    pub fn control(
        f: impl FnOnce(&mut Runtime, &mut dyn Sink, Millis, &mut Vec<TimelineEntry>) + Send + 'static,
    ) -> Submission {
        Submission {
            inputs: Vec::new(),
            ack: None,
            control: Some(Box::new(f)),
        }
    }
}

/// How the loop groups work.
#[derive(Debug, Clone, Copy)]
pub struct LoopConfig {
    /// The most inputs committed in one batch.
    pub max_batch: usize,
    /// The longest the loop sleeps with nothing due (it wakes at once for new input).
    pub idle: Duration,
}

impl Default for LoopConfig {
    fn default() -> Self {
        LoopConfig {
            max_batch: 128,
            idle: Duration::from_millis(200),
        }
    }
}

/// Runs until `stop` is set (what has arrived is committed first; timers wait on disk), or
/// until the channel is closed and nothing is left to do.
/// Each committed batch's timeline goes to `on_timeline`.
pub fn run_live(
    rt: &mut Runtime,
    clock: &dyn Clock,
    sink: &mut dyn Sink,
    inbox: &Receiver<Submission>,
    stop: &Arc<AtomicBool>,
    config: LoopConfig,
    on_timeline: &mut dyn FnMut(Vec<TimelineEntry>),
) -> Result<()> {
    let mut state = LoopState::default();
    let mut live = Live {
        rt,
        clock,
        sink,
        inbox,
        stop,
        config,
        on_timeline,
    };
    loop {
        match live.round(&mut state) {
            Ok(Flow::Go) => {}
            Ok(Flow::Stop) => return Ok(()),
            Err(e) if e.is_unavailable() && live.rt.store.can_be_unavailable() => {
                live.wait_for_store(&mut state, e)?
            }
            Err(e) => return Err(e),
        }
    }
}

/// The loop's parts.
struct Live<'a> {
    rt: &'a mut Runtime,
    clock: &'a dyn Clock,
    sink: &'a mut dyn Sink,
    inbox: &'a Receiver<Submission>,
    stop: &'a Arc<AtomicBool>,
    config: LoopConfig,
    on_timeline: &'a mut dyn FnMut(Vec<TimelineEntry>),
}

/// What the loop carries from one round to the next.
#[derive(Default)]
struct LoopState {
    /// Whether the outbox a crash left was delivered (the first round does it).
    recovered: bool,
    /// The inbox's senders are gone: nothing more can arrive.
    closed: bool,
    /// What the sink reported for the last batch's sends: committed with the next batch, so
    /// a round of work is one flush, not two.
    carried: Vec<Input>,
    timeline: Vec<TimelineEntry>,
    /// Inputs that nobody would send again, kept while the store is away: the sink's
    /// reports and due schedules' runs. Processed first once it is back.
    kept: Vec<Input>,
    /// Work on the runtime that arrived while the store was away, run once it is back.
    controls: Vec<Control>,
    /// The batch committing in the background (PostgreSQL), with what waits for its
    /// commit: the engine prepares the next batch meanwhile.
    committing: Option<Committing>,
    /// The partitions' generation the runtime last read its state for (several daemons on
    /// one database).
    generation: u64,
    /// When the inbox of this process's partitions was last read.
    inbox_read: Option<Instant>,
}

/// A batch whose commit is not known yet, and what leaves once it is.
struct Committing {
    acks: Vec<Ack>,
    sends: Vec<crate::engine::SendJob>,
    timeline: Vec<TimelineEntry>,
    /// Its inputs that nobody would send again (`LoopState::kept`), should it fail.
    kept: Vec<Input>,
}

enum Flow {
    Go,
    Stop,
}

/// What a round gathered from the inbox.
#[derive(Default)]
struct Gathered {
    inputs: Vec<Input>,
    acks: Vec<Ack>,
    controls: Vec<Control>,
    /// Copies of the inputs that came without an acknowledgement, when the store can go
    /// away (`LoopState::kept`).
    unacked: Vec<Input>,
}

impl Gathered {
    fn add(&mut self, s: Submission, keep_unacked: bool) {
        if s.ack.is_none() && keep_unacked {
            self.unacked.extend(s.inputs.iter().cloned());
        }
        self.inputs.extend(s.inputs);
        self.acks.extend(s.ack);
        self.controls.extend(s.control);
    }

    fn is_empty(&self) -> bool {
        self.inputs.is_empty() && self.acks.is_empty() && self.controls.is_empty()
    }
}

/// How often the inbox of this process's partitions is read, when several daemons share the
/// store (a read waits for the batch in flight, so it is not read every round).
const INBOX_POLL: Duration = Duration::from_millis(100);

/// The longest wait between two tries of an unavailable store.
const STORE_RETRY_MAX: Duration = Duration::from_secs(5);

impl Live<'_> {
    fn round(&mut self, state: &mut LoopState) -> Result<Flow> {
        let keep = self.rt.store.can_be_unavailable();
        if !state.recovered {
            // Anything left in the outbox by a crash is delivered first (at most once more;
            // should the store fail meanwhile, what was handed is not handed again).
            state.recovered = true;
            let now = self.clock.now();
            self.rt
                .recover_outbox(now, self.sink, &mut state.timeline)?;
            (self.on_timeline)(std::mem::take(&mut state.timeline));
        }
        // The partitions this process works on changed (another daemon joined, left or
        // took some over): the batch in flight is settled, then what the runtime keeps of
        // the store is read again for the partitions held now.
        if self.rt.store.is_shared() {
            let generation = self.rt.store.partition_generation();
            if generation != state.generation {
                self.settle(state)?;
                let now = self.clock.now();
                let outcomes = self.rt.repartition(now, self.sink)?;
                state.carried.extend(outcomes);
                state.generation = generation;
                // The partitions gained may have inbox entries older than their due timers.
                state.inbox_read = None;
            }
        }
        // Due schedules and timers first: they take their place in the batch before new
        // input does, so their lateness is at most the batch before, and a batch stays
        // short (`max_batch` counts them, and what is carried over).
        let now = self.clock.now();
        // What other daemons put in the inbox of this one's partitions, read first: a click
        // routed there before a check's deadline must be in the batch that would fire the
        // check's timer (it goes first in it), and while a take comes back full (a backlog,
        // as after a takeover) the timers wait for the rest. Not kept should the commit fail:
        // the entries stay in the store and are taken again.
        let mut from_inbox = Vec::new();
        let mut inbox_full = false;
        let inbox_cap = self.config.max_batch.clamp(1, super::INBOX_TAKE);
        if self.rt.store.is_shared() && state.inbox_read.is_none_or(|at| at.elapsed() >= INBOX_POLL)
        {
            from_inbox = self.rt.take_inbox(inbox_cap)?;
            // A full take leaves more: read again next round, not a poll later.
            inbox_full = from_inbox.len() >= inbox_cap;
            state.inbox_read = (!inbox_full).then(Instant::now);
        }
        let mut batch = self.rt.due_schedules(now)?;
        if !inbox_full {
            batch.extend(self.rt.due_timers(now)?);
        }
        batch.append(&mut state.carried);
        let mut got = Gathered {
            controls: std::mem::take(&mut state.controls),
            ..Gathered::default()
        };
        // A control ends the gathering: it runs after the inputs that came before it.
        while batch.len() + got.inputs.len() < self.config.max_batch && got.controls.is_empty() {
            match self.inbox.try_recv() {
                Ok(s) => got.add(s, keep),
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    state.closed = true;
                    break;
                }
            }
        }
        // Nothing new: the batch in flight is settled (its senders wait for it), and what
        // the sink reports for its sends makes the next round.
        if got.is_empty() && batch.is_empty() && from_inbox.is_empty() && state.committing.is_some()
        {
            self.settle(state)?;
            return Ok(Flow::Go);
        }
        let now = self.clock.now();
        // Nothing to do yet: the next due time, read once (it may read the store).
        let waiting = if got.is_empty() && batch.is_empty() && from_inbox.is_empty() {
            Some(self.rt.next_wake()?).filter(|next| next.is_none_or(|t| t > now))
        } else {
            None
        };
        if let Some(next) = waiting {
            if self.stop.load(Ordering::SeqCst) || (state.closed && next.is_none()) {
                return Ok(Flow::Stop);
            }
            let mut wait = match next {
                Some(t) => Duration::from_millis(
                    (t - now).clamp(0, self.config.idle.as_millis() as Millis) as u64,
                ),
                None => self.config.idle,
            };
            // Other daemons may put work in the inbox: it is looked at this often.
            if self.rt.store.is_shared() {
                let since = state.inbox_read.map_or(INBOX_POLL, |at| at.elapsed());
                wait = wait.min(INBOX_POLL.saturating_sub(since));
                if wait.is_zero() {
                    // Due now: the next round reads it.
                    return Ok(Flow::Go);
                }
            }
            if state.closed {
                // Nothing can arrive: sleep until the next due time.
                std::thread::sleep(wait);
                return Ok(Flow::Go);
            }
            match self.inbox.recv_timeout(wait) {
                Ok(s) => got.add(s, keep),
                Err(RecvTimeoutError::Timeout) => return Ok(Flow::Go),
                Err(RecvTimeoutError::Disconnected) => {
                    state.closed = true;
                    return Ok(Flow::Go);
                }
            }
        }
        // One batch: what came due, the outcomes of the last batch's sends, then what
        // arrived.
        let now = self.clock.now();
        // What nobody would send again, should the commit fail for want of the database
        // (timers stay on disk and fire again).
        let kept: Vec<Input> = if keep {
            batch
                .iter()
                .filter(|i| !matches!(i, Input::Timer { .. }))
                .cloned()
                .chain(std::mem::take(&mut got.unacked))
                .collect()
        } else {
            Vec::new()
        };
        // Inputs that came straight to this daemon for contacts it holds: the inbox is read
        // again, now that they are here, so that what another daemon acknowledged before
        // they were sent (a profile upsert, an event for the same contact) goes before them.
        // A read before they arrived could miss it, and an event would meet an old profile.
        if self.rt.store.is_shared()
            && got
                .inputs
                .iter()
                .any(|i| self.rt.store.works_on(i.contact_hint()))
        {
            let room = inbox_cap.saturating_sub(from_inbox.len()).max(1);
            match self.rt.take_inbox(room) {
                Ok(more) => {
                    if more.len() < room {
                        state.inbox_read = Some(Instant::now());
                    }
                    from_inbox.extend(more);
                }
                Err(e) => {
                    for a in got.acks {
                        a(Err(e.to_string()));
                    }
                    state.kept.extend(kept);
                    state.controls.extend(got.controls);
                    return Err(e);
                }
            }
        }
        batch.extend(got.inputs);
        // What came through the inbox goes first: a click routed there before a check's
        // deadline answers it, though the new holder of a partition finds the timer due too.
        if !from_inbox.is_empty() {
            from_inbox.append(&mut batch);
            batch = from_inbox;
        }
        if !batch.is_empty() || !got.acks.is_empty() {
            match self.rt.process_in_background(batch, now) {
                Ok(out) => {
                    // The batch before is committed: its acknowledgements and sends go.
                    self.committed(state, now);
                    state.committing = Some(Committing {
                        acks: got.acks,
                        sends: out.sends,
                        timeline: out.timeline,
                        kept,
                    });
                    // Unless the store commits in the background, this one is too.
                    if !self.rt.store.commits_in_background() {
                        self.committed(state, now);
                    }
                }
                Err(e) => {
                    if e.before_committed {
                        self.committed(state, now);
                    } else {
                        self.not_committed(state, &e.error);
                    }
                    for a in got.acks {
                        a(Err(e.error.to_string()));
                    }
                    state.kept.extend(kept);
                    state.controls.extend(got.controls);
                    return Err(e.error);
                }
            }
        }
        // Before a control touches the runtime, the batch in flight is settled.
        if !got.controls.is_empty() {
            if let Err(e) = self.settle(state) {
                state.controls.extend(got.controls);
                return Err(e);
            }
        }
        let mut controls = got.controls.into_iter();
        while let Some(c) = controls.next() {
            // A control sees the runtime with nothing half done: what the sink reported is
            // committed first.
            if !state.carried.is_empty() {
                let now = self.clock.now();
                let carried = std::mem::take(&mut state.carried);
                let copy = if keep { carried.clone() } else { Vec::new() };
                if let Err(e) = self.rt.run_at(carried, now, self.sink, &mut state.timeline) {
                    state.kept.extend(copy);
                    state.controls.push(c);
                    state.controls.extend(controls);
                    return Err(e);
                }
                (self.on_timeline)(std::mem::take(&mut state.timeline));
            }
            c(self.rt, self.sink, self.clock.now(), &mut state.timeline);
            (self.on_timeline)(std::mem::take(&mut state.timeline));
        }
        // A control that met an unavailable store answered its caller with the error; what
        // it may have left half done in memory is read back from the store.
        if keep {
            if let Some(why) = self.rt.store.unavailable() {
                return Err(crate::store::StoreError::Unavailable(why).into());
            }
        }
        Ok(Flow::Go)
    }

    /// The batch in flight is committed: acknowledged, its timeline told, its sends handed
    /// to the sink (what the sink reports goes in the next batch).
    fn committed(&mut self, state: &mut LoopState, now: Millis) {
        let Some(c) = state.committing.take() else {
            return;
        };
        for a in c.acks {
            a(Ok(()));
        }
        state.timeline.extend(c.timeline);
        let outcomes = self.rt.deliver_all(&c.sends, now, self.sink);
        state.carried.extend(outcomes);
        (self.on_timeline)(std::mem::take(&mut state.timeline));
    }

    /// The batch in flight failed: its senders are told, what nobody would send again is
    /// kept (its sends were taken back from the outbox by the runtime).
    fn not_committed(&mut self, state: &mut LoopState, error: &RuntimeError) {
        let Some(c) = state.committing.take() else {
            return;
        };
        for a in c.acks {
            a(Err(error.to_string()));
        }
        state.kept.extend(c.kept);
    }

    /// Waits for the batch in flight and lets out what waited for it.
    fn settle(&mut self, state: &mut LoopState) -> Result<()> {
        match self.rt.settle() {
            Ok(()) => {
                let now = self.clock.now();
                self.committed(state, now);
                Ok(())
            }
            Err(e) => {
                self.not_committed(state, &e);
                Err(e)
            }
        }
    }

    /// Waits for the store to answer again, trying with backoff. Meanwhile inputs with an
    /// acknowledgement are refused with the store's error (an HTTP 503: the sender retries),
    /// and the rest is kept. Once it answers, the runtime reads its state back, processes
    /// what was kept, and hands the sink the committed sends it never had.
    fn wait_for_store(&mut self, state: &mut LoopState, error: RuntimeError) -> Result<()> {
        let since = Instant::now();
        let why = error.to_string();
        tracing::error!("{why}: the engine waits for the database and tries again with backoff; ingestion answers 503 meanwhile");
        // The batch in flight, if any, committed or not: its senders learn which.
        let _ = self.settle(state);
        self.rt.store_lost();
        let mut delay = Duration::from_millis(100);
        let mut attempt = 0u32;
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return Err(error);
            }
            self.refuse_until(state, Instant::now() + delay, &why);
            attempt += 1;
            let now = self.clock.now();
            match self.try_resume(state, now) {
                Ok(()) => {
                    tracing::info!(
                        attempts = attempt,
                        seconds = since.elapsed().as_secs_f64(),
                        "the database answers again: the engine resumes"
                    );
                    return Ok(());
                }
                Err(e) if e.is_unavailable() => {
                    tracing::warn!(attempt, "{e}; trying again in {delay:?}");
                    delay = (delay * 2).min(STORE_RETRY_MAX);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Until `deadline`: inputs with an acknowledgement are refused, the rest kept.
    fn refuse_until(&mut self, state: &mut LoopState, deadline: Instant, why: &str) {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            if state.closed {
                std::thread::sleep(left);
                return;
            }
            match self.inbox.recv_timeout(left) {
                Ok(s) => {
                    if let Some(ack) = s.ack {
                        ack(Err(why.to_string()));
                    } else {
                        state.kept.extend(s.inputs);
                    }
                    state.controls.extend(s.control);
                }
                Err(RecvTimeoutError::Timeout) => return,
                Err(RecvTimeoutError::Disconnected) => state.closed = true,
            }
        }
    }

    /// One try: the database answers, the runtime's state is read back, what was kept is
    /// committed, and the sends never handed to the sink are handed.
    fn try_resume(&mut self, state: &mut LoopState, now: Millis) -> Result<()> {
        self.rt.store.ping()?;
        self.rt.reload_from_store(now)?;
        if !state.kept.is_empty() {
            let out = self.rt.process(state.kept.clone(), now)?;
            state.kept.clear();
            state.timeline.extend(out.timeline);
            let outcomes = self.rt.deliver_all(&out.sends, now, self.sink);
            // Added to, not replaced: the outcomes of the batch settled when the store went
            // away are there too, and must be recorded (or their sends stay in the outbox).
            state.carried.extend(outcomes);
            (self.on_timeline)(std::mem::take(&mut state.timeline));
        }
        let outcomes = self.rt.deliver_never_handed(now, self.sink)?;
        state.carried.extend(outcomes);
        Ok(())
    }
}
