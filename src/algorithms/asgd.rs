//! Asynchronous SGD with per-gradient stepsizes (specs/baselines.md §5, §8): every worker computes
//! a gradient at the model it read, pushes it, and the server applies it at once,
//! x^{k+1} = x^k − γ_k·g_i(x^{k−δ_k}); the worker fetches x^{k+1} and starts again. Nothing is
//! cancelled and every stale gradient is applied. The stepsize rule is what distinguishes the
//! variants:
//!
//! - [`Stepsize::Constant`] — vanilla ASGD, γ_k = γ. With zero communication and the same streams
//!   it is event for event the existing `async` (K-batch-async with K = 1).
//! - [`Stepsize::DelayAdaptive`] — γ_k = γ·min(1, M/δ_k) (`AsynchronousSGD(delay_adaptive=True)` of
//!   the Richtárik group's library), where δ_k counts the server updates since the worker read
//!   its model.
//! - [`Stepsize::Rescaled`] — Rescaled ASGD, γ_i = γ·τ_i/τ_ref for worker i
//!   ([`super::rescaled_asgd`]).
//!
//! Records: one per server update; `participants` counts the models sent since the previous
//! update (the first record also counts the initial broadcast), `uploads` the gradients received.

use super::delays::DelayStats;
use super::hooks::ServerHooks;
use super::rescaled_asgd::Rescaling;
use super::server::{Server, Tally};
use crate::sim::{Actions, Algorithm, Message, Node};

/// The stepsize factor γ_k/γ of each applied gradient.
#[derive(Clone, Debug, PartialEq)]
pub enum Stepsize {
    /// γ_k = γ (vanilla ASGD).
    Constant,
    /// γ_k = γ·min(1, M/δ_k).
    DelayAdaptive,
    /// γ_k = γ·τ_{i_k}/τ_ref (Rescaled ASGD).
    Rescaled(Rescaling),
}

impl Stepsize {
    /// γ_k/γ for a gradient of `worker` with delay `delay`, among `workers` workers.
    #[inline]
    pub fn factor(&self, worker: usize, delay: u64, workers: usize) -> f64 {
        match self {
            Stepsize::Constant => 1.0,
            Stepsize::DelayAdaptive => workers as f64 / (workers as u64).max(delay) as f64,
            Stepsize::Rescaled(r) => r.factor(worker),
        }
    }
}

/// Event-driven strategy of asynchronous SGD; see the module docs.
#[derive(Clone, Debug)]
pub struct Asgd<H = ()> {
    workers: usize,
    stepsize: Stepsize,
    hooks: H,
    server: Server,
    /// The job each worker computes.
    job: Vec<u64>,
    /// The version each worker read.
    read: Vec<u64>,
    /// When each worker's step started (for observed step times).
    step_start: Vec<f64>,
    delays: DelayStats,
}

impl<H: ServerHooks> Asgd<H> {
    /// M workers, `updates` server updates at most, gradient messages of `model_bytes` bytes.
    pub fn new(workers: usize, updates: u64, model_bytes: u64, stepsize: Stepsize, hooks: H) -> Self {
        Asgd {
            workers,
            stepsize,
            hooks,
            server: Server::new(updates, model_bytes),
            job: vec![0; workers],
            read: vec![0; workers],
            step_start: vec![0.0; workers],
            delays: DelayStats::default(),
        }
    }

    /// The hooks (to read their results after the run).
    pub fn into_hooks(self) -> H {
        self.hooks
    }

    /// Delays of the applied gradients.
    pub fn delays(&self) -> &DelayStats {
        &self.delays
    }

    /// The stepsize rule (with what it observed).
    pub fn stepsize(&self) -> &Stepsize {
        &self.stepsize
    }

    fn fetch(&mut self, m: usize, act: &mut Actions) {
        self.job[m] = self.hooks.job_started(m);
        self.read[m] = self.server.version;
        self.server.send_model(m, self.job[m], act);
    }
}

impl<H: ServerHooks> Algorithm for Asgd<H> {
    fn start(&mut self, _now: f64, act: &mut Actions) {
        if !self.server.begin(act) {
            return;
        }
        for m in 0..self.workers {
            self.fetch(m, act);
        }
    }

    fn on_step(&mut self, worker: usize, now: f64, act: &mut Actions) {
        if let Stepsize::Rescaled(r) = &mut self.stepsize {
            r.observe(worker, now - self.step_start[worker]);
        }
        self.server.upload(worker, self.read[worker], self.job[worker], act);
    }

    fn on_message(&mut self, msg: &Message, now: f64, act: &mut Actions) {
        match (msg.from, msg.to) {
            (Node::Server, Node::Worker(m)) => {
                self.step_start[m] = now;
                act.step(m);
            }
            (Node::Worker(m), Node::Server) => {
                let delay = self.server.version - msg.tag;
                self.delays.applied(delay);
                self.hooks.arrived_weighted(msg.data, self.stepsize.factor(m, delay, self.workers));
                if !self.server.update(now, Tally::ONE, act, |record| self.hooks.update_scaled(record, 1.0)) {
                    return;
                }
                self.fetch(m, act);
            }
            _ => {}
        }
    }
}
