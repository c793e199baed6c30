//! `journey graph`: the state machine of a journey as a picture to render or paste.

use crate::compile::{self, graph};
use crate::lang::{self, diagnostic};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct GraphArgs {
    /// The journey file. Sibling *.journey files are loaded too, for shared segments and policies.
    pub file: PathBuf,
    /// Which journey of the file (needed when it holds several).
    #[arg(long)]
    pub journey: Option<String>,
    /// Mermaid (paste into a README or GitHub) or dot (render with Graphviz).
    #[arg(long, value_enum, default_value_t = graph::GraphFormat::Mermaid)]
    pub format: graph::GraphFormat,
}

pub fn run(args: GraphArgs) -> ExitCode {
    if !args.file.is_file() {
        eprintln!("error: {}: no such file", args.file.display());
        return ExitCode::from(2);
    }
    let dir = args
        .file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut files = lang::journey_files(&[dir]).unwrap_or_default();
    let canonical = args.file.canonicalize().ok();
    files.retain(|f| f.canonicalize().ok() != canonical);
    files.insert(0, args.file.clone());
    let loaded = lang::load_files(&files);
    let compiled = compile::compile(&loaded);
    let Some(program) = compiled.program else {
        eprint!(
            "{}",
            diagnostic::render_human(&loaded.sources, &compiled.diagnostics, super::use_color())
        );
        return ExitCode::FAILURE;
    };
    // The journeys defined in the named file, in file order.
    let own: Vec<String> = loaded
        .files
        .iter()
        .find(|(id, _)| *id == 0)
        .map(|(_, f)| {
            f.definitions
                .iter()
                .filter_map(|d| match d {
                    lang::ast::Definition::Journey(j) => Some(j.name.name.clone()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let name = match (&args.journey, own.as_slice()) {
        (Some(n), _) => n.clone(),
        (None, [one]) => one.clone(),
        (None, []) => {
            eprintln!("error: {} defines no journey", args.file.display());
            return ExitCode::FAILURE;
        }
        (None, many) => {
            eprintln!(
                "error: {} defines several journeys; choose one with --journey: {}",
                args.file.display(),
                many.join(", ")
            );
            return ExitCode::FAILURE;
        }
    };
    match program.journeys.get(&name) {
        Some(j) => {
            print!("{}", graph::render(j, args.format));
            ExitCode::SUCCESS
        }
        None => {
            eprintln!(
                "error: no journey named '{name}'; this file defines: {}",
                own.join(", ")
            );
            ExitCode::FAILURE
        }
    }
}
