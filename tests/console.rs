//! The web console over real HTTP on 127.0.0.1: signing in, the session cookie (signed,
//! HttpOnly, SameSite=Strict, with expiry; forged and expired ones refused), every page and
//! asset refused without a session, CSRF on every form that changes something, the live
//! counts against the API's scan, and previews that cannot run script in the console's
//! origin.

mod daemon_common;

use daemon_common::*;
use journey::server::Scope;
use serde_json::Value;

const JOURNEY: &str = "welcome_promo";

struct Answer {
    status: u16,
    location: Option<String>,
    cookies: Vec<String>,
    csp: Option<String>,
    body: String,
}

fn answer(r: Result<ureq::Response, ureq::Error>, what: &str) -> Answer {
    let resp = match r {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{what}: {e}"),
    };
    Answer {
        status: resp.status(),
        location: resp.header("location").map(String::from),
        cookies: resp
            .all("set-cookie")
            .into_iter()
            .map(String::from)
            .collect(),
        csp: resp.header("content-security-policy").map(String::from),
        body: resp.into_string().unwrap_or_default(),
    }
}

fn get(d: &Daemon, path: &str, cookie: Option<&str>) -> Answer {
    let mut r = d.agent.get(&format!("{}{path}", d.base));
    if let Some(c) = cookie {
        r = r.set("cookie", c);
    }
    answer(r.call(), path)
}

fn post(d: &Daemon, path: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Answer {
    let mut r = d.agent.post(&format!("{}{path}", d.base));
    if let Some(c) = cookie {
        r = r.set("cookie", c);
    }
    answer(r.send_form(form), path)
}

/// The value of a hidden `csrf` field of a page.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..].split('"').next().unwrap().to_string()
}

/// `name=value` of a Set-Cookie header.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().trim().to_string()
}

/// Signs in with a token through the form; the session cookie (`name=value`).
fn sign_in(d: &Daemon, token: &str) -> String {
    let page = get(d, "/sign-in", None);
    assert_eq!(page.status, 200);
    let pre = pair(
        page.cookies
            .iter()
            .find(|c| c.starts_with("journey_sign_in="))
            .expect("the sign-in cookie"),
    );
    let a = post(
        d,
        "/sign-in",
        Some(&pre),
        &[
            ("token", token),
            ("csrf", &csrf_of(&page.body)),
            ("next", "/"),
        ],
    );
    assert_eq!(a.status, 303, "{}", a.body);
    let session = a
        .cookies
        .iter()
        .find(|c| c.starts_with("journey_console="))
        .expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Max-Age="] {
        assert!(session.contains(attr), "{session} lacks {attr}");
    }
    pair(session)
}

fn token(d: &Daemon, scope: &str) -> String {
    let config = d.dir.join("journey.yaml");
    let out = d.cli(&[
        "token",
        "create",
        "--scope",
        scope,
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|w| w.starts_with("jt_"))
        .expect("a token printed")
        .to_string()
}

fn daemon() -> (tempfile::TempDir, Daemon) {
    let tmp = tempfile::tempdir().unwrap();
    copy_welcome(tmp.path());
    let d = Daemon::start(tmp.path());
    (tmp, d)
}

#[test]
fn without_a_session_pages_redirect_and_the_rest_is_401() {
    let (_tmp, d) = daemon();
    // The log says where the console is and where the first admin token is.
    let log = d.stderr();
    assert!(
        log.contains(&format!("console: {}/", d.base)) && log.contains("admin-token"),
        "{log}"
    );
    d.sign_up("c1");
    let pages = [
        "/",
        &format!("/journeys/{JOURNEY}"),
        &format!("/journeys/{JOURNEY}/messages/welcome?contact=c1"),
        "/contacts",
        "/contacts?q=c1",
        "/contacts/c1",
        "/segments",
        "/segments/anything",
        "/trends",
    ];
    for p in pages {
        let a = get(&d, p, None);
        assert_eq!(a.status, 303, "GET {p} without a session: {}", a.body);
        let to = a.location.unwrap();
        assert!(to.starts_with("/sign-in?next="), "{p} → {to}");
        assert!(!a.body.contains("c1"), "{p} shows data: {}", a.body);
    }
    let data = [
        "/assets/console.css",
        "/assets/console.js",
        &format!("/journeys/{JOURNEY}/counts"),
        &format!("/journeys/{JOURNEY}/graph.svg"),
        &format!("/journeys/{JOURNEY}/messages/welcome/preview.html?contact=c1"),
        "/segments/anything/members.csv",
    ];
    for p in data {
        let a = get(&d, p, None);
        assert_eq!(a.status, 401, "GET {p} without a session: {}", a.body);
    }
    for p in [
        format!("/journeys/{JOURNEY}/pause"),
        format!("/journeys/{JOURNEY}/resume"),
        format!("/journeys/{JOURNEY}/messages/welcome/test"),
        "/sign-out".to_string(),
    ] {
        let a = post(&d, &p, None, &[("csrf", "x"), ("to", "a@example.com")]);
        assert_eq!(a.status, 401, "POST {p} without a session: {}", a.body);
    }
    // The sign-in page itself shows nothing but the form.
    let a = get(&d, "/sign-in", None);
    assert_eq!(a.status, 200);
    assert!(!a.body.contains(JOURNEY));
}

#[test]
fn forged_and_expired_cookies_and_wrong_tokens_are_refused() {
    let (_tmp, d) = daemon();
    let cookie = sign_in(&d, &d.admin.clone());
    assert_eq!(get(&d, "/", Some(&cookie)).status, 200);
    // Another scope written into the cookie: its signature no longer holds.
    let read_token = token(&d, "read");
    let read = sign_in(&d, &read_token);
    let read_fp = journey::store::credentials::fingerprint(&read_token);
    let forged = read.replacen("v1.read.", "v1.admin.", 1);
    assert_ne!(forged, read);
    assert_eq!(get(&d, "/", Some(&forged)).status, 303);
    // Signed with another secret.
    let other = journey::server::console::session_cookie_value(
        b"not the secret",
        Scope::Read,
        &read_fp,
        now(),
    );
    assert_eq!(
        get(&d, "/", Some(&format!("journey_console={other}"))).status,
        303
    );
    // Signed with the daemon's secret, but expired.
    let old = journey::server::console::session_cookie_value(
        &d.secret(),
        Scope::Read,
        &read_fp,
        now() - journey::server::console::SESSION_SECONDS - 60,
    );
    assert_eq!(
        get(&d, "/", Some(&format!("journey_console={old}"))).status,
        303
    );
    // The same, in date: accepted (the test above is about the expiry, not the form).
    let fresh =
        journey::server::console::session_cookie_value(&d.secret(), Scope::Read, &read_fp, now());
    assert_eq!(
        get(&d, "/", Some(&format!("journey_console={fresh}"))).status,
        200
    );
    // Well signed and in date, but for a token that does not exist: refused.
    let nobody = journey::server::console::session_cookie_value(
        &d.secret(),
        Scope::Admin,
        &journey::store::credentials::fingerprint("jt_nobody"),
        now(),
    );
    assert_eq!(
        get(&d, "/", Some(&format!("journey_console={nobody}"))).status,
        303
    );
    // Revoking the read token ends its sessions.
    let config = d.dir.join("journey.yaml");
    let list = d.cli(&["token", "list", "--config", config.to_str().unwrap()]);
    let listed = String::from_utf8_lossy(&list.stdout).to_string();
    let id = listed
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("read"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("the read token is listed: {listed}"))
        .to_string();
    let out = d.cli(&["token", "revoke", &id, "--config", config.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the revoked token's session to end", 10, || {
        (get(&d, "/", Some(&read)).status == 303).then_some(())
    });
    assert_eq!(get(&d, "/", Some(&cookie)).status, 200, "the admin's holds");
    // An ingest token cannot open the console; an unknown one neither.
    let page = get(&d, "/sign-in", None);
    let pre = pair(&page.cookies[0]);
    let csrf = csrf_of(&page.body);
    let a = post(
        &d,
        "/sign-in",
        Some(&pre),
        &[("token", &token(&d, "ingest")), ("csrf", &csrf)],
    );
    assert_eq!(a.status, 403);
    assert!(!a.cookies.iter().any(|c| c.starts_with("journey_console=")));
    let a = post(
        &d,
        "/sign-in",
        Some(&pre),
        &[("token", "jt_nope"), ("csrf", &csrf)],
    );
    assert_eq!(a.status, 401);
    // The sign-in form without its CSRF token (or its cookie) is refused.
    let a = post(&d, "/sign-in", Some(&pre), &[("token", &d.admin.clone())]);
    assert_eq!(a.status, 403);
    let a = post(
        &d,
        "/sign-in",
        None,
        &[("token", &d.admin.clone()), ("csrf", &csrf)],
    );
    assert_eq!(a.status, 403);
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn paused(d: &Daemon) -> bool {
    let (s, v) = d.admin_call("GET", &format!("/v1/journeys/{JOURNEY}"), None);
    assert_eq!(s, 200);
    v["paused"] == Value::Bool(true)
}

#[test]
fn pause_and_resume_need_admin_and_the_csrf_token() {
    let (_tmp, d) = daemon();
    let admin = sign_in(&d, &d.admin.clone());
    let page = get(&d, &format!("/journeys/{JOURNEY}"), Some(&admin));
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = csrf_of(&page.body);
    let path = format!("/journeys/{JOURNEY}/pause");
    // No token, a wrong one, another session's: refused, nothing paused.
    assert_eq!(post(&d, &path, Some(&admin), &[]).status, 403);
    assert_eq!(post(&d, &path, Some(&admin), &[("csrf", "0")]).status, 403);
    let admin2 = sign_in(&d, &d.admin.clone());
    assert_eq!(
        post(&d, &path, Some(&admin2), &[("csrf", &csrf)]).status,
        403
    );
    assert!(!paused(&d));
    // A read session, with its own token: refused.
    let read = sign_in(&d, &token(&d, "read"));
    let read_csrf = csrf_of(&get(&d, &format!("/journeys/{JOURNEY}"), Some(&read)).body);
    assert_eq!(
        post(&d, &path, Some(&read), &[("csrf", &read_csrf)]).status,
        403
    );
    assert!(!paused(&d));
    // Admin with the token: paused, then resumed.
    let a = post(&d, &path, Some(&admin), &[("csrf", &csrf)]);
    assert_eq!(a.status, 303, "{}", a.body);
    assert!(paused(&d));
    let page = get(&d, &format!("/journeys/{JOURNEY}"), Some(&admin));
    assert!(page.body.contains("Resume"));
    let a = post(
        &d,
        &format!("/journeys/{JOURNEY}/resume"),
        Some(&admin),
        &[("csrf", &csrf)],
    );
    assert_eq!(a.status, 303);
    assert!(!paused(&d));
    // Signing out needs the token too; then the cookie is cleared.
    assert_eq!(post(&d, "/sign-out", Some(&admin), &[]).status, 403);
    let a = post(&d, "/sign-out", Some(&admin), &[("csrf", &csrf)]);
    assert_eq!(a.status, 303);
    assert!(a.cookies.iter().any(|c| c.starts_with("journey_console=;")));
}

#[test]
fn live_counts_follow_the_events_and_match_the_apis_scan() {
    let (_tmp, d) = daemon();
    let cookie = sign_in(&d, &token(&d, "read"));
    let counts = |d: &Daemon| -> Value {
        let a = get(d, &format!("/journeys/{JOURNEY}/counts"), Some(&cookie));
        assert_eq!(a.status, 200, "{}", a.body);
        serde_json::from_str(&a.body).unwrap()
    };
    assert_eq!(counts(&d)["entered"], 0);
    for i in 0..3 {
        let (s, v) = d.sign_up(&format!("c{i}"));
        assert_eq!(s, 200, "{v}");
    }
    // The welcome email goes, then each waits in the check.
    let c = wait_for("three contacts waiting in the check", 30, || {
        let c = counts(&d);
        let waiting: i64 = c["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["waiting"].as_i64().unwrap())
            .sum();
        (c["entered"] == 3 && waiting == 3).then_some(c)
    });
    assert_eq!(c["active"], 3);
    // The goal ends one: it converts, and the counts say so.
    let (s, v) = d.post_events(serde_json::json!({"contact": "c0", "type": "profile_completed"}));
    assert_eq!(s, 200, "{v}");
    // Once the three welcome emails are delivered (their outcomes come back from the
    // channel), nothing moves any more: the figures can be compared with the API's.
    let c = wait_for("one converted, three delivered", 30, || {
        let c = counts(&d);
        (c["converted"] == 1 && c["messages"]["welcome"]["delivered"] == 3).then_some(c)
    });
    assert_eq!(c["active"], 2);
    // The same figures as the API's scan of every instance.
    let (s, api) = d.admin_call("GET", &format!("/v1/journeys/{JOURNEY}"), None);
    assert_eq!(s, 200);
    for step in api["steps"].as_array().unwrap() {
        let mine = c["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == step["step"])
            .unwrap_or_else(|| panic!("no step {} in {c}", step["step"]));
        for k in ["waiting", "entered", "exited"] {
            assert_eq!(mine[k], step[k], "{k} of {}: {c} vs {api}", step["step"]);
        }
    }
    assert_eq!(c["entered"], api["totals"]["entered"]);
    // Per message, the page's figures are the API's.
    let page_messages: Value = {
        let a = get(&d, &format!("/journeys/{JOURNEY}/counts"), Some(&cookie));
        serde_json::from_str::<Value>(&a.body).unwrap()["messages"].clone()
    };
    for m in api["messages"].as_array().unwrap() {
        let name = m["message"].as_str().unwrap();
        for k in ["sent", "delivered", "opened", "clicked", "bounced"] {
            assert_eq!(
                page_messages[name][k], m[k],
                "{k} of {name}: {page_messages} vs {api}"
            );
        }
    }
    assert_eq!(c["active"], api["totals"]["active"]);
    // The page and its graph show them.
    let page = get(&d, &format!("/journeys/{JOURNEY}"), Some(&cookie));
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<svg"), "no graph");
    assert!(page.body.contains("waiting 2"), "{}", page.body);
    // Its version, with the date it was deployed.
    let (_, j) = d.admin_call("GET", &format!("/v1/journeys/{JOURNEY}"), None);
    let version = j["version"].as_str().unwrap();
    assert!(page.body.contains(&version[..12]), "{}", page.body);
    assert!(page.body.contains("current"));
    assert!(!page.body.contains("before versions were dated"));
    let list = get(&d, "/", Some(&cookie));
    assert!(list.body.contains(JOURNEY));
    let trends = get(&d, "/trends?metric=open&period=30d", Some(&cookie));
    assert_eq!(trends.status, 200, "{}", trends.body);
    assert!(
        trends.body.contains("every domain: 3 deliveries"),
        "{}",
        trends.body
    );
    let segments = get(&d, "/segments", Some(&cookie));
    assert_eq!(segments.status, 200, "{}", segments.body);
    // After a restart the counters are rebuilt from the store: the same.
    let before = counts(&d);
    let mut d = d;
    d.kill();
    d.spawn();
    let cookie2 = sign_in(&d, &d.admin.clone());
    let a = get(&d, &format!("/journeys/{JOURNEY}/counts"), Some(&cookie2));
    let after: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(before, after);
}

#[test]
fn previews_run_no_script_in_the_consoles_origin() {
    let (_tmp, d) = daemon();
    d.sign_up("c1");
    let cookie = sign_in(&d, &d.admin.clone());
    let page = get(
        &d,
        &format!("/journeys/{JOURNEY}/messages/welcome?contact=c1"),
        Some(&cookie),
    );
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Welcome to Maison"), "{}", page.body);
    assert!(page.body.contains("<iframe") && page.body.contains("sandbox=\"\""));
    let csp = page.csp.unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let frame = get(
        &d,
        &format!("/journeys/{JOURNEY}/messages/welcome/preview.html?contact=c1"),
        Some(&cookie),
    );
    assert_eq!(frame.status, 200);
    let csp = frame.csp.unwrap();
    assert!(csp.starts_with("sandbox"), "{csp}");
    assert!(!csp.contains("script-src"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    // The test send form needs its CSRF token.
    let path = format!("/journeys/{JOURNEY}/messages/welcome/test");
    let a = post(&d, &path, Some(&cookie), &[("to", "me@example.com")]);
    assert_eq!(a.status, 403);
    let a = post(
        &d,
        &path,
        Some(&cookie),
        &[
            ("to", "me@example.com"),
            ("csrf", &csrf_of(&page.body)),
            ("contact", "c1"),
        ],
    );
    assert_eq!(a.status, 303, "{}", a.body);
    // The contact page shows the test among its events.
    let c = get(&d, "/contacts/c1", Some(&cookie));
    assert_eq!(c.status, 200);
    assert!(c.body.contains("message.test"), "{}", c.body);
    assert!(c.body.contains(JOURNEY));
    // Search by email opens the list, by id the page.
    let s = get(&d, "/contacts?q=c1%40example.com", Some(&cookie));
    assert_eq!(s.status, 200);
    assert!(s.body.contains("/contacts/c1"));
    assert_eq!(get(&d, "/contacts?q=c1", Some(&cookie)).status, 303);
    // Consent as the engine reads it: the topics' answers, and an address that bounced.
    assert!(
        c.body.contains("<dt>topic newsletter</dt><dd>"),
        "{}",
        c.body
    );
    assert!(!c.body.contains("bounced address"), "{}", c.body);
    let (s, v) = d.post_events(serde_json::json!({"contact": "c1", "type": "bounced"}));
    assert_eq!(s, 200, "{v}");
    let c = get(&d, "/contacts/c1", Some(&cookie));
    assert!(
        c.body
            .contains("<dt>bounced address</dt><dd>c1@example.com</dd>"),
        "{}",
        c.body
    );
}

#[test]
fn the_console_can_be_turned_off() {
    let tmp = tempfile::tempdir().unwrap();
    copy_welcome(tmp.path());
    let d = Daemon::start_with(tmp.path(), "  console: false\n");
    assert_eq!(get(&d, "/", None).status, 404);
    assert_eq!(get(&d, "/sign-in", None).status, 404);
}

/// Skips (false) with a message when a tool the browser test needs is missing; fails in CI
/// (`CI=true`), where `.ci/run` installs it.
fn have(tool: &str, ok: bool, how: &str) -> bool {
    if ok {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{tool} is missing in CI: {how}");
    }
    eprintln!("skipped: {tool} is missing ({how})");
    false
}

fn chromium() -> Option<String> {
    std::env::var("CHROMIUM")
        .ok()
        .into_iter()
        .chain(["/usr/bin/chromium", "/usr/bin/chromium-browser"].map(String::from))
        .find(|p| std::path::Path::new(p).is_file())
}

/// The console in headless Chromium (tests/browser/console.mjs, playwright-core): sign in,
/// the welcome journey's counts changing as events are posted, a contact, a preview, pause
/// and resume, axe-core on each page; screenshots in target/console-screenshots.
#[test]
fn in_a_browser() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let browser_dir = root.join("tests/browser");
    let node_ok = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have("node", node_ok, "apt-get install nodejs npm")
        || !have(
            "tests/browser/node_modules",
            browser_dir.join("node_modules/playwright-core").is_dir()
                && browser_dir.join("node_modules/axe-core").is_dir(),
            "npm ci --prefix tests/browser",
        )
    {
        return;
    }
    let Some(chromium) = chromium() else {
        have("chromium", false, "apt-get install chromium");
        return;
    };
    let (_tmp, d) = daemon();
    let out_dir = root.join("target/console-screenshots");
    let out = std::process::Command::new("node")
        .arg(browser_dir.join("console.mjs"))
        .env("BASE", &d.base)
        .env("ADMIN", &d.admin)
        .env("OUT", &out_dir)
        .env("CHROMIUM", &chromium)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    if !out.status.success() && text.contains("Failed to launch") {
        // Chromium is there but cannot start: a failure in CI, a skip elsewhere.
        have("a Chromium that starts", false, &text);
        return;
    }
    assert!(out.status.success(), "the browser test failed:\n{text}");
    for shot in ["sign-in", "journeys", "journey", "contact", "message"] {
        assert!(
            out_dir.join(format!("{shot}.png")).is_file(),
            "no {shot}.png"
        );
    }
}

/// A segment's page draws its size on each of the last 14 days, from the events stored: a
/// contact who bought 5 days ago counts from then, one who bought today only today.
#[test]
fn a_segments_size_is_drawn_over_two_weeks() {
    let tmp = tempfile::tempdir().unwrap();
    copy_welcome(tmp.path());
    std::fs::write(
        tmp.path().join("journeys/buyers.journey"),
        "segment buyers {\n  rule bought: event \"purchase\" at least 1 time in last 60d\n}\n",
    )
    .unwrap();
    let d = Daemon::start(tmp.path());
    let day = 86_400_000i64;
    let now = chrono::Utc::now().timestamp_millis();
    let five_days_ago = chrono::DateTime::from_timestamp_millis(now - 5 * day - 3_600_000)
        .unwrap()
        .to_rfc3339();
    let (s, v) = d.post_events(serde_json::json!([
        {"contact": "early", "type": "purchase", "timestamp": five_days_ago},
        {"contact": "late", "type": "purchase"},
    ]));
    assert_eq!(s, 200, "{v}");
    let cookie = sign_in(&d, &d.admin.clone());
    let page = get(&d, "/segments/buyers", Some(&cookie));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("aria-label=\"Size over the last 14 days\""),
        "{}",
        page.body
    );
    let label = |days_ago: i64| {
        chrono::DateTime::from_timestamp_millis(now - days_ago * day)
            .unwrap()
            .format("%m-%d")
            .to_string()
    };
    let sizes: Vec<String> = page
        .body
        .split("<title>")
        .skip(1)
        .map(|t| t.split("</title>").next().unwrap().to_string())
        .filter(|t| t.ends_with(" contacts"))
        .collect();
    assert_eq!(sizes.len(), 14, "{sizes:?}");
    assert_eq!(sizes[0], format!("{}: 0 contacts", label(13)));
    assert_eq!(sizes[7], format!("{}: 0 contacts", label(6)), "{sizes:?}");
    assert_eq!(sizes[8], format!("{}: 1 contacts", label(5)), "{sizes:?}");
    assert_eq!(sizes[13], format!("{}: 2 contacts", label(0)), "{sizes:?}");
}
