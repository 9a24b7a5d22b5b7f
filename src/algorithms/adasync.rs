//! AdaSync (Dutta et al., AISTATS 2018; specs/baselines.md §4.4): K-sync SGD whose K grows during
//! training, trading the fast but noisy early iterations of a small K for the lower error floor
//! of a large one. The paper's switching rule is not available to this project (the spec marks
//! it unread), so the rule here is inferred: AdaComm's loss-driven rule (Wang & Joshi, the same
//! group) mirrored, on the same cadence ([`LossSchedule`]): once per `interval` of simulated time,
//! K ← max(K, min(M, ⌈K_0 · √(F_0 / F_now)⌉)), where F is the loss of the global model on a
//! random batch of test samples (F_0 for the initial model). K therefore never shrinks, and
//! grows by √(F_0/F) as the loss falls.

use super::adacomm::LossSchedule;
use super::round::{Observation, RoundAlgorithm, uniform_over_uploaders};
use crate::learner::LocalJob;
use crate::sim::RoundPlan;
use crate::trace::RoundRecord;

/// AdaSync for training.
#[derive(Clone, Debug)]
pub struct AdaSync {
    workers: usize,
    initial_wait: usize,
    wait: usize,
    probe: usize,
    schedule: LossSchedule,
}

impl AdaSync {
    /// M workers, K_0, time between K updates, samples per loss probe.
    pub fn new(workers: usize, wait: usize, interval: f64, probe_batch: usize) -> Self {
        AdaSync { workers, initial_wait: wait, wait, probe: probe_batch, schedule: LossSchedule::new(interval) }
    }

    /// The current K.
    pub fn wait(&self) -> usize {
        self.wait
    }
}

impl RoundAlgorithm for AdaSync {
    fn plan(&mut self, _round: u64, plan: &mut RoundPlan) {
        if let Some(ratio) = self.schedule.due() {
            let proposed = (self.initial_wait as f64 / ratio.sqrt()).ceil();
            // a loss that fell to 0 (ratio 0) proposes infinity: every worker
            let proposed = if proposed.is_finite() { (proposed as usize).min(self.workers) } else { self.workers };
            self.wait = self.wait.max(proposed);
        }
        plan.targets.fill(1);
        plan.wait = self.wait;
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
    fn k_grows_with_the_square_root_of_the_loss_ratio_on_adacomms_cadence() {
        // rounds of 0.012, interval 0.05: the checks after rounds 1, 5, 9, 13 pass (as in
        // AdaComm's test) and apply from the next round. With F/F_0 after round i equal to
        // 0.9^(2(i+1)), K_0 = 2 and M = 8 they propose ⌈2/0.9^(i+1)⌉: ⌈2.47⌉ = 3, ⌈3.76⌉ = 4,
        // ⌈5.74⌉ = 6 and ⌈8.7⌉ = 9, capped at M = 8.
        let mut adasync = AdaSync::new(8, 2, 0.05, 400);
        adasync.initial_probe(1.0);
        let mut plan = RoundPlan::uniform(8, 2, 1, None);
        let ks: Vec<usize> = (0..16u64)
            .map(|round| {
                adasync.plan(round, &mut plan);
                assert!(plan.targets.iter().all(|&t| t == 1));
                let end = 0.012 * (round + 1) as f64;
                let loss = 0.9f64.powi(2 * (round as i32 + 1));
                adasync.observe(&Observation { round, end, delta_norm: 0.0, probe_loss: Some(loss) });
                plan.wait
            })
            .collect();
        assert_eq!(ks, [2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 6, 6, 6, 6, 8, 8]);
        // a loss of zero asks for every worker
        adasync.initial_probe(1.0);
        adasync.observe(&Observation { round: 16, end: 10.0, delta_norm: 0.0, probe_loss: Some(0.0) });
        adasync.observe(&Observation { round: 17, end: 10.1, delta_norm: 0.0, probe_loss: Some(0.0) });
        adasync.plan(18, &mut plan);
        assert_eq!(plan.wait, 8);
    }
}
