//! Versions: a changed journey is a new version for new entries; contacts in flight finish
//! on the version they entered, unless the journey says `migrate by name`; a migration that
//! would strand waiting contacts is refused, and the running version keeps running.

mod support;
use support::store::*;

use journey::compile::{self, ir::Program};
use journey::engine::Event;
use journey::lang;
use journey::runtime::{Input, MemorySink, Runtime, RuntimeError};

const T0: i64 = 1_772_355_600_000; // 2026-03-01T09:00:00Z
const HOUR: i64 = 3_600_000;

fn program(src: &str) -> Program {
    let mut loaded = lang::Loaded::default();
    lang::add_source(&mut loaded, "v.journey", src.to_string());
    let c = compile::compile(&loaded);
    c.program.unwrap_or_else(|| {
        panic!(
            "{}",
            lang::diagnostic::render_human(&loaded.sources, &c.diagnostics, false)
        )
    })
}

fn journey(migrate: bool, middle: &str) -> String {
    format!(
        r#"journey onboarding {{
  entry event "signup"
  {}
  send email hello {{
    subject "Hello"
    text "Hi"
  }}
  {middle}
  send email later {{
    subject "Later"
    text "Still there?"
  }}
}}"#,
        if migrate { "migrate by name" } else { "" }
    )
}

fn signup(contact: &str, at: i64) -> Input {
    Input::Event(Event {
        contact: contact.into(),
        kind: "signup".into(),
        at,
        ..Event::default()
    })
}

fn start(src: &str) -> (Runtime, MemorySink) {
    let mut rt = Runtime::new(temporary_store(), T0, chrono_tz::UTC).unwrap();
    rt.durable = false;
    rt.deploy(program(src), T0).unwrap();
    (rt, MemorySink::default())
}

fn run_until(rt: &mut Runtime, sink: &mut MemorySink, until: i64) {
    let mut tl = Vec::new();
    while let Some(t) = rt.next_wake().unwrap() {
        if t > until {
            break;
        }
        rt.tick(t, sink, &mut tl).unwrap();
    }
}

#[test]
fn in_flight_contacts_finish_on_their_version() {
    let (mut rt, mut sink) = start(&journey(false, "wait 2h"));
    let mut tl = Vec::new();
    rt.run_at(vec![signup("ann", T0)], T0, &mut sink, &mut tl)
        .unwrap();
    let v1 = rt.store.instances_of("ann").unwrap()[0].version.clone();

    // v2 waits 10h instead of 2h.
    let report = rt
        .deploy(program(&journey(false, "wait 10h")), T0 + HOUR)
        .unwrap();
    assert_eq!(report.changed.len(), 1);
    assert_eq!(report.migrated, 0);
    rt.run_at(
        vec![signup("bob", T0 + HOUR)],
        T0 + HOUR,
        &mut sink,
        &mut tl,
    )
    .unwrap();
    let bob = &rt.store.instances_of("bob").unwrap()[0];
    assert_ne!(bob.version, v1, "new entries use the new version");

    run_until(&mut rt, &mut sink, T0 + 24 * HOUR);
    let later: Vec<(String, i64)> = sink
        .delivered
        .iter()
        .filter(|(j, _)| j.message == "later")
        .map(|(j, at)| (j.contact.clone(), *at))
        .collect();
    assert!(
        later.contains(&("ann".into(), T0 + 2 * HOUR)),
        "ann finishes on v1 (2h): {later:?}"
    );
    assert!(
        later.contains(&("bob".into(), T0 + 11 * HOUR)),
        "bob runs v2 (10h): {later:?}"
    );
}

#[test]
fn formatting_only_change_keeps_the_version() {
    let (mut rt, _) = start(&journey(false, "wait 2h"));
    let reformatted = journey(false, "wait 2h").replace("\n  ", "\n      ");
    let report = rt.deploy(program(&reformatted), T0).unwrap();
    assert!(report.changed.is_empty(), "same IR, same version");
}

#[test]
fn migrate_by_name_moves_waiting_contacts() {
    let (mut rt, mut sink) = start(&journey(true, "pause: wait 2h"));
    let mut tl = Vec::new();
    rt.run_at(vec![signup("ann", T0)], T0, &mut sink, &mut tl)
        .unwrap();
    // v2 adds a step before the wait; the wait keeps its name (its label).
    let v2 = journey(true, "send sms nudge {\n text \"hey\"\n }\n pause: wait 2h");
    let report = rt.deploy(program(&v2), T0 + HOUR).unwrap();
    assert_eq!(report.migrated, 1);
    let ann = &rt.store.instances_of("ann").unwrap()[0];
    assert_eq!(
        rt.program().journeys["onboarding"]
            .step(ann.step.unwrap())
            .name,
        "pause"
    );
    assert_eq!(ann.version, report.changed[0].to);
    // The migrated contact goes on in v2 from its step: `later` at its timer, no `nudge`.
    run_until(&mut rt, &mut sink, T0 + 5 * HOUR);
    let msgs: Vec<&str> = sink
        .delivered
        .iter()
        .map(|(j, _)| j.message.as_str())
        .collect();
    assert_eq!(msgs, ["hello", "later"]);
}

#[test]
fn migration_that_strands_contacts_is_refused() {
    let (mut rt, mut sink) = start(&journey(true, "pause: wait 2h"));
    let mut tl = Vec::new();
    rt.run_at(vec![signup("ann", T0)], T0, &mut sink, &mut tl)
        .unwrap();
    let err = rt
        .deploy(program(&journey(true, "wait 3h")), T0 + HOUR)
        .unwrap_err();
    match &err {
        RuntimeError::MigrationGap { journey, steps } => {
            assert_eq!(journey, "onboarding");
            assert_eq!(steps, &vec!["pause".to_string()]);
        }
        other => panic!("expected a migration gap, got {other}"),
    }
    assert!(err.to_string().contains("pause"));
    // The running version keeps running.
    run_until(&mut rt, &mut sink, T0 + 5 * HOUR);
    assert!(sink
        .delivered
        .iter()
        .any(|(j, at)| j.message == "later" && *at == T0 + 2 * HOUR));
}
