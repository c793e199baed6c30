//! Everything that touches sled. One tree, keys prefixed by kind, so that a transition, its
//! timers, its outbox entries and its events are one atomic `sled::Batch`:
//!
//! | prefix | key after the prefix                       | value                  |
//! |--------|--------------------------------------------|------------------------|
//! | `c`    | contact id*                                | Contact (JSON)         |
//! | `e`    | contact id*, 0, time (BE), seq (BE)        | Event (binary, codec)  |
//! | `d`    | event idempotency id                       | empty (dedupe)         |
//! | `i`    | contact id*, 0, instance id (BE)           | Instance (binary)      |
//! | `t`    | bucket start (BE), record id (BE)          | timers (binary, below) |
//! | `o`    | record id (BE)                             | SendJobs (binary)      |
//! | `v`    | version hash                               | JourneyIr (JSON)       |
//! | `h`    | journey name                               | current version hash   |
//! | `s`    | segment name, 0, contact id*               | empty (membership)     |
//! | `n`    | contact id*                                | next segment check (BE)|
//! | `q`    | check time (BE), contact id*               | empty (segment checks) |
//! | `g`    | segment name                               | definition fingerprint |
//! | `p`    | schedule key                               | last run time (BE)     |
//! | `l`    | short link code                            | Claims (JSON)          |
//! | `u`    | HMAC-SHA-256 of an erased address (32 B)   | Suppression (JSON)     |
//! | `m`    | meta key                                   | meta value             |
//! | `x`    | partition (BE), time (BE), id (BE)         | routed input (JSON)    |
//!
//! \* A contact id in a key is escaped (`push_id`): byte 0 is written as 1 1 and byte 1 as
//! 1 2, every other byte as itself, so the escaped id holds no 0 and the 0 after it ends
//! it: no id's keys can be a prefix of another's (`a` and `a\0…`), and the escaping keeps
//! byte order. Ids without bytes 0 and 1 (every id the inputs accept: they refuse control
//! characters) are written as they are. Stores written before (layout 1, ids unescaped)
//! are rewritten once when opened (`migrate_layout`); the layout is meta `layout`.
//!
//! Times are milliseconds with the sign bit flipped, so byte order is time order.
//!
//! Timer and outbox record ids carry their contacts' partition in their top 16 bits
//! (`partitions::record_id`): on a database several daemons share, each loads only the
//! records of its partitions. The inbox (`x`) holds work that a daemon received for a
//! partition another holds; that one takes it in a batch, which removes it.
//!
//! The records every transition writes (events, instances, outbox records) are a compact
//! binary form (`codec`); the others are JSON.
//!
//! Timers are written by the batch, not one key each: the timers a batch sets that fall in
//! one bucket of `TIMER_BUCKET_MS` are one record, `(due, instance, contact)` each. A
//! record is removed once every timer in it has fired or been cancelled, so a waiting
//! contact costs a share of two writes rather than two of its own, and a million waiting
//! contacts are thousands of keys. A timer in a record is a hint: the instance's own `due`
//! is the truth, and one that no longer matches is stale and does nothing.
//!
//! The outbox is written the same way: the sends a batch commits are one record, removed
//! once each of them has its outcome. A send is pending while its record holds it and its
//! contact's history has no outcome (`message.sent`, `.failed`, `.bounced`, `.uncertain`) for its id.

use crate::compile::ir::JourneyIr;
use crate::engine::Claims;
use crate::engine::{Contact, Event, Instance, Millis, SendJob};
use kv::{Kv, Op};
use std::path::Path;

mod bench;
mod codec;
mod copy;
pub mod credentials;
mod daemons;
mod keys;
mod kv;
pub mod partitions;
mod postgres;
mod privacy;

pub use bench::{raw_spread_write_benchmark, raw_write_benchmark};
pub use copy::CopyReport;
pub use daemons::{daemon_name, DaemonSeen, LeaseInfo};
pub use keys::LAYOUT;
use keys::*;
pub use kv::CACHE_BYTES;
pub use partitions::{partition_of, record_partition, DEFAULT_PARTITIONS};
pub(crate) use postgres::redact_url;
pub use privacy::{normalize_address, Suppression};

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("store: corrupt value under {key}: {err}")]
    Corrupt { key: String, err: String },
    #[error("store: malformed {what} under {key}")]
    Malformed { key: String, what: &'static str },
    #[error("the store is in use by another process (is `journey serve` running on it?)")]
    InUse,
    #[error("store: its key layout is {found}, newer than this journey reads ({LAYOUT}); run a newer journey on it")]
    NewerLayout { found: String },
    #[error("store: PostgreSQL: {0}")]
    Postgres(String),
    /// The database did not answer (refused, closed, timed out, shutting down): worth
    /// retrying, unlike the other errors.
    #[error("{UNAVAILABLE}{0}")]
    Unavailable(String),
    #[error("store: the database's schema is version {found}, newer than this journey knows ({known}); run a newer journey on it")]
    NewerSchema { found: i32, known: i32 },
}

/// How an unavailable store's error begins, so that an error carried as text (an
/// acknowledgement, a runtime error) is still known for one that may be retried.
pub const UNAVAILABLE: &str = "store unavailable: ";

impl StoreError {
    /// Whether the database did not answer (retry later), rather than refused the work.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Whether an error's text is that of an unavailable store (see `UNAVAILABLE`).
pub fn is_unavailable_text(message: &str) -> bool {
    message.contains(UNAVAILABLE)
}

fn corrupt(k: &[u8], err: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(k).into_owned(),
        err: err.to_string(),
    }
}

/// Reads a JSON value.
fn decode<T: serde::de::DeserializeOwned>(k: &[u8], v: &[u8]) -> Result<T> {
    serde_json::from_slice(v).map_err(|err| corrupt(k, err))
}

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("store values serialize")
}

/// The span of time one timer record covers; buckets start at multiples of it (about a
/// second: the wheel loads a bucket at a time, so a bucket must stay small even when a
/// million contacts entered within a minute).
pub const TIMER_BUCKET_MS: Millis = 1 << 10;

/// The start of the bucket a due time falls in.
pub fn bucket_of(due: Millis) -> Millis {
    due.div_euclid(TIMER_BUCKET_MS) * TIMER_BUCKET_MS
}

/// One timer in a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerEntry {
    pub due: Millis,
    pub instance: u64,
    pub contact: String,
}

/// A record of timers as stored: its bucket, its id, its timers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerRecord {
    pub bucket: Millis,
    pub id: u64,
    pub timers: Vec<TimerEntry>,
}

fn decode_timers(k: &[u8], v: &[u8]) -> Result<TimerRecord> {
    let corrupt = || StoreError::Malformed {
        key: String::from_utf8_lossy(k).into_owned(),
        what: "timer record",
    };
    if k.len() != 17 {
        return Err(corrupt());
    }
    let bucket = time_from_key(&k[1..9]);
    let id = u64::from_be_bytes(k[9..17].try_into().expect("8 bytes"));
    let mut timers = Vec::new();
    let mut rest = v;
    while !rest.is_empty() {
        if rest.len() < 20 {
            return Err(corrupt());
        }
        let due = i64::from_be_bytes(rest[0..8].try_into().expect("8 bytes"));
        let instance = u64::from_be_bytes(rest[8..16].try_into().expect("8 bytes"));
        let len = u32::from_be_bytes(rest[16..20].try_into().expect("4 bytes")) as usize;
        let contact = rest.get(20..20 + len).ok_or_else(corrupt)?;
        timers.push(TimerEntry {
            due,
            instance,
            contact: String::from_utf8_lossy(contact).into_owned(),
        });
        rest = &rest[20 + len..];
    }
    Ok(TimerRecord { bucket, id, timers })
}

/// The embedded database of contacts, events, instances, timers, the outbox and versions.
#[derive(Clone)]
pub struct Store {
    kv: std::sync::Arc<dyn Kv>,
    /// What this process knows of the earliest segment check, shared by its clones: the
    /// engine asks for due checks every round, and on PostgreSQL a read is a round trip
    /// (one that would wait for the batch committing in the background).
    checks: std::sync::Arc<std::sync::Mutex<(CheckBound, u64)>>,
}

/// The earliest stored segment check, as far as this process knows (with it, how many
/// batches that put checks were applied, so that a read racing one is not believed).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
enum CheckBound {
    /// Not known: the store is read.
    #[default]
    Unknown,
    /// No check is earlier than this (None: there is none); every check this process
    /// writes lowers it.
    NoneBefore(Option<Millis>),
}

/// Writes to apply together: all or nothing.
#[derive(Default)]
pub struct WriteBatch {
    ops: Vec<Op>,
    /// How many keys this batch writes or removes (benchmarks report it).
    pub writes: usize,
}

impl WriteBatch {
    fn put(&mut self, k: Vec<u8>, v: Vec<u8>) {
        self.ops.push((k, Some(v)));
        self.writes += 1;
    }
    fn del(&mut self, k: Vec<u8>) {
        self.ops.push((k, None));
        self.writes += 1;
    }
    pub fn put_contact(&mut self, c: &Contact) {
        self.put(id_key(b'c', &[], &c.id, &[]), encode(c));
    }
    /// `seq` orders events of one contact at the same millisecond.
    pub fn put_event(&mut self, e: &Event, seq: u64) {
        let mut k = Vec::with_capacity(e.contact.len() + 18);
        k.push(b'e');
        push_id(&mut k, &e.contact);
        k.push(0);
        k.extend_from_slice(&time_key(e.at));
        k.extend_from_slice(&seq.to_be_bytes());
        let mut v = Vec::with_capacity(128);
        codec::write_event(e, &mut v);
        self.put(k, v);
        if let Some(id) = &e.id {
            self.put(key(b'd', &[id.as_bytes()]), Vec::new());
        }
    }
    /// Instances live under their contact: one prefix scan finds a contact's instances, with
    /// no index to keep (a write saved per contact on the hot path).
    pub fn put_instance(&mut self, i: &Instance) {
        self.put(
            id_key(b'i', &[], &i.contact, &[&[0], &i.id.to_be_bytes()]),
            codec::instance_bytes(i),
        );
    }
    /// A record of timers in one bucket (see the module documentation). Each names its
    /// contact, so a fired timer finds its instance with one read.
    pub fn put_timers(&mut self, bucket: Millis, record: u64, timers: &[TimerEntry]) {
        debug_assert!(timers.iter().all(|t| bucket_of(t.due) == bucket));
        let mut v = Vec::with_capacity(timers.len() * 32);
        for t in timers {
            v.extend_from_slice(&t.due.to_be_bytes());
            v.extend_from_slice(&t.instance.to_be_bytes());
            let c = t.contact.as_bytes();
            v.extend_from_slice(&(c.len() as u32).to_be_bytes());
            v.extend_from_slice(c);
        }
        self.put(timer_key(bucket, record), v);
    }
    pub fn del_timers(&mut self, bucket: Millis, record: u64) {
        self.del(timer_key(bucket, record));
    }
    /// The sends one batch commits (see the module documentation).
    pub fn put_outbox(&mut self, record: u64, jobs: &[SendJob]) {
        self.put(key(b'o', &[&record.to_be_bytes()]), codec::jobs_bytes(jobs));
    }
    /// Work for partition `partition`'s holder, put at `at` by a daemon that does not hold
    /// it (`id`, from `next_id`, keeps entries of the same millisecond apart).
    pub fn put_inbox(&mut self, partition: u16, at: Millis, id: u64, value: Vec<u8>) {
        self.put(
            key(
                b'x',
                &[&partition.to_be_bytes(), &time_key(at), &id.to_be_bytes()],
            ),
            value,
        );
    }
    pub fn del_inbox(&mut self, key: Vec<u8>) {
        self.del(key);
    }
    pub fn del_outbox(&mut self, record: u64) {
        self.del(key(b'o', &[&record.to_be_bytes()]));
    }
    pub fn put_version(&mut self, hash: &str, ir: &JourneyIr) {
        self.put(key(b'v', &[hash.as_bytes()]), encode(ir));
    }
    pub fn set_head(&mut self, journey: &str, hash: &str) {
        self.put(key(b'h', &[journey.as_bytes()]), hash.as_bytes().to_vec());
    }
    pub fn put_member(&mut self, segment: &str, contact: &str) {
        self.put(member_key(segment, contact), Vec::new());
    }
    pub fn del_member(&mut self, segment: &str, contact: &str) {
        self.del(member_key(segment, contact));
    }
    /// The next moment a contact's segment membership could change by time alone (an
    /// event leaving an `in last` window): a check keyed by time, scanned like timers, and
    /// the contact's own record of it so that the next evaluation can move or remove it.
    pub fn put_segment_check(&mut self, contact: &str, at: Millis) {
        self.put(id_key(b'q', &[&time_key(at)], contact, &[]), Vec::new());
        self.put(id_key(b'n', &[], contact, &[]), time_key(at).to_vec());
    }
    pub fn del_segment_check(&mut self, contact: &str, at: Millis) {
        self.del(id_key(b'q', &[&time_key(at)], contact, &[]));
        self.del(id_key(b'n', &[], contact, &[]));
    }
    /// Removes only the time key (when a new one replaces it, `put` rewrites the record).
    pub fn del_segment_check_key(&mut self, contact: &str, at: Millis) {
        self.del(id_key(b'q', &[&time_key(at)], contact, &[]));
    }
    /// The fingerprint of a segment's definition, as last evaluated over every contact.
    pub fn put_segment_def(&mut self, segment: &str, fingerprint: &str) {
        self.put(
            key(b'g', &[segment.as_bytes()]),
            fingerprint.as_bytes().to_vec(),
        );
    }
    pub fn del_segment_def(&mut self, segment: &str) {
        self.del(key(b'g', &[segment.as_bytes()]));
    }
    pub fn set_schedule_run(&mut self, schedule: &str, at: Millis) {
        self.put(key(b'p', &[schedule.as_bytes()]), time_key(at).to_vec());
    }
    pub fn set_meta(&mut self, name: &str, value: &[u8]) {
        self.put(key(b'm', &[name.as_bytes()]), value.to_vec());
    }
    /// Removes keys as `Store::contact_keys` found them (erasure).
    pub fn del_keys(&mut self, keys: Vec<Vec<u8>>) {
        for k in keys {
            self.del(k);
        }
    }
    /// What is kept of an erased contact's address: its one-way hash and its consent.
    pub fn put_suppression(&mut self, hash: &[u8; 32], s: &Suppression) {
        self.put(key(b'u', &[hash]), encode(s));
    }
}

impl Store {
    /// Opens (or creates) the embedded store (sled) in a directory.
    pub fn open(path: &Path) -> Result<Store> {
        Store::over(kv::SledKv::open(path)?)
    }

    /// A store at `location`: a PostgreSQL URL (`postgres://…` or `postgresql://…`), or
    /// else the directory of a sled store.
    pub fn open_location(location: &str) -> Result<Store> {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            Store::connect(location)
        } else {
            Store::open(Path::new(location))
        }
    }

    /// Connects to a PostgreSQL store (`postgres://user@host:port/db`), creating or
    /// upgrading its schema.
    pub fn connect(url: &str) -> Result<Store> {
        Store::connect_with(url, DEFAULT_PARTITIONS)
    }

    /// The same; a schema created now gets `partitions` partitions (`store.partitions`).
    pub fn connect_with(url: &str, partitions: u16) -> Result<Store> {
        Store::over(postgres::PgKv::connect(url, partitions)?)
    }

    /// A PostgreSQL store of its own, in a new schema of the database at `url` that is
    /// dropped with the store (scenarios and tests: each starts empty).
    pub fn connect_scratch(url: &str) -> Result<Store> {
        Store::over(postgres::PgKv::scratch(url)?)
    }

    /// An embedded store in a temporary directory, removed when dropped (scenarios).
    pub fn temporary() -> Result<Store> {
        Store::over(kv::SledKv::temporary()?)
    }

    fn over(kv: impl Kv + 'static) -> Result<Store> {
        let store = Store {
            kv: std::sync::Arc::new(kv),
            checks: Default::default(),
        };
        store.migrate_layout()?;
        Ok(store)
    }

    /// Tells the store that this thread is about to process these contacts: a database
    /// with a round trip per read (PostgreSQL) loads their records, events and instances at
    /// once, and serves this thread's reads of them until the next write. sled ignores it.
    pub fn prefetch_contacts<'a>(&self, ids: impl Iterator<Item = &'a str>) -> Result<()> {
        if !self.kv.prefetches() {
            return Ok(());
        }
        let mut exact = Vec::new();
        let mut prefixes = Vec::new();
        for id in ids {
            exact.push(id_key(b'c', &[], id, &[]));
            prefixes.push(owned_prefix(b'e', id));
            prefixes.push(owned_prefix(b'i', id));
        }
        self.kv.prefetch(exact, prefixes)
    }

    /// Makes this process a daemon working on the store: sled's file lock makes it the only
    /// one when opened; on PostgreSQL its lease keeper takes its share of the partitions
    /// (all of them while it is alone) and keeps it while the process lives.
    pub fn claim_exclusive(&self) -> Result<()> {
        self.kv.claim_exclusive()
    }

    /// How many partitions the store's contacts hash into (sled: one).
    pub fn partition_count(&self) -> u16 {
        self.kv.partition_count()
    }

    /// The partition a contact lives in.
    pub fn partition_of(&self, contact: &str) -> u16 {
        partition_of(contact, self.kv.partition_count())
    }

    /// Whether this process advances partition `p`'s contacts: always, unless it claimed a
    /// database that several daemons share and `p` is another's.
    pub fn works_on_partition(&self, p: u16) -> bool {
        self.kv.held_partitions().is_none_or(|h| h.works_on(p))
    }

    /// Whether a send to `contact` may go to its provider now: always, unless several
    /// daemons share the store (see `MaySend`).
    pub fn may_send(&self, contact: &str) -> partitions::MaySend {
        match self.kv.held_partitions() {
            None => partitions::MaySend::Go,
            Some(h) => h.may_send(partition_of(contact, h.count)),
        }
    }

    /// Whether this process works on every partition (alone on its store, or sled).
    pub fn works_on_all(&self) -> bool {
        self.kv
            .held_partitions()
            .is_none_or(|h| h.held().len() == h.count as usize)
    }

    /// Whether this process advances this contact (`works_on_partition`).
    pub fn works_on(&self, contact: &str) -> bool {
        match self.kv.held_partitions() {
            None => true,
            Some(h) => h.works_on(partition_of(contact, h.count)),
        }
    }

    /// Moves each time the partitions this process works on change (0 while it never
    /// claimed a shared database): the engine then reads its state again.
    pub fn partition_generation(&self) -> u64 {
        self.kv.held_partitions().map_or(0, |h| h.generation())
    }

    /// The engine has read its state for `generation`: partitions handed back meanwhile may
    /// be released.
    pub fn partitions_applied(&self, generation: u64) {
        if let Some(h) = self.kv.held_partitions() {
            h.mark_applied(generation);
        }
    }

    /// Forgets what the backend keeps of rows in memory (see `Kv::forget_cached`).
    pub fn forget_cached(&self) {
        self.kv.forget_cached();
    }

    /// Whether other daemons may share this store (a claimed database).
    pub fn is_shared(&self) -> bool {
        self.kv.held_partitions().is_some()
    }

    /// Inbox entries for the partitions this process works on, oldest first within each
    /// partition, at most `limit`: (key, value). The batch that processes one removes it
    /// (`WriteBatch::del_inbox`), so each is taken once.
    pub fn inbox(&self, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        for r in self.kv.scan_prefix(b"x") {
            let (k, v) = r?;
            let Some(p) = k.get(1..3).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
                continue;
            };
            if self.works_on_partition(p) {
                out.push((k.to_vec(), v.to_vec()));
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Whether the database can go away while the store is open (PostgreSQL, not sled).
    pub fn can_be_unavailable(&self) -> bool {
        self.kv.can_be_unavailable()
    }

    /// Why the database is unreachable, as of the last call that tried it; None when it
    /// answered.
    pub fn unavailable(&self) -> Option<String> {
        self.kv.unavailable()
    }

    /// This process's lease on a database store, once it holds one.
    pub fn lease(&self) -> Option<LeaseInfo> {
        self.kv.lease()
    }

    /// Says that this process works on the store (`active`) or waits for its lease
    /// (`standby`), listening at `address`.
    pub fn announce(&self, address: &str, role: &str) -> Result<()> {
        self.kv.announce(address, role)
    }

    /// The daemons that announced themselves on this store in the last hour, newest first.
    pub fn daemons(&self) -> Result<Vec<DaemonSeen>> {
        self.kv.daemons()
    }

    /// A round trip to the database: Ok when it answers.
    pub fn ping(&self) -> Result<()> {
        self.kv.ping()
    }

    /// Applies a batch atomically. Durable only after `flush`.
    pub fn apply(&self, b: WriteBatch) -> Result<()> {
        // An empty batch is not applied: sled would log it.
        if b.ops.is_empty() {
            return Ok(());
        }
        self.note_checks(&b);
        self.kv.apply(b.ops)
    }

    /// Lowers what is known of the earliest segment check by the checks a batch puts
    /// (before it is applied: a bound too low costs a read, one too high a missed check).
    fn note_checks(&self, b: &WriteBatch) {
        let put = b
            .ops
            .iter()
            .filter(|(k, v)| v.is_some() && k.first() == Some(&b'q') && k.len() >= 9)
            .map(|(k, _)| time_from_key(&k[1..9]))
            .min();
        let Some(put) = put else {
            return;
        };
        let mut known = self.checks.lock().unwrap_or_else(|e| e.into_inner());
        known.1 += 1;
        if let CheckBound::NoneBefore(earliest) = known.0 {
            known.0 = CheckBound::NoneBefore(Some(earliest.map_or(put, |e| e.min(put))));
        }
    }

    /// Makes everything applied so far durable.
    pub fn flush(&self) -> Result<()> {
        self.kv.flush()
    }

    /// Applies a batch atomically, committing it in the background where the backend can
    /// (`commits_in_background`); the batch before it is settled first, so Ok says that one
    /// is committed. `settle` tells this one's outcome.
    pub fn apply_in_background(&self, b: WriteBatch) -> Result<()> {
        if b.ops.is_empty() {
            return self.kv.settle();
        }
        self.note_checks(&b);
        self.kv.apply_in_background(b.ops)
    }

    /// Waits for the batch this thread applied in the background: Ok once committed.
    pub fn settle(&self) -> Result<()> {
        self.kv.settle()
    }

    /// Whether batches can commit in the background while the engine prepares the next
    /// (PostgreSQL).
    pub fn commits_in_background(&self) -> bool {
        self.kv.commits_in_background()
    }

    /// A unique, increasing id (instance ids, event sequence numbers); survives restarts.
    pub fn next_id(&self) -> Result<u64> {
        self.kv.next_id()
    }

    pub fn contact(&self, id: &str) -> Result<Option<Contact>> {
        let k = id_key(b'c', &[], id, &[]);
        self.kv.get(&k)?.map(|v| decode(&k, &v)).transpose()
    }

    pub fn contacts(&self) -> impl Iterator<Item = Result<Contact>> + '_ {
        self.kv.scan_prefix(b"c").map(|r| {
            let (k, v) = r?;
            decode(&k, &v)
        })
    }

    pub fn contact_count(&self) -> usize {
        self.kv.scan_prefix(b"c").count()
    }

    /// A contact's events, oldest first.
    pub fn events_of(&self, contact: &str) -> Result<Vec<Event>> {
        let prefix = owned_prefix(b'e', contact);
        self.kv
            .scan_prefix(&prefix)
            .map(|r| {
                let (k, v) = r?;
                codec::read_event(&k, &v)
            })
            .collect()
    }

    /// A contact's events since `since` (inclusive), oldest first: one range scan.
    pub fn events_since(&self, contact: &str, since: Millis) -> Result<Vec<Event>> {
        let start = id_key(b'e', &[], contact, &[&[0], &time_key(since)]);
        let end = id_key(b'e', &[], contact, &[&[1]]);
        self.kv
            .range(&start, Some(&end))
            .map(|r| {
                let (k, v) = r?;
                codec::read_event(&k, &v)
            })
            .collect()
    }

    pub fn event_seen(&self, id: &str) -> Result<bool> {
        self.kv.contains(&key(b'd', &[id.as_bytes()]))
    }

    pub fn instance(&self, contact: &str, id: u64) -> Result<Option<Instance>> {
        let k = id_key(b'i', &[], contact, &[&[0], &id.to_be_bytes()]);
        self.kv
            .get(&k)?
            .map(|v| codec::read_instance(&k, &v))
            .transpose()
    }

    /// Every instance a contact ever had, oldest first.
    /// The event that enrolled `contact` in `journey` most recently (what its templates see
    /// as `event` in a preview, as a send sees its own instance's).
    pub fn latest_entry_event(&self, contact: &str, journey: &str) -> Result<Option<Event>> {
        Ok(self
            .instances_of(contact)?
            .into_iter()
            .filter(|i| i.journey == journey)
            .max_by_key(|i| i.id)
            .and_then(|i| i.entry_event))
    }

    pub fn instances_of(&self, contact: &str) -> Result<Vec<Instance>> {
        let prefix = owned_prefix(b'i', contact);
        self.kv
            .scan_prefix(&prefix)
            .map(|r| {
                let (k, v) = r?;
                codec::read_instance(&k, &v)
            })
            .collect()
    }

    /// Every instance of every contact, in contact order (reports, deploys).
    pub fn all_instances(&self) -> impl Iterator<Item = Result<Instance>> + '_ {
        self.kv.scan_prefix(b"i").map(|r| {
            let (k, v) = r?;
            codec::read_instance(&k, &v)
        })
    }

    /// The active instances of a journey. A full scan: deploys are rare, and an index
    /// would cost two writes per contact on the hot path.
    pub fn active_of(&self, journey: &str) -> Result<Vec<Instance>> {
        let mut out = Vec::new();
        for i in self.all_instances() {
            let i = i?;
            if i.journey == journey && i.is_active() {
                out.push(i);
            }
        }
        Ok(out)
    }

    /// Timer records whose bucket starts in `[from, until)`, in bucket order.
    pub fn timer_records(&self, from: Millis, until: Millis) -> Result<Vec<TimerRecord>> {
        let start = key(b't', &[&time_key(from)]);
        let end = key(b't', &[&time_key(until)]);
        self.kv
            .range(&start, Some(&end))
            .map(|r| {
                let (k, v) = r?;
                decode_timers(&k, &v)
            })
            .collect()
    }

    /// Timers due in `[from, until)`, earliest first: (due, instance). Stale ones included.
    pub fn timers_between(&self, from: Millis, until: Millis) -> Result<Vec<(Millis, u64)>> {
        let mut out: Vec<(Millis, u64)> = self
            .timer_records(bucket_of(from), until)?
            .into_iter()
            .flat_map(|r| r.timers)
            .filter(|t| t.due >= from && t.due < until)
            .map(|t| (t.due, t.instance))
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// The earliest stored timer, stale ones included: (due, instance).
    pub fn first_timer(&self) -> Result<Option<(Millis, u64)>> {
        let Some(bucket) = self.first_timer_bucket(Millis::MIN)? else {
            return Ok(None);
        };
        Ok(self
            .timers_between(bucket, bucket + TIMER_BUCKET_MS)?
            .into_iter()
            .next())
    }

    /// The start of the first bucket at or after `from` that holds timers: nothing stored
    /// is due before it.
    pub fn first_timer_bucket(&self, from: Millis) -> Result<Option<Millis>> {
        let start = key(b't', &[&time_key(bucket_of(from))]);
        let end = [b't' + 1];
        Ok(self
            .kv
            .range(&start, Some(&end))
            .next()
            .transpose()?
            .map(|(k, _)| time_from_key(&k[1..9])))
    }

    /// Timers stored, stale ones included.
    pub fn timer_count(&self) -> Result<usize> {
        Ok(self
            .timer_records(Millis::MIN, Millis::MAX)?
            .iter()
            .map(|r| r.timers.len())
            .sum())
    }

    /// The outbox records: (record id, the sends it holds, done or not).
    pub fn outbox_records(&self) -> Result<Vec<(u64, Vec<SendJob>)>> {
        self.kv
            .scan_prefix(b"o")
            .map(|r| {
                let (k, v) = r?;
                let id = k
                    .get(1..9)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_be_bytes)
                    .ok_or_else(|| StoreError::Malformed {
                        key: String::from_utf8_lossy(&k).into_owned(),
                        what: "outbox record",
                    })?;
                Ok((id, codec::read_jobs(&k, &v)?))
            })
            .collect()
    }

    /// Whether a send's outcome is in its contact's history. `outcomes` caches each
    /// contact's message ids with an outcome.
    pub fn outcome_recorded(
        &self,
        job: &SendJob,
        outcomes: &mut std::collections::HashMap<String, std::collections::HashSet<String>>,
    ) -> Result<bool> {
        if !outcomes.contains_key(&job.contact) {
            let done = self
                .events_of(&job.contact)?
                .into_iter()
                .filter(|e| {
                    matches!(
                        e.kind.as_str(),
                        crate::engine::MESSAGE_SENT
                            | crate::engine::MESSAGE_FAILED
                            | crate::engine::MESSAGE_BOUNCED
                            | crate::engine::MESSAGE_UNCERTAIN
                    )
                })
                .filter_map(|e| e.message_id)
                .collect();
            outcomes.insert(job.contact.clone(), done);
        }
        Ok(outcomes[&job.contact].contains(&job.message_id))
    }

    /// Sends committed and not yet delivered, in the order they were committed (within each
    /// partition, on a database of several).
    pub fn outbox(&self) -> Result<Vec<SendJob>> {
        let mut outcomes = Default::default();
        let mut out = Vec::new();
        for (_, jobs) in self.outbox_records()? {
            for job in jobs {
                if !self.outcome_recorded(&job, &mut outcomes)? {
                    out.push(job);
                }
            }
        }
        Ok(out)
    }

    pub fn version(&self, hash: &str) -> Result<Option<JourneyIr>> {
        let k = key(b'v', &[hash.as_bytes()]);
        self.kv.get(&k)?.map(|v| decode(&k, &v)).transpose()
    }

    pub fn head(&self, journey: &str) -> Result<Option<String>> {
        Ok(self
            .kv
            .get(&key(b'h', &[journey.as_bytes()]))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// (journey, current version) for every journey ever deployed.
    pub fn heads(&self) -> Result<Vec<(String, String)>> {
        self.kv
            .scan_prefix(b"h")
            .map(|r| {
                let (k, v) = r?;
                Ok((
                    String::from_utf8_lossy(&k[1..]).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                ))
            })
            .collect()
    }

    pub fn is_member(&self, segment: &str, contact: &str) -> Result<bool> {
        self.kv.contains(&member_key(segment, contact))
    }

    /// The contacts of a segment, as kept current by the runtime, in id order.
    pub fn members(&self, segment: &str) -> impl Iterator<Item = Result<String>> + '_ {
        let prefix = key(b's', &[segment.as_bytes(), &[0]]);
        let skip = prefix.len();
        self.kv.scan_prefix(&prefix).map(move |r| {
            let (k, _) = r?;
            Ok(unescape_id(&k[skip..]))
        })
    }

    /// The segments that have members or a recorded definition.
    pub fn segment_defs(&self) -> Result<Vec<(String, String)>> {
        self.kv
            .scan_prefix(b"g")
            .map(|r| {
                let (k, v) = r?;
                Ok((
                    String::from_utf8_lossy(&k[1..]).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                ))
            })
            .collect()
    }

    /// When a contact's segments are next checked, if ever.
    pub fn segment_check(&self, contact: &str) -> Result<Option<Millis>> {
        Ok(self
            .kv
            .get(&id_key(b'n', &[], contact, &[]))?
            .map(|v| time_from_key(&v)))
    }

    /// Segment checks due before `until` (exclusive), earliest first, at most `limit`:
    /// (time, contact).
    pub fn segment_checks_before(
        &self,
        until: Millis,
        limit: usize,
    ) -> Result<Vec<(Millis, String)>> {
        if let CheckBound::NoneBefore(earliest) =
            self.checks.lock().unwrap_or_else(|e| e.into_inner()).0
        {
            if earliest.is_none_or(|t| t >= until) {
                return Ok(Vec::new());
            }
        }
        let start = key(b'q', &[]);
        let end = key(b'q', &[&time_key(until)]);
        // Another daemon's contacts are its own to check.
        let due = self
            .kv
            .range(&start, Some(&end))
            .map(|r| {
                let (k, _) = r?;
                Ok((time_from_key(&k[1..9]), unescape_id(&k[9..])))
            })
            .filter(|r| r.as_ref().map_or(true, |(_, c)| self.works_on(c)))
            .take(limit)
            .collect::<Result<Vec<_>>>()?;
        if due.is_empty() {
            // The bound was too low (a check it counted was moved or removed): read the
            // earliest again, known until a check is put.
            self.checks.lock().unwrap_or_else(|e| e.into_inner()).0 = CheckBound::Unknown;
            self.first_segment_check()?;
        } else {
            // They are about to be run and moved.
            self.checks.lock().unwrap_or_else(|e| e.into_inner()).0 = CheckBound::Unknown;
        }
        Ok(due)
    }

    /// The earliest segment check, if any (or a moment no check is before: a wake-up
    /// then finds none due, and reads again).
    pub fn first_segment_check(&self) -> Result<Option<Millis>> {
        let (bound, puts_before) = *self.checks.lock().unwrap_or_else(|e| e.into_inner());
        if let CheckBound::NoneBefore(earliest) = bound {
            return Ok(earliest);
        }
        let first = self
            .kv
            .scan_prefix(b"q")
            .find(|r| {
                r.as_ref()
                    .map_or(true, |(k, _)| self.works_on(&unescape_id(&k[9..])))
            })
            .transpose()?
            .map(|(k, _)| time_from_key(&k[1..9]));
        let mut known = self.checks.lock().unwrap_or_else(|e| e.into_inner());
        // Unless a batch that put checks was applied meanwhile (another thread's): the
        // read may not have seen them.
        if known.0 == CheckBound::Unknown && known.1 == puts_before {
            known.0 = CheckBound::NoneBefore(first);
        }
        Ok(first)
    }

    /// Every contact with its history (oldest first), in id order: the contacts and the
    /// events are two sequential scans, merged, rather than one range scan per contact
    /// (full evaluations of segments, plans).
    pub fn contacts_with_events(&self) -> impl Iterator<Item = Result<(Contact, Vec<Event>)>> + '_ {
        self.contacts_with_events_since(None)
    }

    /// The same, with only the events at or after `since` (the others are not decoded).
    pub fn contacts_with_events_since(
        &self,
        since: Option<Millis>,
    ) -> impl Iterator<Item = Result<(Contact, Vec<Event>)>> + '_ {
        let mut events = self.kv.scan_prefix(b"e").peekable();
        self.kv.scan_prefix(b"c").map(move |r| {
            let (k, v) = r?;
            let contact: Contact = decode(&k, &v)?;
            // Both keys hold the escaped id, in the same order.
            let id = &k[1..];
            let mut history = Vec::new();
            while let Some(next) = events.peek() {
                let (ek, ev) = match next {
                    Ok(kv) => kv,
                    Err(_) => {
                        let Some(Err(e)) = events.next() else {
                            unreachable!("peeked an error")
                        };
                        return Err(e);
                    }
                };
                // `e`, contact id, 0, time (8), seq (8).
                let owner = &ek[1..ek.len().saturating_sub(17).max(1)];
                match owner.cmp(id) {
                    std::cmp::Ordering::Less => {
                        events.next();
                    }
                    std::cmp::Ordering::Equal => {
                        let at = time_from_key(&ek[ek.len() - 16..]);
                        if since.is_none_or(|s| at >= s) {
                            history.push(codec::read_event(ek, ev)?);
                        }
                        events.next();
                    }
                    std::cmp::Ordering::Greater => break,
                }
            }
            Ok((contact, history))
        })
    }

    /// Every event of every contact, contact by contact, each contact's oldest first
    /// (reports): one scan of the event keys.
    pub fn all_events(&self) -> impl Iterator<Item = Result<Event>> + '_ {
        self.kv.scan_prefix(b"e").map(|r| {
            let (k, v) = r?;
            codec::read_event(&k, &v)
        })
    }

    pub fn schedule_run(&self, schedule: &str) -> Result<Option<Millis>> {
        Ok(self
            .kv
            .get(&key(b'p', &[schedule.as_bytes()]))?
            .map(|v| time_from_key(&v)))
    }

    /// Keeps the claims of a short link under its code, unless other claims hold the code
    /// (written once, never overwritten): true if the code is (now) these claims'. Durable
    /// only after `flush`.
    pub fn put_short_link(&self, code: &str, claims: &Claims) -> Result<bool> {
        let v = encode(claims);
        let k = key(b'l', &[code.as_bytes()]);
        match self.kv.insert_new(&k, &v)? {
            None => Ok(true),
            Some(cur) => Ok(decode::<Claims>(&k, &cur)? == *claims),
        }
    }

    /// The claims behind a short link's code.
    pub fn short_link(&self, code: &str) -> Result<Option<Claims>> {
        let k = key(b'l', &[code.as_bytes()]);
        self.kv.get(&k)?.map(|v| decode(&k, &v)).transpose()
    }

    /// Stores a meta value unless one is there; returns the value stored (this one, or the
    /// one found).
    pub fn meta_if_absent(&self, name: &str, value: &[u8]) -> Result<Vec<u8>> {
        let k = key(b'm', &[name.as_bytes()]);
        Ok(match self.kv.insert_new(&k, value)? {
            None => value.to_vec(),
            Some(found) => found.to_vec(),
        })
    }

    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .kv
            .get(&key(b'm', &[name.as_bytes()]))?
            .map(|v| v.to_vec()))
    }

    /// Bytes on disk, for reports.
    pub fn size_on_disk(&self) -> u64 {
        self.kv.size_on_disk()
    }
}

#[cfg(test)]
mod tests;
