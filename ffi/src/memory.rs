//! [`Callbacks`]: table pages from the caller's `iommu_pt_mem_ops` (a table without
//! them uses `HostMemory`); [`CFlush`]: the caller's `iommu_pt_flush_ops`.
//!
//! A `mem_ops->phys_to_virt` that returns NULL for a page the library allocated breaks
//! the memory contract: the library checks every page when it installs it (such a page
//! is given back and the map fails with `-EIO`), and if the callback later fails for a
//! live table, the operation that needed it fails with `-EIO` (unmap stops there) and
//! the pages below that table cannot be reached, so `iommu_pt_free` cannot give them
//! back (they are never freed twice or while in use).

use crate::errno::Errno;
use crate::types::{iommu_pt_flush_ops, iommu_pt_mem_ops};
use pgtable_core::{FlushWalk, Iova, TableMemory, TablePage};
use std::ffi::c_void;
use std::ptr::NonNull;

type AllocFn = unsafe extern "C" fn(*mut c_void, usize, usize, *mut u64) -> *mut c_void;
type FreeFn = unsafe extern "C" fn(*mut c_void, *mut c_void, u64, usize);
type PhysToVirtFn = unsafe extern "C" fn(*mut c_void, u64) -> *mut c_void;

/// A copy of the caller's `iommu_pt_mem_ops` (all three present) and its context.
#[derive(Debug)]
pub(crate) struct Callbacks {
    alloc: AllocFn,
    free: FreeFn,
    phys_to_virt: PhysToVirtFn,
    ctx: *mut c_void,
}

// SAFETY: the C API requires the callbacks to be callable from any thread, concurrently,
// with this context (`iommu_pt_mem_ops` docs); the pointers themselves are plain values.
unsafe impl Send for Callbacks {}
// SAFETY: as above.
unsafe impl Sync for Callbacks {}

impl Callbacks {
    /// The callbacks a config asks for: `None` for NULL `ops` (host memory), else a
    /// copy of them (so `*ops` itself need not outlive `iommu_pt_new`).
    ///
    /// # Errors
    /// `EINVAL` if a callback is missing.
    ///
    /// # Safety
    /// `ops` must be NULL or point to a readable `iommu_pt_mem_ops`.
    pub(crate) unsafe fn new(
        ops: *const iommu_pt_mem_ops,
        ctx: *mut c_void,
    ) -> Result<Option<Self>, Errno> {
        // SAFETY: forwarded from the caller.
        let Some(ops) = (unsafe { ops.as_ref() }) else {
            return Ok(None);
        };
        match (ops.alloc, ops.free, ops.phys_to_virt) {
            (Some(alloc), Some(free), Some(phys_to_virt)) => Ok(Some(Callbacks {
                alloc,
                free,
                phys_to_virt,
                ctx,
            })),
            _ => Err(Errno::INVAL.because("mem_ops lacks alloc, free or phys_to_virt")),
        }
    }
}

// SAFETY: the C caller promises (docs/c-api.md) zeroed memory aligned as asked, owned until
// `free`, and a `phys_to_virt` that maps its live allocations; `alloc` below still
// refuses misaligned pages and zeroes each page, so a careless allocator cannot make the
// walker misread entries, and the walker checks every page maps back before using it.
unsafe impl TableMemory for Callbacks {
    #[inline]
    fn alloc(&self, size: usize, align: usize) -> Option<TablePage> {
        let mut phys = 0u64;
        // SAFETY: a call into the caller's allocator with its context.
        let p = unsafe { (self.alloc)(self.ctx, size, align, &mut phys) };
        let virt = NonNull::new(p.cast::<u8>())?;
        let align_mask = (align as u64).saturating_sub(1);
        if virt.as_ptr() as u64 & align_mask != 0 || phys & align_mask != 0 {
            // SAFETY: the allocation came from `alloc` just now and is unused.
            unsafe { (self.free)(self.ctx, p, phys, size) };
            return None;
        }
        // SAFETY: the allocator handed us `size` writable bytes at `virt`.
        unsafe { virt.as_ptr().write_bytes(0, size) };
        Some(TablePage { virt, phys, size })
    }

    #[inline]
    unsafe fn free(&self, page: TablePage) {
        // SAFETY: the page came from the caller's `alloc` and is given back once.
        unsafe { (self.free)(self.ctx, page.virt.as_ptr().cast(), page.phys, page.size) }
    }

    #[inline(always)]
    fn phys_to_virt(&self, phys: u64, _len: usize) -> Option<NonNull<u8>> {
        // SAFETY: a call into the caller's translation with its context.
        NonNull::new(unsafe { (self.phys_to_virt)(self.ctx, phys) }.cast())
    }
}

type FlushFn = unsafe extern "C" fn(*mut c_void, u64, u64);

/// A copy of the caller's `iommu_pt_flush_ops` and its context: the table's flush hook.
#[derive(Debug)]
pub(crate) struct CFlush {
    flush_walk: FlushFn,
    ctx: *mut c_void,
}

// SAFETY: the C API requires `flush_walk` to be callable from any thread that maps or
// unmaps, concurrently, with this context; the pointers themselves are plain values.
unsafe impl Send for CFlush {}
// SAFETY: as above.
unsafe impl Sync for CFlush {}

impl CFlush {
    /// The hook a config asks for: none for NULL `ops`.
    ///
    /// # Errors
    /// `EINVAL` if `ops` has no `flush_walk`.
    ///
    /// # Safety
    /// `ops` must be NULL or point to a readable `iommu_pt_flush_ops`.
    pub(crate) unsafe fn new(
        ops: *const iommu_pt_flush_ops,
        ctx: *mut c_void,
    ) -> Result<Option<Self>, Errno> {
        // SAFETY: forwarded from the caller.
        let Some(ops) = (unsafe { ops.as_ref() }) else {
            return Ok(None);
        };
        let flush_walk = ops
            .flush_walk
            .ok_or_else(|| Errno::INVAL.because("flush ops without flush_walk"))?;
        Ok(Some(CFlush { flush_walk, ctx }))
    }
}

impl FlushWalk for CFlush {
    fn flush_walk(&self, iova: Iova, size: u64) {
        // SAFETY: a call into the caller's invalidation with its context, which the C
        // caller keeps valid while the table lives.
        unsafe { (self.flush_walk)(self.ctx, iova.0, size) }
    }
}
