//! The daemons on a database store, as the store tells them: this process's name, its
//! lease, and the daemons that announced themselves (`journey status --cluster`).

/// This process as the daemons' list and the lease name it: HOST:PID.
pub fn daemon_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// This process's share of a database store: the partitions it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The database's partitions.
    pub partitions: u16,
    /// Those this process holds (works on), in order.
    pub held: Vec<u16>,
    /// Rounds of renewals so far.
    pub renewals: u64,
    /// Partitions this process took over from another daemon (killed, paused, cut off).
    pub takeovers: u64,
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
    /// The partitions it holds, by their unexpired leases.
    pub partitions: Vec<u16>,
}
