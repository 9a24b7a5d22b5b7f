//! `f32` matrix products on AVX-512 or AVX2 that read the right factor where it lies instead of
//! packing it, for `c ← a·b + beta·c` where the rows of `b` are contiguous (convolution forward
//! and input gradient, linear input and weight gradients); a `b` with contiguous columns instead
//! (the transposed column matrix or output gradient in a convolution's weight gradient) is first
//! copied row-major through 8 × 8 register transposes. `a` is packed into panels of [`MR`] rows
//! (a layer that multiplies the same weights with many column chunks packs them once:
//! [`Left::Keep`], [`Left::Kept`]), except that a factor used once by a narrow product is read
//! where it lies ([`IN_PLACE_MAX_N`]). Either factor may also be given row by row ([`Listed`]:
//! a convolution's column matrix read where its rows lie in the input), and a product may read
//! only listed columns of `a` against a listed `b` ([`try_gemm_listed_right_at`]) or compute only
//! listed rows of `c` ([`try_gemm_rows`]): a convolution leaving out the rows that read its
//! padding. Each step of the kernel loads consecutive floats of one row of `b` and adds their
//! products with broadcast elements of `a` into the accumulators of a tile: on AVX-512 three
//! vectors (48 floats) by 8 rows, 24 of its 32 registers; on AVX2 two vectors (16 floats) by 6
//! rows, 12 of 16 (three vectors by 4 rows would fill all 16 registers: the compiler spilled and
//! ran at half the speed; 8 rows of one vector load too often).
//!
//! The sums are `matrixmultiply`'s, bit for bit (tested against it, in both widths): `k` is split
//! into blocks of [`KC`] = 256 from the start, each output sums a block by a chain of fused
//! multiply-adds from zero, in order, and adds that to `beta·c` after the first block and to `c`
//! after the others. Switching kernels therefore changes no result (unless `matrixmultiply` is
//! built with another block depth through its `MATMUL_SGEMM_KC` variable). Single-threaded and
//! deterministic: no path depends on where the buffers lie (masked loads and stores handle the
//! edges).
//!
//! [`super::gemm::gemm`] uses this where the CPU has AVX-512 F or AVX2, with FMA, and `b` has unit
//! column or row stride, and `matrixmultiply` otherwise. `matrixmultiply` packs both factors for
//! every product; on digits_cnn at batch 100 that packing was a quarter of an SGD step on AVX-512
//! and a fifth on AVX2.
#![allow(unsafe_code)]

use std::arch::x86_64::*;
use std::sync::OnceLock;

use super::gemm::{Listed, MatMut, MatRef};
use super::gemm_bf16::Left;

/// Rows of `a` per panel.
pub(crate) const MR: usize = 8;
/// Most rows of a kernel tile (the AVX-512 kernel's; AVX2 has 6).
const MAX_ROWS: usize = 8;
/// Depth of one block of `k`: `matrixmultiply`'s `S_KC`, whose blocks the sums must follow. A
/// stripe of a tile's width of `b` is then 48 KiB (AVX-512) or 16 KiB (AVX2), read from L1 or
/// L2 by every tile of rows of `a`.
const KC: usize = super::gemm::DEPTH_BLOCK;

/// Widest product (columns of `b`) whose left factor, used once, is read where it lies rather
/// than packed: below it the factor is read by few column stripes and packing does not pay.
/// Measured on the weight gradients of cifar10_cnn and digits_cnn (products_alone below): the
/// digits linear layer (128 columns) is 1.2× faster in place, cifar's (1,600) 1.2× faster packed.
const IN_PLACE_MAX_N: usize = 192;

/// The vector width the kernel runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Width {
    /// 16 floats, 32 registers: AVX-512 F with FMA.
    Avx512,
    /// 8 floats, 16 registers: AVX2 with FMA.
    Avx2,
}

impl Width {
    /// Its name in benchmark reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Width::Avx512 => "avx512",
            Width::Avx2 => "avx2",
        }
    }
}

/// The widest kernel this CPU runs (checked once), or `None`.
fn detected() -> Option<Width> {
    static WIDTH: OnceLock<Option<Width>> = OnceLock::new();
    *WIDTH.get_or_init(|| {
        if !is_x86_feature_detected!("fma") {
            None
        } else if is_x86_feature_detected!("avx512f") {
            Some(Width::Avx512)
        } else if is_x86_feature_detected!("avx2") {
            Some(Width::Avx2)
        } else {
            None
        }
    })
}

#[cfg(test)]
thread_local! {
    /// A narrower width than detected, for testing the AVX2 kernel on an AVX-512 CPU.
    static FORCED: std::cell::Cell<Option<Width>> = const { std::cell::Cell::new(None) };
}

/// Runs `check` in each width this CPU has, forcing AVX2 on an AVX-512 CPU too.
#[cfg(test)]
fn in_each_width(mut check: impl FnMut(Width)) {
    let mut widths = Vec::new();
    if detected() == Some(Width::Avx512) {
        widths.push(Width::Avx512);
    }
    if detected().is_some() && is_x86_feature_detected!("avx2") {
        widths.push(Width::Avx2);
    }
    if widths.is_empty() {
        eprintln!("skipped: neither AVX-512 F nor AVX2, with FMA");
    }
    for width in widths {
        FORCED.set(Some(width));
        check(width);
    }
    FORCED.set(None);
}

/// The width this thread's products run in, or `None` where neither kernel runs.
pub(crate) fn width() -> Option<Width> {
    #[cfg(test)]
    if let (Some(forced), Some(_)) = (FORCED.get(), detected()) {
        return Some(forced);
    }
    detected()
}

/// Whether this CPU runs the kernels (AVX-512 F or AVX2, with FMA; checked once).
pub(crate) fn available() -> bool {
    detected().is_some()
}

/// The left factor, packed: ⌈m/MR⌉ panels of `k` groups of [`MR`] floats.
#[derive(Default)]
struct Panels {
    data: Vec<f32>,
    rows: usize,
    cols: usize,
}

/// Per-thread packings of the left factor: one for a single product, one kept for the products
/// that follow with the same factor ([`Left`]); and the right factor copied row-major when it
/// arrives as a transposed view.
#[derive(Default)]
struct Packings {
    fresh: Panels,
    kept: Panels,
    right: Vec<f32>,
}

thread_local! {
    static PACKINGS: std::cell::RefCell<Packings> = std::cell::RefCell::new(Packings::default());
}

/// Runs `c ← a·b + beta·c` if the CPU has AVX-512 or AVX2 with FMA, no dimension is zero and
/// either the rows or the columns of `b` are contiguous; returns whether it did. A `b` with
/// contiguous columns (a transposed view, as in the weight gradient of a convolution) is first
/// copied row-major.
/// `left` says whether the packing of `a` is kept for (or taken from) a neighbouring call, as in
/// the bf16 products; a kept packing of another shape is replaced.
pub(crate) fn try_gemm(a: MatRef<'_>, left: Left, b: MatRef<'_>, beta: f32, c: MatMut<'_>) -> bool {
    a.rows > 0 && strided_right(a, left, a.rows, Dense, b, beta, c)
}

/// [`try_gemm`] for `m` rows of `a` and `c`, the `i`-th of them row `rows.at(i)`.
fn strided_right<R: IndexMap>(
    a: MatRef<'_>,
    left: Left,
    m: usize,
    rows: R,
    b: MatRef<'_>,
    beta: f32,
    c: MatMut<'_>,
) -> bool {
    if !available() || a.cols == 0 || b.cols == 0 || (b.col_stride != 1 && b.row_stride != 1) {
        return false;
    }
    check_bounds(&a, &b, &c);
    PACKINGS.with_borrow_mut(|packings| {
        let Packings { fresh, kept, right } = packings;
        let a_factor = left_factor(a, left, b.cols, fresh, kept);
        let b = row_major(b, right);
        let b_rows = StridedRows { data: b.data.as_ptr(), stride: b.row_stride };
        // SAFETY: `available()` holds; `check_bounds` keeps every access inside the slices,
        // packed panels hold ⌈m/MR⌉·MR·k floats, and the caller's rows are rows of a and c.
        unsafe { multiply(a_factor, m, a.cols, b_rows, b.cols, Dense, rows, beta, c) }
    });
    true
}

impl Listed<'_> {
    /// The list as the kernels read it. The lifetime is erased: the kernels use it only during
    /// the call that borrows the list.
    fn erased(self) -> *const &'static [f32] {
        assert!(self.rows.iter().all(|row| row.len() >= self.cols), "listed row shorter than its matrix");
        self.rows.as_ptr().cast()
    }
}

/// [`try_gemm`] for a `b` given row by row (`left` as there).
pub(crate) fn try_gemm_listed_right(a: MatRef<'_>, left: Left, b: Listed<'_>, beta: f32, c: MatMut<'_>) -> bool {
    assert_eq!(b.rows.len(), a.cols, "product shapes");
    listed_right(a, left, b, Dense, beta, c)
}

/// [`try_gemm_listed_right`] with only some columns of `a`: `c ← a[:, depths]·b + beta·c`,
/// where row `l` of `b` meets column `depths[l]` of `a` (`left` as there). A layer that leaves
/// out the rows of `b` that are zeros keeps `a` packed whole.
pub(crate) fn try_gemm_listed_right_at(
    a: MatRef<'_>,
    left: Left,
    b: Listed<'_>,
    depths: &[u32],
    beta: f32,
    c: MatMut<'_>,
) -> bool {
    assert!(depths.len() == b.rows.len() && depths.iter().all(|&d| (d as usize) < a.cols), "depths outside the factor");
    listed_right(a, left, b, Indexed(depths.as_ptr()), beta, c)
}

/// [`try_gemm_listed_right`] where row `l` of `b` meets column `depths.at(l)` of `a`; the
/// caller checked that every depth is a column of `a`.
fn listed_right<D: IndexMap>(a: MatRef<'_>, left: Left, b: Listed<'_>, depths: D, beta: f32, c: MatMut<'_>) -> bool {
    let (k, n) = (b.rows.len(), b.cols);
    if !available() || a.rows == 0 || k == 0 || n == 0 {
        return false;
    }
    check_inside(&a);
    check_output((a.rows, k), (k, n), &c);
    let rows = ListedRows(b.erased());
    PACKINGS.with_borrow_mut(|packings| {
        let Packings { fresh, kept, .. } = packings;
        let a_factor = left_factor(a, left, n, fresh, kept);
        // SAFETY: as in `try_gemm`; every listed row holds n floats, every depth is a column of a.
        unsafe { multiply(a_factor, a.rows, k, rows, n, depths, Dense, beta, c) }
    });
    true
}

/// [`try_gemm`] for some rows only: rows `rows` of `c` ← the same rows of `a`, times `b`,
/// `+ beta·c` (`left` as there, for the whole of `a`); the other rows of `c` are not touched.
pub(crate) fn try_gemm_rows(a: MatRef<'_>, left: Left, rows: &[u32], b: MatRef<'_>, beta: f32, c: MatMut<'_>) -> bool {
    assert!(rows.iter().all(|&r| (r as usize) < a.rows), "rows outside the factor");
    !rows.is_empty() && strided_right(a, left, rows.len(), Indexed(rows.as_ptr()), b, beta, c)
}

/// [`try_gemm`] for an `a` given row by row, read where its rows lie.
pub(crate) fn try_gemm_listed_left(a: Listed<'_>, b: MatRef<'_>, beta: f32, c: MatMut<'_>) -> bool {
    let (m, k) = (a.rows.len(), a.cols);
    if !available() || m == 0 || k == 0 || b.cols == 0 || (b.col_stride != 1 && b.row_stride != 1) {
        return false;
    }
    check_inside(&b);
    check_output((m, k), (b.rows, b.cols), &c);
    let a_factor = LeftFactor::Listed(a.erased());
    PACKINGS.with_borrow_mut(|packings| {
        let b = row_major(b, &mut packings.right);
        let rows = StridedRows { data: b.data.as_ptr(), stride: b.row_stride };
        // SAFETY: as in `try_gemm`; every listed row holds k floats.
        unsafe { multiply(a_factor, m, k, rows, b.cols, Dense, Dense, beta, c) }
    });
    true
}

/// The left factor as the kernel reads it: packed (into `kept` for [`Left::Keep`] and
/// [`Left::Kept`], else into `fresh`), or in place when used once by a product of at most
/// [`IN_PLACE_MAX_N`] columns.
fn left_factor(a: MatRef<'_>, left: Left, n: usize, fresh: &mut Panels, kept: &mut Panels) -> LeftFactor {
    match left {
        Left::Fresh if n <= IN_PLACE_MAX_N => LeftFactor::in_place(a),
        Left::Fresh => {
            pack_panels(a, fresh);
            LeftFactor::packed(fresh)
        }
        Left::Keep | Left::Kept => {
            if left == Left::Keep || (kept.rows, kept.cols) != (a.rows, a.cols) {
                pack_panels(a, kept);
            }
            LeftFactor::packed(kept)
        }
    }
}

/// `b` with contiguous rows: itself, or copied row-major into `buffer` when its columns are the
/// contiguous ones.
fn row_major<'b>(b: MatRef<'b>, buffer: &'b mut Vec<f32>) -> MatRef<'b> {
    if b.col_stride == 1 {
        return b;
    }
    let out = grown(buffer, b.rows * b.cols);
    // SAFETY: the CPU has AVX (`available`); the caller checked that b lies inside its slice, and `out`
    // holds k·n floats.
    unsafe { copy_rows(b, out) };
    MatRef::rows(out, b.rows, b.cols)
}

/// Writes the transpose of the row-major `rows × cols` matrix `src` into `dst` (`cols × rows`)
/// by 8 × 8 register transposes, where [`available`] (so AVX); returns whether it did.
pub(crate) fn try_transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) -> bool {
    if !available() {
        return false;
    }
    assert!(src.len() >= rows * cols && dst.len() >= rows * cols, "transpose outside its slices");
    // SAFETY: AVX is available (`available`); `src` seen as the transposed view of a cols × rows
    // matrix lies inside its slice, and `dst` holds rows·cols floats.
    unsafe { copy_rows(MatRef::rows(src, rows, cols).t(), dst) };
    true
}

/// Copies `b` (k × n, unit row stride) row-major into `out`, through 8 × 8 blocks transposed in
/// registers; blocks cut by an edge load and store only their lanes inside it.
///
/// # Safety
/// AVX; `b` inside its slice; `out` holds k·n floats.
#[target_feature(enable = "avx")]
unsafe fn copy_rows(b: MatRef<'_>, out: &mut [f32]) {
    let (k, n, stride) = (b.rows, b.cols, b.col_stride);
    for j0 in (0..n).step_by(8) {
        let width = (n - j0).min(8);
        for l0 in (0..k).step_by(8) {
            let height = (k - l0).min(8);
            let column = |j: usize| unsafe { b.data.as_ptr().add((j0 + j) * stride + l0) };
            let block: [__m256; 8] = std::array::from_fn(|j| match (j < width, height == 8) {
                (false, _) => _mm256_setzero_ps(),
                (true, true) => unsafe { _mm256_loadu_ps(column(j)) },
                (true, false) => unsafe { _mm256_maskload_ps(column(j), first_lanes(height)) },
            });
            for (l, row) in transpose8(block).into_iter().enumerate().take(height) {
                let at = unsafe { out.as_mut_ptr().add((l0 + l) * n + j0) };
                if width == 8 {
                    unsafe { _mm256_storeu_ps(at, row) };
                } else {
                    unsafe { _mm256_maskstore_ps(at, first_lanes(width), row) };
                }
            }
        }
    }
}

/// The AVX lane mask of the first `count` ≤ 8 lanes.
#[target_feature(enable = "avx")]
#[inline]
fn first_lanes(count: usize) -> __m256i {
    const ONES_THEN_ZEROS: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
    // SAFETY: 8 − count ≤ 8, so the 8 lanes read lie inside the table.
    unsafe { _mm256_loadu_si256(ONES_THEN_ZEROS[8 - count..].as_ptr().cast()) }
}

fn extent(m: &MatRef<'_>) -> usize {
    if m.rows == 0 || m.cols == 0 { 0 } else { (m.rows - 1) * m.row_stride + (m.cols - 1) * m.col_stride + 1 }
}

/// Panics unless the three matrices lie inside their slices and their shapes agree: the kernels
/// rely on it for the safety of their raw-pointer accesses.
fn check_bounds(a: &MatRef<'_>, b: &MatRef<'_>, c: &MatMut<'_>) {
    check_inside(a);
    check_inside(b);
    check_output((a.rows, a.cols), (b.rows, b.cols), c);
}

/// Panics unless `m` lies inside its slice.
fn check_inside(m: &MatRef<'_>) {
    assert!(extent(m) <= m.data.len(), "factor outside its slice");
}

/// Panics unless factors of shapes `a` and `b` multiply into `c`, and `c` lies inside its slice
/// without overlapping rows.
fn check_output(a: (usize, usize), b: (usize, usize), c: &MatMut<'_>) {
    assert!(a.1 == b.0 && a.0 == c.rows && b.1 == c.cols, "product shapes");
    let c_extent = if c.rows == 0 || c.cols == 0 { 0 } else { (c.rows - 1) * c.row_stride + c.cols };
    assert!(c_extent <= c.data.len(), "product outside its slice");
    assert!(c.rows <= 1 || c.row_stride >= c.cols, "output rows overlap");
}

/// The first `len` floats of `buffer`, grown if it is shorter. Never shrunk and never cleared:
/// every caller overwrites what it uses, and products of alternating sizes (one layer's, then
/// the next's) would otherwise zero-fill the difference on every call.
fn grown(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    &mut buffer[..len]
}

/// Packs `a` (m × k) into ⌈m/MR⌉ panels, each `k` groups of [`MR`] floats (element `(p·MR + r,
/// l)` at `(p·k + l)·MR + r`), rows beyond m zero. Reads along whichever stride of `a` is 1;
/// a row-major `a` goes through 8 × 8 blocks transposed in registers.
fn pack_panels(a: MatRef<'_>, panels: &mut Panels) {
    let (m, k) = (a.rows, a.cols);
    (panels.rows, panels.cols) = (m, k);
    for (p, panel) in grown(&mut panels.data, m.div_ceil(MR) * MR * k).chunks_exact_mut(MR * k).enumerate() {
        let rows = MR.min(m - p * MR);
        let first = p * MR * a.row_stride;
        let mut done = 0;
        if a.col_stride == 1 && rows == MR {
            // SAFETY: AVX is available wherever this module runs; the 8 rows of
            // `k` floats from `first` lie inside `a`, and the panel holds k groups.
            unsafe { done = pack_rows_by_blocks(&a.data[first..], a.row_stride, k, panel) };
        }
        for (l, group) in panel.chunks_exact_mut(MR).enumerate().skip(done) {
            if a.row_stride == 1 {
                // a transposed view: the panel's rows of one column are adjacent
                group[..rows].copy_from_slice(&a.data[first + l * a.col_stride..][..rows]);
                group[rows..].fill(0.0);
            } else {
                for (r, g) in group.iter_mut().enumerate() {
                    *g = if r < rows { a.data[first + r * a.row_stride + l * a.col_stride] } else { 0.0 };
                }
            }
        }
    }
}

/// Packs columns `0..8·⌊k/8⌋` of the 8 rows of `k` floats at `rows` (`stride` apart) into `panel`,
/// 8 columns at a time, and returns how many it packed.
///
/// # Safety
/// AVX; the rows lie inside `rows`; `panel` holds `k` groups of 8.
#[target_feature(enable = "avx")]
unsafe fn pack_rows_by_blocks(rows: &[f32], stride: usize, k: usize, panel: &mut [f32]) -> usize {
    let whole = k / 8 * 8;
    for l0 in (0..whole).step_by(8) {
        let block: [__m256; 8] =
            std::array::from_fn(|r| unsafe { _mm256_loadu_ps(rows.as_ptr().add(r * stride + l0)) });
        for (l, column) in transpose8(block).into_iter().enumerate() {
            unsafe { _mm256_storeu_ps(panel.as_mut_ptr().add((l0 + l) * MR), column) };
        }
    }
    whole
}

/// The transpose of an 8 × 8 block held as 8 rows: the unpack, shuffle and lane-permute network.
#[target_feature(enable = "avx")]
#[inline]
fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    let t: [__m256; 8] = [
        _mm256_unpacklo_ps(r[0], r[1]),
        _mm256_unpackhi_ps(r[0], r[1]),
        _mm256_unpacklo_ps(r[2], r[3]),
        _mm256_unpackhi_ps(r[2], r[3]),
        _mm256_unpacklo_ps(r[4], r[5]),
        _mm256_unpackhi_ps(r[4], r[5]),
        _mm256_unpacklo_ps(r[6], r[7]),
        _mm256_unpackhi_ps(r[6], r[7]),
    ];
    let u: [__m256; 8] = [
        _mm256_shuffle_ps::<0x44>(t[0], t[2]),
        _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
        _mm256_shuffle_ps::<0x44>(t[1], t[3]),
        _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
        _mm256_shuffle_ps::<0x44>(t[4], t[6]),
        _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
        _mm256_shuffle_ps::<0x44>(t[5], t[7]),
        _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
    ];
    std::array::from_fn(|c| {
        if c < 4 {
            _mm256_permute2f128_ps::<0x20>(u[c], u[c + 4])
        } else {
            _mm256_permute2f128_ps::<0x31>(u[c - 4], u[c])
        }
    })
}

/// Where the left factor lies.
#[derive(Clone, Copy)]
enum LeftFactor {
    /// Element `(p·MR + r, l)` at `data + p·panel + r·row + l·col`: packed panels, or the
    /// factor where it lies.
    Strided { data: *const f32, panel: usize, row: usize, col: usize },
    /// Row `i` starts at `rows[i]`.
    Listed(*const &'static [f32]),
}

impl LeftFactor {
    /// Panels packed by [`pack_panels`] for a factor of depth `k`.
    fn packed(panels: &Panels) -> Self {
        LeftFactor::Strided { data: panels.data.as_ptr(), panel: panels.cols * MR, row: 1, col: MR }
    }

    /// The factor where it lies, read by the kernel without a copy.
    fn in_place(a: MatRef<'_>) -> Self {
        LeftFactor::Strided { data: a.data.as_ptr(), panel: MR * a.row_stride, row: a.row_stride, col: a.col_stride }
    }

    /// Where row `i` starts at depth `k0`.
    ///
    /// # Safety
    /// `i` is a row of the factor (of its panels, if packed).
    #[inline(always)]
    unsafe fn row(self, i: usize, k0: usize) -> *const f32 {
        match self {
            LeftFactor::Strided { data, panel, row, col } => unsafe {
                data.add(i / MR * panel + i % MR * row + k0 * col)
            },
            LeftFactor::Listed(list) => unsafe { (*list.add(i)).as_ptr().add(k0) },
        }
    }

    /// The step along a row.
    fn step(self) -> usize {
        match self {
            LeftFactor::Strided { col, .. } => col,
            LeftFactor::Listed(_) => 1,
        }
    }
}

/// Where the rows of the right factor start.
trait RightRows: Copy {
    /// The start of row `l`.
    ///
    /// # Safety
    /// `l` is a row of the factor.
    unsafe fn row(self, l: usize) -> *const f32;
}

/// Rows `stride` apart from `data`.
#[derive(Clone, Copy)]
struct StridedRows {
    data: *const f32,
    stride: usize,
}

impl RightRows for StridedRows {
    #[inline(always)]
    unsafe fn row(self, l: usize) -> *const f32 {
        unsafe { self.data.add(l * self.stride) }
    }
}

/// Row `l` at `rows[l]`.
#[derive(Clone, Copy)]
struct ListedRows(*const &'static [f32]);

impl RightRows for ListedRows {
    #[inline(always)]
    unsafe fn row(self, l: usize) -> *const f32 {
        unsafe { (*self.0.add(l)).as_ptr() }
    }
}

/// Which column of `a` step `l` of the sums reads, or which row of `a` and `c` the `i`-th row
/// computed is.
trait IndexMap: Copy {
    /// The index that `i` stands for.
    ///
    /// # Safety
    /// `i` is inside the list of an [`Indexed`] map.
    unsafe fn at(self, i: usize) -> usize;
}

/// Every index, itself: the product of whole factors.
#[derive(Clone, Copy)]
struct Dense;

impl IndexMap for Dense {
    #[inline(always)]
    unsafe fn at(self, i: usize) -> usize {
        i
    }
}

/// The indices of a list.
#[derive(Clone, Copy)]
struct Indexed(*const u32);

impl IndexMap for Indexed {
    #[inline(always)]
    unsafe fn at(self, i: usize) -> usize {
        unsafe { *self.0.add(i) as usize }
    }
}

/// `c ← a·b + beta·c` for `a` (m × k) and `b` (k × n) wherever they lie, in the width of
/// [`width`]; step `l` of the sums reads column `depths.at(l)` of `a`, and of the `m` rows
/// computed the `i`-th is row `rows.at(i)` of `a` and `c`.
///
/// # Safety
/// [`available`]; m, k, n > 0; `a` (m × k, the rows of a packed `a` padded to a multiple of
/// [`MR`]), `b` (k × n) and `c` (m × n) inside their buffers.
#[allow(clippy::too_many_arguments)]
unsafe fn multiply<B: RightRows, D: IndexMap, R: IndexMap>(
    a: LeftFactor,
    m: usize,
    k: usize,
    b: B,
    n: usize,
    depths: D,
    rows: R,
    beta: f32,
    c: MatMut<'_>,
) {
    // SAFETY: `available` says the CPU has the width's features.
    unsafe {
        match width().expect("a kernel width") {
            Width::Avx512 => multiply_avx512(a, m, k, b, n, depths, rows, beta, c),
            Width::Avx2 => multiply_avx2(a, m, k, b, n, depths, rows, beta, c),
        }
    }
}

/// [`multiply`] on AVX-512: tiles of 8 rows by three vectors.
///
/// # Safety
/// As [`multiply`], on a CPU with AVX-512 F and FMA.
#[target_feature(enable = "avx512f,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn multiply_avx512<B: RightRows, D: IndexMap, R: IndexMap>(
    a: LeftFactor,
    m: usize,
    k: usize,
    b: B,
    n: usize,
    depths: D,
    rows: R,
    beta: f32,
    c: MatMut<'_>,
) {
    unsafe { multiply_in::<Avx512, 8, 8, 3, B, D, R>(a, m, k, b, n, depths, rows, beta, c) }
}

/// [`multiply`] on AVX2: tiles of 6 rows by two vectors, the last rows in one of 4 if they are
/// at most 4 (m = 32 then computes 34 rows instead of 36, m = 16 and m = 64 no row too many).
///
/// # Safety
/// As [`multiply`], on a CPU with AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn multiply_avx2<B: RightRows, D: IndexMap, R: IndexMap>(
    a: LeftFactor,
    m: usize,
    k: usize,
    b: B,
    n: usize,
    depths: D,
    rows: R,
    beta: f32,
    c: MatMut<'_>,
) {
    unsafe { multiply_in::<Avx2, 6, 4, 2, B, D, R>(a, m, k, b, n, depths, rows, beta, c) }
}

/// [`multiply`] in the vectors of `V`, `ROWS` (at most [`MAX_ROWS`]) output rows per tile, the
/// last `SHORT` ≤ `ROWS` if no more rows are left, and stripes of `VECTORS` vectors' width of
/// `b`. Inlined into the callers that enable `V`'s features.
///
/// # Safety
/// As [`multiply`], on a CPU with `V`'s features.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn multiply_in<
    V: Vector,
    const ROWS: usize,
    const SHORT: usize,
    const VECTORS: usize,
    B: RightRows,
    D: IndexMap,
    R: IndexMap,
>(
    a: LeftFactor,
    m: usize,
    k: usize,
    b: B,
    n: usize,
    depths: D,
    rows: R,
    beta: f32,
    c: MatMut<'_>,
) {
    let c_ptr = c.data.as_mut_ptr();
    let stripe = VECTORS * V::LANES;
    for k0 in (0..k).step_by(KC) {
        let kc = KC.min(k - k0);
        let add_to = if k0 == 0 { AddTo::from(beta) } else { AddTo::C };
        for j0 in (0..n).step_by(stripe) {
            let cols = stripe.min(n - j0);
            for first in (0..m).step_by(ROWS) {
                let count = ROWS.min(m - first);
                // rows past the last read it again (their sums are not stored)
                let row = |r: usize| unsafe { rows.at(first + r.min(count - 1)) };
                let a_rows = std::array::from_fn(|r| unsafe { a.row(row(r), 0) });
                let c_rows = std::array::from_fn(|r| unsafe { c_ptr.add(row(r) * c.row_stride + j0) });
                let tile = Tile { kc, a_rows, a_col: a.step(), k0, j0, c_rows, rows: count, cols };
                if count <= SHORT && SHORT < ROWS {
                    unsafe { stripe_product::<V, SHORT, B, D>(tile, b, depths, add_to, beta) }
                } else {
                    unsafe { stripe_product::<V, ROWS, B, D>(tile, b, depths, add_to, beta) }
                }
            }
        }
    }
}

/// One tile of a stripe: its whole vectors in one [`tile_product`], then the columns left over
/// in a masked one of a single vector, so that the mask never takes a register from a tile
/// whose accumulators fill the rest (on AVX2, 12 accumulators, two vectors of `b` and a
/// broadcast).
///
/// # Safety
/// As [`tile_product`], with `cols` ≤ 3·`V::LANES`.
#[inline(always)]
unsafe fn stripe_product<V: Vector, const ROWS: usize, B: RightRows, D: IndexMap>(
    t: Tile,
    b: B,
    depths: D,
    add_to: AddTo,
    beta: f32,
) {
    let whole = t.cols / V::LANES;
    let whole_cols = whole * V::LANES;
    let tile = Tile { cols: whole_cols, ..t };
    unsafe {
        match whole {
            3 => tile_product::<V, ROWS, 3, true, B, D>(tile, b, depths, add_to, beta),
            2 => tile_product::<V, ROWS, 2, true, B, D>(tile, b, depths, add_to, beta),
            1 => tile_product::<V, ROWS, 1, true, B, D>(tile, b, depths, add_to, beta),
            _ => {}
        }
        if whole_cols < t.cols {
            let c_rows = t.c_rows.map(|row| row.add(whole_cols));
            let rest = Tile { j0: t.j0 + whole_cols, c_rows, cols: t.cols - whole_cols, ..t };
            tile_product::<V, ROWS, 1, false, B, D>(rest, b, depths, add_to, beta);
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

/// One kernel call: `rows` output rows × `cols` columns from column `j0`, over `kc` steps from
/// depth `k0`.
#[derive(Clone, Copy)]
struct Tile {
    kc: usize,
    /// Where each row of `a` starts, and the step along them; the kernel reads the first of
    /// them that its tile height needs.
    a_rows: [*const f32; MAX_ROWS],
    a_col: usize,
    k0: usize,
    j0: usize,
    /// Where each row of the tile starts in `c` (as `a_rows`).
    c_rows: [*mut f32; MAX_ROWS],
    rows: usize,
    cols: usize,
}

/// The tile's products in `ROWS` × `NV` accumulators of `V`: `cols` = `NV`·`V::LANES` if
/// `WHOLE`, else `NV` = 1 and `cols` < `V::LANES` (loaded and stored through a mask).
///
/// # Safety
/// As [`multiply_in`]; `rows` ≤ `ROWS`; `cols` as above.
#[inline(always)]
unsafe fn tile_product<V: Vector, const ROWS: usize, const NV: usize, const WHOLE: bool, B: RightRows, D: IndexMap>(
    t: Tile,
    b: B,
    depths: D,
    add_to: AddTo,
    beta: f32,
) {
    unsafe {
        let lanes = V::first_lanes(t.cols);
        // vector v of a row at `at`: loaded whole, or only the lanes inside the tile
        let load = |at: *const f32, v: usize| {
            if WHOLE { V::load(at.add(V::LANES * v)) } else { V::load_lanes(at, lanes) }
        };
        let mut acc = [[V::zero(); NV]; ROWS];
        for l in 0..t.kc {
            let b_row = b.row(t.k0 + l).add(t.j0);
            let bv: [V; NV] = std::array::from_fn(|v| load(b_row, v));
            let a_at = depths.at(t.k0 + l) * t.a_col;
            for (acc_row, &a_row) in acc.iter_mut().zip(&t.a_rows) {
                let av = V::splat(*a_row.add(a_at));
                for (a, &b) in acc_row.iter_mut().zip(&bv) {
                    *a = av.mul_add(b, *a);
                }
            }
        }
        let scale = V::splat(beta);
        for (r, acc_row) in acc.iter().enumerate().take(t.rows) {
            let c_row = t.c_rows[r];
            for (v, &sum) in acc_row.iter().enumerate() {
                let out = match add_to {
                    AddTo::Nothing => sum,
                    AddTo::C => sum.add(load(c_row, v)),
                    AddTo::ScaledC => sum.add(load(c_row, v).mul(scale)),
                };
                let at = c_row.add(V::LANES * v);
                if WHOLE { out.store(at) } else { out.store_lanes(at, lanes) }
            }
        }
    }
}

/// A SIMD vector of `f32` lanes, for [`tile_product`]. Every method is inlined into a caller
/// that enables the features of its type.
trait Vector: Copy {
    /// Lanes per vector.
    const LANES: usize;
    /// Which lanes a masked load or store touches.
    type Lanes: Copy;
    /// The first `count` lanes.
    unsafe fn first_lanes(count: usize) -> Self::Lanes;
    unsafe fn zero() -> Self;
    unsafe fn splat(x: f32) -> Self;
    /// `LANES` floats from `at`.
    unsafe fn load(at: *const f32) -> Self;
    /// The floats of `lanes` from `at`, zero in the other lanes (which are not read).
    unsafe fn load_lanes(at: *const f32, lanes: Self::Lanes) -> Self;
    unsafe fn store(self, at: *mut f32);
    /// Stores the floats of `lanes` only.
    unsafe fn store_lanes(self, at: *mut f32, lanes: Self::Lanes);
    /// `self·b + c`, rounded once.
    unsafe fn mul_add(self, b: Self, c: Self) -> Self;
    unsafe fn add(self, b: Self) -> Self;
    unsafe fn mul(self, b: Self) -> Self;
}

/// 16 lanes in a 512-bit register.
#[derive(Clone, Copy)]
struct Avx512(__m512);

impl Vector for Avx512 {
    const LANES: usize = 16;
    type Lanes = __mmask16;
    #[inline(always)]
    unsafe fn first_lanes(count: usize) -> __mmask16 {
        if count >= 16 { 0xffff } else { (1u16 << count) - 1 }
    }
    #[inline(always)]
    unsafe fn zero() -> Self {
        Avx512(unsafe { _mm512_setzero_ps() })
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Avx512(unsafe { _mm512_set1_ps(x) })
    }
    #[inline(always)]
    unsafe fn load(at: *const f32) -> Self {
        Avx512(unsafe { _mm512_loadu_ps(at) })
    }
    #[inline(always)]
    unsafe fn load_lanes(at: *const f32, lanes: __mmask16) -> Self {
        Avx512(unsafe { _mm512_maskz_loadu_ps(lanes, at) })
    }
    #[inline(always)]
    unsafe fn store(self, at: *mut f32) {
        unsafe { _mm512_storeu_ps(at, self.0) }
    }
    #[inline(always)]
    unsafe fn store_lanes(self, at: *mut f32, lanes: __mmask16) {
        unsafe { _mm512_mask_storeu_ps(at, lanes, self.0) }
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        Avx512(unsafe { _mm512_fmadd_ps(self.0, b.0, c.0) })
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        Avx512(unsafe { _mm512_add_ps(self.0, b.0) })
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        Avx512(unsafe { _mm512_mul_ps(self.0, b.0) })
    }
}

/// 8 lanes in a 256-bit register.
#[derive(Clone, Copy)]
struct Avx2(__m256);

impl Vector for Avx2 {
    const LANES: usize = 8;
    type Lanes = __m256i;
    #[inline(always)]
    unsafe fn first_lanes(count: usize) -> __m256i {
        unsafe { first_lanes(count.min(8)) }
    }
    #[inline(always)]
    unsafe fn zero() -> Self {
        Avx2(unsafe { _mm256_setzero_ps() })
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Avx2(unsafe { _mm256_set1_ps(x) })
    }
    #[inline(always)]
    unsafe fn load(at: *const f32) -> Self {
        Avx2(unsafe { _mm256_loadu_ps(at) })
    }
    #[inline(always)]
    unsafe fn load_lanes(at: *const f32, lanes: __m256i) -> Self {
        Avx2(unsafe { _mm256_maskload_ps(at, lanes) })
    }
    #[inline(always)]
    unsafe fn store(self, at: *mut f32) {
        unsafe { _mm256_storeu_ps(at, self.0) }
    }
    #[inline(always)]
    unsafe fn store_lanes(self, at: *mut f32, lanes: __m256i) {
        unsafe { _mm256_maskstore_ps(at, lanes, self.0) }
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        Avx2(unsafe { _mm256_fmadd_ps(self.0, b.0, c.0) })
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        Avx2(unsafe { _mm256_add_ps(self.0, b.0) })
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        Avx2(unsafe { _mm256_mul_ps(self.0, b.0) })
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
        in_each_width(products_equal_matrixmultiply_in);
    }

    fn products_equal_matrixmultiply_in(width: Width) {
        // edges of every blocking: rows around the tile heights (6, 8) and MR, columns around
        // the vector widths (8, 16) and stripes (16, 48), depth around KC
        let shapes = [
            (1, 1, 1),
            (3, 5, 17),
            (8, 256, 48),
            (9, 257, 49),
            (17, 600, 100),
            (16, 10, 6400),
            (5, 33, 7),
            (6, 3, 8),
            (7, 40, 23),
            (13, 9, 33),
        ];
        for &(m, k, n) in &shapes {
            for &beta in &[0.0f32, 1.0, 0.5] {
                let (a, at) = (values(m * k, 1), values(k * m, 4));
                // one float past the allocation's start, so that rows straddle cache lines
                let b_buf = values(k * n + 1, 2);
                let ldc = n + 3;
                let c0 = values(m * ldc, 3);
                // a and b each row-major, or a transposed view (b of an n × k buffer whose rows
                // are k + 2 apart, so that the gathers skip a gap)
                let bt_buf = values(n * (k + 2), 5);
                let bt = MatRef::strided(&bt_buf, n, k, k + 2).t();
                for a_view in [MatRef::rows(&a, m, k), MatRef::rows(&at, k, m).t()] {
                    for b_view in [MatRef::rows(&b_buf[1..], k, n), bt] {
                        let (mut got, mut want) = (c0.clone(), c0.clone());
                        assert!(try_gemm(a_view, Left::Fresh, b_view, beta, MatMut::strided(&mut got, m, n, ldc)));
                        reference(a_view, b_view, beta, &mut want, ldc);
                        let same = got.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits());
                        assert!(same, "{width:?} {m}×{k}×{n} β={beta} b col stride {}", b_view.col_stride);
                    }
                }
            }
        }
    }

    #[test]
    fn listed_factors_give_the_bits_of_dense_ones() {
        in_each_width(|_| listed_factors_in_the_current_width());
    }

    fn listed_factors_in_the_current_width() {
        for &(m, k, n) in &[(1, 1, 1), (9, 257, 49), (17, 300, 100), (64, 1601, 100)] {
            for &beta in &[0.0f32, 1.0] {
                // the rows of a dense factor, listed where they lie in a buffer with gaps
                let list_of = |rows: usize, cols: usize, seed: u32| {
                    let buffer = values(rows * (cols + 5), seed);
                    let dense: Vec<f32> = buffer.chunks_exact(cols + 5).flat_map(|r| r[..cols].to_vec()).collect();
                    (buffer, dense)
                };
                let (b_buffer, b_dense) = list_of(k, n, 2);
                let b_rows: Vec<&[f32]> = b_buffer.chunks_exact(n + 5).collect();
                let (a_buffer, a_dense) = list_of(m, k, 1);
                let a_rows: Vec<&[f32]> = a_buffer.chunks_exact(k + 5).collect();
                let a = MatRef::rows(&a_dense, m, k);
                let c0 = values(m * n, 3);
                let dense = |a: MatRef<'_>, b: MatRef<'_>| {
                    let mut c = c0.clone();
                    assert!(try_gemm(a, Left::Fresh, b, beta, MatMut::rows(&mut c, m, n)));
                    c
                };
                let mut right = c0.clone();
                let b = Listed { rows: &b_rows, cols: n };
                assert!(try_gemm_listed_right(a, Left::Keep, b, beta, MatMut::rows(&mut right, m, n)));
                let bits = |c: &[f32]| c.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&right),
                    bits(&dense(a, MatRef::rows(&b_dense, k, n))),
                    "listed b, {m}×{k}×{n} β={beta}"
                );
                // the left-listed product with a right factor that is a transposed view
                let bt: Vec<f32> = (0..n * k).map(|i| b_dense[(i % k) * n + i / k]).collect();
                let b_view = MatRef::rows(&bt, n, k).t();
                let mut left = c0.clone();
                let a_listed = Listed { rows: &a_rows, cols: k };
                assert!(try_gemm_listed_left(a_listed, b_view, beta, MatMut::rows(&mut left, m, n)));
                assert_eq!(bits(&left), bits(&dense(a, b_view)), "listed a, {m}×{k}×{n} β={beta}");
            }
        }
    }

    #[test]
    fn a_kept_packing_gives_the_bits_of_a_fresh_one_and_is_replaced_for_another_shape() {
        in_each_width(|_| kept_packing_in_the_current_width());
    }

    fn kept_packing_in_the_current_width() {
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
    fn listed_depths_and_rows_give_the_bits_of_the_products_they_select() {
        in_each_width(selected_products_in);
    }

    fn selected_products_in(width: Width) {
        let bits = |c: &[f32]| c.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        // m around the tile heights, n around the vector widths, packed (n > 192) and in place
        for &(m, k, n) in &[(1, 3, 1), (13, 40, 23), (32, 145, 100), (7, 20, 200)] {
            let a = values(m * k, 1);
            let b = values(k * n, 2);
            let c0 = values(m * n, 3);
            // two of every three columns of a, against the matching rows of b, listed
            let depths: Vec<u32> = (0..k as u32).filter(|l| l % 3 != 1).collect();
            let a_picked: Vec<f32> =
                (0..m).flat_map(|i| depths.iter().map(|&l| a[i * k + l as usize]).collect::<Vec<_>>()).collect();
            let b_rows: Vec<&[f32]> = depths.iter().map(|&l| &b[l as usize * n..][..n]).collect();
            let b_picked: Vec<f32> = b_rows.concat();
            for left in [Left::Fresh, Left::Keep] {
                let mut got = c0.clone();
                let listed = Listed { rows: &b_rows, cols: n };
                let a_view = MatRef::rows(&a, m, k);
                assert!(try_gemm_listed_right_at(a_view, left, listed, &depths, 0.5, MatMut::rows(&mut got, m, n)));
                let mut want = c0.clone();
                let (a_view, b_view) =
                    (MatRef::rows(&a_picked, m, depths.len()), MatRef::rows(&b_picked, depths.len(), n));
                assert!(try_gemm(a_view, Left::Fresh, b_view, 0.5, MatMut::rows(&mut want, m, n)));
                assert_eq!(bits(&got), bits(&want), "{width:?} listed depths, {m}×{k}×{n}");
            }
            // some rows of c, in order, the others untouched
            let rows: Vec<u32> = (0..m as u32).filter(|i| i % 4 != 2).collect();
            let mut whole = c0.clone();
            assert!(try_gemm(
                MatRef::rows(&a, m, k),
                Left::Fresh,
                MatRef::rows(&b, k, n),
                1.0,
                MatMut::rows(&mut whole, m, n)
            ));
            let mut got = c0.clone();
            let a_view = MatRef::rows(&a, m, k);
            assert!(try_gemm_rows(
                a_view,
                Left::Keep,
                &rows,
                MatRef::rows(&b, k, n),
                1.0,
                MatMut::rows(&mut got, m, n)
            ));
            for i in 0..m {
                let want = if rows.contains(&(i as u32)) { &whole[i * n..][..n] } else { &c0[i * n..][..n] };
                assert_eq!(bits(&got[i * n..][..n]), bits(want), "{width:?} listed rows, {m}×{k}×{n}, row {i}");
            }
        }
    }

    #[test]
    fn a_right_factor_with_neither_rows_nor_columns_contiguous_is_left_to_matrixmultiply() {
        let (a, b) = (values(6, 1), values(12, 2));
        let mut c = vec![0.0; 9];
        // every other element of a 2 × 6 buffer, seen as 2 × 3
        let b_view = MatRef { data: &b, rows: 2, cols: 3, row_stride: 6, col_stride: 2 };
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
        // (what, m, k, n, a stored transposed, b stored transposed, weights kept across calls);
        // of the two weight-gradient orders the step uses the transposed one for the second
        // convolutions (see `Conv2d::backward`)
        let shapes = [
            ("digits conv1 forward", 16, 10, 6400, false, false, true),
            ("digits conv1 weight gradient", 16, 6400, 10, false, true, false),
            ("digits conv1 weight gradient, transposed", 10, 6400, 16, false, true, false),
            ("digits conv2 forward", 32, 145, 1600, false, false, true),
            ("digits conv2 input gradient", 144, 32, 1600, true, false, true),
            ("digits conv2 weight gradient", 32, 1600, 145, false, true, false),
            ("digits conv2 weight gradient, transposed", 145, 1600, 32, false, true, false),
            ("digits linear1 weight gradient", 64, 100, 128, true, false, false),
            ("digits linear1 input gradient", 100, 64, 128, false, false, false),
            ("cifar conv1 forward", 64, 76, 900, false, false, true),
            ("cifar conv1 weight gradient", 64, 900, 76, false, true, false),
            ("cifar conv1 weight gradient, transposed", 76, 900, 64, false, true, false),
            ("cifar conv2 forward", 64, 1601, 100, false, false, true),
            ("cifar conv2 input gradient", 1600, 64, 100, true, false, true),
            ("cifar conv2 weight gradient", 64, 100, 1601, false, true, false),
            ("cifar conv2 weight gradient, transposed", 1601, 100, 64, false, true, false),
            ("cifar linear1 weight gradient", 384, 100, 1600, true, false, false),
            ("cifar linear1 input gradient", 100, 384, 1600, false, false, false),
        ];
        in_each_width(|width| measure_shapes(width, &shapes));
    }

    type Shape = (&'static str, usize, usize, usize, bool, bool, bool);

    fn measure_shapes(width: Width, shapes: &[Shape]) {
        eprintln!("{width:?}:");
        for &(what, m, k, n, a_transposed, b_transposed, kept) in shapes {
            let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 * 0.1).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.1).collect();
            let mut c = vec![0.0f32; m * n];
            let a_view = if a_transposed { MatRef::rows(&a, k, m).t() } else { MatRef::rows(&a, m, k) };
            let b_view = if b_transposed { MatRef::rows(&b, n, k).t() } else { MatRef::rows(&b, k, n) };
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
            let av =
                ArrayView2::from_shape((m, k).strides(if a_transposed { (1, m) } else { (k, 1) }), &a[..]).unwrap();
            let bv =
                ArrayView2::from_shape((k, n).strides(if b_transposed { (1, k) } else { (n, 1) }), &b[..]).unwrap();
            let start = std::time::Instant::now();
            for _ in 0..reps {
                general_mat_mul(1.0, &av, &bv, 0.0, &mut ArrayViewMut2::from_shape((m, n), &mut c[..]).unwrap());
            }
            let theirs = start.elapsed().as_secs_f64() / reps as f64;
            let gflop = 2.0 * (m * k * n) as f64 / 1e9;
            eprintln!(
                "{what:42} {m:5} × {k:5} × {n:5}: {:6.1} GFLOP/s, matrixmultiply {:6.1} ({:.2}×)",
                gflop / ours,
                gflop / theirs,
                theirs / ours
            );
        }
    }
}
