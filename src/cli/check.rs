//! `journey check`: parse and compile, report every diagnostic of every file in one run.

use super::OutputFormat;
use crate::compile;
use crate::lang::{self, diagnostic};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Files or directories to check together [default: journeys/]
    pub paths: Vec<PathBuf>,
    /// How to print diagnostics.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
}

pub fn run(args: CheckArgs) -> ExitCode {
    let paths = super::default_paths(args.paths);
    let files = match lang::journey_files(&paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let loaded = lang::load_files(&files);
    // The scenarios beside the journeys say what their events carry (`entry.KEY`).
    let known = crate::scenario::entry_properties(&files);
    let compiled = compile::check_with(&loaded, &known);
    let errors = compiled.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = compiled.diagnostics.len() - errors;
    match args.format {
        OutputFormat::Json => print!(
            "{}",
            diagnostic::render_json(&loaded.sources, &compiled.diagnostics)
        ),
        OutputFormat::Github => print!(
            "{}",
            super::annotate::render_github(&loaded.sources, &compiled.diagnostics)
        ),
        OutputFormat::Sarif => print!(
            "{}",
            super::annotate::render_sarif(&loaded.sources, &compiled.diagnostics)
        ),
        OutputFormat::Human => {
            eprint!(
                "{}",
                diagnostic::render_human(
                    &loaded.sources,
                    &compiled.diagnostics,
                    super::use_color()
                )
            );
            let summary = match &compiled.program {
                Some(p) => {
                    format!(
                        "checked {} file{}: {} journey{}, {} segment{}, {} polic{}",
                        files.len(),
                        plural(files.len()),
                        p.journeys.len(),
                        plural(p.journeys.len()),
                        p.segments.len(),
                        plural(p.segments.len()),
                        p.policies.len(),
                        if p.policies.len() == 1 { "y" } else { "ies" }
                    ) + &if p.topics.is_empty() {
                        String::new()
                    } else {
                        format!(", {} topic{}", p.topics.len(), plural(p.topics.len()))
                    }
                }
                None => format!("checked {} file{}", files.len(), plural(files.len())),
            };
            eprintln!(
                "{summary}; {errors} error{}, {warnings} warning{}",
                plural(errors),
                plural(warnings)
            );
        }
    }
    if files.is_empty() {
        eprintln!(
            "error: no *.journey file found in {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return ExitCode::FAILURE;
    }
    if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
