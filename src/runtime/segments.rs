//! Segment membership kept current incrementally, by the runtime, for every segment of the
//! program:
//!
//! - **as events arrive**: after a contact's inputs, each segment is evaluated over the
//!   contact (profile and history are already loaded for the step function) and compared
//!   with the stored membership (`s | segment | contact`); a contact who joins a segment
//!   enters the journeys that say `entry segment … on join` in the same batch;
//! - **as time passes**: the same evaluation asks the engine for the next moment the
//!   contact's membership could change by time alone (`ContactView::segment_next_change`:
//!   an event leaving an `in last` window, a `last … ago` bound). That moment is a segment
//!   check, a key `q | time | contact` (with the contact's own record `n | contact` of it),
//!   scanned like timers: when it comes, the contact is evaluated again. A contact with no
//!   time-bound rule has no check; nothing polls the whole base;
//! - **when a definition changes**: a deploy compares each segment's fingerprint (its IR
//!   and the IR of the segments it refers to) with the stored one (`g | segment`) and
//!   evaluates a new or changed segment over every contact. That sets the baseline: it
//!   enrols nobody. A segment no longer defined loses its members.
//!
//! A profile written outside a batch (`upsert_contact`) or history imported without running
//! journeys (`ingest_history`) asks for a check at once, so their effect on membership (and
//! `on join` entries) is seen at the next tick.

use super::{BatchInProgress, ContactRound, Input, Result, Runtime};
use crate::compile::ir::{EntryIr, Program, RuleBodyIr, SegmentIr};
use crate::engine::cond::{segment_lookback, ContactView};
use crate::engine::{Contact, Millis};
use crate::store::{Store, WriteBatch};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The most segment checks taken into one batch; the rest are due at the next tick.
const CHECKS_PER_BATCH: usize = 10_000;
/// Contacts written per batch while a deploy re-evaluates segments.
const REEVALUATE_BATCH: usize = 10_000;
/// The check time that means "as soon as possible".
pub const CHECK_NOW: Millis = Millis::MIN;

/// The fingerprint of a segment's definition: its IR and, transitively, the IR of the
/// segments it refers to with `in segment` (a change there changes its members too).
pub fn segment_fingerprint(program: &Program, name: &str) -> String {
    let mut hasher = Sha256::new();
    let mut todo = vec![name.to_string()];
    let mut seen = BTreeSet::new();
    while let Some(n) = todo.pop() {
        if !seen.insert(n.clone()) {
            continue;
        }
        let Some(s) = program.segments.get(&n) else {
            hasher.update(format!("missing {n};").as_bytes());
            continue;
        };
        hasher.update(serde_json::to_vec(s).expect("IR serializes"));
        todo.extend(referenced_segments(s));
    }
    hex::encode(&hasher.finalize()[..12])
}

fn referenced_segments(s: &SegmentIr) -> Vec<String> {
    // The JSON of the IR names them as {"in_segment": "name"}: walk it rather than every
    // condition form, so that new forms cannot be forgotten here.
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    if k == "in_segment" {
                        if let Some(n) = x.as_str() {
                            out.push(n.to_string());
                        }
                    }
                    walk(x, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for r in &s.rules {
        if let Ok(v) = serde_json::to_value::<&RuleBodyIr>(&r.body) {
            walk(&v, &mut out);
        }
    }
    out
}

/// A contact's segments evaluated at `now`: the names it belongs to, and the next moment
/// that could change by time alone.
pub fn evaluate_contact(
    program: &Program,
    contact: &Contact,
    events: &[crate::engine::Event],
    now: Millis,
) -> (BTreeSet<String>, Option<Millis>) {
    let view = ContactView {
        contact,
        events,
        program,
        now,
    };
    let mut member = BTreeSet::new();
    let mut next: Option<Millis> = None;
    for (name, s) in &program.segments {
        if view.segment_matches(s) {
            member.insert(name.clone());
        }
        next = earliest(next, view.segment_next_change(s));
    }
    (member, next)
}

/// The oldest event any segment of the program can see at `now` (None: all of them).
pub fn history_needed(program: &Program, now: Millis) -> Option<Millis> {
    let mut max = 0;
    for s in program.segments.values() {
        max = max.max(segment_lookback(program, s)?);
    }
    Some(now - max)
}

fn earliest(a: Option<Millis>, b: Option<Millis>) -> Option<Millis> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

/// Moves a contact's segment check from `stored` to `next` in the batch.
fn move_check(batch: &mut WriteBatch, contact: &str, stored: Option<Millis>, next: Option<Millis>) {
    if stored == next {
        return;
    }
    match (stored, next) {
        (Some(old), Some(new)) => {
            batch.del_segment_check_key(contact, old);
            batch.put_segment_check(contact, new);
        }
        (None, Some(new)) => batch.put_segment_check(contact, new),
        (Some(old), None) => batch.del_segment_check(contact, old),
        (None, None) => {}
    }
}

/// Asks for a check of a contact's segments at the next tick.
pub(super) fn request_check(store: &Store, batch: &mut WriteBatch, contact: &str) -> Result<()> {
    let stored = store.segment_check(contact)?;
    if stored != Some(CHECK_NOW) {
        move_check(batch, contact, stored, Some(CHECK_NOW));
    }
    Ok(())
}

/// What a deploy did to segments.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SegmentRefresh {
    /// Segments evaluated over every contact (new or changed definitions).
    pub evaluated: Vec<String>,
    /// Segments no longer defined, whose members were removed.
    pub removed: Vec<String>,
    /// Contacts looked at.
    pub contacts: usize,
}

impl Runtime {
    /// After a contact's inputs: compares each segment with the stored membership, enrols
    /// the contacts who joined a segment in its `on join` journeys, and moves the contact's
    /// segment check to the next moment its membership could change by time alone.
    pub(super) fn update_segments(
        &mut self,
        round: &mut ContactRound,
        work: &mut BatchInProgress,
        checked: bool,
    ) -> Result<()> {
        let program = self.deployed.program.clone();
        if program.segments.is_empty() && !checked {
            return Ok(());
        }
        let contact_id = round.world.contact.id.clone();
        let mut joined: Vec<String> = Vec::new();
        for (name, s) in &program.segments {
            let before = self.store.is_member(name, &contact_id)?;
            let after = round.world.view().segment_matches(s);
            if after && !before {
                work.batch.put_member(name, &contact_id);
                joined.push(name.clone());
            } else if before && !after {
                work.batch.del_member(name, &contact_id);
            }
        }
        for segment in &joined {
            for j in program.journeys.values() {
                let joins = j
                    .entries
                    .iter()
                    .any(|e| matches!(e, EntryIr::SegmentJoin { segment: s } if s == segment));
                if joins {
                    self.enroll(j, None, round, work)?;
                }
            }
        }
        let view = round.world.view();
        let next = program
            .segments
            .values()
            .map(|s| view.segment_next_change(s))
            .fold(None, earliest);
        let stored = self.store.segment_check(&contact_id)?;
        move_check(work.batch, &contact_id, stored, next);
        Ok(())
    }

    /// Contacts whose segment check is due at `now`, as inputs (at most a batch's worth;
    /// the rest stay due).
    pub fn due_segment_checks(&mut self, now: Millis) -> Result<Vec<Input>> {
        if now == Millis::MAX {
            return Ok(Vec::new());
        }
        Ok(self
            .store
            .segment_checks_before(now + 1, CHECKS_PER_BATCH)?
            .into_iter()
            .map(|(_, contact)| Input::SegmentCheck { contact })
            .collect())
    }

    /// The earliest segment check.
    pub fn next_segment_check(&self) -> Result<Option<Millis>> {
        Ok(self.store.first_segment_check()?)
    }

    /// Evaluates new and changed segments over every contact (and forgets removed ones).
    /// Called by `deploy` once the program is in place.
    ///
    /// On a database several daemons share, each evaluates its own partitions' contacts:
    /// the first daemon to deploy a change finds it against the stored definitions, the
    /// others against the program they ran before (`before`), which the change reached
    /// them from (`Runtime::follow_deploys`).
    pub(super) fn refresh_segments(
        &mut self,
        now: Millis,
        before: &Program,
    ) -> Result<SegmentRefresh> {
        let program: Arc<Program> = self.deployed.program.clone();
        let stored: BTreeMap<String, String> = self.store.segment_defs()?.into_iter().collect();
        let shared = self.store.is_shared();
        let ran_before = |name: &str| {
            (shared && !before.journeys.is_empty()).then(|| {
                before
                    .segments
                    .contains_key(name)
                    .then(|| segment_fingerprint(before, name))
            })
        };
        let mut report = SegmentRefresh::default();
        let mut changed: Vec<(String, String)> = Vec::new();
        for name in program.segments.keys() {
            let fp = segment_fingerprint(&program, name);
            if stored.get(name) != Some(&fp)
                || ran_before(name).is_some_and(|was| was.as_ref() != Some(&fp))
            {
                changed.push((name.clone(), fp));
            }
        }
        for name in stored.keys() {
            if !program.segments.contains_key(name) {
                report.removed.push(name.clone());
            }
        }
        for name in before.segments.keys() {
            if shared && !program.segments.contains_key(name) && !report.removed.contains(name) {
                report.removed.push(name.clone());
            }
        }
        if changed.is_empty() && report.removed.is_empty() {
            return Ok(report);
        }
        let mut batch = WriteBatch::default();
        for name in &report.removed {
            let members: Vec<String> = self
                .store
                .members(name)
                .collect::<std::result::Result<_, _>>()?;
            for m in members {
                // Another daemon's contact: that daemon removes it.
                if !self.store.works_on(&m) {
                    continue;
                }
                batch.del_member(name, &m);
                if batch.writes >= REEVALUATE_BATCH {
                    self.store.apply(std::mem::take(&mut batch))?;
                }
            }
            batch.del_segment_def(name);
        }
        if !changed.is_empty() {
            let mut pending = 0;
            // Reads are one merged scan; writes go in batches as it goes (sled iterators
            // see a consistent view, and the batches touch no contact or event key).
            let store = self.store.clone();
            for r in store.contacts_with_events_since(history_needed(&program, now)) {
                let (contact, events) = r?;
                let id = contact.id.clone();
                if !self.store.works_on(&id) {
                    continue;
                }
                report.contacts += 1;
                let view = ContactView {
                    contact: &contact,
                    events: &events,
                    program: &program,
                    now,
                };
                for (name, _) in &changed {
                    let s = &program.segments[name];
                    let after = view.segment_matches(s);
                    let before = self.store.is_member(name, &id)?;
                    if after && !before {
                        batch.put_member(name, &id);
                    } else if before && !after {
                        batch.del_member(name, &id);
                    }
                }
                let next = program
                    .segments
                    .values()
                    .map(|s| view.segment_next_change(s))
                    .fold(None, earliest);
                let stored_check = self.store.segment_check(&id)?;
                // A check already asked for stays: it may be for another reason.
                if stored_check != Some(CHECK_NOW) {
                    move_check(&mut batch, &id, stored_check, next);
                }
                pending += 1;
                if pending >= REEVALUATE_BATCH {
                    self.store.apply(std::mem::take(&mut batch))?;
                    pending = 0;
                }
            }
        }
        for (name, fp) in &changed {
            batch.put_segment_def(name, fp);
            report.evaluated.push(name.clone());
        }
        self.store.apply(batch)?;
        if self.durable {
            self.store.flush()?;
        }
        Ok(report)
    }
}

/// Every segment a contact belongs to, by full evaluation from the store at `now` (what
/// the incremental membership must equal; `journey segment` and tests use it).
pub fn full_evaluation(
    store: &Store,
    program: &Program,
    now: Millis,
) -> std::result::Result<BTreeMap<String, BTreeSet<String>>, crate::store::StoreError> {
    let mut out: BTreeMap<String, BTreeSet<String>> = program
        .segments
        .keys()
        .map(|n| (n.clone(), BTreeSet::new()))
        .collect();
    for r in store.contacts_with_events_since(history_needed(program, now)) {
        let (c, events) = r?;
        let (member, _) = evaluate_contact(program, &c, &events, now);
        for m in member {
            out.entry(m).or_default().insert(c.id.clone());
        }
    }
    Ok(out)
}
