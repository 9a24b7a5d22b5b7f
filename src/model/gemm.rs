//! Matrix products on flat `f32` slices. Every layer keeps its tensors in plain row-major
//! buffers; this module describes a slice region as a strided matrix and multiplies with the
//! kernel of `gemm_simd` where it applies (AVX-512 or AVX2 with FMA, a right factor with
//! contiguous rows or columns), else through [`ndarray::linalg::general_mat_mul`] on
//! `matrixmultiply`'s runtime-detected SIMD kernels; both sum in the same order, so which one
//! runs changes no bit.
//! Single-threaded and deterministic: the same inputs give bit-identical outputs on every call.
//! [`product`] dispatches on [`Precision`] between this and the bf16 kernel of
//! [`super::gemm_bf16`].

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};

use super::gemm_bf16::{Left, Precision, gemm_bf16};

/// A read-only matrix inside a slice: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A dense row-major `rows × cols` matrix at the start of `data`.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// A row-major matrix whose rows are `row_stride` apart.
    pub fn strided(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        MatRef { data, rows, cols, row_stride, col_stride: 1 }
    }

    /// The transpose (a view, nothing is copied).
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    fn view(&self) -> ArrayView2<'a, f32> {
        let len = extent(self.rows, self.cols, self.row_stride, self.col_stride);
        ArrayView2::from_shape((self.rows, self.cols).strides((self.row_stride, self.col_stride)), &self.data[..len])
            .expect("matrix view within its slice")
    }
}

/// A writable row-major matrix inside a slice, rows `row_stride` apart.
#[derive(Debug)]
pub(crate) struct MatMut<'a> {
    pub data: &'a mut [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
}

impl<'a> MatMut<'a> {
    /// The same matrix, borrowed for a shorter time.
    pub fn reborrow(&mut self) -> MatMut<'_> {
        MatMut { data: self.data, rows: self.rows, cols: self.cols, row_stride: self.row_stride }
    }

    /// A dense row-major `rows × cols` matrix at the start of `data`.
    pub fn rows(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        MatMut { data, rows, cols, row_stride: cols }
    }

    /// A row-major matrix whose rows are `row_stride` apart.
    pub fn strided(data: &'a mut [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        MatMut { data, rows, cols, row_stride }
    }
}

fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 { 0 } else { (rows - 1) * rs + (cols - 1) * cs + 1 }
}

/// A matrix given row by row: row `i` is the first `cols` floats of `rows[i]`. A convolution's
/// column matrix for one output position is runs of its input, listed where they lie instead of
/// copied out.
#[derive(Clone, Copy)]
pub(crate) struct Listed<'a> {
    pub rows: &'a [&'a [f32]],
    pub cols: usize,
}

/// Whether [`gemm_listed_right`] and [`gemm_listed_left`] run here (the kernel of
/// [`super::gemm_simd`]).
pub(crate) fn listed_products() -> bool {
    #[cfg(target_arch = "x86_64")]
    return super::gemm_simd::available();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `c ← a·b + beta·c` in f32 for a `b` given row by row, `left` as in [`product`]. Panics unless
/// [`listed_products`]. The sums are those of [`gemm`] on the same matrix laid out densely.
pub(crate) fn gemm_listed_right(a: MatRef<'_>, left: Left, b: Listed<'_>, beta: f32, c: MatMut<'_>) {
    #[cfg(target_arch = "x86_64")]
    if super::gemm_simd::try_gemm_listed_right(a, left, b, beta, c) {
        return;
    }
    panic!("listed products need the AVX-512 or AVX2 kernel");
}

/// `c ← a[:, depths]·b + beta·c` in f32 for a `b` given row by row, whose row `l` meets column
/// `depths[l]` of `a` (`left` as in [`product`], for the whole of `a`). Panics unless
/// [`listed_products`]. The sums are those of [`gemm_listed_right`] on `a`'s columns `depths`
/// copied out.
pub(crate) fn gemm_listed_right_at(a: MatRef<'_>, left: Left, b: Listed<'_>, depths: &[u32], beta: f32, c: MatMut<'_>) {
    #[cfg(target_arch = "x86_64")]
    if super::gemm_simd::try_gemm_listed_right_at(a, left, b, depths, beta, c) {
        return;
    }
    panic!("listed products need the AVX-512 or AVX2 kernel");
}

/// [`gemm`] for some rows only: rows `rows` of `c` ← the same rows of `a`, times `b`,
/// `+ beta·c` (`left` as in [`product`], for the whole of `a`); the other rows of `c` are not
/// touched. Panics unless [`listed_products`]. Each row's sums are those of [`gemm`].
pub(crate) fn gemm_rows(a: MatRef<'_>, left: Left, rows: &[u32], b: MatRef<'_>, beta: f32, c: MatMut<'_>) {
    #[cfg(target_arch = "x86_64")]
    if super::gemm_simd::try_gemm_rows(a, left, rows, b, beta, c) {
        return;
    }
    panic!("products of listed rows need the AVX-512 or AVX2 kernel");
}

/// Depth of the blocks in which every f32 product sums `k` (`matrixmultiply`'s `S_KC`, which
/// `gemm_simd` follows): a layer that leaves out terms of a sum keeps its bits only within one
/// block.
pub(crate) const DEPTH_BLOCK: usize = 256;

/// `c ← a·b + beta·c` in f32 for an `a` given row by row. Panics unless [`listed_products`].
/// The sums are those of [`gemm`] on the same matrix laid out densely.
pub(crate) fn gemm_listed_left(a: Listed<'_>, b: MatRef<'_>, beta: f32, c: MatMut<'_>) {
    #[cfg(target_arch = "x86_64")]
    if super::gemm_simd::try_gemm_listed_left(a, b, beta, c) {
        return;
    }
    panic!("listed products need the AVX-512 or AVX2 kernel");
}

/// The kernel of the f32 products that [`gemm`] can hand to `gemm_simd`: `"avx512"`, `"avx2"`,
/// or `"matrixmultiply"` where neither runs.
pub(crate) fn f32_kernel() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if let Some(width) = super::gemm_simd::width() {
        return width.name();
    }
    "matrixmultiply"
}

/// Whether the f32 products that [`gemm`] hands to `gemm_simd` run on its AVX2 kernel.
pub(crate) fn avx2_kernel() -> bool {
    #[cfg(target_arch = "x86_64")]
    return super::gemm_simd::width() == Some(super::gemm_simd::Width::Avx2);
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `c ← a·b + beta·c` in `precision`: [`gemm`] for f32, [`gemm_bf16`] for bf16, where `left`
/// says whether the packing of `a` is kept for (or taken from) a neighbouring call.
pub(crate) fn product(precision: Precision, a: MatRef<'_>, left: Left, b: MatRef<'_>, beta: f32, c: MatMut<'_>) {
    match precision {
        Precision::F32 => gemm(a, left, b, beta, c),
        Precision::Bf16 => gemm_bf16(a, left, b, beta, c),
    }
}

/// `c ← a·b + beta·c`: [`super::gemm_simd`] where it applies, else `matrixmultiply`.
/// `left` as in [`product`].
pub(crate) fn gemm(a: MatRef<'_>, left: Left, b: MatRef<'_>, beta: f32, mut c: MatMut<'_>) {
    debug_assert_eq!(a.cols, b.rows);
    debug_assert_eq!(a.rows, c.rows);
    debug_assert_eq!(b.cols, c.cols);
    if c.rows == 0 || c.cols == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if super::gemm_simd::try_gemm(a, left, b, beta, c.reborrow()) {
        return;
    }
    let len = extent(c.rows, c.cols, c.row_stride, 1);
    let mut cv = ArrayViewMut2::from_shape((c.rows, c.cols).strides((c.row_stride, 1)), &mut c.data[..len])
        .expect("matrix view within its slice");
    if a.cols == 0 {
        cv.map_inplace(|v| *v *= beta);
        return;
    }
    general_mat_mul(1.0, &a.view(), &b.view(), beta, &mut cv);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_products_match_naive() {
        let (m, k, n) = (3, 4, 5);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 2.0).collect();
        let bt: Vec<f32> = (0..n * k).map(|i| (i % 7) as f32 - 3.0).collect(); // stored n × k
        let mut c = vec![1.0f32; m * 2 * n]; // rows 2n apart
        gemm(
            MatRef::rows(&a, m, k),
            Left::Fresh,
            MatRef::rows(&bt, n, k).t(),
            0.5,
            MatMut::strided(&mut c, m, n, 2 * n),
        );
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|l| a[i * k + l] * bt[j * k + l]).sum::<f32>() + 0.5;
                assert!((c[i * 2 * n + j] - want).abs() < 1e-4);
                assert_eq!(c[i * 2 * n + n + j], 1.0, "gap between rows untouched");
            }
        }
    }
}
