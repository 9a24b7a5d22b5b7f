//! K-sync SGD (Dutta et al., AISTATS 2018; specs/baselines.md §4.2): each of the M workers
//! computes one minibatch gradient at the current model; the server updates with the mean of the
//! gradients of the first K workers to finish and cancels the rest; everybody restarts from the
//! new model. A gradient that finishes at exactly the same instant as the K-th one is used too.
//! (Averaging the K models after one step each is the same update: w − η·mean(g).)

use super::round::{RoundAlgorithm, uniform_over_uploaders};
use crate::learner::LocalJob;
use crate::sim::RoundPlan;
use crate::trace::RoundRecord;

/// The round plan: wait for K workers to finish one step, no extra steps.
pub fn plan(workers: usize, wait: usize) -> RoundPlan {
    RoundPlan::uniform(workers, wait, 1, None)
}

/// K-sync for training.
#[derive(Clone, Debug)]
pub struct KSync {
    /// K.
    pub wait: usize,
}

impl RoundAlgorithm for KSync {
    fn plan(&mut self, _round: u64, plan: &mut RoundPlan) {
        plan.targets.fill(1);
        plan.wait = self.wait;
        plan.cap = None;
    }

    fn jobs(&mut self, record: &RoundRecord, jobs: &mut Vec<LocalJob>) {
        uniform_over_uploaders(record, jobs);
    }
}
