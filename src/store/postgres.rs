//! The PostgreSQL backend: the store's ordered key space kept in real tables.
//!
//! Each kind of key (the prefixes in the layout of `store`) has a table of its own, named for
//! people (`contacts`, `events`, `instances`, `timer_records`, `outbox`, …). A row holds the
//! key and the stored value the engine reads (`k`, `v`, both `bytea`, ordered by `k` as the
//! keys are), and beside them typed columns an analyst can query: a contact's `profile` as
//! JSONB, an event's `contact`, `at`, `type` and `properties`, an instance's `journey`,
//! `step` and `due`. The engine reads `k` and `v` only; the typed columns are written from
//! the same value in the same statement, so they never disagree with it.
//!
//! A batch is one transaction (`apply` = commit, with `synchronous_commit` as the server
//! has it: on by default), so acknowledged means committed and `flush` has nothing left to
//! do. Scans page through the primary key. The schema is created and upgraded by numbered
//! migrations at connect (`journey_schema`); a database of a newer schema is refused.
//!
//! The SQL is plain: tables, a primary key, secondary indexes, `INSERT … ON CONFLICT`,
//! `unnest` of arrays, a sequence. No advisory locks, no `LISTEN`: what CockroachDB and
//! YugabyteDB accept too (designed for; checked on PostgreSQL only).
//!
//! tokio-postgres is the driver (async, maintained with the protocol's whole surface),
//! with deadpool-postgres for the pool; the store's interface is synchronous (the runtime's
//! loop is a plain thread), so the backend runs its own small tokio runtime and each call
//! waits for its query there, from any thread, inside async code or not.

use super::keys::unescape_id;
use super::kv::{Bytes, Entries, Entry, Kv, Op};
use super::{Result, StoreError};
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, Pool};
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use tokio_postgres::types::ToSql;

mod cache;
mod connect;
mod lease;
pub(crate) use connect::redact_url;
use connect::{location_of, pg_error, take_root_cert, tls_for, CONNECT_TIMEOUT};
mod schema;
pub use schema::SCHEMA_VERSION;
use schema::*;

/// How many rows a scan reads at a time.
const PAGE: i64 = 2_000;

/// How many ids one call to the sequence reserves (`next_id` hands them out in memory).
const ID_BLOCK: i64 = 1_000;

/// The PostgreSQL backend.
pub(crate) struct PgKv {
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
    /// Ids reserved from the sequence and not handed out yet: [next, end).
    ids: Mutex<(u64, u64)>,
    /// A scratch store's own schema, dropped with it.
    scratch: Option<String>,
    /// What the last `prefetch` loaded, for the thread that asked; cleared by `apply`.
    prefetched: Mutex<Option<Prefetched>>,
    /// The contacts read ahead or written, as this process left them (`cache`).
    contacts: Mutex<cache::ContactCache>,
    /// This process as the partitions' leases name it (HOST:PID).
    owner: String,
    /// The database's partitions (fixed when its schema was created).
    partition_count: u16,
    /// The partitions this process holds, once `claim_exclusive` started its lease keeper:
    /// every commit checks those it writes in its own transaction, so a daemon whose
    /// partitions another took (it was paused, or cut off, past their expiry) commits
    /// nothing for them.
    held: std::sync::OnceLock<std::sync::Arc<crate::store::partitions::HeldPartitions>>,
    /// Commits by this process (`analyse_while_young`).
    commits: std::sync::atomic::AtomicU64,
    /// The database in errors and logs: host, port and name (no password).
    location: String,
    /// Why the database did not answer the last call that tried it; None once one succeeds.
    down: std::sync::Arc<Mutex<Option<String>>>,
    /// The batch committing in the background (`apply_in_background`), if any.
    in_flight: Mutex<Option<InFlight>>,
}

/// A batch whose transaction runs while its thread goes on (to prepare the next one).
struct InFlight {
    /// The thread that started it: only its reads must see the batch (they read its
    /// writes from `writes` until the commit is known), and only it learns the outcome.
    thread: std::thread::ThreadId,
    /// The batch's writes, the last of each key (None: removed).
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// The transaction's outcome, once it is known.
    outcome: std::sync::mpsc::Receiver<Result<()>>,
    /// The outcome, when a read of this thread had to wait for it (`await_in_flight`):
    /// kept for `settle`, which is how the engine learns it.
    known: Option<std::result::Result<(), StoreError>>,
}

impl InFlight {
    /// Waits for the outcome (once).
    fn outcome(&mut self) -> Result<()> {
        if let Some(known) = self.known.take() {
            return known;
        }
        self.outcome
            .recv()
            .map_err(|_| StoreError::Postgres("the database task stopped".into()))
            .and_then(|r| r)
    }
}

/// A copy of an error, for the two who learn it: a read that waited, and `settle`.
fn copy_of(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(why) => StoreError::Unavailable(why.clone()),
        other => StoreError::Postgres(other.to_string()),
    }
}

/// Keys and values, in key order.
type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Keys loaded ahead of a batch: exact keys (None: absent) and whole prefixes.
struct Prefetched {
    thread: std::thread::ThreadId,
    exact: std::collections::HashMap<Vec<u8>, Option<Vec<u8>>>,
    /// Each prefix's entries, in key order.
    prefixes: BTreeMap<Vec<u8>, Rows>,
}

impl Prefetched {
    /// The prefix loaded that holds `key` (prefixes asked for do not nest).
    fn prefix_of(&self, key: &[u8]) -> Option<&Rows> {
        let (p, rows) = self.prefixes.range(..=key.to_vec()).next_back()?;
        key.starts_with(p).then_some(rows)
    }

    /// `prefix_of`, to change the rows.
    fn prefix_of_mut(&mut self, key: &[u8]) -> Option<&mut Rows> {
        let (p, rows) = self.prefixes.range_mut(..=key.to_vec()).next_back()?;
        key.starts_with(p).then_some(rows)
    }
}

impl Drop for PgKv {
    fn drop(&mut self) {
        if let Some(schema) = self.scratch.take() {
            let pool = self.pool.clone();
            let _ = self.run(async move {
                let client = pool.get().await.map_err(pg_error)?;
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await
                    .map_err(pg_error)
            });
        }
        // A runtime dropped inside async code would panic; this one lets its threads go.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl PgKv {
    /// Connects to `url` (`postgres://user@host:port/db`), and creates or upgrades the
    /// schema.
    /// A new database's schema gets `partitions` partitions (an existing one keeps its own).
    pub(crate) fn connect(url: &str, partitions: u16) -> Result<PgKv> {
        PgKv::connect_in(url, None, partitions)
    }

    /// A store of its own in a new schema of the database at `url`, dropped with it
    /// (scenarios and tests on PostgreSQL: each starts empty).
    pub(crate) fn scratch(url: &str) -> Result<PgKv> {
        let mut name = [0u8; 8];
        getrandom::fill(&mut name).map_err(pg_error)?;
        let schema = format!("journey_scratch_{}", hex::encode(name));
        PgKv::connect_in(url, Some(schema), crate::store::DEFAULT_PARTITIONS)
    }

    fn connect_in(url: &str, scratch: Option<String>, partitions: u16) -> Result<PgKv> {
        let bad_url = |e: &dyn std::fmt::Display| {
            StoreError::Postgres(format!("the store URL {:?}: {e}", redact_url(url)))
        };
        let (url_for_driver, root_cert) = take_root_cert(url);
        let mut config: tokio_postgres::Config = url_for_driver.parse().map_err(|e| bad_url(&e))?;
        let tls = tls_for(&config, root_cert.as_deref()).map_err(|e| bad_url(&e))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let location = location_of(&config);
        if let Some(schema) = &scratch {
            config.options(format!("-c search_path={schema}"));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("journey-postgres")
            .enable_all()
            .build()
            .map_err(pg_error)?;
        let manager = match tls {
            Some(tls) => Manager::new(config, tls),
            None => Manager::new(config, tokio_postgres::NoTls),
        };
        let pool = Pool::builder(manager)
            .max_size(8)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(pg_error)?;
        let mut kv = PgKv {
            runtime: Some(runtime),
            pool,
            ids: Mutex::new((0, 0)),
            scratch,
            prefetched: Mutex::new(None),
            contacts: Mutex::new(Default::default()),
            owner: lease::lease_owner(),
            partition_count: 1,
            held: Default::default(),
            commits: Default::default(),
            location,
            down: Default::default(),
            in_flight: Mutex::new(None),
        };
        if let Some(schema) = &kv.scratch {
            let (pool, schema) = (kv.pool.clone(), schema.clone());
            kv.run(async move {
                let client = pool.get().await.map_err(pg_error)?;
                client
                    .batch_execute(&format!("CREATE SCHEMA {schema}"))
                    .await
                    .map_err(pg_error)
            })?;
        }
        kv.partition_count = kv.migrate(partitions)?;
        Ok(kv)
    }

    /// Runs `f` on the backend's runtime and waits for it, from any thread. A batch this
    /// thread commits in the background is settled first, so that `f` sees it.
    fn run<T: Send + 'static>(
        &self,
        f: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        self.await_in_flight()?;
        self.run_beside(f)
    }

    /// `run`, without waiting for a batch in flight (its writes are not seen).
    fn run_beside<T: Send + 'static>(
        &self,
        f: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime
            .as_ref()
            .expect("present until dropped")
            .spawn(async move {
                let _ = tx.send(f.await);
            });
        let r = rx
            .recv()
            .map_err(|_| StoreError::Postgres("the database task stopped".into()))?;
        self.noted(r)
    }

    /// Waits for the batch this thread commits in the background, if any, and takes it
    /// off: its outcome (told once, here).
    fn settle_in_flight(&self) -> Result<()> {
        let mut slot = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if slot
            .as_ref()
            .is_none_or(|f| f.thread != std::thread::current().id())
        {
            return Ok(());
        }
        let mut flight = slot.take().expect("checked above");
        drop(slot);
        let r = flight.outcome();
        if r.is_err() {
            self.forget_contacts();
        }
        self.noted(r)
    }

    /// What is kept of contacts may hold writes that were not stored: forgotten.
    fn forget_contacts(&self) {
        self.contacts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// A read of this thread waits for its batch in flight, so that it reads the batch's
    /// writes from the database; the outcome stays for `settle_in_flight`. Err: the batch
    /// failed (the read would not see what the thread wrote).
    fn await_in_flight(&self) -> Result<()> {
        let mut slot = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let Some(flight) = slot
            .as_mut()
            .filter(|f| f.thread == std::thread::current().id())
        else {
            return Ok(());
        };
        let r = flight.outcome();
        if r.is_err() {
            self.forget_contacts();
        }
        let copy = r.as_ref().map(|_| ()).map_err(copy_of);
        flight.known = Some(r);
        drop(slot);
        self.noted(copy)
    }

    /// A call's outcome, its error naming the database; whether it answered is noted for
    /// `unavailable`.
    fn noted<T>(&self, r: Result<T>) -> Result<T> {
        let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        match r {
            Ok(v) => {
                *down = None;
                Ok(v)
            }
            Err(StoreError::Unavailable(why)) => {
                let why = format!("PostgreSQL at {}: {why}", self.location);
                *down = Some(why.clone());
                Err(StoreError::Unavailable(why))
            }
            Err(StoreError::Postgres(why)) => {
                Err(StoreError::Postgres(format!("{}: {why}", self.location)))
            }
            Err(e) => Err(e),
        }
    }

    /// Creates or upgrades the schema; returns the database's partition count. A schema
    /// created here gets `partitions`; one upgraded from before partitions gets 1 (its timer
    /// and outbox records mix every contact, so one daemon must hold them all).
    fn migrate(&self, partitions: u16) -> Result<u16> {
        let pool = self.pool.clone();
        self.run(async move {
            let mut client = pool.get().await.map_err(pg_error)?;
            // Asked first, so that a start on an existing schema logs no server notice.
            let exists: bool = client
                .query_one("SELECT to_regclass('journey_schema') IS NOT NULL", &[])
                .await
                .map_err(pg_error)?
                .get(0);
            if !exists {
                client
                    .batch_execute(
                        "CREATE TABLE IF NOT EXISTS journey_schema (version integer NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                    )
                    .await
                    .map_err(pg_error)?;
            }
            let row = client
                .query_one("SELECT coalesce(max(version), 0) FROM journey_schema", &[])
                .await
                .map_err(pg_error)?;
            let found: i32 = row.get(0);
            if found > SCHEMA_VERSION {
                return Err(StoreError::NewerSchema {
                    found,
                    known: SCHEMA_VERSION,
                });
            }
            for (i, sql) in migrations().iter().enumerate() {
                let n = i as i32 + 1;
                if n <= found {
                    continue;
                }
                let tx = client.transaction().await.map_err(pg_error)?;
                tx.batch_execute(sql).await.map_err(pg_error)?;
                tx.execute("INSERT INTO journey_schema (version) VALUES ($1)", &[&n])
                    .await
                    .map_err(pg_error)?;
                tx.commit().await.map_err(pg_error)?;
            }
            let count = if found == 0 { partitions.max(1) } else { 1 };
            client
                .execute(
                    "INSERT INTO journey_partitions (part) SELECT generate_series(0, $1 - 1)
                     WHERE NOT EXISTS (SELECT 1 FROM journey_partitions)",
                    &[&(count as i32)],
                )
                .await
                .map_err(pg_error)?;
            let row = client
                .query_one("SELECT count(*) FROM journey_partitions", &[])
                .await
                .map_err(pg_error)?;
            Ok(row.get::<_, i64>(0).clamp(1, u16::MAX as i64) as u16)
        })
    }

    /// One page of a table's rows in `[lower, upper)` (or after `lower`, exclusive, when
    /// `after`), in key order.
    fn page(
        &self,
        table: &'static Table,
        lower: Vec<u8>,
        after: bool,
        upper: Option<Vec<u8>>,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let pool = self.pool.clone();
        self.run(async move {
            let client = pool.get().await.map_err(pg_error)?;
            let op = if after { ">" } else { ">=" };
            let rows = match &upper {
                Some(u) => {
                    let sql = format!(
                        "SELECT k, v FROM {} WHERE k {op} $1 AND k < $2 ORDER BY k LIMIT $3",
                        table.name
                    );
                    client.query(&sql, &[&lower, u, &PAGE]).await
                }
                None => {
                    let sql = format!(
                        "SELECT k, v FROM {} WHERE k {op} $1 ORDER BY k LIMIT $2",
                        table.name
                    );
                    client.query(&sql, &[&lower, &PAGE]).await
                }
            }
            .map_err(pg_error)?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }
}

/// A batch's writes to one table: the keys it removes, the rows it puts.
#[derive(Default)]
struct TableWrites {
    dels: Vec<Vec<u8>>,
    puts: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The rows of one scan, table after table, a page at a time.
struct Scan<'a> {
    kv: &'a PgKv,
    start: Vec<u8>,
    end: Option<Vec<u8>>,
    /// Tables still to read, in prefix order.
    tables: std::vec::IntoIter<&'static Table>,
    current: Option<&'static Table>,
    /// The last key read from the current table.
    last: Option<Vec<u8>>,
    buffered: std::vec::IntoIter<(Vec<u8>, Vec<u8>)>,
    done_with_table: bool,
}

impl Scan<'_> {
    fn bounds(&self, t: &Table) -> (Vec<u8>, Option<Vec<u8>>) {
        let lower = std::cmp::max(self.start.clone(), vec![t.prefix]);
        let table_end = super::kv::prefix_end(&[t.prefix]);
        let upper = match (&self.end, table_end) {
            (Some(e), Some(te)) => Some(std::cmp::min(e.clone(), te)),
            (Some(e), None) => Some(e.clone()),
            (None, te) => te,
        };
        (lower, upper)
    }
}

impl Iterator for Scan<'_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((k, v)) = self.buffered.next() {
                self.last = Some(k.clone());
                return Some(Ok((Bytes::Owned(k), Bytes::Owned(v))));
            }
            if self.current.is_none() || self.done_with_table {
                self.current = Some(self.tables.next()?);
                self.last = None;
                self.done_with_table = false;
            }
            let table = self.current.expect("set above");
            let (lower, upper) = self.bounds(table);
            if upper.as_ref().is_some_and(|u| *u <= lower) {
                self.done_with_table = true;
                continue;
            }
            let (from, after) = match self.last.take() {
                Some(last) => (last, true),
                None => (lower, false),
            };
            match self.kv.page(table, from, after, upper) {
                Ok(rows) => {
                    if (rows.len() as i64) < PAGE {
                        self.done_with_table = true;
                    }
                    self.buffered = rows.into_iter();
                }
                Err(e) => {
                    self.done_with_table = true;
                    self.tables = Vec::new().into_iter();
                    return Some(Err(e));
                }
            }
        }
    }
}

impl PgKv {
    /// Runs `f` on what this thread prefetched, if anything.
    fn with_prefetched<T>(&self, f: impl FnOnce(&Prefetched) -> Option<T>) -> Option<T> {
        let guard = self.prefetched.lock().unwrap_or_else(|e| e.into_inner());
        let p = guard.as_ref()?;
        if p.thread != std::thread::current().id() {
            return None;
        }
        f(p)
    }
}

/// The commits after which the store asks PostgreSQL to analyse its tables (then the
/// autovacuum daemon's own schedule takes over).
const ANALYSE_AFTER_COMMITS: [u64; 4] = [20, 200, 2_000, 20_000];

impl PgKv {
    /// Tables that start empty have no statistics until the autovacuum daemon analyses them
    /// (a minute or more), and meanwhile the planner reads a batch's contacts by scanning
    /// whole tables, which gets slower with every row. So the first commits of this process
    /// are followed, now and then, by an `ANALYZE` of the tables a batch reads, in the
    /// background (it blocks no writer).
    fn analyse_while_young(&self) {
        let n = self
            .commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        if !ANALYSE_AFTER_COMMITS.contains(&n) {
            return;
        }
        let pool = self.pool.clone();
        if let Some(rt) = &self.runtime {
            rt.spawn(async move {
                if let Ok(client) = pool.get().await {
                    if let Err(e) = client
                        .batch_execute("ANALYZE contacts, events, instances, timer_records")
                        .await
                    {
                        tracing::debug!("ANALYZE: {e}");
                    }
                }
            });
        }
    }
}

impl PgKv {
    /// A batch's transaction, ready to run: its statements pipelined, the fence checked,
    /// then the commit. With it, the batch's writes (the last of each key).
    #[allow(clippy::type_complexity)]
    fn batch_commit(
        &self,
        ops: Vec<Op>,
    ) -> Result<(
        BTreeMap<Vec<u8>, Option<Vec<u8>>>,
        impl Future<Output = Result<()>> + Send + 'static,
    )> {
        // What was read ahead is about to change.
        *self.prefetched.lock().unwrap_or_else(|e| e.into_inner()) = None;
        // The last write of a key wins, as in one sled batch.
        let mut last: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        for (k, v) in ops {
            last.insert(k, v);
        }
        self.contacts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write(&last);
        // Per table: the keys to remove, the rows to put.
        let mut by_table: BTreeMap<u8, TableWrites> = BTreeMap::new();
        for (k, v) in &last {
            let Some(p) = k.first().copied().filter(|p| table_of(*p).is_some()) else {
                return Err(StoreError::Malformed {
                    key: String::from_utf8_lossy(k).into_owned(),
                    what: "key (no table holds its kind)",
                });
            };
            let e = by_table.entry(p).or_default();
            match v {
                Some(v) => e.puts.push((k.clone(), v.clone())),
                None => e.dels.push(k.clone()),
            }
        }
        // The partitions it writes: each must still be this process's. An inbox entry is
        // put for another partition's holder (anyone may), and taken by that holder only.
        let touched: std::collections::BTreeSet<u16> = last
            .iter()
            .filter(|(k, v)| !(k.first() == Some(&b'x') && v.is_some()))
            .filter_map(|(k, _)| {
                crate::store::partitions::partition_of_key(k, self.partition_count)
            })
            .collect();
        self.check_held(&touched)?;
        let pool = self.pool.clone();
        let fence = self.fence(touched);
        let commit = async move {
            let mut client = pool.get().await.map_err(pg_error)?;
            let txn = client.transaction().await.map_err(pg_error)?;
            {
                // Every statement of the batch is sent at once (the connection pipelines
                // them), then the commit: the round trips of one statement, not of each.
                let tx = &txn;
                let fence = &fence;
                let mut statements: Vec<
                    std::pin::Pin<Box<dyn Future<Output = Result<()>> + Send + '_>>,
                > = Vec::new();
                for (prefix, TableWrites { dels, puts }) in by_table {
                    let table = table_of(prefix).expect("checked above");
                    if !dels.is_empty() {
                        statements.push(Box::pin(async move {
                            let sql = format!("DELETE FROM {} WHERE k = ANY($1)", table.name);
                            tx.execute(&sql, &[&dels]).await.map_err(pg_error)?;
                            Ok(())
                        }));
                    }
                    if !puts.is_empty() {
                        statements.push(Box::pin(upsert(tx, table, puts)));
                    }
                }
                statements.push(Box::pin(fence.check(tx)));
                futures_util::future::try_join_all(statements).await?;
            }
            let tx = txn;
            tx.commit().await.map_err(pg_error)
        };
        Ok((last, commit))
    }

    /// The writes of the batch this thread has in flight, laid over rows read beside it:
    /// exact keys take the batch's value; each prefix's rows lose the keys it removes and
    /// gain (or replace) the keys it puts.
    fn overlay_in_flight(&self, p: &mut Prefetched) {
        let guard = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let Some(flight) = guard
            .as_ref()
            .filter(|f| f.thread == std::thread::current().id())
            .filter(|f| !matches!(f.known, Some(Err(_))))
        else {
            return;
        };
        for (k, v) in &flight.writes {
            if let Some(slot) = p.exact.get_mut(k) {
                *slot = v.clone();
            } else if let Some(rows) = p.prefix_of_mut(k) {
                cache::put_row(rows, k, v);
            }
        }
    }
}

impl Kv for PgKv {
    fn prefetches(&self) -> bool {
        true
    }

    fn prefetch(&self, exact: Vec<Vec<u8>>, prefixes: Vec<Vec<u8>>) -> Result<()> {
        // Rows by owner: the typed `contact` (or `id`) column, indexed, answers for all
        // the batch's contacts in one query per table.
        let owner = |k: &[u8]| match k.first() {
            Some(b'c') => Some(unescape_id(&k[1..])),
            Some(_) => k[1..]
                .iter()
                .position(|&b| b == 0)
                .map(|z| unescape_id(&k[1..1 + z])),
            None => None,
        };
        // The contacts kept as this process left them need no query (`cache`).
        let mut kept: Vec<(Vec<u8>, cache::ContactRows)> = Vec::new();
        let mut to_read: Vec<Vec<u8>> = Vec::new();
        {
            let cache = self.contacts.lock().unwrap_or_else(|e| e.into_inner());
            for k in &exact {
                match cache::owner_of(k).and_then(|(_, id)| Some((id, cache.get(id)?))) {
                    Some((id, rows)) => kept.push((id.to_vec(), rows.clone())),
                    None => to_read.push(k.clone()),
                }
            }
        }
        // As the typed columns hold them (rows of another id that reads the same there are
        // told apart by their keys below).
        let contacts: Vec<String> = to_read
            .iter()
            .filter_map(|k| owner(k))
            .map(|c| text_without_nul(&c))
            .collect();
        let contact_keys: Vec<Vec<u8>> = to_read
            .iter()
            .filter(|k| k.first() == Some(&b'c'))
            .cloned()
            .collect();
        let pool = self.pool.clone();
        let nothing_to_read = contacts.is_empty();
        // Beside a batch in flight: its writes are laid over what is read.
        let rows = if nothing_to_read {
            Vec::new()
        } else {
            self.run_beside(async move {
                let client = pool.get().await.map_err(pg_error)?;
                // Sent together, so the three cost the round trips of one. Not prepared once
                // and kept: a kept statement may get a generic plan, which for `= ANY($1)`
                // scans the table (a hundred times slower here).
                // By the indexed columns: the contacts' keys, and `contact` (the planner uses
                // the indexes once the tables have statistics: `analyse_while_young`).
                let ids: [&(dyn ToSql + Sync); 1] = [&contacts];
                let keys: [&(dyn ToSql + Sync); 1] = [&contact_keys];
                let found = tokio::try_join!(
                    client.query("SELECT k, v FROM contacts WHERE k = ANY($1)", &keys),
                    client.query("SELECT k, v FROM events WHERE contact = ANY($1)", &ids),
                    client.query("SELECT k, v FROM instances WHERE contact = ANY($1)", &ids),
                )
                .map_err(pg_error)?;
                let mut out: Vec<(Vec<u8>, Vec<u8>)> = [found.0, found.1, found.2]
                    .into_iter()
                    .flatten()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect();
                // Each prefix's rows in key order, as a scan gives them.
                out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                Ok(out)
            })?
        };
        let mut p = Prefetched {
            thread: std::thread::current().id(),
            exact: exact.into_iter().map(|k| (k, None)).collect(),
            prefixes: prefixes.into_iter().map(|k| (k, Vec::new())).collect(),
        };
        for (k, v) in rows {
            if let Some(slot) = p.exact.get_mut(&k) {
                *slot = Some(v);
            } else if let Some(rows) = p.prefix_of_mut(&k) {
                rows.push((k, v));
            }
        }
        self.overlay_in_flight(&mut p);
        // What was read is kept; what was kept is served.
        let mut cache = self.contacts.lock().unwrap_or_else(|e| e.into_inner());
        let prefix_rows = |p: &Prefetched, kind: u8, id: &[u8]| -> Rows {
            let mut prefix = Vec::with_capacity(id.len() + 2);
            prefix.push(kind);
            prefix.extend_from_slice(id);
            prefix.push(0);
            p.prefixes.get(&prefix).cloned().unwrap_or_default()
        };
        for k in &to_read {
            if let Some((b'c', id)) = cache::owner_of(k) {
                let rows = cache::ContactRows {
                    record: p.exact.get(k).cloned().flatten(),
                    events: prefix_rows(&p, b'e', id),
                    instances: prefix_rows(&p, b'i', id),
                };
                cache.keep(id.to_vec(), rows);
            }
        }
        drop(cache);
        for (id, rows) in kept {
            let mut record_key = Vec::with_capacity(id.len() + 1);
            record_key.push(b'c');
            record_key.extend_from_slice(&id);
            p.exact.insert(record_key, rows.record);
            for (kind, rows) in [(b'e', rows.events), (b'i', rows.instances)] {
                let mut prefix = Vec::with_capacity(id.len() + 2);
                prefix.push(kind);
                prefix.extend_from_slice(&id);
                prefix.push(0);
                p.prefixes.insert(prefix, rows);
            }
        }
        *self.prefetched.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        if let Some(hit) = self.with_prefetched(|p| {
            if let Some(v) = p.exact.get(key) {
                return Some(v.clone());
            }
            let rows = p.prefix_of(key)?;
            Some(
                rows.binary_search_by(|(k, _)| k.as_slice().cmp(key))
                    .ok()
                    .map(|i| rows[i].1.clone()),
            )
        }) {
            return Ok(hit.map(Bytes::Owned));
        }
        let Some(table) = key.first().and_then(|p| table_of(*p)) else {
            return Ok(None);
        };
        let pool = self.pool.clone();
        let key = key.to_vec();
        self.run(async move {
            let client = pool.get().await.map_err(pg_error)?;
            let sql = format!("SELECT v FROM {} WHERE k = $1", table.name);
            let row = client.query_opt(&sql, &[&key]).await.map_err(pg_error)?;
            Ok(row.map(|r| Bytes::Owned(r.get(0))))
        })
    }

    fn range<'a>(&'a self, start: &[u8], end: Option<&[u8]>) -> Entries<'a> {
        // Within one prefetched prefix: from memory.
        let hit = self.with_prefetched(|p| {
            let rows = p.prefix_of(start)?;
            let (prefix, _) = p.prefixes.range(..=start.to_vec()).next_back()?;
            let prefix_end = super::kv::prefix_end(prefix);
            let inside = match (end, &prefix_end) {
                (Some(e), Some(pe)) => e <= pe.as_slice(),
                _ => false,
            };
            inside.then(|| {
                rows.iter()
                    .filter(|(k, _)| k.as_slice() >= start && end.is_none_or(|e| k.as_slice() < e))
                    .cloned()
                    .collect::<Vec<_>>()
            })
        });
        if let Some(rows) = hit {
            return Box::new(
                rows.into_iter()
                    .map(|(k, v)| Ok((Bytes::Owned(k), Bytes::Owned(v)))),
            );
        }
        let first = start.first().copied().unwrap_or(0);
        let tables: Vec<&'static Table> = all_tables()
            .filter(|t| t.prefix >= first && end.is_none_or(|e| [t.prefix].as_slice() < e))
            .collect::<Vec<_>>();
        let mut tables = tables;
        tables.sort_by_key(|t| t.prefix);
        Box::new(Scan {
            kv: self,
            start: start.to_vec(),
            end: end.map(<[u8]>::to_vec),
            tables: tables.into_iter(),
            current: None,
            last: None,
            buffered: Vec::new().into_iter(),
            done_with_table: false,
        })
    }

    fn apply(&self, ops: Vec<Op>) -> Result<()> {
        // After the batch in flight, if any (`run` waits for it; `settle` still tells it).
        let (_, commit) = self.batch_commit(ops)?;
        if let Err(e) = self.run(commit) {
            self.forget_contacts();
            return Err(e);
        }
        self.analyse_while_young();
        Ok(())
    }

    fn apply_in_background(&self, ops: Vec<Op>) -> Result<()> {
        // One batch in flight at a time, committed in order.
        self.settle_in_flight()?;
        let (writes, commit) = self.batch_commit(ops)?;
        let (tx, outcome) = std::sync::mpsc::sync_channel(1);
        self.runtime
            .as_ref()
            .expect("present until dropped")
            .spawn(async move {
                let _ = tx.send(commit.await);
            });
        *self.in_flight.lock().unwrap_or_else(|e| e.into_inner()) = Some(InFlight {
            thread: std::thread::current().id(),
            writes,
            outcome,
            known: None,
        });
        self.analyse_while_young();
        Ok(())
    }

    fn settle(&self) -> Result<()> {
        self.settle_in_flight()
    }

    fn commits_in_background(&self) -> bool {
        true
    }

    fn insert_new(&self, key: &[u8], value: &[u8]) -> Result<Option<Bytes>> {
        let Some(table) = key.first().and_then(|p| table_of(*p)) else {
            return Err(StoreError::Malformed {
                key: String::from_utf8_lossy(key).into_owned(),
                what: "key (no table holds its kind)",
            });
        };
        let touched: std::collections::BTreeSet<u16> =
            crate::store::partitions::partition_of_key(key, self.partition_count)
                .into_iter()
                .collect();
        self.check_held(&touched)?;
        if cache::owner_of(key).is_some() {
            // Not kept up to date by this path: read again when next needed.
            self.forget_contacts();
        }
        let (key, value) = (key.to_vec(), value.to_vec());
        let pool = self.pool.clone();
        let fence = self.fence(touched);
        self.run(async move {
            let mut client = pool.get().await.map_err(pg_error)?;
            let tx = client.transaction().await.map_err(pg_error)?;
            let sql = format!("SELECT v FROM {} WHERE k = $1", table.name);
            if let Some(row) = tx.query_opt(&sql, &[&key]).await.map_err(pg_error)? {
                return Ok(Some(Bytes::Owned(row.get(0))));
            }
            // Two writers at once: the one that loses the race inserts nothing and reads
            // the winner's value.
            let inserted = insert_if_absent(&tx, table, &key, &value).await?;
            let current = if inserted {
                None
            } else {
                tx.query_opt(&sql, &[&key])
                    .await
                    .map_err(pg_error)?
                    .map(|r| Bytes::Owned(r.get(0)))
            };
            fence.check(&tx).await?;
            tx.commit().await.map_err(pg_error)?;
            Ok(current)
        })
    }

    fn claim_exclusive(&self) -> Result<()> {
        self.claim_lease()
    }

    fn lease(&self) -> Option<super::LeaseInfo> {
        self.lease_info()
    }

    fn announce(&self, address: &str, role: &str) -> Result<()> {
        self.announce_daemon(address, role)
    }

    fn daemons(&self) -> Result<Vec<super::DaemonSeen>> {
        self.listed_daemons()
    }

    fn flush(&self) -> Result<()> {
        // Every apply is a commit.
        Ok(())
    }

    fn can_be_unavailable(&self) -> bool {
        true
    }

    fn forget_cached(&self) {
        self.forget_contacts();
    }

    fn partition_count(&self) -> u16 {
        self.partition_count
    }

    fn held_partitions(&self) -> Option<std::sync::Arc<crate::store::partitions::HeldPartitions>> {
        self.held.get().cloned()
    }

    fn unavailable(&self) -> Option<String> {
        self.down.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn ping(&self) -> Result<()> {
        let pool = self.pool.clone();
        self.run(async move {
            let client = pool.get().await.map_err(pg_error)?;
            client.simple_query("SELECT 1").await.map_err(pg_error)?;
            Ok(())
        })
    }

    fn next_id(&self) -> Result<u64> {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        if ids.0 >= ids.1 {
            let pool = self.pool.clone();
            let start: i64 = self.run(async move {
                let client = pool.get().await.map_err(pg_error)?;
                let row = client
                    .query_one("SELECT nextval('journey_ids')", &[])
                    .await
                    .map_err(pg_error)?;
                Ok(row.get(0))
            })?;
            *ids = (start as u64, (start + ID_BLOCK) as u64);
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    fn ids_above(&self, n: u64) -> Result<()> {
        let pool = self.pool.clone();
        let n = i64::try_from(n).map_err(pg_error)?;
        self.run(async move {
            let client = pool.get().await.map_err(pg_error)?;
            client
                .execute(
                    "SELECT setval('journey_ids', greatest($1, (SELECT last_value FROM journey_ids)))",
                    &[&n],
                )
                .await
                .map_err(pg_error)?;
            Ok(())
        })?;
        // The ids reserved in memory may be below: take a new block.
        *self.ids.lock().unwrap_or_else(|e| e.into_inner()) = (0, 0);
        Ok(())
    }

    fn size_on_disk(&self) -> u64 {
        let pool = self.pool.clone();
        self.run(async move {
            let client = pool.get().await.map_err(pg_error)?;
            let row = client
                .query_one("SELECT pg_database_size(current_database())", &[])
                .await
                .map_err(pg_error)?;
            Ok(row.get::<_, i64>(0) as u64)
        })
        .unwrap_or(0)
    }
}

/// Puts rows into a table (replacing the rows of the same keys): one statement.
async fn upsert(
    tx: &deadpool_postgres::Transaction<'_>,
    table: &Table,
    rows: Vec<(Vec<u8>, Vec<u8>)>,
) -> Result<()> {
    insert_rows(tx, table, rows, true).await.map(|_| ())
}

/// Inserts one row unless its key is there: whether it did.
async fn insert_if_absent(
    tx: &deadpool_postgres::Transaction<'_>,
    table: &Table,
    key: &[u8],
    value: &[u8],
) -> Result<bool> {
    Ok(insert_rows(tx, table, vec![(key.to_vec(), value.to_vec())], false).await? == 1)
}

/// Inserts rows in one statement, the typed columns made from each row; a row whose key is
/// there replaces it when `replace`, else is left out. The rows inserted or replaced.
async fn insert_rows(
    tx: &deadpool_postgres::Transaction<'_>,
    table: &Table,
    rows: Vec<(Vec<u8>, Vec<u8>)>,
    replace: bool,
) -> Result<u64> {
    let typed: Vec<Option<Vec<Col>>> = rows.iter().map(|(k, v)| (table.typed)(k, v)).collect();
    let (keys, values): (Vec<Vec<u8>>, Vec<Vec<u8>>) = rows.into_iter().unzip();
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(keys), Box::new(values)];
    for (i, (_, ty)) in table.columns.iter().enumerate() {
        params.push(column_array(
            *ty,
            typed.iter().map(|r| r.as_ref().map(|r| &r[i])),
        ));
    }
    let names: Vec<&str> = table.columns.iter().map(|(n, _)| *n).collect();
    let unnest: Vec<String> = ["$1::bytea[]".to_string(), "$2::bytea[]".to_string()]
        .into_iter()
        .chain(
            table
                .columns
                .iter()
                .enumerate()
                .map(|(i, (_, ty))| format!("${}::{}[]", i + 3, ty.sql())),
        )
        .collect();
    let on_conflict = if replace {
        let updates: Vec<String> = std::iter::once("v = excluded.v".to_string())
            .chain(names.iter().map(|n| format!("{n} = excluded.{n}")))
            .collect();
        format!("DO UPDATE SET {}", updates.join(", "))
    } else {
        "DO NOTHING".to_string()
    };
    let sql = format!(
        "INSERT INTO {} (k, v, {}) SELECT * FROM unnest({}) ON CONFLICT (k) {on_conflict}",
        table.name,
        names.join(", "),
        unnest.join(", ")
    );
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    // The text depends on the table only (the rows go as arrays): prepared once per
    // connection.
    let statement = tx.prepare_cached(&sql).await.map_err(pg_error)?;
    tx.execute(&statement, &refs).await.map_err(pg_error)
}

/// One typed column of many rows, as an array parameter.
/// PostgreSQL's text and JSONB hold no NUL character (U+0000), which an id or a property
/// may: the typed columns show it as U+FFFD (the key and the value, in bytea, keep it).
fn text_without_nul(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s.to_owned()
    }
}

/// `text_without_nul` for every string and key of a JSON value.
fn json_without_nul(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('\0') => *s = text_without_nul(s),
        Value::Array(items) => items.iter_mut().for_each(json_without_nul),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(k, v)| (text_without_nul(&k), v))
                    .collect();
            }
            map.values_mut().for_each(json_without_nul);
        }
        _ => {}
    }
}

fn column_array<'a>(
    ty: ColType,
    cells: impl Iterator<Item = Option<&'a Col>>,
) -> Box<dyn ToSql + Sync + Send> {
    match ty {
        Text => Box::new(
            cells
                .map(|c| match c {
                    Some(Col::Text(v)) => v.as_deref().map(text_without_nul),
                    _ => None,
                })
                .collect::<Vec<Option<String>>>(),
        ),
        BigInt => Box::new(
            cells
                .map(|c| match c {
                    Some(Col::BigInt(v)) => *v,
                    _ => None,
                })
                .collect::<Vec<Option<i64>>>(),
        ),
        Time => Box::new(
            cells
                .map(|c| match c {
                    Some(Col::Time(v)) => *v,
                    _ => None,
                })
                .collect::<Vec<Option<DateTime<Utc>>>>(),
        ),
        Json => Box::new(
            cells
                .map(|c| match c {
                    Some(Col::Json(v)) => v.clone().map(|mut v| {
                        json_without_nul(&mut v);
                        v
                    }),
                    _ => None,
                })
                .collect::<Vec<Option<Value>>>(),
        ),
        Binary => Box::new(
            cells
                .map(|c| match c {
                    Some(Col::Bytes(v)) => v.clone(),
                    _ => None,
                })
                .collect::<Vec<Option<Vec<u8>>>>(),
        ),
    }
}
