//! `f32` matrix products on AVX-512 that read the right factor where it lies instead of packing
//! it, for `c ← a·b + beta·c` where the rows of `b` are contiguous (convolution forward and input
//! gradient, linear input and weight gradients). `a` is packed into panels of [`MR`] rows (a
//! layer that multiplies the same weights with many column chunks packs them once:
//! [`Left::Keep`], [`Left::Kept`]), and each step of the kernel loads up to 48 consecutive
//! floats of one row of `b` and adds their products with [`MR`] broadcast elements of `a` into
//! 24 accumulators.
//!
//! The sums are `matrixmultiply`'s, bit for bit (tested against it): `k` is split into blocks of
//! [`KC`] = 256 from the start, each output sums a block by a chain of fused multiply-adds from
//! zero, in order, and adds that to `beta·c` after the first block and to `c` after the others.
//! Switching kernels therefore changes no result (unless `matrixmultiply` is built with another
//! block depth through its `MATMUL_SGEMM_KC` variable). Single-threaded and deterministic: no path
//! depends on where the buffers lie (masked loads and stores handle the edges).
//!
//! [`super::gemm::gemm`] uses this where the CPU has AVX-512 F and `b` has unit column stride,
//! and `matrixmultiply` otherwise. `matrixmultiply` packs both factors for every product; on
//! digits_cnn at batch 100 that packing was a quarter of an SGD step.
#![allow(unsafe_code)]

use std::arch::x86_64::*;
use std::sync::OnceLock;

use super::gemm::{MatMut, MatRef};
use super::gemm_bf16::Left;

/// Rows of `a` per panel.
pub(crate) const MR: usize = 8;
/// Floats of `b` per kernel call (three vectors).
const NR: usize = 48;
/// Depth of one block of `k`: `matrixmultiply`'s `S_KC`, whose blocks the sums must follow. A
/// 48-column stripe of `b` is then 48 KiB, read from L1 or L2 by every panel of `a`.
const KC: usize = 256;

/// Whether this CPU runs the kernels (AVX-512 F with FMA; checked once).
pub(crate) fn available() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma"))
}

/// The left factor, packed: ⌈m/MR⌉ panels of `k` groups of [`MR`] floats.
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

/// Runs `c ← a·b + beta·c` if the CPU has AVX-512, no dimension is zero and the rows of `b`
/// are contiguous; returns whether it did. `left` says whether the packing of `a` is kept for
/// (or taken from) a neighbouring call, as in the bf16 products; a kept packing of another shape
/// is replaced.
pub(crate) fn try_gemm(a: MatRef<'_>, left: Left, b: MatRef<'_>, beta: f32, c: MatMut<'_>) -> bool {
    if !available() || a.rows == 0 || a.cols == 0 || b.cols == 0 || b.col_stride != 1 {
        return false;
    }
    check_bounds(&a, &b, &c);
    PACKINGS.with_borrow_mut(|packings| {
        let panels = if left == Left::Fresh { &mut packings.fresh } else { &mut packings.kept };
        if left != Left::Kept || (panels.rows, panels.cols) != (a.rows, a.cols) {
            pack_panels(a, panels);
        }
        // SAFETY: the CPU has AVX-512 F and FMA; `check_bounds` keeps every access inside the
        // slices, and `panels` holds ⌈m/MR⌉·MR·k floats.
        unsafe { multiply(&panels.data, a.rows, a.cols, b, beta, c) }
    });
    true
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

/// `c ← a·b + beta·c` over the packed panels of `a` (m × k).
///
/// # Safety
/// AVX-512 F and FMA; m, k, n > 0; `b` and `c` inside their slices with agreeing shapes;
/// `panels` packed by [`pack_panels`].
#[target_feature(enable = "avx512f,fma")]
unsafe fn multiply(panels: &[f32], m: usize, k: usize, b: MatRef<'_>, beta: f32, c: MatMut<'_>) {
    let n = b.cols;
    let c_ptr = c.data.as_mut_ptr();
    for k0 in (0..k).step_by(KC) {
        let kc = KC.min(k - k0);
        let add_to = if k0 == 0 { AddTo::from(beta) } else { AddTo::C };
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
                        3 => tile_product::<3>(tile, add_to, beta),
                        2 => tile_product::<2>(tile, add_to, beta),
                        _ => tile_product::<1>(tile, add_to, beta),
                    }
                }
            }
        }
    }
}

/// What a block's sums are added to when they are stored.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AddTo {
    /// Nothing: they overwrite `c` (beta = 0).
    Nothing,
    /// `c` (beta = 1, or a later block of `k`).
    C,
    /// `beta·c`, rounded before the addition.
    ScaledC,
}

impl From<f32> for AddTo {
    fn from(beta: f32) -> Self {
        if beta == 0.0 {
            AddTo::Nothing
        } else if beta == 1.0 {
            AddTo::C
        } else {
            AddTo::ScaledC
        }
    }
}

/// One kernel call: `rows` ≤ MR output rows × `cols` ≤ 16·NV columns, over
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
/// As [`multiply`]; `cols` > 16·(NV − 1).
#[target_feature(enable = "avx512f,fma")]
#[inline]
unsafe fn tile_product<const NV: usize>(t: Tile, add_to: AddTo, beta: f32) {
    let masks: [__mmask16; NV] = std::array::from_fn(|v| mask(t.cols - 16 * v));
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
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
    let scale = _mm512_set1_ps(beta);
    for (r, acc_row) in acc.iter().enumerate().take(t.rows) {
        for (v, &sum) in acc_row.iter().enumerate() {
            let at = unsafe { t.c.add(r * t.ldc + 16 * v) };
            let out = match add_to {
                AddTo::Nothing => sum,
                AddTo::C => _mm512_add_ps(sum, unsafe { _mm512_maskz_loadu_ps(masks[v], at) }),
                AddTo::ScaledC => {
                    _mm512_add_ps(sum, _mm512_mul_ps(unsafe { _mm512_maskz_loadu_ps(masks[v], at) }, scale))
                }
            };
            unsafe { _mm512_mask_storeu_ps(at, masks[v], out) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::linalg::general_mat_mul;
    use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};

    /// Deterministic values with varied exponents, so that any change of order shows in the bits.
    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let h = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed.wrapping_mul(40_503));
                ((h >> 8) as f32 / (1 << 24) as f32 - 0.5) * (1.0 + (h % 7) as f32)
            })
            .collect()
    }

    /// `c ← a·b + beta·c` by `matrixmultiply`, the reference.
    fn reference(a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: &mut [f32], ldc: usize) {
        fn view(m: MatRef<'_>) -> ArrayView2<'_, f32> {
            let len = (m.rows - 1) * m.row_stride + (m.cols - 1) * m.col_stride + 1;
            ArrayView2::from_shape((m.rows, m.cols).strides((m.row_stride, m.col_stride)), &m.data[..len]).unwrap()
        }
        let len = (a.rows - 1) * ldc + b.cols;
        let mut cv = ArrayViewMut2::from_shape((a.rows, b.cols).strides((ldc, 1)), &mut c[..len]).unwrap();
        general_mat_mul(1.0, &view(a), &view(b), beta, &mut cv);
    }

    #[test]
    fn products_equal_matrixmultiply_bit_for_bit() {
        if !available() {
            eprintln!("skipped: no AVX-512");
            return;
        }
        // edges of every blocking: rows around MR, columns around 16 and NR, depth around KC
        let shapes = [(1, 1, 1), (3, 5, 17), (8, 256, 48), (9, 257, 49), (17, 600, 100), (16, 10, 6400), (5, 33, 7)];
        for &(m, k, n) in &shapes {
            for &beta in &[0.0f32, 1.0, 0.5] {
                let (a, at) = (values(m * k, 1), values(k * m, 4));
                // one float past the allocation's start, so that rows straddle cache lines
                let b_buf = values(k * n + 1, 2);
                let b = MatRef::rows(&b_buf[1..], k, n);
                let ldc = n + 3;
                let c0 = values(m * ldc, 3);
                // a row-major, and a transposed view of a k × m buffer
                for a_view in [MatRef::rows(&a, m, k), MatRef::rows(&at, k, m).t()] {
                    let (mut got, mut want) = (c0.clone(), c0.clone());
                    assert!(try_gemm(a_view, Left::Fresh, b, beta, MatMut::strided(&mut got, m, n, ldc)));
                    reference(a_view, b, beta, &mut want, ldc);
                    assert!(got.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()), "{m}×{k}×{n} β={beta}");
                }
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
            assert!(try_gemm(MatRef::rows(a, m, k), left, MatRef::rows(&b, k, n), 0.0, MatMut::rows(&mut c, m, n)));
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
    fn a_right_factor_without_contiguous_rows_is_left_to_matrixmultiply() {
        let (a, b) = (values(6, 1), values(6, 2));
        let mut c = vec![0.0; 9];
        let b_view = MatRef::rows(&b, 3, 2).t();
        assert!(!try_gemm(MatRef::rows(&a, 3, 2), Left::Fresh, b_view, 0.0, MatMut::rows(&mut c, 3, 3)));
    }
}

/// Not a test: the measurement behind the per-shape figures in README.md and
/// benches/HISTORY.md, `cargo test --release --lib products_alone -- --ignored --nocapture`.
/// It times each product shape of cifar10_cnn and digits_cnn at batch 100 with this kernel and
/// with `matrixmultiply` alone, and asserts nothing about the times.
#[cfg(test)]
mod measure {
    use super::*;
    use ndarray::linalg::general_mat_mul;
    use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};

    #[test]
    #[ignore]
    fn products_alone_against_matrixmultiply() {
        if !available() {
            eprintln!("no AVX-512: nothing to measure");
            return;
        }
        // (what, m, k, n, a stored transposed, weights kept across calls)
        let shapes = [
            ("digits conv1 forward", 16, 10, 6400, false, true),
            ("digits conv2 forward", 32, 145, 1600, false, true),
            ("digits conv2 input gradient", 144, 32, 1600, true, true),
            ("digits linear1 weight gradient", 64, 100, 128, true, false),
            ("digits linear1 input gradient", 100, 64, 128, false, false),
            ("cifar conv1 forward", 64, 76, 900, false, true),
            ("cifar conv2 forward", 64, 1601, 100, false, true),
            ("cifar conv2 input gradient", 1600, 64, 100, true, true),
            ("cifar linear1 weight gradient", 384, 100, 1600, true, false),
            ("cifar linear1 input gradient", 100, 384, 1600, false, false),
        ];
        for (what, m, k, n, transposed, kept) in shapes {
            let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 * 0.1).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.1).collect();
            let mut c = vec![0.0f32; m * n];
            let a_view = if transposed { MatRef::rows(&a, k, m).t() } else { MatRef::rows(&a, m, k) };
            let b_view = MatRef::rows(&b, k, n);
            let reps = (1e9 / (m * k * n) as f64).ceil() as usize;
            let start = std::time::Instant::now();
            for rep in 0..reps {
                let left = match (kept, rep) {
                    (false, _) => Left::Fresh,
                    (true, 0) => Left::Keep,
                    (true, _) => Left::Kept,
                };
                assert!(try_gemm(a_view, left, b_view, 0.0, MatMut::rows(&mut c, m, n)));
            }
            let ours = start.elapsed().as_secs_f64() / reps as f64;
            let strides = if transposed { (1, m) } else { (k, 1) };
            let av = ArrayView2::from_shape((m, k).strides(strides), &a[..]).unwrap();
            let bv = ArrayView2::from_shape((k, n), &b[..]).unwrap();
            let start = std::time::Instant::now();
            for _ in 0..reps {
                general_mat_mul(1.0, &av, &bv, 0.0, &mut ArrayViewMut2::from_shape((m, n), &mut c[..]).unwrap());
            }
            let theirs = start.elapsed().as_secs_f64() / reps as f64;
            let gflop = 2.0 * (m * k * n) as f64 / 1e9;
            eprintln!(
                "{what:32} {m:5} × {k:5} × {n:5}: {:6.1} GFLOP/s, matrixmultiply {:6.1} ({:.2}×)",
                gflop / ours,
                gflop / theirs,
                theirs / ours
            );
        }
    }
}
