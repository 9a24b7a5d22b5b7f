//! Rectified linear unit, `y = max(x, 0)`, applied element by element. The backward pass passes
//! the output gradient through where the output is positive and blocks it elsewhere (the
//! derivative at exactly 0 is taken as 0, like PyTorch).
//!
//! # Shapes
//!
//! - input: any `n × C × H × W` (or `n × F`); output: the same shape and layout.
//! - no parameters.

/// A built ReLU layer.
#[derive(Clone, Debug)]
pub struct Relu {
    /// Shape `[C, H, W]` of one sample (input and output).
    pub shape: [usize; 3],
}

impl Relu {
    /// `output = max(input, 0)` over the first `len` elements.
    pub fn forward(&self, input: &[f32], output: &mut [f32], len: usize) {
        for (y, &x) in output[..len].iter_mut().zip(&input[..len]) {
            *y = x.max(0.0);
        }
    }

    /// `d_input = d_output` where the output is positive, 0 elsewhere.
    pub fn backward(&self, output: &[f32], d_output: &[f32], d_input: &mut [f32], len: usize) {
        for ((d, &g), &y) in d_input[..len].iter_mut().zip(&d_output[..len]).zip(&output[..len]) {
            *d = if y > 0.0 { g } else { 0.0 };
        }
    }
}
