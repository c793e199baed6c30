//! The store a test runs on: sled by default; with `JOURNEY_TEST_POSTGRES=1` (as `.ci/run`'s
//! PostgreSQL pass sets it), PostgreSQL, in a server the test process starts at its first
//! use and stops when it exits (`journey::bench::pg_server`).

#![allow(unused_imports)]

pub use journey::bench::pg_server::{
    test_store as temporary_store, test_store_at as open_at, test_store_location as store_location,
    tests_on_postgres as on_postgres,
};
