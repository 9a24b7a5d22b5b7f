//! FedNova (Wang et al., NeurIPS 2020; specs/baselines.md §12, specs/stsyn.md §4): every worker m
//! runs its own number of local steps τ_m (drawn once, uniformly from
//! {min_local_steps, ..., max_local_steps}, before training), the server waits for all, and
//! normalises: w ← w + τ_eff · Σ_m p_m (w_m − w) / τ_m with τ_eff = Σ_m p_m τ_m, which removes
//! the bias toward workers that take more steps. The weights are p_m = n_m/n, worker m's share of
//! the training samples, as in FedNova's code (specs/baselines.md §12), or p_m = 1/M as in the
//! STSyn authors' `Comparisons.py` (`weighting = "uniform"`); with equal shards they agree.
//!
//! `extra_step` reproduces a quirk of the STSyn authors' `Comparisons.py`: workers run τ_m + 1
//! steps but are charged (and normalised by) τ_m.

use rand::Rng;

use super::round::RoundAlgorithm;
use crate::learner::LocalJob;
use crate::rng::{Purpose, Seeds};
use crate::sim::RoundPlan;
use crate::trace::RoundRecord;

/// FedNova for training.
#[derive(Clone, Debug)]
pub struct FedNova {
    steps: Vec<u32>,
    extra_step: bool,
    /// p_m, summing to 1; None for 1/M.
    weights: Option<Vec<f64>>,
}

impl FedNova {
    /// Draws τ_m for M workers from stream (Algorithm, 0, 0) of `seeds`.
    pub fn new(workers: usize, min_local_steps: u32, max_local_steps: u32, extra_step: bool, seeds: Seeds) -> Self {
        let mut rng = seeds.stream(Purpose::Algorithm, 0, 0);
        let steps = (0..workers).map(|_| rng.random_range(min_local_steps..=max_local_steps)).collect();
        FedNova { steps, extra_step, weights: None }
    }

    /// With given per-worker τ_m.
    pub fn with_steps(steps: Vec<u32>, extra_step: bool) -> Self {
        FedNova { steps, extra_step, weights: None }
    }

    /// Weights p_m proportional to `samples[m]` (worker m's training samples) instead of 1/M;
    /// equal counts keep 1/M exactly.
    pub fn weighted_by(mut self, samples: &[usize]) -> Self {
        if samples.windows(2).all(|w| w[0] == w[1]) {
            return self;
        }
        let total: usize = samples.iter().sum();
        self.weights = Some(samples.iter().map(|&n| n as f64 / total as f64).collect());
        self
    }

    /// The per-worker τ_m.
    pub fn local_steps(&self) -> &[u32] {
        &self.steps
    }
}

impl RoundAlgorithm for FedNova {
    fn plan(&mut self, _round: u64, plan: &mut RoundPlan) {
        plan.targets.copy_from_slice(&self.steps);
        plan.wait = plan.targets.len();
        plan.cap = None;
    }

    fn jobs(&mut self, _record: &RoundRecord, jobs: &mut Vec<LocalJob>) {
        let m = self.steps.len() as f64;
        let tau_eff = match &self.weights {
            None => self.steps.iter().map(|&t| t as f64).sum::<f64>() / m,
            Some(p) => self.steps.iter().zip(p).map(|(&t, p)| p * t as f64).sum::<f64>(),
        };
        jobs.clear();
        jobs.extend(self.steps.iter().enumerate().map(|(worker, &tau)| LocalJob {
            worker,
            steps: tau + self.extra_step as u32,
            coef: match &self.weights {
                None => tau_eff / (m * tau as f64),
                Some(p) => p[worker] * tau_eff / tau as f64,
            },
        }));
    }
}
