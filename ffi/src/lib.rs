//! # iommu-pt-ffi: the C API of iommu-pt
//!
//! `libiommu_pt.a` / `libiommu_pt.so` and the header `include/iommu_pt.h` (generated
//! by cbindgen from this crate, see `cbindgen.toml`) expose the page tables of
//! `pgtable-core` in the VT-d and Arm formats and the IOVA allocator of `iova-cache`,
//! exactly as `docs/c-api.md` specifies. This crate holds no page-table or allocator logic of
//! its own: it checks C arguments, picks the format, and maps errors to errno.
//!
//! Every exported function goes through one helper, `boundary::boundary`: panics never
//! unwind into C (they become `-EIO`, 0 or NULL), NULL handles and out-pointers give
//! `-EINVAL`, and errors become negative errno values.
//!
//! Modules: [`types`] (the `#[repr(C)]` structs and constants), `table` (the
//! `iommu_pt` handle and format dispatch), `memory` (host memory or the caller's
//! `iommu_pt_mem_ops`), [`pagetable`], [`gather`] and [`iova`] (the exported functions),
//! `errno`, `fd` (dump to a file descriptor) and [`version`].
//!
//! Thread safety follows the core's concurrency contract: page-table calls on one
//! table may run concurrently (mutators on disjoint ranges, readers anywhere); a
//! gather is owned by one thread at a time; `*_free` must not race anything.

// The exported items, in the order the header shows them (cbindgen follows module
// order; the comments keep rustfmt from sorting the groups).
pub mod types;

// Page tables.
pub mod pagetable;

// The library version.
pub mod version;

// What an error means, and the detail of the last one.
pub mod errors;

// Gathers.
pub mod gather;

// Sessions: one pin for a batch of calls.
pub mod session;

// Dirty tracking.
pub mod dirty;

// The IOVA allocator.
pub mod iova;

mod abi;
mod boundary;
mod errno;
mod fd;
mod memory;
mod table;

pub use gather::iommu_pt_gather;
pub use iova::iova_domain;
pub use session::iommu_pt_session;
pub use table::iommu_pt;
