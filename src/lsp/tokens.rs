//! A lexer for editors (comments, strings, numbers, words, punctuation; it never fails, so it
//! reads half-written text), and the semantic tokens built on it: words are keywords when
//! the grammar says so, names by what the index says they name.

use super::index::{Index, Kind};
use super::position::LineIndex;
use crate::lang::ast::Span;
use lsp_types::{SemanticToken, SemanticTokenType, SemanticTokensLegend};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Lex {
    Comment,
    Str,
    /// Numbers, durations, times of day, dates, percentages.
    Number,
    /// A word, with dots and slashes (`welcome.profile`, `Europe/Paris`).
    Word,
    Punct,
}

#[derive(Clone, Copy, Debug)]
pub struct Tok {
    pub lex: Lex,
    pub span: Span,
}

/// Every keyword of `grammar/journey.pest` (a test checks they match).
pub const KEYWORDS: &[&str] = &[
    "journey",
    "segment",
    "policy",
    "topic",
    "title",
    "category",
    "label",
    "entry",
    "event",
    "where",
    "at",
    "every",
    "on",
    "join",
    "api",
    "day",
    "reentry",
    "never",
    "always",
    "after",
    "goal",
    "exit",
    "none",
    "quiet",
    "migrate",
    "by",
    "name",
    "transactional",
    "holdout",
    "experiment",
    "winner",
    "converted",
    "now",
    "is",
    "anniversary",
    "before",
    "send",
    "link",
    "header",
    "data",
    "method",
    "timeout",
    "wait",
    "until",
    "for",
    "within",
    "check",
    "yes",
    "no",
    "if",
    "else",
    "split",
    "random",
    "set",
    "contact",
    "goto",
    "end",
    "not",
    "and",
    "or",
    "in",
    "list",
    "channel",
    "last",
    "count",
    "ago",
    "contains",
    "starts",
    "with",
    "rule",
    "except",
    "message",
    "times",
    "time",
    "least",
    "most",
    "exactly",
    "anytime",
    "between",
    "delivery",
    "max",
    "per",
    "scope",
    "global",
    "when",
    "capped",
    "delay",
    "skip",
    "default",
    "subscribed",
    "unsubscribed",
    "received",
    "opened",
    "clicked",
    "bounced",
    "email",
    "sms",
    "push",
    "webhook",
    "subject",
    "template",
    "html",
    "text",
    "from",
    "reply_to",
    "to",
    "body",
    "url",
    "emails",
    "pushes",
    "webhooks",
    "messages",
    "true",
    "false",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "GET",
    "POST",
    "PUT",
    "PATCH",
    "DELETE",
];

pub fn lex(text: &str) -> Vec<Tok> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let lex = if c.is_ascii_whitespace() {
            i += 1;
            continue;
        } else if c == b'#' {
            i = text[i..].find('\n').map_or(b.len(), |n| i + n);
            Lex::Comment
        } else if text[i..].starts_with("\"\"\"") {
            i = text[i + 3..]
                .find("\"\"\"")
                .map_or(b.len(), |n| i + 3 + n + 3);
            Lex::Str
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(b.len());
            Lex::Str
        } else if c.is_ascii_digit() || (c == b'-' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            i += 1;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b".:-%".contains(&b[i])) {
                if b[i] == b'.' && b.get(i + 1) == Some(&b'.') {
                    break;
                }
                i += 1;
            }
            Lex::Number
        } else if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b"_./+-".contains(&b[i])) {
                if b[i] == b'.' && b.get(i + 1) == Some(&b'.') {
                    break;
                }
                i += 1;
            }
            Lex::Word
        } else {
            i += text[i..].chars().next().map_or(1, char::len_utf8);
            Lex::Punct
        };
        out.push(Tok {
            lex,
            span: Span::new(start, i.min(b.len())),
        });
    }
    out
}

pub const TYPES: &[SemanticTokenType] = &[
    SemanticTokenType::KEYWORD,
    SemanticTokenType::COMMENT,
    SemanticTokenType::STRING,
    SemanticTokenType::NUMBER,
    SemanticTokenType::NAMESPACE, // journeys
    SemanticTokenType::FUNCTION,  // messages
    SemanticTokenType::PROPERTY,  // links
    SemanticTokenType::CLASS,     // segments
    SemanticTokenType::ENUM,      // policies
    SemanticTokenType::TYPE,      // topics
    SemanticTokenType::VARIABLE,  // step labels, fields
    SemanticTokenType::OPERATOR,
];

pub fn legend() -> SemanticTokensLegend {
    SemanticTokensLegend {
        token_types: TYPES.to_vec(),
        token_modifiers: vec![],
    }
}

fn type_of(kind: Kind) -> u32 {
    match kind {
        Kind::Journey => 4,
        Kind::Message => 5,
        Kind::Link => 6,
        Kind::Segment => 7,
        Kind::Policy => 8,
        Kind::Topic => 9,
        Kind::StepLabel => 10,
        Kind::Label | Kind::Template => 2,
    }
}

/// The semantic tokens of one file, delta-encoded; a token never spans lines.
pub fn semantic(text: &str, lines: &LineIndex, index: &Index, file: usize) -> Vec<SemanticToken> {
    let mut names: Vec<(Span, u32)> = index
        .occurrences
        .iter()
        .filter(|o| o.file == file)
        .map(|o| (o.span, type_of(o.kind)))
        .collect();
    names.sort_by_key(|(s, _)| s.start);
    let mut spans: Vec<(Span, u32)> = Vec::new();
    for t in lex(text) {
        match t.lex {
            Lex::Comment => spans.push((t.span, 1)),
            Lex::Str => spans.push((t.span, 2)),
            Lex::Number => spans.push((t.span, 3)),
            Lex::Punct => {
                if "=!<>".contains(&text[t.span.start..t.span.end]) {
                    spans.push((t.span, 11));
                }
            }
            Lex::Word => {
                // A dotted word is several names (`welcome.profile`): each as the index says.
                let inside: Vec<(Span, u32)> = names
                    .iter()
                    .filter(|(s, _)| s.start >= t.span.start && s.end <= t.span.end)
                    .copied()
                    .collect();
                if !inside.is_empty() {
                    spans.extend(inside);
                } else if KEYWORDS.contains(&&text[t.span.start..t.span.end]) {
                    spans.push((t.span, 0));
                }
            }
        }
    }
    let mut out = Vec::new();
    let (mut line, mut col) = (0u32, 0u32);
    for (span, ty) in spans {
        // Split multi-line tokens (triple-quoted strings) into one per line.
        let mut start = span.start;
        while start < span.end {
            let end = text[start..span.end]
                .find('\n')
                .map_or(span.end, |i| start + i);
            if end > start {
                let p = lines.position(text, start);
                let len: usize = text[start..end].chars().map(char::len_utf16).sum();
                let delta_line = p.line - line;
                let delta_start = if delta_line == 0 {
                    p.character - col
                } else {
                    p.character
                };
                out.push(SemanticToken {
                    delta_line,
                    delta_start,
                    length: len as u32,
                    token_type: ty,
                    token_modifiers_bitset: 0,
                });
                line = p.line;
                col = p.character;
            }
            start = end + 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexes_half_written_text() {
        let text = "journey a { quiet 21:00..08:00 check clicked w.p within 3d { yes { \"x";
        let toks = lex(text);
        let words: Vec<&str> = toks
            .iter()
            .map(|t| &text[t.span.start..t.span.end])
            .collect();
        assert!(words.contains(&"21:00"), "{words:?}");
        assert!(words.contains(&"08:00"), "{words:?}");
        assert!(words.contains(&"w.p"), "{words:?}");
        assert_eq!(toks.last().unwrap().lex, Lex::Str);
    }
}
