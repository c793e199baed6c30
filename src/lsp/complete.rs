//! Completion: from the text before the cursor (lexed, so half-written files work), what may
//! come next: the keywords of the block the cursor is in, or the names in scope after the
//! word that takes them (`check clicked ▮`, `welcome.▮`, `in segment ▮`, `policy ▮`…).

use super::index::{template_path, Index};
use super::tokens::{lex, Lex, Tok};
use crate::compile::allowed_fields;
use crate::domain::Channel;
use lsp_types::{CompletionItem, CompletionItemKind};
use std::path::Path;

/// What the cursor's block holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Block {
    Top,
    Journey,
    Steps,
    Outcomes,
    SplitArms,
    Send(Channel),
    Data,
    Segment,
    Policy,
    Topic,
}

const DEFINITIONS: &[&str] = &["journey", "segment", "policy", "topic"];
const HEADERS: &[&str] = &[
    "title",
    "category",
    "label",
    "topic",
    "entry",
    "reentry",
    "goal",
    "exit",
    "policy",
    "quiet",
    "migrate by name",
    "transactional",
    "holdout",
];
const STEPS: &[&str] = &[
    "send",
    "wait",
    "check",
    "if",
    "else",
    "split random",
    "experiment",
    "set contact.",
    "goto",
    "end",
];
/// What a condition may start with.
const CONDITIONS: &[&str] = &[
    "in segment",
    "in list",
    "not",
    "event",
    "count",
    "last",
    "received",
    "opened",
    "clicked",
    "bounced",
    "unsubscribed",
    "contact.",
    "entry.",
    "true",
    "false",
];
/// What may follow a value in a condition: comparisons, and the tests of profile times.
const MATCHERS: &[&str] = &[
    "==",
    "!=",
    "in",
    "not in",
    "contains",
    "starts with",
    "in last",
    "before",
    "after",
    "between",
    "is anniversary",
];
/// What a computed value (`set contact.x = …`) may start with.
const VALUES: &[&str] = &["contact.", "entry.", "now"];
const VERBS: &[&str] = &["received", "opened", "clicked", "bounced", "unsubscribed"];
const CHANNELS: &[&str] = &["email", "sms", "push", "webhook"];

fn item(label: &str, kind: CompletionItemKind, detail: &str) -> CompletionItem {
    CompletionItem {
        label: label.to_string(),
        kind: Some(kind),
        detail: (!detail.is_empty()).then(|| detail.to_string()),
        ..CompletionItem::default()
    }
}

fn keywords(words: &[&str], detail: &str) -> Vec<CompletionItem> {
    words
        .iter()
        .map(|w| item(w, CompletionItemKind::KEYWORD, detail))
        .collect()
}

fn names<'a>(
    names: impl IntoIterator<Item = &'a String>,
    kind: CompletionItemKind,
    detail: &str,
) -> Vec<CompletionItem> {
    names.into_iter().map(|n| item(n, kind, detail)).collect()
}

/// The block the end of `toks` is in, and the journey it is in (if any).
fn context(text: &str, toks: &[Tok]) -> (Block, Option<String>) {
    let mut stack: Vec<Block> = Vec::new();
    let mut journey = None;
    let mut since: Vec<&str> = Vec::new();
    for t in toks {
        let s = &text[t.span.start..t.span.end];
        match (t.lex, s) {
            (Lex::Punct, "{") => {
                let top = stack.last().copied().unwrap_or(Block::Top);
                let opened = opener(top, &since);
                if opened == Block::Journey {
                    journey = since
                        .iter()
                        .rposition(|w| *w == "journey")
                        .and_then(|i| since.get(i + 1))
                        .map(|s| s.to_string());
                }
                stack.push(opened);
                since.clear();
            }
            (Lex::Punct, "}") => {
                if stack.pop() == Some(Block::Journey) {
                    journey = None;
                }
                since.clear();
            }
            (Lex::Comment, _) => {}
            _ => since.push(s),
        }
    }
    (stack.last().copied().unwrap_or(Block::Top), journey)
}

/// What a `{` opens, from the words since the last brace and the block it is in.
fn opener(inside: Block, words: &[&str]) -> Block {
    if inside == Block::SplitArms {
        return Block::Steps;
    }
    if matches!(inside, Block::Send(_)) {
        return Block::Data;
    }
    for (i, w) in words.iter().enumerate().rev() {
        match *w {
            "journey" if inside == Block::Top => return Block::Journey,
            "segment" if inside == Block::Top => return Block::Segment,
            "policy" if inside == Block::Top => return Block::Policy,
            "topic" if inside == Block::Top => return Block::Topic,
            "send" => {
                return match words.get(i + 1).copied() {
                    Some("sms") => Block::Send(Channel::Sms),
                    Some("push") => Block::Send(Channel::Push),
                    Some("webhook") => Block::Send(Channel::Webhook),
                    _ => Block::Send(Channel::Email),
                }
            }
            "within" if inside != Block::Top => return Block::Outcomes,
            "random" => return Block::SplitArms,
            "yes" | "no" | "else" | "if" => return Block::Steps,
            _ => {}
        }
    }
    Block::Steps
}

/// The completions at byte `offset` of `text` (file `file`, at `path`).
pub fn complete(text: &str, offset: usize, index: &Index, path: &Path) -> Vec<CompletionItem> {
    let before = &text[..offset.min(text.len())];
    let toks = lex(before);
    // The word being typed, if the cursor is at its end; the words before it.
    let (typing, done) = match toks.last() {
        Some(t) if t.span.end == before.len() && t.lex != Lex::Punct => {
            (Some(*t), &toks[..toks.len() - 1])
        }
        _ => (None, &toks[..]),
    };
    let word = |t: &Tok| &before[t.span.start..t.span.end];
    let prev: Vec<&str> = done
        .iter()
        .rev()
        .filter(|t| t.lex != Lex::Comment)
        .take(3)
        .map(word)
        .collect();
    let p1 = prev.first().copied().unwrap_or("");
    let p2 = prev.get(1).copied().unwrap_or("");
    let (block, journey) = context(before, done);
    let here = journey.as_ref().and_then(|j| index.journeys.get(j));

    if let Some(t) = typing {
        let w = word(&t);
        if t.lex == Lex::Str && (w.len() == 1 || !w.ends_with('"')) {
            // Inside a string: a journey label, or a template file.
            return match p1 {
                "label" => names(&index.labels, CompletionItemKind::VALUE, "label"),
                "template" => template_files(path),
                _ => Vec::new(),
            };
        }
        if t.lex == Lex::Word && w.contains('.') {
            let parts: Vec<&str> = w.split('.').collect();
            let head = &parts[..parts.len() - 1];
            if p1 == "contact" || p1 == "set" {
                return Vec::new();
            }
            return dotted(index, journey.as_deref(), head);
        }
    }
    let msgs_here = || {
        here.map(|h| names(h.messages.keys(), CompletionItemKind::FUNCTION, "message"))
            .unwrap_or_default()
    };
    match (p2, p1) {
        (_, v) if VERBS.contains(&v) => {
            let mut out = msgs_here();
            out.extend(names(
                index.journeys.keys(),
                CompletionItemKind::MODULE,
                "journey (JOURNEY.MESSAGE)",
            ));
            out.extend(keywords(&["channel", "journey", "label"], ""));
            if block == Block::Segment {
                out.extend(keywords(&["message"], ""));
            }
            return out;
        }
        ("in", "segment") | ("entry", "segment") => {
            return names(&index.segments, CompletionItemKind::CLASS, "segment")
        }
        (_, "policy") if block == Block::Journey => {
            let mut out = names(&index.policies, CompletionItemKind::ENUM, "policy");
            out.extend(keywords(&["none"], "no policy"));
            return out;
        }
        (_, "topic") if block == Block::Journey => {
            return names(&index.topics, CompletionItemKind::STRUCT, "topic")
        }
        (_, "journey") if block != Block::Top => {
            return names(index.journeys.keys(), CompletionItemKind::MODULE, "journey")
        }
        (_, "label") if block != Block::Top => {
            return index
                .labels
                .iter()
                .map(|l| {
                    let mut it = item(&format!("\"{l}\""), CompletionItemKind::VALUE, "label");
                    it.filter_text = Some(l.clone());
                    it
                })
                .collect();
        }
        (_, "goto") => {
            return here
                .map(|h| names(&h.step_labels, CompletionItemKind::VARIABLE, "step label"))
                .unwrap_or_default()
        }
        (_, "channel" | "send") => return keywords(CHANNELS, "channel"),
        (_, "before" | "after") if block != Block::Top => {
            return keywords(&["now"], "the moment of evaluation")
        }
        (_, "=") if block != Block::Top => return keywords(VALUES, "value"),
        (_, w)
            if block != Block::Top
                && ["contact.", "entry.", "event."]
                    .iter()
                    .any(|r| w.starts_with(r) && w.len() > r.len()) =>
        {
            return keywords(MATCHERS, "test")
        }
        (_, "in") if block != Block::Top => return keywords(&["segment", "list", "last"], ""),
        (_, "where" | "and" | "or" | "not" | "(") | ("else", "if")
            if block != Block::Top && block != Block::Segment || p1 == "where" =>
        {
            return keywords(CONDITIONS, "condition")
        }
        (_, "if") if matches!(block, Block::Journey | Block::Steps | Block::Outcomes) => {
            return keywords(CONDITIONS, "condition")
        }
        (_, ":") if block == Block::Segment => {
            let mut out = keywords(CONDITIONS, "condition");
            out.extend(keywords(&["no event"], "rule"));
            return out;
        }
        (_, "until") => {
            let mut out = keywords(&crate::compile::WEEKDAYS, "weekday");
            out.push(item("08:00", CompletionItemKind::VALUE, "time of day"));
            return out;
        }
        (_, t)
            if is_time(t) && matches!(block, Block::Journey | Block::Steps | Block::Outcomes) =>
        {
            if prev.get(2).is_some_and(|w| *w == "quiet") || p2 == ".." {
                return Vec::new();
            }
            return chrono_tz::TZ_VARIANTS
                .iter()
                .map(|z| item(z.name(), CompletionItemKind::CONSTANT, "time zone"))
                .collect();
        }
        _ => {}
    }
    match block {
        Block::Top => keywords(DEFINITIONS, "definition"),
        Block::Journey => {
            let mut out = keywords(HEADERS, "header");
            out.extend(keywords(STEPS, "step"));
            out
        }
        Block::Steps => keywords(STEPS, "step"),
        Block::Outcomes => keywords(&["yes", "no"], "outcome"),
        Block::SplitArms => vec![item("50%", CompletionItemKind::VALUE, "an arm's share")],
        Block::Send(ch) => keywords(allowed_fields(ch), &format!("{} field", ch.as_str())),
        Block::Data => Vec::new(),
        Block::Segment => keywords(&["title", "rule", "and rule", "or rule", "except rule"], ""),
        Block::Policy => keywords(
            &[
                "title",
                "max",
                "scope global",
                "scope journey",
                "when capped",
            ],
            "",
        ),
        Block::Topic => keywords(&["title", "default subscribed", "default unsubscribed"], ""),
    }
}

fn is_time(w: &str) -> bool {
    let b = w.as_bytes();
    (4..=5).contains(&b.len())
        && b[b.len() - 3] == b':'
        && b.iter().filter(|c| c.is_ascii_digit()).count() == b.len() - 1
}

/// After `a.`: the links of this journey's message `a`, or the messages of journey `a`;
/// after `j.m.`: the links of journey `j`'s message `m`.
fn dotted(index: &Index, journey: Option<&str>, head: &[&str]) -> Vec<CompletionItem> {
    let links = |j: &str, m: &str| {
        index
            .journeys
            .get(j)
            .and_then(|i| i.messages.get(m))
            .map(|(_, links)| names(links, CompletionItemKind::PROPERTY, "link"))
    };
    match head {
        [m] => {
            if let Some(out) = journey.and_then(|j| links(j, m)) {
                return out;
            }
            index
                .journeys
                .get(*m)
                .map(|i| names(i.messages.keys(), CompletionItemKind::FUNCTION, "message"))
                .unwrap_or_default()
        }
        [j, m] => links(j, m).unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn template_files(journey_file: &Path) -> Vec<CompletionItem> {
    let dir = template_path(journey_file, "");
    let mut out: Vec<CompletionItem> = walkdir::WalkDir::new(&dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            let rel = e
                .path()
                .strip_prefix(&dir)
                .ok()?
                .to_string_lossy()
                .into_owned();
            Some(item(&rel, CompletionItemKind::FILE, "template"))
        })
        .collect();
    out.sort_by(|a, b| a.label.cmp(&b.label));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang;

    fn labels(text: &str, at: &str) -> Vec<String> {
        let mut loaded = lang::Loaded::default();
        lang::add_source(&mut loaded, "t.journey", text.to_string());
        let index = Index::build(&loaded);
        let offset = text.find(at).unwrap() + at.len();
        complete(&text[..offset], offset, &index, Path::new("t.journey"))
            .into_iter()
            .map(|c| c.label)
            .collect()
    }

    const J: &str = "journey j {\n  entry api\n  send sms hi { text \"x\" link a \"https://a\" }\n  check clicked hi within 1d {\n  }\n}\nsegment s { rule r: in segment s }\n";

    #[test]
    fn names_in_scope() {
        assert!(labels(J, "check clicked ").contains(&"hi".to_string()));
        assert!(labels(J, "check clicked h").contains(&"hi".to_string()));
        let dotted = J.replace("clicked hi within", "clicked hi.a within");
        assert_eq!(labels(&dotted, "check clicked hi."), vec!["a".to_string()]);
        assert!(labels(J, "in segment ").contains(&"s".to_string()));
        assert!(labels(J, "send sms hi { ").contains(&"text".to_string()));
        assert!(!labels(J, "send sms hi { ").contains(&"subject".to_string()));
        assert!(labels(J, "within 1d {\n  ").contains(&"yes".to_string()));
        assert!(labels(J, "entry api\n").contains(&"send".to_string()));
        assert!(labels(J, "rule r: ").contains(&"in segment".to_string()));
        let cond = "journey j {\n  entry event \"e\" where ";
        assert!(labels(cond, "where ").contains(&"opened".to_string()));
    }
}
