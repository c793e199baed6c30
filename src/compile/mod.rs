//! Compilation: syntax trees of every loaded file → one `Program` of journey state machines,
//! segments and policies, plus every static check's diagnostics. Names are global across the
//! files loaded together, so compilation always sees all of them at once.

pub mod graph;
pub mod ir;
pub mod partials;

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
}

/// Parses nothing: compiles what `lang` loaded, adding to its diagnostics.
pub fn compile(loaded: &Loaded) -> Compiled {
    let mut c = Compiler {
        loaded,
        diags: Vec::new(),
        defs: HashMap::new(),
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
    }
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

fn allowed_fields(channel: Channel) -> &'static [&'static str] {
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

    fn names_of(&self, kind: DefKind) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .defs
            .iter()
            .filter(|(_, (k, _, _))| *k == kind)
            .map(|(n, _)| n.as_str())
            .collect();
        v.sort();
        v
    }

    fn check_ref(&mut self, file: usize, id: &Ident, kind: DefKind) -> bool {
        match self.defs.get(&id.name) {
            Some((k, _, _)) if *k == kind => true,
            other => {
                let what = match kind {
                    DefKind::Journey => "journey",
                    DefKind::Segment => "segment",
                    DefKind::Policy => "policy",
                    DefKind::Topic => "topic",
                };
                let mut d =
                    Diagnostic::error(file, id.span, format!("unknown {what} '{}'", id.name));
                if let Some((k, _, _)) = other {
                    d = d.with_label(
                        format!("'{}' is a {:?}, not a {what}", id.name, k).to_lowercase(),
                    );
                } else {
                    let names = self.names_of(kind);
                    d = match did_you_mean(&id.name, names.iter().copied()) {
                        Some(h) => d.with_help(h),
                        None if names.is_empty() => {
                            d.with_help(format!("no {what} is defined in the loaded files"))
                        }
                        None => d.with_help(format!("defined {what}s: {}", names.join(", "))),
                    };
                }
                self.err(d);
                false
            }
        }
    }

    fn check_zone(&mut self, file: usize, zone: &Option<Ident>) -> Option<String> {
        let z = zone.as_ref()?;
        if z.name.parse::<chrono_tz::Tz>().is_err() {
            let mut d = Diagnostic::error(file, z.span, format!("unknown time zone '{}'", z.name));
            d = match did_you_mean(&z.name, chrono_tz::TZ_VARIANTS.iter().map(|t| t.name())) {
                Some(h) => d.with_help(h),
                None => d.with_help("use an IANA name such as Europe/Rome or America/New_York"),
            };
            self.err(d);
        }
        Some(z.name.clone())
    }

    fn check_time(&mut self, file: usize, t: &TimeOfDay) -> u32 {
        if t.hour > 23 || t.minute > 59 {
            self.err(
                Diagnostic::error(
                    file,
                    t.span,
                    format!("{:02}:{:02} is not a time of day", t.hour, t.minute),
                )
                .with_help("hours run from 00 to 23 and minutes from 00 to 59"),
            );
            return 0;
        }
        t.hour * 60 + t.minute
    }

    fn check_date(&mut self, file: usize, d: &Date) -> chrono::NaiveDate {
        match chrono::NaiveDate::from_ymd_opt(d.year, d.month, d.day) {
            Some(n) => n,
            None => {
                self.err(
                    Diagnostic::error(
                        file,
                        d.span,
                        format!("{:04}-{:02}-{:02} is not a date", d.year, d.month, d.day),
                    )
                    .with_help("dates are YYYY-MM-DD, such as 2026-03-14"),
                );
                chrono::NaiveDate::default()
            }
        }
    }

    fn check_positive(&mut self, file: usize, d: &Dur, what: &str) -> i64 {
        if d.seconds <= 0 {
            self.err(Diagnostic::error(
                file,
                d.span,
                format!("{what} must be longer than zero"),
            ));
        }
        d.seconds
    }

    // ------------------------------------------------------------ policies

    fn policy(&mut self, file: usize, p: &ast::Policy) -> PolicyIr {
        let mut ir = PolicyIr {
            name: p.name.name.clone(),
            title: None,
            caps: Vec::new(),
            scope: ScopeIr::Global,
            when_capped: CappedAction::Delay,
        };
        for item in &p.items {
            match &item.kind {
                PolicyItemKind::Title(s) => ir.title = Some(s.value.clone()),
                PolicyItemKind::Cap {
                    max, channel, per, ..
                } => {
                    let per_seconds = self.check_positive(file, per, "a cap's period");
                    if *max == 0 {
                        self.err(
                            Diagnostic::error(file, item.span, "a cap of 0 blocks every send")
                                .with_help("remove the channel from the journey instead"),
                        );
                    }
                    ir.caps.push(CapIr {
                        max: *max,
                        channel: *channel,
                        per_seconds,
                    });
                }
                PolicyItemKind::ScopeGlobal => ir.scope = ScopeIr::Global,
                PolicyItemKind::ScopeJourney => ir.scope = ScopeIr::Journey,
                PolicyItemKind::WhenCapped(a) => ir.when_capped = *a,
            }
        }
        if ir.caps.is_empty() {
            self.err(
                Diagnostic::warning(
                    file,
                    p.name.span,
                    format!("policy '{}' has no cap", p.name.name),
                )
                .with_help("add a line such as `max 1 email per 1d`"),
            );
        }
        ir
    }

    // ------------------------------------------------------------ topics

    fn topic(&mut self, file: usize, t: &ast::Topic) -> TopicIr {
        let mut ir = TopicIr {
            name: t.name.name.clone(),
            title: None,
            default_subscribed: true,
        };
        let mut seen: HashMap<&'static str, Span> = HashMap::new();
        for item in &t.items {
            let key = match &item.kind {
                TopicItemKind::Title(s) => {
                    ir.title = Some(s.value.clone());
                    "title"
                }
                TopicItemKind::Default(yes) => {
                    ir.default_subscribed = *yes;
                    "default"
                }
            };
            if let Some(prev) = seen.insert(key, item.span) {
                self.err(
                    Diagnostic::error(file, item.span, format!("`{key}` is given twice"))
                        .with_related(file, prev, "first given here"),
                );
            }
        }
        if ir.title.is_none() {
            self.err(
                Diagnostic::warning(
                    file,
                    t.name.span,
                    format!("topic '{}' has no title", t.name.name),
                )
                .with_help("the preference page shows the title: add `title \"…\"`"),
            );
        }
        ir
    }

    // ------------------------------------------------------------ segments

    fn segment(&mut self, file: usize, s: &ast::Segment) -> SegmentIr {
        let mut rules = Vec::new();
        let mut seen: HashMap<&str, Span> = HashMap::new();
        if s.rules.is_empty() {
            self.err(
                Diagnostic::error(
                    file,
                    s.name.span,
                    format!("segment '{}' has no rule", s.name.name),
                )
                .with_help("add a line such as `rule italians: contact.country == \"IT\"`"),
            );
        }
        for (i, r) in s.rules.iter().enumerate() {
            if let Some(prev) = seen.insert(&r.name.name, r.name.span) {
                self.err(
                    Diagnostic::error(
                        file,
                        r.name.span,
                        format!("two rules named '{}'", r.name.name),
                    )
                    .with_related(file, prev, "first used here"),
                );
            }
            match (i, &r.combinator) {
                (0, Some((c, sp))) => self.err(
                    Diagnostic::error(
                        file,
                        *sp,
                        format!("the first rule cannot start with '{}'", c.as_str()),
                    )
                    .with_help("combinators join a rule to the ones before it"),
                ),
                (i, None) if i > 0 => self.err(
                    Diagnostic::error(
                        file,
                        r.name.span,
                        "expected `and`, `or` or `except` before this rule",
                    )
                    .with_help("rules combine in the written order: `and rule b: …`"),
                ),
                _ => {}
            }
            let body = match &r.body {
                RuleBody::Condition(c) => {
                    RuleBodyIr::Condition(self.cond(file, c, &CondScope::Segment))
                }
                RuleBody::Event {
                    negated,
                    event,
                    condition,
                    occurrences,
                    frame,
                    ..
                } => RuleBodyIr::Event {
                    negated: *negated,
                    event: event.value.clone(),
                    condition: condition
                        .as_ref()
                        .map(|c| self.cond(file, c, &CondScope::Record)),
                    occurrences: occurrences
                        .as_ref()
                        .map(|o| OccurrencesIr {
                            kind: o.kind,
                            count: o.count,
                        })
                        .unwrap_or_default(),
                    frame: self.frame(file, frame, false),
                },
                RuleBody::Engagement {
                    verb,
                    subject,
                    occurrences,
                    frame,
                    ..
                } => {
                    let target = match subject {
                        RuleSubject::Messages(c) => TargetIr::AnyMessage(
                            c.as_ref()
                                .map(|c| Box::new(self.cond(file, c, &CondScope::Message))),
                        ),
                        RuleSubject::Target(t) => self.target(file, *verb, t, None),
                    };
                    RuleBodyIr::Engagement {
                        verb: *verb,
                        target,
                        occurrences: occurrences
                            .as_ref()
                            .map(|o| OccurrencesIr {
                                kind: o.kind,
                                count: o.count,
                            })
                            .unwrap_or_default(),
                        frame: self.frame(file, frame, true),
                    }
                }
            };
            rules.push(RuleIr {
                combinator: r.combinator.map(|(c, _)| c),
                name: r.name.name.clone(),
                body,
            });
        }
        SegmentIr {
            name: s.name.name.clone(),
            title: s.title.as_ref().map(|t| t.value.clone()),
            rules,
        }
    }

    fn frame(&mut self, file: usize, f: &Option<TimeFrame>, engagement: bool) -> FrameIr {
        match f {
            None | Some(TimeFrame::Anytime) => FrameIr::Anytime,
            Some(TimeFrame::InLast(d)) => FrameIr::InLast {
                seconds: self.check_positive(file, d, "a time frame"),
            },
            Some(TimeFrame::Between(a, b)) => {
                let from = self.check_date(file, a);
                let to = self.check_date(file, b);
                if to < from {
                    self.err(
                        Diagnostic::error(file, b.span, "this date is before the first one")
                            .with_help(
                                "write the earlier date first: `between 2026-01-01 and 2026-03-31`",
                            ),
                    );
                }
                FrameIr::Between { from, to }
            }
            Some(TimeFrame::AfterDelivery(d)) => {
                if !engagement {
                    self.err(
                        Diagnostic::error(
                            file,
                            d.span,
                            "`within … after delivery` applies to engagement with messages",
                        )
                        .with_help("for contact events use `in last 15d`"),
                    );
                }
                FrameIr::AfterDelivery {
                    seconds: self.check_positive(file, d, "a time frame"),
                }
            }
        }
    }

    // ------------------------------------------------------------ conditions

    fn cond(&mut self, file: usize, c: &Condition, scope: &CondScope) -> CondIr {
        match &c.kind {
            CondKind::And(a, b) => {
                let mut v = Vec::new();
                for x in [a, b] {
                    match self.cond(file, x, scope) {
                        CondIr::And(inner) => v.extend(inner),
                        other => v.push(other),
                    }
                }
                CondIr::And(v)
            }
            CondKind::Or(a, b) => {
                let mut v = Vec::new();
                for x in [a, b] {
                    match self.cond(file, x, scope) {
                        CondIr::Or(inner) => v.extend(inner),
                        other => v.push(other),
                    }
                }
                CondIr::Or(v)
            }
            CondKind::Not(x) => CondIr::Not(Box::new(self.cond(file, x, scope))),
            CondKind::Group(x) => self.cond(file, x, scope),
            CondKind::Bool(b) => CondIr::Bool(*b),
            CondKind::Compare { path, matcher } => {
                if let CondScope::Message = scope {
                    let attrs = ["subject", "journey", "message", "channel", "label", "link"];
                    if path.len() == 1 && !attrs.contains(&path[0].as_str()) {
                        let mut d = Diagnostic::error(
                            file,
                            c.span,
                            format!("messages have no attribute '{}'", path[0]),
                        );
                        d = match did_you_mean(&path[0], attrs) {
                            Some(h) => d.with_help(h),
                            None => {
                                d.with_help(format!("message attributes: {}", attrs.join(", ")))
                            }
                        };
                        self.err(d);
                    }
                }
                if matches!(scope, CondScope::Journey(_) | CondScope::Segment) && path.len() == 1 {
                    self.err(
                        Diagnostic::error(
                            file,
                            c.span,
                            format!("'{}' is not a contact field", path[0]),
                        )
                        .with_help(format!(
                            "write `contact.{}` for the profile, or `event.{}` for the entry event",
                            path[0], path[0]
                        )),
                    );
                }
                let matcher = match matcher {
                    Matcher::Cmp(op, l) => MatchIr::Cmp(*op, literal_value(l)),
                    Matcher::In(v) => MatchIr::In(v.iter().map(literal_value).collect()),
                    Matcher::NotIn(v) => MatchIr::NotIn(v.iter().map(literal_value).collect()),
                    Matcher::Contains(l) => MatchIr::Contains(literal_value(l)),
                    Matcher::StartsWith(l) => MatchIr::StartsWith(literal_value(l)),
                };
                CondIr::Compare {
                    path: path.clone(),
                    matcher,
                }
            }
            CondKind::InSegment(id) => {
                self.check_ref(file, id, DefKind::Segment);
                CondIr::InSegment(id.name.clone())
            }
            CondKind::InList(s) => CondIr::InList(s.value.clone()),
            CondKind::Engagement {
                verb,
                target,
                in_last,
            } => CondIr::Engagement {
                verb: *verb,
                target: self.target(file, *verb, target, scope.journey()),
                window_seconds: in_last
                    .as_ref()
                    .map(|d| self.check_positive(file, d, "a time window")),
                op: CmpOp::Ge,
                count: 1,
            },
            CondKind::LastEngagement {
                verb,
                target,
                op,
                ago,
            } => CondIr::LastEngagement {
                verb: *verb,
                target: self.target(file, *verb, target, scope.journey()),
                op: *op,
                seconds: ago.seconds,
            },
            CondKind::CountEngagement {
                verb,
                target,
                op,
                count,
                in_last,
            } => CondIr::Engagement {
                verb: *verb,
                target: self.target(file, *verb, target, scope.journey()),
                window_seconds: in_last
                    .as_ref()
                    .map(|d| self.check_positive(file, d, "a time window")),
                op: *op,
                count: *count,
            },
            CondKind::Event {
                event,
                condition,
                in_last,
            } => CondIr::Event {
                event: event.value.clone(),
                condition: condition
                    .as_ref()
                    .map(|c| Box::new(self.cond(file, c, &CondScope::Record))),
                window_seconds: in_last
                    .as_ref()
                    .map(|d| self.check_positive(file, d, "a time window")),
                op: CmpOp::Ge,
                count: 1,
            },
            CondKind::CountEvent {
                event,
                condition,
                op,
                count,
                in_last,
            } => CondIr::Event {
                event: event.value.clone(),
                condition: condition
                    .as_ref()
                    .map(|c| Box::new(self.cond(file, c, &CondScope::Record))),
                window_seconds: in_last
                    .as_ref()
                    .map(|d| self.check_positive(file, d, "a time window")),
                op: *op,
                count: *count,
            },
        }
    }

    /// Resolves a target; `here` is the journey being compiled and its messages, if any.
    fn target(
        &mut self,
        file: usize,
        verb: Verb,
        t: &Target,
        here: Option<&JourneyMessages>,
    ) -> TargetIr {
        match t {
            Target::Journey(id) => {
                self.check_ref(file, id, DefKind::Journey);
                TargetIr::Journey(id.name.clone())
            }
            Target::Channel(ch, sp) => {
                if let Err(why) = verb_supported(verb, *ch) {
                    self.err(
                        Diagnostic::error(
                            file,
                            *sp,
                            format!("'{}' cannot be used on {}", verb.as_str(), ch.as_str()),
                        )
                        .with_help(why),
                    );
                }
                TargetIr::Channel(*ch)
            }
            Target::Label(s) => TargetIr::Label(s.value.clone()),
            Target::Message(m) => self.message_target(file, verb, m, here),
        }
    }

    fn message_target(
        &mut self,
        file: usize,
        verb: Verb,
        m: &MessageRef,
        here: Option<&JourneyMessages>,
    ) -> TargetIr {
        let parts = &m.parts;
        // `msg` / `msg.link` of this journey first, then `journey.msg` / `journey.msg.link`.
        if let Some(h) = here {
            if let Some((ch, links)) = h.messages.get(&parts[0].name) {
                if parts.len() > 2 {
                    self.err(
                        Diagnostic::error(
                            file,
                            m.span,
                            format!("'{}' has too many parts", m.text()),
                        )
                        .with_help(
                            "write MESSAGE, MESSAGE.LINK, JOURNEY.MESSAGE or JOURNEY.MESSAGE.LINK",
                        ),
                    );
                }
                self.check_verb(file, verb, *ch, m.span, &parts[0].name);
                let link = parts.get(1).map(|l| {
                    self.check_link(file, l, links, &parts[0].name);
                    l.name.clone()
                });
                return TargetIr::Message {
                    journey: h.journey.clone(),
                    message: parts[0].name.clone(),
                    link,
                };
            }
        }
        let journey_def = match self.defs.get(&parts[0].name) {
            Some((DefKind::Journey, jf, Definition::Journey(j))) => Some((*jf, j)),
            _ => None,
        };
        if let (Some((_jf, j)), Some(msg)) = (journey_def, parts.get(1)) {
            let other = JourneyMessages::of(j);
            match other.messages.get(&msg.name) {
                Some((ch, links)) => {
                    self.check_verb(file, verb, *ch, m.span, &msg.name);
                    let link = parts.get(2).map(|l| {
                        self.check_link(file, l, links, &msg.name);
                        l.name.clone()
                    });
                    return TargetIr::Message {
                        journey: parts[0].name.clone(),
                        message: msg.name.clone(),
                        link,
                    };
                }
                None => {
                    let mut d = Diagnostic::error(
                        file,
                        msg.span,
                        format!("journey '{}' has no message '{}'", parts[0].name, msg.name),
                    );
                    let names: Vec<&str> = other.messages.keys().map(String::as_str).collect();
                    if let Some(h) = did_you_mean(&msg.name, names) {
                        d = d.with_help(h);
                    }
                    self.err(d);
                    return TargetIr::Journey(parts[0].name.clone());
                }
            }
        }
        let mut d = Diagnostic::error(
            file,
            parts[0].span,
            format!("unknown message '{}'", parts[0].name),
        );
        let mut candidates: Vec<String> = here
            .map(|h| h.messages.keys().cloned().collect())
            .unwrap_or_default();
        candidates.extend(
            self.names_of(DefKind::Journey)
                .iter()
                .map(|s| s.to_string()),
        );
        d = match did_you_mean(&parts[0].name, candidates.iter().map(String::as_str)) {
            Some(h) => d.with_help(h),
            None => match here {
                Some(h) if !h.messages.is_empty() => d.with_help(format!(
                    "messages of this journey: {}",
                    h.messages.keys().cloned().collect::<Vec<_>>().join(", ")
                )),
                _ => d.with_help(
                    "name a message of this journey, or another journey's as JOURNEY.MESSAGE",
                ),
            },
        };
        self.err(d);
        TargetIr::Message {
            journey: String::new(),
            message: parts[0].name.clone(),
            link: None,
        }
    }

    fn check_verb(&mut self, file: usize, verb: Verb, ch: Channel, span: Span, msg: &str) {
        if let Err(why) = verb_supported(verb, ch) {
            self.err(
                Diagnostic::error(
                    file,
                    span,
                    format!(
                        "'{}' cannot be used on '{msg}', which is sent by {}",
                        verb.as_str(),
                        ch.as_str()
                    ),
                )
                .with_help(why),
            );
        }
    }

    fn check_link(&mut self, file: usize, l: &Ident, links: &[String], msg: &str) {
        if !links.contains(&l.name) {
            let mut d = Diagnostic::error(
                file,
                l.span,
                format!("message '{msg}' has no link '{}'", l.name),
            );
            d = match did_you_mean(&l.name, links.iter().map(String::as_str)) {
                Some(h) => d.with_help(h),
                None if links.is_empty() => d.with_help(format!(
                    "declare it in the message: `link {} \"https://…\"`",
                    l.name
                )),
                None => d.with_help(format!("its links: {}", links.join(", "))),
            };
            self.err(d);
        }
    }

    // ------------------------------------------------------------ journeys

    fn journey(
        &mut self,
        file: usize,
        j: &'a ast::Journey,
        policies: &BTreeMap<String, PolicyIr>,
        topics: &BTreeMap<String, TopicIr>,
    ) -> JourneyIr {
        let here = JourneyMessages::of(j);
        let mut ir = JourneyIr {
            name: j.name.name.clone(),
            title: None,
            category: None,
            label: None,
            entries: Vec::new(),
            reentry: ReentryIr::Never,
            goal: None,
            exit: None,
            policy: None,
            quiet: None,
            migrate_by_name: false,
            start: None,
            steps: Vec::new(),
            messages: BTreeMap::new(),
            topic: None,
            transactional: false,
        };
        let mut transactional_at: Option<Span> = None;
        let mut topic_at: Option<Span> = None;
        let scope = CondScope::Journey(here.clone());
        let mut seen_headers: HashMap<&'static str, Span> = HashMap::new();
        for h in &j.headers {
            let once = match &h.kind {
                HeaderKind::Title(_) => Some("title"),
                HeaderKind::Category(_) => Some("category"),
                HeaderKind::Label(_) => Some("label"),
                HeaderKind::Reentry(_) => Some("reentry"),
                HeaderKind::Policy(_) => Some("policy"),
                HeaderKind::Quiet { .. } => Some("quiet"),
                HeaderKind::Topic(_) => Some("topic"),
                HeaderKind::Transactional => Some("transactional"),
                _ => None,
            };
            if let Some(key) = once {
                if let Some(prev) = seen_headers.insert(key, h.span) {
                    self.err(
                        Diagnostic::error(file, h.span, format!("`{key}` is given twice"))
                            .with_related(file, prev, "first given here"),
                    );
                }
            }
            match &h.kind {
                HeaderKind::Title(s) => ir.title = Some(s.value.clone()),
                HeaderKind::Category(s) => ir.category = Some(s.value.clone()),
                HeaderKind::Label(s) => ir.label = Some(s.value.clone()),
                HeaderKind::Entry(e) => {
                    let entry = match e {
                        Entry::Event(m) => EntryIr::Event(EventMatchIr {
                            event: m.event.value.clone(),
                            condition: m
                                .condition
                                .as_ref()
                                .map(|c| self.cond(file, c, &CondScope::Record)),
                        }),
                        Entry::SegmentAt {
                            segment,
                            date,
                            time,
                            zone,
                        } => {
                            self.check_ref(file, segment, DefKind::Segment);
                            let d = self.check_date(file, date);
                            let m = self.check_time(file, time);
                            let zone = self.check_zone(file, zone);
                            EntryIr::SegmentAt {
                                segment: segment.name.clone(),
                                at: d.and_hms_opt(m / 60, m % 60, 0).expect("valid time"),
                                zone,
                            }
                        }
                        Entry::SegmentEvery {
                            segment,
                            weekday,
                            time,
                            zone,
                        } => {
                            self.check_ref(file, segment, DefKind::Segment);
                            let minute_of_day = self.check_time(file, time);
                            let zone = self.check_zone(file, zone);
                            EntryIr::SegmentEvery {
                                segment: segment.name.clone(),
                                weekday: weekday.as_ref().and_then(|w| weekday_index(&w.name)),
                                minute_of_day,
                                zone,
                            }
                        }
                        Entry::SegmentJoin { segment } => {
                            self.check_ref(file, segment, DefKind::Segment);
                            EntryIr::SegmentJoin {
                                segment: segment.name.clone(),
                            }
                        }
                        Entry::Api => EntryIr::Api,
                    };
                    ir.entries.push(entry);
                }
                HeaderKind::Reentry(r) => {
                    ir.reentry = match r {
                        Reentry::Never => ReentryIr::Never,
                        Reentry::Always => ReentryIr::Always,
                        Reentry::After(d) => ReentryIr::After {
                            seconds: self.check_positive(file, d, "a re-entry delay"),
                        },
                    }
                }
                HeaderKind::Goal(m) | HeaderKind::Exit(m) => {
                    let em = EventMatchIr {
                        event: m.event.value.clone(),
                        condition: m
                            .condition
                            .as_ref()
                            .map(|c| self.cond(file, c, &CondScope::Record)),
                    };
                    if matches!(h.kind, HeaderKind::Goal(_)) {
                        ir.goal = Some(em);
                    } else {
                        ir.exit = Some(em);
                    }
                }
                HeaderKind::Policy(p) => {
                    if let Some(p) = p {
                        if self.check_ref(file, p, DefKind::Policy) {
                            ir.policy = policies.get(&p.name).cloned();
                        }
                    }
                }
                HeaderKind::Quiet { from, to } => {
                    let from_minute = self.check_time(file, from);
                    let to_minute = self.check_time(file, to);
                    if from_minute == to_minute {
                        self.err(Diagnostic::error(
                            file,
                            h.span,
                            "quiet hours start and end at the same time",
                        ));
                    }
                    ir.quiet = Some(QuietIr {
                        from_minute,
                        to_minute,
                    });
                }
                HeaderKind::MigrateByName => ir.migrate_by_name = true,
                HeaderKind::Transactional => {
                    ir.transactional = true;
                    transactional_at = Some(h.span);
                }
                HeaderKind::Topic(t) => {
                    topic_at = Some(h.span);
                    // `sms` and `push` are channel-wide topics, known without a definition.
                    let builtin = CHANNEL_TOPICS.contains(&t.name.as_str())
                        && !self.defs.contains_key(&t.name);
                    if builtin || self.check_ref(file, t, DefKind::Topic) {
                        ir.topic = Some(TopicUseIr {
                            name: t.name.clone(),
                            default_subscribed: topics
                                .get(&t.name)
                                .is_none_or(|d| d.default_subscribed),
                        });
                    }
                }
            }
        }
        if let (Some(tr), Some(tp)) = (transactional_at, topic_at) {
            self.err(
                Diagnostic::error(
                    file,
                    tp,
                    "a transactional journey cannot have a topic",
                )
                .with_related(file, tr, "declared transactional here")
                .with_help("a topic is consent to marketing; receipts and password resets need none: drop one of the two lines"),
            );
        }
        if ir.entries.is_empty() {
            self.err(
                Diagnostic::error(
                    file,
                    j.name.span,
                    format!("journey '{}' has no entry", j.name.name),
                )
                .with_label("no contact can ever enter this journey")
                .with_help("add `entry event \"…\"`, `entry segment NAME on join` or `entry api`"),
            );
        }

        let mut cx = JourneyCx {
            file,
            name: j.name.name.clone(),
            steps: Vec::new(),
            spans: Vec::new(),
            labels: HashMap::new(),
            messages: BTreeMap::new(),
            if_count: 0,
            split_count: 0,
            gotos: Vec::new(),
            ids: HashMap::new(),
        };
        self.assign(&mut cx, &j.steps);
        self.check_step_names(&cx);
        let start = self.link_block(&mut cx, &j.steps, None, &scope);
        self.check_graph(&cx, start);
        ir.start = start;
        ir.steps = cx.steps;
        ir.messages = cx.messages.into_iter().map(|(k, (m, _))| (k, m)).collect();
        if !ir.transactional
            && topic_at.is_none()
            && !topics.is_empty()
            && ir.messages.values().any(|m| m.channel != Channel::Webhook)
        {
            let names: Vec<&str> = topics.keys().map(String::as_str).collect();
            self.err(
                Diagnostic::warning(
                    file,
                    j.name.span,
                    format!("marketing journey '{}' has no topic", j.name.name),
                )
                .with_label("only `unsubscribed: true` stops its sends")
                .with_help(format!(
                    "add `topic NAME` (defined: {}), or `transactional` if it is not marketing",
                    names.join(", ")
                )),
            );
        }
        ir
    }

    /// First pass: give every step that stays in the state machine an id and a name, in
    /// document order, and collect labels and messages.
    fn assign(&mut self, cx: &mut JourneyCx<'a>, steps: &'a [Step]) {
        for s in steps {
            let id = match &s.kind {
                StepKind::Goto(_) | StepKind::End => None,
                _ => Some(cx.steps.len() as StepId),
            };
            if let Some(label) = &s.label {
                let target = match (&s.kind, id) {
                    (_, Some(id)) => LabelTarget::Step(id),
                    (StepKind::Goto(t), None) => LabelTarget::Goto(t),
                    _ => LabelTarget::Leave,
                };
                if let Some((prev, _)) = cx.labels.get(&label.name) {
                    let prev = *prev;
                    self.err(
                        Diagnostic::error(
                            cx.file,
                            label.span,
                            format!("label '{}' is used twice", label.name),
                        )
                        .with_related(cx.file, prev, "first used here"),
                    );
                } else {
                    cx.labels.insert(label.name.clone(), (label.span, target));
                }
            }
            let Some(id) = id else { continue };
            cx.ids.insert(s.span.start, id);
            let name = match (&s.label, &s.kind) {
                (Some(l), _) => l.name.clone(),
                (None, StepKind::Send(m)) => m.name.name.clone(),
                (None, StepKind::Wait(d)) => format!("wait_{}", d.text),
                (None, StepKind::WaitUntil(w)) => {
                    let mut n = String::from("wait_until");
                    if let Some(d) = &w.date {
                        n.push_str(&format!("_{:04}{:02}{:02}", d.year, d.month, d.day));
                    }
                    if let Some(wd) = &w.weekday {
                        n.push('_');
                        n.push_str(&wd.name);
                    }
                    n.push_str(&format!("_{:02}{:02}", w.time.hour, w.time.minute));
                    n
                }
                (None, StepKind::WaitForEvent(w)) => format!("wait_for_{}", slug(&w.event.value)),
                (None, StepKind::Check(c)) => {
                    format!(
                        "check_{}_{}",
                        c.verb.as_str(),
                        c.message
                            .parts
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join("_")
                    )
                }
                (None, StepKind::If(_)) => {
                    cx.if_count += 1;
                    format!("if_{}", cx.if_count)
                }
                (None, StepKind::Split(_)) => {
                    cx.split_count += 1;
                    format!("split_{}", cx.split_count)
                }
                (None, StepKind::Set { field, .. }) => format!("set_{}", field.name),
                (None, _) => unreachable!("goto and end have no id"),
            };
            // Placeholder kinds, filled by `link_block`.
            cx.steps.push(StepIr {
                name: name.clone(),
                kind: StepKindIr::Wait {
                    seconds: 0,
                    next: None,
                },
            });
            cx.spans.push(s.span);
            match &s.kind {
                StepKind::Send(m) => {
                    let msg = self.message(cx.file, m, &name);
                    if let Some((_, prev)) = cx.messages.get(&m.name.name) {
                        let prev = *prev;
                        self.err(
                            Diagnostic::error(
                                cx.file,
                                m.name.span,
                                format!("two messages named '{}'", m.name.name),
                            )
                            .with_related(cx.file, prev, "first sent here")
                            .with_help(
                                "checks and reports name messages, so each needs its own name",
                            ),
                        );
                    } else {
                        cx.messages.insert(m.name.name.clone(), (msg, m.name.span));
                    }
                }
                StepKind::If(i) => {
                    for (_, b) in &i.arms {
                        self.assign(cx, &b.steps);
                    }
                    if let Some(b) = &i.otherwise {
                        self.assign(cx, &b.steps);
                    }
                }
                StepKind::Split(sp) => {
                    for a in &sp.arms {
                        self.assign(cx, &a.block.steps);
                    }
                }
                StepKind::Check(c) => {
                    for b in [&c.outcomes.yes, &c.outcomes.no].into_iter().flatten() {
                        self.assign(cx, &b.steps);
                    }
                }
                StepKind::WaitForEvent(w) => {
                    for b in [&w.outcomes.yes, &w.outcomes.no].into_iter().flatten() {
                        self.assign(cx, &b.steps);
                    }
                }
                _ => {}
            }
        }
    }

    fn check_step_names(&mut self, cx: &JourneyCx) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, s) in cx.steps.iter().enumerate() {
            if let Some(prev) = seen.insert(&s.name, i) {
                self.err(
                    Diagnostic::error(
                        cx.file,
                        cx.spans[i],
                        format!("two steps are named '{}'", s.name),
                    )
                    .with_label("second step with this name")
                    .with_related(cx.file, cx.spans[prev], "first step with this name")
                    .with_help(format!("give one a label, such as `{}_again: …`", s.name)),
                );
            }
        }
    }

    fn message(&mut self, file: usize, m: &ast::Send, step: &str) -> MessageIr {
        let mut ir = MessageIr {
            name: m.name.name.clone(),
            channel: m.channel,
            step: step.to_string(),
            fields: BTreeMap::new(),
            links: BTreeMap::new(),
            headers: Vec::new(),
            data: BTreeMap::new(),
            timeout_seconds: None,
            template_source: None,
            partials: BTreeMap::new(),
        };
        let allowed = allowed_fields(m.channel);
        for f in &m.fields {
            let name = field_name(&f.kind);
            if !allowed.contains(&name) {
                let mut d = Diagnostic::error(
                    file,
                    f.span,
                    format!("`{name}` is not a field of {} messages", m.channel.as_str()),
                );
                d = d.with_help(format!(
                    "{} messages take: {}",
                    m.channel.as_str(),
                    allowed.join(", ")
                ));
                self.err(d);
                continue;
            }
            match &f.kind {
                FieldKind::Text { key, value } => {
                    if ir
                        .fields
                        .insert(key.name.clone(), value.value.clone())
                        .is_some()
                    {
                        self.err(Diagnostic::error(
                            file,
                            f.span,
                            format!("`{}` is given twice", key.name),
                        ));
                    }
                    if key.name == "template" {
                        ir.template_source = self.read_template(file, value);
                        if let Some(source) = &ir.template_source {
                            ir.partials = self.read_partials(file, value, source);
                        }
                    }
                }
                FieldKind::Link { name, url } => {
                    if ir
                        .links
                        .insert(name.name.clone(), url.value.clone())
                        .is_some()
                    {
                        self.err(Diagnostic::error(
                            file,
                            name.span,
                            format!("link '{}' is declared twice", name.name),
                        ));
                    }
                }
                FieldKind::Header { name, value } => {
                    ir.headers.push((name.value.clone(), value.value.clone()))
                }
                FieldKind::Data(entries) => {
                    for (k, v) in entries {
                        ir.data.insert(k.name.clone(), v.value.clone());
                    }
                }
                FieldKind::Method(mth) => {
                    ir.fields.insert("method".into(), mth.name.clone());
                }
                FieldKind::Timeout(d) => {
                    ir.timeout_seconds = Some(self.check_positive(file, d, "a timeout"))
                }
            }
        }
        let has = |k: &str| ir.fields.contains_key(k);
        let missing = match m.channel {
            Channel::Email if !has("subject") => Some("an email needs a `subject`"),
            Channel::Email if !(has("template") || has("html") || has("text")) => Some(
                "an email needs a body: `template \"file.html\"`, `html \"…\"` or `text \"…\"`",
            ),
            Channel::Email if has("template") && has("html") => {
                Some("an email takes `template` or `html`, not both")
            }
            Channel::Sms if !has("text") => Some("an SMS needs a `text`"),
            Channel::Push if !(has("title") || has("body")) => {
                Some("a push needs a `title` or a `body`")
            }
            Channel::Webhook if !has("url") => Some("a webhook needs a `url`"),
            _ => None,
        };
        if let Some(why) = missing {
            self.err(
                Diagnostic::error(
                    file,
                    m.name.span,
                    format!("message '{}' is incomplete", m.name.name),
                )
                .with_help(why),
            );
        }
        ir
    }

    fn read_template(&mut self, file: usize, name: &Str) -> Option<String> {
        let dir = self.file_dir(file).join("templates");
        let path = dir.join(&name.value);
        if name.value.contains("..") || Path::new(&name.value).is_absolute() {
            self.err(
                Diagnostic::error(
                    file,
                    name.span,
                    "a template path must stay inside templates/",
                )
                .with_help(
                    "name the file relative to the templates/ folder beside this journey file",
                ),
            );
            return None;
        }
        match self.template_text(&path) {
            Ok((_, s)) => Some(s),
            Err(e) => {
                let mut d = Diagnostic::error(
                    file,
                    name.span,
                    format!(
                        "template '{}' cannot be read: {}",
                        name.value,
                        io_reason(&e)
                    ),
                )
                .with_label(format!("looked for {}", path.display()));
                let existing: Vec<String> = std::fs::read_dir(&dir)
                    .map(|rd| {
                        rd.filter_map(|e| e.ok())
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                d = match did_you_mean(&name.value, existing.iter().map(String::as_str)) {
                    Some(h) => d.with_help(h),
                    None => d.with_help(
                        "templates live in the templates/ folder beside the journey file",
                    ),
                };
                self.err(d);
                None
            }
        }
    }

    /// A template file's source id (when `lang` loaded it with the journeys) and text.
    fn template_text(&self, path: &Path) -> std::io::Result<(Option<usize>, String)> {
        match self.loaded.templates.get(path) {
            Some(&id) => Ok((Some(id), self.loaded.sources.get(id).text.clone())),
            None => std::fs::read_to_string(path).map(|t| (None, t)),
        }
    }

    /// Every partial the template `field` names uses, directly or through other partials,
    /// by name. A missing or unsafe one, a name that is not text, and a block that the
    /// template it extends does not have are errors at the template's line (or at the
    /// `template` field when the template is not among the loaded sources).
    fn read_partials(
        &mut self,
        file: usize,
        field: &Str,
        source: &str,
    ) -> BTreeMap<String, String> {
        use partials::RefKind;
        let dir = self.file_dir(file).join("templates");
        let main_id = self.loaded.templates.get(&dir.join(&field.value)).copied();
        // Every template seen: name → (source id, text).
        let mut seen: BTreeMap<String, (Option<usize>, String)> = BTreeMap::new();
        seen.insert(field.value.clone(), (main_id, source.to_string()));
        let mut queue = vec![field.value.clone()];
        let mut parents: Vec<(String, String, Option<usize>, Span)> = Vec::new();
        let mut out = BTreeMap::new();
        while let Some(name) = queue.pop() {
            let (id, text) = seen[&name].clone();
            let (refs, _) = partials::scan(&text);
            for r in refs {
                // Where to point: the reference in the template, or the `template` field.
                let place = |msg: String| match id {
                    Some(id) => Diagnostic::error(id, r.span, msg),
                    None => Diagnostic::error(file, field.span, msg),
                };
                let Some(target) = r.name.clone() else {
                    self.err(place(format!("the template name in '{name}' is not a text")).with_help(
                        "write the partial's name in quotes, such as `{% include \"partials/footer.html\" %}`, so `journey check` can read it with the journey",
                    ));
                    continue;
                };
                if !partials::is_safe_name(&target) {
                    self.err(place(format!("partial '{target}' is outside templates/")).with_help(
                        "name partials relative to the templates/ folder, without `..` or a leading `/`",
                    ));
                    continue;
                }
                if r.kind == RefKind::Extends {
                    parents.push((name.clone(), target.clone(), id, r.span));
                }
                if seen.contains_key(&target) {
                    if target != field.value {
                        continue;
                    }
                    // The template itself, used by one of its partials: served as one too.
                    out.insert(target.clone(), source.to_string());
                    continue;
                }
                let path = dir.join(&target);
                match self.template_text(&path) {
                    Ok((pid, t)) => {
                        out.insert(target.clone(), t.clone());
                        seen.insert(target.clone(), (pid, t));
                        queue.push(target);
                    }
                    Err(_) if r.ignore_missing => {}
                    Err(e) => {
                        let existing: Vec<String> = walk_names(&dir);
                        let at = if id.is_some() {
                            String::new()
                        } else {
                            format!(" (in '{name}')")
                        };
                        let mut d = place(format!(
                            "partial '{target}' cannot be read{at}: {}",
                            io_reason(&e)
                        ))
                        .with_label(format!("looked for {}", path.display()));
                        d = match did_you_mean(&target, existing.iter().map(String::as_str)) {
                            Some(h) => d.with_help(h),
                            None => d.with_help(
                                "partials live in the templates/ folder beside the journey file",
                            ),
                        };
                        self.err(d);
                    }
                }
            }
        }
        // A child's block that no template it extends has is never shown.
        for (child, parent, id, _) in &parents {
            let mut have = std::collections::BTreeSet::new();
            let mut at = Some(parent.clone());
            let mut hops = 0;
            while let Some(p) = at.take() {
                let Some((_, text)) = seen.get(&p) else {
                    have.clear();
                    break; // missing: reported above
                };
                let (refs, blocks) = partials::scan(text);
                have.insert(String::new());
                have.extend(blocks.into_iter().map(|b| b.name));
                hops += 1;
                if hops < 32 {
                    at = refs
                        .into_iter()
                        .find(|r| r.kind == RefKind::Extends)
                        .and_then(|r| r.name);
                }
            }
            if have.is_empty() {
                continue;
            }
            let (_, blocks) = partials::scan(&seen[child].1);
            for b in blocks {
                if !have.contains(&b.name) {
                    let msg = format!(
                        "block '{}' is not in '{parent}', which '{child}' extends",
                        b.name
                    );
                    let d = match id {
                        Some(id) => Diagnostic::error(*id, b.span, msg),
                        None => Diagnostic::error(file, field.span, msg),
                    };
                    self.err(d.with_label("its content would never be shown").with_help(format!(
                        "add `{{% block {} %}}{{% endblock %}}` where it belongs in '{parent}', or rename this block",
                        b.name
                    )));
                }
            }
        }
        out
    }

    /// Second pass: set every step's successors. `cont` is where a contact goes after the
    /// block ends; returns where a contact entering the block goes.
    fn link_block(
        &mut self,
        cx: &mut JourneyCx<'a>,
        steps: &'a [Step],
        cont: Next,
        scope: &CondScope,
    ) -> Next {
        // Steps after an `end` or `goto` in the same block can only be reached by a label.
        let mut dead_after: Option<(Span, &str)> = None;
        for s in steps {
            if let Some((sp, what)) = dead_after {
                if s.label.is_none() {
                    self.err(
                        Diagnostic::error(cx.file, s.span, "this step can never run")
                            .with_label("unreachable")
                            .with_related(
                                cx.file,
                                sp,
                                format!("the `{what}` above leaves this branch"),
                            )
                            .with_help("remove it, or give it a label and `goto` it"),
                    );
                    break;
                }
                dead_after = None;
            }
            match &s.kind {
                StepKind::End => dead_after = Some((s.span, "end")),
                StepKind::Goto(_) => dead_after = Some((s.span, "goto")),
                _ => {}
            }
        }
        let mut next = cont;
        for s in steps.iter().rev() {
            next = self.link_step(cx, s, next, scope);
        }
        next
    }

    fn resolve_label(&mut self, cx: &JourneyCx<'a>, target: &Ident, depth: usize) -> Option<Next> {
        match cx.labels.get(&target.name) {
            Some((_, LabelTarget::Step(id))) => Some(Some(*id)),
            Some((_, LabelTarget::Leave)) => Some(None),
            Some((_, LabelTarget::Goto(t))) => {
                if depth > cx.labels.len() {
                    self.err(
                        Diagnostic::error(
                            cx.file,
                            target.span,
                            "these gotos jump to each other forever",
                        )
                        .with_help("a loop must pass a `wait` or a `check`"),
                    );
                    return None;
                }
                self.resolve_label(cx, t, depth + 1)
            }
            None => {
                let mut d = Diagnostic::error(
                    cx.file,
                    target.span,
                    format!("unknown label '{}'", target.name),
                );
                let names: Vec<&str> = cx.labels.keys().map(String::as_str).collect();
                d = match did_you_mean(&target.name, names.iter().copied()) {
                    Some(h) => d.with_help(h),
                    None => d.with_help("a label is written `name:` before the step to jump to"),
                };
                self.err(d);
                None
            }
        }
    }

    fn link_step(
        &mut self,
        cx: &mut JourneyCx<'a>,
        s: &'a Step,
        next: Next,
        scope: &CondScope,
    ) -> Next {
        let file = cx.file;
        let kind = match &s.kind {
            StepKind::End => return None,
            StepKind::Goto(t) => {
                let target = self.resolve_label(cx, t, 0).unwrap_or(None);
                cx.gotos.push((s.span, target));
                return target;
            }
            StepKind::Send(m) => StepKindIr::Send {
                message: m.name.name.clone(),
                next,
            },
            StepKind::Wait(d) => StepKindIr::Wait {
                seconds: self.check_positive(file, d, "a wait"),
                next,
            },
            StepKind::WaitUntil(w) => {
                let minute_of_day = self.check_time(file, &w.time);
                let date = w.date.as_ref().map(|d| self.check_date(file, d));
                let zone = self.check_zone(file, &w.zone);
                StepKindIr::WaitUntil {
                    date,
                    weekday: w.weekday.as_ref().and_then(|d| weekday_index(&d.name)),
                    minute_of_day,
                    zone,
                    next,
                }
            }
            StepKind::WaitForEvent(w) => {
                let within_seconds = self.check_positive(file, &w.within, "the time to wait");
                let yes = match &w.outcomes.yes {
                    Some(b) => self.link_block(cx, &b.steps, next, scope),
                    None => next,
                };
                let no = match &w.outcomes.no {
                    Some(b) => self.link_block(cx, &b.steps, next, scope),
                    None => next,
                };
                StepKindIr::WaitEvent {
                    event: w.event.value.clone(),
                    condition: w
                        .condition
                        .as_ref()
                        .map(|c| self.cond(file, c, &CondScope::Record)),
                    within_seconds,
                    yes,
                    no,
                }
            }
            StepKind::Check(c) => {
                let within_seconds = self.check_positive(file, &c.within, "the time to wait");
                let here = scope.journey().cloned();
                let (message, link) = self.check_target(cx, c, here.as_ref());
                let yes = match &c.outcomes.yes {
                    Some(b) => self.link_block(cx, &b.steps, next, scope),
                    None => next,
                };
                let no = match &c.outcomes.no {
                    Some(b) => self.link_block(cx, &b.steps, next, scope),
                    None => next,
                };
                StepKindIr::Check {
                    verb: c.verb,
                    message,
                    link,
                    within_seconds,
                    yes,
                    no,
                }
            }
            StepKind::If(i) => {
                let mut arms = Vec::new();
                for (c, b) in &i.arms {
                    let cond = self.cond(file, c, scope);
                    let target = self.link_block(cx, &b.steps, next, scope);
                    arms.push((cond, target));
                }
                let otherwise = match &i.otherwise {
                    Some(b) => self.link_block(cx, &b.steps, next, scope),
                    None => next,
                };
                StepKindIr::Branch { arms, otherwise }
            }
            StepKind::Split(sp) => {
                let total: u32 = sp.arms.iter().map(|a| a.basis_points).sum();
                if total != 10_000 {
                    let shares: Vec<&str> =
                        sp.arms.iter().map(|a| a.percent_text.as_str()).collect();
                    self.err(
                        Diagnostic::error(
                            file,
                            self.step_keyword(file, s.span, true),
                            format!(
                                "the shares of this split add up to {}%, not 100%",
                                fmt_basis(total)
                            ),
                        )
                        .with_label(format!("shares: {}", shares.join(" + ")))
                        .with_help("make the shares add up to exactly 100%"),
                    );
                }
                let mut seen: HashMap<&str, Span> = HashMap::new();
                let mut arms = Vec::new();
                for a in &sp.arms {
                    if let Some(prev) = seen.insert(&a.name.name, a.name.span) {
                        self.err(
                            Diagnostic::error(
                                file,
                                a.name.span,
                                format!("two arms named '{}'", a.name.name),
                            )
                            .with_related(
                                file,
                                prev,
                                "first used here",
                            ),
                        );
                    }
                    if a.basis_points == 0 {
                        self.err(Diagnostic::warning(
                            file,
                            a.span,
                            format!("arm '{}' gets no contact (0%)", a.name.name),
                        ));
                    }
                    let target = self.link_block(cx, &a.block.steps, next, scope);
                    arms.push(SplitArmIr {
                        name: a.name.name.clone(),
                        basis_points: a.basis_points,
                        next: target,
                    });
                }
                StepKindIr::Split { arms }
            }
            StepKind::Set { field, value } => {
                if field.name == "id" {
                    self.err(
                        Diagnostic::error(file, field.span, "a contact's id cannot be changed")
                            .with_help("ids are how events find their contact"),
                    );
                }
                StepKindIr::Set {
                    field: field.name.clone(),
                    value: literal_value(value),
                    next,
                }
            }
        };
        let id = cx.ids[&s.span.start];
        cx.steps[id as usize].kind = kind;
        Some(id)
    }

    fn check_target(
        &mut self,
        cx: &JourneyCx,
        c: &Check,
        here: Option<&JourneyMessages>,
    ) -> (String, Option<String>) {
        let parts = &c.message.parts;
        let Some(h) = here else {
            return (parts[0].name.clone(), None);
        };
        match h.messages.get(&parts[0].name) {
            Some((ch, links)) => {
                if parts.len() > 2 {
                    self.err(
                        Diagnostic::error(
                            cx.file,
                            c.message.span,
                            "a check names MESSAGE or MESSAGE.LINK of this journey",
                        )
                        .with_help("checks wait on this journey's own messages"),
                    );
                }
                if let Err(why) = verb_supported(c.verb, *ch) {
                    self.err(
                        Diagnostic::error(
                            cx.file,
                            c.verb_span,
                            format!(
                                "'{}' cannot be checked on '{}', which is sent by {}",
                                c.verb.as_str(),
                                parts[0].name,
                                ch.as_str()
                            ),
                        )
                        .with_label(format!("{} cannot report this", ch.as_str()))
                        .with_help(why),
                    );
                }
                let link = parts.get(1).map(|l| {
                    self.check_link(cx.file, l, links, &parts[0].name);
                    l.name.clone()
                });
                if link.is_some() && c.verb != Verb::Clicked {
                    self.err(
                        Diagnostic::error(
                            cx.file,
                            c.message.span,
                            format!("only `clicked` can name a link, not `{}`", c.verb.as_str()),
                        )
                        .with_help(format!(
                            "write `check {} {}`",
                            c.verb.as_str(),
                            parts[0].name
                        )),
                    );
                }
                (parts[0].name.clone(), link)
            }
            None => {
                let mut d = Diagnostic::error(
                    cx.file,
                    parts[0].span,
                    format!("unknown message '{}'", parts[0].name),
                )
                .with_label("no message of this journey has this name");
                let names: Vec<&str> = h.messages.keys().map(String::as_str).collect();
                d = match did_you_mean(&parts[0].name, names.iter().copied()) {
                    Some(hint) => d.with_help(hint),
                    None if names.is_empty() => d.with_help("this journey sends no message yet"),
                    None => d.with_help(format!("messages of this journey: {}", names.join(", "))),
                };
                self.err(d);
                (parts[0].name.clone(), None)
            }
        }
    }

    /// Reachability from the start, and loops that never wait.
    fn check_graph(&mut self, cx: &JourneyCx, start: Next) {
        let n = cx.steps.len();
        let mut reached = vec![false; n];
        let mut stack: Vec<StepId> = start.into_iter().collect();
        while let Some(id) = stack.pop() {
            if std::mem::replace(&mut reached[id as usize], true) {
                continue;
            }
            for s in cx.steps[id as usize]
                .kind
                .successors()
                .into_iter()
                .flatten()
            {
                stack.push(s);
            }
        }
        let mut reported: Vec<Span> = Vec::new();
        for (i, &was_reached) in reached.iter().enumerate() {
            let sp = cx.spans[i];
            if !was_reached
                && !reported
                    .iter()
                    .any(|r| r.start <= sp.start && sp.end <= r.end)
            {
                // Steps after `end` were reported by `link_block` already.
                if !self
                    .diags
                    .iter()
                    .any(|d| d.file == Some(cx.file) && d.span == sp)
                {
                    self.err(
                        Diagnostic::error(cx.file, self.step_keyword(cx.file, sp, false), format!("step '{}' can never run", cx.steps[i].name))
                            .with_label("unreachable")
                            .with_help("no path from the start leads here: add a `goto` to its label, or remove it"),
                    );
                }
                reported.push(sp);
            }
        }
        // A cycle among steps that do not wait would spin forever at one instant.
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        let mut mark = vec![Mark::New; n];
        for root in 0..n {
            if mark[root] != Mark::New || cx.steps[root].kind.is_waiting() {
                continue;
            }
            // Iterative DFS over non-waiting steps.
            let mut path: Vec<(usize, Vec<usize>)> = Vec::new();
            let succ = |i: usize| -> Vec<usize> {
                cx.steps[i]
                    .kind
                    .successors()
                    .into_iter()
                    .flatten()
                    .map(|s| s as usize)
                    .filter(|s| !cx.steps[*s].kind.is_waiting())
                    .collect()
            };
            mark[root] = Mark::Active;
            path.push((root, succ(root)));
            while let Some((node, rest)) = path.last_mut() {
                let node = *node;
                match rest.pop() {
                    Some(next) => match mark[next] {
                        Mark::New => {
                            mark[next] = Mark::Active;
                            let s = succ(next);
                            path.push((next, s));
                        }
                        Mark::Active => {
                            let goto = cx
                                .gotos
                                .iter()
                                .find(|(_, t)| *t == Some(next as StepId))
                                .map(|(sp, _)| *sp);
                            let at = goto.unwrap_or(cx.spans[node]);
                            self.err(
                                Diagnostic::error(cx.file, at, format!("this loop back to '{}' never waits", cx.steps[next].name))
                                    .with_label("loops without a wait or check")
                                    .with_help("a loop must pass a `wait` or a `check`, or a contact would spin forever"),
                            );
                            return;
                        }
                        Mark::Done => {}
                    },
                    None => {
                        mark[node] = Mark::Done;
                        path.pop();
                    }
                }
            }
        }
        let _ = &cx.name;
    }
}

/// The files below a templates folder, by name relative to it.
fn walk_names(dir: &Path) -> Vec<String> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            e.path()
                .strip_prefix(dir)
                .ok()
                .map(|p| p.to_string_lossy().replace('\\', "/"))
        })
        .collect()
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        _ => e.to_string(),
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
