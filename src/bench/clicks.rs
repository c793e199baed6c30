//! B1 and B2 (`journey bench clicks`): send, check clicked within 1 s, branch; half the
//! contacts click, through the ingestion channel, racing their timeouts.

use super::{peak_rss_mb, percentile, program_from, temp_or, AnyResult};
use crate::engine::{Event, Happening, Millis, SendJob, TimelineEntry};
use crate::runtime::live::{run_live, LoopConfig, Submission};
use crate::runtime::Clock;
use crate::runtime::{Delivery, Input, Runtime, Sink, SystemClock};
use crate::store::{self, Store};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::time::Instant;

/// How many requests B1's producer keeps in flight, like as many HTTP clients.
const PRODUCER_CONNECTIONS: usize = 8;

const CLICKS_JOURNEY: &str = r#"
journey clicks {
  entry event "signup"
  policy none
  send email hello {
    subject "Hello"
    text "Hello {{ contact.id }}"
    link offer "https://example.com/offer"
  }
  check clicked hello within 1s {
    yes { end }
    no { end }
  }
}
"#;

/// Answers every even-numbered contact's email with a click, through the ingestion channel.
struct ClickingSink {
    inbox: Sender<Submission>,
    delivered: usize,
}

impl Sink for ClickingSink {
    fn deliver(&mut self, job: &SendJob, now: Millis) -> Delivery {
        self.delivered += 1;
        let n: usize = job.contact.trim_start_matches('c').parse().unwrap_or(1);
        if n.is_multiple_of(2) {
            let click = Event {
                contact: job.contact.clone(),
                kind: "clicked".into(),
                at: now,
                journey: Some(job.journey.clone()),
                message: Some(job.message.clone()),
                link: Some("offer".into()),
                message_id: Some(job.message_id.clone()),
                ..Event::default()
            };
            let _ = self
                .inbox
                .send(Submission::new(vec![Input::Event(click)], None));
        }
        Delivery::Sent
    }
}

pub fn clicks(n: usize, dir: Option<PathBuf>, postgres: bool) -> AnyResult<()> {
    let (dir, _keep) = temp_or(dir)?;
    let program = program_from(CLICKS_JOURNEY)?;
    let clock = SystemClock;
    // On PostgreSQL: a server of our own, PostgreSQL's defaults (synchronous_commit on).
    let pg = if postgres {
        Some(super::pg_server::PgServer::start(false)?)
    } else {
        None
    };
    let (store, where_) = match &pg {
        Some(pg) => {
            let url = pg.fresh_database()?;
            (Store::connect(&url)?, format!("PostgreSQL at {url}"))
        }
        None => (
            Store::open(&dir.join("engine"))?,
            format!("sled store in {}", dir.display()),
        ),
    };
    let mut rt = Runtime::new(store, clock.now(), chrono_tz::UTC)?;
    rt.deploy(program, clock.now())?;
    // When each timer fired (the engine took it up to run its step) − its due time.
    let fired_late: Arc<std::sync::Mutex<Vec<i64>>> = Arc::default();
    let observed = fired_late.clone();
    rt.set_timer_observer(move |late| {
        if let Ok(mut v) = observed.lock() {
            v.push(late);
        }
    });
    let (tx, rx) = mpsc::channel::<Submission>();
    let stop = Arc::new(AtomicBool::new(false));
    let mut sink = ClickingSink {
        inbox: tx.clone(),
        delivered: 0,
    };
    eprintln!("B1: {n} contacts, send → check clicked within 1s, half click; durable {where_}");
    let started = Instant::now();
    let start_ms = clock.now();
    // The producer: events in requests of 100, as the HTTP API receives them, from
    // PRODUCER_CONNECTIONS clients at once: a request counts once it is acknowledged
    // (durable), and only then does its client send the next. (A producer that queued every
    // signup at once would put the clicks behind all of them, to lose every race.)
    let producer_tx = tx.clone();
    let producer = std::thread::spawn(move || {
        let mut acks: std::collections::VecDeque<mpsc::Receiver<_>> = Default::default();
        for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
            if acks.len() >= PRODUCER_CONNECTIONS {
                if let Some(a) = acks.pop_front() {
                    let _ = a.recv();
                }
            }
            let now = SystemClock.now();
            let inputs = chunk
                .iter()
                .map(|i| {
                    Input::Event(Event {
                        contact: format!("c{i}"),
                        kind: "signup".into(),
                        at: now,
                        ..Event::default()
                    })
                })
                .collect();
            let (submission, ack_rx) = Submission::with_channel(inputs);
            let _ = producer_tx.send(submission);
            acks.push_back(ack_rx);
        }
        for a in acks {
            let _ = a.recv();
        }
    });
    drop(tx);
    let mut sent_at: HashMap<String, i64> = HashMap::with_capacity(n);
    let mut ended: HashMap<String, i64> = HashMap::with_capacity(n);
    // Which way each contact's check went: true for `yes` (the click won).
    let mut clicked: HashMap<String, bool> = HashMap::with_capacity(n);
    let mut last_branch = Instant::now();
    let stop_when_done = stop.clone();
    {
        let mut on_timeline = |entries: Vec<TimelineEntry>| {
            let wall = SystemClock.now();
            for t in entries {
                match t.happening {
                    Happening::Sent { .. } => {
                        sent_at.insert(t.contact, t.at);
                    }
                    Happening::Branched { to, .. } => {
                        clicked.insert(t.contact, to == "yes");
                    }
                    Happening::Ended { .. } => {
                        ended.insert(t.contact, wall);
                        last_branch = Instant::now();
                    }
                    _ => {}
                }
            }
            if ended.len() >= n {
                stop_when_done.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        };
        // The sink holds a sender, so the loop ends on `stop`, not on the channel closing.
        let run = run_live(
            &mut rt,
            &clock,
            &mut sink,
            &rx,
            &stop,
            LoopConfig::default(),
            &mut on_timeline,
        );
        run?;
    }
    producer.join().map_err(|_| "producer panicked")?;
    let wall = last_branch.duration_since(started).as_secs_f64();
    let counters = rt.counters;
    // Lateness of the contacts whose timer fired: branch committed − due (send + 1 s).
    let mut lateness: Vec<i64> = ended
        .iter()
        .filter(|(c, _)| clicked.get(*c) == Some(&false))
        .filter_map(|(c, at)| sent_at.get(c).map(|s| at - (s + 1000)))
        .collect();
    let is_even = |c: &str| {
        c.trim_start_matches('c')
            .parse::<usize>()
            .is_ok_and(|i| i.is_multiple_of(2))
    };
    // The even contacts clicked: each branch they took is a click that won or lost.
    let clicking = clicked.iter().filter(|(c, _)| is_even(c));
    let clicks_won = clicking.clone().filter(|(_, yes)| **yes).count();
    let clicks_lost = clicking.count() - clicks_won;
    lateness.sort_unstable();
    let writes_per_contact = counters.writes as f64 / n as f64;
    let rate = n as f64 / (wall - 1.0).max(0.001);
    let peak = peak_rss_mb();
    let _ = start_ms;

    // B2: the database alone, the same batch size: raw sled, the same number of keys, one
    // flush per batch; or pgbench inserting rows of the same size, a transaction per batch.
    let avg_batch = (counters.writes / counters.batches.max(1)).max(1) as usize;
    let raw_rate = match &pg {
        Some(pg) => pgbench_insert_rate(pg, avg_batch, 160)?,
        None => {
            let raw = store::raw_write_benchmark(
                &dir.join("raw"),
                counters.writes as usize,
                avg_batch,
                24,
                160,
            )?;
            counters.writes as f64 / raw.as_secs_f64()
        }
    };
    let engine_write_rate = counters.writes as f64 / (wall - 1.0).max(0.001);
    println!("contacts                 {n}");
    println!("wall time                {wall:.2} s (first input → last branch)");
    println!("processing rate          {rate:.0} contacts/s  (N / (wall − 1 s))");
    let mut fired = fired_late.lock().map(|v| v.clone()).unwrap_or_default();
    fired.sort_unstable();
    println!(
        "timer lateness, fired   p50 {} ms, p99 {} ms, max {} ms  (timer taken up − due)",
        percentile(&fired, 0.5),
        percentile(&fired, 0.99),
        fired.last().copied().unwrap_or(0)
    );
    println!(
        "timer lateness, durable p50 {} ms, p99 {} ms, max {} ms  (`no` branch flushed − due)",
        percentile(&lateness, 0.5),
        percentile(&lateness, 0.99),
        lateness.last().copied().unwrap_or(0)
    );
    println!(
        "store writes             {} ({writes_per_contact:.2} per contact) in {} batches",
        counters.writes, counters.batches
    );
    println!("peak RSS                 {peak:.0} MB");
    {
        use std::sync::atomic::Ordering::Relaxed;
        let st = &rt.stages;
        let batches = st.batches.load(Relaxed).max(1) as f64;
        let [prepare_ns, apply_ns, flush_ns] =
            [&st.prepare_ns, &st.apply_ns, &st.flush_ns].map(|t| t.load(Relaxed) as f64);
        println!(
            "per batch                {:.0} inputs; prepare {:.1} ms, apply {:.1} ms, flush {:.1} ms",
            st.inputs.load(Relaxed) as f64 / batches,
            prepare_ns / batches / 1e6,
            apply_ns / batches / 1e6,
            flush_ns / batches / 1e6,
        );
        // Whether the rate is the engine's: an engine waiting on the producer would
        // measure the producer. It also waits for the last timers (the final second).
        let busy_s = (prepare_ns + apply_ns + flush_ns) / 1e9;
        println!(
            "engine busy              {busy_s:.2} s of the {wall:.2} s (the rest: waiting for input or due timers)"
        );
    }
    if pg.is_some() {
        println!("pgbench (B2)             {raw_rate:.0} rows/s (transactions of {avg_batch} rows of a 32-byte key, a 160-byte value, a contact and a time indexed together; one client, same server)");
    } else {
        println!("raw sled (B2)            {raw_rate:.0} key writes/s (batches of {avg_batch}, one flush each)");
    }
    println!(
        "engine                   {engine_write_rate:.0} key writes/s → {:.2} of raw",
        engine_write_rate / raw_rate
    );
    println!(
        "clicks won / timeouts    {clicks_won} / {} ({clicks_lost} clicks lost the race)",
        lateness.len()
    );
    Ok(())
}

/// pgbench on the same server: one client inserting `batch` rows of a 32-byte key and a
/// `value`-byte value per transaction, for 10 s: rows per second. The table is shaped as the
/// engine's events are: a bytea primary key, and a contact and a time indexed together.
fn pgbench_insert_rate(
    pg: &super::pg_server::PgServer,
    batch: usize,
    value: usize,
) -> AnyResult<f64> {
    let url = pg.fresh_database()?;
    let db = url.rsplit('/').next().unwrap_or("postgres").to_string();
    pg.psql(
        &db,
        "CREATE TABLE rows (k bytea PRIMARY KEY, v bytea NOT NULL, contact text, at timestamptz);
         CREATE INDEX rows_by_contact ON rows (contact, at)",
    )?;
    let script = pg.dir().join("insert.sql");
    std::fs::write(
        &script,
        format!(
            "INSERT INTO rows SELECT decode(md5(random()::text), 'hex') || decode(md5(random()::text), 'hex'), decode(repeat('ab', {value}), 'hex'), 'c' || (random() * 1000000)::int, now() FROM generate_series(1, {batch});\n"
        ),
    )?;
    let out = std::process::Command::new(pg.tool("pgbench"))
        .args(["-n", "-c", "1", "-T", "10", "-f"])
        .arg(&script)
        .arg(&url)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let tps: f64 = text
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| {
            format!(
                "pgbench: no rate in its output: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    Ok(tps * batch as f64)
}
