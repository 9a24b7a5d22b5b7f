//! The server's bookkeeping shared by the event-driven asynchronous strategies (K-async,
//! K-batch-async, ASGD and its variants, Ringmaster, FedBuff): the version t of its model (the
//! server updates so far), when it last updated, the models it sent since, and its budget of
//! updates. Each strategy decides when the server updates and with what; [`Server::update`]
//! closes every update the same way: one [`RoundRecord`] spanning the time since the previous
//! update, handed to the learner's hooks and to the trace, then the version advanced, and the run
//! stopped when the hooks end it or the budget is spent.

use crate::sim::{Actions, Node};
use crate::trace::RoundRecord;

/// See the module docs.
#[derive(Clone, Debug)]
pub struct Server {
    /// t: server updates so far, the version of the current model.
    pub version: u64,
    /// The budget of server updates.
    updates: u64,
    /// Bytes of a model (or of a result) on the wire.
    model_bytes: u64,
    last_update: f64,
    /// Models sent since the previous update (the next record's `participants`).
    sent: u32,
}

/// What went into one server update: the counts of its record.
#[derive(Clone, Copy, Debug)]
pub struct Tally {
    /// Distinct workers whose results enter the update.
    pub uploaders: u32,
    /// Results received since the previous update (applied or not).
    pub uploads: u32,
    /// Local steps in the update.
    pub updates: u64,
    /// Computations cancelled since the previous update.
    pub cancelled: u32,
}

impl Tally {
    /// One result of one step from one worker, nothing else received or cancelled.
    pub const ONE: Tally = Tally { uploaders: 1, uploads: 1, updates: 1, cancelled: 0 };
}

impl Server {
    /// A server at version 0 and time 0 that makes at most `updates` updates and sends models
    /// of `model_bytes` bytes.
    pub fn new(updates: u64, model_bytes: u64) -> Self {
        Server { version: 0, updates, model_bytes, last_update: 0.0, sent: 0 }
    }

    /// False, having stopped the run, when the budget is zero: nothing is to be sent.
    pub fn begin(&self, act: &mut Actions) -> bool {
        if self.updates == 0 {
            act.stop();
        }
        self.updates > 0
    }

    /// Sends the current model to worker `m` for `job` (the message's tag is the version).
    pub fn send_model(&mut self, m: usize, job: u64, act: &mut Actions) {
        self.sent += 1;
        act.send_data(Node::Server, Node::Worker(m), self.model_bytes, self.version, job);
    }

    /// [`Server::send_model`], unless worker `m` holds the current version already (`held`):
    /// then the reply to its fetch carries no model, takes the downlink's latency but no bytes,
    /// and is not counted as a model sent.
    pub fn send_model_unless_held(&mut self, m: usize, held: u64, job: u64, act: &mut Actions) {
        if held == self.version {
            act.send_data(Node::Server, Node::Worker(m), 0, self.version, job);
        } else {
            self.send_model(m, job, act);
        }
    }

    /// Worker `m` sends the result of `job`, computed at version `read`, to the server.
    pub fn upload(&self, m: usize, read: u64, job: u64, act: &mut Actions) {
        act.send_data(Node::Worker(m), Node::Server, self.model_bytes, read, job);
    }

    /// Makes the update at `now`: `apply` (the hooks' update) gets its record, which then goes to
    /// the trace, and the version advances. Returns false, having stopped the run, when `apply`
    /// returns false or the budget is spent.
    pub fn update(
        &mut self,
        now: f64,
        tally: Tally,
        act: &mut Actions,
        apply: impl FnOnce(&RoundRecord) -> bool,
    ) -> bool {
        let record = RoundRecord {
            round: self.version,
            start: self.last_update,
            compute_end: now,
            end: now,
            participants: std::mem::take(&mut self.sent),
            uploaders: tally.uploaders,
            uploads: tally.uploads,
            updates: tally.updates,
            cancelled: tally.cancelled,
            counts: Vec::new(),
        };
        let go_on = apply(&record);
        act.round(record);
        self.version += 1;
        self.last_update = now;
        if !go_on || self.version >= self.updates {
            act.stop();
            return false;
        }
        true
    }
}
