//! `journey bench console`: the console's journey page with many contacts in flight. A store
//! is filled in this process (contacts enrolled in a journey, each sent an email and
//! waiting in a 3-day check), then `journey serve` starts on it as a child process (its
//! start rebuilds the live counts from the store: timed), and the journey page, the list
//! and the counts are fetched over keep-alive HTTP on 127.0.0.1 with a signed-in session:
//! the time from request to the last byte of the answer, p50/p99/max.

use super::ingest::{spawn_daemon, Connection};
use super::waiting::CountingSink;
use super::{percentile, AnyResult};
use crate::engine::Event;
use crate::runtime::{Clock, Input, Runtime, SystemClock};
use crate::store::Store;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const JOURNEY: &str = r#"
journey console_bench {
  title "The console benchmark's journey"
  entry event "signup"
  policy none
  send email hello {
    subject "Hello"
    text "Hello"
  }
  check opened hello within 3d {
    yes {
      send email thanks {
        subject "Thanks"
        text "Thanks"
      }
    }
    no { end }
  }
}
"#;

/// How many times each page is fetched.
const ROUNDS: usize = 50;

pub fn console(contacts: usize, dir: Option<PathBuf>) -> AnyResult<()> {
    let (dir, _keep) = super::temp_or(dir)?;
    let journeys = dir.join("journeys");
    std::fs::create_dir_all(&journeys)?;
    std::fs::write(journeys.join("console_bench.journey"), JOURNEY)?;
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let built = crate::runtime::plan::build_dir(&journeys);
    let program = built.program.ok_or(built.human)?;
    let filling = Instant::now();
    {
        let store = Store::open(&crate::server::store_path(&data))?;
        let clock = SystemClock;
        let mut rt = Runtime::new(store, clock.now(), chrono_tz::UTC)?;
        rt.deploy(program, clock.now())?;
        let mut sink = CountingSink(0);
        let mut timeline = Vec::new();
        let mut done = 0;
        eprint!("console: enrolling {contacts} contacts… ");
        while done < contacts {
            let now = clock.now();
            let upto = (done + 1_000).min(contacts);
            let inputs = (done..upto)
                .map(|i| {
                    Input::Event(Event {
                        contact: format!("c{i}"),
                        kind: "signup".into(),
                        at: now,
                        ..Event::default()
                    })
                })
                .collect();
            rt.run_at(inputs, now, &mut sink, &mut timeline)?;
            timeline.clear();
            done = upto;
        }
        eprintln!("done in {:.1} s", filling.elapsed().as_secs_f64());
    }
    let config = dir.join("journey.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: {}\njourneys_dir: {}\nserver:\n  listen: 127.0.0.1:0\n",
            data.display(),
            journeys.display()
        ),
    )?;
    let starting = Instant::now();
    let (mut child, base) = spawn_daemon(&config)?;
    let start = starting.elapsed();
    let result = measure(&base, &data, contacts);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let rows = result?;
    println!(
        "console: {contacts} contacts in flight; the daemon started (live counts rebuilt from the store) in {:.2} s",
        start.as_secs_f64()
    );
    for (what, lat, bytes) in rows {
        println!(
            "  GET {what}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({ROUNDS} requests, {bytes} bytes)",
            ms(percentile(&lat, 0.50)),
            ms(percentile(&lat, 0.99)),
            ms(*lat.last().unwrap_or(&Duration::ZERO)),
        );
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

type Row = (String, Vec<Duration>, usize);

fn measure(base: &str, data: &std::path::Path, contacts: usize) -> AnyResult<Vec<Row>> {
    if base.is_empty() {
        return Err("the daemon did not start".into());
    }
    let secret = crate::store::credentials::load_secret(None, data)?;
    let now = crate::server::now_ms() / 1000;
    // Signed in with the first start's admin token, as a browser would be.
    let admin = std::fs::read_to_string(crate::store::credentials::admin_token_path(data))?;
    let cookie = crate::server::console::session_cookie_value(
        &secret,
        crate::server::Scope::Admin,
        &crate::store::credentials::fingerprint(admin.trim()),
        now,
    );
    let addr = base.strip_prefix("http://").ok_or("not http://")?;
    let mut c = Connection::open(addr)?;
    let mut rows = Vec::new();
    for path in [
        "/journeys/console_bench",
        "/journeys/console_bench/counts",
        "/",
    ] {
        let request = format!(
            "GET {path} HTTP/1.1\r\nhost: {addr}\r\ncookie: {}={cookie}\r\n\r\n",
            crate::server::console::SESSION_COOKIE
        );
        let mut lat = Vec::with_capacity(ROUNDS);
        let mut bytes = 0;
        for round in 0..ROUNDS + 3 {
            let t = Instant::now();
            let status = c.exchange(request.as_bytes())?;
            let took = t.elapsed();
            if status != 200 {
                return Err(format!("GET {path}: {status}").into());
            }
            let body = c.body();
            bytes = body.len();
            if round == 0 && path == "/journeys/console_bench" {
                // The page shows every contact in flight, waiting in the check.
                let shown = format!("data-total=\"active\">{contacts}<");
                let drawn = format!("waiting {contacts} ·");
                if !body.contains(&shown) || !body.contains("<svg") || !body.contains(&drawn) {
                    return Err(format!("the page does not show {contacts} in flight").into());
                }
            }
            // The first rounds warm the connection and the caches.
            if round >= 3 {
                lat.push(took);
            }
        }
        lat.sort();
        rows.push((path.to_string(), lat, bytes));
    }
    Ok(rows)
}
