//! `journey check --format github|sarif`: diagnostics for a team's repository. `github`
//! prints GitHub Actions workflow commands (`::error file=…,line=…,col=…::message`), which
//! put each error on its line of the pull request; `sarif` prints one SARIF 2.1.0 log, for
//! code scanning and the other tools that read it. Paths are written relative to the current
//! directory (the repository's root in CI), as both expect.

use crate::lang::diagnostic::{Diagnostic, Severity, SourceFile, Sources};
use serde_json::{json, Value};
use std::path::Path;

/// A file's path as the repository names it: relative to the current directory when inside
/// it, with `/` separators.
fn repo_path(path: &Path) -> String {
    let rel = std::env::current_dir()
        .ok()
        .and_then(|cwd| {
            let abs = std::fs::canonicalize(path).ok()?;
            let cwd = std::fs::canonicalize(cwd).ok()?;
            abs.strip_prefix(cwd).ok().map(Path::to_path_buf)
        })
        .unwrap_or_else(|| path.to_path_buf());
    let text = rel.display().to_string().replace('\\', "/");
    text.strip_prefix("./").map_or(text.clone(), str::to_string)
}

/// 1-based line and column in UTF-16 code units (what GitHub and SARIF count).
fn line_col16(f: &SourceFile, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(f.text.len());
    while offset > 0 && !f.text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &f.text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map_or(0, |l| l.encode_utf16().count())
        + 1;
    (line, col)
}

/// The message with its hint, as `journey check` prints them.
fn full_message(d: &Diagnostic) -> String {
    match &d.help {
        Some(h) => format!("{}\nhelp: {h}", d.message),
        None => d.message.clone(),
    }
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// One workflow command per diagnostic.
pub fn render_github(sources: &Sources, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        let kind = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let props = match d.file {
            Some(id) => {
                let f = sources.get(id);
                let (line, col) = line_col16(f, d.span.start);
                let (end_line, end_col) = line_col16(f, d.span.end);
                format!(
                    " file={},line={line},endLine={end_line},col={col},endColumn={end_col},title={}",
                    escape_property(&repo_path(&f.path)),
                    escape_property(&format!("journey check: {}", d.message))
                )
            }
            None => String::new(),
        };
        out.push_str(&format!(
            "::{kind}{props}::{}\n",
            escape_data(&full_message(d))
        ));
    }
    out
}

/// One SARIF 2.1.0 log with one run of `journey check`.
pub fn render_sarif(sources: &Sources, diagnostics: &[Diagnostic]) -> String {
    let location = |file: usize, span: crate::lang::ast::Span, note: Option<&str>| -> Value {
        let f = sources.get(file);
        let (start_line, start_col) = line_col16(f, span.start);
        let (end_line, end_col) = line_col16(f, span.end.max(span.start));
        let mut loc = json!({
            "physicalLocation": {
                "artifactLocation": {"uri": repo_path(&f.path)},
                "region": {
                    "startLine": start_line,
                    "startColumn": start_col,
                    "endLine": end_line,
                    "endColumn": end_col.max(if end_line == start_line { start_col + 1 } else { 1 }),
                }
            }
        });
        if let Some(n) = note {
            loc["message"] = json!({"text": n});
        }
        loc
    };
    let results: Vec<Value> = diagnostics
        .iter()
        .map(|d| {
            let mut r = json!({
                "ruleId": match d.severity {
                    Severity::Error => "journey-check/error",
                    Severity::Warning => "journey-check/warning",
                },
                "level": match d.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                },
                "message": {"text": full_message(d)},
            });
            if let Some(id) = d.file {
                r["locations"] = json!([location(id, d.span, None)]);
                let related: Vec<Value> = d
                    .related
                    .iter()
                    .map(|(f, s, n)| location(*f, *s, Some(n)))
                    .collect();
                if !related.is_empty() {
                    r["relatedLocations"] = json!(related);
                }
            }
            r
        })
        .collect();
    let rule = |id: &str, text: &str, level: &str| {
        json!({
            "id": id,
            "shortDescription": {"text": text},
            "defaultConfiguration": {"level": level},
        })
    };
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "journey",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": [
                    rule("journey-check/error", "An error of `journey check`: the journeys cannot be deployed", "error"),
                    rule("journey-check/warning", "A warning of `journey check`", "warning"),
                ],
            }},
            "columnKind": "utf16CodeUnits",
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&log).expect("SARIF serializes") + "\n"
}
