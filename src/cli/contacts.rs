//! `journey contacts import FILE.csv|FILE.jsonl`: upserts contacts in batches through a
//! running daemon. Bad rows are reported with their line numbers and skipped; good rows are
//! kept. Upserts are idempotent, so running an import again is safe. `show`, `export` and
//! `delete` (erasure) go through the daemon too.

use super::client::{path_segment, Client, ServerArgs};
use super::status::fail;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct ContactsArgs {
    #[command(subcommand)]
    pub action: ContactsAction,
}

#[derive(clap::Subcommand, Debug)]
pub enum ContactsAction {
    /// Import contacts: CSV with a header row and an `id` column (other columns become
    /// profile fields; empty cells are left out), or JSON lines with an `id` each.
    Import {
        /// The file: a `.csv` (a header row with an `id` column); any other name is read as
        /// JSON lines (one object with an `id` a line).
        file: PathBuf,
        /// Contacts per request.
        #[arg(long, default_value_t = 500)]
        batch: usize,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show a contact: profile, journeys and current steps, recent events.
    Show {
        /// The contact's id.
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Print everything stored about a contact as one JSON document (GDPR art. 15; admin
    /// token).
    Export {
        /// The contact's id.
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Erase a contact (GDPR art. 17; admin token): its profile, events, journeys, timers,
    /// pending sends, segment memberships and short links, at once. Only a hashed record of
    /// its addresses' consent (unsubscribed, bounced, complained) is kept.
    Delete {
        /// The contact's id.
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// (line number, contact object) for good rows; (line number, reason) for bad ones.
type Rows = (Vec<(usize, Map<String, Value>)>, Vec<(usize, String)>);

fn read_jsonl(text: &str) -> Rows {
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(o)) => match o.get("id") {
                Some(Value::String(s)) if !s.trim().is_empty() => good.push((n, o)),
                Some(Value::Number(_)) => good.push((n, o)),
                _ => bad.push((n, "no \"id\"".to_string())),
            },
            Ok(_) => bad.push((n, "not a JSON object".into())),
            Err(e) => bad.push((n, format!("not JSON: {e}"))),
        }
    }
    (good, bad)
}

fn read_csv(path: &PathBuf) -> Result<Rows, String> {
    let mut r = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let headers = r
        .headers()
        .map_err(|e| format!("{}: header row: {e}", path.display()))?
        .clone();
    let Some(id_col) = headers.iter().position(|h| h.trim() == "id") else {
        return Err(format!(
            "{}: the header row has no `id` column",
            path.display()
        ));
    };
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for rec in r.records() {
        match rec {
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                bad.push((line, e.to_string()));
            }
            Ok(rec) => {
                let line = rec.position().map(|p| p.line() as usize).unwrap_or(0);
                let id = rec.get(id_col).unwrap_or("").trim();
                if id.is_empty() {
                    bad.push((line, "empty id".into()));
                    continue;
                }
                let mut o = Map::new();
                for (h, v) in headers.iter().zip(rec.iter()) {
                    let h = h.trim();
                    if h == "id" {
                        o.insert("id".into(), Value::String(id.to_string()));
                    } else if !v.is_empty() && !h.is_empty() {
                        o.insert(h.to_string(), Value::String(v.to_string()));
                    }
                }
                good.push((line, o));
            }
        }
    }
    Ok((good, bad))
}

pub fn run(args: ContactsArgs) -> ExitCode {
    match args.action {
        ContactsAction::Export { id, server } => {
            match Client::new(&server).get(&format!("/v1/contacts/{}/export", path_segment(&id))) {
                Ok(v) => {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        ContactsAction::Delete { id, server } => {
            match Client::new(&server).delete(&format!("/v1/contacts/{}", path_segment(&id))) {
                Ok(v) => {
                    eprintln!(
                        "contact {id} erased ({} events, {} instances, {} pending sends; {} suppression records kept)",
                        v["removed"]["events"], v["removed"]["instances"], v["removed"]["pending_sends"], v["removed"]["suppression_records"]
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        ContactsAction::Show { id, server } => {
            match Client::new(&server).get(&format!("/v1/contacts/{id}")) {
                Ok(v) => {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                    for w in v["warnings"].as_array().into_iter().flatten() {
                        eprintln!("warning: {}", w.as_str().unwrap_or_default());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        ContactsAction::Import {
            file,
            batch,
            server,
        } => import(file, batch.max(1), server),
    }
}

fn import(file: PathBuf, batch: usize, server: ServerArgs) -> ExitCode {
    let is_csv = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let (good, mut bad) = if is_csv {
        match read_csv(&file) {
            Ok(r) => r,
            Err(e) => return fail(e),
        }
    } else {
        match std::fs::read_to_string(&file) {
            Ok(t) => read_jsonl(&t),
            Err(e) => return fail(format!("{}: {e}", file.display())),
        }
    };
    let client = Client::new(&server);
    let bar = indicatif::ProgressBar::new(good.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} contacts ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut imported = 0usize;
    for chunk in good.chunks(batch) {
        let body = Value::Array(
            chunk
                .iter()
                .map(|(_, o)| Value::Object(o.clone()))
                .collect(),
        );
        let results = match client.send("POST", "/v1/contacts", &body) {
            Ok((_, v)) => v,
            Err(e)
                if e.status == Some(400)
                    && e.body.as_ref().is_some_and(|b| b.get("results").is_some()) =>
            {
                e.body.unwrap_or_default()
            }
            Err(e) => {
                bar.abandon();
                eprintln!(
                    "error: {e}\nimported {imported} contacts before the error; running the import again is safe"
                );
                return ExitCode::FAILURE;
            }
        };
        for r in results["results"].as_array().into_iter().flatten() {
            let i = r["index"].as_u64().unwrap_or(0) as usize;
            if r["ok"].as_bool() == Some(true) {
                imported += 1;
            } else if let Some((line, _)) = chunk.get(i) {
                bad.push((*line, r["error"].as_str().unwrap_or("refused").to_string()));
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    bad.sort();
    for (line, why) in &bad {
        eprintln!("{}:{line}: {why}", file.display());
    }
    eprintln!(
        "imported {imported} contact{}; {} bad row{}",
        if imported == 1 { "" } else { "s" },
        bad.len(),
        if bad.len() == 1 { "" } else { "s" }
    );
    if bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
