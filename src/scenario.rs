//! Scenario files (`*.scenario.yaml`): contacts and events replayed against journeys on a
//! virtual clock, through the same runtime, store and engine as the daemon (sled in a
//! temporary directory, deliveries into memory), and the expectations they must meet.

use crate::compile;
use crate::engine::{Contact, Event, Happening, Millis, TimelineEntry};
use crate::lang::{self, diagnostic};
use crate::runtime::Clock;
use crate::runtime::VirtualClock;
use crate::runtime::{self, fmt_time, Input, MemorySink, Runtime};
use crate::store::Store;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    pub journeys: Vec<PathBuf>,
    pub start: String,
    #[serde(default)]
    pub contacts: Vec<Map<String, Value>>,
    #[serde(default)]
    pub events: Vec<ScenarioEvent>,
    pub until: String,
    #[serde(default)]
    pub expect: Vec<Expectation>,
    /// The zone for contacts without one (default UTC).
    #[serde(default)]
    pub timezone: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioEvent {
    pub at: String,
    pub contact: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub properties: Map<String, Value>,
    #[serde(default)]
    pub context: Option<String>,
    #[serde(default)]
    pub journey: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub link: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub contact: String,
    #[serde(default)]
    pub sent: Option<Vec<String>>,
    /// Message name → its delivery time, or the list of the times of each of its deliveries.
    #[serde(default)]
    pub sent_at: Option<BTreeMap<String, SentAt>>,
    #[serde(default)]
    pub path: Option<Vec<String>>,
    #[serde(default)]
    pub ended: Option<bool>,
    /// The segments the contact belongs to at `until`, as the runtime keeps them (any order).
    #[serde(default)]
    pub segments: Option<Vec<String>>,
    /// The messages suppressed for want of consent, in order.
    #[serde(default)]
    pub suppressed: Option<Vec<String>>,
    /// Profile keys and the values they hold at `until` (a key missing from the profile is
    /// `null`).
    #[serde(default)]
    pub profile: Option<Map<String, Value>>,
}

/// When a message was delivered: once (its first delivery), or each time, in order.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum SentAt {
    One(String),
    Each(Vec<String>),
}

/// A scenario that could not run: the file, where, and why.
#[derive(Debug)]
pub struct ScenarioError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
    /// The text of that line, shown under the message.
    pub source_line: Option<String>,
}

impl ScenarioError {
    fn new(file: &Path, text: Option<&str>, line: Option<usize>, message: String) -> Self {
        let source_line = line
            .zip(text)
            .and_then(|(l, t)| t.lines().nth(l.checked_sub(1)?))
            .map(str::to_string);
        ScenarioError {
            file: file.to_path_buf(),
            line,
            message,
            source_line,
        }
    }
}

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.file.display(), self.message)?,
            None => write!(f, "{}: {}", self.file.display(), self.message)?,
        }
        if let (Some(l), Some(src)) = (self.line, &self.source_line) {
            write!(f, "\n {l:>4} | {src}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScenarioError {}

/// ` (did you mean 'x'?)` when one of `known` is close to `name`.
fn did_you_mean<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    crate::lang::diagnostic::did_you_mean(name, known)
        .map(|h| format!(" ({h})"))
        .unwrap_or_default()
}

/// One expectation that did not hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub contact: String,
    pub what: String,
    pub expected: String,
    pub actual: String,
}

/// What a scenario run produced.
#[derive(Debug, Default)]
pub struct Outcome {
    pub timeline: Vec<TimelineEntry>,
    pub failures: Vec<Failure>,
    pub expectations: usize,
    /// Delivered message names per contact, in order, with their times.
    pub sent: BTreeMap<String, Vec<(String, Millis)>>,
}

/// A time in a scenario: RFC 3339, or relative to the start (`+1h`, `-30d`, `+1d12h`).
pub fn parse_time(text: &str, start: Millis) -> Result<Millis, String> {
    let t = text.trim();
    if let Some(rest) = t.strip_prefix('+').or_else(|| t.strip_prefix('-')) {
        let secs = lang::parse::parse_duration_text(rest).ok_or_else(|| {
            format!("'{t}' is not a time: write +1h, -30d or 2026-03-01T09:00:00Z")
        })?;
        let sign = if t.starts_with('-') { -1 } else { 1 };
        // Beyond ±10,000 years is no scenario's time, and would overflow the clock.
        return secs
            .checked_mul(1000)
            .filter(|ms| *ms <= MAX_OFFSET_MS)
            .and_then(|ms| start.checked_add(sign * ms))
            .ok_or_else(|| format!("'{t}' is too far from the start"));
    }
    parse_absolute(t)
}

/// A year at its longest, for the bounds below.
const YEAR_MS: Millis = 366 * 86_400_000;

const MAX_OFFSET_MS: Millis = 10_000 * YEAR_MS;

/// How long a scenario may span. A weekly schedule over 10 years runs in seconds; over 100
/// (a year mistyped) it ran for 9 minutes, found by fuzzing `fuzz/`'s `scenario` target.
const MAX_SPAN_YEARS: i64 = 10;
const MAX_SPAN_MS: Millis = MAX_SPAN_YEARS * YEAR_MS;

/// An absolute time: RFC 3339 (`2026-03-01T09:00:00Z`, `2026-03-01T10:00:00+01:00`).
fn parse_absolute(t: &str) -> Result<Millis, String> {
    crate::engine::calendar::parse_rfc3339(t)
        .ok_or_else(|| format!("'{t}' is not a time: write 2026-03-01T09:00:00Z, +1h or -30d"))
}

/// The line of the `index`-th item of the top-level list `key:` in YAML source, for errors.
fn item_line(source: &str, key: &str, index: usize) -> Option<usize> {
    let mut lines = source.lines().enumerate();
    let (key_line, _) = lines
        .by_ref()
        .find(|(_, l)| l.starts_with(&format!("{key}:")))?;
    let mut item_indent: Option<usize> = None;
    let mut count = 0;
    for (n, l) in source.lines().enumerate().skip(key_line + 1) {
        let trimmed = l.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = l.len() - trimmed.len();
        if indent == 0 && !trimmed.starts_with('-') {
            break;
        }
        if trimmed.starts_with("- ") || trimmed == "-" {
            if item_indent.is_none() {
                item_indent = Some(indent);
            }
            if Some(indent) == item_indent {
                if count == index {
                    return Some(n + 1);
                }
                count += 1;
            }
        }
    }
    None
}

/// Reads a scenario file, with YAML errors located by line.
pub fn read(path: &Path) -> Result<(ScenarioFile, String), ScenarioError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ScenarioError::new(path, None, None, format!("cannot read: {e}")))?;
    let parsed: ScenarioFile = serde_norway::from_str(&text).map_err(|e| {
        let line = e.location().map(|l| l.line());
        ScenarioError::new(path, Some(&text), line, format!("invalid scenario: {e}"))
    })?;
    Ok((parsed, text))
}

/// Runs a scenario. `Err` when it cannot run at all (bad file, journeys with errors);
/// failed expectations are in the outcome.
pub fn run(path: &Path) -> Result<Outcome, ScenarioError> {
    run_on(path, None)
}

/// Runs a scenario on a store in `data` (created, and kept for `journey report` and the
/// other readers of a store) instead of a temporary one.
pub fn run_on(path: &Path, data: Option<&Path>) -> Result<Outcome, ScenarioError> {
    run_in(
        path,
        match data {
            Some(dir) => ScenarioStore::Dir(dir),
            None => ScenarioStore::Temporary,
        },
    )
}

/// Whether `--data` names a PostgreSQL database rather than a directory.
fn is_database_url(data: &Path) -> bool {
    let text = data.to_string_lossy();
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// Where a scenario's store is.
#[derive(Debug, Clone, Copy)]
pub enum ScenarioStore<'a> {
    /// A temporary sled store, removed afterwards.
    Temporary,
    /// A sled store in this directory (it must be empty or new), kept; or the empty
    /// PostgreSQL database this names (`postgres://…`).
    Dir(&'a Path),
    /// A schema of its own in the PostgreSQL database at this URL, removed afterwards.
    Postgres(&'a str),
}

/// Runs a scenario on the store given.
pub fn run_in(path: &Path, store_choice: ScenarioStore) -> Result<Outcome, ScenarioError> {
    let (sc, text) = read(path)?;
    let err =
        |line: Option<usize>, message: String| ScenarioError::new(path, Some(&text), line, message);
    let key_line = |key: &str| {
        text.lines()
            .position(|l| l.starts_with(&format!("{key}:")))
            .map(|n| n + 1)
    };
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();

    // Journeys, relative to the scenario file.
    if sc.journeys.is_empty() {
        return Err(err(
            key_line("journeys"),
            "`journeys` is empty: name the journey files to test".into(),
        ));
    }
    let named: Vec<PathBuf> = sc.journeys.iter().map(|j| dir.join(j)).collect();
    for f in &named {
        if !f.exists() {
            return Err(err(
                key_line("journeys"),
                format!(
                    "journey file {} does not exist (journey paths are relative to the scenario file)",
                    f.display()
                ),
            ));
        }
    }
    // A directory stands for every journey file in it.
    let files = lang::journey_files(&named).map_err(|m| err(key_line("journeys"), m))?;
    let loaded = lang::load_files(&files);
    let compiled = compile::compile(&loaded);
    let Some(program) = compiled.program else {
        return Err(err(
            key_line("journeys"),
            format!(
                "the journeys have errors:\n{}",
                diagnostic::render_human(&loaded.sources, &compiled.diagnostics, false)
            ),
        ));
    };

    let start = parse_absolute(sc.start.trim()).map_err(|_| {
        err(
            key_line("start"),
            format!(
                "'{}' is not a start time: write an absolute time such as 2026-03-01T09:00:00Z",
                sc.start
            ),
        )
    })?;
    let until = parse_time(&sc.until, start).map_err(|m| err(key_line("until"), m))?;
    if until < start {
        return Err(err(
            key_line("until"),
            format!(
                "`until` ({}) is before `start` ({})",
                fmt_time(until),
                fmt_time(start)
            ),
        ));
    }
    if until - start > MAX_SPAN_MS {
        return Err(err(
            key_line("until"),
            format!(
                "`until` ({}) is more than {MAX_SPAN_YEARS} years after `start` ({}): a scenario \
                 spans at most {MAX_SPAN_YEARS} years (its clock stops at every due moment in \
                 between, so a typo in a year would run for hours)",
                fmt_time(until),
                fmt_time(start)
            ),
        ));
    }
    let zone: chrono_tz::Tz = match &sc.timezone {
        Some(z) => z
            .parse()
            .map_err(|_| err(key_line("timezone"), format!("unknown time zone '{z}'")))?,
        None => chrono_tz::UTC,
    };

    // Contacts.
    let mut contacts = Vec::new();
    for (i, c) in sc.contacts.iter().enumerate() {
        let line = item_line(&text, "contacts", i);
        let id = match c.get("id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(err(line, "every contact needs an `id`".into())),
        };
        if let Some(p) = crate::engine::contact_id_problem(&id) {
            return Err(err(line, p));
        }
        if contacts.iter().any(|x: &Contact| x.id == id) {
            return Err(err(line, format!("contact '{id}' is listed twice")));
        }
        if let Some(Value::String(tz)) = c.get("timezone") {
            if tz.parse::<chrono_tz::Tz>().is_err() {
                return Err(err(
                    line,
                    format!("contact '{id}': unknown time zone '{tz}'"),
                ));
            }
        }
        let mut profile = c.clone();
        profile.remove("id");
        contacts.push(Contact { id, profile });
    }

    // Events, checked before anything runs.
    let mut events: Vec<Event> = Vec::new();
    for (i, e) in sc.events.iter().enumerate() {
        let line = item_line(&text, "events", i);
        let at = parse_time(&e.at, start).map_err(|m| err(line, m))?;
        if !contacts.iter().any(|c| c.id == e.contact) {
            return Err(err(
                line,
                format!(
                    "event for unknown contact '{}'{}; contacts: {}",
                    e.contact,
                    did_you_mean(&e.contact, contacts.iter().map(|c| c.id.as_str())),
                    contacts
                        .iter()
                        .map(|c| c.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if let Some(j) = &e.journey {
            let Some(ir) = program.journeys.get(j) else {
                return Err(err(
                    line,
                    format!(
                        "event names journey '{j}', which the scenario does not load{}; journeys: {}",
                        did_you_mean(j, program.journeys.keys().map(String::as_str)),
                        program
                            .journeys
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            };
            if let Some(m) = &e.message {
                if !ir.messages.contains_key(m) {
                    return Err(err(
                        line,
                        format!(
                            "journey '{j}' has no message '{m}'{}; messages: {}",
                            did_you_mean(m, ir.messages.keys().map(String::as_str)),
                            ir.messages.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
        }
        events.push(Event {
            id: e.id.clone(),
            contact: e.contact.clone(),
            kind: e.kind.clone(),
            at,
            properties: e.properties.clone(),
            context: e.context.clone(),
            journey: e.journey.clone(),
            message: e.message.clone(),
            link: e.link.clone(),
            channel: None,
            message_id: None,
        });
    }
    for (i, x) in sc.expect.iter().enumerate() {
        let line = item_line(&text, "expect", i);
        if !contacts.iter().any(|c| c.id == x.contact) {
            return Err(err(
                line,
                format!(
                    "expectation for unknown contact '{}'{}; contacts: {}",
                    x.contact,
                    did_you_mean(&x.contact, contacts.iter().map(|c| c.id.as_str())),
                    contacts
                        .iter()
                        .map(|c| c.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        for name in x.segments.iter().flatten() {
            if !program.segments.contains_key(name) {
                return Err(err(
                    line,
                    format!(
                        "expectation names segment '{name}', which the scenario does not load{}; segments: {}",
                        did_you_mean(name, program.segments.keys().map(String::as_str)),
                        program.segments.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        for (msg, when) in x.sent_at.iter().flatten() {
            let all = match when {
                SentAt::One(w) => std::slice::from_ref(w),
                SentAt::Each(ws) => ws.as_slice(),
            };
            for w in all {
                parse_time(w, start)
                    .map_err(|m| err(line, format!("sent_at {msg} of {}: {m}", x.contact)))?;
            }
        }
    }
    events.sort_by_key(|e| e.at);

    // Run: the same runtime as the daemon, on a temporary sled store and a virtual clock.
    let rt_err = |e: runtime::RuntimeError| err(None, format!("runtime error: {e}"));
    let store = match store_choice {
        ScenarioStore::Postgres(url) => Store::connect_scratch(url),
        ScenarioStore::Dir(dir) if is_database_url(dir) => {
            // A database kept for the readers, as a directory would be: it must be empty.
            let url = dir.to_string_lossy();
            Store::connect(&url).and_then(|s| {
                let held = s.key_counts()?;
                if held.is_empty() {
                    Ok(s)
                } else {
                    Err(crate::store::StoreError::Postgres(format!(
                        "the database already holds journey data ({} keys); give an empty one for the scenario's store",
                        held.values().sum::<u64>()
                    )))
                }
            })
        }
        ScenarioStore::Dir(dir) => {
            let used = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
            if used {
                return Err(ScenarioError::new(
                    path,
                    None,
                    None,
                    format!(
                        "{}: the directory is not empty; give a new directory for the scenario's store",
                        dir.display()
                    ),
                ));
            }
            Store::open(dir)
        }
        ScenarioStore::Temporary => Store::temporary(),
    }
    .map_err(|e| err(None, e.to_string()))?;
    let clock = VirtualClock::new(start);
    let mut rt = Runtime::new(store, start, zone).map_err(rt_err)?;
    rt.durable = false;
    rt.deploy(program.clone(), start).map_err(rt_err)?;
    for c in &contacts {
        rt.upsert_contact(c).map_err(rt_err)?;
    }
    let (history, live): (Vec<Event>, Vec<Event>) = events.into_iter().partition(|e| e.at < start);
    rt.ingest_history(&history).map_err(rt_err)?;
    let mut sink = MemorySink::default();
    let mut timeline = Vec::new();
    let mut pending = live.into_iter().peekable();
    loop {
        let next_event = pending.peek().map(|e| e.at);
        let next_wake = rt.next_wake().map_err(rt_err)?;
        let t = match (next_event, next_wake) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(t) => t,
                None => break,
            },
        };
        if t > until {
            break;
        }
        clock.advance_to(t);
        let now = clock.now();
        // Events at this instant go before timers: a click at the deadline still counts.
        let mut inputs = Vec::new();
        while pending.peek().is_some_and(|e| e.at <= now) {
            inputs.push(Input::Event(pending.next().expect("peeked")));
        }
        rt.run_at(inputs, now, &mut sink, &mut timeline)
            .map_err(rt_err)?;
        rt.tick(now, &mut sink, &mut timeline).map_err(rt_err)?;
    }

    if matches!(store_choice, ScenarioStore::Dir(_)) {
        rt.store.flush().map_err(|e| err(None, e.to_string()))?;
    }

    // Compare.
    let mut outcome = Outcome {
        timeline,
        ..Outcome::default()
    };
    for (job, at) in &sink.delivered {
        outcome
            .sent
            .entry(job.contact.clone())
            .or_default()
            .push((job.message.clone(), *at));
    }
    for (i, x) in sc.expect.iter().enumerate() {
        let line = item_line(&text, "expect", i);
        let sent = outcome.sent.get(&x.contact).cloned().unwrap_or_default();
        let instances = rt
            .store
            .instances_of(&x.contact)
            .map_err(|e| err(None, e.to_string()))?;
        let mut check = |what: &str, expected: String, actual: String| {
            outcome.expectations += 1;
            if expected != actual {
                outcome.failures.push(Failure {
                    contact: x.contact.clone(),
                    what: what.into(),
                    expected,
                    actual,
                });
            }
        };
        if let Some(want) = &x.sent {
            let got: Vec<String> = sent.iter().map(|(m, _)| m.clone()).collect();
            check("sent", list(want), list(&got));
        }
        if let Some(want) = &x.sent_at {
            for (msg, when) in want {
                let times = |t: &[String]| -> Result<Vec<String>, ScenarioError> {
                    t.iter()
                        .map(|w| {
                            parse_time(w, start).map(fmt_time).map_err(|m| {
                                err(line, format!("sent_at {msg} of {}: {m}", x.contact))
                            })
                        })
                        .collect()
                };
                let delivered = sent
                    .iter()
                    .filter(|(m, _)| m == msg)
                    .map(|(_, t)| fmt_time(*t));
                match when {
                    SentAt::One(w) => {
                        let want_t = times(std::slice::from_ref(w))?.remove(0);
                        let got = delivered
                            .into_iter()
                            .next()
                            .unwrap_or_else(|| "never sent".into());
                        check(&format!("sent_at {msg}"), want_t, got);
                    }
                    SentAt::Each(ws) => {
                        let got: Vec<String> = delivered.collect();
                        check(&format!("sent_at {msg}"), list(&times(ws)?), list(&got));
                    }
                }
            }
        }
        if let Some(want) = &x.path {
            let got = instances
                .first()
                .map(|i| i.path.clone())
                .unwrap_or_default();
            check("path", list(want), list(&got));
        }
        if let Some(want) = &x.segments {
            let mut got = Vec::new();
            for name in program.segments.keys() {
                if rt
                    .store
                    .is_member(name, &x.contact)
                    .map_err(|e| err(None, e.to_string()))?
                {
                    got.push(name.clone());
                }
            }
            let mut want = want.clone();
            want.sort();
            check("segments", list(&want), list(&got));
        }
        if let Some(want) = &x.suppressed {
            let got: Vec<String> = outcome
                .timeline
                .iter()
                .filter(|t| t.contact == x.contact)
                .filter_map(|t| match &t.happening {
                    Happening::Suppressed { message, .. } => Some(message.clone()),
                    _ => None,
                })
                .collect();
            check("suppressed", list(want), list(&got));
        }
        if let Some(want) = &x.profile {
            let stored = rt
                .store
                .contact(&x.contact)
                .map_err(|e| err(None, e.to_string()))?
                .map(|c| c.profile)
                .unwrap_or_default();
            for (key, value) in want {
                let got = stored.get(key).cloned().unwrap_or(Value::Null);
                check(
                    &format!("profile {key}"),
                    value.to_string(),
                    got.to_string(),
                );
            }
        }
        if let Some(want) = x.ended {
            let running: Vec<&str> = instances
                .iter()
                .filter(|i| i.is_active())
                .map(|i| i.journey.as_str())
                .collect();
            let got = running.is_empty();
            let describe = |ended: bool| {
                if ended {
                    "ended".to_string()
                } else if running.is_empty() {
                    "running".to_string()
                } else {
                    format!("running in {}", running.join(", "))
                }
            };
            check("ended", describe(want), describe(got));
        }
    }
    Ok(outcome)
}

/// A list as a failure shows it, both sides alike: a run of four or more of the same item is
/// written once with its count (`weekly ×520`), so a schedule that sent for years stays
/// readable.
fn list(v: &[String]) -> String {
    let mut items: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let run = v[i..].iter().take_while(|x| **x == v[i]).count();
        if run >= 4 {
            items.push(format!("{} ×{run}", v[i]));
        } else {
            items.extend(v[i..i + run].iter().cloned());
        }
        i += run;
    }
    format!("[{}]", items.join(", "))
}

/// The properties the events of each type carry in the scenarios beside these journey files
/// (their directories' `*.scenario.yaml`), for `journey check`'s look at `entry.KEY`. A
/// scenario that cannot be read adds nothing (`journey test` reports it).
pub fn entry_properties(journey_files: &[PathBuf]) -> crate::compile::KnownProperties {
    let mut dirs: Vec<PathBuf> = journey_files
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
    dirs.sort();
    dirs.dedup();
    let mut known = crate::compile::KnownProperties::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
            if !path.to_string_lossy().ends_with(".scenario.yaml") {
                continue;
            }
            let Ok((sc, _)) = read(&path) else { continue };
            for e in sc.events {
                let props = known.entry(e.kind).or_default();
                props.extend(e.properties.keys().cloned());
                if e.context.is_some() {
                    props.insert("context".into());
                }
            }
        }
    }
    known
}

/// Every `*.scenario.yaml` named or found below a named directory, sorted.
pub fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = walkdir::WalkDir::new(p)
                .into_iter()
                .filter_map(|e| e.ok())
                .map(|e| e.into_path())
                .filter(|p| p.to_string_lossy().ends_with(".scenario.yaml"))
                .collect();
            found.sort();
            out.extend(found);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(format!("{}: no such file or directory", p.display()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_in_failures_count_long_runs() {
        let v = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(list(&v(&[])), "[]");
        assert_eq!(list(&v(&["a", "b", "b", "b"])), "[a, b, b, b]");
        let mut long = v(&["april"]);
        long.extend(std::iter::repeat_n("weekly".to_string(), 520));
        long.push("april".into());
        assert_eq!(list(&long), "[april, weekly ×520, april]");
    }

    #[test]
    fn relative_and_absolute_times() {
        let start = parse_time("2026-03-01T09:00:00Z", 0).unwrap();
        assert_eq!(parse_time("+1h", start).unwrap(), start + 3_600_000);
        assert_eq!(parse_time("-30d", start).unwrap(), start - 30 * 86_400_000);
        assert_eq!(parse_time("+1d12h", start).unwrap(), start + 36 * 3_600_000);
        assert!(parse_time("+1x", start).is_err());
        assert!(parse_time("+99999999999999d", start).is_err());
        assert!(parse_time("-99999999999999w", start).is_err());
        assert!(parse_time("yesterday", start).is_err());
    }

    #[test]
    fn item_lines_point_at_list_items() {
        let src =
            "start: x\nevents:\n  - { a: 1 }\n  # note\n  - at: +1h\n    contact: b\nuntil: +1d\n";
        assert_eq!(item_line(src, "events", 0), Some(3));
        assert_eq!(item_line(src, "events", 1), Some(5));
        assert_eq!(item_line(src, "events", 2), None);
    }
}
