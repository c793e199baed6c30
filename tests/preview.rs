//! The author's loop: `journey preview` and `journey send-test` through the built binary,
//! and the daemon's `…/preview` and `…/test` endpoints, with a real SMTP server on
//! 127.0.0.1 receiving the test sends.

mod daemon_common;
mod support;

use daemon_common::{copy_welcome, events_of_type, sled_only, Daemon, BIN};
use journey::engine::Contact;
use journey::store::{Store, WriteBatch};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};
use support::smtp::SmtpServer;

const JOURNEY: &str = r#"journey welcome {
  entry api
  send email hello {
    subject "Welcome, {{ contact.first_name | default('friend') }}"
    from "Maison <hello@maison.example>"
    template "hello.html"
    link shop "https://maison.example/shop?c={{ contact.id }}"
  }
}

journey other {
  entry api
  send email hello {
    subject "Other"
    text "Other"
  }
  send sms nudge {
    text "Shop: {{ link('shop') }}"
    link shop "https://maison.example/s"
  }
}

journey viewed {
  entry event "viewed"
  send sms back {
    text "{{ event.product }} is back ({{ event.context }})"
  }
}
"#;

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

fn journeys(dir: &Path) {
    write(
        dir,
        &[
            ("main.journey", JOURNEY),
            (
                "templates/hello.html",
                "<html><body><p>Hi {{ contact.first_name }}</p>\n<a href=\"{{ link('shop') }}\">Shop</a>\n{% include \"partials/footer.html\" %}</body></html>",
            ),
            (
                "templates/partials/footer.html",
                "<footer><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a>\n{{ contact.city | default('') }}</footer>",
            ),
        ],
    );
}

fn journey(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn preview_prints_the_message_as_it_would_be_sent() {
    let tmp = tempfile::tempdir().unwrap();
    journeys(tmp.path());
    let file = tmp.path().join("main.journey");
    let file = file.to_str().unwrap();
    let profile = r#"{"id": "ann", "email": "ann@example.com", "first_name": "<Ann>"}"#;
    let out = journey(&[
        "preview",
        file,
        "--message",
        "welcome.hello",
        "--profile",
        profile,
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["subject"], "Welcome, <Ann>");
    assert_eq!(p["from"], "Maison <hello@maison.example>");
    assert_eq!(p["to"], "ann@example.com");
    assert_eq!(p["contact"], "ann");
    let html = p["html"].as_str().unwrap();
    assert!(html.contains("<p>Hi &lt;Ann&gt;</p>"), "{html}");
    assert!(
        html.contains("<footer><a href=\"http://127.0.0.1:8080/u/"),
        "the partial: {html}"
    );
    assert!(html.contains("/t/o/"), "the open pixel: {html}");
    assert!(p["text"].as_str().unwrap().contains("Hi <Ann>"), "{p}");
    let links = p["links"].as_array().unwrap();
    assert_eq!(links.len(), 1, "{p}");
    assert_eq!(links[0]["name"], "shop");
    assert_eq!(links[0]["target"], "https://maison.example/shop?c=ann");
    let tracked = links[0]["url"].as_str().unwrap();
    assert!(
        tracked.starts_with("http://127.0.0.1:8080/t/c/"),
        "{tracked}"
    );
    assert!(html.contains(tracked));

    // The text view has the same, for people; html alone is the HTML part.
    let out = journey(&[
        "preview",
        file,
        "--message",
        "welcome.hello",
        "--profile",
        profile,
    ]);
    let t = text(&out.stdout);
    assert!(t.contains("Subject: Welcome, <Ann>\n"), "{t}");
    assert!(t.contains("To: ann@example.com\n"), "{t}");
    assert!(
        t.contains("shop -> https://maison.example/shop?c=ann\n"),
        "{t}"
    );
    let out = journey(&[
        "preview",
        file,
        "--message",
        "welcome.hello",
        "--profile",
        profile,
        "--format",
        "html",
    ]);
    assert_eq!(text(&out.stdout), html);

    // An SMS: its link becomes a short URL, shown with its target; nothing is stored.
    let out = journey(&[
        "preview",
        file,
        "--message",
        "nudge",
        "--profile",
        r#"{"phone": "+15550100"}"#,
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["to"], "+15550100");
    assert_eq!(p["links"][0]["target"], "https://maison.example/s");
    let short = p["links"][0]["url"].as_str().unwrap();
    assert_eq!(p["text"], format!("Shop: {short}"));
}

#[test]
fn preview_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    journeys(tmp.path());
    let file = tmp.path().join("main.journey");
    let file = file.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["preview", file];
        all.extend_from_slice(args);
        let out = journey(&all);
        (out.status.code(), text(&out.stderr))
    };
    let (code, err) = run(&["--message", "nope"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains(
            "no message 'nope' (messages: other.hello, other.nudge, viewed.back, welcome.hello)"
        ),
        "{err}"
    );
    let (code, err) = run(&["--message", "hello"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains(
            "message 'hello' is in several journeys: name one of other.hello, welcome.hello"
        ),
        "{err}"
    );
    let (code, err) = run(&["--message", "welcome.hello", "--profile", "{not json"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--profile is not JSON"), "{err}");
    let (code, err) = run(&["--message", "welcome.hello", "--profile", "[1]"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--profile must be a JSON object"), "{err}");
    // A render error names the template (here the partial) and its line.
    let (code, err) = run(&[
        "--message",
        "welcome.hello",
        "--profile",
        r#"{"email": "a@example.com", "first_name": "A"}"#,
    ]);
    assert_eq!(code, Some(0), "{err}");
    write(
        tmp.path(),
        &[(
            "templates/partials/footer.html",
            "<footer>\n{{ contact.city }}</footer>",
        )],
    );
    let (code, err) = run(&[
        "--message",
        "welcome.hello",
        "--profile",
        r#"{"email": "a@example.com", "first_name": "A"}"#,
    ]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("partials/footer.html line 2: undefined variable 'contact.city'"),
        "{err}"
    );
    // Templates see the entry event given with --event.
    let phone = r#"{"phone": "+15550100"}"#;
    let (code, err) = run(&["--message", "back", "--profile", phone]);
    assert_eq!(code, Some(1));
    assert!(err.contains("undefined variable 'event.product'"), "{err}");
    let out = journey(&[
        "preview",
        file,
        "--message",
        "back",
        "--profile",
        phone,
        "--event",
        r#"{"product": "Red Shoes", "context": "web"}"#,
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["text"], "Red Shoes is back (web)");
    let (code, err) = run(&["--message", "back", "--profile", phone, "--event", "[]"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--event must be a JSON object"), "{err}");
    // No such store, and no such contact in one.
    let (code, err) = run(&[
        "--message",
        "welcome.hello",
        "--contact",
        "ann",
        "--data",
        "/nonexistent",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no journey store here"), "{err}");
    let data = tmp.path().join("data");
    let store = Store::open(&data.join("store")).unwrap();
    let mut b = WriteBatch::default();
    let mut ann = Contact {
        id: "ann".into(),
        profile: Default::default(),
    };
    ann.profile.insert("email".into(), "ann@example.com".into());
    ann.profile.insert("first_name".into(), "Ann".into());
    ann.profile.insert("city".into(), "Rome".into());
    b.put_contact(&ann);
    store.apply(b).unwrap();
    store.flush().unwrap();
    // While the store is open (a daemon runs on it), it says so.
    let d = data.to_str().unwrap();
    let (code, err) = run(&[
        "--message",
        "welcome.hello",
        "--contact",
        "ann",
        "--data",
        d,
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("the store is in use"), "{err}");
    drop(store);
    let (code, err) = run(&[
        "--message",
        "welcome.hello",
        "--contact",
        "bob",
        "--data",
        d,
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no contact 'bob' in"), "{err}");
    let out = journey(&[
        "preview",
        file,
        "--message",
        "welcome.hello",
        "--contact",
        "ann",
        "--data",
        d,
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["to"], "ann@example.com");
    assert!(p["html"].as_str().unwrap().contains("Rome</footer>"), "{p}");
}

/// The daemon's preview and test send, and `journey send-test` with the same config, to a
/// real SMTP server; the test event counts in no report.
#[test]
fn the_daemon_previews_and_sends_tests_through_smtp() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let smtp = SmtpServer::start(&rt);
    let tmp = tempfile::tempdir().unwrap();
    copy_welcome(tmp.path());
    let extra = format!(
        "email:\n  from: \"Maison <hello@maison.example>\"\n  smtp:\n    host: 127.0.0.1\n    port: {}\n    security: none\n",
        smtp.addr.port()
    );
    let mut d = Daemon::start_with(tmp.path(), &extra);
    let (s, v) = d.admin_call(
        "PUT",
        "/v1/contacts/ann",
        Some(&json!({"email": "ann@example.com", "first_name": "Ann"})),
    );
    assert_eq!(s, 200, "{v}");
    let base = "/v1/journeys/welcome_promo/messages/welcome";

    // Preview: read scope is enough; ingest is not.
    let config = tmp.path().join("journey.yaml");
    let config = config.to_str().unwrap();
    let token = |scope: &str| {
        let out = d.cli(&["token", "create", "--scope", scope, "--config", config]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    };
    let (read, ingest) = (token("read"), token("ingest"));
    let url = format!("{base}/preview?contact=ann");
    let (s, p) = d.call("GET", &url, Some(&read), None);
    assert_eq!(s, 200, "{p}");
    assert_eq!(d.call("GET", &url, Some(&ingest), None).0, 403);
    assert_eq!(d.call("GET", &url, None, None).0, 401);
    let (s, e) = d.call(
        "POST",
        &format!("{base}/test"),
        Some(&read),
        Some(&json!({"to": "a@example.com"})),
    );
    assert_eq!(s, 403, "a test send needs admin: {e}");
    let (s, p) = d.admin_call("GET", &url, None);
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["to"], "ann@example.com");
    assert_eq!(p["subject"], "Welcome to Maison, Ann");
    assert_eq!(p["from"], "Maison <hello@maison.example>");
    assert!(
        p["html"]
            .as_str()
            .unwrap()
            .contains("You receive this because"),
        "the footer partial: {p}"
    );
    assert_eq!(
        p["links"][0]["target"],
        "https://maison.example/profile?c=ann"
    );
    let (s, e) = d.admin_call("GET", &format!("{base}/preview?contact=nobody"), None);
    assert_eq!(
        (s, e["message"].as_str()),
        (404, Some("no contact 'nobody'"))
    );
    let (s, e) = d.admin_call(
        "GET",
        "/v1/journeys/welcome_promo/messages/nope/preview?contact=ann",
        None,
    );
    assert_eq!(s, 404, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("has no message 'nope'"),
        "{e}"
    );
    assert_eq!(smtp.count(), 0, "a preview sends nothing");

    // Test send through the daemon: to the given address, not the contact's.
    let (s, t) = d.admin_call(
        "POST",
        &format!("{base}/test"),
        Some(&json!({"to": "author@maison.example", "contact": "ann"})),
    );
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["subject"], "[test] Welcome to Maison, Ann");
    let got = smtp.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].to, vec!["author@maison.example".to_string()]);
    let mail = text(&got[0].data);
    assert!(
        mail.contains("Subject: [test] Welcome to Maison, Ann"),
        "{mail}"
    );
    assert!(mail.contains("To: author@maison.example"), "{mail}");
    assert!(!mail.contains("ann@example.com"), "{mail}");
    // Its links work and record nothing; its unsubscribe link changes nothing.
    let msg = mail_parser::MessageParser::default()
        .parse(&got[0].data)
        .unwrap();
    let html = msg.body_html(0).unwrap().to_string();
    let url_of = |marker: &str| -> String {
        let at = html
            .find(marker)
            .unwrap_or_else(|| panic!("{marker} in {html}"));
        let rest = &html[at..];
        rest[..rest.find('"').unwrap()].to_string()
    };
    let click = url_of(&format!("{}/t/c/", d.base));
    let (s, location) = d.redirect(&click[d.base.len()..]);
    assert_eq!(s, 302);
    assert_eq!(
        location.as_deref(),
        Some("https://maison.example/profile?c=ann")
    );
    let pixel = url_of(&format!("{}/t/o/", d.base));
    assert_eq!(d.redirect(&pixel[d.base.len()..]).0, 200);
    let unsubscribe = url_of(&format!("{}/u/", d.base));
    let page = d
        .agent
        .post(&unsubscribe)
        .send_string("List-Unsubscribe=One-Click")
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        page.contains("from a test send: nothing was changed"),
        "{page}"
    );
    let c = d.contact("ann");
    for kind in ["clicked", "opened", "unsubscribed", "subscription.changed"] {
        assert!(events_of_type(&c, kind).is_empty(), "{kind}: {c}");
    }
    let (s, e) = d.admin_call(
        "POST",
        &format!("{base}/test"),
        Some(&json!({"contact": "ann"})),
    );
    assert_eq!((s, e["code"].as_str()), (400, Some("missing_to")));
    // Not an address: the request's fault, a 400 (schemathesis found it answered a 502, as if
    // the provider had refused it); nothing is recorded.
    let (s, e) = d.admin_call(
        "POST",
        &format!("{base}/test"),
        Some(&json!({"to": "not an address", "contact": "ann"})),
    );
    assert_eq!((s, e["code"].as_str()), (400, Some("invalid_to")), "{e}");

    // Recorded as message.test on the contact; no report counts it.
    let c = d.contact("ann");
    let tests = events_of_type(&c, "message.test");
    assert_eq!(tests.len(), 1, "{c}");
    assert_eq!(tests[0]["properties"]["to"], "author@maison.example");
    assert!(events_of_type(&c, "message.sent").is_empty(), "{c}");
    let (s, r) = d.admin_call("GET", "/v1/journeys/welcome_promo/report", None);
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["entered"], 0, "{r}");
    for m in r["messages"].as_array().unwrap() {
        for k in ["received", "opened", "clicked", "failed"] {
            assert_eq!(m[k]["total"], 0, "{k} of {m}");
        }
    }
    let (s, a) = d.admin_call("GET", &format!("{base}/audience?who=recipients"), None);
    assert_eq!(s, 200, "{a}");
    assert!(!a.to_string().contains("\"ann\""), "{a}");

    // `journey send-test` with the daemon's config: a sled store is in use, so a send for
    // a contact is refused before anything goes; without --contact it goes. (A database is
    // not locked: that check is sled's.)
    let send_to_ann = |d: &Daemon| {
        d.cli(&[
            "send-test",
            "welcome_promo.welcome",
            "--to",
            "cli@maison.example",
            "--contact",
            "ann",
            "--config",
            config,
        ])
    };
    if !sled_only("sled's lock refuses a second process") {
        let out = send_to_ann(&d);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("the store is in use"),
            "{}",
            text(&out.stderr)
        );
        assert_eq!(smtp.count(), 1);
    }
    d.terminate();
    let out = send_to_ann(&d);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = smtp.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].to, vec!["cli@maison.example".to_string()]);
    assert!(text(&got[1].data).contains("Subject: [test] Welcome to Maison, Ann"));
    // The daemon's store: its database when the config names one.
    let yaml = std::fs::read_to_string(tmp.path().join("journey.yaml")).unwrap();
    let store = match yaml.lines().find_map(|l| l.trim().strip_prefix("url: ")) {
        Some(url) => Store::connect(url).unwrap(),
        None => Store::open(&tmp.path().join("data/store")).unwrap(),
    };
    let tests: Vec<_> = store
        .events_of("ann")
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "message.test")
        .collect();
    assert_eq!(tests.len(), 2);
    drop(store);
    // Bad input: no such message, a missing config file.
    let out = d.cli(&[
        "send-test",
        "welcome_promo.nope",
        "--to",
        "x@example.com",
        "--config",
        config,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("journey 'welcome_promo' has no message 'nope'"),
        "{}",
        text(&out.stderr)
    );
    let out = d.cli(&[
        "send-test",
        "welcome_promo.welcome",
        "--to",
        "x@example.com",
        "--config",
        "/nonexistent.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("/nonexistent.yaml"),
        "{}",
        text(&out.stderr)
    );
}
