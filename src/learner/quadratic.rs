//! Heterogeneous quadratics with a known optimum, for the theory side of the asynchronous and
//! local-SGD literature: worker m's objective is f_m(x) = ½ Σ_j a_j (x_j − c_{m,j})², the global
//! objective f = (1/M) Σ_m f_m has its minimiser at the mean of the centres,
//! x* = (1/M) Σ_m c_m, and a stochastic gradient is ∇f_m(x) + σ·ξ with ξ ~ N(0, I).
//!
//! The data heterogeneity is in the centres. An algorithm that weights workers unequally —
//! vanilla asynchronous SGD weights worker m by its speed 1/τ_m — converges to the weighted
//! mean of the centres instead ([`Quadratic::weighted_optimum`]). With
//! [`Quadratic::with_reference_weights`] evaluations also report the distance to that weighted
//! optimum.

use rand_distr::{Distribution, StandardNormal};

use super::objective::{Evaluation, Objective, Scratch};
use crate::error::{Error, Result};
use crate::rng::{Purpose, Seeds, Stream};

/// The problem; see the module docs.
#[derive(Clone, Debug, PartialEq)]
pub struct Quadratic {
    /// c_m, row-major M × d.
    pub centers: Vec<f64>,
    /// a_j > 0, one per coordinate.
    pub curvatures: Vec<f64>,
    /// σ, the standard deviation of the gradient noise per coordinate.
    pub noise: f64,
    /// The initial model x⁰.
    pub init: Vec<f64>,
    workers: usize,
    optimum: Vec<f64>,
    min_value: f64,
    /// The optimum of the reweighted objective, when reference weights are set.
    reference: Option<Vec<f64>>,
}

impl Quadratic {
    /// Builds the problem from explicit centres (M rows of d values).
    pub fn new(centers: Vec<Vec<f64>>, curvatures: Vec<f64>, noise: f64, init: Vec<f64>) -> Result<Self> {
        let workers = centers.len();
        let d = curvatures.len();
        if workers == 0 || d == 0 {
            return Err(Error::invalid(
                "problem",
                format!("{workers} workers × {d} dimensions"),
                "needs at least one of each",
            ));
        }
        if let Some((m, row)) = centers.iter().enumerate().find(|(_, r)| r.len() != d) {
            return Err(Error::invalid(
                format!("problem.centers[{m}]"),
                row.len(),
                format!("must have dim = {d} values"),
            ));
        }
        if init.len() != d {
            return Err(Error::invalid("problem.init", init.len(), format!("must have dim = {d} values")));
        }
        if let Some(a) = curvatures.iter().find(|a| !(a.is_finite() && **a > 0.0)) {
            return Err(Error::invalid("problem.curvatures", a, "must be finite numbers > 0"));
        }
        for (m, row) in centers.iter().enumerate() {
            if let Some((i, v)) = row.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(Error::invalid(format!("problem.centers[{m}][{i}]"), v, "must be finite"));
            }
        }
        if let Some((i, v)) = init.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::invalid(format!("problem.init[{i}]"), v, "must be finite"));
        }
        if !(noise.is_finite() && noise >= 0.0) {
            return Err(Error::invalid("problem.noise", noise, "must be a finite number >= 0"));
        }
        let weights = vec![1.0; workers];
        let mut q = Quadratic {
            centers: centers.concat(),
            curvatures,
            noise,
            init,
            workers,
            optimum: Vec::new(),
            min_value: 0.0,
            reference: None,
        };
        q.optimum = q.weighted_optimum(&weights);
        q.min_value = q.value(&q.optimum);
        Ok(q)
    }

    /// Centres drawn i.i.d. N(0, spread²) per coordinate from stream (Synthetic, 1, 0) of `seeds`.
    pub fn random_centers(workers: usize, dim: usize, spread: f64, seeds: &Seeds) -> Vec<Vec<f64>> {
        let mut rng = seeds.stream(Purpose::Synthetic, 1, 0);
        (0..workers)
            .map(|_| {
                (0..dim)
                    .map(|_| spread * <StandardNormal as Distribution<f64>>::sample(&StandardNormal, &mut rng))
                    .collect()
            })
            .collect()
    }

    /// Dimension d.
    pub fn dim_f64(&self) -> usize {
        self.curvatures.len()
    }

    fn center(&self, m: usize) -> &[f64] {
        let d = self.dim_f64();
        &self.centers[m * d..(m + 1) * d]
    }

    /// The minimiser of Σ_m w_m f_m / Σ_m w_m: the w-weighted mean of the centres.
    pub fn weighted_optimum(&self, weights: &[f64]) -> Vec<f64> {
        let total: f64 = weights.iter().sum();
        (0..self.dim_f64())
            .map(|j| (0..self.workers).map(|m| weights[m] * self.center(m)[j]).sum::<f64>() / total)
            .collect()
    }

    /// Also reports the distance to the minimiser of Σ_m ω_m f_m / Σ_m ω_m (e.g. ω_m = 1/τ_m,
    /// the objective vanilla ASGD converges to).
    pub fn with_reference_weights(mut self, weights: &[f64]) -> Result<Self> {
        check_weights(weights, self.workers)?;
        self.reference = Some(self.weighted_optimum(weights));
        Ok(self)
    }

    /// The reweighted optimum set by [`Quadratic::with_reference_weights`].
    pub fn reference_optimum(&self) -> Option<&[f64]> {
        self.reference.as_deref()
    }

    /// x* = (1/M) Σ_m c_m.
    pub fn optimum(&self) -> &[f64] {
        &self.optimum
    }

    /// f(x) = (1/M) Σ_m f_m(x).
    pub fn value(&self, x: &[f64]) -> f64 {
        let mut total = 0.0;
        for m in 0..self.workers {
            for (j, (&xj, &c)) in x.iter().zip(self.center(m)).enumerate() {
                total += 0.5 * self.curvatures[j] * (xj - c) * (xj - c);
            }
        }
        total / self.workers as f64
    }

    /// ‖x − x*‖₂.
    pub fn distance(&self, x: &[f64]) -> f64 {
        euclidean(x, &self.optimum)
    }
}

/// ‖a − b‖₂.
pub(crate) fn euclidean(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt()
}

/// Checks per-worker objective weights: one per worker, finite, ≥ 0, not all 0.
pub(crate) fn check_weights(weights: &[f64], workers: usize) -> Result<()> {
    if weights.len() != workers {
        return Err(Error::invalid("reference weights", weights.len(), format!("need one per worker (M = {workers})")));
    }
    if let Some(w) = weights.iter().find(|w| !(w.is_finite() && **w >= 0.0)) {
        return Err(Error::invalid("reference weight", w, "must be a finite number >= 0"));
    }
    if weights.iter().all(|&w| w == 0.0) {
        return Err(Error::invalid("reference weights", "all 0", "at least one must be > 0"));
    }
    Ok(())
}

impl Objective for Quadratic {
    fn dim(&self) -> usize {
        self.dim_f64()
    }

    fn workers(&self) -> usize {
        self.workers
    }

    fn init(&self, _rng: &mut Stream) -> Vec<f32> {
        self.init.iter().map(|&v| v as f32).collect()
    }

    fn scratch(&self) -> Scratch {
        Box::new(())
    }

    fn gradient(
        &self,
        worker: usize,
        params: &[f32],
        rng: &mut Stream,
        _scratch: &mut Scratch,
        grad: &mut [f32],
    ) -> f32 {
        let mut loss = 0.0;
        for (j, ((g, &x), &c)) in grad.iter_mut().zip(params).zip(self.center(worker)).enumerate() {
            let diff = x as f64 - c;
            loss += 0.5 * self.curvatures[j] * diff * diff;
            let noise = if self.noise > 0.0 {
                self.noise * <StandardNormal as Distribution<f64>>::sample(&StandardNormal, rng)
            } else {
                0.0
            };
            *g = (self.curvatures[j] * diff + noise) as f32;
        }
        loss as f32
    }

    fn evaluate(&self, params: &[f32]) -> Evaluation {
        let x: Vec<f64> = params.iter().map(|&v| v as f64).collect();
        let gap = self.value(&x) - self.min_value;
        Evaluation {
            train_loss: gap,
            test_loss: gap,
            test_accuracy: None,
            distance_to_optimum: Some(self.distance(&x)),
            distance_to_weighted_optimum: self.reference.as_ref().map(|r| euclidean(&x, r)),
            optimum_gap: self.reference.as_ref().map(|r| euclidean(&self.optimum, r)),
        }
    }

    fn probe_loss(&self, params: &[f32], _samples: usize, _rng: &mut Stream) -> f64 {
        self.evaluate(params).test_loss
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optimum_is_the_mean_of_the_centres() {
        let q = Quadratic::new(vec![vec![0.0], vec![1.0], vec![2.0]], vec![1.0], 0.0, vec![5.0]).unwrap();
        assert_eq!(q.optimum(), &[1.0]);
        // The speed-weighted optimum of the Rescaled-ASGD oracle (specs/baselines.md §8):
        // weights 1/τ with τ = (1, 2, 4) give 4/7.
        let w = q.weighted_optimum(&[1.0, 0.5, 0.25]);
        assert!((w[0] - 4.0 / 7.0).abs() < 1e-15);
        let e = q.evaluate(&[1.0]);
        assert_eq!((e.train_loss, e.distance_to_optimum), (0.0, Some(0.0)));
        assert!(Quadratic::new(vec![vec![0.0, 1.0]], vec![1.0], 0.0, vec![0.0]).is_err());
        assert!(Quadratic::new(vec![vec![0.0]], vec![-1.0], 0.0, vec![0.0]).is_err());
    }
}
