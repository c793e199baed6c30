//! The daemon's metrics for `GET /metrics`: a `prometheus-client` registry, encoded in the
//! Prometheus text format. The engine's counts of its group commits (kept by the runtime in
//! `StageTimes`) are read at each scrape by a collector.

use crate::channels::{AttemptObserver, AttemptOutcome};
use crate::domain::Channel;
use crate::engine::MESSAGE_SENT;
use crate::engine::{Happening, Millis, SendJob, TimelineEntry};
use crate::runtime::live::Submission;
use crate::runtime::{
    Delivery, Input, Sink, Stage, StageObserver, StageTimes, MESSAGE_BOUNCED, MESSAGE_UNCERTAIN,
};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

/// The `Content-Type` of `render`'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds of the timer-lateness buckets, in seconds.
const LATENESS_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds of the group-commit stage buckets, in seconds.
const STAGE_BUCKETS: [f64; 13] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WhatLabel {
    what: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelOutcome {
    channel: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabel {
    channel: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn stage_histogram() -> Histogram {
    Histogram::new(STAGE_BUCKETS)
}

pub struct Metrics {
    registry: Registry,
    /// Events accepted through the API, Segment and tracking endpoints (durable).
    pub events_ingested: Counter,
    events_rejected: Family<ReasonLabel, Counter>,
    transitions: Counter,
    timeline: Family<WhatLabel, Counter>,
    sends: Family<ChannelOutcome, Counter>,
    tracked: Family<WhatLabel, Counter>,
    lateness: Histogram,
    attempts: Family<ChannelOutcome, Counter>,
    retries: Family<ChannelLabel, Counter>,
    store_waits: Family<ChannelLabel, Counter>,
    handed_over: Family<ChannelLabel, Counter>,
    /// The engine's group-commit stages (the runtime adds to them, and tells the
    /// `journey_commit_seconds` histograms).
    pub stages: Arc<StageTimes>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// The metrics of a daemon on `store`: with its lease's, on a database.
    pub fn with_store(store: &crate::store::Store) -> Metrics {
        let mut m = Metrics::new();
        m.registry
            .register_collector(Box::new(LeaseFigures(store.clone())));
        m
    }
}

/// The daemon's lease on a database store, read at each scrape (nothing on sled).
struct LeaseFigures(crate::store::Store);

impl std::fmt::Debug for LeaseFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeaseFigures")
    }
}

impl Collector for LeaseFigures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(l) = self.0.lease() else {
            return Ok(());
        };
        for (name, help, v) in [
            (
                "journey_partitions_held",
                "Partitions of the database this daemon holds (works on).",
                l.held.len() as i64,
            ),
            (
                "journey_partitions",
                "Partitions of the database, held by all its daemons together.",
                l.partitions as i64,
            ),
        ] {
            let g = ConstGauge::new(v);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        for (name, help, v) in [
            (
                "journey_lease_renewals",
                "Rounds of renewals of this daemon's partitions' leases.",
                l.renewals,
            ),
            (
                "journey_lease_takeovers",
                "Partitions this daemon took over from another daemon (killed, paused, cut off).",
                l.takeovers,
            ),
        ] {
            let c = ConstCounter::new(v);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        Ok(())
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::default();
        let events_ingested = Counter::default();
        r.register(
            "journey_events_ingested",
            "Events accepted through the API, Segment and tracking endpoints (durable)",
            events_ingested.clone(),
        );
        let events_rejected = Family::default();
        r.register(
            "journey_events_rejected",
            "Events refused, by reason (invalid, reserved_type)",
            events_rejected.clone(),
        );
        let transitions = Counter::default();
        r.register(
            "journey_transitions",
            "Contacts entering, moving to a step, ending or migrating",
            transitions.clone(),
        );
        let timeline = Family::default();
        r.register(
            "journey_timeline",
            "Timeline entries by kind",
            timeline.clone(),
        );
        let sends = Family::default();
        r.register(
            "journey_sends",
            "Messages handed to a channel, by channel and outcome",
            sends.clone(),
        );
        let tracked = Family::default();
        r.register(
            "journey_tracking",
            "Clicks, opens, unsubscribes and delivery reports recorded",
            tracked.clone(),
        );
        let lateness = Histogram::new(LATENESS_BUCKETS);
        r.register(
            "journey_timer_lateness_seconds",
            "How late timers fired (fired - due)",
            lateness.clone(),
        );
        let attempts = Family::default();
        r.register(
            "journey_dispatch_attempts",
            "Attempts at a provider, by channel and what came of each (sent, retried, failed, bounced, uncertain)",
            attempts.clone(),
        );
        let retries = Family::default();
        r.register(
            "journey_dispatch_retries",
            "Attempts made again after a transient failure (after the backoff or the provider's Retry-After), by channel",
            retries.clone(),
        );
        let store_waits = Family::default();
        r.register(
            "journey_dispatch_store_waits",
            "Sends whose message could not be rendered yet because the store did not answer a read, tried again after a backoff, by channel",
            store_waits.clone(),
        );
        let handed_over = Family::default();
        r.register(
            "journey_dispatch_handed_over",
            "Sends not made because their contact's partition went to another daemon first (this one was paused or cut off past its lease); that daemon sends them, by channel",
            handed_over.clone(),
        );
        let commit: Histograms<StageLabel> = Family::new_with_constructor(stage_histogram);
        r.register(
            "journey_commit_seconds",
            "Engine time per stage of each group commit: prepare (reads, steps, encoding), apply (to sled), flush (durable)",
            commit.clone(),
        );
        let stages = Arc::new(StageTimes::observed(Arc::new(CommitStages(commit))));
        r.register_collector(Box::new(EngineCounts(stages.clone())));
        Metrics {
            registry: r,
            events_ingested,
            events_rejected,
            transitions,
            timeline,
            sends,
            tracked,
            lateness,
            attempts,
            retries,
            store_waits,
            handed_over,
            stages,
        }
    }

    /// Counts `n` events refused for `reason`.
    pub fn rejected(&self, reason: &'static str, n: u64) {
        if n == 0 {
            return;
        }
        self.events_rejected
            .get_or_create(&ReasonLabel { reason })
            .inc_by(n);
    }

    pub fn timeline(&self, entries: &[TimelineEntry]) {
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
                Happening::Withheld { .. } => "withheld",
            };
            if matches!(what, "entered" | "step" | "ended" | "migrated") {
                self.transitions.inc();
            }
            self.timeline.get_or_create(&WhatLabel { what }).inc();
        }
    }

    pub fn tracked(&self, what: &'static str) {
        self.tracked.get_or_create(&WhatLabel { what }).inc();
    }

    pub fn timer_fired(&self, lateness_ms: Millis) {
        self.lateness.observe(lateness_ms.max(0) as f64 / 1000.0);
    }

    fn send(&self, channel: &'static str, outcome: &'static str) {
        self.sends
            .get_or_create(&ChannelOutcome { channel, outcome })
            .inc();
    }

    /// The Prometheus text exposition (`CONTENT_TYPE`).
    pub fn render(&self) -> String {
        let mut o = String::new();
        // Writing to a String does not fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut o, &self.registry);
        o
    }
}

impl AttemptObserver for Metrics {
    fn attempt(&self, channel: Channel, outcome: AttemptOutcome) {
        self.attempts
            .get_or_create(&ChannelOutcome {
                channel: channel.as_str(),
                outcome: outcome.as_str(),
            })
            .inc();
    }

    fn retry(&self, channel: Channel) {
        self.retries
            .get_or_create(&ChannelLabel {
                channel: channel.as_str(),
            })
            .inc();
    }

    fn handed_over(&self, channel: Channel) {
        self.handed_over
            .get_or_create(&ChannelLabel {
                channel: channel.as_str(),
            })
            .inc();
    }

    fn store_wait(&self, channel: Channel) {
        self.store_waits
            .get_or_create(&ChannelLabel {
                channel: channel.as_str(),
            })
            .inc();
    }
}

/// The runtime's stage times, into the `journey_commit_seconds` histograms.
struct CommitStages(Histograms<StageLabel>);

impl StageObserver for CommitStages {
    fn observe(&self, stage: Stage, took: Duration) {
        self.0
            .get_or_create(&StageLabel {
                stage: stage.as_str(),
            })
            .observe(took.as_secs_f64());
    }
}

/// The engine's batch counts and outbox depth, as the runtime keeps them, read at each
/// scrape. (The registry ends the help texts of registered metrics with a full stop; a
/// collector writes its own as given.)
#[derive(Debug)]
struct EngineCounts(Arc<StageTimes>);

impl Collector for EngineCounts {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        for (name, help, v) in [
            (
                "journey_commit_batches",
                "Batches the engine committed.",
                &s.batches,
            ),
            (
                "journey_commit_inputs",
                "Inputs in those batches.",
                &s.inputs,
            ),
            (
                "journey_commit_flushes",
                "Flushes that made batches durable.",
                &s.flushes,
            ),
        ] {
            let c = ConstCounter::new(v.load(Relaxed));
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        let depth = ConstGauge::new(s.outbox_depth.load(Relaxed));
        depth.encode(encoder.encode_descriptor(
            "journey_outbox_depth",
            "Sends committed and not yet delivered.",
            None,
            depth.metric_type(),
        )?)?;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_keeps_the_names_and_labels() {
        let m = Metrics::new();
        m.events_ingested.inc_by(3);
        m.rejected("invalid", 2);
        m.tracked("opened");
        m.send("email", "sent");
        m.timer_fired(30);
        m.attempt(Channel::Sms, AttemptOutcome::Retried);
        m.retry(Channel::Sms);
        m.attempt(Channel::Sms, AttemptOutcome::Sent);
        m.stages.add(Stage::Flush, std::time::Instant::now());
        m.stages.batches.fetch_add(4, Relaxed);
        m.stages.outbox_depth.store(7, Relaxed);
        let text = m.render();
        for line in [
            "# TYPE journey_events_ingested_total counter",
            "journey_events_ingested_total 3",
            "journey_events_rejected_total{reason=\"invalid\"} 2",
            "journey_tracking_total{what=\"opened\"} 1",
            "journey_sends_total{channel=\"email\",outcome=\"sent\"} 1",
            "# TYPE journey_timer_lateness_seconds histogram",
            "journey_timer_lateness_seconds_bucket{le=\"0.025\"} 0",
            "journey_timer_lateness_seconds_bucket{le=\"0.05\"} 1",
            "journey_timer_lateness_seconds_bucket{le=\"+Inf\"} 1",
            "journey_timer_lateness_seconds_count 1",
            "journey_dispatch_attempts_total{channel=\"sms\",outcome=\"retried\"} 1",
            "journey_dispatch_attempts_total{channel=\"sms\",outcome=\"sent\"} 1",
            "journey_dispatch_retries_total{channel=\"sms\"} 1",
            "# TYPE journey_commit_seconds histogram",
            "journey_commit_seconds_count{stage=\"flush\"} 1",
            "journey_commit_batches_total 4",
            "# TYPE journey_outbox_depth gauge",
            "journey_outbox_depth 7",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
        assert!(CONTENT_TYPE.starts_with("text/plain; version=0.0.4"));
    }
}
