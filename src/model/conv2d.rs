//! 2-D convolution (cross-correlation, like PyTorch's `Conv2d`) with a square kernel, stride and
//! zero padding. Forward and backward are im2col + GEMM on batch-minor activations
//! (`C × H × W × n`, [`Layout::BatchMinor`]): a chunk of output positions is unfolded into a
//! column matrix whose rows are (input channel, kernel row, kernel column) and whose columns are
//! (output position, sample); one matrix product with the `C_out × C_in·k·k` weight matrix then
//! gives those positions of every output channel for the whole batch. Because the batch index
//! varies fastest, unfolding copies runs of `n` floats (zeros for padding) whatever the stride,
//! padding or image size. The chunk is sized so that the column matrix and its output block stay
//! in cache; the backward pass unfolds the input again rather than keeping the column matrix of
//! the whole batch (except when one chunk covers everything), which keeps the workspace small.
//! Where a chunk is a single output position (a wide layer at a large batch, like the second
//! convolution of cifar10_cnn at batch 100), the layer has no padding, and f32 products run on
//! the kernel of `gemm_simd` (AVX-512 or AVX2) with the weight gradient computed transposed,
//! nothing is unfolded: each row of that position's column matrix is one run of `n` input
//! floats, and the products read the rows where they lie (`gemm::Listed`), with the same sums.
//! A padded layer's products leave out the rows that read padding (`Conv2d::skips_padding`).
//! A layer whose spec says `method = "dft"` or `"winograd"` computes in a transform domain
//! instead ([`super::conv2d_dft`], [`super::conv2d_winograd`]; equal up to rounding) wherever
//! the products are f32.
//!
//! # Shapes
//!
//! - input: `C_in × H × W × n`; output: `C_out × H_out × W_out × n` (both batch-minor), with
//!   `H_out = (H + 2·padding − kernel) / stride + 1` (same for W).
//! - parameters: weight `C_out × C_in × kernel × kernel` (PyTorch's order), then bias `C_out`.

#[cfg(doc)]
use super::Layout;
use multiversion::multiversion;

use super::conv2d_dft::Dft;
use super::conv2d_winograd::Winograd;
use super::gemm::{
    DEPTH_BLOCK, Listed, MatMut, MatRef, avx2_kernel, gemm_listed_left, gemm_listed_right, gemm_listed_right_at,
    gemm_rows, listed_products, product,
};
use super::gemm_bf16::{Left, Precision};

/// Largest column matrix plus output block, in floats (2 MiB), that is built for the whole batch
/// at once; the backward pass then reuses it instead of unfolding the input again.
const WHOLE_BATCH_BUDGET: usize = 1 << 19;

/// Budget per chunk, in floats (512 KiB), when the whole batch exceeds [`WHOLE_BATCH_BUDGET`]:
/// the chunk's column matrix and output block then fit a 512 KiB L2 cache. Measured on
/// cifar10_cnn at batch 100: 2 MiB chunks cost 20 % more per step on a core with 512 KiB of L2.
/// A constant, not the detected cache size: the chunking fixes the order in which the weight
/// gradient is summed, so it must not depend on the machine.
const CHUNK_BUDGET: usize = 1 << 17;

/// [`CHUNK_BUDGET`] for bf16 products, in floats (1 MiB): their packing and tile loads favour
/// wider chunks (measured on cifar10_cnn at batch 100 on an AMX core: 7 % less per step than
/// with 512 KiB, 2 and 4 MiB slower again).
const CHUNK_BUDGET_BF16: usize = 1 << 18;

/// Marks a padding position in [`Conv2d::gather_index`].
pub const PADDING: u32 = u32::MAX;

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
    /// The transform-domain method when the spec asks for `method = "dft"` or `"winograd"`
    /// (stride 1): f32 products then go through it instead of im2col.
    pub transform: Option<Box<Transform>>,
}

/// How a `conv2d` layer's spec asks it to compute: `"im2col"` (exact, the default), `"dft"` or
/// `"winograd"` (a transform domain, equal up to rounding; stride 1 only, and for Winograd a
/// padded input of at most 6 × 6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConvMethod {
    /// im2col + matrix products, exact and the same bits on every kernel.
    #[default]
    Im2col,
    /// [`super::conv2d_dft`].
    Dft,
    /// [`super::conv2d_winograd`].
    Winograd,
}

/// Samples a transform-domain method transforms at a time: a training batch of up to this many
/// keeps its input's transform from the forward to the backward pass; larger batches
/// (evaluation) go chunk by chunk and the backward pass transforms the input again, so the
/// transformed planes stay O(chunk) whatever the batch. A constant, not a machine's cache
/// size: the weight gradient is summed chunk by chunk.
pub(crate) const SAMPLE_CHUNK: usize = 128;

/// The chunks of at most [`SAMPLE_CHUNK`] samples of a batch of `n`.
pub(crate) fn sample_chunks(n: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..n).step_by(SAMPLE_CHUNK).map(move |s| s..(s + SAMPLE_CHUNK).min(n))
}

/// The bias gradient of a transform-domain method: `d_bias[o]` ← the sum of output channel o's
/// plane of `plane_len` floats in `d_output`, in 16 interleaved partial sums (which the
/// compiler keeps in vector registers; the order, and so the bits, are the same on every
/// machine) added pairwise at the end.
pub(crate) fn bias_gradient(d_output: &[f32], plane_len: usize, d_bias: &mut [f32]) {
    for (db, plane) in d_bias.iter_mut().zip(d_output.chunks_exact(plane_len)) {
        let mut lanes = [0.0f32; 16];
        let mut runs = plane.chunks_exact(16);
        for run in &mut runs {
            lanes.iter_mut().zip(run).for_each(|(l, v)| *l += v);
        }
        lanes.iter_mut().zip(runs.remainder()).for_each(|(l, v)| *l += v);
        let mut width = 16;
        while width > 1 {
            width /= 2;
            for i in 0..width {
                lanes[i] += lanes[i + width];
            }
        }
        *db = lanes[0];
    }
}

/// A convolution computed in a transform domain (equal to im2col up to rounding).
#[derive(Clone, Debug)]
pub enum Transform {
    /// [`super::conv2d_dft`].
    Dft(Dft),
    /// [`super::conv2d_winograd`].
    Winograd(Winograd),
}

impl Transform {
    /// The spec's name of the method.
    pub fn name(&self) -> &'static str {
        match self {
            Transform::Dft(_) => "dft",
            Transform::Winograd(_) => "winograd",
        }
    }

    /// Floats of scratch for a batch of up to `n`.
    pub fn scratch_len(&self, n: usize) -> usize {
        match self {
            Transform::Dft(t) => t.scratch_len(n),
            Transform::Winograd(t) => t.scratch_len(n),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn forward(&self, weight: &[f32], bias: &[f32], input: &[f32], output: &mut [f32], n: usize, scratch: &mut [f32]) {
        match self {
            Transform::Dft(t) => t.forward(weight, bias, input, output, n, scratch),
            Transform::Winograd(t) => t.forward(weight, bias, input, output, n, scratch),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn backward(
        &self,
        input: &[f32],
        d_output: &[f32],
        d_input: Option<&mut [f32]>,
        d_weight: &mut [f32],
        d_bias: &mut [f32],
        n: usize,
        scratch: &mut [f32],
    ) {
        match self {
            Transform::Dft(t) => t.backward(input, d_output, d_input, d_weight, d_bias, n, scratch),
            Transform::Winograd(t) => t.backward(input, d_output, d_input, d_weight, d_bias, n, scratch),
        }
    }
}

impl Conv2d {
    /// Rows of the column matrix: `C_in · kernel²`.
    pub fn patch_len(&self) -> usize {
        self.in_shape[0] * self.kernel * self.kernel
    }

    /// Output positions per channel: `H_out · W_out`.
    fn positions(&self) -> usize {
        self.out_shape[1] * self.out_shape[2]
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
        2 * (self.out_shape[0] * self.positions() * self.patch_len()) as u64
    }

    /// Output positions per column-matrix chunk for a batch of `n` with products in
    /// `precision`.
    pub fn chunk(&self, n: usize, precision: Precision) -> usize {
        // the chunk's column matrix and its block of output rows are what one product touches
        let per_position = (self.patch_len() + self.out_shape[0]) * n.max(1);
        if per_position * self.positions() <= WHOLE_BATCH_BUDGET {
            self.positions()
        } else {
            let budget = match precision {
                Precision::F32 => CHUNK_BUDGET,
                Precision::Bf16 => CHUNK_BUDGET_BF16,
            };
            (budget / per_position).clamp(1, self.positions())
        }
    }

    /// Floats of scratch needed for any batch of up to `n` samples (a workspace sized for n
    /// serves smaller batches too): the column matrix with its row of ones, then the weights
    /// with the biases appended as a last column. `chunk(m)·m` is not monotone in m (the chunk
    /// is rounded down), so the largest over m ≤ n is taken.
    pub fn cols_len(&self, n: usize, precision: Precision) -> usize {
        if let Some(transform) = self.transformed(precision) {
            return transform.scratch_len(n);
        }
        let aug = self.patch_len() + 1;
        let widest = (1..=n.max(1)).map(|m| self.chunk(m, precision) * m).max().unwrap_or(0);
        widest * aug + self.out_shape[0] * aug
    }

    /// Splits the scratch into the column matrix and the augmented weight matrix.
    fn split_scratch<'s>(&self, scratch: &'s mut [f32]) -> (&'s mut [f32], &'s mut [f32]) {
        let aug_len = self.out_shape[0] * (self.patch_len() + 1);
        let at = scratch.len() - aug_len;
        scratch.split_at_mut(at)
    }

    /// Whether the products read the column matrix where its rows lie in the input instead of
    /// unfolding it: with one output position per chunk (so the bits of the weight gradient,
    /// summed chunk by chunk, do not change), no padding, f32 on the kernel of `gemm_simd`, and the
    /// weight gradient computed transposed (its column matrix is then the left factor). The
    /// second convolution of cifar10_cnn at batch 100 qualifies; unfolding its 1,600 rows of 100
    /// floats for every position, twice per step, was a tenth of a step.
    fn listed(&self, n: usize, precision: Precision) -> bool {
        #[cfg(test)]
        if tests::UNFOLD.get() {
            return false;
        }
        n > 0
            && precision == Precision::F32
            && self.padding == 0
            && self.chunk(n, precision) == 1
            && self.weight_gradient_transposed(precision)
            && listed_products()
    }

    /// Whether the products leave out the rows of the column matrix that read padding (zeros),
    /// run by run of positions ([`Conv2d::for_each_run`]): for f32 on the kernel of `gemm_simd`,
    /// with padding, and with the whole patch in one block of the products' sums
    /// ([`DEPTH_BLOCK`]). The input gradient computes only the rows of its column-matrix
    /// gradient that [`col2im`] reads, each with the sums of the whole product. The forward
    /// product ([`Conv2d::forward_skipping_padding`]) reads the other rows where they lie and
    /// steps through the weights' matching columns, so every output is the same chain of fused
    /// multiply-adds less its terms w·0; those change no sum that is not −0, and a chain that
    /// starts from +0 reaches −0 only through a product below the smallest subnormal. So the
    /// bits are those of the whole products unless a weight is infinite or NaN (tested on
    /// random data). The digits CNN's convolutions read padding in 16 % and 30 % of their rows.
    fn skips_padding(&self, precision: Precision) -> bool {
        #[cfg(test)]
        if tests::UNFOLD.get() {
            return false;
        }
        precision == Precision::F32 && self.padding > 0 && self.patch_len() < DEPTH_BLOCK && listed_products()
    }

    /// Whether the backward pass computes the weight gradient transposed, d_augᵀ = cols·d_outᵀ:
    /// for bf16 (whose packing then reads the large column matrix along its rows); for f32 on
    /// the AVX2 kernel, whose tiles of 6 rows × 16 columns fill better with d_out's channels as
    /// the columns (digits_cnn's first weight gradient 2.2× faster so, cifar10_cnn's 1.1×,
    /// copy included; measured alone on machine B, 2026-12-07); and for f32 elsewhere where the
    /// column matrix has at least twice as many rows as d_out (then the smaller factor is the
    /// one copied; measured on both convolutions of cifar10_cnn and digits_cnn on AVX-512).
    /// Both orders give the same bits.
    fn weight_gradient_transposed(&self, precision: Precision) -> bool {
        #[cfg(test)]
        if let Some(transposed) = tests::TRANSPOSED.get() {
            return transposed;
        }
        precision == Precision::Bf16 || avx2_kernel() || self.patch_len() + 1 >= 2 * self.out_shape[0]
    }

    /// The transform-domain method when it computes this layer: asked for by the spec, for f32
    /// products (bf16 products run im2col).
    fn transformed(&self, precision: Precision) -> Option<&Transform> {
        self.transform.as_deref().filter(|_| precision == Precision::F32)
    }

    /// Lists the rows of the column matrix of output `position` for a batch of `n`: for each
    /// (input channel, kernel offset) the run of `n` floats that it reads, then `ones`.
    fn list_rows<'a>(
        &self,
        index: &[u32],
        input: &'a [f32],
        n: usize,
        position: usize,
        ones: &'a [f32],
        list: &mut Vec<&'a [f32]>,
    ) {
        let [ci, h, w] = self.in_shape;
        let kk = self.kernel * self.kernel;
        let positions = self.positions();
        list.clear();
        for c in 0..ci {
            for o in 0..kk {
                let i = index[o * positions + position];
                debug_assert_ne!(i, PADDING, "listed rows need a convolution without padding");
                list.push(&input[(c * h * w + i as usize) * n..][..n]);
            }
        }
        list.push(ones);
    }

    /// For every kernel offset `(kh, kw)` and output position `(oh, ow)`, the offset
    /// `ih · W + iw` of the input pixel that the kernel element reads, or [`PADDING`] where it
    /// reads padding. Built once per layer.
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
                        index.push(if inside { (ih as usize * w + iw as usize) as u32 } else { PADDING });
                    }
                }
            }
        }
        index
    }

    /// Unfolds output positions `first..first + count` of a batch of `n` into `cols`
    /// (`patch_len` rows of `count · n` columns, then a row of ones).
    fn im2col(&self, index: &[u32], input: &[f32], n: usize, first: usize, count: usize, cols: &mut [f32]) {
        let [ci, h, w] = self.in_shape;
        let kk = self.kernel * self.kernel;
        let positions = self.positions();
        let row_len = count * n;
        for c in 0..ci {
            let plane = &input[c * h * w * n..(c + 1) * h * w * n];
            for o in 0..kk {
                let offsets = &index[o * positions + first..][..count];
                let row = &mut cols[(c * kk + o) * row_len..][..row_len];
                for (dst, &i) in row.chunks_exact_mut(n).zip(offsets) {
                    if i == PADDING {
                        dst.fill(0.0);
                    } else {
                        dst.copy_from_slice(&plane[i as usize * n..][..n]);
                    }
                }
            }
        }
        // the row of ones that multiplies the bias column of the augmented weights
        cols[ci * kk * row_len..][..row_len].fill(1.0);
    }

    /// Adds the input gradient of output positions `first..first + count` onto `d_input`: the
    /// column-matrix gradient Wᵀ·d_out into `d_cols`, folded back by [`col2im`]. The weights'
    /// packing is made at the first position and kept for the rest.
    fn add_input_gradient(
        &self,
        weight: &[f32],
        d_out: MatRef<'_>,
        index: &[u32],
        n: usize,
        first: usize,
        count: usize,
        d_cols: &mut [f32],
        d_input: &mut [f32],
        precision: Precision,
    ) {
        let (co, patch) = (self.out_shape[0], self.patch_len());
        let weights = MatRef::rows(weight, co, patch).t();
        let row_len = count * n;
        if self.skips_padding(precision) {
            // only the rows that col2im reads: each row's sums are those of the whole product
            let mut packed = false;
            self.for_each_run(index, first, count, |start, end, rows| {
                if rows.is_empty() {
                    return; // a kernel wholly in the padding
                }
                let at = (start - first) * n;
                let width = (end - start) * n;
                let left = if packed { Left::Kept } else { Left::Keep };
                packed = true;
                let d_out = MatRef::strided(&d_out.data[at..], co, width, d_out.row_stride);
                gemm_rows(weights, left, rows, d_out, 0.0, MatMut::strided(&mut d_cols[at..], patch, width, row_len));
            });
        } else {
            let left = if first == 0 { Left::Keep } else { Left::Kept };
            product(precision, weights, left, d_out, 0.0, MatMut::rows(d_cols, patch, row_len));
        }
        col2im(self, index, d_cols, n, first, count, d_input);
    }

    /// Computes the output of a batch of `n`. `cols` is scratch of [`Conv2d::cols_len`] floats.
    pub fn forward(
        &self,
        params: &[f32],
        input: &[f32],
        output: &mut [f32],
        n: usize,
        index: &[u32],
        cols: &mut [f32],
        precision: Precision,
    ) {
        if n == 0 {
            return;
        }
        let co = self.out_shape[0];
        let positions = self.positions();
        let patch = self.patch_len();
        let (weight, bias) = params.split_at(co * patch);
        if let Some(transform) = self.transformed(precision) {
            transform.forward(weight, bias, input, output, n, cols);
            return;
        }
        // bias as an extra weight column against a row of ones: the product writes the output
        // once, with no separate pass to fill in or add the bias
        let (cols, aug) = self.split_scratch(cols);
        for ((dst, w), &b) in aug.chunks_exact_mut(patch + 1).zip(weight.chunks_exact(patch)).zip(bias) {
            dst[..patch].copy_from_slice(w);
            dst[patch] = b;
        }
        if self.listed(n, precision) {
            let ones = &mut cols[patch * n..][..n];
            ones.fill(1.0);
            let mut list = Vec::with_capacity(patch + 1);
            for position in 0..positions {
                self.list_rows(index, input, n, position, ones, &mut list);
                gemm_listed_right(
                    MatRef::rows(aug, co, patch + 1),
                    if position == 0 { Left::Keep } else { Left::Kept },
                    Listed { rows: &list, cols: n },
                    0.0,
                    MatMut::strided(&mut output[position * n..], co, n, positions * n),
                );
            }
            return;
        }
        let chunk = self.chunk(n, precision);
        let skip_padding = self.skips_padding(precision);
        let mut first = 0;
        while first < positions {
            let count = chunk.min(positions - first);
            self.im2col(index, input, n, first, count, cols);
            if skip_padding {
                self.forward_skipping_padding(aug, index, cols, n, first, count, output);
            } else {
                product(
                    precision,
                    MatRef::rows(aug, co, patch + 1),
                    if first == 0 { Left::Keep } else { Left::Kept },
                    MatRef::rows(cols, patch + 1, count * n),
                    0.0,
                    MatMut::strided(&mut output[first * n..], co, count * n, positions * n),
                );
            }
            first += count;
        }
    }

    /// Calls `each(start, end, rows)` for every run `start..end` of consecutive positions among
    /// `first..first + count` that read the same kernel offsets, with `rows` the column-matrix
    /// rows (input channel, offset) that read the input there, in order.
    fn for_each_run(
        &self,
        index: &[u32],
        first: usize,
        count: usize,
        mut each: impl FnMut(usize, usize, &mut Vec<u32>),
    ) {
        let [ci, ..] = self.in_shape;
        let (kk, positions) = (self.kernel * self.kernel, self.positions());
        let reads_input = |o: usize, position: usize| index[o * positions + position] != PADDING;
        let mut rows = Vec::new();
        let mut start = first;
        while start < first + count {
            let mut end = start + 1;
            while end < first + count && (0..kk).all(|o| reads_input(o, end) == reads_input(o, start)) {
                end += 1;
            }
            rows.clear();
            for c in 0..ci {
                rows.extend((0..kk).filter(|&o| reads_input(o, start)).map(|o| (c * kk + o) as u32));
            }
            each(start, end, &mut rows);
            start = end;
        }
    }

    /// The output of positions `first..first + count` from their column matrix `cols` (as
    /// [`Conv2d::im2col`] left it) and the augmented weights `aug`, without the rows that read
    /// padding: for each run of [`Conv2d::for_each_run`], one product of the weights' columns
    /// for its offsets (and the bias) with the rows of `cols` listed where they lie. The weights
    /// are packed once, at the first position. See [`Conv2d::skips_padding`] for the bits.
    #[allow(clippy::too_many_arguments)]
    fn forward_skipping_padding(
        &self,
        aug: &[f32],
        index: &[u32],
        cols: &[f32],
        n: usize,
        first: usize,
        count: usize,
        output: &mut [f32],
    ) {
        let (co, patch, positions) = (self.out_shape[0], self.patch_len(), self.positions());
        let row_len = count * n;
        let mut list = Vec::new();
        self.for_each_run(index, first, count, |start, end, rows| {
            rows.push(patch as u32); // the row of ones, against the bias column
            let width = (end - start) * n;
            list.clear();
            list.extend(rows.iter().map(|&r| &cols[r as usize * row_len + (start - first) * n..][..width]));
            gemm_listed_right_at(
                MatRef::rows(aug, co, patch + 1),
                if start == 0 { Left::Keep } else { Left::Kept },
                Listed { rows: &list, cols: width },
                rows,
                0.0,
                MatMut::strided(&mut output[start * n..], co, width, positions * n),
            );
        });
    }

    /// Writes the parameter gradient into `grad` and, when given, the input gradient into
    /// `d_input`, from the output gradient `d_output` of a batch of `n`. Must follow
    /// [`Conv2d::forward`] on the same input and `cols`: when one chunk covers all positions,
    /// the column matrix the forward pass built is reused.
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
        precision: Precision,
    ) {
        let co = self.out_shape[0];
        let positions = self.positions();
        let patch = self.patch_len();
        let weight = &params[..co * patch];
        let (d_weight, d_bias) = grad.split_at_mut(co * patch);
        if n == 0 {
            d_weight.fill(0.0);
            d_bias.fill(0.0);
            return;
        }
        if let Some(transform) = self.transformed(precision) {
            transform.backward(input, d_output, d_input, d_weight, d_bias, n, cols);
            return;
        }
        let mut d_input = d_input;
        if let Some(d) = d_input.as_deref_mut() {
            d[..n * self.in_shape.iter().product::<usize>()].fill(0.0);
        }
        // the product with the row of ones gives the bias gradient as the last column
        let transposed = self.weight_gradient_transposed(precision);
        let (cols, d_aug) = self.split_scratch(cols);
        if self.listed(n, precision) {
            // as in the forward pass, one position at a time with the rows where they lie
            let (d_cols, rest) = cols.split_at_mut(patch * n);
            let ones = &mut rest[..n];
            ones.fill(1.0);
            let mut list = Vec::with_capacity(patch + 1);
            for position in 0..positions {
                self.list_rows(index, input, n, position, ones, &mut list);
                let d_out = MatRef::strided(&d_output[position * n..], co, n, positions * n);
                let beta = if position == 0 { 0.0 } else { 1.0 };
                let columns = Listed { rows: &list, cols: n };
                gemm_listed_left(columns, d_out.t(), beta, MatMut::rows(d_aug, patch + 1, co));
                if let Some(d_in) = d_input.as_deref_mut() {
                    self.add_input_gradient(weight, d_out, index, n, position, 1, d_cols, d_in, precision);
                }
            }
        } else {
            let chunk = self.chunk(n, precision);
            let mut first = 0;
            while first < positions {
                let count = chunk.min(positions - first);
                if count < positions {
                    // with a single chunk the forward pass left the columns in `cols`
                    self.im2col(index, input, n, first, count, cols);
                }
                let d_out = MatRef::strided(&d_output[first * n..], co, count * n, positions * n);
                let columns = MatRef::rows(cols, patch + 1, count * n);
                let beta = if first == 0 { 0.0 } else { 1.0 };
                if transposed {
                    product(precision, columns, Left::Fresh, d_out.t(), beta, MatMut::rows(d_aug, patch + 1, co));
                } else {
                    product(precision, d_out, Left::Fresh, columns.t(), beta, MatMut::rows(d_aug, co, patch + 1));
                }
                if let Some(d_in) = d_input.as_deref_mut() {
                    self.add_input_gradient(weight, d_out, index, n, first, count, cols, d_in, precision);
                }
                first += count;
            }
        }
        if !transposed {
            for ((dw, db), src) in
                d_weight.chunks_exact_mut(patch).zip(d_bias.iter_mut()).zip(d_aug.chunks_exact(patch + 1))
            {
                dw.copy_from_slice(&src[..patch]);
                *db = src[patch];
            }
        } else {
            for (j, src) in d_aug.chunks_exact(co).enumerate() {
                let out = if j < patch { &mut d_weight[j..] } else { &mut d_bias[..] };
                let step = if j < patch { patch } else { 1 };
                for (o, &g) in src.iter().enumerate() {
                    out[o * step] = g;
                }
            }
        }
    }
}

/// Adds the column-matrix gradient (of `conv`) of output positions `first..first + count` onto
/// `d_input` (which the caller zeroed).
#[multiversion(targets("x86_64+avx2"))]
fn col2im(conv: &Conv2d, index: &[u32], cols: &[f32], n: usize, first: usize, count: usize, d_input: &mut [f32]) {
    let [ci, h, w] = conv.in_shape;
    let kk = conv.kernel * conv.kernel;
    let positions = conv.positions();
    let row_len = count * n;
    for c in 0..ci {
        let plane = &mut d_input[c * h * w * n..(c + 1) * h * w * n];
        for o in 0..kk {
            let offsets = &index[o * positions + first..][..count];
            let row = &cols[(c * kk + o) * row_len..][..row_len];
            for (src, &i) in row.chunks_exact(n).zip(offsets) {
                if i != PADDING {
                    for (d, g) in plane[i as usize * n..][..n].iter_mut().zip(src) {
                        *d += g;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    thread_local! {
        /// Makes [`Conv2d::listed`] and [`Conv2d::skips_padding`] false on this thread, to compare
        /// the paths.
        pub(super) static UNFOLD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        /// Overrides [`Conv2d::weight_gradient_transposed`] on this thread.
        pub(super) static TRANSPOSED: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
    }

    /// Deterministic values in [−0.5, 0.5).
    fn noise(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|i| ((i * 2_654_435_761 + seed * 40_503) % 1_000_003) as f32 / 1e6 - 0.5).collect()
    }

    /// Asserts that the output, parameter gradient and input gradient of `conv` at batch `n`, on
    /// deterministic noise, have the same bits with the listed rows and the padding skipped
    /// (where they apply) as on the plain unfolded path.
    fn assert_paths_agree(conv: &Conv2d, n: usize) {
        let unfolded = |unfold: bool| {
            UNFOLD.set(unfold);
            let bits = step_bits(conv, n);
            UNFOLD.set(false);
            bits
        };
        assert_same_bits(&unfolded(false), &unfolded(true), &format!("{conv:?} at batch {n}"));
    }

    /// A layer computed by im2col.
    pub(crate) fn layer(
        in_shape: [usize; 3],
        out_shape: [usize; 3],
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Conv2d {
        Conv2d { in_shape, out_shape, kernel, stride, padding, transform: None }
    }

    /// One f32 step of a layer on deterministic noise, with its buffers.
    pub(crate) struct Step {
        n: usize,
        params: Vec<f32>,
        input: Vec<f32>,
        d_output: Vec<f32>,
        index: Vec<u32>,
        cols: Vec<f32>,
        /// The output, the parameter gradient and the input gradient.
        pub results: [Vec<f32>; 3],
    }

    impl Step {
        pub(crate) fn new(conv: &Conv2d, n: usize) -> Self {
            let [ci, h, w] = conv.in_shape;
            let (params, input) = (noise(conv.num_params(), 1), noise(ci * h * w * n, 2));
            let d_output = noise(conv.out_shape.iter().product::<usize>() * n, 3);
            let results = [vec![0.0; d_output.len()], vec![0.0; params.len()], vec![0.0; input.len()]];
            let (index, cols) = (conv.gather_index(), vec![0.0; conv.cols_len(n, Precision::F32)]);
            Step { n, params, input, d_output, index, cols, results }
        }

        /// Runs the forward and backward pass of `conv` (the layer `Step::new` was made for).
        pub(crate) fn run(&mut self, conv: &Conv2d) {
            let Step { n, params, input, d_output, index, cols, results: [output, grad, d_input] } = self;
            conv.forward(params, input, output, *n, index, cols, Precision::F32);
            conv.backward(params, input, d_output, Some(d_input), grad, *n, index, cols, Precision::F32);
        }
    }

    /// The output, parameter gradient and input gradient of `conv` at batch `n` on deterministic
    /// noise.
    pub(crate) fn step(conv: &Conv2d, n: usize) -> [Vec<f32>; 3] {
        let mut step = Step::new(conv, n);
        step.run(conv);
        step.results
    }

    /// Their bits.
    fn step_bits(conv: &Conv2d, n: usize) -> [Vec<u32>; 3] {
        step(conv, n).map(|v| v.iter().map(|x| x.to_bits()).collect())
    }

    /// Asserts that the step of `conv` with `transform` equals its im2col step within 10⁻⁵ of
    /// the largest value of each result.
    pub(crate) fn assert_transform_agrees(conv: &Conv2d, transform: Transform, n: usize) {
        let exact = step(conv, n);
        let ours = step(&Conv2d { transform: Some(Box::new(transform)), ..conv.clone() }, n);
        for (what, (a, b)) in ["output", "parameter gradient", "input gradient"].iter().zip(exact.iter().zip(&ours)) {
            let scale = a.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            let err = a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(err <= 1e-5 * scale, "{what} of {conv:?}: max error {err} against max {scale}");
        }
    }

    /// Prints the time of a step of `conv` at batch `n` by im2col and with `transform`.
    pub(crate) fn time_against_im2col(conv: &Conv2d, transform: Transform, n: usize, reps: u32) {
        let name = transform.name();
        let transformed = Conv2d { transform: Some(Box::new(transform)), ..conv.clone() };
        let time = |conv: &Conv2d| {
            let mut step = Step::new(conv, n);
            let start = std::time::Instant::now();
            (0..reps).for_each(|_| step.run(conv));
            start.elapsed().as_secs_f64() * 1e3 / f64::from(reps)
        };
        for round in 0..3 {
            eprintln!("round {round}: im2col {:.3} ms, {name} {:.3} ms", time(conv), time(&transformed));
        }
    }

    fn assert_same_bits(a: &[Vec<u32>; 3], b: &[Vec<u32>; 3], case: &str) {
        for (i, what) in ["output", "parameter gradient", "input gradient"].iter().enumerate() {
            assert!(a[i] == b[i], "{what} differs, {case}");
        }
    }

    #[test]
    fn both_orders_of_the_weight_gradient_give_the_same_bits() {
        // the two convolutions of digits_cnn and of cifar10_cnn (the first at a small batch)
        let layers = [
            (layer([1, 8, 8], [16, 8, 8], 3, 1, 1), 100),
            (layer([16, 4, 4], [32, 4, 4], 3, 1, 1), 100),
            (layer([3, 32, 32], [64, 28, 28], 5, 1, 0), 4),
            (layer([64, 14, 14], [64, 10, 10], 5, 1, 0), 100),
        ];
        for (conv, n) in &layers {
            let order = |transposed: bool| {
                TRANSPOSED.set(Some(transposed));
                let bits = step_bits(conv, *n);
                TRANSPOSED.set(None);
                bits
            };
            assert_same_bits(&order(true), &order(false), &format!("{conv:?} at batch {n}"));
        }
    }

    #[test]
    fn listed_rows_give_the_bits_of_the_unfolded_column_matrix() {
        // the second convolution of cifar10_cnn at batch 100, where the products list the rows
        let conv = layer([64, 14, 14], [64, 10, 10], 5, 1, 0);
        if !conv.listed(100, Precision::F32) {
            eprintln!("skipped: neither AVX-512 nor AVX2");
            return;
        }
        assert_paths_agree(&conv, 100);
    }

    #[test]
    fn skipping_the_padding_gives_the_bits_of_the_whole_products() {
        // the digits CNN's two convolutions, a strided one, one in chunks of positions, and one
        // whose kernel lies wholly in the padding at the corners
        let layers = [
            (layer([1, 8, 8], [16, 8, 8], 3, 1, 1), 32),
            (layer([16, 4, 4], [32, 4, 4], 3, 1, 1), 100),
            (layer([3, 9, 7], [5, 6, 5], 3, 2, 2), 7),
            (layer([6, 12, 12], [8, 12, 12], 5, 1, 2), 40),
            (layer([2, 3, 3], [3, 6, 6], 2, 1, 2), 5),
        ];
        // the fourth is unfolded in chunks of fewer positions than it has
        assert!(layers[3].0.chunk(layers[3].1, Precision::F32) < 144);
        for (conv, n) in &layers {
            if !conv.skips_padding(Precision::F32) {
                eprintln!("skipped: neither AVX-512 nor AVX2");
                return;
            }
            for d in [1, 2] {
                assert_eq!(conv.out_shape[d], (conv.in_shape[d] + 2 * conv.padding - conv.kernel) / conv.stride + 1);
            }
            assert_paths_agree(conv, *n);
        }
    }

    #[test]
    fn an_empty_batch_needs_no_kernel() {
        // one output position, so one position per chunk at any batch size
        let conv = layer([2, 3, 3], [4, 1, 1], 3, 1, 0);
        let (params, index) = (vec![0.5; conv.num_params()], conv.gather_index());
        let mut cols = vec![0.0; conv.cols_len(1, Precision::F32)];
        conv.forward(&params, &[], &mut [], 0, &index, &mut cols, Precision::F32);
        let mut grad = vec![1.0; params.len()];
        conv.backward(&params, &[], &[], Some(&mut []), &mut grad, 0, &index, &mut cols, Precision::F32);
        assert!(grad.iter().all(|&g| g == 0.0));
    }
}
