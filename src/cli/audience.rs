//! `journey audience JOURNEY.MESSAGE --who openers|clickers|non-openers|active|inactive`:
//! the recipients of a message who did (or did not) engage with it, with what they did
//! (opens, clicks, which links how many times), as CSV or JSON lines: a list to retarget.

use super::client::path_segment;
use super::source::{ask, print, Failed, Source, SourceArgs};
use crate::report::{self, ListFormat, Recipient, Who};
use serde_json::json;
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
    #[command(flatten)]
    pub source: SourceArgs,
    /// How to print the list: CSV for spreadsheets and ad platforms, JSON lines for tools.
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
    print(answer(&args))
}

fn answer(args: &AudienceArgs) -> Result<String, Failed> {
    let Some((journey, message)) = args.message.split_once('.') else {
        return Err(Failed::usage(format!(
            "'{}' names no message: write JOURNEY.MESSAGE, e.g. welcome_promo.welcome",
            args.message
        )));
    };
    let who = Who::from(args.who);
    let people: Vec<Recipient> = match args.source.open()? {
        Source::Store(s) => report::audience(&s, journey, message, who, args.link.as_deref())?,
        Source::Daemon(c) => ask(
            &c,
            &format!(
                "/v1/journeys/{}/messages/{}/audience",
                path_segment(journey),
                path_segment(message)
            ),
            &json!({"who": who, "link": args.link, "format": "json"}),
        )?,
    };
    Ok(report::render_audience(
        &people,
        match args.format {
            AudienceFormat::Csv => ListFormat::Csv,
            AudienceFormat::Jsonl => ListFormat::Jsonl,
        },
    ))
}
