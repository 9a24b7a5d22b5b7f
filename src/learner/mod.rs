//! The learner: computes the local SGD steps and gradients that the engine's decisions ask for,
//! in parallel with rayon, and applies them in a fixed order so that the resulting model is the
//! same bit for bit whatever the thread count.
//!
//! - [`Learner::local_round`]: round-synchronous algorithms. Job j = "worker m runs N steps of
//!   local SGD from the global model w"; the new model is w + Σ_j a_j (w_j − w) with
//!   algorithm-chosen coefficients a_j (uniform average, FedNova's normalisation, ...). Jobs run
//!   in waves of a few per thread; each wave's models are added into an f64 accumulator in job
//!   order. Memory is bounded (64 MiB of models per wave, or a few per thread for very large
//!   models), independent of M.
//! - [`Learner::start_job`] / [`Learner::start_local_job`] / [`Learner::arrive`] /
//!   [`Learner::apply`]: the asynchronous path. Each job records the model version it started
//!   from ([`Learner::delay`] is the number of updates since); its result is applied in
//!   simulated-time order, w ← w − η·scale·Σ_j weight_j·r_j. Independent jobs are computed in
//!   parallel and applied in order, bit-identical to a sequential run; pending jobs are computed
//!   before the model changes, so no model snapshot is kept unless a bounded budget of them buys
//!   larger parallel batches for expensive gradients (see [`jobs`] for the policy and memory).
//!
//! Data draws: worker m's minibatches in round r come from stream (Data, m, r); in asynchronous
//! runs its j-th gradient uses stream (Data, m, j). Every algorithm therefore sees the same
//! minibatches wherever its schedule allows (common random numbers).

pub mod jobs;
pub mod logistic;
pub mod objective;
pub mod quadratic;
// Issue 6: per-worker persistent models (LOSCAR, decentralized SGD) and Spiridonoff's problems.
pub mod homogeneous;
pub mod workers;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

pub use homogeneous::{NoisyQuadratic, PiecewiseQuadratic};
pub use logistic::{Logistic, LogisticData};
pub use objective::{Classification, Evaluation, Objective, Scratch, Shards};
pub use quadratic::Quadratic;
pub use workers::{MergeRule, WorkerModels};

use crate::error::{Error, Result};
use crate::rng::{Purpose, Seeds};

/// Memory for the models of one wave of jobs.
const WAVE_BYTES: usize = 64 << 20;

/// Most jobs in one wave.
const WAVE_MAX: usize = 1024;

/// Coordinates per parallel task when combining models.
const COMBINE_CHUNK: usize = 1 << 14;

/// One worker's part of a round: `steps` local SGD steps from the global model, entering the
/// aggregate with coefficient `coef`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LocalJob {
    /// The worker.
    pub worker: usize,
    /// Local steps.
    pub steps: u32,
    /// a_j in w + Σ a_j (w_j − w).
    pub coef: f64,
}

/// What a round did to the model.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RoundLearning {
    /// ‖w_new − w‖₂ (FLANP's doubling rule).
    pub delta_norm: f64,
    /// Mean minibatch loss over the round's local steps.
    pub mean_step_loss: f64,
}

/// Per-job scratch of a wave (the job's model lives in `Learner::models`).
struct Slot {
    grad: Vec<f32>,
    scratch: Scratch,
}

/// Holds the global model and computes updates; see the module docs.
pub struct Learner<'a> {
    objective: &'a dyn Objective,
    seeds: Seeds,
    lr: f32,
    model: Arc<Vec<f32>>,
    /// Scratch of the threads (taken by a job, returned after it): as many as ran at once.
    slots: Mutex<Vec<Slot>>,
    /// The models of the jobs of one wave, and their summed minibatch losses.
    models: Vec<Vec<f32>>,
    losses: Vec<f64>,
    accum: Vec<f64>,
    jobs: jobs::JobStore,
}

impl<'a> Learner<'a> {
    /// A learner with the objective's initial model (stream (Init, 0, 0) of `seeds`: the same
    /// for every algorithm of a seed) and local learning rate `lr`.
    pub fn new(objective: &'a dyn Objective, seeds: Seeds, lr: f64) -> Self {
        let model = objective.init(&mut seeds.stream(Purpose::Init, 0, 0));
        Learner {
            objective,
            seeds,
            lr: lr as f32,
            model: Arc::new(model),
            slots: Mutex::new(Vec::new()),
            models: Vec::new(),
            losses: Vec::new(),
            accum: Vec::new(),
            jobs: jobs::JobStore::new(objective.workers(), default_snapshot_budget(objective)),
        }
    }

    /// Sets how many model snapshots the asynchronous path may keep to batch gradient
    /// computations (0: compute pending jobs whenever the model changes; see [`jobs`]). The
    /// results do not depend on it.
    pub fn with_snapshot_budget(mut self, budget: usize) -> Self {
        self.jobs.snapshot_budget = budget;
        self
    }

    /// The snapshot budget in use.
    pub fn snapshot_budget(&self) -> usize {
        self.jobs.snapshot_budget
    }

    /// The global model.
    pub fn model(&self) -> &[f32] {
        &self.model
    }

    /// Metrics of the global model.
    pub fn evaluate(&self) -> Evaluation {
        self.objective.evaluate(&self.model)
    }

    /// AdaComm's loss probe: mean loss on `samples` random test examples (stream (Eval, tag, 0)).
    pub fn probe_loss(&self, samples: usize, tag: u64) -> f64 {
        self.objective.probe_loss(&self.model, samples, &mut self.seeds.stream(Purpose::Eval, tag, 0))
    }

    fn ensure_models(&mut self, n: usize) {
        let d = self.objective.dim();
        while self.models.len() < n {
            self.models.push(vec![0.0; d]);
        }
        self.losses.resize(self.models.len(), 0.0);
    }

    /// Runs the jobs of round `round` and sets w ← w + Σ a_j (w_j − w).
    pub fn local_round(&mut self, round: u64, jobs: &[LocalJob]) -> Result<RoundLearning> {
        let lr = self.lr;
        self.local_round_with(round, jobs, &|_| lr)
    }

    /// [`Learner::local_round`] with a step-size schedule: local step s (from 0) of every job
    /// uses η = `step_size(s)` instead of the constant learning rate (Spiridonoff et al.'s
    /// decreasing α_t).
    pub fn local_round_with(
        &mut self,
        round: u64,
        jobs: &[LocalJob],
        step_size: &(dyn Fn(u32) -> f32 + Sync),
    ) -> Result<RoundLearning> {
        let d = self.objective.dim();
        // Jobs run in waves whose models are combined before the next wave starts, so memory is
        // bounded (WAVE_BYTES of models, and at least a few jobs per thread) whatever M is. Big
        // waves let rayon balance jobs of different lengths (STSyn's N_m vary from 0 to past U).
        let wave = (WAVE_BYTES / (4 * d.max(1))).clamp(4 * rayon::current_num_threads(), WAVE_MAX);
        self.ensure_models(wave.min(jobs.len()));
        self.accum.clear();
        self.accum.resize(d, 0.0);
        let (objective, seeds) = (self.objective, self.seeds);
        let base: &[f32] = &self.model;
        let (mut loss_sum, mut steps) = (0.0, 0u64);
        let pool = &self.slots;
        for wave_jobs in jobs.chunks(wave) {
            let n = wave_jobs.len();
            // Greedy list scheduling: every thread takes the longest job not yet started, so
            // the threads finish together; each job writes its own model, combined below in job
            // order, so the result does not depend on which thread ran what.
            let mut work: Vec<_> = self.models[..n].iter_mut().zip(&mut self.losses[..n]).zip(wave_jobs).collect();
            work.sort_by_key(|(_, job)| std::cmp::Reverse(job.steps));
            let work: Vec<_> = work.into_iter().map(Mutex::new).collect();
            let next = AtomicUsize::new(0);
            let run_job = |((model, loss), job): &mut ((&mut Vec<f32>, &mut f64), &LocalJob)| {
                let mut slot = pool
                    .lock()
                    .expect("slot pool")
                    .pop()
                    .unwrap_or_else(|| Slot { grad: vec![0.0; d], scratch: objective.scratch() });
                model.copy_from_slice(base);
                **loss = 0.0;
                let mut rng = seeds.stream(Purpose::Data, job.worker as u64, round);
                for step in 0..job.steps {
                    **loss += objective.gradient(job.worker, model, &mut rng, &mut slot.scratch, &mut slot.grad) as f64;
                    let lr = step_size(step);
                    model.iter_mut().zip(&slot.grad).for_each(|(w, g)| *w -= lr * g);
                }
                pool.lock().expect("slot pool").push(slot);
            };
            rayon::scope(|s| {
                for _ in 0..rayon::current_num_threads().min(n) {
                    s.spawn(|_| {
                        while let Some(item) = work.get(next.fetch_add(1, Ordering::Relaxed)) {
                            run_job(&mut item.lock().expect("job"));
                        }
                    });
                }
            });
            for (loss, job) in self.losses.iter().zip(wave_jobs) {
                loss_sum += loss;
                steps += job.steps as u64;
            }
            let models = &self.models[..n];
            self.accum.par_chunks_mut(COMBINE_CHUNK).enumerate().for_each(|(c, acc)| {
                let offset = c * COMBINE_CHUNK;
                for (model, job) in models.iter().zip(wave_jobs) {
                    let (w, b) = (&model[offset..offset + acc.len()], &base[offset..offset + acc.len()]);
                    for i in 0..acc.len() {
                        acc[i] += job.coef * (w[i] - b[i]) as f64;
                    }
                }
            });
        }
        let delta_norm = self.accum.iter().map(|a| a * a).sum::<f64>().sqrt();
        self.jobs.before_change(&self.model, self.objective, self.seeds, self.lr);
        self.jobs.count_change();
        let model = Arc::make_mut(&mut self.model);
        model.iter_mut().zip(&self.accum).for_each(|(w, a)| *w = (*w as f64 + a) as f32);
        check_finite(model, round)?;
        Ok(RoundLearning { delta_norm, mean_step_loss: if steps > 0 { loss_sum / steps as f64 } else { f64::NAN } })
    }

    /// Worker `worker` starts a gradient job at the current model; returns its id.
    pub fn start_job(&mut self, worker: usize) -> u64 {
        self.start_local_job(worker, 1)
    }

    /// Worker `worker` starts `steps` (Q) local SGD steps from the current model with the local
    /// rate η; its result is the sum of the Q minibatch gradients along the local path, so the
    /// worker's model delta is η times it. Returns the job id.
    pub fn start_local_job(&mut self, worker: usize, steps: u32) -> u64 {
        assert!(steps >= 1, "a job has at least one step");
        let id = self.jobs.start(worker, steps);
        self.objective.prefetch(worker, &mut self.jobs.stream(id, self.seeds));
        id
    }

    /// The number of model updates so far ([`Learner::apply`] calls and rounds): the version a
    /// job started now reads.
    pub fn version(&self) -> u64 {
        self.jobs.version()
    }

    /// δ: the number of model updates since job `id` started.
    pub fn delay(&self, id: u64) -> u64 {
        self.jobs.delay(id)
    }

    /// Jobs started and neither applied nor discarded.
    pub fn jobs_in_flight(&self) -> usize {
        self.jobs.in_flight()
    }

    /// The result of job `id` reached the server; it is used by the next [`Learner::apply`] with
    /// weight `weight` (its result is scaled by η·scale·weight).
    pub fn arrive(&mut self, id: u64, weight: f64) {
        self.jobs.arrive(id, weight);
    }

    /// The result of job `id` reached the server and is added to the sum of `group` that the next
    /// [`Learner::apply_sums`] uses (Rennala's and Malenia's rounds, which collect many results
    /// at one model: memory stays O((threads + groups) × d) instead of one result per job). The
    /// model must not change before that update.
    pub fn arrive_summed(&mut self, id: u64, group: usize) {
        self.jobs.arrive_summed(id, group, &self.model, self.objective, self.seeds, self.lr);
    }

    /// w ← w − η·scale·Σ_g weights\[g\]·S_g over the sums S_g of [`Learner::arrive_summed`]
    /// (each summed in f32 in arrival order). Returns the mean minibatch loss of the summed jobs.
    pub fn apply_sums(&mut self, update: u64, scale: f64, weights: &[f64]) -> Result<f64> {
        let loss = self.jobs.apply_sums(&mut self.model, self.objective, self.seeds, self.lr, scale, weights);
        check_finite(&self.model, update)?;
        Ok(loss)
    }

    /// Drops a job whose result will never be used (cancelled, or ignored on arrival). A job that
    /// is discarded before the model changes is never computed.
    pub fn discard(&mut self, id: u64) {
        self.jobs.discard(id);
    }

    /// Number of results waiting for the next update (arrived or summed).
    pub fn arrived(&self) -> usize {
        self.jobs.arrived_count()
    }

    /// Applies the arrived results in arrival order: w ← w − η·scale·Σ weight_j r_j (one job at
    /// a time, as a sequential run would). Results not yet computed are computed first, together
    /// with every other job in flight. Returns the mean minibatch loss of the applied jobs.
    pub fn apply(&mut self, update: u64, scale: f64) -> Result<f64> {
        let loss = self.jobs.apply(&mut self.model, self.objective, self.seeds, self.lr, scale);
        check_finite(&self.model, update)?;
        Ok(loss)
    }
}

/// The default snapshot budget: 2·threads − 1 when one gradient is expensive enough that
/// batches of them are worth computing in parallel, else 0 (no snapshots; see [`jobs`]).
pub fn default_snapshot_budget(objective: &dyn Objective) -> usize {
    let threads = rayon::current_num_threads();
    if threads > 1 && 2.0 * objective.gradient_flops() >= jobs::PARALLEL_FLOPS { 2 * threads - 1 } else { 0 }
}

/// Fails when a parameter is not finite after the update of 0-based round (or server update)
/// `round`; the message counts rounds from 1, as `evals.csv` does.
fn check_finite(model: &[f32], round: u64) -> Result<()> {
    // a branch-free pass (it vectorises; it runs after every asynchronous update), then the
    // search for the culprit only when there is one
    if model.iter().fold(true, |ok, w| ok & w.is_finite()) {
        return Ok(());
    }
    let i = model.iter().position(|w| !w.is_finite()).expect("a non-finite parameter");
    Err(Error::Stopped(format!(
        "diverged: parameter {i} is {} in round {} (try a smaller learning rate)",
        model[i],
        round + 1
    )))
}
