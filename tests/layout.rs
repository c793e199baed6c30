//! The layout's rules, checked: imports point one way, down the data flow, and each outside
//! crate is named by the one stage that owns it (ARCHITECTURE.md). A new import that runs
//! against the flow fails here, with the file and line, before it spreads.

use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every Rust file of a stage (`lang` is `src/lang/` and `src/lang.rs`, whichever exists).
fn files_of(stage: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let file = src().join(format!("{stage}.rs"));
    if file.is_file() {
        out.push(file);
    }
    let dir = src().join(stage);
    if dir.is_dir() {
        for e in walkdir::WalkDir::new(&dir) {
            let e = e.unwrap();
            if e.path().extension().is_some_and(|x| x == "rs") {
                out.push(e.into_path());
            }
        }
    }
    assert!(!out.is_empty(), "no stage {stage}");
    out
}

/// The file's lines outside its test module (tests may reach across stages to set things
/// up), numbered from 1.
fn product_lines(path: &Path) -> Vec<(usize, String)> {
    // A test module in a file of its own (`#[cfg(test)] mod tests;` in its folder's mod.rs)
    // is a test module too.
    let declared_as_tests = || {
        std::fs::read_to_string(path.with_file_name("mod.rs"))
            .is_ok_and(|m| m.contains("#[cfg(test)]\nmod tests;"))
    };
    if path.file_name().is_some_and(|n| n == "tests.rs") && declared_as_tests() {
        return Vec::new();
    }
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    let mut prev = "";
    for (i, line) in text.lines().enumerate() {
        if prev.trim() == "#[cfg(test)]" && line.trim_start().starts_with("mod tests") {
            break;
        }
        out.push((i + 1, line.to_string()));
        prev = line;
    }
    out
}

/// The places in `stage` that name any of `forbidden` (as `crate::x` paths or `x::` for
/// outside crates).
fn violations(stage: &str, forbidden: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for path in files_of(stage) {
        for (n, line) in product_lines(&path) {
            let code = line.split("//").next().unwrap_or("");
            for f in forbidden {
                let hit = if let Some(m) = f.strip_prefix("crate::") {
                    code.contains(&format!("crate::{m}::"))
                        || code.contains(&format!("crate::{m};"))
                        || code.contains(&format!("crate::{m}::{{"))
                } else {
                    code.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                        .any(|w| w.starts_with(&format!("{f}::")))
                };
                if hit {
                    out.push(format!(
                        "{}:{n}: {stage} names {f}: {}",
                        path.strip_prefix(src()).unwrap().display(),
                        line.trim()
                    ));
                }
            }
        }
    }
    out
}

const ABOVE_ALL: [&str; 5] = [
    "crate::server",
    "crate::cli",
    "crate::bench",
    "crate::scenario",
    "crate::lsp",
];

#[test]
fn imports_point_down_the_data_flow() {
    let rules: Vec<(&str, Vec<&str>)> = vec![
        // The shared words import nothing of the crate.
        (
            "domain",
            vec![
                "crate::lang",
                "crate::compile",
                "crate::engine",
                "crate::store",
                "crate::runtime",
                "crate::channels",
                "crate::report",
            ],
        ),
        (
            "lang",
            vec![
                "crate::compile",
                "crate::engine",
                "crate::store",
                "crate::runtime",
                "crate::channels",
                "crate::report",
            ],
        ),
        (
            "compile",
            vec![
                "crate::engine",
                "crate::store",
                "crate::runtime",
                "crate::channels",
                "crate::report",
            ],
        ),
        (
            "engine",
            vec![
                "crate::lang",
                "crate::store",
                "crate::runtime",
                "crate::channels",
                "crate::report",
            ],
        ),
        (
            "store",
            vec![
                "crate::lang",
                "crate::runtime",
                "crate::channels",
                "crate::report",
            ],
        ),
        // The channels reach the runtime only through its traits (`Sink`, `SendContext`,
        // `Clock`): not its live loop's inputs, and never the store.
        (
            "channels",
            vec!["crate::store", "crate::runtime::live", "crate::report"],
        ),
        ("runtime", vec!["crate::report"]),
        ("report", vec!["crate::channels"]),
    ];
    let mut found = Vec::new();
    for (stage, forbidden) in rules {
        let mut all = forbidden;
        all.extend(ABOVE_ALL);
        found.extend(violations(stage, &all));
    }
    assert!(
        found.is_empty(),
        "imports against the flow:\n{}",
        found.join("\n")
    );
}

#[test]
fn each_outside_crate_is_named_by_its_stage() {
    // (crate, the stages that may name it)
    let owners: [(&str, &[&str]); 12] = [
        ("sled", &["store"]),
        ("tokio_postgres", &["store"]),
        ("deadpool_postgres", &["store"]),
        ("tokio_postgres_rustls", &["store"]),
        ("lettre", &["channels"]),
        ("reqwest", &["channels"]),
        ("axum", &["server"]),
        ("pest", &["lang"]),
        ("lsp_server", &["lsp"]),
        ("lsp_types", &["lsp"]),
        // Rendering is the channels'; `compile` parses templates for its checks; the
        // daemon's console (`server::console`) draws its pages with templates and lays its
        // graphs out.
        ("minijinja", &["channels", "compile", "server"]),
        ("layout", &["server"]),
    ];
    let stages = [
        "domain", "lang", "compile", "engine", "store", "runtime", "channels", "report", "server",
        "cli", "bench", "scenario", "config", "lsp",
    ];
    let mut found = Vec::new();
    for (krate, allowed) in owners {
        for stage in stages.iter().filter(|s| !allowed.contains(s)) {
            found.extend(violations(stage, &[krate]));
        }
    }
    assert!(
        found.is_empty(),
        "outside crates named outside their stage:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_rules_see_a_violation() {
    // The scanner itself: a stage that does name something is reported, at its line.
    let hits = violations("channels", &["crate::runtime"]);
    assert!(
        hits.iter().any(|h| h.starts_with("channels/dispatch.rs:")),
        "{hits:?}"
    );
}

/// The project's own docs: every relative link resolves inside the repository, and none
/// names the design notes the project was built from (a clone does not have them).
#[test]
fn docs_links_resolve_inside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs = vec![
        root.join("README.md"),
        root.join("ARCHITECTURE.md"),
        root.join("CHANGELOG.md"),
    ];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            docs.push(p);
        }
    }
    let mut broken = Vec::new();
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        for (n, line) in text.lines().enumerate() {
            for target in markdown_links(line) {
                if target.starts_with("http://")
                    || target.starts_with("https://")
                    || target.starts_with("mailto:")
                    || target.starts_with('#')
                {
                    continue;
                }
                let path = target.split('#').next().unwrap();
                let resolved = doc.parent().unwrap().join(path);
                let inside = resolved
                    .canonicalize()
                    .is_ok_and(|p| p.starts_with(root.canonicalize().unwrap()));
                if !inside {
                    broken.push(format!("{}:{}: {target}", doc.display(), n + 1));
                }
            }
            for outside in ["../shared", "LANGUAGE.md", "BENCHMARKS.md", "DESIGN.md"] {
                if line.contains(outside) {
                    broken.push(format!("{}:{}: names {outside}", doc.display(), n + 1));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "links that do not resolve in the repository:\n{}",
        broken.join("\n")
    );
}

/// The targets of the inline links `[text](target)` in a line of Markdown.
fn markdown_links(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let Some(end) = after.find(')') else { break };
        let target = &after[..end];
        if !target.is_empty() && !target.contains(char::is_whitespace) {
            out.push(target);
        }
        rest = &after[end..];
    }
    out
}
