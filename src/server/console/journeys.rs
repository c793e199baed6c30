//! The journeys: the list (`/`), a journey's page (`/journeys/{name}`: its graph with live
//! counts per step, its messages' figures as a funnel, pause and resume), the counts as JSON
//! (`…/counts`, polled by the page's script) and the graph alone (`…/graph.svg`). Every
//! figure comes from the engine's live counters (`runtime::figures`): no request scans
//! instances or events.

use super::{chrome, data_session, form_session, page_session, see_other, svg, Html, Refusal};
use crate::runtime::figures::JourneyFigures;
use crate::server::{now_ms, Shared};
use axum::extract::{Form, Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
struct Row {
    name: String,
    title: Option<String>,
    version: String,
    paused: bool,
    entered: i64,
    active: i64,
    converted: i64,
    sends_24h: i64,
}

/// `GET /`: the journeys of the running program.
pub async fn list(State(st): State<Shared>, headers: HeaderMap) -> Result<Response, Refusal> {
    let s = page_session(&st, &headers, "/")?;
    let program = st.program();
    let now = now_ms();
    let rows: Vec<Row> = program
        .journeys
        .iter()
        .map(|(name, j)| {
            let f = st.figures().journey(name);
            Row {
                name: name.clone(),
                title: j.title.clone(),
                version: short(&j.content_hash()),
                paused: st.is_paused(name),
                entered: f.entered,
                active: f.active,
                converted: f.converted,
                sends_24h: f.sends_last_day(now),
            }
        })
        .collect();
    Ok(Html(super::render(
        "journeys.html",
        minijinja::context! { page => chrome(&st, &s, "journeys"), journeys => super::ser(rows) },
    ))
    .into_response())
}

fn short(hash: &str) -> String {
    hash.chars().take(12).collect()
}

/// The counts the page shows and its script refreshes.
#[derive(Serialize)]
struct Counts {
    journey: String,
    entered: i64,
    active: i64,
    converted: i64,
    exited: i64,
    completed: i64,
    steps: Vec<StepRow>,
    messages: std::collections::BTreeMap<String, crate::runtime::figures::MessageCount>,
}

#[derive(Serialize)]
struct StepRow {
    step: String,
    waiting: i64,
    entered: i64,
    exited: i64,
}

fn counts_of(j: &crate::compile::ir::JourneyIr, f: &JourneyFigures) -> Counts {
    Counts {
        journey: j.name.clone(),
        entered: f.entered,
        active: f.active,
        converted: f.converted,
        exited: f.exited,
        completed: f.completed,
        messages: j
            .messages
            .keys()
            .map(|m| (m.clone(), f.messages.get(m).cloned().unwrap_or_default()))
            .collect(),
        steps: j
            .steps
            .iter()
            .map(|s| {
                let c = f.steps.get(&s.name).cloned().unwrap_or_default();
                StepRow {
                    step: s.name.clone(),
                    waiting: c.waiting,
                    entered: c.entered,
                    exited: c.exited,
                }
            })
            .collect(),
    }
}

fn journey_of(
    st: &Shared,
    name: &str,
) -> Result<std::sync::Arc<crate::compile::ir::Program>, Refusal> {
    let program = st.program();
    if !program.journeys.contains_key(name) {
        return Err(Refusal::NotFound(format!(
            "no journey '{name}' in the running program"
        )));
    }
    Ok(program)
}

/// The whole journey page, as HTML (also what `journey bench console` times).
pub fn render_page(st: &Shared, s: &super::Session, name: &str) -> Result<String, Refusal> {
    let program = journey_of(st, name)?;
    let j = &program.journeys[name];
    let f = st.figures().journey(name);
    let counts = counts_of(j, &f);
    let messages: Vec<svg::Funnel> = j
        .messages
        .iter()
        .map(|(m, ir)| {
            let c = f.messages.get(m).cloned().unwrap_or_default();
            svg::Funnel {
                message: m.clone(),
                channel: ir.channel.as_str().to_string(),
                sent: c.sent,
                delivered: c.delivered,
                opened: c.opened,
                clicked: c.clicked,
                bounced: c.bounced,
                suppressed: c.suppressed,
            }
        })
        .collect();
    let funnel = svg::funnel_chart(&messages);
    let head = j.content_hash();
    let mut versions: Vec<(String, String, bool)> =
        crate::runtime::deployed_versions(&st.store, name)
            .map_err(|e| {
                Refusal::Error(axum::http::StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            })?
            .into_iter()
            .rev()
            .map(|(v, at)| {
                let current = v == head;
                (v, crate::runtime::fmt_time(at), current)
            })
            .collect();
    if !versions.iter().any(|v| v.0 == head) {
        versions.insert(0, (head.clone(), "before versions were dated".into(), true));
    }
    let graph = svg::journey_graph(j, &f);
    Ok(super::render(
        "journey.html",
        minijinja::context! {
            page => chrome(st, s, "journeys"),
            name => name,
            title => j.title.clone(),
            version => j.content_hash(),
            paused => st.is_paused(name),
            counts => super::ser(counts),
            messages => super::ser(messages),
            graph => minijinja::Value::from_safe_string(graph),
            funnel => minijinja::Value::from_safe_string(funnel),
            sends_24h => f.sends_last_day(now_ms()),
            versions => super::ser(versions),
        },
    ))
}

/// `GET /journeys/{name}`.
pub async fn page(
    State(st): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let s = page_session(&st, &headers, &format!("/journeys/{name}"))?;
    Ok(Html(render_page(&st, &s, &name)?).into_response())
}

/// `GET /journeys/{name}/counts`: the live counts as JSON.
pub async fn counts(
    State(st): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    data_session(&st, &headers)?;
    let program = journey_of(&st, &name)?;
    let c = counts_of(&program.journeys[&name], &st.figures().journey(&name));
    Ok(super::secured(axum::Json(c).into_response()))
}

/// `GET /journeys/{name}/graph.svg`: the graph with the counts of now.
pub async fn graph(
    State(st): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    data_session(&st, &headers)?;
    let program = journey_of(&st, &name)?;
    let svg = svg::journey_graph(&program.journeys[&name], &st.figures().journey(&name));
    Ok(super::secured(
        ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response(),
    ))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn set_paused(
    st: Shared,
    headers: HeaderMap,
    name: String,
    csrf: String,
    pause: bool,
) -> Result<Response, Refusal> {
    form_session(&st, &headers, &csrf)?;
    journey_of(&st, &name)?;
    crate::server::pause_or_resume(&st, &name, pause).await?;
    let to = format!(
        "/journeys/{}",
        percent_encoding::utf8_percent_encode(&name, percent_encoding::NON_ALPHANUMERIC)
    );
    Ok(see_other(&to))
}

/// `POST /journeys/{name}/pause` (admin, CSRF).
pub async fn pause(
    State(st): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Result<Response, Refusal> {
    set_paused(st, headers, name, f.csrf, true).await
}

/// `POST /journeys/{name}/resume` (admin, CSRF).
pub async fn resume(
    State(st): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Result<Response, Refusal> {
    set_paused(st, headers, name, f.csrf, false).await
}
