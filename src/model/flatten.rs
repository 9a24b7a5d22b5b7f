//! Flattening of each sample's `C × H × W` block into one feature vector of length `C·H·W`, in
//! PyTorch's order (channel, then row, then column). Convolutions keep their activations
//! batch-minor (`C × H × W × n`, see [`Layout`]); this layer transposes them into the
//! batch-major `n × F` matrix that [`Linear`](super::linear::Linear) layers use. On a batch-major
//! input (the network's input image) it is a plain copy.
//!
//! # Shapes
//!
//! - input: `n × C × H × W` in either layout; output: `n × (C·H·W)` (batch-major).
//! - no parameters.

use super::Layout;

/// A built flatten layer.
#[derive(Clone, Debug)]
pub struct Flatten {
    /// Input shape `[C, H, W]` of one sample.
    pub in_shape: [usize; 3],
    /// Memory layout of the input.
    pub in_layout: Layout,
}

impl Flatten {
    /// Output features per sample.
    pub fn features(&self) -> usize {
        self.in_shape.iter().product()
    }

    /// Rearranges a batch of `n` into `n × F`.
    pub fn forward(&self, input: &[f32], output: &mut [f32], n: usize) {
        let f = self.features();
        match self.in_layout {
            Layout::BatchMajor => output[..n * f].copy_from_slice(&input[..n * f]),
            Layout::BatchMinor => transpose(&input[..n * f], f, n, &mut output[..n * f]),
        }
    }

    /// Rearranges the gradient back into the input's layout.
    pub fn backward(&self, d_output: &[f32], d_input: &mut [f32], n: usize) {
        let f = self.features();
        match self.in_layout {
            Layout::BatchMajor => d_input[..n * f].copy_from_slice(&d_output[..n * f]),
            Layout::BatchMinor => transpose(&d_output[..n * f], n, f, &mut d_input[..n * f]),
        }
    }
}

/// Writes the transpose of the row-major `rows × cols` matrix `src` into `dst` (`cols × rows`):
/// by register transposes where `gemm_simd` runs (AVX-512 or AVX2), else in 16 × 16 tiles so
/// that both sides are read and written a cache line at a time.
pub(crate) fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::gemm_simd::try_transpose(src, rows, cols, dst) {
        return;
    }
    const TILE: usize = 16;
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn transpose_matches_the_definition_at_every_edge() {
        for (rows, cols) in [(1, 1), (3, 5), (8, 8), (9, 17), (16, 100), (100, 128), (13, 8)] {
            let src: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let mut dst = vec![f32::NAN; rows * cols];
            super::transpose(&src, rows, cols, &mut dst);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(dst[c * rows + r], src[r * cols + c], "{rows} × {cols} at ({r}, {c})");
                }
            }
        }
    }
}
