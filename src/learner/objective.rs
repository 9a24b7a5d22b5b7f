//! What is being trained. An [`Objective`] gives a worker's stochastic gradient at a parameter
//! vector (drawing its minibatch from the worker's own data with the RNG it is handed) and
//! evaluates a model. [`Classification`] is a network from `models/` on a dataset split over
//! the workers; the convex problems of the asynchronous experiments implement the same trait.

use std::any::Any;

use rayon::prelude::*;

use crate::data::{Dataset, sample_batch};
use crate::model::{Network, Workspace};
use crate::rng::Stream;

/// Per-thread scratch memory of an objective (its concrete type is the objective's business).
pub type Scratch = Box<dyn Any + Send>;

/// Metrics of one model.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Evaluation {
    /// Mean loss on the training-loss sample.
    pub train_loss: f64,
    /// Mean loss on the test set.
    pub test_loss: f64,
    /// Fraction of the test set classified correctly (None for regression).
    pub test_accuracy: Option<f64>,
    /// Distance to a known optimum (convex problems only).
    pub distance_to_optimum: Option<f64>,
    /// Distance to the optimum of a reweighted objective Σ_m ω_m f_m / Σ_m ω_m, when one is set
    /// (the speed-weighted objective vanilla asynchronous SGD converges to, specs/baselines.md §5).
    pub distance_to_weighted_optimum: Option<f64>,
    /// Distance between the optimum and the reweighted one (when both are set).
    pub optimum_gap: Option<f64>,
}

/// A training problem; see the module docs.
pub trait Objective: Sync {
    /// Number of parameters d.
    fn dim(&self) -> usize;
    /// Number of workers whose data is defined.
    fn workers(&self) -> usize;
    /// The initial model.
    fn init(&self, rng: &mut Stream) -> Vec<f32>;
    /// Fresh scratch memory for [`Objective::gradient`].
    fn scratch(&self) -> Scratch;
    /// One stochastic gradient of worker `worker`'s local objective at `params`, written to
    /// `grad`; returns the minibatch loss. Deterministic given `rng`'s state.
    fn gradient(&self, worker: usize, params: &[f32], rng: &mut Stream, scratch: &mut Scratch, grad: &mut [f32])
    -> f32;
    /// Metrics of `params` (may use all threads; deterministic).
    fn evaluate(&self, params: &[f32]) -> Evaluation;
    /// Mean loss on `samples` test examples drawn with `rng` (AdaComm's probe).
    fn probe_loss(&self, params: &[f32], samples: usize, rng: &mut Stream) -> f64;
    /// Rough floating-point work of one [`Objective::gradient`] call; the learner uses it to
    /// decide whether a batch of gradients is worth computing in parallel (never their values).
    fn gradient_flops(&self) -> f64 {
        2.0 * self.dim() as f64
    }
    /// The training samples of each worker's own shard, when the workers hold shards (None when
    /// every worker samples from the same data or the objective has no samples to count).
    fn shard_sizes(&self) -> Option<Vec<usize>> {
        None
    }
    /// A hint, when a job starts, that [`Objective::gradient`] of `worker` will later be called
    /// with a stream in `rng`'s state: an objective whose samples are read at random from memory
    /// can start fetching the first minibatch's rows now, so that the fetch overlaps the event
    /// handling in between. Must not change any value; the default does nothing.
    fn prefetch(&self, _worker: usize, _rng: &mut Stream) {}
}

/// Where each worker draws its samples from.
#[derive(Clone, Debug, PartialEq)]
pub enum Shards {
    /// Worker m samples from `shards[m]`.
    PerWorker(Vec<Vec<u32>>),
    /// Every worker samples from the whole training set (i.i.d. data, any number of workers).
    Shared(Vec<u32>),
}

impl Shards {
    /// Worker m's sample indices.
    pub fn of(&self, m: usize) -> &[u32] {
        match self {
            Shards::PerWorker(s) => &s[m],
            Shards::Shared(all) => all,
        }
    }
}

/// A classification network trained on labelled images (borrowed, so that one loaded dataset
/// serves every run of an experiment).
#[derive(Clone, Copy, Debug)]
pub struct Classification<'d> {
    /// The network.
    pub net: &'d Network,
    /// Training images.
    pub train: &'d Dataset,
    /// Test images.
    pub test: &'d Dataset,
    /// Per-worker sample indices.
    pub shards: &'d Shards,
    /// Number of workers.
    pub workers: usize,
    /// Training samples used for the reported training loss.
    pub train_eval: &'d [u32],
    /// Minibatch size.
    pub batch: usize,
}

struct ClassScratch {
    ws: Workspace,
    x: Vec<f32>,
    y: Vec<u32>,
}

/// Samples per evaluation chunk (fixed, so sums do not depend on the thread count).
const EVAL_CHUNK: usize = 500;

impl Classification<'_> {
    /// Mean loss and accuracy on `idx` (or all) of `data`, in fixed chunks reduced in order.
    fn loss_and_accuracy(&self, params: &[f32], data: &Dataset, idx: Option<&[u32]>) -> (f64, f64) {
        let n = idx.map_or(data.len(), <[u32]>::len);
        if n == 0 {
            return (f64::NAN, f64::NAN);
        }
        let chunks: Vec<(f64, usize)> = (0..n.div_ceil(EVAL_CHUNK))
            .into_par_iter()
            .map_init(
                || (self.net.workspace(EVAL_CHUNK), Vec::new(), Vec::new()),
                |(ws, x, y), c| {
                    let range = c * EVAL_CHUNK..((c + 1) * EVAL_CHUNK).min(n);
                    x.clear();
                    y.clear();
                    for k in range {
                        let i = idx.map_or(k, |idx| idx[k] as usize);
                        x.extend_from_slice(data.image(i));
                        y.push(data.labels[i]);
                    }
                    self.net.evaluate(params, x, y, ws)
                },
            )
            .collect();
        let (loss, correct) = chunks.iter().fold((0.0, 0usize), |(l, c), &(cl, cc)| (l + cl, c + cc));
        (loss / n as f64, correct as f64 / n as f64)
    }
}

impl Objective for Classification<'_> {
    fn dim(&self) -> usize {
        self.net.num_params()
    }

    fn workers(&self) -> usize {
        self.workers
    }

    fn init(&self, rng: &mut Stream) -> Vec<f32> {
        self.net.init_params(rng)
    }

    fn scratch(&self) -> Scratch {
        Box::new(ClassScratch { ws: self.net.workspace(self.batch), x: Vec::new(), y: Vec::new() })
    }

    fn gradient(
        &self,
        worker: usize,
        params: &[f32],
        rng: &mut Stream,
        scratch: &mut Scratch,
        grad: &mut [f32],
    ) -> f32 {
        let s = scratch.downcast_mut::<ClassScratch>().expect("scratch of Classification");
        sample_batch(self.train, self.shards.of(worker), self.batch, rng, &mut s.x, &mut s.y);
        self.net.loss_and_grad(params, &s.x, &s.y, grad, &mut s.ws)
    }

    fn evaluate(&self, params: &[f32]) -> Evaluation {
        let (train_loss, _) = self.loss_and_accuracy(params, self.train, Some(self.train_eval));
        let (test_loss, accuracy) = self.loss_and_accuracy(params, self.test, None);
        Evaluation {
            train_loss,
            test_loss,
            test_accuracy: Some(accuracy),
            distance_to_optimum: None,
            distance_to_weighted_optimum: None,
            optimum_gap: None,
        }
    }

    fn gradient_flops(&self) -> f64 {
        // Forward and backward: about three times the forward FLOPs.
        3.0 * self.net.flops_per_sample() as f64 * self.batch as f64
    }

    fn shard_sizes(&self) -> Option<Vec<usize>> {
        match self.shards {
            Shards::PerWorker(shards) => Some(shards.iter().map(Vec::len).collect()),
            Shards::Shared(_) => None,
        }
    }

    fn probe_loss(&self, params: &[f32], samples: usize, rng: &mut Stream) -> f64 {
        use rand::Rng;
        let idx: Vec<u32> = (0..samples).map(|_| rng.random_range(0..self.test.len() as u32)).collect();
        self.loss_and_accuracy(params, self.test, Some(&idx)).0
    }
}
