//! The daemon end to end: `journey serve` as a child process, over real HTTP on 127.0.0.1.
//!
//! Deliveries here go to the default Maildir and the click test signs its token itself (to
//! forge and alter it too); the SMTP leg, with the link read from the email, is tests/e2e.rs.

mod daemon_common;

use daemon_common::*;
use journey::channels::tracking;
use journey::engine::{Claims, TokenKind};
use serde_json::{json, Value};

fn form(contact: &str) -> Value {
    json!({"contact": contact, "type": "form_compiled", "properties": {"formName": "addUser"}, "context": "web"})
}

fn secret(d: &Daemon) -> Vec<u8> {
    d.secret()
}

fn click_token(d: &Daemon, delivery: &Value, kind: TokenKind, url: Option<&str>) -> String {
    let link = (kind == TokenKind::Click).then_some("profile");
    d.sign(delivery, kind, link, url)
}

#[test]
fn an_event_enrols_a_click_wakes_the_check_and_a_restart_keeps_the_place() {
    let tmp = tempfile::tempdir().unwrap();
    copy_welcome(tmp.path());
    let mut d = Daemon::start(tmp.path());

    let (s, v) = d.sign_up("angela");
    assert_eq!(s, 200, "{v}");
    let welcome = wait_for("the welcome delivery", 30, || {
        d.delivery("angela", "welcome")
    });
    assert_eq!(welcome["journey"], "welcome_promo");
    let c = wait_for("angela waiting at the check", 30, || {
        let c = d.contact("angela");
        (step_of(&c, "welcome_promo").as_deref() == Some("check_clicked_welcome_profile"))
            .then_some(c)
    });
    assert_eq!(
        c["journeys"][0]["path"],
        json!(["welcome", "check_clicked_welcome_profile"])
    );

    // Restart between the send and the click: SIGKILL, then start again on the same data.
    d.kill();
    d.spawn();
    let c = d.contact("angela");
    assert_eq!(
        step_of(&c, "welcome_promo").as_deref(),
        Some("check_clicked_welcome_profile"),
        "the restart lost angela's place: {c}"
    );
    assert!(d.delivery("angela", "promo_code").is_none());

    // A forged token records nothing.
    let url = "https://maison.example/profile?c=angela";
    let token = click_token(&d, &welcome, TokenKind::Click, Some(url));
    let forged = {
        let mut other = tracking::verify(&secret(&d), &token).unwrap();
        other.url = Some("https://evil.example/".into());
        tracking::sign(b"not the secret", &other)
    };
    let (s, _) = d.call("GET", &format!("/t/c/{forged}"), None, None);
    assert_eq!(s, 404);
    let (_, body_sig) = token.split_once('.').unwrap();
    let altered = format!(
        "{}.{body_sig}",
        tracking::sign(
            &secret(&d),
            &Claims {
                url: Some("https://evil.example/".into()),
                ..tracking::verify(&secret(&d), &token).unwrap()
            }
        )
        .split_once('.')
        .unwrap()
        .0
    );
    let (s, _) = d.call("GET", &format!("/t/c/{altered}"), None, None);
    assert_eq!(s, 404);
    let clicks = |c: &Value| events_of_type(c, "clicked").len();
    assert_eq!(
        clicks(&d.contact("angela")),
        0,
        "a forged click was recorded"
    );

    // The real click: recorded, redirected, and the promo follows at once.
    assert_eq!(
        d.redirect(&format!("/t/c/{token}")),
        (302, Some(url.to_string()))
    );
    let promo = wait_for("the promo delivery", 30, || {
        d.delivery("angela", "promo_code")
    });
    assert_eq!(promo["journey"], "welcome_promo");
    let c = d.contact("angela");
    assert_eq!(clicks(&c), 1);
    let j = &c["journeys"][0];
    assert_eq!(j["ended"], "completed", "{c}");
    assert_eq!(
        j["path"],
        json!(["welcome", "check_clicked_welcome_profile", "promo_code"])
    );
    // Exactly one of each message, restart or not.
    let ds = d.deliveries("angela");
    assert_eq!(ds.iter().filter(|x| x["message"] == "welcome").count(), 1);
    assert_eq!(
        ds.iter().filter(|x| x["message"] == "promo_code").count(),
        1
    );
}

#[test]
fn events_api_keeps_good_items_refuses_bad_ones_and_dedupes() {
    let tmp = tempfile::tempdir().unwrap();
    copy_welcome(tmp.path());
    let d = Daemon::start_with(
        tmp.path(),
        "  max_body_bytes: 20000\n  max_batch: 5\n  max_field_bytes: 100\n",
    );
    // No token, a wrong token, and an ingest token on an admin endpoint.
    assert_eq!(d.call("POST", "/v1/events", None, Some(&form("x"))).0, 401);
    assert_eq!(
        d.call(
            "POST",
            "/v1/events",
            Some("jt_admin_nope"),
            Some(&form("x"))
        )
        .0,
        401
    );
    let out = d.cli(&[
        "token",
        "create",
        "--scope",
        "ingest",
        "--config",
        tmp.path().join("journey.yaml").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ingest = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(ingest.starts_with("jt_ingest_"));
    let (s, v) = d.call("GET", "/v1/journeys", Some(&ingest), None);
    assert_eq!(s, 403, "{v}");
    assert!(v["message"].as_str().unwrap().contains("admin"));

    // A batch with bad items: per-item results, the good ones kept.
    let long = "x".repeat(101);
    let batch = json!([
        {"contact": "bea", "type": "page_view", "id": "evt-1"},
        {"contact": "bea", "type": ""},
        {"contact": "bea", "type": "page_view", "properties": {"note": long}},
        {"contact": "bea", "typo": "page_view"},
        {"contact": "bea", "type": "page_view", "timestamp": "yesterday"},
        {"contact": "bea", "type": "purchase", "timestamp": "2026-01-02T03:04:05Z"},
    ]);
    let (s, v) = d.call("POST", "/v1/events", Some(&ingest), Some(&batch));
    assert_eq!(s, 400, "6 items are over max_batch 5: {v}");
    assert!(v["message"].as_str().unwrap().contains("max_batch"), "{v}");
    let batch = json!(batch.as_array().unwrap()[..5].to_vec());
    let (s, v) = d.call("POST", "/v1/events", Some(&ingest), Some(&batch));
    assert_eq!(s, 207, "{v}");
    assert_eq!(v["accepted"], 1);
    assert_eq!(v["rejected"], 4);
    let errs: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["error"].as_str())
        .collect();
    assert!(errs[0].contains("type is empty"), "{errs:?}");
    assert!(errs[1].contains("max_field_bytes"), "{errs:?}");
    assert!(errs[2].contains("typo"), "{errs:?}");
    assert!(errs[3].contains("RFC 3339"), "{errs:?}");
    // The same id again: acknowledged, recorded once.
    let (s, _) = d.call(
        "POST",
        "/v1/events",
        Some(&ingest),
        Some(&json!({"contact": "bea", "type": "page_view", "id": "evt-1"})),
    );
    assert_eq!(s, 200);
    let (s, _) = d.call(
        "POST",
        "/v1/events",
        Some(&ingest),
        Some(&json!({"contact": "bea", "type": "purchase", "timestamp": "2026-01-02T03:04:05Z"})),
    );
    assert_eq!(s, 200);
    let c = d.contact("bea");
    let kinds: Vec<&str> = c["recent_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "page_view").count(),
        1,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"purchase"));
    assert!(c["recent_events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["at"] == "2026-01-02T03:04:05Z"));

    // Limits: body size → 413, a single bad event → 400 with the reason, not JSON → 400.
    let big: Vec<Value> = (0..5).map(|i| json!({"contact": format!("c{i}"), "type": "t", "properties": {"p": "y".repeat(90), "q": "z".repeat(90), "r": vec!["w".repeat(90); 60]}})).collect();
    let (s, v) = d.call("POST", "/v1/events", Some(&ingest), Some(&json!(big)));
    assert_eq!(s, 413, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("max_body_bytes"),
        "{v}"
    );
    let (s, v) = d.call(
        "POST",
        "/v1/events",
        Some(&ingest),
        Some(&json!({"contact": "bea"})),
    );
    assert_eq!(s, 400);
    assert!(v["message"].as_str().unwrap().contains("type"), "{v}");
    let r = d
        .agent
        .post(&format!("{}/v1/events", d.base))
        .set("authorization", &format!("Bearer {ingest}"))
        .send_string("{nope");
    match r {
        Err(ureq::Error::Status(400, resp)) => {
            assert!(resp.into_string().unwrap().contains("not valid JSON"))
        }
        other => panic!("expected 400, got {other:?}"),
    }
    // Contacts: upsert merges, read back.
    let (s, _) = d.call(
        "PUT",
        "/v1/contacts/bea",
        Some(&ingest),
        Some(&json!({"email": "bea@example.com", "first_name": "Bea"})),
    );
    assert_eq!(s, 200);
    let (s, v) = d.call(
        "PUT",
        "/v1/contacts/bea",
        Some(&ingest),
        Some(&json!({"first_name": "Beatrice"})),
    );
    assert_eq!(s, 200);
    // An ingest token does not read contacts, not even through its upsert's answer.
    assert_eq!(v, json!({"id": "bea", "ok": true}));
    assert_eq!(
        d.contact("bea")["profile"],
        json!({"email": "bea@example.com", "first_name": "Beatrice"})
    );
    assert_eq!(
        d.call("GET", "/v1/contacts/bea", Some(&ingest), None).0,
        403
    );
    assert_eq!(d.admin_call("GET", "/v1/contacts/nobody", None).0, 404);
}

#[test]
fn tracking_pixel_unsubscribe_kannel_and_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    copy_welcome(tmp.path());
    let mut d = Daemon::start(tmp.path());
    assert_eq!(d.sign_up("carla").0, 200);
    let welcome = wait_for("the welcome delivery", 30, || {
        d.delivery("carla", "welcome")
    });

    // The open pixel: a GIF, and `opened` recorded against the message.
    let open = click_token(&d, &welcome, TokenKind::Open, None);
    let resp = d
        .agent
        .get(&format!("{}/t/o/{open}", d.base))
        .call()
        .unwrap();
    assert_eq!(resp.header("content-type"), Some("image/gif"));
    let mut gif = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut gif).unwrap();
    assert!(gif.starts_with(b"GIF89a"));
    // An open token on the click route is not a click.
    assert_eq!(d.call("GET", &format!("/t/c/{open}"), None, None).0, 404);
    let c = d.contact("carla");
    let opened: Vec<&Value> = c["recent_events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "opened")
        .collect();
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0]["message"], "welcome");
    assert_eq!(opened[0]["message_id"], welcome["message_id"]);

    // Kannel delivery report: status 1 → received; a token that is not a delivery token → 404.
    let (s, _) = d.call(
        "GET",
        &format!(
            "/v1/dlr/kannel?t={}&status=1",
            click_token(&d, &welcome, TokenKind::Delivery, None)
        ),
        None,
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(
        d.call(
            "GET",
            &format!(
                "/v1/dlr/kannel?t={}&status=1",
                click_token(&d, &welcome, TokenKind::Click, None)
            ),
            None,
            None
        )
        .0,
        404
    );
    let c = d.contact("carla");
    assert!(c["recent_events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["type"] == "received"));

    // RFC 8058 one-click unsubscribe: the welcome journey's topic is `newsletter`, so the
    // contact leaves that topic (not all marketing), recorded once.
    let unsub = click_token(&d, &welcome, TokenKind::Unsubscribe, None);
    for _ in 0..2 {
        let resp = d
            .agent
            .post(&format!("{}/u/{unsub}", d.base))
            .set("content-type", "application/x-www-form-urlencoded")
            .send_string("List-Unsubscribe=One-Click")
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let c = d.contact("carla");
    assert_eq!(c["profile"]["subscriptions"], json!({"newsletter": false}));
    assert_eq!(c["profile"].get("unsubscribed"), None, "{c}");
    let changed = events_of_type(&c, "subscription.changed");
    assert_eq!(changed.len(), 1, "{c}");
    assert_eq!(changed[0]["properties"]["topic"], "newsletter");
    assert_eq!(changed[0]["properties"]["value"], false);
    assert_eq!(changed[0]["message"], "welcome");
    assert_eq!(d.call("POST", "/u/garbage.token", None, None).0, 404);

    // Health and metrics.
    assert_eq!(
        d.call("GET", "/healthz", None, None),
        (200, json!({"status": "ok"}))
    );
    let m = d.metrics();
    assert!(
        m.contains("journey_sends_total{channel=\"email\",outcome=\"sent\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("journey_tracking_total{what=\"opened\"} 1"),
        "{m}"
    );
    assert!(m.contains("journey_outbox_depth 0"), "{m}");
    assert!(
        m.contains("journey_timer_lateness_seconds_bucket{le=\"+Inf\"}"),
        "{m}"
    );
    let ingested: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("journey_events_ingested_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        ingested, 4,
        "form, open, received, subscription.changed: {m}"
    );

    // SIGTERM: a clean stop, exit 0.
    let status = d.terminate();
    assert!(status.success(), "exit {status:?}\n{}", d.stderr());
    assert!(d.stderr().contains("stopped"), "{}", d.stderr());
}

#[test]
fn journeys_with_errors_at_start_are_refused_and_the_stored_program_keeps_running() {
    let tmp = tempfile::tempdir().unwrap();
    copy_welcome(tmp.path());
    let mut d = Daemon::start(tmp.path());
    assert_eq!(d.sign_up("lara").0, 200);
    wait_for("lara's welcome", 30, || d.delivery("lara", "welcome"));
    d.kill();
    let file = tmp.path().join("journeys/welcome.journey");
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        good.replace(
            "check clicked welcome.profile",
            "check clicked welcom.profile",
        ),
    )
    .unwrap();
    d.spawn();
    assert!(
        d.stderr().contains("unknown message 'welcom'"),
        "the diagnostics are printed:\n{}",
        d.stderr()
    );
    assert!(d.stderr().contains("refused"), "{}", d.stderr());
    // The last deployed program still runs: lara keeps her place, new contacts still enter.
    assert_eq!(
        step_of(&d.contact("lara"), "welcome_promo").as_deref(),
        Some("check_clicked_welcome_profile")
    );
    assert_eq!(d.sign_up("mia").0, 200);
    wait_for("mia's welcome", 30, || d.delivery("mia", "welcome"));
}

#[test]
fn segment_endpoints_take_basic_auth_and_keep_the_good_calls_of_a_batch() {
    use base64::Engine as _;
    let tmp = tempfile::tempdir().unwrap();
    copy_welcome(tmp.path());
    let d = Daemon::start(tmp.path());
    let basic = |key: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
        )
    };
    let post = |path: &str, auth: &str, body: Value, encoding: Option<&str>| {
        let mut r = d
            .agent
            .post(&format!("{}{path}", d.base))
            .set("authorization", auth);
        if let Some(e) = encoding {
            r = r.set("content-encoding", e);
        }
        match r.send_json(body) {
            Ok(resp) => (resp.status(), resp.into_json::<Value>().unwrap()),
            Err(ureq::Error::Status(s, resp)) => {
                (s, resp.into_json::<Value>().unwrap_or(Value::Null))
            }
            Err(e) => panic!("{e}"),
        }
    };
    let batch = json!({"batch": [
        {"type": "track", "userId": "sam", "event": "form_compiled", "properties": {"formName": "addUser"}, "messageId": "m-1", "timestamp": "2026-03-01T09:00:00Z"},
        {"type": "track", "event": "orphan"},
        {"type": "identify", "userId": "sam", "traits": {"email": "sam@example.com"}},
        {"type": "track", "userId": "sam", "properties": {}},
        {"type": "launch", "userId": "sam"},
    ]});
    let (s, v) = post("/v1/batch", &basic("jt_admin_wrong"), batch.clone(), None);
    assert_eq!(s, 401, "{v}");
    let (s, v) = post("/v1/batch", &basic(&d.admin), batch.clone(), Some("br"));
    assert_eq!(s, 415, "{v}");
    assert!(v["message"].as_str().unwrap().contains("gzip"));
    let (s, v) = post("/v1/batch", &basic(&d.admin), batch, None);
    assert_eq!(s, 207, "{v}");
    assert_eq!(v["accepted"], 2);
    let errs: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["error"].as_str())
        .collect();
    assert!(errs[0].contains("userId or an anonymousId"), "{errs:?}");
    assert!(errs[1].contains("`event` name"), "{errs:?}");
    assert!(errs[2].contains("unknown call type 'launch'"), "{errs:?}");
    let c = d.contact("sam");
    assert_eq!(c["profile"]["email"], "sam@example.com");
    let form = c["recent_events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "form_compiled")
        .unwrap()
        .clone();
    assert_eq!(form["id"], "m-1");
    assert_eq!(form["at"], "2026-03-01T09:00:00Z");
    // Single calls; a bad one is a 400 with the reason.
    let (s, _) = post(
        "/v1/track",
        &basic(&d.admin),
        json!({"anonymousId": "a-9", "event": "viewed"}),
        None,
    );
    assert_eq!(s, 200);
    assert!(d.contact("a-9")["recent_events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["type"] == "viewed"));
    let (s, v) = post(
        "/v1/identify",
        &basic(&d.admin),
        json!({"traits": {"x": 1}}),
        None,
    );
    assert_eq!(s, 400);
    assert!(v["message"].as_str().unwrap().contains("userId"));
    // Every single call has its route: page and screen record events named after the call,
    // group and alias are accepted and recorded as nothing; `/v1/import` is the batch.
    for (call, body) in [
        ("page", json!({"userId": "pat", "name": "Pricing"})),
        ("screen", json!({"userId": "pat", "name": "Home"})),
        ("group", json!({"userId": "pat", "groupId": "g-1"})),
        ("alias", json!({"userId": "pat", "previousId": "a-1"})),
    ] {
        let (s, v) = post(&format!("/v1/{call}"), &basic(&d.admin), body, None);
        assert_eq!((s, &v["success"]), (200, &json!(true)), "/v1/{call}: {v}");
    }
    let import = json!({"batch": [{"type": "track", "userId": "pat", "event": "imported"}]});
    let (s, v) = post("/v1/import", &basic(&d.admin), import, None);
    assert_eq!((s, &v["accepted"]), (200, &json!(1)), "{v}");
    let pat = d.contact("pat");
    let mut kinds: Vec<(&str, &Value)> = pat["recent_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["type"].as_str().unwrap(), &e["properties"]["name"]))
        .collect();
    kinds.sort_by_key(|k| k.0);
    assert_eq!(
        kinds,
        [
            ("imported", &Value::Null),
            ("page", &json!("Pricing")),
            ("screen", &json!("Home")),
        ]
    );
}

const SMS_JOURNEY: &str = r#"journey sms_sale {
  entry event "sale_started"
  policy none
  send sms sale {
    text "Hi {{ contact.first_name }}, the sale is on: {{ link('shop') }}"
    link shop "https://maison.example/sale?c={{ contact.id }}"
  }
  check clicked sale.shop within 3d {
    yes {
      send sms thanks {
        text "Thanks for looking, {{ contact.first_name }}."
      }
    }
    no {
      end
    }
  }
}
"#;

/// The texts the daemon wrote to `data/sms.jsonl` (no SMS provider) for a contact's message.
fn sms_texts(d: &Daemon, contact: &str, message: &str) -> Vec<String> {
    std::fs::read_to_string(d.data().join("sms.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["contact"] == contact && l["message"] == message)
        .map(|l| l["text"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_sms_short_link_records_the_click_and_redirects_and_an_unknown_code_is_404() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("journeys")).unwrap();
    std::fs::write(tmp.path().join("journeys/sms.journey"), SMS_JOURNEY).unwrap();
    let mut d = Daemon::start(tmp.path());
    let (s, v) = d.admin_call(
        "PUT",
        "/v1/contacts/dora",
        Some(&json!({"phone": "+393330000009", "first_name": "Dora"})),
    );
    assert_eq!(s, 200, "{v}");
    let (s, v) = d.post_events(json!({"contact": "dora", "type": "sale_started"}));
    assert_eq!(s, 200, "{v}");

    // The SMS carries a short link on the public URL (the default: the address the daemon
    // listens on).
    let text = wait_for("the SMS in data/sms.jsonl", 30, || {
        sms_texts(&d, "dora", "sale").into_iter().next()
    });
    let prefix = format!("Hi Dora, the sale is on: {}/s/", d.base);
    let code = text
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("not a short link: {text}"))
        .to_string();
    assert_eq!(code.len(), 10, "{text}");
    assert!(code.bytes().all(|b| b.is_ascii_alphanumeric()), "{text}");
    assert_eq!(text.len(), prefix.len() + 10, "{text}");
    assert!(text.len() <= 160, "one SMS segment: {text}");
    let sale = wait_for("the sale delivery", 30, || d.delivery("dora", "sale"));
    wait_for("dora waiting at the check", 30, || {
        step_of(&d.contact("dora"), "sms_sale").filter(|s| s.starts_with("check_clicked"))
    });

    // SIGKILL and restart: the link that reached the phone still resolves.
    d.kill();
    d.spawn();

    // Unknown, malformed or altered codes: 404, nothing recorded.
    let mut altered = code.clone().into_bytes();
    altered[9] = if altered[9] == b'a' { b'b' } else { b'a' };
    let altered = String::from_utf8(altered).unwrap();
    for bad in [
        altered.as_str(),
        "AAAAAAAAAA",
        "short",
        &format!("{code}x"),
        "aaaaaaaaa-",
        "..%2F..%2Fx",
    ] {
        let (s, _) = d.call("GET", &format!("/s/{bad}"), None, None);
        assert_eq!(s, 404, "/s/{bad}");
    }
    assert!(
        events_of_type(&d.contact("dora"), "clicked").is_empty(),
        "a bad code was recorded"
    );

    // The real code: `clicked` recorded like a signed link's, a redirect to the target, and
    // the waiting check moves at once.
    assert_eq!(
        d.redirect(&format!("/s/{code}")),
        (302, Some("https://maison.example/sale?c=dora".to_string()))
    );
    let thanks = wait_for("the thanks SMS", 30, || d.delivery("dora", "thanks"));
    assert_eq!(thanks["journey"], "sms_sale");
    let c = d.contact("dora");
    let clicked = events_of_type(&c, "clicked");
    assert_eq!(clicked.len(), 1, "{c}");
    let e = &clicked[0];
    assert_eq!(e["journey"], "sms_sale");
    assert_eq!(e["message"], "sale");
    assert_eq!(e["link"], "shop");
    assert_eq!(e["message_id"], sale["message_id"]);
    let j = &c["journeys"][0];
    assert_eq!(j["ended"], "completed", "{c}");
    assert_eq!(
        j["path"],
        json!(["sale", "check_clicked_sale_shop", "thanks"])
    );
    // Every copy of the SMS (a send re-delivered after the kill renders again) has the code.
    for t in sms_texts(&d, "dora", "sale") {
        assert_eq!(t, text);
    }
    let m = d.metrics();
    assert!(
        m.contains("journey_tracking_total{what=\"clicked\"} 1"),
        "{m}"
    );
}

const SMS_ODD_IDS: &str = r#"journey sms_odd {
  entry event "sale_started"
  policy none
  send sms sale {
    text "Sale: {{ link('shop') }}"
    link shop "https://maison.example/sale/{{ contact.id }}?c={{ contact.id }}&ref={{ contact.ref }}&raw={{ contact.path | safe }}"
  }
}
"#;

#[test]
fn tracked_links_url_encode_every_interpolated_value() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("journeys")).unwrap();
    std::fs::write(tmp.path().join("journeys/sms.journey"), SMS_ODD_IDS).unwrap();
    let d = Daemon::start(tmp.path());
    // An id with `&`, `=`, `/` and a space; a profile value with CR/LF and a header.
    let id = "dora&admin=1/x y";
    let (s, v) = d.admin_call(
        "PUT",
        "/v1/contacts/dora%26admin=1%2Fx%20y",
        Some(&json!({"phone": "+393330000019", "ref": "a\r\nLocation: https://evil.example/", "path": "p/q"})),
    );
    assert_eq!(s, 200, "{v}");
    let (s, v) = d.post_events(json!({"contact": id, "type": "sale_started"}));
    assert_eq!(s, 200, "{v}");
    let text = wait_for("the SMS in data/sms.jsonl", 30, || {
        sms_texts(&d, id, "sale").into_iter().next()
    });
    let code = text
        .rsplit("/s/")
        .next()
        .unwrap_or_else(|| panic!("no short link: {text}"))
        .to_string();
    let (status, location) = d.redirect(&format!("/s/{code}"));
    assert_eq!(status, 302);
    assert_eq!(
        location.as_deref(),
        Some(
            "https://maison.example/sale/dora%26admin%3D1%2Fx%20y?c=dora%26admin%3D1%2Fx%20y\
             &ref=a%0D%0ALocation%3A%20https%3A%2F%2Fevil.example%2F&raw=p/q"
        ),
        "every interpolated value is percent-encoded (`| safe` keeps one as it is)"
    );
    wait_for("the click recorded", 30, || {
        (!events_of_type(&d.contact("dora%26admin=1%2Fx%20y"), "clicked").is_empty()).then_some(())
    });
}
