//! Where the daemon's sends go: `make_sink` is the one place that chooses. It is the channels'
//! `Dispatcher` (SMTP or the Maildir, SMS and push providers or their JSON-lines files,
//! webhooks), as configured in `journey.yaml`.

use crate::channels::{AttemptObserver, Dispatcher, DispatcherOptions};
use crate::config::Config;
use crate::runtime::live::Submission;
use crate::runtime::{LiveContext, Sink};
use crate::store::Store;
use std::sync::mpsc::Sender;
use std::sync::Arc;

/// The daemon's sink: the channels' `Dispatcher`, which delivers on its own tokio runtime and
/// reports each outcome to the live loop's `inbox` (`Delivery::Pending` until then), and
/// each attempt at a provider to `observer`.
pub fn make_sink(
    config: &Config,
    secret: &[u8],
    store: &Store,
    inbox: Sender<Submission>,
    handle: tokio::runtime::Handle,
    observer: Arc<dyn AttemptObserver>,
) -> anyhow::Result<Box<dyn Sink + Send>> {
    let d = Dispatcher::new(DispatcherOptions {
        config: config.clone(),
        secret: secret.to_vec(),
        context: Arc::new(LiveContext::new(store.clone(), inbox)),
        handle: Some(handle),
        clock: None,
        observer: Some(observer),
    })
    .map_err(|e| anyhow::anyhow!("channels: {e}"))?;
    if let Some(m) = d.maildir() {
        tracing::info!(maildir = %m.display(), "no SMTP configured: emails go to the Maildir");
    }
    Ok(Box::new(d))
}
