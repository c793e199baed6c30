//! Scheduled entries (plans): `entry segment S at|every …`, run once per moment, and when each
//! runs next.

use super::*;

/// A scheduled entry's next run.
pub(super) struct ScheduledRun {
    journey: String,
    /// The entry's index among the journey's entries.
    entry: usize,
    segment: String,
    moment: Millis,
}

impl Runtime {
    /// Every scheduled entry's next run.
    pub(super) fn schedules(&self) -> Result<Vec<ScheduledRun>> {
        let mut out = Vec::new();
        for (name, j) in &self.deployed.program.journeys {
            for (i, e) in j.entries.iter().enumerate() {
                // Only scheduled entries have a run to read (a read is a round trip on
                // PostgreSQL, and this runs every round).
                if !matches!(e, EntryIr::SegmentAt { .. } | EntryIr::SegmentEvery { .. }) {
                    continue;
                }
                let key = schedule_key(name, i);
                let Some(last) = self.store.schedule_run(&key)? else {
                    continue;
                };
                if let (
                    Some(moment),
                    EntryIr::SegmentAt { segment, .. } | EntryIr::SegmentEvery { segment, .. },
                ) = (next_scheduled_run(e, last, self.default_zone), e)
                {
                    out.push(ScheduledRun {
                        journey: name.clone(),
                        entry: i,
                        segment: segment.clone(),
                        moment,
                    });
                }
            }
        }
        Ok(out)
    }

    pub(super) fn next_schedule(&self) -> Result<Option<Millis>> {
        if !self.runs_schedules() {
            return Ok(None);
        }
        Ok(self.schedules()?.into_iter().map(|s| s.moment).min())
    }

    /// Whether this process runs the schedules: the holder of partition 0 does, when
    /// several daemons share the store (its enrolments of other partitions' contacts go to
    /// their holders' inboxes).
    fn runs_schedules(&self) -> bool {
        self.store.works_on_partition(0)
    }

    /// Enrolments for every schedule due at `now`; each runs once per moment, even after a
    /// restart (the run is recorded with the enrolments). A repeated schedule that missed
    /// several moments while the daemon was down runs once. Segment checks due at `now`
    /// come first (see `segments`).
    pub fn due_schedules(&mut self, now: Millis) -> Result<Vec<Input>> {
        let mut inputs = self.due_segment_checks(now)?;
        if !self.runs_schedules() {
            return Ok(inputs);
        }
        let mut batch = WriteBatch::default();
        for ScheduledRun {
            journey,
            entry: i,
            segment,
            moment,
        } in self.schedules()?
        {
            if moment > now {
                continue;
            }
            let Some(seg) = self.deployed.program.segments.get(&segment).cloned() else {
                continue;
            };
            let since = crate::engine::cond::segment_lookback(&self.deployed.program, &seg)
                .map(|w| now - w);
            for r in self.store.contacts_with_events_since(since) {
                let (c, events) = r?;
                let view = ContactView {
                    contact: &c,
                    events: &events,
                    program: &self.deployed.program,
                    now,
                };
                if view.segment_matches(&seg) {
                    inputs.push(Input::Enroll {
                        journey: journey.clone(),
                        contact: c.id.clone(),
                    });
                }
            }
            batch.set_schedule_run(&schedule_key(&journey, i), moment.max(now));
        }
        self.store.apply(batch)?;
        Ok(inputs)
    }
}

/// The store's key of a scheduled entry's last run (`Store::schedule_run`).
pub fn schedule_key(journey: &str, entry: usize) -> String {
    format!("{journey}/{entry}")
}

/// Warnings for the one-shot plans of `program` that a deploy at `now` would never run:
/// `entry segment S at T` with T not after now, in a journey whose plan has not run (or
/// been deployed) before. Repeated plans and plans already recorded are not warned about.
pub fn past_plans(
    store: &Store,
    program: &Program,
    now: Millis,
    default_zone: chrono_tz::Tz,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (name, j) in &program.journeys {
        for (i, e) in j.entries.iter().enumerate() {
            if !matches!(e, EntryIr::SegmentAt { .. }) {
                continue;
            }
            if store.schedule_run(&schedule_key(name, i))?.is_some() {
                continue;
            }
            if next_scheduled_run(e, now, default_zone).is_none() {
                out.push(format!(
                    "journey {name}: `entry {}` is in the past: it will not run",
                    e.describe()
                ));
            }
        }
    }
    Ok(out)
}

/// When a scheduled entry (`entry segment S at …` or `every …`) runs next, given when it
/// last ran (or was deployed): a one-shot plan whose moment is not after that never runs
/// again (None); a repeated one runs at its next moment after it.
pub fn next_scheduled_run(
    entry: &EntryIr,
    last_run: Millis,
    default_zone: chrono_tz::Tz,
) -> Option<Millis> {
    match entry {
        EntryIr::SegmentAt { at, zone, .. } => {
            let tz = pick_zone(zone.as_deref(), None, default_zone);
            let moment = local_to_utc(tz, *at);
            (last_run < moment).then_some(moment)
        }
        EntryIr::SegmentEvery {
            weekday,
            minute_of_day,
            zone,
            ..
        } => {
            let tz = pick_zone(zone.as_deref(), None, default_zone);
            Some(next_local_moment(
                last_run + 1,
                None,
                *weekday,
                *minute_of_day,
                tz,
                Gap::AfterGap,
            ))
        }
        _ => None,
    }
}
