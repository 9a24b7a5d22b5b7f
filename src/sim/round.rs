//! The heap-path strategy shared by round-synchronous algorithms that restart every worker each
//! round (STSyn, fully synchronous local SGD / PASGD, K-sync). A [`RoundRule`] says when a round
//! closes; [`RoundSync`] plays it on the engine:
//!
//! 1. The server broadcasts the model to all M workers (epoch = round number, so round r draws
//!    the same per-worker durations in every such algorithm).
//! 2. Each worker computes steps back to back from the moment the model arrives, and stops early
//!    only when it reaches `max_steps`.
//! 3. When the K-th worker completes its U-th step at time T, a timer is set at T; steps already
//!    scheduled to finish exactly at T still count (ties are FIFO). At the timer every step in
//!    progress is cancelled.
//! 4. Every worker with at least one completed step uploads; the round ends when the last upload
//!    arrives, and the next round starts at once.
//!
//! Communication is zero by default (as in the STSyn paper). With latencies, the stop signal is
//! taken to reach workers instantly [inferred: the paper has no communication time].
//! [`super::kernel::RoundKernel`] computes the same rounds without a heap.

use super::engine::{Actions, Algorithm, Message, Node};
use crate::trace::RoundRecord;

/// When a round of a restart-every-round algorithm closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoundRule {
    /// M, the number of workers.
    pub workers: usize,
    /// K: the round closes when this many workers have completed `target` steps.
    pub wait: usize,
    /// U: the number of local steps each worker aims for.
    pub target: u32,
    /// A worker idles after this many steps in a round (`u32::MAX`: never, as in STSyn;
    /// `target`: no extra steps, as in synchronous local SGD and K-sync).
    pub max_steps: u32,
}

impl RoundRule {
    /// True when workers keep computing after reaching `target`.
    pub fn extra_steps(&self) -> bool {
        self.max_steps > self.target
    }
}

/// Heap-path driver of a [`RoundRule`]; see the module docs.
#[derive(Clone, Debug)]
pub struct RoundSync {
    rule: RoundRule,
    rounds: u64,
    model_bytes: u64,
    round: u64,
    start: f64,
    compute_end: f64,
    counts: Vec<u32>,
    started: Vec<bool>,
    reached: usize,
    closing: bool,
    computing: bool,
    uploads_pending: u32,
    uploaders: u32,
    cancelled: u32,
}

impl RoundSync {
    /// A driver that runs `rounds` rounds, sending models of `model_bytes` bytes.
    pub fn new(rule: RoundRule, rounds: u64, model_bytes: u64) -> Self {
        let m = rule.workers;
        RoundSync {
            rule,
            rounds,
            model_bytes,
            round: 0,
            start: 0.0,
            compute_end: 0.0,
            counts: vec![0; m],
            started: vec![false; m],
            reached: 0,
            closing: false,
            computing: false,
            uploads_pending: 0,
            uploaders: 0,
            cancelled: 0,
        }
    }

    fn begin_round(&mut self, now: f64, act: &mut Actions) {
        act.epoch(self.round);
        self.start = now;
        self.counts.fill(0);
        self.started.fill(false);
        self.reached = 0;
        self.closing = false;
        self.computing = true;
        for m in 0..self.rule.workers {
            act.send(Node::Server, Node::Worker(m), self.model_bytes, self.round);
        }
    }

    fn finish_round(&mut self, now: f64, act: &mut Actions) {
        let record = RoundRecord {
            round: self.round,
            start: self.start,
            compute_end: self.compute_end,
            end: now,
            uploaders: self.uploaders,
            updates: self.counts.iter().map(|&c| c as u64).sum(),
            cancelled: self.cancelled,
            counts: self.counts.clone(),
        };
        act.round(record);
        self.round += 1;
        if self.round >= self.rounds {
            act.stop();
        } else {
            self.begin_round(now, act);
        }
    }
}

impl Algorithm for RoundSync {
    fn start(&mut self, now: f64, act: &mut Actions) {
        if self.rounds == 0 {
            act.stop();
        } else {
            self.begin_round(now, act);
        }
    }

    fn on_step(&mut self, worker: usize, now: f64, act: &mut Actions) {
        let count = &mut self.counts[worker];
        *count += 1;
        if *count == self.rule.target {
            self.reached += 1;
            if self.reached == self.rule.wait && !self.closing {
                self.closing = true;
                act.timer(now, self.round);
            }
        }
        if *count < self.rule.max_steps {
            act.step(worker);
        }
    }

    fn on_message(&mut self, msg: &Message, now: f64, act: &mut Actions) {
        if msg.tag != self.round {
            return; // a late message of an earlier round
        }
        match msg.to {
            Node::Worker(m) if self.computing => {
                self.started[m] = true;
                act.step(m);
            }
            Node::Server => {
                self.uploads_pending -= 1;
                if self.uploads_pending == 0 {
                    self.finish_round(now, act);
                }
            }
            Node::Worker(_) => {}
        }
    }

    fn on_timer(&mut self, _tag: u64, now: f64, act: &mut Actions) {
        self.computing = false;
        self.compute_end = now;
        act.cancel_all();
        let max = self.rule.max_steps;
        self.cancelled = (0..self.rule.workers)
            .filter(|&m| self.started[m] && self.counts[m] < max)
            .count() as u32;
        self.uploaders = 0;
        for (m, &c) in self.counts.iter().enumerate() {
            if c >= 1 {
                self.uploaders += 1;
                act.send(Node::Worker(m), Node::Server, self.model_bytes, self.round);
            }
        }
        self.uploads_pending = self.uploaders;
    }
}
