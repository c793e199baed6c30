//! The syntax tree of a journey file, as written: every node keeps its source span so the
//! compiler can point at it and the formatter can put comments back where they were.
//! Nothing here is resolved or checked; that is `compile`'s job.

use crate::domain::{CappedAction, Channel, CmpOp, Combinator, Verb};
use serde::Serialize;

/// A byte range in one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A string literal, unescaped; `triple` remembers the `"""…"""` form for the formatter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Str {
    pub value: String,
    pub triple: bool,
    pub span: Span,
}

/// A duration: calendar months (`mo`) and seconds, with its source text (`1d12h`, `1mo`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dur {
    pub seconds: i64,
    /// Calendar months, resolved in the contact's time zone when a timer is set.
    pub months: i64,
    pub text: String,
    pub span: Span,
}

/// A time of day as written; validity (hour < 24) is checked by the compiler.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeOfDay {
    pub hour: u32,
    pub minute: u32,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Date {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct File {
    pub definitions: Vec<Definition>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Definition {
    Journey(Journey),
    Segment(Segment),
    Policy(Policy),
    Topic(Topic),
}

impl Definition {
    pub fn name(&self) -> &Ident {
        match self {
            Definition::Journey(j) => &j.name,
            Definition::Segment(s) => &s.name,
            Definition::Policy(p) => &p.name,
            Definition::Topic(t) => &t.name,
        }
    }
    pub fn span(&self) -> Span {
        match self {
            Definition::Journey(j) => j.span,
            Definition::Segment(s) => s.span,
            Definition::Policy(p) => p.span,
            Definition::Topic(t) => t.span,
        }
    }
}

// ---------------------------------------------------------------- journeys

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Journey {
    pub name: Ident,
    pub headers: Vec<Header>,
    pub steps: Vec<Step>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Header {
    pub kind: HeaderKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum HeaderKind {
    Title(Str),
    Category(Str),
    Label(Str),
    Entry(Entry),
    Reentry(Reentry),
    Goal(EventMatch),
    Exit(EventMatch),
    /// `policy NAME`, or `policy none` (None).
    Policy(Option<Ident>),
    Quiet {
        from: TimeOfDay,
        to: TimeOfDay,
    },
    MigrateByName,
    /// `transactional`: receipts and password resets, not marketing (no consent needed).
    Transactional,
    /// `topic NAME`: every send needs the contact's consent to this topic.
    Topic(Ident),
    /// `holdout 10%`: a stable share of entering contacts is sent nothing (a control group).
    Holdout {
        /// Hundredths of a percent, as a split's arms.
        basis_points: u32,
        percent_text: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventMatch {
    pub event: Str,
    pub condition: Option<Condition>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Entry {
    Event(EventMatch),
    SegmentAt {
        segment: Ident,
        date: Date,
        time: TimeOfDay,
        zone: Option<Ident>,
    },
    SegmentEvery {
        segment: Ident,
        /// None = every day.
        weekday: Option<Ident>,
        time: TimeOfDay,
        zone: Option<Ident>,
    },
    SegmentJoin {
        segment: Ident,
    },
    Api,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Reentry {
    Never,
    Always,
    After(Dur),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Block {
    pub steps: Vec<Step>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub label: Option<Ident>,
    pub kind: StepKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum StepKind {
    Send(Send),
    Wait(Dur),
    WaitUntil(WaitUntil),
    WaitForEvent(WaitForEvent),
    Check(Check),
    If(IfStep),
    Split(Split),
    Experiment(Experiment),
    Set { field: Ident, value: Expr },
    Goto(Ident),
    End,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Send {
    pub channel: Channel,
    pub name: Ident,
    pub fields: Vec<MessageField>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageField {
    pub kind: FieldKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum FieldKind {
    /// `subject "…"`, `template "…"`, `text "…"` and the other single-string fields.
    Text {
        key: Ident,
        value: Str,
    },
    Link {
        name: Ident,
        url: Str,
    },
    Header {
        name: Str,
        value: Str,
    },
    Data(Vec<(Ident, Str)>),
    Method(Ident),
    Timeout(Dur),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitUntil {
    pub date: Option<Date>,
    pub weekday: Option<Ident>,
    pub time: TimeOfDay,
    pub zone: Option<Ident>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitForEvent {
    pub event: Str,
    pub condition: Option<Condition>,
    pub within: Dur,
    pub outcomes: Outcomes,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub verb: Verb,
    pub verb_span: Span,
    pub message: MessageRef,
    pub within: Dur,
    pub outcomes: Outcomes,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcomes {
    pub yes: Option<Block>,
    pub no: Option<Block>,
    pub span: Span,
}

/// `a`, `a.b` or `a.b.c`: a message, a message's link, or another journey's message (and link).
/// Which one is decided by the compiler, which knows the names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageRef {
    pub parts: Vec<Ident>,
    pub span: Span,
}

impl MessageRef {
    pub fn text(&self) -> String {
        self.parts
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(".")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IfStep {
    /// `if` and each `else if`, in order.
    pub arms: Vec<(Condition, Block)>,
    pub otherwise: Option<Block>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Split {
    pub arms: Vec<SplitArm>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitArm {
    /// The share in hundredths of a percent (40% = 4000), so shares add up exactly.
    pub basis_points: u32,
    pub percent_text: String,
    pub name: Ident,
    pub block: Block,
    pub span: Span,
}

/// `experiment NAME by clicked within 1d { 20% a {…} 20% b {…} 60% winner }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Experiment {
    pub name: Ident,
    /// `opened`, `clicked` or `converted` (the journey's goal).
    pub metric: Ident,
    pub within: Dur,
    pub arms: Vec<ExperimentArm>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentArm {
    /// Hundredths of a percent, as a split's arms.
    pub basis_points: u32,
    pub percent_text: String,
    /// The arm's name and steps; None for the `winner` share.
    pub arm: Option<(Ident, Block)>,
    pub span: Span,
}

// ---------------------------------------------------------------- values and conditions

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Literal {
    Str(Str),
    Number { text: String, value: f64 },
    Bool(bool),
    Date(Date),
    List(Vec<Literal>),
}

/// A computed value (`set contact.x = contact.x + 1`): literals, `now`, durations, the
/// values of `contact.…` and `entry.…`, and `+ - * /`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ExprKind {
    Literal(Literal),
    /// `contact.a.b`, `entry.a`, `event.a`: the root first.
    Ref(Vec<String>),
    Now,
    Dur(Dur),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// Parentheses as written.
    Group(Box<Expr>),
}

/// A moment a profile time is compared with: a date (midnight UTC), or `now` give or take
/// a duration (`now + 3d`; `offset` None is `now`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum TimePoint {
    Date(Date),
    Now { minus: bool, offset: Option<Dur> },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Condition {
    pub kind: CondKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Matcher {
    Cmp(CmpOp, Literal),
    In(Vec<Literal>),
    NotIn(Vec<Literal>),
    Contains(Literal),
    StartsWith(Literal),
    /// `== entry.cart_id`: compared with another value (`contact.…`, `entry.…`, `event.…`).
    CmpRef(CmpOp, Vec<String>, Span),
    /// Profile times: `in last 30d`.
    InLast(Dur),
    Before(TimePoint),
    After(TimePoint),
    /// Inclusive dates.
    Between(Date, Date),
    /// `is anniversary`: the same month and day as today, in the contact's time zone.
    Anniversary,
}

/// What an engagement condition counts: a message, a journey, a channel or a label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Target {
    Message(MessageRef),
    Journey(Ident),
    Channel(Channel, Span),
    Label(Str),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum CondKind {
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
    Not(Box<Condition>),
    /// Parentheses as written, kept so the formatter can print them back.
    Group(Box<Condition>),
    Compare {
        path: Vec<String>,
        matcher: Matcher,
    },
    Bool(bool),
    InSegment(Ident),
    InList(Str),
    Engagement {
        verb: Verb,
        target: Target,
        in_last: Option<Dur>,
    },
    LastEngagement {
        verb: Verb,
        target: Target,
        op: CmpOp,
        ago: Dur,
    },
    CountEngagement {
        verb: Verb,
        target: Target,
        op: CmpOp,
        count: u64,
        in_last: Option<Dur>,
    },
    Event {
        event: Str,
        condition: Option<Box<Condition>>,
        in_last: Option<Dur>,
    },
    CountEvent {
        event: Str,
        condition: Option<Box<Condition>>,
        op: CmpOp,
        count: u64,
        in_last: Option<Dur>,
    },
}

// ---------------------------------------------------------------- segments

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    pub name: Ident,
    pub title: Option<Str>,
    pub rules: Vec<SegmentRule>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentRule {
    pub combinator: Option<(Combinator, Span)>,
    pub name: Ident,
    pub body: RuleBody,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum RuleBody {
    Condition(Condition),
    Event {
        negated: bool,
        event: Str,
        condition: Option<Condition>,
        occurrences: Option<Occurrences>,
        frame: Option<TimeFrame>,
        span: Span,
    },
    Engagement {
        verb: Verb,
        subject: RuleSubject,
        occurrences: Option<Occurrences>,
        frame: Option<TimeFrame>,
        span: Span,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum RuleSubject {
    /// `message [where …]`: any message, filtered by its attributes.
    Messages(Option<Condition>),
    Target(Target),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OccurrenceKind {
    AtLeast,
    AtMost,
    Exactly,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Occurrences {
    pub kind: OccurrenceKind,
    pub count: u64,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum TimeFrame {
    Anytime,
    InLast(Dur),
    Between(Date, Date),
    AfterDelivery(Dur),
}

// ---------------------------------------------------------------- policies

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    pub name: Ident,
    pub items: Vec<PolicyItem>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyItem {
    pub kind: PolicyItemKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum PolicyItemKind {
    Title(Str),
    /// `max N email per 1d`; `channel` None = `messages`, all channels together.
    Cap {
        max: u64,
        channel: Option<Channel>,
        target_text: String,
        per: Dur,
    },
    ScopeGlobal,
    ScopeJourney,
    WhenCapped(CappedAction),
}

// ---------------------------------------------------------------- topics

/// `topic NAME { title "…" default subscribed|unsubscribed }`: a subject a contact can say
/// yes or no to (the preference page lists them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Topic {
    pub name: Ident,
    pub items: Vec<TopicItem>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopicItem {
    pub kind: TopicItemKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum TopicItemKind {
    Title(Str),
    /// `default subscribed` (true) or `default unsubscribed` (false: opt-in).
    Default(bool),
}
