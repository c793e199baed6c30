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

use super::percentile;

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
    let (mut child, base) = spawn_daemon(&config)?;
    let token = std::fs::read_to_string(crate::store::credentials::admin_token_path(
        &dir.join("data"),
    ))
    .map(|t| t.trim().to_string())
    .unwrap_or_default();
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
    // Whole requests (head and body) are made before the clock starts, so a load thread
    // only writes bytes and reads the answer: the generator shares the 2 cores with the
    // daemon and must cost it as little as possible.
    let now = chrono::Utc::now().to_rfc3339();
    let addr = base
        .strip_prefix("http://")
        .ok_or("the daemon's address is not http://")?
        .to_string();
    let requests_of: Vec<Vec<Vec<u8>>> = (0..o.connections)
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
                    let body = serde_json::to_vec(&events).expect("json");
                    let mut req = format!(
                        "POST /v1/events HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    req.extend_from_slice(&body);
                    req
                })
                .collect()
        })
        .collect();
    let started = Instant::now();
    let workers: Vec<_> = requests_of
        .into_iter()
        .map(|reqs| {
            let addr = addr.clone();
            std::thread::spawn(move || -> Result<Vec<Duration>, String> {
                let mut conn = Connection::open(&addr).map_err(|e| e.to_string())?;
                let mut lat = Vec::with_capacity(reqs.len());
                for req in reqs {
                    let t = Instant::now();
                    let status = conn.exchange(&req).map_err(|e| e.to_string())?;
                    if status != 200 {
                        return Err(format!("status {status}"));
                    }
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
    let stages = Connection::open(&addr)
        .and_then(|mut c| c.get_text("/metrics"))
        .unwrap_or_default();
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
    print_stages(&stages, wall);
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
    // The reference above appends at the end of the tree; event keys start with their
    // contact and land all over it. The same writes with that layout say what it costs sled.
    let spread = store::raw_spread_write_benchmark(
        &raw_dir.path().join("spread"),
        total,
        group,
        o.contacts,
        200,
    )?;
    let spread_rate = total as f64 / spread.as_secs_f64();
    println!(
        "B4 raw sled, same run, keys laid out as event keys (spread over {} contacts), same values and batches: {:.0} writes/s; HTTP ingestion is {:.2} of it",
        o.contacts,
        spread_rate,
        rate / spread_rate
    );
    Ok(())
}

/// The daemon's group-commit stages from its `/metrics`, as shares of the run's wall time.
fn print_stages(metrics: &str, wall: Duration) {
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let batches = value("journey_commit_batches_total");
    if batches == 0.0 {
        return;
    }
    let w = wall.as_secs_f64();
    let stage = |s: &str| value(&format!("journey_commit_seconds_sum{{stage=\"{s}\"}}"));
    let (prepare, apply, flush) = (stage("prepare"), stage("apply"), stage("flush"));
    println!(
        "B4 daemon's engine thread: {batches:.0} batches of {:.0} events on average, {:.0} flushes; prepare {prepare:.2} s ({:.0}% of the wall), apply to sled {apply:.2} s ({:.0}%), flush {flush:.2} s ({:.0}%)",
        value("journey_commit_inputs_total") / batches,
        value("journey_commit_flushes_total"),
        prepare / w * 100.0,
        apply / w * 100.0,
        flush / w * 100.0,
    );
}

/// Starts `journey serve --config CONFIG` as a child process: the child and its address,
/// once its `listening` log line said it (its warnings go on to our stderr).
pub(super) fn spawn_daemon(
    config: &std::path::Path,
) -> Result<(std::process::Child, String), Box<dyn std::error::Error>> {
    // Warnings (passed on to our stderr), and the `listening` line that tells the address
    // (the daemon writes nothing to stdout).
    let mut child = Command::new(std::env::current_exe()?)
        .args(["serve", "--config"])
        .arg(config)
        .env("JOURNEY_LOG", "warn,journey::server=info")
        .env_remove("JOURNEY_LOG_FORMAT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stderr.take().ok_or("no stderr")?).lines();
    let mut base = String::new();
    for line in lines.by_ref() {
        let line = line?;
        if !line.contains(" INFO ") {
            eprintln!("{line}");
        }
        if let Some(url) = crate::cli::serve::listening_url(&line) {
            base = url;
            break;
        }
    }
    // The daemon's log goes on to ours.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if !line.contains(" INFO ") {
                eprintln!("{line}");
            }
        }
    });
    Ok((child, base))
}

/// A minimal HTTP/1.1 keep-alive client: writes a request made in advance, reads the
/// status line, the headers and a `content-length` body.
pub(super) struct Connection {
    stream: std::net::TcpStream,
    buf: Vec<u8>,
    addr: String,
}

impl Connection {
    pub(super) fn open(addr: &str) -> std::io::Result<Connection> {
        let stream = std::net::TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Connection {
            stream,
            buf: Vec::with_capacity(64 * 1024),
            addr: addr.to_string(),
        })
    }

    /// Sends one request; returns the response's status once its body is read.
    pub(super) fn exchange(&mut self, request: &[u8]) -> std::io::Result<u16> {
        use std::io::{Read, Write};
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
        self.stream.write_all(request)?;
        self.buf.clear();
        let mut chunk = [0u8; 16 * 1024];
        let head_end = loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(bad("the daemon closed the connection"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).map_err(|_| bad("head"))?;
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("status line"))?;
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .ok_or_else(|| bad("no content-length"))?;
        while self.buf.len() < head_end + length {
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(bad("the daemon closed the connection"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        Ok(status)
    }

    /// The body of the last answer, as text.
    pub(super) fn body(&self) -> String {
        let head_end = self
            .buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(0, |p| p + 4);
        String::from_utf8_lossy(&self.buf[head_end..]).into_owned()
    }

    fn get_text(&mut self, path: &str) -> std::io::Result<String> {
        self.call("GET", path, None, "").map(|(_, body)| body)
    }

    /// A request with a bearer token and a JSON body: (status, body).
    pub(super) fn call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> std::io::Result<(u16, String)> {
        let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
        let req = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        let status = self.exchange(req.as_bytes())?;
        let head_end = self
            .buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(0, |p| p + 4);
        Ok((
            status,
            String::from_utf8_lossy(&self.buf[head_end..]).into_owned(),
        ))
    }
}
