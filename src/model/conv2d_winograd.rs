//! Convolution by Winograd's minimal filtering with a single tile: the `method = "winograd"` of
//! a `conv2d` layer with stride 1 whose padded input is at most 6 × 6 (the second convolution of
//! digits_cnn: 16 → 32 channels, 3 × 3 on a padded 6 × 6). Along each axis the correlation of
//! `n = m + r − 1` inputs with `r` taps, giving `m` outputs, is the transpose of the linear
//! convolution of `r` taps with `m` values, which polynomial evaluation at `n` points computes
//! exactly: with `V` the `n × n` evaluation matrix of the points (0, ±1, ±2 and ∞, in that
//! order) and `V_k` its first `k` columns, y = V_mᵀ·[(V_r·w) ⊙ (V⁻ᵀ·x)]. In two dimensions every
//! one of the `n_h·n_w` points is then one real `C_out × C_in` by `C_in × batch` product, against
//! im2col's `C_in·r²` terms per output: for digits_cnn's second layer 36 products per channel
//! pair and sample instead of 144 (16 outputs × 9 taps).
//!
//! The gradients are the exact adjoints of that linear map: dX = B·[(G·W·Gᵀ) ⊙ (A·dY·Aᵀ)]·Bᵀ and
//! dW = Gᵀ·[Σ_batch (A·dY·Aᵀ) ⊙ (Bᵀ·X·B)]·G with B = V⁻¹, A = V_m, G = V_r, so they too equal
//! im2col's up to rounding. As in [`super::conv2d_dft`], the transforms are products of these
//! small matrices with the batch-minor planes (one axis at a time, through `super::gemm`), every
//! point's `C × n` matrix is read in place with a row stride, batches go in chunks of
//! `SAMPLE_CHUNK` samples, the method is the spec's choice and never the CPU's, and results do
//! not depend on the thread count. The evaluation points make the transforms' entries grow with
//! n, and the rounding with them: in the tests (n up to 6) the largest difference from im2col is
//! 5.7 × 10⁻⁶ of the largest value (on digits_cnn's layer), against 10⁻⁵ allowed, about 6× the
//! DFT's. With the points ±½ added for n = 7 and 8 it reached 4 × 10⁻⁵ (64 → 64 channels on an
//! 8 × 8 plane), so larger planes are refused: the DFT serves them.
//!
//! # Shapes
//!
//! As [`super::conv2d`]. Transformed planes are `C × n_h × n_w × n` (batch-minor).

use std::ops::Range;

use super::conv2d::{SAMPLE_CHUNK, bias_gradient, sample_chunks};
use super::gemm::{MatMut, MatRef, gemm};
use super::gemm_bf16::Left;

/// Largest padded height or width: the points 0, ±1, ±2 and ∞.
pub const MAX_POINTS: usize = 6;

/// The transforms of one axis: `n` points, `m` outputs, `r` taps.
#[derive(Clone, Debug)]
struct Axis {
    n: usize,
    m: usize,
    /// `n × n`: V⁻ᵀ, the input's transform.
    input: Vec<f32>,
    /// `m × n`: V_mᵀ, back from the points to the outputs.
    output: Vec<f32>,
    /// `n × m`: V_m, the output gradient's transform.
    gradient: Vec<f32>,
    /// `n × n`: V⁻¹, back from the points to the input gradient.
    input_gradient: Vec<f32>,
    /// `n × r`: V_r, the taps' transform (f64, multiplied out into the 2-D kernel matrices).
    taps: Vec<f64>,
}

impl Axis {
    fn new(n: usize, r: usize) -> Self {
        let finite: [f64; MAX_POINTS - 1] = [0.0, 1.0, -1.0, 2.0, -2.0];
        assert!(
            (1..=MAX_POINTS).contains(&n) && (1..=n).contains(&r),
            "Winograd needs 1 <= r <= n <= {MAX_POINTS}, not r = {r}, n = {n}"
        );
        // the evaluation of a polynomial of k coefficients at the points; at ∞ its leading one
        let evaluation = |k: usize| {
            let mut v = vec![0.0f64; n * k];
            for j in 0..n {
                if j == n - 1 && n > 1 {
                    v[j * k + k - 1] = 1.0;
                } else {
                    (0..k).for_each(|i| v[j * k + i] = finite[j].powi(i as i32));
                }
            }
            v
        };
        let m = n + 1 - r;
        let v = evaluation(n);
        let v_inv = invert(&v, n);
        let v_m = evaluation(m);
        let cast = |x: &[f64]| x.iter().map(|&v| v as f32).collect::<Vec<f32>>();
        let transpose = |x: &[f64], rows: usize, cols: usize| {
            (0..cols).flat_map(|j| (0..rows).map(move |i| x[i * cols + j])).collect::<Vec<f64>>()
        };
        Axis {
            n,
            m,
            input: cast(&transpose(&v_inv, n, n)),
            output: cast(&transpose(&v_m, n, m)),
            gradient: cast(&v_m),
            input_gradient: cast(&v_inv),
            taps: evaluation(r),
        }
    }
}

/// The inverse of the `n × n` matrix `a` (Gauss–Jordan with partial pivoting, in f64).
fn invert(a: &[f64], n: usize) -> Vec<f64> {
    let mut left = a.to_vec();
    let mut right: Vec<f64> = (0..n * n).map(|i| if i / n == i % n { 1.0 } else { 0.0 }).collect();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| left[i * n + col].abs().total_cmp(&left[j * n + col].abs())).unwrap();
        for k in 0..n {
            left.swap(col * n + k, pivot * n + k);
            right.swap(col * n + k, pivot * n + k);
        }
        let d = left[col * n + col];
        for k in 0..n {
            left[col * n + k] /= d;
            right[col * n + k] /= d;
        }
        for i in (0..n).filter(|&i| i != col) {
            let factor = left[i * n + col];
            for k in 0..n {
                left[i * n + k] -= factor * left[col * n + k];
                right[i * n + k] -= factor * right[col * n + k];
            }
        }
    }
    right
}

/// The matrices of one layer's shape, built once.
#[derive(Clone, Debug)]
pub struct Winograd {
    c_in: usize,
    c_out: usize,
    kernel: usize,
    padding: usize,
    rows: Axis,
    cols: Axis,
    /// `n_h·n_w × r²`: the points of the kernel from its taps, G_h ⊗ G_w.
    weights: Vec<f32>,
}

impl Winograd {
    /// The matrices for a `c_in × h × w` input with `padding` zeros on every side, `c_out`
    /// channels out, a `kernel × kernel` kernel; the padded sizes must be at most
    /// [`MAX_POINTS`].
    pub fn new(c_in: usize, c_out: usize, h: usize, w: usize, kernel: usize, padding: usize) -> Self {
        let (rows, cols) = (Axis::new(h + 2 * padding, kernel), Axis::new(w + 2 * padding, kernel));
        let mut weights = vec![0.0; rows.n * cols.n * kernel * kernel];
        for a in 0..rows.n {
            for b in 0..cols.n {
                for u in 0..kernel {
                    for v in 0..kernel {
                        weights[(a * cols.n + b) * kernel * kernel + u * kernel + v] =
                            (rows.taps[a * kernel + u] * cols.taps[b * kernel + v]) as f32;
                    }
                }
            }
        }
        Winograd { c_in, c_out, kernel, padding, rows, cols, weights }
    }

    fn points(&self) -> usize {
        self.rows.n * self.cols.n
    }

    /// Floats of scratch for a batch of up to `n`: for a chunk of up to `SAMPLE_CHUNK` samples
    /// the input's points (kept from the forward to the backward pass when the batch is one
    /// chunk), the output side's, the input gradient's and the transforms' intermediate; then
    /// the kernel's points and the weight gradient's.
    pub fn scratch_len(&self, n: usize) -> usize {
        let (ci, co, m) = (self.c_in, self.c_out, n.min(SAMPLE_CHUNK));
        (2 * ci + co + ci.max(co)) * self.points() * m + 2 * self.points() * ci * co
    }

    #[allow(clippy::type_complexity)]
    fn split<'s>(
        &self,
        scratch: &'s mut [f32],
        m: usize,
    ) -> (&'s mut [f32], &'s mut [f32], &'s mut [f32], &'s mut [f32], &'s mut [f32], &'s mut [f32]) {
        let (ci, co, p) = (self.c_in, self.c_out, self.points());
        let (xs, rest) = scratch.split_at_mut(ci * p * m);
        let (ys, rest) = rest.split_at_mut(co * p * m);
        let (dxs, rest) = rest.split_at_mut(ci * p * m);
        let (tmp, rest) = rest.split_at_mut(ci.max(co) * p * m);
        let (ws, gs) = rest.split_at_mut(p * ci * co);
        (xs, ys, dxs, tmp, ws, &mut gs[..p * ci * co])
    }

    /// Samples `chunk` of `channels` planes of `rows × cols` (a batch of `n`) to their points,
    /// `along_h` (`n_h × rows`) and `along_w` (`n_w × cols`) applied along each axis, into `out`
    /// (`channels × n_h × n_w × chunk`), through `tmp`.
    #[allow(clippy::too_many_arguments)]
    fn transform(
        &self,
        planes: &[f32],
        channels: usize,
        (rows, cols): (usize, usize),
        (along_h, along_w): (MatRef<'_>, MatRef<'_>),
        n: usize,
        chunk: Range<usize>,
        tmp: &mut [f32],
        out: &mut [f32],
    ) {
        let (nh, nw, m) = (self.rows.n, self.cols.n, chunk.len());
        for c in 0..channels {
            for t in 0..rows {
                let left = if c == 0 && t == 0 { Left::Keep } else { Left::Kept };
                let row = MatRef::strided(&planes[(c * rows + t) * cols * n + chunk.start..], cols, m, n);
                gemm(along_w, left, row, 0.0, MatMut::rows(&mut tmp[(c * rows + t) * nw * m..], nw, m));
            }
        }
        for c in 0..channels {
            let left = if c == 0 { Left::Keep } else { Left::Kept };
            let block = MatRef::rows(&tmp[c * rows * nw * m..], rows, nw * m);
            gemm(along_h, left, block, 0.0, MatMut::rows(&mut out[c * nh * nw * m..], nh, nw * m));
        }
    }

    /// Samples `chunk` of `out` (`channels` planes of `out_rows × out_cols`, a batch of `n`) ←
    /// `beta·out +` the points `points` (`channels × n_h × n_w × chunk`) taken back by `along_h`
    /// (`out_rows × n_h`) and `along_w` (`out_cols × n_w`), through `tmp`.
    #[allow(clippy::too_many_arguments)]
    fn inverse(
        &self,
        points: &[f32],
        channels: usize,
        (out_rows, out_cols): (usize, usize),
        (along_h, along_w): (MatRef<'_>, MatRef<'_>),
        n: usize,
        chunk: Range<usize>,
        tmp: &mut [f32],
        beta: f32,
        out: &mut [f32],
    ) {
        let (nh, nw, m) = (self.rows.n, self.cols.n, chunk.len());
        for c in 0..channels {
            let left = if c == 0 { Left::Keep } else { Left::Kept };
            let block = MatRef::rows(&points[c * nh * nw * m..], nh, nw * m);
            gemm(along_h, left, block, 0.0, MatMut::rows(&mut tmp[c * out_rows * nw * m..], out_rows, nw * m));
        }
        for c in 0..channels {
            for t in 0..out_rows {
                let left = if c == 0 && t == 0 { Left::Keep } else { Left::Kept };
                let block = MatRef::rows(&tmp[(c * out_rows + t) * nw * m..], nw, m);
                let at = (c * out_rows + t) * out_cols * n + chunk.start;
                gemm(along_w, left, block, beta, MatMut::strided(&mut out[at..], out_cols, m, n));
            }
        }
    }

    /// The input's transforms: V⁻ᵀ from row and column `padding` on, along each axis.
    fn input_transforms(&self, h: usize, w: usize) -> (MatRef<'_>, MatRef<'_>) {
        let p = self.padding;
        let (r, c) = (&self.rows, &self.cols);
        (MatRef::strided(&r.input[p..], r.n, h, r.n), MatRef::strided(&c.input[p..], c.n, w, c.n))
    }

    /// The input's height and width, without padding.
    fn input_hw(&self) -> (usize, usize) {
        (self.rows.n - 2 * self.padding, self.cols.n - 2 * self.padding)
    }

    /// The layer's output for a batch of `n` (`weight` is `C_out × C_in × k × k`); keeps the
    /// kernel's points, and the input's of a one-chunk batch, in `scratch` for
    /// [`Winograd::backward`].
    pub fn forward(
        &self,
        weight: &[f32],
        bias: &[f32],
        input: &[f32],
        output: &mut [f32],
        n: usize,
        scratch: &mut [f32],
    ) {
        let (ci, co, points) = (self.c_in, self.c_out, self.points());
        let (r, c) = (&self.rows, &self.cols);
        let (h, w) = self.input_hw();
        let (xs, ys, _, tmp, ws, _) = self.split(scratch, n.min(SAMPLE_CHUNK));
        let kk = self.kernel * self.kernel;
        gemm(
            MatRef::rows(&self.weights, points, kk),
            Left::Fresh,
            MatRef::rows(weight, co * ci, kk).t(),
            0.0,
            MatMut::rows(ws, points, co * ci),
        );
        for (plane, &b) in output.chunks_exact_mut(r.m * c.m * n).zip(bias) {
            plane.fill(b);
        }
        let outputs = (MatRef::rows(&r.output, r.m, r.n), MatRef::rows(&c.output, c.m, c.n));
        for chunk in sample_chunks(n) {
            let m = chunk.len();
            self.transform(input, ci, (h, w), self.input_transforms(h, w), n, chunk.clone(), tmp, xs);
            for q in 0..points {
                let x = MatRef::strided(&xs[q * m..], ci, m, points * m);
                let weights = MatRef::rows(&ws[q * co * ci..], co, ci);
                gemm(weights, Left::Fresh, x, 0.0, MatMut::strided(&mut ys[q * m..], co, m, points * m));
            }
            self.inverse(ys, co, (r.m, c.m), outputs, n, chunk, tmp, 1.0, output);
        }
    }

    /// The weight and bias gradients, and the input gradient when asked, from the input and the
    /// output gradient of a batch of `n`; must follow [`Winograd::forward`] on the same scratch.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        input: &[f32],
        d_output: &[f32],
        mut d_input: Option<&mut [f32]>,
        d_weight: &mut [f32],
        d_bias: &mut [f32],
        n: usize,
        scratch: &mut [f32],
    ) {
        let (ci, co, points) = (self.c_in, self.c_out, self.points());
        let (r, c) = (&self.rows, &self.cols);
        let (h, w) = self.input_hw();
        let (xs, gys, dxs, tmp, ws, gs) = self.split(scratch, n.min(SAMPLE_CHUNK));
        bias_gradient(d_output, r.m * c.m * n, d_bias);
        let gradients = (MatRef::rows(&r.gradient, r.n, r.m), MatRef::rows(&c.gradient, c.n, c.m));
        let p = self.padding;
        let input_gradients =
            (MatRef::rows(&r.input_gradient[p * r.n..], h, r.n), MatRef::rows(&c.input_gradient[p * c.n..], w, c.n));
        for chunk in sample_chunks(n) {
            let m = chunk.len();
            if n > SAMPLE_CHUNK {
                self.transform(input, ci, (h, w), self.input_transforms(h, w), n, chunk.clone(), tmp, xs);
            }
            self.transform(d_output, co, (r.m, c.m), gradients, n, chunk.clone(), tmp, gys);
            let beta = if chunk.start == 0 { 0.0 } else { 1.0 };
            for q in 0..points {
                let x = MatRef::strided(&xs[q * m..], ci, m, points * m);
                let g = MatRef::strided(&gys[q * m..], co, m, points * m);
                gemm(g, Left::Fresh, x.t(), beta, MatMut::rows(&mut gs[q * co * ci..], co, ci));
                if d_input.is_some() {
                    let weights = MatRef::rows(&ws[q * co * ci..], co, ci).t();
                    gemm(weights, Left::Fresh, g, 0.0, MatMut::strided(&mut dxs[q * m..], ci, m, points * m));
                }
            }
            if let Some(d_input) = d_input.as_deref_mut() {
                self.inverse(dxs, ci, (h, w), input_gradients, n, chunk, tmp, 0.0, d_input);
            }
        }
        let kk = self.kernel * self.kernel;
        gemm(
            MatRef::rows(gs, points, co * ci).t(),
            Left::Fresh,
            MatRef::rows(&self.weights, points, kk),
            0.0,
            MatMut::rows(d_weight, co * ci, kk),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::conv2d::Transform;
    use super::super::conv2d::tests::{assert_transform_agrees, layer, time_against_im2col};
    use super::*;

    fn winograd(conv: &super::super::conv2d::Conv2d) -> Transform {
        let [ci, h, w] = conv.in_shape;
        Transform::Winograd(Winograd::new(ci, conv.out_shape[0], h, w, conv.kernel, conv.padding))
    }

    #[test]
    fn agrees_with_im2col_up_to_rounding() {
        for (conv, n) in [
            (layer([16, 4, 4], [32, 4, 4], 3, 1, 1), 100), // digits_cnn's second convolution
            (layer([16, 4, 4], [32, 4, 4], 3, 1, 1), 300), // in three chunks
            (layer([3, 6, 5], [4, 4, 3], 3, 1, 0), 7),     // 6 and 5 points
            (layer([64, 4, 4], [64, 4, 4], 3, 1, 1), 9),   // 6 points, 64 channels each way
            (layer([16, 6, 6], [8, 6, 6], 1, 1, 0), 5),    // a 1 × 1 kernel on 6 points
            (layer([2, 3, 2], [3, 3, 2], 3, 1, 1), 5),     // 5 and 4 points
            (layer([2, 1, 1], [3, 1, 1], 1, 1, 0), 4),     // one point
            (layer([2, 4, 4], [2, 2, 2], 3, 1, 0), 3),
        ] {
            assert_transform_agrees(&conv, winograd(&conv), n);
        }
    }

    #[test]
    #[ignore = "timing: cargo test --release --lib winograd_against_im2col -- --ignored --nocapture"]
    fn winograd_against_im2col_timing() {
        let conv = layer([16, 4, 4], [32, 4, 4], 3, 1, 1);
        time_against_im2col(&conv, winograd(&conv), 100, 500);
    }
}
