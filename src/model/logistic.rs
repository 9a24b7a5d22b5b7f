//! Binary logistic loss on one output `z` per sample with label `y ∈ {0, 1}`:
//! `loss_i = log(1 + exp(z)) − y·z` (PyTorch's `BCEWithLogitsLoss`), averaged over the batch and
//! computed in the overflow-free form `max(z, 0) − y·z + log(1 + exp(−|z|))`. With one linear
//! layer in front this is binary logistic regression, a convex problem. The gradient with respect
//! to `z` is `(σ(z) − y) / n`.
//!
//! # Shapes
//!
//! - outputs: `n × 1`; labels: `n` values in `{0, 1}`.
//! - gradient: `n × 1`. No parameters.

/// The binary logistic loss head.
#[derive(Clone, Debug)]
pub struct BinaryLogistic;

impl BinaryLogistic {
    /// Returns (sum of the per-sample losses, number of samples with `z > 0` exactly when
    /// `y = 1`). When `d_out` is given, writes the gradient of the mean loss into it.
    pub fn evaluate(&self, outputs: &[f32], labels: &[u32], d_out: Option<&mut [f32]>) -> (f64, usize) {
        let n = labels.len();
        let inv_n = 1.0 / n.max(1) as f64;
        let mut total = 0.0f64;
        let mut correct = 0;
        let mut d_out = d_out;
        for (i, &label) in labels.iter().enumerate() {
            assert!(label <= 1, "label {label} is not 0 or 1 for the binary logistic loss");
            let z = f64::from(outputs[i]);
            let y = f64::from(label);
            total += z.max(0.0) - y * z + (-z.abs()).exp().ln_1p();
            correct += usize::from((z > 0.0) == (label == 1));
            if let Some(d) = d_out.as_deref_mut() {
                let sigma = 1.0 / (1.0 + (-z).exp());
                d[i] = ((sigma - y) * inv_n) as f32;
            }
        }
        (total, correct)
    }
}
