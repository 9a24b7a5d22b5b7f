//! LOSCAR-SGD (Maziane, Mahran, Maranjyan & Richtárik 2026; specs/baselines.md §13): local SGD
//! with heterogeneous step counts, sparse model averaging on a shared random mask, and
//! computation that continues while the average is in flight.
//!
//! Round r of worker i starts from its iterate x_i^r: it takes N_i local steps and sends the
//! snapshot y_i^r = w_{i,N_i} restricted to the round's mask S_r (K coordinates drawn from a
//! seed shared by everybody, so no index is sent: a message is 4·K bytes). The server averages
//! when all n snapshots of round r have arrived and sends m̄^r back (4·K bytes; with
//! `mask = "server"` the server draws S_r and adds its K indices, 8·K bytes).
//! Meanwhile the worker keeps computing; Q_i overlap steps later it holds z_i^r and merges:
//! delay-corrected x_{i,j}^{r+1} = m̄_j^r + (z_{i,j}^r − y_{i,j}^r) for j ∈ S_r, or naive
//! overwriting x_{i,j}^{r+1} = m̄_j^r (the ablation), and z_{i,j}^r off the mask.
//!
//! Timing model (the spec marks it inferred, \[I\]; each choice is an option):
//! - N_i: a fixed N for everybody, or N_i = max(1, ⌊T_loc / E\[τ_i\]⌋) for a compute budget T_loc
//!   per round, so fast workers are not throttled ([`LocalSteps`]).
//! - `overlap_mode = until_arrival`: the worker computes until m̄^r arrives and merges at the
//!   first step boundary after the arrival (a step in progress is never pre-empted), so Q_i is
//!   whatever fits in the round trip, at least 1. `overlap_mode = fixed_q` with Q: the worker
//!   takes exactly Q overlap steps, then idles until m̄^r arrives (merging at once if it already
//!   has); Q = 0 is "no overlap" (the worker idles while its message travels).
//! - The next round of worker i starts at its merge, so workers drift apart: round r is per
//!   worker, and the server's round r closes when the last snapshot of round r arrives.
//! - Steps draw durations from each worker's one stream for the whole run.
//!
//! Learning goes through [`LoscarHooks`] (timing-only runs use `()`).

use super::traffic::Traffic;
use crate::error::{Error, Result};
use crate::learner::MergeRule;
use crate::sim::{Actions, Algorithm, MAX_STEPS_PER_ROUND, Message, Node};
use crate::timing::ComputeTime;
use crate::trace::RoundRecord;

/// How many local steps N_i worker i takes before sending.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LocalSteps {
    /// N for every worker.
    Fixed(u32),
    /// N_i = max(1, ⌊T_loc / E\[τ_i\]⌋) for the compute budget T_loc.
    Budget(f64),
}

/// What a worker does while its snapshot and the average travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverlapMode {
    /// Compute until the average arrives; merge at the next step boundary.
    UntilArrival,
    /// Exactly Q overlap steps, then wait (Q = 0: no overlap).
    FixedQ(u32),
}

/// K = max(1, round(p·d)): the coordinates synchronized per round for sparsity p = K/d.
pub fn coordinates(sparsity: f64, dim: usize) -> usize {
    ((sparsity * dim as f64).round() as usize).clamp(1, dim.max(1))
}

/// Checked settings of `loscar` in an experiment.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// N_i.
    pub local_steps: LocalSteps,
    /// p = K/d, in (0, 1].
    pub sparsity: f64,
    /// Overlap behaviour.
    pub overlap: OverlapMode,
    /// Merge rule.
    pub merge: MergeRule,
    /// The server draws S_r and sends its K indices with the average (the spec leaves open
    /// whether the mask comes from a shared seed or from the server, §16; the values are the same
    /// either way, only the downlink bytes differ).
    pub server_mask: bool,
}

/// N_i for every worker under `compute` (the budget rule needs finite mean step times, and a
/// budget that covers at least the fastest worker's mean step: below it, every N_i would be the
/// floor of 1 and the budget would change nothing).
pub fn steps_per_worker(local_steps: LocalSteps, compute: &ComputeTime, workers: usize) -> Result<Vec<u32>> {
    if let LocalSteps::Budget(budget) = local_steps
        && let Some(fastest) = compute.shortest_mean(workers)
        && budget < fastest
    {
        return Err(Error::invalid(
            "compute_budget",
            budget,
            format!("is below every worker's mean step time (the fastest: {fastest}), so no N_i would count it"),
        ));
    }
    (0..workers)
        .map(|i| match local_steps {
            LocalSteps::Fixed(n) => Ok(n),
            LocalSteps::Budget(budget) => {
                let mean = compute.mean(i).filter(|m| m.is_finite() && *m > 0.0).ok_or_else(|| {
                    Error::invalid(
                        "compute_budget",
                        budget,
                        format!("needs a finite mean step time, and worker {i}'s is not ({})", compute.spec()),
                    )
                })?;
                let steps = (budget / mean).floor();
                if steps >= MAX_STEPS_PER_ROUND as f64 {
                    return Err(Error::invalid(
                        "compute_budget",
                        budget,
                        format!("gives worker {i} {steps:e} local steps a round, 2^28 or more"),
                    ));
                }
                Ok((steps as u32).max(1))
            }
        })
        .collect()
}

/// Learning side of LOSCAR-SGD. Every call comes in simulated-time order.
pub trait LoscarHooks {
    /// Worker `worker` starts its round `round` (from its current iterate).
    fn round_started(&mut self, _worker: usize, _round: u64) {}
    /// Worker `worker` completed one local SGD step.
    fn step(&mut self, _worker: usize) {}
    /// Worker `worker` sends its snapshot y of round `round` (its model on S_r).
    fn snapshot(&mut self, _worker: usize, _round: u64) {}
    /// The server has every snapshot of `round` and computes m̄.
    fn average(&mut self, _round: u64) {}
    /// Worker `worker` merges m̄ of `round` into its iterate.
    fn merge(&mut self, _worker: usize, _round: u64) {}
    /// The server closed `record.round`; `traffic` holds the counters so far. Returns false to
    /// end the run.
    fn round_done(&mut self, _record: &RoundRecord, _traffic: &Traffic) -> bool {
        true
    }
}

impl LoscarHooks for () {}

/// Where a worker is within its round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Taking its N_i local steps.
    Local,
    /// Snapshot sent, computing overlap steps.
    Overlap,
    /// Done with its overlap steps, idle until the average arrives.
    Blocked,
}

#[derive(Clone, Debug)]
struct WorkerRound {
    round: u64,
    steps: u32,
    overlap: u32,
    phase: Phase,
    average_arrived: bool,
}

/// The event-driven strategy; see the module docs.
#[derive(Clone, Debug)]
pub struct Loscar<H = ()> {
    local_steps: Vec<u32>,
    overlap: OverlapMode,
    message_bytes: u64,
    downlink_bytes: u64,
    rounds: u64,
    hooks: H,
    workers: Vec<WorkerRound>,
    server_round: u64,
    arrivals: usize,
    last_close: f64,
    last_upload: f64,
    steps_since_close: Vec<u32>,
    /// What was sent and computed so far.
    pub traffic: Traffic,
}

impl<H: LoscarHooks> Loscar<H> {
    /// Workers with N_i = `local_steps[i]`, messages of `message_bytes` (4·K), at most `rounds`
    /// server rounds.
    pub fn new(local_steps: Vec<u32>, overlap: OverlapMode, message_bytes: u64, rounds: u64, hooks: H) -> Self {
        assert!(local_steps.iter().all(|&n| n >= 1), "N_i must be at least 1");
        let m = local_steps.len();
        Loscar {
            local_steps,
            overlap,
            message_bytes,
            downlink_bytes: message_bytes,
            rounds,
            hooks,
            workers: vec![
                WorkerRound { round: 0, steps: 0, overlap: 0, phase: Phase::Local, average_arrived: false };
                m
            ],
            server_round: 0,
            arrivals: 0,
            last_close: 0.0,
            last_upload: 0.0,
            steps_since_close: vec![0; m],
            traffic: Traffic::new(m),
        }
    }

    /// Averages of `bytes` each instead of `message_bytes` (a server-drawn mask adds its indices).
    pub fn with_downlink_bytes(mut self, bytes: u64) -> Self {
        self.downlink_bytes = bytes;
        self
    }

    /// The hooks (to read their results after the run).
    pub fn into_hooks(self) -> H {
        self.hooks
    }

    /// The hooks.
    pub fn hooks_mut(&mut self) -> &mut H {
        &mut self.hooks
    }

    fn begin_round(&mut self, i: usize, round: u64, act: &mut Actions) {
        self.workers[i] = WorkerRound { round, steps: 0, overlap: 0, phase: Phase::Local, average_arrived: false };
        self.hooks.round_started(i, round);
        act.step(i);
    }

    fn merge_and_continue(&mut self, i: usize, act: &mut Actions) {
        let round = self.workers[i].round;
        self.hooks.merge(i, round);
        self.begin_round(i, round + 1, act);
    }
}

impl<H: LoscarHooks> Algorithm for Loscar<H> {
    fn start(&mut self, _now: f64, act: &mut Actions) {
        if self.rounds == 0 {
            act.stop();
            return;
        }
        for i in 0..self.workers.len() {
            self.begin_round(i, 0, act);
        }
    }

    fn on_step(&mut self, i: usize, now: f64, act: &mut Actions) {
        self.hooks.step(i);
        self.traffic.local_steps[i] += 1;
        self.steps_since_close[i] += 1;
        let w = &mut self.workers[i];
        match w.phase {
            Phase::Local => {
                w.steps += 1;
                if w.steps < self.local_steps[i] {
                    act.step(i);
                    return;
                }
                let round = w.round;
                w.phase = Phase::Overlap;
                if self.overlap == OverlapMode::FixedQ(0) {
                    w.phase = Phase::Blocked;
                } else {
                    act.step(i);
                }
                self.hooks.snapshot(i, round);
                self.traffic.worker_sent(i, self.message_bytes);
                self.last_upload = now;
                act.send(Node::Worker(i), Node::Server, self.message_bytes, round);
            }
            Phase::Overlap => {
                w.overlap += 1;
                self.traffic.overlap_steps[i] += 1;
                let done = match self.overlap {
                    OverlapMode::UntilArrival => w.average_arrived,
                    OverlapMode::FixedQ(q) => w.overlap >= q,
                };
                if !done {
                    act.step(i);
                } else if w.average_arrived {
                    self.merge_and_continue(i, act);
                } else {
                    w.phase = Phase::Blocked;
                }
            }
            Phase::Blocked => unreachable!("a blocked worker has no step in progress"),
        }
    }

    fn on_message(&mut self, msg: &Message, now: f64, act: &mut Actions) {
        match msg.to {
            Node::Server => {
                debug_assert_eq!(msg.tag, self.server_round, "a snapshot of another round reached the server");
                self.arrivals += 1;
                if self.arrivals < self.workers.len() {
                    return;
                }
                let round = self.server_round;
                self.hooks.average(round);
                let n = self.workers.len() as u32;
                let record = RoundRecord {
                    round,
                    start: self.last_close,
                    compute_end: self.last_upload,
                    end: now,
                    participants: n,
                    uploaders: n,
                    uploads: n,
                    updates: self.steps_since_close.iter().map(|&c| c as u64).sum(),
                    cancelled: 0,
                    counts: std::mem::replace(&mut self.steps_since_close, vec![0; n as usize]),
                };
                for i in 0..self.workers.len() {
                    self.traffic.server_sent(self.downlink_bytes);
                    act.send(Node::Server, Node::Worker(i), self.downlink_bytes, round);
                }
                let go_on = self.hooks.round_done(&record, &self.traffic);
                act.round(record);
                self.server_round += 1;
                self.arrivals = 0;
                self.last_close = now;
                if !go_on || self.server_round >= self.rounds {
                    act.stop();
                }
            }
            Node::Worker(i) => {
                let w = &mut self.workers[i];
                debug_assert_eq!(msg.tag, w.round, "an average of another round reached worker {i}");
                w.average_arrived = true;
                if w.phase == Phase::Blocked {
                    self.merge_and_continue(i, act);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Seeds;
    use crate::sim::Engine;
    use crate::timing::{CommTime, Dist, Link};
    use crate::trace::MemorySink;

    fn run(overlap: OverlapMode, latency: f64) -> (Vec<RoundRecord>, Traffic) {
        // Fixed model: τ = (1, 2), N = (4, 2): both send at t = 4.
        let compute = ComputeTime::parse("const(1)", "means(1, 2)", 2, std::path::Path::new(".")).unwrap();
        let link = Link { latency: Some(Dist::Constant { value: latency }), bandwidth: None };
        let comm = CommTime::new(link.clone(), link);
        let mut alg = Loscar::new(vec![4, 2], overlap, 40, 2, ());
        let mut sink = MemorySink::default();
        Engine::new(2, &compute, &comm, Seeds::new(1)).run(&mut alg, &mut sink).unwrap();
        (sink.rounds, alg.traffic)
    }

    #[test]
    fn overlap_modes_in_the_fixed_model() {
        // Both uploads leave at 4 and arrive at 5; the average reaches both workers at 6.
        // No overlap: both idle from 4 to 6 and start round 1 at 6; they send again at 10.
        let (rounds, traffic) = run(OverlapMode::FixedQ(0), 1.0);
        assert_eq!(rounds.iter().map(|r| r.end).collect::<Vec<_>>(), vec![5.0, 11.0]);
        assert_eq!(traffic.total_overlap_steps(), 0);
        // Until arrival: the steps that end at 6 were scheduled before the average was sent, so
        // they come first (FIFO ties) and the merge waits for the next boundary. Worker 0
        // (τ = 1) steps at 5, 6, 7 and merges at 7 (Q = 3); worker 1 (τ = 2) steps at 6, 8 and
        // merges at 8 (Q = 2). Round 1 sends at 11 and 12 and closes at 13, when the run stops;
        // by then worker 0 has taken one more overlap step (at 12).
        let (rounds, traffic) = run(OverlapMode::UntilArrival, 1.0);
        assert_eq!(rounds.iter().map(|r| r.end).collect::<Vec<_>>(), vec![5.0, 13.0]);
        assert_eq!(traffic.overlap_steps, vec![3 + 1, 2]);
        // Fixed Q = 3: worker 0 steps at 5, 6, 7 and merges at 7; worker 1 at 6, 8, 10 and
        // merges at 10. Round 1 sends at 7 + 4 = 11 and 10 + 4 = 14: closes at 15. Worker 0
        // has meanwhile taken its 3 overlap steps of round 1 (12, 13, 14) and waits.
        let (rounds, traffic) = run(OverlapMode::FixedQ(3), 1.0);
        assert_eq!(rounds.iter().map(|r| r.end).collect::<Vec<_>>(), vec![5.0, 15.0]);
        assert_eq!(traffic.overlap_steps, vec![3 + 3, 3]);
        assert_eq!(traffic.bytes_sent, vec![80, 80]);
        assert_eq!(traffic.server_bytes_sent, 160);
    }

    #[test]
    fn a_server_drawn_mask_adds_its_indices_to_the_downlink() {
        // 40-byte messages, 40 bytes of indices with each average: 2 rounds × 2 workers × 80 down
        let compute = ComputeTime::parse("const(1)", "same", 2, std::path::Path::new(".")).unwrap();
        let mut alg = Loscar::new(vec![2, 2], OverlapMode::FixedQ(0), 40, 2, ()).with_downlink_bytes(80);
        Engine::new(2, &compute, &CommTime::ZERO, Seeds::new(1)).run(&mut alg, &mut MemorySink::default()).unwrap();
        assert_eq!(alg.traffic.bytes_sent, vec![80, 80]);
        assert_eq!(alg.traffic.server_bytes_sent, 320);
    }
}
