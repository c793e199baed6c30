//! The engine: the pure core that moves contacts through compiled journeys.
//! It does no I/O and never reads the wall clock: time comes in through a `Clock` owned by the
//! caller, data through a `ContactView`, and decisions go out as `Effect`s for the runtime
//! to apply. The same code serves the daemon, `journey test` and `journey simulate`.

pub mod calendar;
pub mod cond;
pub mod consent;
pub mod model;
pub mod step;
pub mod wheel;

pub use model::*;

use std::sync::atomic::{AtomicI64, Ordering};

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// The source of "now". The runtime has a system clock; tests and scenarios a virtual one.
pub trait Clock: Send + Sync {
    fn now(&self) -> Millis;
}

/// A clock that moves only when told: scenarios and tests drive time with it.
#[derive(Debug, Default)]
pub struct VirtualClock {
    now: AtomicI64,
}

impl VirtualClock {
    pub fn new(now: Millis) -> Self {
        VirtualClock {
            now: AtomicI64::new(now),
        }
    }
    /// Moves time forward; never backward.
    pub fn advance_to(&self, t: Millis) {
        self.now.fetch_max(t, Ordering::SeqCst);
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Millis {
        self.now.load(Ordering::SeqCst)
    }
}
