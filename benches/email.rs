//! Emails per second to a local SMTP sink over pooled connections.
//!
//! `cargo bench --bench email -- [--emails N] [--concurrency C]`
//!
//! The journey runtime first commits N sends (one contact each) to the outbox with a memory
//! sink; then the clock starts, the N jobs go to the `Dispatcher` (render with tracked links
//! and pixel, sign, MIME, SMTP over lettre's pool to a real SMTP server on 127.0.0.1), and
//! it stops when all N outcomes have been reported. Then the outcomes are committed through
//! the runtime (outbox removal and `message.sent` events), timed separately.

#[path = "../tests/support/smtp.rs"]
mod smtp;

use journey::channels::{Dispatcher, DispatcherOptions};
use journey::compile;
use journey::config::{Config, SmtpConfig, SmtpSecurity};
use journey::engine::{Contact, Event};
use journey::lang;
use journey::runtime::LiveContext;
use journey::runtime::VirtualClock;
use journey::runtime::{Input, MemorySink, Runtime, Sink};
use journey::store::Store;
use std::sync::Arc;
use std::time::{Duration, Instant};

const T0: i64 = 1_772_355_600_000;

const JOURNEY: &str = r#"journey bench_mail {
  entry event "go"
  policy none
  send email hello {
    subject "Hello {{ contact.first_name | default('friend') }}"
    html "<html><body><h1>Hello {{ contact.first_name }}</h1><p>Our new collection: <a href=\"{{ link('shop') }}\">shop now</a>.</p><p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p></body></html>"
    link shop "https://maison.example/shop?c={{ contact.id }}"
  }
}
"#;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let emails = arg("--emails", 20_000);
    let concurrency = arg("--concurrency", 8);
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sink = smtp::SmtpServer::start(&servers);

    let dir = tempfile::tempdir().unwrap();
    let mut loaded = lang::Loaded::default();
    lang::add_source(&mut loaded, "bench.journey", JOURNEY.to_string());
    let program = compile::compile(&loaded).program.expect("compiles");
    let store = Store::open(&dir.path().join("store")).unwrap();
    let mut rt = Runtime::new(store.clone(), T0, chrono_tz::UTC).unwrap();
    rt.durable = false;
    rt.deploy(program, T0).unwrap();
    let mut memory = MemorySink::default();
    let mut inputs = Vec::with_capacity(emails);
    for i in 0..emails {
        let id = format!("c{i}");
        let mut profile = serde_json::Map::new();
        profile.insert("email".into(), format!("{id}@example.com").into());
        profile.insert("first_name".into(), format!("Name{i}").into());
        rt.upsert_contact(&Contact {
            id: id.clone(),
            profile,
        })
        .unwrap();
        inputs.push(Input::Event(Event {
            contact: id,
            kind: "go".into(),
            at: T0,
            ..Event::default()
        }));
    }
    // Commit the sends (the memory sink's deliveries are only a way to get the jobs).
    for chunk in inputs.chunks(512) {
        rt.process(chunk.to_vec(), T0).unwrap();
    }
    let jobs = store.outbox().unwrap();
    assert_eq!(jobs.len(), emails);
    let _ = &mut memory;

    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        public_url: "https://journey.maison.example".into(),
        ..Config::default()
    };
    config.email.concurrency = Some(concurrency);
    config.email.smtp = Some(SmtpConfig {
        host: "127.0.0.1".into(),
        port: Some(sink.addr.port()),
        security: SmtpSecurity::None,
        username: None,
        password: None,
        pool_size: Some(concurrency as u32),
        timeout_seconds: Some(30),
        final_reply_timeout_seconds: None,
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let mut dispatcher = Dispatcher::new(DispatcherOptions {
        config,
        secret: b"bench".to_vec(),
        context: Arc::new(LiveContext::new(store.clone(), tx)),
        handle: None,
        clock: Some(Arc::new(VirtualClock::new(T0))),
        observer: None,
    })
    .unwrap();

    let start = Instant::now();
    for job in &jobs {
        dispatcher.deliver(job, T0);
    }
    let mut reports = Vec::with_capacity(emails);
    for _ in 0..emails {
        let s = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("every outcome is reported");
        reports.push(s);
    }
    let elapsed = start.elapsed();
    let commit_start = Instant::now();
    let mut tl = Vec::new();
    let inputs: Vec<Input> = reports.into_iter().flat_map(|s| s.inputs).collect();
    let sent = inputs
        .iter()
        .filter(|i| matches!(i, Input::Delivered { event, .. } if event.kind == "message.sent"))
        .count();
    for chunk in inputs.chunks(512) {
        rt.run_at(chunk.to_vec(), T0, &mut memory, &mut tl).unwrap();
    }
    let commit = commit_start.elapsed();
    assert_eq!(sent, emails, "every email sent");
    assert_eq!(sink.count(), emails, "the sink received each once");
    assert_eq!(store.outbox().unwrap().len(), 0);
    let stats = dispatcher.stats();
    println!(
        "email: {emails} emails, concurrency {concurrency}: {:.0} emails/s delivered (wall {:.2} s; {} SMTP connections, {} retries); committing the outcomes: {:.0}/s",
        emails as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        sink.state
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        stats.retries,
        emails as f64 / commit.as_secs_f64(),
    );
}
