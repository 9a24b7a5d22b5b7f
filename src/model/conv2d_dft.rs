//! Convolution through the discrete Fourier transform: the `method = "dft"` of a `conv2d` layer
//! with stride 1. A cross-correlation of an `H × W` plane (padding included) with a `k × k`
//! kernel is, for the `(H − k + 1) × (W − k + 1)` outputs it keeps, the same as the cyclic one of
//! size `H × W`, so per frequency it is a pointwise product: Ŷ = X̂·conj(Ŵ). Summed over input
//! channels, every frequency is one complex `C_out × C_in` by `C_in × n` product for the whole
//! batch, against the `C_out × C_in·k²` by `C_in·k² × n` product per output position of im2col:
//! for the second convolution of cifar10_cnn (64 → 64, 5 × 5 on 14 × 14) the transform domain
//! needs about a quarter of the floating-point work, transforms included.
//!
//! The transforms are matrix products too (a DFT matrix against the batch-minor planes, one axis
//! at a time, through `super::gemm`): along the width the real DFT keeps `F = W/2 + 1`
//! frequencies (real and imaginary parts as separate rows), along the height the complex one all
//! `H`. The input gradient is the full convolution dX̂ = dŶ·Ŵ, which fits the same `H × W`
//! without wrapping around, and the weight gradient the cyclic correlation of the input with
//! the output gradient, conj(dŶ)·X̂ summed over the batch in the transform domain and
//! transformed back once per step, which again wraps nothing for the `k × k` taps kept.
//!
//! The results equal im2col's up to f32 rounding (in the tests the largest difference is
//! 1.1 × 10⁻⁶ of the largest value, about 18 f32 epsilons; the test allows 10⁻⁵), not bit for
//! bit, so the method is a per-layer choice
//! ([`super::conv2d::ConvMethod`]), never made from the CPU: the same spec gives the same bits on every
//! machine. The transforms use only products and sums in a fixed order, single-threaded, so
//! results do not depend on the thread count either.
//!
//! # Shapes
//!
//! As [`super::conv2d`]: input `C_in × H × W × n`, output `C_out × H_out × W_out × n`
//! (batch-minor). Spectra are `C × H × 2F × n`: for channel c and height frequency a, the real
//! parts of the `F` width frequencies, then their imaginary parts, each a run of `n` floats.

use std::f64::consts::PI;
use std::ops::Range;

use super::conv2d::{SAMPLE_CHUNK, bias_gradient, sample_chunks};
use super::gemm::{MatMut, MatRef, gemm};
use super::gemm_bf16::Left;

/// The DFT matrices of one layer's shape, built once.
#[derive(Clone, Debug)]
pub struct Dft {
    c_in: usize,
    c_out: usize,
    /// The transform's height and width: the input's, padding included.
    h: usize,
    w: usize,
    kernel: usize,
    padding: usize,
    /// Width frequencies kept: `W/2 + 1`.
    f: usize,
    /// `2F × W`: rows (part, b) of the forward real DFT along the width, cos and −sin.
    along_w: Vec<f32>,
    /// `W × 2F`: the inverse, (c_b / HW)·cos and −(c_b / HW)·sin, c_b = 1 at b = 0 and W/2, else 2.
    back_w: Vec<f32>,
    /// `H × H` cos(2π·a·t/H), sin and −sin (symmetric in a and t).
    cos_h: Vec<f32>,
    sin_h: Vec<f32>,
    neg_sin_h: Vec<f32>,
    /// `3·HF × k²`: for every frequency, the rows giving Re Ŵ, Im Ŵ and −Im Ŵ from the taps.
    weights_fwd: Vec<f32>,
    /// `2·HF × k²`: the taps of the weight gradient from its spectrum (real then imaginary rows).
    weights_back: Vec<f32>,
}

impl Dft {
    /// The matrices for a `c_in × h × w` input with `padding` zeros on every side, `c_out`
    /// channels out, a `kernel × kernel` kernel.
    pub fn new(c_in: usize, c_out: usize, h: usize, w: usize, kernel: usize, padding: usize) -> Self {
        let (h, w) = (h + 2 * padding, w + 2 * padding);
        let f = w / 2 + 1;
        let weight_of = |b: usize| if b == 0 || 2 * b == w { 1.0 } else { 2.0 };
        let scale = 1.0 / (h * w) as f64;
        let mut along_w = vec![0.0; 2 * f * w];
        let mut back_w = vec![0.0; w * 2 * f];
        for b in 0..f {
            for j in 0..w {
                let angle = 2.0 * PI * ((b * j) % w) as f64 / w as f64;
                along_w[b * w + j] = angle.cos() as f32;
                along_w[(f + b) * w + j] = -angle.sin() as f32;
                back_w[j * 2 * f + b] = (weight_of(b) * scale * angle.cos()) as f32;
                back_w[j * 2 * f + f + b] = (-weight_of(b) * scale * angle.sin()) as f32;
            }
        }
        let (mut cos_h, mut sin_h) = (vec![0.0; h * h], vec![0.0; h * h]);
        for a in 0..h {
            for t in 0..h {
                let angle = 2.0 * PI * ((a * t) % h) as f64 / h as f64;
                cos_h[a * h + t] = angle.cos() as f32;
                sin_h[a * h + t] = angle.sin() as f32;
            }
        }
        let neg_sin_h = sin_h.iter().map(|s| -s).collect();
        let kk = kernel * kernel;
        let freqs = h * f;
        let mut weights_fwd = vec![0.0; 3 * freqs * kk];
        let mut weights_back = vec![0.0; 2 * freqs * kk];
        for a in 0..h {
            for b in 0..f {
                let fi = a * f + b;
                for u in 0..kernel {
                    for v in 0..kernel {
                        let turns = ((a * u) % h) as f64 / h as f64 + ((b * v) % w) as f64 / w as f64;
                        let (sin, cos) = (2.0 * PI * turns).sin_cos();
                        let tap = u * kernel + v;
                        weights_fwd[(3 * fi) * kk + tap] = cos as f32;
                        weights_fwd[(3 * fi + 1) * kk + tap] = -sin as f32;
                        weights_fwd[(3 * fi + 2) * kk + tap] = sin as f32;
                        weights_back[fi * kk + tap] = (weight_of(b) * scale * cos) as f32;
                        weights_back[(freqs + fi) * kk + tap] = (-weight_of(b) * scale * sin) as f32;
                    }
                }
            }
        }
        Dft {
            c_in,
            c_out,
            h,
            w,
            kernel,
            padding,
            f,
            along_w,
            back_w,
            cos_h,
            sin_h,
            neg_sin_h,
            weights_fwd,
            weights_back,
        }
    }

    fn freqs(&self) -> usize {
        self.h * self.f
    }

    /// Floats of one spectrum of `channels` channels for `m` samples.
    fn spectrum_len(&self, channels: usize, m: usize) -> usize {
        channels * self.h * 2 * self.f * m
    }

    /// Floats of scratch for a batch of up to `n`: for a chunk of up to `SAMPLE_CHUNK` (128)
    /// samples the input spectrum (kept from the forward to the backward pass when the batch is
    /// one chunk), the output-side spectrum, the input-gradient spectrum and the transforms'
    /// intermediate; then the weight spectrum, the weight-gradient spectrum and one
    /// `C_out × C_in` block.
    pub fn scratch_len(&self, n: usize) -> usize {
        let (ci, co) = (self.c_in, self.c_out);
        let m = n.min(SAMPLE_CHUNK);
        let pairs = ci * co;
        2 * self.spectrum_len(ci, m)
            + self.spectrum_len(co, m)
            + self.spectrum_len(ci.max(co), m)
            + 3 * self.freqs() * pairs
            + 2 * self.freqs() * pairs
            + pairs
    }

    /// Splits the scratch into (input spectrum, output-side spectrum, input-gradient spectrum,
    /// intermediate, weight spectrum, weight-gradient spectrum, one C_out × C_in block), with
    /// the spectra sized for chunks of `m` samples.
    #[allow(clippy::type_complexity)]
    fn split<'s>(
        &self,
        scratch: &'s mut [f32],
        m: usize,
    ) -> (&'s mut [f32], &'s mut [f32], &'s mut [f32], &'s mut [f32], &'s mut [f32], &'s mut [f32], &'s mut [f32]) {
        let (ci, co) = (self.c_in, self.c_out);
        let pairs = ci * co;
        let (xs, rest) = scratch.split_at_mut(self.spectrum_len(ci, m));
        let (ys, rest) = rest.split_at_mut(self.spectrum_len(co, m));
        let (dxs, rest) = rest.split_at_mut(self.spectrum_len(ci, m));
        let (tmp, rest) = rest.split_at_mut(self.spectrum_len(ci.max(co), m));
        let (ws, rest) = rest.split_at_mut(3 * self.freqs() * pairs);
        let (gs, rest) = rest.split_at_mut(2 * self.freqs() * pairs);
        (xs, ys, dxs, tmp, ws, gs, &mut rest[..pairs])
    }

    /// The spectrum of samples `chunk` of `channels` planes of `rows × cols` (a batch of `n`),
    /// placed at row and column `offset` of `H × W` (the rest zero), into `spectrum`, through
    /// `tmp`.
    #[allow(clippy::too_many_arguments)]
    fn transform(
        &self,
        planes: &[f32],
        channels: usize,
        rows: usize,
        cols: usize,
        offset: usize,
        n: usize,
        chunk: Range<usize>,
        tmp: &mut [f32],
        spectrum: &mut [f32],
    ) {
        let (h, f, m) = (self.h, self.f, chunk.len());
        let span = 2 * f * m; // one (channel, row) of the intermediate, or (channel, a) of the spectrum
        let along_w = MatRef::strided(&self.along_w[offset..], 2 * f, cols, self.w);
        for c in 0..channels {
            for t in 0..rows {
                let left = if c == 0 && t == 0 { Left::Keep } else { Left::Kept };
                let plane_row = MatRef::strided(&planes[(c * rows + t) * cols * n + chunk.start..], cols, m, n);
                gemm(along_w, left, plane_row, 0.0, MatMut::rows(&mut tmp[(c * h + t) * span..], 2 * f, m));
            }
        }
        let (cos, sin, neg_sin) = (
            MatRef::strided(&self.cos_h[offset..], h, rows, h),
            MatRef::strided(&self.sin_h[offset..], h, rows, h),
            MatRef::strided(&self.neg_sin_h[offset..], h, rows, h),
        );
        for c in 0..channels {
            let block = &tmp[c * h * span..];
            let (re, im) =
                (MatRef::strided(block, rows, f * m, span), MatRef::strided(&block[f * m..], rows, f * m, span));
            let out = &mut spectrum[c * h * span..];
            // Re X̂ = C·Re t + S·Im t, Im X̂ = C·Im t − S·Re t
            gemm(cos, Left::Fresh, re, 0.0, MatMut::strided(out, h, f * m, span));
            gemm(sin, Left::Fresh, im, 1.0, MatMut::strided(out, h, f * m, span));
            gemm(cos, Left::Fresh, im, 0.0, MatMut::strided(&mut out[f * m..], h, f * m, span));
            gemm(neg_sin, Left::Fresh, re, 1.0, MatMut::strided(&mut out[f * m..], h, f * m, span));
        }
    }

    /// Samples `chunk` of `out` (`channels` planes of `rows × cols`, a batch of `n`) ←
    /// `beta·out +` the `rows × cols` from row and column `offset` of the inverse transform of
    /// `spectrum`, through `tmp`.
    #[allow(clippy::too_many_arguments)]
    fn inverse(
        &self,
        spectrum: &[f32],
        channels: usize,
        rows: usize,
        cols: usize,
        offset: usize,
        n: usize,
        chunk: Range<usize>,
        tmp: &mut [f32],
        beta: f32,
        out: &mut [f32],
    ) {
        let (h, f, m) = (self.h, self.f, chunk.len());
        let span = 2 * f * m;
        let (cos, sin, neg_sin) = (
            MatRef::rows(&self.cos_h[offset * h..], rows, h),
            MatRef::rows(&self.sin_h[offset * h..], rows, h),
            MatRef::rows(&self.neg_sin_h[offset * h..], rows, h),
        );
        for c in 0..channels {
            let block = &spectrum[c * h * span..];
            let (re, im) = (MatRef::strided(block, h, f * m, span), MatRef::strided(&block[f * m..], h, f * m, span));
            let t = &mut tmp[c * h * span..];
            // Re t = C·Re Ŷ − S·Im Ŷ, Im t = C·Im Ŷ + S·Re Ŷ
            gemm(cos, Left::Fresh, re, 0.0, MatMut::strided(t, rows, f * m, span));
            gemm(neg_sin, Left::Fresh, im, 1.0, MatMut::strided(t, rows, f * m, span));
            gemm(cos, Left::Fresh, im, 0.0, MatMut::strided(&mut t[f * m..], rows, f * m, span));
            gemm(sin, Left::Fresh, re, 1.0, MatMut::strided(&mut t[f * m..], rows, f * m, span));
        }
        let back_w = MatRef::rows(&self.back_w[offset * 2 * f..], cols, 2 * f);
        for c in 0..channels {
            for t in 0..rows {
                let left = if c == 0 && t == 0 { Left::Keep } else { Left::Kept };
                let block = MatRef::rows(&tmp[(c * h + t) * span..], 2 * f, m);
                let at = (c * rows + t) * cols * n + chunk.start;
                gemm(back_w, left, block, beta, MatMut::strided(&mut out[at..], cols, m, n));
            }
        }
    }

    /// The layer's output for a batch of `n` (`weight` is `C_out × C_in × k × k`), a chunk of
    /// samples at a time; keeps the weight spectrum, and the input spectrum of a one-chunk
    /// batch, in `scratch` for [`Dft::backward`].
    pub fn forward(
        &self,
        weight: &[f32],
        bias: &[f32],
        input: &[f32],
        output: &mut [f32],
        n: usize,
        scratch: &mut [f32],
    ) {
        let (ci, co, h, f) = (self.c_in, self.c_out, self.h, self.f);
        let (ho, wo) = self.out_hw();
        let (xs, ys, _, tmp, ws, _, _) = self.split(scratch, n.min(SAMPLE_CHUNK));
        let kk = self.kernel * self.kernel;
        // rows (frequency, Re / Im / −Im) × columns (o, c)
        gemm(
            MatRef::rows(&self.weights_fwd, 3 * self.freqs(), kk),
            Left::Fresh,
            MatRef::rows(weight, co * ci, kk).t(),
            0.0,
            MatMut::rows(ws, 3 * self.freqs(), co * ci),
        );
        for (plane, &b) in output.chunks_exact_mut(ho * wo * n).zip(bias) {
            plane.fill(b);
        }
        let p = self.padding;
        for chunk in sample_chunks(n) {
            let m = chunk.len();
            self.transform(input, ci, h - 2 * p, self.w - 2 * p, p, n, chunk.clone(), tmp, xs);
            let stride = h * 2 * f * m;
            for fi in 0..self.freqs() {
                let at = (fi / f) * 2 * f * m + (fi % f) * m;
                let (x_re, x_im) =
                    (MatRef::strided(&xs[at..], ci, m, stride), MatRef::strided(&xs[at + f * m..], ci, m, stride));
                let part = |p: usize| MatRef::rows(&ws[(3 * fi + p) * co * ci..], co, ci);
                let (w_re, w_im, w_neg_im) = (part(0), part(1), part(2));
                // Ŷ = X̂·conj(Ŵ): Re = Re Ŵ·Re X̂ + Im Ŵ·Im X̂, Im = Re Ŵ·Im X̂ − Im Ŵ·Re X̂
                gemm(w_re, Left::Fresh, x_re, 0.0, MatMut::strided(&mut ys[at..], co, m, stride));
                gemm(w_im, Left::Fresh, x_im, 1.0, MatMut::strided(&mut ys[at..], co, m, stride));
                gemm(w_re, Left::Fresh, x_im, 0.0, MatMut::strided(&mut ys[at + f * m..], co, m, stride));
                gemm(w_neg_im, Left::Fresh, x_re, 1.0, MatMut::strided(&mut ys[at + f * m..], co, m, stride));
            }
            self.inverse(ys, co, ho, wo, 0, n, chunk, tmp, 1.0, output);
        }
    }

    /// The weight and bias gradients, and the input gradient when asked, from the input and the
    /// output gradient of a batch of `n`; must follow [`Dft::forward`] on the same scratch.
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
        let (ci, co, h, f) = (self.c_in, self.c_out, self.h, self.f);
        let (ho, wo) = self.out_hw();
        let (xs, gys, dxs, tmp, ws, gs, block) = self.split(scratch, n.min(SAMPLE_CHUNK));
        bias_gradient(d_output, ho * wo * n, d_bias);
        let (pairs, freqs, p) = (ci * co, self.freqs(), self.padding);
        for chunk in sample_chunks(n) {
            let m = chunk.len();
            if n > SAMPLE_CHUNK {
                // the forward pass kept only the last chunk's input spectrum
                self.transform(input, ci, h - 2 * p, self.w - 2 * p, p, n, chunk.clone(), tmp, xs);
            }
            self.transform(d_output, co, ho, wo, 0, n, chunk.clone(), tmp, gys);
            let stride = h * 2 * f * m;
            let beta = if chunk.start == 0 { 0.0 } else { 1.0 };
            for fi in 0..freqs {
                let at = (fi / f) * 2 * f * m + (fi % f) * m;
                let (x_re, x_im) =
                    (MatRef::strided(&xs[at..], ci, m, stride), MatRef::strided(&xs[at + f * m..], ci, m, stride));
                let (g_re, g_im) =
                    (MatRef::strided(&gys[at..], co, m, stride), MatRef::strided(&gys[at + f * m..], co, m, stride));
                // Σ_n X̂·conj(dŶ): Re = dŶre·X̂reᵀ + dŶim·X̂imᵀ, Im = dŶre·X̂imᵀ − dŶim·X̂reᵀ
                let (re, im) = gs.split_at_mut(freqs * pairs);
                let (re, im) = (&mut re[fi * pairs..][..pairs], &mut im[fi * pairs..][..pairs]);
                gemm(g_re, Left::Fresh, x_re.t(), beta, MatMut::rows(re, co, ci));
                gemm(g_im, Left::Fresh, x_im.t(), 1.0, MatMut::rows(re, co, ci));
                gemm(g_re, Left::Fresh, x_im.t(), beta, MatMut::rows(im, co, ci));
                gemm(g_im, Left::Fresh, x_re.t(), 0.0, MatMut::rows(block, co, ci));
                im.iter_mut().zip(block.iter()).for_each(|(a, b)| *a -= b);
                if d_input.is_some() {
                    // dX̂ = dŶ·Ŵ summed over outputs: Re = Re Ŵᵀ·Re dŶ − Im Ŵᵀ·Im dŶ, Im = Re Ŵᵀ·Im dŶ + Im Ŵᵀ·Re dŶ
                    let part = |p: usize| MatRef::rows(&ws[(3 * fi + p) * pairs..], co, ci).t();
                    let (w_re, w_im, w_neg_im) = (part(0), part(1), part(2));
                    gemm(w_re, Left::Fresh, g_re, 0.0, MatMut::strided(&mut dxs[at..], ci, m, stride));
                    gemm(w_neg_im, Left::Fresh, g_im, 1.0, MatMut::strided(&mut dxs[at..], ci, m, stride));
                    gemm(w_re, Left::Fresh, g_im, 0.0, MatMut::strided(&mut dxs[at + f * m..], ci, m, stride));
                    gemm(w_im, Left::Fresh, g_re, 1.0, MatMut::strided(&mut dxs[at + f * m..], ci, m, stride));
                }
            }
            if let Some(d_input) = d_input.as_deref_mut() {
                self.inverse(dxs, ci, h - 2 * p, self.w - 2 * p, p, n, chunk, tmp, 0.0, d_input);
            }
        }
        let kk = self.kernel * self.kernel;
        gemm(
            MatRef::rows(gs, 2 * freqs, pairs).t(),
            Left::Fresh,
            MatRef::rows(&self.weights_back, 2 * freqs, kk),
            0.0,
            MatMut::rows(d_weight, pairs, kk),
        );
    }

    fn out_hw(&self) -> (usize, usize) {
        (self.h - self.kernel + 1, self.w - self.kernel + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::conv2d::Transform;
    use super::super::conv2d::tests::{assert_transform_agrees, layer, time_against_im2col};
    use super::*;

    fn dft(conv: &super::super::conv2d::Conv2d) -> Transform {
        let [ci, h, w] = conv.in_shape;
        Transform::Dft(Dft::new(ci, conv.out_shape[0], h, w, conv.kernel, conv.padding))
    }

    #[test]
    fn agrees_with_im2col_up_to_rounding() {
        for (conv, n) in [
            (layer([64, 14, 14], [64, 10, 10], 5, 1, 0), 20), // cifar10_cnn's second convolution
            (layer([3, 9, 7], [5, 7, 5], 3, 1, 0), 7),
            (layer([4, 6, 6], [3, 4, 4], 3, 1, 0), 300), // three chunks of samples, the last short
            (layer([2, 5, 6], [3, 1, 2], 5, 1, 0), 3),
            // the digits CNN's two convolutions, padded, and an odd width with padding 2
            (layer([1, 8, 8], [16, 8, 8], 3, 1, 1), 10),
            (layer([16, 4, 4], [32, 4, 4], 3, 1, 1), 30),
            (layer([3, 6, 5], [4, 6, 5], 5, 1, 2), 4),
        ] {
            assert_transform_agrees(&conv, dft(&conv), n);
        }
    }

    #[test]
    #[ignore = "timing: cargo test --release --lib dft_against_im2col -- --ignored --nocapture"]
    fn dft_against_im2col_timing() {
        let conv = layer([64, 14, 14], [64, 10, 10], 5, 1, 0);
        time_against_im2col(&conv, dft(&conv), 100, 5);
    }
}
