//! Flattening of each sample's `C × H × W` block into one feature vector of length `C·H·W`, in
//! PyTorch's order (channel, then row, then column). Convolutions keep their activations
//! channel-major (`C × n × H × W`, see [`Layout`]); this layer transposes them into the
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
            Layout::ChannelMajor => {
                let [c, h, w] = self.in_shape;
                let plane = h * w;
                for ch in 0..c {
                    for b in 0..n {
                        let src = &input[(ch * n + b) * plane..][..plane];
                        output[b * f + ch * plane..][..plane].copy_from_slice(src);
                    }
                }
            }
        }
    }

    /// Rearranges the gradient back into the input's layout.
    pub fn backward(&self, d_output: &[f32], d_input: &mut [f32], n: usize) {
        let f = self.features();
        match self.in_layout {
            Layout::BatchMajor => d_input[..n * f].copy_from_slice(&d_output[..n * f]),
            Layout::ChannelMajor => {
                let [c, h, w] = self.in_shape;
                let plane = h * w;
                for ch in 0..c {
                    for b in 0..n {
                        let src = &d_output[b * f + ch * plane..][..plane];
                        d_input[(ch * n + b) * plane..][..plane].copy_from_slice(src);
                    }
                }
            }
        }
    }
}
