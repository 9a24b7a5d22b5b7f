//! How the event-driven strategies of the asynchronous family (K-batch-sync, K-async,
//! K-batch-async, asynchronous SGD) tell a learner what to compute. A job is one gradient: it is
//! created when a worker reads the server's model, its result reaches the server later (or is
//! cancelled), and the server updates with the results that have arrived. Timing-only runs use
//! `()`, which ignores everything.

use crate::trace::RoundRecord;

/// Learning side of an asynchronous strategy; see the module docs.
pub trait ServerHooks {
    /// Worker `worker` reads the current server model to compute one gradient; returns the job id.
    fn job_started(&mut self, _worker: usize) -> u64 {
        0
    }
    /// The result of `job` reached the server and waits for the next update.
    fn arrived(&mut self, _job: u64) {}
    /// `job` was cancelled or its result is ignored.
    fn discard(&mut self, _job: u64) {}
    /// The server updates with the results that arrived since the last update (their mean);
    /// `record` describes the update. Returns false to end the run.
    fn update(&mut self, _record: &RoundRecord) -> bool {
        true
    }
}

impl ServerHooks for () {}
