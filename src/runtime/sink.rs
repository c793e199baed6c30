//! Where sends go once committed. The daemon's sink is the channels (SMTP, SMS, push,
//! webhooks), which deliver in the background and report back through the live loop's
//! inbox; scenarios and benchmarks use `MemorySink`, which records every delivery at once.

use crate::engine::{Millis, SendJob};

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
