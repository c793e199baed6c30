//! `journey bench clicks` (B1) counts its own results: the clicks that won their race, the
//! timeouts and the writes per contact come from the branches taken and the store's
//! counters. A small run checks that those counts are right, not how fast they come; the
//! same for the other benchmarks' counts.

use std::process::Command;

fn field<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        // Labels are padded to a column: `engine` is not `engine busy`.
        .find_map(|l| l.strip_prefix(label).filter(|rest| rest.starts_with("  ")))
        .unwrap_or_else(|| panic!("no `{label}` line in:\n{out}"))
        .trim()
}

#[test]
fn b1_counts_every_click_and_every_timeout_from_the_branches_taken() {
    let out = Command::new(env!("CARGO_BIN_EXE_journey"))
        .args(["bench", "clicks", "--contacts", "400"])
        .output()
        .expect("the bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(field(&stdout, "contacts"), "400");
    // Even contacts click as soon as their email is recorded, a second before their timer.
    assert_eq!(
        field(&stdout, "clicks won / timeouts"),
        "200 / 200 (0 clicks lost the race)"
    );
    // "N (W per contact) in B batches": each contact is an event, a contact record, an
    // instance written twice and its `message.sent`, plus shares of batch records.
    let writes = field(&stdout, "store writes");
    let per_contact: f64 = writes
        .split('(')
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("writes per contact in `{writes}`"));
    assert!(
        (4.5..=6.0).contains(&per_contact),
        "{per_contact} writes per contact"
    );
    let ratio = field(&stdout, "engine");
    assert!(ratio.contains("of raw"), "{ratio}");
}

/// `journey bench cluster` runs daemons on a PostgreSQL of its own, counts every contact
/// through, and measures a takeover: a small run checks that it finishes and says so.
#[test]
fn the_cluster_benchmark_counts_every_contact_and_times_a_takeover() {
    // The benchmark starts its own server; without PostgreSQL here, the test says so.
    if journey::bench::pg_server::PgServer::for_test(
        "the_cluster_benchmark_counts_every_contact_and_times_a_takeover",
    )
    .is_none()
    {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_journey"))
        .args([
            "bench",
            "cluster",
            "--daemons",
            "2",
            "--contacts",
            "300",
            "--takeover",
            "kill",
        ])
        .output()
        .expect("the bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("B1 cluster: 2 daemons, 300 contacts in"),
        "{stdout}"
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("takeover (kill): "))
        .unwrap_or_else(|| panic!("{stdout}"));
    // On one host a killed daemon's partitions are taken at the keepers' next round (2 s),
    // and a timer comes due within a second of it: well inside the lease's 10 s.
    let secs: f64 = line
        .split("elsewhere ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(secs > 0.0 && secs < 12.0, "{line}");
}

/// `journey bench lsp` drives a `journey lsp` child over stdio on generated source: a small
/// run checks that every edit's diagnostics came back (the typed character reported, its
/// deletion cleared), that completion offered names, and that the figures are printed.
#[test]
fn the_lsp_benchmark_times_edits_to_their_diagnostics_and_completions() {
    let out = Command::new(env!("CARGO_BIN_EXE_journey"))
        .args([
            "bench",
            "lsp",
            "--bytes",
            "20000",
            "--files",
            "3",
            "--edits",
            "12",
            "--completions",
            "6",
        ])
        .output()
        .expect("the bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        field(&stdout, "workspace").ends_with("in 3 files"),
        "{stdout}"
    );
    // Three files: edits 1-3 type into each, 4-6 delete, 7-9 type, 10-12 delete.
    assert_eq!(
        field(&stdout, "edits"),
        "12 (6 reported an unknown message, 6 cleared it)"
    );
    let completions = field(&stdout, "completions");
    assert!(completions.starts_with("6 ("), "{completions}");
    for label in ["diagnostics after edit", "completion"] {
        let line = field(&stdout, label);
        assert!(
            line.starts_with("median ") && line.contains("p95"),
            "{line}"
        );
    }
    let peak = field(&stdout, "server peak RSS");
    let mb: f64 = peak
        .split(' ')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{peak}"));
    assert!(mb > 0.0, "{peak}");
}

/// `journey bench console` starts a daemon with contacts in flight, signs in as its first
/// admin token would, and times the journey page, its counts and the list: each answered
/// 200 (the bench stops on anything else) and its figures printed.
#[test]
fn the_console_benchmark_times_the_journey_page() {
    let out = Command::new(env!("CARGO_BIN_EXE_journey"))
        .args(["bench", "console", "--contacts", "300"])
        .output()
        .expect("the bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let all = format!("{stdout}{stderr}");
    for path in [
        "/journeys/console_bench:",
        "/journeys/console_bench/counts:",
        "GET /:",
    ] {
        assert!(
            all.lines().any(|l| l.contains(path) && l.contains("p50")),
            "{path}: {all}"
        );
    }
    assert!(all.contains("300 contacts in flight"), "{all}");
}
