//! The learner: computes the local SGD steps and gradients that the engine's decisions ask for,
//! in parallel with rayon, and applies them in a fixed order so that the resulting model is the
//! same bit for bit whatever the thread count.
//!
//! - [`Learner::local_round`]: round-synchronous algorithms. Job j = "worker m runs N steps of
//!   local SGD from the global model w"; the new model is w + Σ_j a_j (w_j − w) with
//!   algorithm-chosen coefficients a_j (uniform average, FedNova's normalisation, ...). Jobs run
//!   in waves of a few per thread; each wave's models are added into an f64 accumulator in job
//!   order. Memory is O(threads × d), independent of M.
//! - [`Learner::start_job`] / [`Learner::arrive`] / [`Learner::apply`]: gradients computed at
//!   the model a job started from (possibly stale) and applied in simulated-time order.
//!   Gradients of jobs in flight are computed lazily in parallel batches: a job keeps a shared
//!   (copy-on-write) snapshot of its starting model only until its gradient has been computed.
//!
//! Data draws: worker m's minibatches in round r come from stream (Data, m, r); in asynchronous
//! runs its j-th gradient uses stream (Data, m, j). Every algorithm therefore sees the same
//! minibatches wherever its schedule allows (common random numbers).

pub mod objective;
pub mod quadratic;
// Issue 6: per-worker persistent models (LOSCAR, decentralized SGD) and Spiridonoff's problems.
pub mod homogeneous;
pub mod workers;

use std::collections::BTreeMap;
use std::sync::Arc;

use rayon::prelude::*;

pub use homogeneous::{NoisyQuadratic, PiecewiseQuadratic};
pub use objective::{Classification, Evaluation, Objective, Scratch, Shards};
pub use quadratic::Quadratic;
pub use workers::{MergeRule, WorkerModels};

use crate::error::{Error, Result};
use crate::rng::{Purpose, Seeds};

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
    loss: f64,
}

/// A gradient job of an asynchronous algorithm.
struct Job {
    worker: usize,
    /// Index of this job among the worker's jobs (its data stream).
    index: u64,
    /// The model it started from, until its gradient is computed.
    snapshot: Option<Arc<Vec<f32>>>,
    gradient: Option<Vec<f32>>,
    loss: f32,
}

/// Holds the global model and computes updates; see the module docs.
pub struct Learner<'a> {
    objective: &'a dyn Objective,
    seeds: Seeds,
    lr: f32,
    model: Arc<Vec<f32>>,
    slots: Vec<Slot>,
    models: Vec<Vec<f32>>,
    accum: Vec<f64>,
    jobs: BTreeMap<u64, Job>,
    next_job: u64,
    jobs_per_worker: Vec<u64>,
    arrived: Vec<(u64, f64)>,
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
            slots: Vec::new(),
            models: Vec::new(),
            accum: Vec::new(),
            jobs: BTreeMap::new(),
            next_job: 0,
            jobs_per_worker: vec![0; objective.workers()],
            arrived: Vec::new(),
        }
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

    fn ensure_slots(&mut self, n: usize) {
        let d = self.objective.dim();
        while self.slots.len() < n {
            self.slots.push(Slot { grad: vec![0.0; d], scratch: self.objective.scratch(), loss: 0.0 });
            self.models.push(vec![0.0; d]);
        }
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
        let wave = (2 * rayon::current_num_threads()).max(1);
        self.ensure_slots(wave.min(jobs.len()));
        self.accum.clear();
        self.accum.resize(d, 0.0);
        let (objective, seeds) = (self.objective, self.seeds);
        let base: &[f32] = &self.model;
        let (mut loss_sum, mut steps) = (0.0, 0u64);
        for wave_jobs in jobs.chunks(wave) {
            let n = wave_jobs.len();
            self.slots[..n].par_iter_mut().zip(&mut self.models[..n]).zip(wave_jobs).for_each(
                |((slot, model), job)| {
                    model.copy_from_slice(base);
                    slot.loss = 0.0;
                    let mut rng = seeds.stream(Purpose::Data, job.worker as u64, round);
                    for step in 0..job.steps {
                        slot.loss +=
                            objective.gradient(job.worker, model, &mut rng, &mut slot.scratch, &mut slot.grad) as f64;
                        let lr = step_size(step);
                        model.iter_mut().zip(&slot.grad).for_each(|(w, g)| *w -= lr * g);
                    }
                },
            );
            for (slot, job) in self.slots.iter().zip(wave_jobs) {
                loss_sum += slot.loss;
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
        let model = Arc::make_mut(&mut self.model);
        model.iter_mut().zip(&self.accum).for_each(|(w, a)| *w = (*w as f64 + a) as f32);
        check_finite(model, round)?;
        Ok(RoundLearning { delta_norm, mean_step_loss: if steps > 0 { loss_sum / steps as f64 } else { f64::NAN } })
    }

    /// Worker `worker` starts a gradient job at the current model; returns its id.
    pub fn start_job(&mut self, worker: usize) -> u64 {
        let id = self.next_job;
        self.next_job += 1;
        let index = self.jobs_per_worker[worker];
        self.jobs_per_worker[worker] += 1;
        self.jobs.insert(id, Job { worker, index, snapshot: Some(Arc::clone(&self.model)), gradient: None, loss: 0.0 });
        id
    }

    /// The result of job `id` reached the server; it is used by the next [`Learner::apply`] with
    /// weight `weight` (its gradient is scaled by η·weight).
    pub fn arrive(&mut self, id: u64, weight: f64) {
        debug_assert!(self.jobs.contains_key(&id), "unknown job {id}");
        self.arrived.push((id, weight));
    }

    /// Drops a job whose result will never be used (cancelled, or ignored on arrival).
    pub fn discard(&mut self, id: u64) {
        self.jobs.remove(&id);
    }

    /// Number of results waiting for the next update.
    pub fn arrived(&self) -> usize {
        self.arrived.len()
    }

    /// Applies the arrived results in arrival order: w ← w − η·scale·Σ weight_j g_j. Gradients
    /// not yet computed are computed first, together with every other job in flight, in
    /// parallel. Returns the mean minibatch loss of the applied gradients.
    pub fn apply(&mut self, update: u64, scale: f64) -> Result<f64> {
        if self.arrived.iter().any(|(id, _)| self.jobs.get(id).is_some_and(|j| j.gradient.is_none())) {
            self.compute_pending();
        }
        let lr = self.lr as f64;
        let mut loss = 0.0;
        let arrived = std::mem::take(&mut self.arrived);
        let model = Arc::make_mut(&mut self.model);
        for &(id, weight) in &arrived {
            let job = self.jobs.remove(&id).expect("arrived job is known");
            let g = job.gradient.expect("computed above");
            let step = (lr * scale * weight) as f32;
            model.iter_mut().zip(&g).for_each(|(w, g)| *w -= step * g);
            loss += job.loss as f64;
        }
        check_finite(model, update)?;
        Ok(if arrived.is_empty() { f64::NAN } else { loss / arrived.len() as f64 })
    }

    /// Computes the gradients of all jobs that still hold a snapshot, in parallel.
    fn compute_pending(&mut self) {
        let (objective, seeds) = (self.objective, self.seeds);
        let pending: Vec<&mut Job> = self.jobs.values_mut().filter(|j| j.gradient.is_none()).collect();
        let d = objective.dim();
        pending.into_par_iter().for_each_init(
            || objective.scratch(),
            |scratch, job| {
                let snapshot = job.snapshot.take().expect("a job without a gradient has a snapshot");
                let mut grad = vec![0.0; d];
                let mut rng = seeds.stream(Purpose::Data, job.worker as u64, job.index);
                job.loss = objective.gradient(job.worker, &snapshot, &mut rng, scratch, &mut grad);
                job.gradient = Some(grad);
            },
        );
    }
}

fn check_finite(model: &[f32], round: u64) -> Result<()> {
    match model.iter().position(|w| !w.is_finite()) {
        None => Ok(()),
        Some(i) => Err(Error::Stopped(format!(
            "diverged: parameter {i} is {} after round {round} (try a smaller learning rate)",
            model[i]
        ))),
    }
}
