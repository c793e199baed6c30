//! The names of the loaded files and where each is defined and used, read from the syntax
//! trees (`lang::ast`) of every file at once, as the compiler resolves them: a message of
//! this journey first, then another journey's `JOURNEY.MESSAGE`. Rebuilt on every change.
//! The hover texts (of steps, durations, time zones, definitions) are written only when asked
//! for, by walking the one file again for the place pointed at: writing them all on every
//! keystroke was most of the time of a change on a large folder.

use super::describe;
use crate::lang::ast::*;
use crate::lang::Loaded;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What a name names.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub enum Kind {
    Journey,
    Message,
    Link,
    Segment,
    Policy,
    Topic,
    /// A journey's `label "…"`, which engagement conditions target with `label "…"`.
    Label,
    /// A step's `name:`, which `goto name` jumps to (per journey).
    StepLabel,
    /// `template "x.html"`: a file of the `templates/` folder.
    Template,
}

/// One place a name is written: its definition or a use.
#[derive(Clone, Debug)]
pub struct Occurrence {
    pub file: usize,
    /// The name itself; for a string (labels, templates) its text inside the quotes.
    pub span: Span,
    pub kind: Kind,
    /// The name made unique: `journey.message.link`, `journey:step_label`, a template's path.
    pub key: String,
    pub def: bool,
}

/// What a journey declares: its messages (channel and links), in order.
#[derive(Clone, Debug, Default)]
pub struct JourneyInfo {
    pub messages: BTreeMap<String, (crate::domain::Channel, Vec<String>)>,
    pub step_labels: BTreeSet<String>,
}

/// A text to show when the pointer rests on a span.
#[derive(Clone, Debug)]
pub struct HoverText {
    pub span: Span,
    pub markdown: String,
}

#[derive(Debug, Default)]
pub struct Index {
    pub occurrences: Vec<Occurrence>,
    pub journeys: BTreeMap<String, JourneyInfo>,
    pub segments: BTreeSet<String>,
    pub policies: BTreeSet<String>,
    pub topics: BTreeSet<String>,
    pub labels: BTreeSet<String>,
    /// The time zones written anywhere (`wait until … Europe/Paris`), at their spans.
    pub zones: Vec<(usize, Span, String)>,
}

impl Index {
    pub fn build(loaded: &Loaded) -> Index {
        let mut ix = Index::default();
        // First what each definition declares, so uses anywhere can be resolved.
        for (_, ast) in &loaded.files {
            for def in &ast.definitions {
                match def {
                    Definition::Journey(j) => {
                        let mut info = JourneyInfo::default();
                        declare_steps(&j.steps, &mut info);
                        for h in &j.headers {
                            if let HeaderKind::Label(s) = &h.kind {
                                ix.labels.insert(s.value.clone());
                            }
                        }
                        ix.journeys.entry(j.name.name.clone()).or_insert(info);
                    }
                    Definition::Segment(s) => {
                        ix.segments.insert(s.name.name.clone());
                    }
                    Definition::Policy(p) => {
                        ix.policies.insert(p.name.name.clone());
                    }
                    Definition::Topic(t) => {
                        ix.topics.insert(t.name.name.clone());
                    }
                }
            }
        }
        let Index {
            occurrences,
            journeys,
            zones,
            ..
        } = &mut ix;
        let mut w = Walker {
            journeys,
            occurrences,
            zones,
            hover_at: None,
            hovers: Vec::new(),
            loaded,
            file: 0,
            journey: None,
        };
        for (file, ast) in &loaded.files {
            w.file = *file;
            for def in &ast.definitions {
                w.definition(def);
            }
        }
        ix
    }

    /// Adds the names `before` knew that this index does not (for completion only: they
    /// have no place in these files).
    pub fn keep_names_of(&mut self, before: &Index) {
        for (name, info) in &before.journeys {
            self.journeys
                .entry(name.clone())
                .or_insert_with(|| info.clone());
        }
        self.segments.extend(before.segments.iter().cloned());
        self.policies.extend(before.policies.iter().cloned());
        self.topics.extend(before.topics.iter().cloned());
        self.labels.extend(before.labels.iter().cloned());
    }

    /// The occurrence at `offset` in `file`, if the offset is on a name.
    pub fn at(&self, file: usize, offset: usize) -> Option<&Occurrence> {
        self.occurrences
            .iter()
            .filter(|o| o.file == file && o.span.start <= offset && offset <= o.span.end)
            .min_by_key(|o| o.span.end - o.span.start)
    }

    /// Every occurrence of the same thing as `o` (its definition first).
    pub fn same(&self, o: &Occurrence) -> Vec<&Occurrence> {
        let mut all: Vec<&Occurrence> = self
            .occurrences
            .iter()
            .filter(|x| x.kind == o.kind && x.key == o.key)
            .collect();
        all.sort_by_key(|x| (!x.def, x.file, x.span.start));
        all
    }

    /// The hover text of the smallest span around `offset`.
    /// The hover text at `offset` in `file` of `loaded` (the files this index was built
    /// from): the innermost of the texts whose span holds the offset.
    pub fn hover(&self, loaded: &Loaded, file: usize, offset: usize) -> Option<HoverText> {
        let (_, ast) = loaded.files.iter().find(|(f, _)| *f == file)?;
        let (mut occurrences, mut zones) = (Vec::new(), Vec::new());
        let mut w = Walker {
            journeys: &self.journeys,
            occurrences: &mut occurrences,
            zones: &mut zones,
            hover_at: Some(offset),
            hovers: Vec::new(),
            loaded,
            file,
            journey: None,
        };
        for def in &ast.definitions {
            w.definition(def);
        }
        w.hovers
            .into_iter()
            .min_by_key(|h| h.span.end - h.span.start)
    }
}

fn declare_steps(steps: &[Step], info: &mut JourneyInfo) {
    for s in steps {
        if let Some(l) = &s.label {
            info.step_labels.insert(l.name.clone());
        }
        match &s.kind {
            StepKind::Send(send) => {
                let links = send
                    .fields
                    .iter()
                    .filter_map(|f| match &f.kind {
                        FieldKind::Link { name, .. } => Some(name.name.clone()),
                        _ => None,
                    })
                    .collect();
                info.messages
                    .entry(send.name.name.clone())
                    .or_insert((send.channel, links));
            }
            _ => each_block(&s.kind, |b| declare_steps(&b.steps, info)),
        }
    }
}

/// Calls `f` on each block nested in a step (branches, arms, outcomes).
pub fn each_block<'a>(kind: &'a StepKind, mut f: impl FnMut(&'a Block)) {
    match kind {
        StepKind::Check(c) => c.outcomes.yes.iter().chain(&c.outcomes.no).for_each(f),
        StepKind::WaitForEvent(w) => w.outcomes.yes.iter().chain(&w.outcomes.no).for_each(f),
        StepKind::If(i) => {
            for (_, b) in &i.arms {
                f(b);
            }
            if let Some(b) = &i.otherwise {
                f(b);
            }
        }
        StepKind::Split(s) => s.arms.iter().for_each(|a| f(&a.block)),
        StepKind::Experiment(x) => x
            .arms
            .iter()
            .filter_map(|a| a.arm.as_ref())
            .for_each(|(_, b)| f(b)),
        _ => {}
    }
}

/// The text of a string literal inside its quotes.
pub fn inner(s: &Str) -> Span {
    let q = if s.triple { 3 } else { 1 };
    if s.span.end >= s.span.start + 2 * q {
        Span::new(s.span.start + q, s.span.end - q)
    } else {
        s.span
    }
}

/// Where `template "name"` of a journey file points: `templates/name` beside the file.
pub fn template_path(journey_file: &Path, name: &str) -> PathBuf {
    journey_file
        .parent()
        .unwrap_or(Path::new("."))
        .join("templates")
        .join(name)
}

/// Walks the syntax trees, writing the occurrences of names and, when asked for the hover
/// texts at an offset, those whose span holds it.
struct Walker<'a, 'l> {
    /// What each journey declares, to resolve message names (read only).
    journeys: &'a BTreeMap<String, JourneyInfo>,
    occurrences: &'a mut Vec<Occurrence>,
    zones: &'a mut Vec<(usize, Span, String)>,
    /// The offset whose hover texts are wanted (None while building the index: none).
    hover_at: Option<usize>,
    hovers: Vec<HoverText>,
    loaded: &'l Loaded,
    file: usize,
    journey: Option<String>,
}

impl<'l> Walker<'_, 'l> {
    fn occ(&mut self, span: Span, kind: Kind, key: impl Into<String>, def: bool) {
        self.occurrences.push(Occurrence {
            file: self.file,
            span,
            kind,
            key: key.into(),
            def,
        });
    }

    /// Whether the hover text of `span` is wanted (only then is it written).
    fn wants(&self, span: Span) -> bool {
        self.hover_at
            .is_some_and(|o| span.start <= o && o <= span.end)
    }

    /// Adds the hover text of `span`, written by `markdown` only if it is wanted.
    fn hover(&mut self, span: Span, markdown: impl FnOnce(&Self) -> String) {
        if self.wants(span) {
            let markdown = markdown(self);
            self.hovers.push(HoverText { span, markdown });
        }
    }

    fn text(&self, span: Span) -> &str {
        let t = &self.loaded.sources.get(self.file).text;
        t.get(span.start..span.end.min(t.len())).unwrap_or("")
    }

    fn dur(&mut self, d: &Dur) {
        self.hover(d.span, |_| {
            format!("`{}`: {}", d.text, describe::duration(&d.text))
        });
    }

    fn zone(&mut self, z: &Ident) {
        self.zones.push((self.file, z.span, z.name.clone()));
        self.hover(z.span, |_| describe::zone(&z.name));
    }

    fn definition(&mut self, def: &Definition) {
        match def {
            Definition::Journey(j) => {
                self.journey = Some(j.name.name.clone());
                self.occ(j.name.span, Kind::Journey, &j.name.name, true);
                self.hover(j.name.span, |_| describe::journey(j));
                for h in &j.headers {
                    self.header(h);
                }
                self.steps(&j.steps);
                self.journey = None;
            }
            Definition::Segment(s) => {
                self.occ(s.name.span, Kind::Segment, &s.name.name, true);
                self.hover(s.name.span, |w| {
                    format!("```journey\n{}\n```", w.text(s.span))
                });
                for r in &s.rules {
                    self.rule(r);
                }
            }
            Definition::Policy(p) => {
                self.occ(p.name.span, Kind::Policy, &p.name.name, true);
                self.hover(p.name.span, |_| describe::policy(p));
                for item in &p.items {
                    if let PolicyItemKind::Cap { per, .. } = &item.kind {
                        self.dur(per);
                        self.hover(item.span, |_| describe::policy_item(&item.kind));
                    }
                }
            }
            Definition::Topic(t) => {
                self.occ(t.name.span, Kind::Topic, &t.name.name, true);
                self.hover(t.name.span, |_| describe::topic(t));
            }
        }
    }

    fn header(&mut self, h: &Header) {
        match &h.kind {
            HeaderKind::Label(s) => self.occ(inner(s), Kind::Label, &s.value, true),
            HeaderKind::Entry(e) => match e {
                Entry::Event(m) => self.cond_opt(m.condition.as_ref()),
                Entry::SegmentAt { segment, zone, .. }
                | Entry::SegmentEvery { segment, zone, .. } => {
                    self.segment_ref(segment);
                    if let Some(z) = zone {
                        self.zone(z);
                    }
                }
                Entry::SegmentJoin { segment } => self.segment_ref(segment),
                Entry::Api => {}
            },
            HeaderKind::Reentry(Reentry::After(d)) => self.dur(d),
            HeaderKind::Goal(m) | HeaderKind::Exit(m) => self.cond_opt(m.condition.as_ref()),
            HeaderKind::Policy(Some(p)) => {
                self.occ(p.span, Kind::Policy, &p.name, false);
                self.hover_def(p.span, Kind::Policy, &p.name);
            }
            HeaderKind::Topic(t) => {
                self.occ(t.span, Kind::Topic, &t.name, false);
                self.hover_def(t.span, Kind::Topic, &t.name);
            }
            _ => {}
        }
    }

    /// On a use, the hover text of its definition (a segment's rules, a policy's caps).
    fn hover_def(&mut self, span: Span, kind: Kind, name: &str) {
        if !self.wants(span) {
            return;
        }
        for (file, ast) in &self.loaded.files {
            for def in &ast.definitions {
                if def.name().name != name {
                    continue;
                }
                let text = match (kind, def) {
                    (Kind::Segment, Definition::Segment(s)) => {
                        let t = &self.loaded.sources.get(*file).text;
                        format!(
                            "```journey\n{}\n```",
                            t.get(s.span.start..s.span.end).unwrap_or("")
                        )
                    }
                    (Kind::Policy, Definition::Policy(p)) => describe::policy(p),
                    (Kind::Topic, Definition::Topic(t)) => describe::topic(t),
                    (Kind::Journey, Definition::Journey(j)) => describe::journey(j),
                    _ => continue,
                };
                self.hover(span, |_| text);
                return;
            }
        }
    }

    fn segment_ref(&mut self, s: &Ident) {
        self.occ(s.span, Kind::Segment, &s.name, false);
        self.hover_def(s.span, Kind::Segment, &s.name);
    }

    fn steps(&mut self, steps: &[Step]) {
        for s in steps {
            self.step(s);
        }
    }

    fn step(&mut self, s: &Step) {
        let journey = self.journey.clone().unwrap_or_default();
        if let Some(l) = &s.label {
            self.occ(
                l.span,
                Kind::StepLabel,
                format!("{journey}:{}", l.name),
                true,
            );
        }
        let hover_span = step_head(self.text(s.span), s.span);
        self.hover(hover_span, |_| describe::step(s));
        match &s.kind {
            StepKind::Send(send) => {
                let msg = format!("{journey}.{}", send.name.name);
                self.occ(send.name.span, Kind::Message, &msg, true);
                self.message_hover(&journey, &[&send.name]);
                for f in &send.fields {
                    match &f.kind {
                        FieldKind::Link { name, .. } => {
                            let key = format!("{msg}.{}", name.name);
                            self.occ(name.span, Kind::Link, key, true);
                        }
                        FieldKind::Text { key, value } if key.name == "template" => {
                            let path = template_path(
                                &self.loaded.sources.get(self.file).path,
                                &value.value,
                            );
                            let key = path.display().to_string();
                            self.occ(inner(value), Kind::Template, key, false);
                        }
                        FieldKind::Timeout(d) => self.dur(d),
                        _ => {}
                    }
                }
            }
            StepKind::Wait(d) => self.dur(d),
            StepKind::WaitUntil(w) => {
                if let Some(z) = &w.zone {
                    self.zone(z);
                }
            }
            StepKind::WaitForEvent(w) => {
                self.cond_opt(w.condition.as_ref());
                self.dur(&w.within);
            }
            StepKind::Check(c) => {
                self.message_ref(&c.message);
                self.dur(&c.within);
            }
            StepKind::If(i) => {
                for (c, _) in &i.arms {
                    self.cond(c);
                }
            }
            StepKind::Goto(l) => {
                self.occ(
                    l.span,
                    Kind::StepLabel,
                    format!("{journey}:{}", l.name),
                    false,
                );
            }
            _ => {}
        }
        let mut blocks = Vec::new();
        each_block(&s.kind, |b| blocks.push(b));
        for b in blocks {
            self.steps(&b.steps);
        }
    }

    /// The hover text of a message (and link) of `journey` on a use or definition.
    fn message_hover(&mut self, journey: &str, parts: &[&Ident]) {
        let link = parts.get(1);
        if !self.wants(parts[0].span) && !link.is_some_and(|l| self.wants(l.span)) {
            return;
        }
        let Some(send) = self.send_of(journey, &parts[0].name) else {
            return;
        };
        self.hover(parts[0].span, |_| describe::message(send));
        if let Some(l) = link {
            let url = send.fields.iter().find_map(|f| match &f.kind {
                FieldKind::Link { name, url } if name.name == l.name => Some(url),
                _ => None,
            });
            if let Some(url) = url {
                self.hover(l.span, |_| {
                    format!("link `{}` of `{}`: {}", l.name, send.name.name, url.value)
                });
            }
        }
    }

    /// The first `send` named `name` of the first journey named `journey` (the one the
    /// index declares).
    fn send_of(&self, journey: &str, name: &str) -> Option<&'l Send> {
        fn find<'t>(steps: &'t [Step], name: &str) -> Option<&'t Send> {
            for s in steps {
                match &s.kind {
                    StepKind::Send(send) if send.name.name == name => return Some(send),
                    StepKind::Send(_) => {}
                    kind => {
                        let mut found = None;
                        each_block(kind, |b| {
                            if found.is_none() {
                                found = find(&b.steps, name);
                            }
                        });
                        if found.is_some() {
                            return found;
                        }
                    }
                }
            }
            None
        }
        let loaded: &'l Loaded = self.loaded;
        let j = loaded.files.iter().find_map(|(_, ast)| {
            ast.definitions.iter().find_map(|d| match d {
                Definition::Journey(j) if j.name.name == journey => Some(j),
                _ => None,
            })
        })?;
        find(&j.steps, name)
    }

    fn message_ref(&mut self, m: &MessageRef) {
        let p = &m.parts;
        let here = self
            .journey
            .as_ref()
            .and_then(|j| self.journeys.get(j).map(|i| (j.clone(), i)));
        if let Some((j, info)) = &here {
            if info.messages.contains_key(&p[0].name) {
                let msg = format!("{j}.{}", p[0].name);
                self.occ(p[0].span, Kind::Message, &msg, false);
                if let Some(l) = p.get(1) {
                    self.occ(l.span, Kind::Link, format!("{msg}.{}", l.name), false);
                }
                let parts: Vec<&Ident> = p.iter().take(2).collect();
                self.message_hover(j, &parts);
                return;
            }
        }
        if self.journeys.contains_key(&p[0].name) {
            self.occ(p[0].span, Kind::Journey, &p[0].name, false);
            if let Some(msg) = p.get(1) {
                let key = format!("{}.{}", p[0].name, msg.name);
                self.occ(msg.span, Kind::Message, &key, false);
                if let Some(l) = p.get(2) {
                    self.occ(l.span, Kind::Link, format!("{key}.{}", l.name), false);
                }
                let parts: Vec<&Ident> = p.iter().skip(1).collect();
                let journey = p[0].name.clone();
                self.message_hover(&journey, &parts);
            }
            self.hover_def(p[0].span, Kind::Journey, &p[0].name);
        } else if let Some((j, _)) = here {
            // Unknown: kept as a use of this journey's message, so a rename or a fix finds it.
            self.occ(
                p[0].span,
                Kind::Message,
                format!("{j}.{}", p[0].name),
                false,
            );
        }
    }

    fn cond_opt(&mut self, c: Option<&Condition>) {
        if let Some(c) = c {
            self.cond(c);
        }
    }

    fn cond(&mut self, c: &Condition) {
        match &c.kind {
            CondKind::And(a, b) | CondKind::Or(a, b) => {
                self.cond(a);
                self.cond(b);
            }
            CondKind::Not(a) | CondKind::Group(a) => self.cond(a),
            CondKind::InSegment(s) => self.segment_ref(s),
            CondKind::Engagement {
                target, in_last, ..
            }
            | CondKind::CountEngagement {
                target, in_last, ..
            } => {
                self.target(target);
                if let Some(d) = in_last {
                    self.dur(d);
                }
            }
            CondKind::LastEngagement { target, ago, .. } => {
                self.target(target);
                self.dur(ago);
            }
            CondKind::Event {
                condition, in_last, ..
            }
            | CondKind::CountEvent {
                condition, in_last, ..
            } => {
                if let Some(c) = condition {
                    self.cond(c);
                }
                if let Some(d) = in_last {
                    self.dur(d);
                }
            }
            _ => {}
        }
    }

    fn target(&mut self, t: &Target) {
        match t {
            Target::Message(m) => self.message_ref(m),
            Target::Journey(j) => {
                self.occ(j.span, Kind::Journey, &j.name, false);
                self.hover_def(j.span, Kind::Journey, &j.name);
            }
            Target::Label(s) => self.occ(inner(s), Kind::Label, &s.value, false),
            Target::Channel(..) => {}
        }
    }

    fn rule(&mut self, r: &SegmentRule) {
        let frame = |w: &mut Self, f: &Option<TimeFrame>| match f {
            Some(TimeFrame::InLast(d)) | Some(TimeFrame::AfterDelivery(d)) => w.dur(d),
            _ => {}
        };
        match &r.body {
            RuleBody::Condition(c) => self.cond(c),
            RuleBody::Event {
                condition,
                frame: f,
                ..
            } => {
                self.cond_opt(condition.as_ref());
                frame(self, f);
            }
            RuleBody::Engagement {
                subject, frame: f, ..
            } => {
                match subject {
                    RuleSubject::Messages(c) => self.cond_opt(c.as_ref()),
                    RuleSubject::Target(t) => self.target(t),
                }
                frame(self, f);
            }
        }
    }
}

/// A step's first line (up to its `{`), where its hover text shows: inside its branches the
/// nested steps have their own.
fn step_head(text: &str, span: Span) -> Span {
    let end = text.find(['{', '\n']).map_or(span.end, |i| span.start + i);
    Span::new(span.start, end.max(span.start))
}
