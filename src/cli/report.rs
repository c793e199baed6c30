//! `journey report JOURNEY [--message M]`: per message of a journey, how many recipients
//! received, opened and clicked it (unique contacts and total events), the clicks of each
//! link, and the same per recipient domain. Asks the running daemon, or reads a store
//! directory with `--data` (a stopped daemon's, a copy of it, or one written by
//! `journey simulate --data`).

use super::client::path_segment;
use super::source::{ask, print, Failed, Source, SourceArgs};
use crate::report::{self, Count, JourneyReport, MessageStats};
use serde_json::json;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// The journey to report on.
    pub journey: String,
    /// Only this message.
    #[arg(long)]
    pub message: Option<String>,
    #[command(flatten)]
    pub source: SourceArgs,
    /// `text` for people, `json` for tools (the daemon serves the same JSON).
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    Text,
    Json,
}

pub fn run(args: ReportArgs) -> ExitCode {
    print(answer(&args))
}

fn answer(args: &ReportArgs) -> Result<String, Failed> {
    let message = args.message.as_deref();
    let r: JourneyReport = match args.source.open()? {
        Source::Store(s) => report::journey_report(&s, &args.journey, message)?,
        Source::Daemon(c) => ask(
            &c,
            &format!("/v1/journeys/{}/report", path_segment(&args.journey)),
            &json!({ "message": message }),
        )?,
    };
    Ok(match args.format {
        ReportFormat::Json => {
            serde_json::to_string_pretty(&r).expect("reports serialize")
                + "
"
        }
        ReportFormat::Text => render_text(&r),
    })
}

fn pct(v: Option<f64>) -> String {
    v.map(|p| format!("{p:.1}%")).unwrap_or_else(|| "-".into())
}

/// The report for people: one block per message.
pub fn render_text(r: &JourneyReport) -> String {
    let mut out = String::new();
    let title = r
        .title
        .as_deref()
        .map(|t| format!(": {t}"))
        .unwrap_or_default();
    let label = r
        .label
        .as_deref()
        .map(|l| format!(" (label \"{l}\")"))
        .unwrap_or_default();
    out += &format!("journey {}{title}{label}\n", r.journey);
    out += &format!(
        "entered: {} contact{}",
        r.entered,
        if r.entered == 1 { "" } else { "s" }
    );
    if r.instances != r.entered {
        out += &format!(
            " ({} instance{})",
            r.instances,
            if r.instances == 1 { "" } else { "s" }
        );
    }
    out += "\n";
    if let Some(h) = &r.holdout {
        out += &render_holdout(h);
    }
    for x in &r.experiments {
        out += &render_experiment(x);
    }
    for m in &r.messages {
        out += "\n";
        out += &render_message(m);
    }
    out
}

fn render_experiment(x: &report::ExperimentReport) -> String {
    let mut out = format!("\nexperiment {} by {}\n", x.experiment, x.metric);
    out += &format!(
        "  {:<18} {:>8} {:>9} {:>8}\n",
        "arm", "contacts", x.metric, "rate"
    );
    for a in &x.arms {
        out += &format!(
            "  {:<18} {:>8} {:>9} {:>7.1}%\n",
            a.arm, a.contacts, a.successes, a.rate
        );
    }
    match (&x.winner, x.chosen_at) {
        (Some(w), Some(at)) => {
            let rates: Vec<String> = x
                .rates_at_choice
                .iter()
                .map(|a| format!("{} {:.1}% of {}", a.arm, a.rate, a.contacts))
                .collect();
            out += &format!(
                "  winner: {w} (chosen {} for the {}% winner share; rates then: {})\n",
                crate::runtime::fmt_time(at),
                x.winner_share,
                rates.join(", ")
            );
        }
        _ => {
            out += &format!(
                "  winner: not chosen yet ({}% winner share)\n",
                x.winner_share
            )
        }
    }
    out
}

fn render_holdout(h: &report::HoldoutReport) -> String {
    let pct = |r: Option<f64>| r.map(|r| format!("{r:.1}%")).unwrap_or_else(|| "-".into());
    let mut out = format!("\nholdout {}%: goal conversion\n", h.share);
    out += &format!(
        "  {:<18} {:>8} {:>9} {:>8}\n",
        "", "contacts", "converted", "rate"
    );
    for (name, c) in [("holdout", h.holdout), ("treated", h.treated)] {
        out += &format!(
            "  {:<18} {:>8} {:>9} {:>8}\n",
            name,
            c.contacts,
            c.converted,
            pct(c.rate)
        );
    }
    out += &format!(
        "  lift: {} absolute, {} relative\n",
        h.absolute_lift
            .map(|a| format!("{a:+.1} points"))
            .unwrap_or_else(|| "-".into()),
        h.relative_lift
            .map(|r| format!("{r:+.1}%"))
            .unwrap_or_else(|| "-".into())
    );
    out
}

fn render_message(m: &MessageStats) -> String {
    let mut out = String::new();
    let channel = m
        .channel
        .as_deref()
        .map(|c| format!(" ({c})"))
        .unwrap_or_default();
    let subject = m
        .subject
        .as_deref()
        .map(|s| format!(" \"{s}\""))
        .unwrap_or_default();
    out += &format!("message {}{channel}{subject}\n", m.message);
    out += &format!(
        "  {:<18} {:>8} {:>8} {:>8}\n",
        "", "contacts", "events", "rate"
    );
    let line = |name: &str, c: Count, rate: Option<f64>| {
        format!(
            "  {:<18} {:>8} {:>8} {:>8}\n",
            name,
            c.unique,
            c.total,
            rate.map(|r| format!("{r:.1}%")).unwrap_or_default()
        )
        .trim_end()
        .to_string()
            + "\n"
    };
    out += &line("received", m.received, None);
    out += &line("opened", m.opened, MessageStats::rate(m.opened, m.received));
    out += &line(
        "clicked",
        m.clicked,
        MessageStats::rate(m.clicked, m.received),
    );
    out += &line(
        "bounced",
        m.bounced,
        MessageStats::rate(m.bounced, m.received),
    );
    out += &line(
        "unsubscribed",
        m.unsubscribed,
        MessageStats::rate(m.unsubscribed, m.received),
    );
    if m.failed.total > 0 {
        out += &line("failed", m.failed, None);
    }
    if m.capped.total > 0 {
        out += &line("held or skipped", m.capped, None);
    }
    if !m.links.is_empty() {
        out += &format!("  {:<18} {:>8} {:>8}\n", "link", "contacts", "clicks");
        for l in &m.links {
            out += format!(
                "    {:<16} {:>8} {:>8}  {}",
                l.link,
                l.clicks.unique,
                l.clicks.total,
                l.url.as_deref().unwrap_or("")
            )
            .trim_end();
            out += "\n";
        }
    }
    if !m.domains.is_empty() {
        out += &format!(
            "  {:<18} {:>8} {:>8} {:>8} {:>8} {:>9}\n",
            "recipient domain", "received", "opened", "clicked", "bounced", "open rate"
        );
        for d in &m.domains {
            out += &format!(
                "    {:<16} {:>8} {:>8} {:>8} {:>8} {:>9}\n",
                d.domain,
                d.received.unique,
                d.opened.unique,
                d.clicked.unique,
                d.bounced.unique,
                pct(MessageStats::rate(d.opened, d.received))
            );
        }
    }
    out
}
