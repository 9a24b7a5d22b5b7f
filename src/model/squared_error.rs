//! Least-squares loss, `loss_i = ½ ‖z_i − t_i‖²`, averaged over the batch. With class labels the
//! target `t_i` is the one-hot vector of the label (least-squares classification); with real
//! targets (regression) it is the given row. Combined with a single linear layer this is the
//! convex least-squares problem whose optimum [`least_squares_optimum`](super::convex) computes
//! in closed form. Note the convention: PyTorch's `MSELoss` would also divide by the number of
//! outputs and has no ½.
//!
//! # Shapes
//!
//! - outputs: `n × K` (batch-major); labels: `n` values in `0..K`, or targets: `n × K`.
//! - gradient: `n × K`, equal to `(z − t) / n`. No parameters.

/// The least-squares loss head.
#[derive(Clone, Debug)]
pub struct SquaredError {
    /// Number of outputs `K`.
    pub outputs: usize,
}

/// What the outputs are compared with.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    /// Class labels, compared as one-hot vectors.
    Labels(&'a [u32]),
    /// Real-valued targets, `n × K` row-major.
    Values(&'a [f32]),
}

impl SquaredError {
    /// Returns (sum of the per-sample losses, number of samples whose largest output is the
    /// label's; 0 for real targets). When `d_out` is given, writes the gradient of the mean loss.
    pub fn evaluate(&self, outputs: &[f32], targets: Targets<'_>, n: usize, d_out: Option<&mut [f32]>) -> (f64, usize) {
        let k = self.outputs;
        let inv_n = 1.0 / n.max(1) as f32;
        let mut total = 0.0f64;
        let mut correct = 0;
        let mut d_out = d_out;
        for i in 0..n {
            let z = &outputs[i * k..(i + 1) * k];
            let target = |j: usize| -> f32 {
                match targets {
                    Targets::Labels(l) => f32::from(l[i] as usize == j),
                    Targets::Values(t) => t[i * k + j],
                }
            };
            if let Targets::Labels(l) = targets {
                assert!((l[i] as usize) < k, "label {} out of range for {k} outputs", l[i]);
                let mut arg = 0;
                for j in 1..k {
                    if z[j] > z[arg] {
                        arg = j;
                    }
                }
                correct += usize::from(arg == l[i] as usize);
            }
            let mut sq = 0.0f64;
            for j in 0..k {
                let e = z[j] - target(j);
                sq += f64::from(e) * f64::from(e);
                if let Some(d) = d_out.as_deref_mut() {
                    d[i * k + j] = e * inv_n;
                }
            }
            total += 0.5 * sq;
        }
        (total, correct)
    }
}
