//! Per-worker persistent models, for the methods in which workers never restart from one global
//! model: LOSCAR-SGD (each worker keeps its iterate x_i across rounds and merges a sparse average
//! into it) and decentralized SGD (each worker keeps its estimate x_i and mixes it with its
//! neighbours'). Memory is O(M × d): one model per worker is inherent to these methods (the
//! round-synchronous [`super::Learner`] stays O(threads × d)).
//!
//! The algorithm's timing decides, in simulated-time order, *what* each worker computes; it
//! queues [`WorkerModels`] operations per worker (run n local SGD steps, compute a gradient, keep
//! a sparse snapshot, merge an average, mix with neighbours' models). The queues run lazily:
//! [`WorkerModels::flush`] runs every non-empty queue at once, in parallel over workers (rayon),
//! each worker's operations in order on its own model and data stream. An operation reads only
//! its worker's state and immutable shared values (neighbours' snapshots, averages), so the
//! models do not depend on when flushes happen or on the thread count. A value that needs a
//! worker's current model (a snapshot to send, an average, an evaluation) flushes first, which
//! computes every other queued step at the same time.
//!
//! Data draws: [`WorkerModels::restream`] points worker i at stream (Data, i, key) — LOSCAR uses
//! the round number (so its first steps of round r draw the minibatches PASGD draws in round r),
//! decentralized SGD the iteration number.

use std::sync::Arc;

use rayon::prelude::*;

use super::objective::{Evaluation, Objective, Scratch};
use crate::error::{Error, Result};
use crate::rng::{Purpose, Seeds, Stream};

/// Coordinates per parallel task when averaging models.
const AVERAGE_CHUNK: usize = 1 << 14;

/// How LOSCAR merges the sparse average m̄ into a worker that kept computing after its
/// snapshot y (specs/baselines.md §13).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeRule {
    /// x_j = m̄_j + (z_j − y_j) on the mask: the average replaces the worker's stale
    /// contribution and the overlap progress z − y is kept.
    DelayCorrected,
    /// x_j = m̄_j on the mask: the overlap progress on the synchronized coordinates is lost
    /// (the ablation of the LOSCAR paper).
    Naive,
}

/// One queued operation of a worker.
#[derive(Clone, Debug)]
enum Op {
    /// Draw minibatches from stream (Data, worker, key) from now on.
    Restream(u64),
    /// n local SGD steps: x ← x − η ∇f_i(x; ξ).
    Steps(u32),
    /// g ← ∇f_i(x; ξ), kept for a later [`Op::Descend`] or [`Op::Mix`].
    Gradient,
    /// x ← x − η g.
    Descend,
    /// Keep y_S = x restricted to `coords` under `key`.
    SnapshotMasked { key: u64, coords: Arc<Vec<u32>> },
    /// Merge the average m̄ (on `coords`) with the snapshot kept under `key`.
    Merge { key: u64, coords: Arc<Vec<u32>>, average: Arc<Vec<f32>>, rule: MergeRule },
    /// x ← w_ii·x + Σ_j w_ij·x_j (− η g when `descend`).
    Mix { self_weight: f64, neighbours: Vec<(f64, Arc<Vec<f32>>)>, descend: bool },
}

/// One worker's state.
#[derive(Debug)]
struct WorkerState {
    model: Arc<Vec<f32>>,
    grad: Vec<f32>,
    stream: Stream,
    ops: Vec<Op>,
    /// Sparse snapshots y_{i,S} by key (LOSCAR round), until merged.
    snapshots: Vec<(u64, Vec<f32>)>,
    /// Stochastic gradients computed so far.
    gradients: u64,
    /// Sum of their minibatch losses.
    loss_sum: f64,
}

impl WorkerState {
    fn run(&mut self, worker: usize, objective: &dyn Objective, seeds: Seeds, lr: f32, scratch: &mut Scratch) {
        let ops = std::mem::take(&mut self.ops);
        for op in ops {
            match op {
                Op::Restream(key) => self.stream = seeds.stream(Purpose::Data, worker as u64, key),
                Op::Steps(n) => {
                    for _ in 0..n {
                        self.gradient(worker, objective, scratch);
                        self.descend(lr);
                    }
                }
                Op::Gradient => self.gradient(worker, objective, scratch),
                Op::Descend => self.descend(lr),
                Op::SnapshotMasked { key, coords } => {
                    let values = coords.iter().map(|&c| self.model[c as usize]).collect();
                    self.snapshots.push((key, values));
                }
                Op::Merge { key, coords, average, rule } => {
                    let at = self.snapshots.iter().position(|(k, _)| *k == key).expect("merge after its snapshot");
                    let (_, snapshot) = self.snapshots.swap_remove(at);
                    let model = Arc::make_mut(&mut self.model);
                    merge(model, &coords, &snapshot, &average, rule);
                }
                Op::Mix { self_weight, neighbours, descend } => {
                    let model = Arc::make_mut(&mut self.model);
                    for (c, x) in model.iter_mut().enumerate() {
                        let mut v = self_weight * *x as f64;
                        for (w, other) in &neighbours {
                            v += w * other[c] as f64;
                        }
                        if descend {
                            v -= (lr * self.grad[c]) as f64;
                        }
                        *x = v as f32;
                    }
                }
            }
        }
    }

    fn gradient(&mut self, worker: usize, objective: &dyn Objective, scratch: &mut Scratch) {
        if self.grad.len() != self.model.len() {
            self.grad = vec![0.0; self.model.len()];
        }
        let loss = objective.gradient(worker, &self.model, &mut self.stream, scratch, &mut self.grad);
        self.gradients += 1;
        self.loss_sum += loss as f64;
    }

    fn descend(&mut self, lr: f32) {
        let model = Arc::make_mut(&mut self.model);
        model.iter_mut().zip(&self.grad).for_each(|(w, g)| *w -= lr * g);
    }
}

/// LOSCAR's merge of the sparse average into a worker's current iterate z (= `model`), given
/// its snapshot y and the average m̄, both on the coordinates `coords` (specs/baselines.md §13):
/// delay-corrected x_j = m̄_j + (z_j − y_j), naive x_j = m̄_j, for j ∈ S; x_j = z_j elsewhere.
pub fn merge(model: &mut [f32], coords: &[u32], snapshot: &[f32], average: &[f32], rule: MergeRule) {
    for (k, &c) in coords.iter().enumerate() {
        let z = &mut model[c as usize];
        *z = match rule {
            MergeRule::DelayCorrected => (average[k] as f64 + (*z as f64 - snapshot[k] as f64)) as f32,
            MergeRule::Naive => average[k],
        };
    }
}

/// The models of all workers; see the module docs.
pub struct WorkerModels<'a> {
    objective: &'a dyn Objective,
    seeds: Seeds,
    lr: f32,
    workers: Vec<WorkerState>,
    queued: bool,
}

impl<'a> WorkerModels<'a> {
    /// M workers, all at the objective's initial model (stream (Init, 0, 0): the same start as
    /// every other algorithm of the seed), with local learning rate η = `lr`.
    pub fn new(objective: &'a dyn Objective, seeds: Seeds, lr: f64) -> Self {
        let init = Arc::new(objective.init(&mut seeds.stream(Purpose::Init, 0, 0)));
        let workers = (0..objective.workers())
            .map(|i| WorkerState {
                model: Arc::clone(&init),
                grad: Vec::new(),
                stream: seeds.stream(Purpose::Data, i as u64, 0),
                ops: Vec::new(),
                snapshots: Vec::new(),
                gradients: 0,
                loss_sum: 0.0,
            })
            .collect();
        WorkerModels { objective, seeds, lr: lr as f32, workers, queued: false }
    }

    /// M.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// d.
    pub fn dim(&self) -> usize {
        self.objective.dim()
    }

    /// Replaces worker i's model (tests; starting points other than the common one).
    pub fn set_model(&mut self, worker: usize, model: Vec<f32>) {
        assert_eq!(model.len(), self.dim(), "model of the wrong size");
        self.flush_unchecked();
        self.workers[worker].model = Arc::new(model);
    }

    fn push(&mut self, worker: usize, op: Op) {
        self.workers[worker].ops.push(op);
        self.queued = true;
    }

    /// Worker i draws its minibatches from stream (Data, i, key) from now on.
    pub fn restream(&mut self, worker: usize, key: u64) {
        self.push(worker, Op::Restream(key));
    }

    /// Worker i runs `n` more local SGD steps (queued).
    pub fn steps(&mut self, worker: usize, n: u32) {
        if let Some(Op::Steps(k)) = self.workers[worker].ops.last_mut() {
            *k += n;
            return;
        }
        self.push(worker, Op::Steps(n));
    }

    /// Worker i computes a stochastic gradient g_i at its current model and keeps it (queued).
    pub fn gradient(&mut self, worker: usize) {
        self.push(worker, Op::Gradient);
    }

    /// Worker i takes the step x_i ← x_i − η g_i with its kept gradient (queued).
    pub fn descend(&mut self, worker: usize) {
        self.push(worker, Op::Descend);
    }

    /// Worker i keeps its current model on `coords` as the snapshot `key` (queued).
    pub fn snapshot_masked(&mut self, worker: usize, key: u64, coords: Arc<Vec<u32>>) {
        self.push(worker, Op::SnapshotMasked { key, coords });
    }

    /// Worker i merges `average` (values on `coords`) with its snapshot `key` (queued).
    pub fn merge(&mut self, worker: usize, key: u64, coords: Arc<Vec<u32>>, average: Arc<Vec<f32>>, rule: MergeRule) {
        self.push(worker, Op::Merge { key, coords, average, rule });
    }

    /// Worker i sets x_i ← w_ii·x_i + Σ_j w_ij·x_j, minus η g_i when `descend` (queued).
    pub fn mix(&mut self, worker: usize, self_weight: f64, neighbours: Vec<(f64, Arc<Vec<f32>>)>, descend: bool) {
        self.push(worker, Op::Mix { self_weight, neighbours, descend });
    }

    /// Runs every queued operation (in parallel over workers); fails if a model diverged.
    pub fn flush(&mut self) -> Result<()> {
        self.flush_unchecked();
        for (i, w) in self.workers.iter().enumerate() {
            if let Some(c) = w.model.iter().position(|v| !v.is_finite()) {
                return Err(Error::Stopped(format!(
                    "diverged: parameter {c} of worker {i} is {} after {} local steps (try a smaller learning rate)",
                    w.model[c], w.gradients
                )));
            }
        }
        Ok(())
    }

    fn flush_unchecked(&mut self) {
        if !self.queued {
            return;
        }
        let (objective, seeds, lr) = (self.objective, self.seeds, self.lr);
        self.workers
            .par_iter_mut()
            .enumerate()
            .filter(|(_, w)| !w.ops.is_empty())
            .for_each_init(|| objective.scratch(), |scratch, (i, w)| w.run(i, objective, seeds, lr, scratch));
        self.queued = false;
    }

    /// Worker i's current model, shared (what it sends to its neighbours). A diverged model is
    /// returned as it is: [`WorkerModels::flush`] and the evaluations report divergence.
    pub fn snapshot(&mut self, worker: usize) -> Arc<Vec<f32>> {
        if !self.workers[worker].ops.is_empty() {
            self.flush_unchecked();
        }
        Arc::clone(&self.workers[worker].model)
    }

    /// Worker i's current model.
    pub fn model(&mut self, worker: usize) -> Result<&[f32]> {
        self.flush()?;
        Ok(&self.workers[worker].model)
    }

    /// m̄ = (1/M) Σ_i y_{i,S}: the mean of every worker's snapshot `key` (f64 sums in worker
    /// order). Every worker must have taken it.
    pub fn masked_average(&mut self, key: u64) -> Result<Arc<Vec<f32>>> {
        self.flush()?;
        let m = self.workers.len() as f64;
        let mut sum: Vec<f64> = Vec::new();
        for (i, w) in self.workers.iter().enumerate() {
            let (_, y) = w.snapshots.iter().find(|(k, _)| *k == key).unwrap_or_else(|| {
                panic!("worker {i} has no snapshot {key}: the algorithm averaged before every upload")
            });
            if sum.is_empty() {
                sum.resize(y.len(), 0.0);
            }
            sum.iter_mut().zip(y).for_each(|(s, &v)| *s += v as f64);
        }
        Ok(Arc::new(sum.into_iter().map(|s| (s / m) as f32).collect()))
    }

    /// x̄ = (1/M) Σ_i x_i (f64 sums in worker order, coordinates in parallel chunks).
    pub fn average(&mut self) -> Result<Vec<f32>> {
        self.flush()?;
        let m = self.workers.len() as f64;
        let mut out = vec![0.0f32; self.dim()];
        let workers = &self.workers;
        out.par_chunks_mut(AVERAGE_CHUNK).enumerate().for_each(|(c, chunk)| {
            let offset = c * AVERAGE_CHUNK;
            for (k, o) in chunk.iter_mut().enumerate() {
                let s: f64 = workers.iter().map(|w| w.model[offset + k] as f64).sum();
                *o = (s / m) as f32;
            }
        });
        Ok(out)
    }

    /// Consensus distance √((1/M) Σ_i ‖x_i − x̄‖²): how far the workers' models are from their
    /// mean (0 when they agree).
    pub fn consensus_distance(&mut self) -> Result<f64> {
        let mean = self.average()?;
        let total: f64 = self
            .workers
            .par_iter()
            .map(|w| w.model.iter().zip(&mean).map(|(&x, &a)| (x as f64 - a as f64).powi(2)).sum::<f64>())
            .collect::<Vec<f64>>()
            .iter()
            .sum();
        Ok((total / self.workers.len() as f64).sqrt())
    }

    /// Metrics of the average model x̄.
    pub fn evaluate(&mut self) -> Result<Evaluation> {
        let mean = self.average()?;
        Ok(self.objective.evaluate(&mean))
    }

    /// Stochastic gradients worker i has computed.
    pub fn gradients(&self, worker: usize) -> u64 {
        self.workers[worker].gradients
    }

    /// Mean minibatch loss over every gradient computed so far (NaN before the first).
    pub fn mean_step_loss(&self) -> f64 {
        let (n, sum) = self.workers.iter().fold((0u64, 0.0), |(n, s), w| (n + w.gradients, s + w.loss_sum));
        if n == 0 { f64::NAN } else { sum / n as f64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loscar_merge_on_the_worked_example() {
        // specs/baselines.md §13/§14: d = 4, n = 2, S = {0, 2}, y_1 = 1, z_1 = 2, y_2 = 3,
        // z_2 = 5, so m̄ = 2 on S.
        let coords = [0u32, 2];
        let average = [2.0f32, 2.0];
        let run = |z: f32, y: f32, rule| {
            let mut model = vec![z; 4];
            merge(&mut model, &coords, &[y, y], &average, rule);
            model
        };
        assert_eq!(run(2.0, 1.0, MergeRule::DelayCorrected), [3.0, 2.0, 3.0, 2.0]);
        assert_eq!(run(5.0, 3.0, MergeRule::DelayCorrected), [4.0, 5.0, 4.0, 5.0]);
        assert_eq!(run(2.0, 1.0, MergeRule::Naive), [2.0, 2.0, 2.0, 2.0]);
        assert_eq!(run(5.0, 3.0, MergeRule::Naive), [2.0, 5.0, 2.0, 5.0]);
    }
}
