//! K-batch-async SGD and fully asynchronous SGD (Dutta et al.; specs/baselines.md §4.2, §5):
//! every worker pushes each gradient as soon as it is done, fetches the current model and starts
//! the next one; nobody idles (beyond the round trip) and nothing is cancelled. The server
//! updates with the mean of every K arrivals (K = 1: asynchronous SGD, one update per gradient).
//! Workers keep one random stream for the whole run. A record's `participants` counts the models
//! sent since the previous update (the initial broadcast to all M in the first). With K > 1 most
//! arrivals leave the model as it was: a worker that holds the current version already gets a
//! reply to its fetch that carries no model (the downlink's latency, no bytes, not counted) \[I\].

use super::delays::DelayStats;
use super::hooks::ServerHooks;
use super::server::{Server, Tally};
use crate::sim::{Actions, Algorithm, Message, Node};

/// Event-driven strategy of K-batch-async (K = 1: async SGD).
#[derive(Clone, Debug)]
pub struct KBatchAsync<H = ()> {
    workers: usize,
    wait: usize,
    hooks: H,
    server: Server,
    contributors: Vec<usize>,
    current: Vec<u64>,
    /// The version of the model each worker holds (`u64::MAX`: none yet).
    held: Vec<u64>,
    /// δ of the results waiting for the next update.
    pending: Vec<u64>,
    delays: DelayStats,
}

impl<H: ServerHooks> KBatchAsync<H> {
    /// M workers, K gradients per update, `updates` server updates.
    pub fn new(workers: usize, wait: usize, updates: u64, model_bytes: u64, hooks: H) -> Self {
        KBatchAsync {
            workers,
            wait,
            hooks,
            server: Server::new(updates, model_bytes),
            contributors: Vec::with_capacity(wait),
            current: vec![0; workers],
            held: vec![u64::MAX; workers],
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
        self.server.send_model_unless_held(m, self.held[m], job, act);
    }
}

impl<H: ServerHooks> Algorithm for KBatchAsync<H> {
    fn start(&mut self, _now: f64, act: &mut Actions) {
        if !self.server.begin(act) {
            return;
        }
        for m in 0..self.workers {
            self.fetch(m, act);
        }
    }

    fn on_step(&mut self, worker: usize, _now: f64, act: &mut Actions) {
        self.server.upload(worker, self.held[worker], self.current[worker], act);
    }

    fn on_message(&mut self, msg: &Message, now: f64, act: &mut Actions) {
        match (msg.from, msg.to) {
            (Node::Server, Node::Worker(m)) => {
                self.current[m] = msg.data;
                self.held[m] = msg.tag;
                act.step(m);
            }
            (Node::Worker(m), Node::Server) => {
                self.hooks.arrived(msg.data);
                self.contributors.push(m);
                self.pending.push(self.server.version - msg.tag);
                if self.contributors.len() == self.wait {
                    for delay in self.pending.drain(..) {
                        self.delays.applied(delay);
                    }
                    let n = self.contributors.len() as u32;
                    self.contributors.sort_unstable();
                    self.contributors.dedup();
                    let tally = Tally {
                        uploaders: self.contributors.len() as u32,
                        uploads: n,
                        updates: n as u64,
                        cancelled: 0,
                    };
                    self.contributors.clear();
                    if !self.server.update(now, tally, act, |record| self.hooks.update(record)) {
                        return;
                    }
                }
                self.fetch(m, act);
            }
            _ => {}
        }
    }
}
