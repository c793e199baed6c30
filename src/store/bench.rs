//! Raw sled write rates, measured beside the engine's benchmarks as the store's own limit.

use super::*;

/// The store's own limit, for benchmarks: writes `total` keys of `key_len`/`value_len`
/// bytes in batches of `batch`, one flush per batch, into a fresh sled database at `path`.
/// Returns the elapsed time.
pub fn raw_write_benchmark(
    path: &Path,
    total: usize,
    batch: usize,
    key_len: usize,
    value_len: usize,
) -> Result<std::time::Duration> {
    raw_batches(path, total, batch, value_len, |i| {
        let mut k = vec![b'k'; key_len.max(8)];
        let n = k.len();
        k[n - 8..].copy_from_slice(&(i as u64).to_be_bytes());
        k
    })
}

/// Like `raw_write_benchmark`, with keys laid out as event keys are (`e`, a contact id out
/// of `contacts`, 0, time, sequence), so that consecutive writes land all over the tree
/// instead of at its end: what the key layout alone costs sled.
pub fn raw_spread_write_benchmark(
    path: &Path,
    total: usize,
    batch: usize,
    contacts: usize,
    value_len: usize,
) -> Result<std::time::Duration> {
    let at = time_key(1_772_355_600_000);
    raw_batches(path, total, batch, value_len, |i| {
        let contact = format!("c{}", i % contacts.max(1));
        key(
            b'e',
            &[contact.as_bytes(), &[0], &at, &(i as u64).to_be_bytes()],
        )
    })
}

/// Writes `total` keys (the `i`th is `key_of(i)`) with `value_len`-byte values in batches
/// of `batch`, one flush each, into a fresh sled database at `path`: the elapsed time.
pub(super) fn raw_batches(
    path: &Path,
    total: usize,
    batch: usize,
    value_len: usize,
    mut key_of: impl FnMut(usize) -> Vec<u8>,
) -> Result<std::time::Duration> {
    let db = sled::Config::new()
        .path(path)
        .mode(sled::Mode::HighThroughput)
        .open()?;
    let tree = db.open_tree("raw")?;
    let value = vec![b'v'; value_len];
    let started = std::time::Instant::now();
    let mut written = 0;
    while written < total {
        let mut b = sled::Batch::default();
        for i in written..(written + batch).min(total) {
            b.insert(key_of(i), value.clone());
        }
        written = (written + batch).min(total);
        tree.apply_batch(b)?;
        db.flush()?;
    }
    Ok(started.elapsed())
}
