//! The live loop: the runtime on a real clock, fed by a channel of inputs. It takes what has
//! arrived (up to a batch), adds due schedules and timers and what the sink reported for the
//! previous batch, commits them as one group (one flush), hands sends to the sink, and
//! sleeps until the next input or the next due time. The daemon and
//! the benchmarks run it; scenarios drive `Runtime` directly on a virtual clock.

use super::{Input, Result, Runtime, Sink};
use crate::engine::{Millis, TimelineEntry};
use crate::runtime::Clock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

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
    // Anything left in the outbox by a crash is delivered first (at most once more).
    let now = clock.now();
    let mut timeline = Vec::new();
    rt.recover_outbox(now, sink, &mut timeline)?;
    on_timeline(std::mem::take(&mut timeline));
    let mut closed = false;
    // What the sink reported for the last batch's sends: committed with the next batch, so
    // a round of work is one flush, not two.
    let mut carried: Vec<Input> = Vec::new();
    loop {
        // Due schedules and timers first: they take their place in the batch before new
        // input does, so their lateness is at most the batch before, and a batch stays
        // short (`max_batch` counts them, and what is carried over).
        let now = clock.now();
        let mut batch = rt.due_schedules(now)?;
        batch.extend(rt.due_timers(now)?);
        batch.append(&mut carried);
        let mut inputs = Vec::new();
        let mut acks = Vec::new();
        let mut controls: Vec<Control> = Vec::new();
        // A control ends the gathering: it runs after the inputs that came before it.
        while batch.len() + inputs.len() < config.max_batch && controls.is_empty() {
            match inbox.try_recv() {
                Ok(s) => {
                    inputs.extend(s.inputs);
                    acks.extend(s.ack);
                    controls.extend(s.control);
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        let now = clock.now();
        let idle = inputs.is_empty() && acks.is_empty() && controls.is_empty();
        // Nothing to do yet: the next due time, read once (it may read the store).
        let waiting = if idle && batch.is_empty() {
            Some(rt.next_wake()?).filter(|next| next.is_none_or(|t| t > now))
        } else {
            None
        };
        if let Some(next) = waiting {
            if stop.load(Ordering::SeqCst) || (closed && next.is_none()) {
                return Ok(());
            }
            let wait = match next {
                Some(t) => Duration::from_millis(
                    (t - now).clamp(0, config.idle.as_millis() as Millis) as u64,
                ),
                None => config.idle,
            };
            if closed {
                // Nothing can arrive: sleep until the next due time.
                std::thread::sleep(wait);
                continue;
            }
            match inbox.recv_timeout(wait) {
                Ok(s) => {
                    inputs.extend(s.inputs);
                    acks.extend(s.ack);
                    controls.extend(s.control);
                }
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    closed = true;
                    continue;
                }
            }
        }
        // One batch: what came due, the outcomes of the last batch's sends, then what
        // arrived.
        let now = clock.now();
        batch.extend(inputs);
        if !batch.is_empty() || !acks.is_empty() {
            let r = rt.process(batch, now);
            // Durable now (the runtime flushed the batch): acknowledge.
            for a in acks {
                a(r.as_ref().map(|_| ()).map_err(|e| e.to_string()));
            }
            let out = r?;
            timeline.extend(out.timeline);
            carried = rt.deliver_all(&out.sends, now, sink);
            on_timeline(std::mem::take(&mut timeline));
        }
        for c in controls {
            // A control sees the runtime with nothing half done: what the sink reported is
            // committed first.
            if !carried.is_empty() {
                let now = clock.now();
                rt.run_at(std::mem::take(&mut carried), now, sink, &mut timeline)?;
                on_timeline(std::mem::take(&mut timeline));
            }
            c(rt, sink, clock.now(), &mut timeline);
            on_timeline(std::mem::take(&mut timeline));
        }
    }
}
