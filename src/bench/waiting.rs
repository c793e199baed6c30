//! B3 (`journey bench waiting`): contacts waiting in a 3-day check: memory, size on disk,
//! and the time from opening the store to the first due timer fired.

use super::{peak_rss_mb, program_from, rss_mb, temp_or, AnyResult};
use crate::engine::{Contact, Event, Millis, SendJob};
use crate::runtime::Clock;
use crate::runtime::{Delivery, Input, Runtime, Sink, SystemClock};
use crate::store::Store;
use std::path::PathBuf;
use std::time::Instant;

const WAITING_JOURNEY: &str = r#"
journey waiting {
  entry event "signup"
  policy none
  send email hello {
    subject "Hello"
    text "Hello"
  }
  check opened hello within 3d {
    yes { end }
    no { end }
  }
}
"#;

/// A sink that only counts.
#[derive(Default)]
pub(super) struct CountingSink(pub(super) usize);

impl Sink for CountingSink {
    fn deliver(&mut self, _job: &SendJob, _now: Millis) -> Delivery {
        self.0 += 1;
        Delivery::Sent
    }
}

/// Where B3's store is: a sled directory, or (with `--postgres`) a database of a server the
/// benchmark starts, with PostgreSQL's defaults.
fn store_location(dir: &std::path::Path) -> String {
    let text = dir.to_string_lossy();
    if text.starts_with("postgres://") {
        text.into_owned()
    } else {
        dir.join("engine").to_string_lossy().into_owned()
    }
}

pub fn waiting(n: usize, dir: Option<PathBuf>, postgres: bool) -> AnyResult<()> {
    let (dir, _keep) = temp_or(dir)?;
    let pg = if postgres {
        Some(super::pg_server::PgServer::start(false)?)
    } else {
        None
    };
    // The restart is told the store's place as its --dir: the directory, or the URL.
    let dir = match &pg {
        Some(pg) => PathBuf::from(pg.fresh_database()?),
        None => dir,
    };
    let program = program_from(WAITING_JOURNEY)?;
    let clock = SystemClock;
    let location = store_location(&dir);
    let filled = Instant::now();
    {
        let store = Store::open_location(&location)?;
        let mut rt = Runtime::new(store, clock.now(), chrono_tz::UTC)?;
        rt.deploy(program, clock.now())?;
        let mut sink = CountingSink::default();
        let mut timeline = Vec::new();
        let mut done = 0;
        eprint!("B3: enrolling {n} contacts into a 3-day check… ");
        while done < n {
            let now = clock.now();
            let upto = (done + 1_000).min(n);
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
        // One timer due now, so the restart has something to fire.
        let now = clock.now();
        rt.upsert_contact(&Contact {
            id: "due".into(),
            profile: Default::default(),
        })?;
        let _ = now;
        eprintln!(
            "done in {:.1} s; in-memory timers {}, RSS {:.0} MB",
            filled.elapsed().as_secs_f64(),
            rt.timers_in_memory(),
            rss_mb()
        );
    }
    let peak_fill = peak_rss_mb();
    // The restart runs in a fresh process, as after a real one: its memory is its own.
    let spawned = Instant::now();
    let restart = std::process::Command::new(std::env::current_exe()?)
        .args(["bench", "waiting", "--restart", "--dir"])
        .arg(&dir)
        .output()?;
    if !restart.status.success() {
        return Err(format!(
            "the restarted process failed: {}",
            String::from_utf8_lossy(&restart.stderr)
        )
        .into());
    }
    let spawned = spawned.elapsed();
    println!("contacts waiting         {n}");
    println!("peak RSS while filling   {peak_fill:.0} MB");
    print!("{}", String::from_utf8_lossy(&restart.stdout));
    println!(
        "restart process, spawn → exit {:.2} s",
        spawned.as_secs_f64()
    );
    Ok(())
}

/// B3's restart, in its own process: open the store, fire the first due timer, report.
pub fn waiting_restart(dir: &std::path::Path) -> AnyResult<()> {
    let clock = SystemClock;
    let restart = Instant::now();
    let store = Store::open_location(&store_location(dir))?;
    let disk = store.size_on_disk();
    let mut rt = Runtime::new(store, clock.now(), chrono_tz::UTC)?;
    let opened = restart.elapsed();
    let rss_opened = rss_mb();
    // The first timer due: 3 days out, so look it up and fire it at its own time.
    let first = rt.store.first_timer()?.map(|t| t.0);
    let mut sink = CountingSink::default();
    let mut timeline = Vec::new();
    if let Some(due) = first {
        rt.tick(due, &mut sink, &mut timeline)?;
    }
    let fired = restart.elapsed();
    println!("on-disk size             {:.0} MB", disk as f64 / 1e6);
    println!(
        "restart: store open      {:.2} s, RSS {rss_opened:.0} MB",
        opened.as_secs_f64()
    );
    println!(
        "restart → first timer    {:.2} s (fired {} transitions; {} timers loaded in memory)",
        fired.as_secs_f64(),
        timeline.len(),
        rt.timers_in_memory()
    );
    println!(
        "RSS after restart        {:.0} MB (peak {:.0} MB)",
        rss_mb(),
        peak_rss_mb()
    );
    Ok(())
}
