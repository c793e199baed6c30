//! `journey bench cluster`: B1 over several `journey serve` processes sharing one
//! PostgreSQL (a server of the benchmark's own), and the time a partition takes to come
//! back after its daemon is killed or paused.
//!
//! The rate: the contacts' addresses are loaded, then their `signup` events are posted
//! (spread over the daemons, so most go through another daemon's inbox), and the clock runs
//! until every contact went through "send, check clicked within 1 s, branch" (no one
//! clicks: each branch is a timer). The takeover: contacts keep entering a journey that
//! waits 1 s and sends, one daemon is killed (SIGKILL) or paused (SIGSTOP), and the time
//! from then to the first send in one of its partitions by another daemon is measured.

use super::ingest::Connection;
use super::pg_server::PgServer;
use super::AnyResult;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RACE: &str = r#"journey clicks {
  entry event "signup"
  policy none
  send email hello {
    subject "Hello"
    text "Hello {{ contact.id }}"
  }
  check clicked hello within 1s {
    yes { end }
    no { end }
  }
}

journey later {
  entry event "later"
  reentry always
  policy none
  wait 1s
  send email bye {
    subject "Bye"
    text "Bye {{ contact.id }}"
  }
}
"#;

pub struct ClusterOptions {
    pub daemons: usize,
    pub contacts: usize,
    /// How the takeover is caused: `kill` (SIGKILL: on this host, its partitions are taken
    /// at the next round) or `stop` (SIGSTOP: taken at the leases' expiry, as for a daemon
    /// on another machine); none: no takeover measured.
    pub takeover: Option<String>,
}

/// A daemon of the benchmark.
struct Node {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

fn start_node(url: &str, token: Option<&str>) -> AnyResult<(Node, String)> {
    let dir = tempfile::tempdir()?;
    let journeys = dir.path().join("journeys");
    std::fs::create_dir_all(&journeys)?;
    std::fs::write(journeys.join("bench.journey"), RACE)?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    if let Some(t) = token {
        std::fs::write(crate::store::credentials::admin_token_path(&data), t)?;
    }
    let config = dir.path().join("journey.yaml");
    std::fs::write(
        &config,
        format!(
            "store:\n  url: {url}\ndata_dir: {}\njourneys_dir: {}\nserver:\n  listen: 127.0.0.1:0\n  max_batch: 1000\n",
            data.display(),
            journeys.display()
        ),
    )?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["serve", "--config"])
        .arg(&config)
        .env("JOURNEY_LOG", "warn,journey::server=info")
        .env_remove("JOURNEY_LOG_FORMAT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stderr.take().ok_or("no stderr")?).lines();
    let mut base = String::new();
    for line in lines.by_ref() {
        let line = line?;
        if let Some(u) = crate::cli::serve::listening_url(&line) {
            base = u;
            break;
        }
    }
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if line.contains(" ERROR ") {
                eprintln!("{line}");
            }
        }
    });
    let token = std::fs::read_to_string(crate::store::credentials::admin_token_path(&data))
        .map(|t| t.trim().to_string())
        .unwrap_or_default();
    let addr = base
        .strip_prefix("http://")
        .ok_or("the daemon did not start")?
        .to_string();
    Ok((
        Node {
            child,
            addr,
            _dir: dir,
        },
        token,
    ))
}

/// The partitions a daemon holds, by its `/v1/cluster` (none if it does not answer).
fn held_by(node: &Node, token: &str) -> Vec<u16> {
    Connection::open(&node.addr)
        .and_then(|mut c| c.call("GET", "/v1/cluster", Some(token), ""))
        .ok()
        .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
        .map(|v| {
            v["lease"]["held"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_u64().map(|p| p as u16))
                .collect()
        })
        .unwrap_or_default()
}

/// How many partitions each daemon holds.
fn held(nodes: &[Node], token: &str) -> Vec<usize> {
    nodes.iter().map(|n| held_by(n, token).len()).collect()
}

/// Posts JSON arrays of `per` items over the daemons, from `connections` threads; each
/// request is retried on another daemon if refused.
fn post_all(
    nodes: &[Node],
    token: &str,
    path: &str,
    items: Vec<serde_json::Value>,
    per: usize,
) -> AnyResult<()> {
    let chunks: Vec<String> = items
        .chunks(per)
        .map(|c| serde_json::to_string(c).expect("json"))
        .collect();
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let connections = 8.min(chunks.len().max(1));
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..connections)
            .map(|t| {
                let chunks = &chunks;
                let addrs = &addrs;
                s.spawn(move || -> Result<(), String> {
                    let mut conns: Vec<Option<Connection>> = addrs.iter().map(|_| None).collect();
                    for (i, body) in chunks.iter().enumerate().skip(t).step_by(connections) {
                        let mut tries = 0;
                        loop {
                            let k = (i + tries) % addrs.len();
                            let conn = match &mut conns[k] {
                                Some(c) => c,
                                slot => slot.insert(
                                    Connection::open(&addrs[k]).map_err(|e| e.to_string())?,
                                ),
                            };
                            match conn.call("POST", path, Some(token), body) {
                                Ok((st, _)) if st < 300 => break,
                                other => {
                                    conns[k] = None;
                                    tries += 1;
                                    if tries > 50 {
                                        return Err(format!("{path}: {other:?}"));
                                    }
                                    std::thread::sleep(Duration::from_millis(100));
                                }
                            }
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| "a load thread panicked")??;
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

pub fn cluster(o: ClusterOptions) -> AnyResult<()> {
    let pg = PgServer::start(false)?;
    let url = pg.fresh_database()?;
    let db = url.rsplit('/').next().unwrap_or("").to_string();
    let (first, token) = start_node(&url, None)?;
    let mut nodes = vec![first];
    for _ in 1..o.daemons {
        nodes.push(start_node(&url, Some(&token))?.0);
    }
    let balanced = Instant::now();
    loop {
        let h = held(&nodes, &token);
        if h.iter().sum::<usize>() == 64 && h.iter().all(|&n| n > 0) {
            eprintln!("partitions held: {h:?}");
            break;
        }
        if balanced.elapsed() > Duration::from_secs(60) {
            return Err(format!("the partitions were not shared out: {h:?}").into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let count = |sql: &str| -> usize {
        pg.psql(&db, sql)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    // The addresses (not timed), then the entry events (timed, to the last branch taken).
    let contacts: Vec<serde_json::Value> = (0..o.contacts)
        .map(|i| serde_json::json!({"id": format!("c{i}"), "email": format!("c{i}@example.com")}))
        .collect();
    post_all(&nodes, &token, "/v1/contacts", contacts, 500)?;
    let signups: Vec<serde_json::Value> = (0..o.contacts)
        .map(|i| serde_json::json!({"contact": format!("c{i}"), "type": "signup"}))
        .collect();
    eprintln!(
        "B1 on {} daemon(s), one PostgreSQL: {} contacts, send → check clicked within 1s → branch",
        o.daemons, o.contacts
    );
    let started = Instant::now();
    post_all(&nodes, &token, "/v1/events", signups, 100)?;
    let posted = started.elapsed();
    loop {
        let done =
            count("SELECT count(*) FROM instances WHERE journey = 'clicks' AND ended IS NOT NULL");
        if done >= o.contacts {
            break;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            return Err(format!("{done} of {} contacts done after 30 min", o.contacts).into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = started.elapsed();
    let rate = o.contacts as f64 / took.as_secs_f64();
    println!(
        "B1 cluster: {} daemons, {} contacts in {:.2} s ({:.2} s to post): {:.0} contacts/s",
        o.daemons,
        o.contacts,
        took.as_secs_f64(),
        posted.as_secs_f64(),
        rate
    );

    if let Some(how) = o.takeover.as_deref().filter(|_| o.daemons > 1) {
        // A steady stream of contacts entering `later` (wait 1 s, send), so every
        // partition has a timer coming due at any moment.
        let victim = o.daemons - 1;
        let victim_parts = held_by(&nodes[victim], &token);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let others: Vec<String> = nodes[..victim].iter().map(|n| n.addr.clone()).collect();
        let contacts = o.contacts.max(1);
        let feeder = {
            let stop = stop.clone();
            let token = token.clone();
            std::thread::spawn(move || {
                let mut conn = Connection::open(&others[0]).ok();
                let mut n = 0usize;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let batch: Vec<serde_json::Value> = (0..20)
                        .map(|i| {
                            serde_json::json!({"contact": format!("c{}", (n * 20 + i) % contacts), "type": "later"})
                        })
                        .collect();
                    n += 1;
                    let body = serde_json::to_string(&batch).expect("json");
                    if let Some(c) = conn.as_mut() {
                        if c.call("POST", "/v1/events", Some(&token), &body).is_err() {
                            conn = Connection::open(&others[0]).ok();
                        }
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        std::thread::sleep(Duration::from_secs(3));
        let pid = nodes[victim].child.id().to_string();
        let signal = if how == "stop" { "-STOP" } else { "-KILL" };
        let at = chrono::Utc::now().timestamp_millis();
        let t = Instant::now();
        Command::new("kill").args([signal, &pid]).status()?;
        if how == "kill" {
            // Reaped, as its service manager would: a zombie's pid still exists.
            let _ = nodes[victim].child.wait();
        }
        // The first send in one of the victim's partitions after the signal, by another.
        let first = loop {
            let rows = pg
                .psql(
                    &db,
                    &format!(
                        "SELECT contact, (extract(epoch FROM at) * 1000)::bigint FROM events
                         WHERE type = 'message.sent' AND at > to_timestamp({at} / 1000.0) ORDER BY at"
                    ),
                )
                .unwrap_or_default();
            let found = rows.lines().find_map(|l| {
                let (c, ms) = l.split_once('|')?;
                victim_parts
                    .contains(&crate::store::partition_of(c, 64))
                    .then(|| ms.parse::<i64>().ok())?
            });
            if let Some(ms) = found {
                break ms;
            }
            if t.elapsed() > Duration::from_secs(60) {
                return Err("no send in the victim's partitions within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = feeder.join();
        println!(
            "takeover ({how}): {} partitions, first timer fired elsewhere {:.2} s after the signal (leases last 10 s; the keepers run every second)",
            victim_parts.len(),
            (first - at) as f64 / 1000.0
        );
        if how == "stop" {
            let _ = Command::new("kill").args(["-CONT", &pid]).status();
        }
    }
    for n in &mut nodes {
        let _ = n.child.kill();
        let _ = n.child.wait();
    }
    Ok(())
}
