//! Channels against real servers on 127.0.0.1, started by the tests: an SMTP server (the
//! `mailin` state machine on tokio) receiving real sessions from lettre, and axum servers
//! that speak the Twilio, Kannel, FCM, Web Push and webhook request shapes. Sends go
//! through the real runtime, store and `Dispatcher`; each test waits for the outcomes the
//! dispatcher reports to the inbox, commits them, and counts what the servers accepted.

mod support;
use support::store::*;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use journey::channels::tracking::verify;
use journey::channels::{dlr, webpush, Dispatcher, DispatcherOptions};
use journey::compile::{self, ir::Program};
use journey::config::{Config, PushProvider, SmsProvider, SmtpConfig, SmtpSecurity};
use journey::engine::{Claims, TokenKind};
use journey::engine::{Contact, Event};
use journey::lang;
use journey::runtime::live::{run_live, LoopConfig, Submission};
use journey::runtime::LiveContext;
use journey::runtime::VirtualClock;
use journey::runtime::{Input, Runtime};
use journey::store::Store;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::smtp::{Fault, SmtpServer};

const T0: i64 = 1_772_355_600_000; // 2026-03-01T09:00:00Z, 10:00 in Rome
const SECRET: &[u8] = b"test-secret";
const PUBLIC: &str = "http://journey.test";
const WAIT: Duration = Duration::from_secs(20);

// ------------------------------------------------------------------ harness

fn compile_files(files: &[(&str, &str)]) -> Program {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("templates")).unwrap();
    let mut paths = Vec::new();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        if name.ends_with(".journey") {
            paths.push(p);
        }
    }
    let loaded = lang::load_files(&paths);
    let c = compile::compile(&loaded);
    c.program.unwrap_or_else(|| {
        panic!(
            "{}",
            lang::diagnostic::render_human(&loaded.sources, &c.diagnostics, false)
        )
    })
}

fn repo_journeys(names: &[&str]) -> Program {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("journeys");
    // The topics the marketing examples name are defined in topics.journey.
    let paths: Vec<_> = names
        .iter()
        .chain(std::iter::once(&"topics.journey"))
        .map(|n| root.join(n))
        .collect();
    let loaded = lang::load_files(&paths);
    let c = compile::compile(&loaded);
    c.program.expect("the example journeys compile")
}

fn test_config(dir: &std::path::Path) -> Config {
    let mut c = Config {
        data_dir: dir.to_path_buf(),
        public_url: PUBLIC.into(),
        ..Config::default()
    };
    // Tiny backoff: tests wait for outcomes, not for time.
    c.retry.base_delay_ms = 1;
    c.retry.max_delay_ms = 5;
    c.retry.max_attempts = 3;
    c
}

struct Harness {
    rt: Runtime,
    dispatcher: Dispatcher,
    rx: Receiver<Submission>,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn new(program: Program, config: impl FnOnce(&mut Config)) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let mut c = test_config(dir.path());
        config(&mut c);
        let store = temporary_store();
        let mut rt = Runtime::new(store.clone(), T0, chrono_tz::UTC).unwrap();
        rt.durable = false;
        rt.deploy(program, T0).unwrap();
        let (tx, rx) = channel();
        let dispatcher = Dispatcher::new(DispatcherOptions {
            config: c,
            secret: SECRET.to_vec(),
            context: Arc::new(LiveContext::new(store, tx)),
            handle: None,
            clock: Some(Arc::new(VirtualClock::new(T0))),
            observer: None,
        })
        .unwrap();
        Harness {
            rt,
            dispatcher,
            rx,
            _dir: dir,
        }
    }

    fn contact(&mut self, id: &str, profile: Value) {
        let Value::Object(profile) = profile else {
            panic!()
        };
        self.rt
            .upsert_contact(&Contact {
                id: id.into(),
                profile,
            })
            .unwrap();
    }

    fn input(&mut self, input: Input) {
        let mut tl = Vec::new();
        self.rt
            .run_at(vec![input], T0, &mut self.dispatcher, &mut tl)
            .unwrap();
    }

    fn event(&mut self, contact: &str, kind: &str) {
        self.input(Input::Event(Event {
            contact: contact.into(),
            kind: kind.into(),
            at: T0,
            ..Event::default()
        }));
    }

    /// The next outcome the dispatcher reports, committed through the runtime.
    fn outcome(&mut self) -> Event {
        let s = self
            .rx
            .recv_timeout(WAIT)
            .expect("the dispatcher reports every outcome");
        let ev = match &s.inputs[..] {
            [Input::Delivered { event, .. }] => event.clone(),
            other => panic!("unexpected report {other:?}"),
        };
        let mut tl = Vec::new();
        self.rt
            .run_at(s.inputs, T0, &mut self.dispatcher, &mut tl)
            .unwrap();
        ev
    }

    /// Runs the next control the dispatcher sends to the live loop (a profile change).
    fn control(&mut self) {
        let s = self
            .rx
            .recv_timeout(WAIT)
            .expect("the dispatcher sends a control");
        assert!(
            s.inputs.is_empty(),
            "a control, not an outcome: {:?}",
            s.inputs
        );
        let c = s.control.expect("a control");
        let mut tl = Vec::new();
        c(&mut self.rt, &mut self.dispatcher, T0, &mut tl);
    }

    fn outbox(&self) -> usize {
        self.rt.store.outbox().unwrap().len()
    }

    /// Nothing more is reported (the test's sends are all accounted for).
    fn assert_quiet(&self) {
        assert!(self.dispatcher.wait_idle(WAIT));
        assert!(self.rx.try_recv().is_err(), "no outcome is reported twice");
    }
}

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

fn token_of(url: &str, kind: &str) -> Claims {
    let t = url
        .split(&format!("/{kind}/"))
        .nth(1)
        .unwrap_or_else(|| panic!("{url} has no /{kind}/"));
    let t: String = t
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '.')
        .collect();
    verify(SECRET, t.trim_end_matches('.')).expect("a valid token")
}

/// The short link in an SMS or push text (`{PUBLIC}/s/{code}`): its code and the claims the
/// store keeps under it.
fn short_of(store: &Store, text: &str) -> (String, Claims) {
    let prefix = format!("{PUBLIC}/s/");
    let at = text
        .find(&prefix)
        .unwrap_or_else(|| panic!("{text} has no short link"));
    let code: String = text[at + prefix.len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    assert_eq!(code.len(), 10, "a ten-character code: {text}");
    let claims = store
        .short_link(&code)
        .unwrap()
        .unwrap_or_else(|| panic!("the store keeps the claims of {code}"));
    assert_eq!(claims.kind, TokenKind::Click);
    (code, claims)
}

fn smtp_config(server: &SmtpServer) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port: Some(server.addr.port()),
        security: SmtpSecurity::None,
        username: None,
        password: None,
        pool_size: Some(2),
        timeout_seconds: Some(5),
        final_reply_timeout_seconds: None,
    }
}

const ONE_EMAIL: &str = r#"journey mail {
  entry event "go"
  reentry always
  policy none
  send email hello {
    subject "Hello {{ contact.first_name | default('friend') }}"
    html "<p>Hi {{ contact.first_name | default('friend') }}, <a href=\"{{ link('shop') }}\">shop</a></p>"
    link shop "https://maison.example/shop?c={{ contact.id }}"
  }
}
"#;

// ------------------------------------------------------------------ email

#[test]
fn welcome_email_over_smtp_is_multipart_with_tracked_links_and_a_click_moves_the_journey() {
    let srv_rt = servers();
    let smtp = SmtpServer::start(&srv_rt);
    smtp.require_auth("maison", "s3cret");
    let mut h = Harness::new(repo_journeys(&["welcome.journey", "dnd.journey"]), |c| {
        let mut s = smtp_config(&smtp);
        s.username = Some("maison".into());
        s.password = Some("s3cret".into());
        c.email.smtp = Some(s);
        c.email.from = Some("Maison <hello@maison.example>".into());
    });
    h.contact(
        "angela",
        json!({"email": "angela@example.com", "first_name": "Angela", "timezone": "Europe/Rome"}),
    );
    h.input(Input::Event(Event {
        contact: "angela".into(),
        kind: "form_compiled".into(),
        at: T0,
        context: Some("web".into()),
        properties: json!({"formName": "addUser"}).as_object().unwrap().clone(),
        ..Event::default()
    }));
    assert_eq!(h.outbox(), 1, "the send waits in the outbox until reported");
    let ev = h.outcome();
    assert_eq!(ev.kind, "message.sent", "{ev:?}");
    assert_eq!(ev.properties["subject"], "Welcome to Maison, Angela");
    assert_eq!(ev.properties["attempts"], 1);
    assert_eq!(
        ev.message_id.as_deref(),
        Some(ev.message_id.as_deref().unwrap())
    );
    assert_eq!(h.outbox(), 0, "the report removed the outbox entry");

    let got = smtp.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].to, vec!["angela@example.com".to_string()]);
    assert_eq!(got[0].from, "hello@maison.example");
    let msg = mail_parser::MessageParser::default()
        .parse(&got[0].data)
        .expect("MIME parses");
    assert_eq!(msg.subject(), Some("Welcome to Maison, Angela"));
    let from = msg.from().unwrap().first().unwrap();
    assert_eq!(from.name(), Some("Maison"));
    assert_eq!(from.address(), Some("hello@maison.example"));
    assert_eq!(
        msg.to().unwrap().first().unwrap().address(),
        Some("angela@example.com")
    );
    let mid = msg.message_id().expect("a Message-ID");
    assert!(mid.ends_with("@maison.example"), "{mid}");
    assert!(mid.contains("welcome"), "{mid}");
    // RFC 8058 one-click unsubscribe.
    let raw = String::from_utf8_lossy(&got[0].data).to_string();
    assert!(
        raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
        "{raw}"
    );
    let lu = raw
        .lines()
        .find(|l| l.starts_with("List-Unsubscribe: "))
        .expect("List-Unsubscribe");
    let lu = lu
        .trim_start_matches("List-Unsubscribe: <")
        .trim_end_matches('>');
    assert!(lu.starts_with(&format!("{PUBLIC}/u/")), "{lu}");
    let unsub = token_of(lu, "u");
    assert_eq!(unsub.kind, TokenKind::Unsubscribe);
    assert_eq!(unsub.contact, "angela");
    // Both parts.
    let html = msg.body_html(0).expect("an HTML part").to_string();
    let text = msg.body_text(0).expect("a text part").to_string();
    assert!(html.contains("Welcome to Maison, Angela!"), "{html}");
    assert!(
        !html.contains("https://maison.example/profile"),
        "tracked: {html}"
    );
    let click_url = html
        .split("href=\"")
        .map(|s| s.split('"').next().unwrap())
        .find(|u| u.contains("/t/c/"))
        .expect("a tracked link");
    assert!(click_url.starts_with(&format!("{PUBLIC}/t/c/")));
    let click = token_of(click_url, "t/c");
    assert_eq!(click.kind, TokenKind::Click);
    assert_eq!(click.link.as_deref(), Some("profile"));
    assert_eq!(
        click.url.as_deref(),
        Some("https://maison.example/profile?c=angela")
    );
    assert_eq!(click.journey, "welcome_promo");
    assert_eq!(Some(click.message_id.as_str()), ev.message_id.as_deref());
    assert!(
        html.contains(&format!("{PUBLIC}/u/")),
        "unsubscribe link in the body"
    );
    let pixel = html
        .split("<img src=\"")
        .nth(1)
        .map(|s| s.split('"').next().unwrap())
        .expect("an open pixel");
    assert_eq!(token_of(pixel, "t/o").kind, TokenKind::Open);
    assert!(text.contains("Welcome to Maison, Angela!"), "{text}");
    assert!(
        text.contains(click_url),
        "the text part links the same tracked URL: {text}"
    );
    assert!(!text.contains('<'), "no tags in the text part: {text}");

    // The click the daemon records from that token moves the journey to the promo code.
    h.input(Input::Event(Event {
        contact: click.contact.clone(),
        kind: "clicked".into(),
        at: T0 + 60_000,
        journey: Some(click.journey.clone()),
        message: Some(click.message.clone()),
        link: click.link.clone(),
        message_id: Some(click.message_id.clone()),
        ..Event::default()
    }));
    let inst = &h.rt.store.instances_of("angela").unwrap()[0];
    assert!(
        inst.path.iter().any(|p| p == "promo_code"),
        "the click took the yes branch: {:?}",
        inst.path
    );
    h.assert_quiet();
}

#[test]
fn smtp_faults_are_retried_or_recorded_and_nothing_is_sent_twice() {
    let srv_rt = servers();
    let smtp = SmtpServer::start(&srv_rt);
    let mut h = Harness::new(compile_files(&[("m.journey", ONE_EMAIL)]), |c| {
        c.email.smtp = Some(smtp_config(&smtp));
    });
    let mut n = 0;
    let mut send = |h: &mut Harness, faults: Vec<Fault>| -> Event {
        n += 1;
        let id = format!("c{n}");
        h.contact(&id, json!({"email": format!("{id}@example.com")}));
        smtp.fail_next(faults);
        h.event(&id, "go");
        h.outcome()
    };
    let f = |code: u16, text: &str| (code, text.to_string());

    // 421 at MAIL (the server closes the connection): retried, delivered once.
    let (c, t) = f(421, "Service not available");
    let ev = send(&mut h, vec![Fault::AtMail(c, t)]);
    assert_eq!(
        (ev.kind.as_str(), &ev.properties["attempts"]),
        ("message.sent", &json!(2))
    );
    assert_eq!(smtp.count(), 1);

    // 450 at RCPT: retried, delivered once.
    let (c, t) = f(450, "4.2.0 Mailbox busy");
    let ev = send(&mut h, vec![Fault::AtRcpt(c, t)]);
    assert_eq!(
        (ev.kind.as_str(), &ev.properties["attempts"]),
        ("message.sent", &json!(2))
    );
    assert_eq!(smtp.count(), 2);

    // A disconnect in the middle of the message: retried, delivered exactly once.
    let ev = send(&mut h, vec![Fault::DisconnectInData]);
    assert_eq!(
        (ev.kind.as_str(), &ev.properties["attempts"]),
        ("message.sent", &json!(2))
    );
    assert_eq!(smtp.count(), 3);
    assert_eq!(
        smtp.received().last().unwrap().to,
        vec!["c3@example.com".to_string()]
    );

    // 550 on the recipient: a bounce, not retried.
    let before = smtp.state.transactions.load(Ordering::SeqCst);
    let (c, t) = f(550, "5.1.1 No such user");
    let ev = send(&mut h, vec![Fault::AtRcpt(c, t)]);
    assert_eq!(ev.kind, "message.bounced", "{ev:?}");
    assert!(
        ev.properties["reason"].as_str().unwrap().contains("550"),
        "{ev:?}"
    );
    assert_eq!(smtp.state.transactions.load(Ordering::SeqCst), before + 1);
    assert_eq!(smtp.count(), 3);

    // 554 after the data (policy): failed, not retried, not a bounce.
    let (c, t) = f(554, "5.7.1 Message rejected");
    let ev = send(&mut h, vec![Fault::AtDataEnd(c, t)]);
    assert_eq!(ev.kind, "message.failed", "{ev:?}");
    assert_eq!(ev.properties["attempts"], 1);
    assert_eq!(smtp.count(), 3);

    // 451 on every attempt: given up after retry.max_attempts (3).
    let before = smtp.state.transactions.load(Ordering::SeqCst);
    let (c, t) = f(451, "4.3.0 Try later");
    let ev = send(
        &mut h,
        vec![
            Fault::AtMail(c, t.clone()),
            Fault::AtMail(c, t.clone()),
            Fault::AtMail(c, t),
        ],
    );
    assert_eq!(ev.kind, "message.failed", "{ev:?}");
    let reason = ev.properties["reason"].as_str().unwrap();
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    assert!(reason.contains("451"), "{reason}");
    assert_eq!(smtp.state.transactions.load(Ordering::SeqCst), before + 3);
    assert_eq!(smtp.count(), 3);

    // Every send accounted for: nothing left in the outbox, each recipient once.
    assert_eq!(h.outbox(), 0);
    let mut to: Vec<String> = smtp.received().iter().map(|r| r.to[0].clone()).collect();
    to.sort();
    assert_eq!(to, ["c1@example.com", "c2@example.com", "c3@example.com"]);
    h.assert_quiet();
}

#[test]
fn a_missing_variable_fails_the_send_naming_journey_step_and_variable() {
    let src = r#"journey mail {
  entry event "go"
  policy none
  send email hello {
    subject "Hello {{ contact.last_name }}"
    text "Hi"
  }
}
"#;
    let srv_rt = servers();
    let smtp = SmtpServer::start(&srv_rt);
    let mut h = Harness::new(compile_files(&[("m.journey", src)]), |c| {
        c.email.smtp = Some(smtp_config(&smtp));
    });
    h.contact("c1", json!({"email": "c1@example.com"}));
    h.event("c1", "go");
    let ev = h.outcome();
    assert_eq!(ev.kind, "message.failed");
    assert_eq!(
        ev.properties["reason"],
        "journey 'mail', step 'hello', subject line 1: undefined variable 'contact.last_name' (give it a default: {{ contact.last_name | default('…') }})"
    );
    assert_eq!(smtp.count(), 0);
    assert_eq!(smtp.state.connections.load(Ordering::SeqCst), 0);
    assert_eq!(h.outbox(), 0);
}

#[test]
fn with_no_config_the_welcome_email_lands_in_the_maildir() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.email.smtp = None;
    let store = open_at(&dir.path().join("store"));
    let clock = Arc::new(VirtualClock::new(T0));
    let mut rt = Runtime::new(store.clone(), T0, chrono_tz::UTC).unwrap();
    rt.deploy(repo_journeys(&["welcome.journey", "dnd.journey"]), T0)
        .unwrap();
    rt.upsert_contact(&Contact {
        id: "bruno".into(),
        profile:
            json!({"email": "bruno@example.com", "first_name": "Bruno", "timezone": "Europe/Rome"})
                .as_object()
                .unwrap()
                .clone(),
    })
    .unwrap();
    let (tx, rx) = channel();
    let mut dispatcher = Dispatcher::new(DispatcherOptions {
        config,
        secret: SECRET.to_vec(),
        context: Arc::new(LiveContext::new(store.clone(), tx.clone())),
        handle: None,
        clock: Some(clock.clone()),
        observer: None,
    })
    .unwrap();
    let maildir = dispatcher.maildir().unwrap().to_path_buf();
    assert_eq!(maildir, dir.path().join("maildir"));
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let live = std::thread::spawn(move || {
        run_live(
            &mut rt,
            clock.as_ref(),
            &mut dispatcher,
            &rx,
            &stop2,
            LoopConfig {
                max_batch: 64,
                idle: Duration::from_millis(5),
            },
            &mut |_| {},
        )
        .unwrap();
    });
    let (sub, ack) = Submission::with_channel(vec![Input::Event(Event {
        contact: "bruno".into(),
        kind: "form_compiled".into(),
        at: T0,
        context: Some("web".into()),
        properties: json!({"formName": "addUser"}).as_object().unwrap().clone(),
        ..Event::default()
    })]);
    tx.send(sub).unwrap();
    ack.recv_timeout(WAIT).unwrap().unwrap();
    // Wait for the delivery to be recorded (the outcome, not a time).
    let until = Instant::now() + WAIT;
    let sent = loop {
        let ev = store.events_of("bruno").unwrap();
        if let Some(e) = ev.iter().find(|e| e.kind.starts_with("message.")) {
            break e.clone();
        }
        assert!(Instant::now() < until, "no delivery recorded");
        std::thread::sleep(Duration::from_millis(5));
    };
    stop.store(true, Ordering::SeqCst);
    drop(tx);
    live.join().unwrap();
    assert_eq!(sent.kind, "message.sent", "{sent:?}");
    assert_eq!(store.outbox().unwrap().len(), 0);

    let files: Vec<_> = std::fs::read_dir(maildir.join("new"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(std::fs::read_dir(maildir.join("tmp")).unwrap().count(), 0);
    assert!(maildir.join("cur").is_dir());
    let bytes = std::fs::read(&files[0]).unwrap();
    // Maildir readers (mutt) expect the local line ending: LF, no CR anywhere.
    assert!(
        !bytes.contains(&b'\r'),
        "a Maildir file has LF line endings: {}",
        String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
    );
    assert!(
        bytes.windows(2).any(|w| w == b"\n\n"),
        "headers end with an empty line"
    );
    let msg = mail_parser::MessageParser::default().parse(&bytes).unwrap();
    assert_eq!(msg.subject(), Some("Welcome to Maison, Bruno"));
    assert_eq!(
        msg.to().unwrap().first().unwrap().address(),
        Some("bruno@example.com")
    );
    assert!(msg
        .body_html(0)
        .unwrap()
        .contains(&format!("{PUBLIC}/t/c/")));
    assert!(msg
        .body_text(0)
        .unwrap()
        .contains("Welcome to Maison, Bruno!"));
    assert_eq!(
        sent.properties["maildir_file"].as_str(),
        Some(files[0].to_str().unwrap())
    );
}

// ------------------------------------------------------------------ HTTP fakes

/// Scripted answers (status, body, delay) and the requests seen.
#[derive(Default)]
struct Fake {
    script: Mutex<VecDeque<(u16, String, u64)>>,
    /// Every request: (idempotency key or token, parsed fields).
    seen: Mutex<Vec<(String, Value)>>,
    /// Requests answered with a 2xx.
    accepted: Mutex<Vec<(String, Value)>>,
}

impl Fake {
    fn script(&self, answers: &[(u16, &str)]) {
        self.script
            .lock()
            .unwrap()
            .extend(answers.iter().map(|(s, b)| (*s, b.to_string(), 0)));
    }

    async fn answer(&self, key: String, fields: Value, ok: (u16, String)) -> (StatusCode, String) {
        self.seen
            .lock()
            .unwrap()
            .push((key.clone(), fields.clone()));
        let next = self.script.lock().unwrap().pop_front();
        let (status, body, delay) = next.unwrap_or((ok.0, ok.1, 0));
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if (200..300).contains(&status) {
            self.accepted.lock().unwrap().push((key, fields));
        }
        (StatusCode::from_u16(status).unwrap(), body)
    }

    fn accepted(&self) -> Vec<(String, Value)> {
        self.accepted.lock().unwrap().clone()
    }

    fn seen(&self) -> Vec<(String, Value)> {
        self.seen.lock().unwrap().clone()
    }
}

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

const ONE_SMS: &str = r#"journey texts {
  entry event "go"
  policy none
  send sms reminder {
    text "Hi {{ contact.first_name }}, see {{ link('event') }} tonight"
    link event "https://maison.example/events/42"
  }
}
"#;

#[test]
fn twilio_sms_retries_500_and_429_then_sends_once() {
    let srv_rt = servers();
    let fake = Arc::new(Fake::default());
    let app = Router::new()
        .route(
            "/2010-04-01/Accounts/{sid}/Messages.json",
            post(
                |State(f): State<Arc<Fake>>,
                 Path(sid): Path<String>,
                 headers: HeaderMap,
                 Form(form): Form<HashMap<String, String>>| async move {
                    // Basic auth: the account SID and the auth token.
                    use base64::Engine as _;
                    let auth =
                        base64::engine::general_purpose::STANDARD.encode(format!("{sid}:tok3n"));
                    if header(&headers, "authorization") != format!("Basic {auth}") {
                        return (StatusCode::UNAUTHORIZED, "auth".to_string());
                    }
                    let fields =
                        json!({"To": form["To"], "From": form["From"], "Body": form["Body"]});
                    f.answer(
                        header(&headers, "idempotency-key"),
                        fields,
                        (201, json!({"sid": "SM123", "status": "queued"}).to_string()),
                    )
                    .await
                },
            ),
        )
        .with_state(fake.clone());
    let base = serve(&srv_rt, app);
    let mut h = Harness::new(compile_files(&[("t.journey", ONE_SMS)]), |c| {
        c.sms.provider = Some(SmsProvider::Twilio {
            account_sid: "AC1".into(),
            auth_token: "tok3n".into(),
            from: "+15550001".into(),
            base_url: Some(base.clone()),
        });
    });
    h.contact("c1", json!({"phone": "+393330000001", "first_name": "Ada"}));
    fake.script(&[(500, "oops"), (429, "slow down")]);
    h.event("c1", "go");
    let ev = h.outcome();
    assert_eq!(ev.kind, "message.sent", "{ev:?}");
    assert_eq!(ev.properties["attempts"], 3);
    assert_eq!(ev.properties["provider_id"], "SM123");
    assert_eq!(ev.properties["status"], 201);
    let seen = fake.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen
        .iter()
        .all(|(k, _)| Some(k.as_str()) == ev.message_id.as_deref()));
    let acc = fake.accepted();
    assert_eq!(acc.len(), 1, "sent once");
    let f = &acc[0].1;
    assert_eq!(f["To"], "+393330000001");
    assert_eq!(f["From"], "+15550001");
    let body = f["Body"].as_str().unwrap();
    // A short link on our base URL: one SMS segment, not several.
    let (code, c) = short_of(&h.rt.store, body);
    assert_eq!(
        body,
        format!("Hi Ada, see http://journey.test/s/{code} tonight")
    );
    assert_eq!(body.len(), 52);
    assert_eq!(c.url.as_deref(), Some("https://maison.example/events/42"));
    assert_eq!(c.link.as_deref(), Some("event"));
    assert_eq!(c.contact, "c1");
    assert_eq!(c.journey, "texts");
    assert_eq!(c.message, "reminder");
    assert_eq!(Some(c.message_id), ev.message_id);

    // A 400 is permanent: failed at once.
    h.contact("c2", json!({"phone": "not-a-number", "first_name": "Bo"}));
    fake.script(&[(400, "{\"code\": 21211, \"message\": \"invalid To\"}")]);
    h.event("c2", "go");
    let ev = h.outcome();
    assert_eq!(ev.kind, "message.failed");
    assert_eq!(ev.properties["attempts"], 1);
    assert_eq!(ev.properties["status"], 400);
    assert!(ev.properties["reason"]
        .as_str()
        .unwrap()
        .contains("invalid To"));
    assert_eq!(fake.accepted().len(), 1);
    assert_eq!(h.outbox(), 0);
    h.assert_quiet();
}

#[test]
fn kannel_sms_carries_a_dlr_url_whose_report_becomes_received() {
    let srv_rt = servers();
    let fake = Arc::new(Fake::default());
    let app = Router::new()
        .route(
            "/cgi-bin/sendsms",
            get(
                |State(f): State<Arc<Fake>>, Query(q): Query<BTreeMap<String, String>>| async move {
                    if q.get("username").map(String::as_str) != Some("kuser")
                        || q.get("password").map(String::as_str) != Some("kpass")
                    {
                        return (StatusCode::FORBIDDEN, "Authorization failed".to_string());
                    }
                    let fields = serde_json::to_value(&q).unwrap();
                    f.answer(
                        q.get("to").cloned().unwrap_or_default(),
                        fields,
                        (202, "0: Accepted for delivery".into()),
                    )
                    .await
                },
            ),
        )
        .with_state(fake.clone());
    let base = serve(&srv_rt, app);
    let mut h = Harness::new(compile_files(&[("t.journey", ONE_SMS)]), |c| {
        c.sms.provider = Some(SmsProvider::Kannel {
            url: format!("{base}/cgi-bin/sendsms"),
            username: "kuser".into(),
            password: "kpass".into(),
            from: Some("Maison".into()),
        });
    });
    h.contact("c1", json!({"phone": "+393330000001", "first_name": "Zoë"}));
    fake.script(&[(503, "Service unavailable")]);
    h.event("c1", "go");
    let ev = h.outcome();
    assert_eq!(ev.kind, "message.sent", "{ev:?}");
    assert_eq!(ev.properties["attempts"], 2);
    let acc = fake.accepted();
    assert_eq!(acc.len(), 1);
    let q = &acc[0].1;
    assert_eq!(q["to"], "+393330000001");
    assert_eq!(q["from"], "Maison");
    assert_eq!(q["charset"], "UTF-8");
    assert_eq!(q["coding"], "2", "non-ASCII text goes as UCS-2");
    let text = q["text"].as_str().unwrap();
    let (code, c) = short_of(&h.rt.store, text);
    assert_eq!(
        text,
        format!("Hi Zoë, see http://journey.test/s/{code} tonight")
    );
    assert_eq!(text.chars().count(), 52, "within one UCS-2 segment (70)");
    assert_eq!(c.url.as_deref(), Some("https://maison.example/events/42"));
    assert_eq!(q["dlr-mask"], "19");
    let dlr_url = q["dlr-url"].as_str().unwrap();
    assert!(
        dlr_url.starts_with("http://journey.test/v1/dlr/kannel?t="),
        "{dlr_url}"
    );
    assert!(dlr_url.ends_with("&status=%d"), "{dlr_url}");
    // Kannel calls it back with %d filled in; the daemon records what dlr gives.
    let token = dlr_url
        .split("t=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let received = dlr::kannel_event(SECRET, token, "1", T0 + 5_000)
        .unwrap()
        .unwrap();
    assert_eq!(received.kind, "received");
    assert_eq!(received.message_id, ev.message_id);
    assert_eq!(received.journey.as_deref(), Some("texts"));
    h.input(Input::Event(received.clone()));
    // A repeated report is a duplicate.
    h.input(Input::Event(received));
    let n =
        h.rt.store
            .events_of("c1")
            .unwrap()
            .iter()
            .filter(|e| e.kind == "received")
            .count();
    assert_eq!(n, 1);
    h.assert_quiet();
}

#[test]
fn fcm_push_goes_to_every_token_retrying_only_the_failed_one() {
    let src = r#"journey pushes {
  entry event "go"
  policy none
  send push hello {
    title "Hi {{ contact.first_name }}"
    body  "New in: {{ event.product | default('shoes') }}"
    link shop "https://maison.example/shop?c={{ contact.id }}"
    data {
      screen "product"
      url "{{ link('shop') }}"
      image "https://cdn.maison.example/shoes.png"
    }
  }
}
"#;
    let srv_rt = servers();
    let fake = Arc::new(Fake::default());
    let app = Router::new()
        .route(
            "/v1/projects/{project}/messages:send",
            post(
                |State(f): State<Arc<Fake>>,
                 Path(project): Path<String>,
                 headers: HeaderMap,
                 Json(body): Json<Value>| async move {
                    if project != "maison-app" || header(&headers, "authorization") != "Bearer ya29.token" {
                        return (StatusCode::UNAUTHORIZED, "{}".to_string());
                    }
                    let m = &body["message"];
                    let token = m["token"].as_str().unwrap_or_default().to_string();
                    if token == "gone" {
                        return f
                            .answer(token, body.clone(), (404, json!({"error": {"status": "NOT_FOUND", "message": "UNREGISTERED"}}).to_string()))
                            .await;
                    }
                    f.answer(token, body.clone(), (200, json!({"name": "projects/maison-app/messages/1"}).to_string()))
                        .await
                },
            ),
        )
        .with_state(fake.clone());
    let base = serve(&srv_rt, app);
    let mut h = Harness::new(compile_files(&[("p.journey", src)]), |c| {
        c.push.provider = Some(PushProvider::Fcm {
            project_id: "maison-app".into(),
            access_token: "ya29.token".into(),
            base_url: Some(base.clone()),
        });
    });
    h.contact(
        "c1",
        json!({"first_name": "Ada", "push_tokens": ["tokA", "tokB", "gone"]}),
    );
    // The first request (tokA) fails with 503: only it is tried again.
    fake.script(&[(503, "unavailable")]);
    h.event("c1", "go");
    let ev = h.outcome();
    assert_eq!(ev.kind, "message.sent", "{ev:?}");
    assert_eq!(ev.properties["subject"], "Hi Ada");
    assert_eq!(ev.properties["delivered"], 2);
    assert_eq!(ev.properties["attempts"], 2);
    let mut acc: Vec<String> = fake.accepted().into_iter().map(|(k, _)| k).collect();
    acc.sort();
    assert_eq!(acc, ["tokA", "tokB"], "each device once");
    let seen: Vec<String> = fake.seen().into_iter().map(|(k, _)| k).collect();
    assert_eq!(seen.iter().filter(|k| *k == "tokB").count(), 1);
    assert_eq!(
        seen.iter().filter(|k| *k == "gone").count(),
        1,
        "a 404 is not retried"
    );
    // FCM's 404 (UNREGISTERED): the token leaves the profile, through the live loop.
    h.control();
    let c1 = h.rt.store.contact("c1").unwrap().unwrap();
    assert_eq!(c1.profile["push_tokens"], json!(["tokA", "tokB"]));
    let body = &fake.accepted()[0].1["message"];
    assert_eq!(body["notification"]["title"], "Hi Ada");
    assert_eq!(body["notification"]["body"], "New in: shoes");
    assert_eq!(body["data"]["screen"], "product");
    // The link is a short one (a push payload is at most 4 KB); an image URL stays.
    let url = body["data"]["url"].as_str().unwrap();
    let (code, c) = short_of(&h.rt.store, url);
    assert_eq!(url, format!("{PUBLIC}/s/{code}"));
    assert_eq!(c.url.as_deref(), Some("https://maison.example/shop?c=c1"));
    assert_eq!(c.link.as_deref(), Some("shop"));
    assert_eq!(
        body["data"]["image"],
        "https://cdn.maison.example/shoes.png"
    );
    assert_eq!(
        body["data"]["message_id"].as_str(),
        ev.message_id.as_deref()
    );

    // Only dead tokens: failed.
    h.contact("c2", json!({"first_name": "Bo", "push_tokens": ["gone"]}));
    h.event("c2", "go");
    let ev = h.outcome();
    assert_eq!(ev.kind, "message.failed");
    assert!(ev.properties["reason"].as_str().unwrap().contains("404"));
    assert_eq!(h.outbox(), 0);
    h.control();
    let c2 = h.rt.store.contact("c2").unwrap().unwrap();
    assert_eq!(c2.profile["push_tokens"], json!([]));
    h.assert_quiet();
}

/// What a push service received: headers and body of each request.
type Pushes = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

#[test]
fn web_push_is_encrypted_for_the_browser_and_signed_with_vapid() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use journey::channels::webpush::p256::elliptic_curve::sec1::ToEncodedPoint;
    let src = r#"journey pushes {
  entry event "go"
  policy none
  send push hello {
    title "Hi {{ contact.first_name }}"
    body  "Back in stock"
  }
}
"#;
    let srv_rt = servers();
    let seen: Pushes = Arc::default();
    let app = Router::new()
        .route(
            "/push/{id}",
            post(
                |State(s): State<Pushes>, headers: HeaderMap, body: axum::body::Bytes| async move {
                    s.lock().unwrap().push((headers, body.to_vec()));
                    StatusCode::CREATED.into_response()
                },
            ),
        )
        .with_state(seen.clone());
    let base = serve(&srv_rt, app);
    let ua = webpush::p256::SecretKey::random(&mut rand_core::OsRng);
    let auth = [9u8; 16];
    let vapid = webpush::p256::SecretKey::random(&mut rand_core::OsRng);
    let mut h = Harness::new(compile_files(&[("p.journey", src)]), |c| {
        c.push.provider = Some(PushProvider::Webpush {
            vapid_private_key: URL_SAFE_NO_PAD.encode(vapid.to_bytes()),
            vapid_subject: "mailto:ops@maison.example".into(),
            vapid_private_key_file: None,
        });
    });
    h.contact(
        "c1",
        json!({"first_name": "Ada", "push_tokens": [{
            "endpoint": format!("{base}/push/abc"),
            "keys": {
                "p256dh": URL_SAFE_NO_PAD.encode(ua.public_key().to_encoded_point(false).as_bytes()),
                "auth": URL_SAFE_NO_PAD.encode(auth),
            }
        }]}),
    );
    h.event("c1", "go");
    let ev = h.outcome();
    assert_eq!(ev.kind, "message.sent", "{ev:?}");
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let (headers, body) = &got[0];
    assert_eq!(header(headers, "content-encoding"), "aes128gcm");
    assert_eq!(header(headers, "ttl"), "86400");
    let authz = header(headers, "authorization");
    let k = authz.split("k=").nth(1).unwrap();
    assert_eq!(
        k,
        URL_SAFE_NO_PAD.encode(vapid.public_key().to_encoded_point(false).as_bytes())
    );
    let plain = webpush::decrypt(&ua, &auth, body).expect("the subscriber can read it");
    let payload: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(payload["title"], "Hi Ada");
    assert_eq!(payload["body"], "Back in stock");
    assert_eq!(
        payload["data"]["message_id"].as_str(),
        ev.message_id.as_deref()
    );
    h.assert_quiet();
}

#[test]
fn webhook_steps_retry_500_and_timeouts_and_record_the_status() {
    let srv_rt = servers();
    let fake = Arc::new(Fake::default());
    let app = Router::new()
        .route(
            "/audiences/{aud}/members",
            post(
                |State(f): State<Arc<Fake>>,
                 Path(aud): Path<String>,
                 headers: HeaderMap,
                 Json(body): Json<Value>| async move {
                    let fields = json!({
                        "audience": aud,
                        "body": body,
                        "auth": header(&headers, "x-api-key"),
                        "type": header(&headers, "content-type"),
                    });
                    f.answer(
                        header(&headers, "idempotency-key"),
                        fields,
                        (201, "{}".into()),
                    )
                    .await
                },
            ),
        )
        .with_state(fake.clone());
    let base = serve(&srv_rt, app);
    let src = format!(
        r#"journey hooks {{
  entry event "go"
  policy none
  send webhook ads_add {{
    url     "{base}/audiences/{{{{ event.audience | default('red-shoes') }}}}/members"
    method  POST
    body    "{{\"email\": \"{{{{ contact.email }}}}\"}}"
    header  "Content-Type" "application/json"
    header  "X-Api-Key" "k-{{{{ contact.id }}}}"
    timeout 1s
  }}
}}
"#
    );
    let mut h = Harness::new(compile_files(&[("h.journey", &src)]), |_| {});
    h.contact("c1", json!({"email": "c1@example.com"}));
    // A 500, then an answer slower than the step's 1 s timeout, then a 201.
    fake.script(&[(500, "boom")]);
    fake.script
        .lock()
        .unwrap()
        .push_back((201, "late".into(), 2_500));
    h.event("c1", "go");
    let ev = h.outcome();
    assert_eq!(ev.kind, "message.sent", "{ev:?}");
    assert_eq!(ev.properties["status"], 201);
    assert_eq!(ev.properties["attempts"], 3);
    let seen = fake.seen();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter()
            .all(|(k, _)| Some(k.as_str()) == ev.message_id.as_deref()),
        "every try carries the idempotency key, so the receiver can drop repeats"
    );
    let f = &seen[2].1;
    assert_eq!(f["audience"], "red-shoes");
    assert_eq!(f["body"]["email"], "c1@example.com");
    assert_eq!(f["auth"], "k-c1");
    assert_eq!(f["type"], "application/json");

    // A 404 is permanent: message.failed with the status.
    let src404 = src.replace("/audiences/", "/nowhere/");
    let mut h2 = Harness::new(compile_files(&[("h.journey", &src404)]), |_| {});
    h2.contact("c1", json!({"email": "c1@example.com"}));
    h2.event("c1", "go");
    let ev = h2.outcome();
    assert_eq!(ev.kind, "message.failed");
    assert_eq!(ev.properties["status"], 404);
    assert_eq!(ev.properties["attempts"], 1);
    h.assert_quiet();
    h2.assert_quiet();
}

#[test]
fn sms_without_a_provider_appends_json_lines_at_the_configured_rate() {
    let mut h = Harness::new(compile_files(&[("t.journey", ONE_SMS)]), |c| {
        c.sms.rate_per_second = Some(50.0);
    });
    let dir_probe = h._dir.path().join("sms.jsonl");
    let start = Instant::now();
    for i in 0..6 {
        let id = format!("c{i}");
        h.contact(
            &id,
            json!({"phone": format!("+3933300000{i}"), "first_name": "A"}),
        );
        h.event(&id, "go");
    }
    let mut kinds = Vec::new();
    for _ in 0..6 {
        kinds.push(h.outcome().kind);
    }
    // Six sends at 50/s take at least five intervals of 20 ms.
    assert!(
        start.elapsed() >= Duration::from_millis(100),
        "{:?}",
        start.elapsed()
    );
    assert!(kinds.iter().all(|k| k == "message.sent"), "{kinds:?}");
    let text = std::fs::read_to_string(&dir_probe).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    let mut to: Vec<&str> = lines.iter().map(|l| l["to"].as_str().unwrap()).collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), 6, "each once");
    // Each contact's link has its own code, naming the contact.
    let mut codes = Vec::new();
    for l in &lines {
        let text = l["text"].as_str().unwrap();
        let (code, c) = short_of(&h.rt.store, text);
        assert_eq!(text, format!("Hi A, see {PUBLIC}/s/{code} tonight"));
        assert_eq!(c.contact, l["contact"].as_str().unwrap());
        assert_eq!(c.message_id, l["message_id"].as_str().unwrap());
        codes.push(code);
    }
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), 6);
    assert_eq!(h.outbox(), 0);
    h.assert_quiet();
}

#[test]
fn emails_reuse_pooled_connections() {
    let srv_rt = servers();
    let smtp = SmtpServer::start(&srv_rt);
    let mut h = Harness::new(compile_files(&[("m.journey", ONE_EMAIL)]), |c| {
        c.email.smtp = Some(smtp_config(&smtp)); // pool of 2
        c.email.concurrency = Some(2);
    });
    for i in 0..30 {
        let id = format!("c{i}");
        h.contact(&id, json!({"email": format!("{id}@example.com")}));
        h.event(&id, "go");
    }
    for _ in 0..30 {
        assert_eq!(h.outcome().kind, "message.sent");
    }
    assert_eq!(smtp.count(), 30);
    let conns = smtp.state.connections.load(Ordering::SeqCst);
    assert!(conns <= 2, "30 emails over {conns} connections");
    h.assert_quiet();
}

/// An SMS webhook answering 429 with the given `Retry-After` (and `Date`) once per send,
/// then 200; the instants of the requests.
fn throttling_webhook(
    rt: &tokio::runtime::Runtime,
    retry_after: fn() -> (String, String),
) -> (String, Arc<Mutex<Vec<Instant>>>) {
    let seen: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let s2 = seen.clone();
    let app = Router::new().route(
        "/sms",
        post(move || {
            let seen = s2.clone();
            async move {
                let n = {
                    let mut s = seen.lock().unwrap();
                    s.push(Instant::now());
                    s.len()
                };
                if n % 2 == 1 {
                    let (date, after) = retry_after();
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("date", date), ("retry-after", after)],
                        "slow down",
                    )
                        .into_response()
                } else {
                    (StatusCode::OK, "{}").into_response()
                }
            }
        }),
    );
    (serve(rt, app), seen)
}

#[test]
fn retry_after_is_honoured_beyond_max_delay_in_both_forms_up_to_the_ceiling() {
    let srv_rt = servers();
    let journey = r#"journey texts {
  entry event "go"
  reentry always
  policy none
  send sms reminder {
    text "Hi"
  }
}
"#;
    // The HTTP-date form, one second after the response's own Date (max_delay_ms is 5).
    let (url, seen) = throttling_webhook(&srv_rt, || {
        let now = std::time::SystemTime::now();
        (
            httpdate::fmt_http_date(now),
            httpdate::fmt_http_date(now + Duration::from_secs(1)),
        )
    });
    let mut h = Harness::new(compile_files(&[("t.journey", journey)]), |c| {
        c.sms.provider = Some(SmsProvider::Webhook {
            url: format!("{url}/sms"),
            headers: vec![],
        });
    });
    h.contact("c1", json!({"phone": "+393330000001"}));
    h.event("c1", "go");
    let ev = h.outcome();
    assert_eq!(ev.kind, "message.sent", "{ev:?}");
    assert_eq!(ev.properties["attempts"], 2);
    let s = seen.lock().unwrap().clone();
    let gap = s[1] - s[0];
    // The Date header has whole seconds: the wait is 1 s, less what the answer took.
    assert!(gap >= Duration::from_millis(900), "retried after {gap:?}");
    assert!(gap < Duration::from_secs(5), "retried after {gap:?}");

    // Seconds beyond the ceiling: the ceiling.
    let (url, seen) = throttling_webhook(&srv_rt, || {
        (
            httpdate::fmt_http_date(std::time::SystemTime::now()),
            "3600".into(),
        )
    });
    let mut h = Harness::new(compile_files(&[("t.journey", journey)]), |c| {
        c.sms.provider = Some(SmsProvider::Webhook {
            url: format!("{url}/sms"),
            headers: vec![],
        });
        c.retry.max_retry_after_ms = 400;
    });
    h.contact("c1", json!({"phone": "+393330000001"}));
    h.event("c1", "go");
    let ev = h.outcome();
    assert_eq!(ev.kind, "message.sent", "{ev:?}");
    let s = seen.lock().unwrap().clone();
    let gap = s[1] - s[0];
    assert!(gap >= Duration::from_millis(400), "retried after {gap:?}");
    assert!(gap < Duration::from_secs(5), "retried after {gap:?}");
    h.assert_quiet();
}

/// The Message-ID header of a received message.
fn message_id_of(r: &support::smtp::Received) -> String {
    let msg = mail_parser::MessageParser::default()
        .parse(&r.data)
        .unwrap();
    msg.message_id().unwrap_or_default().to_string()
}

#[test]
fn an_smtp_server_silent_after_the_final_dot_is_uncertain_and_retried_once_with_the_same_message_id(
) {
    let srv_rt = servers();
    let smtp = SmtpServer::start(&srv_rt);
    let mut h = Harness::new(compile_files(&[("m.journey", ONE_EMAIL)]), |c| {
        let mut s = smtp_config(&smtp);
        s.final_reply_timeout_seconds = Some(1);
        c.email.smtp = Some(s);
        c.retry.uncertain_retry_ms = 200;
    });

    // Silent once: uncertain at once (not retried at once, not failed), then the one retry,
    // with the same Message-ID, is accepted.
    h.contact("c1", json!({"email": "c1@example.com"}));
    smtp.fail_next([Fault::StallAtDataEnd]);
    h.event("c1", "go");
    let ev = h.outcome();
    assert_eq!(ev.kind, "message.uncertain", "{ev:?}");
    let reason = ev.properties["reason"].as_str().unwrap();
    assert!(reason.contains("end of DATA within 1s"), "{reason}");
    assert_eq!(ev.properties["attempts"], 1);
    assert_eq!(
        h.outbox(),
        0,
        "an uncertain outcome is an outcome: no redelivery after a crash"
    );
    assert_eq!(smtp.count(), 1, "the server has it once");
    let again = h.outcome();
    assert_eq!(again.kind, "message.sent", "{again:?}");
    assert_eq!(again.message_id, ev.message_id);
    assert_eq!(again.properties["after_uncertain"], true);
    assert_eq!(again.properties["attempts"], 2);
    let got = smtp.received();
    assert_eq!(got.len(), 2);
    assert_eq!(message_id_of(&got[0]), message_id_of(&got[1]));
    assert!(!message_id_of(&got[0]).is_empty());

    // Silent twice: retried once, never more; it stays uncertain.
    h.contact("c2", json!({"email": "c2@example.com"}));
    smtp.fail_next([Fault::StallAtDataEnd, Fault::StallAtDataEnd]);
    h.event("c2", "go");
    let ev = h.outcome();
    assert_eq!(ev.kind, "message.uncertain", "{ev:?}");
    assert!(h.dispatcher.wait_settled(WAIT));
    assert_eq!(smtp.count(), 4, "two copies of each, never more");
    assert_eq!(h.dispatcher.stats().uncertain, 2);
    let events = h.rt.store.events_of("c2").unwrap();
    let outcomes: Vec<&str> = events
        .iter()
        .filter(|e| e.kind.starts_with("message."))
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(outcomes, ["message.uncertain"]);
    h.assert_quiet();
}

#[test]
fn web_push_on_a_non_default_port_keeps_it_in_the_vapid_audience_and_gone_subscriptions_are_removed(
) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use journey::channels::webpush::p256::elliptic_curve::sec1::ToEncodedPoint;
    let src = r#"journey pushes {
  entry event "go"
  policy none
  send push hello {
    title "Hi"
  }
}
"#;
    let srv_rt = servers();
    let seen: Pushes = Arc::default();
    let app = Router::new()
        .route(
            "/push/{id}",
            post(
                |State(s): State<Pushes>,
                 Path(id): Path<String>,
                 headers: HeaderMap,
                 body: axum::body::Bytes| async move {
                    s.lock().unwrap().push((headers, body.to_vec()));
                    match id.as_str() {
                        "gone" => StatusCode::GONE,
                        "unknown" => StatusCode::NOT_FOUND,
                        _ => StatusCode::CREATED,
                    }
                    .into_response()
                },
            ),
        )
        .with_state(seen.clone());
    let base = serve(&srv_rt, app);
    assert!(!base.ends_with(":80"));
    let vapid = webpush::p256::SecretKey::random(&mut rand_core::OsRng);
    let mut h = Harness::new(compile_files(&[("p.journey", src)]), |c| {
        c.push.provider = Some(PushProvider::Webpush {
            vapid_private_key: URL_SAFE_NO_PAD.encode(vapid.to_bytes()),
            vapid_subject: "mailto:ops@maison.example".into(),
            vapid_private_key_file: None,
        });
    });
    let sub = |id: &str| {
        let ua = webpush::p256::SecretKey::random(&mut rand_core::OsRng);
        json!({
            "endpoint": format!("{base}/push/{id}"),
            "keys": {
                "p256dh": URL_SAFE_NO_PAD.encode(ua.public_key().to_encoded_point(false).as_bytes()),
                "auth": URL_SAFE_NO_PAD.encode([3u8; 16]),
            }
        })
    };
    h.contact(
        "c1",
        json!({"push_tokens": [sub("ok"), sub("gone"), sub("unknown"), "an-fcm-token"]}),
    );
    h.event("c1", "go");
    let ev = h.outcome();
    assert_eq!(ev.kind, "message.sent", "{ev:?}");
    assert_eq!(ev.properties["delivered"], 1);

    // The JWT's audience is the endpoint's origin, port included (RFC 8292).
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    for (headers, _) in &got {
        let authz = header(headers, "authorization");
        let jwt = authz
            .strip_prefix("vapid t=")
            .unwrap()
            .split(", k=")
            .next()
            .unwrap();
        let claims: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(jwt.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["aud"], json!(base), "{claims}");
    }

    // The subscriptions answered 410 and 404 leave the profile, through the live loop's
    // control, and an event says so; the others stay.
    h.control();
    let c = h.rt.store.contact("c1").unwrap().unwrap();
    let tokens = c.profile["push_tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    assert_eq!(tokens[0]["endpoint"], json!(format!("{base}/push/ok")));
    assert_eq!(tokens[1], json!("an-fcm-token"));
    let events = h.rt.store.events_of("c1").unwrap();
    let removed = events
        .iter()
        .find(|e| e.kind == "push_token.removed")
        .expect("an event records the removal");
    assert_eq!(
        removed.properties["removed"],
        json!([format!("{base}/push/gone"), format!("{base}/push/unknown")])
    );
    assert_eq!(removed.message_id, ev.message_id);
    h.assert_quiet();
}
