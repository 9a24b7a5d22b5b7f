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

/// Budget per chunk for the column matrix and the output block it produces, in floats (2 MiB):
/// small enough for a core's L2 cache, large enough that the matrix products stay efficient.
const COLS_BUDGET: usize = 1 << 19;

/// Marks a padding position in [`Conv2d::gather_index`].
pub const PADDING: u32 = u32::MAX;

/// A built convolution layer. Stride-1 layers unfold whole rows (with padding, from a
/// zero-padded copy of the input); strided layers gather element by element through
/// [`Conv2d::gather_index`].
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
        // the chunk's column matrix and its block of output rows are what one product touches
        let per_sample = (self.patch_len() + self.out_shape[0]) * self.out_shape[1] * self.out_shape[2];
        (COLS_BUDGET / per_sample.max(1)).clamp(1, n.max(1))
    }

    /// Floats of column-matrix scratch needed for a batch of `n`.
    pub fn cols_len(&self, n: usize) -> usize {
        self.chunk(n) * self.patch_len() * self.out_shape[1] * self.out_shape[2]
    }

    /// For every kernel offset `(kh, kw)` and output position `(oh, ow)`, the offset in an
    /// input plane that the kernel element reads, or [`PADDING`] where it reads padding. Built
    /// once per layer; im2col and col2im are then gathers and scatters without per-row calls.
    pub fn gather_index(&self) -> Vec<u32> {
        let [_, h, w] = self.in_shape;
        let [_, ho, wo] = self.out_shape;
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let mut index = Vec::with_capacity(k * k * ho * wo);
        for kh in 0..k {
            for kw in 0..k {
                for oh in 0..ho {
                    for ow in 0..wo {
                        let ih = (oh * s + kh) as isize - p as isize;
                        let iw = (ow * s + kw) as isize - p as isize;
                        let inside = (0..h as isize).contains(&ih) && (0..w as isize).contains(&iw);
                        index.push(if inside {
                            (ih as usize * w + iw as usize) as u32
                        } else {
                            PADDING
                        });
                    }
                }
            }
        }
        index
    }

    /// True when a stride-1 layer with padding unfolds from a zero-padded copy of its input
    /// (the staging buffer), so that every kernel position reads whole rows.
    fn staged(&self) -> bool {
        self.stride == 1 && self.padding > 0
    }

    /// Height and width of a padded plane.
    fn padded_dims(&self) -> (usize, usize) {
        let p = self.padding;
        (self.in_shape[1] + 2 * p, self.in_shape[2] + 2 * p)
    }

    /// Floats of staging scratch for a batch of `n`: the padded input planes plus one padded
    /// gradient plane (0 when the layer needs none).
    pub fn staging_len(&self, n: usize) -> usize {
        if self.staged() {
            let (hp, wp) = self.padded_dims();
            (n * self.in_shape[0] + 1) * hp * wp
        } else {
            0
        }
    }

    /// Copies the `n · C_in` input planes into zero-padded planes, in the same plane order.
    fn stage(&self, input: &[f32], n: usize, staging: &mut [f32]) {
        let [ci, h, w] = self.in_shape;
        let p = self.padding;
        let (hp, wp) = self.padded_dims();
        for (src, dst) in input[..n * ci * h * w]
            .chunks_exact(h * w)
            .zip(staging.chunks_exact_mut(hp * wp))
        {
            zero_short(&mut dst[..p * wp]);
            zero_short(&mut dst[(h + p) * wp..]);
            for (r, row) in src.chunks_exact(w).enumerate() {
                let d = &mut dst[(r + p) * wp..(r + p + 1) * wp];
                zero_short(&mut d[..p]);
                zero_short(&mut d[p + w..]);
                copy_short(&mut d[p..p + w], row);
            }
        }
    }

    /// Unfolds samples `first..first + count` of `input` (a batch of `n`; for staged layers,
    /// its padded copy in `staging`) into `cols`.
    fn im2col(
        &self,
        index: &[u32],
        input: &[f32],
        staging: &[f32],
        n: usize,
        first: usize,
        count: usize,
        cols: &mut [f32],
    ) {
        let [ci, h, w] = self.in_shape;
        let [_, ho, wo] = self.out_shape;
        let spatial = ho * wo;
        let k = self.kernel;
        let row_len = count * spatial;
        let (src_all, src_h, src_w) = if self.staged() {
            let (hp, wp) = self.padded_dims();
            (staging, hp, wp)
        } else {
            (input, h, w)
        };
        let plane = src_h * src_w;
        for c in 0..ci {
            for (o, offsets) in index.chunks_exact(spatial).enumerate() {
                let row = &mut cols[(c * k * k + o) * row_len..][..row_len];
                let (kh, kw) = (o / k, o % k);
                for (b, dst) in row.chunks_exact_mut(spatial).enumerate() {
                    let at = self.in_layout.plane(first + b, c, n, ci) * plane;
                    let src = &src_all[at..at + plane];
                    if self.stride == 1 {
                        copy_window(dst, &src[kh * src_w + kw..], src_w, wo);
                    } else {
                        for (d, &i) in dst.iter_mut().zip(offsets) {
                            *d = src.get(i as usize).copied().unwrap_or(0.0);
                        }
                    }
                }
            }
        }
    }

    /// Writes the input gradient of samples `first..first + count` from the column-matrix
    /// gradient `cols`. Staged layers accumulate each plane in the padded gradient plane at the
    /// end of `staging` and copy its inside out.
    fn col2im(
        &self,
        index: &[u32],
        cols: &[f32],
        n: usize,
        first: usize,
        count: usize,
        d_input: &mut [f32],
        staging: &mut [f32],
    ) {
        let [ci, h, w] = self.in_shape;
        let [_, ho, wo] = self.out_shape;
        let spatial = ho * wo;
        let (k, p) = (self.kernel, self.padding);
        let plane = h * w;
        let row_len = count * spatial;
        let (hp, wp) = self.padded_dims();
        for c in 0..ci {
            for b in 0..count {
                let start = self.in_layout.plane(first + b, c, n, ci) * plane;
                let dst = &mut d_input[start..start + plane];
                let rows = |o: usize| &cols[(c * k * k + o) * row_len + b * spatial..][..spatial];
                if self.staged() {
                    let len = staging.len();
                    let grad = &mut staging[len - hp * wp..];
                    grad.fill(0.0);
                    for o in 0..k * k {
                        add_window(&mut grad[(o / k) * wp + o % k..], rows(o), wp, wo);
                    }
                    copy_window(dst, &grad[p * wp + p..], wp, w);
                } else if self.stride == 1 {
                    dst.fill(0.0);
                    for o in 0..k * k {
                        add_window(&mut dst[(o / k) * w + o % k..], rows(o), w, wo);
                    }
                } else {
                    dst.fill(0.0);
                    for (o, offsets) in index.chunks_exact(spatial).enumerate() {
                        for (&g, &i) in rows(o).iter().zip(offsets) {
                            if i != PADDING {
                                dst[i as usize] += g;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Computes the output of a batch of `n`. `cols` is scratch of [`Conv2d::cols_len`] floats,
    /// `staging` of [`Conv2d::staging_len`].
    pub fn forward(
        &self,
        params: &[f32],
        input: &[f32],
        output: &mut [f32],
        n: usize,
        index: &[u32],
        cols: &mut [f32],
        staging: &mut [f32],
    ) {
        let co = self.out_shape[0];
        let spatial = self.out_shape[1] * self.out_shape[2];
        let patch = self.patch_len();
        let (weight, bias) = params.split_at(co * patch);
        for (c, &b) in bias.iter().enumerate() {
            output[c * n * spatial..(c + 1) * n * spatial].fill(b);
        }
        if self.staged() {
            self.stage(input, n, staging);
        }
        let chunk = self.chunk(n);
        let mut first = 0;
        while first < n {
            let count = chunk.min(n - first);
            self.im2col(index, input, staging, n, first, count, cols);
            gemm(
                MatRef::rows(weight, co, patch),
                MatRef::rows(cols, patch, count * spatial),
                1.0,
                MatMut::strided(
                    &mut output[first * spatial..],
                    co,
                    count * spatial,
                    n * spatial,
                ),
            );
            first += count;
        }
    }

    /// Writes the parameter gradient into `grad` and, when given, the input gradient into
    /// `d_input`, from the output gradient `d_output` of a batch of `n`. Must follow
    /// [`Conv2d::forward`] on the same input, `cols` and `staging`: it reuses the padded input
    /// and, when the batch fits in one chunk, the column matrix.
    pub fn backward(
        &self,
        params: &[f32],
        input: &[f32],
        d_output: &[f32],
        d_input: Option<&mut [f32]>,
        grad: &mut [f32],
        n: usize,
        index: &[u32],
        cols: &mut [f32],
        staging: &mut [f32],
    ) {
        let co = self.out_shape[0];
        let spatial = self.out_shape[1] * self.out_shape[2];
        let patch = self.patch_len();
        let weight = &params[..co * patch];
        let (d_weight, d_bias) = grad.split_at_mut(co * patch);
        for (c, db) in d_bias.iter_mut().enumerate() {
            *db = super::sum_lanes(&d_output[c * n * spatial..(c + 1) * n * spatial]);
        }
        let chunk = self.chunk(n);
        let mut d_input = d_input;
        let mut first = 0;
        while first < n {
            let count = chunk.min(n - first);
            if count < n {
                // with a single chunk the forward pass left this chunk's columns in `cols`
                self.im2col(index, input, staging, n, first, count, cols);
            }
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
                self.col2im(index, cols, n, first, count, d_in, staging);
            }
            first += count;
        }
        if n == 0 {
            d_weight.fill(0.0);
        }
    }
}

/// Zeroes a short range (usually the padding at a row's ends) without a call to `memset`.
#[inline(always)]
fn zero_short(dst: &mut [f32]) {
    for chunk in dst.chunks_mut(4) {
        for v in chunk {
            *v = 0.0;
        }
    }
}

/// Copies a short row (a few to a few dozen floats) with fixed-size moves instead of a call to
/// `memcpy`, whose call overhead dominates at these lengths.
#[inline(always)]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    let n = dst.len();
    debug_assert_eq!(n, src.len());
    if n >= 8 {
        let mut i = 0;
        while i + 8 <= n {
            dst[i..i + 8].copy_from_slice(&src[i..i + 8]);
            i += 8;
        }
        if i < n {
            dst[n - 8..].copy_from_slice(&src[n - 8..n]);
        }
    } else if n >= 4 {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..].copy_from_slice(&src[n - 4..n]);
    } else {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
    }
}

/// Copies rows of `width` floats, `src_stride` apart in `src`, into the packed rows of `dst`.
/// Common widths get a loop with a compile-time row length, which the compiler turns into a few
/// vector moves per row.
fn copy_window(dst: &mut [f32], src: &[f32], src_stride: usize, width: usize) {
    fn fixed<const W: usize>(dst: &mut [f32], src: &[f32], src_stride: usize) {
        for (r, d) in dst.chunks_exact_mut(W).enumerate() {
            let d: &mut [f32; W] = d.try_into().expect("chunk of W");
            let s: &[f32; W] = src[r * src_stride..][..W].try_into().expect("W floats");
            *d = *s;
        }
    }
    match width {
        4 => fixed::<4>(dst, src, src_stride),
        8 => fixed::<8>(dst, src, src_stride),
        10 => fixed::<10>(dst, src, src_stride),
        12 => fixed::<12>(dst, src, src_stride),
        14 => fixed::<14>(dst, src, src_stride),
        16 => fixed::<16>(dst, src, src_stride),
        24 => fixed::<24>(dst, src, src_stride),
        28 => fixed::<28>(dst, src, src_stride),
        32 => fixed::<32>(dst, src, src_stride),
        _ => {
            for (r, d) in dst.chunks_exact_mut(width).enumerate() {
                copy_short(d, &src[r * src_stride..][..width]);
            }
        }
    }
}

/// Adds the packed rows of `src` (`width` floats each) onto rows `dst_stride` apart in `dst`;
/// the inverse of [`copy_window`].
fn add_window(dst: &mut [f32], src: &[f32], dst_stride: usize, width: usize) {
    fn fixed<const W: usize>(dst: &mut [f32], src: &[f32], dst_stride: usize) {
        for (r, s) in src.chunks_exact(W).enumerate() {
            let d: &mut [f32; W] = (&mut dst[r * dst_stride..][..W])
                .try_into()
                .expect("W floats");
            for (d, s) in d.iter_mut().zip(s) {
                *d += s;
            }
        }
    }
    match width {
        4 => fixed::<4>(dst, src, dst_stride),
        8 => fixed::<8>(dst, src, dst_stride),
        10 => fixed::<10>(dst, src, dst_stride),
        12 => fixed::<12>(dst, src, dst_stride),
        14 => fixed::<14>(dst, src, dst_stride),
        16 => fixed::<16>(dst, src, dst_stride),
        24 => fixed::<24>(dst, src, dst_stride),
        28 => fixed::<28>(dst, src, dst_stride),
        32 => fixed::<32>(dst, src, dst_stride),
        _ => {
            for (r, s) in src.chunks_exact(width).enumerate() {
                for (d, s) in dst[r * dst_stride..][..width].iter_mut().zip(s) {
                    *d += s;
                }
            }
        }
    }
}
