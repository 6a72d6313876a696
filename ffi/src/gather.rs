//! The opaque `struct iommu_pt_gather` and its functions: what an unmap leaves the
//! caller to invalidate, and the table pages it holds until then.

use crate::boundary::{boundary, obj, obj_mut, out};
use crate::errno::Errno;
use pgtable_core::Gather;
use std::alloc::{Layout, alloc};
use std::ffi::c_int;

/// The IOVA range an unmap changed and the table pages it unlinked (opaque to C).
#[allow(non_camel_case_types)]
#[derive(Debug, Default)]
pub struct iommu_pt_gather {
    pub(crate) gather: Gather,
}

/// Allocates an empty gather, or returns NULL if memory is exhausted.
///
/// Pass it to `iommu_pt_unmap*`, invalidate `iommu_pt_gather_range` in the IOTLB
/// (non-leaf entries too when `iommu_pt_gather_freed_tables` is non-zero), then call
/// `iommu_pt_gather_release`. A gather may collect several unmaps, of several tables.
///
/// Thread safety: may be called from any thread.
#[unsafe(no_mangle)]
pub extern "C" fn iommu_pt_gather_new() -> *mut iommu_pt_gather {
    boundary(|| {
        // Allocated by hand so that exhaustion returns NULL instead of aborting; the
        // layout is Box's, so `iommu_pt_gather_free` gives it back with Box::from_raw.
        let layout = Layout::new::<iommu_pt_gather>();
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc(layout) }.cast::<iommu_pt_gather>();
        if !p.is_null() {
            // SAFETY: `p` is a fresh allocation for one `iommu_pt_gather`.
            unsafe { p.write(iommu_pt_gather::default()) };
        }
        Ok(p)
    })
}

/// Writes the inclusive IOVA range to invalidate to `*start` and `*last`.
///
/// Returns 0, `-ENOENT` when nothing was gathered, `-EINVAL` for a NULL argument.
///
/// # Safety
/// `g` must be NULL or a live gather; `start` and `last` NULL or writable.
///
/// Thread safety: a gather is owned by one thread at a time.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iommu_pt_gather_range(
    g: *const iommu_pt_gather,
    start: *mut u64,
    last: *mut u64,
) -> c_int {
    boundary(|| {
        // SAFETY: the caller passes NULL or a live gather it owns.
        let g = unsafe { obj(g) }?;
        let (start, last) = (out(start)?, out(last)?);
        let range = g
            .gather
            .range()
            .ok_or_else(|| Errno::NOENT.because("the gather is empty"))?;
        // SAFETY: both out-pointers are non-NULL and writable (caller's promise).
        unsafe {
            start.write(range.start().0);
            last.write(range.end().0);
        }
        Ok(0)
    })
}

/// Table pages (in granules) the gathered unmaps unlinked and that are not yet released;
/// when non-zero, the invalidation must also drop cached non-leaf entries (VT-d IH=0,
/// Arm leaf=0). 0 for NULL.
///
/// # Safety
/// `g` must be NULL or a live gather.
///
/// Thread safety: a gather is owned by one thread at a time.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iommu_pt_gather_freed_tables(g: *const iommu_pt_gather) -> u64 {
    boundary(|| {
        // SAFETY: the caller passes NULL or a live gather it owns.
        Ok(unsafe { obj(g) }?.gather.freed_tables())
    })
}

/// Declares the IOTLB invalidation of the gathered range done: the held table pages go
/// to epoch reclamation (they are given back through `mem_ops->free` once no reader can
/// hold them; at once if their table was freed), and the gather is reset for reuse.
/// NULL is a no-op.
///
/// # Safety
/// `g` must be NULL or a live gather.
///
/// Thread safety: a gather is owned by one thread at a time.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iommu_pt_gather_release(g: *mut iommu_pt_gather) {
    boundary(|| {
        // SAFETY: the caller passes NULL or a live gather it owns.
        if let Ok(g) = unsafe { obj_mut(g) } {
            g.gather.release();
        }
        Ok(())
    })
}

/// Releases the gather (as `iommu_pt_gather_release`), then frees it. NULL is a no-op.
///
/// # Safety
/// `g` must be NULL or a live gather, not used afterwards.
///
/// Thread safety: a gather is owned by one thread at a time.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iommu_pt_gather_free(g: *mut iommu_pt_gather) {
    boundary(|| {
        if !g.is_null() {
            // SAFETY: `g` came from `iommu_pt_gather_new` (Box::into_raw) and is freed
            // once.
            let mut g = unsafe { Box::from_raw(g) };
            g.gather.release();
        }
        Ok(())
    })
}
