//! `GET /v1/cluster`: the daemons on this daemon's store (on PostgreSQL, those that share
//! its partitions; on sled, this one) and this daemon's share of the partitions.

use super::api::store_err;
use super::openapi::{tags, ErrorBody};
use super::{ApiError, Scope, Shared};
use crate::store::DaemonSeen;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// The daemons on the store, and this one's lease.
#[derive(Serialize, ToSchema)]
pub struct Cluster {
    /// `postgres` or `sled`.
    pub store: &'static str,
    /// This daemon (HOST:PID).
    pub this: String,
    /// The daemons on the store, newest first: on PostgreSQL, those heard of in the last
    /// hour, each with the partitions it holds; on sled, this one.
    pub daemons: Vec<DaemonSeen>,
    /// This daemon's share of the database's partitions (absent on sled).
    pub lease: Option<LeaseView>,
}

/// A daemon's share of a database store's partitions.
#[derive(Serialize, ToSchema)]
pub struct LeaseView {
    /// The database's partitions.
    pub partitions: u16,
    /// Those this daemon holds.
    pub held: Vec<u16>,
    /// Rounds of lease renewals so far.
    pub renewals: u64,
    /// Partitions this daemon took over from another (killed, paused, cut off).
    pub takeovers: u64,
}

/// `GET /v1/cluster`.
#[utoipa::path(
    get,
    path = "/v1/cluster",
    tag = tags::SERVICE,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The daemons on the store, and this one's lease", body = Cluster),
        (status = 401, description = "No token, or an unknown one", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody),
    )
)]
pub async fn cluster(
    State(st): State<Shared>,
    headers: HeaderMap,
) -> Result<Json<Cluster>, ApiError> {
    st.authorize(&headers, Scope::Admin)?;
    let this = crate::store::daemon_name();
    let lease = st.store.lease();
    let on_database = st.store.can_be_unavailable();
    let daemons = if on_database {
        let store = st.store.clone();
        tokio::task::spawn_blocking(move || store.daemons())
            .await
            .map_err(store_err)?
            .map_err(store_err)?
    } else {
        vec![DaemonSeen {
            name: this.clone(),
            address: st.config.server.listen.clone(),
            role: "active".into(),
            started: st.started.clone(),
            seconds_since_seen: 0.0,
            partitions: vec![0],
        }]
    };
    Ok(Json(Cluster {
        store: if on_database { "postgres" } else { "sled" },
        this,
        daemons,
        lease: lease.map(|l| LeaseView {
            partitions: l.partitions,
            held: l.held,
            renewals: l.renewals,
            takeovers: l.takeovers,
        }),
    }))
}
