//! The canonical formatter: one layout for every journey file, comments kept.
//!
//! The layout:
//! - two spaces of indentation; one header, step, message field, rule or policy item a line;
//!   a block's `{` ends the line that opens it and its `}` stands on a line of its own, with
//!   `} else if … {` / `} else {` on the closing brace's line;
//! - single spaces between words; conditions keep the parentheses the author wrote; strings
//!   are re-escaped (`\"`, `\\`, `\n`, `\t`), `"""…"""` strings are kept verbatim; durations,
//!   percentages and numbers as written; times `HH:MM`; dates `YYYY-MM-DD`;
//! - the values of consecutive `title` / `category` / `label` headers, of consecutive
//!   one-word message fields (`subject`, `template`, `from`, `method`, `header`, …) and the
//!   bodies of consecutive segment rules start in one column, one space after the longest
//!   key (a `"""…"""` value is never aligned);
//! - one blank line between top-level definitions; elsewhere the blank lines the author left
//!   between lines are kept, at most one in a row, none after a `{` or before a `}`;
//! - comments are kept: a comment alone on its line is printed, at the indentation of the
//!   code, before the line that follows it in the source (inside the block if that line is a
//!   `}`); a comment after code is printed at the end of the formatted line holding that code,
//!   in column 40 (or two spaces after longer code); a comment alone on its line right under
//!   such a comment, in the same column, continues it and stays under it.
//!
//! The syntax tree has no comments, so the source is scanned for them (outside strings), and
//! every printed line records which source bytes it came from, to put them back.

mod render;
mod tokens;
mod trivia;

use render::render;
use tokens::*;
use trivia::*;

use super::ast::*;
use crate::domain::CappedAction;

/// The column (counted from 0) where trailing comments start, when the code leaves room.
const COMMENT_COLUMN: usize = 39;

/// Formats `text`, whose syntax tree is `file`, in the canonical layout.
///
/// `file` must be the tree parsed from `text` (the spans point into it); with another tree
/// the result is still well-formed text but comments may land in odd places. Never panics.
pub fn format_source(text: &str, file: &File) -> String {
    let (trivia, comments) = scan_trivia(text);
    let mut p = Printer {
        src: text,
        trivia,
        comments,
        next: 0,
        lines: Vec::new(),
        last_code: None,
    };
    for (i, def) in file.definitions.iter().enumerate() {
        let start = def.span().start;
        if i > 0 {
            // Comments after the previous `}` stay on it; then one blank line.
            p.flush_trailing(start);
            p.lines.push(Line::blank());
        }
        match def {
            Definition::Journey(j) => p.journey(j),
            Definition::Segment(s) => p.segment(s),
            Definition::Policy(pol) => p.policy(pol),
            Definition::Topic(t) => p.topic(t),
        }
    }
    p.flush_before(usize::MAX, 0);
    render(&mut p.lines)
}

// ---------------------------------------------------------------- output lines

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Align {
    None,
    /// `title` / `category` / `label` of a journey.
    Header,
    /// One-word message fields.
    Field,
    /// Segment rules: `and rule name:`.
    Rule,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Code,
    Comment,
    Blank,
}

#[derive(Debug)]
struct Line {
    kind: Kind,
    indent: usize,
    /// The part aligned across a run of lines of the same `align` (empty if none).
    key: String,
    /// The rest of the line (may hold line breaks, inside a `"""…"""` string).
    text: String,
    align: Align,
    /// Trailing comments: the first after the code, the others under it.
    comments: Vec<String>,
    /// Ends with `{`.
    opens: bool,
    /// Starts with `}`.
    closes: bool,
}

impl Line {
    fn blank() -> Line {
        Line::new(Kind::Blank, 0, String::new())
    }
    fn new(kind: Kind, indent: usize, text: String) -> Line {
        Line {
            kind,
            indent,
            key: String::new(),
            text,
            align: Align::None,
            comments: Vec::new(),
            opens: false,
            closes: false,
        }
    }
}

struct Printer<'a> {
    src: &'a str,
    trivia: Vec<Trivia>,
    /// The byte range of every comment, in order.
    comments: Vec<(usize, usize)>,
    /// The first trivia not printed yet.
    next: usize,
    lines: Vec<Line>,
    /// The index in `lines` of the last code line.
    last_code: Option<usize>,
}

impl Printer<'_> {
    /// The end of the last token at or before `end`: spans of rules that end in an optional
    /// part reach over the whitespace and comments that follow them.
    fn code_end(&self, end: usize) -> usize {
        let b = self.src.as_bytes();
        let mut e = end.min(b.len());
        loop {
            while e > 0 && matches!(b[e - 1], b' ' | b'\t' | b'\r' | b'\n') {
                e -= 1;
            }
            let i = self.comments.partition_point(|&(s, _)| s < e);
            match i.checked_sub(1).map(|i| self.comments[i]) {
                Some((s, ce)) if ce >= e => e = s,
                _ => return e,
            }
        }
    }

    /// Prints the comments and blank lines that come before source offset `limit`, at
    /// `indent`; trailing comments go on the last code line.
    fn flush_before(&mut self, limit: usize, indent: usize) {
        while let Some(t) = self.trivia.get_mut(self.next) {
            if t.offset >= limit {
                break;
            }
            self.next += 1;
            match std::mem::replace(&mut t.kind, TriviaKind::Blank) {
                TriviaKind::Blank => self.lines.push(Line::blank()),
                TriviaKind::Comment(c) => self.lines.push(Line::new(Kind::Comment, indent, c)),
                TriviaKind::Trailing(cs) => self.attach(cs, indent),
            }
        }
    }

    /// Prints the trailing comments before `limit` that come before any other comment or
    /// blank line: they belong to the last code line.
    fn flush_trailing(&mut self, limit: usize) {
        while let Some(t) = self.trivia.get_mut(self.next) {
            if t.offset >= limit || !matches!(t.kind, TriviaKind::Trailing(_)) {
                break;
            }
            self.next += 1;
            if let TriviaKind::Trailing(cs) = std::mem::replace(&mut t.kind, TriviaKind::Blank) {
                self.attach(cs, 0);
            }
        }
    }

    fn attach(&mut self, comments: Vec<String>, indent: usize) {
        match self.last_code.and_then(|i| self.lines.get_mut(i)) {
            Some(l) => l.comments.extend(comments),
            None => {
                for c in comments {
                    self.lines.push(Line::new(Kind::Comment, indent, c));
                }
            }
        }
    }

    /// Adds a code line made from source bytes `start..end`, with the comments before it.
    fn emit(&mut self, mut line: Line, start: usize, end: usize) {
        let end = self.code_end(end).max(start);
        let comment_indent = line.indent + usize::from(line.closes);
        self.flush_before(start, comment_indent);
        // Comments inside the source of this line: own-line ones before it, trailing ones on it.
        let mut trailing = Vec::new();
        while let Some(t) = self.trivia.get_mut(self.next) {
            if t.offset >= end {
                break;
            }
            self.next += 1;
            match std::mem::replace(&mut t.kind, TriviaKind::Blank) {
                TriviaKind::Blank => {}
                TriviaKind::Comment(c) => {
                    self.lines.push(Line::new(Kind::Comment, comment_indent, c));
                }
                TriviaKind::Trailing(cs) => trailing.extend(cs),
            }
        }
        line.comments = trailing;
        self.last_code = Some(self.lines.len());
        self.lines.push(line);
    }

    fn code(&mut self, indent: usize, start: usize, end: usize, text: String) {
        self.emit(Line::new(Kind::Code, indent, text), start, end);
    }

    fn aligned(&mut self, indent: usize, span: Span, align: Align, key: String, text: String) {
        let mut l = Line::new(Kind::Code, indent, text);
        l.key = key;
        l.align = align;
        self.emit(l, span.start, span.end);
    }

    /// A line ending in `{`; `end` is just past that brace in the source, if known.
    fn open(&mut self, indent: usize, start: usize, end: usize, mut text: String) {
        text.push_str(" {");
        let mut l = Line::new(Kind::Code, indent, text);
        l.opens = true;
        self.emit(l, start, end);
    }

    /// A `}` line (or `} else … {`); `at` is the source offset of the `}`.
    fn close(&mut self, indent: usize, at: usize, end: usize, text: &str) {
        let mut l = Line::new(Kind::Code, indent, text.to_string());
        l.closes = true;
        l.opens = text.ends_with('{');
        self.emit(l, at, end.max(at + 1));
    }

    fn close_brace(&mut self, indent: usize, span_end: usize) {
        let at = self.code_end(span_end).saturating_sub(1);
        self.close(indent, at, at + 1, "}");
    }

    // ------------------------------------------------------------ definitions

    fn journey(&mut self, j: &Journey) {
        self.open(
            0,
            j.span.start,
            j.name.span.end,
            format!("journey {}", j.name.name),
        );
        for h in &j.headers {
            self.header(h, 1);
        }
        self.steps(&j.steps, 1);
        self.close_brace(0, j.span.end);
    }

    fn header(&mut self, h: &Header, indent: usize) {
        let mut t = String::new();
        let simple = match &h.kind {
            HeaderKind::Title(s) => Some(("title", s)),
            HeaderKind::Category(s) => Some(("category", s)),
            HeaderKind::Label(s) => Some(("label", s)),
            _ => None,
        };
        if let Some((key, s)) = simple {
            str_lit(&mut t, s);
            if s.triple {
                self.code(indent, h.span.start, h.span.end, format!("{key} {t}"));
            } else {
                self.aligned(indent, h.span, Align::Header, key.to_string(), t);
            }
            return;
        }
        match &h.kind {
            HeaderKind::Title(_) | HeaderKind::Category(_) | HeaderKind::Label(_) => {}
            HeaderKind::Entry(e) => {
                t.push_str("entry ");
                match e {
                    Entry::Event(m) => {
                        t.push_str("event ");
                        self.event_match(&mut t, m);
                    }
                    Entry::SegmentAt {
                        segment,
                        date,
                        time,
                        zone,
                    } => {
                        t.push_str("segment ");
                        t.push_str(&segment.name);
                        t.push_str(" at ");
                        date_lit(&mut t, date);
                        t.push(' ');
                        time_lit(&mut t, time);
                        zone_lit(&mut t, zone);
                    }
                    Entry::SegmentEvery {
                        segment,
                        weekday,
                        time,
                        zone,
                    } => {
                        t.push_str("segment ");
                        t.push_str(&segment.name);
                        t.push_str(" every ");
                        t.push_str(weekday.as_ref().map_or("day", |w| w.name.as_str()));
                        t.push(' ');
                        time_lit(&mut t, time);
                        zone_lit(&mut t, zone);
                    }
                    Entry::SegmentJoin { segment } => {
                        t.push_str("segment ");
                        t.push_str(&segment.name);
                        t.push_str(" on join");
                    }
                    Entry::Api => t.push_str("api"),
                }
            }
            HeaderKind::Reentry(r) => {
                t.push_str("reentry ");
                match r {
                    Reentry::Never => t.push_str("never"),
                    Reentry::Always => t.push_str("always"),
                    Reentry::After(d) => {
                        t.push_str("after ");
                        t.push_str(&d.text);
                    }
                }
            }
            HeaderKind::Goal(m) => {
                t.push_str("goal event ");
                self.event_match(&mut t, m);
            }
            HeaderKind::Exit(m) => {
                t.push_str("exit event ");
                self.event_match(&mut t, m);
            }
            HeaderKind::Policy(p) => {
                t.push_str("policy ");
                t.push_str(p.as_ref().map_or("none", |p| p.name.as_str()));
            }
            HeaderKind::Quiet { from, to } => {
                t.push_str("quiet ");
                time_lit(&mut t, from);
                t.push_str("..");
                time_lit(&mut t, to);
            }
            HeaderKind::MigrateByName => t.push_str("migrate by name"),
            HeaderKind::Transactional => t.push_str("transactional"),
            HeaderKind::Topic(n) => {
                t.push_str("topic ");
                t.push_str(&n.name);
            }
            HeaderKind::Holdout { percent_text, .. } => {
                t.push_str("holdout ");
                t.push_str(percent_text);
            }
        }
        self.code(indent, h.span.start, h.span.end, t);
    }

    fn event_match(&self, t: &mut String, m: &EventMatch) {
        str_lit(t, &m.event);
        if let Some(c) = &m.condition {
            t.push_str(" where ");
            self.cond(t, c);
        }
    }

    fn segment(&mut self, s: &Segment) {
        self.open(
            0,
            s.span.start,
            s.name.span.end,
            format!("segment {}", s.name.name),
        );
        if let Some(title) = &s.title {
            let mut t = String::from("title ");
            str_lit(&mut t, title);
            self.code(1, title.span.start, title.span.end, t);
        }
        for r in &s.rules {
            let mut key = String::new();
            if let Some((c, _)) = r.combinator {
                key.push_str(c.as_str());
                key.push(' ');
            }
            key.push_str("rule ");
            key.push_str(&r.name.name);
            key.push(':');
            let mut body = String::new();
            self.rule_body(&mut body, &r.body);
            self.aligned(1, r.span, Align::Rule, key, body);
        }
        self.close_brace(0, s.span.end);
    }

    fn rule_body(&self, t: &mut String, body: &RuleBody) {
        match body {
            RuleBody::Condition(c) => self.cond(t, c),
            RuleBody::Event {
                negated,
                event,
                condition,
                occurrences,
                frame,
                ..
            } => {
                if *negated {
                    t.push_str("no ");
                }
                t.push_str("event ");
                str_lit(t, event);
                if let Some(c) = condition {
                    t.push_str(" where ");
                    self.cond(t, c);
                }
                self.occurrences(t, occurrences);
                time_frame(t, frame);
            }
            RuleBody::Engagement {
                verb,
                subject,
                occurrences,
                frame,
                ..
            } => {
                t.push_str(verb.as_str());
                t.push(' ');
                match subject {
                    RuleSubject::Messages(c) => {
                        t.push_str("message");
                        if let Some(c) = c {
                            t.push_str(" where ");
                            self.cond(t, c);
                        }
                    }
                    RuleSubject::Target(target) => target_lit(t, target),
                }
                self.occurrences(t, occurrences);
                time_frame(t, frame);
            }
        }
    }

    fn occurrences(&self, t: &mut String, o: &Option<Occurrences>) {
        let Some(o) = o else { return };
        t.push_str(match o.kind {
            OccurrenceKind::AtLeast => " at least ",
            OccurrenceKind::AtMost => " at most ",
            OccurrenceKind::Exactly => " exactly ",
        });
        t.push_str(&o.count.to_string());
        // `time` or `times`, as written.
        let written = self.src.get(o.span.start..o.span.end).unwrap_or("");
        t.push_str(if written.trim_end().ends_with("times") {
            " times"
        } else {
            " time"
        });
    }

    fn policy(&mut self, p: &Policy) {
        self.open(
            0,
            p.span.start,
            p.name.span.end,
            format!("policy {}", p.name.name),
        );
        for item in &p.items {
            let mut t = String::new();
            match &item.kind {
                PolicyItemKind::Title(s) => {
                    t.push_str("title ");
                    str_lit(&mut t, s);
                }
                PolicyItemKind::Cap {
                    max,
                    target_text,
                    per,
                    ..
                } => {
                    t.push_str(&format!("max {max} {target_text} per {}", per.text));
                }
                PolicyItemKind::ScopeGlobal => t.push_str("scope global"),
                PolicyItemKind::ScopeJourney => t.push_str("scope journey"),
                PolicyItemKind::WhenCapped(a) => t.push_str(match a {
                    CappedAction::Delay => "when capped delay",
                    CappedAction::Skip => "when capped skip",
                }),
            }
            self.code(1, item.span.start, item.span.end, t);
        }
        self.close_brace(0, p.span.end);
    }

    fn topic(&mut self, tp: &Topic) {
        self.open(
            0,
            tp.span.start,
            tp.name.span.end,
            format!("topic {}", tp.name.name),
        );
        for item in &tp.items {
            let mut t = String::new();
            match &item.kind {
                TopicItemKind::Title(s) => {
                    t.push_str("title ");
                    str_lit(&mut t, s);
                }
                TopicItemKind::Default(yes) => t.push_str(if *yes {
                    "default subscribed"
                } else {
                    "default unsubscribed"
                }),
            }
            self.code(1, item.span.start, item.span.end, t);
        }
        self.close_brace(0, tp.span.end);
    }

    // ------------------------------------------------------------ steps

    fn steps(&mut self, steps: &[Step], indent: usize) {
        for s in steps {
            self.step(s, indent);
        }
    }

    fn step(&mut self, s: &Step, indent: usize) {
        let mut t = String::new();
        if let Some(l) = &s.label {
            t.push_str(&l.name);
            t.push_str(": ");
        }
        let (start, end) = (s.span.start, s.span.end);
        match &s.kind {
            StepKind::Send(send) => {
                t.push_str("send ");
                t.push_str(send.channel.as_str());
                t.push(' ');
                t.push_str(&send.name.name);
                self.open(indent, start, send.name.span.end, t);
                for f in &send.fields {
                    self.field(f, indent + 1);
                }
                self.close_brace(indent, end);
            }
            StepKind::Wait(d) => {
                t.push_str("wait ");
                t.push_str(&d.text);
                self.code(indent, start, end, t);
            }
            StepKind::WaitUntil(w) => {
                t.push_str("wait until ");
                if let Some(d) = &w.date {
                    date_lit(&mut t, d);
                    t.push(' ');
                }
                if let Some(d) = &w.weekday {
                    t.push_str(&d.name);
                    t.push(' ');
                }
                time_lit(&mut t, &w.time);
                zone_lit(&mut t, &w.zone);
                self.code(indent, start, end, t);
            }
            StepKind::WaitForEvent(w) => {
                t.push_str("wait for event ");
                str_lit(&mut t, &w.event);
                if let Some(c) = &w.condition {
                    t.push_str(" where ");
                    self.cond(&mut t, c);
                }
                t.push_str(" within ");
                t.push_str(&w.within.text);
                self.open(indent, start, w.outcomes.span.start + 1, t);
                self.outcomes(&w.outcomes, indent);
            }
            StepKind::Check(c) => {
                t.push_str("check ");
                t.push_str(c.verb.as_str());
                t.push(' ');
                t.push_str(&c.message.text());
                t.push_str(" within ");
                t.push_str(&c.within.text);
                self.open(indent, start, c.outcomes.span.start + 1, t);
                self.outcomes(&c.outcomes, indent);
            }
            StepKind::If(i) => {
                let mut prev: Option<&Block> = None;
                for (cond, block) in &i.arms {
                    let mut head = String::new();
                    self.cond(&mut head, cond);
                    match prev {
                        None => {
                            t.push_str("if ");
                            t.push_str(&head);
                            self.open(indent, start, block.span.start + 1, std::mem::take(&mut t));
                        }
                        Some(p) => self.close(
                            indent,
                            p.span.end.saturating_sub(1),
                            block.span.start + 1,
                            &format!("}} else if {head} {{"),
                        ),
                    }
                    self.steps(&block.steps, indent + 1);
                    prev = Some(block);
                }
                if let Some(block) = &i.otherwise {
                    let at = prev.map_or(block.span.start, |p| p.span.end.saturating_sub(1));
                    self.close(indent, at, block.span.start + 1, "} else {");
                    self.steps(&block.steps, indent + 1);
                    prev = Some(block);
                }
                self.close_brace(indent, prev.map_or(end, |b| b.span.end));
            }
            StepKind::Split(sp) => {
                t.push_str("split random");
                self.open(indent, start, start + 1, t);
                for arm in &sp.arms {
                    let head = format!("{} {}", arm.percent_text, arm.name.name);
                    self.open(indent + 1, arm.span.start, arm.block.span.start + 1, head);
                    self.steps(&arm.block.steps, indent + 2);
                    self.close_brace(indent + 1, arm.block.span.end);
                }
                self.close_brace(indent, end);
            }
            StepKind::Experiment(x) => {
                t.push_str(&format!(
                    "experiment {} by {} within {}",
                    x.name.name, x.metric.name, x.within.text
                ));
                self.open(indent, start, x.within.span.end, t);
                for arm in &x.arms {
                    match &arm.arm {
                        Some((name, block)) => {
                            let head = format!("{} {}", arm.percent_text, name.name);
                            self.open(indent + 1, arm.span.start, block.span.start + 1, head);
                            self.steps(&block.steps, indent + 2);
                            self.close_brace(indent + 1, block.span.end);
                        }
                        None => self.code(
                            indent + 1,
                            arm.span.start,
                            arm.span.end,
                            format!("{} winner", arm.percent_text),
                        ),
                    }
                }
                self.close_brace(indent, end);
            }
            StepKind::Set { field, value } => {
                t.push_str("set contact.");
                t.push_str(&field.name);
                t.push_str(" = ");
                expr_lit(&mut t, value);
                self.code(indent, start, end, t);
            }
            StepKind::Goto(target) => {
                t.push_str("goto ");
                t.push_str(&target.name);
                self.code(indent, start, end, t);
            }
            StepKind::End => {
                t.push_str("end");
                self.code(indent, start, end, t);
            }
        }
    }

    fn outcomes(&mut self, o: &Outcomes, indent: usize) {
        for (word, block) in [("yes", &o.yes), ("no", &o.no)] {
            if let Some(b) = block {
                self.open(indent + 1, b.span.start, b.span.start + 1, word.to_string());
                self.steps(&b.steps, indent + 2);
                self.close_brace(indent + 1, b.span.end);
            }
        }
        self.close_brace(indent, o.span.end);
    }

    fn field(&mut self, f: &MessageField, indent: usize) {
        let mut t = String::new();
        match &f.kind {
            FieldKind::Text { key, value } => {
                str_lit(&mut t, value);
                if value.triple {
                    self.code(
                        indent,
                        f.span.start,
                        f.span.end,
                        format!("{} {t}", key.name),
                    );
                } else {
                    self.aligned(indent, f.span, Align::Field, key.name.clone(), t);
                }
            }
            FieldKind::Link { name, url } => {
                t.push_str("link ");
                t.push_str(&name.name);
                t.push(' ');
                str_lit(&mut t, url);
                self.code(indent, f.span.start, f.span.end, t);
            }
            FieldKind::Header { name, value } => {
                str_lit(&mut t, name);
                t.push(' ');
                str_lit(&mut t, value);
                if name.triple || value.triple {
                    self.code(indent, f.span.start, f.span.end, format!("header {t}"));
                } else {
                    self.aligned(indent, f.span, Align::Field, "header".into(), t);
                }
            }
            FieldKind::Data(entries) => {
                self.open(indent, f.span.start, f.span.start + 1, "data".into());
                for (k, v) in entries {
                    let mut e = k.name.clone();
                    e.push(' ');
                    str_lit(&mut e, v);
                    self.code(indent + 1, k.span.start, v.span.end, e);
                }
                self.close_brace(indent, f.span.end);
            }
            FieldKind::Method(m) => {
                self.aligned(
                    indent,
                    f.span,
                    Align::Field,
                    "method".into(),
                    m.name.clone(),
                );
            }
            FieldKind::Timeout(d) => {
                self.aligned(
                    indent,
                    f.span,
                    Align::Field,
                    "timeout".into(),
                    d.text.clone(),
                );
            }
        }
    }

    // ------------------------------------------------------------ conditions

    fn cond(&self, t: &mut String, c: &Condition) {
        match &c.kind {
            CondKind::And(..) | CondKind::Or(..) => {
                // Long chains are left-nested: walk the spine without recursing.
                let is_and = matches!(c.kind, CondKind::And(..));
                let mut rights = Vec::new();
                let mut cur = c;
                while let (CondKind::And(l, r), true) | (CondKind::Or(l, r), false) =
                    (&cur.kind, is_and)
                {
                    rights.push(&**r);
                    cur = l;
                }
                self.cond(t, cur);
                let op = if is_and { " and " } else { " or " };
                for r in rights.iter().rev() {
                    t.push_str(op);
                    self.cond(t, r);
                }
            }
            CondKind::Not(_) => {
                let mut cur = c;
                while let CondKind::Not(inner) = &cur.kind {
                    t.push_str("not ");
                    cur = inner;
                }
                self.cond(t, cur);
            }
            CondKind::Group(inner) => {
                t.push('(');
                self.cond(t, inner);
                t.push(')');
            }
            CondKind::Compare { path, matcher } => {
                for (i, p) in path.iter().enumerate() {
                    if i > 0 {
                        t.push('.');
                    }
                    t.push_str(p);
                }
                match matcher {
                    Matcher::Cmp(op, l) => {
                        t.push(' ');
                        t.push_str(op.as_str());
                        t.push(' ');
                        literal(t, l);
                    }
                    Matcher::In(items) => {
                        t.push_str(" in ");
                        list(t, items);
                    }
                    Matcher::NotIn(items) => {
                        t.push_str(" not in ");
                        list(t, items);
                    }
                    Matcher::Contains(l) => {
                        t.push_str(" contains ");
                        literal(t, l);
                    }
                    Matcher::StartsWith(l) => {
                        t.push_str(" starts with ");
                        literal(t, l);
                    }
                    Matcher::CmpRef(op, path, _) => {
                        t.push(' ');
                        t.push_str(op.as_str());
                        t.push(' ');
                        t.push_str(&path.join("."));
                    }
                    Matcher::InLast(d) => {
                        t.push_str(" in last ");
                        t.push_str(&d.text);
                    }
                    Matcher::Before(p) => {
                        t.push_str(" before ");
                        time_point_lit(t, p);
                    }
                    Matcher::After(p) => {
                        t.push_str(" after ");
                        time_point_lit(t, p);
                    }
                    Matcher::Between(a, b) => {
                        t.push_str(" between ");
                        date_lit(t, a);
                        t.push_str(" and ");
                        date_lit(t, b);
                    }
                    Matcher::Anniversary => t.push_str(" is anniversary"),
                }
            }
            CondKind::Bool(b) => t.push_str(if *b { "true" } else { "false" }),
            CondKind::InSegment(s) => {
                t.push_str("in segment ");
                t.push_str(&s.name);
            }
            CondKind::InList(s) => {
                t.push_str("in list ");
                str_lit(t, s);
            }
            CondKind::Engagement {
                verb,
                target,
                in_last,
            } => {
                t.push_str(verb.as_str());
                t.push(' ');
                target_lit(t, target);
                in_last_lit(t, in_last);
            }
            CondKind::LastEngagement {
                verb,
                target,
                op,
                ago,
            } => {
                t.push_str("last ");
                t.push_str(verb.as_str());
                t.push(' ');
                target_lit(t, target);
                t.push(' ');
                t.push_str(op.as_str());
                t.push(' ');
                t.push_str(&ago.text);
                t.push_str(" ago");
            }
            CondKind::CountEngagement {
                verb,
                target,
                op,
                count,
                in_last,
            } => {
                t.push_str("count ");
                t.push_str(verb.as_str());
                t.push(' ');
                target_lit(t, target);
                t.push(' ');
                t.push_str(op.as_str());
                t.push(' ');
                t.push_str(&count.to_string());
                in_last_lit(t, in_last);
            }
            CondKind::Event {
                event,
                condition,
                in_last,
            } => {
                t.push_str("event ");
                str_lit(t, event);
                if let Some(c) = condition {
                    t.push_str(" where ");
                    self.cond(t, c);
                }
                in_last_lit(t, in_last);
            }
            CondKind::CountEvent {
                event,
                condition,
                op,
                count,
                in_last,
            } => {
                t.push_str("count event ");
                str_lit(t, event);
                if let Some(c) = condition {
                    t.push_str(" where ");
                    self.cond(t, c);
                }
                t.push(' ');
                t.push_str(op.as_str());
                t.push(' ');
                t.push_str(&count.to_string());
                in_last_lit(t, in_last);
            }
        }
    }
}
