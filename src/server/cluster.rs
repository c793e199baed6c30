//! `GET /v1/cluster`: the daemons on this daemon's store (on PostgreSQL, those that work on
//! it or wait for its lease; on sled, this one) and this daemon's lease.

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
    /// hour (the one holding the lease is `active`; the others wait as `standby`); on sled,
    /// this one.
    pub daemons: Vec<DaemonSeen>,
    /// This daemon's lease on the database (absent on sled).
    pub lease: Option<LeaseView>,
}

/// A daemon's lease on a database store.
#[derive(Serialize, ToSchema)]
pub struct LeaseView {
    /// Held and not lost to another daemon.
    pub held: bool,
    /// The epoch it was taken at: each takeover raises it.
    pub epoch: i64,
    /// Renewals so far.
    pub renewals: u64,
    /// Whether this daemon took it over from another.
    pub took_over: bool,
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
        }]
    };
    Ok(Json(Cluster {
        store: if on_database { "postgres" } else { "sled" },
        this,
        daemons,
        lease: lease.map(|l| LeaseView {
            held: l.held,
            epoch: l.epoch,
            renewals: l.renewals,
            took_over: l.took_over,
        }),
    }))
}
