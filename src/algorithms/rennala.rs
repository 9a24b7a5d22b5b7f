//! Rennala SGD and Malenia SGD (Tyurin & Richtárik, NeurIPS 2023; specs/baselines.md §6): rounds
//! in which every worker computes stochastic gradients at the same point x^k, one after another,
//! until the server has enough of them; then x^{k+1} = x^k − γ·g and a new round starts.
//!
//! - **Rennala** ([`Rule::Rennala`]): the round ends at exactly S gradients (the authors' code
//!   collects exactly `batch_size`), g = the plain mean of the S gradients, from any workers.
//! - **Malenia** ([`Rule::Malenia`], heterogeneous data): the round ends once every worker has
//!   contributed and the harmonic mean of the per-worker counts B_i reaches S/M, i.e.
//!   Σ_i 1/B_i ≤ M²/S; g = (1/M) Σ_i (1/B_i) Σ_b ∇f_i(x^k; ξ_{i,b}), so every worker's data has
//!   weight 1/M whatever its speed.
//!
//! What happens to the computations still running when a round ends ([`Leftover`]):
//! `cancel` (default, the authors' simulator and the exact time oracle of §6.3: every worker is
//! stopped and restarted at x^{k+1}) or `ignore` (the computation runs to its end, its result is
//! ignored on arrival, and the worker then starts on the current point) \[I\].
//!
//! With zero communication and the fixed model, a cancel-mode round takes exactly
//! T_round(S) = min{t : Σ_i ⌊t/τ_i⌋ ≥ S} ([`crate::theory::fixed::rennala_round_time`]).
//! Completions at the instant of the S-th are not used (cancelled), unlike K-batch-sync, which
//! uses every gradient arriving at that instant. Workers draw step durations from their
//! streams of epoch k in round k, like the other round algorithms.
//!
//! The server sums the round's gradients as they arrive (Rennala: one sum; Malenia: one per
//! worker, Σ_b ∇f_i) and updates once at the close, w ← w − γ·(1/S)·Σ (Rennala) or
//! w ← w − γ·Σ_i (1/(M·B_i))·Σ_b (Malenia), so memory does not grow with S.
//!
//! Within a round the worker that delivered a gradient still holds x^k, so the server asks it for
//! another with a message that carries no model: with communication time that message takes the
//! downlink's latency but no bytes, and it is not counted as a model sent \[I\] (the spec's
//! "ask worker j to compute another stochastic gradient at the same x^k"). A model is sent at
//! the start of a round, and to a worker whose last job was of an earlier round.
//!
//! Records: one per round; `counts` are the B_i, `uploads` the results received in the round
//! (including ignored ones), `participants` the models sent.

use super::delays::DelayStats;
use super::hooks::ServerHooks;
use crate::error::{Error, Result};
use crate::sim::{Actions, Algorithm, Message, Node};
use crate::trace::RoundRecord;

/// When a round ends and how its gradients are combined; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// S gradients from any workers, averaged.
    Rennala {
        /// S.
        batch: u64,
    },
    /// Harmonic mean of the B_i at least S/M, every worker at least once; per-worker means
    /// averaged over the workers.
    Malenia {
        /// S.
        batch: u64,
    },
}

/// What happens to computations in progress when a round ends; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leftover {
    /// Stop them; every worker restarts at the new point.
    Cancel,
    /// Let them finish and ignore their results.
    Ignore,
}

impl Leftover {
    /// Parses `cancel` or `ignore`.
    pub fn parse(what: &str, text: &str) -> Result<Self> {
        match text.trim() {
            "cancel" => Ok(Leftover::Cancel),
            "ignore" => Ok(Leftover::Ignore),
            other => Err(Error::invalid(what, other, "expected cancel or ignore")),
        }
    }
}

/// Where a worker is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    /// Downloading or computing a job of the given round.
    Busy(u64),
    /// Its result of the given round is on the way to the server.
    Uploading(u64),
    /// Downloading, computing or uploading a job of an earlier round whose result will be
    /// ignored (the job is already discarded).
    Stale,
}

/// Event-driven strategy of Rennala and Malenia SGD; see the module docs.
#[derive(Clone, Debug)]
pub struct Rennala<H = ()> {
    workers: usize,
    rule: Rule,
    leftover: Leftover,
    rounds: u64,
    model_bytes: u64,
    hooks: H,
    round: u64,
    start: f64,
    job: Vec<u64>,
    /// Messages sent to each worker so far (identifies the one that is current).
    reads: Vec<u64>,
    /// The round whose model each worker holds (`u64::MAX`: none yet).
    holds: Vec<u64>,
    phase: Vec<Phase>,
    /// Gradients collected in the round.
    collected: u64,
    /// B_i of the round.
    counts: Vec<u32>,
    contributors: usize,
    sent: u32,
    uploads: u32,
    cancelled: u32,
    delays: DelayStats,
}

impl<H: ServerHooks> Rennala<H> {
    /// M workers, `rounds` rounds at most.
    pub fn new(workers: usize, rule: Rule, leftover: Leftover, rounds: u64, model_bytes: u64, hooks: H) -> Self {
        Rennala {
            workers,
            rule,
            leftover,
            rounds,
            model_bytes,
            hooks,
            round: 0,
            start: 0.0,
            job: vec![0; workers],
            reads: vec![0; workers],
            holds: vec![u64::MAX; workers],
            phase: vec![Phase::Idle; workers],
            collected: 0,
            counts: vec![0; workers],
            contributors: 0,
            sent: 0,
            uploads: 0,
            cancelled: 0,
            delays: DelayStats::default(),
        }
    }

    /// The hooks (to read their results after the run).
    pub fn into_hooks(self) -> H {
        self.hooks
    }

    /// Ignored and cancelled computations (every applied gradient has delay 0).
    pub fn delays(&self) -> &DelayStats {
        &self.delays
    }

    /// Starts a job of the current round on worker m: sends it x^k, or, when it holds x^k
    /// already, asks it for another gradient (no bytes).
    fn fetch(&mut self, m: usize, act: &mut Actions) {
        self.job[m] = self.hooks.job_started(m);
        self.phase[m] = Phase::Busy(self.round);
        let bytes = if self.holds[m] == self.round {
            0
        } else {
            self.sent += 1;
            self.model_bytes
        };
        self.reads[m] += 1;
        act.send_data(Node::Server, Node::Worker(m), bytes, self.round, self.reads[m]);
    }

    fn begin(&mut self, now: f64, act: &mut Actions) {
        act.epoch(self.round);
        self.start = now;
        self.collected = 0;
        self.counts.fill(0);
        self.contributors = 0;
        for m in 0..self.workers {
            if self.phase[m] == Phase::Idle {
                self.fetch(m, act);
            }
        }
    }

    fn round_done(&self) -> bool {
        match self.rule {
            Rule::Rennala { batch } => self.collected >= batch,
            Rule::Malenia { batch } => {
                if self.contributors < self.workers {
                    return false;
                }
                let inverse: f64 = self.counts.iter().map(|&b| 1.0 / b as f64).sum();
                let m = self.workers as f64;
                // Σ 1/B_i ≤ M²/S, with a relative tolerance for exact ties in floating point.
                inverse <= m * m / batch as f64 * (1.0 + 1e-12)
            }
        }
    }

    fn close(&mut self, now: f64, act: &mut Actions) {
        // Jobs that will not be used are dropped from the learner before it updates, so they are
        // never computed.
        if self.leftover == Leftover::Cancel {
            act.cancel_all();
        }
        for m in 0..self.workers {
            match self.phase[m] {
                Phase::Busy(_) if self.leftover == Leftover::Cancel => {
                    self.hooks.discard(self.job[m]);
                    self.cancelled += 1;
                    self.delays.cancelled += 1;
                    self.phase[m] = Phase::Idle;
                }
                Phase::Busy(_) | Phase::Uploading(_) => {
                    self.hooks.discard(self.job[m]);
                    self.phase[m] = Phase::Stale;
                }
                Phase::Idle | Phase::Stale => {}
            }
        }
        let record = RoundRecord {
            round: self.round,
            start: self.start,
            compute_end: now,
            end: now,
            participants: std::mem::take(&mut self.sent),
            uploaders: self.contributors as u32,
            uploads: std::mem::take(&mut self.uploads),
            updates: self.collected,
            cancelled: std::mem::take(&mut self.cancelled),
            counts: self.counts.clone(),
        };
        for _ in 0..self.collected {
            self.delays.applied(0);
        }
        let go_on = match self.rule {
            Rule::Rennala { .. } => self.hooks.update_sums(&record, 1.0 / self.collected as f64, &[1.0]),
            Rule::Malenia { .. } => {
                let m = self.workers as f64;
                let weights: Vec<f64> = self.counts.iter().map(|&b| 1.0 / (m * b as f64)).collect();
                self.hooks.update_sums(&record, 1.0, &weights)
            }
        };
        act.round(record);
        self.round += 1;
        if !go_on || self.round >= self.rounds {
            act.stop();
        } else {
            self.begin(now, act);
        }
    }
}

impl<H: ServerHooks> Algorithm for Rennala<H> {
    fn start(&mut self, now: f64, act: &mut Actions) {
        if self.rounds == 0 {
            act.stop();
        } else {
            self.begin(now, act);
        }
    }

    fn on_step(&mut self, worker: usize, _now: f64, act: &mut Actions) {
        let tag = match self.phase[worker] {
            Phase::Busy(round) => {
                self.phase[worker] = Phase::Uploading(round);
                round
            }
            Phase::Stale => u64::MAX,
            Phase::Idle | Phase::Uploading(_) => unreachable!("worker {worker} finished a step it did not run"),
        };
        act.send_data(Node::Worker(worker), Node::Server, self.model_bytes, tag, self.job[worker]);
    }

    fn on_message(&mut self, msg: &Message, now: f64, act: &mut Actions) {
        match (msg.from, msg.to) {
            (Node::Server, Node::Worker(m)) => {
                if msg.data != self.reads[m] {
                    return; // a model sent before the round was cancelled (communication latency)
                }
                match self.phase[m] {
                    Phase::Busy(round) if round == self.round => {
                        self.holds[m] = round;
                        act.step(m);
                    }
                    // The model of an earlier round arrived late: read the current one instead.
                    Phase::Stale => self.fetch(m, act),
                    _ => {}
                }
            }
            (Node::Worker(m), Node::Server) => {
                self.uploads += 1;
                if self.phase[m] == Phase::Stale {
                    // A result of an earlier round: ignored (its job was discarded at the close).
                    self.delays.ignored += 1;
                    self.fetch(m, act);
                    return;
                }
                debug_assert_eq!(self.phase[m], Phase::Uploading(self.round));
                let group = match self.rule {
                    Rule::Rennala { .. } => 0,
                    Rule::Malenia { .. } => m,
                };
                self.hooks.arrived_summed(msg.data, group);
                self.collected += 1;
                if self.counts[m] == 0 {
                    self.contributors += 1;
                }
                self.counts[m] += 1;
                self.phase[m] = Phase::Idle;
                if self.round_done() {
                    self.close(now, act);
                } else {
                    self.fetch(m, act);
                }
            }
            _ => {}
        }
    }
}
