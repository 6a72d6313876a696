//! Calls through the C API, as a C program makes them: through function pointers (so
//! link-time optimisation cannot inline the library into the benchmark), with the
//! argument checks, the panic boundary and the format dispatch every C call pays.

use ::iommu_pt as ffi;
use ffi::gather::{
    iommu_pt_gather, iommu_pt_gather_free, iommu_pt_gather_new, iommu_pt_gather_release,
};
use ffi::iommu_pt;
use ffi::pagetable::{
    iommu_pt_free, iommu_pt_iova_to_phys, iommu_pt_map_pages, iommu_pt_new, iommu_pt_unmap_pages,
};
use ffi::session::{iommu_pt_session, iommu_pt_session_begin, iommu_pt_session_end};
use ffi::types::iommu_pt_config;
use std::ffi::c_int;
use std::hint::black_box;

type MapFn = unsafe extern "C" fn(*mut iommu_pt, u64, u64, u64, u64, u32, *mut u64) -> c_int;
type UnmapFn = unsafe extern "C" fn(*mut iommu_pt, u64, u64, u64, *mut iommu_pt_gather) -> u64;
type LookupFn = unsafe extern "C" fn(*const iommu_pt, u64) -> u64;

/// One C table and the entry points a driver calls on its fast path.
#[derive(Debug)]
pub struct CTable {
    pt: *mut iommu_pt,
    gather: *mut iommu_pt_gather,
    map: MapFn,
    unmap: UnmapFn,
    lookup: LookupFn,
}

impl CTable {
    /// A table of `format` (`IOMMU_PT_FMT_*`) on host memory.
    pub fn new(format: u32, ias: u32, oas: u32, granule: u32) -> Self {
        let cfg = iommu_pt_config {
            format,
            ias,
            oas,
            granule,
            pgsize_bitmap: 0,
            flags: 0,
            mem: std::ptr::null(),
            mem_ctx: std::ptr::null_mut(),
            flush: std::ptr::null(),
            flush_ctx: std::ptr::null_mut(),
        };
        let mut pt = std::ptr::null_mut();
        // SAFETY: a valid config and out-pointer.
        assert_eq!(unsafe { iommu_pt_new(&cfg, &mut pt) }, 0, "iommu_pt_new");
        CTable {
            pt,
            gather: iommu_pt_gather_new(),
            map: black_box(iommu_pt_map_pages as MapFn),
            unmap: black_box(iommu_pt_unmap_pages as UnmapFn),
            lookup: black_box(iommu_pt_iova_to_phys as LookupFn),
        }
    }

    /// `iommu_pt_map_pages(pt, iova, pa, pgsize, count, READ|WRITE, NULL)`.
    #[inline(always)]
    pub fn map_pages(&self, iova: u64, pa: u64, pgsize: u64, count: u64) -> c_int {
        // SAFETY: a live table; NULL `mapped` is allowed.
        unsafe { (self.map)(self.pt, iova, pa, pgsize, count, 3, std::ptr::null_mut()) }
    }

    /// `iommu_pt_unmap_pages(pt, iova, pgsize, count, gather)` into this table's gather.
    #[inline(always)]
    pub fn unmap_pages(&self, iova: u64, pgsize: u64, count: u64) -> u64 {
        // SAFETY: a live table and gather, used by this thread only.
        unsafe { (self.unmap)(self.pt, iova, pgsize, count, self.gather) }
    }

    /// `iommu_pt_iova_to_phys(pt, iova)`.
    #[inline(always)]
    pub fn iova_to_phys(&self, iova: u64) -> u64 {
        // SAFETY: a live table.
        unsafe { (self.lookup)(self.pt, iova) }
    }

    /// `iommu_pt_gather_release` of this table's gather (after the "invalidation").
    pub fn release(&self) {
        // SAFETY: a live gather used by this thread only.
        unsafe { iommu_pt_gather_release(self.gather) };
    }

    /// Runs `f` inside `iommu_pt_session_begin` / `_end`: every call in it shares one pin.
    pub fn in_session<R>(&self, f: impl FnOnce() -> R) -> R {
        let s: *mut iommu_pt_session = iommu_pt_session_begin();
        let r = f();
        // SAFETY: the session this thread began above.
        unsafe { iommu_pt_session_end(s) };
        r
    }
}

impl Drop for CTable {
    fn drop(&mut self) {
        // SAFETY: both came from their `_new` and are not used again.
        unsafe {
            iommu_pt_gather_free(self.gather);
            iommu_pt_free(self.pt);
        }
    }
}
