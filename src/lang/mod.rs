//! The journey language: reading files, parsing them into a syntax tree, diagnostics, and
//! the canonical formatter. Knows nothing of the engine.

pub mod ast;
pub mod diagnostic;
pub mod fmt;
pub mod parse;

use diagnostic::{Diagnostic, Sources};
use std::path::{Path, PathBuf};

/// Files bigger than this are refused rather than parsed: no journey is this large, and it
/// keeps a stray data file from costing seconds.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// The parsed files of one run, with the sources their spans point into.
#[derive(Debug, Default)]
pub struct Loaded {
    pub sources: Sources,
    /// (file index in `sources`, its syntax tree) for every file that parsed.
    pub files: Vec<(usize, ast::File)>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.is_error())
    }
}

/// Every `*.journey` file named or found below a named directory, sorted, so runs are stable.
pub fn journey_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = walkdir::WalkDir::new(p)
                .follow_links(true)
                .into_iter()
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_file())
                .map(|e| e.into_path())
                .filter(|p| p.extension().is_some_and(|x| x == "journey"))
                .collect();
            found.sort();
            out.extend(found);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(format!("{}: no such file or directory", p.display()));
        }
    }
    Ok(out)
}

/// Reads and parses files. Unreadable, non-UTF-8 or oversized files become diagnostics.
pub fn load_files(files: &[PathBuf]) -> Loaded {
    let mut loaded = Loaded::default();
    for path in files {
        add_file(&mut loaded, path);
    }
    loaded
}

pub fn add_file(loaded: &mut Loaded, path: &Path) {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > MAX_FILE_BYTES {
        let id = loaded.sources.add(path, String::new());
        loaded.diagnostics.push(
            Diagnostic::error(
                id,
                ast::Span::default(),
                format!(
                    "this file is {:.1} MB, more than the {} MB a journey file may have",
                    size as f64 / 1024.0 / 1024.0,
                    MAX_FILE_BYTES / 1024 / 1024
                ),
            )
            .with_label("not read")
            .with_help("journey files are small text files; is this the right file?"),
        );
        return;
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            loaded.diagnostics.push(Diagnostic {
                file: None,
                ..Diagnostic::error(0, ast::Span::default(), format!("{}: {e}", path.display()))
            });
            return;
        }
    };
    match String::from_utf8(bytes) {
        Ok(text) => {
            let id = loaded.sources.add(path, text);
            add_parsed(loaded, id);
        }
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let valid = String::from_utf8_lossy(&e.as_bytes()[..at]).into_owned();
            let id = loaded.sources.add(path, valid);
            loaded.diagnostics.push(
                Diagnostic::error(
                    id,
                    ast::Span::new(at, at),
                    "this file is not valid UTF-8 text",
                )
                .with_label("the first invalid byte is here")
                .with_help("save the file as UTF-8"),
            );
        }
    }
}

/// Adds source text that is not on disk (tests, the API), under a display name.
pub fn add_source(loaded: &mut Loaded, name: impl Into<PathBuf>, text: String) {
    let id = loaded.sources.add(name, text);
    add_parsed(loaded, id);
}

fn add_parsed(loaded: &mut Loaded, id: usize) {
    let text = &loaded.sources.get(id).text;
    // Empty, or only blank lines and comments: almost always a file saved before it was
    // written or truncated by accident, and checking it clean would hide that.
    if parse::is_blank(text) {
        loaded.diagnostics.push(
            Diagnostic::error(id, ast::Span::default(), "this file defines nothing")
                .with_label("no journey, segment or policy here")
                .with_help(
                    "a journey file holds `journey`, `segment` and `policy` definitions, such as \
                     `journey welcome { entry event \"signed_up\" … }`; delete the file if it is not needed",
                ),
        );
        return;
    }
    match parse::parse_file(id, text) {
        Ok(f) => loaded.files.push((id, f)),
        Err(d) => loaded.diagnostics.extend(d),
    }
}
