//! FedBuff: federated learning with buffered asynchronous aggregation (Nguyen et al., AISTATS
//! 2022; specs/baselines.md §11). C clients train at any time. A client downloads the server model
//! w at version t_i, runs Q local SGD steps with the local rate η_ℓ, and uploads its delta
//! Δ_i = w_{t_i} − y_Q. The server adds ω(s_i)·Δ_i to a private buffer, where s_i = t − t_i is the
//! staleness (server updates since the client's download) and ω(s) = 1/(1 + s)^a is FLSim's
//! polynomial staleness weight without its normalisation at the average staleness (a = 0.5 in
//! the paper). After K uploads it updates w ← w − η_g·(1/K)·Σ ω(s_i)Δ_i with the server rate η_g
//! (plain SGD on the server; the paper's server momentum is not modelled) and empties the buffer.
//! Stale updates are never cancelled, only down-weighted.
//!
//! Concurrency: whenever a client uploads, a new client drawn uniformly from the idle ones (the
//! uploader included) starts on the current w, so C clients always train. With C = M every client
//! trains all the time and no draw is made (an idle pool of one needs none); with C < M the draws come from stream
//! (Algorithm, 0, 1) of the run's seed.
//!
//! Records: one per server update; `updates` counts the local steps in the buffer (K·Q),
//! `uploaders` the distinct clients in it, `participants` the models sent since the previous
//! update.

use rand::Rng;

use super::delays::DelayStats;
use super::hooks::ServerHooks;
use super::server::{Server, Tally};
use crate::rng::Stream;
use crate::sim::{Actions, Algorithm, Message, Node};

/// The parameters of FedBuff.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FedBuffParams {
    /// K: uploads per server update.
    pub buffer: usize,
    /// Q: local steps per client job.
    pub local_steps: u32,
    /// a in ω(s) = 1/(1 + s)^a (0: no staleness weighting).
    pub staleness_exponent: f64,
    /// η_g.
    pub server_lr: f64,
    /// C: clients training at any time.
    pub concurrency: usize,
}

impl FedBuffParams {
    /// ω(s) = 1/(1 + s)^a.
    #[inline]
    pub fn staleness_weight(&self, staleness: u64) -> f64 {
        if self.staleness_exponent == 0.0 { 1.0 } else { (1.0 + staleness as f64).powf(-self.staleness_exponent) }
    }
}

/// Event-driven strategy of FedBuff; see the module docs.
#[derive(Clone, Debug)]
pub struct FedBuff<H = ()> {
    workers: usize,
    params: FedBuffParams,
    hooks: H,
    rng: Stream,
    server: Server,
    idle: Vec<usize>,
    job: Vec<u64>,
    read: Vec<u64>,
    steps_done: Vec<u32>,
    in_buffer: Vec<usize>,
    delays: DelayStats,
}

impl<H: ServerHooks> FedBuff<H> {
    /// M clients, `updates` server updates at most; `rng` draws the clients that start when
    /// C < M.
    pub fn new(workers: usize, params: FedBuffParams, updates: u64, model_bytes: u64, hooks: H, rng: Stream) -> Self {
        assert!(params.buffer >= 1 && params.local_steps >= 1, "K and Q are at least 1");
        assert!((1..=workers).contains(&params.concurrency), "C is between 1 and M");
        FedBuff {
            workers,
            params,
            hooks,
            rng,
            server: Server::new(updates, model_bytes),
            idle: (0..workers).collect(),
            job: vec![0; workers],
            read: vec![0; workers],
            steps_done: vec![0; workers],
            in_buffer: Vec::with_capacity(params.buffer),
            delays: DelayStats::default(),
        }
    }

    /// The hooks (to read their results after the run).
    pub fn into_hooks(self) -> H {
        self.hooks
    }

    /// Staleness of the buffered updates.
    pub fn delays(&self) -> &DelayStats {
        &self.delays
    }

    /// Starts an idle client: the only one when C = M, else a uniform draw.
    fn start_next(&mut self, act: &mut Actions) {
        let i = if self.idle.len() == 1 { 0 } else { self.rng.random_range(0..self.idle.len()) };
        let m = self.idle.swap_remove(i);
        self.start_client(m, act);
    }

    fn start_client(&mut self, m: usize, act: &mut Actions) {
        self.job[m] = self.hooks.local_job_started(m, self.params.local_steps);
        self.read[m] = self.server.version;
        self.steps_done[m] = 0;
        self.server.send_model(m, self.job[m], act);
    }
}

impl<H: ServerHooks> Algorithm for FedBuff<H> {
    fn start(&mut self, _now: f64, act: &mut Actions) {
        if !self.server.begin(act) {
            return;
        }
        if self.params.concurrency == self.workers {
            self.idle.clear();
            for m in 0..self.workers {
                self.start_client(m, act);
            }
        } else {
            for _ in 0..self.params.concurrency {
                self.start_next(act);
            }
        }
    }

    fn on_step(&mut self, worker: usize, _now: f64, act: &mut Actions) {
        self.steps_done[worker] += 1;
        if self.steps_done[worker] < self.params.local_steps {
            act.step(worker);
        } else {
            self.server.upload(worker, self.read[worker], self.job[worker], act);
        }
    }

    fn on_message(&mut self, msg: &Message, now: f64, act: &mut Actions) {
        match (msg.from, msg.to) {
            (Node::Server, Node::Worker(m)) => act.step(m),
            (Node::Worker(m), Node::Server) => {
                let staleness = self.server.version - msg.tag;
                self.delays.applied(staleness);
                self.hooks.arrived_weighted(msg.data, self.params.staleness_weight(staleness));
                self.in_buffer.push(m);
                self.idle.push(m);
                if self.in_buffer.len() == self.params.buffer {
                    let k = self.in_buffer.len();
                    self.in_buffer.sort_unstable();
                    self.in_buffer.dedup();
                    let tally = Tally {
                        uploaders: self.in_buffer.len() as u32,
                        uploads: k as u32,
                        updates: k as u64 * self.params.local_steps as u64,
                        cancelled: 0,
                    };
                    self.in_buffer.clear();
                    let scale = self.params.server_lr / k as f64;
                    if !self.server.update(now, tally, act, |record| self.hooks.update_scaled(record, scale)) {
                        return;
                    }
                }
                self.start_next(act);
            }
            _ => {}
        }
    }
}
