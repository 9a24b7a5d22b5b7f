//! The training interface of round-synchronous algorithms. Timing comes from the round plan
//! (played by the engine or the per-round kernel); learning comes from the jobs the algorithm
//! derives from the round's outcome (N_m per worker): which trained models enter the aggregate,
//! after how many local steps, with which coefficient.

use crate::learner::LocalJob;
use crate::sim::RoundPlan;
use crate::trace::RoundRecord;

/// What an adaptive algorithm learns after a round.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observation {
    /// The round.
    pub round: u64,
    /// Simulated time at its end.
    pub end: f64,
    /// ‖w_new − w‖₂.
    pub delta_norm: f64,
    /// The loss probe, if the algorithm asked for one.
    pub probe_loss: Option<f64>,
}

/// A round-synchronous training algorithm; see the module docs.
pub trait RoundAlgorithm {
    /// Writes the plan of round `round` (`plan.targets` already has M entries).
    fn plan(&mut self, round: u64, plan: &mut RoundPlan);
    /// Fills `jobs` with the models that enter the aggregate of the round described by `record`.
    fn jobs(&mut self, record: &RoundRecord, jobs: &mut Vec<LocalJob>);
    /// Test samples of the loss probe this algorithm needs before the first round and after
    /// every round (AdaComm), if any.
    fn probe_samples(&self) -> Option<usize> {
        None
    }
    /// The probe of the initial model.
    fn initial_probe(&mut self, _loss: f64) {}
    /// What happened in the round.
    fn observe(&mut self, _observation: &Observation) {}
}

/// Uniform average over the workers with at least one completed step (N_m ≥ 1), each with its
/// N_m steps: the aggregation of STSyn, PASGD and K-sync.
pub fn uniform_over_uploaders(record: &RoundRecord, jobs: &mut Vec<LocalJob>) {
    jobs.clear();
    jobs.extend(record.counts.iter().enumerate().filter(|(_, c)| **c >= 1).map(|(worker, &steps)| LocalJob {
        worker,
        steps,
        coef: 0.0,
    }));
    let coef = 1.0 / jobs.len() as f64;
    jobs.iter_mut().for_each(|j| j.coef = coef);
}
