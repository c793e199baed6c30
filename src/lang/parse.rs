//! Parsing: source text → `ast::File`, or diagnostics in plain words.
//! The grammar is `grammar/journey.pest`; this module turns pest's pairs into the AST and
//! pest's errors into "expected a duration such as 3d after 'within'".

use super::ast::*;
use super::diagnostic::{self, Diagnostic};
use pest::iterators::Pair;
use pest::Parser as _;

#[derive(pest_derive::Parser)]
#[grammar = "grammar/journey.pest"]
pub struct JourneyParser;

/// Deeper nesting than this is refused before parsing: real journeys nest a handful of levels,
/// and a bound keeps every recursive pass (parser, compiler, formatter) far from the stack's end.
pub const MAX_NESTING: usize = 128;

/// Parses one file. `file` is the index used in diagnostics.
pub fn parse_file(file: usize, text: &str) -> Result<File, Vec<Diagnostic>> {
    if let Some(d) = check_nesting(file, text) {
        return Err(vec![d]);
    }
    let pairs = match JourneyParser::parse(Rule::file, text) {
        Ok(p) => p,
        Err(_) => {
            // Parse again with pest's token tracking on: slower, so only on the error path.
            // The switch is global to the process: files parsed on other threads meanwhile
            // only run slower, and the lock keeps two error paths from turning it off under
            // each other (which would make messages vary from run to run).
            static ERROR_DETAIL: std::sync::Mutex<()> = std::sync::Mutex::new(());
            let _one_at_a_time = ERROR_DETAIL.lock().unwrap_or_else(|e| e.into_inner());
            pest::set_error_detail(true);
            let again = JourneyParser::parse(Rule::file, text);
            pest::set_error_detail(false);
            let err = again.expect_err("parsed twice");
            return Err(vec![syntax_error(file, text, err)]);
        }
    };
    let mut b = Builder {
        file,
        diags: Vec::new(),
    };
    let file_pair = pairs.into_iter().next().expect("file rule");
    let mut definitions = Vec::new();
    for p in file_pair.into_inner() {
        match p.as_rule() {
            Rule::journey => definitions.push(Definition::Journey(b.journey(p))),
            Rule::segment => definitions.push(Definition::Segment(b.segment(p))),
            Rule::policy => definitions.push(Definition::Policy(b.policy(p))),
            Rule::topic => definitions.push(Definition::Topic(b.topic(p))),
            Rule::EOI => {}
            r => unreachable!("unexpected {r:?} at top level"),
        }
    }
    if b.diags.is_empty() {
        Ok(File { definitions })
    } else {
        Err(b.diags)
    }
}

/// True for text with nothing but whitespace and `#` comments.
pub fn is_blank(text: &str) -> bool {
    text.lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
}

/// Counts brace, bracket and parenthesis depth outside strings and comments.
fn check_nesting(file: usize, text: &str) -> Option<Diagnostic> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    // Consecutive `not`s, which nest like parentheses.
    let mut nots = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(end) = skip_comment_or_string(bytes, i) {
            i = end + 1;
            continue;
        }
        match bytes[i] {
            b'{' | b'(' | b'[' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(
                        Diagnostic::error(
                            file,
                            Span::new(i, i + 1),
                            format!("blocks nested more than {MAX_NESTING} deep"),
                        )
                        .with_label("this opening is too deep")
                        .with_help(
                            "split the journey into smaller steps, or use labels and `goto`",
                        ),
                    );
                }
            }
            b'}' | b')' | b']' => depth = depth.saturating_sub(1),
            // `not not not …` nests as deep as parentheses do.
            b'n' if bytes[i..].starts_with(b"not")
                && (i == 0 || !is_word_byte(bytes[i - 1]))
                && !bytes.get(i + 3).copied().is_some_and(is_word_byte) =>
            {
                nots += 1;
                if depth + nots > MAX_NESTING {
                    return Some(
                        Diagnostic::error(
                            file,
                            Span::new(i, i + 3),
                            format!("conditions nested more than {MAX_NESTING} deep"),
                        )
                        .with_label("this `not` is too deep")
                        .with_help("`not not x` is `x`: simplify the condition"),
                    );
                }
                i += 3;
                continue;
            }
            c if is_word_byte(c) => {
                nots = 0;
                while i < bytes.len() && is_word_byte(bytes[i]) {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

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
        Rule::step | Rule::step_label => {
            "a step (send, wait, check, if, split random, set, goto, end)"
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

fn syntax_error(file: usize, text: &str, err: pest::error::Error<Rule>) -> Diagnostic {
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
    const STEP_KEYWORDS: [&str; 8] = ["send", "wait", "check", "if", "split", "set", "goto", "end"];
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
                    format!("expected a step (send, wait, check, if, split random, set, goto, end), found '{a}'"),
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

/// Where a string opens that the file never closes (strings and comments skipped).
fn open_string(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if let Some(end) = skip_comment_or_string(bytes, i) {
            if end >= bytes.len() && bytes[i] == b'"' {
                return Some(i);
            }
            i = end;
        }
        i += 1;
    }
    None
}

/// Where the comment or string that starts at `i` ends: the index of its last byte, or the
/// end of the text (or past it) for one the text never closes; `None` when neither starts
/// at `i`. The scanners of brackets and strings step over what is not code with it.
fn skip_comment_or_string(bytes: &[u8], mut i: usize) -> Option<usize> {
    match bytes[i] {
        b'#' => {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        }
        b'"' if bytes[i..].starts_with(b"\"\"\"") => {
            i += 3;
            while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                i += 1;
            }
            if i < bytes.len() {
                i += 2;
            }
        }
        b'"' => {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
        }
        _ => return None,
    }
    Some(i)
}

/// The `{` that most likely lacks its `}`, for an error at the end of the file: the first
/// brace whose `}` (alone at the start of its line) is indented differently from the line
/// that opened it, else the innermost brace left open. Strings and comments are skipped.
fn unclosed_brace(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let indent = |at: usize| {
        let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let line = &text[start..];
        let width = line.len() - line.trim_start_matches([' ', '\t']).len();
        (width, start + width == at)
    };
    let mut open: Vec<usize> = Vec::new();
    let mut suspect: Option<usize> = None;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(end) = skip_comment_or_string(bytes, i) {
            i = end + 1;
            continue;
        }
        match bytes[i] {
            b'{' => open.push(i),
            b'}' => {
                if let Some(o) = open.pop() {
                    let (close_indent, alone) = indent(i);
                    if suspect.is_none() && alone && indent(o).0 != close_indent {
                        suspect = Some(o);
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    if open.is_empty() {
        return None;
    }
    suspect.or(open.last().copied())
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

/// Where a `#` comment starts on a line, outside strings.
fn comment_start(line: &str) -> Option<usize> {
    let mut in_str = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if in_str {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
        } else if c == '#' {
            return Some(i);
        }
    }
    None
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

struct Builder {
    file: usize,
    diags: Vec<Diagnostic>,
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

impl Builder {
    fn dur(&mut self, p: Pair<Rule>) -> Dur {
        let sp = span(&p);
        let text = p.as_str().to_string();
        let seconds = match parse_duration_text(&text) {
            Some(s) => s,
            None => {
                self.diags.push(
                    Diagnostic::error(self.file, sp, "this duration is too long")
                        .with_help("durations must fit in a few thousand years"),
                );
                0
            }
        };
        Dur {
            seconds,
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

    fn journey(&mut self, p: Pair<Rule>) -> Journey {
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
            Rule::set => {
                let mut it = body.into_inner();
                let field = ident(it.next().unwrap());
                let value = self.literal(it.next().unwrap());
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
                        Matcher::Cmp(op, self.literal(i.next().unwrap()))
                    }
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

    fn segment(&mut self, p: Pair<Rule>) -> Segment {
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

    fn policy(&mut self, p: Pair<Rule>) -> Policy {
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
    fn topic(&mut self, p: Pair<Rule>) -> Topic {
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
mod scanner_tests {
    use super::*;

    #[test]
    fn scanners_step_over_comments_and_strings() {
        // A quote in a comment, an escaped quote and a brace in a string are not code.
        let text = "# it's \"here\n{ x \"a \\\" {\" }\n";
        assert_eq!(open_string(text), None);
        assert_eq!(unclosed_brace(text), None);
        assert!(check_nesting(0, text).is_none());
        // A comment that ends the file without a newline is not an open string.
        assert_eq!(open_string("x # \"no"), None);
    }

    #[test]
    fn the_string_a_file_never_closes_is_found_at_its_opening_quote() {
        assert_eq!(open_string("a \"ok\" b \"open"), Some(9));
        assert_eq!(open_string("a \"\"\"one\n\"two"), Some(2));
        assert_eq!(open_string("\"\"\"closed\"\"\" \"\"\"open\""), Some(13));
        assert_eq!(open_string("\"ends in an escape\\"), Some(0));
    }

    #[test]
    fn the_brace_left_open_is_the_one_found() {
        // `{` at 0 is closed by a `}` indented like it; `{` at 12 is never closed.
        let text = "{\n  \"}\"\n}\nx {\n  # }\n";
        assert_eq!(unclosed_brace(text), Some(12));
    }
}
