//! K-async SGD (Dutta et al.; specs/baselines.md §4.2): workers compute gradients continuously;
//! the server updates once K *distinct* workers have pushed a gradient since the last update
//! (gradients may be stale: computed at an older model). A worker that has pushed waits idle for
//! the update, then fetches the new model and restarts; the others are not interrupted and keep
//! computing on the model they read. Workers keep one random stream for the whole run (there is
//! no round restart), so nothing is cancelled.

use crate::sim::{Actions, Algorithm, Message, Node};
use crate::trace::RoundRecord;

/// Heap strategy of K-async.
#[derive(Clone, Debug)]
pub struct KAsync {
    workers: usize,
    wait: usize,
    updates: u64,
    model_bytes: u64,
    version: u64,
    last_update: f64,
    pushed: Vec<usize>,
}

impl KAsync {
    /// M workers, K distinct pushers per update, `updates` server updates.
    pub fn new(workers: usize, wait: usize, updates: u64, model_bytes: u64) -> Self {
        KAsync { workers, wait, updates, model_bytes, version: 0, last_update: 0.0, pushed: Vec::with_capacity(wait) }
    }
}

impl Algorithm for KAsync {
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
                self.pushed.push(m);
                if self.pushed.len() == self.wait {
                    act.timer(now, self.version);
                }
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, _tag: u64, now: f64, act: &mut Actions) {
        let record = RoundRecord {
            round: self.version,
            start: self.last_update,
            compute_end: now,
            end: now,
            participants: self.pushed.len() as u32,
            uploaders: self.pushed.len() as u32,
            updates: self.pushed.len() as u64,
            cancelled: 0,
            counts: Vec::new(),
        };
        act.round(record);
        self.version += 1;
        self.last_update = now;
        if self.version >= self.updates {
            act.stop();
            return;
        }
        for m in self.pushed.drain(..) {
            act.send(Node::Server, Node::Worker(m), self.model_bytes, self.version);
        }
    }
}
