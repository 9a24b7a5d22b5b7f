//! K-batch-sync SGD (Dutta et al.; specs/baselines.md §4.2): all M workers compute minibatch
//! gradients at the current model w_j; a worker that finishes pushes its gradient and at once
//! starts another one **at the same w_j**; the server updates when K gradients have arrived, from
//! any workers, then cancels the unfinished ones, and everybody restarts from w_{j+1}.
//! Gradients that arrive at exactly the instant of the K-th are used too.

use crate::sim::{Actions, Algorithm, Message, Node};
use crate::trace::RoundRecord;

/// Heap strategy of K-batch-sync.
#[derive(Clone, Debug)]
pub struct KBatchSync {
    workers: usize,
    wait: usize,
    rounds: u64,
    model_bytes: u64,
    round: u64,
    start: f64,
    arrivals: usize,
    started: u32,
    counts: Vec<u32>,
}

impl KBatchSync {
    /// M workers, K gradients per update, `rounds` updates.
    pub fn new(workers: usize, wait: usize, rounds: u64, model_bytes: u64) -> Self {
        KBatchSync {
            workers,
            wait,
            rounds,
            model_bytes,
            round: 0,
            start: 0.0,
            arrivals: 0,
            started: 0,
            counts: vec![0; workers],
        }
    }

    fn begin(&mut self, now: f64, act: &mut Actions) {
        act.epoch(self.round);
        self.start = now;
        self.arrivals = 0;
        self.started = 0;
        self.counts.fill(0);
        for m in 0..self.workers {
            act.send(Node::Server, Node::Worker(m), self.model_bytes, self.round);
        }
    }
}

impl Algorithm for KBatchSync {
    fn start(&mut self, now: f64, act: &mut Actions) {
        if self.rounds == 0 {
            act.stop();
        } else {
            self.begin(now, act);
        }
    }

    fn on_step(&mut self, worker: usize, _now: f64, act: &mut Actions) {
        act.send(Node::Worker(worker), Node::Server, self.model_bytes, self.round);
        act.step(worker);
    }

    fn on_message(&mut self, msg: &Message, now: f64, act: &mut Actions) {
        if msg.tag != self.round {
            return;
        }
        match (msg.from, msg.to) {
            (Node::Server, Node::Worker(m)) => {
                self.started += 1;
                act.step(m);
            }
            (Node::Worker(m), Node::Server) => {
                self.arrivals += 1;
                self.counts[m] += 1;
                if self.arrivals == self.wait {
                    act.timer(now, self.round);
                }
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, _tag: u64, now: f64, act: &mut Actions) {
        act.cancel_all();
        let record = RoundRecord {
            round: self.round,
            start: self.start,
            compute_end: now,
            end: now,
            participants: self.workers as u32,
            uploaders: self.counts.iter().filter(|&&c| c > 0).count() as u32,
            updates: self.arrivals as u64,
            cancelled: self.started,
            counts: self.counts.clone(),
        };
        act.round(record);
        self.round += 1;
        if self.round >= self.rounds {
            act.stop();
        } else {
            self.begin(now, act);
        }
    }
}
