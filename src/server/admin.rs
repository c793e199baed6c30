//! Admin endpoints (scope `admin`): journeys and their figures, enrolments, pause and
//! resume, plans and deploys.

use super::api::store_err;
use super::openapi::{tags, ErrorBody};
use super::{apply_program, json_body, ApiError, Scope, Shared};
use crate::compile::ir::{EntryIr, JourneyIr, Program};
use crate::engine::{EndReason, MESSAGE_SENT};
use crate::runtime::plan::{self as deploy, Bundle};
use crate::runtime::{DeployReport, Input, RuntimeError, MESSAGE_BOUNCED, MESSAGE_FAILED};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

/// A scheduled entry (a plan) with its last and next runs (RFC 3339).
#[derive(Serialize, ToSchema)]
pub struct Schedule {
    /// The entry, as written: `segment vip every monday 09:00`.
    entry: String,
    last_run: Option<String>,
    next_run: Option<String>,
}

/// The answer of `GET /v1/journeys`.
#[derive(Serialize, ToSchema)]
pub struct JourneyList {
    journeys: Vec<JourneySummary>,
}

/// A journey in the list (keys sorted, as they always were).
#[derive(Serialize, ToSchema)]
pub struct JourneySummary {
    /// Contacts in it now.
    active: usize,
    /// Its entries, described.
    entries: Vec<String>,
    name: String,
    paused: bool,
    schedules: Vec<Schedule>,
    /// How many steps.
    steps: usize,
    title: Option<String>,
    /// The version deployed (null if never stored).
    version: Option<String>,
}

/// A journey's figures: `GET /v1/journeys/{name}`.
#[derive(Serialize, ToSchema)]
pub struct JourneyDetail {
    /// Its entries, described (null when the version is not known).
    entries: Option<Vec<String>>,
    /// Whether the running program has it (false: removed, contacts in flight finish).
    in_program: bool,
    messages: Vec<MessageFigures>,
    name: String,
    paused: bool,
    schedules: Vec<Schedule>,
    steps: Vec<StepFigures>,
    title: Option<String>,
    totals: Totals,
    /// The current version.
    version: String,
    versions: Vec<VersionRow>,
}

/// Contacts across a journey's instances.
#[derive(Serialize, ToSchema)]
pub struct Totals {
    active: u64,
    completed: u64,
    converted: u64,
    entered: u64,
    exited: u64,
}

/// A message's figures.
#[derive(Serialize, ToSchema)]
pub struct MessageFigures {
    bounced: u64,
    channel: Option<&'static str>,
    clicked: u64,
    delivered: u64,
    failed: u64,
    message: String,
    opened: u64,
    received: u64,
    sent: u64,
    unsubscribed: u64,
}

/// A step's figures, by name across versions.
#[derive(Serialize, ToSchema)]
pub struct StepFigures {
    converted: u64,
    entered: u64,
    exited: u64,
    step: String,
    waiting: u64,
}

/// A version of a journey and its contacts.
#[derive(Serialize, ToSchema)]
pub struct VersionRow {
    active: u64,
    current: bool,
    instances: u64,
    version: String,
}

/// The body of an enrolment: one contact or several.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EnrollRequest {
    contact: Option<String>,
    contacts: Option<Vec<String>>,
}

/// The answer of an enrolment: per contact, whether it entered.
#[derive(Serialize, ToSchema)]
pub struct EnrollAnswer {
    results: Vec<Enrolled>,
}

#[derive(Serialize, ToSchema)]
pub struct Enrolled {
    contact: String,
    enrolled: bool,
    /// Why not, when not.
    reason: Option<&'static str>,
}

/// The answer of pause and resume.
#[derive(Serialize, ToSchema)]
pub struct Paused {
    journey: String,
    paused: bool,
    /// On resume, how many waiting contacts moved on (null on pause).
    resumed_contacts: Option<usize>,
}

/// The answer of `POST /v1/plan`.
#[derive(Serialize, ToSchema)]
pub struct PlanAnswer {
    plan: deploy::Plan,
    /// The plan for people.
    text: String,
    /// The journeys' warnings (as `journey check` shows them).
    warnings: String,
}

/// The answer of `POST /v1/deploy`.
#[derive(Serialize, ToSchema)]
pub struct DeployAnswer {
    changed: Vec<Changed>,
    /// Contacts moved to a new version.
    migrated: usize,
    /// Set when the journeys directory could not be updated.
    note: Option<String>,
    plan: deploy::Plan,
    text: String,
    warnings: String,
}

/// A journey whose version changed.
#[derive(Serialize, ToSchema)]
pub struct Changed {
    from: Option<String>,
    journey: String,
    to: String,
}

const NAME: &str = "The journey's name";
use std::collections::{BTreeMap, BTreeSet};

fn entry_kind(e: &EntryIr) -> String {
    e.describe()
}

/// A journey's scheduled entries (plans) with their last and next runs: `[{"entry":
/// "segment vip every monday 09:00", "last_run": …, "next_run": … or null}]`.
fn schedules(
    store: &crate::store::Store,
    name: &str,
    j: &JourneyIr,
    zone: chrono_tz::Tz,
) -> Result<Vec<Schedule>, ApiError> {
    let mut out = Vec::new();
    for (i, e) in j.entries.iter().enumerate() {
        if !matches!(e, EntryIr::SegmentAt { .. } | EntryIr::SegmentEvery { .. }) {
            continue;
        }
        let last = store
            .schedule_run(&crate::runtime::schedule_key(name, i))
            .map_err(store_err)?;
        let next = last.and_then(|l| crate::runtime::next_scheduled_run(e, l, zone));
        out.push(Schedule {
            entry: e.describe(),
            last_run: last.map(crate::runtime::fmt_time),
            next_run: next.map(crate::runtime::fmt_time),
        });
    }
    Ok(out)
}

/// `GET /v1/journeys`.
#[utoipa::path(
    get,
    path = "/v1/journeys",
    tag = tags::JOURNEYS,
    security(("bearer" = [])),
    responses((status = 200, description = "The journeys of the running program", body = JourneyList))
)]
pub async fn list(State(st): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Admin)?;
    let program = st.program();
    let store = st.store.clone();
    let paused = st.paused.read().unwrap_or_else(|e| e.into_inner()).clone();
    let zone = st.config.zone();
    let out = tokio::task::spawn_blocking(move || -> Result<Vec<JourneySummary>, ApiError> {
        // One pass over the instances for every journey's count.
        let mut active: BTreeMap<String, usize> = BTreeMap::new();
        for i in store.all_instances() {
            let i = i.map_err(store_err)?;
            if i.is_active() {
                *active.entry(i.journey).or_default() += 1;
            }
        }
        let mut out = Vec::new();
        for (name, j) in &program.journeys {
            out.push(JourneySummary {
                name: name.clone(),
                title: j.title.clone(),
                version: store.head(name).map_err(store_err)?,
                entries: j.entries.iter().map(entry_kind).collect(),
                schedules: schedules(&store, name, j, zone)?,
                paused: paused.contains(name),
                active: active.get(name).copied().unwrap_or(0),
                steps: j.steps.len(),
            });
        }
        Ok(out)
    })
    .await
    .map_err(store_err)??;
    Ok(Json(JourneyList { journeys: out }).into_response())
}

/// `GET /v1/journeys/{name}`: versions, per-step and per-message figures.
#[utoipa::path(
    get,
    path = "/v1/journeys/{name}",
    tag = tags::JOURNEYS,
    security(("bearer" = [])),
    params(("name" = String, Path, description = NAME)),
    responses(
        (status = 200, description = "The journey's figures", body = JourneyDetail),
        (status = 404, description = "No such journey", body = ErrorBody),
    )
)]
pub async fn show(
    State(st): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Admin)?;
    let program = st.program();
    let paused = st.is_paused(&name);
    let store = st.store.clone();
    let zone = st.config.zone();
    tokio::task::spawn_blocking(move || {
        let head = store.head(&name).map_err(store_err)?;
        let Some(head) = head else {
            return Err(ApiError::not_found(format!("no journey '{name}'")));
        };
        let current = match program.journeys.get(&name) {
            Some(j) => Some(j.clone()),
            None => store.version(&head).map_err(store_err)?,
        };
        // Per step, by name across versions.
        #[derive(Default)]
        struct StepFig {
            entered: u64,
            waiting: u64,
            exited: u64,
            converted: u64,
        }
        let mut steps: BTreeMap<String, StepFig> = BTreeMap::new();
        let mut versions: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut irs = BTreeMap::new();
        let mut contacts = BTreeSet::new();
        let mut sent: BTreeMap<String, u64> = BTreeMap::new();
        let (mut entered, mut active, mut converted, mut exited, mut completed) = (0, 0, 0, 0, 0);
        for inst in store.all_instances() {
            let inst = inst.map_err(store_err)?;
            if inst.journey != name {
                continue;
            }
            entered += 1;
            contacts.insert(inst.contact.clone());
            let v = versions.entry(inst.version.clone()).or_default();
            v.0 += 1;
            for p in &inst.path {
                steps.entry(p.clone()).or_default().entered += 1;
            }
            for (m, _, _) in &inst.sent {
                *sent.entry(m.clone()).or_default() += 1;
            }
            match inst.ended {
                None => {
                    active += 1;
                    v.1 += 1;
                    if !irs.contains_key(&inst.version) {
                        irs.insert(
                            inst.version.clone(),
                            store.version(&inst.version).map_err(store_err)?,
                        );
                    }
                    if let (Some(s), Some(Some(ir))) = (inst.step, irs.get(&inst.version)) {
                        if let Some(step) = ir.steps.get(s as usize) {
                            steps.entry(step.name.clone()).or_default().waiting += 1;
                        }
                    }
                }
                Some(reason) => {
                    let last = inst.path.last().cloned().unwrap_or_default();
                    let f = steps.entry(last).or_default();
                    f.exited += 1;
                    match reason {
                        EndReason::Converted => {
                            f.converted += 1;
                            converted += 1;
                        }
                        EndReason::Exited => exited += 1,
                        _ => completed += 1,
                    }
                }
            }
        }
        // Per message, from the contacts' events about this journey.
        let mut msgs: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
        for c in &contacts {
            for e in store.events_of(c).map_err(store_err)? {
                if e.journey.as_deref() != Some(name.as_str()) {
                    continue;
                }
                let Some(m) = e.message.clone() else { continue };
                let what = match e.kind.as_str() {
                    MESSAGE_SENT => "delivered",
                    MESSAGE_FAILED => "failed",
                    MESSAGE_BOUNCED | "bounced" => "bounced",
                    "opened" => "opened",
                    "clicked" => "clicked",
                    "received" => "received",
                    "unsubscribed" => "unsubscribed",
                    _ => continue,
                };
                *msgs.entry(m).or_default().entry(what).or_default() += 1;
            }
        }
        let messages: Vec<MessageFigures> = current
            .as_ref()
            .map(|j| j.messages.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .chain(msgs.keys().cloned())
            .chain(sent.keys().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|m| {
                let f = msgs.get(&m);
                let get = |k: &str| f.and_then(|f| f.get(k)).copied().unwrap_or(0);
                MessageFigures {
                    channel: current
                        .as_ref()
                        .and_then(|j| j.messages.get(&m))
                        .map(|x| x.channel.as_str()),
                    sent: sent.get(&m).copied().unwrap_or(0),
                    delivered: get("delivered"),
                    opened: get("opened"),
                    clicked: get("clicked"),
                    bounced: get("bounced"),
                    failed: get("failed"),
                    received: get("received"),
                    unsubscribed: get("unsubscribed"),
                    message: m,
                }
            })
            .collect();
        // Steps in the current version's order, then any only older versions have.
        let order: Vec<String> = current
            .as_ref()
            .map(|j| j.steps.iter().map(|s| s.name.clone()).collect())
            .unwrap_or_default();
        let mut names: Vec<String> = order.clone();
        names.extend(
            steps
                .keys()
                .filter(|k| !order.contains(k) && !k.is_empty())
                .cloned(),
        );
        let step_rows: Vec<StepFigures> = names
            .iter()
            .map(|n| {
                let f = steps.get(n);
                StepFigures {
                    step: n.clone(),
                    entered: f.map_or(0, |f| f.entered),
                    waiting: f.map_or(0, |f| f.waiting),
                    exited: f.map_or(0, |f| f.exited),
                    converted: f.map_or(0, |f| f.converted),
                }
            })
            .collect();
        let schedules = match &current {
            Some(j) => schedules(&store, &name, j, zone)?,
            None => Vec::new(),
        };
        let version_rows: Vec<VersionRow> = versions
            .iter()
            .map(|(v, (n, a))| VersionRow {
                version: v.clone(),
                current: *v == head,
                instances: *n,
                active: *a,
            })
            .collect();
        Ok(Json(JourneyDetail {
            title: current.as_ref().and_then(|j| j.title.clone()),
            in_program: program.journeys.contains_key(&name),
            entries: current
                .as_ref()
                .map(|j| j.entries.iter().map(entry_kind).collect::<Vec<_>>()),
            name,
            version: head,
            paused,
            schedules,
            versions: version_rows,
            totals: Totals {
                entered,
                active,
                converted,
                exited,
                completed,
            },
            steps: step_rows,
            messages,
        })
        .into_response())
    })
    .await
    .map_err(store_err)?
}

/// `POST /v1/journeys/{name}/enroll` with `{"contact": "id"}` or `{"contacts": [...]}`:
/// for journeys with `entry api`.
#[utoipa::path(
    post,
    path = "/v1/journeys/{name}/enroll",
    tag = tags::JOURNEYS,
    security(("bearer" = [])),
    params(("name" = String, Path, description = NAME)),
    request_body(content = EnrollRequest, description = "`{\"contact\": \"id\"}` or `{\"contacts\": [\"id\", …]}`"),
    responses(
        (status = 200, description = "Per contact, whether it entered", body = EnrollAnswer),
        (status = 404, description = "No such journey", body = ErrorBody),
        (status = 409, description = "The journey has no `entry api`, or is paused", body = ErrorBody),
    )
)]
pub async fn enroll(
    State(st): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Admin)?;
    let v = json_body(&st, body)?;
    let program = st.program();
    let Some(j) = program.journeys.get(&name) else {
        return Err(ApiError::not_found(format!("no journey '{name}'")));
    };
    if !j.entries.iter().any(|e| matches!(e, EntryIr::Api)) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_api_entry",
            format!("journey '{name}' is not entered through the API (add `entry api`)"),
        ));
    }
    if st.is_paused(&name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "paused",
            format!("journey '{name}' is paused: no new entries until it is resumed"),
        ));
    }
    let mut contacts: Vec<String> = Vec::new();
    if let Some(c) = v.get("contact").and_then(Value::as_str) {
        contacts.push(c.to_string());
    }
    if let Some(Value::Array(a)) = v.get("contacts") {
        for c in a {
            match c.as_str() {
                Some(s) => contacts.push(s.to_string()),
                None => {
                    return Err(ApiError::bad_request(
                        "invalid_enroll",
                        "contacts are ids (text)",
                    ))
                }
            }
        }
    }
    if contacts.is_empty() || contacts.iter().any(|c| c.trim().is_empty()) {
        return Err(ApiError::bad_request(
            "invalid_enroll",
            "send {\"contact\": \"id\"} or {\"contacts\": [\"id\", …]}",
        ));
    }
    if let Some(p) = contacts
        .iter()
        .find_map(|c| crate::engine::contact_id_problem(c))
    {
        return Err(ApiError::bad_request("invalid_contact", p));
    }
    super::api::check_batch_len(contacts.len(), &st.config.server)?;
    let count = |store: &crate::store::Store, c: &str| -> usize {
        store
            .instances_of(c)
            .map(|v| v.iter().filter(|i| i.journey == name).count())
            .unwrap_or(0)
    };
    let before: Vec<usize> = contacts.iter().map(|c| count(&st.store, c)).collect();
    let inputs = contacts
        .iter()
        .map(|c| Input::Enroll {
            journey: name.clone(),
            contact: c.clone(),
        })
        .collect();
    st.submit(inputs).await?;
    let results: Vec<Enrolled> = contacts
        .iter()
        .zip(before)
        .map(|(c, b)| {
            let entered = count(&st.store, c) > b;
            Enrolled {
                contact: c.clone(),
                enrolled: entered,
                reason: (!entered).then_some("the journey's reentry rule keeps this contact out"),
            }
        })
        .collect();
    Ok(Json(EnrollAnswer { results }).into_response())
}

async fn set_paused(
    st: Shared,
    name: String,
    headers: HeaderMap,
    pause: bool,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Admin)?;
    let waiting = pause_or_resume(&st, &name, pause).await?;
    Ok(Json(Paused {
        journey: name,
        paused: pause,
        resumed_contacts: (!pause).then_some(waiting),
    })
    .into_response())
}

/// Pauses or resumes a journey on the engine's thread; on resume, how many waiting contacts
/// moved on (the API's and the console's).
pub(crate) async fn pause_or_resume(
    st: &Shared,
    name: &str,
    pause: bool,
) -> Result<usize, ApiError> {
    let name = name.to_string();
    let known = st.program().journeys.contains_key(&name)
        || st.store.head(&name).map_err(store_err)?.is_some();
    if !known {
        return Err(ApiError::not_found(format!("no journey '{name}'")));
    }
    let n = name.clone();
    let st2 = st.clone();
    let r = st
        .control(move |rt, sink, now, timeline| {
            let r = if pause {
                rt.pause(&n).map(|_| 0)
            } else {
                rt.resume(&n, now, sink, timeline)
            };
            st2.refresh(rt);
            r
        })
        .await?;
    r.map_err(store_err)
}

/// `POST /v1/journeys/{name}/pause`: no new entries, nobody moves on, until resumed.
#[utoipa::path(
    post,
    path = "/v1/journeys/{name}/pause",
    tag = tags::JOURNEYS,
    security(("bearer" = [])),
    params(("name" = String, Path, description = NAME)),
    responses(
        (status = 200, description = "Paused", body = Paused),
        (status = 404, description = "No such journey", body = ErrorBody),
    )
)]
pub async fn pause(
    State(st): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    set_paused(st, name, headers, true).await
}

/// `POST /v1/journeys/{name}/resume`: the waiting contacts whose time came move on.
#[utoipa::path(
    post,
    path = "/v1/journeys/{name}/resume",
    tag = tags::JOURNEYS,
    security(("bearer" = [])),
    params(("name" = String, Path, description = NAME)),
    responses(
        (status = 200, description = "Resumed", body = Paused),
        (status = 404, description = "No such journey", body = ErrorBody),
    )
)]
pub async fn resume(
    State(st): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    set_paused(st, name, headers, false).await
}

/// Deploys a compiled program on the engine's thread.
pub async fn deploy_program(st: &Shared, program: Program) -> Result<DeployReport, ApiError> {
    let st2 = st.clone();
    let r = st
        .control(move |rt, _, now, _| {
            let r = apply_program(rt, program, now);
            st2.refresh(rt);
            r
        })
        .await?;
    r.map_err(|e| match e {
        RuntimeError::MigrationGap { .. } => {
            ApiError::new(StatusCode::CONFLICT, "migration_refused", e.to_string())
        }
        other => store_err(other),
    })
}

fn bundle_from(v: Value) -> Result<Bundle, ApiError> {
    serde_json::from_value(v).map_err(|e| {
        ApiError::bad_request(
            "invalid_bundle",
            format!("a deploy is {{\"files\": [{{\"path\": \"welcome.journey\", \"text\": \"…\"}}]}}: {e}"),
        )
    })
}

async fn build(st: &Shared, bundle: Bundle) -> Result<(Program, deploy::Plan, String), ApiError> {
    let built = tokio::task::spawn_blocking(move || deploy::build_bundle(&bundle))
        .await
        .map_err(store_err)?
        .map_err(|e| ApiError::bad_request("invalid_bundle", e))?;
    let Some(program) = built.program else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "compile_errors",
            format!(
                "refused: {} error{} in the journeys; the running versions keep running\n{}",
                built.errors,
                if built.errors == 1 { "" } else { "s" },
                built.human
            ),
        )
        .with_details(json!({"diagnostics": built.json, "human": built.human})));
    };
    let store = st.store.clone();
    let current = st.program();
    let p = program.clone();
    let zone = st.config.zone();
    let (plan, past) = tokio::task::spawn_blocking(move || {
        let plan = deploy::plan(&store, &current, &p)?;
        let past = crate::runtime::past_plans(&store, &p, super::now_ms(), zone)?;
        Ok::<_, anyhow::Error>((plan, past))
    })
    .await
    .map_err(store_err)?
    .map_err(store_err)?;
    let mut warnings = built.human;
    for w in past {
        warnings.push_str(&format!("warning: {w}\n"));
    }
    Ok((program, plan, warnings))
}

/// `POST /v1/plan` with a bundle: what a deploy would change.
#[utoipa::path(
    post,
    path = "/v1/plan",
    tag = tags::JOURNEYS,
    security(("bearer" = [])),
    request_body(content = Bundle, description = "The journeys' files"),
    responses(
        (status = 200, description = "What a deploy would change", body = PlanAnswer),
        (status = 422, description = "The journeys have errors (`details`: the diagnostics)", body = ErrorBody),
    )
)]
pub async fn plan(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Admin)?;
    let bundle = bundle_from(json_body(&st, body)?)?;
    let (_, plan, warnings) = build(&st, bundle).await?;
    let text = deploy::render_plan(&plan);
    Ok(Json(PlanAnswer {
        plan,
        text,
        warnings,
    })
    .into_response())
}

/// `POST /v1/deploy` with a bundle: compiles, refuses errors and stranding migrations,
/// deploys, and writes the files into the journeys directory (what a restart or SIGHUP loads).
#[utoipa::path(
    post,
    path = "/v1/deploy",
    tag = tags::JOURNEYS,
    security(("bearer" = [])),
    request_body(content = Bundle, description = "The journeys' files"),
    responses(
        (status = 200, description = "Deployed", body = DeployAnswer),
        (status = 409, description = "A migration would strand contacts (`details.plan`)", body = ErrorBody),
        (status = 422, description = "The journeys have errors (`details`: the diagnostics)", body = ErrorBody),
    )
)]
pub async fn deploy(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Admin)?;
    let bundle = bundle_from(json_body(&st, body)?)?;
    let (program, plan, warnings) = build(&st, bundle.clone()).await?;
    if let Some(r) = plan.journeys.iter().find_map(|j| j.refused.clone()) {
        return Err(ApiError::new(StatusCode::CONFLICT, "migration_refused", r)
            .with_details(json!({"plan": plan})));
    }
    let report = deploy_program(&st, program).await?;
    let dir = st.config.journeys_dir.clone();
    let written = tokio::task::spawn_blocking(move || deploy::sync_dir(&bundle, &dir))
        .await
        .map_err(store_err)?;
    if let Ok(removed) = &written {
        for r in removed {
            tracing::info!(file = %r, "removed from the journeys folder: not in the deploy");
        }
    }
    let note = written.err().map(|e| {
        tracing::warn!("deployed, but the journeys directory was not updated: {e}");
        format!("deployed, but the journeys directory was not updated ({e}): a restart would load the old files")
    });
    for c in &report.changed {
        tracing::info!(journey = %c.journey, from = c.from.as_deref().unwrap_or("-"), to = %c.to, "deployed through the API");
    }
    let text = deploy::render_plan(&plan);
    Ok(Json(DeployAnswer {
        plan,
        text,
        changed: report
            .changed
            .iter()
            .map(|c| Changed {
                journey: c.journey.clone(),
                from: c.from.clone(),
                to: c.to.clone(),
            })
            .collect(),
        migrated: report.migrated,
        warnings,
        note,
    })
    .into_response())
}
