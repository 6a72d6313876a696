//! Dirty tracking (API level 2): `iommu_pt_set_dirty_tracking`,
//! `iommu_pt_read_and_clear_dirty`, and `iommu_pt_mark_dirty` for emulated walkers.

use crate::boundary::{boundary, obj};
use crate::errno::Errno;
use crate::table::iommu_pt;
use pgtable_core::DirtyFlags;
use std::ffi::c_int;

/// `iommu_pt_read_and_clear_dirty` flag: report without clearing.
pub const IOMMU_PT_DIRTY_NO_CLEAR: u32 = 1;

const _: () = assert!(IOMMU_PT_DIRTY_NO_CLEAR == DirtyFlags::NO_CLEAR.bits());

/// Turns dirty tracking on (every writable leaf becomes clean, and writable leaves mapped
/// from then on are written clean) or off (every writable leaf becomes writable without
/// tracking, and new leaves are written so). Turn the hardware's dirty updates on
/// before enabling (VT-d: PASID-entry SSADE for the second stage; Arm: CD.HA+HD or
/// STE.S2HA+S2HD: an Arm clean leaf faults on a write without them) and off after
/// disabling. Read-only leaves never change. Enabling twice is a no-op.
///
/// Returns 0; `-EINVAL` for a NULL table.
///
/// # Safety
/// `pt` must be NULL or a live table.
///
/// Thread safety: must not race mutators of this table (readers may run).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iommu_pt_set_dirty_tracking(pt: *mut iommu_pt, enable: bool) -> c_int {
    boundary(|| {
        // SAFETY: the caller passes NULL or a live table (used through `&`).
        let pt = unsafe { obj(pt) }?;
        pt.set_dirty_tracking(enable)?;
        Ok(0)
    })
}

/// Reports the dirty pages of `[iova, iova + len)` in `bitmap`, one bit per `page_size`
/// bytes from `iova` (bit `i` is bit `i % 64` of `bitmap[i / 64]`): for every dirty leaf
/// that intersects the range it sets the bits of every page of the range the leaf covers
/// (a dirty 2 MiB leaf sets all the bits of its 2 MiB), and, unless `flags` has
/// `IOMMU_PT_DIRTY_NO_CLEAR`, makes that leaf clean. It only sets bits, never clears
/// them. Each clear is one atomic operation on the entry, so a hardware write between
/// the read and the clear is reported now or left dirty for the next call, never lost.
/// Invalidate the IOTLB for the range before trusting later reads.
///
/// Returns 0; `-EINVAL` when tracking is off, `page_size` is not a power of two at least
/// the granule, `iova` or `len` is not a multiple of `page_size`, `len == 0`, `bitmap`
/// or `pt` is NULL, or `flags` has unknown bits; `-ERANGE` beyond `2^ias`. No error
/// changes a table entry or a bitmap bit.
///
/// # Safety
/// `pt` must be NULL or a live table; `bitmap` NULL or writable for `len / page_size`
/// bits, rounded up to whole `uint64_t` words.
///
/// Thread safety: a mutator of `[iova, iova + len)`: it may run with maps and unmaps of
/// disjoint ranges, readers anywhere, and hardware setting dirty bits anywhere.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iommu_pt_read_and_clear_dirty(
    pt: *mut iommu_pt,
    iova: u64,
    len: u64,
    page_size: u64,
    bitmap: *mut u64,
    flags: u32,
) -> c_int {
    boundary(|| {
        // SAFETY: the caller passes NULL or a live table (used through `&`).
        let pt = unsafe { obj(pt) }?;
        let flags = DirtyFlags::from_bits(flags)
            .ok_or_else(|| Errno::INVAL.because("unknown dirty flags"))?;
        if bitmap.is_null() {
            return Err(Errno::INVAL.because("a NULL bitmap"));
        }
        // The words the caller provides for a valid request; anything else is refused
        // by the core before a bit is touched (with no bitmap at all).
        let words = if page_size.is_power_of_two() && len != 0 && len.is_multiple_of(page_size) {
            (len / page_size).div_ceil(64) as usize
        } else {
            0
        };
        // SAFETY: `bitmap` is non-NULL and writable for `len / page_size` bits in whole
        // words (the caller's promise), and nothing else uses it during the call.
        let bits = unsafe { std::slice::from_raw_parts_mut(bitmap, words) };
        pt.read_and_clear_dirty(iova, len, page_size, bits, flags)?;
        Ok(0)
    })
}

/// What the hardware does when a device writes through the leaf covering `iova` while
/// tracking is on: marks it dirty with one atomic operation. For emulated IOMMUs whose
/// devices write through these tables, and for tests.
///
/// Returns 1 if the leaf was clean, 0 if it was already dirty; `-ENOENT` if `iova` is
/// not mapped, `-ERANGE` beyond the input size, `-EINVAL` for a NULL table, a leaf that
/// is not writable, or tracking off.
///
/// # Safety
/// `pt` must be NULL or a live table.
///
/// Thread safety: may run concurrently with any call but `iommu_pt_free` and
/// `iommu_pt_set_dirty_tracking`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iommu_pt_mark_dirty(pt: *mut iommu_pt, iova: u64) -> c_int {
    boundary(|| {
        // SAFETY: the caller passes NULL or a live table (used through `&`).
        let pt = unsafe { obj(pt) }?;
        Ok(c_int::from(pt.mark_dirty(iova)?))
    })
}
