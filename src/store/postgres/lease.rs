//! Several daemons on one database: the partitions' leases (`journey_partitions`: a row per
//! partition with its owner, epoch and expiry), kept by each daemon's lease keeper, which
//! renews what it holds, takes free or expired partitions up to its share and hands back
//! what is over its share once the engine let go of it; the fence every commit checks; and
//! the daemons' list (`journey_daemons`, `journey status --cluster`), which is also how the
//! keepers count each other (no coordinator beyond these two tables).

use super::connect::pg_error;
use super::PgKv;
use crate::store::partitions::{HeldPartitions, Slot};
use crate::store::{Result, StoreError};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// How long a partition's lease lasts unless renewed, and how often the keeper runs
/// (renewals, takeovers, hand-backs): a daemon cut off for longer than the lease loses its
/// partitions to the others.
pub(super) const LEASE_SECONDS: i32 = 10;
pub(super) const LEASE_RENEW: std::time::Duration = std::time::Duration::from_secs(1);

/// This process, as the leases name it: host and pid.
pub(super) fn lease_owner() -> String {
    crate::store::daemon_name()
}

/// Whether a lease owner is a process of this host that is gone (killed): its partitions
/// can be taken at once rather than at their expiry.
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

/// The partitions a commit writes must still be this process's, checked inside its
/// transaction.
pub(super) struct Fence {
    owner: String,
    held: Option<Arc<HeldPartitions>>,
    /// The partitions the commit writes.
    touched: BTreeSet<u16>,
}

impl Fence {
    /// Fails (and drops the partitions lost) unless this process still holds every
    /// partition the commit writes, at the epoch it took: the rows are locked `FOR SHARE`
    /// until the commit, so a takeover waits for this transaction, or this transaction
    /// sees the takeover and rolls back.
    pub(super) async fn check(&self, tx: &deadpool_postgres::Transaction<'_>) -> Result<()> {
        let Some(held) = &self.held else {
            return Ok(());
        };
        let mut parts = Vec::with_capacity(self.touched.len());
        let mut epochs = Vec::with_capacity(self.touched.len());
        for &p in &self.touched {
            match held.fence_epoch(p) {
                Some(e) => {
                    parts.push(p as i32);
                    epochs.push(e);
                }
                None => return Err(fenced(&[p])),
            }
        }
        if parts.is_empty() {
            return Ok(());
        }
        let still = tx
            .query(
                "SELECT l.part FROM journey_partitions l
                 JOIN unnest($2::int4[], $3::int8[]) AS h(part, epoch) ON l.part = h.part AND l.epoch = h.epoch
                 WHERE l.owner = $1 FOR SHARE OF l",
                &[&self.owner, &parts, &epochs],
            )
            .await
            .map_err(pg_error)?;
        if still.len() == parts.len() {
            return Ok(());
        }
        let kept: BTreeSet<i32> = still.iter().map(|r| r.get(0)).collect();
        let lost: Vec<u16> = parts
            .iter()
            .filter(|p| !kept.contains(p))
            .map(|&p| p as u16)
            .collect();
        held.set(&lost.iter().map(|&p| (p, Slot::Free)).collect::<Vec<_>>());
        Err(fenced(&lost))
    }
}

/// The error of a commit that writes partitions another daemon took. It reads as the
/// store being unavailable: what came with an acknowledgement is refused (the sender
/// retries, and its retry goes to the inbox of the partition's new holder), and the engine
/// reads its state back for the partitions it still holds.
pub(super) fn fenced(parts: &[u16]) -> StoreError {
    StoreError::Unavailable(format!(
        "partition{} {} of this database {} taken over by another daemon (this one was paused or cut off past its lease); this one commits nothing more for {}",
        if parts.len() == 1 { "" } else { "s" },
        parts.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", "),
        if parts.len() == 1 { "was" } else { "were" },
        if parts.len() == 1 { "it" } else { "them" },
    ))
}

impl PgKv {
    /// What a commit writing `touched` checks in its transaction.
    pub(super) fn fence(&self, touched: BTreeSet<u16>) -> Fence {
        Fence {
            owner: self.owner.clone(),
            held: self.held.get().cloned(),
            touched,
        }
    }

    /// Refuses at once a commit that writes a partition this process does not hold (its
    /// transaction would be refused anyway).
    pub(super) fn check_held(&self, touched: &BTreeSet<u16>) -> Result<()> {
        let Some(held) = self.held.get() else {
            return Ok(());
        };
        let missing: Vec<u16> = touched
            .iter()
            .copied()
            .filter(|&p| held.fence_epoch(p).is_none())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(fenced(&missing))
        }
    }

    /// Starts this process's lease keeper: one round at once (a daemon alone takes every
    /// partition before it starts), then one every `LEASE_RENEW` while the process lives.
    pub(super) fn claim_lease(&self) -> Result<()> {
        let held = Arc::new(HeldPartitions::new(self.partition_count));
        if self.held.set(held.clone()).is_err() {
            return Ok(());
        }
        let mut keeper = Keeper {
            pool: self.pool.clone(),
            owner: self.owner.clone(),
            held,
            releasing: Vec::new(),
        };
        let mut keeper = self.run(async move {
            keeper.round().await?;
            Ok(keeper)
        })?;
        self.runtime
            .as_ref()
            .expect("present until dropped")
            .spawn(async move {
                loop {
                    tokio::time::sleep(LEASE_RENEW).await;
                    if let Err(e) = keeper.round().await {
                        tracing::warn!("the lease keeper could not reach the database: {e}");
                    }
                }
            });
        Ok(())
    }

    pub(super) fn lease_info(&self) -> Option<crate::store::LeaseInfo> {
        let held = self.held.get()?;
        Some(crate::store::LeaseInfo {
            partitions: held.count,
            held: held.held(),
            renewals: held.renewals.load(Ordering::Relaxed),
            takeovers: held.takeovers.load(Ordering::Relaxed),
        })
    }

    pub(super) fn announce_daemon(&self, address: &str, role: &str) -> Result<()> {
        let (me, address, role) = (self.owner.clone(), address.to_string(), role.to_string());
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
                    "SELECT d.owner, d.address, d.role, to_char(d.started AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                            extract(epoch FROM now() - d.seen)::float8,
                            coalesce((SELECT array_agg(p.part ORDER BY p.part) FROM journey_partitions p
                                      WHERE p.owner = d.owner AND p.expires >= now()), '{}')
                     FROM journey_daemons d ORDER BY d.started DESC",
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
                    partitions: r
                        .get::<_, Vec<i32>>(5)
                        .into_iter()
                        .map(|p| p as u16)
                        .collect(),
                })
                .collect())
        })
    }
}

/// The lease keeper's state between rounds.
struct Keeper {
    pool: deadpool_postgres::Pool,
    owner: String,
    held: Arc<HeldPartitions>,
    /// Partitions being handed back, with their epoch, and the generation the engine must
    /// reach (it then holds nothing of them) before their rows are released.
    releasing: Vec<(u16, i64, u64)>,
}

impl Keeper {
    /// One round: renew, say this daemon lives, hand back what the engine let go of, then
    /// take or give partitions towards this daemon's share.
    async fn round(&mut self) -> Result<()> {
        let started = std::time::Instant::now();
        let client = self.pool.get().await.map_err(pg_error)?;
        let secs = LEASE_SECONDS as f64;
        // Renewed; a partition whose epoch moved was taken by another: it is dropped.
        let leased = self.held.leased();
        if !leased.is_empty() {
            let parts: Vec<i32> = leased.iter().map(|(p, _)| *p as i32).collect();
            let epochs: Vec<i64> = leased.iter().map(|(_, e)| *e).collect();
            let renewed: BTreeSet<i32> = client
                .query(
                    "UPDATE journey_partitions l SET expires = now() + make_interval(secs => $4)
                     FROM unnest($2::int4[], $3::int8[]) AS h(part, epoch)
                     WHERE l.part = h.part AND l.epoch = h.epoch AND l.owner = $1
                     RETURNING l.part",
                    &[&self.owner, &parts, &epochs, &secs],
                )
                .await
                .map_err(pg_error)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let lost: Vec<(u16, Slot)> = leased
                .iter()
                .filter(|(p, _)| !renewed.contains(&(*p as i32)))
                .map(|(p, _)| (*p, Slot::Free))
                .collect();
            if !lost.is_empty() {
                tracing::error!(
                    partitions = ?lost.iter().map(|(p, _)| p).collect::<Vec<_>>(),
                    "partitions' leases were taken by another daemon (this one was paused or cut off past them): their work stops here"
                );
                self.held.set(&lost);
                self.releasing
                    .retain(|(p, _, _)| !lost.iter().any(|(l, _)| l == p));
            }
            self.held.renewals.fetch_add(1, Ordering::Relaxed);
        }
        // Every lease held now was renewed by this round (or is taken below, later still).
        self.held.renewed(
            started,
            std::time::Duration::from_secs(LEASE_SECONDS as u64),
        );
        client
            .execute(
                "UPDATE journey_daemons SET seen = now() WHERE owner = $1",
                &[&self.owner],
            )
            .await
            .map_err(pg_error)?;
        // Handed back once the engine holds nothing of them.
        let applied = self.held.applied();
        let (done, wait): (Vec<_>, Vec<_>) = self
            .releasing
            .iter()
            .partition(|(_, _, generation)| applied >= *generation);
        self.releasing = wait;
        if !done.is_empty() {
            let parts: Vec<i32> = done.iter().map(|(p, _, _)| *p as i32).collect();
            let epochs: Vec<i64> = done.iter().map(|(_, e, _)| *e).collect();
            client
                .execute(
                    "UPDATE journey_partitions l SET owner = '', expires = '-infinity'
                     FROM unnest($2::int4[], $3::int8[]) AS h(part, epoch)
                     WHERE l.part = h.part AND l.epoch = h.epoch AND l.owner = $1",
                    &[&self.owner, &parts, &epochs],
                )
                .await
                .map_err(pg_error)?;
            self.held.set(
                &done
                    .iter()
                    .map(|(p, _, _)| (*p, Slot::Free))
                    .collect::<Vec<_>>(),
            );
        }
        // This daemon's share: the partitions over the daemons alive (seen within a lease,
        // and not a process of this host that is gone), this one included.
        let seen: Vec<String> = client
            .query(
                "SELECT owner FROM journey_daemons WHERE seen > now() - make_interval(secs => $1) AND owner <> $2",
                &[&secs, &self.owner],
            )
            .await
            .map_err(pg_error)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let alive = 1 + seen.iter().filter(|o| !owner_is_gone(o)).count();
        let count = self.held.count as usize;
        let share = count.div_ceil(alive);
        let held = self.held.held();
        if held.len() < share {
            // Free, expired, or left by a process of this host that is gone. Each taking
            // raises the partition's epoch, which fences the last holder's commits out.
            let others: Vec<String> = client
                .query(
                    "SELECT DISTINCT owner FROM journey_partitions WHERE owner <> '' AND owner <> $1 AND expires >= now()",
                    &[&self.owner],
                )
                .await
                .map_err(pg_error)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let gone: Vec<String> = others.into_iter().filter(|o| owner_is_gone(o)).collect();
            let want = (share - held.len()) as i64;
            let taken = client
                .query(
                    "WITH picked AS (
                        SELECT part, owner AS was FROM journey_partitions
                        WHERE owner = '' OR expires < now() OR owner = ANY($3)
                        ORDER BY part LIMIT $2 FOR UPDATE SKIP LOCKED)
                     UPDATE journey_partitions l
                     SET owner = $1, epoch = l.epoch + 1, expires = now() + make_interval(secs => $4)
                     FROM picked WHERE l.part = picked.part
                     RETURNING l.part, l.epoch, picked.was",
                    &[&self.owner, &want, &gone, &secs],
                )
                .await
                .map_err(pg_error)?;
            if !taken.is_empty() {
                let mut changes = Vec::new();
                for r in &taken {
                    let (p, epoch, was): (i32, i64, String) = (r.get(0), r.get(1), r.get(2));
                    if !was.is_empty() && was != self.owner {
                        self.held.takeovers.fetch_add(1, Ordering::Relaxed);
                    }
                    changes.push((p as u16, Slot::Held(epoch)));
                }
                tracing::info!(
                    partitions = taken.len(),
                    held = held.len() + taken.len(),
                    share,
                    "took partitions"
                );
                self.held.set(&changes);
            }
        } else if held.len() > share && self.releasing.is_empty() {
            // Over its share (a daemon joined): the last ones go back, once the engine let
            // go of them; the others take them at their next round.
            let extra = &held[share..];
            let changes: Vec<(u16, Slot)> = extra
                .iter()
                .filter_map(|&p| match self.held.slot(p) {
                    Slot::Held(e) => Some((p, Slot::Releasing(e))),
                    _ => None,
                })
                .collect();
            self.held.set(&changes);
            let generation = self.held.generation();
            self.releasing = changes
                .iter()
                .map(|(p, s)| match s {
                    Slot::Releasing(e) => (*p, *e, generation),
                    _ => unreachable!("set above"),
                })
                .collect();
            tracing::info!(
                partitions = extra.len(),
                share,
                "handing partitions back to the other daemons"
            );
        }
        Ok(())
    }
}
