//! Pictures of a journey's state machine: Mermaid flowcharts and Graphviz dot.
//!
//! One node per step of the IR (named by the step's stable name, with a second line saying
//! what it does when the name does not already say it), a start node summarising the entry
//! lines, and an exit node for every way out of the journey. Decisions (checks, waits for an
//! event, `if`, `split random`) are diamonds; their edges carry `yes`/`no`, the `if`
//! conditions and `else`, or the split arms with their shares.
//!
//! The output depends only on the IR, in step order, so it is stable across runs and across
//! formatting-only changes of the source.

use super::ir::*;
use crate::domain::CmpOp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Mermaid,
    Dot,
}

/// Edge and node texts longer than this are cut with `…`: a picture is not the source.
const MAX_TEXT: usize = 72;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Start and exit.
    Terminal,
    /// Sends and `set`.
    Action,
    /// Waits for time.
    Wait,
    /// Checks, waits for an event, `if`, `split random`.
    Decision,
}

struct Node {
    id: String,
    /// Lines of the label, unescaped.
    lines: Vec<String>,
    shape: Shape,
}

struct Edge {
    from: String,
    to: String,
    label: Option<String>,
}

/// The journey as format-neutral nodes and edges.
fn build(j: &JourneyIr) -> (Vec<Node>, Vec<Edge>) {
    let target = |n: Next| match n {
        Some(id) => format!("s{id}"),
        None => "exit".to_string(),
    };
    let mut nodes = Vec::with_capacity(j.steps.len() + 2);
    let mut edges = Vec::new();

    let mut start = vec![j.name.clone()];
    if j.entries.is_empty() {
        start.push("no entry".into());
    }
    for e in &j.entries {
        start.push(short(&format!("entry {}", entry_text(e))));
    }
    // Consent: whose yes its sends need.
    if j.transactional {
        start.push("transactional".into());
    } else if let Some(t) = &j.topic {
        start.push(format!("topic {}", t.name));
    }
    nodes.push(Node {
        id: "start".into(),
        lines: start,
        shape: Shape::Terminal,
    });
    edges.push(Edge {
        from: "start".into(),
        to: target(j.start),
        label: None,
    });

    for (i, s) in j.steps.iter().enumerate() {
        let id = format!("s{i}");
        let (what, shape) = describe(j, &s.kind);
        let mut lines = vec![s.name.clone()];
        if let Some(w) = what {
            // `wait_2d` needs no second line saying `wait 2d`.
            if alnum(&w) != alnum(&s.name) {
                lines.push(short(&w));
            }
        }
        nodes.push(Node {
            id: id.clone(),
            lines,
            shape,
        });
        let mut edge = |to: Next, label: Option<String>| {
            edges.push(Edge {
                from: id.clone(),
                to: target(to),
                label,
            })
        };
        match &s.kind {
            StepKindIr::Send { next, .. }
            | StepKindIr::Wait { next, .. }
            | StepKindIr::WaitUntil { next, .. }
            | StepKindIr::Set { next, .. }
            | StepKindIr::Compute { next, .. } => edge(*next, None),
            StepKindIr::Check { yes, no, .. } | StepKindIr::WaitEvent { yes, no, .. } => {
                edge(*yes, Some("yes".into()));
                edge(*no, Some("no".into()));
            }
            StepKindIr::Branch { arms, otherwise } => {
                for (c, n) in arms {
                    edge(*n, Some(short(&cond_text(j, c))));
                }
                edge(*otherwise, Some("else".into()));
            }
            StepKindIr::Experiment { arms, winner, .. } => {
                for a in arms {
                    edge(
                        a.next,
                        Some(format!("{} {}%", a.name, percent(a.basis_points))),
                    );
                }
                if *winner > 0 {
                    for a in arms {
                        edges.push(Edge {
                            from: id.clone(),
                            to: target(a.next),
                            label: Some(format!("winner {}% if {}", percent(*winner), a.name)),
                        });
                    }
                }
            }
            StepKindIr::Split { arms } => {
                for a in arms {
                    edge(
                        a.next,
                        Some(format!("{} {}%", a.name, percent(a.basis_points))),
                    );
                }
            }
        }
    }

    let mut exit = vec!["exit".to_string()];
    if let Some(g) = &j.goal {
        exit.push(short(&format!("goal: {}", event_match_text(g))));
    }
    if let Some(x) = &j.exit {
        exit.push(short(&format!("exit on: {}", event_match_text(x))));
    }
    nodes.push(Node {
        id: "exit".into(),
        lines: exit,
        shape: Shape::Terminal,
    });
    (nodes, edges)
}

/// What a step does, in words close to the source, and its shape.
fn describe(j: &JourneyIr, k: &StepKindIr) -> (Option<String>, Shape) {
    match k {
        StepKindIr::Send { message, .. } => {
            let mut what = match j.messages.get(message) {
                Some(m) => format!("send {}", m.channel.as_str()),
                None => "send".to_string(),
            };
            // A labelled send (`nudge: send push stock_nudge`) names its message too.
            let labelled = match j.messages.get(message) {
                Some(m) => m.step != m.name,
                None => true,
            };
            if labelled {
                what.push(' ');
                what.push_str(message);
            }
            (Some(what), Shape::Action)
        }
        StepKindIr::Wait {
            seconds, months, ..
        } => (
            Some(format!("wait {}", period(*months, *seconds))),
            Shape::Wait,
        ),
        StepKindIr::WaitUntil {
            date,
            weekday,
            minute_of_day,
            zone,
            ..
        } => {
            let mut w = String::from("wait until");
            if let Some(d) = date {
                w.push_str(&format!(" {d}"));
            }
            if let Some(d) = weekday.and_then(weekday_name) {
                w.push_str(&format!(" {d}"));
            }
            w.push_str(&format!(" {}", time(*minute_of_day)));
            if let Some(z) = zone {
                w.push_str(&format!(" {z}"));
            }
            (Some(w), Shape::Wait)
        }
        StepKindIr::Check {
            verb,
            message,
            link,
            within_seconds,
            within_months,
            ..
        } => {
            let mut m = message.clone();
            if let Some(l) = link {
                m.push('.');
                m.push_str(l);
            }
            (
                Some(format!(
                    "{} {m} within {}",
                    verb.as_str(),
                    period(*within_months, *within_seconds)
                )),
                Shape::Decision,
            )
        }
        StepKindIr::WaitEvent {
            event,
            condition,
            within_seconds,
            within_months,
            ..
        } => {
            let mut w = format!("wait for event {}", quote(event));
            if let Some(c) = condition {
                w.push_str(&format!(" where {}", cond_text(j, c)));
            }
            w = short(&w);
            w.push_str(&format!(
                "\nwithin {}",
                period(*within_months, *within_seconds)
            ));
            (Some(w), Shape::Decision)
        }
        StepKindIr::Branch { .. } => (None, Shape::Decision),
        StepKindIr::Split { .. } => (Some("split random".into()), Shape::Decision),
        StepKindIr::Experiment {
            metric,
            within_seconds,
            within_months,
            ..
        } => (
            Some(format!(
                "experiment by {}\nwithin {}",
                metric.as_str(),
                period(*within_months, *within_seconds)
            )),
            Shape::Decision,
        ),
        StepKindIr::Set { field, value, .. } => (
            Some(format!("set contact.{field} = {}", value_text(value))),
            Shape::Action,
        ),
        StepKindIr::Compute { field, expr, .. } => (
            Some(short(&format!("set contact.{field} = {}", expr_text(expr)))),
            Shape::Action,
        ),
    }
}

/// A computed value as the language writes it (parentheses where precedence needs them).
fn expr_text(e: &ExprIr) -> String {
    fn prec(e: &ExprIr) -> u8 {
        match e {
            ExprIr::Bin(BinOpIr::Add | BinOpIr::Sub, ..) => 1,
            ExprIr::Bin(..) => 2,
            _ => 3,
        }
    }
    match e {
        ExprIr::Lit(v) => value_text(v),
        ExprIr::Ref(p) => p.join("."),
        ExprIr::Now => "now".into(),
        ExprIr::Dur { seconds, months } => period(*months, *seconds),
        ExprIr::Bin(op, a, b) => {
            let p = prec(e);
            let side = |x: &ExprIr, min: u8| {
                if prec(x) < min {
                    format!("({})", expr_text(x))
                } else {
                    expr_text(x)
                }
            };
            let op = match op {
                BinOpIr::Add => "+",
                BinOpIr::Sub => "-",
                BinOpIr::Mul => "*",
                BinOpIr::Div => "/",
            };
            format!("{} {op} {}", side(a, p), side(b, p + 1))
        }
    }
}

fn time_test_text(t: &TimeTestIr) -> String {
    let point = |p: &TimePointIr| match p {
        TimePointIr::Date(d) => d.to_string(),
        TimePointIr::Now {
            seconds: 0,
            months: 0,
        } => "now".into(),
        TimePointIr::Now { seconds, months } => {
            let sign = if *seconds < 0 || *months < 0 {
                "-"
            } else {
                "+"
            };
            format!(
                "now {sign} {}",
                period(months.unsigned_abs(), seconds.abs())
            )
        }
    };
    match t {
        TimeTestIr::InLast { seconds, months } => format!("in last {}", period(*months, *seconds)),
        TimeTestIr::Before(p) => format!("before {}", point(p)),
        TimeTestIr::After(p) => format!("after {}", point(p)),
        TimeTestIr::Between { from, to } => format!("between {from} and {to}"),
        TimeTestIr::Anniversary => "is anniversary".into(),
    }
}

pub fn render(j: &JourneyIr, format: GraphFormat) -> String {
    let (nodes, edges) = build(j);
    match format {
        GraphFormat::Mermaid => mermaid(j, &nodes, &edges),
        GraphFormat::Dot => dot(j, &nodes, &edges),
    }
}

/// The dot picture with a line added to each step's label (`note` gets the step's name): the
/// console draws it with live counts.
pub fn dot_annotated(j: &JourneyIr, note: &dyn Fn(&str) -> Option<String>) -> String {
    let (mut nodes, edges) = build(j);
    for n in &mut nodes {
        let step =
            n.id.strip_prefix('s')
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| j.steps.get(i));
        if let Some(line) = step.and_then(|s| note(&s.name)) {
            n.lines.push(line);
        }
    }
    dot(j, &nodes, &edges)
}

fn mermaid(j: &JourneyIr, nodes: &[Node], edges: &[Edge]) -> String {
    let mut out = String::from("flowchart TD\n");
    out.push_str(&format!("  %% journey {}\n", j.name));
    for n in nodes {
        let label = mermaid_text(&n.lines.join("\n"));
        let (open, close) = match n.shape {
            Shape::Terminal => ("([", "])"),
            Shape::Action => ("[", "]"),
            Shape::Wait => ("(", ")"),
            Shape::Decision => ("{", "}"),
        };
        out.push_str(&format!("  {}{open}\"{label}\"{close}\n", n.id));
    }
    for e in edges {
        match &e.label {
            Some(l) => out.push_str(&format!(
                "  {} -->|\"{}\"| {}\n",
                e.from,
                mermaid_text(l),
                e.to
            )),
            None => out.push_str(&format!("  {} --> {}\n", e.from, e.to)),
        }
    }
    out
}

/// Text for inside a Mermaid `"…"` label: quotes and the characters Mermaid reads as markup
/// become entity codes (`#quot;`, `#35;`…), newlines become `<br/>`. Brackets and braces are
/// plain text inside quotes.
fn mermaid_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '&' => out.push_str("#amp;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '|' => out.push_str("#124;"),
            '`' => out.push_str("#96;"),
            '\n' => out.push_str("<br/>"),
            '\r' | '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn dot(j: &JourneyIr, nodes: &[Node], edges: &[Edge]) -> String {
    let mut out = format!("digraph {} {{\n", dot_string(&j.name));
    out.push_str("  rankdir=TB;\n");
    out.push_str("  node [fontname=\"Helvetica\", fontsize=11];\n");
    out.push_str("  edge [fontname=\"Helvetica\", fontsize=10];\n");
    for n in nodes {
        let shape = match n.shape {
            Shape::Terminal => "shape=oval, style=filled, fillcolor=\"#eeeeee\"",
            Shape::Action => "shape=box",
            Shape::Wait => "shape=box, style=rounded",
            Shape::Decision => "shape=diamond",
        };
        out.push_str(&format!(
            "  {} [label={}, {shape}];\n",
            n.id,
            dot_string(&n.lines.join("\n"))
        ));
    }
    for e in edges {
        match &e.label {
            Some(l) => out.push_str(&format!(
                "  {} -> {} [label={}];\n",
                e.from,
                e.to,
                dot_string(l)
            )),
            None => out.push_str(&format!("  {} -> {};\n", e.from, e.to)),
        }
    }
    out.push_str("}\n");
    out
}

/// A Graphviz double-quoted string: backslashes (which would start `\N`, `\l`… escapes) and
/// quotes are escaped, newlines become centred line breaks.
fn dot_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' | '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------- texts

/// Letters and digits only, lowercased: `wait_2d` and `wait 2d` say the same thing.
fn alnum(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Cuts each line of a text to `MAX_TEXT` characters.
fn short(s: &str) -> String {
    s.split('\n')
        .map(|line| {
            if line.chars().count() <= MAX_TEXT {
                line.to_string()
            } else {
                let mut t: String = line.chars().take(MAX_TEXT - 1).collect();
                t.push('…');
                t
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `3d`, `1d12h`, `90s`: the largest units first, days at most (weeks read as days).
/// A duration with calendar months first: `1mo`, `2mo3d`, `3d`.
fn period(months: u32, seconds: i64) -> String {
    match (months, seconds) {
        (0, s) => dur(s),
        (m, 0) => format!("{m}mo"),
        (m, s) => format!("{m}mo{}", dur(s)),
    }
}

fn dur(seconds: i64) -> String {
    if seconds <= 0 {
        return format!("{seconds}s");
    }
    let mut rest = seconds;
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

fn time(minute_of_day: u32) -> String {
    format!("{:02}:{:02}", minute_of_day / 60, minute_of_day % 60)
}

fn weekday_name(i: u32) -> Option<&'static str> {
    super::WEEKDAYS.get(i as usize).copied()
}

fn percent(basis_points: u32) -> String {
    if basis_points.is_multiple_of(100) {
        format!("{}", basis_points / 100)
    } else {
        format!("{}.{:02}", basis_points / 100, basis_points % 100)
            .trim_end_matches('0')
            .to_string()
    }
}

/// A string as the language writes it: `"like this"`, with `\"` and `\\` escaped.
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => quote(s),
        serde_json::Value::Array(items) => format!(
            "[{}]",
            items.iter().map(value_text).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

fn entry_text(e: &EntryIr) -> String {
    match e {
        EntryIr::Event(m) => event_match_text(m),
        EntryIr::SegmentAt { segment, at, zone } => {
            let mut s = format!("segment {segment} at {}", at.format("%Y-%m-%d %H:%M"));
            if let Some(z) = zone {
                s.push_str(&format!(" {z}"));
            }
            s
        }
        EntryIr::SegmentEvery {
            segment,
            weekday,
            minute_of_day,
            zone,
        } => {
            let day = weekday.and_then(weekday_name).unwrap_or("day");
            let mut s = format!("segment {segment} every {day} {}", time(*minute_of_day));
            if let Some(z) = zone {
                s.push_str(&format!(" {z}"));
            }
            s
        }
        EntryIr::SegmentJoin { segment } => format!("segment {segment} on join"),
        EntryIr::Api => "api".into(),
    }
}

fn event_match_text(m: &EventMatchIr) -> String {
    match &m.condition {
        Some(c) => format!("event {} where {}", quote(&m.event), cond_text_in("", c)),
        None => format!("event {}", quote(&m.event)),
    }
}

/// A condition in the language's own words, with the parentheses its precedence needs.
fn cond_text(j: &JourneyIr, c: &CondIr) -> String {
    cond_text_in(&j.name, c)
}

fn cond_text_in(journey: &str, c: &CondIr) -> String {
    // Precedence: or 1, and 2, not 3, atoms 4.
    fn prec(c: &CondIr) -> u8 {
        match c {
            CondIr::Or(_) => 1,
            CondIr::And(_) => 2,
            CondIr::Not(_) => 3,
            _ => 4,
        }
    }
    fn inner(journey: &str, c: &CondIr, min: u8) -> String {
        let t = cond_text_in(journey, c);
        if prec(c) < min {
            format!("({t})")
        } else {
            t
        }
    }
    fn window(w: &Option<i64>) -> String {
        w.map(|s| format!(" in last {}", dur(s)))
            .unwrap_or_default()
    }
    match c {
        CondIr::Or(v) => v
            .iter()
            .map(|x| inner(journey, x, 2))
            .collect::<Vec<_>>()
            .join(" or "),
        CondIr::And(v) => v
            .iter()
            .map(|x| inner(journey, x, 3))
            .collect::<Vec<_>>()
            .join(" and "),
        // `not (count opened x >= 2)` reads better with its parentheses.
        CondIr::Not(x) => {
            let plain = match &**x {
                CondIr::Compare { .. } | CondIr::Time { .. } | CondIr::LastEngagement { .. } => {
                    false
                }
                CondIr::Engagement {
                    op,
                    count,
                    window_seconds,
                    ..
                }
                | CondIr::Event {
                    op,
                    count,
                    window_seconds,
                    ..
                } => *op == CmpOp::Ge && *count == 1 && window_seconds.is_none(),
                _ => true,
            };
            if plain {
                format!("not {}", inner(journey, x, 3))
            } else {
                format!("not ({})", cond_text_in(journey, x))
            }
        }
        CondIr::Bool(b) => b.to_string(),
        CondIr::Compare { path, matcher } => {
            let p = path.join(".");
            match matcher {
                MatchIr::Cmp(op, v) => format!("{p} {} {}", op.as_str(), value_text(v)),
                MatchIr::In(v) => format!("{p} in {}", value_text(&v.clone().into())),
                MatchIr::NotIn(v) => format!("{p} not in {}", value_text(&v.clone().into())),
                MatchIr::Contains(v) => format!("{p} contains {}", value_text(v)),
                MatchIr::StartsWith(v) => format!("{p} starts with {}", value_text(v)),
                MatchIr::CmpRef(op, other) => format!("{p} {} {}", op.as_str(), other.join(".")),
            }
        }
        CondIr::Time { path, test } => format!("{} {}", path.join("."), time_test_text(test)),
        CondIr::InSegment(s) => format!("in segment {s}"),
        CondIr::InList(l) => format!("in list {}", quote(l)),
        CondIr::Engagement {
            verb,
            target,
            window_seconds,
            op,
            count,
        } => {
            let t = target_text(journey, target);
            if *op == CmpOp::Ge && *count == 1 {
                format!("{} {t}{}", verb.as_str(), window(window_seconds))
            } else {
                format!(
                    "count {} {t} {} {count}{}",
                    verb.as_str(),
                    op.as_str(),
                    window(window_seconds)
                )
            }
        }
        CondIr::LastEngagement {
            verb,
            target,
            op,
            seconds,
        } => format!(
            "last {} {} {} {} ago",
            verb.as_str(),
            target_text(journey, target),
            op.as_str(),
            dur(*seconds)
        ),
        CondIr::Event {
            event,
            condition,
            window_seconds,
            op,
            count,
        } => {
            let mut e = format!("event {}", quote(event));
            if let Some(c) = condition {
                e.push_str(&format!(" where {}", cond_text_in(journey, c)));
            }
            if *op == CmpOp::Ge && *count == 1 {
                format!("{e}{}", window(window_seconds))
            } else {
                format!(
                    "count {e} {} {count}{}",
                    op.as_str(),
                    window(window_seconds)
                )
            }
        }
    }
}

fn target_text(journey: &str, t: &TargetIr) -> String {
    match t {
        TargetIr::Message {
            journey: j,
            message,
            link,
        } => {
            let mut s = if j == journey || j.is_empty() {
                message.clone()
            } else {
                format!("{j}.{message}")
            };
            if let Some(l) = link {
                s.push('.');
                s.push_str(l);
            }
            s
        }
        TargetIr::Journey(j) => format!("journey {j}"),
        TargetIr::Channel(c) => format!("channel {}", c.as_str()),
        TargetIr::Label(l) => format!("label {}", quote(l)),
        TargetIr::AnyMessage(None) => "message".into(),
        TargetIr::AnyMessage(Some(c)) => format!("message where {}", cond_text_in(journey, c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_source() {
        assert_eq!(period(1, 0), "1mo");
        assert_eq!(period(2, 86_400 + 3_600), "2mo1d1h");
        assert_eq!(period(0, 86_400), "1d");
        assert_eq!(dur(3 * 86_400), "3d");
        assert_eq!(dur(86_400 + 12 * 3_600), "1d12h");
        assert_eq!(dur(90), "1m30s");
        assert_eq!(dur(7 * 86_400), "7d");
    }

    #[test]
    fn mermaid_escapes_markup() {
        assert_eq!(
            mermaid_text("a \"b\" #1 <i> [c] {d}\ne|f"),
            "a #quot;b#quot; #35;1 #lt;i#gt; [c] {d}<br/>e#124;f"
        );
    }

    #[test]
    fn dot_escapes_quotes_backslashes_and_newlines() {
        assert_eq!(
            dot_string("a \"b\" \\N\nc #[x]"),
            "\"a \\\"b\\\" \\\\N\\nc #[x]\""
        );
    }

    #[test]
    fn long_texts_are_cut() {
        let s = "x".repeat(100);
        assert_eq!(short(&s).chars().count(), MAX_TEXT);
        assert!(short(&s).ends_with('…'));
    }
}
