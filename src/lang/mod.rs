//! The journey language: reading files, parsing them into a syntax tree, diagnostics, and
//! the canonical formatter. Knows nothing of the engine.

pub mod ast;
pub mod diagnostic;
pub mod fmt;
pub mod parse;

use diagnostic::{Diagnostic, Sources};
use std::collections::BTreeMap;
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
    /// The files of the `templates/` folder beside each loaded journey file, by path, as
    /// source ids: a template's diagnostics (a missing partial) point into them.
    pub templates: BTreeMap<PathBuf, usize>,
    /// The files of those folders that could not be read as templates, with the reason
    /// (too big, not UTF-8, an I/O error): compiling names it if a journey uses one.
    pub unreadable_templates: BTreeMap<PathBuf, String>,
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
///
/// Files are read in order, parsed on up to one thread per core (parsing is most of the time
/// of a check), and added in order, so the result does not depend on the threads.
pub fn load_files(files: &[PathBuf]) -> Loaded {
    load_files_with(files, &BTreeMap::new())
}

/// `load_files`, with the text of some files given rather than read from disk: the
/// language server's open documents, as the editor has them (saved or not).
pub fn load_files_with(files: &[PathBuf], given: &BTreeMap<PathBuf, String>) -> Loaded {
    load_files_reusing(files, given, None)
}

/// `load_files_with`, reusing the syntax trees of `previous` (the last load of the same
/// files, consumed): a file with the same path, the same source id and the same text as
/// then is not parsed again (parsing depends only on the id and the text). The language
/// server reloads its folder on every keystroke this way, parsing only the file typed in.
/// A file that did not parse is parsed again, for its diagnostics.
pub fn load_files_reusing(
    files: &[PathBuf],
    given: &BTreeMap<PathBuf, String>,
    previous: Option<Loaded>,
) -> Loaded {
    let mut loaded = Loaded::default();
    let reads: Vec<Read> = files
        .iter()
        .map(|p| match given.get(p) {
            Some(text) => Read::Text(text.clone()),
            None => read(p),
        })
        .collect();
    // The id each readable file will have in `loaded.sources`.
    let mut next_id = 0;
    let jobs: Vec<(usize, usize, &str)> = reads
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r {
            Read::Io(_) => None,
            other => {
                next_id += 1;
                match other {
                    Read::Text(t) if !parse::is_blank(t) => Some((i, next_id - 1, t.as_str())),
                    _ => None,
                }
            }
        })
        .collect();
    let mut kept: Vec<Option<Parsed>> = (0..reads.len()).map(|_| None).collect();
    let jobs = match previous {
        None => jobs,
        Some(prev) => {
            let mut trees: BTreeMap<usize, ast::File> = prev.files.into_iter().collect();
            jobs.into_iter()
                .filter(|(i, id, text)| {
                    let same = prev
                        .sources
                        .files
                        .get(*id)
                        .is_some_and(|f| f.path == files[*i] && f.text == *text);
                    match trees.remove(id).filter(|_| same) {
                        Some(tree) => {
                            kept[*i] = Some(Ok(tree));
                            false
                        }
                        None => true,
                    }
                })
                .collect()
        }
    };
    let mut parsed = parse_all(&jobs, reads.len());
    for (slot, tree) in parsed.iter_mut().zip(kept) {
        if tree.is_some() {
            *slot = tree;
        }
    }
    for (i, (path, r)) in files.iter().zip(reads).enumerate() {
        add_read(&mut loaded, path, r, parsed[i].take());
    }
    add_templates(&mut loaded, files);
    loaded
}

/// Reads the `templates/` folder beside each of `files` into `loaded.sources` (sorted, once
/// per folder). A file that cannot be read as UTF-8 text within `MAX_FILE_BYTES` is kept
/// aside with the reason: compiling reports it if a journey names it. Compiling reads no
/// files itself; this is where templates come in.
pub fn add_templates(loaded: &mut Loaded, files: &[PathBuf]) {
    let dirs: std::collections::BTreeSet<PathBuf> = files
        .iter()
        .filter_map(|f| f.parent())
        .map(|d| d.join("templates"))
        .filter(|d| d.is_dir())
        .collect();
    for dir in dirs {
        let mut found: Vec<PathBuf> = walkdir::WalkDir::new(&dir)
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
            .map(|e| e.into_path())
            .collect();
        found.sort();
        for path in found {
            let why = match read(&path) {
                Read::Text(text) => {
                    let id = loaded.sources.add(&path, text);
                    loaded.templates.insert(path, id);
                    continue;
                }
                Read::TooBig(size) => format!(
                    "it is {:.1} MB, more than the {} MB a template may have",
                    size as f64 / 1024.0 / 1024.0,
                    MAX_FILE_BYTES / 1024 / 1024
                ),
                Read::NotUtf8(_) => "it is not valid UTF-8 text".to_string(),
                Read::Io(e) => e.to_string(),
            };
            loaded.unreadable_templates.insert(path, why);
        }
    }
}

type Parsed = Result<ast::File, Vec<Diagnostic>>;

/// Parses `(index, file id, text)` jobs, in parallel when there is enough to share.
fn parse_all(jobs: &[(usize, usize, &str)], n: usize) -> Vec<Option<Parsed>> {
    let mut out: Vec<Option<Parsed>> = (0..n).map(|_| None).collect();
    let bytes: usize = jobs.iter().map(|(_, _, t)| t.len()).sum();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4)
        .min(jobs.len());
    if threads < 2 || bytes < 256 * 1024 {
        for (i, id, text) in jobs {
            out[*i] = Some(parse::parse_file(*id, text));
        }
        return out;
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Vec<(usize, Parsed)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                std::thread::Builder::new()
                    // Parsing recurses once per nesting level (bounded by MAX_NESTING): give
                    // workers the main thread's room, even in debug builds.
                    .stack_size(16 * 1024 * 1024)
                    .spawn_scoped(scope, || {
                        let mut mine = Vec::new();
                        loop {
                            let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some((i, id, text)) = jobs.get(k) else {
                                break;
                            };
                            mine.push((*i, parse::parse_file(*id, text)));
                        }
                        mine
                    })
                    .expect("spawn a parser thread")
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    for (i, p) in results.into_iter().flatten() {
        out[i] = Some(p);
    }
    out
}

/// A file as read from disk, before parsing.
enum Read {
    Text(String),
    TooBig(u64),
    /// The valid UTF-8 text before the first invalid byte.
    NotUtf8(String),
    Io(std::io::Error),
}

fn read(path: &Path) -> Read {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > MAX_FILE_BYTES {
        return Read::TooBig(size);
    }
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Read::Text(text),
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                Read::NotUtf8(String::from_utf8_lossy(&e.as_bytes()[..at]).into_owned())
            }
        },
        Err(e) => Read::Io(e),
    }
}

pub fn add_file(loaded: &mut Loaded, path: &Path) {
    add_read(loaded, path, read(path), None);
}

/// Adds a read file; `parsed` is its parse if done already (else it is parsed here).
fn add_read(loaded: &mut Loaded, path: &Path, r: Read, parsed: Option<Parsed>) {
    match r {
        Read::Text(text) => {
            let id = loaded.sources.add(path, text);
            add_parsed_with(loaded, id, parsed);
        }
        Read::TooBig(size) => too_big(loaded, path, size),
        Read::NotUtf8(valid) => {
            let at = valid.len();
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
        Read::Io(e) => {
            loaded.diagnostics.push(Diagnostic {
                file: None,
                ..Diagnostic::error(0, ast::Span::default(), format!("{}: {e}", path.display()))
            });
        }
    }
}

fn too_big(loaded: &mut Loaded, path: &Path, size: u64) {
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
}

/// Adds source text that is not on disk (tests, the API), under a display name.
pub fn add_source(loaded: &mut Loaded, name: impl Into<PathBuf>, text: String) {
    let id = loaded.sources.add(name, text);
    add_parsed(loaded, id);
}

fn add_parsed(loaded: &mut Loaded, id: usize) {
    add_parsed_with(loaded, id, None);
}

/// Records the parse of source `id`: `parsed` if it was parsed already, else parses it now.
fn add_parsed_with(loaded: &mut Loaded, id: usize, parsed: Option<Parsed>) {
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
    match parsed.unwrap_or_else(|| parse::parse_file(id, text)) {
        Ok(f) => loaded.files.push((id, f)),
        Err(d) => loaded.diagnostics.extend(d),
    }
}
