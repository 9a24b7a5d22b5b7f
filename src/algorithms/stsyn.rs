//! STSyn (Zhu, Zhang, Wang, IEEE TSP 2024): M workers each aim for U local updates per round; the
//! server waits until the K-th fastest worker has finished U, no worker stops computing until
//! then (the fastest K−1 usually do more than U), the update in progress at that moment is
//! cancelled, and every worker with at least one completed update uploads; the server takes the
//! uniform average of the uploaded models (specs/stsyn.md §1.3).
//!
//! Two switches reproduce the authors' `Comparisons.py` (§1.4), both off by default: `max_steps`
//! caps the extra updates (the script stops a worker once it has done at least 1.5·U, so
//! after ⌈1.5·U⌉: 15 at U = 10, 8 at U = 5; specs/stsyn.md §1.4 says ⌊1.5·U⌋, which differs for
//! odd U), and `drop_most_updates` leaves the worker
//! with the most updates (the first one on ties) out of the average.

use super::round::{RoundAlgorithm, uniform_over_uploaders};
use crate::error::{Error, Result};
use crate::learner::LocalJob;
use crate::sim::RoundPlan;
use crate::trace::RoundRecord;

/// The round plan of STSyn with M workers, waiting for K, U local updates, optional cap.
pub fn plan(workers: usize, wait: usize, local_steps: u32, max_steps: Option<u32>) -> Result<RoundPlan> {
    let cap = max_steps.unwrap_or(u32::MAX);
    if cap < local_steps {
        return Err(Error::invalid("max steps", cap, format!("must be at least U = {local_steps}")));
    }
    Ok(RoundPlan::uniform(workers, wait, local_steps, Some(cap)))
}

/// STSyn for training.
#[derive(Clone, Debug)]
pub struct Stsyn {
    /// K.
    pub wait: usize,
    /// U.
    pub local_steps: u32,
    /// Cap on steps per round (None: uncapped, as in the paper).
    pub max_steps: Option<u32>,
    /// Leave the worker with the most updates out of the average.
    pub drop_most_updates: bool,
}

impl RoundAlgorithm for Stsyn {
    fn plan(&mut self, _round: u64, plan: &mut RoundPlan) {
        plan.targets.fill(self.local_steps);
        plan.wait = self.wait;
        plan.cap = Some(self.max_steps.unwrap_or(u32::MAX));
    }

    fn jobs(&mut self, record: &RoundRecord, jobs: &mut Vec<LocalJob>) {
        uniform_over_uploaders(record, jobs);
        if self.drop_most_updates && jobs.len() > 1 {
            // first index of the maximum, like numpy's argmax
            let most =
                jobs.iter().enumerate().fold(0, |best, (i, j)| if j.steps > jobs[best].steps { i } else { best });
            jobs.remove(most);
            let coef = 1.0 / jobs.len() as f64;
            jobs.iter_mut().for_each(|j| j.coef = coef);
        }
    }
}
