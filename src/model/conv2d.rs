//! 2-D convolution (cross-correlation, like PyTorch's `Conv2d`) with a square kernel, stride and
//! zero padding. Forward and backward are im2col + GEMM: a chunk of samples is unfolded into a
//! column matrix whose rows are (input channel, kernel row, kernel column) and whose columns are
//! (sample, output row, output column); one matrix product with the `out × in·k·k` weight matrix
//! then gives every output plane of the chunk. The chunk size is picked so that the column matrix
//! stays in cache, and the backward pass unfolds the input again instead of keeping the column
//! matrix of the whole batch, which keeps the workspace small.
//!
//! # Shapes
//!
//! - input: `n × C_in × H × W` in either [`Layout`]; output: `C_out × n × H_out × W_out`
//!   ([`Layout::ChannelMajor`]), with `H_out = (H + 2·padding − kernel) / stride + 1` (same for W).
//! - parameters: weight `C_out × C_in × kernel × kernel` (PyTorch's order), then bias `C_out`.

use super::Layout;
use super::gemm::{MatMut, MatRef, gemm};

/// Column-matrix budget per chunk, in floats (2 MiB): small enough for a core's L2 cache,
/// large enough that the matrix products stay efficient.
const COLS_BUDGET: usize = 1 << 19;

/// A built convolution layer.
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// Input shape `[C_in, H, W]` of one sample.
    pub in_shape: [usize; 3],
    /// Output shape `[C_out, H_out, W_out]` of one sample.
    pub out_shape: [usize; 3],
    /// Kernel height and width.
    pub kernel: usize,
    /// Step between kernel positions.
    pub stride: usize,
    /// Zeros added on every side.
    pub padding: usize,
    /// Memory layout of the input.
    pub in_layout: Layout,
}

impl Conv2d {
    /// Rows of the column matrix: `C_in · kernel²`.
    pub fn patch_len(&self) -> usize {
        self.in_shape[0] * self.kernel * self.kernel
    }

    /// Number of parameters (weights and biases).
    pub fn num_params(&self) -> usize {
        self.out_shape[0] * self.patch_len() + self.out_shape[0]
    }

    /// Fan-in used by the default initialisation.
    pub fn fan_in(&self) -> usize {
        self.patch_len()
    }

    /// Forward multiply-adds × 2 per sample.
    pub fn flops(&self) -> u64 {
        let [co, ho, wo] = self.out_shape;
        2 * (co * ho * wo * self.patch_len()) as u64
    }

    /// Samples per column-matrix chunk for a batch of `n`.
    pub fn chunk(&self, n: usize) -> usize {
        let per_sample = self.patch_len() * self.out_shape[1] * self.out_shape[2];
        (COLS_BUDGET / per_sample.max(1)).clamp(1, n.max(1))
    }

    /// Floats of column-matrix scratch needed for a batch of `n`.
    pub fn cols_len(&self, n: usize) -> usize {
        self.chunk(n) * self.patch_len() * self.out_shape[1] * self.out_shape[2]
    }

    /// Unfolds samples `first..first + count` of `input` (a batch of `n`) into `cols`.
    fn im2col(&self, input: &[f32], n: usize, first: usize, count: usize, cols: &mut [f32]) {
        let [ci, h, w] = self.in_shape;
        let [_, ho, wo] = self.out_shape;
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let plane = h * w;
        let row_len = count * ho * wo;
        for c in 0..ci {
            for kh in 0..k {
                for kw in 0..k {
                    let r = (c * k + kh) * k + kw;
                    let row = &mut cols[r * row_len..(r + 1) * row_len];
                    // output columns whose input column lies inside the image
                    let ow_lo = p.saturating_sub(kw).div_ceil(s).min(wo);
                    let ow_hi = if w + p > kw {
                        ((w + p - kw - 1) / s + 1).min(wo)
                    } else {
                        0
                    }
                    .max(ow_lo);
                    for b in 0..count {
                        let src =
                            &input[self.in_layout.plane(first + b, c, n, ci) * plane..][..plane];
                        for oh in 0..ho {
                            let dst = &mut row[(b * ho + oh) * wo..][..wo];
                            let ih = (oh * s + kh) as isize - p as isize;
                            if ih < 0 || ih >= h as isize {
                                dst.fill(0.0);
                                continue;
                            }
                            let src_row = &src[ih as usize * w..][..w];
                            dst[..ow_lo].fill(0.0);
                            dst[ow_hi..].fill(0.0);
                            if s == 1 {
                                let iw0 = ow_lo + kw - p;
                                dst[ow_lo..ow_hi]
                                    .copy_from_slice(&src_row[iw0..iw0 + (ow_hi - ow_lo)]);
                            } else {
                                for ow in ow_lo..ow_hi {
                                    dst[ow] = src_row[ow * s + kw - p];
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Adds the column-matrix gradient of samples `first..first + count` back onto `d_input`.
    fn col2im(&self, cols: &[f32], n: usize, first: usize, count: usize, d_input: &mut [f32]) {
        let [ci, h, w] = self.in_shape;
        let [_, ho, wo] = self.out_shape;
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let plane = h * w;
        let row_len = count * ho * wo;
        for c in 0..ci {
            for b in 0..count {
                let start = self.in_layout.plane(first + b, c, n, ci) * plane;
                d_input[start..start + plane].fill(0.0);
            }
        }
        for c in 0..ci {
            for kh in 0..k {
                for kw in 0..k {
                    let r = (c * k + kh) * k + kw;
                    let row = &cols[r * row_len..(r + 1) * row_len];
                    let ow_lo = p.saturating_sub(kw).div_ceil(s).min(wo);
                    let ow_hi = if w + p > kw {
                        ((w + p - kw - 1) / s + 1).min(wo)
                    } else {
                        0
                    }
                    .max(ow_lo);
                    for b in 0..count {
                        let start = self.in_layout.plane(first + b, c, n, ci) * plane;
                        let dst = &mut d_input[start..start + plane];
                        for oh in 0..ho {
                            let ih = (oh * s + kh) as isize - p as isize;
                            if ih < 0 || ih >= h as isize {
                                continue;
                            }
                            let src = &row[(b * ho + oh) * wo..][..wo];
                            let dst_row = &mut dst[ih as usize * w..][..w];
                            if s == 1 {
                                let iw0 = ow_lo + kw - p;
                                for (d, v) in dst_row[iw0..iw0 + (ow_hi - ow_lo)]
                                    .iter_mut()
                                    .zip(&src[ow_lo..ow_hi])
                                {
                                    *d += v;
                                }
                            } else {
                                for ow in ow_lo..ow_hi {
                                    dst_row[ow * s + kw - p] += src[ow];
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Computes the output of a batch of `n`. `cols` is scratch of [`Conv2d::cols_len`] floats.
    pub fn forward(
        &self,
        params: &[f32],
        input: &[f32],
        output: &mut [f32],
        n: usize,
        cols: &mut [f32],
    ) {
        let co = self.out_shape[0];
        let spatial = self.out_shape[1] * self.out_shape[2];
        let patch = self.patch_len();
        let (weight, bias) = params.split_at(co * patch);
        let chunk = self.chunk(n);
        let mut first = 0;
        while first < n {
            let count = chunk.min(n - first);
            self.im2col(input, n, first, count, cols);
            gemm(
                MatRef::rows(weight, co, patch),
                MatRef::rows(cols, patch, count * spatial),
                0.0,
                MatMut::strided(
                    &mut output[first * spatial..],
                    co,
                    count * spatial,
                    n * spatial,
                ),
            );
            first += count;
        }
        for (c, &b) in bias.iter().enumerate() {
            for v in &mut output[c * n * spatial..(c + 1) * n * spatial] {
                *v += b;
            }
        }
    }

    /// Writes the parameter gradient into `grad` and, when given, the input gradient into
    /// `d_input`, from the output gradient `d_output` of a batch of `n`.
    pub fn backward(
        &self,
        params: &[f32],
        input: &[f32],
        d_output: &[f32],
        d_input: Option<&mut [f32]>,
        grad: &mut [f32],
        n: usize,
        cols: &mut [f32],
    ) {
        let co = self.out_shape[0];
        let spatial = self.out_shape[1] * self.out_shape[2];
        let patch = self.patch_len();
        let weight = &params[..co * patch];
        let (d_weight, d_bias) = grad.split_at_mut(co * patch);
        for (c, db) in d_bias.iter_mut().enumerate() {
            *db = d_output[c * n * spatial..(c + 1) * n * spatial]
                .iter()
                .sum();
        }
        let chunk = self.chunk(n);
        let mut d_input = d_input;
        let mut first = 0;
        while first < n {
            let count = chunk.min(n - first);
            self.im2col(input, n, first, count, cols);
            let d_out = MatRef::strided(
                &d_output[first * spatial..],
                co,
                count * spatial,
                n * spatial,
            );
            gemm(
                d_out,
                MatRef::rows(cols, patch, count * spatial).t(),
                if first == 0 { 0.0 } else { 1.0 },
                MatMut::rows(d_weight, co, patch),
            );
            if let Some(d_in) = d_input.as_deref_mut() {
                gemm(
                    MatRef::rows(weight, co, patch).t(),
                    d_out,
                    0.0,
                    MatMut::rows(cols, patch, count * spatial),
                );
                self.col2im(cols, n, first, count, d_in);
            }
            first += count;
        }
        if n == 0 {
            d_weight.fill(0.0);
        }
    }
}
