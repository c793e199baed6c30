//! `journey report`, `audience`, `segment` and `trend` as users run them, over stores filled
//! by runs on a virtual clock: the April newsletter example (`journey simulate --data`), and
//! eight weeks of a weekly digest to five recipient domains, one of which starts filtering
//! the mail as spam and one of which starts refusing it.

mod support;
use support::store::*;

use journey::compile::{self, ir::Program};
use journey::engine::{Contact, Event, Millis, SendJob};
use journey::lang;
use journey::runtime::{Delivery, Input, Runtime, Sink};
use journey::store::Store;
use serde_json::{json, Map};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn journey(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_journey"))
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .expect("the journey binary runs")
}

fn ok(args: &[&str]) -> String {
    let o = journey(args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "journey {}:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn err(args: &[&str]) -> String {
    let o = journey(args);
    assert_ne!(
        o.status.code(),
        Some(0),
        "journey {} succeeded",
        args.join(" ")
    );
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
    String::from_utf8(o.stderr).unwrap()
}

/// The April newsletter scenario, run into a store kept in a temporary directory.
fn newsletter_store() -> (tempfile::TempDir, String) {
    let tmp = tempfile::tempdir().unwrap();
    let d = store_location(&tmp.path().join("store"));
    ok(&[
        "simulate",
        "journeys/newsletter_retarget.scenario.yaml",
        "--data",
        &d,
    ]);
    (tmp, d)
}

#[test]
fn report_of_the_april_newsletter() {
    let (_tmp, d) = newsletter_store();
    insta::assert_snapshot!(
        "report_april_newsletter",
        ok(&["report", "april_newsletter", "--data", &d])
    );
    insta::assert_snapshot!(
        "report_sale_followup",
        ok(&["report", "april_sale_followup", "--data", &d])
    );
    let json = ok(&[
        "report",
        "april_newsletter",
        "--message",
        "april_issue",
        "--format",
        "json",
        "--data",
        &d,
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let m = &v["messages"][0];
    assert_eq!(m["message"], "april_issue");
    assert_eq!(m["received"], json!({"unique": 7, "total": 7}));
    // carla's click implies her open (images off): 5 openers, 6 opens.
    assert_eq!(m["opened"], json!({"unique": 5, "total": 6}));
    assert_eq!(m["clicked"], json!({"unique": 2, "total": 4}));
    let sale = m["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["link"] == "sale")
        .unwrap();
    assert_eq!(sale["clicks"], json!({"unique": 2, "total": 3}));
    insta::assert_snapshot!("report_april_newsletter_json", json);
}

/// A scenario of `journeys/`, run into a store kept in a temporary directory.
fn example_store(scenario: &str) -> (tempfile::TempDir, String) {
    let tmp = tempfile::tempdir().unwrap();
    let d = store_location(&tmp.path().join("store"));
    ok(&["simulate", scenario, "--data", &d]);
    (tmp, d)
}

#[test]
fn report_of_a_holdout_compares_conversion_with_the_treated() {
    let (_tmp, d) = example_store("journeys/launch.scenario.yaml");
    let text = ok(&["report", "product_launch", "--data", &d]);
    // ivo, the one contact of the 20% holdout, bought without an email; the six treated
    // did not: the emails "lost" 100 points.
    assert!(text.contains("holdout 20%: goal conversion"), "{text}");
    assert!(
        text.contains("lift: -100.0 points absolute, -100.0% relative"),
        "{text}"
    );
    let json = ok(&["report", "product_launch", "--format", "json", "--data", &d]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        v["holdout"]["holdout"],
        json!({"contacts": 1, "converted": 1, "rate": 100.0})
    );
    assert_eq!(
        v["holdout"]["treated"],
        json!({"contacts": 6, "converted": 0, "rate": 0.0})
    );
    assert_eq!(v["holdout"]["absolute_lift"], json!(-100.0));
    // Nothing was sent to ivo: arm a's email reached angela and bruno only.
    assert_eq!(v["messages"][0]["message"], json!("launch_a"));
    assert_eq!(
        v["messages"][0]["received"],
        json!({"unique": 2, "total": 2})
    );
}

#[test]
fn report_of_an_experiment_shows_arms_rates_and_the_winner_chosen() {
    // The store outlives the run that chose the winner: the choice is read back from it.
    let (_tmp, d) = example_store("journeys/launch.scenario.yaml");
    let json = ok(&["report", "product_launch", "--format", "json", "--data", &d]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let x = &v["experiments"][0];
    assert_eq!(x["experiment"], json!("subject_line"));
    assert_eq!(x["metric"], json!("clicked"));
    assert_eq!(x["winner_share"], json!(50.0));
    assert_eq!(
        x["arms"],
        json!([
            {"arm": "a", "contacts": 2, "successes": 1, "rate": 50.0},
            {"arm": "b", "contacts": 2, "successes": 2, "rate": 100.0}
        ])
    );
    assert_eq!(x["winner"], json!("b"));
    // Chosen when the first contact of the winner share ended its day of waiting.
    assert_eq!(x["chosen_at"], json!(1772528400000_i64));
    assert_eq!(x["rates_at_choice"], x["arms"]);
    let text = ok(&["report", "product_launch", "--data", &d]);
    assert!(
        text.contains("winner: b (chosen 2026-03-03T09:00:00Z for the 50% winner share"),
        "{text}"
    );
}

#[test]
fn report_counts_instances_and_contacts_apart() {
    let (_tmp, d) = example_store("journeys/abandoned_cart.scenario.yaml");
    let json = ok(&["report", "abandoned_cart", "--format", "json", "--data", &d]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    // angela's two carts are two instances of one contact.
    assert_eq!(v["entered"], json!(3));
    assert_eq!(v["instances"], json!(4));
    assert!(v.get("holdout").is_none());
    let text = ok(&["report", "abandoned_cart", "--data", &d]);
    assert!(text.contains("entered: 3 contacts (4 instances)"), "{text}");
}

#[test]
fn audiences_of_the_april_newsletter() {
    let (_tmp, d) = newsletter_store();
    let mut all = String::new();
    for who in ["openers", "clickers", "non-openers", "active", "inactive"] {
        all += &format!("--who {who}\n");
        all += &ok(&[
            "audience",
            "april_newsletter.april_issue",
            "--who",
            who,
            "--data",
            &d,
        ]);
    }
    all += "--who clickers --link sale (jsonl)\n";
    all += &ok(&[
        "audience",
        "april_newsletter.april_issue",
        "--who",
        "clickers",
        "--link",
        "sale",
        "--format",
        "jsonl",
        "--data",
        &d,
    ]);
    insta::assert_snapshot!("audiences_april_newsletter", all);
}

#[test]
fn segments_counted_and_listed_over_the_store() {
    let (_tmp, d) = newsletter_store();
    let at = "2026-04-12T00:00:00Z";
    let count = |name: &str| {
        ok(&[
            "segment",
            name,
            "--count",
            "--journeys",
            "journeys",
            "--data",
            &d,
            "--at",
            at,
        ])
        .trim()
        .to_string()
    };
    // carla clicked without an open recorded: the click implies it.
    assert_eq!(count("april_openers"), "5");
    assert_eq!(count("april_non_openers"), "1");
    assert_eq!(count("april_sale_clickers"), "2");
    assert_eq!(count("newsletter_subscribers"), "7");
    let list = ok(&[
        "segment",
        "april_non_openers",
        "--list",
        "--journeys",
        "journeys",
        "--data",
        &d,
        "--at",
        at,
    ]);
    assert_eq!(list, "dario\n");
    // The membership the runtime kept is the same.
    let stored = ok(&[
        "segment",
        "april_non_openers",
        "--list",
        "--stored",
        "--journeys",
        "journeys",
        "--data",
        &d,
    ]);
    assert_eq!(stored, list);
    // Before the newsletter went out, nobody had received it.
    let before = ok(&[
        "segment",
        "april_non_openers",
        "--count",
        "--journeys",
        "journeys",
        "--data",
        &d,
        "--at",
        "2026-04-07T07:59:00Z",
    ]);
    assert_eq!(before.trim(), "0");
}

#[test]
fn errors_say_what_to_do() {
    let (_tmp, d) = newsletter_store();
    let e = err(&["report", "april_newsleter", "--data", &d]);
    assert!(e.contains("did you mean 'april_newsletter'"), "{e}");
    let e = err(&[
        "audience",
        "april_newsletter.april_isue",
        "--who",
        "openers",
        "--data",
        &d,
    ]);
    assert!(e.contains("did you mean 'april_issue'"), "{e}");
    let e = err(&[
        "audience",
        "april_newsletter",
        "--who",
        "openers",
        "--data",
        &d,
    ]);
    assert!(e.contains("JOURNEY.MESSAGE"), "{e}");
    let e = err(&["report", "x", "--data", "/nonexistent/store"]);
    assert!(e.contains("--data DIR"), "{e}");
    let e = err(&[
        "segment",
        "april_opener",
        "--count",
        "--journeys",
        "journeys",
        "--data",
        &d,
    ]);
    assert!(e.contains("did you mean 'april_openers'"), "{e}");
    let e = err(&["trend", "domains", "--period", "3x", "--data", &d]);
    assert!(e.contains("not a period"), "{e}");
    if on_postgres() {
        return; // the rest is about sled's lock
    }
    // A store in use by a running daemon cannot be opened.
    let store = Store::open(Path::new(&d)).unwrap();
    let e = err(&["report", "april_newsletter", "--data", &d]);
    assert!(e.contains("in use"), "{e}");
    drop(store);
}

// ------------------------------------------------------------------ the domain trend

const WEEKLY: &str = r#"
segment weekly_readers { rule r: in list "weekly" }
journey weekly_digest {
  entry segment weekly_readers every monday 09:00
  reentry always
  policy none
  send email digest {
    subject "This week"
    text "News: {{ link('read') }}"
    link read "https://maison.example/week"
  }
}
"#;

/// Recipients: (id, domain). 16 at gmail.com, 10 at libero.it, 8 at outlook.com, 4 at
/// yahoo.it, 2 at tiscali.it.
fn recipients() -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for (domain, n) in [
        ("gmail.com", 16),
        ("libero.it", 10),
        ("outlook.com", 8),
        ("yahoo.it", 4),
        ("tiscali.it", 2),
    ] {
        for i in 0..n {
            out.push((format!("{}{i:02}", &domain[..3]), domain));
        }
    }
    out
}

const WEEK: Millis = 7 * 86_400_000;

fn week_of(t: Millis, start: Millis) -> i64 {
    (t - start) / WEEK
}

/// outlook.com refuses half of its mailboxes from the fifth week on; one tiscali.it
/// mailbox never existed.
struct Provider {
    domains: BTreeMap<String, &'static str>,
    start: Millis,
    delivered: Vec<(SendJob, Millis, bool)>,
}

impl Sink for Provider {
    fn deliver(&mut self, job: &SendJob, now: Millis) -> Delivery {
        let domain = self.domains[&job.contact];
        let n: u32 = job.contact[3..].parse().unwrap();
        let refused =
            (domain == "outlook.com" && week_of(now, self.start) >= 4 && n.is_multiple_of(2))
                || job.contact == "tis00";
        self.delivered.push((job.clone(), now, refused));
        if refused {
            Delivery::Bounced("550 5.1.1 no such user".into())
        } else {
            Delivery::Sent
        }
    }
}

/// Of ten recipients of a domain, how many open: libero.it drops to 1 in 10 from the fourth
/// week on (its spam filter took the digest).
fn opens_per_ten(domain: &str, week: i64) -> u32 {
    match domain {
        "gmail.com" => 6,
        "libero.it" if week >= 3 => 1,
        "libero.it" => 5,
        "outlook.com" => 4,
        "yahoo.it" => 5,
        _ => 3,
    }
}

fn digest_store(dir: &Path) {
    let program: Program = {
        let mut loaded = lang::Loaded::default();
        lang::add_source(&mut loaded, "w.journey", WEEKLY.into());
        compile::compile(&loaded).program.unwrap()
    };
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-05T00:00:00Z")
        .unwrap()
        .timestamp_millis(); // a Monday
    let until = start + 8 * WEEK;
    let mut rt = Runtime::new(open_at(dir), start, chrono_tz::UTC).unwrap();
    rt.deploy(program, start).unwrap();
    let people = recipients();
    for (id, domain) in &people {
        rt.upsert_contact(&Contact {
            id: id.clone(),
            profile: Map::from_iter([
                ("email".to_string(), json!(format!("{id}@{domain}"))),
                ("lists".to_string(), json!(["weekly"])),
            ]),
        })
        .unwrap();
    }
    let mut sink = Provider {
        domains: people.iter().map(|(i, d)| (i.clone(), *d)).collect(),
        start,
        delivered: Vec::new(),
    };
    let mut now = start;
    let mut timeline = Vec::new();
    while let Some(t) = rt.next_wake().unwrap().filter(|t| *t < until) {
        now = now.max(t);
        let before = sink.delivered.len();
        rt.tick(now, &mut sink, &mut timeline).unwrap();
        // Two hours later, the opens of this round of deliveries; from the sixth week the
        // yahoo.it provider reports one of them as bounced.
        let mut engagement = Vec::new();
        for (job, at, refused) in sink.delivered[before..].iter().cloned() {
            if refused {
                continue;
            }
            let domain = sink.domains[&job.contact];
            let n: u32 = job.contact[3..].parse().unwrap();
            let week = week_of(at, start);
            let kind = if domain == "yahoo.it" && week >= 5 && n == 0 {
                "bounced"
            } else if n % 10 < opens_per_ten(domain, week) {
                "opened"
            } else {
                continue;
            };
            engagement.push(Input::Event(Event {
                contact: job.contact.clone(),
                kind: kind.into(),
                at: at + 2 * 3_600_000,
                journey: Some(job.journey.clone()),
                message: Some(job.message.clone()),
                message_id: Some(job.message_id.clone()),
                ..Event::default()
            }));
        }
        if !engagement.is_empty() {
            rt.run_at(engagement, now + 2 * 3_600_000, &mut sink, &mut timeline)
                .unwrap();
            now += 2 * 3_600_000;
        }
    }
    // A bounced address is suppressed from then on: every week's send is either handed to
    // the provider or suppressed (outlook.com's 4 refused mailboxes for 3 weeks, tis00 for 7,
    // yah00 for 2).
    let suppressed = timeline
        .iter()
        .filter(|t| matches!(t.happening, journey::engine::Happening::Suppressed { .. }))
        .count();
    assert_eq!(suppressed, 4 * 3 + 7 + 2);
    assert_eq!(sink.delivered.len() + suppressed, 8 * people.len());
}

#[test]
fn trend_for_recipient_domains() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    digest_store(&dir);
    let d = &store_location(&dir);
    let until = "2026-03-02";
    let open = ok(&[
        "trend", "domains", "--metric", "open", "--period", "8w", "--group", "week", "--top", "4",
        "--until", until, "--data", d,
    ]);
    // libero.it's open rate falls from the fourth week while the others hold.
    assert!(open.contains("libero.it"), "{open}");
    insta::assert_snapshot!("trend_open_week", open);
    let bounce = ok(&[
        "trend", "domains", "--metric", "bounce", "--period", "2m", "--group", "week", "--top",
        "10", "--until", until, "--data", d,
    ]);
    insta::assert_snapshot!("trend_bounce_week", bounce);
    let monthly = ok(&[
        "trend", "domains", "--metric", "bounce", "--period", "3m", "--group", "month", "--top",
        "2", "--until", until, "--format", "csv", "--data", d,
    ]);
    insta::assert_snapshot!("trend_bounce_month_csv", monthly);
    let report = ok(&["report", "weekly_digest", "--data", d]);
    insta::assert_snapshot!("report_weekly_digest", report);
}
