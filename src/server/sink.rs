//! Where the daemon's sends go. Until the channels' `Dispatcher` is wired in, deliveries are
//! appended as JSON lines to `data_dir/deliveries.jsonl` and count as sent. `make_sink` is
//! the one place that chooses.

use crate::config::Config;
use crate::engine::{Millis, SendJob};
use crate::runtime::live::Submission;
use crate::runtime::{Delivery, Sink};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;

/// The daemon's sink. `inbox` is for sinks that report outcomes later (`Delivery::Pending`).
pub fn make_sink(
    config: &Config,
    inbox: Sender<Submission>,
) -> anyhow::Result<Box<dyn Sink + Send>> {
    let _ = inbox;
    Ok(Box::new(JsonLinesSink::open(&deliveries_path(
        &config.data_dir,
    ))?))
}

pub fn deliveries_path(data_dir: &Path) -> PathBuf {
    data_dir.join("deliveries.jsonl")
}

/// Appends every delivery as one JSON object a line: the send job and `delivered_at`.
pub struct JsonLinesSink {
    file: std::fs::File,
}

impl JsonLinesSink {
    pub fn open(path: &Path) -> anyhow::Result<JsonLinesSink> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(JsonLinesSink { file })
    }
}

impl Sink for JsonLinesSink {
    fn deliver(&mut self, job: &SendJob, now: Millis) -> Delivery {
        let mut v = serde_json::to_value(job).expect("jobs serialize");
        v["delivered_at"] = serde_json::Value::from(now);
        let mut line = serde_json::to_vec(&v).expect("values serialize");
        line.push(b'\n');
        match self.file.write_all(&line) {
            Ok(()) => Delivery::Sent,
            Err(e) => Delivery::Failed(format!("writing deliveries.jsonl: {e}")),
        }
    }
}
