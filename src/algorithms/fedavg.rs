//! FedAvg with partial participation (McMahan et al., AISTATS 2017; specs/baselines.md §3):
//! every round the server samples m of the M clients uniformly without replacement (from the
//! round's algorithm stream, so every run with the same seed samples the same clients), each of
//! them runs H local SGD steps from the global model, the server waits for all m (the others
//! idle; nothing is cancelled), and sets the global model to the average of the m models with
//! weights n_k / Σ_{j∈S_t} n_j, the clients' shares of the training samples
//! (`weighting = "uniform"`: 1/m). The paper's m = max(⌊C·M⌋, 1) for a fraction C, or m given.
//! With every client taking part and equal weights this is PASGD, step for step (tested).
//!
//! The paper's clients run E epochs of minibatches of size B; here a client draws its minibatches
//! with replacement from its shard (specs/stsyn.md §5.1), so E epochs are H = E·n_k/B steps.
//!
//! `deadline` D is the deadline-and-drop extension that specs/baselines.md §3 lists as an option
//! (not in the original paper) [inferred: the spec gives no rule for D, so it is one constant]:
//! the round closes D after it starts if not every sampled client has finished its H steps by
//! then; the unfinished are dropped (their work is cancelled and they upload nothing), and the
//! average is over the finished ones, weighted the same way. A round in which nobody finishes
//! leaves the model unchanged.

use rand::seq::index::sample;

use super::round::RoundAlgorithm;
use crate::learner::LocalJob;
use crate::rng::{Purpose, Seeds};
use crate::sim::RoundPlan;
use crate::trace::RoundRecord;

/// FedAvg for training.
#[derive(Clone, Debug)]
pub struct FedAvg {
    participants: usize,
    local_steps: u32,
    /// D, relative to the round's start.
    deadline: Option<f64>,
    /// n_k per client; None for equal weights.
    samples: Option<Vec<usize>>,
    seeds: Seeds,
    /// The clients of the current round, ascending.
    chosen: Vec<usize>,
}

impl FedAvg {
    /// m clients a round, H local steps, equal weights; `seeds` for the sampling.
    pub fn new(participants: usize, local_steps: u32, seeds: Seeds) -> Self {
        FedAvg { participants, local_steps, deadline: None, samples: None, seeds, chosen: Vec::new() }
    }

    /// Drops the clients that have not finished D after the round starts.
    pub fn with_deadline(mut self, deadline: Option<f64>) -> Self {
        self.deadline = deadline;
        self
    }

    /// Weights proportional to `samples[k]`, client k's training samples, instead of 1/m.
    pub fn weighted_by(mut self, samples: &[usize]) -> Self {
        self.samples = Some(samples.to_vec());
        self
    }

    /// The clients sampled for the current round.
    pub fn chosen(&self) -> &[usize] {
        &self.chosen
    }
}

impl RoundAlgorithm for FedAvg {
    fn plan(&mut self, round: u64, plan: &mut RoundPlan) {
        let mut rng = self.seeds.stream(Purpose::Algorithm, round, 0);
        self.chosen = sample(&mut rng, plan.targets.len(), self.participants).into_vec();
        self.chosen.sort_unstable();
        plan.targets.fill(0);
        for &k in &self.chosen {
            plan.targets[k] = self.local_steps;
        }
        plan.wait = self.participants;
        plan.cap = None;
        plan.upload_after = self.local_steps;
        plan.deadline = self.deadline;
    }

    fn jobs(&mut self, record: &RoundRecord, jobs: &mut Vec<LocalJob>) {
        let weight = |k: usize| self.samples.as_ref().map_or(1, |n| n[k]);
        let finished = || self.chosen.iter().copied().filter(|&k| record.counts[k] >= self.local_steps);
        let total: usize = finished().map(weight).sum();
        jobs.clear();
        jobs.extend(finished().map(|worker| LocalJob {
            worker,
            steps: self.local_steps,
            coef: weight(worker) as f64 / total as f64,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_round_samples_m_clients_and_weights_them_by_their_samples() {
        let (m_total, m) = (10, 3);
        let samples: Vec<usize> = (1..=m_total).collect();
        let mut fedavg = FedAvg::new(m, 4, Seeds::new(7)).weighted_by(&samples);
        let mut plan = RoundPlan::uniform(m_total, 1, 1, None);
        let mut seen = vec![false; m_total];
        let mut jobs = Vec::new();
        for round in 0..50 {
            fedavg.plan(round, &mut plan);
            assert_eq!((plan.participants(), plan.wait, plan.cap, plan.upload_after), (m, m, None, 4));
            let chosen = fedavg.chosen().to_vec();
            assert!(chosen.iter().all(|&k| plan.targets[k] == 4));
            let record = RoundRecord { counts: plan.targets.clone(), ..RoundRecord::default() };
            fedavg.jobs(&record, &mut jobs);
            let total: usize = chosen.iter().map(|&k| samples[k]).sum();
            for (job, &k) in jobs.iter().zip(&chosen) {
                assert_eq!((job.worker, job.steps), (k, 4));
                assert_eq!(job.coef, samples[k] as f64 / total as f64);
            }
            chosen.iter().for_each(|&k| seen[k] = true);
        }
        // 0.7^50 ≈ 2e-8: a client never sampled in 50 rounds would mean the sampling is stuck
        assert!(seen.iter().all(|&s| s), "{seen:?}");
        // the same seed samples the same clients
        let mut again = FedAvg::new(m, 4, Seeds::new(7));
        again.plan(49, &mut plan);
        fedavg.plan(49, &mut plan);
        assert_eq!(again.chosen(), fedavg.chosen());
    }

    #[test]
    fn a_deadline_drops_the_unfinished_and_reweights_the_rest() {
        let samples = [10, 20, 30, 40];
        let mut fedavg = FedAvg::new(4, 3, Seeds::new(1)).weighted_by(&samples).with_deadline(Some(2.5));
        let mut plan = RoundPlan::uniform(4, 1, 1, None);
        fedavg.plan(0, &mut plan);
        assert_eq!(plan.deadline, Some(2.5));
        let mut jobs = Vec::new();
        // clients 1 and 3 finished their 3 steps, 0 and 2 were cut at 2 and 0
        let record = RoundRecord { counts: vec![2, 3, 0, 3], ..RoundRecord::default() };
        fedavg.jobs(&record, &mut jobs);
        let got: Vec<(usize, f64)> = jobs.iter().map(|j| (j.worker, j.coef)).collect();
        assert_eq!(got, vec![(1, 20.0 / 60.0), (3, 40.0 / 60.0)]);
        // nobody finished: no jobs (the learner keeps the model)
        fedavg.jobs(&RoundRecord { counts: vec![0; 4], ..RoundRecord::default() }, &mut jobs);
        assert!(jobs.is_empty());
    }
}
