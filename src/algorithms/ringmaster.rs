//! Ringmaster ASGD (Maranjyan, Tyurin, Richtárik, ICML 2025; specs/baselines.md §7): asynchronous
//! SGD with a delay threshold R. A gradient computed at x^{k−δ} is applied, x^{k+1} = x^k − γg,
//! only while its delay δ is below R. The two versions of the paper differ in what happens to a
//! gradient that got too stale:
//!
//! - [`StaleRule::Ignore`] (version 1, no calculation stops): the gradient is computed to the end
//!   and ignored when it arrives with δ ≥ R; the worker then starts again at the current x^k,
//!   and the iterate does not change.
//! - [`StaleRule::Cancel`] (version 2, the authors' implementation): as soon as a worker's delay
//!   reaches R — right after the server update that made it R — its computation is cancelled
//!   and restarted at the current x^k. With zero communication every arriving gradient then has
//!   δ < R and is applied. With communication latency a result can already be on its way when
//!   its delay reaches R; it is ignored on arrival, and a model that arrives already R updates
//!   old is dropped and fetched again [I: the papers assume zero communication].
//!
//! Workers' reads are kept in a FIFO queue in version order, so finding the computations whose
//! delay reached R costs O(1) amortised per update, not O(M).
//!
//! Records: one per applied gradient; `participants` counts the models sent since the previous
//! update, `uploads` the results received (applied or ignored), `cancelled` the computations
//! stopped since the previous update.

use std::collections::VecDeque;

use super::delays::DelayStats;
use super::hooks::ServerHooks;
use super::server::{Server, Tally};
use crate::error::{Error, Result};
use crate::sim::{Actions, Algorithm, Message, Node};

/// What happens to a gradient whose delay reached R; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StaleRule {
    /// Version 1: compute it, ignore it on arrival.
    Ignore,
    /// Version 2: cancel it and restart the worker at the current model.
    Cancel,
}

impl StaleRule {
    /// Parses `ignore` (version 1) or `cancel` (version 2).
    pub fn parse(what: &str, text: &str) -> Result<Self> {
        match text.trim() {
            "ignore" | "v1" => Ok(StaleRule::Ignore),
            "cancel" | "v2" => Ok(StaleRule::Cancel),
            other => Err(Error::invalid(what, other, "expected ignore (version 1) or cancel (version 2)")),
        }
    }
}

/// Where a worker is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Downloading,
    Computing,
    Uploading,
}

/// Event-driven strategy of Ringmaster ASGD; see the module docs.
#[derive(Clone, Debug)]
pub struct Ringmaster<H = ()> {
    workers: usize,
    threshold: u64,
    rule: StaleRule,
    hooks: H,
    server: Server,
    job: Vec<u64>,
    read: Vec<u64>,
    phase: Vec<Phase>,
    /// Bumped at every read, to recognise queue entries of reads that are over.
    generation: Vec<u32>,
    /// (version read, worker, generation), in read order (so in version order).
    reads: VecDeque<(u64, u32, u32)>,
    uploads: u32,
    cancelled: u32,
    delays: DelayStats,
}

impl<H: ServerHooks> Ringmaster<H> {
    /// M workers, delay threshold R ≥ 1, `updates` server updates at most.
    pub fn new(workers: usize, threshold: u64, rule: StaleRule, updates: u64, model_bytes: u64, hooks: H) -> Self {
        assert!(threshold >= 1, "R must be at least 1");
        Ringmaster {
            workers,
            threshold,
            rule,
            hooks,
            server: Server::new(updates, model_bytes),
            job: vec![0; workers],
            read: vec![0; workers],
            phase: vec![Phase::Downloading; workers],
            generation: vec![0; workers],
            reads: VecDeque::new(),
            uploads: 0,
            cancelled: 0,
            delays: DelayStats::default(),
        }
    }

    /// The hooks (to read their results after the run).
    pub fn into_hooks(self) -> H {
        self.hooks
    }

    /// Delays of the applied gradients, ignored and cancelled ones.
    pub fn delays(&self) -> &DelayStats {
        &self.delays
    }

    fn fetch(&mut self, m: usize, act: &mut Actions) {
        self.job[m] = self.hooks.job_started(m);
        self.read[m] = self.server.version;
        self.phase[m] = Phase::Downloading;
        if self.rule == StaleRule::Cancel {
            self.generation[m] = self.generation[m].wrapping_add(1);
            self.reads.push_back((self.server.version, m as u32, self.generation[m]));
        }
        self.server.send_model(m, self.job[m], act);
    }

    /// Version 2: cancels and restarts every computation whose delay reached R.
    fn restart_stale(&mut self, act: &mut Actions) {
        while let Some(&(version, w, generation)) = self.reads.front() {
            if version.saturating_add(self.threshold) > self.server.version {
                break;
            }
            self.reads.pop_front();
            let w = w as usize;
            if generation != self.generation[w] || self.phase[w] != Phase::Computing {
                continue; // read again since, or the result is already on its way
            }
            act.cancel(w);
            self.hooks.discard(self.job[w]);
            self.delays.cancelled += 1;
            self.cancelled += 1;
            self.fetch(w, act);
        }
    }
}

impl<H: ServerHooks> Algorithm for Ringmaster<H> {
    fn start(&mut self, _now: f64, act: &mut Actions) {
        if !self.server.begin(act) {
            return;
        }
        for m in 0..self.workers {
            self.fetch(m, act);
        }
    }

    fn on_step(&mut self, worker: usize, _now: f64, act: &mut Actions) {
        self.phase[worker] = Phase::Uploading;
        self.server.upload(worker, self.read[worker], self.job[worker], act);
    }

    fn on_message(&mut self, msg: &Message, now: f64, act: &mut Actions) {
        match (msg.from, msg.to) {
            (Node::Server, Node::Worker(m)) => {
                if self.rule == StaleRule::Cancel && msg.tag.saturating_add(self.threshold) <= self.server.version {
                    // The model is R updates old before the worker could start on it.
                    self.hooks.discard(msg.data);
                    self.delays.cancelled += 1;
                    self.cancelled += 1;
                    self.fetch(m, act);
                    return;
                }
                self.phase[m] = Phase::Computing;
                act.step(m);
            }
            (Node::Worker(m), Node::Server) => {
                self.uploads += 1;
                let delay = self.server.version - msg.tag;
                if delay >= self.threshold {
                    self.hooks.discard(msg.data);
                    self.delays.ignored += 1;
                    self.fetch(m, act);
                    return;
                }
                self.delays.applied(delay);
                self.hooks.arrived(msg.data);
                let tally = Tally {
                    uploads: std::mem::take(&mut self.uploads),
                    cancelled: std::mem::take(&mut self.cancelled),
                    ..Tally::ONE
                };
                if !self.server.update(now, tally, act, |record| self.hooks.update_scaled(record, 1.0)) {
                    return;
                }
                self.fetch(m, act);
                if self.rule == StaleRule::Cancel {
                    self.restart_stale(act);
                }
            }
            _ => {}
        }
    }
}
