//! FLANP (Reisizadeh et al., "Straggler-resilient federated learning: leveraging the interplay
//! between statistical accuracy and system heterogeneity"), as compared in specs/stsyn.md §4:
//! S workers each run τ local steps and the server averages them uniformly; whenever the norm of
//! the averaged update is at most `threshold`, S doubles (up to M).
//!
//! Which S workers train is an option. `fastest` (default, the FLANP paper's idea): all M start,
//! the round closes when S of them have finished τ steps, and those S train (when step times tie
//! and more than S finish at the closing instant, S of them are drawn uniformly from the seeded
//! algorithm stream, so exactly S train and upload). `random` (the STSyn
//! authors' `Comparisons.py`): S workers are drawn uniformly without replacement, but the round
//! is charged the time of the S-th fastest of all M workers.

use rand::seq::index::sample;

use super::round::{Observation, RoundAlgorithm};
use crate::config::Selection;
use crate::learner::LocalJob;
use crate::rng::{Purpose, Seeds};
use crate::sim::RoundPlan;
use crate::trace::RoundRecord;

/// FLANP for training.
#[derive(Clone, Debug)]
pub struct Flanp {
    workers: usize,
    participants: usize,
    local_steps: u32,
    threshold: f64,
    selection: Selection,
    seeds: Seeds,
}

impl Flanp {
    /// M workers, initial S, τ, doubling threshold, selection; `seeds` for the random selection.
    pub fn new(
        workers: usize,
        participants: usize,
        local_steps: u32,
        threshold: f64,
        selection: Selection,
        seeds: Seeds,
    ) -> Self {
        Flanp { workers, participants, local_steps, threshold, selection, seeds }
    }

    /// The current S.
    pub fn participants(&self) -> usize {
        self.participants
    }
}

impl RoundAlgorithm for Flanp {
    fn plan(&mut self, _round: u64, plan: &mut RoundPlan) {
        plan.targets.fill(self.local_steps);
        plan.wait = self.participants;
        plan.cap = None;
        plan.upload_after = self.local_steps;
    }

    fn jobs(&mut self, record: &RoundRecord, jobs: &mut Vec<LocalJob>) {
        jobs.clear();
        let steps = self.local_steps;
        match self.selection {
            Selection::Fastest => {
                let finished: Vec<usize> = (0..record.counts.len()).filter(|&w| record.counts[w] >= steps).collect();
                if finished.len() <= self.participants {
                    jobs.extend(finished.into_iter().map(|worker| LocalJob { worker, steps, coef: 0.0 }));
                } else {
                    // more than S finished τ steps at the closing instant (tied times): S of
                    // them, drawn uniformly from the round's algorithm stream
                    let mut rng = self.seeds.stream(Purpose::Algorithm, record.round, 1);
                    let mut chosen = sample(&mut rng, finished.len(), self.participants).into_vec();
                    chosen.sort_unstable();
                    jobs.extend(chosen.into_iter().map(|i| LocalJob { worker: finished[i], steps, coef: 0.0 }));
                }
            }
            Selection::Random => {
                let mut rng = self.seeds.stream(Purpose::Algorithm, record.round, 0);
                let mut chosen = sample(&mut rng, record.counts.len(), self.participants).into_vec();
                chosen.sort_unstable();
                jobs.extend(chosen.into_iter().map(|worker| LocalJob { worker, steps, coef: 0.0 }));
            }
        }
        let coef = 1.0 / jobs.len() as f64;
        jobs.iter_mut().for_each(|j| j.coef = coef);
    }

    fn observe(&mut self, o: &Observation) {
        if o.delta_norm <= self.threshold {
            self.participants = (2 * self.participants).min(self.workers);
        }
    }
}
