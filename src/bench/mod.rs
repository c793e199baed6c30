//! The benchmark harness behind `journey bench` (the workloads B1-B7 of
//! docs/performance.md, and the language server's speed): each runs through the same live loop, runtime and durable store
//! as the daemon, with the store's own limit measured beside it. `cli::bench` only parses
//! the command line and calls these.

use crate::compile;
use crate::lang;
use std::path::PathBuf;

mod clicks;
mod cluster;
mod console;
mod crash;
pub mod ingest;
mod lsp;
pub mod pg_server;
pub mod segments;
pub mod source;
mod waiting;

pub use clicks::clicks;
pub use cluster::{cluster, ClusterOptions};
pub use console::console;
pub use crash::crash_child;
pub use lsp::{lsp, LspOptions};
pub use waiting::{waiting, waiting_restart};

pub type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

pub(crate) fn program_from(source: &str) -> AnyResult<crate::compile::ir::Program> {
    let mut loaded = lang::Loaded::default();
    lang::add_source(&mut loaded, "bench.journey", source.to_string());
    let compiled = compile::compile(&loaded);
    compiled.program.ok_or_else(|| {
        lang::diagnostic::render_human(&loaded.sources, &compiled.diagnostics, false).into()
    })
}

/// A memory figure of this process from /proc/self/status, in MB (Linux; 0 elsewhere).
fn proc_status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Peak resident memory of this process, in MB.
pub fn peak_rss_mb() -> f64 {
    proc_status_mb("VmHWM:")
}

pub fn rss_mb() -> f64 {
    proc_status_mb("VmRSS:")
}

/// The value at quantile `p` (0 to 1) of sorted values, nearest rank; the default (zero)
/// when there are none. Shared by every benchmark.
pub(crate) fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub(crate) fn temp_or(dir: Option<PathBuf>) -> AnyResult<(PathBuf, Option<tempfile::TempDir>)> {
    match dir {
        Some(d) => {
            std::fs::create_dir_all(&d)?;
            Ok((d, None))
        }
        None => {
            let t = tempfile::tempdir()?;
            Ok((t.path().to_path_buf(), Some(t)))
        }
    }
}
