//! Reports and audiences (scope `admin`): the answers of `journey report`, `audience`,
//! `segment` and `trend`, read from the daemon's store (which no other process can open
//! while it runs). The data is `crate::report`'s, served as JSON; store scans run on the
//! blocking pool.

use super::api::store_err;
use super::{now_ms, ApiError, Scope, Shared};
use crate::report::{self, ListFormat, ReportError, TrendParams, Who};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> ApiError {
        match e {
            ReportError::Store(e) => store_err(e),
            ReportError::Invalid(m) => ApiError::bad_request("invalid_query", m),
            other => ApiError::not_found(other.to_string()),
        }
    }
}

/// The query string, or a 400 saying what is wrong with it.
fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|r| ApiError::bad_request("invalid_query", r.body_text()))
}

/// Runs a store scan on the blocking pool and answers its data as JSON.
async fn answer<T: Serialize + Send + 'static>(
    f: impl FnOnce() -> Result<T, ReportError> + Send + 'static,
) -> Result<Response, ApiError> {
    let t = tokio::task::spawn_blocking(f).await.map_err(store_err)??;
    Ok(Json(t).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    message: Option<String>,
}

/// `GET /v1/journeys/{name}/report[?message=M]`: per message, received, opened, clicked…
pub async fn journey_report(
    State(st): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    q: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Admin)?;
    let q = query(q)?;
    let store = st.store.clone();
    answer(move || report::journey_report(&store, &name, q.message.as_deref())).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudienceQuery {
    who: Who,
    link: Option<String>,
    /// `json` (the default): an array of recipients; `csv` or `jsonl`: the lists
    /// `journey audience` prints.
    format: Option<AudienceFormat>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum AudienceFormat {
    Json,
    Csv,
    Jsonl,
}

/// `GET /v1/journeys/{name}/messages/{message}/audience?who=…[&link=L][&format=…]`.
pub async fn audience(
    State(st): State<Shared>,
    Path((name, message)): Path<(String, String)>,
    headers: HeaderMap,
    q: Result<Query<AudienceQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Admin)?;
    let q = query(q)?;
    let store = st.store.clone();
    let people = tokio::task::spawn_blocking(move || {
        report::audience(&store, &name, &message, q.who, q.link.as_deref())
    })
    .await
    .map_err(store_err)??;
    let list = match q.format.unwrap_or(AudienceFormat::Json) {
        AudienceFormat::Json => return Ok(Json(people).into_response()),
        AudienceFormat::Csv => ListFormat::Csv,
        AudienceFormat::Jsonl => ListFormat::Jsonl,
    };
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, list.content_type())],
        report::render_audience(&people, list),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentQuery {
    #[serde(default)]
    list: bool,
    /// Evaluate at this moment (RFC 3339 or a date) instead of now.
    at: Option<String>,
    /// The membership the runtime keeps, instead of evaluating the definition.
    #[serde(default)]
    stored: bool,
}

/// `GET /v1/segments/{name}[?list=true][&at=TIME][&stored=true]`: how many contacts, and
/// which with `list`.
pub async fn segment(
    State(st): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    q: Result<Query<SegmentQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Admin)?;
    let q = query(q)?;
    let at = report::segment_moment(q.at.as_deref(), q.stored, now_ms())?;
    let program = st.program();
    let store = st.store.clone();
    answer(move || report::segment(&store, &program, &name, at, q.list)).await
}

/// `GET /v1/trend/domains?metric=bounce|open&period=3m&group=week&top=10[&until=…][&journey=J]`.
pub async fn trend_domains(
    State(st): State<Shared>,
    headers: HeaderMap,
    q: Result<Query<TrendParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Admin)?;
    let q = query(q)?.query(now_ms())?;
    let store = st.store.clone();
    answer(move || Ok(report::trend(&store, &q)?)).await
}
