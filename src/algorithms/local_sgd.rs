//! Fully synchronous local SGD (periodic averaging, PASGD): every one of the M workers runs U
//! local steps from the global model, the server waits for all of them and averages
//! (specs/baselines.md §3). With U = 1 it is fully synchronous minibatch SGD (§2). Fast workers
//! idle once they have done U steps.

use crate::sim::RoundPlan;

/// The round plan: wait for all M workers to finish U steps, no extra steps.
pub fn plan(workers: usize, local_steps: u32) -> RoundPlan {
    RoundPlan::uniform(workers, workers, local_steps, None)
}
