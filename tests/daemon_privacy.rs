//! Issue 16, items 3 and 4, against the real daemon on 127.0.0.1: inputs the engine can
//! trust (reserved event types, token scopes, contact ids, field keys, time zones) and
//! erasure and export (checked against the store afterwards).

mod daemon_common;

use daemon_common::*;
use journey::engine::TokenKind;
use serde_json::{json, Value};

fn token(d: &Daemon, scope: &str) -> String {
    let out = d.cli(&[
        "token",
        "create",
        "--scope",
        scope,
        "--config",
        d.dir.join("journey.yaml").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(t.starts_with(&format!("jt_{scope}_")), "{t}");
    t
}

fn kinds(d: &Daemon, id: &str) -> Vec<String> {
    let c = d.contact(id);
    let mut k: Vec<String> = c["recent_events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    k.sort();
    k
}

/// An ingest token posting `clicked` is refused with a 403 naming the type, and nothing is
/// recorded; in a batch the good events are kept and the refused ones reported. An
/// `engagement` token may post engagement, never a send's outcome; nor may `admin`.
#[test]
fn forged_engagement_is_refused_and_the_engagement_scope_may_post_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path());
    let ingest = token(&d, "ingest");
    let engagement = token(&d, "engagement");

    // The forged click: refused, named, nothing recorded.
    let click = json!({"contact": "ann", "type": "clicked", "journey": "welcome", "message": "welcome", "link": "shop"});
    let (s, v) = d.call("POST", "/v1/events", Some(&ingest), Some(&click));
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["code"], "reserved_type", "{v}");
    assert!(v["message"].as_str().unwrap().contains("'clicked'"), "{v}");
    assert!(v["message"].as_str().unwrap().contains("engagement"), "{v}");
    assert_eq!(d.contact("ann"), Value::Null, "nothing was recorded");

    // A batch: the good event kept, each reserved one refused by name with its status.
    let batch = json!([
        {"contact": "ann", "type": "signup"},
        {"contact": "ann", "type": "clicked"},
        {"contact": "ann", "type": "message.sent", "message_id": "1:0"},
        {"contact": "ann", "type": "subscription.changed"},
        {"contact": "ann", "type": "dlr"},
    ]);
    let (s, v) = d.call("POST", "/v1/events", Some(&ingest), Some(&batch));
    assert_eq!(s, 207, "{v}");
    assert_eq!(
        (v["accepted"].as_u64(), v["rejected"].as_u64()),
        (Some(1), Some(4))
    );
    let results = v["results"].as_array().unwrap();
    assert_eq!(results[0]["ok"], true);
    for (i, kind) in [
        (1, "clicked"),
        (2, "message.sent"),
        (3, "subscription.changed"),
        (4, "dlr"),
    ] {
        assert_eq!(results[i]["status"], 403, "{v}");
        assert!(
            results[i]["error"]
                .as_str()
                .unwrap()
                .contains(&format!("'{kind}'")),
            "{v}"
        );
    }
    assert!(
        results[2]["error"].as_str().unwrap().contains("dispatcher"),
        "{v}"
    );
    assert_eq!(kinds(&d, "ann"), vec!["signup"]);
    // Every item refused for its type: a 403 for the batch.
    let (s, v) = d.call(
        "POST",
        "/v1/events",
        Some(&ingest),
        Some(&json!([{"contact": "ann", "type": "opened"}, {"contact": "ann", "type": "unsubscribed"}])),
    );
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["code"], "reserved_type", "{v}");

    // Segment's endpoints follow the same rule.
    let track = json!({"userId": "ann", "event": "clicked"});
    let (s, v) = d.call("POST", "/v1/track", Some(&ingest), Some(&track));
    assert_eq!(s, 403, "{v}");
    assert!(v["message"].as_str().unwrap().contains("'clicked'"), "{v}");
    let seg_batch = json!({"batch": [
        {"type": "track", "userId": "ann", "event": "purchase"},
        {"type": "track", "userId": "ann", "event": "message.bounced"},
    ]});
    let (s, v) = d.call("POST", "/v1/batch", Some(&ingest), Some(&seg_batch));
    assert_eq!(s, 207, "{v}");
    assert_eq!(v["results"][1]["status"], 403, "{v}");
    assert_eq!(kinds(&d, "ann"), vec!["purchase", "signup"]);

    // The engagement scope: engagement yes (through Segment too), outcomes no.
    for kind in ["clicked", "opened", "bounced", "complained"] {
        let (s, v) = d.call(
            "POST",
            "/v1/events",
            Some(&engagement),
            Some(&json!({"contact": "bob", "type": kind})),
        );
        assert_eq!(s, 200, "{kind}: {v}");
    }
    for kind in [
        "message.sent",
        "message.bounced",
        "received",
        "unsubscribed",
    ] {
        let (s, v) = d.call(
            "POST",
            "/v1/events",
            Some(&engagement),
            Some(&json!({"contact": "bob", "type": kind})),
        );
        assert_eq!(s, 403, "{kind}: {v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains(&format!("'{kind}'")),
            "{v}"
        );
    }
    let (s, v) = d.call(
        "POST",
        "/v1/track",
        Some(&engagement),
        Some(&json!({"userId": "bob", "event": "opened"})),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        kinds(&d, "bob"),
        vec!["bounced", "clicked", "complained", "opened", "opened"]
    );
    // Admin: engagement, but never an outcome.
    let (s, v) =
        d.post_events(json!({"contact": "bob", "type": "message.sent", "message_id": "9:0"}));
    assert_eq!(s, 403, "{v}");
    let (s, v) = d.post_events(json!({"contact": "bob", "type": "clicked"}));
    assert_eq!(s, 200, "{v}");
}

/// Reading contacts needs `read` (or `admin`): ingest and engagement tokens are refused;
/// a read token reads and can do nothing else.
#[test]
fn reading_contacts_needs_the_read_scope() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path());
    let (ingest, engagement, read) = (
        token(&d, "ingest"),
        token(&d, "engagement"),
        token(&d, "read"),
    );
    let (s, v) = d.call(
        "PUT",
        "/v1/contacts/ann",
        Some(&ingest),
        Some(&json!({"email": "ann@example.com"})),
    );
    assert_eq!(s, 200, "{v}");
    for t in [&ingest, &engagement] {
        let (s, v) = d.call("GET", "/v1/contacts/ann", Some(t), None);
        assert_eq!(s, 403, "{v}");
        assert!(v["message"].as_str().unwrap().contains("`read`"), "{v}");
    }
    let (s, v) = d.call("GET", "/v1/contacts/ann", Some(&read), None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["profile"]["email"], "ann@example.com");
    let (s, _) = d.call(
        "POST",
        "/v1/events",
        Some(&read),
        Some(&json!({"contact": "ann", "type": "signup"})),
    );
    assert_eq!(s, 403, "a read token does not write");
    let (s, _) = d.call("GET", "/v1/journeys", Some(&read), None);
    assert_eq!(s, 403, "nor administer");
    // The CLI explains each scope.
    let out = d.cli(&["token", "create", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for word in ["ingest", "engagement", "read", "admin", "complained"] {
        assert!(help.contains(word), "{word} in:\n{help}");
    }
}

/// Contact ids with control characters, field keys over `max_field_bytes` and unknown time
/// zones are refused at every door, with a 400 naming the problem; good items are kept.
#[test]
fn bad_ids_keys_and_time_zones_are_refused_at_every_door() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("journeys")).unwrap();
    std::fs::write(
        tmp.path().join("journeys/api.journey"),
        "journey by_api {\n  entry api\n  send email m { subject \"x\" text \"y\" }\n}\n",
    )
    .unwrap();
    let d = Daemon::start_with(tmp.path(), "  max_field_bytes: 100\n");
    let long_key = "k".repeat(101);

    // Contact ids: events, contacts (path and body), Segment, enrolment.
    for id in ["a\u{0}b", "a\u{1}", "tab\there", "line\nbreak", "del\u{7f}"] {
        let (s, v) = d.post_events(json!({"contact": id, "type": "signup"}));
        assert_eq!(s, 400, "{id:?}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains("control character"),
            "{v}"
        );
        let (s, v) = d.call(
            "POST",
            "/v1/identify",
            Some(&d.admin),
            Some(&json!({"userId": id, "traits": {}})),
        );
        assert_eq!(s, 400, "{id:?}: {v}");
        let (s, v) = d.call(
            "POST",
            "/v1/track",
            Some(&d.admin),
            Some(&json!({"userId": id, "event": "x"})),
        );
        assert_eq!(s, 400, "{id:?}: {v}");
        let (s, v) = d.admin_call(
            "POST",
            "/v1/journeys/by_api/enroll",
            Some(&json!({"contact": id})),
        );
        assert_eq!(s, 400, "{id:?}: {v}");
    }
    let (s, v) = d.admin_call(
        "PUT",
        "/v1/contacts/a%00b",
        Some(&json!({"email": "x@example.com"})),
    );
    assert_eq!(s, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("U+0000"), "{v}");
    let (s, v) = d.admin_call(
        "POST",
        "/v1/contacts",
        Some(&json!([{"id": "ok1"}, {"id": "bad\u{0}"}, {"id": "tz1", "timezone": "Mars/Olympus"}, {"id": "key1", long_key.clone(): 1}])),
    );
    assert_eq!(s, 207, "{v}");
    assert_eq!(v["accepted"], 1, "{v}");
    let errs: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["error"].as_str())
        .collect();
    assert!(errs[0].contains("control character"), "{errs:?}");
    assert!(
        errs[1].contains("timezone") && errs[1].contains("Mars/Olympus"),
        "{errs:?}"
    );
    assert!(
        errs[2].contains("key") && errs[2].contains("max_field_bytes"),
        "{errs:?}"
    );

    // Field keys: event properties, profile fields, traits (top level and nested).
    let (s, v) = d.post_events(
        json!({"contact": "ann", "type": "signup", "properties": {long_key.clone(): 1}}),
    );
    assert_eq!(s, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("key")
            && v["message"].as_str().unwrap().contains("max_field_bytes"),
        "{v}"
    );
    let (s, v) = d.post_events(
        json!({"contact": "ann", "type": "signup", "properties": {"cart": {long_key.clone(): 1}}}),
    );
    assert_eq!(s, 400, "{v}");
    let (s, v) = d.admin_call(
        "PUT",
        "/v1/contacts/ann",
        Some(&json!({long_key.clone(): "x"})),
    );
    assert_eq!(s, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("max_field_bytes"),
        "{v}"
    );
    let (s, v) = d.call(
        "POST",
        "/v1/identify",
        Some(&d.admin),
        Some(&json!({"userId": "ann", "traits": {long_key.clone(): 1}})),
    );
    assert_eq!(s, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("traits"), "{v}");

    // Time zones: the API, Segment traits, CSV import.
    let (s, v) = d.admin_call(
        "PUT",
        "/v1/contacts/ann",
        Some(&json!({"timezone": "Europe/Pariss"})),
    );
    assert_eq!(s, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("timezone"), "{v}");
    let (s, v) = d.admin_call("PUT", "/v1/contacts/ann", Some(&json!({"timezone": 2})));
    assert_eq!(s, 400, "{v}");
    let (s, v) = d.call(
        "POST",
        "/v1/identify",
        Some(&d.admin),
        Some(&json!({"userId": "ann", "traits": {"timezone": "Nowhere/City"}})),
    );
    assert_eq!(s, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("traits.timezone"),
        "{v}"
    );
    // Nothing of the refused calls was kept.
    assert_eq!(d.contact("ann"), Value::Null);
    let (s, v) = d.admin_call(
        "PUT",
        "/v1/contacts/ann",
        Some(&json!({"timezone": "Europe/Paris"})),
    );
    assert_eq!(s, 200, "{v}");
    let (s, v) = d.call(
        "POST",
        "/v1/identify",
        Some(&d.admin),
        Some(&json!({"userId": "cid", "traits": {"timezone": "Asia/Tokyo"}})),
    );
    assert_eq!(s, 200, "{v}");

    let csv = tmp.path().join("people.csv");
    std::fs::write(
        &csv,
        "id,email,timezone\nzoe,zoe@example.com,Europe/Paris\nyan,yan@example.com,Moon/Base\n\"x\u{1}y\",x@example.com,\n",
    )
    .unwrap();
    let out = d.cli(&["contacts", "import", csv.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(":3:") && err.contains("Moon/Base"), "{err}");
    assert!(
        err.contains(":4:") && err.contains("control character"),
        "{err}"
    );
    assert!(err.contains("imported 1 contact"), "{err}");
    assert_eq!(d.contact("zoe")["profile"]["timezone"], "Europe/Paris");
    assert_eq!(d.contact("yan"), Value::Null);
}

/// A scenario's contact id with a control character is refused when the file is loaded.
#[test]
fn a_scenario_contact_id_with_a_control_character_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("j.journey"),
        "journey j {\n  entry event \"visit\"\n  send email m { subject \"x\" text \"y\" }\n}\n",
    )
    .unwrap();
    let path = tmp.path().join("bad.scenario.yaml");
    std::fs::write(
        &path,
        "journeys: [j.journey]\nstart: 2026-03-02T09:00:00Z\ncontacts:\n  - { id: \"a\\0b\" }\nuntil: +1d\n",
    )
    .unwrap();
    let Err(err) = journey::scenario::run(&path) else {
        panic!("a contact id with NUL was accepted");
    };
    let err = err.to_string();
    assert!(err.contains("control character"), "{err}");
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Erasure through the daemon: the export holds what was stored; `journey contacts delete`
/// erases; afterwards no key or value of the store holds the contact's id, address or
/// dedupe ids, while its neighbour (whose id is a prefix of it) is untouched; erasing again,
/// or an unknown contact, is a 404; and a later import of the erased unsubscribed address
/// comes back unsubscribed.
#[test]
fn erasure_leaves_nothing_of_the_contact_and_keeps_its_consent_hashed() {
    if sled_only("it reads the sled store's raw keys on disk") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    copy_welcome(tmp.path());
    std::fs::write(
        tmp.path().join("journeys/browsers.journey"),
        "segment browsers {\n  title \"Browsed lately\"\n  rule viewed: event \"page_view\" in last 7d\n}\n",
    )
    .unwrap();
    let mut d = Daemon::start(tmp.path());
    let ingest = token(&d, "ingest");
    for (id, email) in [
        ("erin-b7", "Erin.B7@Example.COM"),
        ("erin-b", "erin-b@example.com"),
    ] {
        let (s, v) = d.admin_call(
            "PUT",
            &format!("/v1/contacts/{id}"),
            Some(&json!({"email": email, "first_name": "Erin"})),
        );
        assert_eq!(s, 200, "{v}");
        let (s, v) = d.post_events(json!([
            {"contact": id, "type": "form_compiled", "properties": {"formName": "addUser"}, "context": "web"},
            {"contact": id, "type": "page_view", "id": format!("evt-{id}-1")},
        ]));
        assert_eq!(s, 200, "{v}");
        wait_for("the welcome delivery", 30, || d.delivery(id, "welcome"));
    }
    let (s, v) = d.admin_call(
        "PUT",
        "/v1/contacts/erin-b7",
        Some(&json!({"unsubscribed": true})),
    );
    assert_eq!(s, 200, "{v}");
    let neighbour_before = d.contact("erin-b");
    let welcome = d.delivery("erin-b7", "welcome").unwrap();

    // The export: everything stored, one document; admin only.
    let (s, _) = d.call("GET", "/v1/contacts/erin-b7/export", Some(&ingest), None);
    assert_eq!(s, 403);
    let (s, x) = d.admin_call("GET", "/v1/contacts/erin-b7/export", None);
    assert_eq!(s, 200, "{x}");
    assert_eq!(x["format"], "journey-contact-export/1");
    assert_eq!(x["id"], "erin-b7");
    assert_eq!(x["profile"]["email"], "Erin.B7@Example.COM");
    assert_eq!(x["profile"]["unsubscribed"], true);
    let types: Vec<&str> = x["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for t in ["form_compiled", "page_view", "message.sent"] {
        assert!(types.contains(&t), "{t} in {types:?}");
    }
    assert!(
        x["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["contact"] == "erin-b7"),
        "{x}"
    );
    let instances = x["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 1, "{x}");
    assert_eq!(instances[0]["journey"], "welcome_promo");
    assert!(instances[0]["due"].is_number(), "waiting at its check: {x}");
    assert_eq!(x["segments"], json!(["browsers"]), "{x}");
    assert!(x["segment_check"].is_string(), "{x}");
    assert!(
        x["pending_sends"].is_array() && x["short_links"].is_array(),
        "{x}"
    );
    let out = d.cli(&["contacts", "export", "erin-b7"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (cli["id"].clone(), cli["events"].as_array().unwrap().len()),
        (json!("erin-b7"), types.len())
    );

    // The erasure, through the CLI; then it is gone, and a second one is a 404.
    let out = d.cli(&["contacts", "delete", "erin-b7"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("erased") && err.contains("1 suppression records"),
        "{err}"
    );
    assert_eq!(d.contact("erin-b7"), Value::Null);
    assert_eq!(
        d.admin_call("GET", "/v1/contacts/erin-b7/export", None).0,
        404
    );
    let (s, v) = d.admin_call("DELETE", "/v1/contacts/erin-b7", None);
    assert_eq!(s, 404, "{v}");
    let (s, v) = d.admin_call("DELETE", "/v1/contacts/nobody", None);
    assert_eq!((s, v["code"].as_str()), (404, Some("not_found")), "{v}");
    let (s, _) = d.call("DELETE", "/v1/contacts/erin-b", Some(&ingest), None);
    assert_eq!(s, 403, "erasure is admin's");
    let out = d.cli(&["contacts", "delete", "nobody"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no contact 'nobody'"));
    // The neighbour, whose id is a prefix of the erased one, keeps everything.
    let neighbour = d.contact("erin-b");
    assert_eq!(neighbour["events"], neighbour_before["events"]);
    assert_eq!(neighbour["journeys"], neighbour_before["journeys"]);

    // The store, every key and value: nothing of the erased contact.
    assert!(d.terminate().success());
    {
        let store = journey::store::Store::open(&d.data().join("store")).unwrap();
        let (mut neighbour_keys, mut suppressions) = (0, 0);
        for r in store.raw_entries() {
            let (k, v) = r.unwrap();
            for needle in [
                &b"erin-b7"[..],
                b"Erin.B7",
                b"erin.b7@example.com",
                b"evt-erin-b7-1",
            ] {
                assert!(
                    !contains(&k, needle),
                    "key {:?} holds {:?}",
                    String::from_utf8_lossy(&k),
                    String::from_utf8_lossy(needle)
                );
                assert!(
                    !contains(&v, needle),
                    "the value under {:?} holds {:?}",
                    String::from_utf8_lossy(&k),
                    String::from_utf8_lossy(needle)
                );
            }
            neighbour_keys += usize::from(contains(&k, b"erin-b"));
            suppressions += usize::from(k[0] == b'u');
        }
        assert!(
            neighbour_keys >= 5,
            "the scan saw the neighbour's keys ({neighbour_keys})"
        );
        assert_eq!(suppressions, 1, "one address, one record");
    }

    // The same address again, in another case, by upsert and by CSV import: unsubscribed.
    d.spawn();
    let (s, v) = d.admin_call(
        "PUT",
        "/v1/contacts/erin-new",
        Some(&json!({"email": "  erin.b7@example.com"})),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["profile"]["unsubscribed"], true, "{v}");
    let csv = tmp.path().join("again.csv");
    std::fs::write(
        &csv,
        "id,email\nerin-csv,ERIN.B7@example.com\nfresh,fresh@example.com\n",
    )
    .unwrap();
    let out = d.cli(&["contacts", "import", csv.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(d.contact("erin-csv")["profile"]["unsubscribed"], true);
    assert_eq!(d.contact("fresh")["profile"].get("unsubscribed"), None);
    assert_eq!(d.contact("erin-b")["profile"].get("unsubscribed"), None);

    // A link of an old message still works for whoever follows it, but records nothing and
    // does not bring the erased contact back.
    let target = "https://maison.example/profile";
    let click = d.sign(&welcome, TokenKind::Click, Some("profile"), Some(target));
    assert_eq!(
        d.redirect(&format!("/t/c/{click}")),
        (302, Some(target.to_string()))
    );
    let open = d.sign(&welcome, TokenKind::Open, None, None);
    assert_eq!(d.redirect(&format!("/t/o/{open}")).0, 200);
    assert_eq!(
        d.contact("erin-b7"),
        Value::Null,
        "the click and the open recreated nothing"
    );
}
