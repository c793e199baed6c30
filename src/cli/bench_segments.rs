//! `journey bench segments` (B7): a two-rule segment over many contacts with many events.
//!
//! 1. **Fill**: contacts and their event history are written directly with the store's
//!    batch API, in large batches with one flush at the end (through the runtime, one
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
//!    storing the event and the contact's evaluation; the same events with a program
//!    without segments give the part that is the segment's.
//! 4. **Time passing**: the clock moves a day; the segment checks that come due (views and
//!    purchases leaving the 15-day window) are run, and counted.

use super::bench::peak_rss_mb;
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

fn percentile(sorted: &[u128], p: f64) -> u128 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

const FILLED: &str = "bench_segments_filled";

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
    let store = Store::open(&dir)?;
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
    if reused {
        writeln!(
            out,
            "fill: reusing the store already filled in this directory"
        )?;
    } else {
        let started = Instant::now();
        let mut rng = Rng(7);
        let mut batch = WriteBatch::default();
        let mut written_events = 0usize;
        let mut seq = 0u64;
        let per = events as f64 / contacts.max(1) as f64;
        for i in 0..contacts {
            let id = contact_id(i);
            let mut profile = Map::new();
            profile.insert("email".into(), Value::String(format!("{id}@example.com")));
            batch.put_contact(&Contact {
                id: id.clone(),
                profile,
            });
            // Between 0 and 2× the mean, so that the total comes out at `events`.
            let due = (((i + 1) as f64 * per).round() as usize).min(events);
            let mut n = due.saturating_sub(written_events);
            if i + 1 == contacts {
                n = events - written_events;
            }
            let mut times: Vec<Millis> = (0..n)
                .map(|_| NOW - 1 - rng.below(30 * DAY as u64) as Millis)
                .collect();
            times.sort_unstable();
            for at in times {
                seq += 1;
                batch.put_event(&random_event(&mut rng, &id, at), seq);
            }
            written_events += n;
            if batch.writes >= 100_000 {
                store.apply(std::mem::take(&mut batch))?;
            }
            if i > 0 && i % 100_000 == 0 {
                writeln!(
                    out,
                    "  … {i} contacts, {written_events} events, {:.0} s",
                    started.elapsed().as_secs_f64()
                )?;
            }
        }
        batch.set_meta(FILLED, marker.as_bytes());
        store.apply(batch)?;
        store.flush()?;
        let secs = started.elapsed().as_secs_f64();
        writeln!(
            out,
            "fill: {contacts} contacts and {written_events} events written with the batch API in {secs:.1} s ({:.0} keys/s), {:.0} MB on disk",
            (contacts + written_events) as f64 / secs,
            store.size_on_disk() as f64 / 1e6
        )?;
    }
    drop(store);
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
    let store = Store::open(&dir)?;
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
    // The same events, with no segment in the program: the part that is the segment's.
    let base_program = Program::default();
    rt.deploy(base_program, NOW + DAY)?;
    let mut without: Vec<u128> = Vec::with_capacity(updates);
    for (k, e) in inputs.iter().enumerate() {
        let now = NOW + DAY + (updates + k) as Millis;
        let mut e = e.clone();
        e.at = now;
        let t = Instant::now();
        rt.process(vec![Input::Event(e)], now)?;
        without.push(t.elapsed().as_nanos());
    }
    without.sort_unstable();
    let base = without.iter().sum::<u128>() as f64 / updates.max(1) as f64;
    writeln!(
        out,
        "the same events without segments: mean {:.0} µs, p99 {:.0} µs → the segment's share: {:.0} µs per event",
        base / 1e3,
        percentile(&without, 0.99) as f64 / 1e3,
        (mean - base) / 1e3
    )?;

    writeln!(out, "peak RSS {:.0} MB", peak_rss_mb())?;
    Ok(())
}
