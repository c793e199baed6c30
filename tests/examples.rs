//! The examples and the language reference check clean: `journeys/` (what newcomers run) and
//! `tests/fixtures/language/` (every journey-language block of LANGUAGE.md, one file per
//! block, checked together as one directory).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn check(dir: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_journey"))
        .arg("check")
        .arg(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("journey runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn example_journeys_check_clean_without_warnings() {
    let (ok, stderr) = check(&root().join("journeys"));
    assert!(ok, "{stderr}");
    assert!(stderr.contains("0 errors, 0 warnings"), "{stderr}");
    let files = std::fs::read_dir(root().join("journeys"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "journey")
        })
        .count();
    assert!(files >= 6, "the examples are gone");
    assert!(stderr.contains(&format!("{files} files")), "{stderr}");
}

#[test]
fn language_reference_fixtures_check_clean() {
    let (ok, stderr) = check(&root().join("tests/fixtures/language"));
    assert!(ok, "{stderr}");
    assert!(stderr.contains("0 errors"), "{stderr}");
}

/// Every line of every journey-language block of LANGUAGE.md is in the fixtures, so the
/// fixtures cannot drift from the reference. The reference lives beside the repository
/// (`../shared/LANGUAGE.md`); without it there is nothing to compare.
#[test]
fn fixtures_hold_every_block_of_the_reference() {
    let reference = root().join("../shared/LANGUAGE.md");
    let Ok(text) = std::fs::read_to_string(&reference) else {
        eprintln!(
            "skipped: {} is not beside the repository",
            reference.display()
        );
        return;
    };
    let mut fixtures = String::new();
    for entry in std::fs::read_dir(root().join("tests/fixtures/language")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "journey") {
            fixtures.push_str(&std::fs::read_to_string(path).unwrap());
        }
    }
    let mut blocks = 0;
    let mut pending_seen = Vec::new();
    for block in text.split("```").skip(1).step_by(2) {
        // Fenced blocks with a language tag (yaml) are not journey source.
        if !block.starts_with('\n') {
            continue;
        }
        let first = block
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'));
        if let Some(p) = PENDING_BLOCKS.iter().find(|p| Some(**p) == first) {
            eprintln!("skipped: the reference block `{p}` uses constructs not built yet");
            pending_seen.push(*p);
            continue;
        }
        blocks += 1;
        for line in block.lines().map(str::trim).filter(|l| !l.is_empty()) {
            assert!(
                fixtures.contains(line),
                "LANGUAGE.md line missing from tests/fixtures/language: {line}"
            );
        }
    }
    assert!(blocks >= 4, "found {blocks} journey blocks in LANGUAGE.md");
    for p in PENDING_BLOCKS {
        assert!(
            pending_seen.contains(p),
            "PENDING_BLOCKS names `{p}`, which is no longer a block of LANGUAGE.md: drop it"
        );
    }
}

/// Blocks of the reference whose constructs the language does not have yet (keyed waits,
/// computed values and months; experiments and holdouts), by their first line. Each is
/// taken off this list, and its lines put into the fixtures, when its constructs land.
const PENDING_BLOCKS: &[&str] = &[];
