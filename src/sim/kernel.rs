//! The per-round kernel: computes a round of a [`RoundPlan`] without a global heap. Each
//! participant's U_m-th completion time is drawn from its (worker, round) stream, the K-th
//! smallest is selected in O(M), and each worker's completions up to that time are counted. Workers are processed in
//! parallel (rayon) in fixed chunks; every per-worker result depends only on that worker's
//! streams, and the selection depends only on values, so the result does not depend on the thread
//! count.
//!
//! It reproduces [`super::round::RoundSync`] on the engine bit for bit: the same streams are drawn
//! in the same order per worker, times are accumulated with the same floating-point operations
//! (arrival + x_1 + x_2 + ...), and ties at T count as completed, exactly as the engine's FIFO
//! tie-breaking handles them. Durations that depend on the start time (time-varying rates) get
//! the same start times as on the engine. `tests/timing.rs` checks this.
//!
//! Timing-only runs of one fixed plan ([`RoundKernel::run_fixed`]) with few workers overlap
//! rounds instead: a second thread draws the arrivals and durations of the coming rounds, which
//! depend on no earlier round, while the calling thread closes rounds in order.

use rayon::prelude::*;

use super::round::{FixedRounds, RoundPlan, RoundPolicy, check_steps};
use crate::error::Result;
use crate::rng::{Purpose, Seeds, StreamKey};
use crate::timing::{CommTime, ComputeTime, WorkerClock};
use crate::trace::{RoundRecord, Sink};

/// Workers per parallel task.
const CHUNK: usize = 4096;

/// Largest M·U for which the U completion times of every worker are kept between the passes
/// (16 Mi values, 128 MiB); above it, pass 2 replays the slow workers' streams instead.
const STORE_LIMIT: usize = 1 << 24;

/// Floats of drawn durations per batch handed between the two threads of
/// [`RoundKernel::run_fixed`] (512 KiB: a batch stays in cache between drawing and closing).
const PIPELINE_FLOATS: usize = 1 << 16;

/// Pass 1 of consecutive rounds without their start times, drawn ahead by
/// [`RoundKernel::run_fixed`]; entries are (round − first)·M + m.
#[derive(Debug, Default)]
struct DrawnRounds {
    first: u64,
    /// Downlink delay of the model (0 with an instantaneous downlink).
    delays: Vec<f64>,
    /// U_m durations per entry, `stride` apart.
    durations: Vec<f64>,
    /// The worker's clock after its U_m-th draw.
    clocks: Vec<WorkerClock>,
}

/// Per-worker scratch of one round.
#[derive(Clone, Debug)]
struct WorkerRound {
    /// When the model arrived (the worker starts computing).
    begin: f64,
    /// Completion time of the U-th step.
    finish: f64,
    /// The worker's clock after its U-th draw.
    clock: WorkerClock,
    /// Steps completed by T (N_m).
    count: u32,
    /// Durations the engine would have drawn and kept (N_m, plus one for a step cancelled in
    /// progress).
    draws: u64,
}

/// Runs rounds of [`RoundPlan`]s; see the module docs.
#[derive(Debug)]
pub struct RoundKernel<'a> {
    compute: &'a ComputeTime,
    comm: &'a CommTime,
    seeds: Seeds,
    model_bytes: u64,
    scratch: Vec<WorkerRound>,
    /// Completion times of steps 1..U_max of every worker (worker-major), when M·U_max is small
    /// enough.
    times: Vec<f64>,
    finish: Vec<f64>,
    /// Trace positions (replayed traces only).
    cursors: Vec<u64>,
    /// Each worker's compute-time stream key (hashed once; a round only adds its number).
    keys: Vec<StreamKey>,
    /// Rounds ending later than this are not made.
    horizon: f64,
}

impl<'a> RoundKernel<'a> {
    /// A kernel for M workers.
    pub fn new(workers: usize, compute: &'a ComputeTime, comm: &'a CommTime, seeds: Seeds, model_bytes: u64) -> Self {
        let scratch = (0..workers)
            .map(|w| WorkerRound {
                begin: 0.0,
                finish: f64::INFINITY,
                clock: compute.clock(&seeds, w, 0),
                count: 0,
                draws: 0,
            })
            .collect();
        RoundKernel {
            compute,
            comm,
            seeds,
            model_bytes,
            scratch,
            times: Vec::new(),
            finish: Vec::with_capacity(workers),
            cursors: vec![0; workers],
            keys: (0..workers).map(|w| seeds.key(Purpose::ComputeTime, w as u64)).collect(),
            horizon: f64::INFINITY,
        }
    }

    /// [`RoundKernel::run`] stops before the first round that would end later than `horizon` (a
    /// simulated-time budget), as the engine does with [`crate::sim::Engine::with_horizon`].
    pub fn with_horizon(mut self, horizon: f64) -> Self {
        self.horizon = horizon;
        self
    }

    /// Runs every round `policy` plans, from time 0; returns the simulated end time.
    pub fn run<P: RoundPolicy + ?Sized>(&mut self, policy: &mut P, sink: &mut dyn Sink) -> Result<f64> {
        let (mut plan, mut start, mut counts, mut round) = (RoundPlan::default(), 0.0, Vec::new(), 0);
        while policy.plan(round, &mut plan) {
            plan.check()?;
            let mut record = self.round(&plan, round, start, counts)?;
            if record.end > self.horizon {
                break;
            }
            policy.finish(&mut record);
            sink.round(&record)?;
            start = record.end;
            counts = record.counts;
            round += 1;
        }
        Ok(start)
    }

    /// Runs the `fixed.rounds` rounds of one plan, as [`RoundKernel::run`] does, from time 0;
    /// returns the simulated end time. When a round's draws cannot depend on earlier rounds
    /// (durations that depend neither on the start time nor on a trace position), a round is
    /// small (M ≤ 4096 workers, M·U_max ≤ 65,536 durations), and rayon has more than one
    /// thread, a second thread draws the model arrivals and the U_m durations of the coming
    /// rounds while this one closes the current round. The draws are the same, in the same
    /// order per worker, and are added up with the same operations, so the records are
    /// bit-identical to [`RoundKernel::run`]'s (`tests/timing.rs` checks both against the heap
    /// engine).
    pub fn run_fixed(&mut self, fixed: &FixedRounds, sink: &mut dyn Sink) -> Result<f64> {
        let (plan, workers) = (&fixed.plan, self.scratch.len());
        let stride = plan.max_target() as usize;
        let pipelined = fixed.rounds > 1
            && !self.compute.carries_across_rounds()
            && workers <= CHUNK
            && workers * stride <= PIPELINE_FLOATS
            && rayon::current_num_threads() > 1;
        if !pipelined {
            return self.run(&mut fixed.clone(), sink);
        }
        assert_eq!(plan.workers(), workers, "plan for {} workers, kernel for {workers}", plan.workers());
        plan.check()?;
        let (compute, comm, seeds, bytes) = (self.compute, self.comm, self.seeds, self.model_bytes);
        let keys = self.keys.clone();
        let per_batch = PIPELINE_FLOATS / (workers * stride.max(1));
        let batches = fixed.rounds.div_ceil(per_batch as u64);
        let template = self.scratch[0].clock.clone();
        // Pass 1 without the start time, for rounds first..first + n.
        let draw = move |first: u64, n: usize, d: &mut DrawnRounds| {
            d.first = first;
            d.delays.resize(n * workers, 0.0);
            d.durations.resize(n * workers * stride, 0.0);
            d.clocks.resize(n * workers, template.clone());
            for i in 0..n {
                let round = first + i as u64;
                for m in 0..workers {
                    let (j, target) = (i * workers + m, plan.targets[m] as usize);
                    if target == 0 {
                        continue;
                    }
                    if !comm.downlink.is_zero() {
                        d.delays[j] =
                            comm.message_time(m, false, bytes, &mut CommTime::stream(&seeds, m, false, round));
                    }
                    compute.rekey_with(keys[m], m, round, &mut d.clocks[j]);
                    // the start time is unused: durations do not depend on it here
                    compute.fill(m, &mut d.clocks[j], 0.0, &mut d.durations[j * stride..][..target]);
                }
            }
        };
        std::thread::scope(|scope| {
            let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<DrawnRounds>(2);
            let (empty_tx, empty_rx) = std::sync::mpsc::channel::<DrawnRounds>();
            scope.spawn(move || {
                for b in 0..batches {
                    let first = b * per_batch as u64;
                    let n = (fixed.rounds - first).min(per_batch as u64) as usize;
                    let mut d = empty_rx.try_recv().unwrap_or_default();
                    draw(first, n, &mut d);
                    if full_tx.send(d).is_err() {
                        return; // the closing side stopped early
                    }
                }
            });
            self.times.resize(workers * stride, 0.0);
            let (mut start, mut counts) = (0.0, Vec::new());
            for d in full_rx.iter() {
                for i in 0..d.delays.len() / workers {
                    // the rest of pass 1: arrivals and completion times from `start`
                    for (m, s) in self.scratch.iter_mut().enumerate() {
                        let (j, target) = (i * workers + m, plan.targets[m] as usize);
                        if target == 0 {
                            s.finish = f64::INFINITY;
                            continue;
                        }
                        s.begin = if comm.downlink.is_zero() { start } else { start + d.delays[j] };
                        s.clock.clone_from(&d.clocks[j]);
                        let times = &mut self.times[m * stride..][..target];
                        times.copy_from_slice(&d.durations[j * stride..][..target]);
                        s.finish = completion_times(s.begin, times);
                    }
                    let record = self.close(plan, d.first + i as u64, start, counts)?;
                    if record.end > self.horizon {
                        return Ok(start);
                    }
                    sink.round(&record)?;
                    start = record.end;
                    counts = record.counts;
                }
                let _ = empty_tx.send(d);
            }
            Ok(start)
        })
    }

    /// Computes round `round` of `plan` starting at `start`. `counts` is reused as the record's
    /// N_m (pass the previous record's `counts` back to avoid an allocation per round). Fails
    /// when the round's closing time is not a finite number (a tail too heavy for f64).
    pub fn round(&mut self, plan: &RoundPlan, round: u64, start: f64, counts: Vec<u32>) -> Result<RoundRecord> {
        let workers = self.scratch.len();
        assert_eq!(plan.workers(), workers, "plan for {} workers, kernel for {workers}", plan.workers());
        let (compute, comm, seeds, bytes) = (self.compute, self.comm, self.seeds, self.model_bytes);
        let stride = plan.max_target() as usize;
        if workers.saturating_mul(stride) <= STORE_LIMIT {
            self.times.resize(workers * stride, 0.0);
        } else {
            self.times.clear();
        }
        let cursors = &self.cursors;
        let keys = &self.keys;
        let fresh_clock =
            |m: usize, clock: &mut WorkerClock| fresh_clock(compute, keys[m], cursors[m], m, round, clock);

        // Pass 1: arrival of the model and completion times of steps 1..U_m of every participant.
        let first_pass = |m: usize, s: &mut WorkerRound, times: &mut [f64]| {
            let target = plan.targets[m] as usize;
            if target == 0 {
                s.finish = f64::INFINITY;
                return;
            }
            s.begin = if comm.downlink.is_zero() {
                start
            } else {
                start + comm.message_time(m, false, bytes, &mut CommTime::stream(&seeds, m, false, round))
            };
            fresh_clock(m, &mut s.clock);
            let mut t = s.begin;
            if times.is_empty() {
                for _ in 0..target {
                    t += compute.next(m, &mut s.clock, t);
                }
            } else {
                let times = &mut times[..target];
                compute.fill(m, &mut s.clock, t, times);
                t = completion_times(t, times);
            }
            s.finish = t;
        };
        for_each_worker(&mut self.scratch, &mut self.times, stride, first_pass);
        self.close(plan, round, start, counts)
    }

    /// The rest of a round once pass 1 has left every participant's arrival, U_m-th completion
    /// time and clock in the scratch (and its completion times in `times`, when kept): selects
    /// T, counts the completions by T and makes the record.
    fn close(&mut self, plan: &RoundPlan, round: u64, start: f64, mut counts: Vec<u32>) -> Result<RoundRecord> {
        let workers = self.scratch.len();
        let (compute, comm, seeds, bytes) = (self.compute, self.comm, self.seeds, self.model_bytes);
        let stride = plan.max_target() as usize;
        let cursors = &self.cursors;
        let keys = &self.keys;
        let fresh_clock =
            |m: usize, clock: &mut WorkerClock| fresh_clock(compute, keys[m], cursors[m], m, round, clock);

        // T: the K-th smallest completion time of a target, or the deadline if earlier.
        self.finish.clear();
        self.finish.extend(self.scratch.iter().map(|s| s.finish));
        let (_, &mut t_kth, _) = self.finish.select_nth_unstable_by(plan.wait - 1, f64::total_cmp);
        let t_close = plan.deadline.map_or(t_kth, |d| t_kth.min(start + d));
        if !t_close.is_finite() {
            return Err(super::engine::clock_error(t_close, compute, comm));
        }

        // Pass 2: completions at or before T. A worker that reached its target continues its
        // stream; one that did not counts its stored times (or replays its stream).
        let second_pass = |m: usize, s: &mut WorkerRound, times: &mut [f64]| {
            s.count = 0;
            s.draws = 0;
            let (target, max_steps) = (plan.targets[m], plan.max_steps(m));
            if target == 0 || s.begin > t_close {
                return; // not taking part, or the model had not arrived: never started
            }
            // `last`: when the worker's last completed step ended (its begin when none did)
            let last;
            if s.finish <= t_close {
                let (extra, end) = compute.steps_until(m, &mut s.clock, s.finish, t_close, max_steps - target);
                (s.count, last) = (target + extra, end);
            } else if !times.is_empty() {
                // the times are increasing: a branchless count beats a binary search at these lengths
                s.count = times[..target as usize].iter().map(|&t| (t <= t_close) as u32).sum();
                last = if s.count == 0 { s.begin } else { times[s.count as usize - 1] };
            } else {
                fresh_clock(m, &mut s.clock);
                (s.count, last) = compute.steps_until(m, &mut s.clock, s.begin, t_close, u32::MAX);
            }
            // a step in progress at T is cancelled; one that would start at T never runs
            s.draws = s.count as u64 + (s.count < max_steps && last < t_close) as u64;
        };
        for_each_worker(&mut self.scratch, &mut self.times, stride, second_pass);

        // N_m, the trace positions and the round's totals; the totals are integer sums and a
        // maximum, so splitting the workers over threads does not change them
        counts.resize(workers, 0);
        let tally = |first: usize, scratch: &[WorkerRound], counts: &mut [u32], cursors: &mut [u64]| {
            let mut total = Tally { end: t_close, ..Tally::default() };
            for (i, s) in scratch.iter().enumerate() {
                let m = first + i;
                counts[i] = s.count;
                cursors[i] += s.draws;
                total.updates += s.count as u64;
                total.cancelled += (s.draws > s.count as u64) as u32;
                if plan.uploads(s.count) {
                    total.uploaders += 1;
                    if !comm.uplink.is_zero() {
                        let up = comm.message_time(m, true, bytes, &mut CommTime::stream(&seeds, m, true, round));
                        total.end = total.end.max(t_close + up);
                    }
                }
            }
            total
        };
        let total = if workers <= CHUNK {
            tally(0, &self.scratch, &mut counts, &mut self.cursors)
        } else {
            self.scratch
                .par_chunks(CHUNK)
                .zip(counts.par_chunks_mut(CHUNK))
                .zip(self.cursors.par_chunks_mut(CHUNK))
                .enumerate()
                .map(|(c, ((scratch, counts), cursors))| tally(c * CHUNK, scratch, counts, cursors))
                .reduce(|| Tally { end: t_close, ..Tally::default() }, Tally::merge)
        };
        let Tally { updates, uploaders, cancelled, end } = total;
        let participants = plan.participants() as u32;
        let record = RoundRecord {
            round,
            start,
            compute_end: t_close,
            end,
            participants,
            uploaders,
            uploads: uploaders,
            updates,
            cancelled,
            counts,
        };
        check_steps(&record)?;
        Ok(record)
    }
}

/// A round's totals over some of its workers.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    updates: u64,
    uploaders: u32,
    cancelled: u32,
    /// The latest arrival of an upload (the closing time when there are none).
    end: f64,
}

impl Tally {
    fn merge(self, other: Tally) -> Tally {
        Tally {
            updates: self.updates + other.updates,
            uploaders: self.uploaders + other.uploaders,
            cancelled: self.cancelled + other.cancelled,
            end: self.end.max(other.end),
        }
    }
}

/// Re-keys a worker's clock to round `round` at its trace position `cursor`.
fn fresh_clock(compute: &ComputeTime, key: StreamKey, cursor: u64, m: usize, round: u64, clock: &mut WorkerClock) {
    compute.rekey_with(key, m, round, clock);
    compute.set_cursor(clock, cursor);
}

/// Turns the durations of back-to-back steps from `begin` into their completion times, in
/// place (begin + x_1, then + x_2, ...); returns the last (`begin` when there are none).
fn completion_times(begin: f64, times: &mut [f64]) -> f64 {
    let mut t = begin;
    for slot in times.iter_mut() {
        t += *slot;
        *slot = t;
    }
    t
}

/// Calls `f(m, &mut scratch[m], times of m)` for every worker, in parallel chunks of workers
/// when there are many. `times` is empty or holds `stride` values per worker.
fn for_each_worker(
    scratch: &mut [WorkerRound],
    times: &mut [f64],
    stride: usize,
    f: impl Fn(usize, &mut WorkerRound, &mut [f64]) + Sync,
) {
    let run_chunk = |first: usize, chunk: &mut [WorkerRound], times: &mut [f64]| {
        for (i, s) in chunk.iter_mut().enumerate() {
            let slice = if times.is_empty() { &mut [][..] } else { &mut times[i * stride..(i + 1) * stride] };
            f(first + i, s, slice);
        }
    };
    if scratch.len() <= CHUNK {
        run_chunk(0, scratch, times);
    } else if times.is_empty() {
        scratch.par_chunks_mut(CHUNK).enumerate().for_each(|(c, chunk)| run_chunk(c * CHUNK, chunk, &mut []));
    } else {
        scratch
            .par_chunks_mut(CHUNK)
            .zip(times.par_chunks_mut(CHUNK * stride))
            .enumerate()
            .for_each(|(c, (chunk, t))| run_chunk(c * CHUNK, chunk, t));
    }
}
