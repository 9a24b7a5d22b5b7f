//! K-batch-async SGD and fully asynchronous SGD (Dutta et al.; specs/baselines.md §4.2, §5):
//! every worker pushes each gradient as soon as it is done, fetches the current model and starts
//! the next one; nobody idles (beyond the round trip) and nothing is cancelled. The server
//! updates after every K arrivals (K = 1: asynchronous SGD, one update per gradient). Workers
//! keep one random stream for the whole run.

use crate::sim::{Actions, Algorithm, Message, Node};
use crate::trace::RoundRecord;

/// Heap strategy of K-batch-async (K = 1: async SGD).
#[derive(Clone, Debug)]
pub struct KBatchAsync {
    workers: usize,
    wait: usize,
    updates: u64,
    model_bytes: u64,
    version: u64,
    last_update: f64,
    contributors: Vec<usize>,
}

impl KBatchAsync {
    /// M workers, K gradients per update, `updates` server updates.
    pub fn new(workers: usize, wait: usize, updates: u64, model_bytes: u64) -> Self {
        KBatchAsync {
            workers,
            wait,
            updates,
            model_bytes,
            version: 0,
            last_update: 0.0,
            contributors: Vec::with_capacity(wait),
        }
    }
}

impl Algorithm for KBatchAsync {
    fn start(&mut self, _now: f64, act: &mut Actions) {
        if self.updates == 0 {
            act.stop();
            return;
        }
        for m in 0..self.workers {
            act.send(Node::Server, Node::Worker(m), self.model_bytes, 0);
        }
    }

    fn on_step(&mut self, worker: usize, _now: f64, act: &mut Actions) {
        act.send(Node::Worker(worker), Node::Server, self.model_bytes, self.version);
    }

    fn on_message(&mut self, msg: &Message, now: f64, act: &mut Actions) {
        match (msg.from, msg.to) {
            (Node::Server, Node::Worker(m)) => act.step(m),
            (Node::Worker(m), Node::Server) => {
                self.contributors.push(m);
                if self.contributors.len() == self.wait {
                    let updates = self.contributors.len() as u64;
                    self.contributors.sort_unstable();
                    self.contributors.dedup();
                    let record = RoundRecord {
                        round: self.version,
                        start: self.last_update,
                        compute_end: now,
                        end: now,
                        participants: updates as u32,
                        uploaders: self.contributors.len() as u32,
                        updates,
                        cancelled: 0,
                        counts: Vec::new(),
                    };
                    act.round(record);
                    self.version += 1;
                    self.last_update = now;
                    self.contributors.clear();
                    if self.version >= self.updates {
                        act.stop();
                        return;
                    }
                }
                act.send(Node::Server, Node::Worker(m), self.model_bytes, self.version);
            }
            _ => {}
        }
    }
}
