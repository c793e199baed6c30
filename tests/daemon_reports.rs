//! Reports and audiences from a running daemon: `journey serve` as a child process, contacts
//! enrolled in the welcome journey, opens and clicks through the tracking endpoints, then the
//! admin API's report, audience, segment and trend answers, the same four commands asking the
//! daemon (no `--data`), their errors, and, once the daemon has stopped, the same commands
//! reading its store offline, which must print exactly what they printed through the daemon.

mod daemon_common;

use daemon_common::*;
use journey::engine::TokenKind;
use serde_json::{json, Value};
use std::process::Output;

/// Two audiences of the welcome email, beside the welcome journey.
const SEGMENTS: &str = r#"segment welcome_openers {
  rule opened: opened journey welcome_promo
}

segment welcome_non_openers {
  rule received: received journey welcome_promo
  except rule opened: opened journey welcome_promo
}
"#;

/// The contacts and their addresses: two at gmail.com, one at libero.it, one at outlook.com.
const PEOPLE: [(&str, &str); 4] = [
    ("angela", "angela@gmail.com"),
    ("bruno", "bruno@gmail.com"),
    ("carla", "carla@libero.it"),
    ("dario", "dario@outlook.com"),
];

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The command's stdout, after checking it succeeded.
fn ok(o: Output, what: &str) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{what}:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// A GET answered with text: (status, content type, body).
fn get_text(d: &Daemon, path: &str) -> (u16, String, String) {
    let r = d
        .agent
        .get(&format!("{}{path}", d.base))
        .set("authorization", &format!("Bearer {}", d.admin))
        .call();
    let resp = match r {
        Ok(resp) => resp,
        Err(ureq::Error::Status(_, resp)) => resp,
        Err(e) => panic!("GET {path}: {e}"),
    };
    let status = resp.status();
    let kind = resp.header("content-type").unwrap_or_default().to_string();
    (status, kind, resp.into_string().unwrap())
}

/// The daemon's answer, after checking it is a 200.
fn get(d: &Daemon, path: &str) -> Value {
    let (s, v) = d.admin_call("GET", path, None);
    assert_eq!(s, 200, "GET {path}: {v}");
    v
}

/// Asserts an error answer: the status, `{code, message}`, and words of the message.
fn refused(d: &Daemon, path: &str, status: u16, words: &str) {
    let (s, v) = d.admin_call("GET", path, None);
    assert_eq!(s, status, "GET {path}: {v}");
    assert!(v["code"].is_string(), "GET {path}: {v}");
    let m = v["message"].as_str().unwrap_or_default();
    assert!(
        m.contains(words),
        "GET {path}: '{m}' does not say '{words}'"
    );
}

fn contacts_of(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["contact"].as_str().unwrap())
        .collect()
}

/// Tomorrow (UTC), as a date: the end of the trend's period in both runs.
fn tomorrow() -> String {
    (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string()
}

/// The commands and arguments run through the daemon, then offline over its store.
fn commands(until: &str) -> Vec<Vec<String>> {
    let at = tomorrow();
    [
        vec!["report", "welcome_promo"],
        vec![
            "report",
            "welcome_promo",
            "--message",
            "welcome",
            "--format",
            "json",
        ],
        vec!["audience", "welcome_promo.welcome", "--who", "openers"],
        vec![
            "audience",
            "welcome_promo.welcome",
            "--who",
            "clickers",
            "--link",
            "profile",
        ],
        vec![
            "audience",
            "welcome_promo.welcome",
            "--who",
            "non-openers",
            "--format",
            "jsonl",
        ],
        vec!["audience", "welcome_promo.welcome", "--who", "recipients"],
        vec!["segment", "welcome_openers", "--count", "--at", &at],
        vec!["segment", "welcome_non_openers", "--list", "--at", &at],
        vec!["segment", "welcome_openers", "--list", "--stored"],
        vec![
            "trend", "domains", "--metric", "open", "--period", "2w", "--until", until,
        ],
        vec![
            "trend", "domains", "--metric", "bounce", "--period", "2w", "--until", until,
            "--format", "csv",
        ],
    ]
    .into_iter()
    .map(|c| c.into_iter().map(String::from).collect())
    .collect()
}

#[test]
fn reports_and_audiences_from_the_running_daemon_and_offline() {
    if sled_only("its offline half reads the sled store directory, which a running daemon locks") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    copy_welcome(tmp.path());
    std::fs::write(tmp.path().join("journeys/audiences.journey"), SEGMENTS).unwrap();
    let mut d = Daemon::start(tmp.path());

    // Four sign-ups; each gets the welcome email.
    for (id, email) in PEOPLE {
        let (s, v) = d.admin_call(
            "PUT",
            &format!("/v1/contacts/{id}"),
            Some(&json!({ "email": email })),
        );
        assert_eq!(s, 200, "{v}");
        let (s, v) = d.post_events(json!({"contact": id, "type": "form_compiled", "properties": {"formName": "addUser"}, "context": "web"}));
        assert_eq!(s, 200, "{v}");
    }
    let welcome: Vec<Value> = PEOPLE
        .iter()
        .map(|(id, _)| wait_for("the welcome delivery", 30, || d.delivery(id, "welcome")))
        .collect();

    // angela opens twice and clicks the profile link; bruno opens; carla and dario do nothing.
    for (who, times) in [(0, 2), (1, 1)] {
        for _ in 0..times {
            let t = d.sign(&welcome[who], TokenKind::Open, None, None);
            assert_eq!(d.call("GET", &format!("/t/o/{t}"), None, None).0, 200);
        }
    }
    let t = d.sign(
        &welcome[0],
        TokenKind::Click,
        Some("profile"),
        Some("https://maison.example/profile"),
    );
    assert_eq!(d.call("GET", &format!("/t/c/{t}"), None, None).0, 302);
    wait_for("angela's promo code", 30, || {
        d.delivery("angela", "promo_code")
    });

    // The report: per message, received, opened, clicked (contacts and events), links, domains.
    let r = get(&d, "/v1/journeys/welcome_promo/report");
    assert_eq!(r["journey"], "welcome_promo");
    assert_eq!(r["entered"], 4);
    let names: Vec<&str> = r["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["welcome", "promo_code"]);
    let m = &r["messages"][0];
    assert_eq!(m["channel"], "email");
    assert_eq!(m["received"], json!({"unique": 4, "total": 4}));
    assert_eq!(m["opened"], json!({"unique": 2, "total": 3}));
    assert_eq!(m["clicked"], json!({"unique": 1, "total": 1}));
    assert_eq!(m["bounced"], json!({"unique": 0, "total": 0}));
    assert_eq!(m["links"][0]["link"], "profile");
    assert_eq!(m["links"][0]["clicks"], json!({"unique": 1, "total": 1}));
    let gmail = &m["domains"][0];
    assert_eq!(gmail["domain"], "gmail.com");
    assert_eq!(gmail["received"]["unique"], 2);
    assert_eq!(gmail["opened"]["unique"], 2);
    assert_eq!(
        r["messages"][1]["received"],
        json!({"unique": 1, "total": 1})
    );
    let only = get(&d, "/v1/journeys/welcome_promo/report?message=promo_code");
    assert_eq!(only["messages"].as_array().unwrap().len(), 1);
    assert_eq!(only["messages"][0]["message"], "promo_code");

    // Audiences: JSON by default, or the lists the CLI prints.
    let audience = "/v1/journeys/welcome_promo/messages/welcome/audience";
    let openers = get(&d, &format!("{audience}?who=openers"));
    assert_eq!(contacts_of(&openers), ["angela", "bruno"]);
    assert_eq!(openers[0]["opens"], 2);
    assert_eq!(openers[0]["links"], json!({"profile": 1}));
    assert_eq!(openers[0]["email"], "angela@gmail.com");
    let clickers = get(&d, &format!("{audience}?who=clickers&link=profile"));
    assert_eq!(contacts_of(&clickers), ["angela"]);
    for (who, expected) in [
        ("non-openers", vec!["carla", "dario"]),
        ("inactive", vec!["carla", "dario"]),
        ("active", vec!["angela", "bruno"]),
        ("recipients", vec!["angela", "bruno", "carla", "dario"]),
    ] {
        let v = get(&d, &format!("{audience}?who={who}"));
        assert_eq!(contacts_of(&v), expected, "who={who}");
    }
    let (s, kind, csv) = get_text(&d, &format!("{audience}?who=non-openers&format=csv"));
    assert_eq!(s, 200);
    assert!(kind.starts_with("text/csv"), "{kind}");
    assert_eq!(
        csv,
        "contact,email,received,opens,clicks,links,first_opened,first_clicked\n\
         carla,carla@libero.it,1,0,0,,,\n\
         dario,dario@outlook.com,1,0,0,,,\n"
    );
    let (s, kind, jsonl) = get_text(&d, &format!("{audience}?who=clickers&format=jsonl"));
    assert_eq!(s, 200);
    assert_eq!(kind, "application/x-ndjson");
    let line: Value = serde_json::from_str(jsonl.trim()).unwrap();
    assert_eq!(line["contact"], "angela");
    assert_eq!(line["links"], json!({"profile": 1}));

    // Segments: evaluated now (or at a moment), or the membership the runtime keeps.
    let v = get(&d, "/v1/segments/welcome_openers");
    assert_eq!(v["count"], 2);
    assert!(v.get("members").is_none(), "{v}");
    let v = get(&d, "/v1/segments/welcome_non_openers?list=true");
    assert_eq!(v["count"], 2);
    assert_eq!(v["members"], json!(["carla", "dario"]));
    let v = get(&d, "/v1/segments/welcome_openers?list=true&at=2020-01-01");
    assert_eq!(v["count"], 0, "nobody had opened in 2020: {v}");
    let stored = wait_for("the kept membership of the openers", 30, || {
        let v = get(&d, "/v1/segments/welcome_openers?list=true&stored=true");
        (v["count"] == 2).then_some(v)
    });
    assert_eq!(stored["members"], json!(["angela", "bruno"]));

    // The trend for recipient domains: every delivery is in the period ending tomorrow.
    let until = tomorrow();
    let t = get(
        &d,
        &format!("/v1/trend/domains?metric=open&period=2w&group=week&top=10&until={until}"),
    );
    assert_eq!(t["metric"], "open");
    let rows: Vec<(String, u64, u64)> = t["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let d = d.clone();
            (
                d["domain"].as_str().unwrap().to_string(),
                d["deliveries"].as_u64().unwrap(),
                d["hits"].as_u64().unwrap(),
            )
        })
        .collect();
    // gmail.com: angela's welcome and promo code, bruno's welcome; both welcomes opened.
    assert_eq!(
        rows,
        [
            ("gmail.com".to_string(), 3, 2),
            ("libero.it".to_string(), 1, 0),
            ("outlook.com".to_string(), 1, 0)
        ]
    );
    assert_eq!(t["all"]["deliveries"], 5);
    assert_eq!(t["all"]["hits"], 2);
    let t = get(&d, "/v1/trend/domains?metric=bounce&top=1");
    assert_eq!(t["domains"].as_array().unwrap().len(), 1);
    assert_eq!(t["all"]["hits"], 0);

    // Unknown things are 404s, bad questions 400s, each with the reason.
    refused(
        &d,
        "/v1/journeys/welcome_promp/report",
        404,
        "did you mean 'welcome_promo'",
    );
    refused(
        &d,
        "/v1/journeys/welcome_promo/report?message=welcom",
        404,
        "no message 'welcom'",
    );
    refused(
        &d,
        "/v1/journeys/welcome_promo/report?mesage=welcome",
        400,
        "mesage",
    );
    refused(
        &d,
        "/v1/journeys/nope/messages/welcome/audience?who=openers",
        404,
        "no journey 'nope'",
    );
    refused(
        &d,
        &format!("{}?who=openers", audience.replace("/welcome/", "/welcom/")),
        404,
        "did you mean 'welcome'",
    );
    refused(&d, &format!("{audience}?who=readers"), 400, "readers");
    refused(&d, audience, 400, "who");
    refused(
        &d,
        &format!("{audience}?who=openers&link=profile"),
        400,
        "clickers",
    );
    refused(
        &d,
        &format!("{audience}?who=openers&format=xml"),
        400,
        "xml",
    );
    refused(
        &d,
        "/v1/segments/welcome_opener",
        404,
        "did you mean 'welcome_openers'",
    );
    refused(
        &d,
        "/v1/segments/welcome_openers?at=yesterday",
        400,
        "not a time",
    );
    refused(
        &d,
        "/v1/segments/welcome_openers?at=2026-01-01&stored=true",
        400,
        "one of them",
    );
    refused(&d, "/v1/segments/welcome_openers?list=maybe", 400, "list");
    refused(&d, "/v1/trend/domains?period=3x", 400, "not a period");
    refused(&d, "/v1/trend/domains?metric=clicks", 400, "clicks");
    refused(&d, "/v1/trend/domains?until=soon", 400, "not a time");
    refused(&d, "/v1/trend/domains?top=many", 400, "top");
    refused(
        &d,
        "/v1/trend/domains?period=40y&group=day",
        400,
        "group by a longer time",
    );
    refused(&d, "/v1/trend/domains?color=red", 400, "color");
    // Admin scope: no token is a 401, an ingest token a 403.
    let (s, _) = d.call("GET", "/v1/journeys/welcome_promo/report", None, None);
    assert_eq!(s, 401);
    let config = tmp.path().join("journey.yaml");
    let o = d.cli(&[
        "token",
        "create",
        "--scope",
        "ingest",
        "--config",
        config.to_str().unwrap(),
    ]);
    let ingest = ok(o, "token create").trim().to_string();
    for path in [
        "/v1/journeys/welcome_promo/report",
        &format!("{audience}?who=openers"),
        "/v1/segments/welcome_openers",
        "/v1/trend/domains",
    ] {
        let (s, v) = d.call("GET", path, Some(&ingest), None);
        assert_eq!(s, 403, "GET {path}: {v}");
    }

    // The commands, without --data, ask the daemon.
    let through_daemon: Vec<String> = commands(&until)
        .iter()
        .map(|c| {
            let args: Vec<&str> = c.iter().map(String::as_str).collect();
            ok(d.cli(&args), &c.join(" "))
        })
        .collect();
    let report = &through_daemon[0];
    assert!(report.starts_with("journey welcome_promo: "), "{report}");
    assert!(report.contains("entered: 4 contacts"), "{report}");
    let welcome_block = report.split("\n\n").nth(1).unwrap();
    for row in [
        "  received                  4        4",
        "  opened                    2        3    50.0%",
        "  clicked                   1        1    25.0%",
        "    profile                 1        1  https://maison.example/profile?c={{ contact.id }}",
        "    gmail.com               2        2        1        0    100.0%",
        "    libero.it               1        0        0        0      0.0%",
    ] {
        assert!(
            welcome_block.lines().any(|l| l == row),
            "no line '{row}' in:\n{welcome_block}"
        );
    }
    let json: Value = serde_json::from_str(&through_daemon[1]).unwrap();
    assert_eq!(
        json["messages"][0]["opened"],
        json!({"unique": 2, "total": 3})
    );
    assert!(through_daemon[2].starts_with(
        "contact,email,received,opens,clicks,links,first_opened,first_clicked\nangela,angela@gmail.com,1,2,1,profile:1,"
    ), "{}", through_daemon[2]);
    assert_eq!(through_daemon[2].lines().count(), 3);
    assert_eq!(through_daemon[3].lines().count(), 2);
    assert_eq!(through_daemon[4].lines().count(), 2);
    let line: Value = serde_json::from_str(through_daemon[4].lines().next().unwrap()).unwrap();
    assert_eq!(line["contact"], "carla");
    assert_eq!(through_daemon[6], "2\n");
    assert_eq!(through_daemon[7], "carla\ndario\n");
    assert_eq!(through_daemon[8], "angela\nbruno\n");
    let trend = &through_daemon[9];
    assert!(
        trend.starts_with("Trend for recipient domains: open rate"),
        "{trend}"
    );
    let gmail = trend.lines().find(|l| l.starts_with("gmail.com")).unwrap();
    assert!(gmail.contains("   3   66.7%"), "{trend}");
    let all = trend
        .lines()
        .find(|l| l.starts_with("all domains"))
        .unwrap();
    assert!(all.contains("   5   40.0%"), "{trend}");
    assert!(through_daemon[10].starts_with("domain,period,deliveries,hits,rate\n"));

    // Errors through the daemon: the reason, and exit 1 for unknown things, 2 for bad questions.
    let o = d.cli(&["report", "welcome_promp"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("did you mean 'welcome_promo'"),
        "{}",
        stderr(&o)
    );
    let o = d.cli(&["segment", "welcome_opener", "--count"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no segment 'welcome_opener'"),
        "{}",
        stderr(&o)
    );
    let o = d.cli(&["trend", "domains", "--period", "3x"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not a period"), "{}", stderr(&o));
    let o = d.cli(&[
        "audience",
        "welcome_promo.welcome",
        "--who",
        "openers",
        "--link",
        "profile",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("clickers"), "{}", stderr(&o));
    let o = d.cli(&["report", "welcome_promo", "--token", "jt_admin_wrong"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown token"), "{}", stderr(&o));
    // While the daemon runs, its store cannot be opened by another process.
    let store = d.data().join("store");
    let o = d.cli(&["report", "welcome_promo", "--data", store.to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("in use"), "{}", stderr(&o));

    // Stopped, the daemon answers nothing, and the commands say what to do.
    assert!(d.terminate().success(), "{}", d.stderr());
    let o = d.cli(&["report", "welcome_promo"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("journey serve") && e.contains("--data DIR"),
        "{e}"
    );

    // Offline, over the daemon's store: the same output, to the byte.
    let journeys = tmp.path().join("journeys");
    for (c, expected) in commands(&until).iter().zip(&through_daemon) {
        let mut args: Vec<&str> = c.iter().map(String::as_str).collect();
        args.extend(["--data", store.to_str().unwrap()]);
        if c[0] == "segment" {
            args.extend(["--journeys", journeys.to_str().unwrap()]);
        }
        let offline = ok(d.cli(&args), &args.join(" "));
        assert_eq!(
            &offline,
            expected,
            "journey {} differs offline",
            c.join(" ")
        );
    }
}
