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
//! with replacement from its shard (specs/stsyn.md §5.1), so E epochs are H = E·n_k/B steps. The
//! deadline-and-drop extension that specs/baselines.md §3 lists as an option is not built.

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
    /// n_k per client; None for equal weights.
    samples: Option<Vec<usize>>,
    seeds: Seeds,
    /// The clients of the current round, ascending.
    chosen: Vec<usize>,
}

impl FedAvg {
    /// m clients a round, H local steps, equal weights; `seeds` for the sampling.
    pub fn new(participants: usize, local_steps: u32, seeds: Seeds) -> Self {
        FedAvg { participants, local_steps, samples: None, seeds, chosen: Vec::new() }
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
    }

    fn jobs(&mut self, _record: &RoundRecord, jobs: &mut Vec<LocalJob>) {
        let total: usize = match &self.samples {
            Some(n) => self.chosen.iter().map(|&k| n[k]).sum(),
            None => self.chosen.len(),
        };
        jobs.clear();
        jobs.extend(self.chosen.iter().map(|&worker| LocalJob {
            worker,
            steps: self.local_steps,
            coef: self.samples.as_ref().map_or(1, |n| n[worker]) as f64 / total as f64,
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
            fedavg.jobs(&RoundRecord::default(), &mut jobs);
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
}
