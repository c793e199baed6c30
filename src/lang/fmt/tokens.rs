//! Tokens as the canonical layout writes them: strings re-escaped, dates, times, zones,
//! durations, time frames, targets, literals and lists.

use super::*;

pub(super) fn str_lit(t: &mut String, s: &Str) {
    if s.triple {
        t.push_str("\"\"\"");
        t.push_str(&s.value);
        t.push_str("\"\"\"");
        return;
    }
    t.push('"');
    for c in s.value.chars() {
        match c {
            '"' => t.push_str("\\\""),
            '\\' => t.push_str("\\\\"),
            '\n' => t.push_str("\\n"),
            '\t' => t.push_str("\\t"),
            c => t.push(c),
        }
    }
    t.push('"');
}

pub(super) fn date_lit(t: &mut String, d: &Date) {
    t.push_str(&format!("{:04}-{:02}-{:02}", d.year, d.month, d.day));
}

pub(super) fn time_lit(t: &mut String, d: &TimeOfDay) {
    t.push_str(&format!("{:02}:{:02}", d.hour, d.minute));
}

pub(super) fn zone_lit(t: &mut String, z: &Option<Ident>) {
    if let Some(z) = z {
        t.push(' ');
        t.push_str(&z.name);
    }
}

pub(super) fn in_last_lit(t: &mut String, d: &Option<Dur>) {
    if let Some(d) = d {
        t.push_str(" in last ");
        t.push_str(&d.text);
    }
}

pub(super) fn time_frame(t: &mut String, f: &Option<TimeFrame>) {
    match f {
        None => {}
        Some(TimeFrame::Anytime) => t.push_str(" anytime"),
        Some(TimeFrame::InLast(d)) => in_last_lit(t, &Some(d.clone())),
        Some(TimeFrame::Between(a, b)) => {
            t.push_str(" between ");
            date_lit(t, a);
            t.push_str(" and ");
            date_lit(t, b);
        }
        Some(TimeFrame::AfterDelivery(d)) => {
            t.push_str(" within ");
            t.push_str(&d.text);
            t.push_str(" after delivery");
        }
    }
}

pub(super) fn target_lit(t: &mut String, target: &Target) {
    match target {
        Target::Message(m) => t.push_str(&m.text()),
        Target::Journey(j) => {
            t.push_str("journey ");
            t.push_str(&j.name);
        }
        Target::Channel(c, _) => {
            t.push_str("channel ");
            t.push_str(c.as_str());
        }
        Target::Label(s) => {
            t.push_str("label ");
            str_lit(t, s);
        }
    }
}

pub(super) fn literal(t: &mut String, l: &Literal) {
    match l {
        Literal::Str(s) => str_lit(t, s),
        Literal::Number { text, .. } => t.push_str(text),
        Literal::Bool(b) => t.push_str(if *b { "true" } else { "false" }),
        Literal::Date(d) => date_lit(t, d),
        Literal::List(items) => list(t, items),
    }
}

pub(super) fn list(t: &mut String, items: &[Literal]) {
    t.push('[');
    for (i, l) in items.iter().enumerate() {
        if i > 0 {
            t.push_str(", ");
        }
        literal(t, l);
    }
    t.push(']');
}

/// A computed value as written, with single spaces around operators.
pub(super) fn expr_lit(t: &mut String, e: &Expr) {
    match &e.kind {
        ExprKind::Literal(l) => literal(t, l),
        ExprKind::Ref(path) => t.push_str(&path.join(".")),
        ExprKind::Now => t.push_str("now"),
        ExprKind::Dur(d) => t.push_str(&d.text),
        ExprKind::Binary(op, a, b) => {
            expr_lit(t, a);
            t.push(' ');
            t.push_str(op.as_str());
            t.push(' ');
            expr_lit(t, b);
        }
        ExprKind::Group(inner) => {
            t.push('(');
            expr_lit(t, inner);
            t.push(')');
        }
    }
}

/// `2026-03-01`, `now`, `now + 3d`.
pub(super) fn time_point_lit(t: &mut String, p: &TimePoint) {
    match p {
        TimePoint::Date(d) => date_lit(t, d),
        TimePoint::Now { minus, offset } => {
            t.push_str("now");
            if let Some(d) = offset {
                t.push_str(if *minus { " - " } else { " + " });
                t.push_str(&d.text);
            }
        }
    }
}
