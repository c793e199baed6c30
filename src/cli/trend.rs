//! `journey trend domains --metric bounce|open --period 3m --group week --top 10`: the
//! trend for recipient domains. For the domains mailed most, the bounce or open rate of
//! email deliveries period by period, beside all domains together: a provider that starts
//! filtering shows as one domain whose open rate drops (or bounces climb) while the others
//! hold.

use super::report::{now, open_store, parse_moment, DEFAULT_STORE};
use crate::report::{trend, Group, Metric, Trend, TrendQuery};
use crate::runtime::fmt_time;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct TrendArgs {
    /// What to trend: `domains` (recipient domains of email deliveries).
    #[arg(value_enum)]
    pub what: TrendWhat,
    #[arg(long, value_enum, default_value_t = MetricArg::Bounce)]
    pub metric: MetricArg,
    /// How far back from --until: 30d, 12w, 3m (months), 1y.
    #[arg(long, default_value = "3m")]
    pub period: String,
    /// The length of each point.
    #[arg(long, value_enum, default_value_t = GroupArg::Week)]
    pub group: GroupArg,
    /// How many domains: those with the most deliveries in the period.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Only the deliveries of this journey.
    #[arg(long)]
    pub journey: Option<String>,
    /// The end of the period (exclusive): 2026-03-23 or an RFC 3339 time [default: now].
    #[arg(long)]
    pub until: Option<String>,
    /// The store directory (see `journey report --help`).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STORE)]
    pub data: PathBuf,
    #[arg(long, value_enum, default_value_t = TrendFormat::Text)]
    pub format: TrendFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrendWhat {
    Domains,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricArg {
    /// Bounced deliveries (refused at once, or reported later) per delivery.
    Bounce,
    /// Opened deliveries per delivery.
    Open,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupArg {
    Day,
    Week,
    Month,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrendFormat {
    /// A table: one row per domain, one column per period.
    Text,
    /// One row per domain and period.
    Csv,
    Json,
}

/// The start of a period that ends at `until`: `30d`, `12w`, `3m` (calendar months), `1y`.
pub fn period_start(until: i64, period: &str) -> Result<i64, String> {
    let bad = || format!("'{period}' is not a period: write 30d, 12w, 3m (months) or 1y");
    let (num, unit) = period.split_at(period.len().saturating_sub(1));
    let n: u32 = num.parse().map_err(|_| bad())?;
    if n == 0 {
        return Err(bad());
    }
    let end = chrono::DateTime::from_timestamp_millis(until).ok_or_else(bad)?;
    let start = match unit {
        "d" => end.checked_sub_signed(chrono::Duration::days(n as i64)),
        "w" => end.checked_sub_signed(chrono::Duration::weeks(n as i64)),
        "m" => end.checked_sub_months(chrono::Months::new(n)),
        "y" => end.checked_sub_months(chrono::Months::new(12 * n)),
        _ => None,
    }
    .ok_or_else(bad)?;
    Ok(start.timestamp_millis())
}

pub fn run(args: TrendArgs) -> ExitCode {
    let TrendWhat::Domains = args.what;
    let until = match args.until.as_deref().map(parse_moment).transpose() {
        Ok(t) => t.unwrap_or_else(now),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let from = match period_start(until, &args.period) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let store = match open_store(&args.data) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let q = TrendQuery {
        metric: match args.metric {
            MetricArg::Bounce => Metric::Bounce,
            MetricArg::Open => Metric::Open,
        },
        from,
        until,
        group: match args.group {
            GroupArg::Day => Group::Day,
            GroupArg::Week => Group::Week,
            GroupArg::Month => Group::Month,
        },
        top: args.top,
        journey: args.journey,
    };
    let t = match trend(&store, &q) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let text = match args.format {
        TrendFormat::Text => render_text(&t),
        TrendFormat::Csv => render_csv(&t),
        TrendFormat::Json => serde_json::to_string_pretty(&t).expect("serializes") + "\n",
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::SUCCESS
}

fn pct(v: Option<f64>) -> String {
    v.map(|p| format!("{p:.1}%")).unwrap_or_else(|| "-".into())
}

pub fn render_text(t: &Trend) -> String {
    let metric = match t.metric {
        Metric::Bounce => "bounce rate",
        Metric::Open => "open rate",
    };
    let group = match t.group {
        Group::Day => "day",
        Group::Week => "week (from Monday)",
        Group::Month => "month",
    };
    let mut out = format!(
        "Trend for recipient domains: {metric} of email deliveries per {group}, {} to {}\n",
        fmt_time(t.from),
        fmt_time(t.until)
    );
    if t.domains.is_empty() {
        out += "no email deliveries in this period\n";
        return out;
    }
    let labels: Vec<String> = t
        .periods
        .iter()
        .map(|p| match t.group {
            Group::Month => p[..7].to_string(),
            _ => p[5..].to_string(),
        })
        .collect();
    let width = t
        .domains
        .iter()
        .map(|d| d.domain.len())
        .max()
        .unwrap_or(0)
        .max("all domains".len());
    out += &format!("{:<width$} {:>10} {:>7}", "domain", "deliveries", "rate");
    for l in &labels {
        out += &format!(" {l:>7}");
    }
    out += "\n";
    for d in t.domains.iter().chain(std::iter::once(&t.all)) {
        out += &format!(
            "{:<width$} {:>10} {:>7}",
            d.domain,
            d.deliveries,
            pct(d.rate)
        );
        for p in &d.points {
            out += &format!(" {:>7}", pct(p.rate));
        }
        out += "\n";
    }
    out
}

pub fn render_csv(t: &Trend) -> String {
    let mut out = String::from("domain,period,deliveries,hits,rate\n");
    for d in t.domains.iter().chain(std::iter::once(&t.all)) {
        for p in &d.points {
            out += &format!(
                "{},{},{},{},{}\n",
                d.domain,
                p.period,
                p.deliveries,
                p.hits,
                p.rate.map(|r| format!("{r:.2}")).unwrap_or_default()
            );
        }
    }
    out
}
