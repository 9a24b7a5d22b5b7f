//! 2-D max pooling over square windows without padding (PyTorch's `MaxPool2d(kernel, stride)`)
//! on batch-minor activations (`C × H × W × n`): every window is a handful of runs of `n`
//! floats, so the maximum and the winner are taken for the whole batch at once with branch-free
//! selects. The forward pass records which element of its window won (ties go to the first
//! maximum in row-major window order); the backward pass routes the output gradient to it.
//!
//! A ReLU directly before the pooling is fused into it (`relu_first`): the output is then
//! `max(0, max(window))`, which equals pooling the ReLU's output exactly because the maximum
//! commutes with the monotone ReLU, and the gradient passes only where that output is positive,
//! which is what the separate ReLU's backward pass would let through. This saves a pass over the
//! largest activation of a CNN in each direction.
//!
//! # Shapes
//!
//! - input: `C × H × W × n`; output: `C × H_out × W_out × n` (both batch-minor), with
//!   `H_out = (H − kernel) / stride + 1` (same for W).
//! - no parameters.

/// Largest window side accepted by specs.
pub const MAX_KERNEL: usize = 64;

/// A built max-pooling layer.
#[derive(Clone, Debug)]
pub struct MaxPool2d {
    /// Input shape `[C, H, W]` of one sample.
    pub in_shape: [usize; 3],
    /// Output shape `[C, H_out, W_out]` of one sample.
    pub out_shape: [usize; 3],
    /// Window height and width (at most [`MAX_KERNEL`]).
    pub kernel: usize,
    /// Step between windows.
    pub stride: usize,
    /// Applies a ReLU to the input first (fused; see the module docs).
    pub relu_first: bool,
}

impl MaxPool2d {
    /// Computes the output of a batch of `n` and records each winner's place in its window in
    /// `winner` (`n · C · H_out · W_out` entries).
    pub fn forward(&self, input: &[f32], output: &mut [f32], n: usize, winner: &mut [u32]) {
        let [c, h, w] = self.in_shape;
        let [_, ho, wo] = self.out_shape;
        let (k, s) = (self.kernel, self.stride);
        for ch in 0..c {
            let src = &input[ch * h * w * n..(ch + 1) * h * w * n];
            for oh in 0..ho {
                for ow in 0..wo {
                    let j = ((ch * ho + oh) * wo + ow) * n;
                    let (dst, arg) = (&mut output[j..j + n], &mut winner[j..j + n]);
                    let at = |e: usize| ((oh * s + e / k) * w + ow * s + e % k) * n;
                    dst.copy_from_slice(&src[at(0)..at(0) + n]);
                    arg.fill(0);
                    for e in 1..k * k {
                        let cand = &src[at(e)..at(e) + n];
                        // 32-bit lanes and a bit-mask select (not `if`, which the compiler turns
                        // into a conditional store) so that the loop vectorises
                        for ((d, a), &v) in dst.iter_mut().zip(arg.iter_mut()).zip(cand) {
                            let mask = 0u32.wrapping_sub(u32::from(v > *d));
                            *a ^= (*a ^ e as u32) & mask;
                            *d = d.max(v);
                        }
                    }
                    if self.relu_first {
                        for d in dst.iter_mut() {
                            *d = d.max(0.0);
                        }
                    }
                }
            }
        }
    }

    /// Writes the input gradient of a batch of `n` from the output, its gradient and the
    /// winners.
    pub fn backward(&self, output: &[f32], d_output: &[f32], d_input: &mut [f32], n: usize, winner: &[u32]) {
        let [c, h, w] = self.in_shape;
        let [_, ho, wo] = self.out_shape;
        let (k, s) = (self.kernel, self.stride);
        // windows that tile the input exactly touch every input element once: write, no zeroing
        let tiled = s == k && h == ho * k && w == wo * k;
        if !tiled {
            d_input[..n * c * h * w].fill(0.0);
        }
        for ch in 0..c {
            let dst = &mut d_input[ch * h * w * n..(ch + 1) * h * w * n];
            for oh in 0..ho {
                for ow in 0..wo {
                    let j = ((ch * ho + oh) * wo + ow) * n;
                    let (g, y, arg) = (&d_output[j..j + n], &output[j..j + n], &winner[j..j + n]);
                    for e in 0..k * k {
                        let at = ((oh * s + e / k) * w + ow * s + e % k) * n;
                        for (((d, &g), &y), &a) in dst[at..at + n].iter_mut().zip(g).zip(y).zip(arg) {
                            // a bit mask instead of a branch so that the loop vectorises
                            let pass = u32::from(a == e as u32) & u32::from(!self.relu_first || y > 0.0);
                            let routed = f32::from_bits(g.to_bits() & 0u32.wrapping_sub(pass));
                            *d = if tiled { routed } else { *d + routed };
                        }
                    }
                }
            }
        }
    }
}
