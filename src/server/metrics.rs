//! Counters for `GET /metrics`, in the Prometheus text format.

use crate::engine::MESSAGE_SENT;
use crate::engine::{Happening, Millis, SendJob, TimelineEntry};
use crate::runtime::live::Submission;
use crate::runtime::{Delivery, Input, Sink, StageTimes, MESSAGE_BOUNCED, MESSAGE_UNCERTAIN};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

/// Upper bounds of the timer-lateness buckets, in seconds.
const LATENESS_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
pub struct Metrics {
    pub events_ingested: AtomicU64,
    /// Events refused, by reason (`invalid`, `reserved_type`).
    events_rejected: Mutex<BTreeMap<&'static str, u64>>,
    pub requests: AtomicU64,
    pub transitions: AtomicU64,
    pub tracked: Mutex<BTreeMap<&'static str, u64>>,
    timeline: Mutex<BTreeMap<&'static str, u64>>,
    sends: Mutex<BTreeMap<(String, &'static str), u64>>,
    lateness_buckets: [AtomicU64; LATENESS_BUCKETS.len()],
    lateness_count: AtomicU64,
    lateness_sum_ms: AtomicU64,
    /// The engine's group-commit stages (the runtime adds to them).
    pub stages: Arc<StageTimes>,
}

impl Metrics {
    /// Counts `n` events refused for `reason`.
    pub fn rejected(&self, reason: &'static str, n: u64) {
        if n == 0 {
            return;
        }
        *self
            .events_rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(reason)
            .or_default() += n;
    }

    pub fn timeline(&self, entries: &[TimelineEntry]) {
        let mut t = self.timeline.lock().unwrap_or_else(|e| e.into_inner());
        for e in entries {
            let what = match &e.happening {
                Happening::Entered => "entered",
                Happening::Step { .. } => "step",
                Happening::Sent { .. } => "sent",
                Happening::Held { .. } => "held",
                Happening::Skipped { .. } => "skipped",
                Happening::Branched { .. } => "branched",
                Happening::Set { .. } => "set",
                Happening::Ended { .. } => "ended",
                Happening::Migrated { .. } => "migrated",
                Happening::Error { .. } => "error",
                Happening::Suppressed { .. } => "suppressed",
            };
            if matches!(what, "entered" | "step" | "ended" | "migrated") {
                self.transitions.fetch_add(1, Relaxed);
            }
            *t.entry(what).or_default() += 1;
        }
    }

    pub fn tracked(&self, what: &'static str) {
        *self
            .tracked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(what)
            .or_default() += 1;
    }

    pub fn timer_fired(&self, lateness_ms: Millis) {
        let ms = lateness_ms.max(0) as u64;
        let secs = ms as f64 / 1000.0;
        for (i, b) in LATENESS_BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.lateness_buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.lateness_count.fetch_add(1, Relaxed);
        self.lateness_sum_ms.fetch_add(ms, Relaxed);
    }

    fn send(&self, channel: &str, outcome: &'static str) {
        *self
            .sends
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((channel.to_string(), outcome))
            .or_default() += 1;
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let counter = |o: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            &mut o,
            "journey_events_ingested_total",
            "Events accepted through the API, Segment and tracking endpoints (durable).",
            self.events_ingested.load(Relaxed),
        );
        let _ = writeln!(
            o,
            "# HELP journey_events_rejected_total Events refused, by reason (invalid, reserved_type).\n# TYPE journey_events_rejected_total counter"
        );
        for (reason, n) in self
            .events_rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                o,
                "journey_events_rejected_total{{reason=\"{reason}\"}} {n}"
            );
        }
        counter(
            &mut o,
            "journey_transitions_total",
            "Contacts entering, moving to a step, ending or migrating.",
            self.transitions.load(Relaxed),
        );
        let _ = writeln!(
            o,
            "# HELP journey_timeline_total Timeline entries by kind.\n# TYPE journey_timeline_total counter"
        );
        for (what, n) in self
            .timeline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(o, "journey_timeline_total{{what=\"{what}\"}} {n}");
        }
        let _ = writeln!(
            o,
            "# HELP journey_sends_total Messages handed to a channel, by channel and outcome.\n# TYPE journey_sends_total counter"
        );
        for ((channel, outcome), n) in self.sends.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                o,
                "journey_sends_total{{channel=\"{channel}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        let _ = writeln!(
            o,
            "# HELP journey_tracking_total Clicks, opens, unsubscribes and delivery reports recorded.\n# TYPE journey_tracking_total counter"
        );
        for (what, n) in self
            .tracked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(o, "journey_tracking_total{{what=\"{what}\"}} {n}");
        }
        let _ = writeln!(
            o,
            "# HELP journey_timer_lateness_seconds How late timers fired (fired - due).\n# TYPE journey_timer_lateness_seconds histogram"
        );
        for (i, b) in LATENESS_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                o,
                "journey_timer_lateness_seconds_bucket{{le=\"{b}\"}} {}",
                self.lateness_buckets[i].load(Relaxed)
            );
        }
        let count = self.lateness_count.load(Relaxed);
        let _ = writeln!(
            o,
            "journey_timer_lateness_seconds_bucket{{le=\"+Inf\"}} {count}\njourney_timer_lateness_seconds_sum {}\njourney_timer_lateness_seconds_count {count}",
            self.lateness_sum_ms.load(Relaxed) as f64 / 1000.0
        );
        let _ = writeln!(
            o,
            "# HELP journey_commit_seconds_total Engine time per stage of its group commits: prepare (reads, steps, encoding), apply (to sled), flush (durable).\n# TYPE journey_commit_seconds_total counter"
        );
        for (stage, ns) in [
            ("prepare", &self.stages.prepare_ns),
            ("apply", &self.stages.apply_ns),
            ("flush", &self.stages.flush_ns),
        ] {
            let _ = writeln!(
                o,
                "journey_commit_seconds_total{{stage=\"{stage}\"}} {}",
                ns.load(Relaxed) as f64 / 1e9
            );
        }
        counter(
            &mut o,
            "journey_commit_batches_total",
            "Batches the engine committed.",
            self.stages.batches.load(Relaxed),
        );
        counter(
            &mut o,
            "journey_commit_inputs_total",
            "Inputs in those batches.",
            self.stages.inputs.load(Relaxed),
        );
        counter(
            &mut o,
            "journey_commit_flushes_total",
            "Flushes that made batches durable.",
            self.stages.flushes.load(Relaxed),
        );
        let outbox_depth = self.stages.outbox_depth.load(Relaxed);
        let _ = writeln!(
            o,
            "# HELP journey_outbox_depth Sends committed and not yet delivered.\n# TYPE journey_outbox_depth gauge\njourney_outbox_depth {outbox_depth}"
        );
        o
    }
}

/// Passes the channels' reports on to the live loop (`to`), counting each outcome by channel
/// on its way: the returned sender is the channels' inbox.
pub fn relay_outcomes(
    to: Sender<Submission>,
    metrics: Arc<Metrics>,
) -> std::io::Result<Sender<Submission>> {
    let (tx, rx) = std::sync::mpsc::channel::<Submission>();
    std::thread::Builder::new()
        .name("outcomes".into())
        .spawn(move || {
            for sub in rx {
                for input in &sub.inputs {
                    if let Input::Delivered { event, .. } = input {
                        let outcome = match event.kind.as_str() {
                            MESSAGE_SENT => "sent",
                            MESSAGE_BOUNCED => "bounced",
                            MESSAGE_UNCERTAIN => "uncertain",
                            _ => "failed",
                        };
                        let channel = event.channel.map(|c| c.as_str()).unwrap_or("unknown");
                        metrics.send(channel, outcome);
                    }
                }
                if to.send(sub).is_err() {
                    break;
                }
            }
        })?;
    Ok(tx)
}

/// Counts what a sink does with each send.
pub struct MeteredSink {
    pub inner: Box<dyn Sink + Send>,
    pub metrics: Arc<Metrics>,
}

impl Sink for MeteredSink {
    fn deliver(&mut self, job: &SendJob, now: Millis) -> Delivery {
        let d = self.inner.deliver(job, now);
        let outcome = match &d {
            Delivery::Sent => "sent",
            Delivery::Failed(_) => "failed",
            Delivery::Bounced(_) => "bounced",
            Delivery::Uncertain(_) => "uncertain",
            // Counted when the outcome arrives (`relay_outcomes`).
            Delivery::Pending => return d,
        };
        self.metrics.send(job.channel.as_str(), outcome);
        d
    }
}
