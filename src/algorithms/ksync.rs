//! K-sync SGD (Dutta et al., AISTATS 2018; specs/baselines.md §4.2): each of the M workers
//! computes one minibatch gradient at the current model; the server updates with the gradients of
//! the first K workers to finish and cancels the rest; everybody restarts from the new model.
//! A gradient that finishes at exactly the same instant as the K-th one is used too.

use crate::sim::RoundPlan;

/// The round plan: wait for K workers to finish one step, no extra steps.
pub fn plan(workers: usize, wait: usize) -> RoundPlan {
    RoundPlan::uniform(workers, wait, 1, None)
}
