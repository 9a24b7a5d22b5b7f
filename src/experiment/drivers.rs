//! Couple the timing side with the learner. [`RoundTrainer`] is the [`RoundPolicy`] of a
//! round-synchronous algorithm: it plans each round through the algorithm and, when the round
//! closes, trains the jobs the algorithm derives from it. [`AsyncTrainer`] is the
//! [`ServerHooks`] of the asynchronous family: it creates, discards and applies gradient jobs.
//! Both report to a [`Monitor`].

use super::monitor::Monitor;
use crate::algorithms::hooks::ServerHooks;
use crate::algorithms::round::{Observation, RoundAlgorithm};
use crate::learner::{Learner, LocalJob};
use crate::sim::{RoundPlan, RoundPolicy};
use crate::trace::RoundRecord;

/// Round-synchronous training; see the module docs.
pub struct RoundTrainer<'a, 'm> {
    /// The algorithm.
    pub algorithm: Box<dyn RoundAlgorithm + 'a>,
    /// The learner.
    pub learner: Learner<'a>,
    /// The monitor.
    pub monitor: Monitor<'m>,
    workers: usize,
    jobs: Vec<LocalJob>,
}

impl<'a, 'm> RoundTrainer<'a, 'm> {
    /// Starts a run: evaluates the initial model and takes the algorithm's initial probe.
    pub fn new(
        mut algorithm: Box<dyn RoundAlgorithm + 'a>,
        learner: Learner<'a>,
        mut monitor: Monitor<'m>,
        workers: usize,
    ) -> Self {
        monitor.start(&learner);
        if let Some(samples) = algorithm.probe_samples() {
            algorithm.initial_probe(learner.probe_loss(samples, u64::MAX));
        }
        RoundTrainer { algorithm, learner, monitor, workers, jobs: Vec::new() }
    }
}

impl RoundPolicy for RoundTrainer<'_, '_> {
    fn plan(&mut self, round: u64, plan: &mut RoundPlan) -> bool {
        if !self.monitor.go_on() {
            return false;
        }
        plan.targets.resize(self.workers, 0);
        self.algorithm.plan(round, plan);
        true
    }

    fn finish(&mut self, record: &mut RoundRecord) {
        self.algorithm.jobs(record, &mut self.jobs);
        count_aggregated(record, &self.jobs);
        match self.learner.local_round(record.round, &self.jobs) {
            Ok(learned) => {
                let probe_loss = self.algorithm.probe_samples().map(|n| self.learner.probe_loss(n, record.round));
                self.algorithm.observe(&Observation {
                    round: record.round,
                    end: record.end,
                    delta_norm: learned.delta_norm,
                    probe_loss,
                });
            }
            Err(e) => self.monitor.fail(e),
        }
        self.monitor.after_round(record, &self.learner);
    }
}

/// Makes the record count what enters the aggregate: one upload per trained model and its local
/// steps. The timing counts every worker with a completed step; FLANP's random selection trains
/// S other workers, STSyn with `drop_most_updates` leaves one out (Comparisons.py counts
/// M + |𝓜| − 1 messages), and FedNova's `extra_step` runs one step more than it is charged.
fn count_aggregated(record: &mut RoundRecord, jobs: &[LocalJob]) {
    record.uploaders = jobs.len() as u32;
    record.uploads = jobs.len() as u32;
    record.updates = jobs.iter().map(|j| j.steps as u64).sum();
}

/// Asynchronous-family training; see the module docs.
pub struct AsyncTrainer<'a, 'm> {
    /// The learner.
    pub learner: Learner<'a>,
    /// The monitor.
    pub monitor: Monitor<'m>,
}

impl<'a, 'm> AsyncTrainer<'a, 'm> {
    /// Starts a run: evaluates the initial model.
    pub fn new(learner: Learner<'a>, mut monitor: Monitor<'m>) -> Self {
        monitor.start(&learner);
        AsyncTrainer { learner, monitor }
    }
}

impl AsyncTrainer<'_, '_> {
    fn after_update(&mut self, record: &RoundRecord, applied: crate::error::Result<f64>) -> bool {
        if let Err(e) = applied {
            self.monitor.fail(e);
        }
        self.monitor.after_round(record, &self.learner);
        self.monitor.go_on()
    }
}

impl ServerHooks for AsyncTrainer<'_, '_> {
    fn job_started(&mut self, worker: usize) -> u64 {
        self.learner.start_job(worker)
    }

    fn local_job_started(&mut self, worker: usize, steps: u32) -> u64 {
        self.learner.start_local_job(worker, steps)
    }

    fn arrived_weighted(&mut self, job: u64, weight: f64) {
        self.learner.arrive(job, weight);
    }

    fn arrived_summed(&mut self, job: u64, group: usize) {
        self.learner.arrive_summed(job, group);
    }

    fn discard(&mut self, job: u64) {
        self.learner.discard(job);
    }

    fn update(&mut self, record: &RoundRecord) -> bool {
        let n = self.learner.arrived();
        self.update_scaled(record, 1.0 / n.max(1) as f64)
    }

    fn update_scaled(&mut self, record: &RoundRecord, scale: f64) -> bool {
        let applied = self.learner.apply(record.round, scale);
        self.after_update(record, applied)
    }

    fn update_sums(&mut self, record: &RoundRecord, scale: f64, weights: &[f64]) -> bool {
        let applied = self.learner.apply_sums(record.round, scale, weights);
        self.after_update(record, applied)
    }
}
