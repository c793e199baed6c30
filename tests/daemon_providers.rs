//! The daemon against real providers' edges: `journey serve` as a child process, with
//! in-process provider servers on 127.0.0.1 (axum for HTTP providers, the `mailin` SMTP
//! server of tests/support).

mod daemon_common;
mod support;

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::{get, post};
use axum::Router;
use daemon_common::*;
use serde_json::{json, Value};
use support::smtp::SmtpServer;

fn servers() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn serve(rt: &tokio::runtime::Runtime, app: Router) -> String {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// Every file under `dir`, as bytes.
fn all_bytes(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path().display().to_string(),
                std::fs::read(e.path()).unwrap_or_default(),
            )
        })
        .collect()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

const THREE_SENDS: &str = r#"journey three {
  entry event "go"
  reentry always
  policy none
  send email mail {
    subject "Hi"
    text "Hello"
  }
  send sms text {
    text "Hello"
  }
  send push note {
    title "Hello"
  }
}
"#;

/// The secrets of the config, as written and as they travel (percent- and form-encoded).
const KANNEL_PASSWORD: &str = "kannel-Pa55&word";
const PUSH_TOKEN: &str = "push-bearer-Zq8x1";
const SMTP_PASSWORD: &str = "smtp-S3cret-pw";

fn forms(secret: &str) -> Vec<String> {
    vec![
        secret.to_string(),
        secret.replace('&', "%26"),
        secret.replace('&', "%26").replace('-', "%2D"),
    ]
}

/// Greps the events (API and store files), the log and the metrics for the secrets.
fn assert_no_secret(d: &Daemon, contact: &str) {
    let (s, c) = d.admin_call("GET", &format!("/v1/contacts/{contact}"), None);
    assert_eq!(s, 200);
    let (_, export) = d.admin_call("GET", &format!("/v1/contacts/{contact}/export"), None);
    let api = format!("{c}\n{export}");
    let log = d.stderr();
    let metrics = d.metrics();
    let files = all_bytes(&d.data());
    for secret in [KANNEL_PASSWORD, PUSH_TOKEN, SMTP_PASSWORD] {
        for f in forms(secret) {
            assert!(!api.contains(&f), "the API shows {f}: {api}");
            assert!(!log.contains(&f), "the log shows {f}: {log}");
            assert!(!metrics.contains(&f), "the metrics show {f}");
            for (path, bytes) in &files {
                assert!(!contains(bytes, &f), "{path} holds {f}");
            }
        }
    }
}

fn failures(d: &Daemon, contact: &str, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    wait_for("the failures recorded", 60, || {
        let c = d.contact(contact);
        assert!(
            std::time::Instant::now() < deadline,
            "{c:#}\n{}",
            d.stderr()
        );
        let f = events_of_type(&c, "message.failed");
        (f.len() >= n).then_some(f)
    })
}

#[test]
fn secrets_never_reach_a_log_an_event_or_the_api() {
    let rt = servers();
    // A Kannel that echoes the request it refused, password and all; a push webhook that
    // echoes the Authorization it did not like.
    let kannel =
        serve(
            &rt,
            Router::new().route(
                "/cgi-bin/sendsms",
                get(|uri: Uri| async move {
                    (StatusCode::BAD_REQUEST, format!("Unknown request: {uri}"))
                }),
            ),
        );
    let push = serve(
        &rt,
        Router::new().route(
            "/push",
            post(|h: HeaderMap| async move {
                let auth = h
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                (
                    StatusCode::UNAUTHORIZED,
                    format!("{{\"error\":\"bad credentials\",\"got\":\"{auth}\"}}"),
                )
            }),
        ),
    );
    let smtp = SmtpServer::start(&rt);
    smtp.require_auth("maison", "not-the-configured-one");

    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("journeys")).unwrap();
    std::fs::write(tmp.path().join("journeys/three.journey"), THREE_SENDS).unwrap();
    let extra = format!(
        "retry:\n  max_attempts: 2\n  base_delay_ms: 1\n  max_delay_ms: 5\n\
         email:\n  smtp:\n    host: 127.0.0.1\n    port: {}\n    security: none\n    username: maison\n    password: \"{SMTP_PASSWORD}\"\n\
         sms:\n  provider:\n    kind: kannel\n    url: {kannel}/cgi-bin/sendsms\n    username: maison\n    password: \"{KANNEL_PASSWORD}\"\n\
         push:\n  provider:\n    kind: webhook\n    url: {push}/push\n    headers:\n      - [Authorization, \"Bearer {PUSH_TOKEN}\"]\n",
        smtp.addr.port()
    );
    let mut d = Daemon::start_with(tmp.path(), &extra);
    let (s, v) = d.admin_call(
        "PUT",
        "/v1/contacts/ada",
        Some(&json!({"email": "ada@example.com", "phone": "+393330000001", "push_tokens": ["dev-1"]})),
    );
    assert_eq!(s, 200, "{v}");
    let (s, v) = d.post_events(json!({"contact": "ada", "type": "go"}));
    assert_eq!(s, 200, "{v}");
    let f = failures(&d, "ada", 3);
    let reasons: Vec<String> = f
        .iter()
        .map(|e| e["properties"]["reason"].to_string())
        .collect();
    // The failures say what went wrong, with the secret's place marked.
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("Kannel: HTTP 400") && r.contains("password=[redacted]")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("HTTP 401") && r.contains("[redacted]")),
        "{reasons:?}"
    );
    assert_no_secret(&d, "ada");

    // Kannel down: the HTTP client's error names the URL it called, query and all.
    d.kill();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let extra = extra.replace(&kannel, &format!("http://127.0.0.1:{port}"));
    Daemon::config(tmp.path(), "127.0.0.1:0", &extra);
    d.spawn();
    let (s, v) = d.post_events(json!({"contact": "ada", "type": "go"}));
    assert_eq!(s, 200, "{v}");
    let f = failures(&d, "ada", 6);
    assert!(
        f.iter().any(|e| {
            let r = e["properties"]["reason"].as_str().unwrap_or("");
            r.contains(&format!("127.0.0.1:{port}")) && r.contains("gave up")
        }),
        "{f:?}"
    );
    assert_no_secret(&d, "ada");
}

const ONE_EMAIL: &str = r#"journey one {
  entry event "go"
  reentry always
  policy none
  send email mail {
    subject "Hi"
    text "Hello"
  }
}
"#;

#[test]
fn an_uncertain_smtp_outcome_is_recorded_and_counted_in_metrics() {
    let rt = servers();
    let smtp = SmtpServer::start(&rt);
    smtp.fail_next([support::smtp::Fault::StallAtDataEnd]);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("journeys")).unwrap();
    std::fs::write(tmp.path().join("journeys/one.journey"), ONE_EMAIL).unwrap();
    let extra = format!(
        "retry:\n  uncertain_retry_ms: 0\n\
         email:\n  smtp:\n    host: 127.0.0.1\n    port: {}\n    security: none\n    timeout_seconds: 5\n    final_reply_timeout_seconds: 1\n",
        smtp.addr.port()
    );
    let d = Daemon::start_with(tmp.path(), &extra);
    d.put_email("ada");
    let (s, v) = d.post_events(json!({"contact": "ada", "type": "go"}));
    assert_eq!(s, 200, "{v}");
    let e = wait_for("the uncertain outcome", 30, || {
        events_of_type(&d.contact("ada"), "message.uncertain")
            .into_iter()
            .next()
    });
    assert_eq!(e["message"], "mail");
    assert!(events_of_type(&d.contact("ada"), "message.failed").is_empty());
    let m = d.metrics();
    assert!(
        m.contains("journey_sends_total{channel=\"email\",outcome=\"uncertain\"} 1"),
        "{m}"
    );
    assert!(d.stderr().contains("end of DATA"), "logged at WARN");
    assert_eq!(smtp.count(), 1, "not retried (uncertain_retry_ms: 0)");
}

const EMAIL_AND_SMS: &str = r#"journey two {
  entry event "go"
  reentry always
  policy none
  send email mail {
    subject "Hi"
    text "Hello"
  }
  send sms text {
    text "Hello"
  }
}
"#;

/// A provider that fails once, then takes the send: `/metrics` counts two attempts (one
/// retried, one sent) and one retry for each channel. The SMTP server answers 451 (try
/// later); the Kannel answers 429 with `Retry-After`.
#[test]
fn attempts_and_retries_are_counted_per_channel_in_metrics() {
    let rt = servers();
    let smtp = SmtpServer::start(&rt);
    smtp.fail_next([support::smtp::Fault::AtMail(
        451,
        "4.3.2 try again later".into(),
    )]);
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    let kannel = serve(
        &rt,
        Router::new().route(
            "/cgi-bin/sendsms",
            get(move || {
                let n = h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move {
                    if n == 0 {
                        (
                            StatusCode::TOO_MANY_REQUESTS,
                            [("retry-after", "0")],
                            "slow down",
                        )
                    } else {
                        (
                            StatusCode::ACCEPTED,
                            [("x-provider", "kannel")],
                            "0: Accepted for delivery",
                        )
                    }
                }
            }),
        ),
    );
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("journeys")).unwrap();
    std::fs::write(tmp.path().join("journeys/two.journey"), EMAIL_AND_SMS).unwrap();
    let extra = format!(
        "retry:\n  max_attempts: 3\n  base_delay_ms: 1\n  max_delay_ms: 5\n\
         email:\n  smtp:\n    host: 127.0.0.1\n    port: {}\n    security: none\n\
         sms:\n  provider:\n    kind: kannel\n    url: {kannel}/cgi-bin/sendsms\n    username: maison\n    password: secret\n",
        smtp.addr.port()
    );
    let d = Daemon::start_with(tmp.path(), &extra);
    let (s, v) = d.admin_call(
        "PUT",
        "/v1/contacts/ada",
        Some(&json!({"email": "ada@example.com", "phone": "+393330000001"})),
    );
    assert_eq!(s, 200, "{v}");
    let (s, v) = d.post_events(json!({"contact": "ada", "type": "go"}));
    assert_eq!(s, 200, "{v}");
    let sent = wait_for("both sends recorded", 30, || {
        let sent = events_of_type(&d.contact("ada"), "message.sent");
        (sent.len() >= 2).then_some(sent)
    });
    for e in &sent {
        assert_eq!(e["properties"]["attempts"], 2, "{e}");
    }
    assert_eq!(smtp.received().len(), 1);
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 2);
    let m = d.metrics();
    for channel in ["email", "sms"] {
        for line in [
            format!(
                "journey_dispatch_attempts_total{{channel=\"{channel}\",outcome=\"retried\"}} 1"
            ),
            format!("journey_dispatch_attempts_total{{channel=\"{channel}\",outcome=\"sent\"}} 1"),
            format!("journey_dispatch_retries_total{{channel=\"{channel}\"}} 1"),
            format!("journey_sends_total{{channel=\"{channel}\",outcome=\"sent\"}} 1"),
        ] {
            assert!(m.lines().any(|l| l == line), "no {line:?} in:\n{m}");
        }
    }
    let attempts: u64 = m
        .lines()
        .filter(|l| l.starts_with("journey_dispatch_attempts_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(attempts, 4, "two attempts per channel:\n{m}");
}

#[test]
fn a_bad_vapid_key_stops_the_daemon_before_a_store_or_a_token_exists() {
    let tmp = tempfile::tempdir().unwrap();
    let path = Daemon::config(
        tmp.path(),
        "127.0.0.1:0",
        "push:\n  provider:\n    kind: webpush\n    vapid_private_key_file: /nonexistent/vapid.pem\n    vapid_subject: mailto:ops@maison.example\n",
    );
    let out = std::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stderr.contains("vapid_private_key_file /nonexistent/vapid.pem"),
        "{stderr}"
    );
    assert!(stdout.is_empty(), "{stdout}");
    assert!(!tmp.path().join("data/admin-token").exists());
    assert!(
        !tmp.path().join("data").exists(),
        "nothing was created: no data directory, store or tokens"
    );
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A POST with a raw body and headers: (status, JSON or Null).
fn post_raw(d: &Daemon, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Value) {
    let mut r = d.agent.post(&format!("{}{path}", d.base));
    for (k, v) in headers {
        r = r.set(k, v);
    }
    match r.send_bytes(body) {
        Ok(resp) => (resp.status(), resp.into_json().unwrap_or(Value::Null)),
        Err(ureq::Error::Status(s, resp)) => (s, resp.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("POST {path}: {e}"),
    }
}

#[test]
fn gzip_bodies_partial_batches_and_kannel_errors_as_sdks_need_them() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("journeys")).unwrap();
    let d = Daemon::start_with(tmp.path(), "  max_body_bytes: 4096\n");
    let auth = format!("Bearer {}", d.admin);
    let json_gz = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("content-encoding", "gzip"),
    ];

    // A gzip batch (RudderStack's default) with one reserved type in it: 207, the good call
    // kept, the refused one logged at WARN with its reason and counted by reason.
    let batch = json!({"batch": [
        {"type": "track", "userId": "gus", "event": "viewed", "messageId": "g-1"},
        {"type": "track", "userId": "gus", "event": "message.sent"},
        {"type": "group", "userId": "gus", "groupId": "acme", "traits": {"name": "Acme", "plan": "pro"}},
    ]});
    let (s, v) = post_raw(
        &d,
        "/v1/batch",
        &json_gz,
        &gzip(batch.to_string().as_bytes()),
    );
    assert_eq!(s, 207, "{v}");
    assert_eq!(v["accepted"], 2, "{v}");
    let c = d.contact("gus");
    assert_eq!(events_of_type(&c, "viewed").len(), 1, "{c}");
    assert!(events_of_type(&c, "message.sent").is_empty());
    // `group` keeps the group's traits on the contact, under `groups`.
    assert_eq!(
        c["profile"]["groups"]["acme"],
        json!({"name": "Acme", "plan": "pro"}),
        "{c}"
    );
    let log = d.stderr();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("207")
            && l.contains("reserved_type")
            && l.contains("message.sent")),
        "{log}"
    );
    let m = d.metrics();
    assert!(
        m.contains("journey_events_rejected_total{reason=\"reserved_type\"} 1"),
        "{m}"
    );

    // The events API takes gzip too.
    let one = json!({"contact": "gus", "type": "viewed", "id": "g-2"});
    let (s, v) = post_raw(
        &d,
        "/v1/events",
        &json_gz,
        &gzip(one.to_string().as_bytes()),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(events_of_type(&d.contact("gus"), "viewed").len(), 2);

    // Bounded after decompression: 100 KB of JSON in a few hundred bytes of gzip is a 413.
    let big =
        json!({"contact": "gus", "type": "viewed", "properties": {"pad": "x".repeat(100_000)}});
    let small = gzip(big.to_string().as_bytes());
    assert!(small.len() < 4096);
    let (s, v) = post_raw(&d, "/v1/events", &json_gz, &small);
    assert_eq!(s, 413, "{v}");
    assert_eq!(v["code"], "body_too_large");
    // Not gzip at all: a 400 that says so.
    let (s, v) = post_raw(&d, "/v1/events", &json_gz, one.to_string().as_bytes());
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["code"], "bad_encoding");

    // Kannel's DLR route answers JSON errors like every other route.
    for q in ["", "?status=1", "?t=x", "?t=x&status=zz"] {
        let r = d.agent.get(&format!("{}/v1/dlr/kannel{q}", d.base)).call();
        let (s, body) = match r {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap()),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(s, 400, "{q}: {body}");
        let v: Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{q}: not JSON: {body}"));
        assert!(
            v["code"].is_string() && v["message"].is_string(),
            "{q}: {v}"
        );
    }
}

const SMS_CHECK_RECEIVED: &str = r#"journey dlr {
  entry event "go"
  reentry always
  policy none
  send sms hi {
    text "Hi"
  }
  check received hi within 1d {
    yes {
      send sms thanks {
        text "Glad it reached you"
      }
    }
    no {
      end
    }
  }
}
"#;

/// An SMS provider that accepts every send and keeps the report URL it was given (Kannel's
/// `dlr-url`, Twilio's `StatusCallback`).
fn sms_provider(
    rt: &tokio::runtime::Runtime,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let urls: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let (k, t) = (urls.clone(), urls.clone());
    let app = Router::new()
        .route(
            "/cgi-bin/sendsms",
            get(
                move |q: axum::extract::Query<std::collections::HashMap<String, String>>| {
                    let urls = k.clone();
                    async move {
                        urls.lock().unwrap().push(q.0["dlr-url"].clone());
                        (StatusCode::ACCEPTED, "0: Accepted for delivery")
                    }
                },
            ),
        )
        .route(
            "/2010-04-01/Accounts/{sid}/Messages.json",
            post(move |body: String| {
                let urls = t.clone();
                async move {
                    let cb = body
                        .split('&')
                        .find_map(|kv| kv.strip_prefix("StatusCallback="))
                        .map(percent_decode)
                        .unwrap_or_default();
                    urls.lock().unwrap().push(cb);
                    (
                        StatusCode::CREATED,
                        "{\"sid\":\"SM1\",\"status\":\"queued\"}",
                    )
                }
            }),
        );
    (serve(rt, app), urls)
}

fn percent_decode(s: &str) -> String {
    let b = s.replace('+', " ").into_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(h, 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The path and query of a report URL the daemon gave the provider.
fn path_of(url: &str, base: &str) -> String {
    url.strip_prefix(base)
        .unwrap_or_else(|| panic!("{url} is not on {base}"))
        .to_string()
}

#[test]
fn received_waits_for_the_delivery_report_of_providers_that_send_one() {
    let rt = servers();
    let (provider, urls) = sms_provider(&rt);
    for kind in ["kannel", "twilio"] {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("journeys")).unwrap();
        std::fs::write(tmp.path().join("journeys/dlr.journey"), SMS_CHECK_RECEIVED).unwrap();
        let extra = match kind {
            "kannel" => format!(
                "sms:\n  provider:\n    kind: kannel\n    url: {provider}/cgi-bin/sendsms\n    username: u\n    password: p\n"
            ),
            _ => format!(
                "sms:\n  provider:\n    kind: twilio\n    account_sid: AC1\n    auth_token: tok\n    from: \"+15550000000\"\n    base_url: {provider}\n"
            ),
        };
        let d = Daemon::start_with(tmp.path(), &extra);
        let (s, v) = d.admin_call(
            "PUT",
            "/v1/contacts/zoe",
            Some(&json!({"phone": "+393330000001"})),
        );
        assert_eq!(s, 200, "{v}");
        urls.lock().unwrap().clear();
        let (s, v) = d.post_events(json!({"contact": "zoe", "type": "go"}));
        assert_eq!(s, 200, "{v}");
        // Accepted by the provider: message.sent, and the check still waits.
        let sent = wait_for("the send recorded", 30, || d.delivery("zoe", "hi"));
        assert_eq!(sent["properties"]["awaits_report"], true, "{kind}: {sent}");
        let c = wait_for("zoe at the check", 30, || {
            let c = d.contact("zoe");
            (step_of(&c, "dlr").as_deref() == Some("check_received_hi")).then_some(c)
        });
        assert!(
            d.delivery("zoe", "thanks").is_none(),
            "{kind}: accepted is not received: {c}"
        );
        let url = urls.lock().unwrap()[0].clone();
        let path = path_of(&url, &d.base);
        // The report: delivered. The check moves, thanks goes out.
        let report = |status: &str| -> u16 {
            match kind {
                "kannel" => d.call("GET", &path.replace("%d", status), None, None).0,
                _ => {
                    let r = d.agent.post(&format!("{}{path}", d.base)).send_form(&[
                        ("MessageSid", "SM1"),
                        ("MessageStatus", status),
                        ("ErrorCode", "30003"),
                    ]);
                    match r {
                        Ok(r) => r.status(),
                        Err(ureq::Error::Status(s, _)) => s,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        };
        let (delivered, bounced) = if kind == "kannel" {
            ("1", "16")
        } else {
            ("delivered", "undelivered")
        };
        assert_eq!(report(delivered), 200);
        wait_for("the thanks after the report", 30, || {
            d.delivery("zoe", "thanks")
        });
        // A bounce after `received` is recorded, and shows in the report.
        assert_eq!(report(bounced), 200);
        let c = wait_for("the bounce recorded", 30, || {
            let c = d.contact("zoe");
            (!events_of_type(&c, "bounced").is_empty()).then_some(c)
        });
        assert_eq!(events_of_type(&c, "received").len(), 1, "{c}");
        let (s, r) = d.admin_call("GET", "/v1/journeys/dlr/report?message=hi", None);
        assert_eq!(s, 200, "{r}");
        let m = &r["messages"][0];
        assert_eq!(m["received"]["unique"], 1, "{kind}: {r}");
        assert_eq!(m["bounced"]["unique"], 1, "{kind}: {r}");
    }
}

const BROWSE: &str = r#"journey browse {
  entry event "viewed"
  policy none
  wait 1d
  send email hi {
    subject "Still looking?"
    text "Come back"
  }
}
"#;

#[test]
fn segment_alias_merges_the_anonymous_contact_into_the_user() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("journeys")).unwrap();
    std::fs::write(tmp.path().join("journeys/browse.journey"), BROWSE).unwrap();
    let d = Daemon::start(tmp.path());
    let post = |path: &str, body: Value| {
        let (s, v) = d.admin_call("POST", path, Some(&body));
        assert_eq!(s, 200, "{path}: {v}");
    };
    // Anonymous browsing: a profile trait, an event, a journey waiting.
    post(
        "/v1/identify",
        json!({"anonymousId": "anon-1", "traits": {"utm_source": "ads", "email": "old@example.com"}}),
    );
    post(
        "/v1/track",
        json!({"anonymousId": "anon-1", "event": "viewed", "messageId": "v-1"}),
    );
    wait_for("anon-1 in the journey", 30, || {
        step_of(&d.contact("anon-1"), "browse")
    });
    // Signs up: identify as the user, then alias.
    post(
        "/v1/identify",
        json!({"userId": "u-1", "traits": {"email": "ada@example.com"}}),
    );
    post(
        "/v1/alias",
        json!({"previousId": "anon-1", "userId": "u-1"}),
    );

    let u = d.contact("u-1");
    assert_eq!(u["profile"]["utm_source"], "ads", "{u}");
    assert_eq!(
        u["profile"]["email"], "ada@example.com",
        "the user's values win: {u}"
    );
    assert_eq!(events_of_type(&u, "viewed").len(), 1, "{u}");
    assert_eq!(u["journeys"][0]["journey"], "browse", "{u}");
    assert!(u["journeys"][0]["ended"].is_null(), "still waiting: {u}");
    assert_eq!(
        d.contact("anon-1"),
        Value::Null,
        "the anonymous contact is gone"
    );
    // The same message id again is still a duplicate; a later anonymous event finds the user.
    post(
        "/v1/track",
        json!({"anonymousId": "anon-1", "event": "viewed", "messageId": "v-1"}),
    );
    post(
        "/v1/track",
        json!({"anonymousId": "anon-1", "event": "scrolled"}),
    );
    let u = d.contact("u-1");
    assert_eq!(events_of_type(&u, "viewed").len(), 1, "{u}");
    assert_eq!(events_of_type(&u, "scrolled").len(), 1, "{u}");
    assert_eq!(d.contact("anon-1"), Value::Null);
}
