//! `journey bench segments` (B7): a two-rule segment over many contacts with many events.
//!
//! 1. **Fill**: contacts and their event history are written directly with the store's
//!    batch API, in batches of 100,000 keys with a flush after each (through the runtime, one
//!    group commit per input, 10M events take far longer on this machine; the history is
//!    what is measured against, not its ingestion). Event times spread over the 30 days
//!    before the benchmark's `now`.
//! 2. **Full evaluation**: the segment
//!    `event "viewed_product" where product_name == "Red Shoes" in last 15d and no event
//!    "purchase" in last 15d` evaluated over every contact, read from the store: first the
//!    evaluation alone (scan, load each contact's history, evaluate), then the deploy of a
//!    new definition, which also writes the membership and each contact's segment check.
//! 3. **Incremental update**: events arrive one at a time through `Runtime::process` (one
//!    batch each, not flushed: the flush is the same with or without segments). Each costs
//!    storing the event, loading the contact, running its journeys and evaluating its
//!    segments; then the segment's part alone is timed (read the stored membership and
//!    check, evaluate, compute the next check) over the same contacts.
//! 4. **Time passing**: the clock moves a day; the segment checks that come due (views and
//!    purchases leaving the 15-day window) are run, and counted.

use super::peak_rss_mb;
use crate::compile::ir::Program;
use crate::engine::{Contact, Event, Millis};
use crate::runtime::{Input, MemorySink, Runtime};
use crate::store::{Store, WriteBatch};
use serde_json::{json, Map, Value};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

const DAY: Millis = 86_400_000;
/// The benchmark's "now": 2026-03-31T00:00:00Z.
const NOW: Millis = 1_774_915_200_000;
const PRODUCTS: [&str; 5] = [
    "Red Shoes",
    "Blue Bag",
    "Silk Scarf",
    "Linen Shirt",
    "Black Belt",
];

pub const SEGMENT: &str = r#"
segment red_shoes_no_purchase {
  rule viewed: event "viewed_product" where product_name == "Red Shoes" in last 15d
  and rule no_buy: no event "purchase" in last 15d
}
journey red_shoes_winback {
  entry segment red_shoes_no_purchase on join
  reentry after 30d
  policy none
  send email reminder { subject "The Red Shoes are waiting" text "Come back" }
}
"#;

/// A small deterministic generator (splitmix64): the same store for the same arguments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn contact_id(i: usize) -> String {
    format!("c{i:07}")
}

fn random_event(rng: &mut Rng, contact: &str, at: Millis) -> Event {
    let r = rng.below(100);
    let (kind, props) = if r < 70 {
        let p = PRODUCTS[rng.below(PRODUCTS.len() as u64) as usize];
        ("viewed_product", json!({ "product_name": p }))
    } else if r < 75 {
        (
            "purchase",
            json!({ "product_name": PRODUCTS[rng.below(5) as usize], "amount": 80 }),
        )
    } else {
        ("page_view", json!({ "path": "/" }))
    };
    Event {
        contact: contact.to_string(),
        kind: kind.into(),
        at,
        properties: props.as_object().cloned().unwrap_or_default(),
        ..Event::default()
    }
}

fn program() -> AnyResult<Program> {
    let mut loaded = crate::lang::Loaded::default();
    crate::lang::add_source(&mut loaded, "b7.journey", SEGMENT.to_string());
    let c = crate::compile::compile(&loaded);
    c.program.ok_or_else(|| {
        crate::lang::diagnostic::render_human(&loaded.sources, &c.diagnostics, false).into()
    })
}

use super::percentile;

const FILLED: &str = "bench_segments_filled";

/// Opens the store, waiting for a process that just closed it to let go of its lock.
fn open_retrying(dir: &std::path::Path) -> AnyResult<Store> {
    for _ in 0..100 {
        match Store::open(dir) {
            Ok(s) => return Ok(s),
            Err(e) if e.to_string().contains("lock") => {
                std::thread::sleep(std::time::Duration::from_millis(100))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Store::open(dir)?)
}

/// How many events the contacts before `i` have: the mean is `events / contacts`.
fn events_before(i: usize, contacts: usize, events: usize) -> usize {
    if i >= contacts {
        return events;
    }
    ((i as f64 * events as f64 / contacts.max(1) as f64).round() as usize).min(events)
}

/// Writes contacts `from..to` and their histories (each contact's from its own seed, so
/// that chunks are independent), in batches of 100,000 keys, flushed.
pub fn fill_range(
    dir: &std::path::Path,
    contacts: usize,
    events: usize,
    from: usize,
    to: usize,
) -> AnyResult<()> {
    let store = open_retrying(dir)?;
    let mut batch = WriteBatch::default();
    for i in from..to {
        let mut rng = Rng(7 ^ ((i as u64) << 20));
        let id = contact_id(i);
        let mut profile = Map::new();
        profile.insert("email".into(), Value::String(format!("{id}@example.com")));
        batch.put_contact(&Contact {
            id: id.clone(),
            profile,
        });
        let n = events_before(i + 1, contacts, events) - events_before(i, contacts, events);
        let mut times: Vec<Millis> = (0..n)
            .map(|_| NOW - 1 - rng.below(30 * DAY as u64) as Millis)
            .collect();
        times.sort_unstable();
        for (k, at) in times.into_iter().enumerate() {
            batch.put_event(&random_event(&mut rng, &id, at), k as u64);
        }
        if batch.writes >= 100_000 {
            store.apply(std::mem::take(&mut batch))?;
            store.flush()?;
        }
    }
    store.apply(batch)?;
    store.flush()?;
    Ok(())
}

pub fn run(contacts: usize, events: usize, updates: usize, dir: Option<PathBuf>) -> AnyResult<()> {
    let (dir, _keep) = match dir {
        Some(d) => {
            std::fs::create_dir_all(&d)?;
            (d, None)
        }
        None => {
            let t = tempfile::tempdir()?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let out = &mut std::io::stdout();
    let store = open_retrying(&dir)?;
    let marker = format!("{contacts}/{events}");
    if store.meta(FILLED)?.as_deref() != Some(marker.as_bytes()) {
        writeln!(
            out,
            "B7 segments: {contacts} contacts, {events} events, store in {}",
            dir.display()
        )?;
    }
    // 1. Fill (skipped when the directory already holds this benchmark's store).
    let reused = store.meta(FILLED)?.as_deref() == Some(marker.as_bytes());
    drop(store);
    if reused {
        writeln!(
            out,
            "fill: reusing the store already filled in this directory"
        )?;
    } else {
        // sled 0.34 keeps what a process writes in memory (about 2.5 GB per million
        // events here, flushed or not): each chunk of contacts is written by a process of
        // its own, which exits when its chunk is durable.
        let started = Instant::now();
        let chunk = 100_000;
        let mut from = 0;
        while from < contacts {
            let to = (from + chunk).min(contacts);
            let status = std::process::Command::new(std::env::current_exe()?)
                .args(["bench", "segments", "--contacts", &contacts.to_string()])
                .args(["--events", &events.to_string()])
                .args([
                    "--fill-from",
                    &from.to_string(),
                    "--fill-to",
                    &to.to_string(),
                ])
                .arg("--dir")
                .arg(&dir)
                .status()?;
            if !status.success() {
                return Err(format!("filling contacts {from}..{to} failed").into());
            }
            from = to;
            writeln!(
                out,
                "  … {to} contacts, {} events, {:.0} s",
                events_before(to, contacts, events),
                started.elapsed().as_secs_f64()
            )?;
        }
        let store = open_retrying(&dir)?;
        let written_events = events;
        let mut batch = WriteBatch::default();
        batch.set_meta(FILLED, marker.as_bytes());
        store.apply(batch)?;
        store.flush()?;
        let secs = started.elapsed().as_secs_f64();
        writeln!(
            out,
            "fill: {contacts} contacts and {written_events} events written with the batch API (batches of 100,000 keys, a flush after each) in {secs:.1} s ({:.0} keys/s), {:.0} MB on disk",
            (contacts + written_events) as f64 / secs,
            store.size_on_disk() as f64 / 1e6
        )?;
    }
    if !reused {
        // Measure in a fresh process over the store as written, as a daemon that starts on
        // it would: the writing process's allocator and sled caches are full of the fill.
        writeln!(out, "(measuring in a new process over the filled store)")?;
        out.flush()?;
        let status = std::process::Command::new(std::env::current_exe()?)
            .args(["bench", "segments", "--contacts", &contacts.to_string()])
            .args([
                "--events",
                &events.to_string(),
                "--updates",
                &updates.to_string(),
            ])
            .arg("--dir")
            .arg(&dir)
            .status()?;
        return if status.success() {
            Ok(())
        } else {
            Err("the measuring process failed".into())
        };
    }

    let program = program()?;
    let segment = &program.segments["red_shoes_no_purchase"];

    // 2a. Full evaluation, read-only: once from a freshly opened store (cold), once more.
    let store = open_retrying(&dir)?;
    let mut members = 0usize;
    for pass in ["cold", "warm"] {
        let started = Instant::now();
        members = 0;
        let mut seen = 0usize;
        let mut scanned_events = 0usize;
        // Only the events the rules can see (the last 15 days) are decoded.
        let since = crate::engine::cond::segment_lookback(&program, segment).map(|w| NOW - w);
        for r in store.contacts_with_events_since(since) {
            let (c, history) = r?;
            scanned_events += history.len();
            let view = crate::engine::cond::ContactView {
                contact: &c,
                events: &history,
                program: &program,
                now: NOW,
            };
            if view.segment_matches(segment) {
                members += 1;
            }
            seen += 1;
        }
        let full = started.elapsed().as_secs_f64();
        writeln!(
            out,
            "full evaluation ({pass}): {seen} contacts, {scanned_events} events decoded, {members} members in {full:.1} s ({:.1} µs per contact, {:.0} contacts/s)",
            full * 1e6 / seen.max(1) as f64,
            seen as f64 / full
        )?;
    }

    // 2b. The same as a deploy does it for a new definition: membership and checks written.
    let mut rt = Runtime::new(store, NOW, chrono_tz::UTC)?;
    rt.durable = true;
    let started = Instant::now();
    let report = rt.deploy(program.clone(), NOW)?;
    let deploy = started.elapsed().as_secs_f64();
    let stored = rt.store.members("red_shoes_no_purchase").count();
    writeln!(
        out,
        "deploy of the definition (evaluate, write membership and segment checks, flush): {} contacts in {deploy:.1} s; {stored} members stored",
        report.segments.contacts
    )?;
    if stored != members {
        return Err(format!("stored {stored} members, evaluated {members}").into());
    }

    // 3. One incremental update per incoming event.
    let mut rng = Rng(11);
    let mut sink = MemorySink::default();
    rt.durable = false;
    let inputs: Vec<Event> = (0..updates)
        .map(|k| {
            let c = contact_id(rng.below(contacts as u64) as usize);
            random_event(&mut rng, &c, NOW + k as Millis)
        })
        .collect();
    let mut with_segments: Vec<u128> = Vec::with_capacity(updates);
    let mut joined = 0usize;
    for (k, e) in inputs.iter().enumerate() {
        let now = NOW + k as Millis;
        let t = Instant::now();
        let outcome = rt.process(vec![Input::Event(e.clone())], now)?;
        with_segments.push(t.elapsed().as_nanos());
        joined += outcome.sends.len();
        for s in outcome.sends {
            sink.delivered.push((s, now));
        }
    }
    with_segments.sort_unstable();
    let mean = with_segments.iter().sum::<u128>() as f64 / updates.max(1) as f64;
    writeln!(
        out,
        "incremental update, per event ({updates} events, one batch each, not flushed): mean {:.0} µs, p50 {:.0} µs, p99 {:.0} µs; {joined} joins enrolled",
        mean / 1e3,
        percentile(&with_segments, 0.5) as f64 / 1e3,
        percentile(&with_segments, 0.99) as f64 / 1e3,
    )?;
    // 4. A day passes: the segment checks that come due.
    let mut timeline = Vec::new();
    let day_later = NOW + DAY;
    let started = Instant::now();
    let mut checks = 0usize;
    loop {
        let due = rt.due_schedules(day_later)?;
        if due.is_empty() {
            break;
        }
        checks += due.len();
        rt.run_at(due, day_later, &mut sink, &mut timeline)?;
    }
    let secs = started.elapsed().as_secs_f64();
    writeln!(
        out,
        "a day later: {checks} segment checks came due and ran in {secs:.1} s ({:.0} µs each); {} members",
        secs * 1e6 / checks.max(1) as f64,
        rt.store.members("red_shoes_no_purchase").count()
    )?;
    // The segment's own part of an update, alone: for contacts of incoming events, with
    // their profile and history loaded (the step function loads them anyway), read the
    // stored membership and check, evaluate the segment, compute the next check.
    let mut alone: Vec<u128> = Vec::with_capacity(updates);
    let later = day_later + 1;
    for e in &inputs {
        let Some(c) = rt.store.contact(&e.contact)? else {
            continue;
        };
        let history = rt.store.events_of(&e.contact)?;
        let t = Instant::now();
        let before = rt.store.is_member("red_shoes_no_purchase", &c.id)?;
        let stored_check = rt.store.segment_check(&c.id)?;
        let (member, next) =
            crate::runtime::segments::evaluate_contact(rt.program(), &c, &history, later);
        std::hint::black_box((before, stored_check, member, next));
        alone.push(t.elapsed().as_nanos());
    }
    alone.sort_unstable();
    let n = alone.len().max(1) as f64;
    writeln!(
        out,
        "the segment's part of an update alone (read membership and check, evaluate, next check; history loaded): mean {:.1} µs, p50 {:.1} µs, p99 {:.1} µs",
        alone.iter().sum::<u128>() as f64 / n / 1e3,
        percentile(&alone, 0.5) as f64 / 1e3,
        percentile(&alone, 0.99) as f64 / 1e3,
    )?;
    writeln!(out, "peak RSS {:.0} MB", peak_rss_mb())?;
    Ok(())
}
