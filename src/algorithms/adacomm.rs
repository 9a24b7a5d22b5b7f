//! AdaComm (Wang & Joshi, "Adaptive communication strategies to achieve the best error-runtime
//! trade-off in local-update SGD"), as in the STSyn authors' `Comparisons.py` (specs/stsyn.md
//! §4): PASGD whose period τ shrinks as the loss falls. After each round, if the simulated time
//! before that round (the sum of the earlier rounds' times) exceeds `ind · interval`, with `ind`
//! from 0, then τ ← min(⌈√(F_now / F_0) · τ_0⌉, τ) for the next round and `ind` increases, where
//! F is the loss of the global model on a random batch of test samples (F_0 for the initial
//! model, F_now after the round just finished). This is the script's order: it compares the
//! cumulative time before adding the round's own time, so the first change comes after round 1
//! and applies from round 2.

use super::round::{Observation, RoundAlgorithm, uniform_over_uploaders};
use crate::learner::LocalJob;
use crate::sim::RoundPlan;
use crate::trace::RoundRecord;

/// The loss-probe cadence of AdaComm, shared with [`super::adasync::AdaSync`]: the loss of the
/// initial model and the latest probe, and the check "has the simulated time before the latest
/// round passed `ind · interval`?" that allows the `ind`-th change.
#[derive(Clone, Debug)]
pub struct LossSchedule {
    interval: f64,
    /// `ind`: changes so far.
    updates: u64,
    /// End of the latest round observed.
    elapsed: f64,
    /// End of the round before it: the cumulative time before the latest round's.
    elapsed_before: f64,
    first_loss: f64,
    latest_loss: f64,
}

impl LossSchedule {
    /// Changes at most once per `interval` of simulated time.
    pub fn new(interval: f64) -> Self {
        LossSchedule {
            interval,
            updates: 0,
            elapsed: 0.0,
            elapsed_before: 0.0,
            first_loss: f64::NAN,
            latest_loss: f64::NAN,
        }
    }

    /// F_now / F_0 if a change is due (counting it), else None.
    pub fn due(&mut self) -> Option<f64> {
        if self.elapsed_before > self.updates as f64 * self.interval && self.first_loss > 0.0 {
            self.updates += 1;
            Some((self.latest_loss / self.first_loss).max(0.0))
        } else {
            None
        }
    }

    /// The probe of the initial model.
    pub fn initial_probe(&mut self, loss: f64) {
        self.first_loss = loss;
        self.latest_loss = loss;
    }

    /// A round ended.
    pub fn observe(&mut self, o: &Observation) {
        self.elapsed_before = self.elapsed;
        self.elapsed = o.end;
        if let Some(loss) = o.probe_loss {
            self.latest_loss = loss;
        }
    }
}

/// AdaComm for training.
#[derive(Clone, Debug)]
pub struct AdaComm {
    initial_steps: u32,
    steps: u32,
    probe: usize,
    schedule: LossSchedule,
}

impl AdaComm {
    /// τ_0, time between τ updates, samples per loss probe.
    pub fn new(local_steps: u32, interval: f64, probe_batch: usize) -> Self {
        AdaComm {
            initial_steps: local_steps,
            steps: local_steps,
            probe: probe_batch,
            schedule: LossSchedule::new(interval),
        }
    }

    /// The current τ.
    pub fn local_steps(&self) -> u32 {
        self.steps
    }
}

impl RoundAlgorithm for AdaComm {
    fn plan(&mut self, _round: u64, plan: &mut RoundPlan) {
        if let Some(ratio) = self.schedule.due() {
            let proposed = ((ratio.sqrt() * self.initial_steps as f64).ceil() as u32).max(1);
            self.steps = proposed.min(self.steps);
        }
        plan.targets.fill(self.steps);
        plan.wait = plan.targets.len();
        plan.cap = None;
    }

    fn jobs(&mut self, record: &RoundRecord, jobs: &mut Vec<LocalJob>) {
        uniform_over_uploaders(record, jobs);
    }

    fn probe_samples(&self) -> Option<usize> {
        Some(self.probe)
    }

    fn initial_probe(&mut self, loss: f64) {
        self.schedule.initial_probe(loss);
    }

    fn observe(&mut self, o: &Observation) {
        self.schedule.observe(o);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tau_follows_the_scripts_order() {
        // Comparisons.py: after round i, if the time of rounds 0..i−1 exceeds ind·0.05 (ind from
        // 0), τ ← min(⌈√(F/F_0)·τ_0⌉, τ) for round i+1. Rounds of 0.012: the checks after rounds
        // 1, 5, 9, 13 pass (0.012 > 0, 0.06 > 0.05, 0.108 > 0.1, 0.156 > 0.15). With F/F_0 after
        // round i equal to 0.9^(2(i+1)), they propose ⌈10·0.9^(i+1)⌉ = 9, 6, 4, 3.
        let mut adacomm = AdaComm::new(10, 0.05, 400);
        adacomm.initial_probe(1.0);
        let mut plan = RoundPlan::uniform(4, 4, 10, None);
        let taus: Vec<u32> = (0..16u64)
            .map(|round| {
                adacomm.plan(round, &mut plan);
                let end = 0.012 * (round + 1) as f64;
                let loss = 0.9f64.powi(2 * (round as i32 + 1));
                adacomm.observe(&Observation { round, end, delta_norm: 0.0, probe_loss: Some(loss) });
                plan.targets[0]
            })
            .collect();
        assert_eq!(taus, [10, 10, 9, 9, 9, 9, 6, 6, 6, 6, 4, 4, 4, 4, 3, 3]);
    }
}
