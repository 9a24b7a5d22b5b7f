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

use multiversion::multiversion;

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
    /// Whether the windows are 2 × 2 and tile the input exactly (both pools of cifar10_cnn and
    /// digits_cnn): then each window is read, and its gradient written, in one pass.
    fn tiled_2x2(&self) -> bool {
        let ([_, h, w], [_, ho, wo]) = (self.in_shape, self.out_shape);
        self.kernel == 2 && self.stride == 2 && h == 2 * ho && w == 2 * wo
    }

    /// Computes the output of a batch of `n` and records each winner's place in its window in
    /// `winner` (`n · C · H_out · W_out` entries).
    pub fn forward(&self, input: &[f32], output: &mut [f32], n: usize, winner: &mut [u32]) {
        // (an empty batch takes the general loop, which does nothing)
        if self.tiled_2x2() && n > 0 {
            forward_2x2(self, input, output, n, winner);
        } else {
            self.forward_any(input, output, n, winner);
        }
    }

    /// [`MaxPool2d::forward`] for any windows.
    fn forward_any(&self, input: &[f32], output: &mut [f32], n: usize, winner: &mut [u32]) {
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
        if self.tiled_2x2() && n > 0 {
            backward_2x2(self, output, d_output, d_input, n, winner);
        } else {
            self.backward_any(output, d_output, d_input, n, winner);
        }
    }

    /// [`MaxPool2d::backward`] for any windows.
    fn backward_any(&self, output: &[f32], d_output: &[f32], d_input: &mut [f32], n: usize, winner: &[u32]) {
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

/// [`MaxPool2d::forward`] for `MaxPool2d::tiled_2x2` windows: the same comparisons in the
/// same order as [`MaxPool2d::forward_any`], in one pass over the four runs of a window.
#[multiversion(targets("x86_64+avx2"))]
fn forward_2x2(pool: &MaxPool2d, input: &[f32], output: &mut [f32], n: usize, winner: &mut [u32]) {
    let [c, h, w] = pool.in_shape;
    let [_, ho, wo] = pool.out_shape;
    assert!(winner.len() >= c * ho * wo * n, "winner buffer shorter than the output");
    let outputs = output[..c * ho * wo * n].chunks_exact_mut(n).zip(winner.chunks_exact_mut(n));
    for (j, (dst, arg)) in outputs.enumerate() {
        let (ch, oh, ow) = (j / (ho * wo), j / wo % ho, j % wo);
        let top = ((ch * h + 2 * oh) * w + 2 * ow) * n;
        let (upper, lower) = (&input[top..][..2 * n], &input[top + w * n..][..2 * n]);
        let (v0, v1) = upper.split_at(n);
        let (v2, v3) = lower.split_at(n);
        for (((((d, a), &x0), &x1), &x2), &x3) in dst.iter_mut().zip(arg.iter_mut()).zip(v0).zip(v1).zip(v2).zip(v3) {
            let (mut best, mut at) = (x0, 0u32);
            for (e, v) in [(1u32, x1), (2, x2), (3, x3)] {
                let mask = 0u32.wrapping_sub(u32::from(v > best));
                at ^= (at ^ e) & mask;
                best = best.max(v);
            }
            // the same `max` as forward_any's, whose treatment of signed zeros this keeps
            *d = if pool.relu_first { best.max(0.0) } else { best };
            *a = at;
        }
    }
}

/// [`MaxPool2d::backward`] for `MaxPool2d::tiled_2x2` windows, writing all four runs of a
/// window in one pass.
#[multiversion(targets("x86_64+avx2"))]
fn backward_2x2(pool: &MaxPool2d, output: &[f32], d_output: &[f32], d_input: &mut [f32], n: usize, winner: &[u32]) {
    let [c, h, w] = pool.in_shape;
    let [_, ho, wo] = pool.out_shape;
    for (j, ((g, y), arg)) in
        d_output[..c * ho * wo * n].chunks_exact(n).zip(output.chunks_exact(n)).zip(winner.chunks_exact(n)).enumerate()
    {
        let (ch, oh, ow) = (j / (ho * wo), j / wo % ho, j % wo);
        let top = ((ch * h + 2 * oh) * w + 2 * ow) * n;
        let (upper, rest) = d_input[top..].split_at_mut(w * n);
        let (d0, d1) = upper[..2 * n].split_at_mut(n);
        let (d2, d3) = rest[..2 * n].split_at_mut(n);
        let runs = d0.iter_mut().zip(d1.iter_mut()).zip(d2.iter_mut()).zip(d3.iter_mut());
        for (((((o0, o1), o2), o3), &g), (&y, &a)) in runs.zip(g).zip(y.iter().zip(arg)) {
            // bit masks instead of branches so that the loop vectorises
            let open = 0u32.wrapping_sub(u32::from(!pool.relu_first || y > 0.0)) & g.to_bits();
            let routed = |e: u32| f32::from_bits(open & 0u32.wrapping_sub(u32::from(a == e)));
            (*o0, *o1, *o2, *o3) = (routed(0), routed(1), routed(2), routed(3));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_2x2_pass_gives_the_bits_of_the_general_one() {
        // ties, NaN, signed zeros and negatives, for a batch that is not a multiple of 16
        let (c, h, w, n) = (3, 6, 4, 21);
        let len = c * h * w * n;
        let input: Vec<f32> = (0..len)
            .map(|i| match i % 11 {
                0 => f32::NAN,
                1 => -0.0,
                2 | 3 => 1.0,
                _ => ((i * 7919) % 23) as f32 - 11.0,
            })
            .collect();
        let d_out: Vec<f32> = (0..len / 4).map(|i| i as f32 * 0.25 - 3.0).collect();
        for relu_first in [false, true] {
            let pool =
                MaxPool2d { in_shape: [c, h, w], out_shape: [c, h / 2, w / 2], kernel: 2, stride: 2, relu_first };
            assert!(pool.tiled_2x2());
            let run = |fast: bool| {
                let (mut out, mut arg, mut d_in) = (vec![0.0f32; len / 4], vec![0u32; len / 4], vec![7.0f32; len]);
                if fast {
                    forward_2x2(&pool, &input, &mut out, n, &mut arg);
                    backward_2x2(&pool, &out, &d_out, &mut d_in, n, &arg);
                } else {
                    pool.forward_any(&input, &mut out, n, &mut arg);
                    pool.backward_any(&out, &d_out, &mut d_in, n, &arg);
                }
                (
                    out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    arg,
                    d_in.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                )
            };
            let (fast, general) = (run(true), run(false));
            let first_difference = |x: &[u32], y: &[u32]| x.iter().zip(y).position(|(a, b)| a != b);
            for (what, x, y) in
                [("output", &fast.0, &general.0), ("winner", &fast.1, &general.1), ("d_input", &fast.2, &general.2)]
            {
                assert_eq!(first_difference(x, y), None, "{what} differs, relu_first = {relu_first}");
            }
        }
    }

    #[test]
    fn an_empty_batch_is_a_no_op() {
        let pool = MaxPool2d { in_shape: [2, 4, 4], out_shape: [2, 2, 2], kernel: 2, stride: 2, relu_first: true };
        pool.forward(&[], &mut [], 0, &mut []);
        pool.backward(&[], &[], &mut [], 0, &[]);
    }
}
