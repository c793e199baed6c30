//! Compilation: syntax trees of every loaded file → one `Program` of journey state machines,
//! segments and policies, plus every static check's diagnostics. Names are global across the
//! files loaded together, so compilation always sees all of them at once.

mod conditions;
mod flow;
pub mod graph;
pub mod ir;
mod journeys;
mod linking;
mod literals;
mod messages;
mod names;
pub mod partials;
mod policies;
mod segments;
pub mod templates;
mod values;

use crate::domain::{CappedAction, Channel, CmpOp, Verb};
use crate::lang::ast::{self, *};
use crate::lang::diagnostic::{did_you_mean, Diagnostic};
use crate::lang::Loaded;
use ir::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The result of compiling a set of files: a program if there were no errors.
#[derive(Debug)]
pub struct Compiled {
    pub program: Option<Program>,
    pub diagnostics: Vec<Diagnostic>,
    /// Every `entry.KEY` of each journey, with the event types it enters on (for
    /// `check_entry_properties`).
    pub entry_refs: Vec<EntryRefs>,
}

/// The `entry.KEY` a journey reads, and what its entry events are.
#[derive(Debug, Clone)]
pub struct EntryRefs {
    pub journey: String,
    /// The event types of its `entry event` lines (none: it enters on no event).
    pub entry_events: Vec<String>,
    /// (file, span, KEY) of each `entry.KEY`.
    pub refs: Vec<(usize, Span, String)>,
}

/// The properties the events of each type carry, as far as something knows them (the
/// scenarios' events: `journey check` reads them beside the journeys).
pub type KnownProperties = BTreeMap<String, std::collections::BTreeSet<String>>;

/// Parses nothing: compiles what `lang` loaded, adding to its diagnostics.
pub fn compile(loaded: &Loaded) -> Compiled {
    let mut c = Compiler {
        loaded,
        diags: Vec::new(),
        defs: HashMap::new(),
        keyed: None,
        entry_refs: Vec::new(),
    };
    let program = c.run();
    let mut diagnostics = loaded.diagnostics.clone();
    diagnostics.extend(c.diags);
    // Steps are linked last to first: report in file order, so a run reads top to bottom.
    diagnostics.sort_by_key(|d| (d.file, d.span.start));
    let has_errors = diagnostics.iter().any(|d| d.is_error());
    Compiled {
        program: if has_errors { None } else { Some(program) },
        diagnostics,
        entry_refs: c.entry_refs,
    }
}

/// Everything `journey check` reports on loaded files: compiling's diagnostics and, when the
/// program compiled, the templates' warnings. The language server reports the same.
pub fn check(loaded: &Loaded) -> Compiled {
    check_with(loaded, &KnownProperties::new())
}

/// `check`, knowing the properties events carry: an `entry.KEY` that none of a journey's
/// known entry events carries is a warning.
pub fn check_with(loaded: &Loaded, known: &KnownProperties) -> Compiled {
    let mut compiled = compile(loaded);
    if let Some(p) = &compiled.program {
        let extra = templates::template_warnings(loaded, p);
        compiled.diagnostics.extend(extra);
    }
    let extra = check_entry_properties(&compiled.entry_refs, known);
    compiled.diagnostics.extend(extra);
    compiled
}

/// Warnings for `entry.KEY`: in a journey that enters on no event, and, where the events of
/// its entry types are known, a KEY that none of them carries.
pub fn check_entry_properties(refs: &[EntryRefs], known: &KnownProperties) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for j in refs {
        for (file, span, key) in &j.refs {
            if j.entry_events.is_empty() {
                out.push(
                    Diagnostic::warning(
                        *file,
                        *span,
                        format!(
                            "journey '{}' enters on no event: `entry.{key}` is always missing",
                            j.journey
                        ),
                    )
                    .with_help("`entry.KEY` reads the event of an `entry event` line"),
                );
                continue;
            }
            let seen: Vec<&std::collections::BTreeSet<String>> =
                j.entry_events.iter().filter_map(|e| known.get(e)).collect();
            if seen.is_empty() || seen.iter().any(|props| props.contains(key)) {
                continue;
            }
            let mut carried: Vec<&str> = seen
                .iter()
                .flat_map(|p| p.iter().map(String::as_str))
                .collect();
            carried.sort_unstable();
            carried.dedup();
            let mut d = Diagnostic::warning(
                *file,
                *span,
                format!("no entry event of journey '{}' carries `{key}`", j.journey),
            )
            .with_label(format!(
                "the scenarios' {} events have no such property",
                j.entry_events.join(", ")
            ));
            d = match did_you_mean(key, carried.iter().copied()) {
                Some(h) => d.with_help(h),
                None if carried.is_empty() => d.with_help("those events carry no property at all"),
                None => d.with_help(format!("they carry: {}", carried.join(", "))),
            };
            out.push(d);
        }
    }
    out.sort_by_key(|d| (d.file, d.span.start));
    out
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum DefKind {
    Journey,
    Segment,
    Policy,
    Topic,
}

struct Compiler<'a> {
    loaded: &'a Loaded,
    diags: Vec<Diagnostic>,
    /// Every definition by name: (kind, file, definition).
    defs: HashMap<String, (DefKind, usize, &'a Definition)>,
    /// While compiling a journey's steps, goal and exit: the `entry.KEY` seen (file, span,
    /// KEY). None elsewhere, where `entry.` means nothing.
    keyed: Option<Vec<(usize, Span, String)>>,
    entry_refs: Vec<EntryRefs>,
}

/// The channels that can report each engagement verb, and why not otherwise.
pub fn verb_supported(verb: Verb, channel: Channel) -> Result<(), &'static str> {
    use Channel::*;
    use Verb::*;
    match (verb, channel) {
        (Received, _) => Ok(()),
        (Opened, Email | Push) => Ok(()),
        (Opened, Sms) => Err("operators do not report when an SMS is read"),
        (Opened, Webhook) => Err("a webhook call has no reader to open it"),
        (Clicked, Email | Sms) => Ok(()),
        (Clicked, Push) => Err("a push reports opens, not clicks: use `opened`"),
        (Clicked, Webhook) => Err("a webhook call has no links to click"),
        (Bounced, Email | Sms) => Ok(()),
        (Bounced, _) => Err("only email and SMS deliveries bounce"),
        (Unsubscribed, Email | Sms) => Ok(()),
        (Unsubscribed, _) => Err("only email and SMS carry an unsubscribe link"),
    }
}

/// The fields a message of each channel may have (the language server completes them).
pub fn allowed_fields(channel: Channel) -> &'static [&'static str] {
    match channel {
        Channel::Email => &[
            "subject", "template", "html", "text", "from", "reply_to", "to", "link",
        ],
        Channel::Sms => &["text", "to", "link"],
        Channel::Push => &["title", "body", "data", "to", "link"],
        Channel::Webhook => &["url", "method", "body", "header", "timeout"],
    }
}

fn field_name(kind: &FieldKind) -> &str {
    match kind {
        FieldKind::Text { key, .. } => &key.name,
        FieldKind::Link { .. } => "link",
        FieldKind::Header { .. } => "header",
        FieldKind::Data(_) => "data",
        FieldKind::Method(_) => "method",
        FieldKind::Timeout(_) => "timeout",
    }
}

/// The days as the language writes them, Monday first (index 0, as `EntryIr` counts).
pub const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

pub fn weekday_index(name: &str) -> Option<u32> {
    WEEKDAYS.iter().position(|d| *d == name).map(|i| i as u32)
}

pub fn literal_value(l: &Literal) -> serde_json::Value {
    match l {
        Literal::Str(s) => serde_json::Value::String(s.value.clone()),
        Literal::Number { value, text } => {
            if let Ok(i) = text.parse::<i64>() {
                serde_json::Value::from(i)
            } else {
                serde_json::Number::from_f64(*value)
                    .map(serde_json::Value::Number)
                    .unwrap_or(serde_json::Value::Null)
            }
        }
        Literal::Bool(b) => serde_json::Value::Bool(*b),
        Literal::Date(d) => {
            serde_json::Value::String(format!("{:04}-{:02}-{:02}", d.year, d.month, d.day))
        }
        Literal::List(items) => serde_json::Value::Array(items.iter().map(literal_value).collect()),
    }
}

/// Per-journey state while lowering steps.
struct JourneyCx<'a> {
    file: usize,
    name: String,
    steps: Vec<StepIr>,
    /// Source span of each step, by id.
    spans: Vec<Span>,
    labels: HashMap<String, (Span, LabelTarget<'a>)>,
    messages: BTreeMap<String, (MessageIr, Span)>,
    if_count: u32,
    split_count: u32,
    /// Gotos by the step id (or leave) they jump to, for the loop check's message.
    gotos: Vec<(Span, Next)>,
    /// Ids assigned in the first pass, keyed by the step's span start.
    ids: HashMap<usize, StepId>,
}

#[derive(Clone, Copy)]
enum LabelTarget<'a> {
    Step(StepId),
    Leave,
    Goto(&'a Ident),
}

impl<'a> Compiler<'a> {
    fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// The first word of a step (its label, or with `skip_label` the keyword after it), for a
    /// caret under `split` rather than under the whole step.
    fn step_keyword(&self, file: usize, step: Span, skip_label: bool) -> Span {
        let text = &self.loaded.sources.get(file).text;
        let Some(s) = text.get(step.start..step.end) else {
            return step;
        };
        let word_len = |t: &str| {
            t.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(t.len())
        };
        let mut start = 0;
        let first = word_len(s);
        if skip_label {
            if let Some(rest) = s[first..].trim_start().strip_prefix(':') {
                let rest = rest.trim_start();
                start = s.len() - rest.len();
            }
        }
        let len = word_len(&s[start..]).max(1);
        Span::new(step.start + start, (step.start + start + len).min(step.end))
    }

    fn file_dir(&self, file: usize) -> PathBuf {
        self.loaded
            .sources
            .get(file)
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    fn run(&mut self) -> Program {
        let loaded = self.loaded;
        // Names are global: the first definition wins, later ones are errors.
        for (file, f) in &loaded.files {
            for def in &f.definitions {
                let kind = match def {
                    Definition::Journey(_) => DefKind::Journey,
                    Definition::Segment(_) => DefKind::Segment,
                    Definition::Policy(_) => DefKind::Policy,
                    Definition::Topic(_) => DefKind::Topic,
                };
                let name = def.name();
                if let Some((_, pf, prev)) = self.defs.get(&name.name) {
                    let (pf, pspan) = (*pf, prev.name().span);
                    self.err(
                        Diagnostic::error(*file, name.span, format!("'{}' is defined twice", name.name))
                            .with_label("second definition")
                            .with_related(pf, pspan, "first defined here")
                            .with_help("journeys, segments, policies and topics share one namespace across all loaded files"),
                    );
                } else {
                    self.defs.insert(name.name.clone(), (kind, *file, def));
                }
            }
        }
        let mut program = Program::default();
        for (file, f) in &loaded.files {
            for def in &f.definitions {
                if self
                    .defs
                    .get(&def.name().name)
                    .map(|(_, _, d)| std::ptr::eq(*d, def))
                    != Some(true)
                {
                    continue;
                }
                match def {
                    Definition::Policy(p) => {
                        let ir = self.policy(*file, p);
                        program.policies.insert(ir.name.clone(), ir);
                    }
                    Definition::Segment(s) => {
                        let ir = self.segment(*file, s);
                        program.segments.insert(ir.name.clone(), ir);
                    }
                    Definition::Topic(t) => {
                        let ir = self.topic(*file, t);
                        program.topics.insert(ir.name.clone(), ir);
                    }
                    Definition::Journey(_) => {}
                }
            }
        }
        self.check_segment_cycles(&program);
        for (file, f) in &loaded.files {
            for def in &f.definitions {
                if let Definition::Journey(j) = def {
                    if self
                        .defs
                        .get(&j.name.name)
                        .map(|(_, _, d)| std::ptr::eq(*d, def))
                        != Some(true)
                    {
                        continue;
                    }
                    let ir = self.journey(*file, j, &program.policies, &program.topics);
                    program.journeys.insert(ir.name.clone(), ir);
                }
            }
        }
        program
    }

    /// A segment that contains itself through `in segment` has no meaning (and would make
    /// its evaluation recurse forever): an error on each segment of the cycle.
    fn check_segment_cycles(&mut self, program: &Program) {
        let refs: BTreeMap<&str, Vec<String>> = program
            .segments
            .iter()
            .map(|(n, s)| (n.as_str(), segment_refs(s)))
            .collect();
        for name in refs.keys() {
            // Depth-first from `name`: does it come back to itself?
            let mut stack: Vec<Vec<String>> = vec![vec![name.to_string()]];
            let mut seen: HashSet<String> = HashSet::new();
            let mut cycle: Option<Vec<String>> = None;
            while let Some(path) = stack.pop() {
                let last = path.last().expect("non-empty path");
                for next in refs.get(last.as_str()).into_iter().flatten() {
                    if next == name {
                        let mut p = path.clone();
                        p.push(next.clone());
                        cycle = Some(p);
                        break;
                    }
                    if seen.insert(next.clone()) {
                        let mut p = path.clone();
                        p.push(next.clone());
                        stack.push(p);
                    }
                }
                if cycle.is_some() {
                    break;
                }
            }
            if let Some(path) = cycle {
                if let Some((_, file, def)) = self.defs.get(*name) {
                    let (file, span) = (*file, def.name().span);
                    self.err(
                        Diagnostic::error(
                            file,
                            span,
                            format!("segment '{name}' contains itself: {}", path.join(" → ")),
                        )
                        .with_label("this segment")
                        .with_help("a segment cannot depend on itself through `in segment`"),
                    );
                }
            }
        }
    }
}

fn fmt_basis(b: u32) -> String {
    if b.is_multiple_of(100) {
        format!("{}", b / 100)
    } else {
        format!("{}.{:02}", b / 100, b % 100)
            .trim_end_matches('0')
            .to_string()
    }
}

/// `"viewed product"` → `viewed_product`, for derived step names.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

impl Span {
    /// The first `len` bytes of a span: points at a step's keyword rather than its whole body.
    pub fn start_only(self, len: usize) -> Span {
        Span::new(self.start, (self.start + len).min(self.end))
    }
}

/// A journey's messages: name → (channel, link names). Built from the syntax tree, so checks
/// can refer to a message before or after the step that sends it, and across journeys.
#[derive(Clone, Debug, Default)]
struct JourneyMessages {
    journey: String,
    messages: HashMap<String, (Channel, Vec<String>)>,
}

impl JourneyMessages {
    fn of(j: &ast::Journey) -> Self {
        fn walk(steps: &[Step], out: &mut HashMap<String, (Channel, Vec<String>)>) {
            for s in steps {
                match &s.kind {
                    StepKind::Send(m) => {
                        let links = m
                            .fields
                            .iter()
                            .filter_map(|f| match &f.kind {
                                FieldKind::Link { name, .. } => Some(name.name.clone()),
                                _ => None,
                            })
                            .collect();
                        out.entry(m.name.name.clone()).or_insert((m.channel, links));
                    }
                    StepKind::If(i) => {
                        for (_, b) in &i.arms {
                            walk(&b.steps, out);
                        }
                        if let Some(b) = &i.otherwise {
                            walk(&b.steps, out);
                        }
                    }
                    StepKind::Split(sp) => {
                        for a in &sp.arms {
                            walk(&a.block.steps, out);
                        }
                    }
                    StepKind::Experiment(x) => {
                        for (_, b) in x.arms.iter().filter_map(|a| a.arm.as_ref()) {
                            walk(&b.steps, out);
                        }
                    }
                    StepKind::Check(c) => {
                        for b in [&c.outcomes.yes, &c.outcomes.no].into_iter().flatten() {
                            walk(&b.steps, out);
                        }
                    }
                    StepKind::WaitForEvent(w) => {
                        for b in [&w.outcomes.yes, &w.outcomes.no].into_iter().flatten() {
                            walk(&b.steps, out);
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut messages = HashMap::new();
        walk(&j.steps, &mut messages);
        JourneyMessages {
            journey: j.name.name.clone(),
            messages,
        }
    }
}

/// What bare names in a condition refer to.
#[derive(Clone, Debug)]
enum CondScope {
    /// `if` in a journey: contact fields, the entry event, this journey's messages.
    Journey(JourneyMessages),
    /// A segment rule's condition: contact fields and history.
    Segment,
    /// A `where` on an event: bare names are the event's properties.
    Record,
    /// A `where` on messages: bare names are message attributes.
    Message,
}

impl CondScope {
    fn journey(&self) -> Option<&JourneyMessages> {
        match self {
            CondScope::Journey(j) => Some(j),
            _ => None,
        }
    }
}

/// The segments a segment refers to with `in segment`.
fn segment_refs(s: &SegmentIr) -> Vec<String> {
    fn walk(c: &CondIr, out: &mut Vec<String>) {
        match c {
            CondIr::And(v) | CondIr::Or(v) => v.iter().for_each(|c| walk(c, out)),
            CondIr::Not(c) => walk(c, out),
            CondIr::InSegment(n) => out.push(n.clone()),
            CondIr::Event {
                condition: Some(c), ..
            } => walk(c, out),
            CondIr::Engagement {
                target: TargetIr::AnyMessage(Some(c)),
                ..
            }
            | CondIr::LastEngagement {
                target: TargetIr::AnyMessage(Some(c)),
                ..
            } => walk(c, out),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for r in &s.rules {
        match &r.body {
            RuleBodyIr::Condition(c) => walk(c, &mut out),
            RuleBodyIr::Event {
                condition: Some(c), ..
            } => walk(c, &mut out),
            RuleBodyIr::Engagement {
                target: TargetIr::AnyMessage(Some(c)),
                ..
            } => walk(c, &mut out),
            _ => {}
        }
    }
    out
}
