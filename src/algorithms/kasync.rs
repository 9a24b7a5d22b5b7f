//! K-async SGD (Dutta et al.; specs/baselines.md §4.2): workers compute gradients continuously;
//! the server updates with the mean of the gradients of K *distinct* workers pushed since the
//! last update (they may be stale: computed at an older model). A worker that has pushed waits
//! idle for the update, then fetches the new model and restarts; the others are not interrupted
//! and keep computing on the model they read. Workers keep one random stream for the whole run
//! (there is no round restart), so nothing is cancelled. A record's `participants` counts the
//! models sent since the previous update (the initial broadcast to all M in the first).

use super::delays::DelayStats;
use super::hooks::ServerHooks;
use super::server::{Server, Tally};
use crate::sim::{Actions, Algorithm, Message, Node};

/// Event-driven strategy of K-async.
#[derive(Clone, Debug)]
pub struct KAsync<H = ()> {
    workers: usize,
    wait: usize,
    hooks: H,
    server: Server,
    pushed: Vec<usize>,
    current: Vec<u64>,
    /// The version of the model each worker computes on.
    read: Vec<u64>,
    /// δ of the results waiting for the next update.
    pending: Vec<u64>,
    delays: DelayStats,
}

impl<H: ServerHooks> KAsync<H> {
    /// M workers, K distinct pushers per update, `updates` server updates.
    pub fn new(workers: usize, wait: usize, updates: u64, model_bytes: u64, hooks: H) -> Self {
        KAsync {
            workers,
            wait,
            hooks,
            server: Server::new(updates, model_bytes),
            pushed: Vec::with_capacity(wait),
            current: vec![0; workers],
            read: vec![0; workers],
            pending: Vec::with_capacity(wait),
            delays: DelayStats::default(),
        }
    }

    /// The hooks (to read their results after the run).
    pub fn into_hooks(self) -> H {
        self.hooks
    }

    /// The delays δ of the applied results (server updates between a worker's read and the
    /// update its result entered).
    pub fn delays(&self) -> &DelayStats {
        &self.delays
    }

    fn fetch(&mut self, m: usize, act: &mut Actions) {
        let job = self.hooks.job_started(m);
        self.server.send_model(m, job, act);
    }
}

impl<H: ServerHooks> Algorithm for KAsync<H> {
    fn start(&mut self, _now: f64, act: &mut Actions) {
        if !self.server.begin(act) {
            return;
        }
        for m in 0..self.workers {
            self.fetch(m, act);
        }
    }

    fn on_step(&mut self, worker: usize, _now: f64, act: &mut Actions) {
        self.server.upload(worker, self.read[worker], self.current[worker], act);
    }

    fn on_message(&mut self, msg: &Message, now: f64, act: &mut Actions) {
        match (msg.from, msg.to) {
            (Node::Server, Node::Worker(m)) => {
                self.current[m] = msg.data;
                self.read[m] = msg.tag;
                act.step(m);
            }
            (Node::Worker(m), Node::Server) => {
                self.hooks.arrived(msg.data);
                self.pushed.push(m);
                self.pending.push(self.server.version - msg.tag);
                if self.pushed.len() == self.wait {
                    act.timer(now, self.server.version);
                }
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, _tag: u64, now: f64, act: &mut Actions) {
        let n = self.pushed.len() as u32;
        for delay in self.pending.drain(..) {
            self.delays.applied(delay);
        }
        let tally = Tally { uploaders: n, uploads: n, updates: n as u64, cancelled: 0 };
        if !self.server.update(now, tally, act, |record| self.hooks.update(record)) {
            return;
        }
        for m in std::mem::take(&mut self.pushed) {
            self.fetch(m, act);
        }
    }
}
