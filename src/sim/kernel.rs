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
use crate::timing::{CommTime, ComputeTime};
use crate::trace::RoundRecord;

/// Workers per parallel task.
const CHUNK: usize = 4096;

/// Per-worker scratch of one round.
#[derive(Clone, Copy, Debug, Default)]
struct WorkerRound {
    /// When the model arrived (the worker starts computing).
    begin: f64,
    /// Completion time of the U-th step.
    finish: f64,
    /// Steps completed by T (N_m).
    count: u32,
    /// Durations drawn (N_m, plus one for a step cancelled in progress).
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
        RoundKernel {
            compute,
            comm,
            seeds,
            rule,
            model_bytes,
            scratch: vec![WorkerRound::default(); rule.workers],
            finish: Vec::with_capacity(rule.workers),
            cursors: vec![0; rule.workers],
        }
    }

    /// Computes round `round` starting at `start`; `counts` receives N_m (len M).
    pub fn round(&mut self, round: u64, start: f64, counts: &mut Vec<u32>) -> RoundRecord {
        let RoundRule {
            workers,
            wait,
            target,
            max_steps,
        } = self.rule;
        let (compute, comm, seeds, bytes) = (self.compute, self.comm, self.seeds, self.model_bytes);
        let cursors = &self.cursors;
        let clock = |m: usize| {
            let mut clock = compute.clock(&seeds, m, round);
            compute.advance(&mut clock, cursors[m]);
            clock
        };

        // Pass 1: arrival of the model and completion time of step U for every worker.
        let first_pass = |m: usize| {
            let begin = if comm.downlink.is_zero() {
                start
            } else {
                start
                    + comm
                        .downlink
                        .sample(bytes, &mut CommTime::stream(&seeds, m, false, round))
            };
            let mut clock = clock(m);
            let mut t = begin;
            for _ in 0..target {
                t += compute.next(m, &mut clock);
            }
            WorkerRound {
                begin,
                finish: t,
                count: 0,
                draws: 0,
            }
        };
        fill(&mut self.scratch, first_pass);

        // T: the K-th smallest U-completion time.
        self.finish.clear();
        self.finish.extend(self.scratch.iter().map(|s| s.finish));
        let (_, &mut t_close, _) = self.finish.select_nth_unstable_by(wait - 1, f64::total_cmp);

        // Pass 2: completions at or before T, replaying each worker's stream from the start of
        // the round so that exactly the engine's draws are consumed.
        let second_pass = |m: usize, s: &mut WorkerRound| {
            if s.begin > t_close {
                return; // the model had not arrived: the worker never started
            }
            let mut clock = clock(m);
            let mut t = s.begin;
            while s.count < max_steps {
                t += compute.next(m, &mut clock);
                s.draws += 1;
                if t > t_close {
                    return;
                }
                s.count += 1;
            }
        };
        update(&mut self.scratch, second_pass);

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
            counts: counts.clone(),
        }
    }
}

/// Sets `scratch[m] = f(m)` for every worker, in parallel chunks when there are many workers.
fn fill(scratch: &mut [WorkerRound], f: impl Fn(usize) -> WorkerRound + Sync) {
    update(scratch, |m, s| *s = f(m));
}

/// Calls `f(m, &mut scratch[m])` for every worker, in parallel chunks when there are many.
fn update(scratch: &mut [WorkerRound], f: impl Fn(usize, &mut WorkerRound) + Sync) {
    if scratch.len() <= CHUNK {
        scratch.iter_mut().enumerate().for_each(|(m, s)| f(m, s));
    } else {
        scratch
            .par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, chunk)| {
                for (i, s) in chunk.iter_mut().enumerate() {
                    f(c * CHUNK + i, s);
                }
            });
    }
}
