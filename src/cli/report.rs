//! `journey report JOURNEY [--message M]`: per message of a journey, how many recipients
//! received, opened and clicked it (unique contacts and total events), the clicks of each
//! link, and the same per recipient domain. Reads a store directory (the daemon's, stopped,
//! or a copy of it; or one written by `journey simulate --data`).

use crate::report::{self, Count, JourneyReport, MessageStats};
use crate::store::Store;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where `journey serve` keeps its store with the default `journey.yaml` (`data_dir: data`).
pub(crate) const DEFAULT_STORE: &str = "data/store";

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// The journey to report on.
    pub journey: String,
    /// Only this message.
    #[arg(long)]
    pub message: Option<String>,
    /// The store directory: the daemon's `DATA_DIR/store` (stop it first, or copy the
    /// directory), or one written by `journey simulate --data DIR`.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STORE)]
    pub data: PathBuf,
    /// `text` for people, `json` for tools (the daemon serves the same JSON).
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    Text,
    Json,
}

/// Opens an existing store for reading, with errors that say what to do.
pub(crate) fn open_store(dir: &Path) -> Result<Store, String> {
    let is_store = dir.join("conf").exists() || dir.join("db").exists();
    if !dir.is_dir() || !is_store {
        return Err(format!(
            "{}: no journey store here. Give the store directory with --data DIR: `journey serve` keeps it in DATA_DIR/store (data/store by default), `journey simulate SCENARIO --data DIR` writes one",
            dir.display()
        ));
    }
    Store::open(dir).map_err(|e| {
        let text = e.to_string();
        if text.contains("lock") || text.contains("WouldBlock") {
            format!(
                "{}: the store is in use (is `journey serve` running on it?). Stop the daemon, or copy the directory and give the copy with --data",
                dir.display()
            )
        } else {
            format!("{}: {text}", dir.display())
        }
    })
}

/// A moment given on the command line: RFC 3339, or a date (midnight UTC).
pub(crate) fn parse_moment(text: &str) -> Result<crate::engine::Millis, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_millis());
    }
    Err(format!(
        "'{text}' is not a time: write 2026-03-23 or 2026-03-23T09:00:00Z"
    ))
}

pub(crate) fn now() -> crate::engine::Millis {
    use crate::engine::Clock;
    crate::runtime::SystemClock.now()
}

pub fn run(args: ReportArgs) -> ExitCode {
    let store = match open_store(&args.data) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let r = match report::journey_report(&store, &args.journey, args.message.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let text = match args.format {
        ReportFormat::Json => serde_json::to_string_pretty(&r).expect("reports serialize") + "\n",
        ReportFormat::Text => render_text(&r),
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::SUCCESS
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
        "entered: {} contact{}\n",
        r.entered,
        if r.entered == 1 { "" } else { "s" }
    );
    for m in &r.messages {
        out += "\n";
        out += &render_message(m);
    }
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
