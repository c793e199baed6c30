//! The ordered key-value interface `Store` is written against, and its sled backend.
//!
//! Everything the store keeps is a key in one ordered space (the layout in the module
//! documentation of `store`): a read is a get or a range scan in key order, a write is a
//! batch of puts and removals applied all or nothing. A backend provides exactly that; the
//! store's records, key layout and queries are the same whatever it is. sled holds the keys
//! as they are; PostgreSQL (`store::postgres`) spreads them over one table per kind, with
//! typed columns beside them for people to query.

use super::{Result, StoreError};
use std::ops::Deref;

/// A value read from a backend: sled's own buffer, or bytes another backend returned.
#[allow(dead_code)] // `Owned` is for backends that do not hand out their own buffers.
pub(crate) enum Bytes {
    Sled(sled::IVec),
    Owned(Vec<u8>),
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Sled(v) => v,
            Bytes::Owned(v) => v,
        }
    }
}

/// One key and its value, in a scan.
pub(crate) type Entry = (Bytes, Bytes);

/// A scan's entries, in key order.
pub(crate) type Entries<'a> = Box<dyn Iterator<Item = Result<Entry>> + 'a>;

/// One write of a batch: a value to put under a key, or None to remove the key.
pub(crate) type Op = (Vec<u8>, Option<Vec<u8>>);

/// An ordered key-value store: what `Store` needs of a database.
pub(crate) trait Kv: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>>;

    fn contains(&self, key: &[u8]) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// The entries with `start <= key < end` (to the last key when `end` is None), in key
    /// order.
    fn range<'a>(&'a self, start: &[u8], end: Option<&[u8]>) -> Entries<'a>;

    /// The entries whose key starts with `prefix`, in key order.
    fn scan_prefix<'a>(&'a self, prefix: &[u8]) -> Entries<'a> {
        self.range(prefix, prefix_end(prefix).as_deref())
    }

    /// Applies the writes all or nothing. Durable only after `flush` (a backend whose
    /// apply is a commit makes it durable at once).
    fn apply(&self, ops: Vec<Op>) -> Result<()>;

    /// Puts `value` under `key` unless the key holds one: None if it was put, else the
    /// value already there (which stays).
    fn insert_new(&self, key: &[u8], value: &[u8]) -> Result<Option<Bytes>>;

    /// Makes everything applied so far durable.
    fn flush(&self) -> Result<()>;

    /// `apply`, returning before the batch is durable where the backend can commit in the
    /// background (`commits_in_background`): this thread's reads see the batch at once,
    /// the next apply waits for it, and `settle` tells its outcome. Elsewhere, `apply`.
    fn apply_in_background(&self, ops: Vec<Op>) -> Result<()> {
        self.apply(ops)
    }

    /// Waits for the batch this thread applied in the background: Ok once it is
    /// committed. Nothing in flight: Ok.
    fn settle(&self) -> Result<()> {
        Ok(())
    }

    /// Whether `apply_in_background` commits in the background (PostgreSQL, whose commit
    /// is a round trip the engine can spend preparing the next batch).
    fn commits_in_background(&self) -> bool {
        false
    }

    /// A unique, increasing number (≥ 1); survives restarts.
    fn next_id(&self) -> Result<u64>;

    /// Bytes on disk, for reports; 0 when the backend cannot tell.
    fn size_on_disk(&self) -> u64;

    /// A hint that this thread is about to read these keys and the keys under these
    /// prefixes: a backend with a round trip per read loads them at once and answers the
    /// thread's reads of them from memory until the next `apply` or `prefetch`. Each
    /// prefix must end a key's owner (no other prefix asked for may extend it).
    fn prefetch(&self, _exact: Vec<Vec<u8>>, _prefixes: Vec<Vec<u8>>) -> Result<()> {
        Ok(())
    }

    /// Whether `prefetch` does anything (so that callers need not build its keys).
    fn prefetches(&self) -> bool {
        false
    }

    /// Makes this process one of the daemons writing the store (a database's: its lease
    /// keeper takes its share of the partitions; sled: its file lock already made it the
    /// only one).
    fn claim_exclusive(&self) -> Result<()> {
        Ok(())
    }

    /// Whether the backend's database can go away while it runs (a server, not a file):
    /// the runtime then keeps what it cannot lose until the database is back.
    fn can_be_unavailable(&self) -> bool {
        false
    }

    /// Forgets what the backend keeps in memory of rows (PostgreSQL's contact cache): the
    /// partitions this process works on changed, and another daemon may have written them.
    fn forget_cached(&self) {}

    /// How many partitions the store's contacts hash into (sled: one).
    fn partition_count(&self) -> u16 {
        1
    }

    /// The partitions this process holds, once it claimed the store (`claim_exclusive`) on
    /// a database several daemons share; None: it works on every contact.
    fn held_partitions(&self) -> Option<std::sync::Arc<super::partitions::HeldPartitions>> {
        None
    }

    /// This process's lease, once it holds one (a database's; None for sled, whose file
    /// lock is the lease).
    fn lease(&self) -> Option<super::LeaseInfo> {
        None
    }

    /// Says that this process works on the store (`active`) or waits for its lease
    /// (`standby`), listening at `address`: `daemons` lists it.
    fn announce(&self, _address: &str, _role: &str) -> Result<()> {
        Ok(())
    }

    /// The daemons that announced themselves lately (a database's; empty for sled).
    fn daemons(&self) -> Result<Vec<super::DaemonSeen>> {
        Ok(Vec::new())
    }

    /// Why the database is unreachable, as of the last call that tried it (None: it
    /// answered, or it cannot go away).
    fn unavailable(&self) -> Option<String> {
        None
    }

    /// Asks the database whether it answers (a round trip); Ok when it does.
    fn ping(&self) -> Result<()> {
        Ok(())
    }

    /// Makes `next_id` return more than `n` from now on (a store copied from another
    /// keeps its ids unique).
    fn ids_above(&self, n: u64) -> Result<()> {
        while self.next_id()? <= n {}
        Ok(())
    }
}

/// The first key after every key that starts with `prefix`; None when there is none (a
/// prefix of 0xff bytes only).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

// ---------------------------------------------------------------- sled

/// The embedded backend: one sled tree.
pub(crate) struct SledKv {
    pub(crate) db: sled::Db,
    pub(crate) tree: sled::Tree,
}

/// Whether sled refused to open a store because its file lock is held.
fn is_lock_busy(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

/// The page cache sled may keep in memory.
pub const CACHE_BYTES: u64 = 32 * 1024 * 1024;

impl SledKv {
    /// Opens (or creates) the database in a directory.
    pub(crate) fn open(path: &std::path::Path) -> Result<SledKv> {
        let config = sled::Config::new()
            .path(path)
            .mode(sled::Mode::HighThroughput)
            // sled caches 1 GB by default; the hot set (recent contacts, near timers) is far
            // smaller, and memory must stay bounded with millions of contacts waiting.
            .cache_capacity(CACHE_BYTES);
        // A store closed in this process holds its file lock until sled's IO threads let go
        // of the file, a few ms after the last handle is dropped; opening it again at once
        // (a restart in the same process) waits for that, briefly. Another process holding
        // it is still refused, once the wait is over.
        let lock_released_by = std::time::Instant::now() + std::time::Duration::from_secs(1);
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(e) if is_lock_busy(&e) && std::time::Instant::now() < lock_released_by => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) if is_lock_busy(&e) => return Err(StoreError::InUse),
                Err(e) => return Err(e.into()),
            }
        };
        let tree = db.open_tree("journey")?;
        Ok(SledKv { db, tree })
    }

    /// A database in a temporary directory, removed when dropped.
    pub(crate) fn temporary() -> Result<SledKv> {
        let db = sled::Config::new().temporary(true).open()?;
        let tree = db.open_tree("journey")?;
        Ok(SledKv { db, tree })
    }
}

fn sled_entries<'a>(
    it: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>> + 'a,
) -> Entries<'a> {
    Box::new(it.map(|r| {
        r.map(|(k, v)| (Bytes::Sled(k), Bytes::Sled(v)))
            .map_err(Into::into)
    }))
}

impl Kv for SledKv {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        Ok(self.tree.get(key)?.map(Bytes::Sled))
    }

    fn contains(&self, key: &[u8]) -> Result<bool> {
        Ok(self.tree.contains_key(key)?)
    }

    fn range<'a>(&'a self, start: &[u8], end: Option<&[u8]>) -> Entries<'a> {
        match end {
            Some(end) => sled_entries(self.tree.range(start.to_vec()..end.to_vec())),
            None => sled_entries(self.tree.range(start.to_vec()..)),
        }
    }

    fn scan_prefix<'a>(&'a self, prefix: &[u8]) -> Entries<'a> {
        sled_entries(self.tree.scan_prefix(prefix))
    }

    fn apply(&self, ops: Vec<Op>) -> Result<()> {
        // sled logs even an empty batch, under its global write lock: skip it.
        if ops.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for (k, v) in ops {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    fn insert_new(&self, key: &[u8], value: &[u8]) -> Result<Option<Bytes>> {
        match self
            .tree
            .compare_and_swap(key, None as Option<&[u8]>, Some(value))?
        {
            Ok(()) => Ok(None),
            Err(e) => Ok(e.current.map(Bytes::Sled)),
        }
    }

    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    fn next_id(&self) -> Result<u64> {
        Ok(self.db.generate_id()? + 1)
    }

    fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_are_the_next_key_after_the_prefix() {
        assert_eq!(prefix_end(b"e"), Some(b"f".to_vec()));
        assert_eq!(prefix_end(&[b'e', 0xff]), Some(b"f".to_vec()));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(&[]), None);
    }
}
