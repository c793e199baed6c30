//! `journey audience JOURNEY.MESSAGE --who openers|clickers|non-openers|active|inactive`:
//! the recipients of a message who did (or did not) engage with it, with what they did
//! (opens, clicks, which links how many times), as CSV or JSON lines: a list to retarget.

use super::report::{open_store, DEFAULT_STORE};
use crate::report::{self, Recipient, Who};
use crate::runtime::fmt_time;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct AudienceArgs {
    /// The message, as JOURNEY.MESSAGE.
    pub message: String,
    /// Which recipients.
    #[arg(long, value_enum)]
    pub who: WhoArg,
    /// With `--who clickers`: only those who clicked this link.
    #[arg(long)]
    pub link: Option<String>,
    /// The store directory (see `journey report --help`).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STORE)]
    pub data: PathBuf,
    #[arg(long, value_enum, default_value_t = AudienceFormat::Csv)]
    pub format: AudienceFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhoArg {
    /// Opened the message at least once.
    Openers,
    /// Clicked a link of it (the one given with --link) at least once.
    Clickers,
    /// Received it (it did not bounce) and never opened it.
    NonOpeners,
    /// Opened it or clicked it.
    Active,
    /// Received it (it did not bounce), and neither opened nor clicked it.
    Inactive,
    /// Everyone it was delivered to.
    Recipients,
}

impl From<WhoArg> for Who {
    fn from(w: WhoArg) -> Who {
        match w {
            WhoArg::Openers => Who::Openers,
            WhoArg::Clickers => Who::Clickers,
            WhoArg::NonOpeners => Who::NonOpeners,
            WhoArg::Active => Who::Active,
            WhoArg::Inactive => Who::Inactive,
            WhoArg::Recipients => Who::Recipients,
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudienceFormat {
    /// A header line, then one contact a line.
    Csv,
    /// One JSON object a line.
    Jsonl,
}

pub fn run(args: AudienceArgs) -> ExitCode {
    let Some((journey, message)) = args.message.split_once('.') else {
        eprintln!(
            "error: '{}' names no message: write JOURNEY.MESSAGE, e.g. welcome_promo.welcome",
            args.message
        );
        return ExitCode::from(2);
    };
    if args.link.is_some() && args.who != WhoArg::Clickers {
        eprintln!("error: --link goes with --who clickers");
        return ExitCode::from(2);
    }
    let store = match open_store(&args.data) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let people = match report::audience(
        &store,
        journey,
        message,
        args.who.into(),
        args.link.as_deref(),
    ) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let text = render(&people, args.format);
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::SUCCESS
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn links(r: &Recipient) -> String {
    r.links
        .iter()
        .map(|(l, n)| format!("{l}:{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn render(people: &[Recipient], format: AudienceFormat) -> String {
    let t = |v: Option<i64>| v.map(fmt_time).unwrap_or_default();
    let mut out = String::new();
    match format {
        AudienceFormat::Csv => {
            out += "contact,email,received,opens,clicks,links,first_opened,first_clicked\n";
            for r in people {
                out += &format!(
                    "{},{},{},{},{},{},{},{}\n",
                    csv_field(&r.contact),
                    csv_field(r.email.as_deref().unwrap_or("")),
                    r.received,
                    r.opens,
                    r.clicks,
                    csv_field(&links(r)),
                    t(r.first_opened),
                    t(r.first_clicked)
                );
            }
        }
        AudienceFormat::Jsonl => {
            for r in people {
                let v = serde_json::json!({
                    "contact": r.contact,
                    "email": r.email,
                    "received": r.received,
                    "opens": r.opens,
                    "clicks": r.clicks,
                    "links": r.links,
                    "first_opened": r.first_opened.map(fmt_time),
                    "first_clicked": r.first_clicked.map(fmt_time),
                });
                out += &v.to_string();
                out += "\n";
            }
        }
    }
    out
}
