//! pest's pairs → the AST (`ast::File`).

use super::Rule;
use crate::domain::{CappedAction, Channel, CmpOp, Combinator, Verb};
use crate::lang::ast::*;
use crate::lang::diagnostic::Diagnostic;
use pest::iterators::Pair;

// ---------------------------------------------------------------- pairs → AST

/// Joins the terms of `a and b and c …` (or `or`) into a balanced tree: `and` and `or` are
/// associative, and a balanced tree keeps every recursive pass over conditions (compiler,
/// formatter, drop) O(log n) deep even for a generated condition of 100,000 terms.
fn balanced(mut terms: Vec<Condition>, is_or: bool) -> Condition {
    if terms.len() == 1 {
        return terms.pop().expect("one term");
    }
    let right = terms.split_off(terms.len() / 2);
    let (a, b) = (balanced(terms, is_or), balanced(right, is_or));
    let span = Span::new(a.span.start, b.span.end);
    let kind = if is_or {
        CondKind::Or(Box::new(a), Box::new(b))
    } else {
        CondKind::And(Box::new(a), Box::new(b))
    };
    Condition { kind, span }
}

pub(super) struct Builder {
    pub(super) file: usize,
    pub(super) diags: Vec<Diagnostic>,
}

fn span(p: &Pair<Rule>) -> Span {
    let s = p.as_span();
    Span::new(s.start(), s.end())
}

fn ident(p: Pair<Rule>) -> Ident {
    Ident {
        name: p.as_str().to_string(),
        span: span(&p),
    }
}

fn string(p: Pair<Rule>) -> Str {
    let sp = span(&p);
    let inner = p.into_inner().next().expect("string body");
    match inner.as_rule() {
        Rule::triple_string => {
            let body = inner.into_inner().next().map_or("", |b| b.as_str());
            Str {
                value: body.to_string(),
                triple: true,
                span: sp,
            }
        }
        _ => {
            let raw = inner.into_inner().next().map_or("", |b| b.as_str());
            Str {
                value: unescape(raw),
                triple: false,
                span: sp,
            }
        }
    }
}

/// `\"` and `\\` are the escapes; `\n` and `\t` are accepted as the usual characters, and
/// any other escaped character stands for itself.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The longest duration the language accepts: 100 years of 365.25 days (`36525d`). Bounding
/// every duration keeps `now + duration` far from overflowing, so a typo such as
/// `within 106751991167d` is a compile error and not a timer that fires at once.
pub const MAX_DURATION_SECONDS: i64 = 36_525 * 86_400;

/// A duration's seconds (`1d12h` → 129600); `None` when it is malformed or does not fit an
/// `i64` (bounded further by [`MAX_DURATION_SECONDS`] when the journey is built).
pub fn parse_duration_text(text: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut num: i64 = 0;
    let mut have_digit = false;
    for c in text.chars() {
        if let Some(d) = c.to_digit(10) {
            num = num.checked_mul(10)?.checked_add(d as i64)?;
            have_digit = true;
        } else {
            if !have_digit {
                return None;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                'w' => 604_800,
                _ => return None,
            };
            total = total.checked_add(num.checked_mul(unit)?)?;
            num = 0;
            have_digit = false;
        }
    }
    if have_digit {
        return None;
    }
    Some(total)
}

/// A duration's calendar months and seconds (`1mo2d` → (1, 172800)); `None` when malformed
/// or too large for an `i64`.
pub fn parse_period_text(text: &str) -> Option<(i64, i64)> {
    let (mut months, mut seconds): (i64, i64) = (0, 0);
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let num: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        if let Some(r) = rest.strip_prefix("mo") {
            months = months.checked_add(num)?;
            rest = r;
            continue;
        }
        let unit = match rest.as_bytes().first()? {
            b's' => 1,
            b'm' => 60,
            b'h' => 3600,
            b'd' => 86_400,
            b'w' => 604_800,
            _ => return None,
        };
        seconds = seconds.checked_add(num.checked_mul(unit)?)?;
        rest = &rest[1..];
    }
    Some((months, seconds))
}

/// A calendar month's share of [`MAX_DURATION_SECONDS`]: 100 years are 1200 months.
const MONTH_BOUND_SECONDS: i64 = MAX_DURATION_SECONDS / 1200;

impl Builder {
    fn dur(&mut self, p: Pair<Rule>) -> Dur {
        let sp = span(&p);
        let text = p.as_str().to_string();
        let within_bound = |(mo, s): (i64, i64)| {
            mo.checked_mul(MONTH_BOUND_SECONDS)
                .and_then(|m| m.checked_add(s))
                .is_some_and(|t| t <= MAX_DURATION_SECONDS)
        };
        let (months, seconds) = match parse_period_text(&text) {
            Some(ms) if within_bound(ms) => ms,
            _ => {
                self.diags.push(
                    Diagnostic::error(
                        self.file,
                        sp,
                        format!("the duration {text} is too long: durations are at most 100 years"),
                    )
                    .with_label("longer than 36525d")
                    .with_help(
                        "write at most 36525d (or 5217w); a longer wait would never end, so it is \
                         surely a typo",
                    ),
                );
                (0, 0)
            }
        };
        Dur {
            seconds,
            months,
            text,
            span: sp,
        }
    }

    fn time(&mut self, p: Pair<Rule>) -> TimeOfDay {
        let sp = span(&p);
        let (h, m) = p.as_str().split_once(':').expect("time has a colon");
        TimeOfDay {
            hour: h.parse().unwrap_or(99),
            minute: m.parse().unwrap_or(99),
            span: sp,
        }
    }

    fn date(&mut self, p: Pair<Rule>) -> Date {
        let sp = span(&p);
        let mut it = p.as_str().split('-');
        let year = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let month = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let day = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        Date {
            year,
            month,
            day,
            span: sp,
        }
    }

    pub(super) fn journey(&mut self, p: Pair<Rule>) -> Journey {
        let sp = span(&p);
        let mut inner = p.into_inner();
        let name = ident(inner.next().expect("journey name"));
        let mut headers = Vec::new();
        let mut steps = Vec::new();
        for q in inner {
            match q.as_rule() {
                Rule::header => headers.push(self.header(q)),
                Rule::step => steps.push(self.step(q)),
                r => unreachable!("{r:?} in journey"),
            }
        }
        Journey {
            name,
            headers,
            steps,
            span: sp,
        }
    }

    fn event_match(&mut self, p: Pair<Rule>) -> EventMatch {
        let mut inner = p.into_inner();
        let event = string(inner.next().expect("event name"));
        let condition = inner.next().map(|w| self.where_clause(w));
        EventMatch { event, condition }
    }

    fn where_clause(&mut self, p: Pair<Rule>) -> Condition {
        debug_assert_eq!(p.as_rule(), Rule::where_clause);
        self.condition(p.into_inner().next().expect("where condition"))
    }

    fn header(&mut self, p: Pair<Rule>) -> Header {
        let sp = span(&p);
        let h = p.into_inner().next().expect("header body");
        let kind = match h.as_rule() {
            Rule::title => HeaderKind::Title(string(h.into_inner().next().unwrap())),
            Rule::category => HeaderKind::Category(string(h.into_inner().next().unwrap())),
            Rule::label_header => HeaderKind::Label(string(h.into_inner().next().unwrap())),
            Rule::entry => HeaderKind::Entry(self.entry(h.into_inner().next().unwrap())),
            Rule::reentry => {
                let r = h.into_inner().next().unwrap();
                HeaderKind::Reentry(match r.as_rule() {
                    Rule::reentry_never => Reentry::Never,
                    Rule::reentry_always => Reentry::Always,
                    _ => Reentry::After(self.dur(r.into_inner().next().unwrap())),
                })
            }
            Rule::goal => HeaderKind::Goal(self.event_match(h)),
            Rule::exit => HeaderKind::Exit(self.event_match(h)),
            Rule::policy_use => {
                let r = h.into_inner().next().unwrap();
                HeaderKind::Policy(match r.as_rule() {
                    Rule::policy_none => None,
                    _ => Some(ident(r)),
                })
            }
            Rule::quiet => {
                let mut it = h.into_inner();
                let from = self.time(it.next().unwrap());
                let to = self.time(it.next().unwrap());
                HeaderKind::Quiet { from, to }
            }
            Rule::migrate => HeaderKind::MigrateByName,
            Rule::transactional => HeaderKind::Transactional,
            Rule::topic_use => HeaderKind::Topic(ident(h.into_inner().next().unwrap())),
            Rule::holdout => {
                let percent_text = h.into_inner().next().unwrap().as_str().to_string();
                HeaderKind::Holdout {
                    basis_points: percent_to_basis_points(&percent_text),
                    percent_text,
                }
            }
            r => unreachable!("{r:?} header"),
        };
        Header { kind, span: sp }
    }

    fn entry(&mut self, p: Pair<Rule>) -> Entry {
        match p.as_rule() {
            Rule::entry_event => Entry::Event(self.event_match(p)),
            Rule::entry_segment_at => {
                let mut it = p.into_inner();
                let segment = ident(it.next().unwrap());
                let date = self.date(it.next().unwrap());
                let time = self.time(it.next().unwrap());
                let zone = it.next().map(ident);
                Entry::SegmentAt {
                    segment,
                    date,
                    time,
                    zone,
                }
            }
            Rule::entry_segment_every => {
                let mut it = p.into_inner();
                let segment = ident(it.next().unwrap());
                let day = it.next().unwrap().into_inner().next().unwrap();
                let weekday = match day.as_rule() {
                    Rule::weekday => Some(ident(day)),
                    _ => None,
                };
                let time = self.time(it.next().unwrap());
                let zone = it.next().map(ident);
                Entry::SegmentEvery {
                    segment,
                    weekday,
                    time,
                    zone,
                }
            }
            Rule::entry_segment_join => Entry::SegmentJoin {
                segment: ident(p.into_inner().next().unwrap()),
            },
            Rule::entry_api => Entry::Api,
            r => unreachable!("{r:?} entry"),
        }
    }

    fn block(&mut self, p: Pair<Rule>) -> Block {
        let sp = span(&p);
        Block {
            steps: p.into_inner().map(|s| self.step(s)).collect(),
            span: sp,
        }
    }

    fn step(&mut self, p: Pair<Rule>) -> Step {
        let sp = span(&p);
        let mut inner = p.into_inner().peekable();
        let label = if inner.peek().map(|q| q.as_rule()) == Some(Rule::step_label) {
            Some(ident(inner.next().unwrap().into_inner().next().unwrap()))
        } else {
            None
        };
        let body = inner.next().expect("step body");
        let kind = match body.as_rule() {
            Rule::send => StepKind::Send(self.send(body)),
            Rule::wait_for => StepKind::Wait(self.dur(body.into_inner().next().unwrap())),
            Rule::wait_until => {
                let mut w = WaitUntil {
                    date: None,
                    weekday: None,
                    time: TimeOfDay {
                        hour: 0,
                        minute: 0,
                        span: sp,
                    },
                    zone: None,
                };
                for q in body.into_inner() {
                    match q.as_rule() {
                        Rule::date => w.date = Some(self.date(q)),
                        Rule::weekday => w.weekday = Some(ident(q)),
                        Rule::time_of_day => w.time = self.time(q),
                        Rule::timezone => w.zone = Some(ident(q)),
                        r => unreachable!("{r:?} in wait until"),
                    }
                }
                StepKind::WaitUntil(w)
            }
            Rule::wait_for_event => {
                let mut it = body.into_inner();
                let event = string(it.next().unwrap());
                let mut condition = None;
                let mut next = it.next().unwrap();
                if next.as_rule() == Rule::where_clause {
                    condition = Some(self.where_clause(next));
                    next = it.next().unwrap();
                }
                let within = self.dur(next);
                let outcomes = self.outcomes(it.next().unwrap());
                StepKind::WaitForEvent(WaitForEvent {
                    event,
                    condition,
                    within,
                    outcomes,
                })
            }
            Rule::check => {
                let mut it = body.into_inner();
                let v = it.next().unwrap();
                let verb_span = span(&v);
                let verb = Verb::parse(v.as_str()).expect("grammar verbs");
                let message = message_ref(it.next().unwrap());
                let within = self.dur(it.next().unwrap());
                let outcomes = self.outcomes(it.next().unwrap());
                StepKind::Check(Check {
                    verb,
                    verb_span,
                    message,
                    within,
                    outcomes,
                })
            }
            Rule::if_step => {
                let mut it = body.into_inner();
                let cond = self.condition(it.next().unwrap());
                let block = self.block(it.next().unwrap());
                let mut arms = vec![(cond, block)];
                let mut otherwise = None;
                for q in it {
                    match q.as_rule() {
                        Rule::else_if => {
                            let mut e = q.into_inner();
                            let c = self.condition(e.next().unwrap());
                            let b = self.block(e.next().unwrap());
                            arms.push((c, b));
                        }
                        Rule::else_branch => {
                            otherwise = Some(self.block(q.into_inner().next().unwrap()))
                        }
                        r => unreachable!("{r:?} in if"),
                    }
                }
                StepKind::If(IfStep { arms, otherwise })
            }
            Rule::split => {
                let arms = body
                    .into_inner()
                    .map(|a| {
                        let asp = span(&a);
                        let mut it = a.into_inner();
                        let pct = it.next().unwrap();
                        let percent_text = pct.as_str().to_string();
                        let basis_points = percent_to_basis_points(&percent_text);
                        let name = ident(it.next().unwrap());
                        let block = self.block(it.next().unwrap());
                        SplitArm {
                            basis_points,
                            percent_text,
                            name,
                            block,
                            span: asp,
                        }
                    })
                    .collect();
                StepKind::Split(Split { arms })
            }
            Rule::experiment => {
                let mut it = body.into_inner();
                let name = ident(it.next().unwrap());
                let metric = ident(it.next().unwrap());
                let within = self.dur(it.next().unwrap());
                let arms = it
                    .map(|a| {
                        let asp = span(&a);
                        let mut i = a.into_inner();
                        let percent_text = i.next().unwrap().as_str().to_string();
                        let q = i.next().unwrap();
                        let arm = match q.as_rule() {
                            Rule::winner => None,
                            _ => Some((ident(q), self.block(i.next().unwrap()))),
                        };
                        ExperimentArm {
                            basis_points: percent_to_basis_points(&percent_text),
                            percent_text,
                            arm,
                            span: asp,
                        }
                    })
                    .collect();
                StepKind::Experiment(Experiment {
                    name,
                    metric,
                    within,
                    arms,
                })
            }
            Rule::set => {
                let mut it = body.into_inner();
                let field = ident(it.next().unwrap());
                let value = self.expr(it.next().unwrap());
                StepKind::Set { field, value }
            }
            Rule::goto => StepKind::Goto(ident(body.into_inner().next().unwrap())),
            Rule::end => StepKind::End,
            r => unreachable!("{r:?} step"),
        };
        Step {
            label,
            kind,
            span: sp,
        }
    }

    fn outcomes(&mut self, p: Pair<Rule>) -> Outcomes {
        let sp = span(&p);
        let mut o = Outcomes {
            yes: None,
            no: None,
            span: sp,
        };
        for q in p.into_inner() {
            let is_yes = q.as_rule() == Rule::yes_branch;
            let b = self.block(q.into_inner().next().unwrap());
            if is_yes {
                o.yes = Some(b);
            } else {
                o.no = Some(b);
            }
        }
        o
    }

    fn send(&mut self, p: Pair<Rule>) -> Send {
        let mut it = p.into_inner();
        let channel = match it.next().unwrap().as_str() {
            "email" => Channel::Email,
            "sms" => Channel::Sms,
            "push" => Channel::Push,
            _ => Channel::Webhook,
        };
        let name = ident(it.next().unwrap());
        let fields = it
            .map(|f| {
                let fsp = span(&f);
                let inner = f.into_inner().next().unwrap();
                let kind = match inner.as_rule() {
                    Rule::text_field => {
                        let mut i = inner.into_inner();
                        let key = ident(i.next().unwrap());
                        let value = string(i.next().unwrap());
                        FieldKind::Text { key, value }
                    }
                    Rule::link_field => {
                        let mut i = inner.into_inner();
                        FieldKind::Link {
                            name: ident(i.next().unwrap()),
                            url: string(i.next().unwrap()),
                        }
                    }
                    Rule::header_field => {
                        let mut i = inner.into_inner();
                        FieldKind::Header {
                            name: string(i.next().unwrap()),
                            value: string(i.next().unwrap()),
                        }
                    }
                    Rule::data_field => FieldKind::Data(
                        inner
                            .into_inner()
                            .map(|e| {
                                let mut i = e.into_inner();
                                (ident(i.next().unwrap()), string(i.next().unwrap()))
                            })
                            .collect(),
                    ),
                    Rule::method_field => {
                        FieldKind::Method(ident(inner.into_inner().next().unwrap()))
                    }
                    Rule::timeout_field => {
                        FieldKind::Timeout(self.dur(inner.into_inner().next().unwrap()))
                    }
                    r => unreachable!("{r:?} field"),
                };
                MessageField { kind, span: fsp }
            })
            .collect();
        Send {
            channel,
            name,
            fields,
        }
    }

    fn literal(&mut self, p: Pair<Rule>) -> Literal {
        let inner = if p.as_rule() == Rule::literal {
            p.into_inner().next().unwrap()
        } else {
            p
        };
        match inner.as_rule() {
            Rule::string => Literal::Str(string(inner)),
            Rule::boolean => Literal::Bool(inner.as_str() == "true"),
            Rule::date => Literal::Date(self.date(inner)),
            Rule::number => Literal::Number {
                text: inner.as_str().to_string(),
                value: inner.as_str().parse().unwrap_or(0.0),
            },
            Rule::list => Literal::List(inner.into_inner().map(|q| self.literal(q)).collect()),
            r => unreachable!("{r:?} literal"),
        }
    }

    /// `expr` and `term`: operands folded to the left (`a - b - c` is `(a - b) - c`).
    fn expr(&mut self, p: Pair<Rule>) -> Expr {
        let sp = span(&p);
        match p.as_rule() {
            Rule::expr | Rule::term => {
                let mut it = p.into_inner();
                let mut acc = self.expr(it.next().unwrap());
                while let Some(op) = it.next() {
                    let op = match op.as_str() {
                        "+" => BinOp::Add,
                        "-" => BinOp::Sub,
                        "*" => BinOp::Mul,
                        _ => BinOp::Div,
                    };
                    let rhs = self.expr(it.next().unwrap());
                    let span = Span::new(acc.span.start, rhs.span.end);
                    acc = Expr {
                        kind: ExprKind::Binary(op, Box::new(acc), Box::new(rhs)),
                        span,
                    };
                }
                acc
            }
            Rule::paren_expr => Expr {
                kind: ExprKind::Group(Box::new(self.expr(p.into_inner().next().unwrap()))),
                span: sp,
            },
            Rule::now => Expr {
                kind: ExprKind::Now,
                span: sp,
            },
            Rule::value_ref => Expr {
                kind: ExprKind::Ref(ref_path(p)),
                span: sp,
            },
            Rule::duration => Expr {
                kind: ExprKind::Dur(self.dur(p)),
                span: sp,
            },
            _ => Expr {
                kind: ExprKind::Literal(self.literal(p)),
                span: sp,
            },
        }
    }

    fn time_point(&mut self, p: Pair<Rule>) -> TimePoint {
        let q = p.into_inner().next().unwrap();
        match q.as_rule() {
            Rule::date => TimePoint::Date(self.date(q)),
            _ => {
                let mut it = q.into_inner();
                match it.next() {
                    Some(op) => TimePoint::Now {
                        minus: op.as_str() == "-",
                        offset: Some(self.dur(it.next().unwrap())),
                    },
                    None => TimePoint::Now {
                        minus: false,
                        offset: None,
                    },
                }
            }
        }
    }

    fn list(&mut self, p: Pair<Rule>) -> Vec<Literal> {
        p.into_inner().map(|q| self.literal(q)).collect()
    }

    fn condition(&mut self, p: Pair<Rule>) -> Condition {
        let sp = span(&p);
        match p.as_rule() {
            Rule::condition => self.condition(p.into_inner().next().unwrap()),
            Rule::or_expr | Rule::and_expr => {
                let is_or = p.as_rule() == Rule::or_expr;
                let terms: Vec<Condition> = p.into_inner().map(|q| self.condition(q)).collect();
                balanced(terms, is_or)
            }
            Rule::not_expr => {
                let q = p.into_inner().next().unwrap();
                if q.as_rule() == Rule::not_expr {
                    Condition {
                        kind: CondKind::Not(Box::new(self.condition(q))),
                        span: sp,
                    }
                } else {
                    self.condition(q)
                }
            }
            Rule::group => Condition {
                kind: CondKind::Group(Box::new(self.condition(p.into_inner().next().unwrap()))),
                span: sp,
            },
            Rule::in_segment => Condition {
                kind: CondKind::InSegment(ident(p.into_inner().next().unwrap())),
                span: sp,
            },
            Rule::in_list => Condition {
                kind: CondKind::InList(string(p.into_inner().next().unwrap())),
                span: sp,
            },
            Rule::boolean_cond => Condition {
                kind: CondKind::Bool(p.as_str().trim() == "true"),
                span: sp,
            },
            Rule::engagement => {
                let mut it = p.into_inner();
                let verb = Verb::parse(it.next().unwrap().as_str()).unwrap();
                let target = self.target(it.next().unwrap());
                let in_last = it.next().map(|q| self.in_last(q));
                Condition {
                    kind: CondKind::Engagement {
                        verb,
                        target,
                        in_last,
                    },
                    span: sp,
                }
            }
            Rule::last_engagement => {
                let mut it = p.into_inner();
                let verb = Verb::parse(it.next().unwrap().as_str()).unwrap();
                let target = self.target(it.next().unwrap());
                let op = CmpOp::parse(it.next().unwrap().as_str()).unwrap();
                let ago = self.dur(it.next().unwrap());
                Condition {
                    kind: CondKind::LastEngagement {
                        verb,
                        target,
                        op,
                        ago,
                    },
                    span: sp,
                }
            }
            Rule::count_engagement => {
                let mut it = p.into_inner();
                let verb = Verb::parse(it.next().unwrap().as_str()).unwrap();
                let target = self.target(it.next().unwrap());
                let op = CmpOp::parse(it.next().unwrap().as_str()).unwrap();
                let count = self.count(it.next().unwrap());
                let in_last = it.next().map(|q| self.in_last(q));
                Condition {
                    kind: CondKind::CountEngagement {
                        verb,
                        target,
                        op,
                        count,
                        in_last,
                    },
                    span: sp,
                }
            }
            Rule::event_occurred => {
                let mut it = p.into_inner().peekable();
                let event = string(it.next().unwrap());
                let mut condition = None;
                let mut in_last = None;
                for q in it {
                    match q.as_rule() {
                        Rule::where_clause => condition = Some(Box::new(self.where_clause(q))),
                        _ => in_last = Some(self.in_last(q)),
                    }
                }
                Condition {
                    kind: CondKind::Event {
                        event,
                        condition,
                        in_last,
                    },
                    span: sp,
                }
            }
            Rule::count_event => {
                let mut it = p.into_inner();
                let event = string(it.next().unwrap());
                let mut condition = None;
                let mut next = it.next().unwrap();
                if next.as_rule() == Rule::where_clause {
                    condition = Some(Box::new(self.where_clause(next)));
                    next = it.next().unwrap();
                }
                let op = CmpOp::parse(next.as_str()).unwrap();
                let count = self.count(it.next().unwrap());
                let in_last = it.next().map(|q| self.in_last(q));
                Condition {
                    kind: CondKind::CountEvent {
                        event,
                        condition,
                        op,
                        count,
                        in_last,
                    },
                    span: sp,
                }
            }
            Rule::comparison => {
                let mut it = p.into_inner();
                let path: Vec<String> = it
                    .next()
                    .unwrap()
                    .into_inner()
                    .map(|q| q.as_str().to_string())
                    .collect();
                let m = it.next().unwrap();
                let matcher = match m.as_rule() {
                    Rule::cmp_plain => {
                        let mut i = m.into_inner();
                        let op = CmpOp::parse(i.next().unwrap().as_str()).unwrap();
                        let v = i.next().unwrap();
                        if v.as_rule() == Rule::value_ref {
                            let vs = span(&v);
                            Matcher::CmpRef(op, ref_path(v), vs)
                        } else {
                            Matcher::Cmp(op, self.literal(v))
                        }
                    }
                    Rule::cmp_in_last => Matcher::InLast(self.dur(m.into_inner().next().unwrap())),
                    Rule::cmp_before => {
                        Matcher::Before(self.time_point(m.into_inner().next().unwrap()))
                    }
                    Rule::cmp_after => {
                        Matcher::After(self.time_point(m.into_inner().next().unwrap()))
                    }
                    Rule::cmp_between => {
                        let mut i = m.into_inner();
                        let from = self.date(i.next().unwrap());
                        let to = self.date(i.next().unwrap());
                        Matcher::Between(from, to)
                    }
                    Rule::cmp_anniversary => Matcher::Anniversary,
                    Rule::cmp_in => Matcher::In(self.list(m.into_inner().next().unwrap())),
                    Rule::cmp_not_in => Matcher::NotIn(self.list(m.into_inner().next().unwrap())),
                    Rule::cmp_contains => {
                        Matcher::Contains(self.literal(m.into_inner().next().unwrap()))
                    }
                    Rule::cmp_starts => {
                        Matcher::StartsWith(self.literal(m.into_inner().next().unwrap()))
                    }
                    r => unreachable!("{r:?} matcher"),
                };
                Condition {
                    kind: CondKind::Compare { path, matcher },
                    span: sp,
                }
            }
            r => unreachable!("{r:?} condition"),
        }
    }

    fn count(&mut self, p: Pair<Rule>) -> u64 {
        match p.as_str().parse() {
            Ok(n) => n,
            Err(_) => {
                self.diags.push(Diagnostic::error(
                    self.file,
                    span(&p),
                    "this number is too large",
                ));
                0
            }
        }
    }

    fn in_last(&mut self, p: Pair<Rule>) -> Dur {
        self.dur(p.into_inner().next().unwrap())
    }

    fn target(&mut self, p: Pair<Rule>) -> Target {
        let q = p.into_inner().next().unwrap();
        match q.as_rule() {
            Rule::target_channel => {
                let c = q.into_inner().next().unwrap();
                let csp = span(&c);
                let ch = match c.as_str() {
                    "email" => Channel::Email,
                    "sms" => Channel::Sms,
                    "push" => Channel::Push,
                    _ => Channel::Webhook,
                };
                Target::Channel(ch, csp)
            }
            Rule::target_journey => Target::Journey(ident(q.into_inner().next().unwrap())),
            Rule::target_label => Target::Label(string(q.into_inner().next().unwrap())),
            Rule::message_ref => Target::Message(message_ref(q)),
            r => unreachable!("{r:?} target"),
        }
    }

    pub(super) fn segment(&mut self, p: Pair<Rule>) -> Segment {
        let sp = span(&p);
        let mut it = p.into_inner();
        let name = ident(it.next().unwrap());
        let mut title = None;
        let mut rules = Vec::new();
        for q in it {
            match q.as_rule() {
                Rule::title => title = Some(string(q.into_inner().next().unwrap())),
                Rule::segment_rule => rules.push(self.segment_rule(q)),
                r => unreachable!("{r:?} in segment"),
            }
        }
        Segment {
            name,
            title,
            rules,
            span: sp,
        }
    }

    fn segment_rule(&mut self, p: Pair<Rule>) -> SegmentRule {
        let sp = span(&p);
        let mut it = p.into_inner().peekable();
        let combinator = if it.peek().map(|q| q.as_rule()) == Some(Rule::combinator) {
            let c = it.next().unwrap();
            let k = match c.as_str() {
                "and" => Combinator::And,
                "or" => Combinator::Or,
                _ => Combinator::Except,
            };
            Some((k, span(&c)))
        } else {
            None
        };
        let name = ident(it.next().unwrap());
        let body_pair = it.next().unwrap();
        let inner = body_pair.into_inner().next().unwrap();
        let bsp = span(&inner);
        let body = match inner.as_rule() {
            Rule::condition => RuleBody::Condition(self.condition(inner)),
            Rule::event_rule => {
                let mut negated = false;
                let mut event = None;
                let mut condition = None;
                let mut occurrences = None;
                let mut frame = None;
                for q in inner.into_inner() {
                    match q.as_rule() {
                        Rule::no_kw => negated = true,
                        Rule::string => event = Some(string(q)),
                        Rule::where_clause => condition = Some(self.where_clause(q)),
                        Rule::occurrences => occurrences = Some(self.occurrences(q)),
                        Rule::time_frame => frame = Some(self.time_frame(q)),
                        r => unreachable!("{r:?} in event rule"),
                    }
                }
                RuleBody::Event {
                    negated,
                    event: event.unwrap(),
                    condition,
                    occurrences,
                    frame,
                    span: bsp,
                }
            }
            Rule::engagement_rule => {
                let mut it = inner.into_inner();
                let verb = Verb::parse(it.next().unwrap().as_str()).unwrap();
                let s = it.next().unwrap();
                let subject = match s.as_rule() {
                    Rule::message_where => {
                        RuleSubject::Messages(s.into_inner().next().map(|w| self.where_clause(w)))
                    }
                    _ => RuleSubject::Target(self.target(s)),
                };
                let mut occurrences = None;
                let mut frame = None;
                for q in it {
                    match q.as_rule() {
                        Rule::occurrences => occurrences = Some(self.occurrences(q)),
                        _ => frame = Some(self.time_frame(q)),
                    }
                }
                RuleBody::Engagement {
                    verb,
                    subject,
                    occurrences,
                    frame,
                    span: bsp,
                }
            }
            r => unreachable!("{r:?} rule body"),
        };
        SegmentRule {
            combinator,
            name,
            body,
            span: sp,
        }
    }

    fn occurrences(&mut self, p: Pair<Rule>) -> Occurrences {
        let sp = span(&p);
        let mut it = p.into_inner();
        let kind = match it.next().unwrap().into_inner().next().unwrap().as_rule() {
            Rule::at_least => OccurrenceKind::AtLeast,
            Rule::at_most => OccurrenceKind::AtMost,
            _ => OccurrenceKind::Exactly,
        };
        let count = self.count(it.next().unwrap());
        Occurrences {
            kind,
            count,
            span: sp,
        }
    }

    fn time_frame(&mut self, p: Pair<Rule>) -> TimeFrame {
        let q = p.into_inner().next().unwrap();
        match q.as_rule() {
            Rule::tf_anytime => TimeFrame::Anytime,
            Rule::tf_last => TimeFrame::InLast(self.dur(q.into_inner().next().unwrap())),
            Rule::tf_between => {
                let mut it = q.into_inner();
                let a = self.date(it.next().unwrap());
                let b = self.date(it.next().unwrap());
                TimeFrame::Between(a, b)
            }
            Rule::tf_after_delivery => {
                TimeFrame::AfterDelivery(self.dur(q.into_inner().next().unwrap()))
            }
            r => unreachable!("{r:?} time frame"),
        }
    }

    pub(super) fn policy(&mut self, p: Pair<Rule>) -> Policy {
        let sp = span(&p);
        let mut it = p.into_inner();
        let name = ident(it.next().unwrap());
        let items = it
            .map(|q| {
                let isp = span(&q);
                let kind = match q.as_rule() {
                    Rule::title => PolicyItemKind::Title(string(q.into_inner().next().unwrap())),
                    Rule::cap => {
                        let mut i = q.into_inner();
                        let max = self.count(i.next().unwrap());
                        let t = i.next().unwrap();
                        let target_text = t.as_str().to_string();
                        let channel = match target_text.as_str() {
                            "email" | "emails" => Some(Channel::Email),
                            "sms" => Some(Channel::Sms),
                            "push" | "pushes" => Some(Channel::Push),
                            "webhook" | "webhooks" => Some(Channel::Webhook),
                            _ => None,
                        };
                        let per = self.dur(i.next().unwrap());
                        PolicyItemKind::Cap {
                            max,
                            channel,
                            target_text,
                            per,
                        }
                    }
                    Rule::scope => match q.into_inner().next().unwrap().as_str() {
                        "global" => PolicyItemKind::ScopeGlobal,
                        _ => PolicyItemKind::ScopeJourney,
                    },
                    Rule::when_capped => match q.into_inner().next().unwrap().as_str() {
                        "delay" => PolicyItemKind::WhenCapped(CappedAction::Delay),
                        _ => PolicyItemKind::WhenCapped(CappedAction::Skip),
                    },
                    r => unreachable!("{r:?} policy item"),
                };
                PolicyItem { kind, span: isp }
            })
            .collect();
        Policy {
            name,
            items,
            span: sp,
        }
    }
}

impl Builder {
    pub(super) fn topic(&mut self, p: Pair<Rule>) -> Topic {
        let sp = span(&p);
        let mut it = p.into_inner();
        let name = ident(it.next().unwrap());
        let items = it
            .map(|q| {
                let isp = span(&q);
                let kind = match q.as_rule() {
                    Rule::title => TopicItemKind::Title(string(q.into_inner().next().unwrap())),
                    Rule::topic_default => TopicItemKind::Default(
                        q.into_inner().next().unwrap().as_str() == "subscribed",
                    ),
                    r => unreachable!("{r:?} topic item"),
                };
                TopicItem { kind, span: isp }
            })
            .collect();
        Topic {
            name,
            items,
            span: sp,
        }
    }
}

fn message_ref(p: Pair<Rule>) -> MessageRef {
    let sp = span(&p);
    MessageRef {
        parts: p.into_inner().map(ident).collect(),
        span: sp,
    }
}

/// `contact.a.b` → ["contact", "a", "b"].
fn ref_path(p: Pair<Rule>) -> Vec<String> {
    p.into_inner().map(|q| q.as_str().to_string()).collect()
}

fn percent_to_basis_points(text: &str) -> u32 {
    let t = text.trim_end_matches('%');
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    let whole: u32 = whole.parse().unwrap_or(u32::MAX / 200).min(u32::MAX / 200);
    let mut frac2: String = frac.chars().take(2).collect();
    while frac2.len() < 2 {
        frac2.push('0');
    }
    whole * 100 + frac2.parse::<u32>().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::super::parse_file;

    fn wait(d: &str) -> Result<(), String> {
        let text = format!("journey j {{\n  entry api\n  wait {d}\n}}\n");
        parse_file(0, &text)
            .map(|_| ())
            .map_err(|ds| format!("{ds:?}"))
    }

    #[test]
    fn durations_are_bounded_to_a_hundred_years() {
        assert!(wait("36525d").is_ok());
        assert!(wait("5217w").is_ok());
        assert!(wait("1200mo").is_ok());
        assert!(wait("1mo2d").is_ok());
        for long in [
            "36526d",
            "36525d1s",
            "5218w",
            "106751991167d",
            "99999999999999999999s",
        ] {
            let err = wait(long).expect_err(long);
            assert!(err.contains("is too long"), "{long}: {err}");
        }
    }

    #[test]
    fn months_are_kept_apart_from_seconds() {
        use super::parse_period_text as p;
        assert_eq!(p("1mo"), Some((1, 0)));
        assert_eq!(p("2mo1d1m"), Some((2, 86_460)));
        assert_eq!(p("15m"), Some((0, 900)));
        assert_eq!(p("1o"), None);
        // The seconds-only reading (scenario times) refuses months.
        assert_eq!(super::parse_duration_text("1mo"), None);
    }
}
