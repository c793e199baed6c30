//! Local time: the next "09:00 on a Monday in Europe/Rome", and quiet hours, DST-correct.
//! A local time that does not exist (the spring-forward gap) moves forward by the gap for
//! `wait until` (02:30 → 03:30), and is the first moment after the gap for plans and the end
//! of quiet hours (02:30 → 03:00); one that exists twice (the fall-back hour) is its first
//! occurrence.

use super::Millis;
use crate::compile::ir::QuietIr;
use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeZone, Utc,
};
use chrono_tz::Tz;

/// A time as every output writes it: RFC 3339 in UTC, to the second
/// (`2026-03-01T09:00:00Z`).
pub fn fmt_time(t: Millis) -> String {
    DateTime::from_timestamp_millis(t)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// A time as every input reads it: RFC 3339 with any offset.
pub fn parse_rfc3339(text: &str) -> Option<Millis> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|d| d.timestamp_millis())
}

/// The zone a step runs in: the step's own, else the contact's, else the default.
pub fn pick_zone(step_zone: Option<&str>, contact_zone: Option<&str>, default: Tz) -> Tz {
    step_zone
        .or(contact_zone)
        .and_then(|z| z.parse::<Tz>().ok())
        .unwrap_or(default)
}

/// Where a local time that a clock change skips (the spring-forward gap) falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gap {
    /// Forward by the gap: 02:30 on a spring-forward night in Rome is 03:30, read with the
    /// offset in force before the change. `wait until` (the language reference's rule).
    ShiftByGap,
    /// The first moment after the gap: 02:30 is 03:00. Plans (`entry segment … at`,
    /// `every`) and the end of quiet hours.
    AfterGap,
}

/// The UTC instant of a local date and time in `tz`; a time in the spring-forward gap is the
/// first moment after it, one that occurs twice its first occurrence. Plans use this.
pub fn local_to_utc(tz: Tz, local: NaiveDateTime) -> Millis {
    resolve_local(tz, local, Gap::AfterGap)
}

/// The UTC instant of a local date and time in `tz`: a time that occurs twice (the fall-back
/// hour) is its first occurrence; one that the clock skips falls as `gap` says.
pub fn resolve_local(tz: Tz, local: NaiveDateTime, gap: Gap) -> Millis {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.timestamp_millis(),
        LocalResult::Ambiguous(a, b) => a.timestamp_millis().min(b.timestamp_millis()),
        // Gaps are an hour or so, a whole day at most (Samoa, 2011): two days of minutes
        // always reach a local time that exists.
        LocalResult::None if gap == Gap::ShiftByGap => {
            // Walk back to the last local time before the gap and read `local` with its
            // offset: the instant is as far past the gap's start as `local` is.
            let mut probe = local;
            for _ in 0..(48 * 60) {
                probe -= Duration::minutes(1);
                if let Some(t) = tz.from_local_datetime(&probe).latest() {
                    let offset = t.offset().fix().local_minus_utc();
                    return (local - Duration::seconds(offset.into()))
                        .and_utc()
                        .timestamp_millis();
                }
            }
            Utc.from_utc_datetime(&local).timestamp_millis()
        }
        LocalResult::None => {
            // Walk forward minute by minute to the first local time that exists.
            let mut probe = local;
            for _ in 0..(48 * 60) {
                probe += Duration::minutes(1);
                if let Some(t) = tz.from_local_datetime(&probe).earliest() {
                    return t.timestamp_millis();
                }
            }
            Utc.from_utc_datetime(&local).timestamp_millis()
        }
    }
}

/// `months` calendar months after `at` in `tz`: the same day and local time that many months
/// on, clamped to that month's last day (Jan 31 + 1mo = Feb 28, or 29 in a leap year). A
/// local time the clock skips that day moves forward by the gap, one it repeats is the first.
pub fn add_months(at: Millis, months: u32, tz: Tz) -> Millis {
    shift_months(at, months as i64, tz)
}

/// `add_months` either way: `months` may be negative (`now - 1mo`).
pub fn shift_months(at: Millis, months: i64, tz: Tz) -> Millis {
    if months == 0 {
        return at;
    }
    let local = local_now(at, tz);
    let d = local.date();
    let index = d.year() as i64 * 12 + d.month0() as i64 + months;
    let (year, month) = (index.div_euclid(12) as i32, index.rem_euclid(12) as u32 + 1);
    let first = NaiveDate::from_ymd_opt(year, month, 1);
    let next_first = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    let (Some(first), Some(next_first)) = (first, next_first) else {
        return at;
    };
    let last_day = (next_first - first).num_days() as u32;
    let day = first + Duration::days(i64::from(d.day().min(last_day)) - 1);
    resolve_local(tz, day.and_time(local.time()), Gap::ShiftByGap)
}

fn local_now(now: Millis, tz: Tz) -> NaiveDateTime {
    DateTime::from_timestamp_millis(now)
        .unwrap_or_default()
        .with_timezone(&tz)
        .naive_local()
}

fn time_of(minute_of_day: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(minute_of_day / 60, minute_of_day % 60, 0).unwrap_or_default()
}

/// The first moment at or after `now` that is `minute_of_day` local time on `date` (if
/// given; it may be in the past), else on `weekday` (0 = Monday), else on any day; a time
/// the clock skips that day falls as `gap` says.
pub fn next_local_moment(
    now: Millis,
    date: Option<NaiveDate>,
    weekday: Option<u32>,
    minute_of_day: u32,
    tz: Tz,
    gap: Gap,
) -> Millis {
    let t = time_of(minute_of_day);
    if let Some(d) = date {
        return resolve_local(tz, d.and_time(t), gap);
    }
    let today = local_now(now, tz).date();
    for offset in 0..=8 {
        let day = today + Duration::days(offset);
        if weekday.is_some_and(|w| day.weekday().num_days_from_monday() != w) {
            continue;
        }
        let at = resolve_local(tz, day.and_time(t), gap);
        if at >= now {
            return at;
        }
    }
    now
}

/// The first moment at or after `now` at which the local clock shows `minute_of_day`,
/// counting both passes of the fall-back hour: where a held send is released.
fn next_clock_reading(now: Millis, minute_of_day: u32, tz: Tz) -> Millis {
    let t = time_of(minute_of_day);
    let today = local_now(now, tz).date();
    for offset in 0..=2 {
        let day = today + Duration::days(offset);
        if let Some(at) = occurrences(tz, day.and_time(t))
            .into_iter()
            .find(|at| *at >= now)
        {
            return at;
        }
    }
    now
}

/// Every UTC instant that is this local time in `tz`, earliest first: one, two in the
/// fall-back hour, or (in the spring-forward gap) the first moment after the gap.
fn occurrences(tz: Tz, local: NaiveDateTime) -> Vec<Millis> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => vec![t.timestamp_millis()],
        LocalResult::Ambiguous(a, b) => {
            let (a, b) = (a.timestamp_millis(), b.timestamp_millis());
            vec![a.min(b), a.max(b)]
        }
        LocalResult::None => vec![local_to_utc(tz, local)],
    }
}

/// If `now` falls in the quiet window (local time in `tz`), the moment it ends.
pub fn quiet_until(now: Millis, quiet: &QuietIr, tz: Tz) -> Option<Millis> {
    let local = local_now(now, tz);
    let minute = local.hour_min();
    let (from, to) = (quiet.from_minute, quiet.to_minute);
    if from == to {
        // An empty window (the compiler refuses it; an old version might still hold one).
        return None;
    }
    let inside = if from < to {
        from <= minute && minute < to
    } else {
        minute >= from || minute < to
    };
    if !inside {
        return None;
    }
    // In the repeated hour of a fall-back night, the end may be the second pass of `to`.
    Some(next_clock_reading(now, to, tz))
}

trait HourMin {
    fn hour_min(&self) -> u32;
}

impl HourMin for NaiveDateTime {
    fn hour_min(&self) -> u32 {
        use chrono::Timelike;
        self.hour() * 60 + self.minute()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> Millis {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }
    const W: Gap = Gap::ShiftByGap;

    fn rome() -> Tz {
        "Europe/Rome".parse().unwrap()
    }

    #[test]
    fn next_nine_today_or_tomorrow() {
        // 07:00 Rome (UTC+1 in winter) → 09:00 Rome the same day.
        assert_eq!(
            next_local_moment(ms("2026-03-02T06:00:00Z"), None, None, 540, rome(), W),
            ms("2026-03-02T08:00:00Z")
        );
        // 10:00 Rome → 09:00 the next day.
        assert_eq!(
            next_local_moment(ms("2026-03-02T09:00:00Z"), None, None, 540, rome(), W),
            ms("2026-03-03T08:00:00Z")
        );
    }

    #[test]
    fn weekday_across_dst_change() {
        // Sunday 2026-03-29 is the spring change in Rome (UTC+1 → UTC+2).
        // From Friday 27th, "monday 09:00" is Monday 30th 09:00 CEST = 07:00Z.
        assert_eq!(
            next_local_moment(ms("2026-03-27T12:00:00Z"), None, Some(0), 540, rome(), W),
            ms("2026-03-30T07:00:00Z")
        );
    }

    #[test]
    fn a_skipped_time_moves_forward_by_the_gap() {
        // 02:30 on 2026-03-29 does not exist in Rome: the clock jumps from 02:00 to 03:00, so
        // 02:30 is 03:30 CEST (01:30Z).
        let d = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
        assert_eq!(
            next_local_moment(ms("2026-03-28T00:00:00Z"), Some(d), None, 150, rome(), W),
            ms("2026-03-29T01:30:00Z")
        );
        // A daily 02:30 from the evening before: the same instant.
        assert_eq!(
            next_local_moment(ms("2026-03-28T20:00:00Z"), None, None, 150, rome(), W),
            ms("2026-03-29T01:30:00Z")
        );
        // New York springs forward on 2026-03-08 at 02:00 EST → 03:00 EDT: 02:30 is 03:30 EDT
        // (07:30Z); 02:00 itself is 03:00 EDT.
        let ny: Tz = "America/New_York".parse().unwrap();
        let d = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
        assert_eq!(
            next_local_moment(ms("2026-03-07T12:00:00Z"), Some(d), None, 150, ny, W),
            ms("2026-03-08T07:30:00Z")
        );
        assert_eq!(
            next_local_moment(ms("2026-03-07T12:00:00Z"), Some(d), None, 120, ny, W),
            ms("2026-03-08T07:00:00Z")
        );
    }

    #[test]
    fn a_repeated_time_is_its_first_occurrence() {
        // Rome falls back on 2026-10-25 at 03:00 CEST → 02:00 CET: 02:30 happens at 00:30Z
        // and again at 01:30Z; the first counts.
        let d = NaiveDate::from_ymd_opt(2026, 10, 25).unwrap();
        assert_eq!(
            next_local_moment(ms("2026-10-24T12:00:00Z"), Some(d), None, 150, rome(), W),
            ms("2026-10-25T00:30:00Z")
        );
        // New York falls back on 2026-11-01 at 02:00 EDT → 01:00 EST: 01:30 is 05:30Z
        // (EDT), not 06:30Z (EST).
        let ny: Tz = "America/New_York".parse().unwrap();
        let d = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        assert_eq!(
            next_local_moment(ms("2026-10-31T12:00:00Z"), Some(d), None, 90, ny, W),
            ms("2026-11-01T05:30:00Z")
        );
    }

    #[test]
    fn a_month_ends_the_same_day_of_the_next_clamped_to_its_last() {
        let utc: Tz = "UTC".parse().unwrap();
        // Jan 31 + 1mo = Feb 28 (2026), Feb 29 in a leap year (2028).
        assert_eq!(
            add_months(ms("2026-01-31T10:00:00Z"), 1, utc),
            ms("2026-02-28T10:00:00Z")
        );
        assert_eq!(
            add_months(ms("2028-01-31T10:00:00Z"), 1, utc),
            ms("2028-02-29T10:00:00Z")
        );
        // Across a year, and 2mo from Jan 31 is Mar 31 (not Mar 28).
        assert_eq!(
            add_months(ms("2026-11-30T10:00:00Z"), 3, utc),
            ms("2027-02-28T10:00:00Z")
        );
        assert_eq!(
            add_months(ms("2026-01-31T10:00:00Z"), 2, utc),
            ms("2026-03-31T10:00:00Z")
        );
        // In the contact's zone: 09:00 Rome on Mar 15 (CET, 08:00Z) + 1mo is 09:00 Rome on
        // Apr 15 (CEST, 07:00Z); and 00:30 Rome on Jan 31 (23:30Z on the 30th) is Jan 31
        // locally → 00:30 Rome on Feb 28.
        assert_eq!(
            add_months(ms("2026-03-15T08:00:00Z"), 1, rome()),
            ms("2026-04-15T07:00:00Z")
        );
        assert_eq!(
            add_months(ms("2026-01-30T23:30:00Z"), 1, rome()),
            ms("2026-02-27T23:30:00Z")
        );
        assert_eq!(
            add_months(ms("2026-01-31T10:00:00Z"), 0, rome()),
            ms("2026-01-31T10:00:00Z")
        );
    }

    #[test]
    fn a_plan_in_the_gap_runs_after_it() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
        assert_eq!(
            next_local_moment(
                ms("2026-03-28T00:00:00Z"),
                Some(d),
                None,
                150,
                rome(),
                Gap::AfterGap
            ),
            ms("2026-03-29T01:00:00Z")
        );
        let at = d.and_time(time_of(150));
        assert_eq!(local_to_utc(rome(), at), ms("2026-03-29T01:00:00Z"));
        assert_eq!(resolve_local(rome(), at, W), ms("2026-03-29T01:30:00Z"));
    }

    #[test]
    fn quiet_hours_ending_in_the_gap_end_after_it() {
        // Quiet until 02:30 on the spring-forward night: released at 03:00 CEST, the first
        // moment after the gap, not an hour later.
        let q = QuietIr {
            from_minute: 22 * 60,
            to_minute: 150,
        };
        assert_eq!(
            quiet_until(ms("2026-03-29T00:30:00Z"), &q, rome()),
            Some(ms("2026-03-29T01:00:00Z"))
        );
    }

    #[test]
    fn quiet_hours_wrap_midnight() {
        let q = QuietIr {
            from_minute: 21 * 60,
            to_minute: 8 * 60,
        };
        // 22:00 Rome → held until 08:00 Rome next day.
        assert_eq!(
            quiet_until(ms("2026-03-01T21:00:00Z"), &q, rome()),
            Some(ms("2026-03-02T07:00:00Z"))
        );
        // 03:00 Rome → held until 08:00 the same day.
        assert_eq!(
            quiet_until(ms("2026-03-02T02:00:00Z"), &q, rome()),
            Some(ms("2026-03-02T07:00:00Z"))
        );
        // 10:00 Rome → not quiet.
        assert_eq!(quiet_until(ms("2026-03-02T09:00:00Z"), &q, rome()), None);
    }

    #[test]
    fn quiet_hours_ending_in_the_repeated_hour() {
        // 2026-10-25 in Rome: 02:00–03:00 happens twice (CEST, then CET). Quiet until 02:30:
        // at 02:10 of the second pass (01:10Z) the window ends 20 minutes later, at the
        // second 02:30 (01:30Z), not a day later.
        let q = QuietIr {
            from_minute: 21 * 60,
            to_minute: 2 * 60 + 30,
        };
        assert_eq!(
            quiet_until(ms("2026-10-25T01:10:00Z"), &q, rome()),
            Some(ms("2026-10-25T01:30:00Z"))
        );
        // During the first pass (00:10Z is 02:10 CEST) it is the first 02:30.
        assert_eq!(
            quiet_until(ms("2026-10-25T00:10:00Z"), &q, rome()),
            Some(ms("2026-10-25T00:30:00Z"))
        );
    }

    #[test]
    fn a_daily_time_in_the_repeated_hour_comes_once() {
        // "wait until 02:30" means the first 02:30 of the day: after it, the next is tomorrow,
        // so a daily loop does not run twice in the fall-back night.
        assert_eq!(
            next_local_moment(ms("2026-10-25T00:10:00Z"), None, None, 150, rome(), W),
            ms("2026-10-25T00:30:00Z")
        );
        assert_eq!(
            next_local_moment(ms("2026-10-25T00:30:00.001Z"), None, None, 150, rome(), W),
            ms("2026-10-26T01:30:00Z")
        );
    }

    #[test]
    fn empty_quiet_window_holds_nothing() {
        let q = QuietIr {
            from_minute: 8 * 60,
            to_minute: 8 * 60,
        };
        assert_eq!(quiet_until(ms("2026-03-02T07:00:00Z"), &q, rome()), None);
    }
}
