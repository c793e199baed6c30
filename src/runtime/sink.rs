//! Where sends go once committed. The daemon's sink is the channels (SMTP, SMS, push,
//! webhooks), which deliver in the background and report back through the live loop's
//! inbox; scenarios and benchmarks use `MemorySink`, which records every delivery at once.

use super::live::{Control, Submission};
use super::Input;
use crate::compile::ir::JourneyIr;
use crate::engine::{Claims, Contact, Event, Millis, SendJob};
pub use crate::store::partitions::MaySend;
use crate::store::Store;
use serde_json::{Map, Value};
use std::sync::mpsc::Sender;
use std::sync::Mutex;

/// What became of a send handed to a sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The provider accepted it: recorded as `message.sent`.
    Sent,
    /// Given up (after retries, or a permanent refusal): recorded as `message.failed`.
    Failed(String),
    /// The address does not exist (SMTP 5xx on the recipient): recorded as `message.bounced`.
    Bounced(String),
    /// Handed over whole with no answer (an SMTP server silent after the final `.`): it
    /// may have been accepted. Recorded as `message.uncertain`, an outcome: the outbox
    /// entry goes, and a crash does not deliver it again.
    Uncertain(String),
    /// Still in progress: the sink reports the outcome later as an `Input::Delivered`
    /// through the live loop's inbox, and the outbox entry stays until then.
    Pending,
}

/// Delivers one message. Must not block for long: a slow provider belongs behind `Pending`.
pub trait Sink {
    fn deliver(&mut self, job: &SendJob, now: Millis) -> Delivery;
}

/// Records deliveries in memory, in order.
#[derive(Debug, Default)]
pub struct MemorySink {
    pub delivered: Vec<(SendJob, Millis)>,
}

impl Sink for MemorySink {
    fn deliver(&mut self, job: &SendJob, now: Millis) -> Delivery {
        self.delivered.push((job.clone(), now));
        Delivery::Sent
    }
}

/// What a sink that delivers in the background (the daemon's channels) may ask of the
/// runtime: the data a send renders from, a place for short link codes, and where outcomes
/// go. The runtime implements it over the store and the live loop (`LiveContext`), so the
/// channels read no store and know nothing of the loop's inputs.
pub trait SendContext: Send + Sync {
    /// A journey version by its hash.
    fn version(&self, hash: &str) -> Result<Option<JourneyIr>, String>;
    /// The contact as it is now; None once erased or never stored.
    fn contact(&self, id: &str) -> Result<Option<Contact>, String>;
    /// The event that enrolled the instance a send belongs to, which its templates see.
    fn entry_event(&self, contact: &str, instance: u64) -> Result<Option<Event>, String>;
    /// Whether the contact's history still records the send as `message.uncertain` (not
    /// once the contact is erased, or the outcome settled).
    fn still_uncertain(&self, contact: &str, message_id: &str) -> bool;
    /// Keeps `claims` under a short link `code` unless other claims hold it: true if the
    /// code is (now) theirs. Not durable until `flush`.
    fn keep_short_link(&self, code: &str, claims: &Claims) -> Result<bool, String>;
    /// Makes the short links kept so far durable. Blocks: call it off async threads.
    fn flush(&self) -> Result<(), String>;
    /// Records a send's outcome, as `message.sent`, `.failed`, `.bounced` or `.uncertain`
    /// with `properties` added; false if nothing can record it any more (the loop is
    /// gone: the send stays in the outbox and is delivered again after a restart).
    fn report(&self, outcome: Outcome) -> bool;
    /// Takes push targets the push service said are gone out of the contact's profile.
    fn remove_push_targets(&self, job: &SendJob, gone: Vec<Value>);
    /// Whether a send to `contact` may go to its provider now: where several daemons share
    /// the store, only while this one surely holds the contact's partition.
    fn may_send(&self, _contact: &str) -> MaySend {
        MaySend::Go
    }
}

/// A send's outcome, as a sink reports it.
pub struct Outcome<'a> {
    pub job: &'a SendJob,
    pub delivery: Delivery,
    pub at: Millis,
    /// The rendered subject (or push title), if any.
    pub subject: Option<String>,
    /// What the provider said, and anything else worth keeping on the event.
    pub properties: Map<String, Value>,
    pub attempts: u32,
}

/// The `SendContext` of the daemon: reads from the store, reports to the live loop's inbox.
pub struct LiveContext {
    store: Store,
    inbox: Mutex<Sender<Submission>>,
}

impl LiveContext {
    pub fn new(store: Store, inbox: Sender<Submission>) -> LiveContext {
        LiveContext {
            store,
            inbox: Mutex::new(inbox),
        }
    }

    fn submit(&self, sub: Submission) -> bool {
        self.inbox
            .lock()
            .map(|tx| tx.send(sub).is_ok())
            .unwrap_or(false)
    }
}

fn store_error(e: crate::store::StoreError) -> String {
    format!("store: {e}")
}

impl SendContext for LiveContext {
    fn version(&self, hash: &str) -> Result<Option<JourneyIr>, String> {
        self.store.version(hash).map_err(store_error)
    }

    fn contact(&self, id: &str) -> Result<Option<Contact>, String> {
        self.store.contact(id).map_err(store_error)
    }

    fn may_send(&self, contact: &str) -> MaySend {
        self.store.may_send(contact)
    }

    fn entry_event(&self, contact: &str, instance: u64) -> Result<Option<Event>, String> {
        Ok(self
            .store
            .instance(contact, instance)
            .map_err(store_error)?
            .and_then(|i| i.entry_event))
    }

    fn still_uncertain(&self, contact: &str, message_id: &str) -> bool {
        self.store.events_of(contact).is_ok_and(|es| {
            es.iter().any(|e| {
                e.kind == crate::engine::MESSAGE_UNCERTAIN
                    && e.message_id.as_deref() == Some(message_id)
            })
        })
    }

    fn keep_short_link(&self, code: &str, claims: &Claims) -> Result<bool, String> {
        self.store.put_short_link(code, claims).map_err(store_error)
    }

    fn flush(&self) -> Result<(), String> {
        self.store.flush().map_err(store_error)
    }

    fn report(&self, o: Outcome) -> bool {
        let Some(mut event) = super::delivery_event(o.job, o.at, o.subject, &o.delivery) else {
            return true;
        };
        for (k, v) in o.properties {
            event.properties.entry(k).or_insert(v);
        }
        event
            .properties
            .insert("attempts".into(), Value::from(o.attempts));
        self.submit(Submission {
            inputs: vec![Input::Delivered {
                message_id: o.job.message_id.clone(),
                event,
            }],
            ack: None,
            control: None,
        })
    }

    fn remove_push_targets(&self, job: &SendJob, gone: Vec<Value>) {
        let job = job.clone();
        let control: Control = Box::new(move |rt, sink, now, timeline| {
            if let Err(e) = rt.remove_push_targets(&job, &gone, now, sink, timeline) {
                tracing::warn!(contact = %job.contact, "expired push targets not removed: {e}");
            }
        });
        self.submit(Submission {
            inputs: Vec::new(),
            ack: None,
            control: Some(control),
        });
    }
}
