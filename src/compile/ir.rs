//! The compiled form of journeys, segments and policies: the contract between the language
//! and the engine. Everything the engine knows about a journey is here; nothing here points
//! back into source text (no spans), so a formatting-only change compiles to the same IR and
//! the same content hash.

use crate::domain::{CappedAction, Channel, CmpOp, Combinator, Verb};
use crate::lang::ast::OccurrenceKind;
use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// Calendar months of a duration (`1mo`) are left out of the IR when there are none, so a
/// journey without them keeps its content hash.
fn no_months(months: &u32) -> bool {
    *months == 0
}

/// A share left out of the IR when there is none (`holdout`), so journeys without it keep
/// their content hash.
fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Index of a step in `JourneyIr::steps`.
pub type StepId = u32;

/// Where a contact goes next: a step, or out of the journey (`None`).
pub type Next = Option<StepId>;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Program {
    pub journeys: BTreeMap<String, JourneyIr>,
    pub segments: BTreeMap<String, SegmentIr>,
    pub policies: BTreeMap<String, PolicyIr>,
    /// Consent topics (`topic NAME { … }`), for the preference page and the engine.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub topics: BTreeMap<String, TopicIr>,
}

/// Topics every program knows without a definition: consent to a whole channel's marketing
/// (`subscriptions: { sms: false }`). A definition may give them a title.
pub const CHANNEL_TOPICS: [&str; 2] = ["sms", "push"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicIr {
    pub name: String,
    pub title: Option<String>,
    /// `default subscribed`; false for an opt-in topic (only those who said yes).
    pub default_subscribed: bool,
}

/// A journey's `topic NAME`, with the topic's default copied in (as a policy's caps are), so
/// a version keeps the consent rule it was written for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicUseIr {
    pub name: String,
    pub default_subscribed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JourneyIr {
    pub name: String,
    pub title: Option<String>,
    pub category: Option<String>,
    pub label: Option<String>,
    pub entries: Vec<EntryIr>,
    pub reentry: ReentryIr,
    pub goal: Option<EventMatchIr>,
    pub exit: Option<EventMatchIr>,
    /// The policy's definition is copied in, so a version keeps the caps it was written for.
    pub policy: Option<PolicyIr>,
    pub quiet: Option<QuietIr>,
    pub migrate_by_name: bool,
    pub start: Next,
    pub steps: Vec<StepIr>,
    pub messages: BTreeMap<String, MessageIr>,
    /// `topic NAME`: every send needs consent to it. Left out of the JSON when absent (and
    /// `transactional` when false), so journeys without them keep their content hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<TopicUseIr>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transactional: bool,
    /// `holdout N%` in hundredths of a percent: that stable share of entering contacts is
    /// sent nothing (see `JourneyIr::holds_out`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub holdout: u32,
}

impl JourneyIr {
    /// Hex SHA-256 of the IR's canonical JSON: the journey's version id.
    pub fn content_hash(&self) -> String {
        let json = serde_json::to_vec(self).expect("IR serializes");
        let digest = Sha256::digest(&json);
        hex::encode(&digest[..12])
    }

    /// Whether the contact is in this journey's holdout: a stable share of contacts (by a
    /// hash of contact and journey), sent nothing by the journey.
    pub fn holds_out(&self, contact: &str) -> bool {
        self.holdout > 0
            && (stable_hash(&[contact, &self.name, "holdout"]) % 10_000) < self.holdout as u64
    }

    pub fn step_by_name(&self, name: &str) -> Option<StepId> {
        self.steps
            .iter()
            .position(|s| s.name == name)
            .map(|i| i as StepId)
    }

    pub fn step(&self, id: StepId) -> &StepIr {
        &self.steps[id as usize]
    }

    /// Whether a contact waiting at `at` moves on without its history being looked at: `at`
    /// is a `check`, or a `wait for event` without a condition, whose branches lead only
    /// through `wait`s and `split`s to the end, and the journey has no goal or exit (their
    /// conditions may look at the history). Any other step counts as looking at it.
    pub fn wakes_without_history(&self, at: StepId) -> bool {
        let kind = |id: StepId| self.steps.get(id as usize).map(|s| &s.kind);
        let waits = match kind(at) {
            Some(StepKindIr::Check { .. }) => true,
            Some(StepKindIr::WaitEvent { condition, .. }) => condition.is_none(),
            _ => false,
        };
        if !waits || self.goal.is_some() || self.exit.is_some() {
            return false;
        }
        let mut seen: BTreeSet<StepId> = BTreeSet::new();
        let mut todo: Vec<StepId> = kind(at)
            .map(|k| k.successors().into_iter().flatten().collect())
            .unwrap_or_default();
        while let Some(id) = todo.pop() {
            if !seen.insert(id) {
                continue;
            }
            match kind(id) {
                Some(k @ (StepKindIr::Wait { .. } | StepKindIr::Split { .. })) => {
                    todo.extend(k.successors().into_iter().flatten());
                }
                _ => return false,
            }
        }
        true
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReentryIr {
    Never,
    Always,
    After { seconds: i64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMatchIr {
    pub event: String,
    pub condition: Option<CondIr>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryIr {
    Event(EventMatchIr),
    /// One shot, at a local date and time (zone None = the configured default zone).
    SegmentAt {
        segment: String,
        at: NaiveDateTime,
        zone: Option<String>,
    },
    /// Repeated; weekday 0 = Monday, None = every day.
    SegmentEvery {
        segment: String,
        weekday: Option<u32>,
        minute_of_day: u32,
        zone: Option<String>,
    },
    SegmentJoin {
        segment: String,
    },
    Api,
}

impl EntryIr {
    /// The entry as the language writes it (`segment vip every monday 09:00 Europe/Rome`),
    /// for status and reports.
    pub fn describe(&self) -> String {
        let zone = |z: &Option<String>| z.as_ref().map(|z| format!(" {z}")).unwrap_or_default();
        match self {
            EntryIr::Event(m) => format!("event \"{}\"", m.event),
            EntryIr::SegmentAt {
                segment,
                at,
                zone: z,
            } => {
                format!(
                    "segment {segment} at {}{}",
                    at.format("%Y-%m-%d %H:%M"),
                    zone(z)
                )
            }
            EntryIr::SegmentEvery {
                segment,
                weekday,
                minute_of_day,
                zone: z,
            } => format!(
                "segment {segment} every {} {:02}:{:02}{}",
                weekday.map_or("day", |w| super::WEEKDAYS[w as usize % 7]),
                minute_of_day / 60,
                minute_of_day % 60,
                zone(z)
            ),
            EntryIr::SegmentJoin { segment } => format!("segment {segment} on join"),
            EntryIr::Api => "api".into(),
        }
    }
}

/// Quiet hours as minutes of the local day; `from > to` wraps midnight (21:00..08:00).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QuietIr {
    pub from_minute: u32,
    pub to_minute: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepIr {
    pub name: String,
    pub kind: StepKindIr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKindIr {
    Send {
        message: String,
        next: Next,
    },
    /// `seconds` after `months` calendar months in the contact's time zone.
    Wait {
        seconds: i64,
        #[serde(default, skip_serializing_if = "no_months")]
        months: u32,
        next: Next,
    },
    /// The next such local moment: a date, or a weekday (0 = Monday), or any day.
    WaitUntil {
        date: Option<NaiveDate>,
        weekday: Option<u32>,
        minute_of_day: u32,
        zone: Option<String>,
        next: Next,
    },
    Check {
        verb: Verb,
        message: String,
        link: Option<String>,
        within_seconds: i64,
        #[serde(default, skip_serializing_if = "no_months")]
        within_months: u32,
        yes: Next,
        no: Next,
    },
    WaitEvent {
        event: String,
        condition: Option<CondIr>,
        within_seconds: i64,
        #[serde(default, skip_serializing_if = "no_months")]
        within_months: u32,
        yes: Next,
        no: Next,
    },
    Branch {
        arms: Vec<(CondIr, Next)>,
        otherwise: Next,
    },
    Split {
        arms: Vec<SplitArmIr>,
    },
    Set {
        field: String,
        value: serde_json::Value,
        next: Next,
    },
    /// `experiment NAME by METRIC within D { … }`: a contact's arm is stable (a hash of
    /// contact, journey and step); the `winner` share (`winner` basis points, 0 for none)
    /// waits `within`, then follows the arm the runtime decided (`World::decisions`).
    Experiment {
        metric: ExperimentMetric,
        within_seconds: i64,
        #[serde(default, skip_serializing_if = "no_months")]
        within_months: u32,
        arms: Vec<ExperimentArmIr>,
        winner: u32,
    },
    /// `set contact.FIELD = EXPR` with a computed value (a literal alone is `Set`).
    Compute {
        field: String,
        expr: ExprIr,
        next: Next,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExperimentMetric {
    Opened,
    Clicked,
    /// The journey's goal.
    Converted,
}

impl ExperimentMetric {
    pub fn as_str(self) -> &'static str {
        match self {
            ExperimentMetric::Opened => "opened",
            ExperimentMetric::Clicked => "clicked",
            ExperimentMetric::Converted => "converted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentArmIr {
    pub name: String,
    /// Hundredths of a percent.
    pub basis_points: u32,
    pub next: Next,
    /// The messages the arm sends (its opens and clicks count for `opened`, `clicked`).
    pub messages: Vec<String>,
}

/// Which arm of an experiment a contact takes: its index, or None for the winner share.
pub fn experiment_arm(
    contact: &str,
    journey: &str,
    step: &str,
    arms: &[ExperimentArmIr],
) -> Option<usize> {
    let bucket = (stable_hash(&[contact, journey, step]) % 10_000) as u32;
    let mut acc = 0;
    for (i, a) in arms.iter().enumerate() {
        acc += a.basis_points;
        if bucket < acc {
            return Some(i);
        }
    }
    None
}

/// A computed value. `Ref` paths start with their root: `contact`, or `entry` (the entry
/// event's properties; `event` is written as `entry`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExprIr {
    Lit(serde_json::Value),
    Ref(Vec<String>),
    Now,
    Dur { seconds: i64, months: u32 },
    Bin(BinOpIr, Box<ExprIr>, Box<ExprIr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinOpIr {
    Add,
    Sub,
    Mul,
    Div,
}

/// FNV-1a: a stable hash, the same on every machine and release, for `split random`,
/// holdouts and experiments.
pub fn stable_hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

impl StepKindIr {
    /// Every successor, for graph walks.
    pub fn successors(&self) -> Vec<Next> {
        match self {
            StepKindIr::Send { next, .. }
            | StepKindIr::Wait { next, .. }
            | StepKindIr::WaitUntil { next, .. }
            | StepKindIr::Set { next, .. }
            | StepKindIr::Compute { next, .. } => vec![*next],
            StepKindIr::Check { yes, no, .. } | StepKindIr::WaitEvent { yes, no, .. } => {
                vec![*yes, *no]
            }
            StepKindIr::Branch { arms, otherwise } => {
                let mut v: Vec<Next> = arms.iter().map(|(_, n)| *n).collect();
                v.push(*otherwise);
                v
            }
            StepKindIr::Split { arms } => arms.iter().map(|a| a.next).collect(),
            StepKindIr::Experiment { arms, .. } => arms.iter().map(|a| a.next).collect(),
        }
    }

    /// Steps where a contact waits for time or an event: what every loop must pass.
    pub fn is_waiting(&self) -> bool {
        matches!(
            self,
            StepKindIr::Wait { .. }
                | StepKindIr::WaitUntil { .. }
                | StepKindIr::Check { .. }
                | StepKindIr::WaitEvent { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitArmIr {
    pub name: String,
    /// Hundredths of a percent; the arms add up to 10,000.
    pub basis_points: u32,
    pub next: Next,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageIr {
    pub name: String,
    pub channel: Channel,
    /// The name of the step that sends it.
    pub step: String,
    /// subject, html, text, from, reply_to, to, title, body, url, method, template.
    pub fields: BTreeMap<String, String>,
    pub links: BTreeMap<String, String>,
    pub headers: Vec<(String, String)>,
    pub data: BTreeMap<String, String>,
    pub timeout_seconds: Option<i64>,
    /// The template file's text, read at compile time, so a version renders what it was
    /// deployed with and a template change makes a new version.
    pub template_source: Option<String>,
    /// The partials the template file uses (`{% include %}`, `{% extends %}`, `{% import %}`),
    /// by name relative to templates/, read with it: a change to one makes a new version of
    /// every journey that uses it. Absent when there are none, so those versions are unchanged.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub partials: BTreeMap<String, String>,
}

// ---------------------------------------------------------------- conditions

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CondIr {
    And(Vec<CondIr>),
    Or(Vec<CondIr>),
    Not(Box<CondIr>),
    Bool(bool),
    /// `contact.x` reads the profile; `event.x` the event at hand (in a `where`) or the entry
    /// event (in an `if`); a bare name is a property of the record being tested (an event's
    /// properties, `context`, or a message's subject, journey, message, channel, label, link).
    Compare {
        path: Vec<String>,
        matcher: MatchIr,
    },
    InSegment(String),
    InList(String),
    /// How many engagements of `verb` on `target` (in the window) compare to `count`.
    /// `opened welcome` is `>= 1`.
    Engagement {
        verb: Verb,
        target: TargetIr,
        window_seconds: Option<i64>,
        op: CmpOp,
        count: u64,
    },
    /// The time since the last such engagement compares to `seconds` (no engagement: false).
    LastEngagement {
        verb: Verb,
        target: TargetIr,
        op: CmpOp,
        seconds: i64,
    },
    Event {
        event: String,
        condition: Option<Box<CondIr>>,
        window_seconds: Option<i64>,
        op: CmpOp,
        count: u64,
    },
    /// A profile time (`contact.trial_ends_at before now + 3d`): false when the value is
    /// not an RFC 3339 time or a date.
    Time {
        path: Vec<String>,
        test: TimeTestIr,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeTestIr {
    /// Within `(now - period, now]`.
    InLast {
        seconds: i64,
        #[serde(default, skip_serializing_if = "no_months")]
        months: u32,
    },
    Before(TimePointIr),
    After(TimePointIr),
    /// Inclusive dates, in UTC.
    Between {
        from: NaiveDate,
        to: NaiveDate,
    },
    /// The same month and day as today in the contact's time zone (29 February on the 28th
    /// in other years).
    Anniversary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimePointIr {
    /// Midnight UTC of the date.
    Date(NaiveDate),
    /// Now, plus `seconds` (negative: minus) and `months` calendar months (signed).
    Now {
        seconds: i64,
        #[serde(default, skip_serializing_if = "is_zero_i32")]
        months: i32,
    },
}

fn is_zero_i32(n: &i32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchIr {
    Cmp(CmpOp, serde_json::Value),
    In(Vec<serde_json::Value>),
    NotIn(Vec<serde_json::Value>),
    Contains(serde_json::Value),
    StartsWith(serde_json::Value),
    /// Compared with another value: `contact.…`, `entry.…` (the entry event) or `event.…`.
    CmpRef(CmpOp, Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetIr {
    Message {
        journey: String,
        message: String,
        link: Option<String>,
    },
    Journey(String),
    Channel(Channel),
    Label(String),
    /// Any message whose attributes satisfy the condition (segment rules: `message where …`).
    AnyMessage(Option<Box<CondIr>>),
}

// ---------------------------------------------------------------- segments and policies

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentIr {
    pub name: String,
    pub title: Option<String>,
    /// Combined in the written order: `((r1 and r2) or r3) except r4`.
    pub rules: Vec<RuleIr>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleIr {
    pub combinator: Option<Combinator>,
    pub name: String,
    pub body: RuleBodyIr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleBodyIr {
    Condition(CondIr),
    Event {
        negated: bool,
        event: String,
        condition: Option<CondIr>,
        occurrences: OccurrencesIr,
        frame: FrameIr,
    },
    Engagement {
        verb: Verb,
        target: TargetIr,
        occurrences: OccurrencesIr,
        frame: FrameIr,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OccurrencesIr {
    pub kind: OccurrenceKind,
    pub count: u64,
}

impl Default for OccurrencesIr {
    fn default() -> Self {
        OccurrencesIr {
            kind: OccurrenceKind::AtLeast,
            count: 1,
        }
    }
}

impl OccurrencesIr {
    pub fn matches(&self, n: u64) -> bool {
        match self.kind {
            OccurrenceKind::AtLeast => n >= self.count,
            OccurrenceKind::AtMost => n <= self.count,
            OccurrenceKind::Exactly => n == self.count,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameIr {
    Anytime,
    InLast {
        seconds: i64,
    },
    /// Inclusive dates, in UTC.
    Between {
        from: NaiveDate,
        to: NaiveDate,
    },
    AfterDelivery {
        seconds: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyIr {
    pub name: String,
    pub title: Option<String>,
    pub caps: Vec<CapIr>,
    pub scope: ScopeIr,
    pub when_capped: CappedAction,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapIr {
    pub max: u64,
    /// None: all channels together (`messages`).
    pub channel: Option<Channel>,
    pub per_seconds: i64,
    /// Calendar months of the period (`per 1mo`), in the contact's time zone.
    #[serde(default, skip_serializing_if = "no_months")]
    pub per_months: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeIr {
    Global,
    Journey,
}
