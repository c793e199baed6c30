//! `journey segment NAME --count | --list`: the contacts of a segment, by evaluating its
//! definition (from the journey files) over every contact of a store.

use super::report::{now, open_store, parse_moment, DEFAULT_STORE};
use crate::compile;
use crate::lang::{self, diagnostic};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["count", "list"])))]
pub struct SegmentArgs {
    /// The segment, as defined in the journey files.
    pub name: String,
    /// Print how many contacts are in it.
    #[arg(long)]
    pub count: bool,
    /// Print its contacts, one id a line.
    #[arg(long)]
    pub list: bool,
    /// Journey files or directories that define the segment [default: journeys/]
    #[arg(long = "journeys", value_name = "PATH")]
    pub journeys: Vec<PathBuf>,
    /// The store directory (see `journey report --help`).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STORE)]
    pub data: PathBuf,
    /// Evaluate at this moment instead of now (2026-03-23 or 2026-03-23T09:00:00Z).
    #[arg(long)]
    pub at: Option<String>,
    /// Read the membership the daemon keeps instead of evaluating the definition.
    #[arg(long)]
    pub stored: bool,
}

pub fn run(args: SegmentArgs) -> ExitCode {
    let at = match args.at.as_deref().map(parse_moment).transpose() {
        Ok(t) => t.unwrap_or_else(now),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let paths = super::default_paths(args.journeys);
    let files = match lang::journey_files(&paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let loaded = lang::load_files(&files);
    let compiled = compile::compile(&loaded);
    let Some(program) = compiled.program else {
        eprint!(
            "{}",
            diagnostic::render_human(&loaded.sources, &compiled.diagnostics, super::use_color())
        );
        eprintln!("error: the journey files have errors");
        return ExitCode::FAILURE;
    };
    if !program.segments.contains_key(&args.name) {
        let names: Vec<&str> = program.segments.keys().map(String::as_str).collect();
        let hint = names
            .iter()
            .map(|k| (strsim::jaro_winkler(&args.name, k), *k))
            .filter(|(s, _)| *s > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, k)| format!(" (did you mean '{k}'?)"))
            .unwrap_or_default();
        eprintln!(
            "error: no segment '{}'{hint}; segments: {}",
            args.name,
            names.join(", ")
        );
        return ExitCode::FAILURE;
    }
    let store = match open_store(&args.data) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let members: Result<Vec<String>, _> = if args.stored {
        store.members(&args.name).collect()
    } else {
        crate::report::segment_members(&store, &program, &args.name, at)
    };
    let members = match members {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    if args.count {
        let _ = writeln!(out, "{}", members.len());
    } else {
        for m in members {
            if writeln!(out, "{m}").is_err() {
                break;
            }
        }
    }
    ExitCode::SUCCESS
}
