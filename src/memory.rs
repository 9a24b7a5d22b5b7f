//! Large arrays that are read at random (the logistic objective's features: one random row per
//! sample of every gradient) on transparent huge pages. With 4 KiB pages, a 25.6 MB array spans
//! 6,250 pages, more than the core's TLB holds, so nearly every row read also walks the page
//! table; on 2 MiB pages the same array is 13 TLB entries. Linux only, and only advice: where
//! the kernel's transparent huge pages are off (or on any other system) the array is the same
//! ordinary zeroed vector, with the same contents.

/// The huge page size: an array that holds no whole aligned huge page stays on ordinary pages
/// (it fits the TLB anyway).
const HUGE_PAGE: usize = 2 << 20;

/// `vec![0.0; len]`, advised onto huge pages when it spans at least one.
pub fn zeroed_f32(len: usize) -> Vec<f32> {
    let v = vec![0.0f32; len];
    advise_huge_pages(&v);
    v
}

/// Asks the kernel to back the whole 2 MiB pages inside `v` by huge pages. A large zeroed
/// vector comes untouched from `mmap`, so its pages are not faulted in yet and the advice takes
/// effect when they first are.
#[allow(unsafe_code)]
fn advise_huge_pages(v: &[f32]) {
    #[cfg(target_os = "linux")]
    {
        let start = v.as_ptr() as usize;
        let end = start + std::mem::size_of_val(v);
        let (first, last) = (start.next_multiple_of(HUGE_PAGE), end / HUGE_PAGE * HUGE_PAGE);
        if last > first {
            // SAFETY: MADV_HUGEPAGE on a range of our own allocation changes how it is backed,
            // never its contents; a failure (THP unsupported) leaves it as it was.
            unsafe {
                libc::madvise(first as *mut libc::c_void, last - first, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (v, HUGE_PAGE);
}
