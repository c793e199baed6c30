//! Plans (segment entries at a moment or repeated), Do Not Disturb policies and quiet hours,
//! through the runtime over stores on disk that are closed and opened again, as a daemon
//! that stops and starts does.

mod support;
use support::store::*;

use journey::compile::{self, ir::Program};
use journey::engine::{Contact, Event, Millis, MESSAGE_CAPPED, MESSAGE_SENT};
use journey::lang;
use journey::runtime::{Input, MemorySink, Runtime};
use journey::store::Store;
use serde_json::{json, Map};
use std::path::Path;

const H: Millis = 3_600_000;
const D: Millis = 24 * H;

fn ms(s: &str) -> Millis {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_millis()
}

fn program(src: &str) -> Program {
    let mut loaded = lang::Loaded::default();
    lang::add_source(&mut loaded, "p.journey", src.to_string());
    let c = compile::compile(&loaded);
    c.program.unwrap_or_else(|| {
        panic!(
            "{}",
            lang::diagnostic::render_human(&loaded.sources, &c.diagnostics, false)
        )
    })
}

/// A runtime over the store in `dir`, started at `now` with `src` deployed: a daemon start.
fn start(dir: &Path, src: &str, now: Millis, zone: chrono_tz::Tz) -> Runtime {
    let store = open_at(dir);
    let mut rt = Runtime::new(store, now, zone).unwrap();
    rt.deploy(program(src), now).unwrap();
    rt
}

fn contact(rt: &mut Runtime, id: &str, profile: serde_json::Value) {
    let profile: Map<String, serde_json::Value> = profile.as_object().cloned().unwrap();
    rt.upsert_contact(&Contact {
        id: id.into(),
        profile,
    })
    .unwrap();
}

/// Runs everything due up to `to`, in time order; returns the deliveries.
fn run_until(rt: &mut Runtime, sink: &mut MemorySink, from: Millis, to: Millis) {
    let mut now = from;
    let mut timeline = Vec::new();
    rt.tick(now, sink, &mut timeline).unwrap();
    for _ in 0..10_000 {
        match rt.next_wake().unwrap() {
            Some(w) if w <= to => {
                now = now.max(w);
                rt.tick(now, sink, &mut timeline).unwrap();
            }
            _ => return,
        }
    }
    panic!("wakes did not settle");
}

fn sent_times(sink: &MemorySink, contact: &str, message: &str) -> Vec<String> {
    sink.delivered
        .iter()
        .filter(|(j, _)| j.contact == contact && j.message == message)
        .map(|(_, at)| journey::runtime::fmt_time(*at))
        .collect()
}

// ------------------------------------------------------------------ plans

const PLAN: &str = r#"
segment guests { rule g: in list "guests" }
journey reminder {
  entry segment guests at 2026-03-13 10:00 Europe/Rome
  policy none
  send email reminder_email { subject "See you tomorrow" text "18:30, Milan" }
}
"#;

#[test]
fn a_one_shot_plan_missed_while_down_runs_once_at_start_never_twice() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = ms("2026-03-12T12:00:00Z");
    {
        let mut rt = start(dir.path(), PLAN, t0, chrono_tz::UTC);
        contact(&mut rt, "ann", json!({"lists": ["guests"]}));
        contact(&mut rt, "bob", json!({"lists": ["guests"]}));
        contact(&mut rt, "cid", json!({}));
        let mut sink = MemorySink::default();
        run_until(&mut rt, &mut sink, t0, t0 + H);
        assert!(sink.delivered.is_empty());
        // The daemon stops before the plan's moment (2026-03-13 09:00Z).
    }
    // It starts again the day after: the plan runs once, at start.
    let t1 = ms("2026-03-14T08:00:00Z");
    {
        let mut rt = start(dir.path(), PLAN, t1, chrono_tz::UTC);
        assert_eq!(rt.next_wake().unwrap(), Some(ms("2026-03-13T09:00:00Z")));
        let mut sink = MemorySink::default();
        run_until(&mut rt, &mut sink, t1, t1 + H);
        let mut got: Vec<(String, Millis)> = sink
            .delivered
            .iter()
            .map(|(j, at)| (j.contact.clone(), *at))
            .collect();
        got.sort();
        assert_eq!(got, vec![("ann".into(), t1), ("bob".into(), t1)]);
        assert_eq!(rt.next_wake().unwrap(), None, "nothing left to run");
    }
    // And never again: not after another restart, not a week later.
    for t in [t1 + 1, t1 + 7 * D] {
        let mut rt = start(dir.path(), PLAN, t, chrono_tz::UTC);
        let mut sink = MemorySink::default();
        run_until(&mut rt, &mut sink, t, t + D);
        assert!(sink.delivered.is_empty(), "ran again at {t}");
        assert_eq!(rt.store.instances_of("ann").unwrap().len(), 1);
    }
}

#[test]
fn a_plan_deployed_again_unchanged_keeps_its_record() {
    // Deploying the same journeys at each start does not reset what ran.
    let dir = tempfile::tempdir().unwrap();
    let t0 = ms("2026-03-13T08:00:00Z");
    let mut rt = start(dir.path(), PLAN, t0, chrono_tz::UTC);
    contact(&mut rt, "ann", json!({"lists": ["guests"]}));
    let mut sink = MemorySink::default();
    run_until(&mut rt, &mut sink, t0, t0 + 2 * H);
    assert_eq!(
        sent_times(&sink, "ann", "reminder_email"),
        ["2026-03-13T09:00:00Z"]
    );
    rt.deploy(program(PLAN), t0 + 3 * H).unwrap();
    run_until(&mut rt, &mut sink, t0 + 3 * H, t0 + 3 * D);
    assert_eq!(sink.delivered.len(), 1);
}

const DAILY: &str = r#"
segment readers { rule r: in list "daily" }
journey digest {
  entry segment readers every day 09:00 Europe/Rome
  reentry always
  policy none
  send email digest_email { subject "Today" text "News" }
}
"#;

#[test]
fn a_repeated_plan_that_missed_several_runs_runs_once_at_start_then_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = ms("2026-03-23T07:00:00Z"); // Monday, Rome UTC+1
    {
        let mut rt = start(dir.path(), DAILY, t0, chrono_tz::UTC);
        contact(&mut rt, "ann", json!({"lists": ["daily"]}));
        let mut sink = MemorySink::default();
        run_until(&mut rt, &mut sink, t0, t0 + 2 * H);
        assert_eq!(
            sent_times(&sink, "ann", "digest_email"),
            ["2026-03-23T08:00:00Z"]
        );
    }
    // Down from Monday to Friday noon: four runs missed (Tue..Fri), one run at start.
    let t1 = ms("2026-03-27T12:00:00Z");
    let mut rt = start(dir.path(), DAILY, t1, chrono_tz::UTC);
    let mut sink = MemorySink::default();
    run_until(&mut rt, &mut sink, t1, ms("2026-03-31T00:00:00Z"));
    // Then each day at 09:00 Rome: 08:00Z until the change to summer time on Sunday the
    // 29th, 07:00Z from then on.
    assert_eq!(
        sent_times(&sink, "ann", "digest_email"),
        [
            "2026-03-27T12:00:00Z",
            "2026-03-28T08:00:00Z",
            "2026-03-29T07:00:00Z",
            "2026-03-30T07:00:00Z",
        ]
    );
}

// ------------------------------------------------------------------ policies

fn policy_src(caps: &str, scope: &str, action: &str) -> String {
    format!(
        r#"
policy dnd {{
  {caps}
  scope {scope}
  when capped {action}
}}
journey promo {{
  entry event "promo"
  reentry always
  policy dnd
  send email promo_email {{ subject "Promo" text "Offer" }}
  send sms promo_sms {{ text "Offer" }}
}}
journey news {{
  entry event "news"
  reentry always
  policy dnd
  send email news_email {{ subject "News" text "Hello" }}
}}
"#
    )
}

fn ev(contact: &str, kind: &str, at: Millis) -> Input {
    Input::Event(Event {
        contact: contact.into(),
        kind: kind.into(),
        at,
        ..Event::default()
    })
}

fn capped_events(store: &Store, contact: &str) -> Vec<(String, String, String, String)> {
    store
        .events_of(contact)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == MESSAGE_CAPPED)
        .map(|e| {
            (
                journey::runtime::fmt_time(e.at),
                e.message.unwrap_or_default(),
                e.properties["policy"].as_str().unwrap_or("").to_string(),
                e.properties["action"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn caps_count_sends_from_before_a_restart() {
    let src = policy_src("max 1 email per 1d", "global", "delay");
    let dir = tempfile::tempdir().unwrap();
    let t0 = ms("2026-03-02T10:00:00Z");
    {
        let mut rt = start(dir.path(), &src, t0, chrono_tz::UTC);
        let mut sink = MemorySink::default();
        rt.run_at(vec![ev("ann", "promo", t0)], t0, &mut sink, &mut Vec::new())
            .unwrap();
        assert_eq!(
            sent_times(&sink, "ann", "promo_email"),
            ["2026-03-02T10:00:00Z"]
        );
    }
    // Restarted two hours later: the email of another journey is over the global daily
    // cap, counted from the store; it waits until the first leaves the window.
    let t1 = t0 + 2 * H;
    let mut rt = start(dir.path(), &src, t1, chrono_tz::UTC);
    let mut sink = MemorySink::default();
    rt.run_at(vec![ev("ann", "news", t1)], t1, &mut sink, &mut Vec::new())
        .unwrap();
    assert!(sent_times(&sink, "ann", "news_email").is_empty());
    assert_eq!(
        capped_events(&rt.store, "ann"),
        [(
            "2026-03-02T12:00:00Z".to_string(),
            "news_email".to_string(),
            "dnd".to_string(),
            "delay".to_string()
        )]
    );
    drop(rt);
    // Another restart while it is held: the held send still goes at its moment.
    let t2 = t0 + 5 * H;
    let mut rt = start(dir.path(), &src, t2, chrono_tz::UTC);
    run_until(&mut rt, &mut sink, t2, t0 + 2 * D);
    assert_eq!(
        sent_times(&sink, "ann", "news_email"),
        ["2026-03-03T10:00:00Z"]
    );
    // The `message.sent` records of both are in the store, the capped decision too.
    let sent = rt
        .store
        .events_of("ann")
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == MESSAGE_SENT)
        .count();
    assert_eq!(sent, 3, "promo email and SMS, then the news email");
}

#[test]
fn skip_with_journey_scope_counts_the_journeys_own_sends_only() {
    let src = policy_src("max 1 email per 1d", "journey", "skip");
    let dir = tempfile::tempdir().unwrap();
    let t0 = ms("2026-03-02T10:00:00Z");
    {
        let mut rt = start(dir.path(), &src, t0, chrono_tz::UTC);
        let mut sink = MemorySink::default();
        rt.run_at(
            vec![ev("ann", "promo", t0), ev("ann", "news", t0)],
            t0,
            &mut sink,
            &mut Vec::new(),
        )
        .unwrap();
        // Two journeys, one email each: scope journey counts each journey's own.
        assert_eq!(sink.delivered.len(), 3);
    }
    let t1 = t0 + H;
    let mut rt = start(dir.path(), &src, t1, chrono_tz::UTC);
    let mut sink = MemorySink::default();
    rt.run_at(vec![ev("ann", "promo", t1)], t1, &mut sink, &mut Vec::new())
        .unwrap();
    // The second promo email is skipped (counted from before the restart); the SMS goes.
    let names: Vec<&str> = sink
        .delivered
        .iter()
        .map(|(j, _)| j.message.as_str())
        .collect();
    assert_eq!(names, ["promo_sms"]);
    assert_eq!(
        capped_events(&rt.store, "ann"),
        [(
            "2026-03-02T11:00:00Z".to_string(),
            "promo_email".to_string(),
            "dnd".to_string(),
            "skip".to_string()
        )]
    );
}

#[test]
fn a_cap_across_channels_over_a_rolling_week() {
    // 2 messages a week, any channel: email + SMS on Monday, then nothing until the next
    // Monday at the same time, when the first leaves the window.
    let src = policy_src("max 2 messages per 1w", "global", "delay");
    let dir = tempfile::tempdir().unwrap();
    let t0 = ms("2026-03-02T10:00:00Z");
    let mut rt = start(dir.path(), &src, t0, chrono_tz::UTC);
    let mut sink = MemorySink::default();
    rt.run_at(vec![ev("ann", "promo", t0)], t0, &mut sink, &mut Vec::new())
        .unwrap();
    drop(rt);
    let t1 = t0 + 3 * D;
    let mut rt = start(dir.path(), &src, t1, chrono_tz::UTC);
    rt.run_at(vec![ev("ann", "news", t1)], t1, &mut sink, &mut Vec::new())
        .unwrap();
    run_until(&mut rt, &mut sink, t1, t0 + 14 * D);
    assert_eq!(
        sent_times(&sink, "ann", "news_email"),
        ["2026-03-09T10:00:00Z"]
    );
    assert_eq!(capped_events(&rt.store, "ann").len(), 1);
}

// ------------------------------------------------------------------ quiet hours

const QUIET: &str = r#"
journey late {
  entry event "signup"
  policy none
  quiet 21:00..08:00
  send email hello { subject "Hello" text "Hi" }
}
"#;

#[test]
fn quiet_hours_in_the_contacts_zone_else_the_configured_default() {
    let dir = tempfile::tempdir().unwrap();
    // 21:30Z on Monday 2 March: 22:30 in Rome (quiet), 16:30 in New York (not), 06:30 in
    // Tokyo on the 3rd (quiet until 08:00, 23:00Z).
    let t0 = ms("2026-03-02T21:30:00Z");
    // The configured default zone is Rome.
    let mut rt = start(dir.path(), QUIET, t0, chrono_tz::Europe::Rome);
    contact(&mut rt, "rome", json!({"timezone": "Europe/Rome"}));
    contact(&mut rt, "ny", json!({"timezone": "America/New_York"}));
    contact(&mut rt, "tokyo", json!({"timezone": "Asia/Tokyo"}));
    contact(&mut rt, "nozone", json!({}));
    contact(&mut rt, "badzone", json!({"timezone": "Mars/Olympus"}));
    let mut sink = MemorySink::default();
    let inputs = ["rome", "ny", "tokyo", "nozone", "badzone"]
        .iter()
        .map(|c| ev(c, "signup", t0))
        .collect();
    rt.run_at(inputs, t0, &mut sink, &mut Vec::new()).unwrap();
    drop(rt);
    // Held sends survive a restart and go when each contact's morning comes.
    let t1 = t0 + H;
    let mut rt = start(dir.path(), QUIET, t1, chrono_tz::Europe::Rome);
    run_until(&mut rt, &mut sink, t1, t0 + 2 * D);
    let at = |c: &str| sent_times(&sink, c, "hello");
    assert_eq!(at("ny"), ["2026-03-02T21:30:00Z"]);
    assert_eq!(at("tokyo"), ["2026-03-02T23:00:00Z"]);
    assert_eq!(at("rome"), ["2026-03-03T07:00:00Z"]);
    assert_eq!(at("nozone"), ["2026-03-03T07:00:00Z"], "the default zone");
    assert_eq!(at("badzone"), ["2026-03-03T07:00:00Z"], "the default zone");
}

#[test]
fn quiet_hours_with_a_new_york_default() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = ms("2026-03-02T03:00:00Z"); // 22:00 in New York, 04:00 in Rome
    let mut rt = start(dir.path(), QUIET, t0, chrono_tz::America::New_York);
    contact(&mut rt, "nozone", json!({}));
    contact(&mut rt, "rome", json!({"timezone": "Europe/Rome"}));
    let mut sink = MemorySink::default();
    rt.run_at(
        vec![ev("nozone", "signup", t0), ev("rome", "signup", t0)],
        t0,
        &mut sink,
        &mut Vec::new(),
    )
    .unwrap();
    run_until(&mut rt, &mut sink, t0, t0 + D);
    assert_eq!(sent_times(&sink, "rome", "hello"), ["2026-03-02T07:00:00Z"]);
    assert_eq!(
        sent_times(&sink, "nozone", "hello"),
        ["2026-03-02T13:00:00Z"]
    );
}
