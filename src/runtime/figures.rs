//! Live figures: per journey, per step and per message counts that the runtime keeps as it
//! commits batches, so that a page showing them reads memory rather than scanning every
//! instance and event (the console's journey pages, `GET /console/journeys/{name}/counts`).
//!
//! Each count is a function of the stored instances and events: per step, contacts
//! waiting there now (active instances at it), entered (path entries) and exited (ended
//! instances whose last step it was); per message, sends (the instances' sends) and the
//! outcome and engagement events recorded for it. A batch computes what its dirty instances
//! and recorded events change (`FigureDelta`) and adds it once the batch is applied. The
//! rare controls that rewrite instances otherwise (deploys that migrate, merges, erasure)
//! and a (re)load from the store build the figures again with one scan (`rebuild`). A
//! runtime keeps them only once asked (`Runtime::keep_figures`: the daemon, when its console
//! is on), so the benchmarks and scenarios pay nothing for them.

use crate::engine::{EndReason, Event, Instance, Millis, MESSAGE_BOUNCED, MESSAGE_SENT};
use crate::engine::{MESSAGE_CAPPED, MESSAGE_FAILED, MESSAGE_SUPPRESSED};
use crate::store::{Store, StoreError};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

/// One hour, in ms: sends are counted per hour for "the last 24 h".
const HOUR: Millis = 3_600_000;
/// Hours of sends kept per journey.
const HOURS_KEPT: i64 = 48;

/// A step's counts.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct StepCount {
    /// Contacts waiting at the step now.
    pub waiting: i64,
    /// Arrivals at the step.
    pub entered: i64,
    /// Instances that ended at the step.
    pub exited: i64,
    /// Of those, the ones that converted.
    pub converted: i64,
}

/// A message's counts.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct MessageCount {
    pub sent: i64,
    pub delivered: i64,
    pub opened: i64,
    pub clicked: i64,
    pub bounced: i64,
    pub suppressed: i64,
    pub failed: i64,
    pub unsubscribed: i64,
}

/// A journey's counts.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct JourneyFigures {
    pub entered: i64,
    pub active: i64,
    pub converted: i64,
    pub exited: i64,
    pub completed: i64,
    pub steps: BTreeMap<String, StepCount>,
    pub messages: BTreeMap<String, MessageCount>,
    /// Sends per hour (the hour's start, ms), the last `HOURS_KEPT` hours.
    #[serde(skip)]
    pub sends_by_hour: BTreeMap<Millis, i64>,
}

impl JourneyFigures {
    /// Sends in the 24 hours before `now`.
    pub fn sends_last_day(&self, now: Millis) -> i64 {
        self.sends_by_hour
            .range(now - 24 * HOUR..)
            .map(|(_, n)| *n)
            .sum()
    }
}

/// The figures of every journey, shared between the runtime (which writes them) and readers.
#[derive(Debug, Default)]
pub struct LiveFigures {
    journeys: RwLock<HashMap<String, JourneyFigures>>,
}

impl LiveFigures {
    /// A copy of one journey's figures (empty when it has none yet).
    pub fn journey(&self, name: &str) -> JourneyFigures {
        self.journeys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    /// Applies what a batch changed.
    pub fn add(&self, delta: FigureDelta) {
        if delta.ops.is_empty() {
            return;
        }
        let mut all = self.journeys.write().unwrap_or_else(|e| e.into_inner());
        for op in delta.ops {
            apply(&mut all, op);
        }
    }

    /// Builds every count again from the store: one scan of the instances and one of the
    /// events. `step_name` names an instance's current step (by version and step id).
    pub fn rebuild(
        &self,
        store: &Store,
        mut step_name: impl FnMut(&Instance) -> Option<String>,
    ) -> Result<(), StoreError> {
        let mut all: HashMap<String, JourneyFigures> = HashMap::new();
        for i in store.all_instances() {
            let i = i?;
            let mut d = FigureDelta::recording();
            d.instance(None, &i, step_name(&i));
            for op in d.ops {
                apply(&mut all, op);
            }
        }
        for e in store.all_events() {
            let e = e?;
            let mut d = FigureDelta::recording();
            d.event(&e);
            for op in d.ops {
                apply(&mut all, op);
            }
        }
        *self.journeys.write().unwrap_or_else(|e| e.into_inner()) = all;
        Ok(())
    }
}

/// What an instance was when a batch read it: enough to take its old counts back.
#[derive(Debug, Clone)]
pub struct Before {
    pub step_name: Option<String>,
    pub ended: Option<EndReason>,
    pub path_len: usize,
    pub sent_len: usize,
}

impl Before {
    pub fn of(i: &Instance, step_name: Option<String>) -> Before {
        Before {
            step_name,
            ended: i.ended,
            path_len: i.path.len(),
            sent_len: i.sent.len(),
        }
    }
}

#[derive(Debug)]
enum Op {
    Journey {
        journey: String,
        entered: i64,
        active: i64,
        ended: Option<(EndReason, i64)>,
    },
    Step {
        journey: String,
        step: String,
        waiting: i64,
        entered: i64,
        exited: i64,
        converted: i64,
    },
    Message {
        journey: String,
        message: String,
        what: Outcome,
        at: Millis,
    },
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Sent,
    Delivered,
    Opened,
    Clicked,
    Bounced,
    Suppressed,
    Failed,
    Unsubscribed,
}

/// What a batch changes in the figures, added once it is applied. A delta made with
/// `FigureDelta::default()` records nothing (a runtime that keeps no figures).
#[derive(Debug, Default)]
pub struct FigureDelta {
    ops: Vec<Op>,
    enabled: bool,
}

impl FigureDelta {
    /// A delta that records what it is told.
    pub fn recording() -> FigureDelta {
        FigureDelta {
            ops: Vec::new(),
            enabled: true,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// An instance written: `before` as it was read (None for a new one), `now` as written,
    /// `step_name` the name of its current step.
    pub fn instance(&mut self, before: Option<&Before>, now: &Instance, step_name: Option<String>) {
        if !self.enabled {
            return;
        }
        let journey = &now.journey;
        // The old state's counts, taken back.
        if let Some(b) = before {
            self.state(
                journey,
                b.ended,
                b.step_name.clone(),
                &now.path[..b.path_len.min(now.path.len())],
                -1,
            );
        }
        // Arrivals and sends since.
        let (path_from, sent_from) = before.map_or((0, 0), |b| (b.path_len, b.sent_len));
        if before.is_none() {
            self.ops.push(Op::Journey {
                journey: journey.clone(),
                entered: 1,
                active: 0,
                ended: None,
            });
        }
        for p in now.path.iter().skip(path_from) {
            self.ops.push(Op::Step {
                journey: journey.clone(),
                step: p.clone(),
                waiting: 0,
                entered: 1,
                exited: 0,
                converted: 0,
            });
        }
        for (m, _, at) in now.sent.iter().skip(sent_from) {
            self.ops.push(Op::Message {
                journey: journey.clone(),
                message: m.clone(),
                what: Outcome::Sent,
                at: *at,
            });
        }
        self.state(journey, now.ended, step_name, &now.path, 1);
    }

    /// The counts of an instance's state (waiting at a step, or ended at one), times `sign`.
    fn state(
        &mut self,
        journey: &str,
        ended: Option<EndReason>,
        step_name: Option<String>,
        path: &[String],
        sign: i64,
    ) {
        match ended {
            None => {
                self.ops.push(Op::Journey {
                    journey: journey.to_string(),
                    entered: 0,
                    active: sign,
                    ended: None,
                });
                if let Some(step) = step_name {
                    self.ops.push(Op::Step {
                        journey: journey.to_string(),
                        step,
                        waiting: sign,
                        entered: 0,
                        exited: 0,
                        converted: 0,
                    });
                }
            }
            Some(reason) => {
                self.ops.push(Op::Journey {
                    journey: journey.to_string(),
                    entered: 0,
                    active: 0,
                    ended: Some((reason, sign)),
                });
                self.ops.push(Op::Step {
                    journey: journey.to_string(),
                    step: path.last().cloned().unwrap_or_default(),
                    waiting: 0,
                    entered: 0,
                    exited: sign,
                    converted: if reason == EndReason::Converted {
                        sign
                    } else {
                        0
                    },
                });
            }
        }
    }

    /// An event recorded: counted when it is a message's outcome or engagement.
    pub fn event(&mut self, e: &Event) {
        if !self.enabled {
            return;
        }
        let (Some(journey), Some(message)) = (&e.journey, &e.message) else {
            return;
        };
        let what = match e.kind.as_str() {
            MESSAGE_SENT => Outcome::Delivered,
            MESSAGE_FAILED => Outcome::Failed,
            MESSAGE_BOUNCED | "bounced" => Outcome::Bounced,
            MESSAGE_SUPPRESSED | MESSAGE_CAPPED => Outcome::Suppressed,
            "opened" => Outcome::Opened,
            "clicked" => Outcome::Clicked,
            "unsubscribed" => Outcome::Unsubscribed,
            _ => return,
        };
        self.ops.push(Op::Message {
            journey: journey.clone(),
            message: message.clone(),
            what,
            at: e.at,
        });
    }
}

fn apply(all: &mut HashMap<String, JourneyFigures>, op: Op) {
    match op {
        Op::Journey {
            journey,
            entered,
            active,
            ended,
        } => {
            let j = all.entry(journey).or_default();
            j.entered += entered;
            j.active += active;
            if let Some((reason, n)) = ended {
                match reason {
                    EndReason::Converted => j.converted += n,
                    EndReason::Exited => j.exited += n,
                    _ => j.completed += n,
                }
            }
        }
        Op::Step {
            journey,
            step,
            waiting,
            entered,
            exited,
            converted,
        } => {
            let s = all
                .entry(journey)
                .or_default()
                .steps
                .entry(step)
                .or_default();
            s.waiting += waiting;
            s.entered += entered;
            s.exited += exited;
            s.converted += converted;
        }
        Op::Message {
            journey,
            message,
            what,
            at,
        } => {
            let j = all.entry(journey).or_default();
            let m = j.messages.entry(message).or_default();
            match what {
                Outcome::Sent => {
                    m.sent += 1;
                    let hour = at - at.rem_euclid(HOUR);
                    *j.sends_by_hour.entry(hour).or_default() += 1;
                    // Keep the last HOURS_KEPT hours of the newest.
                    if let Some((&last, _)) = j.sends_by_hour.iter().next_back() {
                        let keep = last - HOURS_KEPT * HOUR;
                        j.sends_by_hour = j.sends_by_hour.split_off(&keep);
                    }
                }
                Outcome::Delivered => m.delivered += 1,
                Outcome::Opened => m.opened += 1,
                Outcome::Clicked => m.clicked += 1,
                Outcome::Bounced => m.bounced += 1,
                Outcome::Suppressed => m.suppressed += 1,
                Outcome::Failed => m.failed += 1,
                Outcome::Unsubscribed => m.unsubscribed += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::{Event, Millis};
    use crate::runtime::{Input, MemorySink, Runtime};

    const T0: Millis = 1_772_355_600_000; // 2026-03-01T09:00:00Z

    fn event(contact: &str, kind: &str, at: Millis) -> Input {
        Input::Event(Event {
            contact: contact.into(),
            kind: kind.into(),
            at,
            ..Event::default()
        })
    }

    /// What batches add to the figures (entries, sends and their outcomes, a goal, timers
    /// that fire and end instances) is what a count of the store gives afterwards.
    #[test]
    fn what_batches_add_is_what_a_count_of_the_store_gives() {
        let src = r#"
journey j {
  entry event "signup"
  goal event "bought"
  policy none
  send email hello {
    subject "Hello"
    text "Hello"
  }
  check clicked hello within 1h {
    yes {
      send email thanks {
        subject "Thanks"
        text "Thanks"
      }
    }
    no { end }
  }
}"#;
        let mut loaded = crate::lang::Loaded::default();
        crate::lang::add_source(&mut loaded, "q.journey", src.to_string());
        let program = crate::compile::compile(&loaded).program.expect("compiles");
        let dir = tempfile::tempdir().unwrap();
        let store = crate::bench::pg_server::test_store_at(dir.path());
        let mut rt = Runtime::new(store, T0, chrono_tz::UTC).unwrap();
        rt.deploy(program, T0).unwrap();
        rt.keep_figures().unwrap();
        let mut sink = MemorySink::default();
        let mut timeline = Vec::new();
        let signups = (0..6)
            .map(|i| event(&format!("c{i}"), "signup", T0))
            .collect();
        rt.run_at(signups, T0, &mut sink, &mut timeline).unwrap();
        rt.run_at(
            vec![event("c0", "bought", T0 + 10)],
            T0 + 10,
            &mut sink,
            &mut timeline,
        )
        .unwrap();
        // Two hours on: the others' checks time out.
        rt.tick(T0 + 2 * 3_600_000, &mut sink, &mut timeline)
            .unwrap();
        let kept = rt.figures.journey("j");
        assert_eq!(kept.entered, 6, "{kept:?}");
        assert_eq!(kept.converted, 1, "{kept:?}");
        assert_eq!(kept.completed, 5, "{kept:?}");
        assert_eq!(kept.active, 0, "{kept:?}");
        assert_eq!(kept.messages["hello"].sent, 6, "{kept:?}");
        rt.rebuild_figures().unwrap();
        assert_eq!(rt.figures.journey("j"), kept);
    }
}
