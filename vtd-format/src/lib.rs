//! # vtd-format: Intel VT-d I/O page tables, byte-exact
//!
//! The [`pgtable_core::Format`]s for Intel VT-d, so that a table built by
//! [`pgtable_core::PageTable`] is exactly what a VT-d IOMMU (and Linux) expects:
//!
//! - [`VtdSs`]: second-stage tables, 3/4/5 levels (AW 1/2/3), 4K/2M/1G leaves,
//!   entries as Linux's generic_pt `vtdss` writes them.
//! - [`VtdFs`]: first-stage tables, x86-64 4/5-level paging over the lower canonical
//!   half, 4K/2M/1G leaves, entries as generic_pt `x86_64` writes them.
//! - Both are one generic [`Vtd`] over a [`VtdStage`] ([`Second`], [`First`]): one
//!   geometry, configuration and decoder, stage-specific entry bits.
//! - The device → table chain, each structure typed with encode and decode, so tests,
//!   firmware and guests can build chains and a vIOMMU can walk them: the RTADDR_REG
//!   value ([`RootTableAddress`]), root entries ([`RootEntry`], [`ScalableRootEntry`]),
//!   context entries ([`ContextEntry`], [`ScalableContextEntry`]), the PASID directory
//!   and table ([`PasidDirEntry`], [`PasidEntry`]), with the index arithmetic of each
//!   table ([`root_entry_offset`], [`context_entry_offset`],
//!   [`scalable_context_entry_offset`], [`pasid_dir_entry_offset`],
//!   [`pasid_entry_offset`]).
//! - What the IOMMU reports and is told: [`FaultReason`] and [`FaultRecord`], and the
//!   queued-invalidation descriptors ([`InvalidationDescriptor`]).
//!
//! Every decode checks what the hardware checks (reserved bits, reserved field
//! values) and fails with a [`DecodeError`] that names the fault reason the hardware
//! would record ([`DecodeError::fault_reason`]).
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
//! out of the IOVA allocator and never used as an output address (docs/formats.md §1.4);
//! like Linux, this library leaves that to the IOVA allocator's reservations.

#![warn(missing_docs)]

mod agaw;
pub mod bits;
mod context;
mod decoder;
mod error;
mod fault_reason;
mod fault_record;
mod format;
mod fs;
mod invalidation;
mod levels;
mod pasid;
mod root;
mod source_id;
mod ss;

pub use agaw::Agaw;
pub use context::{
    CONTEXT_ENTRY_SIZE, ContextEntry, SCALABLE_CONTEXT_ENTRY_SIZE, ScalableContextEntry,
    TranslationType, context_entry_offset, context_index, scalable_context_entry_offset,
    scalable_context_index,
};
pub use error::{DecodeError, Structure};
pub use fault_reason::FaultReason;
pub use fault_record::{
    AddressType, FAULT_RECORD_SIZE, FaultRecord, fault_record_count, fault_record_offset,
};
pub use format::{Vtd, VtdStage};
pub use fs::{First, VtdFs};
pub use invalidation::{
    ContextCacheScope, InterruptCacheScope, InvalidationDescriptor, IotlbScope, PasidCacheScope,
    PasidIotlbScope, invalidation_range,
};
pub use levels::{SZ_1G, SZ_2M, SZ_4K, level_name};
pub use pasid::{
    PASID_BITS, PASID_DIR_ENTRY_SIZE, PASID_ENTRY_SIZE, PasidDirEntry, PasidEntry, Pgtt,
    pasid_dir_entry_offset, pasid_dir_index, pasid_entry_offset, pasid_table_index,
};
pub use root::{
    ContextTablePointer, ROOT_ENTRY_SIZE, RootEntry, RootTableAddress, ScalableRootEntry,
    TranslationTableMode, root_entry_offset, root_index,
};
pub use source_id::SourceId;
pub use ss::{Second, VtdSs};

/// The interrupt address window: DMA writes to it are interrupt requests, and a
/// translation that lands in it is blocked (fault 0xE, or 0x87 in scalable mode). Keep
/// it out of the IOVA allocator and never map anything to it (docs/formats.md §1.4).
pub const INTERRUPT_RANGE: std::ops::RangeInclusive<u64> = 0xFEE0_0000..=0xFEEF_FFFF;
