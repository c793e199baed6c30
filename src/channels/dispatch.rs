//! The daemon's sink. `deliver` answers `Pending` at once and hands the send to a tokio
//! task, which renders the message, waits for a slot of its channel (concurrency and rate
//! limit), tries the provider, retries transient failures with exponential backoff and
//! jitter up to `retry.max_attempts`, and reports the outcome to the live loop's inbox as
//! an `Input::Delivered` (`message.sent`, `message.failed` or `message.bounced`, with the
//! rendered subject, the number of attempts and what the provider said). The outbox entry
//! stays until that report is committed, so a crash re-delivers (with the same message id
//! as idempotency key). The short links of an SMS or a push are kept in the store and
//! flushed before the first attempt, so a link that reaches a phone always resolves.

use super::email::{self, Mailer, Outgoing};
use super::push::{PushProgress, PushSender};
use super::redact::Redactor;
use super::render::{RenderedPush, RenderedSms, RenderedWebhook, Renderer, Source};
use super::sms::{JsonLines, SmsSender};
use super::tracking::ShortLinks;
use super::webpush::Vapid;
use super::{http, webhook, Attempt};
use crate::compile::ir::JourneyIr;
use crate::config::{Config, PushProvider};
use crate::domain::Channel;
use crate::engine::Claims;
use crate::engine::{Contact, Millis, SendJob};
use crate::runtime::{Clock, Delivery, MaySend, Outcome, SendContext, Sink, SystemClock};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Sends of one channel at once, unless the config says otherwise.
pub const DEFAULT_CONCURRENCY: [(Channel, usize); 4] = [
    (Channel::Email, 8),
    (Channel::Sms, 4),
    (Channel::Push, 8),
    (Channel::Webhook, 8),
];

/// What a dispatcher needs.
pub struct DispatcherOptions {
    pub config: Config,
    /// Signs tracked links, the pixel, unsubscribe links and delivery reports.
    pub secret: Vec<u8>,
    /// What a send reads (journey versions, the contact, its entry event), where short
    /// link codes are kept, and where outcomes are reported: the runtime's.
    pub context: Arc<dyn SendContext>,
    /// Run on this runtime; None starts one of its own (two worker threads).
    pub handle: Option<tokio::runtime::Handle>,
    /// Timestamps of the reported events; the system clock when None.
    pub clock: Option<Arc<dyn Clock>>,
    /// Told of every provider attempt (the daemon's `/metrics`); None tells no one.
    pub observer: Option<Arc<dyn AttemptObserver>>,
}

/// What came of one provider attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptOutcome {
    /// Accepted (for a push to several devices, by at least one of them in the end).
    Sent,
    /// A transient failure: another attempt follows, after a backoff or the provider's
    /// `Retry-After`.
    Retried,
    /// A permanent refusal, or the last attempt's transient failure.
    Failed,
    /// No such recipient.
    Bounced,
    /// Handed over with no answer.
    Uncertain,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Sent => "sent",
            AttemptOutcome::Retried => "retried",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Bounced => "bounced",
            AttemptOutcome::Uncertain => "uncertain",
        }
    }
}

/// Told of each attempt the dispatcher makes at a provider, as it ends, and of each retry
/// as it is decided (before its backoff or `Retry-After` wait). The one retry of an
/// uncertain send is an attempt, not a retry (as in `Stats`).
pub trait AttemptObserver: Send + Sync {
    fn attempt(&self, channel: Channel, outcome: AttemptOutcome);
    fn retry(&self, channel: Channel);
    /// A send waits for the store to answer before it can be rendered (not an attempt).
    fn store_wait(&self, _channel: Channel) {}
    /// A send is left to the daemon that holds its contact's partition now.
    fn handed_over(&self, _channel: Channel) {}
}

/// Counts since start, for tests, benchmarks and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub attempts: u64,
    pub retries: u64,
    pub sent: u64,
    pub failed: u64,
    pub bounced: u64,
    /// Outcomes recorded as `message.uncertain`.
    pub uncertain: u64,
    /// Renderings tried again because the store did not answer a read.
    pub store_waits: u64,
    /// Sends left to the daemon that took their contact's partition over.
    pub handed_over: u64,
}

pub struct Dispatcher {
    shared: Arc<Shared>,
    handle: tokio::runtime::Handle,
    // Dropped last: the runtime of our own, if we made one.
    _runtime: Option<tokio::runtime::Runtime>,
}

struct Lane {
    slots: Semaphore,
    /// The time between two sends when rate-limited.
    interval: Option<Duration>,
    next: tokio::sync::Mutex<tokio::time::Instant>,
}

impl Lane {
    fn new(concurrency: usize, rate_per_second: Option<f64>) -> Lane {
        Lane {
            slots: Semaphore::new(concurrency.max(1)),
            interval: rate_per_second
                .filter(|r| *r > 0.0 && r.is_finite())
                .map(|r| Duration::from_secs_f64(1.0 / r)),
            next: tokio::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    /// Waits for this send's turn under the rate limit.
    async fn pace(&self) {
        let Some(iv) = self.interval else { return };
        let slot = {
            let mut next = self.next.lock().await;
            let now = tokio::time::Instant::now();
            let slot = (*next).max(now);
            *next = slot + iv;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

struct Shared {
    config: Config,
    context: Arc<dyn SendContext>,
    renderer: Renderer,
    clock: Arc<dyn Clock>,
    /// Every reason and provider answer goes through it before a log or an event.
    redactor: Redactor,
    mailer: Mailer,
    http: reqwest::Client,
    sms: SmsSender,
    push: PushSender,
    lanes: HashMap<Channel, Lane>,
    versions: Mutex<HashMap<String, Arc<JourneyIr>>>,
    in_flight: Mutex<HashSet<String>>,
    attempts: AtomicU64,
    retries: AtomicU64,
    store_waits: AtomicU64,
    handed_over: AtomicU64,
    sent: AtomicU64,
    failed: AtomicU64,
    bounced: AtomicU64,
    uncertain: AtomicU64,
    /// Uncertain sends waiting for their one retry (not in flight: their outcome is
    /// recorded, a stop abandons the retry).
    rechecks: AtomicU64,
    observer: Option<Arc<dyn AttemptObserver>>,
}

/// What `deliver` came to.
struct Tried {
    outcome: Delivery,
    subject: Option<String>,
    props: Map<String, Value>,
    attempts: u32,
    /// The message, kept for the one retry of an uncertain outcome.
    prepared: Option<Prepared>,
    /// Push targets answered 404/410.
    gone: Vec<Value>,
}

impl Tried {
    fn new(
        outcome: Delivery,
        subject: Option<String>,
        props: Map<String, Value>,
        attempts: u32,
    ) -> Tried {
        Tried {
            outcome,
            subject,
            props,
            attempts,
            prepared: None,
            gone: Vec::new(),
        }
    }

    fn gone(mut self, progress: PushProgress) -> Tried {
        self.gone = progress.gone;
        self
    }
}

/// How often a send whose daemon is unsure of its lease looks again (the lease keeper
/// renews every second).
const LEASE_WAIT: Duration = Duration::from_millis(100);

/// Why a message could not be made ready to send.
enum NotPrepared {
    /// The store did not answer a read (or keep its short links): tried again.
    Store(String),
    /// The message itself cannot be made (its version or template): the send fails.
    Message(String),
}

/// A rendered message, the same on every attempt.
enum Prepared {
    Email(Outgoing),
    Sms(RenderedSms),
    Push(RenderedPush),
    Webhook(RenderedWebhook, Duration),
}

impl Dispatcher {
    pub fn new(opts: DispatcherOptions) -> Result<Dispatcher, String> {
        let (runtime, handle) = match opts.handle {
            Some(h) => (None, h),
            None => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("journey-channels")
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the channels' runtime: {e}"))?;
                let h = rt.handle().clone();
                (Some(rt), h)
            }
        };
        let c = &opts.config;
        let concurrency = |ch: Channel, given: Option<usize>| {
            given.unwrap_or_else(|| {
                DEFAULT_CONCURRENCY
                    .iter()
                    .find(|(k, _)| *k == ch)
                    .map(|(_, n)| *n)
                    .unwrap_or(4)
            })
        };
        let email_conc = concurrency(Channel::Email, c.email.concurrency);
        let mut lanes = HashMap::new();
        lanes.insert(
            Channel::Email,
            Lane::new(email_conc, c.email.rate_per_second),
        );
        lanes.insert(
            Channel::Sms,
            Lane::new(
                concurrency(Channel::Sms, c.sms.concurrency),
                c.sms.rate_per_second,
            ),
        );
        lanes.insert(
            Channel::Push,
            Lane::new(
                concurrency(Channel::Push, c.push.concurrency),
                c.push.rate_per_second,
            ),
        );
        lanes.insert(
            Channel::Webhook,
            Lane::new(concurrency(Channel::Webhook, c.webhook.concurrency), None),
        );
        let mailer = Mailer::new(c.email.smtp.as_ref(), &c.data_dir, email_conc)?;
        let vapid = match &c.push.provider {
            Some(PushProvider::Webpush {
                vapid_private_key,
                vapid_subject,
                vapid_private_key_file,
            }) => Some(Vapid::from_config(
                vapid_private_key,
                vapid_private_key_file.as_deref(),
                vapid_subject,
            )?),
            _ => None,
        };
        let http = http::client();
        let renderer = Renderer::new(&opts.secret, &c.public_url);
        let shared = Shared {
            sms: SmsSender {
                provider: c.sms.provider.clone(),
                http: http.clone(),
                file: JsonLines::new(&c.data_dir.join("sms.jsonl")),
                public_url: renderer.public_url().to_string(),
            },
            push: PushSender {
                provider: c.push.provider.clone(),
                http: http.clone(),
                file: JsonLines::new(&c.data_dir.join("push.jsonl")),
                vapid,
                ttl_seconds: c.push.ttl_seconds,
            },
            redactor: Redactor::from_config(c, &opts.secret),
            config: opts.config.clone(),
            context: opts.context,
            renderer,
            clock: opts.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            mailer,
            http,
            lanes,
            versions: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashSet::new()),
            attempts: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            store_waits: AtomicU64::new(0),
            handed_over: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            bounced: AtomicU64::new(0),
            uncertain: AtomicU64::new(0),
            rechecks: AtomicU64::new(0),
            observer: opts.observer,
        };
        Ok(Dispatcher {
            shared: Arc::new(shared),
            handle,
            _runtime: runtime,
        })
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Sends handed over and not yet reported.
    pub fn in_flight(&self) -> usize {
        self.shared().in_flight.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Blocks until every send handed over has been reported, or `timeout` passes; true if
    /// idle. For an orderly stop: what is still in flight stays in the outbox.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let until = std::time::Instant::now() + timeout;
        while self.in_flight() > 0 {
            if std::time::Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    pub fn stats(&self) -> Stats {
        let s = self.shared();
        Stats {
            attempts: s.attempts.load(Ordering::Relaxed),
            retries: s.retries.load(Ordering::Relaxed),
            store_waits: s.store_waits.load(Ordering::Relaxed),
            handed_over: s.handed_over.load(Ordering::Relaxed),
            sent: s.sent.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            bounced: s.bounced.load(Ordering::Relaxed),
            uncertain: s.uncertain.load(Ordering::Relaxed),
        }
    }

    /// Like `wait_idle`, and also until the retries of uncertain sends are done.
    pub fn wait_settled(&self, timeout: Duration) -> bool {
        let until = std::time::Instant::now() + timeout;
        while self.in_flight() > 0 || self.shared().rechecks.load(Ordering::SeqCst) > 0 {
            if std::time::Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    /// The Web Push public key (`applicationServerKey`) when Web Push is configured.
    pub fn vapid_public_key(&self) -> Option<String> {
        self.shared().push.vapid.as_ref().map(Vapid::public_key)
    }

    /// Where emails go without SMTP: the Maildir's root.
    pub fn maildir(&self) -> Option<&std::path::Path> {
        match &self.shared().mailer {
            Mailer::Maildir(m) => Some(m.root()),
            Mailer::Smtp(..) => None,
        }
    }

    pub fn renderer(&self) -> &Renderer {
        &self.shared().renderer
    }
}

impl Sink for Dispatcher {
    fn deliver(&mut self, job: &SendJob, _now: Millis) -> Delivery {
        let fresh = self
            .shared()
            .in_flight
            .lock()
            .map(|mut s| s.insert(job.message_id.clone()))
            .unwrap_or(true);
        if fresh {
            let shared = self.shared().clone();
            let job = job.clone();
            self.handle.spawn(async move { shared.run(job).await });
        }
        Delivery::Pending
    }
}

impl Shared {
    async fn run(self: Arc<Self>, job: SendJob) {
        let Some(Tried {
            outcome,
            subject,
            props,
            attempts,
            prepared,
            gone,
        }) = self.deliver(&job).await
        else {
            // Another daemon holds the contact's partition now (this one was paused or cut
            // off past its lease): it sends what has no outcome; nothing is reported here.
            self.handed_over.fetch_add(1, Ordering::Relaxed);
            if let Some(o) = &self.observer {
                o.handed_over(job.channel);
            }
            tracing::info!(message_id = %job.message_id, "not sent here: the contact's partition is another daemon's now");
            if let Ok(mut s) = self.in_flight.lock() {
                s.remove(&job.message_id);
            }
            return;
        };
        let uncertain = matches!(outcome, Delivery::Uncertain(_));
        self.report(&job, outcome, subject.clone(), props, attempts);
        if !gone.is_empty() {
            self.remove_gone_targets(&job, gone);
        }
        if let Ok(mut s) = self.in_flight.lock() {
            s.remove(&job.message_id);
        }
        let delay = self.config.retry.uncertain_retry_ms;
        if let (true, Some(prepared), true) = (uncertain, prepared, delay > 0) {
            self.rechecks.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(delay)).await;
            self.recheck(&job, &prepared, subject, attempts).await;
            self.rechecks.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// The one retry of an uncertain send, the same message (Message-ID and all), so a
    /// receiver that got it the first time can tell. Only an answer that settles it is
    /// recorded: `message.sent` (accepted now) or `message.bounced` (no such recipient, then
    /// or now); anything else leaves it uncertain, logged.
    async fn recheck(&self, job: &SendJob, p: &Prepared, subject: Option<String>, before: u32) {
        // Not for a contact erased meanwhile: its history (the uncertain outcome with it)
        // is gone, and so must be every message to it.
        if !self.context.still_uncertain(&job.contact, &job.message_id) {
            return;
        }
        let lane = &self.lanes[&job.channel];
        let a = {
            let _slot = lane.slots.acquire().await.expect("never closed");
            lane.pace().await;
            if !self.still_ours(job).await {
                return;
            }
            self.attempts.fetch_add(1, Ordering::Relaxed);
            self.attempt(job, p, &mut PushProgress::default()).await
        };
        self.observe(
            job.channel,
            match &a {
                Attempt::Done(_) => AttemptOutcome::Sent,
                Attempt::Bounced(_) => AttemptOutcome::Bounced,
                _ => AttemptOutcome::Uncertain,
            },
        );
        let mut props = Map::new();
        props.insert("after_uncertain".into(), Value::Bool(true));
        match a {
            Attempt::Done(p) => {
                props.extend(p);
                self.report(job, Delivery::Sent, subject, props, before + 1);
            }
            Attempt::Bounced(r) => {
                self.report(job, Delivery::Bounced(r), subject, props, before + 1)
            }
            Attempt::Failed(r, _) | Attempt::Uncertain(r) | Attempt::Retry { reason: r, .. } => {
                tracing::warn!(
                    message_id = %job.message_id,
                    journey = %job.journey,
                    "the retry of an uncertain send did not settle it; it stays uncertain: {}",
                    self.redactor.redact(&r)
                );
            }
        }
    }

    /// Push targets the service said are gone leave the contact's `push_tokens`: a control
    /// for the live loop's thread, which alone writes profiles.
    fn remove_gone_targets(&self, job: &SendJob, gone: Vec<Value>) {
        self.context.remove_push_targets(job, gone);
    }

    /// Records an outcome: counted, logged when it is not a success, and sent to the live
    /// loop's inbox, redacted.
    fn report(
        &self,
        job: &SendJob,
        outcome: Delivery,
        subject: Option<String>,
        mut props: Map<String, Value>,
        attempts: u32,
    ) {
        // Secrets never leave the config: not in a log, an event or the API.
        let outcome = match outcome {
            Delivery::Failed(r) => Delivery::Failed(self.redactor.redact(&r)),
            Delivery::Bounced(r) => Delivery::Bounced(self.redactor.redact(&r)),
            Delivery::Uncertain(r) => Delivery::Uncertain(self.redactor.redact(&r)),
            other => other,
        };
        for v in props.values_mut() {
            self.redactor.redact_json(v);
        }
        match outcome {
            Delivery::Sent => &self.sent,
            Delivery::Bounced(_) => &self.bounced,
            Delivery::Uncertain(_) => &self.uncertain,
            _ => &self.failed,
        }
        .fetch_add(1, Ordering::Relaxed);
        if let Delivery::Failed(r) | Delivery::Bounced(r) | Delivery::Uncertain(r) = &outcome {
            tracing::warn!(message_id = %job.message_id, journey = %job.journey, "{r}");
        }
        let reported = self.context.report(Outcome {
            job,
            delivery: outcome,
            at: self.clock.now(),
            subject,
            properties: props,
            attempts,
        });
        if !reported {
            tracing::warn!(message_id = %job.message_id, "the live loop is gone: the outcome stays unrecorded, the send stays in the outbox");
        }
    }

    /// Waits while this daemon is unsure of its lease on the contact's partition (several
    /// daemons on one database); false once the partition is another's.
    async fn still_ours(&self, job: &SendJob) -> bool {
        loop {
            match self.context.may_send(&job.contact) {
                MaySend::Go => return true,
                MaySend::Gone => return false,
                MaySend::Wait => tokio::time::sleep(LEASE_WAIT).await,
            }
        }
    }

    /// Renders, then tries until done; None if the contact's partition went to another
    /// daemon first (see `still_ours`). What the message is rendered from is read from the
    /// store: a read that fails (the database away, a connection lost) is tried again,
    /// with the same backoff, for as long as it takes; it says nothing of the message, so
    /// it is never recorded as the send's failure.
    async fn deliver(&self, job: &SendJob) -> Option<Tried> {
        let mut store_tries = 0u32;
        let (prepared, subject) = loop {
            let prepared = match self.prepare(job) {
                Ok((p, subject)) => self.keep_short_links(&p).await.map(|()| (p, subject)),
                Err(e) => Err(e),
            };
            match prepared {
                Ok(p) => break p,
                Err(NotPrepared::Message(reason)) => {
                    return Some(Tried::new(Delivery::Failed(reason), None, Map::new(), 0))
                }
                Err(NotPrepared::Store(reason)) => {
                    store_tries += 1;
                    self.store_waits.fetch_add(1, Ordering::Relaxed);
                    if let Some(o) = &self.observer {
                        o.store_wait(job.channel);
                    }
                    let wait = self.backoff(store_tries, None);
                    tracing::warn!(message_id = %job.message_id, attempt = store_tries, "the message cannot be rendered yet, as the store did not answer ({}); trying again in {wait:?}", self.redactor.redact(&reason));
                    tokio::time::sleep(wait).await;
                }
            }
        };
        let lane = &self.lanes[&job.channel];
        let max = self.config.retry.max_attempts.max(1);
        let mut progress = PushProgress::default();
        let mut attempt = 0u32;
        loop {
            let a = {
                let _slot = lane
                    .slots
                    .acquire()
                    .await
                    .expect("the semaphore is never closed");
                lane.pace().await;
                // At the last moment before the provider: a paused daemon's queue stops
                // here once its partitions are another's.
                if !self.still_ours(job).await {
                    return None;
                }
                attempt += 1;
                self.attempts.fetch_add(1, Ordering::Relaxed);
                self.attempt(job, &prepared, &mut progress).await
            };
            let (tried, outcome) = match a {
                Attempt::Done(p) => (
                    Tried::new(Delivery::Sent, subject, p, attempt).gone(progress),
                    AttemptOutcome::Sent,
                ),
                Attempt::Failed(r, p) => (
                    Tried::new(Delivery::Failed(r), subject, p, attempt).gone(progress),
                    AttemptOutcome::Failed,
                ),
                Attempt::Bounced(r) => (
                    Tried::new(Delivery::Bounced(r), subject, Map::new(), attempt),
                    AttemptOutcome::Bounced,
                ),
                Attempt::Uncertain(r) => {
                    let mut t = Tried::new(Delivery::Uncertain(r), subject, Map::new(), attempt);
                    t.prepared = Some(prepared);
                    (t, AttemptOutcome::Uncertain)
                }
                Attempt::Retry {
                    reason,
                    after,
                    properties,
                } => {
                    if attempt >= max {
                        let t = if progress.delivered > 0 {
                            // Some devices got the push; the others are given up.
                            let mut p = Map::new();
                            p.insert("delivered".into(), progress.delivered.into());
                            p.insert("errors".into(), vec![reason].into());
                            Tried::new(Delivery::Sent, subject, p, attempt).gone(progress)
                        } else {
                            Tried::new(
                                Delivery::Failed(format!(
                                    "{reason} (gave up after {attempt} attempts)"
                                )),
                                subject,
                                properties,
                                attempt,
                            )
                            .gone(progress)
                        };
                        let outcome = match t.outcome {
                            Delivery::Sent => AttemptOutcome::Sent,
                            _ => AttemptOutcome::Failed,
                        };
                        (t, outcome)
                    } else {
                        self.observe(job.channel, AttemptOutcome::Retried);
                        self.retries.fetch_add(1, Ordering::Relaxed);
                        if let Some(o) = &self.observer {
                            o.retry(job.channel);
                        }
                        tracing::debug!(message_id = %job.message_id, attempt, "retrying: {}", self.redactor.redact(&reason));
                        tokio::time::sleep(self.backoff(attempt, after)).await;
                        continue;
                    }
                }
            };
            self.observe(job.channel, outcome);
            return Some(tried);
        }
    }

    fn observe(&self, channel: Channel, outcome: AttemptOutcome) {
        if let Some(o) = &self.observer {
            o.attempt(channel, outcome);
        }
    }

    /// `base · 2^(attempt−1)`, capped by `max_delay_ms`, with full jitter over its upper
    /// half; at least what the provider asked for (`Retry-After`), even beyond `max_delay_ms`,
    /// up to `max_retry_after_ms`.
    fn backoff(&self, attempt: u32, after: Option<Duration>) -> Duration {
        let r = &self.config.retry;
        let exp = r
            .base_delay_ms
            .saturating_mul(1u64 << (attempt - 1).min(30))
            .min(r.max_delay_ms);
        let jittered = exp / 2 + fastrand::u64(0..=exp / 2);
        let asked = after
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
            .min(r.max_retry_after_ms);
        Duration::from_millis(jittered.max(asked))
    }

    fn version(&self, hash: &str) -> Result<Arc<JourneyIr>, NotPrepared> {
        if let Some(v) = self.versions.lock().ok().and_then(|m| m.get(hash).cloned()) {
            return Ok(v);
        }
        let ir = self
            .context
            .version(hash)
            .map_err(NotPrepared::Store)?
            .ok_or_else(|| {
                NotPrepared::Message(format!("the store has no journey version {hash}"))
            })?;
        let ir = Arc::new(ir);
        if let Ok(mut m) = self.versions.lock() {
            m.insert(hash.to_string(), ir.clone());
        }
        Ok(ir)
    }

    fn prepare(&self, job: &SendJob) -> Result<(Prepared, Option<String>), NotPrepared> {
        let ir = self.version(&job.version)?;
        let message = ir.messages.get(&job.message).ok_or_else(|| {
            NotPrepared::Message(format!(
                "journey '{}' (version {}) has no message '{}'",
                job.journey, job.version, job.message
            ))
        })?;
        let contact = self
            .context
            .contact(&job.contact)
            .map_err(NotPrepared::Store)?
            .unwrap_or_else(|| Contact {
                id: job.contact.clone(),
                profile: Map::new(),
            });
        let entry = self
            .context
            .entry_event(&job.contact, job.instance)
            .map_err(NotPrepared::Store)?;
        self.render(job, message, &contact, entry.as_ref())
            .map_err(NotPrepared::Message)
    }

    /// The message for `job`, from what `prepare` read.
    fn render(
        &self,
        job: &SendJob,
        message: &crate::compile::ir::MessageIr,
        contact: &Contact,
        entry: Option<&crate::engine::Event>,
    ) -> Result<(Prepared, Option<String>), String> {
        let src = Source {
            job,
            message,
            contact,
            event: entry,
        };
        let r = &self.renderer;
        Ok(match job.channel {
            Channel::Email => {
                let e = r.email(&src, None).map_err(|e| e.0)?;
                let out = email::build(&e, job, self.config.email.from.as_deref())?;
                (Prepared::Email(out), Some(e.subject))
            }
            Channel::Sms => (
                Prepared::Sms(r.sms(&src, &Book(&*self.context)).map_err(|e| e.0)?),
                None,
            ),
            Channel::Push => {
                let p = r.push(&src, &Book(&*self.context)).map_err(|e| e.0)?;
                let title = p.title.clone();
                (Prepared::Push(p), title)
            }
            Channel::Webhook => {
                let w = r.webhook(&src).map_err(|e| e.0)?;
                let secs = message
                    .timeout_seconds
                    .map(|s| s.max(1) as u64)
                    .unwrap_or(self.config.webhook.timeout_seconds.max(1));
                (Prepared::Webhook(w, Duration::from_secs(secs)), None)
            }
        })
    }

    /// Makes the short links a rendering wrote into the store durable (one flush, off the
    /// async threads), before the message is handed to anyone.
    async fn keep_short_links(&self, p: &Prepared) -> Result<(), NotPrepared> {
        let codes = match p {
            Prepared::Sms(s) => &s.short_links,
            Prepared::Push(p) => &p.short_links,
            Prepared::Email(_) | Prepared::Webhook(..) => return Ok(()),
        };
        if codes.is_empty() {
            return Ok(());
        }
        let context = self.context.clone();
        tokio::task::spawn_blocking(move || context.flush())
            .await
            .map_err(|e| NotPrepared::Store(format!("short links not kept: {e}")))?
            .map_err(|e| NotPrepared::Store(format!("short links not kept: {e}")))
    }

    async fn attempt(&self, job: &SendJob, p: &Prepared, progress: &mut PushProgress) -> Attempt {
        match p {
            Prepared::Email(out) => self.mailer.send(out, job).await,
            Prepared::Sms(s) => {
                let token = self.renderer.delivery_token(job);
                self.sms.send(job, s, &token).await
            }
            Prepared::Push(push) => self.push.send(job, push, progress).await,
            Prepared::Webhook(w, timeout) => webhook::call(&self.http, job, w, *timeout).await,
        }
    }
}

/// The runtime's short link keeper, as the renderer asks for one.
struct Book<'a>(&'a dyn SendContext);

impl ShortLinks for Book<'_> {
    fn keep(&self, code: &str, claims: &Claims) -> Result<bool, String> {
        self.0.keep_short_link(code, claims)
    }
}
