//! Where "now" comes from. The engine never reads a clock: the runtime asks one and passes
//! the time in. The daemon runs on the wall clock; scenarios, `journey simulate` and tests on a
//! virtual one they move themselves.

use crate::engine::Millis;
use std::sync::atomic::{AtomicI64, Ordering};

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

/// The wall clock, for the daemon. Scenarios use `VirtualClock`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as Millis)
            .unwrap_or(0)
    }
}
