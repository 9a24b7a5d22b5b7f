//! Convex models with a known optimum, for theory-side experiments (asynchronous SGD against a
//! closed form). A convex model is an ordinary [`Network`] with a single linear layer and a convex
//! loss: least squares ([`LossKind::SquaredError`]), binary logistic regression
//! ([`LossKind::BinaryLogistic`]) or multinomial logistic regression
//! ([`LossKind::SoftmaxCrossEntropy`]), so training code needs no special path.
//! [`least_squares_optimum`] solves the least-squares normal equations in `f64` and returns the
//! minimiser in the network's parameter layout (weights `K × d`, then biases `K`);
//! [`LeastSquaresProblem`] generates a seeded regression problem with a planted solution.

use rand_distr::{Distribution, StandardNormal};

use super::{LossKind, Network};
use crate::rng::{Purpose, Seeds};
use crate::{Error, Result};

/// A single linear layer `features → outputs` on flat input, with the given loss.
pub fn linear_network(features: usize, outputs: usize, loss: LossKind) -> Result<Network> {
    let loss = match loss {
        LossKind::SoftmaxCrossEntropy => "softmax_cross_entropy",
        LossKind::SquaredError => "squared_error",
        LossKind::BinaryLogistic => "binary_logistic",
    };
    let text = format!(
        "name = \"linear\"\ninput = [{features}, 1, 1]\nloss = \"{loss}\"\n\
         [[layers]]\ntype = \"linear\"\nout_features = {outputs}\n"
    );
    Network::from_toml(&text, "linear model")
}

/// One-hot rows for `labels`: `n × classes`.
pub fn one_hot(labels: &[u32], classes: usize) -> Vec<f32> {
    let mut out = vec![0.0; labels.len() * classes];
    for (i, &l) in labels.iter().enumerate() {
        if (l as usize) < classes {
            out[i * classes + l as usize] = 1.0;
        }
    }
    out
}

/// The least-squares objective `(1/2n) Σ_i ‖W x_i + b − t_i‖² + (ridge/2)‖W‖²` in `f64`, with
/// `params` in the linear layer's layout.
pub fn least_squares_loss(
    x: &[f32],
    targets: &[f32],
    features: usize,
    outputs: usize,
    ridge: f64,
    params: &[f32],
) -> f64 {
    let n = x.len() / features.max(1);
    let (w, b) = params.split_at(outputs * features);
    let mut total = 0.0;
    for i in 0..n {
        let xi = &x[i * features..(i + 1) * features];
        for k in 0..outputs {
            let pred: f64 = w[k * features..(k + 1) * features]
                .iter()
                .zip(xi)
                .map(|(&a, &v)| f64::from(a) * f64::from(v))
                .sum::<f64>()
                + f64::from(b[k]);
            let e = pred - f64::from(targets[i * outputs + k]);
            total += 0.5 * e * e;
        }
    }
    let reg: f64 = w.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    total / n.max(1) as f64 + 0.5 * ridge * reg
}

/// The minimiser of [`least_squares_loss`]: solves the normal equations
/// `(ZᵀZ/n + ridge·I') θ = Zᵀ T / n` with `Z = [X 1]` (the bias is not regularised) by a
/// Cholesky factorisation in `f64`. Returns the parameters in the linear layer's layout. Fails
/// when the system is singular (fewer independent samples than features and `ridge = 0`).
pub fn least_squares_optimum(
    x: &[f32],
    targets: &[f32],
    features: usize,
    outputs: usize,
    ridge: f64,
) -> Result<Vec<f32>> {
    if features == 0 || outputs == 0 {
        return Err(Error::invalid("features/outputs", 0, "must be ≥ 1"));
    }
    crate::error::non_negative("ridge", ridge)?;
    let n = x.len() / features;
    if n == 0 || x.len() != n * features || targets.len() != n * outputs {
        return Err(Error::invalid(
            "least-squares data",
            format!("{} inputs, {} targets", x.len(), targets.len()),
            format!("need n × {features} inputs and n × {outputs} targets with n ≥ 1"),
        ));
    }
    let d = features + 1;
    let mut a = vec![0.0f64; d * d];
    let mut rhs = vec![0.0f64; d * outputs];
    let mut z = vec![0.0f64; d];
    for i in 0..n {
        for (zj, &v) in z.iter_mut().zip(&x[i * features..(i + 1) * features]) {
            *zj = f64::from(v);
        }
        z[features] = 1.0;
        for r in 0..d {
            for c in 0..=r {
                a[r * d + c] += z[r] * z[c];
            }
            for k in 0..outputs {
                rhs[r * outputs + k] += z[r] * f64::from(targets[i * outputs + k]);
            }
        }
    }
    let inv_n = 1.0 / n as f64;
    for r in 0..d {
        for c in 0..=r {
            a[r * d + c] *= inv_n;
        }
        for k in 0..outputs {
            rhs[r * outputs + k] *= inv_n;
        }
        if r < features {
            a[r * d + r] += ridge;
        }
    }
    // Cholesky a = L Lᵀ in the lower triangle.
    for j in 0..d {
        let mut diag = a[j * d + j];
        for k in 0..j {
            diag -= a[j * d + k] * a[j * d + k];
        }
        if diag <= 1e-12 * (1.0 + a[j * d + j].abs()) {
            return Err(Error::invalid(
                "least-squares data",
                format!("{n} samples × {features} features"),
                "the normal equations are singular; use ridge > 0 or more samples",
            ));
        }
        let l_jj = diag.sqrt();
        a[j * d + j] = l_jj;
        for i in j + 1..d {
            let mut v = a[i * d + j];
            for k in 0..j {
                v -= a[i * d + k] * a[j * d + k];
            }
            a[i * d + j] = v / l_jj;
        }
    }
    let mut params = vec![0.0f32; outputs * features + outputs];
    let mut y = vec![0.0f64; d];
    for k in 0..outputs {
        for i in 0..d {
            let mut v = rhs[i * outputs + k];
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
        for j in 0..features {
            params[k * features + j] = y[j] as f32;
        }
        params[outputs * features + k] = y[features] as f32;
    }
    Ok(params)
}

/// A seeded linear-regression problem `t = W* x + b* + noise` with standard normal inputs.
#[derive(Clone, Debug)]
pub struct LeastSquaresProblem {
    /// Inputs, `n × features`.
    pub x: Vec<f32>,
    /// Targets, `n × outputs`.
    pub targets: Vec<f32>,
    /// Input dimension `d`.
    pub features: usize,
    /// Output dimension `K`.
    pub outputs: usize,
    /// The planted parameters `(W*, b*)` in the linear layer's layout.
    pub planted: Vec<f32>,
}

impl LeastSquaresProblem {
    /// `n` samples; planted weights and biases standard normal; noise standard deviation `noise`.
    pub fn generate(n: usize, features: usize, outputs: usize, noise: f64, seed: u64) -> Self {
        let mut rng = Seeds::new(seed).stream(Purpose::Synthetic, 100, 0);
        let normal = |rng: &mut crate::rng::Stream| -> f32 {
            let v: f64 = StandardNormal.sample(rng);
            v as f32
        };
        let planted: Vec<f32> = (0..outputs * features + outputs).map(|_| normal(&mut rng)).collect();
        let x: Vec<f32> = (0..n * features).map(|_| normal(&mut rng)).collect();
        let mut targets = vec![0.0f32; n * outputs];
        for i in 0..n {
            for k in 0..outputs {
                let mut v = planted[outputs * features + k];
                for j in 0..features {
                    v += planted[k * features + j] * x[i * features + j];
                }
                targets[i * outputs + k] = v + noise as f32 * normal(&mut rng);
            }
        }
        LeastSquaresProblem { x, targets, features, outputs, planted }
    }

    /// The exact minimiser of the empirical least-squares loss (ridge 0).
    pub fn optimum(&self) -> Result<Vec<f32>> {
        least_squares_optimum(&self.x, &self.targets, self.features, self.outputs, 0.0)
    }

    /// The empirical loss of `params`, in `f64`.
    pub fn loss(&self, params: &[f32]) -> f64 {
        least_squares_loss(&self.x, &self.targets, self.features, self.outputs, 0.0, params)
    }

    /// The matching [`Network`] (one linear layer, squared-error loss).
    pub fn network(&self) -> Result<Network> {
        linear_network(self.features, self.outputs, LossKind::SquaredError)
    }
}
