//! Segment membership kept current by the runtime: as events arrive, as time passes (segment
//! checks), on a changed definition; and a property test that the incremental membership
//! always equals a full re-evaluation.

mod support;
use support::store::*;

use journey::compile::{self, ir::Program};
use journey::engine::{Contact, Event, Millis, MESSAGE_SENT};
use journey::lang::{self, diagnostic, Loaded};
use journey::runtime::segments::full_evaluation;
use journey::runtime::{Input, MemorySink, Runtime};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

const M: Millis = 60_000;
const H: Millis = 60 * M;
const D: Millis = 24 * H;

fn ms(s: &str) -> Millis {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_millis()
}

fn compile_src(src: &str) -> Program {
    let mut loaded = Loaded::default();
    lang::add_source(&mut loaded, "test.journey", src.to_string());
    let c = compile::compile(&loaded);
    match c.program {
        Some(p) => p,
        None => panic!(
            "does not compile:\n{}",
            diagnostic::render_human(&loaded.sources, &c.diagnostics, false)
        ),
    }
}

/// Every rule form, in segments that refer to each other, and journeys whose messages the
/// engagement rules target (and one that enrols on join, so that sends happen).
const PROGRAM: &str = r#"
segment viewed_no_buy {
  rule viewed: event "view" at least 1 time in last 3d
  and rule no_buy: no event "buy" in last 2d
}
segment heavy {
  rule v: event "view" at least 3 times in last 5d
}
segment exactly_two {
  rule v: event "view" exactly 2 times in last 4d
  or rule b: event "buy" at most 1 time anytime
  except rule vip: contact.vip == true
}
segment openers {
  rule o: opened message where journey == "camp" in last 2d
  except rule c: clicked journey camp
}
segment recent_email {
  rule vip: contact.vip == true
  or rule l: last opened channel email < 1d ago
}
segment promo_clickers {
  rule c: count clicked label "promo" >= 2 in last 1d
}
segment nested {
  rule n: in segment heavy
  and rule m: event "buy" where amount >= 10 in last 1d
}
segment between_dates {
  rule b: event "view" between 2026-03-02 and 2026-03-04
}
segment quick_openers {
  rule a: opened message where message == "m1" within 1d after delivery
}
segment received_recently {
  rule r: received journey welcome in last 2d
}
segment page_fans {
  rule p: count event "view" where page == "shoes" >= 2 in last 2d
}

journey camp {
  label "promo"
  entry api
  policy none
  send email m1 { subject "Spring" text "Hi {{ link('shop') }}" link shop "https://x.example/shop" }
}

journey welcome {
  entry segment heavy on join
  reentry always
  policy none
  send email hello { subject "Hello" text "Hi" }
}
"#;

const START: &str = "2026-03-01T00:00:00Z";
const CONTACTS: [&str; 4] = ["ann", "bob", "cid", "dan"];

struct Harness {
    rt: Runtime,
    sink: MemorySink,
    now: Millis,
    program: Program,
}

impl Harness {
    fn new(src: &str) -> Harness {
        let program = compile_src(src);
        let now = ms(START);
        let store = temporary_store();
        let mut rt = Runtime::new(store, now, chrono_tz::UTC).unwrap();
        rt.durable = false;
        rt.deploy(program.clone(), now).unwrap();
        for c in CONTACTS {
            rt.upsert_contact(&Contact {
                id: c.into(),
                profile: Map::from_iter([("email".to_string(), json!(format!("{c}@x.example")))]),
            })
            .unwrap();
        }
        let mut h = Harness {
            rt,
            sink: MemorySink::default(),
            now,
            program,
        };
        h.advance_to(now);
        h
    }

    /// Moves the clock to `to`, running everything due on the way, in time order.
    fn advance_to(&mut self, to: Millis) {
        let mut timeline = Vec::new();
        for _ in 0..100_000 {
            match self.rt.next_wake().unwrap() {
                Some(w) if w <= to => {
                    self.now = self.now.max(w);
                    self.rt
                        .tick(self.now, &mut self.sink, &mut timeline)
                        .unwrap();
                }
                _ => {
                    self.now = self.now.max(to);
                    self.rt
                        .tick(self.now, &mut self.sink, &mut timeline)
                        .unwrap();
                    return;
                }
            }
        }
        panic!("wakes did not settle before {to}");
    }

    fn event(&mut self, e: Event) {
        let mut timeline = Vec::new();
        self.rt
            .run_at(
                vec![Input::Event(e)],
                self.now,
                &mut self.sink,
                &mut timeline,
            )
            .unwrap();
    }

    fn set_vip(&mut self, contact: &str, vip: bool) {
        self.rt
            .upsert_contact(&Contact {
                id: contact.into(),
                profile: Map::from_iter([("vip".to_string(), json!(vip))]),
            })
            .unwrap();
        // The check asked for is due at once.
        let now = self.now;
        self.advance_to(now);
    }

    fn stored(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.program
            .segments
            .keys()
            .map(|s| {
                let members = self
                    .rt
                    .store
                    .members(s)
                    .collect::<Result<BTreeSet<_>, _>>()
                    .unwrap();
                (s.clone(), members)
            })
            .collect()
    }

    fn full(&self) -> BTreeMap<String, BTreeSet<String>> {
        full_evaluation(&self.rt.store, &self.program, self.now).unwrap()
    }

    /// Each segment evaluated alone, reading only the history its rules can see.
    fn per_segment(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.program
            .segments
            .keys()
            .map(|s| {
                let m =
                    journey::report::segment_members(&self.rt.store, &self.program, s, self.now)
                        .unwrap();
                (s.clone(), m.into_iter().collect())
            })
            .collect()
    }

    fn members(&self, segment: &str) -> Vec<String> {
        self.stored()[segment].iter().cloned().collect()
    }
}

fn event(contact: &str, kind: &str, at: Millis, props: Value) -> Event {
    Event {
        contact: contact.into(),
        kind: kind.into(),
        at,
        properties: props.as_object().cloned().unwrap_or_default(),
        ..Event::default()
    }
}

fn engagement(contact: &str, kind: &str, journey: &str, message: &str, at: Millis) -> Event {
    Event {
        contact: contact.into(),
        kind: kind.into(),
        at,
        journey: Some(journey.into()),
        message: Some(message.into()),
        link: (kind == "clicked").then(|| "shop".to_string()),
        channel: (kind == MESSAGE_SENT).then_some(journey::domain::Channel::Email),
        ..Event::default()
    }
}

// ------------------------------------------------------------------ deterministic cases

#[test]
fn a_rule_in_last_15d_stops_matching_when_the_event_ages_out() {
    let mut h = Harness::new(
        r#"
segment red_shoes {
  rule viewed: event "viewed_product" where product_name == "Red Shoes" in last 15d
  and rule no_buy: no event "purchase" in last 15d
}
journey j { entry segment red_shoes on join  reentry always  policy none
  send email reminder { subject "x" text "y" } }
"#,
    );
    let t0 = h.now + H;
    h.advance_to(t0);
    h.event(event(
        "ann",
        "viewed_product",
        t0,
        json!({"product_name": "Red Shoes"}),
    ));
    assert_eq!(h.members("red_shoes"), vec!["ann"]);
    // Joining enrolled her at once, and she has a check when the view leaves the window.
    assert_eq!(h.sink.delivered.len(), 1);
    assert_eq!(h.rt.store.segment_check("ann").unwrap(), Some(t0 + 15 * D));
    // One millisecond before: still in. At 15 days: out, with no event at all.
    h.advance_to(t0 + 15 * D - 1);
    assert_eq!(h.members("red_shoes"), vec!["ann"]);
    h.advance_to(t0 + 15 * D);
    assert!(h.members("red_shoes").is_empty());
    assert_eq!(h.rt.store.segment_check("ann").unwrap(), None);
    assert_eq!(h.full()["red_shoes"].len(), 0);
    // Viewing again makes her join again, and enrols her again (reentry always).
    h.advance_to(t0 + 16 * D);
    h.event(event(
        "ann",
        "viewed_product",
        t0 + 16 * D,
        json!({"product_name": "Red Shoes"}),
    ));
    assert_eq!(h.members("red_shoes"), vec!["ann"]);
    assert_eq!(h.sink.delivered.len(), 2);
}

#[test]
fn a_negated_rule_joins_when_the_event_ages_out() {
    // "no purchase in the last 2 days": a contact who bought joins 2 days later, by time alone.
    let mut h = Harness::new(
        r#"
segment lapsed {
  rule customer: event "purchase" anytime
  and rule no_buy: no event "purchase" in last 2d
}
journey winback { entry segment lapsed on join  policy none
  send email come_back { subject "x" text "y" } }
"#,
    );
    let t0 = h.now;
    h.event(event("bob", "purchase", t0, json!({})));
    assert!(h.members("lapsed").is_empty());
    h.advance_to(t0 + 2 * D);
    assert_eq!(h.members("lapsed"), vec!["bob"]);
    assert_eq!(h.sink.delivered.len(), 1);
    assert_eq!(
        h.sink.delivered[0].1,
        t0 + 2 * D,
        "sent the moment he joined"
    );
}

#[test]
fn contacts_without_time_bound_rules_have_no_check() {
    let mut h = Harness::new(
        r#"
segment italians { rule it: contact.country == "IT" }
segment buyers { rule b: event "purchase" at least 2 times anytime }
"#,
    );
    h.event(event("ann", "purchase", h.now, json!({})));
    h.event(event("ann", "purchase", h.now, json!({})));
    assert_eq!(h.members("buyers"), vec!["ann"]);
    for c in CONTACTS {
        assert_eq!(h.rt.store.segment_check(c).unwrap(), None, "{c}");
    }
    // A profile change is seen at the next tick, through a check asked for at once.
    h.rt.upsert_contact(&Contact {
        id: "cid".into(),
        profile: Map::from_iter([("country".to_string(), json!("IT"))]),
    })
    .unwrap();
    let now = h.now;
    h.advance_to(now);
    assert_eq!(h.members("italians"), vec!["cid"]);
    assert_eq!(h.rt.store.segment_check("cid").unwrap(), None);
}

#[test]
fn a_changed_definition_is_evaluated_over_every_contact_an_unchanged_one_is_not() {
    let src = r#"segment big { rule b: contact.size >= 10 }
segment other { rule o: contact.size >= 1 }"#;
    let mut h = Harness::new(src);
    for (c, size) in [("ann", 5), ("bob", 20)] {
        h.rt.upsert_contact(&Contact {
            id: c.into(),
            profile: Map::from_iter([("size".to_string(), json!(size))]),
        })
        .unwrap();
    }
    let now = h.now;
    h.advance_to(now);
    assert_eq!(h.members("big"), vec!["bob"]);

    // The same program again: nothing is evaluated.
    let r = h.rt.deploy(compile_src(src), now).unwrap();
    assert!(r.segments.evaluated.is_empty(), "{r:?}");

    // `big` changes, `other` does not; `gone` is new and its definition is evaluated too.
    let src2 = r#"segment big { rule b: contact.size >= 4 }
segment other { rule o: contact.size >= 1 }
segment gone { rule g: contact.size >= 1 }"#;
    let r = h.rt.deploy(compile_src(src2), now).unwrap();
    assert_eq!(r.segments.evaluated, vec!["big", "gone"]);
    assert_eq!(r.segments.contacts, 4);
    h.program = compile_src(src2);
    assert_eq!(h.members("big"), vec!["ann", "bob"]);
    assert_eq!(h.stored(), h.full());

    // A segment no longer defined loses its members.
    let r = h.rt.deploy(compile_src(src), now).unwrap();
    assert_eq!(r.segments.removed, vec!["gone"]);
    assert_eq!(h.rt.store.members("gone").count(), 0);
}

#[test]
fn a_definition_change_sets_the_baseline_and_enrols_nobody() {
    let src = r#"segment big { rule b: contact.size >= 10 }
journey j { entry segment big on join  policy none  send email m { subject "x" text "y" } }"#;
    let mut h = Harness::new(src);
    h.rt.upsert_contact(&Contact {
        id: "ann".into(),
        profile: Map::from_iter([("size".to_string(), json!(5))]),
    })
    .unwrap();
    let now = h.now;
    h.advance_to(now);
    assert!(h.members("big").is_empty());
    let src2 = src.replace(">= 10", ">= 4");
    h.rt.deploy(compile_src(&src2), now).unwrap();
    h.program = compile_src(&src2);
    assert_eq!(h.members("big"), vec!["ann"]);
    h.advance_to(now + D);
    assert!(
        h.sink.delivered.is_empty(),
        "a new definition is not a join"
    );
}

// ------------------------------------------------------------------ the property

#[derive(Debug, Clone)]
enum Op {
    /// Move the clock forward by minutes.
    Wait(i64),
    /// An event of kind `k` for contact `c`, dated `shift` minutes from now (negative: late).
    Event { c: usize, k: usize, shift: i64 },
    /// Set or clear the contact's `vip` profile field.
    Vip { c: usize, vip: bool },
    /// Compare the stored membership with a full evaluation now.
    Check,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1i64..3 * 24 * 60).prop_map(Op::Wait),
        6 => (0..CONTACTS.len(), 0..9usize, prop_oneof![
            8 => Just(0i64),
            2 => -4 * 24 * 60..0i64,
            1 => 1..24 * 60i64,
        ])
            .prop_map(|(c, k, shift)| Op::Event { c, k, shift }),
        1 => (0..CONTACTS.len(), any::<bool>()).prop_map(|(c, vip)| Op::Vip { c, vip }),
        2 => Just(Op::Check),
    ]
}

fn random_event(contact: &str, k: usize, at: Millis) -> Event {
    match k {
        0 | 1 => event(contact, "view", at, json!({"page": "shoes"})),
        2 => event(contact, "view", at, json!({"page": "bags"})),
        3 => event(contact, "buy", at, json!({"amount": 20})),
        4 => event(contact, "buy", at, json!({"amount": 5})),
        5 => engagement(contact, MESSAGE_SENT, "camp", "m1", at),
        6 => engagement(contact, "opened", "camp", "m1", at),
        7 => engagement(contact, "clicked", "camp", "m1", at),
        _ => engagement(contact, "opened", "welcome", "hello", at),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn incremental_membership_equals_a_full_evaluation(ops in prop::collection::vec(op(), 1..60)) {
        let mut h = Harness::new(PROGRAM);
        for op in ops {
            match op {
                Op::Wait(min) => {
                    let to = h.now + min * M;
                    h.advance_to(to);
                }
                Op::Event { c, k, shift } => {
                    let at = h.now + shift * M;
                    h.event(random_event(CONTACTS[c], k, at));
                }
                Op::Vip { c, vip } => h.set_vip(CONTACTS[c], vip),
                Op::Check => {
                    prop_assert_eq!(h.stored(), h.full(), "at {}", h.now);
                    prop_assert_eq!(h.stored(), h.per_segment(), "alone, at {}", h.now);
                }
            }
        }
        prop_assert_eq!(h.stored(), h.full(), "at the end, {}", h.now);
        prop_assert_eq!(h.stored(), h.per_segment(), "alone, at the end, {}", h.now);
        // Everything ages out on its own, through segment checks only.
        let later = h.now + 10 * D;
        h.advance_to(later);
        prop_assert_eq!(h.stored(), h.full(), "ten days later, {}", h.now);
    }
}

#[test]
fn a_full_evaluation_reads_only_the_history_the_rules_can_see() {
    use journey::engine::cond::segment_lookback;
    let p = compile_src(PROGRAM);
    let w = |s: &str| segment_lookback(&p, &p.segments[s]);
    assert_eq!(w("viewed_no_buy"), Some(3 * D));
    assert_eq!(w("heavy"), Some(5 * D));
    assert_eq!(w("exactly_two"), None, "at most 1 time anytime");
    assert_eq!(w("openers"), None, "clicked journey camp, anytime");
    assert_eq!(w("recent_email"), None, "last … ago");
    assert_eq!(w("promo_clickers"), Some(D));
    assert_eq!(w("nested"), Some(5 * D), "through in segment heavy");
    assert_eq!(w("between_dates"), None);
    assert_eq!(w("quick_openers"), None);
    assert_eq!(w("page_fans"), Some(2 * D));
}
