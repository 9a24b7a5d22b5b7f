//! K-batch-sync SGD (Dutta et al.; specs/baselines.md §4.2): all M workers compute minibatch
//! gradients at the current model w_j; a worker that finishes pushes its gradient and at once
//! starts another one **at the same w_j**; the server updates with the mean of the first K
//! gradients to arrive, from any workers, then cancels the unfinished ones (results still in
//! flight are ignored), and everybody restarts from w_{j+1}. Gradients that arrive at exactly
//! the instant of the K-th are used too.

use super::hooks::ServerHooks;
use crate::sim::{Actions, Algorithm, Message, Node};
use crate::trace::RoundRecord;

/// Event-driven strategy of K-batch-sync.
#[derive(Clone, Debug)]
pub struct KBatchSync<H = ()> {
    workers: usize,
    wait: usize,
    rounds: u64,
    model_bytes: u64,
    hooks: H,
    round: u64,
    start: f64,
    arrivals: usize,
    counts: Vec<u32>,
    /// When each worker's current step started.
    step_start: Vec<f64>,
    /// The job each worker is computing (None: idle).
    current: Vec<Option<u64>>,
}

impl<H: ServerHooks> KBatchSync<H> {
    /// M workers, K gradients per update, `rounds` updates.
    pub fn new(workers: usize, wait: usize, rounds: u64, model_bytes: u64, hooks: H) -> Self {
        KBatchSync {
            workers,
            wait,
            rounds,
            model_bytes,
            hooks,
            round: 0,
            start: 0.0,
            arrivals: 0,
            counts: vec![0; workers],
            step_start: vec![0.0; workers],
            current: vec![None; workers],
        }
    }

    /// The hooks (to read their results after the run).
    pub fn into_hooks(self) -> H {
        self.hooks
    }

    fn begin(&mut self, now: f64, act: &mut Actions) {
        act.epoch(self.round);
        self.start = now;
        self.arrivals = 0;
        self.counts.fill(0);
        for m in 0..self.workers {
            let job = self.hooks.job_started(m);
            act.send_data(Node::Server, Node::Worker(m), self.model_bytes, self.round, job);
        }
    }
}

impl<H: ServerHooks> Algorithm for KBatchSync<H> {
    fn start(&mut self, now: f64, act: &mut Actions) {
        if self.rounds == 0 {
            act.stop();
        } else {
            self.begin(now, act);
        }
    }

    fn on_step(&mut self, worker: usize, now: f64, act: &mut Actions) {
        let done = self.current[worker].take().expect("a finished worker had a job");
        act.send_data(Node::Worker(worker), Node::Server, self.model_bytes, self.round, done);
        self.current[worker] = Some(self.hooks.job_started(worker));
        self.step_start[worker] = now;
        act.step(worker);
    }

    fn on_message(&mut self, msg: &Message, now: f64, act: &mut Actions) {
        if msg.tag != self.round {
            self.hooks.discard(msg.data); // a result or model of an earlier round
            return;
        }
        match (msg.from, msg.to) {
            (Node::Server, Node::Worker(m)) => {
                self.current[m] = Some(msg.data);
                self.step_start[m] = now;
                act.step(m);
            }
            (Node::Worker(m), Node::Server) => {
                self.hooks.arrived(msg.data);
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
        // a step that started this instant never ran (the engine gives its draw back)
        let mut cancelled = 0;
        for (job, &start) in self.current.iter_mut().zip(&self.step_start) {
            if let Some(job) = job.take() {
                self.hooks.discard(job);
                cancelled += (start < now) as u32;
            }
        }
        let record = RoundRecord {
            round: self.round,
            start: self.start,
            compute_end: now,
            end: now,
            participants: self.workers as u32,
            uploaders: self.counts.iter().filter(|&&c| c > 0).count() as u32,
            uploads: self.arrivals as u32,
            updates: self.arrivals as u64,
            cancelled,
            counts: self.counts.clone(),
        };
        let go_on = self.hooks.update(&record);
        act.round(record);
        self.round += 1;
        if !go_on || self.round >= self.rounds {
            act.stop();
        } else {
            self.begin(now, act);
        }
    }
}
