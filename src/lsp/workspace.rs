//! The folder of journeys, loaded together as `journey check` loads it (names are global
//! across files), with the editor's open documents in place of their files on disk. Every
//! change rechecks the whole folder (parsing again only the files whose text changed), and
//! says which files' diagnostics changed.

use super::index::Index;
use super::position::LineIndex;
use crate::compile;
use crate::lang::{self, diagnostic::Diagnostic, Loaded};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One check of the folder: what was loaded, its diagnostics, its names.
pub struct Analysis {
    pub loaded: Loaded,
    pub diagnostics: Vec<Diagnostic>,
    pub index: Index,
    /// The source id of each file, by path.
    pub ids: BTreeMap<PathBuf, usize>,
    lines: Vec<LineIndex>,
}

impl Analysis {
    pub fn id(&self, path: &Path) -> Option<usize> {
        self.ids.get(path).copied()
    }
    pub fn text(&self, id: usize) -> &str {
        &self.loaded.sources.get(id).text
    }
    pub fn path(&self, id: usize) -> &Path {
        &self.loaded.sources.get(id).path
    }
    pub fn lines(&self, id: usize) -> &LineIndex {
        &self.lines[id]
    }
    /// The parsed syntax tree of a file, if it parsed.
    pub fn ast(&self, id: usize) -> Option<&crate::lang::ast::File> {
        self.loaded
            .files
            .iter()
            .find(|(f, _)| *f == id)
            .map(|(_, a)| a)
    }
}

pub struct Workspace {
    /// The folders whose `*.journey` files are checked together.
    pub roots: Vec<PathBuf>,
    /// The open documents' text, by path.
    pub open: BTreeMap<PathBuf, String>,
    /// One check per group of files loaded together: the roots' files first, then, for each
    /// open file outside them, the files of its folder (as `journey check FOLDER` would load
    /// them, so a file elsewhere is not mixed with the roots' names).
    pub units: Vec<Analysis>,
    /// What was last published per file, to send only what changed (and clear what is gone).
    published: BTreeMap<PathBuf, Vec<Diagnostic>>,
}

impl Workspace {
    pub fn new(roots: Vec<PathBuf>) -> Workspace {
        let mut w = Workspace {
            roots,
            open: BTreeMap::new(),
            units: Vec::new(),
            published: BTreeMap::new(),
        };
        w.reload();
        w
    }

    /// The groups of files checked together.
    pub fn groups(&self) -> Vec<Vec<PathBuf>> {
        let first = lang::journey_files(&self.roots).unwrap_or_default();
        let mut seen: BTreeSet<PathBuf> = first.iter().cloned().collect();
        let mut groups = vec![first];
        for p in self.open.keys() {
            if seen.contains(p) || p.extension().is_none_or(|x| x != "journey") {
                continue;
            }
            let dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
            let mut files = lang::journey_files(&[dir]).unwrap_or_default();
            if !files.contains(p) {
                files.push(p.clone());
            }
            seen.extend(files.iter().cloned());
            groups.push(files);
        }
        groups
    }

    /// Checks every group again. Each group's files are parsed only if their text changed
    /// since the last check of that group (its syntax trees are reused); the names are then
    /// checked together, as `journey check` checks them.
    pub fn reload(&mut self) {
        let mut before = std::mem::take(&mut self.units);
        // Of the last checks, only their syntax trees (reused) and names (kept while a file
        // does not parse) are needed: the rest goes before checking, to keep the peak low.
        for b in &mut before {
            b.diagnostics = Vec::new();
            b.lines = Vec::new();
            b.index.occurrences = Vec::new();
            b.index.zones = Vec::new();
        }
        let groups = self.groups();
        let mut units = Vec::with_capacity(groups.len());
        for files in &groups {
            let prev = before
                .iter_mut()
                .find(|b| files.iter().any(|p| b.ids.contains_key(p)))
                .map(|b| std::mem::take(&mut b.loaded));
            units.push(analyse(files, &self.open, prev));
        }
        self.units = units;
        // While a file does not parse (it is being typed), the names it declared when it last
        // did stay known, so completion still offers them.
        for unit in &mut self.units {
            let broken = unit.ids.iter().any(|(p, id)| {
                p.extension().is_some_and(|x| x == "journey") && unit.ast(*id).is_none()
            });
            let prev = before
                .iter()
                .find(|b| b.ids.keys().any(|p| unit.ids.contains_key(p)));
            if let (true, Some(prev)) = (broken, prev) {
                unit.index.keep_names_of(&prev.index);
            }
        }
    }

    /// The check a file belongs to.
    pub fn unit(&self, path: &Path) -> Option<&Analysis> {
        self.units.iter().find(|a| a.ids.contains_key(path))
    }

    /// The files whose diagnostics differ from what was last published (and `also`, changed
    /// or not), with their new diagnostics (empty to clear them), and the check they come
    /// from.
    pub fn changed_diagnostics(
        &mut self,
        also: &BTreeSet<PathBuf>,
    ) -> Vec<(PathBuf, &Analysis, Vec<Diagnostic>)> {
        let mut now: BTreeMap<PathBuf, (usize, Vec<Diagnostic>)> = BTreeMap::new();
        for (u, a) in self.units.iter().enumerate() {
            // Every loaded journey file gets an answer, even an empty one, the first time.
            for p in a.ids.keys() {
                if p.extension().is_some_and(|x| x == "journey") {
                    now.entry(p.clone()).or_insert((u, Vec::new()));
                }
            }
            for d in &a.diagnostics {
                if let Some(id) = d.file {
                    let e = now
                        .entry(a.path(id).to_path_buf())
                        .or_insert((u, Vec::new()));
                    if e.0 == u {
                        e.1.push(d.clone());
                    }
                }
            }
        }
        let mut out = Vec::new();
        for (path, (u, diags)) in &now {
            if self.published.get(path) != Some(diags) || also.contains(path) {
                out.push((path.clone(), &self.units[*u], diags.clone()));
            }
        }
        for path in self.published.keys() {
            if !now.contains_key(path) {
                out.push((path.clone(), &self.units[0], Vec::new()));
            }
        }
        self.published = now.into_iter().map(|(p, (_, d))| (p, d)).collect();
        out
    }
}

/// Loads and checks a group of files; `previous` is the group's last load, whose syntax
/// trees are reused where a file's text is unchanged.
fn analyse(
    files: &[PathBuf],
    open: &BTreeMap<PathBuf, String>,
    previous: Option<Loaded>,
) -> Analysis {
    let loaded = lang::load_files_reusing(files, open, previous);
    let diagnostics = compile::check(&loaded).diagnostics;
    let index = Index::build(&loaded);
    let ids = loaded
        .sources
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.path.clone(), i))
        .collect();
    let lines = loaded
        .sources
        .files
        .iter()
        .map(|f| LineIndex::new(&f.text))
        .collect();
    Analysis {
        loaded,
        diagnostics,
        index,
        ids,
        lines,
    }
}
