//! Compiling literals: time zones, times of day, dates and durations, checked and converted.

use super::*;

/// The first and last years a date literal may have: wide enough for birthdays and plans,
/// narrow enough that every moment computed from one fits the engine's millisecond clock.
pub(super) const MIN_YEAR: i32 = 1900;
pub(super) const MAX_YEAR: i32 = 2999;

impl<'a> Compiler<'a> {
    pub(super) fn check_zone(&mut self, file: usize, zone: &Option<Ident>) -> Option<String> {
        let z = zone.as_ref()?;
        if z.name.parse::<chrono_tz::Tz>().is_err() {
            let mut d = Diagnostic::error(file, z.span, format!("unknown time zone '{}'", z.name));
            d = match did_you_mean(&z.name, chrono_tz::TZ_VARIANTS.iter().map(|t| t.name())) {
                Some(h) => d.with_help(h),
                None => d.with_help("use an IANA name such as Europe/Rome or America/New_York"),
            };
            self.err(d);
        }
        Some(z.name.clone())
    }

    pub(super) fn check_time(&mut self, file: usize, t: &TimeOfDay) -> u32 {
        if t.hour > 23 || t.minute > 59 {
            self.err(
                Diagnostic::error(
                    file,
                    t.span,
                    format!("{:02}:{:02} is not a time of day", t.hour, t.minute),
                )
                .with_help("hours run from 00 to 23 and minutes from 00 to 59"),
            );
            return 0;
        }
        t.hour * 60 + t.minute
    }

    pub(super) fn check_date(&mut self, file: usize, d: &Date) -> chrono::NaiveDate {
        match chrono::NaiveDate::from_ymd_opt(d.year, d.month, d.day) {
            Some(n) if !(MIN_YEAR..=MAX_YEAR).contains(&d.year) => {
                self.err(
                    Diagnostic::error(
                        file,
                        d.span,
                        format!("{:04}-{:02}-{:02} is out of range", d.year, d.month, d.day),
                    )
                    .with_label(format!("years run from {MIN_YEAR} to {MAX_YEAR}"))
                    .with_help(format!(
                        "dates are between {MIN_YEAR}-01-01 and {MAX_YEAR}-12-31"
                    )),
                );
                n
            }
            Some(n) => n,
            None => {
                self.err(
                    Diagnostic::error(
                        file,
                        d.span,
                        format!("{:04}-{:02}-{:02} is not a date", d.year, d.month, d.day),
                    )
                    .with_help("dates are YYYY-MM-DD, such as 2026-03-14"),
                );
                chrono::NaiveDate::default()
            }
        }
    }

    /// A duration that may hold calendar months (waits, checks, caps): (months, seconds).
    pub(super) fn check_period(&mut self, file: usize, d: &Dur, what: &str) -> (u32, i64) {
        if d.months <= 0 && d.seconds <= 0 {
            self.err(Diagnostic::error(
                file,
                d.span,
                format!("{what} must be longer than zero"),
            ));
        }
        (u32::try_from(d.months).unwrap_or(0), d.seconds)
    }

    pub(super) fn check_positive(&mut self, file: usize, d: &Dur, what: &str) -> i64 {
        if d.months > 0 {
            self.err(
                Diagnostic::error(
                    file,
                    d.span,
                    format!("{what} cannot be in calendar months"),
                )
                .with_label("`mo` is not allowed here")
                .with_help(
                    "calendar months are for waits, checks, `wait for event` and caps; write days \
                     here, such as 30d",
                ),
            );
            return d.seconds.max(1);
        }
        if d.seconds <= 0 {
            self.err(Diagnostic::error(
                file,
                d.span,
                format!("{what} must be longer than zero"),
            ));
        }
        d.seconds
    }

    // ------------------------------------------------------------ policies
}
