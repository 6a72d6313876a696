//! The `#[repr(C)]` structs, callback types and constants of the C API, laid out
//! exactly as `docs/c-api.md` fixes them (cbindgen turns the constants into `#define`s).

use pgtable_core::Prot;
use std::ffi::{c_int, c_void};

/// Intel VT-d second-stage tables.
pub const IOMMU_PT_FMT_VTD_SS: u32 = 1;
/// Intel VT-d first-stage tables (x86-64 4/5-level paging).
pub const IOMMU_PT_FMT_VTD_FS: u32 = 2;
/// Arm VMSAv8-64 stage 1 (SMMUv3 context descriptor).
pub const IOMMU_PT_FMT_ARM_S1: u32 = 3;
/// Arm VMSAv8-64 stage 2 (SMMUv3 stream table entry).
pub const IOMMU_PT_FMT_ARM_S2: u32 = 4;

/// The device may read (Linux's `IOMMU_READ`).
pub const IOMMU_PT_READ: u32 = 1;
/// The device may write (Linux's `IOMMU_WRITE`).
pub const IOMMU_PT_WRITE: u32 = 2;
/// Coherent / cacheable (VT-d: SNP; Arm: normal write-back, inner shareable).
pub const IOMMU_PT_CACHE: u32 = 4;
/// Not executable.
pub const IOMMU_PT_NOEXEC: u32 = 8;
/// Device (MMIO) memory type (Arm).
pub const IOMMU_PT_MMIO: u32 = 16;
/// Privileged accesses only (Arm S1: `AP[1]=0`; VT-d FS: `U/S=0`).
pub const IOMMU_PT_PRIV: u32 = 32;

/// The API level of this header: 2 = `iommu_pt_flush_ops` and gathers that hold the
/// pages of several tables until their release.
pub const IOMMU_PT_API_LEVEL: u32 = 2;

/// `iova_domain_new` / `iova_options.flags`: detect double frees and wrong-size frees
/// (slower).
pub const IOVA_F_CHECKED: u32 = 1;

// The prot constants are literals so that cbindgen can emit them; they must stay the
// core's values.
const _: () = {
    assert!(IOMMU_PT_READ == Prot::READ.bits());
    assert!(IOMMU_PT_WRITE == Prot::WRITE.bits());
    assert!(IOMMU_PT_CACHE == Prot::CACHE.bits());
    assert!(IOMMU_PT_NOEXEC == Prot::NOEXEC.bits());
    assert!(IOMMU_PT_MMIO == Prot::MMIO.bits());
    assert!(IOMMU_PT_PRIV == Prot::PRIV.bits());
};

/// Where table pages live, for callers that manage the memory an IOMMU walks
/// (a VMM's guest RAM, a DMA pool). Every callback may be called from any thread, at
/// the same time as the others, until every page of the table went back through
/// `free` (which may be after `iommu_pt_free` when a gather still holds pages).
///
/// `phys_to_virt` must map every page `alloc` handed out (and not yet freed) back to its
/// CPU address. The library checks this for each page before it uses it: a page that
/// does not map back is given back and the call fails with `-EIO`. If `phys_to_virt`
/// later fails for a page of the table, every call that needs that table fails with
/// `-EIO` (an unmap stops there and returns what it unmapped), and `iommu_pt_free`
/// cannot reach the pages below it to give them back; nothing is ever freed twice.
/// Pages come back through `free` as soon as no reader can hold them (tables over
/// these callbacks keep no page cache).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct iommu_pt_mem_ops {
    /// Returns `size` zeroed bytes whose CPU address and physical address (`*phys`) are
    /// both aligned to `align`, or NULL when memory is exhausted.
    pub alloc: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            size: usize,
            align: usize,
            phys: *mut u64,
        ) -> *mut c_void,
    >,
    /// Gives back an allocation of `alloc` (with its `size`).
    pub free:
        Option<unsafe extern "C" fn(ctx: *mut c_void, virt: *mut c_void, phys: u64, size: usize)>,
    /// The CPU address of physical address `phys` inside a live allocation.
    pub phys_to_virt: Option<unsafe extern "C" fn(ctx: *mut c_void, phys: u64) -> *mut c_void>,
}

/// How the library reaches the caller's IOTLB (API level 2), for the table pages it
/// unlinks on its own: a map that replaces an empty subtree by a larger leaf, and an
/// unmap with a NULL gather.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct iommu_pt_flush_ops {
    /// Invalidate the IOMMU's walk caches and IOTLB for `[iova, iova + size)` and wait
    /// until the invalidation has completed. Called synchronously on the thread doing the
    /// map or unmap.
    pub flush_walk: Option<unsafe extern "C" fn(ctx: *mut c_void, iova: u64, size: u64)>,
}

/// How to build a table (see `iommu_pt_new`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct iommu_pt_config {
    /// `IOMMU_PT_FMT_*`.
    pub format: u32,
    /// Input (IOVA) bits; 0 = 48.
    pub ias: u32,
    /// Output address bits; 0 = 48.
    pub oas: u32,
    /// Granule in bytes: Arm 4096, 16384 or 65536, VT-d 4096; 0 = 4096.
    pub granule: u32,
    /// Allowed page sizes (bit n: `1 << n` bytes); 0 = all the format allows (as Linux).
    pub pgsize_bitmap: u64,
    /// Must be 0.
    pub flags: u64,
    /// Table memory; NULL = host memory (physical address == virtual address).
    pub mem: *const iommu_pt_mem_ops,
    /// Passed to every `mem` callback.
    pub mem_ctx: *mut c_void,
    /// API level 2: how to invalidate the IOTLB when the library unlinks tables itself;
    /// NULL = no hardware walks this table (unlinked pages go to epoch reclamation at
    /// once).
    pub flush: *const iommu_pt_flush_ops,
    /// Passed to `flush->flush_walk`.
    pub flush_ctx: *mut c_void,
}

/// One physically contiguous piece of a scatter-gather list (`iommu_pt_map_sg`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub struct iommu_pt_sg {
    /// Physical address of the piece (granule aligned).
    pub paddr: u64,
    /// Its length in bytes (a multiple of the granule).
    pub len: u64,
}

/// One leaf (walk) or the leaf covering a queried IOVA (translate).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub struct iommu_pt_translation {
    /// The leaf's first IOVA (translate: the queried IOVA).
    pub iova: u64,
    /// Output address of `iova`.
    pub paddr: u64,
    /// Leaf size in bytes.
    pub size: u64,
    /// `IOMMU_PT_*` bits the leaf grants.
    pub prot: u32,
    /// 0 = smallest-page level.
    pub level: u32,
}

/// What `iommu_pt_get_info` reports.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub struct iommu_pt_info {
    /// `IOMMU_PT_FMT_*`.
    pub format: u32,
    /// Table levels.
    pub levels: u32,
    /// Input address bits, as configured.
    pub ias: u32,
    /// Output address bits, as configured.
    pub oas: u32,
    /// Granule in bytes.
    pub granule: u32,
    /// 0.
    pub reserved: u32,
    /// Page sizes the table maps.
    pub pgsize_bitmap: u64,
    /// Top table (Arm S2: first of the concatenated tables).
    pub root_phys: u64,
    /// Table pages currently allocated (root included), for leak checks.
    pub table_pages: u64,
    /// VT-d SS: {SSPTPTR, AW}; VT-d FS: {FSPTPTR, levels (4|5)};
    /// Arm S1: {TTB0, CD dword-0 TCR fields, MAIR}; Arm S2: {S2TTB, STE VTCR field}.
    /// Unused entries are 0.
    pub regs: [u64; 4],
}

/// Called by `iommu_pt_walk` for each leaf; a non-zero return stops the walk.
#[allow(non_camel_case_types)]
pub type iommu_pt_leaf_fn =
    Option<unsafe extern "C" fn(arg: *mut c_void, leaf: *const iommu_pt_translation) -> c_int>;

/// Counters of an IOVA domain (see `iova_get_stats`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub struct iova_stats {
    /// Allocations in the range tree, including those parked in the caches.
    pub live_ranges: u64,
    /// Pages covered by the ranges the caches hold.
    pub cached_pfns: u64,
    /// `iova_alloc_fast` calls served from a cache.
    pub cache_hits: u64,
    /// `iova_alloc_fast` calls of a cached size the caches could not serve.
    pub cache_misses: u64,
    /// Full magazines waiting in the depots.
    pub depot_magazines: u64,
    /// Magazines the depots gave back to the tree because they were over their limit.
    pub trims: u64,
    /// Largest size served by the per-CPU caches (pages).
    pub max_cached_pages: u64,
}

/// Options of `iova_domain_new_with`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub struct iova_options {
    /// Bytes, a power of two from 4096 to 65536.
    pub granule: u64,
    /// The lowest pfn ever allocated, >= 1.
    pub start_pfn: u64,
    /// `IOVA_F_*`.
    pub flags: u32,
    /// Cached sizes are `1 << 0 .. 1 << max_cached_order` pages; 0 = default 5; at most 10.
    pub max_cached_order: u32,
    /// Full magazines kept per size class; 0 = default.
    pub depot_limit: u32,
    /// Must be 0.
    pub reserved: u32,
}
