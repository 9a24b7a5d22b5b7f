//! Round-synchronous algorithms that restart every worker each round (STSyn, PASGD, AdaComm,
//! FLANP, FedNova, K-sync, ...). A [`RoundPolicy`] gives each round's [`RoundPlan`] — who takes
//! part, how many local steps each aims for (U_m), how many must reach their target (K), and
//! whether workers keep computing past it — and hears how the round went. [`RoundSync`] plays
//! the plans on the engine:
//!
//! 1. The server sends the model to every participant (epoch = round number, so round r draws
//!    the same per-worker durations in every such algorithm: common random numbers).
//! 2. Each participant computes steps back to back from the moment the model arrives, and idles
//!    once it reaches its maximum (its target, or the cap when extra steps are allowed).
//! 3. When the K-th participant completes its target at time T, a timer is set at T; steps that
//!    finish exactly at T still count (ties are FIFO). At the timer every step in progress is
//!    cancelled; a step that would start exactly at T (after a completion at T) never runs:
//!    it is not counted as cancelled and does not use up a row of a replayed trace. A plan
//!    with a deadline D also closes at start + D if that comes first (steps that finish
//!    exactly then count too).
//! 4. Every participant with at least one completed step uploads (or as many as the plan asks);
//!    the round ends when the last upload arrives (at the closing time when none does), and the
//!    next round starts at once.
//!
//! Communication is zero by default (as in the STSyn paper). With latencies, the stop signal is
//! taken to reach workers instantly [inferred: the paper has no communication time].
//! [`super::kernel::RoundKernel`] computes the same rounds without a heap, bit for bit.

use super::engine::{Actions, Algorithm, Message, Node};
use crate::error::{Error, Result};
use crate::trace::RoundRecord;

/// One round of a restart-every-round algorithm; see the module docs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoundPlan {
    /// U_m for each of the M workers; 0 means worker m does not take part in the round.
    pub targets: Vec<u32>,
    /// K: the round closes when this many participants have completed their target.
    pub wait: usize,
    /// Extra steps: `None` — a worker idles once it reaches its target; `Some(cap)` — it keeps
    /// computing until the round closes or it has done `cap` steps (`u32::MAX`: STSyn).
    pub cap: Option<u32>,
    /// A participant uploads when the round closes if it has completed at least this many
    /// steps; 0 and 1 both mean "at least one" (STSyn's 𝓜). FLANP sets τ, so that only the
    /// workers that reached their target upload.
    pub upload_after: u32,
    /// D: the round also closes this long after it starts, whoever has reached their target
    /// (FedAvg's deadline-and-drop); `None`: only K closes it.
    pub deadline: Option<f64>,
}

impl RoundPlan {
    /// M workers, all aiming for U, waiting for K.
    pub fn uniform(workers: usize, wait: usize, target: u32, cap: Option<u32>) -> Self {
        RoundPlan { targets: vec![target; workers], wait, cap, upload_after: 1, deadline: None }
    }

    /// Whether a participant with `count` completed steps uploads.
    #[inline]
    pub fn uploads(&self, count: u32) -> bool {
        count >= self.upload_after.max(1)
    }

    /// M.
    pub fn workers(&self) -> usize {
        self.targets.len()
    }

    /// Steps after which worker m idles (at most [`MAX_STEPS_PER_ROUND`]).
    #[inline]
    pub fn max_steps(&self, m: usize) -> u32 {
        let target = self.targets[m];
        match self.cap {
            Some(cap) if target > 0 => cap.max(target).min(MAX_STEPS_PER_ROUND),
            _ => target,
        }
    }

    /// Number of participants.
    pub fn participants(&self) -> usize {
        self.targets.iter().filter(|&&t| t > 0).count()
    }

    /// The largest target.
    pub fn max_target(&self) -> u32 {
        self.targets.iter().copied().max().unwrap_or(0)
    }

    /// Checks that the round can close.
    pub fn check(&self) -> Result<()> {
        if let Some(&t) = self.targets.iter().max() {
            check_steps_per_round("U (local updates per round)", t.into())?;
        }
        let participants = self.participants();
        if self.wait == 0 || self.wait > participants {
            return Err(Error::invalid(
                "wait (K)",
                self.wait,
                format!("must be between 1 and the {participants} participants of the round"),
            ));
        }
        Ok(())
    }
}

/// Most local steps one worker can complete in one round (2^28). A worker that gets there has
/// steps so short next to the round, or so short that they no longer advance the clock in f64,
/// that simulating them one by one would not end; [`check_steps`] turns that into an error.
pub const MAX_STEPS_PER_ROUND: u32 = 1 << 28;

/// Rejects `value` (of the setting `name`) when it asks for [`MAX_STEPS_PER_ROUND`] or more
/// steps or results in one round: the engine stops a worker there, and a round that long would
/// not end in any reasonable time. Settings are checked with it before a run starts.
pub fn check_steps_per_round(name: &str, value: u64) -> Result<()> {
    if value >= u64::from(MAX_STEPS_PER_ROUND) {
        return Err(Error::invalid(name, value, too_many_steps()));
    }
    Ok(())
}

fn too_many_steps() -> String {
    format!("a worker can complete fewer than {MAX_STEPS_PER_ROUND} (2^28) steps per round in the simulation")
}

/// Fails when a worker reached [`MAX_STEPS_PER_ROUND`] in the round of `record`.
pub fn check_steps(record: &RoundRecord) -> Result<()> {
    match record.counts.iter().position(|&c| c >= MAX_STEPS_PER_ROUND) {
        None => Ok(()),
        Some(m) => Err(Error::Config(format!(
            "worker {m} completed {MAX_STEPS_PER_ROUND} steps in round {} (counted from 0); {}: its steps are too short next to the round (the slower workers' steps or the messages), or no longer advance the clock in f64 (the round started at t = {})",
            record.round,
            too_many_steps(),
            crate::error::shown(record.start)
        ))),
    }
}

/// Decides the rounds of a restart-every-round algorithm.
pub trait RoundPolicy {
    /// Writes the plan of round `round` into `plan`; returns false to end the run instead.
    fn plan(&mut self, round: u64, plan: &mut RoundPlan) -> bool;
    /// Round `record.round` closed (counts N_m in `record.counts`). A training policy may
    /// correct the record's uploads and updates to what its algorithm aggregates before the
    /// record goes to the sinks.
    fn finish(&mut self, record: &mut RoundRecord);
}

/// The same plan for a fixed number of rounds (timing-only runs).
#[derive(Clone, Debug)]
pub struct FixedRounds {
    /// The plan of every round.
    pub plan: RoundPlan,
    /// Number of rounds.
    pub rounds: u64,
}

impl RoundPolicy for FixedRounds {
    fn plan(&mut self, round: u64, plan: &mut RoundPlan) -> bool {
        if round >= self.rounds {
            return false;
        }
        if round == 0 {
            plan.clone_from(&self.plan);
        }
        true
    }
    fn finish(&mut self, _record: &mut RoundRecord) {}
}

/// Heap-path driver of a [`RoundPolicy`]; see the module docs.
#[derive(Clone, Debug)]
pub struct RoundSync<P> {
    policy: P,
    plan: RoundPlan,
    model_bytes: u64,
    round: u64,
    start: f64,
    compute_end: f64,
    counts: Vec<u32>,
    /// When each worker's latest step started (∞: no step this round).
    step_start: Vec<f64>,
    reached: usize,
    closing: bool,
    computing: bool,
    uploads_pending: u32,
    uploaders: u32,
    cancelled: u32,
}

impl<P: RoundPolicy> RoundSync<P> {
    /// A driver for M workers, sending models of `model_bytes` bytes.
    pub fn new(policy: P, workers: usize, model_bytes: u64) -> Self {
        RoundSync {
            policy,
            plan: RoundPlan::default(),
            model_bytes,
            round: 0,
            start: 0.0,
            compute_end: 0.0,
            counts: vec![0; workers],
            step_start: vec![f64::INFINITY; workers],
            reached: 0,
            closing: false,
            computing: false,
            uploads_pending: 0,
            uploaders: 0,
            cancelled: 0,
        }
    }

    /// The policy (to read its results after the run).
    pub fn into_policy(self) -> P {
        self.policy
    }

    fn begin_round(&mut self, now: f64, act: &mut Actions) {
        if !self.policy.plan(self.round, &mut self.plan) {
            act.stop();
            return;
        }
        debug_assert_eq!(self.plan.workers(), self.counts.len());
        act.epoch(self.round);
        self.start = now;
        self.counts.fill(0);
        self.step_start.fill(f64::INFINITY);
        self.reached = 0;
        self.closing = false;
        self.computing = true;
        for (m, &target) in self.plan.targets.iter().enumerate() {
            if target > 0 {
                act.send(Node::Server, Node::Worker(m), self.model_bytes, self.round);
            }
        }
        if let Some(deadline) = self.plan.deadline {
            act.timer(now + deadline, self.round);
        }
    }

    fn finish_round(&mut self, now: f64, act: &mut Actions) {
        let mut record = RoundRecord {
            round: self.round,
            start: self.start,
            compute_end: self.compute_end,
            end: now,
            participants: self.plan.participants() as u32,
            uploaders: self.uploaders,
            uploads: self.uploaders,
            updates: self.counts.iter().map(|&c| c as u64).sum(),
            cancelled: self.cancelled,
            counts: self.counts.clone(),
        };
        self.policy.finish(&mut record);
        act.round(record);
        self.round += 1;
        self.begin_round(now, act);
    }
}

impl<P: RoundPolicy> Algorithm for RoundSync<P> {
    fn start(&mut self, now: f64, act: &mut Actions) {
        self.begin_round(now, act);
    }

    fn on_step(&mut self, worker: usize, now: f64, act: &mut Actions) {
        let count = &mut self.counts[worker];
        *count += 1;
        if *count == self.plan.targets[worker] {
            self.reached += 1;
            if self.reached == self.plan.wait && !self.closing {
                self.closing = true;
                act.timer(now, self.round);
            }
        }
        if *count < self.plan.max_steps(worker) {
            self.step_start[worker] = now;
            act.step(worker);
        }
    }

    fn on_message(&mut self, msg: &Message, now: f64, act: &mut Actions) {
        if msg.tag != self.round {
            return; // a late message of an earlier round
        }
        match msg.to {
            Node::Worker(m) if self.computing => {
                self.step_start[m] = now;
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

    fn on_timer(&mut self, tag: u64, now: f64, act: &mut Actions) {
        if tag != self.round || !self.computing {
            return; // the deadline of a round that K closed earlier
        }
        if !self.closing {
            // the deadline: close after the steps that finish at this same instant, as at T
            self.closing = true;
            act.timer(now, self.round);
            return;
        }
        self.computing = false;
        self.compute_end = now;
        act.cancel_all();
        // steps that started this instant never ran (the engine gives their draw back)
        self.cancelled = (0..self.counts.len())
            .filter(|&m| self.step_start[m] < now && self.counts[m] < self.plan.max_steps(m))
            .count() as u32;
        self.uploaders = 0;
        for (m, &c) in self.counts.iter().enumerate() {
            if self.plan.uploads(c) {
                self.uploaders += 1;
                act.send(Node::Worker(m), Node::Server, self.model_bytes, self.round);
            }
        }
        self.uploads_pending = self.uploaders;
        if self.uploaders == 0 {
            self.finish_round(now, act);
        }
    }
}
