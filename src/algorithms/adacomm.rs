//! AdaComm (Wang & Joshi, "Adaptive communication strategies to achieve the best error-runtime
//! trade-off in local-update SGD"), as in the STSyn authors' `Comparisons.py` (specs/stsyn.md
//! §4): PASGD whose period τ shrinks as the loss falls. Before each round, if the simulated time
//! so far exceeds `ind · interval`, τ ← min(⌈√(F_now / F_0) · τ_0⌉, τ) and `ind` increases, where
//! F is the loss of the global model on a random batch of test samples (F_0 for the initial
//! model, F_now after the latest round).

use super::round::{Observation, RoundAlgorithm, uniform_over_uploaders};
use crate::learner::LocalJob;
use crate::sim::RoundPlan;
use crate::trace::RoundRecord;

/// AdaComm for training.
#[derive(Clone, Debug)]
pub struct AdaComm {
    initial_steps: u32,
    steps: u32,
    interval: f64,
    probe: usize,
    updates: u64,
    elapsed: f64,
    first_loss: f64,
    latest_loss: f64,
}

impl AdaComm {
    /// τ_0, time between τ updates, samples per loss probe.
    pub fn new(local_steps: u32, interval: f64, probe_batch: usize) -> Self {
        AdaComm {
            initial_steps: local_steps,
            steps: local_steps,
            interval,
            probe: probe_batch,
            updates: 1,
            elapsed: 0.0,
            first_loss: f64::NAN,
            latest_loss: f64::NAN,
        }
    }

    /// The current τ.
    pub fn local_steps(&self) -> u32 {
        self.steps
    }
}

impl RoundAlgorithm for AdaComm {
    fn plan(&mut self, _round: u64, plan: &mut RoundPlan) {
        if self.elapsed > self.updates as f64 * self.interval && self.first_loss > 0.0 {
            let ratio = (self.latest_loss / self.first_loss).max(0.0);
            let proposed = ((ratio.sqrt() * self.initial_steps as f64).ceil() as u32).max(1);
            self.steps = proposed.min(self.steps);
            self.updates += 1;
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
        self.first_loss = loss;
        self.latest_loss = loss;
    }

    fn observe(&mut self, o: &Observation) {
        self.elapsed = o.end;
        if let Some(loss) = o.probe_loss {
            self.latest_loss = loss;
        }
    }
}
