//! The daemons on a database store, as the store tells them: this process's name, its
//! lease, and the daemons that announced themselves (`journey status --cluster`).

/// This process as the daemons' list and the lease name it: HOST:PID.
pub fn daemon_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// This process's lease on a database store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseInfo {
    /// Held and not lost.
    pub held: bool,
    /// The epoch it was taken at (each takeover raises it).
    pub epoch: i64,
    /// Renewals so far.
    pub renewals: u64,
    /// Whether this process took it over from another daemon (rather than found it free).
    pub took_over: bool,
}

/// A daemon that announced itself on a database store (`journey status --cluster`).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DaemonSeen {
    /// HOST:PID.
    pub name: String,
    /// Where it listens (empty while it waits as a standby).
    pub address: String,
    /// `active` (holds the lease and works) or `standby` (waits for it).
    pub role: String,
    /// When it started, RFC 3339.
    pub started: String,
    /// Seconds since it last said it lives (every few seconds while it does).
    pub seconds_since_seen: f64,
}
