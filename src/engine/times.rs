//! Profile times in conditions (`contact.trial_ends_at before now + 3d`, `in last 30d`,
//! `between`, `is anniversary`) and computed values (`set contact.x = contact.x + 1`).
//! A value that is not an RFC 3339 time or a date makes a time test false.

use super::calendar::{fmt_time, local_to_utc, parse_rfc3339, shift_months};
use super::Millis;
use crate::compile::ir::{BinOpIr, ExprIr, TimePointIr, TimeTestIr};
use chrono::{DateTime, Datelike, NaiveDate};
use chrono_tz::Tz;
use serde_json::Value;

const SECOND: Millis = 1000;

/// A profile value as a time: an RFC 3339 time, or a date (midnight UTC), with the date
/// itself for a date (anniversaries read its month and day as written).
pub fn time_value(v: &Value) -> Option<(Millis, Option<NaiveDate>)> {
    let s = v.as_str()?.trim();
    if let Some(t) = parse_rfc3339(s) {
        return Some((t, None));
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some((
        d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis(),
        Some(d),
    ))
}

fn point(p: &TimePointIr, now: Millis, tz: Tz) -> Millis {
    match p {
        TimePointIr::Date(d) => midnight_utc(*d),
        TimePointIr::Now { seconds, months } => {
            shift_months(now, *months as i64, tz) + seconds * SECOND
        }
    }
}

fn midnight_utc(d: NaiveDate) -> Millis {
    d.and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp_millis()
}

/// The start of `(now - period, now]`.
fn window_start(now: Millis, seconds: i64, months: u32, tz: Tz) -> Millis {
    shift_months(now, -(months as i64), tz) - seconds * SECOND
}

fn local_date(t: Millis, tz: Tz) -> NaiveDate {
    DateTime::from_timestamp_millis(t)
        .unwrap_or_default()
        .with_timezone(&tz)
        .date_naive()
}

/// The anniversary of `(month, day)` in `year`: 29 February falls on the 28th in other years.
fn anniversary_in(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, month, day).or_else(|| NaiveDate::from_ymd_opt(year, month, 28))
}

fn month_day(t: Millis, date: Option<NaiveDate>, tz: Tz) -> (u32, u32) {
    let d = date.unwrap_or_else(|| local_date(t, tz));
    (d.month(), d.day())
}

/// Does the test hold for this value at `now`? `tz` is the contact's zone (anniversaries).
pub fn time_test(value: Option<&Value>, test: &TimeTestIr, now: Millis, tz: Tz) -> bool {
    let Some((t, date)) = value.and_then(time_value) else {
        return false;
    };
    match test {
        TimeTestIr::InLast { seconds, months } => {
            window_start(now, *seconds, *months, tz) < t && t <= now
        }
        TimeTestIr::Before(p) => t < point(p, now, tz),
        TimeTestIr::After(p) => t > point(p, now, tz),
        TimeTestIr::Between { from, to } => {
            let day = date.unwrap_or_else(|| local_date(t, chrono_tz::UTC));
            *from <= day && day <= *to
        }
        TimeTestIr::Anniversary => {
            let today = local_date(now, tz);
            let (m, d) = month_day(t, date, tz);
            anniversary_in(today.year(), m, d) == Some(today)
        }
    }
}

/// The first moment after `now` at which the test's result could change by time alone.
pub fn time_test_change(
    value: Option<&Value>,
    test: &TimeTestIr,
    now: Millis,
    tz: Tz,
) -> Option<Millis> {
    let (t, date) = value.and_then(time_value)?;
    let after_now = |x: Millis| (x > now).then_some(x);
    match test {
        TimeTestIr::InLast { seconds, months } => {
            if t > now {
                return Some(t);
            }
            // It leaves the window when the window's start reaches it.
            after_now(shift_months(t, *months as i64, tz) + seconds * SECOND)
        }
        TimeTestIr::Before(TimePointIr::Now { seconds, months }) => {
            // t < now + off from just after now = t - off.
            let x = shift_months(t - seconds * SECOND, -(*months as i64), tz);
            after_now(x + 1)
        }
        TimeTestIr::After(TimePointIr::Now { seconds, months }) => {
            after_now(shift_months(t - seconds * SECOND, -(*months as i64), tz))
        }
        TimeTestIr::Before(TimePointIr::Date(_))
        | TimeTestIr::After(TimePointIr::Date(_))
        | TimeTestIr::Between { .. } => None,
        TimeTestIr::Anniversary => {
            let today = local_date(now, tz);
            let (m, d) = month_day(t, date, tz);
            let midnight =
                |day: NaiveDate| local_to_utc(tz, day.and_hms_opt(0, 0, 0).expect("midnight"));
            if anniversary_in(today.year(), m, d) == Some(today) {
                return today.succ_opt().map(midnight);
            }
            (today.year()..today.year() + 2)
                .filter_map(|y| anniversary_in(y, m, d))
                .find(|day| *day > today)
                .map(midnight)
        }
    }
}

/// A value while computing: JSON, or a time or a duration on their way to one.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Json(Value),
    Time(Millis),
    Dur { seconds: i64, months: i64 },
}

fn kind(v: &Val) -> &'static str {
    match v {
        Val::Json(Value::Number(_)) | Val::Json(Value::Null) => "a number",
        Val::Json(Value::String(_)) => "a string",
        Val::Json(Value::Bool(_)) => "a boolean",
        Val::Json(Value::Array(_)) => "a list",
        Val::Json(Value::Object(_)) => "an object",
        Val::Time(_) => "a time",
        Val::Dur { .. } => "a duration",
    }
}

/// Computes a value. `lookup` reads `contact.…` and `entry.…` (missing: None, which counts
/// as 0 in arithmetic). An error is the reason for `set.failed`.
pub fn compute(
    e: &ExprIr,
    lookup: &dyn Fn(&[String]) -> Option<Value>,
    now: Millis,
    tz: Tz,
) -> Result<Value, String> {
    match eval(e, lookup, now, tz)? {
        Val::Json(v) => Ok(v),
        Val::Time(t) => Ok(Value::String(fmt_time(t))),
        Val::Dur { .. } => Err("a duration alone is not a value to keep".into()),
    }
}

fn eval(
    e: &ExprIr,
    lookup: &dyn Fn(&[String]) -> Option<Value>,
    now: Millis,
    tz: Tz,
) -> Result<Val, String> {
    Ok(match e {
        ExprIr::Lit(v) => Val::Json(v.clone()),
        ExprIr::Now => Val::Time(now),
        ExprIr::Dur { seconds, months } => Val::Dur {
            seconds: *seconds,
            months: *months as i64,
        },
        ExprIr::Ref(path) => Val::Json(lookup(path).unwrap_or(Value::Null)),
        ExprIr::Bin(op, a, b) => {
            let a = eval(a, lookup, now, tz)?;
            let b = eval(b, lookup, now, tz)?;
            binary(*op, a, b, tz)?
        }
    })
}

fn number(v: &Val) -> Option<f64> {
    match v {
        Val::Json(Value::Null) => Some(0.0),
        Val::Json(Value::Number(n)) => n.as_f64(),
        _ => None,
    }
}

fn as_time(v: &Val) -> Option<Millis> {
    match v {
        Val::Time(t) => Some(*t),
        Val::Json(j) => time_value(j).map(|(t, _)| t),
        _ => None,
    }
}

fn json_number(x: f64) -> Result<Value, String> {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        return Ok(Value::from(x as i64));
    }
    serde_json::Number::from_f64(x)
        .map(Value::Number)
        .ok_or_else(|| "the result is not a finite number".to_string())
}

fn binary(op: BinOpIr, a: Val, b: Val, tz: Tz) -> Result<Val, String> {
    let verb = match op {
        BinOpIr::Add => "add",
        BinOpIr::Sub => "subtract",
        BinOpIr::Mul => "multiply",
        BinOpIr::Div => "divide",
    };
    let mismatch = || Err(format!("cannot {verb} {} and {}", kind(&a), kind(&b)));
    // Durations first: a time (or a string holding one) give or take a duration.
    match (&a, &b) {
        (
            Val::Dur { seconds, months },
            Val::Dur {
                seconds: s2,
                months: m2,
            },
        ) => {
            let sign = match op {
                BinOpIr::Add => 1,
                BinOpIr::Sub => -1,
                _ => return mismatch(),
            };
            return Ok(Val::Dur {
                seconds: seconds + sign * s2,
                months: months + sign * m2,
            });
        }
        (x, Val::Dur { seconds, months }) | (Val::Dur { seconds, months }, x)
            if matches!(op, BinOpIr::Add | BinOpIr::Sub) =>
        {
            if matches!(b, Val::Dur { .. }) || op == BinOpIr::Add {
                if let Some(t) = as_time(x) {
                    let sign = if op == BinOpIr::Sub { -1 } else { 1 };
                    return Ok(Val::Time(
                        shift_months(t, sign * months, tz) + sign * seconds * SECOND,
                    ));
                }
            }
            return mismatch();
        }
        (Val::Dur { .. }, _) | (_, Val::Dur { .. }) => return mismatch(),
        _ => {}
    }
    if let (Some(x), Some(y)) = (number(&a), number(&b)) {
        let r = match op {
            BinOpIr::Add => x + y,
            BinOpIr::Sub => x - y,
            BinOpIr::Mul => x * y,
            BinOpIr::Div if y == 0.0 => return Err("division by zero".into()),
            BinOpIr::Div => x / y,
        };
        return Ok(Val::Json(json_number(r)?));
    }
    if op == BinOpIr::Sub {
        if let (Some(x), Some(y)) = (as_time(&a), as_time(&b)) {
            return Ok(Val::Json(Value::from((x - y) / SECOND)));
        }
    }
    mismatch()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::UTC;

    fn at(s: &str) -> Millis {
        parse_rfc3339(s).unwrap()
    }

    #[test]
    fn values_that_are_not_times_make_tests_false() {
        let now = at("2026-03-10T12:00:00Z");
        let test = TimeTestIr::InLast {
            seconds: 30 * 86_400,
            months: 0,
        };
        for v in [Value::from(3), Value::from("soon"), Value::Bool(true)] {
            assert!(!time_test(Some(&v), &test, now, UTC));
        }
        assert!(!time_test(None, &test, now, UTC));
        assert!(time_test(Some(&Value::from("2026-03-01")), &test, now, UTC));
        assert!(time_test(
            Some(&Value::from("2026-02-20T00:00:00+01:00")),
            &test,
            now,
            UTC
        ));
        assert!(!time_test(
            Some(&Value::from("2026-01-01")),
            &test,
            now,
            UTC
        ));
    }

    #[test]
    fn before_and_after_now_move_with_now() {
        let now = at("2026-03-10T12:00:00Z");
        let soon = TimeTestIr::Before(TimePointIr::Now {
            seconds: 3 * 86_400,
            months: 0,
        });
        let ends = Value::from("2026-03-12T00:00:00Z");
        assert!(time_test(Some(&ends), &soon, now, UTC));
        let later = Value::from("2026-03-20T00:00:00Z");
        assert!(!time_test(Some(&later), &soon, now, UTC));
        // It becomes true just after 2026-03-17T00:00Z (3 days before).
        let change = time_test_change(Some(&later), &soon, now, UTC).unwrap();
        assert_eq!(change, at("2026-03-17T00:00:00Z") + 1);
        assert!(time_test(Some(&later), &soon, change, UTC));
        assert!(!time_test(Some(&later), &soon, change - 1, UTC));
        let after = TimeTestIr::After(TimePointIr::Date(
            NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
        ));
        assert!(time_test(Some(&later), &after, now, UTC));
        assert_eq!(time_test_change(Some(&later), &after, now, UTC), None);
    }

    #[test]
    fn anniversaries_in_the_contacts_zone_and_on_leap_days() {
        let rome: Tz = "Europe/Rome".parse().unwrap();
        let birthday = Value::from("1990-03-11");
        // 23:30 UTC on the 10th is already the 11th in Rome.
        let now = at("2026-03-10T23:30:00Z");
        assert!(time_test(
            Some(&birthday),
            &TimeTestIr::Anniversary,
            now,
            rome
        ));
        assert!(!time_test(
            Some(&birthday),
            &TimeTestIr::Anniversary,
            now,
            UTC
        ));
        // Next change: midnight in Rome at the start of the 12th.
        assert_eq!(
            time_test_change(Some(&birthday), &TimeTestIr::Anniversary, now, rome),
            Some(at("2026-03-11T23:00:00Z"))
        );
        // Not today: the start of the next anniversary.
        assert_eq!(
            time_test_change(Some(&birthday), &TimeTestIr::Anniversary, now, UTC),
            Some(at("2026-03-11T00:00:00Z"))
        );
        let leap = Value::from("2004-02-29");
        let feb28 = at("2026-02-28T10:00:00Z");
        assert!(time_test(Some(&leap), &TimeTestIr::Anniversary, feb28, UTC));
    }

    #[test]
    fn computed_values() {
        let now = at("2026-03-01T09:00:00Z");
        let profile = serde_json::json!({"n": 2, "name": "Ann", "at": "2026-02-01T00:00:00Z"});
        let lookup = |p: &[String]| -> Option<Value> { profile.get(&p[1]).cloned() };
        let r = |path: &str| ExprIr::Ref(vec!["contact".into(), path.into()]);
        let bin = |op, a, b| ExprIr::Bin(op, Box::new(a), Box::new(b));
        let num = |n: i64| ExprIr::Lit(Value::from(n));
        assert_eq!(
            compute(&bin(BinOpIr::Add, r("n"), num(1)), &lookup, now, UTC),
            Ok(Value::from(3))
        );
        // A missing number counts as 0.
        assert_eq!(
            compute(&bin(BinOpIr::Add, r("missing"), num(1)), &lookup, now, UTC),
            Ok(Value::from(1))
        );
        assert_eq!(
            compute(&bin(BinOpIr::Div, num(1), num(4)), &lookup, now, UTC),
            Ok(serde_json::json!(0.25))
        );
        let week = ExprIr::Dur {
            seconds: 7 * 86_400,
            months: 0,
        };
        assert_eq!(
            compute(
                &bin(BinOpIr::Add, ExprIr::Now, week.clone()),
                &lookup,
                now,
                UTC
            ),
            Ok(Value::from("2026-03-08T09:00:00Z"))
        );
        assert_eq!(
            compute(
                &bin(
                    BinOpIr::Add,
                    r("at"),
                    ExprIr::Dur {
                        seconds: 0,
                        months: 1
                    }
                ),
                &lookup,
                now,
                UTC
            ),
            Ok(Value::from("2026-03-01T00:00:00Z"))
        );
        assert_eq!(
            compute(&bin(BinOpIr::Sub, ExprIr::Now, r("at")), &lookup, now, UTC),
            Ok(Value::from(28 * 86_400 + 9 * 3600))
        );
        assert_eq!(
            compute(&bin(BinOpIr::Add, r("name"), num(1)), &lookup, now, UTC),
            Err("cannot add a string and a number".into())
        );
        assert_eq!(
            compute(&bin(BinOpIr::Div, r("n"), num(0)), &lookup, now, UTC),
            Err("division by zero".into())
        );
        assert!(compute(&bin(BinOpIr::Sub, week, ExprIr::Now), &lookup, now, UTC).is_err());
    }
}
