//! The outline of a file (journeys and their steps, segments and their rules, policies,
//! topics), and its formatting by `journey fmt`'s formatter.

use super::index::each_block;
use super::position::LineIndex;
use crate::lang::ast::*;
use crate::lang::{self, fmt::format_source};
use lsp_types::{DocumentSymbol, SymbolKind, TextEdit};

#[allow(deprecated)] // `DocumentSymbol::deprecated` must be written, as None
#[allow(clippy::too_many_arguments)]
fn symbol(
    name: String,
    detail: Option<String>,
    kind: SymbolKind,
    span: Span,
    name_span: Span,
    text: &str,
    lines: &LineIndex,
    children: Vec<DocumentSymbol>,
) -> DocumentSymbol {
    DocumentSymbol {
        name,
        detail,
        kind,
        tags: None,
        deprecated: None,
        range: lines.range(text, span),
        selection_range: lines.range(text, name_span),
        children: (!children.is_empty()).then_some(children),
    }
}

/// A step's first line, as written (up to its `{`).
fn head(text: &str, span: Span) -> String {
    let s = text.get(span.start..span.end).unwrap_or("");
    let line = s.split(['\n', '{']).next().unwrap_or("").trim();
    if line.is_empty() {
        "step".into()
    } else {
        line.to_string()
    }
}

fn steps(steps: &[Step], text: &str, lines: &LineIndex) -> Vec<DocumentSymbol> {
    steps
        .iter()
        .map(|s| {
            let mut children = Vec::new();
            each_block(&s.kind, |b| {
                children.extend(self::steps(&b.steps, text, lines))
            });
            let (kind, name_span) = match &s.kind {
                StepKind::Send(send) => (SymbolKind::FUNCTION, send.name.span),
                StepKind::Check(_) | StepKind::WaitForEvent(_) | StepKind::If(_) => {
                    (SymbolKind::OPERATOR, s.span)
                }
                _ => (SymbolKind::EVENT, s.span),
            };
            let name_span = s.label.as_ref().map_or(name_span, |l| l.span);
            let name_span = if name_span.end > s.span.end {
                s.span
            } else {
                name_span
            };
            symbol(
                head(text, s.span),
                s.label.as_ref().map(|l| format!("{}:", l.name)),
                kind,
                s.span,
                Span::new(name_span.start, name_span.end.min(s.span.end)),
                text,
                lines,
                children,
            )
        })
        .collect()
}

pub fn outline(file: &File, text: &str, lines: &LineIndex) -> Vec<DocumentSymbol> {
    file.definitions
        .iter()
        .map(|d| {
            let name = d.name();
            let (kind, word, children) = match d {
                Definition::Journey(j) => {
                    (SymbolKind::MODULE, "journey", steps(&j.steps, text, lines))
                }
                Definition::Segment(s) => (
                    SymbolKind::CLASS,
                    "segment",
                    s.rules
                        .iter()
                        .map(|r| {
                            symbol(
                                r.name.name.clone(),
                                Some("rule".into()),
                                SymbolKind::PROPERTY,
                                r.span,
                                r.name.span,
                                text,
                                lines,
                                Vec::new(),
                            )
                        })
                        .collect(),
                ),
                Definition::Policy(_) => (SymbolKind::ENUM, "policy", Vec::new()),
                Definition::Topic(_) => (SymbolKind::STRUCT, "topic", Vec::new()),
            };
            symbol(
                name.name.clone(),
                Some(word.into()),
                kind,
                d.span(),
                name.span,
                text,
                lines,
                children,
            )
        })
        .collect()
}

/// The whole document in `journey fmt`'s layout: one edit, none if it is already, or None
/// if it does not parse (the formatter leaves such a file alone, as `journey fmt` does).
pub fn format(text: &str, lines: &LineIndex) -> Option<Vec<TextEdit>> {
    let mut loaded = lang::Loaded::default();
    lang::add_source(&mut loaded, "document.journey", text.to_string());
    if loaded.has_errors() {
        return None;
    }
    let (_, ast) = loaded.files.first()?;
    let formatted = format_source(text, ast);
    if formatted == text {
        return Some(Vec::new());
    }
    Some(vec![TextEdit {
        range: lines.range(text, Span::new(0, text.len())),
        new_text: formatted,
    }])
}
