//! Fully synchronous local SGD — periodic averaging (PASGD): every one of the M workers runs τ
//! local steps from the global model, the server waits for all of them and takes the uniform
//! average (specs/baselines.md §3, specs/stsyn.md §4). With τ = 1 it is fully synchronous
//! minibatch SGD (baselines §2). Fast workers idle once they have done τ steps.

use super::round::{RoundAlgorithm, uniform_over_uploaders};
use crate::learner::LocalJob;
use crate::sim::RoundPlan;
use crate::trace::RoundRecord;

/// The round plan: wait for all M workers to finish U steps, no extra steps.
pub fn plan(workers: usize, local_steps: u32) -> RoundPlan {
    RoundPlan::uniform(workers, workers, local_steps, None)
}

/// PASGD (and synchronous SGD) for training.
#[derive(Clone, Debug)]
pub struct Pasgd {
    /// τ.
    pub local_steps: u32,
}

impl RoundAlgorithm for Pasgd {
    fn plan(&mut self, _round: u64, plan: &mut RoundPlan) {
        plan.targets.fill(self.local_steps);
        plan.wait = plan.targets.len();
        plan.cap = None;
    }

    fn jobs(&mut self, record: &RoundRecord, jobs: &mut Vec<LocalJob>) {
        uniform_over_uploaders(record, jobs);
    }
}
