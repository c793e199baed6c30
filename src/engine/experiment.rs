//! Experiments: which arm a contact took, and each arm's rate of the measured verb among the
//! contacts who entered it, from their instances and histories. The runtime decides the
//! winner with it (once, recorded as `experiment.decided`); reports show it.

use super::model::{EndReason, Event, Instance};
use crate::compile::ir::{experiment_arm, ExperimentArmIr, ExperimentMetric};
use serde::{Deserialize, Serialize};

/// One arm's measure: the contacts who entered it, and those of them who did the verb.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArmTally {
    pub arm: String,
    /// The arm's share, in hundredths of a percent.
    pub basis_points: u32,
    pub contacts: u64,
    pub successes: u64,
}

impl ArmTally {
    /// `successes / contacts` in percent (0 without contacts).
    pub fn rate(&self) -> f64 {
        if self.contacts == 0 {
            0.0
        } else {
            100.0 * self.successes as f64 / self.contacts as f64
        }
    }
}

/// Counts experiments' arms over contacts, one contact at a time.
pub struct Tally<'a> {
    journey: &'a str,
    step: &'a str,
    metric: ExperimentMetric,
    arms: &'a [ExperimentArmIr],
    pub tallies: Vec<ArmTally>,
}

impl<'a> Tally<'a> {
    pub fn new(
        journey: &'a str,
        step: &'a str,
        metric: ExperimentMetric,
        arms: &'a [ExperimentArmIr],
    ) -> Self {
        Tally {
            journey,
            step,
            metric,
            arms,
            tallies: arms
                .iter()
                .map(|a| ArmTally {
                    arm: a.name.clone(),
                    basis_points: a.basis_points,
                    ..ArmTally::default()
                })
                .collect(),
        }
    }

    /// Adds a contact: its instances (any journey) and history. A contact of the journey's
    /// holdout (`held_out`) was sent nothing and counts for no arm.
    pub fn add(&mut self, contact: &str, held_out: bool, instances: &[Instance], events: &[Event]) {
        if held_out {
            return;
        }
        let mine: Vec<&Instance> = instances
            .iter()
            .filter(|i| i.journey == self.journey)
            .collect();
        if !mine.iter().any(|i| i.path.iter().any(|s| s == self.step)) {
            return;
        }
        let Some(arm) = experiment_arm(contact, self.journey, self.step, self.arms) else {
            return;
        };
        let messages = &self.arms[arm].messages;
        let success = match self.metric {
            ExperimentMetric::Converted => {
                mine.iter().any(|i| i.ended == Some(EndReason::Converted))
            }
            m => events.iter().any(|e| {
                let verb =
                    e.kind == "clicked" || (m == ExperimentMetric::Opened && e.kind == "opened");
                verb && e.journey.as_deref() == Some(self.journey)
                    && e.message.as_ref().is_some_and(|x| messages.contains(x))
            }),
        };
        let t = &mut self.tallies[arm];
        t.contacts += 1;
        t.successes += success as u64;
    }

    /// The arm with the highest rate; a tie takes the first.
    pub fn winner(&self) -> usize {
        let mut best = 0;
        for (i, t) in self.tallies.iter().enumerate() {
            if t.rate() > self.tallies[best].rate() {
                best = i;
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(name: &str, bp: u32, messages: &[&str]) -> ExperimentArmIr {
        ExperimentArmIr {
            name: name.into(),
            basis_points: bp,
            next: None,
            messages: messages.iter().map(|m| m.to_string()).collect(),
        }
    }

    #[test]
    fn ties_take_the_first_arm_and_rates_count_contacts_who_entered() {
        let arms = [arm("a", 5000, &["ma"]), arm("b", 5000, &["mb"])];
        let mut t = Tally::new("j", "x", ExperimentMetric::Clicked, &arms);
        assert_eq!(t.winner(), 0);
        // Contacts who never reached the step count for nobody.
        t.add("zed", false, &[], &[]);
        assert_eq!(t.tallies[0].contacts + t.tallies[1].contacts, 0);
        t.tallies[1].contacts = 2;
        t.tallies[1].successes = 1;
        t.tallies[0].contacts = 4;
        t.tallies[0].successes = 2;
        assert_eq!(t.winner(), 0, "a tie goes to the first arm");
        t.tallies[1].successes = 2;
        assert_eq!(t.winner(), 1);
    }
}
