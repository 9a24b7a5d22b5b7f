//! 2-D max pooling over square windows without padding (PyTorch's `MaxPool2d(kernel, stride)`).
//! The forward pass remembers, for every output element, which input element of its plane won;
//! the backward pass routes the output gradient to exactly that element (ties go to the first
//! maximum in row-major window order). Pooling acts plane by plane, and the planes of the input
//! and output sit in the same order in either [`Layout`](super::Layout), so the layer is
//! layout-agnostic.
//!
//! # Shapes
//!
//! - input: `n × C × H × W`; output: `n × C × H_out × W_out` in the same layout, with
//!   `H_out = (H − kernel) / stride + 1` (same for W).
//! - no parameters.
//!
//! A ReLU directly before the pooling is fused into it (`relu_first`): the output is then
//! `max(0, max(window))`, which equals pooling the ReLU's output exactly because the maximum
//! commutes with the monotone ReLU, and the gradient passes only where that output is positive,
//! which is what the separate ReLU's backward pass would let through. This saves a pass over the
//! largest activation of a CNN in each direction.

/// A built max-pooling layer.
#[derive(Clone, Debug)]
pub struct MaxPool2d {
    /// Input shape `[C, H, W]` of one sample.
    pub in_shape: [usize; 3],
    /// Output shape `[C, H_out, W_out]` of one sample.
    pub out_shape: [usize; 3],
    /// Window height and width.
    pub kernel: usize,
    /// Step between windows.
    pub stride: usize,
    /// Applies a ReLU to the input first (fused; see the module docs).
    pub relu_first: bool,
}

impl MaxPool2d {
    /// Computes the output of a batch of `n` and records the winners in `argmax`
    /// (`n · C · H_out · W_out` entries).
    pub fn forward(&self, input: &[f32], output: &mut [f32], n: usize, argmax: &mut [u32]) {
        let [c, h, w] = self.in_shape;
        let [_, ho, wo] = self.out_shape;
        let (k, s) = (self.kernel, self.stride);
        let (in_plane, out_plane) = (h * w, ho * wo);
        for p in 0..n * c {
            let src = &input[p * in_plane..(p + 1) * in_plane];
            let dst = &mut output[p * out_plane..(p + 1) * out_plane];
            let arg = &mut argmax[p * out_plane..(p + 1) * out_plane];
            if k == 2 && s == 2 {
                for oh in 0..ho {
                    let r0 = &src[2 * oh * w..][..w];
                    let r1 = &src[(2 * oh + 1) * w..][..w];
                    for ow in 0..wo {
                        let i = 2 * ow;
                        let (mut best, mut at) = (r0[i], i);
                        if r0[i + 1] > best {
                            (best, at) = (r0[i + 1], i + 1);
                        }
                        if r1[i] > best {
                            (best, at) = (r1[i], w + i);
                        }
                        if r1[i + 1] > best {
                            (best, at) = (r1[i + 1], w + i + 1);
                        }
                        dst[oh * wo + ow] = best;
                        arg[oh * wo + ow] = (2 * oh * w + at) as u32;
                    }
                }
                if self.relu_first {
                    for v in dst.iter_mut() {
                        *v = v.max(0.0);
                    }
                }
                continue;
            }
            for oh in 0..ho {
                for ow in 0..wo {
                    let mut at = oh * s * w + ow * s;
                    let mut best = src[at];
                    for kh in 0..k {
                        for kw in 0..k {
                            let i = (oh * s + kh) * w + ow * s + kw;
                            if src[i] > best {
                                best = src[i];
                                at = i;
                            }
                        }
                    }
                    dst[oh * wo + ow] = if self.relu_first { best.max(0.0) } else { best };
                    arg[oh * wo + ow] = at as u32;
                }
            }
        }
    }

    /// Writes the input gradient of a batch of `n` from the output gradient, the output and the
    /// winners.
    pub fn backward(&self, output: &[f32], d_output: &[f32], d_input: &mut [f32], n: usize, argmax: &[u32]) {
        let [c, h, w] = self.in_shape;
        let [_, ho, wo] = self.out_shape;
        let (in_plane, out_plane) = (h * w, ho * wo);
        d_input[..n * c * in_plane].fill(0.0);
        for p in 0..n * c {
            let dst = &mut d_input[p * in_plane..(p + 1) * in_plane];
            let src = &d_output[p * out_plane..(p + 1) * out_plane];
            let winners = &argmax[p * out_plane..(p + 1) * out_plane];
            if self.relu_first {
                let out = &output[p * out_plane..(p + 1) * out_plane];
                for ((g, &at), &y) in src.iter().zip(winners).zip(out) {
                    if y > 0.0 {
                        dst[at as usize] += g;
                    }
                }
            } else {
                for (g, &at) in src.iter().zip(winners) {
                    dst[at as usize] += g;
                }
            }
        }
    }
}
