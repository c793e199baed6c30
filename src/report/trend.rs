//! The trend for recipient domains: for the domains a sender mails most, the bounce rate
//! or the open rate of its email deliveries, period by period. A deliverability problem is
//! usually one mailbox provider's: a domain whose open rate drops while the others hold is
//! filtering the mail as spam; a domain whose bounces climb is refusing it.
//!
//! Each email delivery (`message.sent`, or `message.bounced` when refused at once) counts
//! in the period of its delivery. It is *bounced* if refused at once or if a `bounced`
//! report answers it later, and *opened* if an `opened` event answers it (by message id,
//! else the latest delivery of the same journey and message before the open), whenever the
//! open came. Rates are per delivery.

use super::domain_of;
use crate::domain::Channel;
use crate::engine::{Event, Millis, MESSAGE_BOUNCED, MESSAGE_SENT};
use crate::store::{Store, StoreError};
use chrono::{DateTime, Datelike, Duration, NaiveDate};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Bounce,
    Open,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    Day,
    Week,
    Month,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrendQuery {
    pub metric: Metric,
    /// Deliveries in `[from, until)`.
    pub from: Millis,
    pub until: Millis,
    pub group: Group,
    /// How many domains, the ones with the most deliveries in the period.
    pub top: usize,
    /// Only this journey's deliveries.
    pub journey: Option<String>,
}

/// A trend as asked for on the command line or in the query string of
/// `GET /v1/trend/domains`: text, checked by `query`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TrendParams {
    #[serde(default = "TrendParams::default_metric")]
    pub metric: Metric,
    /// How far back from `until`: `30d`, `12w`, `3m` (calendar months), `1y`.
    #[serde(default = "TrendParams::default_period")]
    pub period: String,
    #[serde(default = "TrendParams::default_group")]
    pub group: Group,
    #[serde(default = "TrendParams::default_top")]
    pub top: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journey: Option<String>,
    /// The end of the period (exclusive), RFC 3339 or a date; default: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

impl TrendParams {
    pub const DEFAULT_PERIOD: &'static str = "3m";
    pub const DEFAULT_TOP: usize = 10;
    /// The most periods a trend has: about 3 years by day, 21 by week.
    pub const MAX_POINTS: i64 = 1100;
    fn default_metric() -> Metric {
        Metric::Bounce
    }
    fn default_period() -> String {
        Self::DEFAULT_PERIOD.into()
    }
    fn default_group() -> Group {
        Group::Week
    }
    fn default_top() -> usize {
        Self::DEFAULT_TOP
    }

    /// The query, with `until` defaulting to `now`.
    pub fn query(&self, now: Millis) -> Result<TrendQuery, super::ReportError> {
        let until = match &self.until {
            Some(t) => super::parse_moment(t)?,
            None => now,
        };
        let from = period_back(until, &self.period).map_err(super::ReportError::Invalid)?;
        let days = (until - from) / 86_400_000;
        let (points, unit) = match self.group {
            Group::Day => (days, "days"),
            Group::Week => (days / 7, "weeks"),
            Group::Month => (days / 28, "months"),
        };
        if points > Self::MAX_POINTS {
            return Err(super::ReportError::Invalid(format!(
                "{} is about {points} {unit}, more points than {}: group by a longer time, or ask for a shorter period",
                self.period,
                Self::MAX_POINTS
            )));
        }
        Ok(TrendQuery {
            metric: self.metric,
            from,
            until,
            group: self.group,
            top: self.top,
            journey: self.journey.clone(),
        })
    }
}

/// The start of a period that ends at `until`: `30d`, `12w`, `3m` (calendar months), `1y`.
pub fn period_back(until: Millis, period: &str) -> Result<Millis, String> {
    let bad = || format!("'{period}' is not a period: write 30d, 12w, 3m (months) or 1y");
    let unit = period.chars().last().ok_or_else(bad)?;
    let n: u32 = period[..period.len() - unit.len_utf8()]
        .parse()
        .map_err(|_| bad())?;
    if n == 0 {
        return Err(bad());
    }
    let end = DateTime::from_timestamp_millis(until).ok_or_else(bad)?;
    let start = (|| match unit {
        'd' => end.checked_sub_signed(Duration::try_days(n.into())?),
        'w' => end.checked_sub_signed(Duration::try_weeks(n.into())?),
        'm' => end.checked_sub_months(chrono::Months::new(n)),
        'y' => end.checked_sub_months(chrono::Months::new(n.checked_mul(12)?)),
        _ => None,
    })()
    .ok_or_else(bad)?;
    Ok(start.timestamp_millis())
}

/// One period of one domain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Point {
    /// The first day of the period (`2026-03-02`; a week starts on Monday).
    pub period: String,
    pub deliveries: u64,
    /// Bounced or opened deliveries, by the metric.
    pub hits: u64,
    /// `hits / deliveries` in percent; None without deliveries.
    pub rate: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DomainTrend {
    pub domain: String,
    pub deliveries: u64,
    pub hits: u64,
    pub rate: Option<f64>,
    pub points: Vec<Point>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Trend {
    pub metric: Metric,
    pub group: Group,
    #[schema(value_type = i64)]
    pub from: Millis,
    #[schema(value_type = i64)]
    pub until: Millis,
    pub periods: Vec<String>,
    /// The top domains, most deliveries first.
    pub domains: Vec<DomainTrend>,
    /// Every domain together, for comparison.
    pub all: DomainTrend,
}

fn day_of(t: Millis) -> NaiveDate {
    DateTime::from_timestamp_millis(t)
        .unwrap_or_default()
        .date_naive()
}

/// The first day of the period holding `d`.
pub fn period_start(d: NaiveDate, g: Group) -> NaiveDate {
    match g {
        Group::Day => d,
        Group::Week => d - Duration::days(d.weekday().num_days_from_monday() as i64),
        Group::Month => d.with_day(1).unwrap_or(d),
    }
}

fn next_period(d: NaiveDate, g: Group) -> NaiveDate {
    match g {
        Group::Day => d + Duration::days(1),
        Group::Week => d + Duration::days(7),
        Group::Month => d
            .checked_add_months(chrono::Months::new(1))
            .unwrap_or(d + Duration::days(31)),
    }
}

struct Delivery {
    at: Millis,
    journey: Option<String>,
    message: Option<String>,
    message_id: Option<String>,
    bounced: bool,
    opened: bool,
}

/// Finds the delivery an engagement answers: by message id, else the latest one of the
/// same journey and message at or before it.
fn answered<'a>(ds: &'a mut [Delivery], e: &Event) -> Option<&'a mut Delivery> {
    if let Some(id) = &e.message_id {
        if let Some(i) = ds.iter().position(|d| d.message_id.as_ref() == Some(id)) {
            return Some(&mut ds[i]);
        }
    }
    ds.iter_mut()
        .rev()
        .find(|d| d.at <= e.at && d.journey == e.journey && d.message == e.message)
}

pub fn trend(store: &Store, q: &TrendQuery) -> Result<Trend, StoreError> {
    // (domain, period) → (deliveries, hits)
    let mut cells: BTreeMap<(String, NaiveDate), (u64, u64)> = BTreeMap::new();
    let mut flush = |contact: &str, ds: &mut Vec<Delivery>| -> Result<(), StoreError> {
        if ds.is_empty() {
            return Ok(());
        }
        let domain = store
            .contact(contact)?
            .and_then(|c| {
                c.profile
                    .get("email")
                    .and_then(|v| v.as_str())
                    .map(String::from)
            })
            .and_then(|e| domain_of(&e));
        if let Some(domain) = domain {
            for d in ds.iter().filter(|d| d.at >= q.from && d.at < q.until) {
                let hit = match q.metric {
                    Metric::Bounce => d.bounced,
                    Metric::Open => d.opened && !d.bounced,
                };
                let cell = cells
                    .entry((domain.clone(), period_start(day_of(d.at), q.group)))
                    .or_default();
                cell.0 += 1;
                cell.1 += hit as u64;
            }
        }
        ds.clear();
        Ok(())
    };
    let mut contact = String::new();
    let mut ds: Vec<Delivery> = Vec::new();
    for e in store.all_events() {
        let e = e?;
        if e.contact != contact {
            flush(&contact, &mut ds)?;
            contact = e.contact.clone();
        }
        if q.journey.is_some() && e.journey != q.journey {
            continue;
        }
        let email = e.channel.is_none_or(|c| c == Channel::Email);
        match e.kind.as_str() {
            MESSAGE_SENT | MESSAGE_BOUNCED if email => ds.push(Delivery {
                at: e.at,
                journey: e.journey.clone(),
                message: e.message.clone(),
                message_id: e.message_id.clone(),
                bounced: e.kind == MESSAGE_BOUNCED,
                opened: false,
            }),
            "bounced" => {
                if let Some(d) = answered(&mut ds, &e) {
                    d.bounced = true;
                }
            }
            // A click implies the open (images off, mail privacy protection).
            "opened" | "clicked" => {
                if let Some(d) = answered(&mut ds, &e) {
                    d.opened = true;
                }
            }
            _ => {}
        }
    }
    flush(&contact, &mut ds)?;

    let mut periods: Vec<NaiveDate> = Vec::new();
    if q.until > q.from {
        let last = day_of(q.until - 1);
        let mut p = period_start(day_of(q.from), q.group);
        while p <= last {
            periods.push(p);
            p = next_period(p, q.group);
        }
    }
    let mut by_domain: BTreeMap<String, BTreeMap<NaiveDate, (u64, u64)>> = BTreeMap::new();
    let mut all: BTreeMap<NaiveDate, (u64, u64)> = BTreeMap::new();
    for ((domain, p), (n, h)) in cells {
        let c = by_domain.entry(domain).or_default().entry(p).or_default();
        c.0 += n;
        c.1 += h;
        let a = all.entry(p).or_default();
        a.0 += n;
        a.1 += h;
    }
    let row = |domain: String, cells: &BTreeMap<NaiveDate, (u64, u64)>| {
        let points: Vec<Point> = periods
            .iter()
            .map(|p| {
                let (n, h) = cells.get(p).copied().unwrap_or_default();
                Point {
                    period: p.to_string(),
                    deliveries: n,
                    hits: h,
                    rate: rate(h, n),
                }
            })
            .collect();
        let n: u64 = points.iter().map(|p| p.deliveries).sum();
        let h: u64 = points.iter().map(|p| p.hits).sum();
        DomainTrend {
            domain,
            deliveries: n,
            hits: h,
            rate: rate(h, n),
            points,
        }
    };
    let mut domains: Vec<DomainTrend> = by_domain
        .iter()
        .map(|(d, cells)| row(d.clone(), cells))
        .collect();
    domains.sort_by(|a, b| {
        b.deliveries
            .cmp(&a.deliveries)
            .then(a.domain.cmp(&b.domain))
    });
    domains.truncate(q.top);
    Ok(Trend {
        metric: q.metric,
        group: q.group,
        from: q.from,
        until: q.until,
        periods: periods.iter().map(|p| p.to_string()).collect(),
        domains,
        all: row("all domains".into(), &all),
    })
}

fn rate(hits: u64, n: u64) -> Option<f64> {
    (n > 0).then(|| 100.0 * hits as f64 / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(period: &str, group: Group) -> TrendParams {
        TrendParams {
            metric: Metric::Open,
            period: period.into(),
            group,
            top: 10,
            journey: None,
            until: Some("2026-03-02".into()),
        }
    }

    #[test]
    fn periods_are_checked_not_trusted() {
        let q = params("8w", Group::Week).query(0).unwrap();
        assert_eq!(q.until - q.from, 56 * 86_400_000);
        for bad in [
            "",
            "3",
            "3x",
            "0d",
            "3é",
            "é",
            "-1d",
            "99999999999y",
            "4294967295y",
        ] {
            let e = params(bad, Group::Month).query(0).unwrap_err();
            assert!(e.to_string().contains("not a period"), "{bad}: {e}");
        }
        let e = params("40y", Group::Day).query(0).unwrap_err();
        assert!(e.to_string().contains("group by a longer time"), "{e}");
        assert!(params("20y", Group::Week).query(0).is_ok());
    }
}
