//! `journey bench ingest` (B4): events/s over HTTP in requests of 100 events, each
//! acknowledged only once durable, from concurrent keep-alive connections on 127.0.0.1 to
//! a `journey serve` child process; raw sled's batched write rate is measured beside it in
//! the same run.

use crate::store;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct IngestOptions {
    pub events: usize,
    pub connections: usize,
    pub batch: usize,
    pub contacts: usize,
    pub journeys: Option<PathBuf>,
    pub dir: Option<PathBuf>,
    /// Give every event an idempotency id (one more write each: its dedupe key).
    pub ids: bool,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub fn ingest(o: IngestOptions) -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = o.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let journeys = match &o.journeys {
        Some(j) => j.clone(),
        None => {
            let j = dir.join("journeys");
            std::fs::create_dir_all(&j)?;
            j
        }
    };
    let config = dir.join("journey.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: {}\njourneys_dir: {}\nserver:\n  listen: 127.0.0.1:0\n  max_batch: {}\n",
            dir.join("data").display(),
            journeys.display(),
            o.batch.max(1000)
        ),
    )?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["serve", "--config"])
        .arg(&config)
        .env("JOURNEY_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let (mut base, mut token) = (String::new(), String::new());
    for line in lines.by_ref() {
        let line = line?;
        if let Some(t) = line.strip_prefix("admin token: ") {
            token = t.trim().to_string();
        }
        if let Some(a) = line.strip_prefix("listening on ") {
            base = a.trim().to_string();
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    if base.is_empty() || token.is_empty() {
        let _ = child.kill();
        return Err("the daemon did not start".into());
    }
    let requests = o.events.div_ceil(o.batch);
    eprintln!(
        "B4: {} events in requests of {} over {} keep-alive connections to {base}, {} contacts, {}; each acknowledged once durable",
        requests * o.batch,
        o.batch,
        o.connections,
        o.contacts,
        if o.ids { "each with an idempotency id" } else { "no idempotency ids" }
    );
    // Bodies are made before the clock starts, so the generator costs only the sending.
    let now = chrono::Utc::now().to_rfc3339();
    let bodies: Vec<Vec<String>> = (0..o.connections)
        .map(|c| {
            (c..requests)
                .step_by(o.connections)
                .map(|r| {
                    let events: Vec<serde_json::Value> = (0..o.batch)
                        .map(|i| {
                            let n = r * o.batch + i;
                            let mut e = serde_json::json!({
                                "contact": format!("c{}", n % o.contacts.max(1)),
                                "type": "page_view",
                                "timestamp": now,
                                "properties": {"path": "/shoes/red", "referrer": "newsletter"},
                            });
                            if o.ids {
                                e["id"] = serde_json::json!(format!("e{n}"));
                            }
                            e
                        })
                        .collect();
                    serde_json::to_string(&events).expect("json")
                })
                .collect()
        })
        .collect();
    let started = Instant::now();
    let workers: Vec<_> = bodies
        .into_iter()
        .map(|bodies| {
            let url = format!("{base}/v1/events");
            let auth = format!("Bearer {token}");
            std::thread::spawn(move || -> Result<Vec<Duration>, String> {
                let agent = ureq::AgentBuilder::new()
                    .max_idle_connections_per_host(1)
                    .timeout(Duration::from_secs(60))
                    .build();
                let mut lat = Vec::with_capacity(bodies.len());
                for b in bodies {
                    let t = Instant::now();
                    let r = agent
                        .post(&url)
                        .set("authorization", &auth)
                        .set("content-type", "application/json")
                        .send_string(&b)
                        .map_err(|e| e.to_string())?;
                    if r.status() != 200 {
                        return Err(format!("status {}", r.status()));
                    }
                    let _ = r.into_string();
                    lat.push(t.elapsed());
                }
                Ok(lat)
            })
        })
        .collect();
    let mut lat = Vec::new();
    let mut failed = None;
    for w in workers {
        match w.join() {
            Ok(Ok(l)) => lat.extend(l),
            Ok(Err(e)) => failed = Some(e),
            Err(_) => failed = Some("a load thread panicked".into()),
        }
    }
    let wall = started.elapsed();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    if let Some(e) = failed {
        return Err(format!("a request failed: {e}").into());
    }
    lat.sort();
    let total = lat.len() * o.batch;
    let rate = total as f64 / wall.as_secs_f64();
    println!(
        "B4 HTTP ingestion: {total} events in {:.2} s = {:.0} events/s ({} requests of {}, {} connections); request latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        wall.as_secs_f64(),
        rate,
        lat.len(),
        o.batch,
        o.connections,
        percentile(&lat, 0.5).as_secs_f64() * 1000.0,
        percentile(&lat, 0.99).as_secs_f64() * 1000.0,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
    );
    // Raw sled: the same number of keys of an event's size, in batches the size of what the
    // loop commits at once under this load (every connection's request), one flush each.
    let raw_dir = tempfile::tempdir()?;
    let group = o.batch * o.connections;
    let raw = store::raw_write_benchmark(&raw_dir.path().join("raw"), total, group, 40, 200)?;
    let raw_rate = total as f64 / raw.as_secs_f64();
    println!(
        "B4 raw sled, same run: {total} keys (40 B keys, 200 B values) in batches of {group}, one flush each: {:.0} writes/s; HTTP ingestion is {:.2} of raw",
        raw_rate,
        rate / raw_rate
    );
    Ok(())
}
