//! pest's errors in plain words: what was expected after what, at the word that was found,
//! with a hint where one helps (did you mean, a duration written in words, `where` before
//! a keyword).

use super::scan::{comment_start, open_string, unclosed_brace};
use super::Rule;
use crate::lang::ast::Span;
use crate::lang::diagnostic::{self, Diagnostic};

/// What a duration looks like, with its units, wherever one was expected.
const DURATION_WORDS: &str = "a duration such as 3d (units: s m h d w)";

/// A word where a duration was expected (`3days`, `3dd`, `3x`, `3`): one error for the
/// whole word, with the duration it probably meant.
fn duration_error(file: usize, text: &str, pos: usize) -> Option<Diagnostic> {
    let bytes = text.as_bytes();
    let mut start = pos.min(text.len());
    while start > 0 && bytes[start - 1].is_ascii_alphanumeric() {
        start -= 1;
    }
    let mut end = pos.min(text.len());
    while end < text.len() && bytes[end].is_ascii_alphanumeric() {
        end += 1;
    }
    let word = &text[start..end];
    if !word.as_bytes().first()?.is_ascii_digit() {
        return None;
    }
    let help = match meant_duration(word) {
        Some(d) if d != word => format!("write `{d}`"),
        _ if word.bytes().all(|b| b.is_ascii_digit()) => {
            format!("a duration needs its unit: `{word}d` is {word} days, `{word}h` {word} hours")
        }
        _ => "a duration is a number and a unit (30s, 15m, 2h, 3d, 1w), or several: 1d12h"
            .to_string(),
    };
    Some(
        Diagnostic::error(
            file,
            Span::new(start, end),
            format!("expected {DURATION_WORDS}, found '{word}'"),
        )
        .with_label("not a duration")
        .with_help(help),
    )
}

/// The duration a mistyped one probably meant: `3days` → `3d`, `3dd` → `3d`, `2hrs` → `2h`.
fn meant_duration(word: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = word;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let letters = rest[digits..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        if digits == 0 || letters == 0 {
            return None;
        }
        let unit = match &rest[digits..digits + letters] {
            "s" | "ss" | "sec" | "secs" | "second" | "seconds" => "s",
            "m" | "mm" | "min" | "mins" | "minute" | "minutes" => "m",
            "h" | "hh" | "hr" | "hrs" | "hour" | "hours" => "h",
            "d" | "dd" | "day" | "days" => "d",
            "w" | "ww" | "wk" | "wks" | "week" | "weeks" => "w",
            "mon" | "mos" | "month" | "months" => "mo",
            _ => return None,
        };
        out.push_str(&rest[..digits]);
        out.push_str(unit);
        rest = &rest[digits + letters..];
    }
    Some(out)
}

/// Plain words for the grammar's rules, used when a rule is what was expected.
fn rule_words(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::ident => "a name such as welcome_email (lowercase letters, digits, _)",
        Rule::string | Rule::plain_string | Rule::triple_string => "a double-quoted string",
        Rule::duration => DURATION_WORDS,
        Rule::time_of_day => "a time of day such as 09:00",
        Rule::date => "a date such as 2026-03-14",
        Rule::timezone => "a time zone such as Europe/Rome",
        Rule::number | Rule::integer => "a number",
        Rule::percent => "a share such as 40%",
        Rule::weekday | Rule::day_spec | Rule::day_every => "a day such as monday (or day)",
        Rule::literal => "a value (a string, number, true/false or a [list])",
        Rule::list => "a list such as [\"IT\", \"FR\"]",
        Rule::channel => "a channel (email, sms, push or webhook)",
        Rule::verb => "an engagement verb (received, opened, clicked, bounced, unsubscribed)",
        Rule::message_ref => "a message name, such as welcome or welcome.profile",
        Rule::target => "a message, `journey NAME`, `channel email|sms|push` or `label \"x\"`",
        Rule::cmp_op => "a comparison (==, !=, <, <=, >, >=)",
        Rule::condition | Rule::or_expr | Rule::and_expr | Rule::not_expr | Rule::comparison => {
            "a condition such as contact.country == \"IT\""
        }
        Rule::path => "a field such as contact.country",
        Rule::header => "a journey header (title, entry, reentry, goal, exit, policy, quiet, topic, transactional…)",
        Rule::entry => "an entry (entry event \"…\", entry segment NAME …, entry api)",
        Rule::step | Rule::step_label | Rule::experiment => {
            "a step (send, wait, check, if, split random, experiment, set, goto, end)"
        }
        Rule::block => "a block in braces { … }",
        Rule::outcomes => "`{ yes { … } no { … } }`",
        Rule::yes_branch => "`yes { … }`",
        Rule::no_branch => "`no { … }`",
        Rule::message_field | Rule::text_field | Rule::text_key => {
            "a message field (subject, template, html, text, from, reply_to, to, link, title, body, data, url, method, header, timeout)"
        }
        Rule::http_method => "an HTTP method (GET, POST, PUT, PATCH, DELETE)",
        Rule::else_if | Rule::else_branch => "`else`",
        Rule::split_arm => "a split arm such as `40% a { … }`",
        Rule::segment_rule => "a rule (`rule NAME: …`, after the first `and rule`, `or rule` or `except rule`)",
        Rule::combinator => "`and`, `or` or `except`",
        Rule::occurrences | Rule::occ_kind => "occurrences (at least N times, at most N times, exactly N times)",
        Rule::time_frame => "a time frame (anytime, in last 15d, between DATE and DATE, within 3d after delivery)",
        Rule::in_last => "`in last DURATION`",
        Rule::where_clause => "`where CONDITION`",
        Rule::cap => "a cap such as `max 1 email per 1d`",
        Rule::cap_target => "what a cap counts (email, sms, push, webhook or messages)",
        Rule::scope_kind => "`global` or `journey`",
        Rule::capped_action => "`delay` or `skip`",
        Rule::journey | Rule::segment | Rule::policy | Rule::topic => "a definition (journey, segment, policy or topic)",
        Rule::topic_default | Rule::topic_state => "`default subscribed` or `default unsubscribed`",
        Rule::EOI => "the end of the file",
        Rule::boolean => "true or false",
        Rule::reentry_after | Rule::reentry_never | Rule::reentry_always => "never, always or after DURATION",
        Rule::policy_none => "a policy name or none",
        _ => return None,
    })
}

fn keyword_of(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::kw_not => "not",
        Rule::kw_and => "and",
        Rule::kw_or => "or",
        Rule::kw_if => "if",
        Rule::kw_goto => "goto",
        Rule::kw_journey => "journey",
        Rule::kw_channel => "channel",
        Rule::kw_label => "label",
        Rule::kw_contains => "contains",
        Rule::kw_starts => "starts with",
        Rule::kw_in => "in",
        _ => return None,
    })
}

pub(super) fn syntax_error(file: usize, text: &str, err: pest::error::Error<Rule>) -> Diagnostic {
    let mut pos = match err.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let mut words: Vec<String> = Vec::new();
    let mut tokens: Vec<String> = Vec::new();
    let push = |w: String, words: &mut Vec<String>| {
        if !words.contains(&w) {
            words.push(w);
        }
    };
    let describe = |r: Rule, words: &mut Vec<String>| {
        if let Some(w) = rule_words(r) {
            push(w.to_string(), words);
        } else if let Some(k) = keyword_of(r) {
            push(format!("'{k}'"), words);
        }
    };
    // Rules that pest says it wanted at the failing position, most specific first.
    if let pest::error::ErrorVariant::ParsingError { positives, .. } = &err.variant {
        for r in positives {
            describe(*r, &mut words);
        }
    }
    if let Some(attempts) = err.parse_attempts() {
        if attempts.max_position >= pos {
            if attempts.max_position > pos {
                words.clear();
            }
            pos = attempts.max_position;
            for stack in attempts.call_stacks() {
                if let Some(r) = stack.deepest.get_rule().copied() {
                    describe(r, &mut words);
                }
            }
            for t in attempts.expected_tokens() {
                // Ranges print as `a..z` and built-ins as BUILTIN_RULE: only literal tokens help.
                let token = t.to_string();
                let trimmed = token.trim();
                let range = trimmed.len() == 4 && trimmed.as_bytes()[1] == b'.';
                let noise = matches!(
                    trimmed,
                    "" | "BUILTIN_RULE"
                        | "#"
                        | "\""
                        | "\"\"\""
                        | "\\"
                        | "\n"
                        | "-"
                        | "."
                        | "/"
                        | "+"
                        | "_"
                );
                let literal = !range && !noise;
                if literal {
                    push(format!("'{trimmed}'"), &mut tokens);
                }
            }
        }
    }
    // A token already named by a rule's description adds nothing.
    let described = words.join(" ");
    for t in tokens {
        if !described.contains(t.trim_matches('\'')) {
            push(t, &mut words);
        }
    }
    if words.iter().any(|w| w == DURATION_WORDS) {
        if let Some(d) = duration_error(file, text, pos) {
            return d;
        }
    }
    let after = previous_token(text, pos);
    const STEP_KEYWORDS: [&str; 9] = [
        "send",
        "wait",
        "check",
        "if",
        "split",
        "experiment",
        "set",
        "goto",
        "end",
    ];
    // After a real step keyword (`wait a little`), the `:` of a label is not what was meant:
    // what the keyword needs is.
    if after
        .as_deref()
        .is_some_and(|a| a != "end" && STEP_KEYWORDS.contains(&a))
        && words.len() > 1
    {
        let step = rule_words(Rule::step).unwrap_or_default();
        words.retain(|w| w != "':'" && w != step);
    }
    // After a field name (`formName = "x"`), say what may follow it, comparisons first.
    let comparison = rule_words(Rule::cmp_op).unwrap_or_default();
    if words.iter().any(|w| w == comparison) {
        words = vec![
            comparison.to_string(),
            "'in'".into(),
            "'not in'".into(),
            "'contains'".into(),
            "'starts with'".into(),
        ];
    }
    // `sned email …`: the misspelt keyword parsed as a step label waiting for its `:`.
    // Point at the word itself and say what a step can start with.
    if words.iter().any(|w| w == "':'") {
        if let Some(a) = after.as_deref() {
            let before = text[..pos].trim_end();
            if before.ends_with(a)
                && a.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
            {
                let start = before.len() - a.len();
                let mut d = Diagnostic::error(
                    file,
                    Span::new(start, before.len()),
                    format!("expected a step (send, wait, check, if, split random, experiment, set, goto, end), found '{a}'"),
                )
                .with_label("not a step");
                d = match diagnostic::did_you_mean(a, STEP_KEYWORDS) {
                    Some(h) => d.with_help(h),
                    None => d.with_help("a label is written `name:` before a step"),
                };
                return d;
            }
        }
    }
    // The noise of every condition: `and` / `or` can always follow one. Keep them only alone.
    if words.len() > 2 {
        words.retain(|w| w != "'and'" && w != "'or'" && w != "'not'");
    }
    if words.len() > 6 {
        words.truncate(6);
        words.push("…".into());
    }
    // The file ended inside a string: say so, at the string's opening quote.
    if pos >= text.len() {
        if let Some(open) = open_string(text) {
            return Diagnostic::error(
                file,
                Span::new(open, open + 1),
                "this string has no closing quote",
            )
            .with_label("the string starts here and runs to the end of the file")
            .with_help("end it with a `\"`; write a literal quote inside a string as `\\\"`");
        }
    }
    let expected = match words.len() {
        0 if pos >= text.len() => "more text: the file ends too early".to_string(),
        0 => "something else".to_string(),
        1 => words[0].clone(),
        n => format!("{} or {}", words[..n - 1].join(", "), words[n - 1]),
    };
    let found = found_token(text, pos);
    let mut message = format!("expected {expected}");
    if let Some(a) = &after {
        message.push_str(&format!(" after '{a}'"));
    }
    let label = match &found {
        // A single-quoted string is shown with its own quotes.
        Some(f) if f.starts_with('\'') && f.len() > 1 => format!("found {f}"),
        Some(f) => format!("found '{f}'"),
        None => "the file ends here".to_string(),
    };
    let expects_string = rule_words(Rule::string).is_some_and(|w| words.iter().any(|x| x == w));
    // At the end of the file, point at the last character so the line is shown.
    if found.is_none() && pos > 0 {
        pos = text[..pos].trim_end().len().saturating_sub(1);
        while !text.is_char_boundary(pos) {
            pos -= 1;
        }
    }
    let end = (pos + found.as_ref().map_or(1, |f| f.len())).min(text.len());
    let mut d = Diagnostic::error(file, Span::new(pos, end.max(pos)), message).with_label(label);
    if found.is_none() {
        if let Some(open) = unclosed_brace(text) {
            d = d.with_related(
                file,
                Span::new(open, open + 1),
                "this `{` has no matching `}`",
            );
        }
    }
    let help = keyword_hint(&words, found.as_deref())
        .or_else(|| where_hint(text, pos, after.as_deref(), &words))
        .or_else(|| syntax_help(after.as_deref(), found.as_deref(), expects_string));
    if let Some(help) = help {
        d = d.with_help(help);
    }
    d
}

/// `subjet` where a message field was expected: did you mean `subject`?
fn keyword_hint(words: &[String], found: Option<&str>) -> Option<String> {
    let found = found.filter(|f| f.chars().all(|c| c.is_ascii_lowercase() || c == '_'))?;
    let expects = |r: Rule| rule_words(r).is_some_and(|w| words.iter().any(|x| x == w));
    let mut candidates: Vec<&str> = Vec::new();
    if expects(Rule::message_field) {
        candidates.extend([
            "subject", "template", "html", "text", "from", "reply_to", "to", "link", "title",
            "body", "data", "url", "method", "header", "timeout",
        ]);
    }
    if expects(Rule::header) {
        candidates.extend([
            "title",
            "category",
            "label",
            "entry",
            "reentry",
            "goal",
            "exit",
            "policy",
            "quiet",
            "migrate",
            "topic",
            "transactional",
        ]);
    }
    if expects(Rule::verb) {
        candidates.extend(["received", "opened", "clicked", "bounced", "unsubscribed"]);
    }
    if expects(Rule::channel) {
        candidates.extend(["email", "sms", "push", "webhook"]);
    }
    if expects(Rule::cap_target) {
        candidates.extend([
            "email", "emails", "sms", "push", "pushes", "webhook", "messages",
        ]);
    }
    if candidates.contains(&found) {
        return None;
    }
    diagnostic::did_you_mean(found, candidates)
}

/// `where` at the end of a line, and the next line's keyword read as the condition's field.
fn where_hint(text: &str, pos: usize, after: Option<&str>, words: &[String]) -> Option<String> {
    // Only a keyword that starts the next line: a real field is just a field.
    const KEYWORDS: [&str; 20] = [
        "title",
        "category",
        "label",
        "entry",
        "reentry",
        "goal",
        "exit",
        "policy",
        "quiet",
        "migrate",
        "topic",
        "transactional",
        "send",
        "wait",
        "check",
        "if",
        "split",
        "set",
        "goto",
        "end",
    ];
    let after = after.filter(|a| KEYWORDS.contains(a))?;
    if !rule_words(Rule::cmp_op).is_some_and(|w| words.iter().any(|x| x == w)) {
        return None;
    }
    let before = text[..pos].trim_end();
    let field_start = before.strip_suffix(after).map(str::len)?;
    if previous_token(text, field_start).as_deref() == Some("where") {
        return Some(format!(
            "`{after}` was read as the field of the `where` condition: is the condition missing? \
             Write `where FIELD == VALUE`, such as `where formName == \"addUser\"`"
        ));
    }
    None
}

fn syntax_help(after: Option<&str>, found: Option<&str>, expects_string: bool) -> Option<String> {
    match (after, found) {
        (_, Some(f)) if f.starts_with('\'') => {
            Some("strings use double quotes: \"like this\"".into())
        }
        (_, Some(f)) if expects_string && f.chars().next().is_some_and(char::is_alphanumeric) => {
            Some(format!("text is written in double quotes, such as \"{f} …\""))
        }
        (_, Some(f))
            if f.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && !f.contains('/') =>
        {
            Some("names are lowercase: letters, digits and _".into())
        }
        (Some("within"), _) => {
            Some("durations are a number and a unit: 30s, 15m, 2h, 3d, 1w, or 1d12h".into())
        }
        (_, Some("=")) => Some("equality is written `==`, such as formName == \"addUser\"".into()),
        (Some("check"), _) => Some(
            "a check names what to wait for: `check opened welcome within 3d { yes { … } no { … } }`"
                .into(),
        ),
        (Some("wait"), _) => Some(
            "write `wait 2d`, `wait until 09:00` or `wait for event \"x\" within 7d { … }`".into(),
        ),
        (_, None) => Some("a `{` may be missing its `}`".into()),
        _ => None,
    }
}

/// The word or symbol just before `pos`, skipping whitespace and comments.
fn previous_token(text: &str, pos: usize) -> Option<String> {
    let before = &text[..pos.min(text.len())];
    // Drop trailing comments line by line.
    let mut cut = before.len();
    loop {
        let trimmed = before[..cut].trim_end();
        let line_start = trimmed.rfind('\n').map_or(0, |i| i + 1);
        let line = &trimmed[line_start..];
        match comment_start(line) {
            Some(c) => cut = line_start + c,
            None => {
                cut = trimmed.len();
                break;
            }
        }
    }
    let t = &before[..cut];
    let last = t.chars().last()?;
    if last.is_alphanumeric() || last == '_' || last == ':' && t.len() > 1 {
        let start = t
            .char_indices()
            .rev()
            .take_while(|(_, c)| {
                c.is_alphanumeric() || *c == '_' || *c == '.' || *c == ':' || *c == '-' || *c == '%'
            })
            .last()
            .map_or(t.len(), |(i, _)| i);
        let word = &t[start..];
        if word.chars().count() > 40 {
            return None;
        }
        Some(word.to_string())
    } else if last == '"' {
        Some("a string".to_string()).filter(|_| false).or(None)
    } else {
        Some(last.to_string())
    }
}

fn found_token(text: &str, pos: usize) -> Option<String> {
    let rest = text.get(pos..)?;
    let first = rest.chars().next()?;
    if first.is_alphanumeric() || first == '_' {
        let end = rest
            .char_indices()
            .find(|(_, c)| {
                !(c.is_alphanumeric() || *c == '_' || *c == '.' || *c == '/' || *c == ':')
            })
            .map_or(rest.len(), |(i, _)| i);
        let mut end = end.min(60);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        Some(rest[..end].to_string())
    } else if first == '\'' {
        // 'single quoted': the whole of it, if it closes on the same line.
        let line = rest.split('\n').next().unwrap_or(rest);
        match line[1..].find('\'') {
            Some(close) if close < 60 => Some(line[..close + 2].to_string()),
            _ => Some(first.to_string()),
        }
    } else {
        Some(first.to_string())
    }
}
