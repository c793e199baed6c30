//! The daemon end to end over real HTTP and real SMTP: `journey serve` as a child process,
//! its email provider an SMTP server this test runs in-process on 127.0.0.1 (the `mailin`
//! state machine of `tests/support/smtp.rs`). An event enrols a contact in the welcome
//! journey of `journeys/`; the welcome email arrives over SMTP; the daemon is SIGKILLed and
//! started again on the same data; the tracked link taken out of the email's HTML is
//! fetched; the promo email arrives. Every wait polls with a deadline.

mod daemon_common;
mod support;

use daemon_common::*;
use mail_parser::{Message, MessageParser, MimeHeaders};
use serde_json::{json, Value};
use support::smtp::{Received, SmtpServer};

const FROM: &str = "Maison <hello@maison.example>";
const PROFILE: &str = "https://maison.example/profile?c=angela";

/// A port of 127.0.0.1 free now. The daemon gets a fixed port, not 0, because the links in
/// an email sent before the restart must still reach the daemon after it.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The SMTP server (on its runtime, to keep alive) and a folder with the welcome journey.
fn smtp_and_welcome() -> (tokio::runtime::Runtime, SmtpServer, tempfile::TempDir) {
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let smtp = SmtpServer::start(&servers);
    let tmp = tempfile::tempdir().unwrap();
    copy_welcome(tmp.path());
    (servers, smtp, tmp)
}

/// The config after the `server:` block: SMTP without TLS to the test's server.
fn smtp_config(smtp: &SmtpServer, public_url: Option<&str>) -> String {
    let public = public_url
        .map(|u| format!("public_url: {u}\n"))
        .unwrap_or_default();
    format!(
        "{public}email:\n  from: \"{FROM}\"\n  smtp:\n    host: 127.0.0.1\n    port: {}\n    security: none\n    timeout_seconds: 10\nretry:\n  base_delay_ms: 10\n  max_delay_ms: 100\n",
        smtp.addr.port()
    )
}

fn parse(r: &Received) -> Message<'_> {
    MessageParser::default()
        .parse(&r.data)
        .expect("the email parses as MIME")
}

fn subjects(smtp: &SmtpServer) -> Vec<String> {
    smtp.received()
        .iter()
        .map(|r| parse(r).subject().unwrap_or_default().to_string())
        .collect()
}

/// The URLs of the `href`s of an HTML body, in order.
fn hrefs(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().replace("&amp;", "&"))
        .collect()
}

/// Sends committed and not yet reported delivered or failed, from /metrics.
fn outbox_depth(d: &Daemon) -> u64 {
    let text = d
        .agent
        .get(&format!("{}/metrics", d.base))
        .call()
        .expect("/metrics answers")
        .into_string()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("journey_outbox_depth "))
        .expect("journey_outbox_depth in /metrics")
        .trim()
        .parse()
        .unwrap()
}

fn clicks(c: &Value) -> usize {
    c["recent_events"]
        .as_array()
        .map(|es| es.iter().filter(|e| e["type"] == "clicked").count())
        .unwrap_or(0)
}

#[test]
fn welcome_over_smtp_survives_a_kill_and_its_tracked_link_brings_the_promo() {
    let (_servers, smtp, tmp) = smtp_and_welcome();
    let base = format!("http://127.0.0.1:{}", free_port());
    let listen = base.trim_start_matches("http://");
    let mut d = Daemon::start_on(tmp.path(), listen, &smtp_config(&smtp, Some(&base)));
    assert_eq!(d.base, base);

    // The entry event: the welcome email arrives at the SMTP server.
    let (s, v) = d.sign_up("angela");
    assert_eq!(s, 200, "{v}");
    wait_for("the welcome email over SMTP", 60, || {
        (smtp.count() >= 1).then_some(())
    });
    let got = smtp.received();
    assert_eq!(got.len(), 1, "{:?}", subjects(&smtp));
    let welcome = &got[0];
    assert_eq!(welcome.from, "hello@maison.example");
    assert_eq!(welcome.to, vec!["angela@example.com".to_string()]);
    let msg = parse(welcome);
    assert_eq!(msg.subject(), Some("Welcome to Maison, friend"));
    let to = msg.to().and_then(|a| a.first()).expect("a To header");
    assert_eq!(to.address(), Some("angela@example.com"));
    let from = msg.from().and_then(|a| a.first()).expect("a From header");
    assert_eq!(from.name(), Some("Maison"));
    assert_eq!(from.address(), Some("hello@maison.example"));
    let ct = msg.content_type().expect("a Content-Type");
    assert_eq!(
        (ct.ctype(), ct.subtype()),
        ("multipart", Some("alternative"))
    );
    let html = msg.body_html(0).expect("an HTML part").to_string();
    let text = msg.body_text(0).expect("a text part").to_string();
    assert!(html.contains("Welcome to Maison, friend!"), "{html}");
    assert!(text.contains("Welcome to Maison, friend!"), "{text}");
    // RFC 8058 one-click unsubscribe, pointing at this daemon.
    let unsubscribe = msg
        .list_unsubscribe()
        .as_address()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .expect("a List-Unsubscribe URL")
        .to_string();
    assert!(
        unsubscribe.starts_with(&format!("{base}/u/")),
        "{unsubscribe}"
    );
    assert_eq!(
        msg.header_raw("List-Unsubscribe-Post").map(str::trim),
        Some("List-Unsubscribe=One-Click")
    );
    // The profile link is tracked: it points at the daemon, not at the target.
    assert!(!html.contains(PROFILE), "untracked link in {html}");
    let tracked: Vec<String> = hrefs(&html)
        .into_iter()
        .filter(|u| u.starts_with(&format!("{base}/t/c/")))
        .collect();
    assert_eq!(tracked.len(), 1, "one tracked link (profile) in {html}");
    let profile_link = tracked[0].clone();
    assert!(text.contains(&profile_link), "{text}");
    assert!(html.contains(&unsubscribe), "unsubscribe link in the body");

    // The send is recorded and angela waits at the check.
    let sent = wait_for("the welcome delivery recorded", 60, || {
        d.delivery("angela", "welcome")
    });
    assert_eq!(
        msg.header_raw("X-Journey-Message-Id").map(str::trim),
        sent["message_id"].as_str()
    );
    wait_for("angela waiting at the check", 60, || {
        let c = d.contact("angela");
        (step_of(&c, "welcome_promo").as_deref() == Some("check_clicked_welcome_profile"))
            .then_some(())
    });

    // SIGKILL and start again on the same data and port: angela keeps her place.
    d.kill();
    d.spawn();
    assert_eq!(d.base, base);
    let c = d.contact("angela");
    assert_eq!(
        step_of(&c, "welcome_promo").as_deref(),
        Some("check_clicked_welcome_profile"),
        "the restart lost angela's place: {c}"
    );
    assert!(d.delivery("angela", "promo_code").is_none(), "{c}");

    // The click, on the link as the email carries it: recorded, and redirected.
    let resp = d
        .agent
        .get(&profile_link)
        .call()
        .expect("the tracked link answers");
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.header("location"), Some(PROFILE));

    // The promo email arrives.
    wait_for("the promo email over SMTP", 60, || {
        (smtp.count() >= 2).then_some(())
    });
    wait_for("the promo delivery recorded", 60, || {
        d.delivery("angela", "promo_code")
    });
    let c = wait_for("angela's journey completed", 60, || {
        let c = d.contact("angela");
        (c["journeys"][0]["ended"] == "completed").then_some(c)
    });
    assert_eq!(
        c["journeys"][0]["path"],
        json!(["welcome", "check_clicked_welcome_profile", "promo_code"]),
        "{c}"
    );
    assert_eq!(clicks(&c), 1, "{c}");
    // Nothing is left to send, so nothing more can arrive: exactly one of each, across the
    // restart too.
    wait_for("an empty outbox", 60, || {
        (outbox_depth(&d) == 0).then_some(())
    });
    assert_eq!(
        subjects(&smtp),
        vec![
            "Welcome to Maison, friend".to_string(),
            "Your promotional code".to_string()
        ]
    );
    let promo = &smtp.received()[1];
    assert_eq!(promo.to, vec!["angela@example.com".to_string()]);
    let promo = parse(promo);
    assert!(promo.body_html(0).is_some() && promo.body_text(0).is_some());
    let ds = d.deliveries("angela");
    assert_eq!(ds.iter().filter(|x| x["message"] == "welcome").count(), 1);
    assert_eq!(
        ds.iter().filter(|x| x["message"] == "promo_code").count(),
        1
    );
}

#[test]
fn without_public_url_links_point_at_the_address_the_daemon_listens_on() {
    let (_servers, smtp, tmp) = smtp_and_welcome();
    // Port 0: only the daemon knows its port, and its links must name it.
    let d = Daemon::start_on(tmp.path(), "127.0.0.1:0", &smtp_config(&smtp, None));
    let (s, v) = d.sign_up("bruno");
    assert_eq!(s, 200, "{v}");
    wait_for("the welcome email over SMTP", 60, || {
        (smtp.count() >= 1).then_some(())
    });
    let got = smtp.received();
    let html = parse(&got[0]).body_html(0).unwrap().to_string();
    let link = hrefs(&html)
        .into_iter()
        .find(|u| u.contains("/t/c/"))
        .unwrap_or_else(|| panic!("a tracked link in {html}"));
    assert!(
        link.starts_with(&format!("{}/t/c/", d.base)),
        "{link} does not point at {}",
        d.base
    );
    let resp = d.agent.get(&link).call().expect("the tracked link answers");
    assert_eq!(resp.status(), 302);
    assert_eq!(
        resp.header("location"),
        Some("https://maison.example/profile?c=bruno")
    );
}
