//! `journey migrate-store`: copies a sled store into PostgreSQL, the way to move a daemon
//! from the embedded store to a database.

use crate::store::Store;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct MigrateStoreArgs {
    /// The sled store to copy: DATA_DIR/store of a stopped daemon (data/store by default).
    /// The API tokens in DATA_DIR/tokens.json are copied too.
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// The PostgreSQL database to copy into (postgres://user@host:port/db); its schema is
    /// created if needed, and it must hold no journey data yet.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Keys per transaction.
    #[arg(long, default_value_t = 2_000)]
    pub batch: usize,
}

pub fn run(args: MigrateStoreArgs) -> ExitCode {
    let fail = |m: String| {
        eprintln!("error: {m}");
        ExitCode::FAILURE
    };
    let from = match super::source::open_store(&args.from) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let to = match Store::connect(&args.to) {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    let total: u64 = match from.key_counts() {
        Ok(c) => c.values().sum(),
        Err(e) => return fail(format!("{}: {e}", args.from.display())),
    };
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} keys ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = from.copy_into(&to, args.batch, |n| bar.set_position(n));
    bar.finish_and_clear();
    match report {
        Ok(r) => {
            eprintln!(
                "copied {} keys into {}; the counts of each kind match:",
                r.total(),
                args.to.split('@').next_back().unwrap_or(&args.to)
            );
            for (kind, n) in &r.keys {
                eprintln!("  {:<22} {n}", kind_name(*kind));
            }
            // The API tokens of the daemon beside the store (DATA_DIR/tokens.json) move too:
            // on PostgreSQL they are kept in the database.
            if let Some(data_dir) = args.from.parent() {
                match crate::store::credentials::copy_file_tokens(data_dir, &to) {
                    Ok(0) => {}
                    Ok(n) => eprintln!(
                        "copied {n} API tokens from {} into the database",
                        crate::store::credentials::tokens_path(data_dir).display()
                    ),
                    Err(e) => return fail(format!("the API tokens: {e}")),
                }
            }
            eprintln!("start the daemon with `store: {{ url: … }}` in journey.yaml (or JOURNEY_STORE_URL)");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// What a kind of key holds, in words (the tables of the PostgreSQL store).
fn kind_name(kind: char) -> &'static str {
    match kind {
        'c' => "contacts",
        'd' => "event ids",
        'e' => "events",
        'g' => "segment definitions",
        'h' => "journey heads",
        'i' => "instances",
        'l' => "short links",
        'n' => "segment next checks",
        'o' => "outbox records",
        'p' => "schedule runs",
        'q' => "segment checks",
        's' => "segment members",
        't' => "timer records",
        'u' => "suppressions",
        'v' => "journey versions",
        _ => "other",
    }
}
