//! How the event-driven strategies of the asynchronous family (K-batch-sync, K-async,
//! K-batch-async, asynchronous SGD and its delay-adaptive and rescaled variants, Rennala, Malenia,
//! Ringmaster, FedBuff) tell a learner what to compute. A job is one gradient (or, for FedBuff,
//! Q local steps): it is created when a worker reads the server's model, its result reaches the
//! server later (or is cancelled, or ignored), and the server updates with the results that have
//! arrived. The strategy decides everything timing-related — delays, weights, what is ignored or
//! cancelled — so that timing-only runs, which use `()` (it ignores everything), make exactly the
//! same decisions as training runs.

use crate::trace::RoundRecord;

/// Learning side of an asynchronous strategy; see the module docs.
pub trait ServerHooks {
    /// Worker `worker` reads the current server model to compute one gradient; returns the job id.
    fn job_started(&mut self, _worker: usize) -> u64 {
        0
    }
    /// Worker `worker` reads the current server model to run `steps` (Q) local SGD steps; the
    /// job's result is the sum of the Q minibatch gradients along its path (the model delta over
    /// the local rate η). Returns the job id.
    fn local_job_started(&mut self, _worker: usize, _steps: u32) -> u64 {
        0
    }
    /// The result of `job` reached the server and waits for the next update, with weight 1.
    fn arrived(&mut self, job: u64) {
        self.arrived_weighted(job, 1.0);
    }
    /// The result of `job` waits for the next update with weight `weight` (a per-gradient
    /// stepsize factor: delay-adaptive, rescaled, staleness-weighted, ...).
    fn arrived_weighted(&mut self, _job: u64, _weight: f64) {}
    /// The result of `job` reached the server and is added to the running sum of `group` (the
    /// round algorithms that collect many results at one point: Rennala, Malenia).
    fn arrived_summed(&mut self, _job: u64, _group: usize) {}
    /// `job` was cancelled or its result is ignored.
    fn discard(&mut self, _job: u64) {}
    /// The server updates with the mean of the results that arrived since the last update;
    /// `record` describes the update. Returns false to end the run.
    fn update(&mut self, _record: &RoundRecord) -> bool {
        true
    }
    /// The server updates w ← w − η·scale·Σ_j weight_j·r_j over the results that arrived since
    /// the last update. Returns false to end the run.
    fn update_scaled(&mut self, _record: &RoundRecord, _scale: f64) -> bool {
        true
    }
    /// The server updates w ← w − η·scale·Σ_g weights\[g\]·S_g over the group sums S_g of
    /// [`ServerHooks::arrived_summed`] since the last update. Returns false to end the run.
    fn update_sums(&mut self, _record: &RoundRecord, _scale: f64, _weights: &[f64]) -> bool {
        true
    }
}

impl ServerHooks for () {}
