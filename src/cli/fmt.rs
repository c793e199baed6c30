//! `journey fmt`: rewrite files in the canonical layout, or with `--check` only say which
//! would change. A file that does not parse is reported and left untouched.

use crate::lang::{self, diagnostic, fmt::format_source};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct FmtArgs {
    /// Files or directories to format [default: journeys/]
    pub paths: Vec<PathBuf>,
    /// Change nothing; exit 1 if any file is not in the canonical layout.
    #[arg(long)]
    pub check: bool,
}

pub fn run(args: FmtArgs) -> ExitCode {
    let paths = super::default_paths(args.paths);
    let files = match lang::journey_files(&paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut failed = false;
    let mut changed = 0;
    for path in &files {
        let mut loaded = lang::Loaded::default();
        lang::add_file(&mut loaded, path);
        if loaded.has_errors() {
            eprint!(
                "{}",
                diagnostic::render_human(&loaded.sources, &loaded.diagnostics, super::use_color())
            );
            failed = true;
            continue;
        }
        let Some((id, ast)) = loaded.files.first() else {
            continue;
        };
        let text = &loaded.sources.get(*id).text;
        let formatted = format_source(text, ast);
        if &formatted == text {
            continue;
        }
        changed += 1;
        if args.check {
            println!("would reformat {}", path.display());
            failed = true;
        } else if let Err(e) = std::fs::write(path, formatted) {
            eprintln!("error: cannot write {}: {e}", path.display());
            failed = true;
        } else {
            println!("formatted {}", path.display());
        }
    }
    if !args.check {
        eprintln!(
            "{} file{} checked, {changed} reformatted",
            files.len(),
            if files.len() == 1 { "" } else { "s" }
        );
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
