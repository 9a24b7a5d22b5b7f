//! Mixed-precision matrix products on Intel AMX: both factors are rounded to bfloat16 (round to
//! nearest even) and multiplied by the `TDPBF16PS` tile instruction, which accumulates in `f32`.
//! The same `c ← a·b + beta·c` contract as `gemm::gemm`, on the same strided views, so a
//! layer picks the kernel by [`Precision`] and nothing else changes: parameters, gradients,
//! activations and the SGD update stay `f32` (as in PyTorch's bf16 autocast). The result differs
//! from the `f32` product by the bf16 rounding of the factors (relative error about 2⁻⁹ per
//! factor), so runs in the two precisions are not bit-identical; runs in bf16 are, whatever the
//! thread count and wherever the buffers lie (each product is single-threaded, sums in a fixed
//! order, and rounds the same way on every path: tested).
//!
//! The factors are packed into zero-padded bf16 buffers that start on a cache line: `a`
//! row-major with rows of `K` rounded up to 32 (one tile row holds 32 bf16), `b` in AMX's
//! pair-interleaved layout, panel by panel of 16 columns (tile row `r` of a panel holds the pairs
//! `b[2r][j], b[2r+1][j]` of its 16 columns `j`). Blocks of up to 32 × 32 outputs are
//! accumulated in four tiles; a full block that overwrites `c` and whose rows start on cache
//! lines is stored in place, any other goes through a small buffer (then `c ← block + beta·c`),
//! so the edges need no special kernels. A layer that multiplies the same weights with many
//! column chunks packs them once (`Left::Keep`, `Left::Kept`).
//!
//! Linux lets a process use the AMX tile registers only after it asks (`arch_prctl`
//! `ARCH_REQ_XCOMP_PERM`); [`available`] asks once and caches the answer. This module's `unsafe`
//! code (the crate has it only here and in `gemm_simd`) is inline assembly for the tile
//! instructions and that system call.
#![allow(unsafe_code)]

use std::sync::OnceLock;

use super::gemm::{MatMut, MatRef};

/// The arithmetic of a network's matrix products.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Single precision throughout (the default).
    #[default]
    F32,
    /// Factors rounded to bfloat16, products accumulated in `f32`, on AMX.
    Bf16,
}

impl Precision {
    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [Precision::F32, Precision::Bf16]
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown precision '{s}' (f32 or bf16)"))
    }
}

/// Whether this CPU and kernel let the process use AMX-BF16 (asked once per process).
pub fn available() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(amx::request)
}

/// Rounds to the nearest bfloat16, ties to even; NaN stays NaN. Branch-free, so that the
/// packing loops vectorise.
#[inline(always)]
pub(crate) fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    let rounded = bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16;
    let nan = (bits & 0x7fff_ffff) > 0x7f80_0000;
    (if nan { (bits >> 16) | 0x40 } else { rounded }) as u16
}

/// Two values as one bf16 pair in AMX's layout: the first in the low half.
#[inline(always)]
fn pair(first: f32, second: f32) -> u32 {
    to_bf16(first) as u32 | (to_bf16(second) as u32) << 16
}

/// Tile geometry: 16 rows of 64 bytes (32 bf16 or 16 f32).
const TILE_ROWS: usize = 16;
const TILE_K: usize = 32;

/// A left factor rounded to bf16 and packed: row-major, `m_pad × k_pad`, zero-padded, at
/// `data[start..start + len]`.
#[derive(Default)]
struct PackedA {
    data: Vec<u16>,
    start: usize,
    len: usize,
    rows: usize,
    cols: usize,
}

impl PackedA {
    fn packed(&self) -> &[u16] {
        &self.data[self.start..self.start + self.len]
    }
}

/// Makes room for `len` elements of `buf` that start on a 64-byte boundary and returns where
/// they start: a tile row split over two cache lines loads several times slower (measured 9× on
/// a whole product). The elements keep whatever they held; the packing writes every one,
/// padding included (zero-filling the buffers first cost 12 % of a digits_cnn step).
fn aligned<T: Copy + Default>(buf: &mut Vec<T>, len: usize) -> usize {
    let slack = 64 / std::mem::size_of::<T>();
    if buf.len() < len + slack {
        buf.resize(len + slack, T::default());
    }
    buf.as_ptr().align_offset(64)
}

/// The 32 × 32 output block, aligned like a cache line.
#[repr(C, align(64))]
struct Block([f32; 1024]);

/// Per-thread packing buffers, reused across calls: a left factor packed for one call, one kept
/// for later calls (the weights of a layer that multiplies them with many column chunks), and
/// the right factor.
#[derive(Default)]
struct Buffers {
    fresh: PackedA,
    kept: PackedA,
    b: Vec<u32>,
    b_start: usize,
}

thread_local! {
    static BUFFERS: std::cell::RefCell<Buffers> = std::cell::RefCell::new(Buffers::default());
}

/// Which packing of the left factor a product uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Left {
    /// Pack `a` for this product only.
    Fresh,
    /// Pack `a` and keep it for later [`Left::Kept`] products on this thread.
    Keep,
    /// Reuse the factor of the last [`Left::Keep`] product on this thread; `a` must be the
    /// same matrix, unchanged (its shape is checked).
    Kept,
}

/// `c ← a·b + beta·c` with bf16 factors and `f32` accumulation. Panics if [`available`] is false
/// (the config and CLI check it first).
pub(crate) fn gemm_bf16(a: MatRef<'_>, left: Left, b: MatRef<'_>, beta: f32, c: MatMut<'_>) {
    debug_assert_eq!(a.cols, b.rows);
    assert!(available(), "bf16 products need AMX-BF16");
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 0 || n == 0 {
        return;
    }
    let k_pad = k.div_ceil(TILE_K) * TILE_K;
    let m_pad = m.div_ceil(TILE_ROWS) * TILE_ROWS;
    let panels = n.div_ceil(TILE_ROWS);
    BUFFERS.with_borrow_mut(|buffers| {
        let packed_a = match left {
            Left::Fresh => &mut buffers.fresh,
            Left::Keep | Left::Kept => &mut buffers.kept,
        };
        if left == Left::Kept {
            assert!(
                packed_a.rows == m && packed_a.cols == k,
                "kept factor is {}×{}, not {m}×{k}",
                packed_a.rows,
                packed_a.cols
            );
        } else {
            // SAFETY: `available()` holds, which includes AVX-512 F, BW and VL.
            unsafe { pack_a(a, m_pad, k_pad, packed_a) };
        }
        let b_len = panels * k_pad / 2 * TILE_ROWS;
        buffers.b_start = aligned(&mut buffers.b, b_len);
        // SAFETY: as above.
        unsafe { pack_b(b, panels, k_pad, &mut buffers.b[buffers.b_start..][..b_len]) };
        let packed_b = &buffers.b[buffers.b_start..][..b_len];
        let packed_a = packed_a.packed();
        let mut block = Block([0.0; 1024]);
        amx::configure();
        for p0 in (0..panels).step_by(2) {
            let two_panels = p0 + 1 < panels;
            for r0 in (0..m_pad).step_by(32) {
                let two_rows = r0 + TILE_ROWS < m_pad;
                let rows = (m - r0).min(32);
                let cols = (n - p0 * TILE_ROWS).min(32);
                let corner = r0 * c.row_stride + p0 * TILE_ROWS;
                let aligned = c.data[corner..].as_ptr().align_offset(64) == 0 && c.row_stride.is_multiple_of(16);
                if aligned && rows == 32 && cols == 32 && beta == 0.0 {
                    // a full block that overwrites c: the tiles store it in place. (With β ≠ 0
                    // the tiles are never loaded with c: c + Σ would round differently from
                    // Σ + β·c below, and which path a block takes depends on its address.)
                    let out = amx::Out::Direct { c: &mut c.data[corner..], stride: c.row_stride };
                    amx::block(packed_a, packed_b, k_pad, r0, p0, two_rows, two_panels, out);
                    continue;
                }
                amx::block(packed_a, packed_b, k_pad, r0, p0, two_rows, two_panels, amx::Out::Buffer(&mut block.0));
                for i in 0..rows {
                    let dst = &mut c.data[corner + i * c.row_stride..][..cols];
                    let src = &block.0[i * 32..][..cols];
                    // plain loops, not copy_from_slice: for rows of at most 32 floats the call to
                    // memmove cost more than the copy (measured on a 384 × 100 × 1600 product)
                    if beta == 0.0 {
                        for (d, s) in dst.iter_mut().zip(src) {
                            *d = *s;
                        }
                    } else {
                        for (d, s) in dst.iter_mut().zip(src) {
                            *d = s + beta * *d;
                        }
                    }
                }
            }
        }
        amx::release();
    });
}

/// Rounds `a` (m × k) to bf16 into `out`, row-major `m_pad × k_pad`, zero-padded.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn pack_a(a: MatRef<'_>, m_pad: usize, k_pad: usize, out: &mut PackedA) {
    out.rows = a.rows;
    out.cols = a.cols;
    out.len = m_pad * k_pad;
    out.start = aligned(&mut out.data, out.len);
    for (i, row) in out.data[out.start..][..out.len].chunks_exact_mut(k_pad).enumerate() {
        let (values, padding) = row.split_at_mut(if i < a.rows { a.cols } else { 0 });
        if a.col_stride == 1 {
            let src = &a.data[(i * a.row_stride).min(a.data.len())..][..values.len()];
            for (d, &s) in values.iter_mut().zip(src) {
                *d = to_bf16(s);
            }
        } else {
            for (j, d) in values.iter_mut().enumerate() {
                *d = to_bf16(a.data[i * a.row_stride + j * a.col_stride]);
            }
        }
        padding.fill(0);
    }
}

/// Rounds `b` (k × n) to bf16 pairs into `out`: panels of 16 columns, each `k_pad / 2` rows of
/// 16 pairs `(b[2q][j], b[2q+1][j])`, zero-padded.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn pack_b(b: MatRef<'_>, panels: usize, k_pad: usize, out: &mut [u32]) {
    let panel_len = k_pad / 2 * TILE_ROWS;
    debug_assert_eq!(out.len(), panels * panel_len);
    let (k, n) = (b.rows, b.cols);
    let (rs, cs) = (b.row_stride, b.col_stride);
    if cs == 1 {
        // rows of b are contiguous: interleave rows 2q and 2q + 1, 16 columns at a time
        for q in 0..k / 2 {
            for p in 0..panels {
                let dst = &mut out[p * panel_len + q * TILE_ROWS..][..TILE_ROWS];
                let j0 = p * TILE_ROWS;
                let width = (n - j0).min(TILE_ROWS);
                let first = &b.data[2 * q * rs + j0..][..width];
                let second = &b.data[(2 * q + 1) * rs + j0..][..width];
                for ((d, &x), &y) in dst.iter_mut().zip(first).zip(second) {
                    *d = pair(x, y);
                }
            }
        }
    } else {
        // columns of b (contiguous when b is a transposed view) go through a 16 × 16 block of
        // pairs in L1: read along the columns, written out row by row
        let mut block = [[0u32; TILE_ROWS]; TILE_ROWS];
        for p in 0..panels {
            let j0 = p * TILE_ROWS;
            let width = (n - j0).min(TILE_ROWS);
            for q0 in (0..k / 2).step_by(TILE_ROWS) {
                let height = (k / 2 - q0).min(TILE_ROWS);
                for (jj, pairs) in block.iter_mut().enumerate().take(width) {
                    let column = (j0 + jj) * cs + 2 * q0 * rs;
                    if rs == 1 {
                        let src = &b.data[column..][..2 * height];
                        for (d, xy) in pairs.iter_mut().zip(src.chunks_exact(2)) {
                            *d = pair(xy[0], xy[1]);
                        }
                    } else {
                        for (qq, d) in pairs.iter_mut().enumerate().take(height) {
                            let at = column + 2 * qq * rs;
                            *d = pair(b.data[at], b.data[at + rs]);
                        }
                    }
                }
                for qq in 0..height {
                    let dst = &mut out[p * panel_len + (q0 + qq) * TILE_ROWS..][..width];
                    for (jj, d) in dst.iter_mut().enumerate() {
                        *d = block[jj][qq];
                    }
                }
            }
        }
    }
    if k % 2 == 1 {
        // the last row pairs with the zero padding
        let q = k / 2;
        for j in 0..n {
            out[(j / TILE_ROWS) * panel_len + q * TILE_ROWS + j % TILE_ROWS] = pair(b.data[(k - 1) * rs + j * cs], 0.0);
        }
    }
    // zeros past the last pair row, and past column n in the last panel
    let pairs = k.div_ceil(2);
    for panel in out.chunks_exact_mut(panel_len) {
        panel[pairs * TILE_ROWS..].fill(0);
    }
    if n % TILE_ROWS != 0 {
        let last = &mut out[(panels - 1) * panel_len..];
        for q in 0..pairs {
            last[q * TILE_ROWS + n % TILE_ROWS..(q + 1) * TILE_ROWS].fill(0);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod amx {
    //! The tile instructions and the permission request, in inline assembly.
    use std::arch::asm;

    /// Palette 1; tiles 0–3 accumulate 16 × 16 f32, tiles 4–5 hold a 16 × 32 bf16 slice of `a`,
    /// tiles 6–7 a 16-pair × 16-column slice of a `b` panel: all 16 rows of 64 bytes.
    #[repr(C, align(64))]
    struct TileConfig([u8; 64]);

    const CONFIG: TileConfig = {
        let mut bytes = [0u8; 64];
        bytes[0] = 1;
        let mut t = 0;
        while t < 8 {
            bytes[16 + 2 * t] = 64;
            bytes[48 + t] = 16;
            t += 1;
        }
        TileConfig(bytes)
    };

    /// CPUID leaf 7 EDX bits 22 (AMX-BF16) and 24 (AMX-TILE), AVX-512 F, BW and VL, then Linux's
    /// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`.
    pub fn request() -> bool {
        let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
        let max_leaf = std::arch::x86_64::__cpuid(0).eax;
        if max_leaf < 7 || leaf7.edx & (1 << 22) == 0 || leaf7.edx & (1 << 24) == 0 {
            return false;
        }
        // the packing is compiled for these (every AMX CPU so far has them)
        if !(is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl"))
        {
            return false;
        }
        if !cfg!(target_os = "linux") {
            return false;
        }
        let ret: i64;
        // SAFETY: arch_prctl (syscall 158) with ARCH_REQ_XCOMP_PERM (0x1023) and feature 18 only
        // changes this process's permission to use the tile state; it reads no memory.
        unsafe {
            asm!("syscall", inlateout("rax") 158i64 => ret, in("rdi") 0x1023i64, in("rsi") 18i64,
                 lateout("rcx") _, lateout("r11") _, options(nostack));
        }
        ret == 0
    }

    /// Loads the tile configuration on this thread.
    pub fn configure() {
        // SAFETY: `available()` was checked by the caller; CONFIG is a valid palette-1
        // configuration of 64 aligned bytes.
        unsafe { asm!("ldtilecfg [{}]", in(reg) &CONFIG, options(nostack, readonly)) }
    }

    /// Releases the tile state on this thread.
    pub fn release() {
        // SAFETY: only resets tile registers that `configure` set up.
        unsafe { asm!("tilerelease", options(nostack, nomem)) }
    }

    /// Where [`block`] puts its 32 × 32 outputs.
    pub enum Out<'c> {
        /// Overwrites a row-major 32 × 32 buffer.
        Buffer(&'c mut [f32; 1024]),
        /// Overwrites rows 0..32, columns 0..32 of `c`, rows `stride` floats apart.
        Direct { c: &'c mut [f32], stride: usize },
    }

    /// Accumulates output rows `r0..r0 + 32` (16 when not `two_rows`) and panels `p0, p0 + 1`
    /// (only `p0` when not `two_panels`) over all of `k_pad` into `out`.
    pub fn block(
        a: &[u16],
        b: &[u32],
        k_pad: usize,
        r0: usize,
        p0: usize,
        two_rows: bool,
        two_panels: bool,
        out: Out<'_>,
    ) {
        let panel_len = k_pad / 2 * 16;
        let a_rows = if two_rows { 32 } else { 16 };
        let b_panels = if two_panels { 2 } else { 1 };
        // every tile load below stays inside these ranges
        assert!((r0 + a_rows) * k_pad <= a.len() && (p0 + b_panels) * panel_len <= b.len());
        let a_stride = (k_pad * 2) as isize;
        let b_stride: isize = 64;
        let (c, c_stride) = match out {
            Out::Buffer(buffer) => (buffer.as_mut_ptr(), 32),
            Out::Direct { c, stride } => {
                assert!(two_rows && two_panels && stride >= 32 && c.len() >= 31 * stride + 32);
                (c.as_mut_ptr(), stride)
            }
        };
        let c_stride = (c_stride * 4) as isize;
        let a0 = a[r0 * k_pad..].as_ptr();
        let b0 = b[p0 * panel_len..].as_ptr();
        // SAFETY: AMX is configured on this thread (`configure`). Each tile load reads 16 rows of
        // 64 bytes, `stride` apart, starting inside the checked ranges: an `a` tile at row r,
        // column k reads rows r..r+16 of k_pad bf16 from column k < k_pad (k + 32 ≤ k_pad); a
        // `b` tile at pair row k/2 reads 16 consecutive 64-byte rows of one panel, and
        // k/2 + 16 ≤ k_pad/2. Stores write 16 rows of 64 bytes, `c_stride` apart, inside the
        // 32 × 32 buffer or (`Out::Direct`) inside `c`, whose length was checked.
        unsafe {
            let (c0, c1, c2, c3) = (c, c.add(16), c.offset(16 * c_stride / 4), c.offset(16 * c_stride / 4 + 16));
            asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
            let mut k = 0;
            while k < k_pad {
                let pa0 = a0.add(k);
                let pa1 = pa0.add(16 * k_pad);
                let pb0 = b0.add(k / 2 * 16);
                let pb1 = pb0.add(panel_len);
                match (two_rows, two_panels) {
                    (true, true) => asm!(
                        "tileloadd tmm4, [{a0} + {sa}]",
                        "tileloadd tmm5, [{a1} + {sa}]",
                        "tileloadd tmm6, [{b0} + {sb}]",
                        "tileloadd tmm7, [{b1} + {sb}]",
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        "tdpbf16ps tmm1, tmm4, tmm7",
                        "tdpbf16ps tmm2, tmm5, tmm6",
                        "tdpbf16ps tmm3, tmm5, tmm7",
                        a0 = in(reg) pa0, a1 = in(reg) pa1, b0 = in(reg) pb0, b1 = in(reg) pb1,
                        sa = in(reg) a_stride, sb = in(reg) b_stride, options(nostack, readonly)),
                    (true, false) => asm!(
                        "tileloadd tmm4, [{a0} + {sa}]",
                        "tileloadd tmm5, [{a1} + {sa}]",
                        "tileloadd tmm6, [{b0} + {sb}]",
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        "tdpbf16ps tmm2, tmm5, tmm6",
                        a0 = in(reg) pa0, a1 = in(reg) pa1, b0 = in(reg) pb0,
                        sa = in(reg) a_stride, sb = in(reg) b_stride, options(nostack, readonly)),
                    (false, true) => asm!(
                        "tileloadd tmm4, [{a0} + {sa}]",
                        "tileloadd tmm6, [{b0} + {sb}]",
                        "tileloadd tmm7, [{b1} + {sb}]",
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        "tdpbf16ps tmm1, tmm4, tmm7",
                        a0 = in(reg) pa0, b0 = in(reg) pb0, b1 = in(reg) pb1,
                        sa = in(reg) a_stride, sb = in(reg) b_stride, options(nostack, readonly)),
                    (false, false) => asm!(
                        "tileloadd tmm4, [{a0} + {sa}]",
                        "tileloadd tmm6, [{b0} + {sb}]",
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        a0 = in(reg) pa0, b0 = in(reg) pb0,
                        sa = in(reg) a_stride, sb = in(reg) b_stride, options(nostack, readonly)),
                }
                k += 32;
            }
            asm!(
                "tilestored [{c0} + {sc}], tmm0",
                "tilestored [{c1} + {sc}], tmm1",
                "tilestored [{c2} + {sc}], tmm2",
                "tilestored [{c3} + {sc}], tmm3",
                c0 = in(reg) c0, c1 = in(reg) c1, c2 = in(reg) c2, c3 = in(reg) c3,
                sc = in(reg) c_stride, options(nostack));
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod amx {
    //! No AMX off x86-64: [`super::available`] is false and nothing else is called.
    pub fn request() -> bool {
        false
    }
    pub fn configure() {}
    pub fn release() {}
    pub enum Out<'c> {
        Buffer(&'c mut [f32; 1024]),
        Direct { c: &'c mut [f32], stride: usize },
    }
    pub fn block(_: &[u16], _: &[u32], _: usize, _: usize, _: usize, _: bool, _: bool, _: Out<'_>) {
        unreachable!("AMX is never available off x86-64")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_bf16(h: u16) -> f32 {
        f32::from_bits((h as u32) << 16)
    }

    #[test]
    fn rounding_to_bf16_is_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to the even 1.0
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        // 1 + 3·2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: ties to the even one
        assert_eq!(from_bf16(to_bf16(1.0 + 3.0 / 256.0)), 1.0 + 4.0 / 256.0);
        assert_eq!(from_bf16(to_bf16(1.0 + 1.1 / 256.0)), 1.0 + 2.0 / 256.0);
        assert_eq!(to_bf16(-2.5), 0xc020);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        assert_eq!(from_bf16(to_bf16(f32::MAX)), f32::INFINITY);
        assert_eq!(from_bf16(to_bf16(f32::INFINITY)), f32::INFINITY);
    }

    /// The bf16 product equals the f64 product of the bf16-rounded factors up to f32
    /// accumulation error, over edge sizes (not multiples of 16 or 32), strides, transposes, the
    /// β that store full blocks in place (0, 1) and one that does not, and a kept left factor.
    #[test]
    fn products_match_rounded_factors() {
        if !available() {
            eprintln!("skipped: no AMX-BF16 on this machine");
            return;
        }
        // the last, smaller product runs on buffers that hold the previous one's values: its padding
        // must be written, not assumed zero
        for &(m, k, n) in &[(1, 1, 1), (3, 5, 7), (16, 32, 16), (17, 33, 31), (40, 70, 50), (64, 145, 100), (5, 3, 9)] {
            for (case, (transpose_b, beta)) in
                [(false, 0.5), (true, 0.5), (false, 0.0), (true, 1.0)].into_iter().enumerate()
            {
                let a: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0).collect();
                let b: Vec<f32> = (0..k * n).map(|i| ((i * 53 % 97) as f32 - 48.0) / 13.0).collect();
                let bm = if transpose_b { MatRef::rows(&b, n, k).t() } else { MatRef::rows(&b, k, n) };
                let left = [Left::Fresh, Left::Keep, Left::Kept, Left::Fresh][case];
                let mut c = vec![2.0f32; m * (n + 3)];
                gemm_bf16(MatRef::rows(&a, m, k), left, bm, beta, MatMut::strided(&mut c, m, n, n + 3));
                for i in 0..m {
                    for j in 0..n {
                        let want: f64 = (0..k)
                            .map(|l| {
                                let bv = if transpose_b { b[j * k + l] } else { b[l * n + j] };
                                from_bf16(to_bf16(a[i * k + l])) as f64 * from_bf16(to_bf16(bv)) as f64
                            })
                            .sum::<f64>()
                            + 2.0 * beta as f64;
                        let scale: f64 = (0..k).map(|l| (a[i * k + l] as f64).abs()).sum::<f64>() * 4.0 + 1.0;
                        let got = c[i * (n + 3) + j] as f64;
                        assert!(
                            (got - want).abs() <= 1e-6 * scale,
                            "({m},{k},{n}) β {beta} [{i},{j}]: {got} vs {want}"
                        );
                    }
                    for j in n..n + 3 {
                        assert_eq!(c[i * (n + 3) + j], 2.0, "gap between rows untouched");
                    }
                }
            }
        }
    }

    /// A product's bits do not depend on where its output lies in memory (full blocks at
    /// cache-line boundaries are stored by the tiles in place, others through a buffer).
    #[test]
    fn output_placement_does_not_change_the_bits() {
        if !available() {
            eprintln!("skipped: no AMX-BF16 on this machine");
            return;
        }
        let (m, k, n, stride) = (64, 200, 64, 80);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 53 % 97) as f32 - 48.0) / 3.0).collect();
        let start: Vec<f32> = (0..m * stride).map(|i| (i % 13) as f32 * 0.37).collect();
        for beta in [0.0, 1.0, 0.5] {
            let mut results = Vec::new();
            for shift in 0..2 {
                let mut buffer = vec![0.0f32; m * stride + 32];
                let at = buffer.as_ptr().align_offset(64) + shift;
                buffer[at..at + m * stride].copy_from_slice(&start);
                let c = MatMut::strided(&mut buffer[at..], m, n, stride);
                gemm_bf16(MatRef::rows(&a, m, k), Left::Fresh, MatRef::rows(&b, k, n), beta, c);
                results.push(buffer[at..at + m * stride].to_vec());
            }
            assert!(results[0] == results[1], "β = {beta}: aligned and unaligned outputs differ");
        }
    }
}
