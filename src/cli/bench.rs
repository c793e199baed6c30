//! `journey bench`: the speed workloads B1-B7 (README, *Performance*), run through the same live loop,
//! runtime and durable store as the daemon, with the store's own limit measured beside them.

use crate::compile;
use crate::engine::Clock;
use crate::engine::{Contact, Event, Happening, Millis, SendJob, TimelineEntry};
use crate::lang;
use crate::runtime::live::{run_live, LoopConfig, Submission};
use crate::runtime::{Delivery, Input, Runtime, Sink, SystemClock};
use crate::store::{self, Store};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub workload: Workload,
}

#[derive(clap::Subcommand, Debug)]
pub enum Workload {
    /// B1 + B2: send, check clicked within 1s, branch; half the contacts click. Prints the
    /// processing rate, timer lateness (when fired, and when durable), store writes per
    /// contact, peak memory and how many clicks won their race (from the branches taken),
    /// beside raw sled's batched write rate measured in the same run.
    Clicks {
        /// How many contacts to enrol.
        #[arg(long, default_value_t = 20_000)]
        contacts: usize,
        /// Where to put the store (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// B3: contacts waiting in a 3-day check: memory, size on disk, and the time from opening
    /// the store to the first due timer fired.
    Waiting {
        #[arg(long, default_value_t = 1_000_000)]
        contacts: usize,
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Internal: only the restart, over the store in --dir, in this fresh process.
        #[arg(long, hide = true, requires = "dir")]
        restart: bool,
    },
    /// B4: events/s over HTTP in requests of 100 events, each acknowledged once durable, from
    /// concurrent connections on 127.0.0.1 to a `journey serve` child process; raw sled's
    /// write rate beside it, measured in the same run.
    Ingest {
        /// How many events to send.
        #[arg(long, default_value_t = 200_000)]
        events: usize,
        /// Concurrent keep-alive connections (one load thread each).
        #[arg(long, default_value_t = 8)]
        connections: usize,
        /// Events per request.
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Distinct contacts the events are spread over.
        #[arg(long, default_value_t = 10_000)]
        contacts: usize,
        /// Journeys the daemon loads (default: none, so an event enrols no one).
        #[arg(long)]
        journeys: Option<PathBuf>,
        /// Where to put the daemon's data (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Give every event an idempotency id (its dedupe key is one more write).
        #[arg(long)]
        ids: bool,
    },
    /// B7: a two-rule segment over many contacts with many events: full evaluation, the
    /// incremental update per incoming event (mean, p99), and segment checks as time passes.
    Segments {
        #[arg(long, default_value_t = 1_000_000)]
        contacts: usize,
        #[arg(long, default_value_t = 10_000_000)]
        events: usize,
        /// How many incoming events to time one by one.
        #[arg(long, default_value_t = 10_000)]
        updates: usize,
        /// Where to put the store (default: a temporary directory). A directory already
        /// filled by this benchmark with the same sizes is reused.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Internal: write contacts from..to of the store in --dir, and exit.
        #[arg(long, hide = true, requires = "fill_to")]
        fill_from: Option<usize>,
        #[arg(long, hide = true)]
        fill_to: Option<usize>,
    },
    /// Used by the crash test: run a journey on the system clock over a store, printing
    /// progress, until killed or done.
    #[command(hide = true)]
    CrashChild {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 10_000)]
        contacts: usize,
        /// File the sink appends each delivered message id to.
        #[arg(long)]
        deliveries: PathBuf,
        /// Enrol nobody: only resume what the store holds.
        #[arg(long)]
        resume: bool,
    },
}

pub fn run(args: BenchArgs) -> ExitCode {
    let result = match args.workload {
        Workload::Clicks { contacts, dir } => clicks(contacts, dir),
        Workload::Waiting {
            dir: Some(dir),
            restart: true,
            ..
        } => waiting_restart(&dir),
        Workload::Waiting { contacts, dir, .. } => waiting(contacts, dir),
        Workload::Ingest {
            events,
            connections,
            batch,
            contacts,
            journeys,
            dir,
            ids,
        } => super::bench_ingest::ingest(super::bench_ingest::IngestOptions {
            events,
            connections: connections.max(1),
            batch: batch.max(1),
            contacts,
            journeys,
            dir,
            ids,
        }),
        Workload::Segments {
            contacts,
            events,
            dir: Some(dir),
            fill_from: Some(from),
            fill_to: Some(to),
            ..
        } => super::bench_segments::fill_range(&dir, contacts, events, from, to),
        Workload::Segments {
            contacts,
            events,
            updates,
            dir,
            ..
        } => super::bench_segments::run(contacts, events, updates, dir),
        Workload::CrashChild {
            dir,
            contacts,
            deliveries,
            resume,
        } => crash_child(dir, contacts, deliveries, resume),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

fn program_from(source: &str) -> AnyResult<crate::compile::ir::Program> {
    let mut loaded = lang::Loaded::default();
    lang::add_source(&mut loaded, "bench.journey", source.to_string());
    let compiled = compile::compile(&loaded);
    compiled.program.ok_or_else(|| {
        lang::diagnostic::render_human(&loaded.sources, &compiled.diagnostics, false).into()
    })
}

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

/// A memory figure of this process from /proc/self/status, in MB (Linux; 0 elsewhere).
fn proc_status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Peak resident memory of this process, in MB.
pub fn peak_rss_mb() -> f64 {
    proc_status_mb("VmHWM:")
}

pub fn rss_mb() -> f64 {
    proc_status_mb("VmRSS:")
}

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

/// The value at quantile `p` (0 to 1) of sorted values, nearest rank; the default (zero)
/// when there are none. Shared by every benchmark.
pub(crate) fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn temp_or(dir: Option<PathBuf>) -> AnyResult<(PathBuf, Option<tempfile::TempDir>)> {
    match dir {
        Some(d) => {
            std::fs::create_dir_all(&d)?;
            Ok((d, None))
        }
        None => {
            let t = tempfile::tempdir()?;
            Ok((t.path().to_path_buf(), Some(t)))
        }
    }
}

fn clicks(n: usize, dir: Option<PathBuf>) -> AnyResult<()> {
    let (dir, _keep) = temp_or(dir)?;
    let program = program_from(CLICKS_JOURNEY)?;
    let clock = SystemClock;
    let store = Store::open(&dir.join("engine"))?;
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
    eprintln!(
        "B1: {n} contacts, send → check clicked within 1s, half click; durable sled store in {}",
        dir.display()
    );
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

    // B2: raw sled, same number of keys, same batch size, one flush per batch.
    let avg_batch = (counters.writes / counters.batches.max(1)).max(1) as usize;
    let raw = store::raw_write_benchmark(
        &dir.join("raw"),
        counters.writes as usize,
        avg_batch,
        24,
        160,
    )?;
    let raw_rate = counters.writes as f64 / raw.as_secs_f64();
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
    println!("raw sled (B2)            {raw_rate:.0} key writes/s (batches of {avg_batch}, one flush each)");
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
struct CountingSink(usize);

impl Sink for CountingSink {
    fn deliver(&mut self, _job: &SendJob, _now: Millis) -> Delivery {
        self.0 += 1;
        Delivery::Sent
    }
}

fn waiting(n: usize, dir: Option<PathBuf>) -> AnyResult<()> {
    let (dir, _keep) = temp_or(dir)?;
    let program = program_from(WAITING_JOURNEY)?;
    let clock = SystemClock;
    let path = dir.join("engine");
    let filled = Instant::now();
    {
        let store = Store::open(&path)?;
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
fn waiting_restart(dir: &std::path::Path) -> AnyResult<()> {
    let clock = SystemClock;
    let path = dir.join("engine");
    let restart = Instant::now();
    let store = Store::open(&path)?;
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

const CRASH_JOURNEY: &str = r#"
journey crash {
  entry event "signup"
  policy none
  send email first {
    subject "First"
    text "First"
  }
  wait 1s
  send email second {
    subject "Second"
    text "Second"
  }
  check clicked second within 2s {
    yes { end }
    no { end }
  }
}
"#;

/// Appends each delivered message id to a file, flushed per delivery.
struct FileSink(std::fs::File);

impl Sink for FileSink {
    fn deliver(&mut self, job: &SendJob, _now: Millis) -> Delivery {
        match writeln!(self.0, "{}", job.message_id).and_then(|_| self.0.flush()) {
            Ok(()) => Delivery::Sent,
            Err(e) => Delivery::Failed(e.to_string()),
        }
    }
}

fn crash_child(dir: PathBuf, n: usize, deliveries: PathBuf, resume: bool) -> AnyResult<()> {
    let program = program_from(CRASH_JOURNEY)?;
    let clock = SystemClock;
    let store = Store::open(&dir)?;
    let mut rt = Runtime::new(store, clock.now(), chrono_tz::UTC)?;
    rt.deploy(program, clock.now())?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&deliveries)?;
    let mut sink = FileSink(file);
    let (tx, rx) = mpsc::channel::<Submission>();
    let stop = Arc::new(AtomicBool::new(false));
    let out = std::io::stdout();
    if !resume {
        let producer_tx = tx.clone();
        std::thread::spawn(move || {
            for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
                let now = SystemClock.now();
                let inputs = chunk
                    .iter()
                    .map(|i| {
                        Input::Event(Event {
                            id: Some(format!("signup-{i}")),
                            contact: format!("c{i}"),
                            kind: "signup".into(),
                            at: now,
                            ..Event::default()
                        })
                    })
                    .collect();
                let (submission, ack_rx) = Submission::with_channel(inputs);
                if producer_tx.send(submission).is_err() {
                    return;
                }
                // Acknowledged means durable: the parent may count these contacts.
                if let Ok(Ok(())) = ack_rx.recv() {
                    let last = chunk.last().copied().unwrap_or(0);
                    println!("acked {}", last + 1);
                }
            }
        });
    }
    drop(tx);
    let mut ended = 0usize;
    let mut on_timeline = |entries: Vec<TimelineEntry>| {
        let mut fired = 0;
        for t in &entries {
            if matches!(t.happening, Happening::Ended { .. }) {
                ended += 1;
            }
            if matches!(t.happening, Happening::Sent { .. }) {
                fired += 1;
            }
        }
        if fired > 0 {
            let mut o = out.lock();
            let _ = writeln!(o, "progress sent={fired} ended={ended}");
            let _ = o.flush();
        }
    };
    run_live(
        &mut rt,
        &clock,
        &mut sink,
        &rx,
        &stop,
        LoopConfig::default(),
        &mut on_timeline,
    )?;
    println!("done");
    Ok(())
}
