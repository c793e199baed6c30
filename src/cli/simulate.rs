//! `journey simulate`: the timeline of one scenario, line by line or as JSON.

use crate::runtime::{describe, fmt_time};
use crate::scenario;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// The scenario file to replay.
    pub scenario: PathBuf,
    /// `text` for people, `json` for one JSON object per line.
    #[arg(long, value_enum, default_value_t = TimelineFormat::Text)]
    pub format: TimelineFormat,
    /// Run on a store in this new directory and keep it, to read with `journey report`,
    /// `audience`, `segment` and `trend` (by default the store is temporary). A
    /// `postgres://…` URL of an empty database keeps it there instead.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimelineFormat {
    Text,
    Json,
}

pub fn run(args: SimulateArgs) -> ExitCode {
    match scenario::run_on(&args.scenario, args.data.as_deref()) {
        Ok(outcome) => {
            let mut out = std::io::stdout().lock();
            for t in &outcome.timeline {
                let written = match args.format {
                    TimelineFormat::Json => {
                        // Times as RFC 3339, like every other output.
                        let mut v = serde_json::to_value(t).expect("timeline serializes");
                        v["at"] = fmt_time(t.at).into();
                        writeln!(out, "{v}")
                    }
                    TimelineFormat::Text => writeln!(
                        out,
                        "{}  {:<12} {:<22} {}",
                        fmt_time(t.at),
                        t.contact,
                        t.journey,
                        describe(&t.happening)
                    ),
                };
                // A closed pipe (`journey simulate … | head`) is the reader's choice, not an error.
                if written.is_err() {
                    break;
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
