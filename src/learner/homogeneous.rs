//! The homogeneous synthetic problems of Spiridonoff, Olshevsky & Paschalidis (NeurIPS 2021;
//! specs/baselines.md §9.3): every worker samples the same stochastic function, the minimiser is
//! x* = 0 and F* = 0, so the evaluation reports the optimality gap F(x) − F* (as both losses)
//! and ‖x − x*‖.
//!
//! - [`NoisyQuadratic`] (the paper's §4.1, their `quadratic.ipynb`):
//!   f(x, ζ) = Σ_i (a_i/2)·x_i²·(1 + z_{1,i}) + xᵀz_2 with z_1 ~ N(0, c²I) (multiplicative noise)
//!   and z_2 ~ N(0, σ²I) (additive noise); F(x) = Σ_i (a_i/2)·x_i². The paper uses d = 3,
//!   a_i = i (μ = 1, L = 3), c = 1, σ = 0.5, x⁰ = 1.
//! - [`PiecewiseQuadratic`] (their `speedup.ipynb`): per coordinate f(x) = μx² for x ≥ 0 and
//!   ½μx² for x < 0 (so μ-strongly convex and 2μ-smooth, with no closed form for the mean of
//!   SGD iterates), and a gradient with additive N(0, σ²) noise. The paper uses d = 1, μ = 1,
//!   σ = 8, x⁰ = 2.

use rand_distr::{Distribution, StandardNormal};

use super::objective::{Evaluation, Objective, Scratch};
use crate::error::{Error, Result, non_negative, positive};
use crate::rng::Stream;

fn normal(rng: &mut Stream) -> f64 {
    <StandardNormal as Distribution<f64>>::sample(&StandardNormal, rng)
}

fn check_init(init: &[f64]) -> Result<()> {
    if init.is_empty() {
        return Err(Error::invalid("problem.dim", 0, "must be at least 1"));
    }
    if let Some(v) = init.iter().find(|v| !v.is_finite()) {
        return Err(Error::invalid("problem.init", v, "must be finite"));
    }
    Ok(())
}

/// §4.1 quadratic with multiplicative and additive noise; see the module docs.
#[derive(Clone, Debug, PartialEq)]
pub struct NoisyQuadratic {
    /// a_i > 0.
    pub curvatures: Vec<f64>,
    /// c: standard deviation of the multiplicative noise z_1.
    pub multiplicative_noise: f64,
    /// σ: standard deviation of the additive noise z_2.
    pub noise: f64,
    /// x⁰.
    pub init: Vec<f64>,
    workers: usize,
}

impl NoisyQuadratic {
    /// Checks and builds the problem for `workers` workers.
    pub fn new(
        workers: usize,
        curvatures: Vec<f64>,
        multiplicative_noise: f64,
        noise: f64,
        init: Vec<f64>,
    ) -> Result<Self> {
        check_init(&init)?;
        if curvatures.len() != init.len() {
            return Err(Error::invalid(
                "problem.curvatures",
                format!("{} values", curvatures.len()),
                format!("must have dim = {} values", init.len()),
            ));
        }
        if let Some(a) = curvatures.iter().find(|a| !(a.is_finite() && **a > 0.0)) {
            return Err(Error::invalid("problem.curvatures", a, "must be finite numbers > 0"));
        }
        non_negative("problem.multiplicative_noise", multiplicative_noise)?;
        non_negative("problem.noise", noise)?;
        Ok(NoisyQuadratic { curvatures, multiplicative_noise, noise, init, workers })
    }

    /// F(x) − F* = Σ_i (a_i/2)·x_i².
    pub fn gap(&self, x: &[f64]) -> f64 {
        x.iter().zip(&self.curvatures).map(|(x, a)| 0.5 * a * x * x).sum()
    }
}

impl Objective for NoisyQuadratic {
    fn dim(&self) -> usize {
        self.init.len()
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
    fn gradient(&self, _worker: usize, params: &[f32], rng: &mut Stream, _s: &mut Scratch, grad: &mut [f32]) -> f32 {
        // Draw order per step: z_1 (all coordinates), then z_2, as in the notebook.
        let mut loss = 0.0;
        for ((g, &x), &a) in grad.iter_mut().zip(params).zip(&self.curvatures) {
            let z1 = if self.multiplicative_noise > 0.0 { self.multiplicative_noise * normal(rng) } else { 0.0 };
            let x = x as f64;
            loss += 0.5 * a * x * x * (1.0 + z1);
            *g = (a * x * (1.0 + z1)) as f32;
        }
        for (g, &x) in grad.iter_mut().zip(params) {
            let z2 = if self.noise > 0.0 { self.noise * normal(rng) } else { 0.0 };
            loss += x as f64 * z2;
            *g = (*g as f64 + z2) as f32;
        }
        loss as f32
    }
    fn evaluate(&self, params: &[f32]) -> Evaluation {
        let x: Vec<f64> = params.iter().map(|&v| v as f64).collect();
        let gap = self.gap(&x);
        Evaluation {
            train_loss: gap,
            test_loss: gap,
            test_accuracy: None,
            distance_to_optimum: Some(x.iter().map(|v| v * v).sum::<f64>().sqrt()),
            distance_to_weighted_optimum: None,
            optimum_gap: None,
        }
    }
    fn probe_loss(&self, params: &[f32], _samples: usize, _rng: &mut Stream) -> f64 {
        self.evaluate(params).test_loss
    }
}

/// The speed-up notebook's piecewise quadratic; see the module docs.
#[derive(Clone, Debug, PartialEq)]
pub struct PiecewiseQuadratic {
    /// μ.
    pub mu: f64,
    /// σ of the additive gradient noise.
    pub noise: f64,
    /// x⁰.
    pub init: Vec<f64>,
    workers: usize,
}

impl PiecewiseQuadratic {
    /// Checks and builds the problem for `workers` workers.
    pub fn new(workers: usize, mu: f64, noise: f64, init: Vec<f64>) -> Result<Self> {
        check_init(&init)?;
        positive("problem.mu", mu)?;
        non_negative("problem.noise", noise)?;
        Ok(PiecewiseQuadratic { mu, noise, init, workers })
    }

    /// F(x) − F* = Σ_i (μx_i² if x_i ≥ 0, else ½μx_i²).
    pub fn gap(&self, x: &[f64]) -> f64 {
        x.iter().map(|&v| if v >= 0.0 { self.mu * v * v } else { 0.5 * self.mu * v * v }).sum()
    }
}

impl Objective for PiecewiseQuadratic {
    fn dim(&self) -> usize {
        self.init.len()
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
    fn gradient(&self, _worker: usize, params: &[f32], rng: &mut Stream, _s: &mut Scratch, grad: &mut [f32]) -> f32 {
        let mut loss = 0.0;
        for (g, &x) in grad.iter_mut().zip(params) {
            let x = x as f64;
            let (value, slope) =
                if x >= 0.0 { (self.mu * x * x, 2.0 * self.mu * x) } else { (0.5 * self.mu * x * x, self.mu * x) };
            let z = if self.noise > 0.0 { self.noise * normal(rng) } else { 0.0 };
            loss += value;
            *g = (slope + z) as f32;
        }
        loss as f32
    }
    fn evaluate(&self, params: &[f32]) -> Evaluation {
        let x: Vec<f64> = params.iter().map(|&v| v as f64).collect();
        let gap = self.gap(&x);
        Evaluation {
            train_loss: gap,
            test_loss: gap,
            test_accuracy: None,
            distance_to_optimum: Some(x.iter().map(|v| v * v).sum::<f64>().sqrt()),
            distance_to_weighted_optimum: None,
            optimum_gap: None,
        }
    }
    fn probe_loss(&self, params: &[f32], _samples: usize, _rng: &mut Stream) -> f64 {
        self.evaluate(params).test_loss
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Purpose, Seeds};

    #[test]
    fn noise_free_gradients_and_gaps() {
        let q = NoisyQuadratic::new(2, vec![1.0, 2.0, 3.0], 0.0, 0.0, vec![1.0; 3]).unwrap();
        let mut g = [0.0f32; 3];
        let mut rng = Seeds::new(1).stream(Purpose::Data, 0, 0);
        q.gradient(0, &[1.0, 1.0, -2.0], &mut rng, &mut q.scratch(), &mut g);
        assert_eq!(g, [1.0, 2.0, -6.0]);
        assert_eq!(q.gap(&[1.0, 1.0, 1.0]), 3.0);
        let p = PiecewiseQuadratic::new(1, 1.0, 0.0, vec![2.0]).unwrap();
        let mut g = [0.0f32];
        p.gradient(0, &[2.0], &mut rng, &mut p.scratch(), &mut g);
        assert_eq!(g, [4.0]);
        p.gradient(0, &[-2.0], &mut rng, &mut p.scratch(), &mut g);
        assert_eq!(g, [-2.0]);
        assert_eq!((p.gap(&[2.0]), p.gap(&[-2.0])), (4.0, 2.0));
        assert!(PiecewiseQuadratic::new(1, 0.0, 0.0, vec![2.0]).is_err());
        assert!(NoisyQuadratic::new(1, vec![1.0], -1.0, 0.0, vec![1.0]).is_err());
    }

    #[test]
    fn noise_has_the_stated_variance() {
        // Var of the gradient at x = 1, a = 1: c² + σ² = 1 + 0.25. 20,000 draws: SE of the
        // sample variance ≈ 1.25·√(2/20000) ≈ 0.0125; tolerance 0.06 ≈ 5 SE.
        let q = NoisyQuadratic::new(1, vec![1.0], 1.0, 0.5, vec![1.0]).unwrap();
        let mut rng = Seeds::new(9).stream(Purpose::Data, 0, 0);
        let mut g = [0.0f32];
        let draws: Vec<f64> = (0..20_000)
            .map(|_| {
                q.gradient(0, &[1.0], &mut rng, &mut q.scratch(), &mut g);
                g[0] as f64
            })
            .collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (draws.len() - 1) as f64;
        assert!((mean - 1.0).abs() < 0.05, "{mean}");
        assert!((var - 1.25).abs() < 0.06, "{var}");
    }
}
