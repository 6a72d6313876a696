//! # vtd-format: Intel VT-d I/O page tables, byte-exact
//!
//! The [`pgtable_core::Format`]s for Intel VT-d, so that a table built by
//! [`pgtable_core::PageTable`] is exactly what a VT-d IOMMU (and Linux) expects:
//!
//! - [`VtdSs`]: second-stage tables, 3/4/5 levels (AW 1/2/3), 4K/2M/1G leaves,
//!   entries as Linux's generic_pt `vtdss` writes them.
//! - [`VtdFs`]: first-stage tables, x86-64 4/5-level paging over the lower canonical
//!   half, 4K/2M/1G leaves, entries as generic_pt `x86_64` writes them.
//! - [`ContextEntry`] and [`PasidEntry`]: the legacy context entry and the
//!   scalable-mode PASID entry that point the IOMMU at a table, for a domain id.
//!
//! Each format's `decode` is a standalone decoder for tables this library did not
//! build: it classifies any raw entry at any level as the hardware would (not present,
//! table, leaf, or [`pgtable_core::Fault::Reserved`] with the offending bits), which
//! lets the core's walker say why a translation of a foreign table fails.
//!
//! Level numbers are the core's (0 = PTE, the 4 KiB level); dumps show Linux's
//! debugfs names through [`level_name`].
//!
//! ```
//! use pgtable_core::{HostMemory, Iova, PageTable, PhysAddr, Prot};
//! use std::sync::Arc;
//! use vtd_format::VtdSs;
//!
//! let pt = PageTable::new(VtdSs::new(48, 48)?, Arc::new(HostMemory::new()))?;
//! pt.map(Iova(0x4000_0000), PhysAddr(0x1_0000_0000), 0x20_0000, Prot::RW | Prot::CACHE)?;
//! let t = pt.translate(Iova(0x4000_1234))?;
//! assert_eq!((t.pa, t.size, t.level), (PhysAddr(0x1_0000_1234), 0x20_0000, 1));
//! let info = pt.info();
//! let ce = pt.format().context_entry(info.hw.root_phys, 1);
//! assert_eq!(ce.ssptptr(), info.hw.root_phys.0);
//! # Ok::<(), pgtable_core::Error>(())
//! ```
//!
//! Not enforced here: the interrupt window `0xFEE0_0000..=0xFEEF_FFFF` must be kept
//! out of the IOVA allocator and never used as an output address (FORMATS.md §1.4);
//! like Linux, this library leaves that to the IOVA allocator's reservations.

#![warn(missing_docs)]

pub mod bits;
mod context;
mod decoder;
mod fs;
mod levels;
mod ss;

pub use context::{Agaw, ContextEntry, PasidEntry};
pub use fs::VtdFs;
pub use levels::{SZ_1G, SZ_2M, SZ_4K, level_name};
pub use ss::VtdSs;
