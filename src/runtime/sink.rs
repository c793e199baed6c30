//! Where sends go once committed. The daemon's sink is the channels (SMTP, SMS, push,
//! webhooks); scenarios and benchmarks use `MemorySink`, which records every delivery.

use crate::engine::{Millis, SendJob};

/// Delivers one message. `Ok` means the provider accepted it (it is then recorded as
/// `message.sent`); `Err` is a permanent failure with its reason.
pub trait Sink {
    fn deliver(&mut self, job: &SendJob, now: Millis) -> Result<(), String>;
}

/// Records deliveries in memory, in order.
#[derive(Debug, Default)]
pub struct MemorySink {
    pub delivered: Vec<(SendJob, Millis)>,
}

impl Sink for MemorySink {
    fn deliver(&mut self, job: &SendJob, now: Millis) -> Result<(), String> {
        self.delivered.push((job.clone(), now));
        Ok(())
    }
}
