//! Fully connected layer, `y = x·Wᵀ + b` (PyTorch's `Linear`): each output feature is a weighted
//! sum of all input features plus a bias. Forward and backward are one matrix product each over
//! the whole batch.
//!
//! # Shapes
//!
//! - input: `n × F_in` (batch-major); output: `n × F_out` (batch-major).
//! - parameters: weight `F_out × F_in` (PyTorch's order), then bias `F_out`.

use super::gemm::{MatMut, MatRef, product};
use super::gemm_bf16::{Left, Precision};

/// A built linear layer.
#[derive(Clone, Debug)]
pub struct Linear {
    /// Input features per sample.
    pub in_features: usize,
    /// Output features per sample.
    pub out_features: usize,
}

impl Linear {
    /// Number of parameters (weights and biases).
    pub fn num_params(&self) -> usize {
        self.out_features * self.in_features + self.out_features
    }

    /// Forward multiply-adds × 2 per sample.
    pub fn flops(&self) -> u64 {
        2 * (self.in_features * self.out_features) as u64
    }

    /// Computes `output = input·Wᵀ + b` for a batch of `n`.
    pub fn forward(&self, params: &[f32], input: &[f32], output: &mut [f32], n: usize, precision: Precision) {
        let (fi, fo) = (self.in_features, self.out_features);
        let (weight, bias) = params.split_at(fo * fi);
        for row in output[..n * fo].chunks_exact_mut(fo) {
            row.copy_from_slice(bias);
        }
        product(
            precision,
            MatRef::rows(input, n, fi),
            Left::Fresh,
            MatRef::rows(weight, fo, fi).t(),
            1.0,
            MatMut::rows(output, n, fo),
        );
    }

    /// Writes the parameter gradient into `grad` and, when given, the input gradient into
    /// `d_input`, for a batch of `n`.
    pub fn backward(
        &self,
        params: &[f32],
        input: &[f32],
        d_output: &[f32],
        d_input: Option<&mut [f32]>,
        grad: &mut [f32],
        n: usize,
        precision: Precision,
    ) {
        let (fi, fo) = (self.in_features, self.out_features);
        let (d_weight, d_bias) = grad.split_at_mut(fo * fi);
        product(
            precision,
            MatRef::rows(d_output, n, fo).t(),
            Left::Fresh,
            MatRef::rows(input, n, fi),
            0.0,
            MatMut::rows(d_weight, fo, fi),
        );
        d_bias.fill(0.0);
        for row in d_output[..n * fo].chunks_exact(fo) {
            for (db, g) in d_bias.iter_mut().zip(row) {
                *db += g;
            }
        }
        if let Some(d_in) = d_input {
            product(
                precision,
                MatRef::rows(d_output, n, fo),
                Left::Fresh,
                MatRef::rows(&params[..fo * fi], fo, fi),
                0.0,
                MatMut::rows(d_in, n, fi),
            );
        }
    }
}
