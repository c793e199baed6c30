//! `journey plan` and `journey deploy`: the journeys directory against what a running
//! daemon runs. `plan` shows per changed journey the steps added, removed and changed, and
//! how many contacts in flight each touches; `deploy` applies it.

use super::client::{Client, ServerArgs};
use crate::runtime::plan::bundle_dir;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    /// The journeys directory to send (journeys and templates/).
    #[arg(long, default_value = "journeys")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub server: ServerArgs,
}

pub fn run(args: PlanArgs, apply: bool) -> ExitCode {
    let bundle = match bundle_dir(&args.dir) {
        Ok(b) => b,
        Err(e) => return super::status::fail(format!("{}: {e}", args.dir.display())),
    };
    let body = serde_json::to_value(&bundle).expect("bundles serialize");
    let path = if apply { "/v1/deploy" } else { "/v1/plan" };
    match Client::new(&args.server).send("POST", path, &body) {
        Ok((_, v)) => {
            if let Some(w) = v["warnings"].as_str().filter(|w| !w.is_empty()) {
                eprint!("{w}");
            }
            print!("{}", v["text"].as_str().unwrap_or(""));
            if apply {
                let n = v["changed"].as_array().map_or(0, |a| a.len());
                eprintln!(
                    "deployed: {n} journey version{} changed, {} contact{} migrated",
                    if n == 1 { "" } else { "s" },
                    v["migrated"].as_u64().unwrap_or(0),
                    if v["migrated"].as_u64() == Some(1) {
                        ""
                    } else {
                        "s"
                    }
                );
                if let Some(note) = v["note"].as_str() {
                    eprintln!("warning: {note}");
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            match e.body.as_ref().and_then(|b| b.get("details")) {
                Some(d) if d.get("human").is_some() => {
                    eprint!("{}", d["human"].as_str().unwrap_or(""));
                    eprintln!("error: refused: the journeys have errors; the running versions keep running");
                }
                Some(d) if d.get("plan").is_some() => {
                    let plan: Result<crate::runtime::plan::Plan, _> =
                        serde_json::from_value(d["plan"].clone());
                    if let Ok(p) = plan {
                        print!("{}", crate::runtime::plan::render_plan(&p));
                    }
                    eprintln!("error: {e}");
                }
                _ => eprintln!("error: {e}"),
            }
            ExitCode::FAILURE
        }
    }
}
