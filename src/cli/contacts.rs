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
                let mut problem = None;
                for (h, v) in headers.iter().zip(rec.iter()) {
                    let h = h.trim();
                    if h == "id" {
                        o.insert("id".into(), Value::String(id.to_string()));
                    } else if !v.is_empty() && !h.is_empty() {
                        let value = csv_value(h, v);
                        problem = problem.or_else(|| cell_problem(h, &value));
                        o.insert(h.to_string(), value);
                    }
                }
                match problem {
                    Some(why) => bad.push((line, why)),
                    None => good.push((line, o)),
                }
            }
        }
    }
    Ok((good, bad))
}

/// The separator of the values of a `lists` cell: `newsletter|vip`.
pub const LIST_SEPARATOR: char = '|';

/// Columns whose cells stay text whatever they look like (`phone: 5550100` is not a number).
const TEXT_COLUMNS: [&str; 5] = ["email", "phone", "timezone", "locale", "first_name"];

/// A CSV cell as a profile value: `true`/`false` (any case) are booleans, a number written
/// plainly (`42`, `-3.5`; not `007` or `+1`, which stay text) is a number, a `lists` cell
/// is a list split on `|`; everything else, and every cell of `TEXT_COLUMNS`, is text.
fn csv_value(column: &str, cell: &str) -> Value {
    let t = cell.trim();
    if column == "lists" {
        return Value::Array(
            t.split(LIST_SEPARATOR)
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(|x| Value::String(x.to_string()))
                .collect(),
        );
    }
    if TEXT_COLUMNS.contains(&column) {
        return Value::String(cell.to_string());
    }
    if t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false") {
        return Value::Bool(t.eq_ignore_ascii_case("true"));
    }
    let digits = t.strip_prefix('-').unwrap_or(t);
    let plain = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().filter(|b| *b == b'.').count() <= 1
        && !digits.starts_with('.')
        && !digits.ends_with('.')
        && !(digits.starts_with('0') && digits.len() > 1 && !digits.starts_with("0."));
    if plain {
        if let Ok(n) = t.parse::<i64>() {
            return Value::from(n);
        }
        if let Some(n) = t.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(cell.to_string())
}

/// Why a row's cell is refused, if it is: an `email` that is no address, a `timezone` that
/// is no IANA zone.
fn cell_problem(column: &str, v: &Value) -> Option<String> {
    match column {
        "email" => {
            let e = v.as_str().unwrap_or("").trim();
            let ok = e.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
                    && !e.contains(char::is_whitespace)
            });
            (!ok).then(|| format!("email: '{e}' is not an email address"))
        }
        "timezone" => crate::engine::model::timezone_problem(v),
        _ => None,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_cells_are_typed() {
        assert_eq!(csv_value("age", "42"), json!(42));
        assert_eq!(csv_value("score", "-3.5"), json!(-3.5));
        assert_eq!(csv_value("vip", "TRUE"), json!(true));
        assert_eq!(csv_value("unsubscribed", "false"), json!(false));
        assert_eq!(csv_value("zip", "00123"), json!("00123"));
        assert_eq!(csv_value("code", "+1"), json!("+1"));
        assert_eq!(csv_value("phone", "5550100"), json!("5550100"));
        assert_eq!(csv_value("version", "1.2.3"), json!("1.2.3"));
        assert_eq!(csv_value("city", "Rome"), json!("Rome"));
        assert_eq!(
            csv_value("lists", "newsletter| vip |"),
            json!(["newsletter", "vip"])
        );
    }

    #[test]
    fn csv_emails_and_time_zones_are_checked() {
        assert_eq!(cell_problem("email", &json!("ann@example.com")), None);
        for bad in [
            "ann",
            "ann@",
            "@x.com",
            "ann@localhost",
            "a b@x.com",
            "a@b@x.com",
        ] {
            assert!(cell_problem("email", &json!(bad)).is_some(), "{bad}");
        }
        assert_eq!(cell_problem("timezone", &json!("Europe/Rome")), None);
        assert!(cell_problem("timezone", &json!("Mars/Olympus")).is_some());
    }
}
