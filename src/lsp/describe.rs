//! Hover texts: what a step does, a duration, a time zone's offset now, a policy's caps, a
//! message, in words (Markdown).

use crate::domain::{CappedAction, Channel, Verb};
use crate::lang::ast::*;

/// `1d12h` → "1 day 12 hours".
pub fn duration(text: &str) -> String {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let (n, tail) = rest.split_at(digits);
        let (unit, tail) = if let Some(t) = tail.strip_prefix("mo") {
            ("month", t)
        } else {
            let u = match tail.chars().next() {
                Some('s') => "second",
                Some('m') => "minute",
                Some('h') => "hour",
                Some('d') => "day",
                Some('w') => "week",
                _ => return text.to_string(),
            };
            (u, &tail[1..])
        };
        let plural = if n == "1" { "" } else { "s" };
        out.push(format!("{n} {unit}{plural}"));
        rest = tail;
    }
    out.join(" ")
}

/// A time zone and its offset from UTC now.
pub fn zone(name: &str) -> String {
    use chrono::{Offset, Utc};
    match name.parse::<chrono_tz::Tz>() {
        Ok(tz) => {
            let now = Utc::now().with_timezone(&tz);
            let secs = now.offset().fix().local_minus_utc();
            let sign = if secs < 0 { '-' } else { '+' };
            let (h, m) = (secs.abs() / 3600, secs.abs() % 3600 / 60);
            format!(
                "time zone `{name}`: now UTC{sign}{h:02}:{m:02} ({}), local time {}",
                now.format("%Z"),
                now.format("%Y-%m-%d %H:%M")
            )
        }
        Err(_) => format!("`{name}` is not a time zone of the IANA database"),
    }
}

fn channel_word(c: Channel) -> &'static str {
    match c {
        Channel::Email => "email",
        Channel::Sms => "SMS",
        Channel::Push => "push notification",
        Channel::Webhook => "webhook call",
    }
}

fn verb_words(v: Verb) -> &'static str {
    match v {
        Verb::Received => "the delivery of",
        Verb::Opened => "an open of",
        Verb::Clicked => "a click on",
        Verb::Bounced => "a bounce of",
        Verb::Unsubscribed => "an unsubscribe from",
    }
}

/// A message as `send` declares it: channel, subject or text, template, links.
pub fn message(send: &Send) -> String {
    let mut out = format!("{} `{}`", channel_word(send.channel), send.name.name);
    for f in &send.fields {
        match &f.kind {
            FieldKind::Text { key, value } => {
                out.push_str(&format!("\n- {}: {}", key.name, value.value));
            }
            FieldKind::Link { name, url } => {
                out.push_str(&format!("\n- link `{}`: {}", name.name, url.value));
            }
            _ => {}
        }
    }
    out
}

pub fn journey(j: &Journey) -> String {
    let mut out = format!("journey `{}`", j.name.name);
    for h in &j.headers {
        match &h.kind {
            HeaderKind::Title(t) => out.push_str(&format!(": {}", t.value)),
            HeaderKind::Entry(Entry::Event(e)) => {
                out.push_str(&format!("\n\nentered on the event \"{}\"", e.event.value))
            }
            HeaderKind::Entry(Entry::Api) => out.push_str("\n\nentered through the API"),
            HeaderKind::Holdout { percent_text, .. } => out.push_str(&format!(
                "\n\nholdout: {percent_text} of the contacts who enter are sent nothing (a control group)"
            )),
            HeaderKind::Entry(
                Entry::SegmentAt { segment, .. }
                | Entry::SegmentEvery { segment, .. }
                | Entry::SegmentJoin { segment },
            ) => out.push_str(&format!("\n\nentered by segment `{}`", segment.name)),
            _ => {}
        }
    }
    out
}

pub fn policy_item(k: &PolicyItemKind) -> String {
    match k {
        PolicyItemKind::Title(t) => format!("title: {}", t.value),
        PolicyItemKind::Cap {
            max,
            target_text,
            per,
            ..
        } => format!("at most {max} {target_text} per {}", duration(&per.text)),
        PolicyItemKind::ScopeGlobal => "counted across all journeys".into(),
        PolicyItemKind::ScopeJourney => "counted per journey".into(),
        PolicyItemKind::WhenCapped(CappedAction::Delay) => {
            "a capped send waits until the cap allows it".into()
        }
        PolicyItemKind::WhenCapped(CappedAction::Skip) => "a capped send is skipped".into(),
    }
}

pub fn policy(p: &Policy) -> String {
    let mut out = format!("policy `{}`", p.name.name);
    for item in &p.items {
        out.push_str(&format!("\n- {}", policy_item(&item.kind)));
    }
    out
}

pub fn topic(t: &Topic) -> String {
    let mut out = format!("topic `{}`", t.name.name);
    for item in &t.items {
        match &item.kind {
            TopicItemKind::Title(s) => out.push_str(&format!(": {}", s.value)),
            TopicItemKind::Default(true) => {
                out.push_str("\n\ncontacts are subscribed unless they say no")
            }
            TopicItemKind::Default(false) => {
                out.push_str("\n\ncontacts are unsubscribed until they say yes (opt-in)")
            }
        }
    }
    out
}

fn outcomes(o: &Outcomes) -> &'static str {
    match (o.yes.is_some(), o.no.is_some()) {
        (true, true) => "; then `yes` if it happens, `no` if not",
        (true, false) => "; then `yes` if it happens, else on to the next step",
        (false, true) => "; `no` if it does not happen, else on to the next step",
        (false, false) => "",
    }
}

/// What a step does, in words.
pub fn step(s: &Step) -> String {
    let what = match &s.kind {
        StepKind::Send(send) => format!("sends the {}", message(send)),
        StepKind::Wait(d) => format!("waits {}", duration(&d.text)),
        StepKind::WaitUntil(w) => {
            let day = match (&w.date, &w.weekday) {
                (Some(d), _) => format!("{:04}-{:02}-{:02} ", d.year, d.month, d.day),
                (None, Some(wd)) => format!("the next {} ", wd.name),
                (None, None) => String::new(),
            };
            let zone = match &w.zone {
                Some(z) => format!("in {}", z.name),
                None => "in the contact's time zone".into(),
            };
            format!(
                "waits until {day}{:02}:{:02} {zone}",
                w.time.hour, w.time.minute
            )
        }
        StepKind::WaitForEvent(w) => format!(
            "waits up to {} for the event \"{}\"{}{}",
            duration(&w.within.text),
            w.event.value,
            if w.condition.is_some() {
                " (matching its `where`)"
            } else {
                ""
            },
            outcomes(&w.outcomes)
        ),
        StepKind::Check(c) => {
            let m = c.message.text();
            format!(
                "waits up to {} for {} {m}{}",
                duration(&c.within.text),
                verb_words(c.verb),
                outcomes(&c.outcomes)
            )
        }
        StepKind::If(i) => format!(
            "goes down the first branch whose condition holds ({} branch{}{})",
            i.arms.len(),
            if i.arms.len() == 1 { "" } else { "es" },
            if i.otherwise.is_some() {
                ", and `else`"
            } else {
                ""
            }
        ),
        StepKind::Split(sp) => format!(
            "splits contacts at random: {}",
            sp.arms
                .iter()
                .map(|a| format!("{} `{}`", a.percent_text, a.name.name))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        StepKind::Experiment(x) => format!(
            "experiment `{}`: tries {} on their shares, by the {} rate within {}; {}",
            x.name.name,
            x.arms
                .iter()
                .filter_map(|a| a.arm.as_ref().map(|(n, _)| format!("{} `{}`", a.percent_text, n.name)))
                .collect::<Vec<_>>()
                .join(", "),
            x.metric.name,
            duration(&x.within.text),
            match x.arms.iter().find(|a| a.arm.is_none()) {
                Some(w) => format!(
                    "the other {} wait that long, then take the arm with the best rate (a tie takes the first)",
                    w.percent_text
                ),
                None => "no winner share".to_string(),
            }
        ),
        StepKind::Set { field, value } => match value.kind {
            ExprKind::Literal(_) => format!("sets the contact's field `{}`", field.name),
            _ => format!(
                "sets the contact's field `{}` to a computed value (a type error at run time \
                 records `set.failed` and goes on)",
                field.name
            ),
        },
        StepKind::Goto(l) => format!("jumps to the step labelled `{}`", l.name),
        StepKind::End => "ends the journey for the contact".into(),
        // Steps added to the language since: their own words, until they are described.
        #[allow(unreachable_patterns)]
        _ => "a step".into(),
    };
    match &s.label {
        Some(l) => format!("step `{}`: {what}", l.name),
        None => what,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_words() {
        assert_eq!(duration("3d"), "3 days");
        assert_eq!(duration("1d12h"), "1 day 12 hours");
        assert_eq!(duration("1mo"), "1 month");
        assert_eq!(duration("90m"), "90 minutes");
    }

    #[test]
    fn zones_with_their_offset() {
        assert!(zone("UTC").starts_with("time zone `UTC`: now UTC+00:00"));
        assert!(zone("Mars/Olympus").contains("not a time zone"));
    }
}
