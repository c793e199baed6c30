//! The step function: (journey, instance, input, world at `now`) → (instance changed in
//! place, effects). No I/O: the runtime loads the `World`, calls `advance`, and writes the
//! instance and applies the effects in one batch.

use super::calendar::{add_months, next_local_moment, pick_zone, quiet_until, Gap};
use super::cond::{ContactView, Subject, PENDING};
use super::model::*;
use super::Millis;
use crate::compile::ir::*;
use crate::domain::{CappedAction, Channel, Verb};
use chrono_tz::Tz;
use serde_json::Value;

/// What wakes an instance.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// The contact has just been enrolled: run from the first step.
    Enter,
    /// A timer of this instance fired; its due time tells stale timers apart.
    Timer(Millis),
    /// An event of the contact (already in the world's history).
    Event(&'a Event),
}

/// The key of an experiment's decision in `World::decisions` and the store: `journey/step`.
pub fn decision_key(journey: &str, step: &str) -> String {
    format!("{journey}/{step}")
}

/// The contact as the engine sees it for one batch of inputs. The step function adds to it
/// (sends, profile updates) so later steps in the same batch see them.
pub struct World<'a> {
    pub program: &'a Program,
    pub contact: Contact,
    /// The contact's history, oldest first.
    pub events: Vec<Event>,
    pub now: Millis,
    pub default_zone: Tz,
    /// The winners of experiments, by `decision_key`, as the runtime decided them: the
    /// winner share of an experiment follows the arm named here when its wait ends.
    pub decisions: std::collections::BTreeMap<String, String>,
}

impl<'a> World<'a> {
    pub fn view(&self) -> ContactView<'_> {
        ContactView {
            contact: &self.contact,
            events: &self.events,
            program: self.program,
            now: self.now,
        }
    }
}

/// The most steps one input may run: static checks forbid loops without a wait, so only a
/// bug could reach it; it turns a spin into a recorded failure.
const MAX_STEPS_PER_INPUT: usize = 10_000;

enum Flow {
    Go(Next),
    Park,
}

/// Does event `e` enrol a contact through this journey's entry lines?
pub fn entry_event_matches(j: &JourneyIr, e: &Event, view: &ContactView) -> bool {
    j.entries.iter().any(|en| match en {
        EntryIr::Event(m) => event_matches(m, e, view),
        _ => false,
    })
}

fn event_matches(m: &EventMatchIr, e: &Event, view: &ContactView) -> bool {
    keyed_event_matches(m, e, None, view)
}

/// `event_matches` for an instance's goal and exit, whose `where` may read `entry.KEY`.
fn keyed_event_matches(
    m: &EventMatchIr,
    e: &Event,
    entry_event: Option<&Event>,
    view: &ContactView,
) -> bool {
    e.kind == m.event
        && m.condition.as_ref().is_none_or(|c| {
            view.eval(
                c,
                Subject {
                    record: Some(e),
                    entry_event,
                },
            )
        })
}

/// May a contact with these earlier instances of the journey enter now? `by_event`: the
/// contact enters on an event (not a segment, a plan or the API). Never twice at once, but
/// for `reentry always` on an event, which runs an instance per entering event side by
/// side; then as `reentry` says.
pub fn reentry_allows(j: &JourneyIr, earlier: &[&Instance], now: Millis, by_event: bool) -> bool {
    let side_by_side = by_event && j.reentry == ReentryIr::Always;
    if !side_by_side && earlier.iter().any(|i| i.is_active()) {
        return false;
    }
    match j.reentry {
        ReentryIr::Never => earlier.is_empty(),
        ReentryIr::Always => true,
        ReentryIr::After { seconds } => earlier
            .iter()
            .map(|i| i.entered_at)
            .max()
            .is_none_or(|last| now - last >= seconds * 1000),
    }
}

/// The waiting steps of `old` that `new` has no step of the same name for: a journey that
/// says `migrate by name` cannot move contacts waiting there.
pub fn migration_gaps(old: &JourneyIr, new: &JourneyIr) -> Vec<String> {
    old.steps
        .iter()
        .filter(|s| s.kind.is_waiting() || matches!(s.kind, StepKindIr::Send { .. }))
        .filter(|s| new.step_by_name(&s.name).is_none())
        .map(|s| s.name.clone())
        .collect()
}

/// Is engagement `e` an answer to the send `id` made at `sent_at`? An event that names its
/// message instance must name this one. One that does not must come after the send: at the
/// same instant only when it arrives as the step's input (`live`), since an event already in
/// the history at the instant of the send came before it (the click that sent a loop round
/// again must not answer the send it caused).
fn answers_send(e: &Event, id: &str, sent_at: Millis, live: bool) -> bool {
    match e.message_id.as_deref() {
        Some(m) => m == id && e.at >= sent_at,
        None if live => e.at >= sent_at,
        None => e.at > sent_at,
    }
}

/// Advances one instance as far as it can go on this input.
pub fn advance(j: &JourneyIr, inst: &mut Instance, input: Input, w: &mut World) -> Vec<Effect> {
    let mut run = Run {
        j,
        inst,
        w,
        fx: Vec::new(),
        passed_at_once: Vec::new(),
    };
    run.go(input);
    run.fx
}

struct Run<'r, 'a> {
    j: &'r JourneyIr,
    inst: &'r mut Instance,
    w: &'r mut World<'a>,
    fx: Vec<Effect>,
    /// `wait until` steps this input went straight through because their moment had come.
    /// A loop that comes back to one at the same instant waits for its next moment instead
    /// of going round again without end.
    passed_at_once: Vec<StepId>,
}

impl Run<'_, '_> {
    fn timeline(&mut self, happening: Happening) {
        self.fx.push(Effect::Timeline(TimelineEntry {
            at: self.w.now,
            contact: self.inst.contact.clone(),
            journey: self.j.name.clone(),
            instance: self.inst.id,
            happening,
        }));
    }

    fn end(&mut self, reason: EndReason) {
        self.inst.ended = Some(reason);
        self.inst.step = None;
        self.inst.parked = None;
        self.inst.due = None;
        self.timeline(Happening::Ended { reason });
    }

    fn go(&mut self, input: Input) {
        if !self.inst.is_active() {
            return;
        }
        if let Input::Event(e) = input {
            let view = self.w.view();
            let entry = self.inst.entry_event.as_ref();
            if self
                .j
                .goal
                .as_ref()
                .is_some_and(|g| keyed_event_matches(g, e, entry, &view))
            {
                self.end(EndReason::Converted);
                return;
            }
            if self
                .j
                .exit
                .as_ref()
                .is_some_and(|x| keyed_event_matches(x, e, entry, &view))
            {
                self.end(EndReason::Exited);
                return;
            }
        }
        let flow = match input {
            Input::Enter => {
                self.timeline(Happening::Entered);
                if self.j.holds_out(&self.inst.contact) {
                    let holdout = Event {
                        contact: self.inst.contact.clone(),
                        kind: HOLDOUT.into(),
                        at: self.w.now,
                        journey: Some(self.j.name.clone()),
                        ..Event::default()
                    };
                    self.w.events.push(holdout.clone());
                    self.fx.push(Effect::Record(holdout));
                }
                Flow::Go(self.j.start)
            }
            Input::Timer(due) => {
                if self.inst.due != Some(due) || self.inst.parked.is_none() {
                    return;
                }
                self.resume_on_timer()
            }
            Input::Event(e) => {
                if self.inst.parked != Some(Parked::Waiting) {
                    return;
                }
                match self.wakes(e) {
                    Some(next) => {
                        self.unpark();
                        self.took_branch("yes");
                        Flow::Go(next)
                    }
                    None => return,
                }
            }
        };
        self.run(flow);
    }

    /// Which way the current `check` or event wait went, for the timeline (and whoever
    /// counts outcomes from it, such as `journey bench`).
    fn took_branch(&mut self, to: &str) {
        if let Some(step) = self.current().map(|s| s.name.clone()) {
            self.timeline(Happening::Branched {
                step,
                to: to.to_string(),
            });
        }
    }

    fn unpark(&mut self) {
        self.inst.parked = None;
        self.inst.due = None;
    }

    fn current(&self) -> Option<&StepIr> {
        self.inst.step.map(|s| self.j.step(s))
    }

    fn resume_on_timer(&mut self) -> Flow {
        let Some(step) = self.current().cloned() else {
            return Flow::Go(None);
        };
        self.unpark();
        match &step.kind {
            StepKindIr::Wait { next, .. } => Flow::Go(*next),
            StepKindIr::WaitUntil { next, .. } => {
                // Its moment has come: a loop back to it at this instant waits for the next.
                if let Some(id) = self.inst.step {
                    self.passed_at_once.push(id);
                }
                Flow::Go(*next)
            }
            StepKindIr::Check { no, .. } | StepKindIr::WaitEvent { no, .. } => {
                self.took_branch("no");
                Flow::Go(*no)
            }
            StepKindIr::Send { message, next } => self.send(&step.name, message, *next),
            StepKindIr::Experiment { arms, .. } => {
                // The runtime decided the winner before this input (`World::decisions`);
                // without a decision, the first arm (as a tie would).
                let key = decision_key(&self.j.name, &step.name);
                let i = self
                    .w
                    .decisions
                    .get(&key)
                    .and_then(|w| arms.iter().position(|a| &a.name == w))
                    .unwrap_or(0);
                let Some(arm) = arms.get(i) else {
                    return Flow::Go(None);
                };
                self.timeline(Happening::Branched {
                    step: step.name.clone(),
                    to: format!("winner {}", arm.name),
                });
                Flow::Go(arm.next)
            }
            // Only waiting and sending steps park.
            _ => Flow::Go(self.inst.step),
        }
    }

    /// The branch an event opens for the waiting step, if it is what the step waits for.
    fn wakes(&self, e: &Event) -> Option<Next> {
        let step = self.current()?;
        match &step.kind {
            StepKindIr::Check {
                verb,
                message,
                link,
                yes,
                ..
            } => {
                let (_, id, sent_at) = self.inst.last_sent(message)?;
                let kind_ok = match verb {
                    Verb::Received => {
                        (e.kind == MESSAGE_SENT
                            && e.properties
                                .get(super::AWAITS_REPORT)
                                .and_then(Value::as_bool)
                                != Some(true))
                            || e.kind == "received"
                    }
                    // A click implies the open.
                    Verb::Opened => e.kind == "opened" || e.kind == "clicked",
                    v => e.kind == v.as_str(),
                };
                let ok = kind_ok
                    && e.journey.as_deref() == Some(&self.j.name)
                    && e.message.as_deref() == Some(message)
                    && link.as_ref().is_none_or(|l| e.link.as_deref() == Some(l))
                    && answers_send(e, id, *sent_at, true);
                ok.then_some(*yes)
            }
            StepKindIr::WaitEvent {
                event,
                condition,
                yes,
                ..
            } => {
                let view = self.w.view();
                let ok = e.kind == *event
                    && e.at >= self.inst.step_since
                    && condition.as_ref().is_none_or(|c| {
                        view.eval(
                            c,
                            Subject {
                                record: Some(e),
                                entry_event: self.inst.entry_event.as_ref(),
                            },
                        )
                    });
                ok.then_some(*yes)
            }
            _ => None,
        }
    }

    fn run(&mut self, mut flow: Flow) {
        for _ in 0..MAX_STEPS_PER_INPUT {
            match flow {
                Flow::Park => return,
                Flow::Go(None) => {
                    self.end(EndReason::Completed);
                    return;
                }
                Flow::Go(Some(id)) => {
                    self.inst.step = Some(id);
                    self.inst.step_since = self.w.now;
                    let name = self.j.step(id).name.clone();
                    if self.inst.path.len() < MAX_PATH {
                        self.inst.path.push(name.clone());
                    }
                    self.timeline(Happening::Step { step: name });
                    flow = self.arrive(id);
                }
            }
        }
        let step = self.current().map(|s| s.name.clone()).unwrap_or_default();
        self.timeline(Happening::Error {
            step,
            error: format!("more than {MAX_STEPS_PER_INPUT} steps without waiting"),
        });
        self.end(EndReason::Failed);
    }

    fn park(&mut self, how: Parked, due: Millis) -> Flow {
        self.inst.parked = Some(how);
        self.inst.due = Some(due);
        Flow::Park
    }

    fn arrive(&mut self, id: StepId) -> Flow {
        let step = self.j.step(id).clone();
        let now = self.w.now;
        match &step.kind {
            StepKindIr::Send { message, next } => self.send(&step.name, message, *next),
            StepKindIr::Wait {
                seconds, months, ..
            } => {
                let due = self.after(now, *months, *seconds);
                self.park(Parked::Waiting, due)
            }
            StepKindIr::WaitUntil {
                date,
                weekday,
                minute_of_day,
                zone,
                next,
            } => {
                let tz = pick_zone(
                    zone.as_deref(),
                    self.w.contact.timezone(),
                    self.w.default_zone,
                );
                let at =
                    next_local_moment(now, *date, *weekday, *minute_of_day, tz, Gap::ShiftByGap);
                if at > now {
                    return self.park(Parked::Waiting, at);
                }
                if !self.passed_at_once.contains(&id) {
                    self.passed_at_once.push(id);
                    return Flow::Go(*next);
                }
                // Back here at the same instant, through a loop: the next such moment.
                let later = next_local_moment(
                    now + 1,
                    *date,
                    *weekday,
                    *minute_of_day,
                    tz,
                    Gap::ShiftByGap,
                );
                if later > now {
                    return self.park(Parked::Waiting, later);
                }
                // A fixed date that has passed comes no more: the loop cannot wait on it.
                self.timeline(Happening::Error {
                    step: step.name.clone(),
                    error: "a loop came back to a `wait until` whose date has passed".into(),
                });
                self.end(EndReason::Failed);
                Flow::Park
            }
            StepKindIr::Check {
                verb,
                message,
                link,
                within_seconds,
                within_months,
                yes,
                ..
            } => {
                // Engagement recorded before the step counts: anything that answers the send.
                if let Some((_, id, sent_at)) = self.inst.last_sent(message).cloned() {
                    let target = TargetIr::Message {
                        journey: self.j.name.clone(),
                        message: message.clone(),
                        link: link.clone(),
                    };
                    let view = self.w.view();
                    if view
                        .engagements(*verb, &target)
                        .any(|e| answers_send(e, &id, sent_at, false))
                    {
                        self.took_branch("yes");
                        return Flow::Go(*yes);
                    }
                }
                let due = self.after(now, *within_months, *within_seconds);
                self.park(Parked::Waiting, due)
            }
            StepKindIr::WaitEvent {
                within_seconds,
                within_months,
                ..
            } => {
                let due = self.after(now, *within_months, *within_seconds);
                self.park(Parked::Waiting, due)
            }
            StepKindIr::Branch { arms, otherwise } => {
                let view = self.w.view();
                let subject = Subject {
                    record: None,
                    entry_event: self.inst.entry_event.as_ref(),
                };
                let taken = arms.iter().position(|(c, _)| view.eval(c, subject));
                let (to, label) = match taken {
                    Some(i) => (
                        arms[i].1,
                        if i == 0 {
                            "if".to_string()
                        } else {
                            format!("else if {i}")
                        },
                    ),
                    None => (*otherwise, "else".to_string()),
                };
                self.timeline(Happening::Branched {
                    step: step.name.clone(),
                    to: label,
                });
                Flow::Go(to)
            }
            StepKindIr::Experiment {
                arms,
                within_seconds,
                within_months,
                ..
            } => match experiment_arm(&self.inst.contact, &self.j.name, &step.name, arms) {
                Some(i) => {
                    self.timeline(Happening::Branched {
                        step: step.name.clone(),
                        to: arms[i].name.clone(),
                    });
                    Flow::Go(arms[i].next)
                }
                // The winner share waits for the measure, then takes the winner.
                None => {
                    let due = self.after(now, *within_months, *within_seconds);
                    self.park(Parked::Waiting, due)
                }
            },
            StepKindIr::Split { arms } => {
                let bucket =
                    (stable_hash(&[&self.inst.contact, &self.j.name, &step.name]) % 10_000) as u32;
                let mut acc = 0;
                let mut to = arms.last().map(|a| (a.next, a.name.clone()));
                for a in arms {
                    acc += a.basis_points;
                    if bucket < acc {
                        to = Some((a.next, a.name.clone()));
                        break;
                    }
                }
                let (next, name) = to.unwrap_or((None, String::new()));
                self.timeline(Happening::Branched {
                    step: step.name.clone(),
                    to: name,
                });
                Flow::Go(next)
            }
            StepKindIr::Compute { field, expr, next } => {
                let view = self.w.view();
                let subject = Subject {
                    record: None,
                    entry_event: self.inst.entry_event.as_ref(),
                };
                let lookup = |p: &[String]| view.lookup(p, subject);
                let computed = super::times::compute(
                    expr,
                    &lookup,
                    now,
                    pick_zone(None, self.w.contact.timezone(), self.w.default_zone),
                );
                match computed {
                    Ok(value) => self.set_field(field, value),
                    Err(reason) => {
                        let failed = Event {
                            contact: self.inst.contact.clone(),
                            kind: SET_FAILED.into(),
                            at: now,
                            journey: Some(self.j.name.clone()),
                            properties: serde_json::Map::from_iter([
                                ("step".to_string(), Value::String(step.name.clone())),
                                ("field".to_string(), Value::String(field.clone())),
                                ("reason".to_string(), Value::String(reason.clone())),
                            ]),
                            ..Event::default()
                        };
                        self.w.events.push(failed.clone());
                        self.fx.push(Effect::Record(failed));
                        self.timeline(Happening::Error {
                            step: step.name.clone(),
                            error: format!("set contact.{field}: {reason}"),
                        });
                    }
                }
                Flow::Go(*next)
            }
            StepKindIr::Set { field, value, next } => {
                self.set_field(field, value.clone());
                Flow::Go(*next)
            }
        }
    }

    fn set_field(&mut self, field: &str, value: Value) {
        self.w
            .contact
            .profile
            .insert(field.to_string(), value.clone());
        self.fx.push(Effect::SetField {
            field: field.to_string(),
            value: value.clone(),
        });
        self.timeline(Happening::Set {
            field: field.to_string(),
            value,
        });
    }

    /// Quiet hours, then the policy's caps, then the send itself.
    fn send(&mut self, step: &str, message: &str, next: Next) -> Flow {
        let now = self.w.now;
        let Some(msg) = self.j.messages.get(message) else {
            self.timeline(Happening::Error {
                step: step.into(),
                error: format!("message '{message}' is missing from the compiled journey"),
            });
            self.end(EndReason::Failed);
            return Flow::Park;
        };
        let channel = msg.channel;
        // The holdout is sent nothing: the contact walks the journey as if each send were
        // suppressed.
        if self.j.holds_out(&self.inst.contact) {
            self.timeline(Happening::Withheld {
                message: message.into(),
                reason: "holdout".into(),
            });
            return Flow::Go(next);
        }
        // Consent first: a contact who said no is not held for quiet hours or caps.
        if let Some(reason) = super::consent::suppression(
            self.w.program,
            self.j,
            msg,
            &self.w.contact,
            &self.w.events,
        ) {
            let suppressed = Event {
                contact: self.inst.contact.clone(),
                kind: MESSAGE_SUPPRESSED.into(),
                at: now,
                journey: Some(self.j.name.clone()),
                message: Some(message.into()),
                channel: Some(channel),
                properties: serde_json::Map::from_iter([(
                    "reason".to_string(),
                    Value::String(reason.clone()),
                )]),
                ..Event::default()
            };
            self.w.events.push(suppressed.clone());
            self.fx.push(Effect::Suppressed(suppressed));
            self.timeline(Happening::Suppressed {
                message: message.into(),
                reason,
            });
            return Flow::Go(next);
        }
        // Transactional journeys ignore quiet hours and caps.
        let quiet = if self.j.transactional {
            None
        } else {
            self.j.quiet.as_ref()
        };
        if let Some(q) = quiet {
            let tz = pick_zone(None, self.w.contact.timezone(), self.w.default_zone);
            if let Some(until) = quiet_until(now, q, tz) {
                self.timeline(Happening::Held {
                    step: step.into(),
                    until,
                    reason: "quiet hours".into(),
                });
                return self.park(Parked::Held, until);
            }
        }
        let policy = if self.j.transactional {
            None
        } else {
            self.j.policy.clone()
        };
        if let Some(policy) = policy {
            if let Some(release) = self.capped_until(&policy, channel) {
                let capped = Event {
                    contact: self.inst.contact.clone(),
                    kind: MESSAGE_CAPPED.into(),
                    at: now,
                    journey: Some(self.j.name.clone()),
                    message: Some(message.into()),
                    channel: Some(channel),
                    properties: serde_json::Map::from_iter([
                        ("policy".to_string(), Value::String(policy.name.clone())),
                        (
                            "action".to_string(),
                            Value::String(match policy.when_capped {
                                CappedAction::Delay => "delay".into(),
                                CappedAction::Skip => "skip".into(),
                            }),
                        ),
                    ]),
                    ..Event::default()
                };
                self.w.events.push(capped.clone());
                self.fx.push(Effect::Capped(capped));
                return match policy.when_capped {
                    CappedAction::Delay => {
                        self.timeline(Happening::Held {
                            step: step.into(),
                            until: release,
                            reason: format!("policy {}", policy.name),
                        });
                        self.park(Parked::Held, release)
                    }
                    CappedAction::Skip => {
                        self.timeline(Happening::Skipped {
                            message: message.into(),
                            policy: policy.name.clone(),
                        });
                        Flow::Go(next)
                    }
                };
            }
        }
        let n = self
            .inst
            .sent
            .iter()
            .filter(|(m, _, _)| m == message)
            .count();
        let message_id = if n == 0 {
            format!("{}:{}", self.inst.id, step)
        } else {
            format!("{}:{}:{}", self.inst.id, step, n + 1)
        };
        self.inst
            .sent
            .push((message.to_string(), message_id.clone(), now));
        // Counted by later caps in this batch; the runtime records the real delivery. Until
        // then it is pending: `received` means delivered, so it does not count as received.
        self.w.events.push(Event {
            contact: self.inst.contact.clone(),
            kind: MESSAGE_SENT.into(),
            at: now,
            journey: Some(self.j.name.clone()),
            message: Some(message.into()),
            channel: Some(channel),
            message_id: Some(message_id.clone()),
            properties: serde_json::Map::from_iter([(PENDING.to_string(), Value::Bool(true))]),
            ..Event::default()
        });
        self.fx.push(Effect::Send(SendJob {
            message_id,
            instance: self.inst.id,
            journey: self.j.name.clone(),
            version: self.inst.version.clone(),
            contact: self.inst.contact.clone(),
            message: message.into(),
            step: step.into(),
            channel,
            label: self.j.label.clone(),
            created_at: now,
        }));
        self.timeline(Happening::Sent {
            message: message.into(),
            channel,
        });
        Flow::Go(next)
    }

    /// `months` calendar months (in the contact's time zone) and `seconds` after `at`.
    fn after(&self, at: Millis, months: u32, seconds: i64) -> Millis {
        let at = if months == 0 {
            at
        } else {
            let tz = pick_zone(None, self.w.contact.timezone(), self.w.default_zone);
            add_months(at, months, tz)
        };
        at + seconds * 1000
    }

    /// When every cap of the policy allows one more send, if one does not now. A cap counts
    /// the sends whose period has not run out at `now` (`(now - period, now]` for a fixed
    /// period; a send counts for `per 1mo` until the same day and time of the next month): a
    /// held send goes when the oldest counted one leaves.
    fn capped_until(&self, policy: &PolicyIr, channel: Channel) -> Option<Millis> {
        let now = self.w.now;
        let mut release: Option<Millis> = None;
        for cap in &policy.caps {
            // A cap on one channel applies to that channel's sends only; a cap on `messages`
            // to the messages a contact gets (email, SMS, push), not to webhooks, which are
            // calls to other systems.
            let applies = match cap.channel {
                Some(c) => c == channel,
                None => channel != Channel::Webhook,
            };
            if !applies {
                continue;
            }
            // When each send stops counting: its time plus the period.
            let expiry = |at: Millis| self.after(at, cap.per_months, cap.per_seconds);
            let mut times: Vec<Millis> = self
                .w
                .events
                .iter()
                .filter(|e| e.kind == MESSAGE_SENT && e.at <= now && expiry(e.at) > now)
                .filter(|e| match cap.channel {
                    Some(c) => e.channel == Some(c),
                    None => e.channel != Some(Channel::Webhook),
                })
                .filter(|e| {
                    policy.scope == ScopeIr::Global || e.journey.as_deref() == Some(&self.j.name)
                })
                .map(|e| e.at)
                .collect();
            if (times.len() as u64) < cap.max {
                continue;
            }
            times.sort_unstable();
            let idx = times.len() - cap.max as usize;
            let at = expiry(times[idx]);
            release = Some(release.map_or(at, |r: Millis| r.max(at)));
        }
        release
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_hash_never_changes() {
        // `split random` must send a contact down the same arm on every machine and in every
        // release: these values are part of the contract.
        assert_eq!(stable_hash(&[]), 0xcbf2_9ce4_8422_2325);
        // FNV-1a 64 of "angela\0welcome\0split_1\0": bucket 4651 of 10,000.
        let h = stable_hash(&["angela", "welcome", "split_1"]);
        assert_eq!(h, 0xfa40_c613_295e_ac7b);
        assert_eq!(h % 10_000, 4651);
        // Parts are separated: ("ab", "c") and ("a", "bc") differ.
        assert_ne!(stable_hash(&["ab", "c"]), stable_hash(&["a", "bc"]));
    }

    fn click(at: Millis, message_id: Option<&str>) -> Event {
        Event {
            kind: "clicked".into(),
            at,
            message_id: message_id.map(String::from),
            ..Event::default()
        }
    }

    #[test]
    fn what_answers_a_send() {
        // Named message instance: only that one, never before it.
        assert!(answers_send(&click(10, Some("1:s")), "1:s", 10, false));
        assert!(!answers_send(&click(20, Some("1:s:2")), "1:s", 10, true));
        assert!(!answers_send(&click(5, Some("1:s")), "1:s", 10, true));
        // Unnamed: after the send; at its instant only as the step's input.
        assert!(answers_send(&click(11, None), "1:s", 10, false));
        assert!(answers_send(&click(10, None), "1:s", 10, true));
        assert!(!answers_send(&click(10, None), "1:s", 10, false));
        assert!(!answers_send(&click(9, None), "1:s", 10, true));
    }
}
