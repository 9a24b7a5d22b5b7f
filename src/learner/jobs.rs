//! The asynchronous path of the learner: gradient jobs that start at the current model, finish
//! later, and are applied in simulated-time order with their delay δ (the number of model updates
//! between the job's start and its application).
//!
//! A job is one stochastic gradient of worker m at the model it started from, or Q local SGD steps
//! from that model (FedBuff's clients); its result r is then the sum of the Q minibatch gradients
//! along the local path, so that the client's model delta is η·r. Worker m's j-th job draws its
//! minibatches from stream (Data, m, j).
//!
//! **When gradients are computed.** A job's result depends only on the model it read and on its
//! data stream, so it can be computed at any time before it is applied. A new job is *pending*: it
//! reads the current model, and nothing is stored for it. Just before the model changes, pending
//! jobs must be dealt with, in one of two ways:
//!
//! - *computed now* ("flush"): every job not yet computed is computed, in parallel with rayon when
//!   the batch is worth it, and holds only its result (d floats) until it is applied. No model
//!   snapshot is ever kept. This is the default for cheap gradients (a linear model of dimension
//!   100 costs less than a rayon dispatch), and always when there is one thread.
//! - *snapshotted*: the pending jobs share one copy-on-write snapshot of the current model and are
//!   computed later, together with other jobs, in one larger parallel batch. At most
//!   `snapshot_budget` snapshots are alive at a time; when the budget is used up, the next change
//!   of the model flushes everything. For expensive gradients (a CNN) the default budget is
//!   2·threads − 1, so asynchronous SGD, which starts one job per update, computes its gradients
//!   in batches of about 2·threads while holding at most that many extra models: O(threads × d),
//!   never O(M × d) snapshots.
//!
//! Results of jobs in flight are inherent to asynchronous SGD (M workers, M gradients in flight),
//! so they are O(M × d) whichever way; their buffers are recycled, so the hot path allocates
//! nothing in steady state.
//!
//! **Summed results.** Rennala and Malenia collect S results at one model before a single update.
//! Their results go through `JobStore::arrive_summed` ([`crate::learner::Learner::arrive_summed`]) instead: every 2·threads arrivals the
//! waiting jobs are computed (in parallel) and added, in arrival order, into one f32 sum per group
//! (one group for Rennala, one per worker for Malenia), and their buffers are recycled; the update
//! is w ← w − η·scale·Σ_g weight_g·sum_g. Memory is O((threads + groups) × d) whatever S is; the
//! sums, and so the model, do not depend on the thread count.
//!
//! **Determinism.** Each job's result is a pure function of the model it read and its data
//! stream; results are applied one at a time in arrival order, w ← w − (η·scale·weight_j)·r_j in
//! `f32`, exactly as a sequential run would. The thread count and the snapshot budget change only
//! when results are computed, never their values, so the model is bit-identical for any of them.

use std::sync::Arc;

use rayon::prelude::*;

use super::objective::{Objective, Scratch};
use crate::rng::{Purpose, Seeds, Stream};

/// Total floating-point work (estimated by [`Objective::gradient_flops`]) below which a batch of
/// jobs is computed on the calling thread: a rayon dispatch costs a few microseconds.
pub const PARALLEL_FLOPS: f64 = 2e5;

/// Per-thread working memory of a job.
pub(crate) struct Work {
    scratch: Scratch,
    /// The local model of a Q-step job.
    local: Vec<f32>,
    /// One minibatch gradient of a Q-step job.
    grad: Vec<f32>,
}

impl Work {
    fn new(objective: &dyn Objective) -> Self {
        Work { scratch: objective.scratch(), local: Vec::new(), grad: Vec::new() }
    }
}

/// Where a job is in its life.
enum State {
    /// Reads the current model; nothing computed yet. `position` is its index in `pending`.
    Pending { position: u32 },
    /// Reads an older model, kept alive for it. `position` is its index in `held`.
    Held { snapshot: Arc<Vec<f32>>, position: u32 },
    /// Its result is computed.
    Ready { result: Vec<f32> },
    /// The slot is free.
    Free,
}

struct Job {
    /// Bumped when the slot is reused, so that a stale id is recognised.
    generation: u32,
    worker: u32,
    /// Local steps Q (1: one gradient).
    steps: u32,
    /// Index of the job among its worker's jobs: its data stream.
    index: u64,
    /// The model version it read.
    version: u64,
    /// Mean minibatch loss over its steps.
    loss: f32,
    state: State,
}

/// The jobs of the asynchronous path; see the module docs.
pub(crate) struct JobStore {
    jobs: Vec<Job>,
    free: Vec<u32>,
    pending: Vec<u32>,
    held: Vec<u32>,
    /// Snapshots taken since the last flush (an upper bound on the ones alive).
    snapshots: usize,
    /// Most snapshots alive at a time.
    pub(crate) snapshot_budget: usize,
    arrived: Vec<(u64, f64)>,
    /// (job, group) of results to add to the group sums.
    summing: Vec<(u64, u32)>,
    /// Per group: results summed since the last update, and their sum (kept allocated).
    sums: Vec<(u64, Vec<f32>)>,
    /// Total loss of the jobs in the sums.
    summed_loss: f64,
    /// Recycled result buffers.
    pool: Vec<Vec<f32>>,
    jobs_per_worker: Vec<u64>,
    /// Model updates applied so far.
    version: u64,
    /// Working memory for jobs computed on the calling thread.
    work: Option<Work>,
}

impl JobStore {
    pub(crate) fn new(workers: usize, snapshot_budget: usize) -> Self {
        JobStore {
            jobs: Vec::new(),
            free: Vec::new(),
            pending: Vec::new(),
            held: Vec::new(),
            snapshots: 0,
            snapshot_budget,
            arrived: Vec::new(),
            summing: Vec::new(),
            sums: Vec::new(),
            summed_loss: 0.0,
            pool: Vec::new(),
            jobs_per_worker: vec![0; workers],
            version: 0,
            work: None,
        }
    }

    #[inline]
    fn slot(id: u64) -> usize {
        (id & 0xFFFF_FFFF) as usize
    }

    #[inline]
    fn job(&self, id: u64) -> &Job {
        let job = &self.jobs[Self::slot(id)];
        assert!(job.generation == (id >> 32) as u32 && !matches!(job.state, State::Free), "unknown job {id}");
        job
    }

    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    pub(crate) fn delay(&self, id: u64) -> u64 {
        self.version - self.job(id).version
    }

    /// Records a change of the model made outside [`JobStore::apply`] (a local round).
    pub(crate) fn count_change(&mut self) {
        self.version += 1;
    }

    pub(crate) fn arrived_count(&self) -> usize {
        self.arrived.len() + self.summing.len() + self.summed()
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.jobs.len() - self.free.len()
    }

    /// A new job of `worker` with `steps` local steps, reading the current model.
    pub(crate) fn start(&mut self, worker: usize, steps: u32) -> u64 {
        let index = self.jobs_per_worker[worker];
        self.jobs_per_worker[worker] += 1;
        let state = State::Pending { position: self.pending.len() as u32 };
        let fields = |generation| Job { generation, worker: worker as u32, steps, index, version: 0, loss: 0.0, state };
        let slot = match self.free.pop() {
            Some(slot) => {
                let generation = self.jobs[slot as usize].generation.wrapping_add(1);
                self.jobs[slot as usize] = fields(generation);
                slot
            }
            None => {
                self.jobs.push(fields(0));
                (self.jobs.len() - 1) as u32
            }
        };
        let job = &mut self.jobs[slot as usize];
        job.version = self.version;
        self.pending.push(slot);
        ((job.generation as u64) << 32) | slot as u64
    }

    /// The data stream of job `id` (as [`run_job`] starts it).
    pub(crate) fn stream(&self, id: u64, seeds: Seeds) -> Stream {
        data_stream(seeds, self.job(id))
    }

    pub(crate) fn arrive(&mut self, id: u64, weight: f64) {
        self.job(id);
        self.arrived.push((id, weight));
    }

    /// Frees a job's slot and its memory.
    pub(crate) fn discard(&mut self, id: u64) {
        self.job(id);
        let slot = Self::slot(id);
        match std::mem::replace(&mut self.jobs[slot].state, State::Free) {
            State::Pending { position } => remove_at(&mut self.pending, &mut self.jobs, position, false),
            State::Held { position, .. } => remove_at(&mut self.held, &mut self.jobs, position, true),
            State::Ready { result } => self.pool.push(result),
            State::Free => unreachable!("checked above"),
        }
        self.free.push(slot as u32);
    }

    /// True when some arrived job has no result yet.
    fn arrived_needs_compute(&self) -> bool {
        self.arrived.iter().any(|&(id, _)| !matches!(self.jobs[Self::slot(id)].state, State::Ready { .. }))
    }

    /// Called before the model changes: pending jobs are snapshotted or everything is computed.
    pub(crate) fn before_change(&mut self, model: &Arc<Vec<f32>>, objective: &dyn Objective, seeds: Seeds, lr: f32) {
        if self.arrived_needs_compute() {
            self.compute_all(model, objective, seeds, lr);
        }
        if self.pending.is_empty() {
            return;
        }
        if self.snapshots < self.snapshot_budget {
            self.snapshots += 1;
            for slot in self.pending.drain(..) {
                let position = self.held.len() as u32;
                self.held.push(slot);
                self.jobs[slot as usize].state = State::Held { snapshot: Arc::clone(model), position };
            }
        } else {
            self.compute_all(model, objective, seeds, lr);
        }
    }

    /// Computes every job without a result: pending ones at `model`, held ones at their snapshot.
    fn compute_all(&mut self, model: &Arc<Vec<f32>>, objective: &dyn Objective, seeds: Seeds, lr: f32) {
        let mut slots = std::mem::take(&mut self.pending);
        slots.append(&mut self.held);
        self.compute(&slots, model, objective, seeds, lr);
        self.snapshots = 0;
    }

    /// Computes the listed jobs (pending at `model`, or held at their snapshot; already off the
    /// pending and held lists), on the calling thread or in parallel when the batch is worth it.
    fn compute(&mut self, slots: &[u32], model: &Arc<Vec<f32>>, objective: &dyn Objective, seeds: Seeds, lr: f32) {
        let count = slots.len();
        if count == 0 {
            return;
        }
        let d = objective.dim();
        let flops: f64 = slots.iter().map(|&s| self.jobs[s as usize].steps as f64 * objective.gradient_flops()).sum();
        let parallel = count >= 2 && flops >= PARALLEL_FLOPS && rayon::current_num_threads() > 1;
        let base: &[f32] = model.as_slice();
        if !parallel {
            let mut work = self.work.take().unwrap_or_else(|| Work::new(objective));
            for &slot in slots {
                let job = &mut self.jobs[slot as usize];
                let mut result = self.pool.pop().unwrap_or_else(|| vec![0.0; d]);
                let start: &[f32] = match &job.state {
                    State::Held { snapshot, .. } => snapshot.as_slice(),
                    _ => base,
                };
                job.loss = run_job(objective, seeds, lr, start, job, &mut work, &mut result);
                job.state = State::Ready { result };
            }
            self.work = Some(work);
        } else {
            let mut selected = vec![false; self.jobs.len()];
            slots.iter().for_each(|&s| selected[s as usize] = true);
            let mut todo: Vec<(&mut Job, Vec<f32>)> = Vec::with_capacity(count);
            for (job, _) in self.jobs.iter_mut().zip(&selected).filter(|(_, s)| **s) {
                todo.push((job, self.pool.pop().unwrap_or_else(|| vec![0.0; d])));
            }
            todo.into_par_iter().for_each_init(
                || Work::new(objective),
                |work, (job, mut result)| {
                    let snapshot = match std::mem::replace(&mut job.state, State::Free) {
                        State::Held { snapshot, .. } => Some(snapshot),
                        _ => None,
                    };
                    let start = snapshot.as_deref().map_or(base, |s| s.as_slice());
                    job.loss = run_job(objective, seeds, lr, start, job, work, &mut result);
                    job.state = State::Ready { result };
                },
            );
        }
    }

    /// The result of job `id` is added to the running sum of `group` for the next
    /// [`JobStore::apply_sums`]. Sums are formed in arrival order, a few jobs at a time (computed
    /// in parallel at `model`, which must not change before that update), so that memory is
    /// O((threads + groups) × d) however many results a round collects.
    pub(crate) fn arrive_summed(
        &mut self,
        id: u64,
        group: usize,
        model: &Arc<Vec<f32>>,
        objective: &dyn Objective,
        seeds: Seeds,
        lr: f32,
    ) {
        self.job(id);
        self.summing.push((id, group as u32));
        if self.summing.len() >= 2 * rayon::current_num_threads() {
            self.add_to_sums(model, objective, seeds, lr);
        }
    }

    /// Results in the group sums.
    fn summed(&self) -> usize {
        self.sums.iter().map(|(n, _)| *n as usize).sum()
    }

    /// Computes the results waiting in `summing` and adds them to their group's sum in order.
    fn add_to_sums(&mut self, model: &Arc<Vec<f32>>, objective: &dyn Objective, seeds: Seeds, lr: f32) {
        let summing = std::mem::take(&mut self.summing);
        let mut todo = Vec::with_capacity(summing.len());
        for &(id, _) in &summing {
            let slot = Self::slot(id);
            match self.jobs[slot].state {
                State::Pending { position } => remove_at(&mut self.pending, &mut self.jobs, position, false),
                State::Held { position, .. } => remove_at(&mut self.held, &mut self.jobs, position, true),
                State::Ready { .. } => continue,
                State::Free => unreachable!("checked on arrival"),
            }
            todo.push(slot as u32);
        }
        self.compute(&todo, model, objective, seeds, lr);
        let d = objective.dim();
        for &(id, group) in &summing {
            let slot = Self::slot(id);
            let State::Ready { result } = std::mem::replace(&mut self.jobs[slot].state, State::Free) else {
                unreachable!("computed above");
            };
            let group = group as usize;
            if self.sums.len() <= group {
                self.sums.resize_with(group + 1, Default::default);
            }
            let (count, sum) = &mut self.sums[group];
            *count += 1;
            sum.resize(d, 0.0);
            sum.iter_mut().zip(&result).for_each(|(s, r)| *s += r);
            self.summed_loss += self.jobs[slot].loss as f64;
            self.pool.push(result);
            self.free.push(slot as u32);
        }
        self.summing = summing;
        self.summing.clear();
    }

    /// Updates w ← w − η·scale·Σ_g weight_g·S_g over the sums S_g of [`JobStore::arrive_summed`]
    /// (group g has weight `weights[g]`; each sum is added in f32, in arrival order). Returns the
    /// mean loss of the summed jobs (NaN when none).
    pub(crate) fn apply_sums(
        &mut self,
        model: &mut Arc<Vec<f32>>,
        objective: &dyn Objective,
        seeds: Seeds,
        lr: f32,
        scale: f64,
        weights: &[f64],
    ) -> f64 {
        assert!(self.arrived.is_empty(), "an update uses either arrived results or sums, not both");
        self.add_to_sums(model, objective, seeds, lr);
        let summed = self.summed();
        self.before_change(model, objective, seeds, lr);
        let w = Arc::make_mut(model);
        for (g, (count, sum)) in self.sums.iter_mut().enumerate().filter(|(_, (n, _))| *n > 0) {
            *count = 0;
            let weight = *weights.get(g).expect("a weight for every group with results");
            let step = (lr as f64 * scale * weight) as f32;
            w.iter_mut().zip(sum.iter_mut()).for_each(|(w, s)| {
                *w -= step * *s;
                *s = 0.0;
            });
        }
        self.version += 1;
        let loss = if summed == 0 { f64::NAN } else { self.summed_loss / summed as f64 };
        self.summed_loss = 0.0;
        loss
    }

    /// Applies the arrived results in arrival order: w ← w − (η·scale·weight_j)·r_j. Returns the
    /// mean loss of the applied jobs (NaN when none arrived).
    pub(crate) fn apply(
        &mut self,
        model: &mut Arc<Vec<f32>>,
        objective: &dyn Objective,
        seeds: Seeds,
        lr: f32,
        scale: f64,
    ) -> f64 {
        self.before_change(model, objective, seeds, lr);
        let w = Arc::make_mut(model);
        let arrived = std::mem::take(&mut self.arrived);
        let mut loss = 0.0;
        for &(id, weight) in &arrived {
            let slot = Self::slot(id);
            let job = &mut self.jobs[slot];
            let State::Ready { result } = std::mem::replace(&mut job.state, State::Free) else {
                unreachable!("arrived jobs are computed before the change");
            };
            let step = (lr as f64 * scale * weight) as f32;
            w.iter_mut().zip(&result).for_each(|(w, r)| *w -= step * r);
            loss += job.loss as f64;
            self.pool.push(result);
            self.free.push(slot as u32);
        }
        self.version += 1;
        let n = arrived.len();
        self.arrived = arrived;
        self.arrived.clear();
        if n == 0 { f64::NAN } else { loss / n as f64 }
    }
}

/// Removes the entry at `position` of a pending or held list by swapping in the last one, whose
/// recorded position is updated.
fn remove_at(list: &mut Vec<u32>, jobs: &mut [Job], position: u32, held: bool) {
    list.swap_remove(position as usize);
    if let Some(&moved) = list.get(position as usize) {
        match &mut jobs[moved as usize].state {
            State::Pending { position: p } if !held => *p = position,
            State::Held { position: p, .. } if held => *p = position,
            _ => unreachable!("list entries match their state"),
        }
    }
}

/// Worker m's j-th job draws its minibatches from stream (Data, m, j).
fn data_stream(seeds: Seeds, job: &Job) -> Stream {
    seeds.stream(Purpose::Data, job.worker as u64, job.index)
}

/// Computes one job's result at `base` into `result`; returns the mean minibatch loss.
fn run_job(
    objective: &dyn Objective,
    seeds: Seeds,
    lr: f32,
    base: &[f32],
    job: &Job,
    work: &mut Work,
    result: &mut [f32],
) -> f32 {
    let worker = job.worker as usize;
    let mut rng = data_stream(seeds, job);
    if job.steps == 1 {
        return objective.gradient(worker, base, &mut rng, &mut work.scratch, result);
    }
    let d = base.len();
    work.local.resize(d, 0.0);
    work.grad.resize(d, 0.0);
    work.local.copy_from_slice(base);
    result.fill(0.0);
    let mut loss = 0.0f64;
    for _ in 0..job.steps {
        loss += objective.gradient(worker, &work.local, &mut rng, &mut work.scratch, &mut work.grad) as f64;
        for ((r, y), g) in result.iter_mut().zip(work.local.iter_mut()).zip(&work.grad) {
            *r += g;
            *y -= lr * g;
        }
    }
    (loss / job.steps as f64) as f32
}
