//! Deploys: journey files (with their templates) compiled into a program, and the plan of
//! what loading it would change: per journey, the steps added, removed and changed, and how
//! many contacts in flight each change touches. The daemon's deploy API and `journey plan`
//! (offline, on a data directory) both use it.

use crate::compile::ir::{JourneyIr, Next, Program, StepKindIr};
use crate::compile::{self};
use crate::engine::step::migration_gaps;
use crate::lang::{self, diagnostic};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// Files as the client sends them: paths relative to the journeys directory
/// (`welcome.journey`, `templates/welcome.html`).
#[derive(Debug, Clone, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct Bundle {
    pub files: Vec<BundleFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BundleFile {
    pub path: String,
    pub text: String,
}

/// Reads a journeys directory into a bundle: every `*.journey` file and everything under a
/// `templates/` folder.
pub fn bundle_dir(dir: &Path) -> anyhow::Result<Bundle> {
    let mut files = Vec::new();
    for e in walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
    {
        let e = e?;
        if !e.file_type().is_file() {
            continue;
        }
        let rel = e.path().strip_prefix(dir)?;
        let is_journey = rel.extension().is_some_and(|x| x == "journey");
        let in_templates = rel.components().any(|c| c.as_os_str() == "templates");
        if !(is_journey || in_templates) {
            continue;
        }
        let text = std::fs::read_to_string(e.path())
            .map_err(|err| anyhow::anyhow!("{}: {err}", e.path().display()))?;
        files.push(BundleFile {
            path: rel.to_string_lossy().replace('\\', "/"),
            text,
        });
    }
    Ok(Bundle { files })
}

/// A relative path that stays inside its folder.
fn safe_relative(p: &str) -> Option<PathBuf> {
    let path = Path::new(p);
    if p.is_empty() || path.is_absolute() {
        return None;
    }
    path.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| path.to_path_buf())
}

/// Writes a bundle into a directory (which must exist).
pub fn write_bundle(bundle: &Bundle, dir: &Path) -> Result<(), String> {
    for f in &bundle.files {
        let rel = safe_relative(&f.path).ok_or_else(|| {
            format!(
                "{}: a file path must be relative and stay inside the journeys folder",
                f.path
            )
        })?;
        let to = dir.join(rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", f.path))?;
        }
        std::fs::write(&to, &f.text).map_err(|e| format!("{}: {e}", f.path))?;
    }
    Ok(())
}

/// Makes a journeys directory hold what was deployed: the bundle's files written, and
/// `*.journey` files the bundle no longer has removed (so a restart does not bring them back).
pub fn sync_dir(bundle: &Bundle, dir: &Path) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    write_bundle(bundle, dir)?;
    let keep: std::collections::HashSet<PathBuf> = bundle
        .files
        .iter()
        .filter_map(|f| safe_relative(&f.path))
        .collect();
    let mut removed = Vec::new();
    for e in walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
    {
        let p = e.path();
        if !e.file_type().is_file() || p.extension().is_none_or(|x| x != "journey") {
            continue;
        }
        let Ok(rel) = p.strip_prefix(dir) else {
            continue;
        };
        if !keep.contains(rel) {
            std::fs::remove_file(p).map_err(|err| format!("{}: {err}", p.display()))?;
            removed.push(rel.display().to_string());
        }
    }
    Ok(removed)
}

/// A compiled bundle: the program, or the diagnostics that refuse it.
pub struct Built {
    pub program: Option<Program>,
    /// Rendered for people (file:line:col, the line, a caret, a hint).
    pub human: String,
    /// One JSON object per diagnostic.
    pub json: Vec<Value>,
    pub errors: usize,
}

/// Compiles the journey files of a directory.
pub fn build_dir(dir: &Path) -> Built {
    let files = match lang::journey_files(&[dir.to_path_buf()]) {
        Ok(f) => f,
        Err(e) => {
            return Built {
                program: None,
                human: format!("error: {e}\n"),
                json: vec![serde_json::json!({"severity": "error", "message": e})],
                errors: 1,
            }
        }
    };
    let loaded = lang::load_files(&files);
    let compiled = compile::compile(&loaded);
    let errors = compiled.diagnostics.iter().filter(|d| d.is_error()).count();
    let strip = |s: String| {
        let prefix = format!("{}/", dir.display());
        s.replace(&prefix, "")
    };
    let human = strip(diagnostic::render_human(
        &loaded.sources,
        &compiled.diagnostics,
        false,
    ));
    let json = strip(diagnostic::render_json(
        &loaded.sources,
        &compiled.diagnostics,
    ))
    .lines()
    .filter_map(|l| serde_json::from_str(l).ok())
    .collect();
    Built {
        program: compiled.program,
        human,
        json,
        errors,
    }
}

/// Compiles a bundle in a scratch directory, so templates resolve as they do on disk.
pub fn build_bundle(bundle: &Bundle) -> Result<Built, String> {
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    write_bundle(bundle, scratch.path())?;
    Ok(build_dir(scratch.path()))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Plan {
    pub journeys: Vec<JourneyPlan>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct JourneyPlan {
    pub name: String,
    /// `new`, `changed`, `unchanged` or `removed` (no longer in the files: no new entries;
    /// contacts in flight finish).
    pub status: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub migrate_by_name: bool,
    /// Contacts in the journey now (on any version).
    pub in_flight: usize,
    pub steps: Vec<StepChange>,
    /// Why the deploy would be refused, if it would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StepChange {
    pub step: String,
    /// `added`, `removed` or `changed`.
    pub change: String,
    /// Contacts at this step now (waiting, or held at a send).
    pub contacts: usize,
}

/// What a step does, with its successors named rather than numbered and its message's
/// content included, so two versions' steps compare by meaning.
fn step_signature(j: &JourneyIr, idx: usize) -> Value {
    let step = &j.steps[idx];
    let name = |n: &Next| match n {
        Some(id) => Value::String(j.step(*id).name.clone()),
        None => Value::Null,
    };
    let mut v = serde_json::to_value(&step.kind).expect("IR serializes");
    let body = v
        .as_object_mut()
        .and_then(|o| o.values_mut().next())
        .and_then(|b| b.as_object_mut());
    if let Some(b) = body {
        match &step.kind {
            StepKindIr::Send { next, message } => {
                b.insert("next".into(), name(next));
                b.insert(
                    "message_ir".into(),
                    serde_json::to_value(j.messages.get(message)).expect("IR serializes"),
                );
            }
            StepKindIr::Wait { next, .. }
            | StepKindIr::WaitUntil { next, .. }
            | StepKindIr::Set { next, .. }
            | StepKindIr::Compute { next, .. } => {
                b.insert("next".into(), name(next));
            }
            StepKindIr::Check { yes, no, .. } | StepKindIr::WaitEvent { yes, no, .. } => {
                b.insert("yes".into(), name(yes));
                b.insert("no".into(), name(no));
            }
            StepKindIr::Branch { arms, otherwise } => {
                let arms: Vec<Value> = arms
                    .iter()
                    .map(|(c, n)| {
                        serde_json::json!([
                            serde_json::to_value(c).expect("IR serializes"),
                            name(n)
                        ])
                    })
                    .collect();
                b.insert("arms".into(), Value::Array(arms));
                b.insert("otherwise".into(), name(otherwise));
            }
            StepKindIr::Split { arms } => {
                let arms: Vec<Value> = arms
                    .iter()
                    .map(|a| serde_json::json!({"name": a.name, "basis_points": a.basis_points, "next": name(&a.next)}))
                    .collect();
                b.insert("arms".into(), Value::Array(arms));
            }
            StepKindIr::Experiment { arms, .. } => {
                let arms: Vec<Value> = arms
                    .iter()
                    .map(|a| serde_json::json!({"name": a.name, "basis_points": a.basis_points, "next": name(&a.next), "messages": a.messages}))
                    .collect();
                b.insert("arms".into(), Value::Array(arms));
            }
        }
    }
    v
}

/// Active contacts of a journey by the name of the step they are at.
pub fn contacts_by_step(
    store: &Store,
    journey: &str,
) -> anyhow::Result<(usize, BTreeMap<String, usize>)> {
    let mut versions: BTreeMap<String, Option<JourneyIr>> = BTreeMap::new();
    let mut by_step = BTreeMap::new();
    let active = store.active_of(journey)?;
    for inst in &active {
        let Some(step) = inst.step else { continue };
        if !versions.contains_key(&inst.version) {
            versions.insert(inst.version.clone(), store.version(&inst.version)?);
        }
        if let Some(Some(ir)) = versions.get(&inst.version) {
            if let Some(s) = ir.steps.get(step as usize) {
                *by_step.entry(s.name.clone()).or_default() += 1;
            }
        }
    }
    Ok((active.len(), by_step))
}

/// What deploying `new` over what the store runs would change.
pub fn plan(store: &Store, current: &Program, new: &Program) -> anyhow::Result<Plan> {
    let mut journeys = Vec::new();
    for (name, ir) in &new.journeys {
        let to = ir.content_hash();
        let from = store.head(name)?;
        let (in_flight, by_step) = contacts_by_step(store, name)?;
        let old = match &from {
            Some(h) => store.version(h)?,
            None => None,
        };
        let mut steps = Vec::new();
        let status = match (&from, &old) {
            (Some(h), _) if *h == to => "unchanged",
            (Some(_), Some(old)) => {
                for (i, s) in old.steps.iter().enumerate() {
                    match ir.step_by_name(&s.name) {
                        None => steps.push(StepChange {
                            step: s.name.clone(),
                            change: "removed".into(),
                            contacts: by_step.get(&s.name).copied().unwrap_or(0),
                        }),
                        Some(n) => {
                            if step_signature(old, i) != step_signature(ir, n as usize) {
                                steps.push(StepChange {
                                    step: s.name.clone(),
                                    change: "changed".into(),
                                    contacts: by_step.get(&s.name).copied().unwrap_or(0),
                                });
                            }
                        }
                    }
                }
                for s in &ir.steps {
                    if old.step_by_name(&s.name).is_none() {
                        steps.push(StepChange {
                            step: s.name.clone(),
                            change: "added".into(),
                            contacts: 0,
                        });
                    }
                }
                "changed"
            }
            _ => {
                for s in &ir.steps {
                    steps.push(StepChange {
                        step: s.name.clone(),
                        change: "added".into(),
                        contacts: 0,
                    });
                }
                "new"
            }
        };
        let refused = match (&old, status) {
            (Some(old), "changed") if ir.migrate_by_name => {
                let gaps = migration_gaps(old, ir);
                (!gaps.is_empty()).then(|| {
                    format!(
                        "journey '{name}' says `migrate by name`, but its new version has no step named {}: contacts wait there",
                        gaps.join(", ")
                    )
                })
            }
            _ => None,
        };
        journeys.push(JourneyPlan {
            name: name.clone(),
            status: status.into(),
            from,
            to: Some(to),
            migrate_by_name: ir.migrate_by_name,
            in_flight,
            steps,
            refused,
        });
    }
    for name in current.journeys.keys() {
        if !new.journeys.contains_key(name) {
            let (in_flight, _) = contacts_by_step(store, name)?;
            journeys.push(JourneyPlan {
                name: name.clone(),
                status: "removed".into(),
                from: store.head(name)?,
                to: None,
                migrate_by_name: false,
                in_flight,
                steps: Vec::new(),
                refused: None,
            });
        }
    }
    Ok(Plan { journeys })
}

/// The plan for people, like `terraform plan`.
pub fn render_plan(plan: &Plan) -> String {
    let mut o = String::new();
    let short = |h: &Option<String>| {
        h.as_deref()
            .map(|s| &s[..s.len().min(8)])
            .unwrap_or("-")
            .to_string()
    };
    let (mut new, mut changed, mut removed, mut unchanged) = (0, 0, 0, 0);
    for j in &plan.journeys {
        match j.status.as_str() {
            "unchanged" => {
                unchanged += 1;
                continue;
            }
            "new" => {
                new += 1;
                o.push_str(&format!(
                    "+ journey {} (new, version {})\n",
                    j.name,
                    short(&j.to)
                ));
            }
            "removed" => {
                removed += 1;
                o.push_str(&format!(
                    "- journey {} (no longer in the files: no new entries; {} contact{} in flight finish)\n",
                    j.name,
                    j.in_flight,
                    if j.in_flight == 1 { "" } else { "s" }
                ));
                continue;
            }
            _ => {
                changed += 1;
                let one = j.in_flight == 1;
                let flight = if j.migrate_by_name {
                    format!(
                        "migrate by name: {} contact{} in flight move{} to the new version",
                        j.in_flight,
                        if one { "" } else { "s" },
                        if one { "s" } else { "" }
                    )
                } else {
                    format!(
                        "{} contact{} in flight finish{} on their version",
                        j.in_flight,
                        if one { "" } else { "s" },
                        if one { "es" } else { "" }
                    )
                };
                o.push_str(&format!(
                    "~ journey {} (version {} → {}; {flight})\n",
                    j.name,
                    short(&j.from),
                    short(&j.to)
                ));
            }
        }
        for s in &j.steps {
            let mark = match s.change.as_str() {
                "added" => '+',
                "removed" => '-',
                _ => '~',
            };
            let who = if s.contacts > 0 {
                format!(
                    "  ({} contact{} at this step)",
                    s.contacts,
                    if s.contacts == 1 { "" } else { "s" }
                )
            } else {
                String::new()
            };
            o.push_str(&format!("    {mark} step {}{who}\n", s.step));
        }
        if let Some(r) = &j.refused {
            o.push_str(&format!("    ! refused: {r}\n"));
        }
    }
    o.push_str(&format!(
        "Plan: {new} new, {changed} changed, {removed} removed, {unchanged} unchanged.\n"
    ));
    o
}
