//! Snapshots of `journey check`'s human diagnostics for broken inputs, through the built
//! binary: every syntax error kind we translate into plain words and every static check of
//! the compiler. Each case is written to `CASE/*.journey` in a temporary directory and checked
//! from there, so the snapshots show stable relative paths (`CASE/main.journey:3:5`).

use std::path::Path;
use std::process::Command;

/// Writes `files` under `dir/case/` and runs `journey check case` from `dir`.
fn run_in(dir: &Path, case: &str, files: &[(&str, &str)], extra: &[&str]) -> (i32, String, String) {
    let root = dir.join(case);
    for (name, text) in files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_journey"))
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .arg("check")
        .arg(case)
        .args(extra)
        .output()
        .expect("journey runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn check(case: &str, files: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run_in(dir.path(), case, files, &[]);
    (code, err)
}

/// A broken case: exit 1, a `FILE:LINE:COL: error:` line, the source line and a caret.
fn broken(case: &str, files: &[(&str, &str)]) -> String {
    let (code, err) = check(case, files);
    assert_eq!(code, 1, "{case} should fail:\n{err}");
    let first = err.lines().next().unwrap_or_default();
    let prefix = format!("{case}/");
    assert!(
        first.starts_with(&prefix) && first.contains(": error: "),
        "{case}: first line is not FILE:LINE:COL: error: …\n{err}"
    );
    let loc: Vec<&str> = first[prefix.len()..].splitn(4, ':').collect();
    assert!(
        loc.len() == 4 && loc[1].parse::<usize>().is_ok() && loc[2].parse::<usize>().is_ok(),
        "{case}: no LINE:COL in {first}"
    );
    assert!(err.contains('^'), "{case}: no caret\n{err}");
    assert!(!err.contains("panicked"), "{case}: panic\n{err}");
    assert!(!err.contains('\u{1b}'), "{case}: colour codes\n{err}");
    err
}

macro_rules! case {
    ($name:ident, $src:expr) => {
        #[test]
        fn $name() {
            let err = broken(stringify!($name), &[("main.journey", $src)]);
            insta::assert_snapshot!(stringify!($name), err);
        }
    };
    ($name:ident, $( ($file:expr, $src:expr) ),+ ) => {
        #[test]
        fn $name() {
            let err = broken(stringify!($name), &[ $( ($file, $src) ),+ ]);
            insta::assert_snapshot!(stringify!($name), err);
        }
    };
}

// ---------------------------------------------------------------- syntax errors

case!(
    syntax_missing_closing_brace,
    r#"journey welcome {
  entry event "signed_up"

  send email welcome {
    subject "Welcome"
    text "Hello"
  }
"#
);

case!(
    syntax_bad_duration_after_within,
    r#"journey welcome {
  entry event "signed_up"
  send email welcome {
    subject "Welcome"
    text "Hello"
  }
  check opened welcome within soon {
    no { end }
  }
}
"#
);

case!(
    syntax_duration_written_in_words,
    r#"journey welcome {
  entry event "signed_up"
  wait 3days
  check opened welcome within 2dd {
    no { end }
  }
}
"#
);

case!(
    syntax_misspelt_send,
    r#"journey welcome {
  entry event "signed_up"
  sned email welcome {
    subject "Welcome"
    text "Hello"
  }
}
"#
);

case!(
    syntax_uppercase_name,
    r#"journey Welcome {
  entry event "signed_up"
}
"#
);

case!(
    syntax_missing_string_quotes,
    r#"journey welcome {
  entry event "signed_up"
  send email welcome {
    subject Welcome to Maison
    text "Hello"
  }
}
"#
);

case!(
    syntax_single_quotes,
    r#"journey welcome {
  entry event 'signed_up'
}
"#
);

case!(
    syntax_where_with_single_equals,
    r#"journey welcome {
  entry event "form_compiled" where formName = "addUser"
}
"#
);

case!(
    syntax_where_without_condition,
    r#"journey welcome {
  entry event "form_compiled" where
  reentry never
}
"#
);

case!(
    syntax_unterminated_string,
    r#"journey welcome {
  title "Welcome
  entry api
}
"#
);

case!(
    syntax_bad_wait,
    r#"journey welcome {
  entry api
  wait a little
}
"#
);

case!(
    syntax_unknown_message_field,
    r#"journey welcome {
  entry api
  send email welcome {
    subjet "Welcome"
    text "Hello"
  }
}
"#
);

case!(
    syntax_split_arm_without_share,
    r#"journey welcome {
  entry api
  split random {
    a { wait 1d }
    50% b { wait 2d }
  }
}
"#
);

case!(
    syntax_check_without_verb,
    r#"journey welcome {
  entry api
  send email welcome {
    subject "Welcome"
    text "Hello"
  }
  check welcome within 3d {
    no { end }
  }
}
"#
);

case!(
    syntax_stray_text_at_top_level,
    r#"journey welcome {
  entry api
}
wait 3d
"#
);

// ---------------------------------------------------------------- static checks

case!(
    unknown_message_did_you_mean,
    r#"journey welcome {
  entry event "signed_up"
  send email welcome {
    subject "Welcome"
    text "Hello"
    link profile "https://example.com/profile"
  }
  check clicked welcom.profile within 3d {
    no { end }
  }
}
"#
);

case!(
    unknown_segment,
    r#"segment italians {
  rule it: contact.country == "IT"
}

journey welcome {
  entry segment italian on join
}
"#
);

case!(
    unknown_policy,
    r#"policy maison_daily {
  max 1 email per 1d
}

journey welcome {
  entry api
  policy maison_dayly
}
"#
);

case!(
    unknown_label,
    r#"journey welcome {
  entry api
  nudge: send sms nudge {
    text "Hello"
  }
  wait 1d
  goto nudj
}
"#
);

case!(
    duplicate_definition_across_files,
    (
        "a.journey",
        r#"segment italians {
  rule it: contact.country == "IT"
}
"#
    ),
    (
        "b.journey",
        r#"# The same name again, in another file.
segment italians {
  rule it: contact.country == "IT"
}
"#
    )
);

case!(
    duplicate_step_names,
    r#"journey welcome {
  entry api
  wait 1d
  send sms hello {
    text "Hello"
  }
  wait 1d
}
"#
);

case!(
    unreachable_step_after_end,
    r#"journey welcome {
  entry api
  send sms hello {
    text "Hello"
  }
  end
  wait 1d
}
"#
);

case!(
    unreachable_labelled_step,
    r#"journey welcome {
  entry api
  if contact.vip == true {
    end
  } else {
    end
  }
  orphan: send sms hello {
    text "Hello"
  }
}
"#
);

case!(
    goto_loop_without_wait,
    r#"journey welcome {
  entry api
  again: send sms hello {
    text "Hello"
  }
  goto again
}
"#
);

case!(
    opened_on_sms,
    r#"journey welcome {
  entry api
  send sms hello {
    text "Hello"
  }
  check opened hello within 1d {
    no { end }
  }
}
"#
);

case!(
    clicked_on_push,
    r#"journey welcome {
  entry api
  send push hello {
    title "Hello"
  }
  check clicked hello within 1d {
    no { end }
  }
}
"#
);

case!(
    split_shares_not_100,
    r#"journey welcome {
  entry api
  pick: split random {
    40% a { wait 1d }
    50% b { wait 2d }
  }
}
"#
);

case!(
    unknown_time_zone,
    r#"segment everyone {
  rule all: contact.active == true
}

journey welcome {
  entry segment everyone at 2026-03-13 10:00 Europe/Rom
}
"#
);

case!(
    invalid_time,
    r#"journey welcome {
  entry api
  wait until 25:00
}
"#
);

case!(
    invalid_date,
    r#"segment everyone {
  rule all: contact.active == true
}

journey welcome {
  entry segment everyone at 2026-02-30 10:00
}
"#
);

case!(
    duration_that_overflows,
    r#"journey welcome {
  entry event "signed_up"
  send email welcome { subject "Hi" text "Hello" }
  check opened welcome within 106751991167d {
    yes { end }
    no { end }
  }
}
"#
);

case!(
    months_where_only_fixed_durations_go,
    r#"journey welcome {
  entry event "signed_up"
  reentry after 1mo
  wait 1mo
}
"#
);

case!(
    date_out_of_range,
    r#"journey welcome {
  entry event "signed_up"
  wait until 0001-01-01 10:00
}
"#
);

case!(
    missing_template_file,
    (
        "main.journey",
        r#"journey welcome {
  entry api
  send email welcome {
    subject "Welcome"
    template "welcom.html"
  }
}
"#
    ),
    ("templates/welcome.html", "<p>Hello</p>\n")
);

case!(
    missing_partial,
    (
        "main.journey",
        r#"journey welcome {
  entry api
  send email welcome {
    subject "Welcome"
    template "welcome.html"
  }
}
"#
    ),
    (
        "templates/welcome.html",
        "{% extends \"base.html\" %}\n{% block body %}\n<p>Hello</p>\n{% include \"partials/footr.html\" %}\n{% endblock %}\n"
    ),
    (
        "templates/base.html",
        "<html><body>{% block body %}{% endblock %}</body></html>\n"
    ),
    ("templates/partials/footer.html", "<p>Bye</p>\n")
);

case!(
    block_not_in_parent,
    (
        "main.journey",
        r#"journey welcome {
  entry api
  send email welcome {
    subject "Welcome"
    template "welcome.html"
  }
}
"#
    ),
    (
        "templates/welcome.html",
        "{% extends \"base.html\" %}\n{% block content %}<p>Hello</p>{% endblock %}\n"
    ),
    (
        "templates/base.html",
        "<html><body>{% block body %}{% endblock %}</body></html>\n"
    )
);

case!(
    journey_without_entry,
    r#"journey welcome {
  title "Welcome"
  send sms hello {
    text "Hello"
  }
}
"#
);

case!(
    email_without_subject,
    r#"journey welcome {
  entry api
  send email welcome {
    text "Hello"
  }
}
"#
);

case!(
    field_not_allowed_on_channel,
    r#"journey welcome {
  entry api
  send sms hello {
    subject "Hi"
    text "Hello"
  }
}
"#
);

case!(
    unknown_link_on_message,
    r#"journey welcome {
  entry api
  send email welcome {
    subject "Welcome"
    text "Hello"
    link profile "https://example.com/profile"
  }
  check clicked welcome.profil within 3d {
    no { end }
  }
}
"#
);

case!(
    first_segment_rule_with_combinator,
    r#"segment italians {
  and rule it: contact.country == "IT"
}
"#
);

case!(
    bare_name_in_if,
    r#"journey welcome {
  entry api
  if country == "IT" {
    end
  }
}
"#
);

case!(
    other_journeys_unknown_message,
    r#"journey a {
  entry api
  send email promo {
    subject "Promo"
    text "Hello"
  }
}

journey b {
  entry api
  if clicked a.prom {
    end
  }
}
"#
);

// ---------------------------------------------------------------- consent

case!(
    transactional_with_topic,
    r#"topic newsletter {
  title "The newsletter"
}

journey receipt {
  transactional
  topic newsletter
  entry event "order_placed"
  send email receipt { subject "Your order" text "Thanks" }
}
"#
);

case!(
    unknown_topic_did_you_mean,
    r#"topic newsletter {
  title "The newsletter"
}

journey weekly {
  topic newsleter
  entry api
  send email issue { subject "This week" text "News" }
}
"#
);

case!(
    syntax_topic_default_without_state,
    r#"topic newsletter {
  title "The newsletter"
  default yes
}
"#
);

case!(
    computed_value_type_errors,
    r#"journey welcome {
  entry event "signup"
  set contact.greeting = "Hello " + 1
  set contact.trial_ends_at = now * 2
  set contact.fine = contact.name + 1
  set contact.gap = 3d
}
"#
);

case!(
    entry_key_where_there_is_no_entry_event,
    r#"segment carts {
  rule mine: contact.cart == entry.cart_id
}

journey welcome {
  entry event "signup" where plan == entry.plan
  send email hello { subject "Hi" text "hello" }
}
"#
);

case!(
    experiment_shares_and_winner,
    r#"journey welcome {
  entry api
  experiment subject by converted within 1d {
    20% a { send email a { subject "A" text "a" } }
    30% winner
    20% b { send email b { subject "B" text "b" } }
    10% winner
  }
}
"#
);

case!(
    holdout_share_out_of_range,
    r#"journey welcome {
  entry api
  holdout 100%
  send email hello { subject "Hi" text "hello" }
}
"#
);

case!(
    profile_time_dates_in_the_wrong_order,
    r#"journey welcome {
  entry api
  if contact.created_at between 2026-03-31 and 2026-01-01 { end }
}
"#
);

/// `entry.KEY` against the scenarios' events: a key no `cart_updated` of the scenarios
/// carries is a warning, with the keys they do carry; a journey entered on no event warns
/// that it is always missing.
#[test]
fn entry_key_unknown_to_the_scenarios_warns() {
    let (code, err) = check(
        "entry_key_unknown",
        &[
            (
                "main.journey",
                r#"journey carts {
  transactional
  entry event "cart_updated"
  reentry always
  wait for event "checkout" where cart_id == entry.cart_ld within 2h {
    yes { end }
  }
  set contact.last_total = entry.total
}

journey by_api {
  transactional
  entry api
  if entry.plan == "pro" { end }
}
"#,
            ),
            (
                "main.scenario.yaml",
                r#"journeys: [main.journey]
start: 2026-03-02T09:00:00Z
contacts: [{ id: ann }]
events:
  - { at: +0s, contact: ann, type: cart_updated, properties: { cart_id: c1, total: 3 } }
until: +1d
"#,
            ),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("2 warnings"), "{err}");
    assert!(!err.contains("`total`"), "{err}");
    insta::assert_snapshot!("entry_key_unknown_to_the_scenarios_warns", err);
}

/// A warning, not an error: `journey check` exits 0 but names the journey and the topics.
#[test]
fn marketing_journey_without_topic_warns() {
    let (code, err) = check(
        "marketing_without_topic",
        &[(
            "main.journey",
            r#"topic newsletter {
  title "The newsletter"
}

journey promo {
  entry api
  send email promo { subject "Promo" text "Hello" }
}

journey receipt {
  transactional
  entry api
  send email receipt { subject "Your order" text "Thanks" }
}

journey crm {
  entry api
  send webhook sync { url "https://crm.example/sync" }
}
"#,
        )],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("1 warning"), "{err}");
    insta::assert_snapshot!("marketing_journey_without_topic_warns", err);
}

// ---------------------------------------------------------------- whole runs

#[test]
fn a_clean_file_exits_zero() {
    let (code, err) = check(
        "clean",
        &[(
            "main.journey",
            r#"journey welcome {
  entry event "signed_up"
  send email welcome {
    subject "Welcome"
    text "Hello"
  }
}
"#,
        )],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("0 errors"), "{err}");
}

/// Every error of every file in one run, in file order: syntax errors and static checks.
#[test]
fn several_errors_in_two_files_are_all_reported() {
    let files = [
        (
            "a.journey",
            r#"journey a {
  entry segment nobody on join
  policy nothing
  wait until 25:00
}
"#,
        ),
        (
            "b.journey",
            r#"journey b {
  entry api
  send sms hello {
    text "Hello"
  }
  check opened hello within 1d {
    no { end }
  }
  split random {
    10% x { wait 1d }
  }
}
"#,
        ),
        // A file that does not parse does not stop the others from being checked.
        (
            "c.journey",
            "journey c {\n  entry api\n  sned sms x {\n    text \"x\"\n  }\n}\n",
        ),
    ];
    let (code, err) = check("two", &files);
    assert_eq!(code, 1, "{err}");
    let firsts: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("two/") && l.contains(": error: "))
        .collect();
    assert_eq!(firsts.len(), 6, "{err}");
    for want in [
        "two/a.journey:2:17: error: unknown segment 'nobody'",
        "two/a.journey:3:10: error: unknown policy 'nothing'",
        "two/a.journey:4:14: error: 25:00 is not a time of day",
        "two/b.journey:6:9: error: 'opened' cannot be checked on 'hello', which is sent by sms",
        "two/b.journey:9:3: error: the shares of this split add up to 10%, not 100%",
        "two/c.journey:3:3: error: expected a step (send, wait, check, if, split random, experiment, set, goto, end), found 'sned'",
    ] {
        assert!(firsts.contains(&want), "missing {want} in\n{err}");
    }
    assert!(err.trim_end().ends_with("6 errors, 0 warnings"), "{err}");
    insta::assert_snapshot!(err);
}

#[test]
fn json_format_gives_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = run_in(
        dir.path(),
        "json",
        &[(
            "main.journey",
            r#"journey welcome {
  entry api
  send sms hello {
    text "Hello"
  }
  check opened helo within 1d {
    no { end }
  }
  wait until 24:30
}
"#,
        )],
        &["--format", "json"],
    );
    assert_eq!(code, 1);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    let first = &lines[0];
    assert_eq!(first["severity"], "error");
    assert_eq!(first["file"], "json/main.journey");
    assert_eq!(first["line"], 6);
    assert_eq!(first["column"], 16);
    assert_eq!(first["end_column"], 20);
    assert_eq!(first["message"], "unknown message 'helo'");
    assert_eq!(first["help"], "did you mean 'hello'?");
    assert_eq!(lines[1]["line"], 9);
    assert_eq!(lines[1]["column"], 14);
    for l in &lines {
        for key in [
            "file",
            "line",
            "column",
            "end_line",
            "end_column",
            "message",
        ] {
            assert!(!l[key].is_null(), "{key} in {l}");
        }
    }
}

#[test]
fn json_format_is_empty_for_a_clean_file() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = run_in(
        dir.path(),
        "clean",
        &[("main.journey", "journey a {\n  entry api\n  wait 1d\n}\n")],
        &["--format", "json"],
    );
    assert_eq!(code, 0);
    assert_eq!(out, "");
}

/// `load_files` parses big sets of files on several threads: the diagnostics (file ids, order,
/// messages) are the same as loading the files one by one.
#[test]
fn parallel_loading_reports_like_sequential_loading() {
    use journey::{compile, lang};
    let dir = tempfile::tempdir().unwrap();
    let unit = |f: usize, i: usize| {
        format!(
            "journey j_{f}_{i} {{\n  entry event \"e\" where plan == \"pro {i}\"\n  \
             send sms s_{f}_{i} {{\n    text \"{}\"\n  }}\n  wait 1d\n}}\n\n",
            "x".repeat(200)
        )
    };
    let mut paths = Vec::new();
    for f in 0..6 {
        let mut text: String = (0..300).map(|i| unit(f, i)).collect();
        match f {
            2 => text.push_str("journey broken {\n  entry api\n  sned sms x {}\n}\n"),
            3 => text = "# nothing yet\n".into(),
            4 => text.push_str("journey dup {\n  entry api\n  wait 1d\n  wait 1d\n}\n"),
            _ => {}
        }
        let path = dir.path().join(format!("f{f}.journey"));
        if f == 5 {
            let mut bytes = text.into_bytes();
            bytes.extend_from_slice(b"\xff");
            std::fs::write(&path, bytes).unwrap();
        } else {
            std::fs::write(&path, text).unwrap();
        }
        paths.push(path);
    }
    let together = lang::load_files(&paths);
    let mut one_by_one = lang::Loaded::default();
    for p in &paths {
        lang::add_file(&mut one_by_one, p);
    }
    let a = compile::compile(&together);
    let b = compile::compile(&one_by_one);
    let render = |l: &lang::Loaded, c: &compile::Compiled| {
        lang::diagnostic::render_human(&l.sources, &c.diagnostics, false)
    };
    assert_eq!(a.diagnostics.len(), 4, "{}", render(&together, &a));
    assert_eq!(render(&together, &a), render(&one_by_one, &b));
    assert_eq!(together.files.len(), one_by_one.files.len());
}

const HELO: &str = r#"journey welcome {
  entry api
  send sms hello {
    text "Hello"
  }
  check opened helo within 1d {
    no { end }
  }
}
"#;

#[test]
fn github_format_gives_workflow_commands_on_the_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = run_in(
        dir.path(),
        "gh",
        &[("main.journey", HELO)],
        &["--format", "github"],
    );
    assert_eq!(code, 1);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "::error file=gh/main.journey,line=6,endLine=6,col=16,endColumn=20,\
             title=journey check%3A unknown message 'helo'::unknown message 'helo'%0Ahelp: did you mean 'hello'?"
        ],
        "{out}"
    );
}

#[test]
fn sarif_format_is_one_sarif_2_1_0_log() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = run_in(
        dir.path(),
        "sarif",
        &[("main.journey", HELO)],
        &["--format", "sarif"],
    );
    assert_eq!(code, 1);
    let log: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(log["version"], "2.1.0");
    let run = &log["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "journey");
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!(r["level"], "error");
    assert_eq!(r["ruleId"], "journey-check/error");
    assert_eq!(
        r["message"]["text"],
        "unknown message 'helo'\nhelp: did you mean 'hello'?"
    );
    let loc = &r["locations"][0]["physicalLocation"];
    assert_eq!(loc["artifactLocation"]["uri"], "sarif/main.journey");
    assert_eq!(loc["region"]["startLine"], 6);
    assert_eq!(loc["region"]["startColumn"], 16);
    assert_eq!(loc["region"]["endColumn"], 20);
    // Every rule a result names is declared.
    let rules: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&r["ruleId"].as_str().unwrap()));

    // A clean folder: a log with no result, exit 0.
    let (code, out, _) = run_in(
        dir.path(),
        "clean",
        &[("main.journey", "journey a {\n  entry api\n  wait 1d\n}\n")],
        &["--format", "sarif"],
    );
    assert_eq!(code, 0);
    let log: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(log["runs"][0]["results"], serde_json::json!([]));
}
