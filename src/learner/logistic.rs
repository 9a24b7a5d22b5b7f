//! L2-regularised logistic regression on synthetic data split over the workers, a convex problem
//! with a known optimum and a cheap, allocation-free stochastic gradient (the engine's throughput
//! benchmark trains it with M = 1000 workers and d = 100).
//!
//! Worker m holds n samples (x, y) with x ∈ R^d and y ∈ {0, 1}. The data are heterogeneous: a
//! common planted vector w° ~ N(0, I/d) is perturbed per worker, w°_m = w° + h·ξ_m/√d with
//! ξ_m ~ N(0, I), the features are x ~ N(0, I) and y ~ Bernoulli(σ(x·w°_m)). Worker m's
//! objective is f_m(w) = (1/n) Σ_i [log(1 + e^{x_i·w}) − y_i·x_i·w] + (λ/2)‖w‖², and the
//! global one is f = (1/M) Σ_m f_m. A stochastic gradient averages b samples drawn uniformly
//! with replacement from the worker's own data (b = the minibatch size).
//!
//! The optimum w* (and, with [`LogisticData::with_reference_weights`], the optimum of a
//! reweighted objective Σ_m ω_m f_m / Σ_m ω_m) is found by Newton's method in f64 the first time
//! an evaluation needs it: O(M·n·d²) per iteration, in parallel over fixed blocks of workers
//! reduced in order, so it is deterministic. Evaluations report the optimality gap f(w) − f(w*)
//! as the losses, the fraction of training samples classified correctly as the accuracy (there is
//! no held-out set), and the distances to the optima.
//!
//! Data come from streams (Synthetic, 2, 0) (the planted vector) and (Synthetic, 3, m) (worker
//! m) of the seed: the same problem for every algorithm of a seed.

use std::sync::OnceLock;

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use super::objective::{Evaluation, Objective, Scratch};
use super::quadratic::{check_weights, euclidean};
use crate::error::{Error, Result};
use crate::rng::{Purpose, Seeds, Stream};

/// Workers per parallel block in full-data passes (fixed, so sums do not depend on threads).
const BLOCK: usize = 16;

/// Newton iterations at most; it stops earlier once the step is below 1e-12.
const NEWTON_ITERATIONS: usize = 50;

/// A minimiser and the minimum, or why it could not be found; computed once.
type Solution = OnceLock<Result<(Vec<f64>, f64), String>>;

/// The problem's data and its optima; see the module docs.
#[derive(Debug)]
pub struct LogisticData {
    dim: usize,
    workers: usize,
    samples: usize,
    ridge: f64,
    /// Features, worker-major: worker m's samples are rows m·n .. (m+1)·n.
    features: Vec<f32>,
    /// Labels 0 or 1.
    labels: Vec<f32>,
    optimum: Solution,
    /// Reference weights ω_m and the reweighted optimum.
    reference: Option<(Vec<f64>, Solution)>,
}

/// The objective for one minibatch size (borrowing the data).
#[derive(Clone, Copy, Debug)]
pub struct Logistic<'d> {
    /// The data.
    pub data: &'d LogisticData,
    /// b: samples per stochastic gradient.
    pub batch: usize,
}

impl LogisticData {
    /// M workers with n samples of dimension d each, ridge λ ≥ 0 (λ > 0 makes the optimum
    /// unique), heterogeneity h ≥ 0, from the seed's synthetic streams.
    pub fn generate(
        workers: usize,
        dim: usize,
        samples: usize,
        ridge: f64,
        heterogeneity: f64,
        seeds: &Seeds,
    ) -> Result<Self> {
        if workers == 0 || dim == 0 || samples == 0 {
            return Err(Error::invalid(
                "problem",
                format!("{workers} workers × {samples} samples × {dim} dimensions"),
                "needs at least one of each",
            ));
        }
        if !(ridge.is_finite() && ridge >= 0.0) {
            return Err(Error::invalid("problem.ridge", ridge, "must be a finite number >= 0"));
        }
        if !(heterogeneity.is_finite() && heterogeneity >= 0.0) {
            return Err(Error::invalid("problem.heterogeneity", heterogeneity, "must be a finite number >= 0"));
        }
        let normal = |rng: &mut Stream| -> f64 { StandardNormal.sample(rng) };
        let mut rng = seeds.stream(Purpose::Synthetic, 2, 0);
        let scale = 1.0 / (dim as f64).sqrt();
        let planted: Vec<f64> = (0..dim).map(|_| scale * normal(&mut rng)).collect();
        let mut features = crate::memory::zeroed_f32(workers * samples * dim);
        let mut labels = vec![0.0f32; workers * samples];
        features.par_chunks_mut(samples * dim).zip(labels.par_chunks_mut(samples)).enumerate().for_each(
            |(m, (x, y))| {
                let mut rng = seeds.stream(Purpose::Synthetic, 3, m as u64);
                let local: Vec<f64> = planted.iter().map(|w| w + heterogeneity * scale * normal(&mut rng)).collect();
                for i in 0..samples {
                    let row = &mut x[i * dim..(i + 1) * dim];
                    let mut z = 0.0;
                    for (v, w) in row.iter_mut().zip(&local) {
                        let f = normal(&mut rng);
                        *v = f as f32;
                        z += f * w;
                    }
                    let u: f64 = rng.random();
                    y[i] = if u < sigmoid(z) { 1.0 } else { 0.0 };
                }
            },
        );
        Ok(LogisticData { dim, workers, samples, ridge, features, labels, optimum: OnceLock::new(), reference: None })
    }

    /// Also reports the distance to the minimiser of Σ_m ω_m f_m / Σ_m ω_m.
    pub fn with_reference_weights(mut self, weights: &[f64]) -> Result<Self> {
        check_weights(weights, self.workers)?;
        self.reference = Some((weights.to_vec(), OnceLock::new()));
        Ok(self)
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Worker m's sample i: (features, label).
    #[inline]
    fn sample(&self, m: usize, i: usize) -> (&[f32], f32) {
        let row = m * self.samples + i;
        (&self.features[row * self.dim..(row + 1) * self.dim], self.labels[row])
    }

    /// Σ_m ω_m f_m / Σ_m ω_m at w, its gradient and (optionally) its Hessian, in f64.
    fn full_pass(&self, w: &[f64], weights: Option<&[f64]>, hessian: bool) -> (f64, Vec<f64>, Vec<f64>) {
        let d = self.dim;
        let blocks: Vec<(f64, Vec<f64>, Vec<f64>)> = (0..self.workers.div_ceil(BLOCK))
            .into_par_iter()
            .map(|b| {
                let mut value = 0.0;
                let mut grad = vec![0.0; d];
                let mut hess = if hessian { vec![0.0; d * d] } else { Vec::new() };
                for m in b * BLOCK..((b + 1) * BLOCK).min(self.workers) {
                    let omega = weights.map_or(1.0, |w| w[m]);
                    if omega == 0.0 {
                        continue;
                    }
                    let c = omega / self.samples as f64;
                    for i in 0..self.samples {
                        let (x, y) = self.sample(m, i);
                        let z: f64 = x.iter().zip(w).map(|(&a, b)| a as f64 * b).sum();
                        value += c * (softplus(z) - y as f64 * z);
                        let s = sigmoid(z);
                        let r = c * (s - y as f64);
                        grad.iter_mut().zip(x).for_each(|(g, &a)| *g += r * a as f64);
                        if hessian {
                            let h = c * s * (1.0 - s);
                            for (j, &xj) in x.iter().enumerate() {
                                let hx = h * xj as f64;
                                for (k, &xk) in x.iter().enumerate().take(j + 1) {
                                    hess[j * d + k] += hx * xk as f64;
                                }
                            }
                        }
                    }
                }
                (value, grad, hess)
            })
            .collect();
        let total: f64 = weights.map_or(self.workers as f64, |w| w.iter().sum());
        let mut value = 0.0;
        let mut grad = vec![0.0; d];
        let mut hess = if hessian { vec![0.0; d * d] } else { Vec::new() };
        for (v, g, h) in blocks {
            value += v;
            grad.iter_mut().zip(&g).for_each(|(a, b)| *a += b);
            hess.iter_mut().zip(&h).for_each(|(a, b)| *a += b);
        }
        let norm2: f64 = w.iter().map(|v| v * v).sum();
        value = value / total + 0.5 * self.ridge * norm2;
        grad.iter_mut().zip(w).for_each(|(g, v)| *g = *g / total + self.ridge * v);
        if hessian {
            for j in 0..d {
                for k in 0..=j {
                    hess[j * d + k] /= total;
                }
                hess[j * d + j] += self.ridge;
            }
        }
        (value, grad, hess)
    }

    /// Newton's method from 0; returns (minimiser, minimum).
    fn solve(&self, weights: Option<&[f64]>) -> Result<(Vec<f64>, f64), String> {
        let d = self.dim;
        let mut w = vec![0.0; d];
        for _ in 0..NEWTON_ITERATIONS {
            let (_, grad, hess) = self.full_pass(&w, weights, true);
            let step = cholesky_solve(hess, &grad, d).ok_or_else(|| {
                "the Hessian is singular: use problem.ridge > 0 or more samples per worker".to_string()
            })?;
            let size = step.iter().map(|s| s * s).sum::<f64>().sqrt();
            w.iter_mut().zip(&step).for_each(|(w, s)| *w -= s);
            if size <= 1e-12 * (1.0 + w.iter().map(|v| v * v).sum::<f64>().sqrt()) {
                break;
            }
        }
        let (value, _, _) = self.full_pass(&w, weights, false);
        Ok((w, value))
    }

    /// w* and f(w*) (computed on first use).
    pub fn optimum(&self) -> Result<&(Vec<f64>, f64)> {
        self.optimum.get_or_init(|| self.solve(None)).as_ref().map_err(|e| Error::Config(format!("problem: {e}")))
    }

    /// The reweighted optimum, when reference weights are set (computed on first use).
    pub fn reference_optimum(&self) -> Option<Result<&(Vec<f64>, f64)>> {
        self.reference.as_ref().map(|(weights, cell)| {
            cell.get_or_init(|| self.solve(Some(weights))).as_ref().map_err(|e| Error::Config(format!("problem: {e}")))
        })
    }

    /// f(w) for the uniform objective.
    pub fn value(&self, w: &[f64]) -> f64 {
        self.full_pass(w, None, false).0
    }

    /// Fraction of all training samples with (x·w > 0) = y.
    pub fn accuracy(&self, w: &[f32]) -> f64 {
        let correct: usize = (0..self.workers.div_ceil(BLOCK))
            .into_par_iter()
            .map(|b| {
                let mut correct = 0;
                for m in b * BLOCK..((b + 1) * BLOCK).min(self.workers) {
                    for i in 0..self.samples {
                        let (x, y) = self.sample(m, i);
                        correct += usize::from((dot(x, w) > 0.0) == (y == 1.0));
                    }
                }
                correct
            })
            .sum();
        correct as f64 / (self.workers * self.samples) as f64
    }
}

impl Objective for Logistic<'_> {
    fn dim(&self) -> usize {
        self.data.dim
    }

    fn workers(&self) -> usize {
        self.data.workers
    }

    fn init(&self, _rng: &mut Stream) -> Vec<f32> {
        vec![0.0; self.data.dim]
    }

    fn scratch(&self) -> Scratch {
        Box::new(())
    }

    fn gradient_flops(&self) -> f64 {
        4.0 * (self.data.dim * self.batch) as f64
    }

    #[inline]
    fn gradient(
        &self,
        worker: usize,
        params: &[f32],
        rng: &mut Stream,
        _scratch: &mut Scratch,
        grad: &mut [f32],
    ) -> f32 {
        let data = self.data;
        let lambda = data.ridge as f32;
        let inv_b = 1.0 / self.batch as f32;
        let mut norm2 = 0.0f32;
        for (g, &w) in grad.iter_mut().zip(params) {
            *g = lambda * w;
            norm2 += w * w;
        }
        // Samples are handled in groups: all indices first, then all dot products, then the
        // updates, so that the (random, usually uncached) rows of a group are fetched from
        // memory in parallel. The values and their order are those of one sample at a time.
        let mut loss = 0.0f32;
        let mut rows = [0usize; GROUP];
        let mut coefs = [0.0f32; GROUP];
        let mut left = self.batch;
        while left > 0 {
            let n = left.min(GROUP);
            left -= n;
            for row in &mut rows[..n] {
                *row = rng.random_range(0..data.samples);
                touch_lines(data.sample(worker, *row).0);
            }
            for (&i, coef) in rows[..n].iter().zip(&mut coefs[..n]) {
                let (x, y) = data.sample(worker, i);
                let z = dot(x, params);
                let (softplus, sigmoid) = softplus_and_sigmoid(z as f64);
                loss += softplus as f32 - y * z;
                *coef = (sigmoid as f32 - y) * inv_b;
            }
            for (&i, &r) in rows[..n].iter().zip(&coefs[..n]) {
                let (x, _) = data.sample(worker, i);
                grad.iter_mut().zip(x).for_each(|(g, &a)| *g += r * a);
            }
        }
        loss * inv_b + 0.5 * lambda * norm2
    }

    fn evaluate(&self, params: &[f32]) -> Evaluation {
        let w: Vec<f64> = params.iter().map(|&v| v as f64).collect();
        let value = self.data.value(&w);
        let optimum = self.data.optimum().ok();
        let reference = self.data.reference_optimum().and_then(|r| r.ok()).map(|(o, _)| o);
        let gap = optimum.map_or(value, |(_, min)| value - min);
        Evaluation {
            train_loss: gap,
            test_loss: gap,
            test_accuracy: Some(self.data.accuracy(params)),
            distance_to_optimum: optimum.map(|(o, _)| euclidean(&w, o)),
            distance_to_weighted_optimum: reference.map(|o| euclidean(&w, o)),
            optimum_gap: optimum.zip(reference).map(|((o, _), r)| euclidean(o, r)),
        }
    }

    fn probe_loss(&self, params: &[f32], _samples: usize, _rng: &mut Stream) -> f64 {
        self.evaluate(params).test_loss
    }

    /// Starts fetching the first group of the minibatch's rows (drawn as
    /// [`Objective::gradient`] will draw them) when the features do not fit the caches.
    fn prefetch(&self, worker: usize, rng: &mut Stream) {
        let data = self.data;
        if std::mem::size_of_val(data.features.as_slice()) < PREFETCH_FROM_BYTES {
            return;
        }
        for _ in 0..self.batch.min(GROUP) {
            let row = rng.random_range(0..data.samples);
            let (x, _) = data.sample(worker, row);
            x.iter().step_by(16).chain(x.last()).for_each(prefetch_line);
            prefetch_line(&data.labels[worker * data.samples + row]);
        }
    }
}

/// Samples of a minibatch are handled in groups of this many (see [`Objective::gradient`]).
const GROUP: usize = 16;

/// Feature arrays smaller than this (about a core's L2 cache) are not prefetched.
const PREFETCH_FROM_BYTES: usize = 1 << 20;

/// Asks the core to bring the cache line holding `v` into L1 without waiting for it.
#[inline]
#[allow(unsafe_code)]
fn prefetch_line(v: &f32) {
    // SAFETY: SSE is part of x86-64, and a prefetch reads nothing and cannot fault.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((v as *const f32).cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

/// Reads one value of every cache line of `x`, so that the lines of a group's rows are fetched
/// from memory at the same time rather than one row after another (the values are unchanged).
#[inline]
fn touch_lines(x: &[f32]) {
    let touched = x.iter().step_by(16).chain(x.last()).fold(0.0f32, |a, &v| a + v);
    std::hint::black_box(touched);
}

/// x·w in f32 with eight interleaved partial sums (vectorised; the order is fixed, so the value
/// is the same on every run).
#[inline]
fn dot(x: &[f32], w: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (xc, wc) = (x.chunks_exact(8), w.chunks_exact(8));
    let (xr, wr) = (xc.remainder(), wc.remainder());
    for (a, b) in xc.zip(wc) {
        for k in 0..8 {
            acc[k] += a[k] * b[k];
        }
    }
    let mut tail = 0.0;
    for (a, b) in xr.iter().zip(wr) {
        tail += a * b;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// log(1 + e^z) without overflow.
fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

/// (log(1 + e^z), σ(z)) with one exponential.
#[inline]
fn softplus_and_sigmoid(z: f64) -> (f64, f64) {
    let e = (-z.abs()).exp();
    let sigmoid = if z >= 0.0 { 1.0 / (1.0 + e) } else { e / (1.0 + e) };
    (z.max(0.0) + e.ln_1p(), sigmoid)
}

/// Solves H s = g for a symmetric positive definite H given by its lower triangle (row-major
/// d × d); None when H is not positive definite.
fn cholesky_solve(mut a: Vec<f64>, g: &[f64], d: usize) -> Option<Vec<f64>> {
    for j in 0..d {
        let mut diag = a[j * d + j];
        for k in 0..j {
            diag -= a[j * d + k] * a[j * d + k];
        }
        if diag <= 1e-14 * (1.0 + a[j * d + j].abs()) {
            return None;
        }
        let l = diag.sqrt();
        a[j * d + j] = l;
        for i in j + 1..d {
            let mut v = a[i * d + j];
            for k in 0..j {
                v -= a[i * d + k] * a[j * d + k];
            }
            a[i * d + j] = v / l;
        }
    }
    let mut y = vec![0.0; d];
    for i in 0..d {
        let mut v = g[i];
        for j in 0..i {
            v -= a[i * d + j] * y[j];
        }
        y[i] = v / a[i * d + i];
    }
    for i in (0..d).rev() {
        let mut v = y[i];
        for j in i + 1..d {
            v -= a[j * d + i] * y[j];
        }
        y[i] = v / a[i * d + i];
    }
    Some(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newton_finds_a_stationary_point_and_the_gradient_matches_it() {
        let data = LogisticData::generate(5, 4, 30, 0.01, 1.0, &Seeds::new(3)).unwrap();
        let (w, min) = data.optimum().unwrap().clone();
        let (_, grad, _) = data.full_pass(&w, None, false);
        assert!(grad.iter().all(|g| g.abs() < 1e-10), "{grad:?}");
        assert!(data.value(&w.iter().map(|v| v + 0.01).collect::<Vec<_>>()) > min);
        // The stochastic gradient with every sample of a worker (in expectation) matches f_m's.
        let obj = Logistic { data: &data, batch: 20_000 };
        let params: Vec<f32> = vec![0.1, -0.2, 0.3, 0.0];
        let mut g = vec![0.0f32; 4];
        let mut rng = Seeds::new(1).stream(Purpose::Data, 0, 0);
        obj.gradient(2, &params, &mut rng, &mut obj.scratch(), &mut g);
        let mut one = vec![0.0; 5];
        one[2] = 1.0;
        let wf: Vec<f64> = params.iter().map(|&v| v as f64).collect();
        let (_, exact, _) = data.full_pass(&wf, Some(&one), false);
        for (a, b) in g.iter().zip(&exact) {
            assert!((*a as f64 - b).abs() < 0.02, "{g:?} vs {exact:?}");
        }
    }
}
