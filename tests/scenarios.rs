//! `journey test` and `journey simulate` as users run them: the built binary, from the
//! repository and from other working directories, on passing, failing and broken scenarios.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> PathBuf {
    root().join("tests/fixtures/scenarios")
}

/// How many scenarios a fixture directory holds.
fn count(dir: &str) -> usize {
    std::fs::read_dir(fixtures().join(dir))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".scenario.yaml")
        })
        .count()
}

fn journey(dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_journey"));
    command.args(args).current_dir(dir).env("NO_COLOR", "1");
    // With JOURNEY_TEST_POSTGRES=1 (`.ci/run`), `journey test` runs each scenario in a
    // schema of its own in a PostgreSQL of the test process.
    if journey::bench::pg_server::tests_on_postgres() {
        command.env("JOURNEY_STORE_URL", postgres_url());
    }
    command.output().expect("the journey binary runs")
}

/// The database the scenarios run in on PostgreSQL (one for the test process).
fn postgres_url() -> &'static str {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap());
        journey::bench::pg_server::test_store_location(dir.path())
    })
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn both(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

/// `scenarios: N passed, M failed` → (N, M).
fn summary(o: &Output) -> (usize, usize) {
    let out = stdout(o);
    let line = out
        .lines()
        .find(|l| l.starts_with("scenarios: "))
        .unwrap_or_else(|| panic!("no summary in:\n{}", both(o)));
    let nums: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    (nums[0], nums[1])
}

fn assert_all_passed(o: &Output, at_least: usize) {
    assert_eq!(o.status.code(), Some(0), "{}", both(o));
    let (passed, failed) = summary(o);
    assert_eq!(failed, 0, "{}", both(o));
    assert!(passed >= at_least, "{}", both(o));
    assert!(!stdout(o).contains("FAIL"), "{}", both(o));
    assert!(!both(o).contains("panicked"), "{}", both(o));
}

fn no_panic(o: &Output) {
    assert!(!both(o).contains("panicked"), "{}", both(o));
    assert_ne!(o.status.code(), Some(101), "{}", both(o));
}

// ------------------------------------------------------------------ journey test: passing

#[test]
fn examples_pass_from_the_repository() {
    let o = journey(&root(), &["test", "journeys/"]);
    assert_all_passed(&o, 6);
    for name in [
        "welcome",
        "dnd",
        "event_reminder",
        "push_retarget",
        "red_shoes",
    ] {
        assert!(
            stdout(&o).contains(&format!("PASS journeys/{name}.scenario.yaml")),
            "{}",
            stdout(&o)
        );
    }
}

#[test]
fn examples_pass_by_default_path() {
    // No path: `journeys/` in the current directory.
    let o = journey(&root(), &["test"]);
    assert_all_passed(&o, 6);
}

#[test]
fn examples_pass_from_another_directory() {
    // `journeys:` paths are relative to the scenario file, not to the working directory.
    let elsewhere = tempfile::tempdir().unwrap();
    let abs = root().join("journeys");
    let o = journey(elsewhere.path(), &["test", abs.to_str().unwrap()]);
    assert_all_passed(&o, 6);

    // From inside journeys/, with `.`.
    let o = journey(&abs, &["test", "."]);
    assert_all_passed(&o, 6);

    // From tests/, with a relative path going up, one file.
    let o = journey(
        &root().join("tests"),
        &["test", "../journeys/welcome.scenario.yaml"],
    );
    assert_all_passed(&o, 1);
}

#[test]
fn fixture_scenarios_pass() {
    // DST changes, two time zones, caps (delay, skip, scopes, all channels), quiet hours,
    // checks on links, waits for events, a stable split, goal while held, exit, reentry.
    let o = journey(&root(), &["test", "tests/fixtures/scenarios/pass"]);
    assert_all_passed(&o, count("pass"));
    for name in ["dst_two_zones", "caps", "engagement", "loops"] {
        assert!(
            stdout(&o).contains(&format!("{name}.scenario.yaml")),
            "{}",
            stdout(&o)
        );
    }
    let elsewhere = tempfile::tempdir().unwrap();
    let o = journey(
        elsewhere.path(),
        &["test", fixtures().join("pass").to_str().unwrap()],
    );
    assert_all_passed(&o, count("pass"));
}

// ------------------------------------------------------------------ journey test: failing

#[test]
fn a_failing_scenario_prints_a_diff_and_exits_1() {
    let o = journey(&root(), &["test", "tests/fixtures/scenarios/fail"]);
    no_panic(&o);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let out = stdout(&o);
    assert!(
        out.contains(
            "FAIL tests/fixtures/scenarios/fail/wrong.scenario.yaml (3 of 5 expectations failed)"
        ),
        "{out}"
    );
    let expected = [
        "  anna: sent",
        "    - expected: [welcome, promo]",
        "    + actual:   [welcome]",
        "  anna: sent_at welcome",
        "    - expected: 2026-03-02T11:00:00Z",
        "    + actual:   2026-03-02T10:00:00Z",
        "  anna: ended",
        "    - expected: ended",
        "    + actual:   running in onboarding",
    ];
    for line in expected {
        assert!(
            out.lines().any(|l| l == line),
            "missing {line:?} in:\n{out}"
        );
    }
    // bruno's expectations hold: nothing about him.
    assert!(!out.contains("bruno"), "{out}");
    assert_eq!(summary(&o), (0, 1));
}

#[test]
fn one_failure_fails_the_whole_run() {
    let o = journey(
        &root(),
        &[
            "test",
            "tests/fixtures/scenarios/pass",
            "tests/fixtures/scenarios/fail",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert_eq!(summary(&o), (count("pass"), 1));
}

// ------------------------------------------------------------------ journey test: bad input

/// Runs one broken scenario through `test` and `simulate`: exit 1, no panic, an error that
/// names the file and line, shows the line, and says `what`.
fn bad(file: &str, line: usize, what: &[&str]) {
    let rel = format!("tests/fixtures/scenarios/bad/{file}");
    for args in [vec!["test", rel.as_str()], vec!["simulate", rel.as_str()]] {
        let o = journey(&root(), &args);
        no_panic(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", both(&o));
        let text = both(&o);
        let at = format!("{rel}:{line}: ");
        assert!(text.contains(&at), "{args:?}: expected {at:?} in:\n{text}");
        for w in what {
            assert!(text.contains(w), "{args:?}: expected {w:?} in:\n{text}");
        }
        // The offending line is shown under the message.
        assert!(
            text.contains(&format!("{line:>5} | ")),
            "{args:?}: no source line in:\n{text}"
        );
    }
}

#[test]
fn bad_unknown_contact() {
    bad(
        "unknown_contact.scenario.yaml",
        8,
        &["unknown contact 'zoe'", "contacts: anna, bruno"],
    );
}

#[test]
fn bad_malformed_time() {
    bad(
        "bad_time.scenario.yaml",
        8,
        &["'+1x' is not a time", "+1h, -30d or 2026-03-01T09:00:00Z"],
    );
}

#[test]
fn bad_unknown_journey() {
    bad(
        "unknown_journey.scenario.yaml",
        8,
        &[
            "journey 'onbording'",
            "does not load",
            "did you mean 'onboarding'?",
        ],
    );
}

#[test]
fn bad_yaml_syntax() {
    bad(
        "yaml_syntax.scenario.yaml",
        9,
        &["invalid scenario", "expected ',' or '}'"],
    );
}

#[test]
fn bad_missing_journey_file() {
    bad(
        "missing_journey.scenario.yaml",
        1,
        &[
            "missing.journey does not exist",
            "relative to the scenario file",
        ],
    );
}

#[test]
fn bad_scenarios_do_not_stop_the_others() {
    let o = journey(
        &root(),
        &[
            "test",
            "tests/fixtures/scenarios/bad",
            "tests/fixtures/scenarios/pass",
        ],
    );
    no_panic(&o);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(summary(&o), (count("pass"), count("bad")));
    let errors = stdout(&o)
        .lines()
        .filter(|l| l.starts_with("ERROR "))
        .count();
    assert_eq!(errors, count("bad"));
}

#[test]
fn more_bad_input_is_reported_not_panicked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("pass/engagement.journey"),
        dir.path().join("engagement.journey"),
    )
    .unwrap();
    let head = "journeys: [engagement.journey]\nstart: 2026-03-02T10:00:00Z\n";
    let cases: &[(&str, String, &str)] = &[
        ("empty", String::new(), "missing field `journeys`"),
        (
            "no_start",
            "journeys: [engagement.journey]\nuntil: +1d\n".into(),
            "missing field `start`",
        ),
        (
            "relative_start",
            "journeys: [engagement.journey]\nstart: +1h\nuntil: +1d\n".into(),
            "not a start time",
        ),
        (
            "until_before_start",
            format!("{head}until: -1d\n"),
            "is before `start`",
        ),
        (
            "until_a_century_later",
            format!("{head}until: 2126-03-02T10:00:00Z\n"),
            "a scenario spans at most 10 years",
        ),
        (
            "huge_offset",
            format!("{head}contacts:\n  - {{ id: a }}\nevents:\n  - {{ at: +99999999999999d, contact: a, type: x }}\nuntil: +1d\n"),
            "too far from the start",
        ),
        (
            "no_id",
            format!("{head}contacts:\n  - {{ email: a@example.com }}\nuntil: +1d\n"),
            "every contact needs an `id`",
        ),
        (
            "twice",
            format!("{head}contacts:\n  - {{ id: a }}\n  - {{ id: a }}\nuntil: +1d\n"),
            "contact 'a' is listed twice",
        ),
        (
            "bad_zone",
            format!("{head}contacts:\n  - {{ id: a, timezone: Europe/Atlantis }}\nuntil: +1d\n"),
            "unknown time zone 'Europe/Atlantis'",
        ),
        (
            "unknown_message",
            format!("{head}contacts:\n  - {{ id: a }}\nevents:\n  - {{ at: +1h, contact: a, type: clicked, journey: onboarding, message: welcom }}\nuntil: +1d\n"),
            "no message 'welcom' (did you mean 'welcome'?)",
        ),
        (
            "typo_in_expectation",
            format!("{head}contacts:\n  - {{ id: a }}\nuntil: +1d\nexpect:\n  - {{ contact: a, snet: [] }}\n"),
            "unknown field `snet`",
        ),
        (
            "expect_unknown_contact",
            format!("{head}contacts:\n  - {{ id: anna }}\nuntil: +1d\nexpect:\n  - {{ contact: ana, sent: [] }}\n"),
            "expectation for unknown contact 'ana' (did you mean 'anna'?)",
        ),
        (
            "bad_sent_at",
            format!("{head}contacts:\n  - {{ id: a }}\nuntil: +1d\nexpect:\n  - {{ contact: a, sent_at: {{ welcome: soon }} }}\n"),
            "'soon' is not a time",
        ),
        (
            "journey_errors",
            "journeys: [broken.journey]\nstart: 2026-03-02T10:00:00Z\nuntil: +1d\n".into(),
            "the journeys have errors",
        ),
    ];
    std::fs::write(
        dir.path().join("broken.journey"),
        "journey broken {\n  wait\n}\n",
    )
    .unwrap();
    for (name, text, want) in cases {
        let file = format!("{name}.scenario.yaml");
        std::fs::write(dir.path().join(&file), text).unwrap();
        let o = journey(dir.path(), &["test", &file]);
        no_panic(&o);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", both(&o));
        let out = both(&o);
        assert!(out.contains(&file), "{name}: no file name in:\n{out}");
        assert!(out.contains(want), "{name}: expected {want:?} in:\n{out}");
    }
}

#[test]
fn no_scenarios_found_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = journey(dir.path(), &["test", "."]);
    no_panic(&o);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("no *.scenario.yaml found"),
        "{}",
        both(&o)
    );
    let o = journey(dir.path(), &["test", "nowhere"]);
    no_panic(&o);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("nowhere"), "{}", both(&o));
}

// ------------------------------------------------------------------ journey simulate

#[test]
fn simulate_prints_a_timeline() {
    let o = journey(&root(), &["simulate", "journeys/welcome.scenario.yaml"]);
    assert_eq!(o.status.code(), Some(0), "{}", both(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() > 10, "{out}");
    // time, contact, journey, what happened
    assert!(
        lines.iter().any(|l| l.starts_with("2026-03-01T09:00:00Z")
            && l.contains("angela")
            && l.contains("welcome_promo")
            && l.ends_with("sent welcome (email)")),
        "{out}"
    );
    assert!(
        lines.iter().any(|l| l.contains("ended (converted)")),
        "{out}"
    );
    assert!(lines.iter().any(|l| l.contains("(quiet hours)")), "{out}");
    // in time order
    let times: Vec<&str> = lines.iter().map(|l| &l[..20]).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted);
}

#[test]
fn simulate_json_prints_one_object_per_line() {
    let o = journey(
        &root(),
        &[
            "simulate",
            "--format",
            "json",
            "journeys/welcome.scenario.yaml",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", both(&o));
    let out = stdout(&o);
    let mut whats = std::collections::BTreeSet::new();
    let mut last_at = i64::MIN;
    for line in out.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let obj = v.as_object().expect("an object per line");
        for key in ["at", "contact", "journey", "instance", "what"] {
            assert!(obj.contains_key(key), "{key} missing in {line}");
        }
        let at = chrono::DateTime::parse_from_rfc3339(obj["at"].as_str().expect("at is text"))
            .unwrap_or_else(|e| panic!("at is RFC 3339: {e}: {line}"))
            .timestamp_millis();
        assert!(at >= last_at, "out of order: {line}");
        last_at = at;
        whats.insert(obj["what"].as_str().unwrap().to_string());
    }
    for w in ["entered", "step", "sent", "held", "ended"] {
        assert!(whats.contains(w), "no {w:?} line in:\n{out}");
    }
    let sent = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["what"] == "sent" && v["contact"] == "angela")
        .unwrap();
    assert_eq!(sent["message"], "welcome");
    assert_eq!(sent["channel"], "email");
    assert_eq!(sent["journey"], "welcome_promo");
}

#[test]
fn simulate_from_another_directory() {
    let elsewhere = tempfile::tempdir().unwrap();
    let file = fixtures().join("pass/dst_two_zones.scenario.yaml");
    let o = journey(elsewhere.path(), &["simulate", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", both(&o));
    let out = stdout(&o);
    // Monday after the change to summer time: 09:00 Rome is 07:00Z, 09:00 New York 13:00Z.
    assert!(
        out.lines().any(|l| l.starts_with("2026-03-30T07:00:00Z")
            && l.contains("rome")
            && l.ends_with("sent tip (email)")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("2026-03-30T13:00:00Z")
            && l.contains("ny")
            && l.ends_with("sent tip (email)")),
        "{out}"
    );
}

#[test]
fn simulate_bad_file_is_an_error() {
    let o = journey(
        &root(),
        &["simulate", "tests/fixtures/scenarios/nope.scenario.yaml"],
    );
    no_panic(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("error: "), "{}", both(&o));
    assert!(stderr(&o).contains("nope.scenario.yaml"), "{}", both(&o));
}
