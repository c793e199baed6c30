//! One daemon at a time on a database: the lease row it holds and renews (`journey_lease`),
//! the epoch that fences a daemon out once another took the lease, and the daemons' list
//! (`journey_daemons`, `journey status --cluster`).

use super::connect::pg_error;
use super::PgKv;
use crate::store::{Result, StoreError};

/// How long the daemon's lease lasts unless renewed, and how often it is renewed.
pub(super) const LEASE_SECONDS: i32 = 10;
pub(super) const LEASE_RENEW: std::time::Duration = std::time::Duration::from_secs(3);

/// This process, as the lease names it: host and pid.
pub(super) fn lease_owner() -> String {
    crate::store::daemon_name()
}

/// Whether a lease owner is a process of this host that is gone (killed): its lease can be
/// taken at once rather than at its expiry.
pub(super) fn owner_is_gone(owner: &str) -> bool {
    let here = lease_owner();
    let (Some((host, pid)), Some((my_host, _))) = (owner.rsplit_once(':'), here.rsplit_once(':'))
    else {
        return false;
    };
    host == my_host
        && pid.parse::<u32>().is_ok()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The lease a commit must still hold, checked inside its transaction.
pub(super) struct Fence {
    held: Option<(String, i64)>,
    lost: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Fence {
    /// Fails (and marks the lease lost) unless this process still holds the lease at the
    /// epoch it took: the row is locked `FOR SHARE` until the commit, so a takeover waits
    /// for this transaction, or this transaction sees the takeover and rolls back.
    pub(super) async fn check(&self, tx: &deadpool_postgres::Transaction<'_>) -> Result<()> {
        let Some((owner, epoch)) = &self.held else {
            return Ok(());
        };
        let still = tx
            .query_opt(
                "SELECT 1 FROM journey_lease WHERE name = 'daemon' AND owner = $1 AND epoch = $2 FOR SHARE",
                &[owner, epoch],
            )
            .await
            .map_err(pg_error)?;
        if still.is_none() {
            self.lost.store(true, std::sync::atomic::Ordering::SeqCst);
            return Err(lease_taken());
        }
        Ok(())
    }
}

/// The error of a daemon whose lease another took.
pub(super) fn lease_taken() -> StoreError {
    StoreError::HeldBy(
        "another daemon took this database's lease (this one was paused or cut off past its expiry); this one commits nothing more".into(),
    )
}

impl PgKv {
    /// What a commit checks in its transaction: the lease this process took, if any.
    pub(super) fn fence(&self) -> Fence {
        Fence {
            held: self.held.get().cloned(),
            lost: self.lease_lost.clone(),
        }
    }

    /// Refuses a write once this process's lease was taken by another.
    pub(super) fn check_lease(&self) -> Result<()> {
        if self.lease_lost.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(lease_taken());
        }
        Ok(())
    }

    /// Takes the daemon's lease (`Kv::claim_exclusive`) and renews it while this process
    /// lives.
    pub(super) fn claim_lease(&self) -> Result<()> {
        let me = lease_owner();
        let pool = self.pool.clone();
        let owner = me.clone();
        let holder: std::result::Result<(i64, bool), (String, String)> = self.run(async move {
            let client = pool.get().await.map_err(pg_error)?;
            let current = client
                .query_opt("SELECT owner FROM journey_lease WHERE name = 'daemon'", &[])
                .await
                .map_err(pg_error)?
                .map(|r| r.get::<_, String>(0));
            let gone = current.as_deref().is_some_and(owner_is_gone);
            // Taken if free, expired, or left by a process of this host that is gone; each
            // taking raises the epoch, which fences the last holder's commits out.
            let taken = client
                .query_opt(
                    "INSERT INTO journey_lease (name, owner, expires, epoch) VALUES ('daemon', $1, now() + make_interval(secs => $2), 1)
                     ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires, epoch = journey_lease.epoch + 1
                     WHERE journey_lease.expires < now() OR journey_lease.owner = $1 OR $3
                     RETURNING epoch",
                    &[&owner, &(LEASE_SECONDS as f64), &gone],
                )
                .await
                .map_err(pg_error)?;
            if let Some(row) = taken {
                let took_over = current.is_some_and(|c| c != owner);
                return Ok(Ok((row.get::<_, i64>(0), took_over)));
            }
            let row = client
                .query_one(
                    "SELECT owner, to_char(expires, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM journey_lease WHERE name = 'daemon'",
                    &[],
                )
                .await
                .map_err(pg_error)?;
            Ok(Err((row.get(0), row.get(1))))
        })?;
        let epoch = match holder {
            Ok((epoch, took_over)) => {
                self.took_over
                    .store(took_over, std::sync::atomic::Ordering::SeqCst);
                epoch
            }
            Err((owner, until)) => {
                return Err(StoreError::HeldBy(format!(
                    "{owner} holds its lease until {until} at least"
                )))
            }
        };
        let _ = self.held.set((me.clone(), epoch));
        // Renewed while this process lives; lost, it stops this process's writes.
        let pool = self.pool.clone();
        let lost = self.lease_lost.clone();
        let renewals = self.renewals.clone();
        self.runtime
            .as_ref()
            .expect("present until dropped")
            .spawn(async move {
                loop {
                    tokio::time::sleep(LEASE_RENEW).await;
                    let renewed = match pool.get().await {
                        Ok(c) => {
                            let renewed = c
                                .execute(
                                    "UPDATE journey_lease SET expires = now() + make_interval(secs => $2) WHERE name = 'daemon' AND owner = $1 AND epoch = $3",
                                    &[&me, &(LEASE_SECONDS as f64), &epoch],
                                )
                                .await
                                .ok();
                            if renewed == Some(1) {
                                renewals.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                // And the daemons' list hears that this one lives.
                                let _ = c
                                    .execute(
                                        "UPDATE journey_daemons SET seen = now(), role = 'active' WHERE owner = $1",
                                        &[&me],
                                    )
                                    .await;
                            }
                            renewed
                        }
                        Err(_) => None,
                    };
                    if renewed == Some(0) {
                        tracing::error!("the daemon's lease on the database was taken by another: writing stops");
                        lost.store(true, std::sync::atomic::Ordering::SeqCst);
                        return;
                    }
                }
            });
        Ok(())
    }

    pub(super) fn lease_info(&self) -> Option<crate::store::LeaseInfo> {
        use std::sync::atomic::Ordering::*;
        let (_, epoch) = self.held.get()?;
        Some(crate::store::LeaseInfo {
            held: !self.lease_lost.load(SeqCst),
            epoch: *epoch,
            renewals: self.renewals.load(Relaxed),
            took_over: self.took_over.load(SeqCst),
        })
    }

    pub(super) fn announce_daemon(&self, address: &str, role: &str) -> Result<()> {
        let (me, address, role) = (lease_owner(), address.to_string(), role.to_string());
        let pool = self.pool.clone();
        self.run(async move {
            let client = pool.get().await.map_err(pg_error)?;
            client
                .execute(
                    "INSERT INTO journey_daemons (owner, address, role) VALUES ($1, $2, $3)
                     ON CONFLICT (owner) DO UPDATE SET address = excluded.address, role = excluded.role, seen = now()",
                    &[&me, &address, &role],
                )
                .await
                .map_err(pg_error)?;
            // One daemon works at a time: one that said so before is past its lease.
            if role == "active" {
                client
                    .execute(
                        "UPDATE journey_daemons SET role = 'lost lease' WHERE role = 'active' AND owner <> $1",
                        &[&me],
                    )
                    .await
                    .map_err(pg_error)?;
            }
            // Daemons not heard of for an hour are gone.
            client
                .execute(
                    "DELETE FROM journey_daemons WHERE seen < now() - interval '1 hour'",
                    &[],
                )
                .await
                .map_err(pg_error)?;
            Ok(())
        })
    }

    pub(super) fn listed_daemons(&self) -> Result<Vec<crate::store::DaemonSeen>> {
        let pool = self.pool.clone();
        self.run(async move {
            let client = pool.get().await.map_err(pg_error)?;
            let rows = client
                .query(
                    "SELECT owner, address, role, to_char(started AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                            extract(epoch FROM now() - seen)::float8
                     FROM journey_daemons ORDER BY started DESC",
                    &[],
                )
                .await
                .map_err(pg_error)?;
            Ok(rows
                .into_iter()
                .map(|r| crate::store::DaemonSeen {
                    name: r.get(0),
                    address: r.get(1),
                    role: r.get(2),
                    started: r.get(3),
                    seconds_since_seen: r.get(4),
                })
                .collect())
        })
    }
}
