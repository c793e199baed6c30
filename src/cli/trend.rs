//! `journey trend domains --metric bounce|open --period 3m --group week --top 10`: the
//! trend for recipient domains. For the domains mailed most, the bounce or open rate of
//! email deliveries period by period, beside all domains together: a provider that starts
//! filtering shows as one domain whose open rate drops (or bounces climb) while the others
//! hold.

use super::source::{ask, now, print, Failed, Source, SourceArgs};
use crate::report::{trend, Group, Metric, Trend, TrendParams};
use crate::runtime::fmt_time;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct TrendArgs {
    /// What to trend: `domains` (recipient domains of email deliveries).
    #[arg(value_enum)]
    pub what: TrendWhat,
    #[arg(long, value_enum, default_value_t = MetricArg::Bounce)]
    pub metric: MetricArg,
    /// How far back from --until: 30d, 12w, 3m (months), 1y.
    #[arg(long, default_value = TrendParams::DEFAULT_PERIOD)]
    pub period: String,
    /// The length of each point.
    #[arg(long, value_enum, default_value_t = GroupArg::Week)]
    pub group: GroupArg,
    /// How many domains: those with the most deliveries in the period.
    #[arg(long, default_value_t = TrendParams::DEFAULT_TOP)]
    pub top: usize,
    /// Only the deliveries of this journey.
    #[arg(long)]
    pub journey: Option<String>,
    /// The end of the period (exclusive): 2026-03-23 or an RFC 3339 time [default: now].
    #[arg(long)]
    pub until: Option<String>,
    #[command(flatten)]
    pub source: SourceArgs,
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

pub fn run(args: TrendArgs) -> ExitCode {
    print(answer(&args))
}

fn answer(args: &TrendArgs) -> Result<String, Failed> {
    let TrendWhat::Domains = args.what;
    let params = TrendParams {
        metric: match args.metric {
            MetricArg::Bounce => Metric::Bounce,
            MetricArg::Open => Metric::Open,
        },
        period: args.period.clone(),
        group: match args.group {
            GroupArg::Day => Group::Day,
            GroupArg::Week => Group::Week,
            GroupArg::Month => Group::Month,
        },
        top: args.top,
        journey: args.journey.clone(),
        until: args.until.clone(),
    };
    // Checked here first, so that a bad question is answered alike with or without a daemon.
    let q = params.query(now())?;
    let t: Trend = match args.source.open()? {
        Source::Store(s) => trend(&s, &q).map_err(crate::report::ReportError::from)?,
        Source::Daemon(c) => ask(&c, "/v1/trend/domains", &params)?,
    };
    Ok(match args.format {
        TrendFormat::Text => render_text(&t),
        TrendFormat::Csv => render_csv(&t),
        TrendFormat::Json => serde_json::to_string_pretty(&t).expect("serializes") + "\n",
    })
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
    crate::report::lists::to_csv(
        ["domain", "period", "deliveries", "hits", "rate"],
        t.domains
            .iter()
            .chain(std::iter::once(&t.all))
            .flat_map(|d| {
                d.points.iter().map(move |p| {
                    [
                        d.domain.clone(),
                        p.period.clone(),
                        p.deliveries.to_string(),
                        p.hits.to_string(),
                        p.rate.map(|r| format!("{r:.2}")).unwrap_or_default(),
                    ]
                })
            }),
    )
}
