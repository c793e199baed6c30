//! journey: customer journeys as text files, checked before they ship and run by a durable
//! engine. See ARCHITECTURE.md for the map of the code.

// The pest parser is built without its `std` feature (see Cargo.toml), and its generated code
// names `::alloc`.
extern crate alloc;

pub mod bench;
pub mod channels;
pub mod cli;
pub mod compile;
pub mod config;
pub mod domain;
pub mod engine;
pub mod lang;
pub mod lsp;
pub mod report;
pub mod runtime;
pub mod scenario;
pub mod server;
pub mod store;
