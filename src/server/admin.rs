//! Admin endpoints (scope `admin`): journeys and their figures, enrolments, pause and
//! resume, plans and deploys.

use super::api::store_err;
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
use serde_json::{json, Value};
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
) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    for (i, e) in j.entries.iter().enumerate() {
        if !matches!(e, EntryIr::SegmentAt { .. } | EntryIr::SegmentEvery { .. }) {
            continue;
        }
        let last = store
            .schedule_run(&crate::runtime::schedule_key(name, i))
            .map_err(store_err)?;
        let next = last.and_then(|l| crate::runtime::next_scheduled_run(e, l, zone));
        out.push(json!({
            "entry": e.describe(),
            "last_run": last.map(crate::runtime::fmt_time),
            "next_run": next.map(crate::runtime::fmt_time),
        }));
    }
    Ok(out)
}

/// `GET /v1/journeys`.
pub async fn list(State(st): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Admin)?;
    let program = st.program();
    let store = st.store.clone();
    let paused = st.paused.read().unwrap_or_else(|e| e.into_inner()).clone();
    let zone = st.config.zone();
    let out = tokio::task::spawn_blocking(move || -> Result<Vec<Value>, ApiError> {
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
            out.push(json!({
                "name": name,
                "title": j.title,
                "version": store.head(name).map_err(store_err)?,
                "entries": j.entries.iter().map(entry_kind).collect::<Vec<_>>(),
                "schedules": schedules(&store, name, j, zone)?,
                "paused": paused.contains(name),
                "active": active.get(name).copied().unwrap_or(0),
                "steps": j.steps.len(),
            }));
        }
        Ok(out)
    })
    .await
    .map_err(store_err)??;
    Ok(Json(json!({"journeys": out})).into_response())
}

/// `GET /v1/journeys/{name}`: versions, per-step and per-message figures.
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
                        irs.insert(inst.version.clone(), store.version(&inst.version).map_err(store_err)?);
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
        let messages: Vec<Value> = current
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
                json!({
                    "message": m,
                    "channel": current.as_ref().and_then(|j| j.messages.get(&m)).map(|x| x.channel.as_str()),
                    "sent": sent.get(&m).copied().unwrap_or(0),
                    "delivered": get("delivered"),
                    "opened": get("opened"),
                    "clicked": get("clicked"),
                    "bounced": get("bounced"),
                    "failed": get("failed"),
                    "received": get("received"),
                    "unsubscribed": get("unsubscribed"),
                })
            })
            .collect();
        // Steps in the current version's order, then any only older versions have.
        let order: Vec<String> = current
            .as_ref()
            .map(|j| j.steps.iter().map(|s| s.name.clone()).collect())
            .unwrap_or_default();
        let mut names: Vec<String> = order.clone();
        names.extend(steps.keys().filter(|k| !order.contains(k) && !k.is_empty()).cloned());
        let step_rows: Vec<Value> = names
            .iter()
            .map(|n| {
                let f = steps.get(n);
                json!({
                    "step": n,
                    "entered": f.map_or(0, |f| f.entered),
                    "waiting": f.map_or(0, |f| f.waiting),
                    "exited": f.map_or(0, |f| f.exited),
                    "converted": f.map_or(0, |f| f.converted),
                })
            })
            .collect();
        let schedules = match &current {
            Some(j) => schedules(&store, &name, j, zone)?,
            None => Vec::new(),
        };
        let version_rows: Vec<Value> = versions
            .iter()
            .map(|(v, (n, a))| json!({"version": v, "current": *v == head, "instances": n, "active": a}))
            .collect();
        Ok(Json(json!({
            "name": name,
            "title": current.as_ref().and_then(|j| j.title.clone()),
            "version": head,
            "in_program": program.journeys.contains_key(&name),
            "paused": paused,
            "entries": current.as_ref().map(|j| j.entries.iter().map(entry_kind).collect::<Vec<_>>()),
            "schedules": schedules,
            "versions": version_rows,
            "totals": {"entered": entered, "active": active, "converted": converted, "exited": exited, "completed": completed},
            "steps": step_rows,
            "messages": messages,
        }))
        .into_response())
    })
    .await
    .map_err(store_err)?
}

/// `POST /v1/journeys/{name}/enroll` with `{"contact": "id"}` or `{"contacts": [...]}`:
/// for journeys with `entry api`.
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
    let results: Vec<Value> = contacts
        .iter()
        .zip(before)
        .map(|(c, b)| {
            let entered = count(&st.store, c) > b;
            json!({"contact": c, "enrolled": entered, "reason": if entered { Value::Null } else { json!("the journey's reentry rule keeps this contact out") }})
        })
        .collect();
    Ok(Json(json!({"results": results})).into_response())
}

async fn set_paused(
    st: Shared,
    name: String,
    headers: HeaderMap,
    pause: bool,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Admin)?;
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
    let waiting = r.map_err(store_err)?;
    Ok(Json(json!({"journey": name, "paused": pause, "resumed_contacts": if pause { Value::Null } else { json!(waiting) }})).into_response())
}

pub async fn pause(
    State(st): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    set_paused(st, name, headers, true).await
}

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
pub async fn plan(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Admin)?;
    let bundle = bundle_from(json_body(&st, body)?)?;
    let (_, plan, warnings) = build(&st, bundle).await?;
    let text = deploy::render_plan(&plan);
    Ok(Json(json!({"plan": plan, "text": text, "warnings": warnings})).into_response())
}

/// `POST /v1/deploy` with a bundle: compiles, refuses errors and stranding migrations,
/// deploys, and writes the files into the journeys directory (what a restart or SIGHUP loads).
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
    Ok(Json(json!({
        "plan": plan,
        "text": text,
        "changed": report.changed,
        "migrated": report.migrated,
        "warnings": warnings,
        "note": note,
    }))
    .into_response())
}
