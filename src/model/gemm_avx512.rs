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
//! strides fit one form (the dot form only for thin products, [`THIN_DOT`]), and
//! `matrixmultiply` otherwise. On digits_cnn at batch 100, packing was a quarter of an SGD step
//! with `matrixmultiply` alone; with these kernels the STSyn round of `stsyn bench-round --model
//! digits` takes 8–10 % less and the cifar10_cnn step 4–8 % less. A layer that multiplies the
//! same weights with many column chunks packs them once ([`Left::Keep`], [`Left::Kept`]):
//! repacking per chunk cost cifar10_cnn's second convolution a third of its speed.
#![allow(unsafe_code)]

use std::arch::x86_64::*;
use std::sync::OnceLock;

use super::gemm::{MatMut, MatRef};
use super::gemm_bf16::Left;

/// Rows of `a` per panel in the rows form.
pub(crate) const MR: usize = 8;
/// Floats of `b` per kernel call in the rows form (three vectors).
const NR: usize = 48;
/// Depth of one block of `k` in the rows form: a 48-column stripe of `b` is 24 KiB, so it stays
/// in L1 while every panel of `a` passes over it.
fn kc_exp() -> usize {
    static V: OnceLock<usize> = OnceLock::new();
    *V.get_or_init(|| std::env::var("KC").ok().and_then(|v| v.parse().ok()).unwrap_or(128))
}
/// Rows of `a` and of `bᵀ` per block in the dot form (4 × 6 = 24 accumulators).
pub(crate) const DR: usize = 4;
pub(crate) const DC: usize = 6;

/// The dot form runs only where `a` or `bᵀ` has at most this many rows; otherwise
/// `matrixmultiply` is faster. Measured on an AVX-512 Xeon (GFLOP/s, dot form against
/// `matrixmultiply`, each product alone): 94 vs 36 for 16 × 6,400 × 10 and 55 vs 43 for
/// 100 × 64 × 10; but 87 vs 115 for 100 × 128 × 64 and 64 vs 141 for 64 × 100 × 1,601, where
/// the 24 rows that one block streams outgrow L1. For 32 × 1,600 × 145 (digits_cnn's second
/// weight gradient) the dot form won alone (116 vs 96) but lost inside the SGD step (0.63
/// against 0.60 ms per step), so 16, not 32. The rows form won or tied on every
/// product of the two CNNs (for example 171 vs 110 for 32 × 145 × 1,600 and 154 vs 125 for
/// 64 × 1,601 × 100 with the weights packed once).
const THIN_DOT: usize = 16;

/// Whether this CPU runs the kernels (AVX-512 F with FMA; checked once).
pub(crate) fn available() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma"))
}

/// The left factor of the rows form, packed: ⌈m/MR⌉ panels of `k` groups of [`MR`] floats.
#[derive(Default)]
struct Panels {
    data: Vec<f32>,
    rows: usize,
    cols: usize,
}

/// Per-thread packings of the left factor: one for a single product, one kept for the products
/// that follow with the same factor ([`Left`]).
#[derive(Default)]
struct Packings {
    fresh: Panels,
    kept: Panels,
}

thread_local! {
    static PACKINGS: std::cell::RefCell<Packings> = std::cell::RefCell::new(Packings::default());
}

/// Runs `c ← a·b + beta·c` if the CPU has AVX-512, no dimension is zero, and the strides and
/// shapes suit one of the two forms ([`THIN_DOT`]); returns whether it did.
/// `left` says whether the packing of `a` is kept for (or taken from) a neighbouring call, as in
/// the bf16 products; a kept packing of another shape is replaced.
pub(crate) fn try_gemm(a: MatRef<'_>, left: Left, b: MatRef<'_>, beta: f32, c: MatMut<'_>) -> bool {
    let suits = b.col_stride == 1 || a.rows.min(b.cols) <= THIN_DOT;
    suits && any_shape(a, left, b, beta, c)
}

/// [`try_gemm`] whatever the shapes.
fn any_shape(a: MatRef<'_>, left: Left, b: MatRef<'_>, beta: f32, c: MatMut<'_>) -> bool {
    if !available() || a.rows == 0 || a.cols == 0 || b.cols == 0 {
        return false;
    }
    check_bounds(&a, &b, &c);
    if b.col_stride == 1 {
        PACKINGS.with_borrow_mut(|packings| {
            let panels = if left == Left::Fresh { &mut packings.fresh } else { &mut packings.kept };
            if left != Left::Kept || (panels.rows, panels.cols) != (a.rows, a.cols) {
                pack_panels(a, panels);
            }
            // SAFETY: the CPU has AVX-512 F and FMA; `check_bounds` keeps every access inside
            // the slices, and `panels` holds ⌈m/MR⌉·MR·k floats.
            unsafe { rows_form(&panels.data, a.rows, a.cols, b, beta, c) }
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
/// l)` at `(p·k + l)·MR + r`), rows beyond m zero. Reads along whichever stride of `a` is 1.
fn pack_panels(a: MatRef<'_>, panels: &mut Panels) {
    let (m, k) = (a.rows, a.cols);
    panels.data.clear();
    panels.data.resize(m.div_ceil(MR) * MR * k, 0.0);
    (panels.rows, panels.cols) = (m, k);
    for (p, panel) in panels.data.chunks_exact_mut(MR * k).enumerate() {
        let rows = MR.min(m - p * MR);
        let first = p * MR * a.row_stride;
        if a.row_stride == 1 {
            // a transposed view: the panel's rows of one column are adjacent
            for (l, group) in panel.chunks_exact_mut(MR).enumerate() {
                group[..rows].copy_from_slice(&a.data[first + l * a.col_stride..][..rows]);
            }
        } else {
            for (l, group) in panel.chunks_exact_mut(MR).enumerate() {
                for (r, g) in group[..rows].iter_mut().enumerate() {
                    *g = a.data[first + r * a.row_stride + l * a.col_stride];
                }
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
    let kcb = kc_exp();
    for k0 in (0..k).step_by(kcb) {
        let kc = kcb.min(k - k0);
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
                    assert!(any_shape(
                        a_view,
                        Left::Fresh,
                        MatRef::rows(b, k, n),
                        beta,
                        MatMut::strided(&mut got, m, n, ldc)
                    ));
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
                assert!(any_shape(
                    MatRef::rows(&a, m, k),
                    Left::Fresh,
                    bt_view.t(),
                    beta,
                    MatMut::strided(&mut got, m, n, ldc)
                ));
                dot_oracle(MatRef::rows(&a, m, k), bt_view, beta, &mut want, ldc);
                assert!(
                    got.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "dot form {m}×{k}×{n} β={beta}"
                );
            }
        }
    }

    #[test]
    fn a_kept_packing_gives_the_bits_of_a_fresh_one_and_is_replaced_for_another_shape() {
        if !available() {
            return;
        }
        let (m, k, n) = (9, 20, 33);
        let (a, a2, b) = (values(m * k, 1), values(m * (k + 1), 2), values((k + 1) * n, 3));
        let run = |a: &[f32], k: usize, left: Left| {
            let mut c = vec![0.0f32; m * n];
            assert!(any_shape(MatRef::rows(a, m, k), left, MatRef::rows(&b, k, n), 0.0, MatMut::rows(&mut c, m, n)));
            c
        };
        let fresh = run(&a, k, Left::Fresh);
        assert_eq!(run(&a, k, Left::Keep), fresh);
        assert_eq!(run(&a, k, Left::Kept), fresh);
        // a Kept call with another shape packs its own factor
        let fresh2 = run(&a2, k + 1, Left::Fresh);
        assert_eq!(run(&a2, k + 1, Left::Kept), fresh2);
    }

    #[test]
    fn unsuited_strides_are_left_to_the_fallback() {
        let a = values(12, 1);
        let b = values(12, 2);
        let mut c = vec![0.0; 9];
        // a with a column stride and b with neither unit stride: neither form
        let a_view = MatRef { data: &a, rows: 3, cols: 2, row_stride: 1, col_stride: 3 };
        let b_view = MatRef { data: &b, rows: 2, cols: 3, row_stride: 6, col_stride: 2 };
        assert!(!any_shape(a_view, Left::Fresh, b_view, 0.0, MatMut::rows(&mut c, 3, 3)));
    }
}
