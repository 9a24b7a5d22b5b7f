//! FedNova (Wang et al., NeurIPS 2020; specs/baselines.md §12, specs/stsyn.md §4): every worker m
//! runs its own number of local steps τ_m (drawn uniformly from {min_local_steps, ...,
//! max_local_steps}: once before training, as in `Comparisons.py`, or again every round with
//! `redraw_local_steps`, as in FedNova's own experiments), the server waits for all, and
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
    /// Where the τ_m come from: their range and the run's seeds (None: given).
    draws: Option<(u32, u32, Seeds)>,
    /// Draw the τ_m of round r again, from stream (Algorithm, r, 2).
    redraw: bool,
    /// p_m, summing to 1; None for 1/M.
    weights: Option<Vec<f64>>,
}

impl FedNova {
    /// Draws τ_m for M workers from stream (Algorithm, 0, 0) of `seeds`.
    pub fn new(workers: usize, min_local_steps: u32, max_local_steps: u32, extra_step: bool, seeds: Seeds) -> Self {
        let mut steps = vec![0; workers];
        draw(&mut steps, min_local_steps, max_local_steps, seeds.stream(Purpose::Algorithm, 0, 0));
        FedNova {
            steps,
            extra_step,
            weights: None,
            draws: Some((min_local_steps, max_local_steps, seeds)),
            redraw: false,
        }
    }

    /// With given per-worker τ_m.
    pub fn with_steps(steps: Vec<u32>, extra_step: bool) -> Self {
        FedNova { steps, extra_step, weights: None, draws: None, redraw: false }
    }

    /// Draws the τ_m again every round (when they were drawn at all).
    pub fn redrawn_every_round(mut self, redraw: bool) -> Self {
        self.redraw = redraw;
        self
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
    fn plan(&mut self, round: u64, plan: &mut RoundPlan) {
        if let (true, Some((low, high, seeds))) = (self.redraw, self.draws) {
            draw(&mut self.steps, low, high, seeds.stream(Purpose::Algorithm, round, 2));
        }
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

/// Fills `steps` with independent uniform draws from {low, ..., high}.
fn draw(steps: &mut [u32], low: u32, high: u32, mut rng: crate::rng::Stream) {
    steps.iter_mut().for_each(|t| *t = rng.random_range(low..=high));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(fednova: &mut FedNova, round: u64) -> Vec<u32> {
        let mut plan = RoundPlan { targets: vec![0; 6], ..Default::default() };
        fednova.plan(round, &mut plan);
        plan.targets
    }

    #[test]
    fn local_steps_are_drawn_once_or_again_every_round() {
        let seeds = Seeds::new(7);
        let mut once = FedNova::new(6, 1, 1000, false, seeds);
        let first = targets(&mut once, 0);
        assert_eq!(first, once.local_steps());
        assert_eq!(targets(&mut once, 1), first);
        let mut again = FedNova::new(6, 1, 1000, false, seeds).redrawn_every_round(true);
        let rounds: Vec<Vec<u32>> = (0..3).map(|r| targets(&mut again, r)).collect();
        assert!(rounds[0] != rounds[1] && rounds[1] != rounds[2], "{rounds:?}");
        assert!(rounds.iter().flatten().all(|t| (1..=1000).contains(t)));
        // the draws of a round depend on the round alone
        let mut other = FedNova::new(6, 1, 1000, false, seeds).redrawn_every_round(true);
        assert_eq!(targets(&mut other, 2), rounds[2]);
        // given τ_m are never redrawn
        let mut given = FedNova::with_steps(vec![3; 6], false).redrawn_every_round(true);
        assert_eq!(targets(&mut given, 5), [3; 6]);
    }
}
