//! The daemon's admin side over real HTTP: enrolments through the API, pause and resume
//! (contacts hold, a click during the pause is not lost), `journey plan` / `journey deploy`
//! (refusals keep the running version), SIGHUP reloads, `journey status`, contact imports.

mod daemon_common;

use daemon_common::*;
use journey::channels::tracking;
use journey::engine::{Claims, TokenKind};
use serde_json::{json, Value};
use std::path::Path;

const ONBOARD: &str = r#"journey onboard {
  entry api
  policy none

  send email hello {
    subject "Hello"
    text    "Hi {{ contact.first_name | default('there') }}"
  }
  wait 1d
  send email followup {
    subject "Again"
    text    "Hi again"
  }
}
"#;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn version(d: &Daemon, journey: &str) -> String {
    let (s, v) = d.admin_call("GET", &format!("/v1/journeys/{journey}"), None);
    assert_eq!(s, 200, "{v}");
    v["version"].as_str().unwrap().to_string()
}

fn click(d: &Daemon, contact: &str) -> u16 {
    let welcome = d.delivery(contact, "welcome").expect("welcome sent");
    let secret = std::fs::read_to_string(d.data().join("secret")).unwrap();
    let token = tracking::sign(
        secret.trim().as_bytes(),
        &Claims {
            kind: TokenKind::Click,
            contact: contact.into(),
            message_id: welcome["message_id"].as_str().unwrap().into(),
            journey: "welcome_promo".into(),
            message: "welcome".into(),
            link: Some("profile".into()),
            url: Some("https://maison.example/profile".into()),
        },
    );
    d.call("GET", &format!("/t/c/{token}"), None, None).0
}

fn edit(dir: &Path, from: &str, to: &str) {
    let p = dir.join("welcome.journey");
    let s = std::fs::read_to_string(&p).unwrap();
    assert!(s.contains(from), "{from} not in the journey");
    std::fs::write(&p, s.replacen(from, to, 1)).unwrap();
}

#[test]
fn enrol_pause_resume_and_status() {
    let tmp = tempfile::tempdir().unwrap();
    copy_welcome(tmp.path());
    std::fs::write(tmp.path().join("journeys/onboard.journey"), ONBOARD).unwrap();
    let mut d = Daemon::start(tmp.path());

    // `entry api` journeys take enrolments; others say why not.
    d.put_email("dora");
    d.put_email("ezra");
    let (s, v) = d.admin_call(
        "POST",
        "/v1/journeys/onboard/enroll",
        Some(&json!({"contacts": ["dora", "ezra"]})),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["results"][0]["enrolled"], true);
    wait_for("hello to dora", 30, || d.delivery("dora", "hello"));
    let (_, v) = d.admin_call(
        "POST",
        "/v1/journeys/onboard/enroll",
        Some(&json!({"contact": "dora"})),
    );
    assert_eq!(v["results"][0]["enrolled"], false, "reentry never: {v}");
    let (s, v) = d.admin_call(
        "POST",
        "/v1/journeys/welcome_promo/enroll",
        Some(&json!({"contact": "dora"})),
    );
    assert_eq!(s, 409);
    assert!(v["message"].as_str().unwrap().contains("entry api"));
    assert_eq!(
        d.admin_call(
            "POST",
            "/v1/journeys/nope/enroll",
            Some(&json!({"contact": "x"}))
        )
        .0,
        404
    );

    // Pause: no new entries (API or event), and waiting contacts hold.
    assert_eq!(d.sign_up("gina").0, 200);
    wait_for("gina at the check", 30, || {
        (step_of(&d.contact("gina"), "welcome_promo").as_deref()
            == Some("check_clicked_welcome_profile"))
        .then_some(())
    });
    let out = d.cli(&["pause", "welcome_promo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        d.admin_call("POST", "/v1/journeys/onboard/pause", None).0,
        200
    );
    let (s, v) = d.admin_call(
        "POST",
        "/v1/journeys/onboard/enroll",
        Some(&json!({"contact": "fred"})),
    );
    assert_eq!((s, v["code"].as_str()), (409, Some("paused")));
    assert_eq!(d.sign_up("hugo").0, 200);
    assert!(
        d.contact("hugo")["journeys"].as_array().unwrap().is_empty(),
        "a paused journey took an entry"
    );
    // gina clicks while the journey is paused: recorded, but she holds at the check.
    assert_eq!(click(&d, "gina"), 302);
    let g = d.contact("gina");
    assert!(g["recent_events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["type"] == "clicked"));
    assert_eq!(
        step_of(&g, "welcome_promo").as_deref(),
        Some("check_clicked_welcome_profile")
    );
    assert_eq!(g["journeys"][0]["paused"], true);
    assert!(d.delivery("gina", "promo_code").is_none());
    // Paused survives a restart.
    d.kill();
    d.spawn();
    assert_eq!(
        step_of(&d.contact("gina"), "welcome_promo").as_deref(),
        Some("check_clicked_welcome_profile")
    );
    let (_, list) = d.admin_call("GET", "/v1/journeys", None);
    let w = list["journeys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "welcome_promo")
        .unwrap()
        .clone();
    assert_eq!(w["paused"], true);

    // Resume: the click made during the pause answers the check, and the promo goes.
    let out = d.cli(&["resume", "welcome_promo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for("gina's promo after resume", 30, || {
        d.delivery("gina", "promo_code")
    });
    assert_eq!(d.sign_up("ivan").0, 200);
    wait_for("ivan enrolled after resume", 30, || {
        d.delivery("ivan", "welcome")
    });

    // Status: per step and per message figures.
    let (s, v) = d.admin_call("GET", "/v1/journeys/welcome_promo", None);
    assert_eq!(s, 200);
    assert_eq!(v["totals"]["entered"], 2, "{v}");
    let step = |n: &str| {
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(step("welcome")["entered"], 2);
    assert_eq!(step("check_clicked_welcome_profile")["waiting"], 1, "{v}");
    assert_eq!(step("promo_code")["exited"], 1);
    let msg = |n: &str| {
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["message"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(msg("welcome")["sent"], 2);
    assert_eq!(msg("welcome")["delivered"], 2);
    assert_eq!(msg("welcome")["clicked"], 1);
    assert_eq!(msg("promo_code")["sent"], 1);
    let out = d.cli(&["status", "welcome_promo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("check_clicked_welcome_profile"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("promo_code") && l.contains("email")),
        "{text}"
    );
    let out = d.cli(&["status"]);
    assert!(
        stdout(&out).contains("onboard") && stdout(&out).contains("paused"),
        "{}",
        stdout(&out)
    );
    // The cluster: this daemon alone, at work (on PostgreSQL, holding every partition).
    let out = d.cli(&["status", "--cluster"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    let this = text
        .lines()
        .find(|l| l.contains("(this one)"))
        .unwrap_or_else(|| panic!("{text}"));
    let store = if std::env::var("JOURNEY_TEST_POSTGRES").as_deref() == Ok("1") {
        assert!(this.contains(" 64 ") && this.contains("0-63"), "{text}");
        "store: postgres; 64 partitions, 64 held by this daemon"
    } else {
        assert!(this.contains(" 1 ") && this.contains(" 0"), "{text}");
        "store: sled (one daemon; no partitions)"
    };
    assert!(text.contains(store), "{text}");

    // The CLI's event command goes through the same API.
    d.put_email("jill");
    let out = d.cli(&[
        "event",
        "send",
        "jill",
        "form_compiled",
        "formName=addUser",
        "--context",
        "web",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for("jill's welcome", 30, || d.delivery("jill", "welcome"));
}

#[test]
fn plan_deploy_refusals_and_sighup() {
    let tmp = tempfile::tempdir().unwrap();
    copy_welcome(tmp.path());
    let d = Daemon::start(tmp.path());
    assert_eq!(d.sign_up("kim").0, 200);
    wait_for("kim at the check", 30, || {
        (step_of(&d.contact("kim"), "welcome_promo").as_deref()
            == Some("check_clicked_welcome_profile"))
        .then_some(())
    });
    let v1 = version(&d, "welcome_promo");

    // A working copy of the journeys, edited: the check waits 4 days, the promo is reworded.
    let work = tmp.path().join("work");
    copy_welcome(&work);
    let wdir = work.join("journeys");
    let wd = wdir.to_str().unwrap();
    let out = d.cli(&["plan", "--dir", wd]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Plan: 0 new, 0 changed, 0 removed, 1 unchanged."),
        "{}",
        stdout(&out)
    );
    edit(&wdir, "within 3d", "within 4d");
    edit(
        &wdir,
        "\"Your promotional code\"",
        "\"Your code, as promised\"",
    );
    let out = d.cli(&["plan", "--dir", wd]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = stdout(&out);
    assert!(plan.contains("~ journey welcome_promo"), "{plan}");
    assert!(
        plan.contains("migrate by name: 1 contact in flight moves"),
        "{plan}"
    );
    assert!(
        plan.contains("~ step check_clicked_welcome_profile  (1 contact at this step)"),
        "{plan}"
    );
    assert!(plan.contains("~ step promo_code\n"), "{plan}");
    assert!(
        !plan.contains("step welcome "),
        "welcome did not change: {plan}"
    );
    assert_eq!(version(&d, "welcome_promo"), v1, "plan changed nothing");

    // A file with an error: refused with its diagnostics; the running version keeps running.
    let broken = std::fs::read_to_string(wdir.join("welcome.journey")).unwrap();
    std::fs::write(
        wdir.join("welcome.journey"),
        broken.replace(
            "check clicked welcome.profile",
            "check clicked welcom.profile",
        ),
    )
    .unwrap();
    let out = d.cli(&["deploy", "--dir", wd]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("welcome.journey:") && err.contains("unknown message 'welcom'"),
        "{err}"
    );
    assert!(err.contains("did you mean 'welcome'"), "{err}");
    assert!(err.contains("running versions keep running"), "{err}");
    assert_eq!(version(&d, "welcome_promo"), v1);

    // A `migrate by name` that strands kim at a renamed step: refused, naming the step.
    std::fs::write(
        wdir.join("welcome.journey"),
        broken.replace("check clicked welcome.profile", "check opened welcome"),
    )
    .unwrap();
    let out = d.cli(&["deploy", "--dir", wd]);
    assert!(!out.status.success());
    assert!(stdout(&out).contains("! refused"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("check_clicked_welcome_profile"),
        "{}",
        stderr(&out)
    );
    assert_eq!(version(&d, "welcome_promo"), v1);

    // The good edit deploys; kim moves to the new version at the same step.
    std::fs::write(wdir.join("welcome.journey"), &broken).unwrap();
    let out = d.cli(&["deploy", "--dir", wd]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("1 contact migrated"),
        "{}",
        stderr(&out)
    );
    let v2 = version(&d, "welcome_promo");
    assert_ne!(v2, v1);
    let k = d.contact("kim");
    assert_eq!(k["journeys"][0]["version"], json!(v2));
    assert_eq!(
        step_of(&k, "welcome_promo").as_deref(),
        Some("check_clicked_welcome_profile")
    );
    // The daemon's own journeys folder now holds what was deployed (restarts load it).
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("journeys/welcome.journey")).unwrap(),
        broken
    );

    // SIGHUP reloads the journeys folder.
    edit(
        &tmp.path().join("journeys"),
        "\"Your code, as promised\"",
        "\"Your code\"",
    );
    let pid = d.child.as_ref().unwrap().id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    wait_for("the reload", 30, || {
        (version(&d, "welcome_promo") != v2).then_some(())
    });
    // A reload with errors changes nothing and the daemon keeps serving.
    let v3 = version(&d, "welcome_promo");
    edit(&tmp.path().join("journeys"), "within 4d", "within 4 days");
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    wait_for("the refused reload in the log", 30, || {
        d.stderr().contains("reload refused").then_some(())
    });
    assert_eq!(version(&d, "welcome_promo"), v3);
    assert_eq!(d.call("GET", "/healthz", None, None).0, 200);
}

#[test]
fn contacts_import_reports_bad_rows_keeps_good_ones_and_is_safe_to_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    copy_welcome(tmp.path());
    let d = Daemon::start(tmp.path());
    let csv = tmp.path().join("people.csv");
    std::fs::write(
        &csv,
        "id,email,first_name\nlia,lia@example.com,Lia\n,nobody@example.com,Nobody\nmax,max@example.com\nned,ned@example.com,Ned\n",
    )
    .unwrap();
    for round in 0..2 {
        let out = d.cli(&["contacts", "import", csv.to_str().unwrap()]);
        assert!(!out.status.success(), "bad rows make the exit code 1");
        let err = stderr(&out);
        assert!(
            err.contains("people.csv:3: empty id"),
            "round {round}: {err}"
        );
        assert!(err.contains("people.csv:4:"), "round {round}: {err}");
        assert!(
            err.contains("imported 2 contacts; 2 bad rows"),
            "round {round}: {err}"
        );
        assert_eq!(
            d.contact("lia")["profile"],
            json!({"email": "lia@example.com", "first_name": "Lia"})
        );
        assert_eq!(d.contact("ned")["profile"]["first_name"], "Ned");
        assert!(d.contact("max").is_null());
    }
    // Cells are typed (numbers, booleans, `lists` split on `|`); an address or a time zone
    // that is wrong refuses its row, by line, and keeps the others.
    let typed = tmp.path().join("typed.csv");
    std::fs::write(
        &typed,
        "id,email,age,vip,zip,phone,lists,timezone\n\
         tia,tia@example.com,34,TRUE,00123,5550100,newsletter|vip,Europe/Rome\n\
         bad1,not-an-address,1,false,1,1,,\n\
         bad2,b2@example.com,1,false,1,1,,Mars/Olympus\n",
    )
    .unwrap();
    let out = d.cli(&["contacts", "import", typed.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(
        err.contains("typed.csv:3: email: 'not-an-address'"),
        "{err}"
    );
    assert!(err.contains("typed.csv:4: timezone"), "{err}");
    assert!(err.contains("imported 1 contact; 2 bad rows"), "{err}");
    assert_eq!(
        d.contact("tia")["profile"],
        json!({"email": "tia@example.com", "age": 34, "vip": true, "zip": "00123",
               "phone": "5550100", "lists": ["newsletter", "vip"], "timezone": "Europe/Rome"})
    );
    assert!(d.contact("bad1").is_null() && d.contact("bad2").is_null());

    let jsonl = tmp.path().join("people.jsonl");
    std::fs::write(&jsonl, "{\"id\": \"oli\", \"plan\": \"pro\"}\nnot json\n{\"email\": \"x@example.com\"}\n{\"id\": \"lia\", \"plan\": \"free\"}\n").unwrap();
    let out = d.cli(&["contacts", "import", jsonl.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(err.contains("people.jsonl:2: not JSON"), "{err}");
    assert!(err.contains("people.jsonl:3: no \"id\""), "{err}");
    assert_eq!(d.contact("oli")["profile"]["plan"], "pro");
    // An upsert merges: lia keeps her email and gets a plan.
    assert_eq!(
        d.contact("lia")["profile"],
        json!({"email": "lia@example.com", "first_name": "Lia", "plan": "free"})
    );
}

/// The example config, as shipped, starts the daemon: a comment that mentions `${NAME}` is
/// not substituted (it once failed on it), and the variables its values name are enough.
#[test]
fn the_example_config_starts_as_shipped() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        root.join("journey.example.yaml"),
        tmp.path().join("journey.yaml"),
    )
    .unwrap();
    copy_welcome(tmp.path());
    let mut cmd = std::process::Command::new(BIN);
    cmd.args([
        "serve",
        "--config",
        "journey.yaml",
        "--listen",
        "127.0.0.1:0",
    ])
    .current_dir(tmp.path())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    for var in [
        "JOURNEY_SECRET",
        "SMTP_PASSWORD",
        "SMS_INBOUND_TOKEN",
        "TWILIO_SID",
        "TWILIO_TOKEN",
        "FCM_ACCESS_TOKEN",
    ] {
        cmd.env(var, format!("test-{var}"));
    }
    cmd.env("JOURNEY_LOG", "info");
    let mut child = cmd.spawn().unwrap();
    let lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let listening = lines.map_while(Result::ok).find_map(|l| {
        log.push_str(&l);
        log.push('\n');
        journey::cli::serve::listening_url(&l)
    });
    let _ = child.kill();
    let _ = child.wait();
    let base = listening.unwrap_or_else(|| panic!("the example config did not start:\n{log}"));
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    assert!(tmp.path().join("data").is_dir(), "the example's data_dir");
}

/// What a newcomer hit: a second daemon on the same data directory says the store is in
/// use; a method a route does not take answers the JSON error shape; a command without a
/// token says how to give one.
#[test]
fn a_newcomers_mistakes_get_clear_answers() {
    let tmp = tempfile::tempdir().unwrap();
    copy_welcome(tmp.path());
    let d = Daemon::start(tmp.path());

    // A second daemon on the same store is refused (on a database it would wait as a
    // standby instead: `store_postgres` tests that).
    if !sled_only("a second daemon on a database waits as a standby") {
        let second = std::process::Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(tmp.path().join("journey.yaml"))
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&second.stderr);
        assert!(!second.status.success(), "{err}");
        assert!(err.contains("the store is in use"), "{err}");
    }

    let (s, v) = d.admin_call("DELETE", "/v1/journeys", None);
    assert_eq!(s, 405, "{v}");
    assert_eq!(v["code"], "method_not_allowed", "{v}");
    assert!(v["message"].as_str().unwrap().contains("DELETE"), "{v}");

    let out = std::process::Command::new(BIN)
        .args(["status", "--server", &d.base])
        .env_remove("JOURNEY_TOKEN")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--token") && err.contains("JOURNEY_TOKEN"),
        "{err}"
    );
}

/// Plans (`entry segment … at|every …`) keep their schedule in `journey status` and
/// `GET /v1/journeys/{name}`, with the next run; a one-shot plan already in the past is a
/// warning at deploy.
#[test]
fn plans_show_their_schedule_and_a_past_one_warns() {
    let tmp = tempfile::tempdir().unwrap();
    copy_welcome(tmp.path());
    let d = Daemon::start(tmp.path());
    let plans = r#"segment everyone {
  title "Everyone"
  rule all: contact.email starts with ""
}

journey weekly {
  entry segment everyone every monday 09:00 Europe/Rome
  entry segment everyone at 2020-01-01 10:00 Europe/Rome
  policy none
  send email digest { subject "Digest" text "Hi" }
}
"#;
    let dir = tmp.path().join("journeys");
    std::fs::write(dir.join("plans.journey"), plans).unwrap();
    let out = d.cli(&["deploy", "--dir", dir.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(
            "journey weekly: `entry segment everyone at 2020-01-01 10:00 Europe/Rome` is in the past"
        ),
        "{err}"
    );
    let (s, j) = d.admin_call("GET", "/v1/journeys/weekly", None);
    assert_eq!(s, 200, "{j}");
    assert_eq!(
        j["entries"],
        json!([
            "segment everyone every monday 09:00 Europe/Rome",
            "segment everyone at 2020-01-01 10:00 Europe/Rome"
        ])
    );
    let next = j["schedules"][0]["next_run"].as_str().unwrap();
    let next = chrono::DateTime::parse_from_rfc3339(next)
        .unwrap()
        .with_timezone(&chrono_tz::Europe::Rome);
    use chrono::{Datelike, Timelike};
    assert_eq!(
        (next.weekday(), next.hour(), next.minute()),
        (chrono::Weekday::Mon, 9, 0),
        "{j}"
    );
    assert!(next.timestamp() > chrono::Utc::now().timestamp(), "{j}");
    assert_eq!(j["schedules"][1]["next_run"], Value::Null, "{j}");
    let out = d.cli(&["status", "weekly"]);
    let text = stdout(&out);
    assert!(
        text.contains("entry segment everyone every monday 09:00 Europe/Rome: next run"),
        "{text}"
    );
    assert!(text.contains("will not run again"), "{text}");
}

/// `JOURNEY_LOG_FORMAT=json`: every line the daemon logs is a JSON object, and with
/// `tower_http=debug` each request gets one (the request log). Nothing goes to stdout: the
/// address is the `listening` line's `addr`, and the first admin token is in
/// `data/admin-token` (mode 0600), which the log names without the token.
#[test]
fn logs_can_be_json_with_a_line_per_request() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    copy_welcome(tmp.path());
    let config = Daemon::config(tmp.path(), "127.0.0.1:0", "");
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .env("JOURNEY_LOG_FORMAT", "json")
        .env("JOURNEY_LOG", "info,tower_http=debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut stderr = String::new();
    let base = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            stderr.push_str(&l);
            stderr.push('\n');
            journey::cli::serve::listening_url(&l)
        })
        .expect("the daemon listens");
    let health = agent().get(&format!("{base}/healthz")).call().unwrap();
    assert_eq!(health.status(), 200);
    let _ = child.kill();
    for l in lines.map_while(Result::ok) {
        stderr.push_str(&l);
        stderr.push('\n');
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.stdout.is_empty(), "the daemon writes nothing to stdout");
    // The first start's admin token: in its file, and only there.
    let token = std::fs::read_to_string(tmp.path().join("data/admin-token")).unwrap();
    let token = token.trim();
    assert!(token.starts_with("jt_admin_"), "{token}");
    assert!(!stderr.contains(token), "the token is in the log");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tmp.path().join("data/admin-token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    assert!(
        stderr.lines().any(|l| l.contains("admin-token")
            && serde_json::from_str::<Value>(l).is_ok_and(|v| v["fields"]["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("admin-token")))),
        "the log says where the token is:\n{stderr}"
    );
    let mut requests = 0;
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        if v["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("tower_http"))
            && line.contains("/healthz")
        {
            requests += 1;
        }
    }
    assert!(requests >= 1, "no request line for /healthz in:\n{stderr}");
}
