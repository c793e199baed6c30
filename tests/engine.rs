//! The step function through the public API: journeys compiled from source text, driven by a
//! small in-memory harness that plays the runtime's part (history, timers, deliveries)
//! without a store, so each test states one rule of the language reference (docs/language.md).

use journey::compile::{self, ir::Program};
use journey::engine::step::{self, Input, World};
use journey::engine::{
    Contact, Effect, EndReason, Event, Happening, Instance, Millis, Parked, MESSAGE_CAPPED,
    MESSAGE_SENT,
};
use journey::lang::{self, diagnostic, Loaded};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

const S: Millis = 1000;
const M: Millis = 60 * S;
const H: Millis = 60 * M;
const D: Millis = 24 * H;

fn ms(s: &str) -> Millis {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
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

/// A delivery the harness made: contact, journey, message, time.
#[derive(Debug, Clone, PartialEq)]
struct Delivery {
    contact: String,
    journey: String,
    message: String,
    at: Millis,
}

/// Plays the runtime: per-contact history, instances, timers fired in due order, every send
/// delivered at once (its `message.sent` fed back as an event, as the runtime does).
struct Sim {
    program: Arc<Program>,
    now: Millis,
    zone: chrono_tz::Tz,
    contacts: BTreeMap<String, Contact>,
    events: BTreeMap<String, Vec<Event>>,
    instances: Vec<Instance>,
    /// Indexes into `instances`, per contact.
    by_contact: BTreeMap<String, Vec<usize>>,
    next_id: u64,
    delivered: Vec<Delivery>,
    timeline: Vec<Happening>,
    set_fields: Vec<(String, String, Value)>,
    /// Deliveries to these message names fail (recorded as `message.failed`).
    failing: Vec<String>,
}

impl Sim {
    fn new(src: &str, now: &str) -> Sim {
        Sim {
            program: Arc::new(compile_src(src)),
            now: ms(now),
            zone: chrono_tz::UTC,
            contacts: BTreeMap::new(),
            events: BTreeMap::new(),
            instances: Vec::new(),
            by_contact: BTreeMap::new(),
            next_id: 1,
            delivered: Vec::new(),
            timeline: Vec::new(),
            set_fields: Vec::new(),
            failing: Vec::new(),
        }
    }

    fn contact(&mut self, id: &str, profile: Value) -> &mut Self {
        let profile: Map<String, Value> = match profile {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        self.contacts.insert(
            id.into(),
            Contact {
                id: id.into(),
                profile,
            },
        );
        self.events.entry(id.into()).or_default();
        self
    }

    /// The ways branching steps went, in order, as the timeline tells them.
    fn branches(&self) -> Vec<(String, String)> {
        self.timeline
            .iter()
            .filter_map(|h| match h {
                Happening::Branched { step, to } => Some((step.clone(), to.clone())),
                _ => None,
            })
            .collect()
    }

    fn profile(&self, id: &str, field: &str) -> Option<&Value> {
        self.contacts[id].profile.get(field)
    }

    /// Puts an event in the history without running anything (history before the start).
    fn history(&mut self, e: Event) {
        let list = self.events.entry(e.contact.clone()).or_default();
        let pos = list.partition_point(|x| x.at <= e.at);
        list.insert(pos, e);
    }

    fn insts(&self, contact: &str) -> Vec<&Instance> {
        self.by_contact
            .get(contact)
            .map(|v| v.iter().map(|n| &self.instances[*n]).collect())
            .unwrap_or_default()
    }

    fn only(&self, contact: &str) -> &Instance {
        let v = self.insts(contact);
        assert_eq!(v.len(), 1, "instances of {contact}: {v:#?}");
        v[0]
    }

    fn step_name(&self, contact: &str) -> Option<String> {
        let i = self.only(contact);
        let j = &self.program.journeys[&i.journey];
        i.step.map(|s| j.step(s).name.clone())
    }

    fn sent(&self, contact: &str) -> Vec<String> {
        self.delivered
            .iter()
            .filter(|d| d.contact == contact)
            .map(|d| d.message.clone())
            .collect()
    }

    fn sent_at(&self, contact: &str, message: &str) -> Option<Millis> {
        self.delivered
            .iter()
            .find(|d| d.contact == contact && d.message == message)
            .map(|d| d.at)
    }

    fn count_events(&self, contact: &str, kind: &str) -> usize {
        self.events[contact]
            .iter()
            .filter(|e| e.kind == kind)
            .count()
    }

    fn step(&mut self, idx: usize, input: Input) -> Vec<Effect> {
        let program = self.program.clone();
        let contact_id = self.instances[idx].contact.clone();
        let j = &program.journeys[&self.instances[idx].journey];
        let mut w = World {
            program: &program,
            contact: self.contacts[&contact_id].clone(),
            events: self.events[&contact_id].clone(),
            now: self.now,
            default_zone: self.zone,
            decisions: Default::default(),
        };
        let fx = step::advance(j, &mut self.instances[idx], input, &mut w);
        self.contacts.insert(contact_id, w.contact);
        self.apply(fx.clone());
        fx
    }

    fn apply(&mut self, fx: Vec<Effect>) {
        let mut sends = Vec::new();
        for f in fx {
            match f {
                Effect::Send(job) => sends.push(job),
                Effect::Capped(e) | Effect::Suppressed(e) | Effect::Record(e) => self.history(e),
                Effect::SetField { field, value } => {
                    self.set_fields.push((String::new(), field, value));
                }
                Effect::Timeline(t) => self.timeline.push(t.happening),
            }
        }
        // The runtime delivers after the batch and feeds the delivery back as an event.
        for job in sends {
            let failed = self.failing.contains(&job.message);
            let e = Event {
                contact: job.contact.clone(),
                kind: if failed {
                    "message.failed".into()
                } else {
                    MESSAGE_SENT.into()
                },
                at: self.now,
                journey: Some(job.journey.clone()),
                message: Some(job.message.clone()),
                channel: Some(job.channel),
                message_id: Some(job.message_id.clone()),
                ..Event::default()
            };
            if !failed {
                self.delivered.push(Delivery {
                    contact: job.contact.clone(),
                    journey: job.journey.clone(),
                    message: job.message.clone(),
                    at: self.now,
                });
            }
            self.history(e.clone());
            self.feed(&e);
        }
    }

    /// Wakes the contact's active instances with an event already in the history.
    fn feed(&mut self, e: &Event) {
        let idxs = self.by_contact.get(&e.contact).cloned().unwrap_or_default();
        for idx in idxs {
            if self.instances[idx].is_active() {
                self.step(idx, Input::Event(e));
            }
        }
    }

    /// An event now: history, waiting instances, then entries.
    fn event(&mut self, mut e: Event) {
        e.at = self.now;
        self.history(e.clone());
        self.feed(&e);
        let program = self.program.clone();
        for j in program.journeys.values() {
            let view = journey::engine::cond::ContactView {
                contact: &self.contacts[&e.contact],
                events: &self.events[&e.contact],
                program: &program,
                now: self.now,
            };
            if step::entry_event_matches(j, &e, &view) {
                self.enroll(&j.name, &e.contact, Some(e.clone()));
            }
        }
    }

    /// Enrols a contact if re-entry allows it; returns whether it did.
    fn enroll(&mut self, journey: &str, contact: &str, entry_event: Option<Event>) -> bool {
        let program = self.program.clone();
        let j = &program.journeys[journey];
        let earlier: Vec<&Instance> = self
            .insts(contact)
            .into_iter()
            .filter(|i| i.journey == journey)
            .collect();
        if !step::reentry_allows(j, &earlier, self.now, entry_event.is_some()) {
            return false;
        }
        self.instances.push(Instance {
            id: self.next_id,
            journey: journey.into(),
            version: j.content_hash(),
            contact: contact.into(),
            step: None,
            parked: None,
            ended: None,
            entered_at: self.now,
            step_since: self.now,
            due: None,
            entry_event,
            path: Vec::new(),
            sent: Vec::new(),
        });
        self.next_id += 1;
        let idx = self.instances.len() - 1;
        self.by_contact.entry(contact.into()).or_default().push(idx);
        self.step(idx, Input::Enter);
        true
    }

    /// Fires every timer due up to `t`, in due order, then sets the clock to `t`.
    fn run_until(&mut self, t: Millis) {
        loop {
            let next = self
                .instances
                .iter()
                .enumerate()
                .filter(|(_, i)| i.is_active())
                .filter_map(|(n, i)| i.due.map(|d| (d, n)))
                .filter(|(d, _)| *d <= t)
                .min();
            let Some((due, idx)) = next else { break };
            assert!(due >= self.now, "a timer in the past: {due} < {}", self.now);
            self.now = due;
            self.step(idx, Input::Timer(due));
        }
        self.now = self.now.max(t);
    }

    fn advance(&mut self, by: Millis) {
        self.run_until(self.now + by);
    }
}

fn ev(contact: &str, kind: &str, props: Value) -> Event {
    Event {
        contact: contact.into(),
        kind: kind.into(),
        properties: match props {
            Value::Object(m) => m,
            _ => Map::new(),
        },
        ..Event::default()
    }
}

fn engagement(
    contact: &str,
    verb: &str,
    journey: &str,
    message: &str,
    link: Option<&str>,
) -> Event {
    Event {
        contact: contact.into(),
        kind: verb.into(),
        journey: Some(journey.into()),
        message: Some(message.into()),
        link: link.map(String::from),
        ..Event::default()
    }
}

fn sent_history(contact: &str, journey: &str, message: &str, channel: &str, at: Millis) -> Event {
    Event {
        contact: contact.into(),
        kind: MESSAGE_SENT.into(),
        at,
        journey: Some(journey.into()),
        message: Some(message.into()),
        channel: Some(serde_json::from_value(json!(channel)).unwrap()),
        message_id: Some(format!("h:{journey}:{message}:{at}")),
        ..Event::default()
    }
}

// ------------------------------------------------------------------ entry and re-entry

const ENTRY: &str = r#"
journey signup {
  entry event "signup" where plan == "pro" and context == "web"
  reentry REENTRY
  send email hello { subject "Hi" text "hello" }
  wait 1d
}
"#;

fn entry_sim(reentry: &str) -> Sim {
    let mut sim = Sim::new(&ENTRY.replace("REENTRY", reentry), "2026-03-02T09:00:00Z");
    sim.contact("ann", json!({}));
    sim
}

fn signup() -> Event {
    Event {
        context: Some("web".into()),
        ..ev("ann", "signup", json!({"plan": "pro"}))
    }
}

#[test]
fn entry_where_filters_events() {
    let mut sim = entry_sim("never");
    sim.event(ev("ann", "signup", json!({"plan": "free"})));
    sim.event(ev("ann", "other", json!({"plan": "pro"})));
    // The right properties but not from the web: `context` is the event's context.
    sim.event(ev("ann", "signup", json!({"plan": "pro"})));
    assert!(sim.insts("ann").is_empty());
    sim.event(signup());
    let i = sim.only("ann");
    assert_eq!(i.path, ["hello", "wait_1d"]);
    assert_eq!(
        i.entry_event.as_ref().unwrap().properties["plan"],
        json!("pro")
    );
    assert_eq!(sim.sent("ann"), ["hello"]);
}

#[test]
fn reentry_never_enters_once() {
    let mut sim = entry_sim("never");
    sim.event(signup());
    sim.advance(2 * D);
    assert_eq!(sim.only("ann").ended, Some(EndReason::Completed));
    sim.event(signup());
    sim.advance(100 * D);
    sim.event(signup());
    assert_eq!(sim.insts("ann").len(), 1);
    assert_eq!(sim.sent("ann"), ["hello"]);
}

#[test]
fn reentry_always_runs_an_instance_per_entering_event_side_by_side() {
    let mut sim = entry_sim("always");
    sim.event(signup());
    // Still waiting: the second signup starts an instance of its own beside the first.
    sim.advance(12 * H);
    sim.event(signup());
    assert_eq!(sim.insts("ann").len(), 2);
    assert_eq!(sim.insts("ann").iter().filter(|i| i.is_active()).count(), 2);
    sim.advance(12 * H);
    assert!(!sim.insts("ann")[0].is_active());
    assert!(sim.insts("ann")[1].is_active());
    sim.event(signup());
    assert_eq!(sim.insts("ann").len(), 3);
    assert_eq!(sim.sent("ann"), ["hello", "hello", "hello"]);
}

#[test]
fn reentry_always_by_api_or_segment_waits_for_the_instance_to_end() {
    let p = compile_src(&ENTRY.replace("REENTRY", "always"));
    let j = &p.journeys["signup"];
    let mut a = Instance {
        id: 1,
        journey: "signup".into(),
        version: "v".into(),
        contact: "ann".into(),
        step: Some(0),
        parked: None,
        ended: None,
        entered_at: 0,
        step_since: 0,
        due: None,
        entry_event: None,
        path: vec![],
        sent: vec![],
    };
    assert!(step::reentry_allows(j, &[&a], H, true));
    assert!(!step::reentry_allows(j, &[&a], H, false));
    a.ended = Some(EndReason::Completed);
    assert!(step::reentry_allows(j, &[&a], H, false));
}

#[test]
fn reentry_after_counts_from_the_last_entry() {
    let mut sim = entry_sim("after 30d");
    let t0 = sim.now;
    sim.event(signup());
    sim.run_until(t0 + 30 * D - 1);
    sim.event(signup());
    assert_eq!(sim.insts("ann").len(), 1, "29.99 days after entering");
    sim.run_until(t0 + 30 * D);
    sim.event(signup());
    assert_eq!(sim.insts("ann").len(), 2, "30 days after entering");
    // and the 30 days start again from the second entry
    sim.run_until(t0 + 45 * D);
    sim.event(signup());
    assert_eq!(sim.insts("ann").len(), 2);
}

#[test]
fn reentry_rules_directly() {
    let p = compile_src(&ENTRY.replace("REENTRY", "after 1h"));
    let j = &p.journeys["signup"];
    let mut a = Instance {
        id: 1,
        journey: "signup".into(),
        version: "v".into(),
        contact: "ann".into(),
        step: None,
        parked: None,
        ended: None,
        entered_at: 0,
        step_since: 0,
        due: None,
        entry_event: None,
        path: vec![],
        sent: vec![],
    };
    assert!(step::reentry_allows(j, &[], 0, true));
    // Active: never a second one, however long ago it entered.
    assert!(!step::reentry_allows(j, &[&a], 10 * H, true));
    a.ended = Some(EndReason::Completed);
    assert!(!step::reentry_allows(j, &[&a], H - 1, true));
    assert!(step::reentry_allows(j, &[&a], H, true));
}

// ------------------------------------------------------------------ goal and exit

const GOAL: &str = r#"
journey welcome {
  entry event "signup"
  goal event "profile_completed"
  exit event "unsubscribed"
  quiet 21:00..08:00
  send email welcome { subject "Welcome" text "hi" }
  wait 3d
  send email later { subject "Later" text "hi" }
}
"#;

#[test]
fn goal_ends_converted_even_while_a_send_is_held() {
    // 23:00 in Rome: the welcome email is held by quiet hours until 08:00.
    let mut sim = Sim::new(GOAL, "2026-03-02T22:00:00Z");
    sim.contact("ann", json!({"timezone": "Europe/Rome"}));
    sim.event(ev("ann", "signup", json!({})));
    let i = sim.only("ann");
    assert_eq!(i.parked, Some(Parked::Held));
    assert_eq!(i.due, Some(ms("2026-03-03T07:00:00Z")));
    sim.advance(H);
    sim.event(ev("ann", "profile_completed", json!({})));
    let i = sim.only("ann");
    assert_eq!(i.ended, Some(EndReason::Converted));
    assert_eq!((i.step, i.parked, i.due), (None, None, None));
    sim.advance(10 * D);
    assert!(
        sim.sent("ann").is_empty(),
        "a converted contact gets nothing"
    );
}

#[test]
fn exit_leaves_at_once_not_converted() {
    let mut sim = Sim::new(GOAL, "2026-03-02T10:00:00Z");
    sim.contact("ann", json!({"timezone": "Europe/Rome"}));
    sim.event(ev("ann", "signup", json!({})));
    sim.advance(D);
    // An unrelated event does nothing.
    sim.event(ev("ann", "viewed", json!({})));
    assert_eq!(sim.step_name("ann").as_deref(), Some("wait_3d"));
    sim.event(ev("ann", "unsubscribed", json!({})));
    assert_eq!(sim.only("ann").ended, Some(EndReason::Exited));
    sim.advance(10 * D);
    assert_eq!(sim.sent("ann"), ["welcome"]);
}

// ------------------------------------------------------------------ check … within

const CHECK: &str = r#"
journey welcome {
  entry event "signup"
  reentry always
  send email welcome {
    subject "Welcome"
    text "hi"
    link profile "https://example.com/profile"
    link shop "https://example.com/shop"
  }
  DELAY
  check clicked welcome.profile within 3d {
    yes { send email promo { subject "Promo" text "code" } }
    no { end }
  }
  set contact.after_check = true
}
"#;

fn check_sim(delay: &str) -> Sim {
    let mut sim = Sim::new(&CHECK.replace("DELAY", delay), "2026-03-02T09:00:00Z");
    sim.contact("ann", json!({}));
    sim.event(ev("ann", "signup", json!({})));
    sim
}

#[test]
fn check_is_woken_at_once_by_the_click() {
    let mut sim = check_sim("");
    let t0 = sim.now;
    assert_eq!(
        sim.step_name("ann").as_deref(),
        Some("check_clicked_welcome_profile")
    );
    assert_eq!(sim.only("ann").due, Some(t0 + 3 * D));
    sim.run_until(t0 + H);
    sim.event(engagement(
        "ann",
        "clicked",
        "welcome",
        "welcome",
        Some("profile"),
    ));
    assert_eq!(sim.sent("ann"), ["welcome", "promo"]);
    assert_eq!(sim.sent_at("ann", "promo"), Some(t0 + H));
    let i = sim.only("ann");
    assert_eq!(i.ended, Some(EndReason::Completed));
    assert_eq!(
        i.path,
        [
            "welcome",
            "check_clicked_welcome_profile",
            "promo",
            "set_after_check"
        ]
    );
    assert_eq!(sim.profile("ann", "after_check"), Some(&json!(true)));
    assert_eq!(
        sim.branches(),
        [(
            "check_clicked_welcome_profile".to_string(),
            "yes".to_string()
        )]
    );
}

#[test]
fn check_goes_no_exactly_at_the_deadline() {
    let mut sim = check_sim("");
    let t0 = sim.now;
    sim.run_until(t0 + 3 * D - 1);
    assert!(sim.only("ann").is_active());
    sim.run_until(t0 + 3 * D);
    let i = sim.only("ann");
    assert_eq!(i.ended, Some(EndReason::Completed));
    assert_eq!(i.path, ["welcome", "check_clicked_welcome_profile"]);
    assert_eq!(sim.sent("ann"), ["welcome"]);
    assert_eq!(
        sim.branches(),
        [(
            "check_clicked_welcome_profile".to_string(),
            "no".to_string()
        )]
    );
    // A click after the deadline changes nothing.
    sim.advance(H);
    sim.event(engagement(
        "ann",
        "clicked",
        "welcome",
        "welcome",
        Some("profile"),
    ));
    assert_eq!(sim.sent("ann"), ["welcome"]);
}

#[test]
fn check_counts_engagement_recorded_before_the_step() {
    // The click comes during the wait before the check: the check says yes on arrival.
    let mut sim = check_sim("wait 1h");
    let t0 = sim.now;
    sim.run_until(t0 + 30 * M);
    sim.event(engagement(
        "ann",
        "clicked",
        "welcome",
        "welcome",
        Some("profile"),
    ));
    assert_eq!(sim.step_name("ann").as_deref(), Some("wait_1h"));
    sim.run_until(t0 + H);
    assert_eq!(sim.sent("ann"), ["welcome", "promo"]);
    assert_eq!(sim.sent_at("ann", "promo"), Some(t0 + H));
    assert_eq!(
        sim.branches(),
        [(
            "check_clicked_welcome_profile".to_string(),
            "yes".to_string()
        )]
    );
}

#[test]
fn check_ignores_another_link_and_earlier_sends() {
    let mut sim = check_sim("");
    let t0 = sim.now;
    sim.run_until(t0 + H);
    sim.event(engagement(
        "ann",
        "clicked",
        "welcome",
        "welcome",
        Some("shop"),
    ));
    // An open is not a click; a click on another journey's message of the same name neither.
    sim.event(engagement("ann", "opened", "welcome", "welcome", None));
    sim.event(engagement(
        "ann",
        "clicked",
        "other",
        "welcome",
        Some("profile"),
    ));
    assert!(sim.only("ann").is_active());
    assert_eq!(sim.only("ann").parked, Some(Parked::Waiting));
    sim.run_until(t0 + 3 * D);
    assert_eq!(sim.sent("ann"), ["welcome"]);
    assert_eq!(sim.only("ann").ended, Some(EndReason::Completed));

    // Second entry (reentry always): the click of the first round does not count again.
    sim.advance(D);
    sim.event(ev("ann", "signup", json!({})));
    sim.history(Event {
        at: t0 + 2 * H,
        ..engagement("ann", "clicked", "welcome", "welcome", Some("profile"))
    });
    let t1 = sim.now;
    sim.run_until(t1 + 3 * D);
    assert_eq!(sim.sent("ann"), ["welcome", "welcome"]);
}

const CHECK_RECEIVED: &str = r#"
journey reminder {
  entry event "go"
  send email note { subject "Note" text "x" }
  check received note within 1h {
    yes { set contact.reminded = "email" }
    no { send sms fallback { text "x" } }
  }
}
"#;

#[test]
fn check_received_waits_for_the_delivery() {
    let mut sim = Sim::new(CHECK_RECEIVED, "2026-03-02T09:00:00Z");
    sim.contact("ann", json!({"phone": "+39"}));
    sim.contact("bob", json!({"phone": "+39"}));
    sim.event(ev("ann", "go", json!({})));
    assert_eq!(sim.profile("ann", "reminded"), Some(&json!("email")));
    assert_eq!(sim.only("ann").ended, Some(EndReason::Completed));
    // bob's email cannot be delivered: the SMS carries the message after the hour.
    sim.failing.push("note".into());
    sim.event(ev("bob", "go", json!({})));
    assert!(sim.only("bob").is_active());
    sim.advance(H);
    assert_eq!(sim.sent("bob"), ["fallback"]);
    assert_eq!(sim.profile("bob", "reminded"), None);
}

// ------------------------------------------------------------------ wait for event

const WAIT_EVENT: &str = r#"
journey shoes {
  entry event "viewed"
  wait for event "purchase" where product == "shoes" and amount >= 10 within 7d {
    yes { set contact.bought = true }
    no { not_bought: set contact.bought = false }
  }
}
"#;

#[test]
fn wait_for_event_yes_and_no() {
    let mut sim = Sim::new(WAIT_EVENT, "2026-03-02T09:00:00Z");
    sim.contact("ann", json!({})).contact("bob", json!({}));
    let t0 = sim.now;
    sim.event(ev("ann", "viewed", json!({"product": "shoes"})));
    sim.event(ev("bob", "viewed", json!({"product": "shoes"})));
    sim.run_until(t0 + D);
    // Not what the step waits for: another product, too cheap, another type.
    sim.event(ev(
        "ann",
        "purchase",
        json!({"product": "bag", "amount": 50}),
    ));
    sim.event(ev(
        "ann",
        "purchase",
        json!({"product": "shoes", "amount": 5}),
    ));
    sim.event(ev(
        "ann",
        "refund",
        json!({"product": "shoes", "amount": 50}),
    ));
    assert!(sim.only("ann").is_active());
    sim.event(ev(
        "ann",
        "purchase",
        json!({"product": "shoes", "amount": 50}),
    ));
    assert_eq!(sim.profile("ann", "bought"), Some(&json!(true)));
    assert_eq!(sim.only("ann").ended, Some(EndReason::Completed));
    assert!(sim.only("bob").is_active());
    sim.run_until(t0 + 7 * D - 1);
    assert!(sim.only("bob").is_active());
    sim.run_until(t0 + 7 * D);
    assert_eq!(sim.profile("bob", "bought"), Some(&json!(false)));
    let ways: Vec<String> = sim.branches().into_iter().map(|(_, to)| to).collect();
    assert_eq!(ways, ["yes", "no"], "ann's purchase, then bob's deadline");
}

// ------------------------------------------------------------------ waits and calendars

#[test]
fn wait_for_a_duration() {
    let src = r#"journey j { entry event "go" wait 2d set contact.done = true }"#;
    let mut sim = Sim::new(src, "2026-03-02T09:00:00Z");
    sim.contact("ann", json!({}));
    let t0 = sim.now;
    sim.event(ev("ann", "go", json!({})));
    assert_eq!(sim.only("ann").due, Some(t0 + 2 * D));
    assert_eq!(sim.only("ann").parked, Some(Parked::Waiting));
    // Events do not shorten a plain wait.
    sim.event(ev("ann", "go", json!({})));
    sim.run_until(t0 + 2 * D - 1);
    assert_eq!(sim.profile("ann", "done"), None);
    sim.run_until(t0 + 2 * D);
    assert_eq!(sim.profile("ann", "done"), Some(&json!(true)));
}

const WAIT_UNTIL: &str = r#"
journey morning {
  entry event "go"
  reentry always
  wait until WHEN
  send push hello { title "t" body "b" }
}
"#;

fn wait_until_due(when: &str, zone: Option<&str>, now: &str) -> Millis {
    let mut sim = Sim::new(&WAIT_UNTIL.replace("WHEN", when), now);
    match zone {
        Some(z) => sim.contact("ann", json!({ "timezone": z })),
        None => sim.contact("ann", json!({})),
    };
    sim.event(ev("ann", "go", json!({})));
    sim.only("ann").due.expect("waiting")
}

#[test]
fn wait_until_a_time_of_day_in_the_contacts_zone() {
    // 07:00 in Rome (UTC+1): 09:00 Rome is 08:00Z the same day.
    assert_eq!(
        wait_until_due("09:00", Some("Europe/Rome"), "2026-03-02T06:00:00Z"),
        ms("2026-03-02T08:00:00Z")
    );
    // 10:00 in Rome: tomorrow.
    assert_eq!(
        wait_until_due("09:00", Some("Europe/Rome"), "2026-03-02T09:00:00Z"),
        ms("2026-03-03T08:00:00Z")
    );
    // The same moment is 01:00 in New York (UTC-5): 09:00 there is 14:00Z.
    assert_eq!(
        wait_until_due("09:00", Some("America/New_York"), "2026-03-02T06:00:00Z"),
        ms("2026-03-02T14:00:00Z")
    );
    // No zone on the contact: the default (UTC here).
    assert_eq!(
        wait_until_due("09:00", None, "2026-03-02T06:00:00Z"),
        ms("2026-03-02T09:00:00Z")
    );
    // A zone on the step wins over the contact's.
    assert_eq!(
        wait_until_due(
            "09:00 Asia/Tokyo",
            Some("Europe/Rome"),
            "2026-03-02T06:00:00Z"
        ),
        ms("2026-03-03T00:00:00Z")
    );
}

#[test]
fn wait_until_now_goes_straight_on() {
    let mut sim = Sim::new(&WAIT_UNTIL.replace("WHEN", "09:00"), "2026-03-02T08:00:00Z");
    sim.contact("ann", json!({"timezone": "Europe/Rome"}));
    sim.event(ev("ann", "go", json!({})));
    assert_eq!(
        sim.sent_at("ann", "hello"),
        Some(ms("2026-03-02T08:00:00Z"))
    );
}

#[test]
fn wait_until_monday_across_the_spring_dst_change() {
    // Rome changes from UTC+1 to UTC+2 on Sunday 2026-03-29.
    // From Friday 27th, Monday 30th 09:00 is 07:00Z (summer time).
    assert_eq!(
        wait_until_due("monday 09:00", Some("Europe/Rome"), "2026-03-27T12:00:00Z"),
        ms("2026-03-30T07:00:00Z")
    );
    // Saturday 28th 23:30 Rome (22:30Z): still the Monday after the change.
    assert_eq!(
        wait_until_due("monday 09:00", Some("Europe/Rome"), "2026-03-28T22:30:00Z"),
        ms("2026-03-30T07:00:00Z")
    );
    // A week earlier, Monday 23rd 09:00 is 08:00Z (winter time).
    assert_eq!(
        wait_until_due("monday 09:00", Some("Europe/Rome"), "2026-03-20T12:00:00Z"),
        ms("2026-03-23T08:00:00Z")
    );
    // Monday 09:00 in Rome after 09:00: the next Monday.
    assert_eq!(
        wait_until_due("monday 09:00", Some("Europe/Rome"), "2026-03-23T08:00:01Z"),
        ms("2026-03-30T07:00:00Z")
    );
    // And back in autumn (2026-10-25): Monday 26th 09:00 CET is 08:00Z.
    assert_eq!(
        wait_until_due("monday 09:00", Some("Europe/Rome"), "2026-10-23T12:00:00Z"),
        ms("2026-10-26T08:00:00Z")
    );
    // The time that does not exist (02:30 on the change day) moves forward by the gap (an
    // hour): 03:30 summer time, 01:30Z.
    assert_eq!(
        wait_until_due(
            "2026-03-29 02:30",
            Some("Europe/Rome"),
            "2026-03-28T12:00:00Z"
        ),
        ms("2026-03-29T01:30:00Z")
    );
}

#[test]
fn wait_until_for_two_contacts_in_two_zones() {
    let mut sim = Sim::new(
        &WAIT_UNTIL.replace("WHEN", "monday 09:00"),
        "2026-03-27T12:00:00Z",
    );
    sim.contact("rome", json!({"timezone": "Europe/Rome"}));
    sim.contact("ny", json!({"timezone": "America/New_York"}));
    sim.event(ev("rome", "go", json!({})));
    sim.event(ev("ny", "go", json!({})));
    sim.advance(7 * D);
    // New York is already on summer time (since 2026-03-08): 09:00 EDT is 13:00Z.
    assert_eq!(
        sim.sent_at("rome", "hello"),
        Some(ms("2026-03-30T07:00:00Z"))
    );
    assert_eq!(sim.sent_at("ny", "hello"), Some(ms("2026-03-30T13:00:00Z")));
}

#[test]
fn fall_back_hour_means_its_first_occurrence() {
    // 2026-10-25 in Rome: 02:00–03:00 happens twice. "02:30" is the first 02:30 (00:30Z).
    assert_eq!(
        wait_until_due("02:30", Some("Europe/Rome"), "2026-10-25T00:10:00Z"),
        ms("2026-10-25T00:30:00Z")
    );
    // Once it has passed, the next is tomorrow: a daily loop does not run twice that night.
    assert_eq!(
        wait_until_due("02:30", Some("Europe/Rome"), "2026-10-25T01:10:00Z"),
        ms("2026-10-26T01:30:00Z")
    );
}

// ------------------------------------------------------------------ if / else if / else

const BRANCHES: &str = r#"
segment big_spenders {
  rule spent: contact.spent > 1000
}
journey other {
  entry api
  send email promo { subject "Promo" text "x" link go "https://example.com" }
}
journey branches {
  entry event "go"
  if contact.country == "IT" {
    arm_country: set contact.arm = "country"
  } else if in list "vip" {
    arm_list: set contact.arm = "list"
  } else if in segment big_spenders {
    arm_segment: set contact.arm = "segment"
  } else if event.source == "ads" {
    arm_event: set contact.arm = "event"
  } else if count event "purchase" >= 2 in last 30d {
    arm_count: set contact.arm = "count"
  } else if last clicked channel email < 2d ago {
    arm_last: set contact.arm = "last"
  } else if not clicked other.promo {
    arm_not_clicked: set contact.arm = "not_clicked"
  } else {
    arm_else: set contact.arm = "else"
  }
}
"#;

#[test]
fn if_else_if_else_over_profile_lists_segments_event_and_history() {
    let mut sim = Sim::new(BRANCHES, "2026-03-30T09:00:00Z");
    let now = sim.now;
    sim.contact("country", json!({"country": "IT", "lists": ["vip"]}));
    sim.contact(
        "list",
        json!({"country": "FR", "lists": ["newsletter", "vip"]}),
    );
    sim.contact("segment", json!({"spent": 1500}));
    sim.contact("event", json!({"spent": 10}));
    sim.contact("count", json!({}));
    sim.contact("count_old", json!({}));
    sim.contact("last", json!({}));
    sim.contact("clicked_long_ago", json!({}));
    sim.contact("nothing", json!({}));
    for (at, c) in [(-3 * D, "count"), (-29 * D, "count")] {
        sim.history(Event {
            at: now + at,
            ..ev(c, "purchase", json!({}))
        });
    }
    // One of the two purchases is out of the 30 days.
    for (at, c) in [(-3 * D, "count_old"), (-31 * D, "count_old")] {
        sim.history(Event {
            at: now + at,
            ..ev(c, "purchase", json!({}))
        });
    }
    for (at, c) in [(-D, "last"), (-10 * D, "clicked_long_ago")] {
        sim.history(Event {
            at: now + at,
            ..engagement(c, "clicked", "other", "promo", Some("go"))
        });
    }
    for c in [
        "country",
        "list",
        "segment",
        "count",
        "count_old",
        "last",
        "clicked_long_ago",
        "nothing",
    ] {
        sim.event(ev(c, "go", json!({"source": "mail"})));
    }
    sim.event(ev("event", "go", json!({"source": "ads"})));
    let arm = |c: &str| sim.profile(c, "arm").cloned().unwrap_or(Value::Null);
    assert_eq!(arm("country"), json!("country"));
    assert_eq!(arm("list"), json!("list"));
    assert_eq!(arm("segment"), json!("segment"));
    assert_eq!(arm("event"), json!("event"));
    assert_eq!(arm("count"), json!("count"));
    assert_eq!(arm("count_old"), json!("not_clicked"));
    assert_eq!(arm("last"), json!("last"));
    assert_eq!(arm("clicked_long_ago"), json!("else"));
    assert_eq!(arm("nothing"), json!("not_clicked"));
    let path = &sim.only("nothing").path;
    assert_eq!(path.len(), 2, "{path:?}");
    assert_eq!(path[0], "if_1");
}

#[test]
fn if_without_else_lets_the_others_go_on() {
    let src = r#"
journey j {
  entry event "go"
  if contact.vip == true { set contact.gift = true }
  set contact.done = true
}
"#;
    let mut sim = Sim::new(src, "2026-03-02T09:00:00Z");
    sim.contact("vip", json!({"vip": true}));
    sim.contact("plain", json!({}));
    sim.event(ev("vip", "go", json!({})));
    sim.event(ev("plain", "go", json!({})));
    assert_eq!(sim.profile("vip", "gift"), Some(&json!(true)));
    assert_eq!(sim.profile("plain", "gift"), None);
    assert_eq!(sim.profile("plain", "done"), Some(&json!(true)));
    assert_eq!(sim.only("plain").path.len(), 2);
    assert_eq!(sim.only("vip").path.len(), 3);
}

// ------------------------------------------------------------------ split random

const SPLIT: &str = r#"
journey ab {
  entry event "go"
  reentry always
  split random {
    40% a { arm_a: set contact.arm = "a" }
    60% b { arm_b: set contact.arm = "b" }
  }
}
"#;

#[test]
fn split_random_is_stable_per_contact() {
    let mut sim = Sim::new(SPLIT, "2026-03-02T09:00:00Z");
    for n in 0..50 {
        sim.contact(&format!("c{n}"), json!({}));
    }
    let mut first = Vec::new();
    for n in 0..50 {
        let c = format!("c{n}");
        sim.event(ev(&c, "go", json!({})));
        first.push(sim.profile(&c, "arm").cloned());
    }
    for round in 0..3 {
        sim.advance(D);
        for (n, want) in first.iter().enumerate() {
            let c = format!("c{n}");
            sim.event(ev(&c, "go", json!({})));
            assert_eq!(&sim.profile(&c, "arm").cloned(), want, "round {round}, {c}");
        }
    }
}

#[test]
fn split_random_is_roughly_proportional() {
    let mut sim = Sim::new(SPLIT, "2026-03-02T09:00:00Z");
    let n = 10_000;
    let mut a = 0;
    for i in 0..n {
        let c = format!("contact-{i}@example.com");
        sim.contact(&c, json!({}));
        sim.event(ev(&c, "go", json!({})));
        if sim.profile(&c, "arm") == Some(&json!("a")) {
            a += 1;
        }
    }
    // 40% of 10,000 is 4,000; the standard deviation is about 49.
    assert!((3_800..=4_200).contains(&a), "{a} of {n} took a");
    // Every contact took one of the arms.
    assert_eq!(
        sim.contacts
            .values()
            .filter(|c| c.profile.get("arm").is_some())
            .count(),
        n
    );
}

// ------------------------------------------------------------------ set and goto

#[test]
fn set_updates_the_profile_and_later_conditions_see_it() {
    let src = r#"
journey j {
  entry event "go"
  set contact.tier = "gold"
  if contact.tier == "gold" { set contact.seen_gold = true }
}
"#;
    let mut sim = Sim::new(src, "2026-03-02T09:00:00Z");
    sim.contact("ann", json!({"tier": "silver"}));
    sim.event(ev("ann", "go", json!({})));
    assert_eq!(sim.profile("ann", "tier"), Some(&json!("gold")));
    assert_eq!(sim.profile("ann", "seen_gold"), Some(&json!(true)));
    assert!(sim
        .set_fields
        .iter()
        .any(|(_, f, v)| f == "tier" && *v == json!("gold")));
}

#[test]
fn goto_loops_through_a_wait() {
    let src = r#"
journey j {
  entry event "go"
  exit event "stop"
  again: send sms tick { text "tick" }
  wait 1d
  goto again
}
"#;
    let mut sim = Sim::new(src, "2026-03-02T09:00:00Z");
    sim.contact("ann", json!({"phone": "+39"}));
    let t0 = sim.now;
    sim.event(ev("ann", "go", json!({})));
    sim.run_until(t0 + 3 * D + 12 * H);
    assert_eq!(sim.sent("ann"), ["tick"; 4]);
    let i = sim.only("ann");
    assert_eq!(
        i.path,
        ["again", "wait_1d", "again", "wait_1d", "again", "wait_1d", "again", "wait_1d"]
    );
    // Each delivery has its own message id.
    let ids: Vec<&String> = i.sent.iter().map(|s| &s.1).collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids.len(), unique.len());
    sim.event(ev("ann", "stop", json!({})));
    assert_eq!(sim.only("ann").ended, Some(EndReason::Exited));
}

// ------------------------------------------------------------------ quiet hours

#[test]
fn quiet_hours_hold_then_release() {
    let src = r#"
journey j {
  entry event "go"
  quiet 21:00..08:00
  send email hello { subject "x" text "y" }
  set contact.after = true
}
"#;
    // 22:30 in Rome.
    let mut sim = Sim::new(src, "2026-03-02T21:30:00Z");
    sim.contact("rome", json!({"timezone": "Europe/Rome"}));
    sim.contact("ny", json!({"timezone": "America/New_York"}));
    sim.event(ev("rome", "go", json!({})));
    // 16:30 in New York: not quiet there.
    sim.event(ev("ny", "go", json!({})));
    assert_eq!(sim.sent_at("ny", "hello"), Some(ms("2026-03-02T21:30:00Z")));
    let i = sim.only("rome");
    assert_eq!(i.parked, Some(Parked::Held));
    assert_eq!(i.due, Some(ms("2026-03-03T07:00:00Z")));
    assert_eq!(sim.step_name("rome").as_deref(), Some("hello"));
    assert_eq!(
        sim.profile("rome", "after"),
        None,
        "steps after a held send wait"
    );
    assert!(sim
        .timeline
        .iter()
        .any(|h| matches!(h, Happening::Held { reason, .. } if reason == "quiet hours")));
    // Events do not release a held send.
    sim.event(ev("rome", "anything", json!({})));
    sim.run_until(ms("2026-03-03T06:59:59Z"));
    assert!(sim.sent("rome").is_empty());
    sim.run_until(ms("2026-03-03T07:00:00Z"));
    assert_eq!(
        sim.sent_at("rome", "hello"),
        Some(ms("2026-03-03T07:00:00Z"))
    );
    assert_eq!(sim.profile("rome", "after"), Some(&json!(true)));
    assert_eq!(sim.only("rome").path, ["hello", "set_after"]);
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
journey j {{
  entry event "go"
  reentry always
  policy dnd
  send email mail {{ subject "x" text "y" }}
  set contact.after = true
}}
journey other {{
  entry event "other"
  policy none
  send email other_mail {{ subject "x" text "y" }}
}}
"#
    )
}

#[test]
fn cap_delay_releases_when_the_oldest_send_leaves_the_window() {
    let mut sim = Sim::new(
        &policy_src("max 2 emails per 1d", "journey", "delay"),
        "2026-03-02T09:00:00Z",
    );
    sim.contact("ann", json!({}));
    let t = sim.now;
    sim.history(sent_history("ann", "j", "mail", "email", t - 20 * H));
    sim.history(sent_history("ann", "j", "mail", "email", t - 10 * H));
    // Out of the window: exactly one period ago is not in (t - 1d, t].
    sim.history(sent_history("ann", "j", "mail", "email", t - D));
    sim.event(ev("ann", "go", json!({})));
    let i = sim.only("ann");
    assert_eq!(i.parked, Some(Parked::Held));
    assert_eq!(i.due, Some(t + 4 * H), "when the send of t-20h leaves");
    assert_eq!(sim.count_events("ann", MESSAGE_CAPPED), 1);
    let capped = sim.events["ann"]
        .iter()
        .find(|e| e.kind == MESSAGE_CAPPED)
        .unwrap();
    assert_eq!(capped.properties["action"], json!("delay"));
    assert_eq!(capped.properties["policy"], json!("dnd"));
    sim.run_until(t + 4 * H - 1);
    assert!(sim.sent("ann").is_empty());
    sim.run_until(t + 4 * H);
    assert_eq!(sim.sent_at("ann", "mail"), Some(t + 4 * H));
    assert_eq!(sim.profile("ann", "after"), Some(&json!(true)));
}

#[test]
fn cap_skip_goes_on_without_sending() {
    let mut sim = Sim::new(
        &policy_src("max 1 email per 1d", "journey", "skip"),
        "2026-03-02T09:00:00Z",
    );
    sim.contact("ann", json!({}));
    let t = sim.now;
    sim.history(sent_history("ann", "j", "mail", "email", t - H));
    sim.event(ev("ann", "go", json!({})));
    assert!(sim.sent("ann").is_empty());
    assert_eq!(sim.profile("ann", "after"), Some(&json!(true)));
    let i = sim.only("ann");
    assert_eq!(i.ended, Some(EndReason::Completed));
    assert!(i.sent.is_empty(), "a skipped send is not the instance's");
    let capped = sim.events["ann"]
        .iter()
        .find(|e| e.kind == MESSAGE_CAPPED)
        .expect("message.capped recorded");
    assert_eq!(capped.properties["action"], json!("skip"));
    assert_eq!(capped.message.as_deref(), Some("mail"));
    // A skipped send is not counted: once the first leaves the window, one goes out.
    sim.run_until(t + D - H);
    sim.event(ev("ann", "go", json!({})));
    assert_eq!(sim.sent("ann"), ["mail"]);
}

#[test]
fn cap_scope_journey_counts_its_own_sends_global_counts_all() {
    for (scope, capped) in [("journey", false), ("global", true)] {
        let mut sim = Sim::new(
            &policy_src("max 1 email per 1d", scope, "skip"),
            "2026-03-02T09:00:00Z",
        );
        sim.contact("ann", json!({}));
        sim.event(ev("ann", "other", json!({})));
        assert_eq!(sim.sent("ann"), ["other_mail"]);
        sim.advance(H);
        sim.event(ev("ann", "go", json!({})));
        let want: &[&str] = if capped {
            &["other_mail"]
        } else {
            &["other_mail", "mail"]
        };
        assert_eq!(sim.sent("ann"), want, "scope {scope}");
    }
}

#[test]
fn cap_on_messages_counts_every_channel() {
    let src = r#"
policy dnd {
  max 2 messages per 1w
  max 5 emails per 1d
  scope global
  when capped delay
}
journey j {
  entry event "go"
  policy dnd
  send email mail { subject "x" text "y" }
}
"#;
    let mut sim = Sim::new(src, "2026-03-02T09:00:00Z");
    sim.contact("ann", json!({}));
    let t = sim.now;
    sim.history(sent_history("ann", "x", "s", "sms", t - 2 * D));
    sim.history(sent_history("ann", "y", "p", "push", t - D));
    // Webhooks are calls to other systems, not messages to the contact.
    sim.history(sent_history("ann", "z", "w", "webhook", t - H));
    sim.event(ev("ann", "go", json!({})));
    assert_eq!(sim.only("ann").due, Some(t - 2 * D + 7 * D));
    sim.run_until(t + 5 * D);
    assert_eq!(sim.sent_at("ann", "mail"), Some(t + 5 * D));
}

#[test]
fn cap_on_one_channel_leaves_the_others_alone() {
    let src = r#"
policy dnd {
  max 1 sms per 1w
  scope global
  when capped skip
}
journey j {
  entry event "go"
  policy dnd
  send email mail { subject "x" text "y" }
  send sms text { text "y" }
}
"#;
    let mut sim = Sim::new(src, "2026-03-02T09:00:00Z");
    sim.contact("ann", json!({"phone": "+39"}));
    sim.history(sent_history("ann", "x", "s", "sms", sim.now - 2 * D));
    sim.event(ev("ann", "go", json!({})));
    assert_eq!(sim.sent("ann"), ["mail"]);
}

#[test]
fn sends_in_one_run_count_against_the_cap() {
    let src = r#"
policy dnd {
  max 1 email per 1d
  scope journey
  when capped skip
}
journey j {
  entry event "go"
  policy dnd
  send email first { subject "x" text "y" }
  send email second { subject "x" text "y" }
}
"#;
    let mut sim = Sim::new(src, "2026-03-02T09:00:00Z");
    sim.contact("ann", json!({}));
    sim.event(ev("ann", "go", json!({})));
    assert_eq!(sim.sent("ann"), ["first"]);
    assert_eq!(sim.count_events("ann", MESSAGE_CAPPED), 1);
}

// ------------------------------------------------------------------ stale timers

#[test]
fn stale_timers_do_nothing() {
    let mut sim = check_sim("");
    let t0 = sim.now;
    let before = sim.only("ann").clone();
    let due = before.due.unwrap();
    sim.now = t0 + H;
    // A timer for another due time: left over from a step the instance has moved past.
    let fx = sim.step(0, Input::Timer(due - 1));
    assert!(fx.is_empty());
    assert_eq!(sim.only("ann"), &before);
    // The click moves it on; the old deadline timer then fires for nothing.
    sim.event(engagement(
        "ann",
        "clicked",
        "welcome",
        "welcome",
        Some("profile"),
    ));
    let after = sim.only("ann").clone();
    assert!(!after.is_active());
    sim.now = due;
    let fx = sim.step(0, Input::Timer(due));
    assert!(fx.is_empty());
    assert_eq!(sim.only("ann"), &after);
    assert_eq!(sim.sent("ann"), ["welcome", "promo"]);
}

#[test]
fn a_timer_for_a_moved_on_waiting_instance_is_stale() {
    // The instance waits at a later step with a new due time: the old one does nothing.
    let src = r#"journey j { entry event "go" wait 1h wait 2h set contact.done = true }"#;
    let mut sim = Sim::new(src, "2026-03-02T09:00:00Z");
    sim.contact("ann", json!({}));
    let t0 = sim.now;
    sim.event(ev("ann", "go", json!({})));
    sim.run_until(t0 + H);
    assert_eq!(sim.only("ann").due, Some(t0 + 3 * H));
    sim.now = t0 + 2 * H;
    let before = sim.only("ann").clone();
    assert!(sim.step(0, Input::Timer(t0 + H)).is_empty());
    assert_eq!(sim.only("ann"), &before);
    sim.run_until(t0 + 3 * H);
    assert_eq!(sim.profile("ann", "done"), Some(&json!(true)));
}

// ------------------------------------------------------------------ loops that come back at once

#[test]
fn a_daily_loop_through_wait_until_waits_a_day() {
    let src = r#"
journey daily {
  entry event "go"
  exit event "stop"
  again: wait until 09:00
  send sms tip { text "tip" }
  goto again
}
"#;
    // 09:00 in Rome exactly: the first tip goes at once, the next ones a day apart, across
    // the change to summer time on 2026-03-29.
    let mut sim = Sim::new(src, "2026-03-27T08:00:00Z");
    sim.contact("ann", json!({"timezone": "Europe/Rome", "phone": "+39"}));
    sim.event(ev("ann", "go", json!({})));
    sim.run_until(ms("2026-03-31T12:00:00Z"));
    let times: Vec<Millis> = sim.delivered.iter().map(|d| d.at).collect();
    assert_eq!(
        times,
        [
            ms("2026-03-27T08:00:00Z"),
            ms("2026-03-28T08:00:00Z"),
            ms("2026-03-29T07:00:00Z"),
            ms("2026-03-30T07:00:00Z"),
            ms("2026-03-31T07:00:00Z"),
        ]
    );
    assert!(sim.only("ann").is_active());
}

#[test]
fn a_click_that_wakes_a_check_does_not_count_for_the_next_send() {
    // Around the loop the same message goes again; the click that answered the first send
    // must not answer the second one at the same instant.
    let src = r#"
journey nag {
  entry event "go"
  again: send email nudge { subject "x" text "y" link go "https://example.com" }
  check clicked nudge.go within 1d {
    yes { goto again }
  }
}
"#;
    let mut sim = Sim::new(src, "2026-03-02T09:00:00Z");
    sim.contact("ann", json!({}));
    let t0 = sim.now;
    sim.event(ev("ann", "go", json!({})));
    sim.run_until(t0 + H);
    sim.event(engagement("ann", "clicked", "nag", "nudge", Some("go")));
    assert_eq!(sim.sent("ann"), ["nudge", "nudge"]);
    let i = sim.only("ann");
    assert_eq!(i.parked, Some(Parked::Waiting));
    assert_eq!(i.due, Some(t0 + H + D));
    sim.run_until(t0 + H + D);
    assert_eq!(sim.only("ann").ended, Some(EndReason::Completed));
}
