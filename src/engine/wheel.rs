//! Hierarchical timing wheel: the in-memory near future of the timer store.
//!
//! It owns the timers (instance id → due time in ms) that fall inside its horizon,
//! `[cursor, cursor + 64^levels)`; the store keeps everything later on disk and refills the wheel
//! by range scans as `cursor` moves. Time is plain `u64` milliseconds passed in by the caller;
//! the wheel keeps none of its own. The layout follows Varghese & Lauck:
//! `levels` levels of 64 slots, slot width `64^level` ms.
//!
//! Invariants (checked by `check_invariants` in the tests):
//! - an id is held at most once, and `index` locates every held entry exactly;
//! - entries due at or before `cursor` wait in `overdue`; every slot entry is due after `cursor`;
//! - a slot entry sits where `place_of(due)` puts it for the current `cursor`. That stays valid as `cursor`
//!   grows until `cursor` reaches the start of the slot's range; `advance` stops at every such
//!   start and cascades the slot down, so an entry fires at exactly its due time;
//! - `occupied` has a bit set exactly for the non-empty slots of its level.

use std::cell::Cell;
use std::collections::HashMap;

/// Bits of the due time consumed by one level.
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
const SLOT_MASK: u64 = SLOTS as u64 - 1;

/// Levels of [`TimingWheel::new`]: a horizon of 64^6 ms, about 2.2 years.
pub const DEFAULT_LEVELS: u32 = 6;
/// The most levels [`TimingWheel::with_levels`] accepts: 64^10 = 2^60 ms still fits a `u64`.
pub const MAX_LEVELS: u32 = 10;

/// A due time at or beyond [`TimingWheel::horizon_end`]: the timer belongs on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timer {id} due at {due_ms} ms is beyond the wheel horizon (ends at {horizon_end} ms)")]
pub struct NotInHorizon {
    pub id: u64,
    pub due_ms: u64,
    pub horizon_end: u64,
}

/// A hierarchical timing wheel of instance timers; see the module documentation.
#[derive(Debug, Clone)]
pub struct TimingWheel {
    /// The wheel's cursor: everything due at or before it has fired,
    /// except what waits in `overdue`.
    advanced_to: u64,
    levels: Vec<Level>,
    /// Entries inserted already due; they fire, oldest first, at the next advance.
    overdue: Slot,
    index: HashMap<u64, Loc>,
}

#[derive(Debug, Clone)]
struct Level {
    occupied: u64,
    slots: Vec<Slot>,
}

#[derive(Debug, Clone, Default)]
struct Slot {
    /// `(id, due)`, in no particular order: removal swaps the last entry into the hole.
    entries: Vec<(u64, u64)>,
    /// The exact minimum due of `entries` when `Some`; `None` means "unknown, rescan".
    /// Removing the minimum only forgets it, so cancel stays O(1) and the rescan is paid by
    /// `next_expiry`, which needs an exact answer but may take `&self`: hence the `Cell`.
    min_due: Cell<Option<u64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Overdue,
    Slot { level: u8, slot: u8 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loc {
    place: Place,
    idx: usize,
}

impl Slot {
    fn push(&mut self, id: u64, due: u64) -> usize {
        let min = if self.entries.is_empty() {
            Some(due)
        } else {
            self.min_due.get().map(|m| m.min(due))
        };
        self.min_due.set(min);
        self.entries.push((id, due));
        self.entries.len() - 1
    }

    fn swap_remove(&mut self, idx: usize) -> (u64, u64) {
        let removed = self.entries.swap_remove(idx);
        if self.entries.is_empty() || self.min_due.get() == Some(removed.1) {
            self.min_due.set(None);
        }
        removed
    }

    fn take(&mut self) -> Vec<(u64, u64)> {
        self.min_due.set(None);
        std::mem::take(&mut self.entries)
    }

    fn min_due(&self) -> Option<u64> {
        if self.entries.is_empty() {
            return None;
        }
        if let Some(m) = self.min_due.get() {
            return Some(m);
        }
        let m = self.entries.iter().map(|&(_, due)| due).min();
        self.min_due.set(m);
        m
    }
}

impl TimingWheel {
    /// An empty wheel at `at_ms` with [`DEFAULT_LEVELS`] levels (horizon 64^6 ms).
    pub fn new(at_ms: u64) -> Self {
        Self::with_levels(at_ms, DEFAULT_LEVELS)
    }

    /// An empty wheel at `at_ms` covering `[at_ms, at_ms + 64^levels)`.
    ///
    /// # Panics
    /// If `levels` is not in `1..=MAX_LEVELS`.
    pub fn with_levels(at_ms: u64, levels: u32) -> Self {
        assert!(
            (1..=MAX_LEVELS).contains(&levels),
            "a timing wheel has 1..={MAX_LEVELS} levels, not {levels}"
        );
        let level = Level {
            occupied: 0,
            slots: vec![Slot::default(); SLOTS],
        };
        Self {
            advanced_to: at_ms,
            levels: vec![level; levels as usize],
            overdue: Slot::default(),
            index: HashMap::new(),
        }
    }

    /// The `at_ms` of the latest effective [`advance`](Self::advance): the wheel's cursor.
    pub fn advanced_to(&self) -> u64 {
        self.advanced_to
    }

    /// Number of levels; the horizon spans `64^levels` ms.
    pub fn levels(&self) -> u32 {
        self.levels.len() as u32
    }

    /// Length of the horizon: `64^levels` ms.
    pub fn span(&self) -> u64 {
        1 << (SLOT_BITS * self.levels())
    }

    /// The first time not covered: `cursor + 64^levels`, saturating at `u64::MAX`.
    ///
    /// Timers due at or after it must stay on disk. Since `cursor` only grows, anything
    /// accepted once stays covered; after an advance the caller refills the wheel from
    /// the old horizon end up to the new one.
    pub fn horizon_end(&self) -> u64 {
        self.advanced_to.saturating_add(self.span())
    }

    /// Number of timers held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn contains(&self, id: u64) -> bool {
        self.index.contains_key(&id)
    }

    /// The due time held for `id`, if any.
    pub fn due_of(&self, id: u64) -> Option<u64> {
        let loc = self.index.get(&id)?;
        Some(self.slot(loc.place).entries[loc.idx].1)
    }

    /// Schedules `id` at `due_ms`, replacing any earlier schedule of `id`.
    ///
    /// A due time at or before [`advanced_to`](Self::advanced_to) fires at the next advance. A due time at
    /// or beyond [`horizon_end`](Self::horizon_end) is refused and nothing changes, so an
    /// existing schedule of `id` is kept.
    pub fn insert(&mut self, id: u64, due_ms: u64) -> Result<(), NotInHorizon> {
        let horizon_end = self.horizon_end();
        if due_ms >= horizon_end {
            return Err(NotInHorizon {
                id,
                due_ms,
                horizon_end,
            });
        }
        self.remove(id);
        self.place(id, due_ms);
        Ok(())
    }

    /// Removes the timer of `id`; `false` if there was none.
    pub fn cancel(&mut self, id: u64) -> bool {
        self.remove(id).is_some()
    }

    /// Moves time forward to `at_ms`, appending `(id, due)` for every timer due at or before
    /// it to `fired`, ordered by due time then id. Fired timers leave the wheel.
    ///
    /// Time never goes backwards: an `at_ms` below [`advanced_to`](Self::advanced_to) does nothing at all
    /// (overdue timers wait for an advance that reaches the current time).
    pub fn advance(&mut self, at_ms: u64, fired: &mut Vec<(u64, u64)>) {
        if at_ms < self.advanced_to {
            return;
        }
        // Overdue entries are all due at or before the old `cursor`, so before any slot entry.
        if !self.overdue.entries.is_empty() {
            let mut batch = self.overdue.take();
            batch.sort_unstable_by_key(|&(id, due)| (due, id));
            for &(id, _) in &batch {
                self.index.remove(&id);
            }
            fired.extend(batch);
        }
        // Stop at every occupied slot start in order, so cascaded entries are re-placed
        // relative to the time their slot became current, never relative to a later `cursor`.
        while let Some((level, slot, start)) = self.next_slot() {
            if start > at_ms {
                break;
            }
            self.advanced_to = start;
            let lvl = &mut self.levels[level];
            lvl.occupied &= !(1 << slot);
            let entries = lvl.slots[slot].take();
            // All entries sharing a due time share a slot, so this batch holds every timer
            // due at `start`, and nothing left in the wheel is due before it.
            let first = fired.len();
            for (id, due) in entries {
                if due == start {
                    self.index.remove(&id);
                    fired.push((id, due));
                } else {
                    self.place(id, due);
                }
            }
            fired[first..].sort_unstable();
        }
        self.advanced_to = at_ms;
    }

    /// The earliest due time held, exactly; `None` when empty.
    ///
    /// Usually O(levels); after the earliest slot's minimum was cancelled or re-scheduled,
    /// the first call rescans that one slot.
    pub fn next_expiry(&self) -> Option<u64> {
        // Overdue entries are due at or before `cursor`, every slot entry after it.
        if let Some(due) = self.overdue.min_due() {
            return Some(due);
        }
        // The earliest slot holds the minimum: slot ranges are disjoint and ordered.
        let (level, slot, _) = self.next_slot()?;
        self.levels[level].slots[slot].min_due()
    }

    /// Level and slot for a timer due after `cursor`: the level is that of the highest 6-bit
    /// digit in which `due` and `cursor` differ, so the slot's range excludes `cursor`.
    /// Due times in the next rotation of the top level (possible because the horizon is a
    /// fixed span, not an aligned block) wrap into top slots at or before `cursor`'s digit.
    fn place_of(&self, due: u64) -> (usize, usize) {
        debug_assert!(due > self.advanced_to && due < self.horizon_end());
        let top = self.levels.len() - 1;
        let differing = (due ^ self.advanced_to) | SLOT_MASK;
        let high_bit = 63 - differing.leading_zeros();
        let level = ((high_bit / SLOT_BITS) as usize).min(top);
        let slot = ((due >> (SLOT_BITS * level as u32)) & SLOT_MASK) as usize;
        (level, slot)
    }

    /// Start of the range of `slot` at `level`: its first millisecond after `cursor`.
    fn slot_start(&self, level: usize, slot: usize) -> u64 {
        let width_bits = SLOT_BITS * level as u32;
        let rotation_bits = width_bits + SLOT_BITS;
        let rotation_start = self.advanced_to >> rotation_bits << rotation_bits;
        let start = rotation_start + ((slot as u64) << width_bits);
        if start > self.advanced_to {
            start
        } else {
            // Only the top level holds slots at or before `cursor`'s digit: the next rotation.
            // The sum is at most the due time of an entry in the slot, so it cannot overflow.
            debug_assert_eq!(level, self.levels.len() - 1);
            start + (1 << rotation_bits)
        }
    }

    /// The occupied slot whose range starts first, with that start.
    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        // A lower level's slots all lie before any higher level's, so the lowest occupied
        // level holds the earliest slot.
        let (level, lvl) = self
            .levels
            .iter()
            .enumerate()
            .find(|(_, lvl)| lvl.occupied != 0)?;
        let digit = (self.advanced_to >> (SLOT_BITS * level as u32)) & SLOT_MASK;
        let ahead = lvl.occupied & u64::MAX.checked_shl(digit as u32 + 1).unwrap_or(0);
        let slot = if ahead != 0 {
            ahead.trailing_zeros()
        } else {
            lvl.occupied.trailing_zeros()
        } as usize;
        Some((level, slot, self.slot_start(level, slot)))
    }

    /// Stores `id`. Any index entry for `id` must be stale: its slot entry already taken.
    fn place(&mut self, id: u64, due: u64) {
        let (place, idx) = if due <= self.advanced_to {
            (Place::Overdue, self.overdue.push(id, due))
        } else {
            let (level, slot) = self.place_of(due);
            let lvl = &mut self.levels[level];
            lvl.occupied |= 1 << slot;
            let place = Place::Slot {
                level: level as u8,
                slot: slot as u8,
            };
            (place, lvl.slots[slot].push(id, due))
        };
        self.index.insert(id, Loc { place, idx });
    }

    /// Removes `id`, returning its due time.
    fn remove(&mut self, id: u64) -> Option<u64> {
        let loc = self.index.remove(&id)?;
        let slot = match loc.place {
            Place::Overdue => &mut self.overdue,
            Place::Slot { level, slot } => &mut self.levels[level as usize].slots[slot as usize],
        };
        let (removed, due) = slot.swap_remove(loc.idx);
        debug_assert_eq!(removed, id);
        if let Some(&(moved, _)) = slot.entries.get(loc.idx) {
            if let Some(moved_loc) = self.index.get_mut(&moved) {
                moved_loc.idx = loc.idx;
            }
        }
        let emptied = slot.entries.is_empty();
        if let (true, Place::Slot { level, slot }) = (emptied, loc.place) {
            self.levels[level as usize].occupied &= !(1 << slot);
        }
        Some(due)
    }

    fn slot(&self, place: Place) -> &Slot {
        match place {
            Place::Overdue => &self.overdue,
            Place::Slot { level, slot } => &self.levels[level as usize].slots[slot as usize],
        }
    }

    /// Panics unless every invariant of the module documentation holds.
    #[cfg(test)]
    fn check_invariants(&self) {
        let mut seen = 0;
        let mut check_slot = |slot: &Slot, place: Place| {
            for (idx, &(id, _)) in slot.entries.iter().enumerate() {
                assert_eq!(
                    self.index.get(&id),
                    Some(&Loc { place, idx }),
                    "index of {id}"
                );
                seen += 1;
            }
            if let Some(min) = slot.min_due.get() {
                if !slot.entries.is_empty() {
                    let actual = slot.entries.iter().map(|e| e.1).min();
                    assert_eq!(Some(min), actual, "cached minimum at {place:?}");
                }
            }
        };
        check_slot(&self.overdue, Place::Overdue);
        for &(_, due) in &self.overdue.entries {
            assert!(
                due <= self.advanced_to,
                "overdue entry due {due} after cursor {}",
                self.advanced_to
            );
        }
        for (level, lvl) in self.levels.iter().enumerate() {
            for (s, slot) in lvl.slots.iter().enumerate() {
                let place = Place::Slot {
                    level: level as u8,
                    slot: s as u8,
                };
                check_slot(slot, place);
                assert_eq!(lvl.occupied & (1 << s) != 0, !slot.entries.is_empty());
                for &(id, due) in &slot.entries {
                    assert!(
                        due > self.advanced_to,
                        "{id} due {due} not after cursor {}",
                        self.advanced_to
                    );
                    assert!(due < self.horizon_end(), "{id} due {due} beyond horizon");
                    assert_eq!(
                        self.place_of(due),
                        (level, s),
                        "placement of {id} due {due}"
                    );
                    let start = self.slot_start(level, s);
                    let width = 1u64 << (SLOT_BITS * level as u32);
                    assert!(
                        start <= due && due - start < width,
                        "{id} outside its slot range"
                    );
                }
            }
        }
        assert_eq!(
            seen,
            self.index.len(),
            "index holds entries missing from slots"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn pow64(k: u32) -> u64 {
        1u64 << (SLOT_BITS * k)
    }

    fn advance(wheel: &mut TimingWheel, cursor: u64) -> Vec<(u64, u64)> {
        let mut fired = Vec::new();
        wheel.advance(cursor, &mut fired);
        wheel.check_invariants();
        fired
    }

    #[test]
    fn new_wheel_is_empty() {
        let wheel = TimingWheel::new(1_000);
        assert!(wheel.is_empty());
        assert_eq!(wheel.len(), 0);
        assert_eq!(wheel.advanced_to(), 1_000);
        assert_eq!(wheel.levels(), DEFAULT_LEVELS);
        assert_eq!(wheel.span(), pow64(6));
        assert_eq!(wheel.horizon_end(), 1_000 + pow64(6));
        assert_eq!(wheel.next_expiry(), None);
        wheel.check_invariants();
    }

    #[test]
    fn insert_then_fire_exactly_at_due() {
        let mut wheel = TimingWheel::new(0);
        wheel.insert(7, 10).unwrap();
        assert!(wheel.contains(7));
        assert_eq!(wheel.due_of(7), Some(10));
        assert_eq!(wheel.len(), 1);
        assert_eq!(wheel.next_expiry(), Some(10));
        assert_eq!(advance(&mut wheel, 9), vec![]);
        assert_eq!(wheel.advanced_to(), 9);
        assert_eq!(advance(&mut wheel, 10), vec![(7, 10)]);
        assert!(wheel.is_empty());
        assert!(!wheel.contains(7));
        assert_eq!(wheel.next_expiry(), None);
        assert_eq!(advance(&mut wheel, 1_000), vec![]);
    }

    #[test]
    fn fires_in_due_order_in_one_advance() {
        let mut wheel = TimingWheel::new(0);
        for (id, due) in [(1, 500), (2, 3), (3, 70_000), (4, 64), (5, 4_095)] {
            wheel.insert(id, due).unwrap();
        }
        assert_eq!(wheel.next_expiry(), Some(3));
        let fired = advance(&mut wheel, 100_000);
        assert_eq!(
            fired,
            vec![(2, 3), (4, 64), (1, 500), (5, 4_095), (3, 70_000)]
        );
    }

    #[test]
    fn cancel_removes_and_reports() {
        let mut wheel = TimingWheel::new(0);
        wheel.insert(1, 100).unwrap();
        wheel.insert(2, 100).unwrap();
        wheel.insert(3, 5_000).unwrap();
        assert!(wheel.cancel(1));
        assert!(!wheel.cancel(1));
        assert!(!wheel.cancel(99));
        assert_eq!(wheel.len(), 2);
        wheel.check_invariants();
        assert_eq!(advance(&mut wheel, 10_000), vec![(2, 100), (3, 5_000)]);
        assert!(!wheel.cancel(2), "a fired timer is gone");
    }

    #[test]
    fn cancel_keeps_next_expiry_exact() {
        let mut wheel = TimingWheel::new(0);
        // All in the same level-2 slot, [4096, 8192).
        wheel.insert(1, 4_100).unwrap();
        wheel.insert(2, 5_000).unwrap();
        wheel.insert(3, 8_000).unwrap();
        assert_eq!(wheel.next_expiry(), Some(4_100));
        wheel.cancel(1);
        assert_eq!(wheel.next_expiry(), Some(5_000));
        wheel.insert(4, 4_097).unwrap();
        assert_eq!(wheel.next_expiry(), Some(4_097));
        wheel.cancel(4);
        wheel.cancel(2);
        assert_eq!(wheel.next_expiry(), Some(8_000));
        wheel.cancel(3);
        assert_eq!(wheel.next_expiry(), None);
        wheel.check_invariants();
    }

    #[test]
    fn reinsert_reschedules() {
        let mut wheel = TimingWheel::new(0);
        wheel.insert(1, 1_000).unwrap();
        wheel.insert(1, 300_000).unwrap();
        assert_eq!(wheel.len(), 1);
        assert_eq!(wheel.due_of(1), Some(300_000));
        assert_eq!(wheel.next_expiry(), Some(300_000));
        assert_eq!(advance(&mut wheel, 299_999), vec![]);
        wheel.insert(1, 299_999 + 5).unwrap();
        wheel.insert(1, 300_001).unwrap();
        assert_eq!(wheel.len(), 1);
        assert_eq!(advance(&mut wheel, 300_000), vec![]);
        assert_eq!(advance(&mut wheel, 300_001), vec![(1, 300_001)]);
        assert!(wheel.is_empty());
    }

    #[test]
    fn due_in_the_past_fires_at_next_advance_with_its_own_due() {
        let mut wheel = TimingWheel::new(1_000);
        wheel.insert(5, 1_001).unwrap();
        wheel.insert(1, 1_000).unwrap();
        wheel.insert(2, 10).unwrap();
        wheel.insert(3, 0).unwrap();
        wheel.insert(4, 10).unwrap();
        assert_eq!(wheel.next_expiry(), Some(0));
        wheel.check_invariants();
        // An advance to the current time still fires what is overdue.
        assert_eq!(
            advance(&mut wheel, 1_000),
            vec![(3, 0), (2, 10), (4, 10), (1, 1_000)]
        );
        assert_eq!(wheel.next_expiry(), Some(1_001));
        assert_eq!(advance(&mut wheel, 1_001), vec![(5, 1_001)]);
    }

    #[test]
    fn overdue_entries_precede_later_ones_in_the_same_advance() {
        let mut wheel = TimingWheel::new(500);
        wheel.insert(1, 501).unwrap();
        wheel.insert(2, 499).unwrap();
        assert_eq!(advance(&mut wheel, 600), vec![(2, 499), (1, 501)]);
    }

    #[test]
    fn rescheduling_into_the_past_and_back() {
        let mut wheel = TimingWheel::new(100);
        wheel.insert(1, 50).unwrap();
        wheel.insert(1, 200).unwrap();
        wheel.check_invariants();
        assert_eq!(advance(&mut wheel, 150), vec![]);
        wheel.insert(1, 20).unwrap();
        assert!(wheel.cancel(1));
        assert_eq!(advance(&mut wheel, 300), vec![]);
    }

    #[test]
    fn time_never_goes_backwards() {
        let mut wheel = TimingWheel::new(1_000);
        wheel.insert(1, 900).unwrap();
        wheel.insert(2, 1_500).unwrap();
        assert_eq!(advance(&mut wheel, 999), vec![]);
        assert_eq!(wheel.advanced_to(), 1_000);
        assert_eq!(wheel.len(), 2);
        assert_eq!(advance(&mut wheel, 2_000), vec![(1, 900), (2, 1_500)]);
        assert_eq!(advance(&mut wheel, 1_000), vec![]);
        assert_eq!(wheel.advanced_to(), 2_000);
    }

    #[test]
    fn beyond_horizon_is_refused_and_changes_nothing() {
        let mut wheel = TimingWheel::with_levels(0, 1);
        assert_eq!(wheel.horizon_end(), 64);
        let err = wheel.insert(1, 64).unwrap_err();
        assert_eq!(
            err,
            NotInHorizon {
                id: 1,
                due_ms: 64,
                horizon_end: 64
            }
        );
        assert!(err.to_string().contains("beyond the wheel horizon"));
        assert!(wheel.is_empty());
        wheel.insert(1, 63).unwrap();
        assert!(wheel.insert(1, u64::MAX).is_err());
        assert_eq!(
            wheel.due_of(1),
            Some(63),
            "a refused re-schedule keeps the old one"
        );
        wheel.check_invariants();

        let mut big = TimingWheel::new(5);
        assert!(big.insert(1, 5 + pow64(6)).is_err());
        big.insert(1, 5 + pow64(6) - 1).unwrap();
        assert_eq!(advance(&mut big, 5 + pow64(6)), vec![(1, 5 + pow64(6) - 1)]);
    }

    #[test]
    fn horizon_moves_with_time() {
        let mut wheel = TimingWheel::with_levels(0, 2);
        assert_eq!(wheel.horizon_end(), 4_096);
        assert!(wheel.insert(1, 5_000).is_err());
        advance(&mut wheel, 1_000);
        assert_eq!(wheel.horizon_end(), 5_096);
        wheel.insert(1, 5_000).unwrap();
        wheel.insert(2, 5_095).unwrap();
        assert_eq!(advance(&mut wheel, 5_095), vec![(1, 5_000), (2, 5_095)]);
    }

    #[test]
    #[should_panic(expected = "levels")]
    fn zero_levels_panics() {
        TimingWheel::with_levels(0, 0);
    }

    #[test]
    #[should_panic(expected = "levels")]
    fn too_many_levels_panics() {
        TimingWheel::with_levels(0, MAX_LEVELS + 1);
    }

    #[test]
    fn max_levels_is_usable() {
        let mut wheel = TimingWheel::with_levels(3, MAX_LEVELS);
        assert_eq!(wheel.span(), 1 << 60);
        let far = 3 + (1 << 60) - 1;
        wheel.insert(1, far).unwrap();
        wheel.insert(2, 1 << 59).unwrap();
        assert_eq!(wheel.next_expiry(), Some(1 << 59));
        assert_eq!(advance(&mut wheel, far), vec![(2, 1 << 59), (1, far)]);
    }

    /// Every level boundary, and both sides of it, stepping to just before and exactly at
    /// each due time.
    #[test]
    fn cascades_across_every_level_boundary() {
        for start in [0, 1, pow64(2) - 3, pow64(5) - 1, 1_700_000_000_000] {
            let mut wheel = TimingWheel::new(start);
            let mut dues = BTreeSet::new();
            for level in 1..=6 {
                let unit = pow64(level);
                let boundary = (start / unit + 1) * unit;
                for due in [boundary - 1, boundary, boundary + 1, boundary + unit / 2] {
                    if due > start && due < wheel.horizon_end() {
                        dues.insert(due);
                    }
                }
            }
            dues.insert(wheel.horizon_end() - 1);
            for (id, &due) in dues.iter().enumerate() {
                wheel.insert(id as u64, due).unwrap();
            }
            wheel.check_invariants();
            for (id, &due) in dues.iter().enumerate() {
                assert_eq!(wheel.next_expiry(), Some(due), "start {start}");
                assert_eq!(advance(&mut wheel, due - 1), vec![], "early at {due}");
                assert_eq!(advance(&mut wheel, due), vec![(id as u64, due)]);
            }
            assert!(wheel.is_empty());
        }
    }

    #[test]
    fn top_level_wraps_into_the_next_rotation() {
        // 2 levels: rotation of the top level is 4096 ms; cursor sits mid-rotation.
        let cursor = 4_096 * 3 + 2_000;
        let mut wheel = TimingWheel::with_levels(cursor, 2);
        let dues = [
            cursor + 1,
            4_096 * 4 - 1,
            4_096 * 4,
            4_096 * 4 + 1_999,
            cursor + 4_096 - 64, // same top digit as cursor, next rotation
            cursor + 4_095,
        ];
        for (id, &due) in dues.iter().enumerate() {
            wheel.insert(id as u64, due).unwrap();
        }
        wheel.check_invariants();
        let mut expected: Vec<(u64, u64)> = dues
            .iter()
            .enumerate()
            .map(|(i, &d)| (i as u64, d))
            .collect();
        expected.sort_by_key(|&(id, due)| (due, id));
        let mut fired = Vec::new();
        for t in cursor..=cursor + 4_095 {
            assert_eq!(wheel.next_expiry(), expected.get(fired.len()).map(|e| e.1));
            let batch = advance(&mut wheel, t);
            assert!(
                batch.iter().all(|&(_, due)| due == t),
                "fired off time at {t}"
            );
            fired.extend(batch);
        }
        assert_eq!(fired, expected);
    }

    #[test]
    fn single_level_wheel() {
        let mut wheel = TimingWheel::with_levels(100, 1);
        for due in 90..164 {
            wheel.insert(due, due).unwrap();
        }
        wheel.check_invariants();
        let mut fired = advance(&mut wheel, 100);
        assert_eq!(fired, (90..=100).map(|d| (d, d)).collect::<Vec<_>>());
        for t in 101..170 {
            fired = advance(&mut wheel, t);
            let expected: Vec<_> = (t < 164).then_some((t, t)).into_iter().collect();
            assert_eq!(fired, expected);
        }
    }

    /// Every millisecond of a small horizon, one step at a time.
    #[test]
    fn every_due_fires_at_its_millisecond() {
        let start = 4_096 * 7 + 1_234;
        let mut wheel = TimingWheel::with_levels(start, 2);
        for due in start + 1..wheel.horizon_end() {
            wheel.insert(due, due).unwrap();
        }
        wheel.check_invariants();
        for t in start + 1..start + 4_096 {
            assert_eq!(wheel.next_expiry(), Some(t));
            let mut fired = Vec::new();
            wheel.advance(t, &mut fired);
            assert_eq!(fired, vec![(t, t)]);
        }
        assert!(wheel.is_empty());
        wheel.check_invariants();
    }

    #[test]
    fn large_jump_fires_everything_in_order() {
        let start = 123_456_789;
        let mut wheel = TimingWheel::new(start);
        let mut expected = Vec::new();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for id in 0..5_000u64 {
            // xorshift: deterministic dues spread over the whole horizon.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let due = start + x % pow64(6);
            wheel.insert(id, due).unwrap();
            expected.push((due, id));
        }
        expected.sort_unstable();
        wheel.check_invariants();
        assert_eq!(wheel.next_expiry(), Some(expected[0].0));
        let mid = expected[2_500].0;
        let first = advance(&mut wheel, mid);
        assert_eq!(first.len(), expected.iter().filter(|e| e.0 <= mid).count());
        assert_eq!(wheel.next_expiry(), expected.get(first.len()).map(|e| e.0));
        let rest = advance(&mut wheel, u64::MAX);
        let all: Vec<_> = first.into_iter().chain(rest).map(|(i, d)| (d, i)).collect();
        assert_eq!(all, expected);
        assert!(wheel.is_empty());
    }

    #[test]
    fn ties_fire_by_id_at_every_level() {
        let mut wheel = TimingWheel::new(0);
        let dues = [1, 63, 64, 4_096, 262_144 + 5, pow64(4), pow64(5) + 77];
        for &due in &dues {
            for id in [9u64, 3, 7, 1, 8] {
                wheel.insert(id * 1_000 + due % 1_000, due).unwrap();
            }
        }
        // Re-scheduling to a tie must not disturb the ordering either.
        wheel.insert(5_001, 1).unwrap();
        let fired = advance(&mut wheel, pow64(6) - 1);
        let mut sorted = fired.clone();
        sorted.sort_by_key(|&(id, due)| (due, id));
        assert_eq!(fired, sorted);
        assert_eq!(fired.len(), dues.len() * 5 + 1);
    }

    #[test]
    fn near_the_end_of_time() {
        let start = u64::MAX - 10;
        let mut wheel = TimingWheel::with_levels(start, 2);
        assert_eq!(wheel.horizon_end(), u64::MAX);
        assert!(wheel.insert(1, u64::MAX).is_err());
        wheel.insert(1, u64::MAX - 1).unwrap();
        wheel.insert(2, start - 5).unwrap();
        wheel.check_invariants();
        assert_eq!(
            advance(&mut wheel, u64::MAX),
            vec![(2, start - 5), (1, u64::MAX - 1)]
        );
        assert_eq!(wheel.horizon_end(), u64::MAX);
    }

    // ---- model-based property test ----

    /// The obvious implementation: an ordered set of `(due, id)`.
    struct Model {
        cursor: u64,
        span: u64,
        by_id: BTreeMap<u64, u64>,
        queue: BTreeSet<(u64, u64)>,
    }

    impl Model {
        fn insert(&mut self, id: u64, due: u64) -> bool {
            if due >= self.cursor.saturating_add(self.span) {
                return false;
            }
            self.cancel(id);
            self.by_id.insert(id, due);
            self.queue.insert((due, id));
            true
        }

        fn cancel(&mut self, id: u64) -> bool {
            match self.by_id.remove(&id) {
                Some(due) => self.queue.remove(&(due, id)),
                None => false,
            }
        }

        fn advance(&mut self, cursor: u64) -> Vec<(u64, u64)> {
            if cursor < self.cursor {
                return Vec::new();
            }
            self.cursor = cursor;
            let mut fired = Vec::new();
            while let Some(&(due, id)) = self.queue.first() {
                if due > cursor {
                    break;
                }
                self.queue.pop_first();
                self.by_id.remove(&id);
                fired.push((id, due));
            }
            fired
        }

        fn next_expiry(&self) -> Option<u64> {
            self.queue.first().map(|&(due, _)| due)
        }

        /// The next multiple of `64^level` after cursor, shifted by `delta`.
        fn boundary(&self, level: u32, delta: i64) -> u64 {
            let unit = 1u64 << (SLOT_BITS * level);
            let next = (self.cursor / unit).saturating_add(1).saturating_mul(unit);
            next.saturating_add_signed(delta)
        }
    }

    #[derive(Debug, Clone)]
    enum When {
        Past(u64),
        Near(u64),
        /// A fraction (in 1/1024ths) of 1.1 × the horizon span.
        Far(u64),
        Boundary(u32, i64),
        AtNextExpiry(i64),
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, When),
        Cancel(u64),
        Advance(When),
    }

    impl When {
        fn resolve(&self, model: &Model, levels: u32) -> u64 {
            match *self {
                When::Past(d) => model.cursor.saturating_sub(d),
                When::Near(d) => model.cursor.saturating_add(d),
                When::Far(frac) => {
                    let reach = u128::from(model.span) * u128::from(frac) * 11 / (10 * 1_024);
                    model.cursor.saturating_add(reach as u64)
                }
                When::Boundary(level, delta) => model.boundary(level % (levels + 1), delta),
                When::AtNextExpiry(delta) => model
                    .next_expiry()
                    .unwrap_or(model.cursor)
                    .saturating_add_signed(delta),
            }
        }
    }

    fn when() -> impl Strategy<Value = When> {
        prop_oneof![
            1 => (0u64..200).prop_map(When::Past),
            3 => (0u64..300).prop_map(When::Near),
            3 => (0u64..=1_024).prop_map(When::Far),
            3 => (0u32..=10, -2i64..=2).prop_map(|(l, d)| When::Boundary(l, d)),
            2 => (-1i64..=1).prop_map(When::AtNextExpiry),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => (0u64..24, when()).prop_map(|(id, w)| Op::Insert(id, w)),
            1 => (0u64..24).prop_map(Op::Cancel),
            4 => when().prop_map(Op::Advance),
        ]
    }

    fn start() -> impl Strategy<Value = u64> {
        prop_oneof![
            0u64..10_000,
            (1u32..=9, -3i64..=3).prop_map(|(k, d)| pow64(k).saturating_add_signed(d)),
            1_600_000_000_000u64..1_900_000_000_000,
            u64::MAX - (1 << 40)..=u64::MAX,
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn behaves_like_an_ordered_set(
            levels in prop_oneof![1u32..=4, Just(6u32), Just(MAX_LEVELS)],
            start in start(),
            ops in proptest::collection::vec(op(), 1..120),
        ) {
            let mut wheel = TimingWheel::with_levels(start, levels);
            let mut model = Model {
                cursor: start,
                span: wheel.span(),
                by_id: BTreeMap::new(),
                queue: BTreeSet::new(),
            };
            for op in &ops {
                match op {
                    Op::Insert(id, when) => {
                        let due = when.resolve(&model, levels);
                        let accepted = model.insert(*id, due);
                        prop_assert_eq!(wheel.insert(*id, due).is_ok(), accepted, "insert {} at {}", id, due);
                    }
                    Op::Cancel(id) => {
                        prop_assert_eq!(wheel.cancel(*id), model.cancel(*id));
                    }
                    Op::Advance(when) => {
                        let cursor = when.resolve(&model, levels);
                        let mut fired = Vec::new();
                        wheel.advance(cursor, &mut fired);
                        prop_assert_eq!(fired, model.advance(cursor), "advance to {}", cursor);
                    }
                }
                wheel.check_invariants();
                prop_assert_eq!(wheel.advanced_to(), model.cursor);
                prop_assert_eq!(wheel.next_expiry(), model.next_expiry());
                prop_assert_eq!(wheel.len(), model.by_id.len());
                prop_assert_eq!(wheel.horizon_end(), model.cursor.saturating_add(model.span));
                for id in 0..24 {
                    prop_assert_eq!(wheel.due_of(id), model.by_id.get(&id).copied());
                }
            }
        }
    }
}
