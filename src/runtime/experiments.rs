//! Experiments' winners: decided once, when the first contact of an experiment's winner
//! share ends its wait, from the arms' rates among the contacts who entered them so far
//! (`engine::experiment::Tally`), and recorded as an `experiment.decided` event on the
//! pseudo-contact `journey:NAME`, in the same batch. Later contacts, and a runtime started
//! again, read the decision back: it never changes.
//!
//! Where several daemons share the store, two could decide at once, and the pseudo-contact
//! is in one daemon's partition: the decision is first made durable as a meta record that
//! only its first writer sets (`Store::meta_if_absent`), which every daemon then follows;
//! the event is written by the daemon that holds `journey:NAME`'s partition when its own
//! decision is the one kept, and the record is what is read back first.

use super::*;
use crate::compile::ir::StepKindIr;
use crate::engine::experiment::Tally;
use crate::engine::step::decision_key;
use crate::engine::EXPERIMENT_DECIDED;

/// The meta record of an experiment's decision (the `experiment.decided` event, as JSON).
fn decision_meta(journey: &str, step: &str) -> String {
    format!("experiment/{journey}/{step}")
}

/// The pseudo-contact that holds a journey's own records (experiment decisions).
pub fn journey_record_contact(journey: &str) -> String {
    format!("journey:{journey}")
}

/// The recorded decision of an experiment, if any: (winner, the event that says so).
pub fn recorded_decision(
    store: &Store,
    journey: &str,
    step: &str,
) -> std::result::Result<Option<Event>, StoreError> {
    if let Some(v) = store.meta(&decision_meta(journey, step))? {
        if let Ok(e) = serde_json::from_slice::<Event>(&v) {
            return Ok(Some(e));
        }
    }
    Ok(store
        .events_of(&journey_record_contact(journey))?
        .into_iter()
        .find(|e| {
            e.kind == EXPERIMENT_DECIDED
                && e.properties.get("experiment").and_then(Value::as_str) == Some(step)
        }))
}

impl Runtime {
    /// Before a timer moves `inst`: if it is the end of an experiment's wait for its
    /// winner, puts the winner in the world (deciding it first if nobody has).
    pub(super) fn decide_experiment(
        &mut self,
        inst: &Instance,
        due: Millis,
        world: &mut World,
        work: &mut BatchInProgress,
    ) -> Result<()> {
        if inst.due != Some(due) || !inst.is_active() {
            return Ok(());
        }
        let (Some(id), Some(ir)) = (inst.step, self.version(&inst.version)?) else {
            return Ok(());
        };
        let step = ir.step(id);
        let StepKindIr::Experiment { metric, arms, .. } = &step.kind else {
            return Ok(());
        };
        let key = decision_key(&ir.name, &step.name);
        if world.decisions.contains_key(&key) {
            return Ok(());
        }
        if let Some(w) = self.deployed.decisions.get(&key) {
            world.decisions.insert(key, w.clone());
            return Ok(());
        }
        if let Some(e) = recorded_decision(&self.store, &ir.name, &step.name)? {
            if let Some(w) = e.properties.get("winner").and_then(Value::as_str) {
                self.deployed.decisions.insert(key.clone(), w.to_string());
                world.decisions.insert(key, w.to_string());
                return Ok(());
            }
        }
        // Nobody decided: count every contact who entered an arm so far.
        let mut tally = Tally::new(&ir.name, &step.name, *metric, arms);
        for c in self.store.contacts() {
            let c = c?;
            let instances = self.store.instances_of(&c.id)?;
            if !instances.iter().any(|i| i.journey == ir.name) {
                continue;
            }
            let events = self.store.events_of(&c.id)?;
            tally.add(&c.id, ir.holds_out(&c.id), &instances, &events);
        }
        let winner = tally.tallies[tally.winner()].arm.clone();
        let decided = Event {
            contact: journey_record_contact(&ir.name),
            kind: EXPERIMENT_DECIDED.into(),
            at: world.now,
            journey: Some(ir.name.clone()),
            properties: serde_json::Map::from_iter([
                ("experiment".to_string(), Value::String(step.name.clone())),
                ("metric".to_string(), Value::String(metric.as_str().into())),
                ("winner".to_string(), Value::String(winner.clone())),
                (
                    "arms".to_string(),
                    Value::Array(
                        tally
                            .tallies
                            .iter()
                            .map(|t| {
                                serde_json::json!({
                                    "arm": t.arm,
                                    "contacts": t.contacts,
                                    "successes": t.successes,
                                    "rate": t.rate(),
                                })
                            })
                            .collect(),
                    ),
                ),
            ]),
            ..Event::default()
        };
        // The first decision made durable is the one: another daemon's, if it came first.
        let mine = serde_json::to_vec(&decided).expect("events serialize");
        let kept = self
            .store
            .meta_if_absent(&decision_meta(&ir.name, &step.name), &mine)?;
        let winner = if kept == mine {
            if self.store.works_on(&decided.contact) {
                work.batch.put_event(&decided, self.store.next_id()?);
            }
            winner
        } else {
            serde_json::from_slice::<Event>(&kept)
                .ok()
                .and_then(|e| e.properties.get("winner")?.as_str().map(String::from))
                .unwrap_or(winner)
        };
        self.deployed.decisions.insert(key.clone(), winner.clone());
        world.decisions.insert(key, winner);
        Ok(())
    }
}
