//! `f32` matrix products on AVX-512 that read the large factor where it lies instead of packing
//! it. The layers' products come in two forms, and each has its kernel:
//!
//! - **rows form**, `c ← a·b + beta·c` where the rows of `b` are contiguous (convolution forward
//!   and input gradient, linear input and weight gradients): `a` is packed into panels of
//!   [`MR`] rows, and each step of the kernel loads up to 48 consecutive floats of one row of
//!   `b` and adds their products with [`MR`] broadcast elements of `a` into 24 accumulators.
//!   Every output is one chain of fused multiply-adds over `k` in order, started from
//!   `beta·c` (or from `c` when beta = 1, from zero when beta = 0), so the result does not depend
//!   on how the product is blocked.
//! - **dot form**, `c ← a·bᵀ + beta·c` where the rows of `a` and of `bᵀ` are contiguous
//!   (convolution weight gradient, linear forward): [`DR`] rows of `a` against [`DC`] rows of
//!   `bᵀ`, each output a 16-lane partial sum along the rows (lane `l` sums the elements whose
//!   index is `l` mod 16, in order) that is reduced at the end in a fixed tree ([`hsum`]), then
//!   `c ← sum + beta·c`.
//!
//! Both are single-threaded and deterministic: the same inputs give the same bits on every call
//! and wherever the buffers lie (masked loads and stores handle the edges; no path depends on
//! alignment). The tests compare them with scalar code that performs the same operations in the
//! same order, bit for bit. [`super::gemm::gemm`] uses them where the CPU has AVX-512 F and the
//! strides fit one form and the large factor is wide enough ([`WIDE_ROWS`], [`WIDE_DOT`]), and
//! `matrixmultiply` otherwise. On digits_cnn at batch 100, packing was a quarter of an SGD step
//! with `matrixmultiply` alone; with these kernels for the convolutions the step takes about
//! 10 % less.
#![allow(unsafe_code)]

use std::arch::x86_64::*;
use std::sync::OnceLock;

use super::gemm::{MatMut, MatRef};

/// Rows of `a` per panel in the rows form.
pub(crate) const MR: usize = 8;
/// Floats of `b` per kernel call in the rows form (three vectors).
const NR: usize = 48;
/// Depth of one block of `k` in the rows form: a 48-column stripe of `b` is 24 KiB, so it stays
/// in L1 while every panel of `a` passes over it.
const KC: usize = 128;
/// Rows of `a` and of `bᵀ` per block in the dot form (4 × 6 = 24 accumulators).
pub(crate) const DR: usize = 4;
pub(crate) const DC: usize = 6;

/// Narrowest `b` (columns) for the rows form, and shortest rows for the dot form. Below them
/// `matrixmultiply` is as fast or faster (measured on an AVX-512 Xeon: the rows form wins by
/// 5–50 % on the convolutions' 900 to 6,400 columns and loses by up to 30 % on 100 to 384; the
/// dot form wins by 2.6× with rows of 6,400 against 10 and loses on the linear layers' and
/// CIFAR's shorter rows, whose 24 streams outgrow L1).
const WIDE_ROWS: usize = 512;
const WIDE_DOT: usize = 2048;

/// Whether this CPU runs the kernels (AVX-512 F with FMA; checked once).
pub(crate) fn available() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma"))
}

thread_local! {
    static PANELS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `c ← a·b + beta·c` if the CPU has AVX-512, no dimension is zero, and the strides and
/// widths suit one of the two forms ([`WIDE_ROWS`], [`WIDE_DOT`]); returns whether it did.
pub(crate) fn try_gemm(a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: MatMut<'_>) -> bool {
    let wide = if b.col_stride == 1 { b.cols >= WIDE_ROWS } else { a.cols >= WIDE_DOT };
    wide && any_width(a, b, beta, c)
}

/// [`try_gemm`] whatever the widths.
fn any_width(a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: MatMut<'_>) -> bool {
    if !available() || a.rows == 0 || a.cols == 0 || b.cols == 0 {
        return false;
    }
    check_bounds(&a, &b, &c);
    if b.col_stride == 1 {
        PANELS.with_borrow_mut(|panels| {
            pack_panels(a, panels);
            // SAFETY: the CPU has AVX-512 F and FMA; `check_bounds` keeps every access inside
            // the slices, and `panels` holds ⌈m/MR⌉·MR·k floats.
            unsafe { rows_form(panels, a.rows, a.cols, b, beta, c) }
        });
        true
    } else if b.row_stride == 1 && a.col_stride == 1 {
        // SAFETY: as above.
        unsafe { dot_form(a, b.t(), beta, c) };
        true
    } else {
        false
    }
}

fn extent(m: &MatRef<'_>) -> usize {
    if m.rows == 0 || m.cols == 0 { 0 } else { (m.rows - 1) * m.row_stride + (m.cols - 1) * m.col_stride + 1 }
}

/// Panics unless the three matrices lie inside their slices and their shapes agree: the kernels
/// rely on it for the safety of their raw-pointer accesses.
fn check_bounds(a: &MatRef<'_>, b: &MatRef<'_>, c: &MatMut<'_>) {
    assert!(a.cols == b.rows && a.rows == c.rows && b.cols == c.cols, "product shapes");
    assert!(extent(a) <= a.data.len() && extent(b) <= b.data.len(), "factor outside its slice");
    let c_extent = if c.rows == 0 || c.cols == 0 { 0 } else { (c.rows - 1) * c.row_stride + c.cols };
    assert!(c_extent <= c.data.len(), "product outside its slice");
    assert!(c.rows <= 1 || c.row_stride >= c.cols, "output rows overlap");
}

/// Packs `a` (m × k) into ⌈m/MR⌉ panels, each `k` groups of [`MR`] floats (element `(p·MR + r,
/// l)` at `(p·k + l)·MR + r`), rows beyond m zero.
pub(crate) fn pack_panels(a: MatRef<'_>, panels: &mut Vec<f32>) {
    let (m, k) = (a.rows, a.cols);
    let len = m.div_ceil(MR) * MR * k;
    panels.clear();
    panels.resize(len, 0.0);
    for (p, panel) in panels.chunks_exact_mut(MR * k.max(1)).enumerate().take(m.div_ceil(MR)) {
        for r in 0..MR.min(m - p * MR) {
            let row = p * MR + r;
            for l in 0..k {
                panel[l * MR + r] = a.data[row * a.row_stride + l * a.col_stride];
            }
        }
    }
}

/// Lanes `0..n` of a 16-lane mask.
fn mask(n: usize) -> __mmask16 {
    if n >= 16 { 0xffff } else { (1u16 << n) - 1 }
}

/// The rows form over the packed panels of `a` (m × k).
///
/// # Safety
/// AVX-512 F and FMA; m, k, n > 0; `b` and `c` inside their slices with agreeing shapes;
/// `panels` packed by [`pack_panels`].
#[target_feature(enable = "avx512f,fma")]
unsafe fn rows_form(panels: &[f32], m: usize, k: usize, b: MatRef<'_>, beta: f32, c: MatMut<'_>) {
    let n = b.cols;
    let c_ptr = c.data.as_mut_ptr();
    for k0 in (0..k).step_by(KC) {
        let kc = KC.min(k - k0);
        let start = if k0 == 0 { Start::from(beta) } else { Start::Load };
        for j0 in (0..n).step_by(NR) {
            let cols = NR.min(n - j0);
            let b_ptr = unsafe { b.data.as_ptr().add(k0 * b.row_stride + j0) };
            for p in 0..m.div_ceil(MR) {
                let a_ptr = unsafe { panels.as_ptr().add((p * k + k0) * MR) };
                let rows = MR.min(m - p * MR);
                let c_tile = unsafe { c_ptr.add(p * MR * c.row_stride + j0) };
                let tile = Tile { kc, a: a_ptr, b: b_ptr, ldb: b.row_stride, c: c_tile, ldc: c.row_stride, rows, cols };
                unsafe {
                    match cols.div_ceil(16) {
                        3 => rows_tile::<3>(tile, start, beta),
                        2 => rows_tile::<2>(tile, start, beta),
                        _ => rows_tile::<1>(tile, start, beta),
                    }
                }
            }
        }
    }
}

/// What the accumulators start from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Start {
    Zero,
    /// `c` itself (beta = 1, or a later block of `k`).
    Load,
    /// `beta·c`.
    Scaled,
}

impl From<f32> for Start {
    fn from(beta: f32) -> Self {
        if beta == 0.0 {
            Start::Zero
        } else if beta == 1.0 {
            Start::Load
        } else {
            Start::Scaled
        }
    }
}

/// One kernel call of the rows form: `rows` ≤ MR outputs rows × `cols` ≤ 16·NV columns, over
/// `kc` steps.
#[derive(Clone, Copy)]
struct Tile {
    kc: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
}

/// # Safety
/// As [`rows_form`]; `cols` > 16·(NV − 1).
#[target_feature(enable = "avx512f,fma")]
#[inline]
unsafe fn rows_tile<const NV: usize>(t: Tile, start: Start, beta: f32) {
    let masks: [__mmask16; NV] = std::array::from_fn(|v| mask(t.cols - 16 * v));
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    if start != Start::Zero {
        let scale = _mm512_set1_ps(beta);
        for (r, acc_row) in acc.iter_mut().enumerate().take(t.rows) {
            for (v, a) in acc_row.iter_mut().enumerate() {
                let loaded = unsafe { _mm512_maskz_loadu_ps(masks[v], t.c.add(r * t.ldc + 16 * v)) };
                *a = if start == Start::Scaled { _mm512_mul_ps(loaded, scale) } else { loaded };
            }
        }
    }
    for l in 0..t.kc {
        let b_row = unsafe { t.b.add(l * t.ldb) };
        let bv: [__m512; NV] = std::array::from_fn(|v| unsafe { _mm512_maskz_loadu_ps(masks[v], b_row.add(16 * v)) });
        let a_group = unsafe { t.a.add(l * MR) };
        for (r, acc_row) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(unsafe { *a_group.add(r) });
            for (a, &b) in acc_row.iter_mut().zip(&bv) {
                *a = _mm512_fmadd_ps(av, b, *a);
            }
        }
    }
    for (r, acc_row) in acc.iter().enumerate().take(t.rows) {
        for (v, &a) in acc_row.iter().enumerate() {
            unsafe { _mm512_mask_storeu_ps(t.c.add(r * t.ldc + 16 * v), masks[v], a) };
        }
    }
}

/// The dot form `c ← a·btᵀ + beta·c`, `a` (m × L) and `bt` (n × L) with contiguous rows.
///
/// # Safety
/// AVX-512 F and FMA; m, L, n > 0; all three inside their slices with agreeing shapes; unit
/// column strides for `a` and `bt`.
#[target_feature(enable = "avx512f,fma")]
unsafe fn dot_form(a: MatRef<'_>, bt: MatRef<'_>, beta: f32, c: MatMut<'_>) {
    let (m, n, len) = (a.rows, bt.rows, a.cols);
    for i0 in (0..m).step_by(DR) {
        for j0 in (0..n).step_by(DC) {
            // rows past the end repeat the last row; their sums are not stored
            let a_rows: [*const f32; DR] =
                std::array::from_fn(|r| unsafe { a.data.as_ptr().add((i0 + r).min(m - 1) * a.row_stride) });
            let b_rows: [*const f32; DC] =
                std::array::from_fn(|r| unsafe { bt.data.as_ptr().add((j0 + r).min(n - 1) * bt.row_stride) });
            let mut acc = [[_mm512_setzero_ps(); DC]; DR];
            for l0 in (0..len).step_by(16) {
                let lanes = mask(len - l0);
                let av: [__m512; DR] =
                    std::array::from_fn(|r| unsafe { _mm512_maskz_loadu_ps(lanes, a_rows[r].add(l0)) });
                for (s, &b_row) in b_rows.iter().enumerate() {
                    let bv = unsafe { _mm512_maskz_loadu_ps(lanes, b_row.add(l0)) };
                    for (acc_row, &x) in acc.iter_mut().zip(&av) {
                        acc_row[s] = _mm512_fmadd_ps(x, bv, acc_row[s]);
                    }
                }
            }
            for (r, acc_row) in acc.iter().enumerate().take(m - i0) {
                for (s, &sum) in acc_row.iter().enumerate().take(n - j0) {
                    let out = &mut c.data[(i0 + r) * c.row_stride + j0 + s];
                    let total = hsum(sum);
                    *out = if beta == 0.0 { total } else { beta.mul_add(*out, total) };
                }
            }
        }
    }
}

/// The sum of the 16 lanes in a fixed tree, in registers: lane l + lane l+8, then + 4, + 2, + 1
/// (the order the tests replay).
#[target_feature(enable = "avx512f")]
#[inline]
fn hsum(v: __m512) -> f32 {
    let v = _mm512_add_ps(v, _mm512_shuffle_f32x4::<0b01_00_11_10>(v, v));
    let v = _mm512_add_ps(v, _mm512_shuffle_f32x4::<0b10_11_00_01>(v, v));
    let v = _mm512_add_ps(v, _mm512_permute_ps::<0b01_00_11_10>(v));
    let v = _mm512_add_ps(v, _mm512_permute_ps::<0b10_11_00_01>(v));
    _mm512_cvtss_f32(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`hsum`]'s order on an array, replayed by the oracle.
    fn tree_sum(mut lanes: [f32; 16]) -> f32 {
        let mut width = 8;
        while width > 0 {
            for l in 0..width {
                lanes[l] += lanes[l + width];
            }
            width /= 2;
        }
        lanes[0]
    }

    /// Deterministic values with varied exponents, so that any change of order shows in the bits.
    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let h = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed.wrapping_mul(40_503));
                ((h >> 8) as f32 / (1 << 24) as f32 - 0.5) * (1.0 + (h % 7) as f32)
            })
            .collect()
    }

    /// The rows form's order: for each output, `start` then one fused multiply-add per `l`.
    fn rows_oracle(a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: &mut [f32], ldc: usize) {
        for i in 0..a.rows {
            for j in 0..b.cols {
                let old = c[i * ldc + j];
                let mut s = if beta == 0.0 {
                    0.0
                } else if beta == 1.0 {
                    old
                } else {
                    old * beta
                };
                for l in 0..a.cols {
                    s = a.data[i * a.row_stride + l * a.col_stride].mul_add(b.data[l * b.row_stride + j], s);
                }
                c[i * ldc + j] = s;
            }
        }
    }

    /// The dot form's order: 16 lane sums by fused multiply-adds, [`tree_sum`], then `beta·c`.
    fn dot_oracle(a: MatRef<'_>, bt: MatRef<'_>, beta: f32, c: &mut [f32], ldc: usize) {
        for i in 0..a.rows {
            for j in 0..bt.rows {
                let mut lanes = [0.0f32; 16];
                for l in 0..a.cols {
                    lanes[l % 16] = a.data[i * a.row_stride + l].mul_add(bt.data[j * bt.row_stride + l], lanes[l % 16]);
                }
                let total = tree_sum(lanes);
                let out = &mut c[i * ldc + j];
                *out = if beta == 0.0 { total } else { beta.mul_add(*out, total) };
            }
        }
    }

    #[test]
    fn both_forms_equal_their_scalar_order_bit_for_bit() {
        if !available() {
            eprintln!("skipped: no AVX-512");
            return;
        }
        // edges of every blocking: rows around MR, DR; columns around 16, NR, DC; depth around KC
        for &(m, k, n) in
            &[(1, 2, 1), (3, 5, 17), (8, 128, 48), (9, 129, 49), (17, 300, 100), (16, 10, 6400), (5, 33, 7)]
        {
            for &beta in &[0.0f32, 1.0, 0.5] {
                let a = values(m * k, 1);
                // one float past the allocation's start, so that rows straddle cache lines
                let b_buf = values(k * n + 1, 2);
                let b = &b_buf[1..];
                let ldc = n + 3;
                let c0 = values(m * ldc, 3);
                // rows form: a row-major, and a transposed view of a k × m buffer
                let at = values(k * m, 4);
                for a_view in [MatRef::rows(&a, m, k), MatRef::rows(&at, k, m).t()] {
                    let (mut got, mut want) = (c0.clone(), c0.clone());
                    assert!(any_width(a_view, MatRef::rows(b, k, n), beta, MatMut::strided(&mut got, m, n, ldc)));
                    rows_oracle(a_view, MatRef::rows(b, k, n), beta, &mut want, ldc);
                    assert!(
                        got.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()),
                        "rows form {m}×{k}×{n} β={beta}"
                    );
                }
                // dot form: b given as bᵀ (n × k) row-major
                let bt = values(n * k, 5);
                let (mut got, mut want) = (c0.clone(), c0.clone());
                let bt_view = MatRef::rows(&bt, n, k);
                assert!(any_width(MatRef::rows(&a, m, k), bt_view.t(), beta, MatMut::strided(&mut got, m, n, ldc)));
                dot_oracle(MatRef::rows(&a, m, k), bt_view, beta, &mut want, ldc);
                assert!(
                    got.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "dot form {m}×{k}×{n} β={beta}"
                );
            }
        }
    }

    #[test]
    fn unsuited_strides_are_left_to_the_fallback() {
        let a = values(12, 1);
        let b = values(12, 2);
        let mut c = vec![0.0; 9];
        // a with a column stride and b with neither unit stride: neither form
        let a_view = MatRef { data: &a, rows: 3, cols: 2, row_stride: 1, col_stride: 3 };
        let b_view = MatRef { data: &b, rows: 2, cols: 3, row_stride: 6, col_stride: 2 };
        assert!(!any_width(a_view, b_view, 0.0, MatMut::rows(&mut c, 3, 3)));
    }
}
