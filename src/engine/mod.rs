//! The engine: the pure core that moves contacts through compiled journeys.
//! It does no I/O and never reads the wall clock: time comes in as a value the runtime
//! read from its clock, data through a `ContactView`, and decisions go out as `Effect`s for the runtime
//! to apply. The same code serves the daemon, `journey test` and `journey simulate`.

pub mod calendar;
pub mod cond;
pub mod consent;
pub mod experiment;
pub mod model;
pub mod step;
pub mod times;
pub mod wheel;

pub use model::*;

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;
