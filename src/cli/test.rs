//! `journey test`: run every scenario, report each failed expectation as a diff.

use crate::scenario;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// Scenario files, or directories to search for *.scenario.yaml [default: journeys/]
    pub paths: Vec<PathBuf>,
    /// Run each scenario on PostgreSQL instead of a temporary sled store: a schema of its
    /// own in this database (postgres://user@host:port/db), removed afterwards.
    #[arg(long, env = "JOURNEY_STORE_URL", value_name = "URL")]
    pub store_url: Option<String>,
}

pub fn run(args: TestArgs) -> ExitCode {
    let paths = super::default_paths(args.paths);
    let files = match scenario::scenario_files(&paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if files.is_empty() {
        eprintln!("error: no *.scenario.yaml found");
        return ExitCode::FAILURE;
    }
    let (mut passed, mut failed) = (0, 0);
    for f in &files {
        let store = match &args.store_url {
            Some(url) => scenario::ScenarioStore::Postgres(url),
            None => scenario::ScenarioStore::Temporary,
        };
        match scenario::run_in(f, store) {
            Ok(outcome) if outcome.failures.is_empty() => {
                passed += 1;
                println!(
                    "PASS {} ({} expectations)",
                    f.display(),
                    outcome.expectations
                );
            }
            Ok(outcome) => {
                failed += 1;
                println!(
                    "FAIL {} ({} of {} expectations failed)",
                    f.display(),
                    outcome.failures.len(),
                    outcome.expectations
                );
                for x in &outcome.failures {
                    println!("  {}: {}", x.contact, x.what);
                    println!("    - expected: {}", x.expected);
                    println!("    + actual:   {}", x.actual);
                }
            }
            Err(e) => {
                failed += 1;
                println!("ERROR {e}");
            }
        }
    }
    println!("scenarios: {passed} passed, {failed} failed");
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
