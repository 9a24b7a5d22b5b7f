//! Timing-only simulation: runs an algorithm on the engine (or on the per-round kernel where it
//! is valid) without training anything, and collects per-round statistics — round time, local
//! updates per worker, uploaders — next to their closed forms where those exist.
//!
//! Standard errors ([`SeMethod`]). Successive rounds are independent when the algorithm
//! restarts every worker each round (stsyn, sync, ksync, kbatch-sync, and rennala and malenia
//! cancelling leftover work) and the step durations carry nothing over from one round to the
//! next (no trace, whose cursor carries over, and no time-varying rates); the SE of the mean
//! is then the plain s/√n. Everywhere else — kasync, kbatch-async, async, ringmaster, fedbuff,
//! rennala and malenia ignoring stale work, and any algorithm on a trace or time-varying rates
//! — a worker's step spans several updates, so successive update intervals are correlated and
//! s/√n is not the SE: typically too small for step times more variable than exponential ones
//! (coefficient of variation above 1: lognormal) and too large for more regular ones (shifted
//! exponential, Pareto with shape 3); with exponential steps and one step per job (kasync,
//! kbatch-async, async) the intervals happen to be independent. Those runs report the
//! batch-means SE of
//! [`RoundStat`]: B = min(30, ⌊√n⌋) contiguous batches of ⌊n/B⌋ rounds, SE = sd(batch
//! means)/√B. It is honest once a batch is much longer than the correlation, about one step
//! of every worker (M/K updates for K-async and K-batch-async, M for async), i.e. for n ≫ 30·M/K.
//!
//! STSyn's and sync's heterogeneous-rate closed form costs O(M²) per point and is computed up
//! to [`HETEROGENEOUS_MAX_WORKERS`] workers; above, [`TimingSetup::theory_note`] says so.

use std::time::Instant;

use super::round::RoundAlgorithm;
use super::{
    TimingAlgorithm, fedavg::FedAvg, kasync::KAsync, kbatch_async::KBatchAsync, kbatch_sync::KBatchSync, ksync,
    local_sgd, stsyn,
};
use super::{
    asgd::{Asgd, Stepsize},
    delays::DelayStats,
    fedbuff::{FedBuff, FedBuffParams},
    rennala::{Leftover, Rennala, Rule},
    ringmaster::{Ringmaster, StaleRule},
};
use crate::error::{Error, Result, check_memory, positive, shown};
use crate::rng::{Purpose, Seeds};
use crate::sim::engine::check_workers;
use crate::sim::{
    Algorithm, Engine, EngineStats, FixedRounds, RoundKernel, RoundPlan, RoundPolicy, RoundStat, RoundSync,
};
use crate::theory::{self, dutta, dutta::UpdateTime, fixed};
use crate::timing::{CommTime, ComputeTime, Dist};
use crate::trace::{RoundRecord, Sink};

/// Which execution path to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnginePath {
    /// The kernel where valid (restart-every-round algorithms, no event trace), else the heap.
    Auto,
    /// Always the general event queue.
    Heap,
    /// The per-round kernel (an error where it is not valid).
    Kernel,
}

impl EnginePath {
    /// Parses `auto`, `heap` or `kernel`.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "auto" => Ok(EnginePath::Auto),
            "heap" => Ok(EnginePath::Heap),
            "kernel" => Ok(EnginePath::Kernel),
            _ => Err(Error::invalid("engine", text, "expected auto, heap or kernel")),
        }
    }
}

/// A checked timing experiment.
#[derive(Clone, Debug)]
pub struct TimingSetup {
    /// The algorithm.
    pub algorithm: TimingAlgorithm,
    /// M.
    pub workers: usize,
    /// K.
    pub wait: usize,
    /// U.
    pub local_steps: u32,
    /// STSyn's optional cap on steps per round.
    pub max_steps: Option<u32>,
    /// D (stsyn, sync, fedavg): the round also closes this long after it starts.
    pub deadline: Option<f64>,
    /// Rounds (server updates for the asynchronous algorithms).
    pub rounds: u64,
    /// Master seed.
    pub seed: u64,
    /// Size of a model or gradient message.
    pub model_bytes: u64,
    /// Step durations.
    pub compute: ComputeTime,
    /// Message durations.
    pub comm: CommTime,
    /// Knobs of the asynchronous methods.
    pub asynchronous: AsyncKnobs,
}

/// Knobs of Rennala, Malenia, Ringmaster and FedBuff in timing-only runs (the other algorithms
/// take none). Their K is the wait field (S for Rennala and Malenia, the buffer size for
/// FedBuff) and FedBuff's Q is the local-steps field U.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AsyncKnobs {
    /// R: Ringmaster's delay threshold (required for ringmaster).
    pub delay_threshold: Option<u64>,
    /// Ignore stale work instead of cancelling it: Ringmaster version 1, or Rennala/Malenia
    /// letting leftover computations finish.
    pub ignore_stale: bool,
    /// C: FedBuff's clients training at once (default M).
    pub concurrency: Option<usize>,
}

/// Workers up to which the heterogeneous-rate closed form of STSyn and sync is computed.
pub const HETEROGENEOUS_MAX_WORKERS: usize = 1000;

/// Memory a simulated worker takes, roughly (the per-round kernel's scratch and the round
/// record: 181 MB measured at M = 10⁶); a setup needing more than the machine has is rejected
/// up front rather than aborting on a failed allocation.
pub const BYTES_PER_WORKER: u64 = 200;

/// Fails when M workers (flag or key `name`) need more memory than the machine has, at
/// [`BYTES_PER_WORKER`] each.
pub fn check_worker_memory(name: &str, workers: usize) -> Result<()> {
    let bytes = workers as u128 * BYTES_PER_WORKER as u128;
    check_memory(name, workers, bytes, &format!("{BYTES_PER_WORKER} bytes per worker"))
}

/// Largest U for which STSyn's P(N_m = n), n < U, is computed and printed (one line of U
/// values; the quadrature's cost and memory grow with U).
pub const DISTRIBUTION_MAX_U: u32 = 1000;

/// Largest M for which the i.i.d. closed forms of STSyn and sync are evaluated: the quadrature's
/// cost grows about linearly with M (0.2 s at 10⁶, 2 s at 10⁷, 20 s at 10⁸).
pub const HOMOGENEOUS_MAX_WORKERS: usize = 100_000_000;

/// How the SE of the round statistics is formed (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SeMethod {
    /// s/√n: successive rounds are independent.
    #[default]
    Plain,
    /// sd(batch means)/√B over contiguous batches: successive rounds are dependent.
    BatchMeans,
}

impl SeMethod {
    /// "plain" or "batch_means".
    pub fn name(self) -> &'static str {
        match self {
            SeMethod::Plain => "plain",
            SeMethod::BatchMeans => "batch_means",
        }
    }
}

/// Round statistics of a run.
#[derive(Clone, Debug, Default)]
pub struct TimingOutcome {
    /// "heap" or "kernel".
    pub engine: &'static str,
    /// How the SEs below are formed.
    pub se_method: SeMethod,
    /// Round (or server-update) durations.
    pub round_time: RoundStat,
    /// Local updates per worker per round (Σ_m N_m / M).
    pub updates_per_worker: RoundStat,
    /// Uploaders (contributors) per round.
    pub uploaders: RoundStat,
    /// Total local updates simulated.
    pub updates: u64,
    /// Engine events handled (0 for the kernel).
    pub events: u64,
    /// Simulated time at the end.
    pub sim_time: f64,
    /// Wall-clock seconds spent simulating.
    pub wall_seconds: f64,
    /// Delays of applied results, ignored and cancelled work (asynchronous methods of
    /// specs/baselines.md §5–8, §11).
    pub delays: Option<DelayStats>,
    /// Ringmaster: the longest time any R consecutive updates took, from the update before them
    /// (or time 0), to compare with t(R).
    pub max_window: Option<f64>,
}

/// Closed-form values of the three statistics (None where no closed form is known).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TheoryValues {
    /// Expected round time.
    pub round_time: Option<f64>,
    /// Expected local updates per worker per round.
    pub updates_per_worker: Option<f64>,
    /// Expected uploaders per round.
    pub uploaders: Option<f64>,
}

impl TimingSetup {
    /// Checks the combination of parameters.
    pub fn check(&self) -> Result<()> {
        let (m, k, u) = (self.workers, self.wait, self.local_steps);
        if m == 0 {
            return Err(Error::invalid("workers (M)", m, "must be at least 1"));
        }
        if u32::try_from(m).is_err() {
            return Err(Error::invalid("workers (M)", m, "must be below 2^32"));
        }
        if k == 0 {
            return Err(Error::invalid("wait (K)", k, "must be at least 1"));
        }
        // Rennala's and Malenia's S and FedBuff's buffer count results, not distinct workers.
        let counts_results =
            matches!(self.algorithm, TimingAlgorithm::Rennala | TimingAlgorithm::Malenia | TimingAlgorithm::FedBuff);
        if k > m && !counts_results {
            return Err(Error::invalid("wait (K)", k, format!("must be at most M = {m}")));
        }
        if counts_results {
            // one round collects K results: a round that long would not end
            crate::sim::check_steps_per_round("wait (K)", k as u64)?;
        }
        if u == 0 {
            return Err(Error::invalid("local steps (U)", u, "must be at least 1"));
        }
        crate::sim::check_steps_per_round("local steps (U)", u.into())?;
        if self.rounds == 0 {
            return Err(Error::invalid("rounds", 0, "must be at least 1"));
        }
        if let Some(d) = self.deadline {
            if !matches!(self.algorithm, TimingAlgorithm::Stsyn | TimingAlgorithm::Sync | TimingAlgorithm::FedAvg) {
                return Err(Error::invalid("deadline (D)", shown(d), "applies only to stsyn, sync and fedavg"));
            }
            positive("deadline (D)", d)?;
        }
        if let Some(cap) = self.max_steps {
            if self.algorithm != TimingAlgorithm::Stsyn {
                return Err(Error::invalid("max steps", cap, "applies only to stsyn"));
            }
            if cap < u {
                return Err(Error::invalid("max steps", cap, format!("must be at least U = {u}")));
            }
        }
        self.check_async_knobs()
    }

    /// The round plan, for algorithms that restart every worker each round.
    pub fn round_plan(&self) -> Option<RoundPlan> {
        let plan = match self.algorithm {
            TimingAlgorithm::Stsyn => stsyn::plan(self.workers, self.wait, self.local_steps, self.max_steps).ok(),
            TimingAlgorithm::Sync => Some(local_sgd::plan(self.workers, self.local_steps)),
            TimingAlgorithm::KSync => Some(ksync::plan(self.workers, self.wait)),
            // the plan of round 0; the rounds themselves come from [`TimingSetup::sampled_rounds`]
            TimingAlgorithm::FedAvg => {
                let mut plan = RoundPlan::uniform(self.workers, self.wait, self.local_steps, None);
                self.fedavg().plan(0, &mut plan);
                Some(plan)
            }
            _ => None,
        };
        plan.map(|plan| RoundPlan { deadline: self.deadline, ..plan })
    }

    /// FedAvg's client sampling, from the run's seed (the same clients as a training run with
    /// that seed).
    fn fedavg(&self) -> FedAvg {
        FedAvg::new(self.wait, self.local_steps, Seeds::new(self.seed)).with_deadline(self.deadline)
    }

    /// FedAvg's rounds: K clients sampled anew each round.
    fn sampled_rounds(&self) -> SampledRounds {
        SampledRounds { fedavg: self.fedavg(), workers: self.workers, rounds: self.rounds }
    }

    /// Whether successive rounds are independent, so that the plain SE applies: every worker
    /// restarts each round and the step durations carry nothing over between rounds.
    pub fn rounds_independent(&self) -> bool {
        let restarts = match self.algorithm {
            TimingAlgorithm::Stsyn
            | TimingAlgorithm::Sync
            | TimingAlgorithm::KSync
            | TimingAlgorithm::KBatchSync
            | TimingAlgorithm::FedAvg => true,
            TimingAlgorithm::Rennala | TimingAlgorithm::Malenia => !self.asynchronous.ignore_stale,
            TimingAlgorithm::KAsync
            | TimingAlgorithm::KBatchAsync
            | TimingAlgorithm::Async
            | TimingAlgorithm::Ringmaster
            | TimingAlgorithm::FedBuff => false,
        };
        restarts && !self.compute.carries_across_rounds()
    }

    /// The SE method of this setup's round statistics.
    pub fn se_method(&self) -> SeMethod {
        if self.rounds_independent() { SeMethod::Plain } else { SeMethod::BatchMeans }
    }

    /// The event-driven strategy of an algorithm that reports no delays: the round-synchronous
    /// ones and K-batch-sync ([`TimingSetup::run_on_engine`] runs the others itself).
    fn strategy(&self) -> Box<dyn Algorithm> {
        let (m, k, r, b) = (self.workers, self.wait, self.rounds, self.model_bytes);
        match (self.algorithm, self.round_plan()) {
            (TimingAlgorithm::FedAvg, _) => Box::new(RoundSync::new(self.sampled_rounds(), m, b)),
            (_, Some(plan)) => Box::new(RoundSync::new(FixedRounds { plan, rounds: r }, m, b)),
            (TimingAlgorithm::KBatchSync, _) => Box::new(KBatchSync::new(m, k, r, b, ())),
            (a, None) => unreachable!("{a:?} reports its delays: run_on_engine runs it"),
        }
    }

    /// Runs the experiment; records go to `sink`.
    pub fn simulate(&self, path: EnginePath, sink: &mut dyn Sink) -> Result<TimingOutcome> {
        self.check()?;
        check_worker_memory("workers (M)", self.workers)?;
        let use_kernel = match (path, self.round_plan()) {
            (EnginePath::Heap, _) => false,
            (EnginePath::Kernel, None) => {
                return Err(Error::invalid(
                    "engine",
                    "kernel",
                    format!("is not valid for {} (workers do not restart every round)", self.algorithm.name()),
                ));
            }
            (EnginePath::Kernel, Some(_)) if sink.wants_events() => {
                return Err(Error::invalid(
                    "engine",
                    "kernel",
                    "produces no per-event trace; use --engine heap or auto with --events-csv",
                ));
            }
            (EnginePath::Kernel, Some(_)) => true,
            (EnginePath::Auto, plan) => plan.is_some() && !sink.wants_events(),
        };
        let se_method = self.se_method();
        let stat = || match se_method {
            SeMethod::Plain => RoundStat::plain(),
            SeMethod::BatchMeans => RoundStat::batched(self.rounds),
        };
        let outcome = TimingOutcome {
            se_method,
            round_time: stat(),
            updates_per_worker: stat(),
            uploaders: stat(),
            ..TimingOutcome::default()
        };
        let mut collect = Collect { workers: self.workers as f64, outcome, sink, window: None };
        let seeds = Seeds::new(self.seed);
        let clock = Instant::now();
        if use_kernel {
            let plan = self.round_plan().expect("checked");
            let mut kernel = RoundKernel::new(self.workers, &self.compute, &self.comm, seeds, self.model_bytes);
            let end = if self.algorithm == TimingAlgorithm::FedAvg {
                kernel.run(&mut self.sampled_rounds(), &mut collect)?
            } else {
                kernel.run_fixed(&FixedRounds { plan, rounds: self.rounds }, &mut collect)?
            };
            collect.outcome.engine = "kernel";
            collect.outcome.sim_time = end;
        } else {
            check_workers(self.workers)?;
            let mut engine = Engine::new(self.workers, &self.compute, &self.comm, seeds);
            if let Some(r) = self.asynchronous.delay_threshold {
                collect.window = Some(Window::new(r));
            }
            let (stats, delays) = self.run_on_engine(&mut engine, &mut collect)?;
            collect.outcome.delays = delays;
            collect.outcome.max_window = collect.window.as_ref().and_then(|w| w.max);
            collect.outcome.engine = "heap";
            collect.outcome.events = stats.events;
            collect.outcome.sim_time = stats.end_time;
        }
        collect.outcome.wall_seconds = clock.elapsed().as_secs_f64();
        Ok(collect.outcome)
    }
}

/// FedAvg's rounds for timing-only runs: each round's plan samples its clients.
struct SampledRounds {
    fedavg: FedAvg,
    workers: usize,
    rounds: u64,
}

impl RoundPolicy for SampledRounds {
    fn plan(&mut self, round: u64, plan: &mut RoundPlan) -> bool {
        if round >= self.rounds {
            return false;
        }
        plan.targets.resize(self.workers, 0);
        self.fedavg.plan(round, plan);
        true
    }
    fn finish(&mut self, _record: &mut RoundRecord) {}
}

/// Accumulates statistics and forwards records.
struct Collect<'a> {
    workers: f64,
    outcome: TimingOutcome,
    sink: &'a mut dyn Sink,
    window: Option<Window>,
}

/// The longest span of R consecutive updates: from the end of the update before them (time 0
/// for the first R) to the end of the last.
struct Window {
    r: usize,
    ends: std::collections::VecDeque<f64>,
    max: Option<f64>,
}

impl Window {
    fn new(r: u64) -> Self {
        let r = r as usize;
        let mut ends = std::collections::VecDeque::with_capacity(r.min(1 << 20) + 1);
        ends.push_back(0.0);
        Window { r, ends, max: None }
    }

    fn push(&mut self, end: f64) {
        self.ends.push_back(end);
        if self.ends.len() > self.r {
            let span = end - self.ends.pop_front().expect("not empty");
            self.max = Some(self.max.map_or(span, |m: f64| m.max(span)));
        }
    }
}

impl Sink for Collect<'_> {
    fn wants_events(&self) -> bool {
        self.sink.wants_events()
    }
    fn event(&mut self, record: &crate::trace::EventRecord) -> Result<()> {
        self.sink.event(record)
    }
    fn round(&mut self, r: &RoundRecord) -> Result<()> {
        let o = &mut self.outcome;
        o.round_time.push(r.duration());
        o.updates_per_worker.push(r.updates as f64 / self.workers);
        o.uploaders.push(r.uploaders as f64);
        o.updates += r.updates;
        if let Some(w) = &mut self.window {
            w.push(r.end);
        }
        self.sink.round(r)
    }
}

impl TimingSetup {
    /// Closed forms of the three statistics, where known for this setup: i.i.d. exponential
    /// (or shifted exponential) step times and zero communication; heterogeneous exponential
    /// rates for STSyn and sync (up to [`HETEROGENEOUS_MAX_WORKERS`] workers: that computation is
    /// O(M²) per point; [`TimingSetup::theory_note`] says when it was skipped).
    pub fn theory(&self) -> Result<TheoryValues> {
        let none = TheoryValues::default();
        if !self.comm.is_zero() {
            return Ok(none);
        }
        if let Some(deadline) = self.deadline {
            return self.deadline_theory(deadline);
        }
        if let Some(values) = self.fixed_model_theory()? {
            return Ok(values);
        }
        let (m, k, u) = (self.workers, self.wait, self.local_steps);
        let (mf, kf) = (m as f64, k as f64);
        // Expected number of distinct workers among K arrivals when each arrival comes from a
        // uniformly random worker (memoryless exponential times in steady state).
        let distinct = || mf * (1.0 - (1.0 - 1.0 / mf).powf(kf));
        let time = match self.compute.iid_dist() {
            Some(Dist::Exp { mean }) => Some(UpdateTime::Exp { mean: *mean }),
            Some(Dist::ShiftedExp { shift, mean }) => Some(UpdateTime::ShiftedExp { shift: *shift, mean: *mean }),
            _ => None,
        };
        let exp_mean = match time {
            Some(UpdateTime::Exp { mean }) => Some(mean),
            Some(UpdateTime::ShiftedExp { shift: 0.0, mean }) => Some(mean),
            _ => None,
        };
        let stsyn_like = |wait: usize| -> Result<Option<(f64, f64, f64)>> {
            if m > HOMOGENEOUS_MAX_WORKERS {
                return Ok(None);
            }
            if let Some(mean) = exp_mean {
                let r = theory::stsyn::round_stats(m, wait, u, mean)?;
                return Ok(Some((r.round_time, r.updates_per_worker, r.uploaders)));
            }
            match self.compute.exponential_rates(m) {
                Some(rates) if m <= HETEROGENEOUS_MAX_WORKERS => {
                    let h = theory::stsyn::round_stats_heterogeneous(&rates, wait, u)?;
                    Ok(Some((h.round_time, h.updates.iter().sum::<f64>() / mf, h.upload_prob.iter().sum())))
                }
                _ => Ok(None),
            }
        };
        Ok(match self.algorithm {
            // a cap c ≥ U on the steps changes neither T nor who uploads, only Ū
            TimingAlgorithm::Stsyn => match stsyn_like(k)? {
                Some((t, n, up)) => {
                    let updates = match (self.max_steps, exp_mean) {
                        (None, _) => Some(n),
                        (Some(cap), Some(_)) => Some(theory::stsyn::capped_updates_per_worker(m, k, u, cap)?),
                        (Some(_), None) => None,
                    };
                    TheoryValues { round_time: Some(t), updates_per_worker: updates, uploaders: Some(up) }
                }
                None => none,
            },
            TimingAlgorithm::Sync => match stsyn_like(m)? {
                Some((t, _, _)) => {
                    TheoryValues { round_time: Some(t), updates_per_worker: Some(u as f64), uploaders: Some(mf) }
                }
                None => none,
            },
            TimingAlgorithm::FedAvg => self.fedavg_theory(None)?,
            _ => {
                let Some(time) = time else { return Ok(none) };
                let per_worker = Some(kf / mf);
                match self.algorithm {
                    TimingAlgorithm::KSync => TheoryValues {
                        round_time: Some(dutta::k_sync_runtime(m, k, time)?),
                        updates_per_worker: per_worker,
                        uploaders: Some(kf),
                    },
                    // Rennala (cancelling stale work) runs K-batch-sync's process: K gradients at
                    // the current model from workers that restart on each, then all restart
                    TimingAlgorithm::KBatchSync | TimingAlgorithm::Rennala if !self.asynchronous.ignore_stale => {
                        TheoryValues {
                            round_time: dutta::k_batch_sync_runtime(m, k, time)?,
                            updates_per_worker: per_worker,
                            uploaders: exp_mean.map(|_| distinct()),
                        }
                    }
                    TimingAlgorithm::KAsync => TheoryValues {
                        round_time: dutta::k_async_runtime(m, k, time)?,
                        updates_per_worker: per_worker,
                        uploaders: Some(kf),
                    },
                    TimingAlgorithm::KBatchAsync => TheoryValues {
                        round_time: Some(dutta::k_batch_async_runtime(m, k, time)?),
                        updates_per_worker: per_worker,
                        uploaders: exp_mean.map(|_| distinct()),
                    },
                    TimingAlgorithm::Async => TheoryValues {
                        round_time: Some(dutta::async_runtime(m, time)?),
                        updates_per_worker: Some(1.0 / mf),
                        uploaders: Some(1.0),
                    },
                    TimingAlgorithm::KBatchSync => unreachable!("ignore_stale is rejected for kbatch-sync"),
                    TimingAlgorithm::Rennala
                    | TimingAlgorithm::Malenia
                    | TimingAlgorithm::Ringmaster
                    | TimingAlgorithm::FedBuff => none,
                    TimingAlgorithm::Stsyn | TimingAlgorithm::Sync | TimingAlgorithm::FedAvg => {
                        unreachable!("handled above")
                    }
                }
            }
        })
    }

    /// The closed forms of STSyn and sync rounds closed at min(T, D), for i.i.d. exponential
    /// step times ([`theory::stsyn::round_stats_until`], [`theory::stsyn::sync_updates_until`]);
    /// none for other time models.
    fn deadline_theory(&self, deadline: f64) -> Result<TheoryValues> {
        let (m, u) = (self.workers, self.local_steps);
        let Some(mean) = self.compute.iid_dist().and_then(Dist::exponential_mean) else {
            return Ok(TheoryValues::default());
        };
        if m > HOMOGENEOUS_MAX_WORKERS {
            return Ok(TheoryValues::default());
        }
        Ok(match self.algorithm {
            TimingAlgorithm::Stsyn => {
                // a cap changes neither the close nor who uploads, only Ū
                let r = theory::stsyn::round_stats_until(m, self.wait, u, mean, deadline)?;
                TheoryValues {
                    round_time: Some(r.round_time),
                    updates_per_worker: self.max_steps.is_none().then_some(r.updates_per_worker),
                    uploaders: Some(r.uploaders),
                }
            }
            TimingAlgorithm::Sync => {
                let r = theory::stsyn::round_stats_until(m, m, u, mean, deadline)?;
                TheoryValues {
                    round_time: Some(r.round_time),
                    updates_per_worker: Some(theory::stsyn::sync_updates_until(u, mean, deadline)?),
                    uploaders: Some(r.uploaders),
                }
            }
            TimingAlgorithm::FedAvg => self.fedavg_theory(Some(deadline))?,
            _ => TheoryValues::default(),
        })
    }

    /// FedAvg under i.i.d. exponential steps: which K clients are sampled does not matter, so a
    /// round is a synchronous round of K workers (closed at the deadline, if any). Uploaders are
    /// the clients done by the close, K·P(S_U ≤ D); updates per worker, over all M, are
    /// (K/M)·E\[min(U, N(D))\] (K·U/M without a deadline).
    fn fedavg_theory(&self, deadline: Option<f64>) -> Result<TheoryValues> {
        let (m, k, u) = (self.workers as f64, self.wait, self.local_steps);
        let Some(mean) = self.compute.iid_dist().and_then(Dist::exponential_mean) else {
            return Ok(TheoryValues::default());
        };
        if k > HOMOGENEOUS_MAX_WORKERS {
            return Ok(TheoryValues::default());
        }
        let kf = k as f64;
        Ok(match deadline {
            None => TheoryValues {
                round_time: Some(theory::stsyn::round_stats(k, k, u, mean)?.round_time),
                updates_per_worker: Some(kf * f64::from(u) / m),
                uploaders: Some(kf),
            },
            Some(d) => TheoryValues {
                round_time: Some(theory::stsyn::round_stats_until(k, k, u, mean, d)?.round_time),
                updates_per_worker: Some(kf / m * theory::stsyn::sync_updates_until(u, mean, d)?),
                uploaders: Some(kf * theory::stsyn::prob_done_by(u, mean, d)?),
            },
        })
    }

    /// Why [`TimingSetup::theory`] has no values although a closed form exists: STSyn
    /// or sync with zero communication on heterogeneous exponential rates and more than
    /// [`HETEROGENEOUS_MAX_WORKERS`] workers, or on i.i.d. ones and more than
    /// [`HOMOGENEOUS_MAX_WORKERS`]. None otherwise.
    pub fn theory_note(&self) -> Option<String> {
        let stsyn_or_sync = matches!(self.algorithm, TimingAlgorithm::Stsyn | TimingAlgorithm::Sync);
        let homogeneous = self.compute.iid_dist().and_then(Dist::exponential_mean).is_some();
        if !(stsyn_or_sync && self.comm.is_zero()) || (self.deadline.is_some() && !homogeneous) {
            return None;
        }
        if homogeneous && self.workers > HOMOGENEOUS_MAX_WORKERS {
            return Some(format!(
                "not computed for M > {HOMOGENEOUS_MAX_WORKERS} (the quadrature's cost grows with M, 20 s at 10^8)"
            ));
        }
        let skipped = !homogeneous
            && self.workers > HETEROGENEOUS_MAX_WORKERS
            && self.compute.exponential_rates(self.workers).is_some();
        skipped.then(|| {
            format!("not computed for M > {HETEROGENEOUS_MAX_WORKERS} (heterogeneous closed form, O(M²) per point)")
        })
    }

    /// STSyn's P(N_m = n) for n < U, where the closed form applies (i.i.d. exponential steps,
    /// any cap, zero communication, no deadline) and U ≤ [`DISTRIBUTION_MAX_U`].
    pub fn updates_distribution(&self) -> Result<Option<Vec<f64>>> {
        let exp = self.compute.iid_dist().and_then(Dist::exponential_mean);
        match (self.algorithm, exp) {
            (TimingAlgorithm::Stsyn, Some(_))
                if self.comm.is_zero()
                    && self.deadline.is_none()
                    && self.workers <= HOMOGENEOUS_MAX_WORKERS
                    && self.local_steps <= DISTRIBUTION_MAX_U =>
            {
                Ok(Some(theory::stsyn::update_distribution(self.workers, self.wait, self.local_steps)?))
            }
            _ => Ok(None),
        }
    }
}

// Asynchronous methods (specs/baselines.md §5–8, §11): strategies, checks and fixed-model oracles.
impl TimingSetup {
    fn check_async_knobs(&self) -> Result<()> {
        let (a, knobs) = (self.algorithm, &self.asynchronous);
        match (a.has_delay_threshold(), knobs.delay_threshold) {
            (true, None) => return Err(Error::invalid("delay threshold (R)", "(missing)", "ringmaster needs R")),
            (true, Some(0)) => return Err(Error::invalid("delay threshold (R)", 0, "must be at least 1")),
            (false, Some(r)) => {
                return Err(Error::invalid(
                    "delay threshold (R)",
                    r,
                    format!("applies only to ringmaster, not {}", a.name()),
                ));
            }
            _ => {}
        }
        if knobs.ignore_stale && !a.has_stale_rule() {
            return Err(Error::invalid(
                "ignore stale",
                true,
                format!("applies only to rennala, malenia and ringmaster, not {}", a.name()),
            ));
        }
        match (a, knobs.concurrency) {
            (TimingAlgorithm::FedBuff, Some(c)) if c == 0 || c > self.workers => {
                Err(Error::invalid("concurrency (C)", c, format!("must be between 1 and M = {}", self.workers)))
            }
            (TimingAlgorithm::FedBuff, _) | (_, None) => Ok(()),
            (_, Some(c)) => {
                Err(Error::invalid("concurrency (C)", c, format!("applies only to fedbuff, not {}", a.name())))
            }
        }
    }

    fn rennala(&self) -> Rennala {
        let (s, rounds) = (self.wait as u64, self.rounds);
        let rule = match self.algorithm {
            TimingAlgorithm::Malenia => Rule::Malenia { batch: s },
            _ => Rule::Rennala { batch: s },
        };
        let leftover = if self.asynchronous.ignore_stale { Leftover::Ignore } else { Leftover::Cancel };
        Rennala::new(self.workers, rule, leftover, rounds, self.model_bytes, ())
    }

    fn ringmaster(&self) -> Ringmaster {
        let rule = if self.asynchronous.ignore_stale { StaleRule::Ignore } else { StaleRule::Cancel };
        let r = self.asynchronous.delay_threshold.expect("checked");
        Ringmaster::new(self.workers, r, rule, self.rounds, self.model_bytes, ())
    }

    fn fedbuff(&self) -> FedBuff {
        let params = FedBuffParams {
            buffer: self.wait,
            local_steps: self.local_steps,
            staleness_exponent: 0.5,
            server_lr: 1.0,
            concurrency: self.asynchronous.concurrency.unwrap_or(self.workers),
        };
        let rng = Seeds::new(self.seed).stream(Purpose::Algorithm, 0, 1);
        FedBuff::new(self.workers, params, self.rounds, self.model_bytes, (), rng)
    }

    /// Runs the algorithm's event-driven strategy; the asynchronous methods also report their
    /// delays.
    fn run_on_engine(&self, engine: &mut Engine, sink: &mut dyn Sink) -> Result<(EngineStats, Option<DelayStats>)> {
        match self.algorithm {
            TimingAlgorithm::Rennala | TimingAlgorithm::Malenia => {
                let mut s = self.rennala();
                Ok((engine.run(&mut s, sink)?, Some(s.delays().clone())))
            }
            TimingAlgorithm::Ringmaster => {
                let mut s = self.ringmaster();
                Ok((engine.run(&mut s, sink)?, Some(s.delays().clone())))
            }
            TimingAlgorithm::FedBuff => {
                let mut s = self.fedbuff();
                Ok((engine.run(&mut s, sink)?, Some(s.delays().clone())))
            }
            TimingAlgorithm::KAsync => {
                let mut s = KAsync::new(self.workers, self.wait, self.rounds, self.model_bytes, ());
                Ok((engine.run(&mut s, sink)?, Some(s.delays().clone())))
            }
            TimingAlgorithm::KBatchAsync => {
                let mut s = KBatchAsync::new(self.workers, self.wait, self.rounds, self.model_bytes, ());
                Ok((engine.run(&mut s, sink)?, Some(s.delays().clone())))
            }
            // Vanilla ASGD is async event for event (tests/asynchronous.rs) and reports delays.
            TimingAlgorithm::Async => {
                let mut s = Asgd::new(self.workers, self.rounds, self.model_bytes, Stepsize::Constant, ());
                Ok((engine.run(&mut s, sink)?, Some(s.delays().clone())))
            }
            _ => {
                let mut s = self.strategy();
                Ok((engine.run(s.as_mut(), sink)?, None))
            }
        }
    }

    /// Exact oracles of the fixed computation model (every step of worker i takes τ_i, zero
    /// communication; specs/baselines.md §5, §6.3, §14), where they apply:
    ///
    /// - async: the k-th update happens at the k-th smallest completion time k'·τ_i, so the mean
    ///   time between updates over R rounds is T(R)/R with T(R) = min{t : Σ_i ⌊t/τ_i⌋ ≥ R};
    /// - rennala (cancel): every round takes T_round(S) = min{t : Σ_i ⌊t/τ_i⌋ ≥ S};
    /// - malenia (cancel): every round takes the Malenia round time;
    /// - ringmaster with R above the largest possible delay: it is vanilla ASGD;
    /// - fedbuff with C = M: clients upload every Q·τ_i, so the mean time between updates is
    ///   T'(K·R)/R with the same count over the times Q·τ_i;
    /// - sync: every round takes U·max_i τ_i.
    ///
    /// None when the model is not the fixed one; Some(no values) for the other algorithms.
    pub fn fixed_model_theory(&self) -> Result<Option<TheoryValues>> {
        let Some(taus) = self.compute.fixed_times(self.workers) else { return Ok(None) };
        if !self.comm.is_zero() {
            return Ok(None);
        }
        let (m, k, u, rounds) = (self.workers as f64, self.wait as u64, self.local_steps, self.rounds);
        let none = TheoryValues::default();
        // the time of the last update over the number of updates (not computed from 2^28 on)
        let asgd_mean = |taus: &[f64], events: u64| -> Result<Option<f64>> {
            if events >= fixed::MAX_COUNT {
                return Ok(None);
            }
            Ok(Some(fixed::nth_completion_time(taus, events, "rounds")? / rounds as f64))
        };
        let cancel = !self.asynchronous.ignore_stale;
        let values = match self.algorithm {
            TimingAlgorithm::Async => TheoryValues {
                round_time: asgd_mean(&taus, rounds)?,
                updates_per_worker: Some(1.0 / m),
                uploaders: Some(1.0),
            },
            TimingAlgorithm::Ringmaster
                if taus.len() <= 4096
                    && self.asynchronous.delay_threshold.expect("checked") > fixed::asgd_max_delay(&taus)? =>
            {
                TheoryValues {
                    round_time: asgd_mean(&taus, rounds)?,
                    updates_per_worker: Some(1.0 / m),
                    uploaders: Some(1.0),
                }
            }
            TimingAlgorithm::Rennala if cancel => TheoryValues {
                round_time: Some(fixed::rennala_round_time(&taus, k)?),
                updates_per_worker: Some(k as f64 / m),
                uploaders: None,
            },
            TimingAlgorithm::Malenia if cancel => TheoryValues {
                round_time: Some(fixed::malenia_round_time(&taus, k)?),
                updates_per_worker: None,
                uploaders: Some(m),
            },
            TimingAlgorithm::FedBuff if self.asynchronous.concurrency.is_none_or(|c| c == self.workers) => {
                let client_times: Vec<f64> = taus.iter().map(|t| t * u as f64).collect();
                TheoryValues {
                    round_time: asgd_mean(&client_times, k.saturating_mul(rounds))?,
                    updates_per_worker: Some((k * u as u64) as f64 / m),
                    uploaders: None,
                }
            }
            TimingAlgorithm::Sync => TheoryValues {
                round_time: Some(u as f64 * fixed::sync_round_time(&taus)?),
                updates_per_worker: Some(u as f64),
                uploaders: Some(m),
            },
            _ => none,
        };
        Ok(Some(values))
    }

    /// Ringmaster's Lemma 4.1 bound t(R) = 2·min_m (R + m)/Σ_{i≤m} 1/τ_i on any R consecutive
    /// updates, in the fixed model with zero communication (None otherwise).
    pub fn window_bound(&self) -> Result<Option<f64>> {
        let (Some(r), Some(taus)) = (self.asynchronous.delay_threshold, self.compute.fixed_times(self.workers)) else {
            return Ok(None);
        };
        if !self.comm.is_zero() || self.algorithm != TimingAlgorithm::Ringmaster {
            return Ok(None);
        }
        Ok(Some(fixed::ringmaster_window_time(&taus, r)?))
    }
}
