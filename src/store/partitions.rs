//! Partitions: contacts hash into a fixed number of them (set when a database's schema is
//! created), and on a database several daemons share the work by partition. A daemon
//! advances only the contacts of the partitions whose lease it holds (`postgres/lease`);
//! what arrives for another partition is put in the inbox (`x` keys) for its holder. This
//! module is the part both backends share: which partition a contact, a key or a record is
//! in, and the set of partitions this process holds (sled: all of them, always).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

/// How many partitions a new database's schema gets unless told (`store.partitions`).
pub const DEFAULT_PARTITIONS: u16 = 64;

/// Partition numbers sit in the top 16 bits of timer and outbox record ids, so that a
/// record's key tells whose it is; ids from the sequence stay far below.
const RECORD_PARTITION_SHIFT: u32 = 48;

/// The partition of a contact among `count`: the first 8 bytes of SHA-256 of its id, as a
/// number, modulo `count`. Stable across versions and machines (it decides where a contact
/// lives), and even for ids that share prefixes.
pub fn partition_of(contact: &str, count: u16) -> u16 {
    if count <= 1 {
        return 0;
    }
    use sha2::Digest;
    let d = sha2::Sha256::digest(contact.as_bytes());
    let n = u64::from_be_bytes(d[..8].try_into().expect("8 bytes"));
    (n % count as u64) as u16
}

/// A timer or outbox record's id for partition `p`, from an id of the sequence.
pub fn record_id(p: u16, id: u64) -> u64 {
    ((p as u64) << RECORD_PARTITION_SHIFT) | (id & ((1 << RECORD_PARTITION_SHIFT) - 1))
}

/// The partition a timer or outbox record belongs to.
pub fn record_partition(record: u64) -> u16 {
    (record >> RECORD_PARTITION_SHIFT) as u16
}

/// What this process holds of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Not this process's.
    Free,
    /// Held at this epoch: its contacts are advanced here.
    Held(i64),
    /// Held at this epoch and being handed back: new work for it goes to the inbox, and
    /// commits already under way may still finish (their fence holds) until the engine has
    /// let go of it and the lease row is released.
    Releasing(i64),
}

/// The partitions a process holds, as its lease keeper left them. The engine reads it on
/// every input (`owns`) and reloads what it keeps in memory when `generation` moves.
#[derive(Debug)]
pub struct HeldPartitions {
    pub count: u16,
    slots: RwLock<Vec<Slot>>,
    /// Raised each time the partitions this process works on change.
    generation: AtomicU64,
    /// The generation the engine has reloaded for (`applied`): partitions being released
    /// are released only once the engine holds nothing of them.
    applied: AtomicU64,
    /// Lease renewals, and partitions taken over from another daemon, since the start.
    pub renewals: AtomicU64,
    pub takeovers: AtomicU64,
    /// Until when (milliseconds after `since`) the leases held are surely still this
    /// process's: the start of the last round of the keeper that renewed them all, plus the
    /// lease's length less a margin. Past it (the process was paused, or cut off from the
    /// database), another daemon may have taken them: sends wait (`may_send`).
    sure_until: AtomicU64,
    since: std::time::Instant,
}

/// Whether a send of a partition's contact may go to its provider now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaySend {
    /// The partition is this process's, surely.
    Go,
    /// It is this process's as far as it knows, but its lease was not renewed lately (the
    /// process was paused or cut off): the keeper's next round will tell.
    Wait,
    /// Not this process's: its holder sends what has no outcome (the outbox).
    Gone,
}

/// The margin kept off a lease's length for `sure_until`: clocks drift, and a round's
/// UPDATE sets the expiry after the round started.
const SURE_MARGIN: std::time::Duration = std::time::Duration::from_secs(2);

impl HeldPartitions {
    pub(crate) fn new(count: u16) -> HeldPartitions {
        HeldPartitions {
            count: count.max(1),
            slots: RwLock::new(vec![Slot::Free; count.max(1) as usize]),
            generation: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            renewals: AtomicU64::new(0),
            takeovers: AtomicU64::new(0),
            sure_until: AtomicU64::new(0),
            since: std::time::Instant::now(),
        }
    }

    /// A keeper's round that started at `started` renewed (or took) every lease held now
    /// for `lease`.
    pub(crate) fn renewed(&self, started: std::time::Instant, lease: std::time::Duration) {
        let until = (started + lease.saturating_sub(SURE_MARGIN)).duration_since(self.since);
        self.sure_until
            .fetch_max(until.as_millis() as u64, Ordering::SeqCst);
    }

    /// Whether a send for partition `p` may go now (see `MaySend`).
    pub fn may_send(&self, p: u16) -> MaySend {
        if self.fence_epoch(p).is_none() {
            return MaySend::Gone;
        }
        let now = self.since.elapsed().as_millis() as u64;
        if now < self.sure_until.load(Ordering::SeqCst) {
            MaySend::Go
        } else {
            MaySend::Wait
        }
    }

    fn slots(&self) -> std::sync::RwLockReadGuard<'_, Vec<Slot>> {
        self.slots.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn slot(&self, p: u16) -> Slot {
        self.slots().get(p as usize).copied().unwrap_or(Slot::Free)
    }

    /// Whether new work for partition `p` is done here.
    pub fn works_on(&self, p: u16) -> bool {
        matches!(self.slot(p), Slot::Held(_))
    }

    /// Whether a commit may still write partition `p` (held or being released), and at
    /// which epoch.
    pub(crate) fn fence_epoch(&self, p: u16) -> Option<i64> {
        match self.slot(p) {
            Slot::Held(e) | Slot::Releasing(e) => Some(e),
            Slot::Free => None,
        }
    }

    /// The partitions worked on here, in order.
    pub fn held(&self) -> Vec<u16> {
        self.slots()
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, Slot::Held(_)))
            .map(|(p, _)| p as u16)
            .collect()
    }

    /// Every partition with a lease row this process holds (held or being released), with
    /// its epoch.
    pub(crate) fn leased(&self) -> Vec<(u16, i64)> {
        self.slots()
            .iter()
            .enumerate()
            .filter_map(|(p, s)| match s {
                Slot::Held(e) | Slot::Releasing(e) => Some((p as u16, *e)),
                Slot::Free => None,
            })
            .collect()
    }

    /// Sets partitions' slots; the generation moves when what is worked on changes.
    pub(crate) fn set(&self, changes: &[(u16, Slot)]) {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        let mut moved = false;
        for &(p, s) in changes {
            let Some(slot) = slots.get_mut(p as usize) else {
                continue;
            };
            let was_worked = matches!(slot, Slot::Held(_));
            *slot = s;
            moved |= was_worked != matches!(s, Slot::Held(_));
        }
        if moved {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The engine has reloaded for `generation`: it holds nothing of partitions it no
    /// longer works on.
    pub fn mark_applied(&self, generation: u64) {
        self.applied.fetch_max(generation, Ordering::SeqCst);
    }

    pub(crate) fn applied(&self) -> u64 {
        self.applied.load(Ordering::SeqCst)
    }
}

/// The partition of the contact a key belongs to, for the keys a contact owns (`c`, `e`,
/// `i`, `n`, `q`, `s`), and of the record for timer and outbox records (`t`, `o`) and inbox
/// entries (`x`); None for the keys every partition shares (versions, links, meta, …).
pub(crate) fn partition_of_key(k: &[u8], count: u16) -> Option<u16> {
    use super::keys::unescape_id;
    let rest = k.get(1..)?;
    let id_until_zero = |b: &[u8]| -> String {
        let end = b.iter().position(|&x| x == 0).unwrap_or(b.len());
        unescape_id(&b[..end])
    };
    match k[0] {
        b'c' | b'n' => Some(partition_of(&unescape_id(rest), count)),
        b'e' | b'i' => Some(partition_of(&id_until_zero(rest), count)),
        b'q' if rest.len() > 8 => Some(partition_of(&unescape_id(&rest[8..]), count)),
        b's' => {
            let z = rest.iter().position(|&x| x == 0)?;
            Some(partition_of(&unescape_id(&rest[z + 1..]), count))
        }
        // bucket (8), record (8)
        b't' if rest.len() >= 16 => Some(record_partition(u64::from_be_bytes(
            rest[8..16].try_into().ok()?,
        ))),
        b'o' if rest.len() >= 8 => Some(record_partition(u64::from_be_bytes(
            rest[..8].try_into().ok()?,
        ))),
        // partition (2), id (8)
        b'x' if rest.len() >= 2 => Some(u16::from_be_bytes([rest[0], rest[1]])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_spread_over_partitions_and_keep_theirs() {
        let mut seen = vec![0u32; 64];
        for i in 0..6_400 {
            seen[partition_of(&format!("user-{i}"), 64) as usize] += 1;
        }
        // Each partition gets about its share (100 each; a bad hash gives some none).
        assert!(seen.iter().all(|&n| (50..=150).contains(&n)), "{seen:?}");
        // Stable: the same id, the same partition, whatever else was hashed.
        assert_eq!(partition_of("ada", 64), partition_of("ada", 64));
        assert_eq!(partition_of("ada", 1), 0);
    }

    #[test]
    fn a_record_id_carries_its_partition() {
        let r = record_id(37, 123_456);
        assert_eq!(record_partition(r), 37);
        assert_eq!(r & 0xffff_ffff_ffff, 123_456);
        assert_eq!(
            record_partition(987),
            0,
            "records written before partitions"
        );
    }

    #[test]
    fn a_key_tells_its_contacts_partition() {
        use crate::store::keys::{id_key, key, member_key, owned_prefix, time_key, timer_key};
        let p = partition_of("a\u{1}b", 64);
        assert_eq!(
            partition_of_key(&id_key(b'c', &[], "a\u{1}b", &[]), 64),
            Some(p)
        );
        let mut e = owned_prefix(b'e', "a\u{1}b");
        e.extend_from_slice(&[0; 16]);
        assert_eq!(partition_of_key(&e, 64), Some(p));
        assert_eq!(
            partition_of_key(&id_key(b'q', &[&time_key(5)], "a\u{1}b", &[]), 64),
            Some(p)
        );
        assert_eq!(partition_of_key(&member_key("vip", "a\u{1}b"), 64), Some(p));
        assert_eq!(
            partition_of_key(&timer_key(1024, record_id(9, 4)), 64),
            Some(9)
        );
        assert_eq!(
            partition_of_key(&key(b'o', &[&record_id(11, 4).to_be_bytes()]), 64),
            Some(11)
        );
        assert_eq!(partition_of_key(&key(b'v', &[b"hash"]), 64), None);
    }

    #[test]
    fn the_generation_moves_when_the_work_changes() {
        let h = HeldPartitions::new(4);
        h.set(&[(0, Slot::Held(1)), (1, Slot::Held(1))]);
        assert_eq!(h.generation(), 1);
        assert_eq!(h.held(), vec![0, 1]);
        // Being released: no longer worked on, still fenced in.
        h.set(&[(1, Slot::Releasing(1))]);
        assert_eq!(h.generation(), 2);
        assert!(!h.works_on(1));
        assert_eq!(h.fence_epoch(1), Some(1));
        // A renewal that changes nothing worked on leaves it.
        h.set(&[(1, Slot::Free)]);
        assert_eq!(h.generation(), 2);
        assert_eq!(h.leased(), vec![(0, 1)]);
    }
}
