//! Pausing a journey (runtime level, virtual time): no new entries; its contacts hold where
//! they are — due timers wait and events are not acted on — across a restart; `resume`
//! offers each the events that arrived meanwhile, then fires the held timers.

mod support;
use support::store::*;

use journey::compile::{self, ir::Program};
use journey::engine::Event;
use journey::lang;
use journey::runtime::{Input, MemorySink, Runtime};

const T0: i64 = 1_772_355_600_000; // 2026-03-01T09:00:00Z
const HOUR: i64 = 3_600_000;

const SRC: &str = r#"journey drip {
  entry event "signup"
  policy none
  send email hello {
    subject "Hello"
    text "Hi"
  }
  wait 1h
  send email later {
    subject "Later"
    text "Still there?"
  }
  wait for event "reply" within 1d {
    yes {
      send email thanks {
        subject "Thanks"
        text "Thanks for replying"
      }
    }
    no { end }
  }
}"#;

fn program() -> Program {
    let mut loaded = lang::Loaded::default();
    lang::add_source(&mut loaded, "p.journey", SRC.to_string());
    compile::compile(&loaded).program.expect("compiles")
}

fn event(contact: &str, kind: &str, at: i64) -> Input {
    Input::Event(Event {
        contact: contact.into(),
        kind: kind.into(),
        at,
        ..Event::default()
    })
}

fn sent(sink: &MemorySink, contact: &str) -> Vec<String> {
    sink.delivered
        .iter()
        .filter(|(j, _)| j.contact == contact)
        .map(|(j, _)| j.message.clone())
        .collect()
}

#[test]
fn a_paused_journey_holds_its_contacts_and_resume_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = MemorySink::default();
    let mut tl = Vec::new();
    let mut rt = Runtime::new(open_at(dir.path()), T0, chrono_tz::UTC).unwrap();
    rt.deploy(program(), T0).unwrap();
    rt.run_at(vec![event("ann", "signup", T0)], T0, &mut sink, &mut tl)
        .unwrap();
    assert_eq!(sent(&sink, "ann"), ["hello"]);

    rt.pause("drip").unwrap();
    // No new entries while paused.
    rt.run_at(
        vec![event("bob", "signup", T0 + 1)],
        T0 + 1,
        &mut sink,
        &mut tl,
    )
    .unwrap();
    assert!(rt.store.instances_of("bob").unwrap().is_empty());
    // ann's 1h wait comes due: she holds.
    rt.tick(T0 + 2 * HOUR, &mut sink, &mut tl).unwrap();
    assert_eq!(sent(&sink, "ann"), ["hello"]);
    assert_eq!(
        rt.store.instances_of("ann").unwrap()[0].path,
        ["hello", "wait_1h"]
    );

    // A restart while paused: still paused, the timer is still on disk and still held.
    drop(rt);
    let mut rt = Runtime::new(open_at(dir.path()), T0 + 3 * HOUR, chrono_tz::UTC).unwrap();
    rt.deploy(program(), T0 + 3 * HOUR).unwrap();
    assert!(rt.paused().contains("drip"));
    rt.tick(T0 + 3 * HOUR, &mut sink, &mut tl).unwrap();
    assert_eq!(sent(&sink, "ann"), ["hello"]);
    assert_eq!(rt.store.timer_count().unwrap(), 1);

    // Resume: the held timer fires, and `later` goes.
    assert_eq!(
        rt.resume("drip", T0 + 4 * HOUR, &mut sink, &mut tl)
            .unwrap(),
        1
    );
    assert_eq!(sent(&sink, "ann"), ["hello", "later"]);
    assert!(rt.paused().is_empty());

    // Paused again while she waits for a reply; she replies during the pause.
    rt.pause("drip").unwrap();
    rt.run_at(
        vec![event("ann", "reply", T0 + 5 * HOUR)],
        T0 + 5 * HOUR,
        &mut sink,
        &mut tl,
    )
    .unwrap();
    assert_eq!(sent(&sink, "ann"), ["hello", "later"], "held while paused");
    // The wait's deadline passes during the pause: its timer is held, not fired.
    rt.tick(T0 + 30 * HOUR, &mut sink, &mut tl).unwrap();
    assert!(rt.store.instances_of("ann").unwrap()[0].is_active());
    // Resumed after the wait's deadline: the reply made during the pause still answers it.
    rt.resume("drip", T0 + 2 * 24 * HOUR, &mut sink, &mut tl)
        .unwrap();
    rt.tick(T0 + 2 * 24 * HOUR, &mut sink, &mut tl).unwrap();
    assert_eq!(sent(&sink, "ann"), ["hello", "later", "thanks"]);
    let inst = &rt.store.instances_of("ann").unwrap()[0];
    assert!(!inst.is_active());
    assert_eq!(rt.store.timer_count().unwrap(), 0, "no timer left behind");
    // New entries again.
    rt.run_at(
        vec![event("cid", "signup", T0 + 2 * 24 * HOUR)],
        T0 + 2 * 24 * HOUR,
        &mut sink,
        &mut tl,
    )
    .unwrap();
    assert_eq!(sent(&sink, "cid"), ["hello"]);
}
