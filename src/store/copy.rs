//! Copying a whole store into another (`journey migrate-store`: sled to PostgreSQL): every
//! key in batches, the id counter carried over so ids stay unique, and the counts of each
//! kind of key checked on both sides afterwards.

use super::kv::Op;
use super::*;
use std::collections::BTreeMap;

/// What a copy did: keys per kind (the prefix letter), as counted in the destination.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CopyReport {
    pub keys: BTreeMap<char, u64>,
}

impl CopyReport {
    pub fn total(&self) -> u64 {
        self.keys.values().sum()
    }
}

/// The kinds of keys that hold data (the meta keys each store writes itself aside).
const DATA_KINDS: &[u8] = b"cdeghilnopqstuv";

impl Store {
    /// How many keys of each kind the store holds.
    pub fn key_counts(&self) -> Result<BTreeMap<char, u64>> {
        let mut out = BTreeMap::new();
        for &kind in DATA_KINDS {
            let n = self
                .kv
                .scan_prefix(&[kind])
                .try_fold(0u64, |n, r| r.map(|_| n + 1))?;
            if n > 0 {
                out.insert(kind as char, n);
            }
        }
        Ok(out)
    }

    /// Copies every key of this store into `to`, which must hold no data yet, `batch` keys
    /// to a write; `progress` is told the keys copied so far. The meta values are copied
    /// too (the suppression key, paused journeys), and `to` hands out ids above this one's.
    /// Fails if the counts differ afterwards.
    pub fn copy_into(
        &self,
        to: &Store,
        batch: usize,
        mut progress: impl FnMut(u64),
    ) -> std::result::Result<CopyReport, String> {
        let held = to.key_counts().map_err(|e| e.to_string())?;
        if !held.is_empty() {
            return Err(format!(
                "the destination already holds data ({} keys): copy into an empty store",
                held.values().sum::<u64>()
            ));
        }
        let mut ops: Vec<Op> = Vec::with_capacity(batch);
        let mut copied = 0u64;
        for r in self.kv.range(&[], None) {
            let (k, v) = r.map_err(|e| e.to_string())?;
            ops.push((k.to_vec(), Some(v.to_vec())));
            if ops.len() >= batch.max(1) {
                copied += ops.len() as u64;
                to.kv
                    .apply(std::mem::take(&mut ops))
                    .map_err(|e| e.to_string())?;
                progress(copied);
            }
        }
        copied += ops.len() as u64;
        to.kv.apply(ops).map_err(|e| e.to_string())?;
        to.flush().map_err(|e| e.to_string())?;
        progress(copied);
        let last_id = self.next_id().map_err(|e| e.to_string())?;
        to.kv.ids_above(last_id).map_err(|e| e.to_string())?;

        let (from, into) = (
            self.key_counts().map_err(|e| e.to_string())?,
            to.key_counts().map_err(|e| e.to_string())?,
        );
        if from != into {
            return Err(format!(
                "the counts differ after the copy: source {from:?}, destination {into:?}"
            ));
        }
        Ok(CopyReport { keys: into })
    }
}
