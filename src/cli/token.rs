//! `journey token`: API tokens, kept as hashes in the data directory, or in the store's
//! database when the config names one (`store.url`, `JOURNEY_STORE_URL`).

use crate::store::credentials::{self as auth, Scope, TokenPlace};
use crate::store::Store;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub action: TokenAction,
    /// The config file, for its data directory (default ./data) or its store's database.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
pub enum TokenAction {
    /// Make a token and print it (once: only its hash is kept). The daemon picks it up at once.
    Create {
        /// What the token may do: `ingest` (post events, upsert contacts, the Segment
        /// endpoints; not read contacts, nor post the event types the engine records
        /// itself), `engagement` (ingest, and post `clicked`/`opened`/`bounced`/`complained`
        /// from an email provider's webhooks), `read` (read contacts, and look at the web console), `admin`
        /// (everything: deploys, reports, contacts' export and erasure).
        #[arg(long, value_enum)]
        scope: Scope,
        /// A note to remember what it is for.
        #[arg(long)]
        note: Option<String>,
    },
    /// List tokens (ids, scopes, dates; never the tokens).
    List,
    /// Revoke a token by its id (from `list`).
    Revoke { id: String },
}

pub fn run(args: TokenArgs) -> ExitCode {
    let config = match super::serve::load_config(args.config.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let place = match &config.store.url {
        Some(url) => match Store::connect(url) {
            Ok(store) => TokenPlace::Database(store),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => TokenPlace::File(config.data_dir.clone()),
    };
    let dir = &place;
    let r = match args.action {
        TokenAction::Create { scope, note } => auth::create(dir, scope, note).map(|(t, e)| {
            println!("{t}");
            eprintln!(
                "token {} ({}) created; it is shown only now",
                e.id,
                e.scope.as_str()
            );
            true
        }),
        TokenAction::List => auth::list(dir).map(|ts| {
            for t in ts {
                println!(
                    "{}  {:10}  {}  {}",
                    t.id,
                    t.scope.as_str(),
                    t.created,
                    t.note.unwrap_or_default()
                );
            }
            true
        }),
        TokenAction::Revoke { id } => auth::revoke(dir, &id).inspect(|found| {
            if *found {
                eprintln!("token {id} revoked");
            } else {
                eprintln!("error: no token {id}");
            }
        }),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
