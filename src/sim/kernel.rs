//! The per-round kernel: computes a round of a [`RoundRule`] without a global heap. Each worker's
//! U-th completion time is drawn from its (worker, round) stream, the K-th smallest is selected
//! in O(M), and each worker's completions up to that time are counted. Workers are processed in
//! parallel (rayon) in fixed chunks; every per-worker result depends only on that worker's
//! streams, and the selection depends only on values, so the result does not depend on the thread
//! count.
//!
//! It reproduces [`super::round::RoundSync`] on the engine bit for bit: the same streams are drawn
//! in the same order per worker, times are accumulated with the same floating-point operations
//! (arrival + x_1 + x_2 + ...), and ties at T count as completed, exactly as the engine's FIFO
//! tie-breaking handles them. `tests/timing.rs` checks this.

use rayon::prelude::*;

use super::round::RoundRule;
use crate::rng::Seeds;
use crate::timing::{CommTime, ComputeTime, WorkerClock};
use crate::trace::RoundRecord;

/// Workers per parallel task.
const CHUNK: usize = 4096;

/// Largest M·U for which the U completion times of every worker are kept between the passes
/// (16 Mi values, 128 MiB); above it, pass 2 replays the slow workers' streams instead.
const STORE_LIMIT: usize = 1 << 24;

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
    /// Durations the engine would have drawn (N_m, plus one for a step cancelled in progress).
    draws: u64,
}

/// Runs rounds of a [`RoundRule`]; see the module docs.
#[derive(Debug)]
pub struct RoundKernel<'a> {
    compute: &'a ComputeTime,
    comm: &'a CommTime,
    seeds: Seeds,
    rule: RoundRule,
    model_bytes: u64,
    scratch: Vec<WorkerRound>,
    /// Completion times of steps 1..U of every worker (worker-major), when M·U is small enough.
    times: Vec<f64>,
    finish: Vec<f64>,
    /// Trace positions (replayed traces only).
    cursors: Vec<u64>,
}

impl<'a> RoundKernel<'a> {
    /// A kernel for `rule`.
    pub fn new(
        rule: RoundRule,
        compute: &'a ComputeTime,
        comm: &'a CommTime,
        seeds: Seeds,
        model_bytes: u64,
    ) -> Self {
        let m = rule.workers;
        let u = rule.target as usize;
        let scratch = (0..m)
            .map(|w| WorkerRound {
                begin: 0.0,
                finish: 0.0,
                clock: compute.clock(&seeds, w, 0),
                count: 0,
                draws: 0,
            })
            .collect();
        let times = if m.saturating_mul(u) <= STORE_LIMIT {
            vec![0.0; m * u]
        } else {
            Vec::new()
        };
        RoundKernel {
            compute,
            comm,
            seeds,
            rule,
            model_bytes,
            scratch,
            times,
            finish: Vec::with_capacity(m),
            cursors: vec![0; m],
        }
    }

    /// Computes round `round` starting at `start`. `counts` is reused as the record's N_m
    /// (pass the previous record's `counts` back to avoid an allocation per round).
    pub fn round(&mut self, round: u64, start: f64, mut counts: Vec<u32>) -> RoundRecord {
        let RoundRule {
            workers,
            wait,
            target,
            max_steps,
        } = self.rule;
        let (compute, comm, seeds, bytes) = (self.compute, self.comm, self.seeds, self.model_bytes);
        let cursors = &self.cursors;
        let fresh_clock = |m: usize, clock: &mut WorkerClock| {
            compute.rekey(&seeds, m, round, clock);
            compute.set_cursor(clock, cursors[m]);
        };

        // Pass 1: arrival of the model and completion times of steps 1..U for every worker.
        let first_pass = |m: usize, s: &mut WorkerRound, times: &mut [f64]| {
            s.begin = if comm.downlink.is_zero() {
                start
            } else {
                start
                    + comm
                        .downlink
                        .sample(bytes, &mut CommTime::stream(&seeds, m, false, round))
            };
            fresh_clock(m, &mut s.clock);
            let mut t = s.begin;
            if times.is_empty() {
                for _ in 0..target {
                    t += compute.next(m, &mut s.clock);
                }
            } else {
                compute.fill(m, &mut s.clock, times);
                for slot in times.iter_mut() {
                    t += *slot;
                    *slot = t;
                }
            }
            s.finish = t;
        };
        for_each_worker(
            &mut self.scratch,
            &mut self.times,
            target as usize,
            first_pass,
        );

        // T: the K-th smallest U-completion time.
        self.finish.clear();
        self.finish.extend(self.scratch.iter().map(|s| s.finish));
        let (_, &mut t_close, _) = self.finish.select_nth_unstable_by(wait - 1, f64::total_cmp);

        // Pass 2: completions at or before T. A worker that finished U continues its stream;
        // one that did not counts its stored times (or replays its stream from the round start).
        let second_pass = |m: usize, s: &mut WorkerRound, times: &mut [f64]| {
            s.count = 0;
            s.draws = 0;
            if s.begin > t_close {
                return; // the model had not arrived: the worker never started
            }
            if s.finish <= t_close {
                let mut t = s.finish;
                s.count = target;
                while s.count < max_steps {
                    t += compute.next(m, &mut s.clock);
                    if t > t_close {
                        break;
                    }
                    s.count += 1;
                }
            } else if !times.is_empty() {
                s.count = times.partition_point(|&t| t <= t_close) as u32;
            } else {
                fresh_clock(m, &mut s.clock);
                let mut t = s.begin;
                loop {
                    t += compute.next(m, &mut s.clock);
                    if t > t_close {
                        break;
                    }
                    s.count += 1;
                }
            }
            s.draws = s.count as u64 + (s.count < max_steps) as u64;
        };
        for_each_worker(
            &mut self.scratch,
            &mut self.times,
            target as usize,
            second_pass,
        );

        counts.resize(workers, 0);
        let (mut updates, mut uploaders, mut cancelled) = (0u64, 0u32, 0u32);
        let mut end = t_close;
        for (m, s) in self.scratch.iter().enumerate() {
            counts[m] = s.count;
            self.cursors[m] += s.draws;
            updates += s.count as u64;
            cancelled += (s.draws > s.count as u64) as u32;
            if s.count >= 1 {
                uploaders += 1;
                if !comm.uplink.is_zero() {
                    end = end.max(
                        t_close
                            + comm
                                .uplink
                                .sample(bytes, &mut CommTime::stream(&seeds, m, true, round)),
                    );
                }
            }
        }
        RoundRecord {
            round,
            start,
            compute_end: t_close,
            end,
            uploaders,
            updates,
            cancelled,
            counts,
        }
    }
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
            let slice = if times.is_empty() {
                &mut [][..]
            } else {
                &mut times[i * stride..(i + 1) * stride]
            };
            f(first + i, s, slice);
        }
    };
    if scratch.len() <= CHUNK {
        run_chunk(0, scratch, times);
    } else if times.is_empty() {
        scratch
            .par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, chunk)| run_chunk(c * CHUNK, chunk, &mut []));
    } else {
        scratch
            .par_chunks_mut(CHUNK)
            .zip(times.par_chunks_mut(CHUNK * stride))
            .enumerate()
            .for_each(|(c, (chunk, t))| run_chunk(c * CHUNK, chunk, t));
    }
}
