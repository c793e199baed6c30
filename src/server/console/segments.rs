//! Segments: each segment's size (as the runtime keeps the membership) and its size over the
//! last two weeks, its members paged, and its members as a CSV download.

use super::{chrome, data_session, page_session, Html, Refusal};
use crate::server::{now_ms, Shared};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// Members per page.
const PAGE: usize = 100;

async fn members(st: &Shared, name: &str) -> Result<crate::report::SegmentAnswer, Refusal> {
    let program = st.program();
    let store = st.store.clone();
    let name = name.to_string();
    let at = crate::report::segment_moment(None, true, now_ms())
        .map_err(|e| Refusal::Error(axum::http::StatusCode::BAD_REQUEST, e.to_string()))?;
    tokio::task::spawn_blocking(move || crate::report::segment(&store, &program, &name, at, true))
        .await
        .map_err(|e| Refusal::Error(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| Refusal::NotFound(e.to_string()))
}

/// The days a segment's size is drawn over.
const HISTORY_DAYS: i64 = 14;

/// A segment's size at this moment of each of the last `HISTORY_DAYS` days, oldest first:
/// its definition evaluated then, from the events stored (a rule on the profile reads the
/// profile as it is now: profiles keep no history).
async fn history(st: &Shared, name: &str) -> Result<Vec<(String, f64)>, Refusal> {
    let program = st.program();
    let store = st.store.clone();
    let name = name.to_string();
    let now = now_ms();
    tokio::task::spawn_blocking(move || {
        (0..HISTORY_DAYS)
            .rev()
            .map(|days_ago| {
                let at = now - days_ago * 86_400_000;
                let day = chrono::DateTime::from_timestamp_millis(at)
                    .map(|t| t.format("%m-%d").to_string())
                    .unwrap_or_default();
                crate::report::segment(&store, &program, &name, Some(at), false)
                    .map(|a| (day, a.count as f64))
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| Refusal::Error(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| Refusal::NotFound(e.to_string()))
}

/// `GET /segments`.
pub async fn list(State(st): State<Shared>, headers: HeaderMap) -> Result<Response, Refusal> {
    let s = page_session(&st, &headers, "/segments")?;
    let names: Vec<String> = st.program().segments.keys().cloned().collect();
    let mut rows = Vec::new();
    for n in &names {
        let size = members(&st, n).await.map(|a| a.count).unwrap_or(0);
        rows.push((n.clone(), size));
    }
    let chart = super::svg::bars(
        "Segment sizes",
        &rows
            .iter()
            .map(|(n, s)| (n.clone(), *s as f64))
            .collect::<Vec<_>>(),
        " contacts",
    );
    Ok(Html(super::render(
        "segments.html",
        minijinja::context! {
            page => chrome(&st, &s, "segments"),
            segments => super::ser(rows),
            chart => minijinja::Value::from_safe_string(chart),
        },
    ))
    .into_response())
}

#[derive(Deserialize, Default)]
pub struct Paging {
    page: Option<usize>,
}

/// `GET /segments/{name}[?page=N]`.
pub async fn page(
    State(st): State<Shared>,
    Path(name): Path<String>,
    Query(p): Query<Paging>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let s = page_session(&st, &headers, &format!("/segments/{name}"))?;
    let a = members(&st, &name).await?;
    let history = history(&st, &name).await?;
    let chart = super::svg::bars(
        &format!("Size over the last {HISTORY_DAYS} days"),
        &history,
        " contacts",
    );
    let all = a.members.clone().unwrap_or_default();
    let page = p.page.unwrap_or(1).max(1);
    let shown: Vec<String> = all
        .iter()
        .skip((page - 1) * PAGE)
        .take(PAGE)
        .cloned()
        .collect();
    Ok(Html(super::render(
        "segment.html",
        minijinja::context! {
            page => chrome(&st, &s, "segments"),
            name => name,
            count => a.count,
            history_days => HISTORY_DAYS,
            history => minijinja::Value::from_safe_string(chart),
            members => super::ser(shown),
            number => page,
            previous => (page > 1).then(|| page - 1),
            next => (page * PAGE < all.len()).then(|| page + 1),
        },
    ))
    .into_response())
}

/// `GET /segments/{name}/members.csv`.
pub async fn csv(
    State(st): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    data_session(&st, &headers)?;
    let a = members(&st, &name).await?;
    let mut out = String::from("contact\n");
    for m in a.members.unwrap_or_default() {
        let field = if m.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", m.replace('"', "\"\""))
        } else {
            m
        };
        out.push_str(&field);
        out.push('\n');
    }
    let disposition = format!(
        "attachment; filename=\"segment-{}.csv\"",
        name.replace(
            |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
            "_"
        )
    );
    let mut r = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&disposition) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(super::secured(r))
}

/// `GET /trends[?metric=bounce|open&period=3m&group=week&top=10]`: the domain trend (`journey
/// trend domains`), a bar chart of the rate per period for every domain together and for
/// each of the top domains.
pub async fn trends(
    State(st): State<Shared>,
    q: Result<Query<crate::report::TrendParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let s = page_session(&st, &headers, "/trends")?;
    let bad = |m: String| Refusal::Error(axum::http::StatusCode::BAD_REQUEST, m);
    let Query(params) = q.map_err(|r| bad(r.body_text()))?;
    let query = params.query(now_ms()).map_err(|e| bad(e.to_string()))?;
    let store = st.store.clone();
    let trend = tokio::task::spawn_blocking(move || crate::report::trend(&store, &query))
        .await
        .map_err(|e| Refusal::Error(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| {
            Refusal::Error(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        })?;
    let metric = serde_json::to_value(trend.metric)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let chart = |d: &crate::report::trend::DomainTrend| {
        let points: Vec<(String, f64)> = d
            .points
            .iter()
            .map(|p| (p.period.clone(), p.rate.unwrap_or(0.0)))
            .collect();
        super::svg::bars(
            &format!("{metric} rate per period for {}", d.domain),
            &points,
            " %",
        )
    };
    let mut charts = vec![(
        "every domain".to_string(),
        trend.all.deliveries,
        minijinja::Value::from_safe_string(chart(&trend.all)),
    )];
    for d in &trend.domains {
        charts.push((
            d.domain.clone(),
            d.deliveries,
            minijinja::Value::from_safe_string(chart(d)),
        ));
    }
    Ok(Html(super::render(
        "trends.html",
        minijinja::context! {
            page => chrome(&st, &s, "trends"),
            metric => metric,
            periods => super::ser(&trend.periods),
            charts => charts,
        },
    ))
    .into_response())
}
