//! journey: customer journeys as text files, checked before they ship and run by a durable
//! engine. See ARCHITECTURE.md for the map of the code.

pub mod channels;
pub mod cli;
pub mod compile;
pub mod config;
pub mod engine;
pub mod lang;
pub mod report;
pub mod runtime;
pub mod scenario;
pub mod store;
