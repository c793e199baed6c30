//! Diagnostics: errors and warnings with a place. Every stage reports through `Diagnostic`;
//! this module renders them for people (ariadne: `FILE:LINE:COL`, the line, a caret, a help
//! line) and for tools (JSON, one object per diagnostic).

use super::ast::Span;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One source file as loaded. Diagnostics name files by their index in a `Sources`.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

impl SourceFile {
    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(&self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Every file of one run, so a diagnostic can name any of them.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub files: Vec<SourceFile>,
}

impl Sources {
    pub fn add(&mut self, path: impl Into<PathBuf>, text: String) -> usize {
        self.files.push(SourceFile {
            path: path.into(),
            text,
        });
        self.files.len() - 1
    }
    pub fn get(&self, id: usize) -> &SourceFile {
        &self.files[id]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Index into `Sources`; None for a problem with no file (an unreadable directory).
    pub file: Option<usize>,
    pub span: Span,
    pub message: String,
    /// What to write under the caret; defaults to the message.
    pub label: Option<String>,
    pub help: Option<String>,
    /// Secondary places (the first definition of a duplicate name…).
    pub related: Vec<(usize, Span, String)>,
}

impl Diagnostic {
    pub fn error(file: usize, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: Some(file),
            span,
            message: message.into(),
            label: None,
            help: None,
            related: Vec::new(),
        }
    }
    pub fn warning(file: usize, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(file, span, message)
        }
    }
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
    pub fn with_related(mut self, file: usize, span: Span, note: impl Into<String>) -> Self {
        self.related.push((file, span, note.into()));
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// `did you mean 'x'?` for the closest of `candidates`, if any is close enough.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(name, c);
        if score > 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| format!("did you mean '{c}'?"))
}

fn display_path(path: &Path) -> String {
    path.display().to_string()
}

/// Renders diagnostics for a terminal: a `FILE:LINE:COL: error: message` line first (so
/// editors and grep can jump to it), then the source line with a caret and the help.
pub fn render_human(sources: &Sources, diagnostics: &[Diagnostic], color: bool) -> String {
    use ariadne::{CharSet, Config, Label, Report, ReportKind};
    let mut out = Vec::new();
    for d in diagnostics {
        let kind = match d.severity {
            Severity::Error => ReportKind::Error,
            Severity::Warning => ReportKind::Warning,
        };
        let Some(file_id) = d.file else {
            out.extend_from_slice(
                format!("{}: {}\n", severity_word(d.severity), d.message).as_bytes(),
            );
            continue;
        };
        let file = sources.get(file_id);
        let (line, col) = file.line_col(d.span.start);
        let name = display_path(&file.path);
        out.extend_from_slice(
            format!(
                "{name}:{line}:{col}: {}: {}\n",
                severity_word(d.severity),
                d.message
            )
            .as_bytes(),
        );
        // An empty file has no line to show; a very long line (generated or binary-ish
        // text) would be printed whole by ariadne: show a window of it instead.
        if file.text.is_empty() || long_line(file, d.span.start) {
            out.extend_from_slice(render_window(file, d, line, col).as_bytes());
            continue;
        }
        // ariadne counts characters, our spans are bytes.
        let to_chars = |f: &SourceFile, s: Span| {
            let a = f.text[..floor_char_boundary(&f.text, s.start.min(f.text.len()))]
                .chars()
                .count();
            let b = f.text[..floor_char_boundary(&f.text, s.end.min(f.text.len()))]
                .chars()
                .count();
            (name_of(f), a..b.max(a + 1))
        };
        let primary = to_chars(file, d.span);
        let primary_chars = primary.1.clone();
        let mut report = Report::build(kind, primary.clone())
            .with_config(
                Config::default()
                    .with_color(color)
                    .with_char_set(CharSet::Ascii)
                    .with_compact(false),
            )
            .with_message(&d.message)
            .with_label(
                Label::new(primary)
                    .with_message(d.label.clone().unwrap_or_else(|| d.message.clone())),
            );
        for (rf, rspan, note) in &d.related {
            report = report
                .with_label(Label::new(to_chars(sources.get(*rf), *rspan)).with_message(note));
        }
        if let Some(help) = &d.help {
            report = report.with_help(help);
        }
        // Only the files this diagnostic shows: copying every source for every diagnostic
        // would make a run with many errors over many files quadratic.
        let mut shown = vec![file_id];
        for (rf, _, _) in &d.related {
            if !shown.contains(rf) {
                shown.push(*rf);
            }
        }
        let cache = ariadne::sources(shown.iter().map(|id| {
            let f = sources.get(*id);
            (name_of(f), f.text.clone())
        }));
        let mut buf = Vec::new();
        let _ = report.finish().write(cache, &mut buf);
        let mut text = String::from_utf8_lossy(&buf).into_owned();
        if !color && primary_chars.len() == 1 {
            text = caret_for_one_char(&text, file, d.span.start, line);
        }
        out.extend_from_slice(text.as_bytes());
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Lines longer than this are shown as a window around the caret.
const MAX_SHOWN_LINE: usize = 240;

fn long_line(file: &SourceFile, offset: usize) -> bool {
    let offset = floor_char_boundary(&file.text, offset.min(file.text.len()));
    let start = file.text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = file.text[offset..]
        .find('\n')
        .map_or(file.text.len(), |i| offset + i);
    end - start > MAX_SHOWN_LINE
}

/// The plain rendering for empty files and very long lines: at most `MAX_SHOWN_LINE / 3`
/// characters each side of the caret, with `…` where the line is cut.
fn render_window(file: &SourceFile, d: &Diagnostic, line: usize, col: usize) -> String {
    let label = d.label.as_deref().unwrap_or(&d.message);
    let mut out = format!("{}: {}\n", kind_word(d.severity), d.message);
    let name = display_path(&file.path);
    let num = line.to_string();
    let pad = " ".repeat(num.len() + 2);
    out.push_str(&format!("{pad},-[ {name}:{line}:{col} ]\n{pad}|\n"));
    if !file.text.is_empty() {
        let offset = floor_char_boundary(&file.text, d.span.start.min(file.text.len()));
        let start = file.text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let end = file.text[offset..]
            .find('\n')
            .map_or(file.text.len(), |i| offset + i);
        let before: Vec<char> = file.text[start..offset].chars().collect();
        let keep = MAX_SHOWN_LINE / 3;
        let cut_before = before.len() > keep;
        let shown_before: String = before[before.len().saturating_sub(keep)..]
            .iter()
            .map(|c| if *c == '\t' { ' ' } else { *c })
            .collect();
        let after: String = file.text[offset..end]
            .chars()
            .take(keep)
            .map(|c| if c == '\t' { ' ' } else { c })
            .collect();
        let cut_after = file.text[offset..end].chars().count() > keep;
        let width = file.text[offset..d.span.end.clamp(offset, end)]
            .chars()
            .count()
            .clamp(1, keep);
        let lead = if cut_before { "…" } else { "" };
        out.push_str(&format!(
            " {num} | {lead}{shown_before}{after}{}\n",
            if cut_after { "…" } else { "" }
        ));
        let indent = shown_before.chars().count() + lead.chars().count();
        out.push_str(&format!(
            "{pad}| {}{} {label}\n",
            " ".repeat(indent),
            "^".repeat(width)
        ));
    } else {
        out.push_str(&format!("{pad}| {label}\n"));
    }
    if let Some(help) = &d.help {
        out.push_str(&format!("{pad}|\n{pad}| Help: {help}\n"));
    }
    out.push_str(&format!("{}'\n", "-".repeat(num.len() + 2)));
    out
}

fn kind_word(s: Severity) -> &'static str {
    match s {
        Severity::Error => "Error",
        Severity::Warning => "Warning",
    }
}

/// ariadne marks a one-character span with the `|` of its label arrow and no `^`. Put a
/// caret there, so every diagnostic points the same way: under the source line `LINE | …`,
/// the label row's `|` at the span's column becomes `^`.
fn caret_for_one_char(report: &str, file: &SourceFile, offset: usize, line: usize) -> String {
    let offset = floor_char_boundary(&file.text, offset.min(file.text.len()));
    let line_start = file.text[..offset].rfind('\n').map_or(0, |i| i + 1);
    // ariadne's column: tabs run to the next multiple of 4.
    let mut col = 0;
    for (i, c) in file.text[line_start..offset].chars().enumerate() {
        col += if c == '\t' { (i / 4 + 1) * 4 - i } else { 1 };
    }
    let mut lines: Vec<String> = report.split('\n').map(str::to_string).collect();
    let source_row = lines.iter().position(|l| {
        l.trim_start()
            .strip_prefix(&line.to_string())
            .is_some_and(|r| r.starts_with(" | ") || r == " |")
    });
    if let Some(row) = source_row {
        let bar = lines[row].find(" | ").map(|i| i + 3);
        if let (Some(bar), Some(under)) = (bar, lines.get_mut(row + 1)) {
            let at = bar + col;
            let mut chars: Vec<char> = under.chars().collect();
            if chars.get(at) == Some(&'|') && chars.get(bar - 2) == Some(&'|') {
                chars[at] = '^';
                *under = chars.into_iter().collect();
            }
        }
    }
    lines.join("\n")
}

fn name_of(f: &SourceFile) -> String {
    display_path(&f.path)
}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    severity: Severity,
    file: Option<String>,
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
    message: &'a str,
    help: Option<&'a str>,
}

/// One JSON object per line, for editors and tools (`--format json`).
pub fn render_json(sources: &Sources, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        let (file, (line, column), (end_line, end_column)) = match d.file {
            Some(id) => {
                let f = sources.get(id);
                (
                    Some(display_path(&f.path)),
                    f.line_col(d.span.start),
                    f.line_col(d.span.end),
                )
            }
            None => (None, (0, 0), (0, 0)),
        };
        let j = JsonDiagnostic {
            severity: d.severity,
            file,
            line,
            column,
            end_line,
            end_column,
            message: &d.message,
            help: d.help.as_deref(),
        };
        out.push_str(&serde_json::to_string(&j).expect("diagnostic serializes"));
        out.push('\n');
    }
    out
}
