//! Consent through a real daemon on 127.0.0.1: the preference page behind the unsubscribe
//! link (GET shows and changes nothing, POST changes, a forged token is a 404), then the
//! engine suppressing the next marketing send while a transactional one is delivered.

mod daemon_common;

use daemon_common::*;
use journey::engine::TokenKind;
use serde_json::{json, Value};
use std::path::Path;

const JOURNEYS: &str = r#"
topic newsletter {
  title "The <Maison> newsletter"
  default subscribed
}

topic offers {
  title "Offers & sales"
  default subscribed
}

journey news {
  topic newsletter
  entry event "news"
  reentry always
  send email issue { subject "This week" text "News. Unsubscribe: {{ unsubscribe_url }}" }
}

journey offer {
  topic offers
  entry event "offer"
  reentry always
  send email offer_email { subject "An offer" text "10% off" }
}

journey receipt {
  transactional
  entry event "order"
  reentry always
  send email receipt_email { subject "Your order" text "Thank you" }
}
"#;

fn write_journeys(dir: &Path) {
    let journeys = dir.join("journeys");
    std::fs::create_dir_all(&journeys).unwrap();
    std::fs::write(journeys.join("consent.journey"), JOURNEYS).unwrap();
}

/// (status, body) of a GET or a form POST to the page.
fn page(d: &Daemon, token: &str, form: Option<&str>) -> (u16, String) {
    let url = format!("{}/u/{token}", d.base);
    let res = match form {
        Some(body) => d
            .agent
            .post(&url)
            .set("content-type", "application/x-www-form-urlencoded")
            .send_string(body),
        None => d.agent.get(&url).call(),
    };
    match res {
        Ok(r) | Err(ureq::Error::Status(_, r)) => (r.status(), r.into_string().unwrap()),
        Err(e) => panic!("{url}: {e}"),
    }
}

fn count(d: &Daemon, contact: &str, kind: &str) -> usize {
    events_of_type(&d.contact(contact), kind).len()
}

fn send(d: &Daemon, contact: &str, kind: &str) {
    let (s, v) = d.post_events(json!({"contact": contact, "type": kind}));
    assert_eq!(s, 200, "{v}");
}

/// Waits until the contact has `n` events of the type, and returns them (newest first).
fn wait_events(d: &Daemon, contact: &str, kind: &str, n: usize) -> Vec<Value> {
    wait_for(&format!("{n} {kind} of {contact}"), 30, || {
        let es = events_of_type(&d.contact(contact), kind);
        (es.len() >= n).then_some(es)
    })
}

#[test]
fn the_preference_page_changes_consent_and_the_engine_keeps_it() {
    let tmp = tempfile::tempdir().unwrap();
    write_journeys(tmp.path());
    let d = Daemon::start(tmp.path());
    d.put_email("ann");
    send(&d, "ann", "news");
    let issue = wait_for("the first issue", 30, || d.delivery("ann", "issue"));
    let token = d.sign(&issue, TokenKind::Unsubscribe, None, None);

    // GET shows the topics by their titles, escaped, both ticked; it changes nothing.
    for _ in 0..2 {
        let (s, html) = page(&d, &token, None);
        assert_eq!(s, 200, "{html}");
        assert!(html.contains("The &lt;Maison&gt; newsletter"), "{html}");
        assert!(html.contains("Offers &amp; sales"), "{html}");
        assert!(html.contains("<label for=\"topic-newsletter\">"), "{html}");
        assert!(
            html.contains("name=\"topic\" value=\"newsletter\" checked>"),
            "{html}"
        );
        assert!(html.contains("<form method=\"post\""), "{html}");
        assert!(!html.contains("<script"), "{html}");
    }
    let c = d.contact("ann");
    assert_eq!(c["profile"].get("subscriptions"), None, "{c}");
    assert_eq!(count(&d, "ann", "subscription.changed"), 0);

    // A forged or altered token is a 404 and changes nothing.
    // Altered: another contact's claims under ann's signature. Forged: signed with another key.
    let mut other = issue.clone();
    other["contact"] = json!("eve");
    let (_, sig) = token.split_once('.').unwrap();
    let (body, _) = d
        .sign(&other, TokenKind::Unsubscribe, None, None)
        .split_once('.')
        .map(|(b, s)| (b.to_string(), s.to_string()))
        .unwrap();
    let altered = format!("{body}.{sig}");
    let forged = journey::channels::tracking::sign(
        b"not the daemon's secret",
        &journey::channels::tracking::verify(&d.secret(), &token).unwrap(),
    );
    assert_eq!(page(&d, &forged, None).0, 404);
    assert_eq!(page(&d, &forged, Some("action=unsubscribe_all")).0, 404);
    assert_eq!(page(&d, &altered, None).0, 404);
    assert_eq!(page(&d, &altered, Some("action=unsubscribe_all")).0, 404);
    assert_eq!(
        page(&d, "garbage", Some("List-Unsubscribe=One-Click")).0,
        404
    );
    assert_eq!(d.contact("ann")["profile"].get("unsubscribed"), None);

    // POST the form with the newsletter unticked: one change, one event, a notice.
    let save = "action=save&shown=newsletter&shown=offers&topic=offers";
    let (s, html) = page(&d, &token, Some(save));
    assert_eq!(s, 200, "{html}");
    assert!(
        html.contains("unsubscribed from The &lt;Maison&gt; newsletter"),
        "{html}"
    );
    assert!(
        html.contains("name=\"topic\" value=\"newsletter\">"),
        "unticked now: {html}"
    );
    let c = d.contact("ann");
    assert_eq!(c["profile"]["subscriptions"], json!({"newsletter": false}));
    let changed = events_of_type(&c, "subscription.changed");
    assert_eq!(changed.len(), 1, "{c}");
    assert_eq!(
        changed[0]["properties"],
        json!({"topic": "newsletter", "value": false})
    );
    // The same POST again changes nothing and records nothing.
    let (s, html) = page(&d, &token, Some(save));
    assert_eq!(s, 200);
    assert!(html.contains("Nothing changed"), "{html}");
    assert_eq!(count(&d, "ann", "subscription.changed"), 1);

    // The next newsletter is suppressed; the offer and the receipt are delivered.
    send(&d, "ann", "news");
    let suppressed = wait_events(&d, "ann", "message.suppressed", 1);
    assert_eq!(suppressed[0]["message"], "issue");
    assert_eq!(suppressed[0]["properties"]["reason"], "topic newsletter");
    send(&d, "ann", "offer");
    send(&d, "ann", "order");
    wait_for("the offer and the receipt", 30, || {
        (d.delivery("ann", "offer_email").is_some() && d.delivery("ann", "receipt_email").is_some())
            .then_some(())
    });
    let issues = d
        .deliveries("ann")
        .iter()
        .filter(|e| e["message"] == "issue")
        .count();
    assert_eq!(issues, 1, "the second issue was not delivered");

    // Unsubscribe from all: the offer is suppressed, the receipt still goes.
    let (s, html) = page(&d, &token, Some("action=unsubscribe_all"));
    assert_eq!(s, 200);
    assert!(html.contains("Subscribe again"), "{html}");
    assert_eq!(d.contact("ann")["profile"]["unsubscribed"], true);
    assert_eq!(count(&d, "ann", "unsubscribed"), 1);
    send(&d, "ann", "offer");
    let suppressed = wait_events(&d, "ann", "message.suppressed", 2);
    assert_eq!(suppressed[0]["message"], "offer_email");
    assert_eq!(suppressed[0]["properties"]["reason"], "unsubscribed");
    send(&d, "ann", "order");
    wait_for("the second receipt", 30, || {
        let n = d
            .deliveries("ann")
            .iter()
            .filter(|e| e["message"] == "receipt_email")
            .count();
        (n == 2).then_some(())
    });

    // Resubscribe from the same page: recorded once; the offer goes again.
    page(&d, &token, Some("action=resubscribe"));
    page(&d, &token, Some("action=resubscribe"));
    let c = d.contact("ann");
    assert_eq!(c["profile"]["unsubscribed"], false);
    let changed = events_of_type(&c, "subscription.changed");
    assert_eq!(changed.len(), 2, "{c}");
    assert_eq!(
        changed[0]["properties"],
        json!({"all": true, "value": true})
    );
    send(&d, "ann", "offer");
    wait_for("the second offer", 30, || {
        let n = d
            .deliveries("ann")
            .iter()
            .filter(|e| e["message"] == "offer_email")
            .count();
        (n == 2).then_some(())
    });
}

#[test]
fn one_click_leaves_the_message_topic_or_all_marketing() {
    let tmp = tempfile::tempdir().unwrap();
    let journeys = tmp.path().join("journeys");
    std::fs::create_dir_all(&journeys).unwrap();
    // A journey without topic beside one with: one click on the first is all marketing.
    std::fs::write(
        journeys.join("consent.journey"),
        format!(
            "{JOURNEYS}\njourney plain {{\n  entry event \"plain\"\n  send email hello {{ subject \"Hi\" text \"Hello\" }}\n}}\n"
        ),
    )
    .unwrap();
    let d = Daemon::start(tmp.path());
    d.put_email("bo");
    send(&d, "bo", "news");
    send(&d, "bo", "plain");
    let issue = wait_for("the issue", 30, || d.delivery("bo", "issue"));
    let hello = wait_for("hello", 30, || d.delivery("bo", "hello"));

    let one_click = "List-Unsubscribe=One-Click";
    let t = d.sign(&issue, TokenKind::Unsubscribe, None, None);
    assert_eq!(page(&d, &t, Some(one_click)).0, 200);
    let c = d.contact("bo");
    assert_eq!(c["profile"]["subscriptions"], json!({"newsletter": false}));
    assert_eq!(c["profile"].get("unsubscribed"), None);
    // The journey's report counts it as an unsubscribe from the issue.
    let (s, r) = d.admin_call("GET", "/v1/journeys/news/report", None);
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["messages"][0]["unsubscribed"]["unique"], 1, "{r}");

    let t = d.sign(&hello, TokenKind::Unsubscribe, None, None);
    assert_eq!(page(&d, &t, Some(one_click)).0, 200);
    assert_eq!(page(&d, &t, Some(one_click)).0, 200);
    let c = d.contact("bo");
    assert_eq!(c["profile"]["unsubscribed"], true);
    let unsub = events_of_type(&c, "unsubscribed");
    assert_eq!(unsub.len(), 1, "{c}");
    assert_eq!(unsub[0]["message"], "hello");
}

/// (status, body) of a POST to the SMS inbound webhook.
fn inbound(d: &Daemon, query: &str, content_type: &str, body: &str) -> (u16, String) {
    let url = format!("{}/v1/sms/inbound{query}", d.base);
    match d
        .agent
        .post(&url)
        .set("content-type", content_type)
        .send_string(body)
    {
        Ok(r) | Err(ureq::Error::Status(_, r)) => (r.status(), r.into_string().unwrap()),
        Err(e) => panic!("{url}: {e}"),
    }
}

#[test]
fn sms_stop_and_start_set_the_sms_topic() {
    let tmp = tempfile::tempdir().unwrap();
    let journeys = tmp.path().join("journeys");
    std::fs::create_dir_all(&journeys).unwrap();
    std::fs::write(
        journeys.join("consent.journey"),
        format!(
            "{JOURNEYS}\njourney flash {{\n  topic offers\n  entry event \"flash\"\n  reentry always\n  send sms flash_sms {{ text \"Flash sale\" }}\n}}\n"
        ),
    )
    .unwrap();
    let d = Daemon::start_with(tmp.path(), "sms:\n  inbound_token: s3cret-token\n");
    let (s, v) = d.admin_call(
        "PUT",
        "/v1/contacts/gio",
        Some(&json!({"phone": "+39 333 000 0001"})),
    );
    assert_eq!(s, 200, "{v}");
    let form = "application/x-www-form-urlencoded";
    let stop = "From=%2B393330000001&Body=Stop&To=%2B15550000000";

    // Without the token, or with another, the endpoint is not there; nothing changes.
    assert_eq!(inbound(&d, "", form, stop).0, 404);
    assert_eq!(inbound(&d, "?token=s3cret-tokem", form, stop).0, 404);
    assert_eq!(d.contact("gio")["profile"].get("subscriptions"), None);

    // Twilio's form post: STOP sets subscriptions.sms to false, once.
    let (s, body) = inbound(&d, "?token=s3cret-token", form, stop);
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("<Response>"), "{body}");
    inbound(&d, "?token=s3cret-token", form, stop);
    let c = d.contact("gio");
    assert_eq!(c["profile"]["subscriptions"], json!({"sms": false}));
    let changed = events_of_type(&c, "subscription.changed");
    assert_eq!(changed.len(), 1, "{c}");
    assert_eq!(
        changed[0]["properties"],
        json!({"topic": "sms", "value": false, "source": "sms"})
    );

    // The next marketing SMS is suppressed.
    send(&d, "gio", "flash");
    let suppressed = wait_events(&d, "gio", "message.suppressed", 1);
    assert_eq!(suppressed[0]["properties"]["reason"], "topic sms");

    // A JSON webhook: START sets it back, and the SMS goes.
    let (s, body) = inbound(
        &d,
        "?token=s3cret-token",
        "application/json",
        r#"{"from": "+393330000001", "text": "START"}"#,
    );
    assert_eq!(s, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v, json!({"action": "start", "matched": 1, "changed": 1}));
    assert_eq!(
        d.contact("gio")["profile"]["subscriptions"],
        json!({"sms": true})
    );
    send(&d, "gio", "flash");
    wait_for("the flash SMS", 30, || d.delivery("gio", "flash_sms"));

    // Any other text, or an unknown number, changes nothing; a body without a sender is a 400.
    let (s, body) = inbound(
        &d,
        "?token=s3cret-token",
        "application/json",
        r#"{"from": "+393330000001", "text": "what is this?"}"#,
    );
    assert_eq!((s, body.contains("\"none\"")), (200, true), "{body}");
    let (s, body) = inbound(
        &d,
        "?token=s3cret-token",
        "application/json",
        r#"{"from": "+10000000000", "text": "STOP"}"#,
    );
    assert_eq!(s, 200);
    assert!(body.contains("\"matched\":0"), "{body}");
    let (s, body) = inbound(&d, "?token=s3cret-token", form, "Body=STOP");
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("From"), "{body}");
    assert_eq!(count(&d, "gio", "subscription.changed"), 2);
}

#[test]
fn contacts_show_warns_about_unknown_topics_and_keeps_them() {
    let tmp = tempfile::tempdir().unwrap();
    write_journeys(tmp.path());
    let d = Daemon::start(tmp.path());
    let subs = json!({"newsleter": false, "offers": true, "sms": false});
    let (s, v) = d.admin_call(
        "PUT",
        "/v1/contacts/cy",
        Some(&json!({"email": "cy@example.com", "subscriptions": subs})),
    );
    assert_eq!(s, 200, "{v}");
    let out = d.cli(&["contacts", "show", "cy"]);
    assert!(out.status.success());
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["profile"]["subscriptions"], subs, "kept as given");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.lines().filter(|l| l.starts_with("warning:")).count(),
        1,
        "{err}"
    );
    assert!(
        err.contains("subscriptions.newsleter: unknown topic 'newsleter'"),
        "{err}"
    );
    assert!(err.contains("did you mean 'newsletter'?"), "{err}");
    // A contact with only known topics has no warning.
    let (s, _) = d.admin_call(
        "PUT",
        "/v1/contacts/dee",
        Some(&json!({"subscriptions": {"newsletter": false}})),
    );
    assert_eq!(s, 200);
    assert_eq!(d.contact("dee")["warnings"], json!([]));
}
