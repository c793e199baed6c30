//! The store a test runs on: sled by default; with `JOURNEY_TEST_POSTGRES=1` (as `.ci/run`'s
//! PostgreSQL pass sets it), PostgreSQL, in a server this test process starts at its first
//! use (`initdb` and `pg_ctl` on a free port) and stops when it exits.

#![allow(dead_code)]

use journey::bench::pg_server::PgServer;
use journey::store::Store;
use std::path::Path;
use std::sync::OnceLock;

/// Whether this run's tests use PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var("JOURNEY_TEST_POSTGRES").as_deref() == Ok("1")
}

static SERVER: OnceLock<PgServer> = OnceLock::new();

/// Stops the process's server and removes its directory (statics are not dropped).
extern "C" fn stop_server() {
    if let Some(s) = SERVER.get() {
        s.stop_and_remove();
    }
}

/// This process's PostgreSQL server, started at the first call.
fn server() -> &'static PgServer {
    SERVER.get_or_init(|| {
        let s = PgServer::start(true).unwrap_or_else(|e| {
            panic!("JOURNEY_TEST_POSTGRES=1, but PostgreSQL did not start: {e}")
        });
        // SAFETY: registers a plain function to run at exit; it only stops a child server.
        unsafe { libc::atexit(stop_server) };
        s
    })
}

/// An empty store of the test's own, gone with it: a temporary sled store, or a schema of
/// its own in this process's PostgreSQL.
pub fn temporary_store() -> Store {
    if on_postgres() {
        static SHARED: OnceLock<String> = OnceLock::new();
        let url = SHARED.get_or_init(|| server().fresh_database().unwrap());
        Store::connect_scratch(url).unwrap()
    } else {
        Store::temporary().unwrap()
    }
}

/// Where a test keeps a store it opens again (a restart) or hands to the CLI (`--data`):
/// the sled directory `dir`, or the URL of a database of its own, the same for the same
/// `dir` (noted in a file there).
pub fn store_location(dir: &Path) -> String {
    if !on_postgres() {
        return dir.to_string_lossy().into_owned();
    }
    let note = dir.join("postgres-url");
    if let Ok(url) = std::fs::read_to_string(&note) {
        return url;
    }
    let url = server().fresh_database().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&note, &url).unwrap();
    url
}

/// Opens the store `store_location(dir)` names.
pub fn open_at(dir: &Path) -> Store {
    Store::open_location(&store_location(dir)).unwrap()
}
