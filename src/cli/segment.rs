//! `journey segment NAME --count | --list`: the contacts of a segment. The running daemon
//! evaluates the segments it runs; with `--data`, the definition comes from the journey
//! files and is evaluated over every contact of that store.

use super::client::{path_segment, Client};
use super::source::{ask, now, open_store, print, Failed, SourceArgs};
use crate::compile::{self, ir::Program};
use crate::lang::{self, diagnostic};
use crate::report::{self, SegmentAnswer};
use serde_json::json;
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
    /// With --data: journey files or directories that define the segment [default: journeys/]
    #[arg(long = "journeys", value_name = "PATH", requires = "data")]
    pub journeys: Vec<PathBuf>,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Evaluate at this moment instead of now (2026-03-23 or 2026-03-23T09:00:00Z).
    #[arg(long)]
    pub at: Option<String>,
    /// Read the membership the daemon keeps instead of evaluating the definition.
    #[arg(long, conflicts_with = "at")]
    pub stored: bool,
}

pub fn run(args: SegmentArgs) -> ExitCode {
    print(answer(&args).map(|a| render(&a)))
}

/// The segment's journey files, compiled (their diagnostics printed if they have errors).
fn program(paths: &[PathBuf]) -> Result<Program, Failed> {
    let files = lang::journey_files(&super::default_paths(paths.to_vec()))
        .map_err(|e| Failed::usage(e.to_string()))?;
    let loaded = lang::load_files(&files);
    let compiled = compile::compile(&loaded);
    compiled.program.ok_or_else(|| {
        eprint!(
            "{}",
            diagnostic::render_human(&loaded.sources, &compiled.diagnostics, super::use_color())
        );
        Failed::other("the journey files have errors")
    })
}

fn answer(args: &SegmentArgs) -> Result<SegmentAnswer, Failed> {
    let Some(dir) = &args.source.data else {
        let query = json!({"list": args.list, "at": args.at, "stored": args.stored});
        let path = format!("/v1/segments/{}", path_segment(&args.name));
        return ask(&Client::new(&args.source.server), &path, &query);
    };
    let at = report::segment_moment(args.at.as_deref(), args.stored, now())?;
    let program = program(&args.journeys)?;
    report::segment_of(&program, &args.name)?;
    let store = open_store(dir).map_err(Failed::usage)?;
    Ok(report::segment(
        &store, &program, &args.name, at, args.list,
    )?)
}

fn render(a: &SegmentAnswer) -> String {
    match &a.members {
        Some(ids) => ids.iter().map(|m| format!("{m}\n")).collect(),
        None => format!("{}\n", a.count),
    }
}
