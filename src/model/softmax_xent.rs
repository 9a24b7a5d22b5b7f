//! Softmax cross-entropy on logits, averaged over the batch (PyTorch's `CrossEntropyLoss` with
//! its default mean reduction). For sample `i` with logits `z` and label `y`,
//! `loss_i = log Σ_j exp(z_j) − z_y`, computed with the maximum subtracted so that large logits
//! do not overflow. The gradient with respect to the logits is `(softmax(z) − onehot(y)) / n`.
//!
//! # Shapes
//!
//! - logits: `n × K` (batch-major); labels: `n` values in `0..K`.
//! - gradient: `n × K`, like the logits. No parameters.

/// The softmax cross-entropy loss head.
#[derive(Clone, Debug)]
pub struct SoftmaxCrossEntropy {
    /// Number of classes `K`.
    pub classes: usize,
}

impl SoftmaxCrossEntropy {
    /// Returns (sum of the per-sample losses, number of samples whose largest logit is the
    /// label's). When `d_logits` is given, writes the gradient of the *mean* loss into it.
    pub fn evaluate(&self, logits: &[f32], labels: &[u32], d_logits: Option<&mut [f32]>) -> (f64, usize) {
        let k = self.classes;
        let n = labels.len();
        let inv_n = 1.0 / n.max(1) as f32;
        let mut total = 0.0f64;
        let mut correct = 0;
        let mut d_logits = d_logits;
        for (i, &label) in labels.iter().enumerate() {
            let y = label as usize;
            assert!(y < k, "label {y} out of range for {k} classes");
            let z = &logits[i * k..(i + 1) * k];
            let (mut best, mut arg) = (z[0], 0);
            for (j, &v) in z.iter().enumerate().skip(1) {
                if v > best {
                    (best, arg) = (v, j);
                }
            }
            correct += usize::from(arg == y);
            let sum: f32 = z.iter().map(|&v| (v - best).exp()).sum();
            let log_sum = sum.ln();
            total += f64::from(log_sum - (z[y] - best));
            if let Some(d) = d_logits.as_deref_mut() {
                let d = &mut d[i * k..(i + 1) * k];
                let scale = inv_n / sum;
                for (dj, &v) in d.iter_mut().zip(z) {
                    *dj = (v - best).exp() * scale;
                }
                d[y] -= inv_n;
            }
        }
        (total, correct)
    }
}
