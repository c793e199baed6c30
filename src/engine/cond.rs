//! Conditions and segments, evaluated over one contact: the profile, the event history and
//! the compiled program (for message attributes and segment definitions).

use super::model::{Contact, Event, MESSAGE_BOUNCED, MESSAGE_SENT};
use super::Millis;
use crate::compile::ir::*;
use crate::domain::{Channel, CmpOp, Combinator, Verb};
use serde_json::Value;
use std::cmp::Ordering;

/// Everything a condition may read about one contact at one moment.
pub struct ContactView<'a> {
    pub contact: &'a Contact,
    /// The contact's history, oldest first.
    pub events: &'a [Event],
    pub program: &'a Program,
    pub now: Millis,
}

/// What bare names and `event.x` refer to while evaluating.
#[derive(Clone, Copy, Default)]
pub struct Subject<'a> {
    /// The record under test: an event in a `where`, a message in `message where`.
    pub record: Option<&'a Event>,
    /// The event that enrolled the contact (for `event.x` in an `if`).
    pub entry_event: Option<&'a Event>,
}

const SECOND: Millis = 1000;

/// A property the step function puts on the `message.sent` it adds to the history for the
/// rest of its run (so caps count the send at once): the send is not delivered yet, so it
/// is not `received`. The runtime records the delivery as a `message.sent` of its own.
pub const PENDING: &str = "pending";

impl<'a> ContactView<'a> {
    pub fn eval(&self, c: &CondIr, subject: Subject) -> bool {
        match c {
            CondIr::And(v) => v.iter().all(|c| self.eval(c, subject)),
            CondIr::Or(v) => v.iter().any(|c| self.eval(c, subject)),
            CondIr::Not(c) => !self.eval(c, subject),
            CondIr::Bool(b) => *b,
            CondIr::Compare {
                path,
                matcher: MatchIr::CmpRef(op, other),
            } => {
                let value = self.lookup(path, subject);
                match self.lookup(other, subject) {
                    Some(o) => matches(value.as_ref(), &MatchIr::Cmp(*op, o)),
                    // Nothing to compare with: only `!=` holds.
                    None => *op == CmpOp::Ne,
                }
            }
            CondIr::Compare { path, matcher } => {
                let value = self.lookup(path, subject);
                matches(value.as_ref(), matcher)
            }
            CondIr::Time { path, test } => {
                let value = self.lookup(path, subject);
                super::times::time_test(value.as_ref(), test, self.now, self.zone())
            }
            CondIr::InSegment(name) => self.in_segment(name),
            CondIr::InList(list) => self
                .contact
                .profile
                .get("lists")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(list))),
            CondIr::Engagement {
                verb,
                target,
                window_seconds,
                op,
                count,
            } => {
                let since = window_seconds.map(|w| self.now - w * SECOND);
                let n = self.count_engagement(*verb, target, since, None);
                compare_num(n as f64, *op, *count as f64)
            }
            CondIr::LastEngagement {
                verb,
                target,
                op,
                seconds,
            } => match self.engagements(*verb, target).map(|e| e.at).max() {
                Some(at) => compare_num((self.now - at) as f64, *op, (*seconds * SECOND) as f64),
                None => false,
            },
            CondIr::Event {
                event,
                condition,
                window_seconds,
                op,
                count,
            } => {
                let since = window_seconds.map(|w| self.now - w * SECOND);
                let n = self
                    .events
                    .iter()
                    .filter(|e| {
                        e.kind == *event && since.is_none_or(|s| e.at > s) && e.at <= self.now
                    })
                    .filter(|e| {
                        condition.as_ref().is_none_or(|c| {
                            self.eval(
                                c,
                                Subject {
                                    record: Some(e),
                                    ..subject
                                },
                            )
                        })
                    })
                    .count();
                compare_num(n as f64, *op, *count as f64)
            }
        }
    }

    /// The contact's time zone (UTC without one): anniversaries and calendar months.
    pub fn zone(&self) -> chrono_tz::Tz {
        super::calendar::pick_zone(None, self.contact.timezone(), chrono_tz::UTC)
    }

    pub fn lookup(&self, path: &[String], subject: Subject) -> Option<Value> {
        let (first, rest) = path.split_first()?;
        let root = match first.as_str() {
            "contact" if !rest.is_empty() => {
                let (field, deeper) = rest.split_first()?;
                return dig(self.contact_field(field)?, deeper);
            }
            "event" if !rest.is_empty() => {
                let ev = subject.record.or(subject.entry_event)?;
                let (field, deeper) = rest.split_first()?;
                return dig(ev.attribute(field)?, deeper);
            }
            "entry" if !rest.is_empty() => {
                let ev = subject.entry_event?;
                let (field, deeper) = rest.split_first()?;
                return dig(ev.attribute(field)?, deeper);
            }
            name => {
                let rec = subject.record?;
                self.record_attribute(rec, name)?
            }
        };
        dig(root, rest)
    }

    fn contact_field(&self, name: &str) -> Option<Value> {
        if name == "id" {
            return Some(Value::String(self.contact.id.clone()));
        }
        self.contact.profile.get(name).cloned()
    }

    /// An attribute of an event, completed from the program for message events: a click
    /// knows its journey and message, the program knows the message's channel, subject, label.
    fn record_attribute(&self, e: &Event, name: &str) -> Option<Value> {
        if let Some(v) = e.attribute(name) {
            return Some(v);
        }
        let j = self.program.journeys.get(e.journey.as_deref()?)?;
        match name {
            "label" => j.label.clone().map(Value::String),
            "channel" => {
                let m = j.messages.get(e.message.as_deref()?)?;
                Some(Value::String(m.channel.as_str().into()))
            }
            "subject" => {
                let m = j.messages.get(e.message.as_deref()?)?;
                m.fields.get("subject").cloned().map(Value::String)
            }
            _ => None,
        }
    }

    fn channel_of(&self, e: &Event) -> Option<Channel> {
        e.channel.or_else(|| {
            let j = self.program.journeys.get(e.journey.as_deref()?)?;
            Some(j.messages.get(e.message.as_deref()?)?.channel)
        })
    }

    fn verb_matches(verb: Verb, e: &Event) -> bool {
        match verb {
            // A send counts as received once sent, unless its provider reports delivery
            // (then the report's `received` does).
            Verb::Received => crate::engine::sent_means_received(e) || e.kind == "received",
            // A bounce is reported by the provider later (`bounced`), or by the channel at
            // once (`message.bounced`, recorded by the runtime instead of `message.sent`).
            Verb::Bounced => e.kind == "bounced" || e.kind == MESSAGE_BOUNCED,
            // Opens are implied by clicks (images off and mail privacy protection hide
            // opens): `count_engagement` counts a message's clicks as one open when it has
            // no open of its own.
            Verb::Opened => e.kind == "opened" || e.kind == "clicked",
            v => e.kind == v.as_str(),
        }
    }

    pub fn target_matches(&self, target: &TargetIr, e: &Event) -> bool {
        match target {
            TargetIr::Message {
                journey,
                message,
                link,
            } => {
                e.journey.as_deref() == Some(journey)
                    && e.message.as_deref() == Some(message)
                    && link.as_ref().is_none_or(|l| e.link.as_deref() == Some(l))
            }
            TargetIr::Journey(j) => e.journey.as_deref() == Some(j),
            TargetIr::Channel(c) => self.channel_of(e) == Some(*c),
            TargetIr::Label(l) => {
                e.properties.get("label").and_then(Value::as_str) == Some(l)
                    || self
                        .program
                        .journeys
                        .get(e.journey.as_deref().unwrap_or(""))
                        .and_then(|j| j.label.as_deref())
                        == Some(l)
            }
            TargetIr::AnyMessage(cond) => {
                e.message.is_some()
                    && cond.as_ref().is_none_or(|c| {
                        self.eval(
                            c,
                            Subject {
                                record: Some(e),
                                entry_event: None,
                            },
                        )
                    })
            }
        }
    }

    /// Engagement events of `verb` on `target`, up to now.
    pub fn engagements<'b>(
        &'b self,
        verb: Verb,
        target: &'b TargetIr,
    ) -> impl Iterator<Item = &'b Event> + 'b {
        self.events.iter().filter(move |e| {
            e.at <= self.now && Self::verb_matches(verb, e) && self.target_matches(target, e)
        })
    }

    /// How many engagements since `since` (exclusive); `received` counts each delivery once,
    /// whether it was reported by the sender, by a delivery report, or both.
    pub fn count_engagement(
        &self,
        verb: Verb,
        target: &TargetIr,
        since: Option<Millis>,
        frame: Option<&FrameIr>,
    ) -> u64 {
        let mut seen_ids: Vec<&str> = Vec::new();
        // Opened: the messages with an open of their own, and those whose clicks already
        // counted as their one implied open.
        fn message_of(e: &Event) -> (Option<&str>, Option<&str>) {
            (e.journey.as_deref(), e.message.as_deref())
        }
        let mut implied: Vec<(Option<&str>, Option<&str>)> = Vec::new();
        if verb == Verb::Opened {
            implied.extend(
                self.engagements(verb, target)
                    .filter(|e| e.kind == "opened")
                    .map(message_of),
            );
        }
        let mut n = 0;
        for e in self.engagements(verb, target) {
            if since.is_some_and(|s| e.at <= s) {
                continue;
            }
            if let Some(f) = frame {
                if !self.in_frame(f, e) {
                    continue;
                }
            }
            if verb == Verb::Opened && e.kind == "clicked" {
                let m = message_of(e);
                if implied.contains(&m) {
                    continue;
                }
                implied.push(m);
            }
            if verb == Verb::Received {
                if let Some(id) = e.message_id.as_deref() {
                    if seen_ids.contains(&id) {
                        continue;
                    }
                    seen_ids.push(id);
                }
            }
            n += 1;
        }
        n
    }

    fn in_frame(&self, f: &FrameIr, e: &Event) -> bool {
        match f {
            FrameIr::Anytime => true,
            FrameIr::InLast { seconds } => e.at > self.now - seconds * SECOND,
            FrameIr::Between { from, to } => {
                let day = chrono::DateTime::from_timestamp_millis(e.at).map(|d| d.date_naive());
                day.is_some_and(|d| *from <= d && d <= *to)
            }
            FrameIr::AfterDelivery { seconds } => {
                // The delivery this engagement answers: the same message, sent before it.
                self.events.iter().any(|s| {
                    s.kind == MESSAGE_SENT
                        && s.journey == e.journey
                        && s.message == e.message
                        && s.at <= e.at
                        && e.at - s.at <= seconds * SECOND
                        && (e.message_id.is_none() || s.message_id == e.message_id)
                })
            }
        }
    }

    pub fn in_segment(&self, name: &str) -> bool {
        match self.program.segments.get(name) {
            Some(s) => self.segment_matches(s),
            None => false,
        }
    }

    /// Rules combine in the written order: `((r1 and r2) or r3) except r4`.
    pub fn segment_matches(&self, s: &SegmentIr) -> bool {
        let mut acc = false;
        for (i, r) in s.rules.iter().enumerate() {
            let v = self.rule_matches(&r.body);
            acc = match (i, r.combinator) {
                (0, _) | (_, None) => v,
                (_, Some(Combinator::And)) => acc && v,
                (_, Some(Combinator::Or)) => acc || v,
                (_, Some(Combinator::Except)) => acc && !v,
            };
        }
        acc
    }

    pub fn rule_matches(&self, r: &RuleBodyIr) -> bool {
        match r {
            RuleBodyIr::Condition(c) => self.eval(c, Subject::default()),
            RuleBodyIr::Event {
                negated,
                event,
                condition,
                occurrences,
                frame,
            } => {
                let n = self
                    .events
                    .iter()
                    .filter(|e| e.kind == *event && e.at <= self.now && self.in_frame(frame, e))
                    .filter(|e| {
                        condition.as_ref().is_none_or(|c| {
                            self.eval(
                                c,
                                Subject {
                                    record: Some(e),
                                    entry_event: None,
                                },
                            )
                        })
                    })
                    .count() as u64;
                if *negated {
                    !occurrences.matches(n)
                } else {
                    occurrences.matches(n)
                }
            }
            RuleBodyIr::Engagement {
                verb,
                target,
                occurrences,
                frame,
            } => occurrences.matches(self.count_engagement(*verb, target, None, Some(frame))),
        }
    }
}

/// The earlier of two optional moments.
fn earliest(a: Option<Millis>, b: Option<Millis>) -> Option<Millis> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

/// Segments may refer to segments (`in segment`); the compiler refuses cycles, and this
/// bounds the walk for programs that were not compiled (tests, old stores).
const MAX_SEGMENT_DEPTH: u32 = 32;

impl<'a> ContactView<'a> {
    /// The first moment after `now` at which this segment's membership could change with
    /// no new input: an event leaving an `in last` window, a `last … ago` crossing its
    /// bound, an event dated in the future coming due. None: only new events, profile
    /// changes or a new definition can change it. The moment may turn out to change
    /// nothing (re-evaluating then is harmless); no change happens before it.
    pub fn segment_next_change(&self, s: &SegmentIr) -> Option<Millis> {
        // An event dated after now starts to count when its time comes, whatever the rule.
        let future = self
            .events
            .iter()
            .map(|e| e.at)
            .filter(|at| *at > self.now)
            .min();
        earliest(future, self.segment_change(s, 0))
    }

    fn segment_change(&self, s: &SegmentIr, depth: u32) -> Option<Millis> {
        if depth > MAX_SEGMENT_DEPTH {
            return None;
        }
        s.rules
            .iter()
            .map(|r| self.rule_change(&r.body, depth))
            .fold(None, earliest)
    }

    fn rule_change(&self, r: &RuleBodyIr, depth: u32) -> Option<Millis> {
        match r {
            RuleBodyIr::Condition(c) => self.cond_change(c, depth),
            RuleBodyIr::Event {
                event,
                condition,
                frame,
                ..
            } => {
                let FrameIr::InLast { seconds } = frame else {
                    // anytime, between dates, after delivery: fixed once the events are in.
                    return None;
                };
                self.window_exit(*seconds, |e| {
                    e.kind == *event
                        && condition.as_ref().is_none_or(|c| {
                            self.eval(
                                c,
                                Subject {
                                    record: Some(e),
                                    entry_event: None,
                                },
                            )
                        })
                })
            }
            RuleBodyIr::Engagement {
                verb,
                target,
                frame,
                ..
            } => match frame {
                FrameIr::InLast { seconds } => self.window_exit(*seconds, |e| {
                    Self::verb_matches(*verb, e) && self.target_matches(target, e)
                }),
                _ => None,
            },
        }
    }

    fn cond_change(&self, c: &CondIr, depth: u32) -> Option<Millis> {
        match c {
            CondIr::And(v) | CondIr::Or(v) => v
                .iter()
                .map(|c| self.cond_change(c, depth))
                .fold(None, earliest),
            CondIr::Not(c) => self.cond_change(c, depth),
            CondIr::Bool(_) | CondIr::Compare { .. } | CondIr::InList(_) => None,
            CondIr::Time { path, test } => {
                let value = self.lookup(path, Subject::default());
                super::times::time_test_change(value.as_ref(), test, self.now, self.zone())
            }
            CondIr::InSegment(name) => self
                .program
                .segments
                .get(name)
                .and_then(|s| self.segment_change(s, depth + 1)),
            CondIr::Engagement {
                verb,
                target,
                window_seconds,
                ..
            } => window_seconds.and_then(|w| {
                self.window_exit(w, |e| {
                    Self::verb_matches(*verb, e) && self.target_matches(target, e)
                })
            }),
            CondIr::LastEngagement {
                verb,
                target,
                seconds,
                ..
            } => {
                // Only the last engagement matters; its age crosses the bound at `b`
                // (`<`, `>=` flip there) or just after it (`<=`, `>`).
                let last = self.engagements(*verb, target).map(|e| e.at).max()?;
                let b = last + seconds * SECOND;
                [b, b + 1].into_iter().find(|t| *t > self.now)
            }
            CondIr::Event {
                event,
                condition,
                window_seconds,
                ..
            } => window_seconds.and_then(|w| {
                self.window_exit(w, |e| {
                    e.kind == *event
                        && condition.as_ref().is_none_or(|c| {
                            self.eval(
                                c,
                                Subject {
                                    record: Some(e),
                                    entry_event: None,
                                },
                            )
                        })
                })
            }),
        }
    }

    /// The first moment one of the matching events in the window `(now - w, now]` leaves
    /// it: an event at `t` counts while `now < t + w`.
    fn window_exit(
        &self,
        window_seconds: i64,
        matching: impl Fn(&Event) -> bool,
    ) -> Option<Millis> {
        let w = window_seconds * SECOND;
        let from = self.now - w;
        self.events
            .iter()
            .filter(|e| e.at > from && e.at <= self.now && matching(e))
            .map(|e| e.at + w)
            .min()
    }
}

fn dig(mut v: Value, path: &[String]) -> Option<Value> {
    for p in path {
        v = v.get(p)?.clone();
    }
    Some(v)
}

fn compare_num(a: f64, op: CmpOp, b: f64) -> bool {
    match op {
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
    }
}

/// Orders two JSON values of the same kind: numbers (also numeric strings), strings, bools.
fn order(a: &Value, b: &Value) -> Option<Ordering> {
    let num = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok(),
        _ => None,
    };
    match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => num(a)?.partial_cmp(&num(b)?),
    }
}

fn loosely_equal(a: &Value, b: &Value) -> bool {
    order(a, b) == Some(Ordering::Equal) || a == b
}

/// A missing value matches only `!=` and `not in`.
pub fn matches(value: Option<&Value>, m: &MatchIr) -> bool {
    let Some(v) = value else {
        return matches!(m, MatchIr::Cmp(CmpOp::Ne, _) | MatchIr::NotIn(_));
    };
    match m {
        MatchIr::Cmp(op, lit) => match op {
            CmpOp::Eq => loosely_equal(v, lit),
            CmpOp::Ne => !loosely_equal(v, lit),
            _ => match order(v, lit) {
                Some(o) => match op {
                    CmpOp::Lt => o == Ordering::Less,
                    CmpOp::Le => o != Ordering::Greater,
                    CmpOp::Gt => o == Ordering::Greater,
                    CmpOp::Ge => o != Ordering::Less,
                    _ => unreachable!(),
                },
                None => false,
            },
        },
        MatchIr::In(list) => list.iter().any(|l| loosely_equal(v, l)),
        MatchIr::NotIn(list) => !list.iter().any(|l| loosely_equal(v, l)),
        MatchIr::Contains(lit) => match (v, lit) {
            (Value::String(s), Value::String(sub)) => s.contains(sub.as_str()),
            (Value::Array(a), x) => a.iter().any(|e| loosely_equal(e, x)),
            _ => false,
        },
        MatchIr::StartsWith(lit) => match (v, lit) {
            (Value::String(s), Value::String(p)) => s.starts_with(p.as_str()),
            _ => false,
        },
        // Resolved by `ContactView::eval`, which knows where to read the other value.
        MatchIr::CmpRef(..) => false,
    }
}

/// How far back a segment's rules look, in milliseconds before `now`: None when some rule
/// can see the whole history (`anytime`, `between`, `after delivery`, `last … ago`).
/// A full evaluation needs only the events since `now` minus this (and later ones).
pub fn segment_lookback(program: &Program, s: &SegmentIr) -> Option<Millis> {
    lookback_segment(program, s, 0)
}

fn lookback_segment(program: &Program, s: &SegmentIr, depth: u32) -> Option<Millis> {
    if depth > MAX_SEGMENT_DEPTH {
        return None;
    }
    let mut max: Millis = 0;
    for r in &s.rules {
        let w = match &r.body {
            RuleBodyIr::Condition(c) => lookback_cond(program, c, depth)?,
            RuleBodyIr::Event { frame, .. } | RuleBodyIr::Engagement { frame, .. } => match frame {
                FrameIr::InLast { seconds } => seconds * SECOND,
                _ => return None,
            },
        };
        max = max.max(w);
    }
    Some(max)
}

fn lookback_cond(program: &Program, c: &CondIr, depth: u32) -> Option<Millis> {
    match c {
        CondIr::And(v) | CondIr::Or(v) => v
            .iter()
            .map(|c| lookback_cond(program, c, depth))
            .try_fold(0, |acc, w| w.map(|w| acc.max(w))),
        CondIr::Not(c) => lookback_cond(program, c, depth),
        CondIr::Bool(_) | CondIr::Compare { .. } | CondIr::InList(_) | CondIr::Time { .. } => {
            Some(0)
        }
        CondIr::InSegment(n) => program
            .segments
            .get(n)
            .map_or(Some(0), |s| lookback_segment(program, s, depth + 1)),
        CondIr::Engagement { window_seconds, .. } | CondIr::Event { window_seconds, .. } => {
            window_seconds.map(|w| w * SECOND)
        }
        CondIr::LastEngagement { .. } => None,
    }
}
