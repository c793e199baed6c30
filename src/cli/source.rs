//! What `journey report`, `audience`, `segment` and `trend` share: where they read (the
//! running daemon, or a store directory given with `--data`) and how they fail. Both
//! sources give the same `crate::report` data, which each command prints with one renderer.

use super::client::{CallError, Client, ServerArgs};
use crate::report::ReportError;
use crate::store::Store;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where a report command reads: the running daemon, or a store directory.
#[derive(clap::Args, Debug)]
pub struct SourceArgs {
    /// Read this store directory instead of asking the daemon: a stopped daemon's
    /// `DATA_DIR/store` (`data/store` by default), a copy of it, or one written by
    /// `journey simulate SCENARIO --data DIR`.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub server: ServerArgs,
}

pub(crate) enum Source {
    Store(Store),
    Daemon(Client),
}

impl SourceArgs {
    pub(crate) fn open(&self) -> Result<Source, Failed> {
        match &self.data {
            Some(dir) => open_store(dir).map(Source::Store).map_err(Failed::usage),
            None => Ok(Source::Daemon(Client::new(&self.server))),
        }
    }
}

/// A command that failed: its message, and whether the question was wrong (exit 2) or the
/// answer could not be had (exit 1).
pub(crate) struct Failed {
    usage: bool,
    message: String,
}

impl Failed {
    pub(crate) fn usage(message: impl Into<String>) -> Failed {
        Failed {
            usage: true,
            message: message.into(),
        }
    }

    pub(crate) fn other(message: impl Into<String>) -> Failed {
        Failed {
            usage: false,
            message: message.into(),
        }
    }

    pub(crate) fn exit(self) -> ExitCode {
        eprintln!("error: {}", self.message);
        ExitCode::from(if self.usage { 2 } else { 1 })
    }

    /// A call to the daemon that failed: its reason, or, when no daemon answered, what to do.
    fn call(c: &Client, e: CallError) -> Failed {
        match (e.status, e.cause) {
            (Some(400), _) => Failed::usage(e.message),
            (Some(_), _) => Failed::other(e.message),
            (None, cause) => Failed::usage(format!(
                "no daemon answers at {} ({}): start it with `journey serve` (--server or JOURNEY_SERVER for another address), or read a stopped daemon's store, or a copy of it, with --data DIR",
                c.base(),
                cause.unwrap_or(e.message)
            )),
        }
    }
}

impl From<ReportError> for Failed {
    fn from(e: ReportError) -> Failed {
        match e {
            ReportError::Invalid(m) => Failed::usage(m),
            other => Failed::other(other.to_string()),
        }
    }
}

/// Asks the daemon: `GET path?query`, the answer read as `T`. The query is the fields of a
/// JSON object (`null`s left out), as the daemon reads them.
pub(crate) fn ask<T: DeserializeOwned>(
    c: &Client,
    path: &str,
    query: &impl serde::Serialize,
) -> Result<T, Failed> {
    let query = serde_json::to_value(query).expect("queries serialize");
    let pairs: Vec<(&str, String)> = query
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| match v {
            Value::Null => None,
            Value::String(s) => Some((k.as_str(), s.clone())),
            other => Some((k.as_str(), other.to_string())),
        })
        .collect();
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let v = c.get_query(path, &pairs).map_err(|e| Failed::call(c, e))?;
    serde_json::from_value(v).map_err(|e| {
        Failed::other(format!(
            "the daemon's answer to {path} is not what this version reads: {e}"
        ))
    })
}

/// Prints a command's output, or its error; the exit code.
pub(crate) fn print(out: Result<String, Failed>) -> ExitCode {
    match out {
        Ok(text) => {
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(f) => f.exit(),
    }
}

/// Opens an existing store for reading, with errors that say what to do.
pub(crate) fn open_store(dir: &Path) -> Result<Store, String> {
    let text = dir.to_string_lossy();
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        return Store::open_location(&text).map_err(|e| e.to_string());
    }
    let is_store = dir.join("conf").exists() || dir.join("db").exists();
    if !dir.is_dir() || !is_store {
        return Err(format!(
            "{}: no journey store here. Give the store directory with --data DIR: `journey serve` keeps it in DATA_DIR/store (data/store by default), `journey simulate SCENARIO --data DIR` writes one; without --data the command asks the running daemon",
            dir.display()
        ));
    }
    Store::open(dir).map_err(|e| {
        let text = e.to_string();
        if matches!(e, crate::store::StoreError::InUse) {
            format!(
                "{}: the store is in use (is `journey serve` running on it?). Leave out --data to ask the daemon, or copy the directory and give the copy with --data",
                dir.display()
            )
        } else {
            format!("{}: {text}", dir.display())
        }
    })
}

pub(crate) fn now() -> crate::engine::Millis {
    use crate::runtime::Clock;
    crate::runtime::SystemClock.now()
}
