//! What `editors/` and the repository files for teams ship, checked against the language:
//! every keyword of `grammar/journey.pest` is known to the TextMate grammar, the tree-sitter
//! grammar and its highlights, and the language server's lexer; the TextMate grammar is run
//! on every example by VS Code's own engine (node) and compared with its
//! `vscode-tmgrammar-test` snapshots, and the tree-sitter grammar parses every
//! example and documentation block (its CLI). A tool that is missing skips its test with a
//! message here, and fails it in CI (`CI=true`), where `.ci/run` installs it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The keywords of the pest grammar: every quoted word of its rules, but the lexical rules
/// (the units of a duration, the characters of a name).
fn pest_keywords() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in read("grammar/journey.pest").lines() {
        let code = line.split("//").next().unwrap();
        let rule = code.split('=').next().unwrap_or("").trim();
        if ["duration", "ident", "ident_char", "prop_name", "tz_char"].contains(&rule) {
            continue;
        }
        out.extend(quoted_words(code));
    }
    assert!(out.len() > 100, "{out:?}");
    out
}

/// The words written `"word"` in a text (a pest rule, a query, a JS grammar).
fn quoted_words(text: &str) -> BTreeSet<String> {
    let b = text.as_bytes();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'"' {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && (b[j].is_ascii_alphabetic() || b[j] == b'_') {
                j += 1;
            }
            if j > start && j < b.len() && b[j] == b'"' {
                out.insert(text[start..j].to_string());
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// Skips (returns false) with a message when a tool is missing, or fails in CI.
fn have(tool: &str, why: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{tool} is missing in CI ({why}): .ci/run installs it");
        }
        eprintln!("skipped: {tool} is not installed ({why}); .ci/run installs it");
    }
    found
}

#[test]
fn every_pest_keyword_is_in_the_textmate_grammar() {
    let tm: serde_json::Value =
        serde_json::from_str(&read("editors/vscode/syntaxes/journey.tmLanguage.json")).unwrap();
    let mut words = BTreeSet::new();
    for p in tm["repository"]["keywords"]["patterns"].as_array().unwrap() {
        let m = p["match"].as_str().unwrap();
        let inner = m
            .strip_prefix("\\b(")
            .and_then(|r| r.strip_suffix(")\\b"))
            .unwrap_or_else(|| panic!("a keyword pattern is \\b(a|b)\\b: {m}"));
        words.extend(inner.split('|').map(str::to_string));
    }
    let missing: Vec<_> = pest_keywords()
        .into_iter()
        .filter(|k| !words.contains(k))
        .collect();
    assert!(
        missing.is_empty(),
        "keywords of the pest grammar missing from the TextMate grammar: {missing:?}"
    );
}

#[test]
fn every_pest_keyword_is_known_to_the_language_server_and_tree_sitter() {
    let lsp: BTreeSet<&str> = journey::lsp::KEYWORDS.iter().copied().collect();
    let grammar = quoted_words(&read("editors/tree-sitter-journey/grammar.js"));
    let highlights = read("editors/tree-sitter-journey/queries/highlights.scm");
    let quoted = quoted_words(&highlights);
    // Words the highlights capture through their node rather than one by one.
    let by_node: BTreeSet<&str> = [
        "received",
        "opened",
        "clicked",
        "bounced",
        "except",
        "true",
        "false",
        "end",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "now",
        "winner",
    ]
    .into();
    for node in [
        "(verb)",
        "(boolean)",
        "(end)",
        "(weekday)",
        "(combinator)",
        "(now)",
        "(winner)",
    ] {
        assert!(highlights.contains(node), "{node} not highlighted");
    }
    let mut missing = Vec::new();
    for k in pest_keywords() {
        if !lsp.contains(k.as_str()) {
            missing.push(format!("{k}: not in lsp::KEYWORDS"));
        }
        if !grammar.contains(&k) {
            missing.push(format!("{k}: not in tree-sitter-journey/grammar.js"));
        }
        if !quoted.contains(&k) && !by_node.contains(k.as_str()) {
            missing.push(format!("{k}: not in queries/highlights.scm"));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn helix_queries_are_the_tree_sitter_ones_with_helix_names() {
    let ts = read("editors/tree-sitter-journey/queries/highlights.scm");
    let hx = read("editors/helix/queries/journey/highlights.scm");
    let mapped: String = ts
        .lines()
        .map(|l| {
            l.replace("@number", "@constant.numeric")
                .replace("@boolean", "@constant.builtin.boolean")
                .replace("@property", "@variable.other.member")
                .replace("@variable.member", "@variable.other.member")
                + "\n"
        })
        .collect();
    let body: String = hx.lines().skip(2).map(|l| format!("{l}\n")).collect();
    assert_eq!(
        body, mapped,
        "regenerate editors/helix/queries/journey/highlights.scm"
    );
    // Neovim's queries are the tree-sitter ones themselves.
    for q in ["highlights.scm", "folds.scm"] {
        assert_eq!(
            read(&format!("editors/nvim/queries/journey/{q}")),
            read(&format!("editors/tree-sitter-journey/queries/{q}"))
        );
    }
}

#[test]
fn pre_commit_hooks_and_the_ci_example_run_real_commands() {
    let hooks: serde_json::Value = serde_norway::from_str(&read(".pre-commit-hooks.yaml")).unwrap();
    let hooks = hooks.as_array().unwrap();
    let ids: Vec<&str> = hooks.iter().map(|h| h["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["journey-fmt", "journey-check"]);
    for h in hooks {
        let entry = h["entry"].as_str().unwrap();
        let mut words = entry.split_whitespace();
        assert_eq!(words.next(), Some("journey"));
        let sub = words.next().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_journey"))
            .args([sub, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "journey {sub} --help");
    }
    // The hooks run on the example journeys as pre-commit would run them.
    let examples = root().join("journeys");
    let out = Command::new(env!("CARGO_BIN_EXE_journey"))
        .args(["check"])
        .arg(&examples)
        .output()
        .unwrap();
    assert!(out.status.success());

    let ci: serde_json::Value = serde_norway::from_str(&read("docs/ci-example.yml")).unwrap();
    let runs: Vec<String> = ci["jobs"]["journeys"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str().map(str::to_string))
        .collect();
    let all = runs.join("\n");
    for cmd in [
        "journey check --format github",
        "journey fmt --check",
        "journey test",
        "journey plan",
    ] {
        assert!(all.contains(cmd), "the CI example does not run {cmd}");
    }
}

/// The texts the grammars are tested on, as the node tests list them.
fn doc_blocks() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut block: Option<(usize, String, String)> = None;
    for (n, line) in read("docs/language.md").lines().enumerate() {
        match (&mut block, line.strip_prefix("```")) {
            (None, Some(lang)) => block = Some((n + 2, lang.trim().to_string(), String::new())),
            (Some(_), Some(_)) => {
                let (start, lang, text) = block.take().unwrap();
                if lang.is_empty() || lang == "journey" {
                    out.push((format!("docs/language.md:{start}"), text));
                }
            }
            (Some((_, _, text)), None) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

fn examples() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(root().join("journeys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "journey"))
        .map(|p| {
            let name = format!("journeys/{}", p.file_name().unwrap().to_string_lossy());
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_textmate_grammar_highlights_every_example_in_vs_codes_engine() {
    let dir = root().join("editors/vscode");
    if !have("node", "runs vscode-textmate") {
        return;
    }
    if !dir.join("node_modules/vscode-textmate").is_dir() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("editors/vscode/node_modules is missing in CI: .ci/run runs npm ci there");
        }
        eprintln!("skipped: run `npm ci` in editors/vscode for vscode-textmate");
        return;
    }
    let out = Command::new("node")
        .args(["--test", "test/"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("# pass 2"), "{text}");
}

/// `vscode-tmgrammar-test`'s snapshots: `editors/vscode/test/snap/` holds a copy of every
/// example with the scopes the TextMate grammar gives each of its tokens (`NAME.journey.snap`,
/// written by `npm run snap:update --prefix editors/vscode`). A change of the grammar that
/// changes any token's scopes fails here until the snapshots are rewritten and reviewed.
#[test]
fn the_textmate_grammar_gives_every_example_its_snapshot_scopes() {
    let dir = root().join("editors/vscode");
    let snap = dir.join("test/snap");
    // The copies are the examples, every one of them, each with its snapshot.
    let mut copies: Vec<String> = std::fs::read_dir(&snap)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".journey"))
        .collect();
    copies.sort();
    let names: Vec<String> = examples()
        .iter()
        .map(|(name, _)| name.trim_start_matches("journeys/").to_string())
        .collect();
    assert_eq!(
        copies, names,
        "editors/vscode/test/snap/ has not every example of journeys/: run `npm run snap:update --prefix editors/vscode`"
    );
    for (name, text) in examples() {
        let file = name.trim_start_matches("journeys/");
        assert_eq!(
            std::fs::read_to_string(snap.join(file)).unwrap(),
            text,
            "editors/vscode/test/snap/{file} is not {name}: run `npm run snap:update --prefix editors/vscode` and review the snapshots"
        );
        assert!(
            snap.join(format!("{file}.snap")).is_file(),
            "no snapshot of {file}"
        );
    }
    if !have("node", "runs vscode-tmgrammar-test") {
        return;
    }
    if !dir.join("node_modules/vscode-tmgrammar-test").is_dir() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("editors/vscode/node_modules is missing in CI: .ci/run runs npm ci there");
        }
        eprintln!("skipped: run `npm ci` in editors/vscode for vscode-tmgrammar-test");
        return;
    }
    let out = Command::new("node")
        .args([
            "node_modules/vscode-tmgrammar-test/dist/snapshot.js",
            "test/snap/*.journey",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the TextMate grammar's scopes differ from the snapshots (if intended, run `npm run snap:update --prefix editors/vscode` and review the diff):\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text.matches("run successfully").count(),
        names.len(),
        "{text}"
    );
}

/// The tree-sitter CLI: on the PATH, or where `cargo install` puts it.
fn tree_sitter() -> Option<PathBuf> {
    let candidates = [
        PathBuf::from("tree-sitter"),
        std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
            .unwrap_or_default()
            .join("bin/tree-sitter"),
    ];
    candidates.into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// A documentation block the tree-sitter grammar must read: definitions, headers or steps
/// in full (not the ones with `…` for what is left out, nor shell sessions).
fn whole(text: &str) -> bool {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or("");
    let word = first.split([' ', ':']).next().unwrap_or("");
    let starts = [
        "journey", "segment", "policy", "topic", "send", "wait", "check", "if", "split", "set",
        "goto", "end", "entry", "title", "label", "reentry", "goal", "exit", "quiet",
    ];
    !text.contains('…')
        && (starts.contains(&word)
            || first
                .split_whitespace()
                .next()
                .is_some_and(|w| w.ends_with(':')))
}

#[test]
fn the_tree_sitter_grammar_parses_every_example() {
    let Some(cli) = tree_sitter() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("the tree-sitter CLI is missing in CI: .ci/run installs it (cargo install tree-sitter-cli)");
        }
        eprintln!("skipped: the tree-sitter CLI is not installed (cargo install tree-sitter-cli)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src = root().join("editors/tree-sitter-journey");
    for f in ["grammar.js", "package.json", "tree-sitter.json"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    std::fs::create_dir(dir.path().join("queries")).unwrap();
    for q in ["highlights.scm", "folds.scm"] {
        std::fs::copy(
            src.join("queries").join(q),
            dir.path().join("queries").join(q),
        )
        .unwrap();
    }
    let run = |args: &[&str]| {
        let out = Command::new(&cli)
            .args(args)
            .current_dir(dir.path())
            .env("TREE_SITTER_DIR", dir.path().join(".config"))
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, out) = run(&["generate"]);
    assert!(ok, "tree-sitter generate: {out}");
    // The committed grammar.json is what grammar.js generates.
    let generated = std::fs::read_to_string(dir.path().join("src/grammar.json")).unwrap();
    let committed = std::fs::read_to_string(src.join("src/grammar.json")).unwrap();
    let as_json = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap();
    assert_eq!(
        as_json(&generated),
        as_json(&committed),
        "run `tree-sitter generate` in editors/tree-sitter-journey and commit src/"
    );

    let mut inputs = examples();
    inputs.extend(doc_blocks().into_iter().filter(|(_, t)| whole(t)));
    assert!(inputs.len() >= 20, "{}", inputs.len());
    let files = dir.path().join("inputs");
    std::fs::create_dir(&files).unwrap();
    let mut failed = Vec::new();
    for (i, (name, text)) in inputs.iter().enumerate() {
        let path = files.join(format!("{i}.journey"));
        std::fs::write(&path, text).unwrap();
        let p = path.to_string_lossy().into_owned();
        let (_, tree) = run(&["parse", &p]);
        if tree.contains("ERROR") || tree.contains("MISSING") || !tree.contains("(source_file") {
            failed.push(format!("{name}:\n{tree}"));
        }
        // The queries are valid for the grammar and match in every input.
        let (ok, out) = run(&["query", "queries/highlights.scm", &p]);
        assert!(
            ok && out.contains("capture:"),
            "highlights.scm on {name}: {out}"
        );
        let (ok, out) = run(&["query", "queries/folds.scm", &p]);
        assert!(ok, "folds.scm on {name}: {out}");
    }
    assert!(
        failed.is_empty(),
        "tree-sitter cannot read:\n{}",
        failed.join("\n")
    );
}

#[test]
fn neovim_starts_the_server_and_shows_its_diagnostic() {
    if !have("nvim", "the Neovim test") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("welcome.journey");
    let text = read("journeys/welcome.journey")
        .replace(
            "check clicked welcome.profile",
            "check clicked welcom.profile",
        )
        .replace("policy maison_daily", "policy none")
        .replace("topic newsletter", "transactional");
    std::fs::write(&file, &text).unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    for t in ["welcome.html", "promo.html"] {
        std::fs::copy(
            root().join("journeys/templates").join(t),
            dir.path().join("templates").join(t),
        )
        .unwrap();
    }
    let out_file = dir.path().join("seen.txt");
    let script = root().join("editors/nvim/test/diagnostic.lua");
    let out = Command::new("nvim")
        .args(["--headless", "-u", "NONE", "-i", "NONE", "--cmd"])
        .arg(format!(
            "set rtp+={}",
            root().join("editors/nvim").display()
        ))
        .arg("-c")
        .arg(format!("luafile {}", script.display()))
        .env("JOURNEY_BIN", env!("CARGO_BIN_EXE_journey"))
        .env("JOURNEY_FILE", &file)
        .env("JOURNEY_OUT", &out_file)
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let seen = std::fs::read_to_string(&out_file).unwrap_or_else(|e| {
        panic!(
            "nvim wrote nothing ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines[0], "filetype=journey", "{seen}");
    assert_eq!(lines[1], "clients=1", "{seen}");
    let line = text
        .lines()
        .position(|l| l.contains("welcom.profile"))
        .unwrap()
        + 1;
    let col = text.lines().nth(line - 1).unwrap().find("welcom.").unwrap() + 1;
    assert_eq!(
        lines[2..],
        [
            format!("{line}:{col}:1:unknown message 'welcom' | help: did you mean 'welcome'?")
                .as_str()
        ],
        "{seen}"
    );
}

#[test]
fn the_vs_code_extension_packages_as_a_vsix() {
    let dir = root().join("editors/vscode");
    if !have("node", "runs @vscode/vsce") {
        return;
    }
    if !dir.join("node_modules/@vscode/vsce").is_dir() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("editors/vscode/node_modules is missing in CI: .ci/run runs npm ci there");
        }
        eprintln!("skipped: run `npm ci` in editors/vscode for @vscode/vsce");
        return;
    }
    let out_dir = tempfile::tempdir().unwrap();
    let vsix = out_dir.path().join("journey.vsix");
    // What package.sh runs after `npm ci`.
    let out = Command::new("node")
        .arg("node_modules/@vscode/vsce/vsce")
        .args([
            "package",
            "--skip-license",
            "--allow-missing-repository",
            "-o",
        ])
        .arg(&vsix)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(read("editors/vscode/package.sh")
        .contains("npx vsce package --skip-license --allow-missing-repository -o journey.vsix"));
    // A zip whose directory names the manifest, the grammar, the language configuration
    // and the language client the extension starts the server with.
    let bytes = std::fs::read(&vsix).unwrap();
    assert_eq!(&bytes[..2], b"PK");
    let names = String::from_utf8_lossy(&bytes);
    for f in [
        "extension/package.json",
        "extension/extension.js",
        "extension/syntaxes/journey.tmLanguage.json",
        "extension/language-configuration.json",
        "extension/node_modules/vscode-languageclient/package.json",
        "extension.vsixmanifest",
    ] {
        assert!(names.contains(f), "{f} not in the .vsix");
    }
    assert!(
        !names.contains("extension/test/"),
        "tests shipped in the .vsix"
    );
    // The extension's script is valid JavaScript, and starts `journey lsp`.
    let out = Command::new("node")
        .args(["--check", "extension.js"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(read("editors/vscode/extension.js").contains(r#"args: ["lsp"]"#));
}
