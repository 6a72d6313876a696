//! # smmu-format: Arm SMMUv3 (VMSAv8-64) I/O page tables for pgtable-core
//!
//! The [`pgtable_core::Format`]s of the long-descriptor tables an Arm SMMUv3 walks,
//! bit for bit as current Linux io-pgtable-arm writes them:
//!
//! - [`ArmS1`]: stage 1, pointed to by a context descriptor's TTB0
//!   ([`ArmS1::context_descriptor`]);
//! - [`ArmS2`]: stage 2, pointed to by a stream table entry's S2TTB
//!   ([`ArmS2::stream_table_entry`]), with the start level concatenated as Linux does;
//! - the configuration chain a vIOMMU walks and a driver or guest builds, each
//!   structure typed with encode and decode: the stream table ([`StreamTable`],
//!   [`StreamTableBase`], [`StreamTableConfig`], [`L1StreamDescriptor`]), the
//!   [`StreamTableEntry`], the CD table ([`CdTable`], [`L1CdDescriptor`]) and the
//!   [`ContextDescriptor`], with the arithmetic from a StreamID and SubstreamID to
//!   each;
//! - what the SMMU reports and is told: the [`EventRecord`] with its [`EventId`]s, and
//!   the [`Command`]s of the command queue.
//!
//! Decoding checks what the architecture makes ILLEGAL and fails with a [`DecodeError`]
//! naming the event (C_BAD_STE, C_BAD_CD, ...) or command error (CERROR_ILL) the SMMU
//! raises for it.
//!
//! Both table formats take an [`ArmConfig`]: 4K, 16K or 64K granule, 32..48-bit input
//! and output (52 with the 64K granule, the high address bits packed into descriptor
//! bits 15:12), and an optional contiguous hint (off by default, so default tables
//! equal Linux's).
//!
//! ```
//! use pgtable_core::{ArenaMemory, Iova, PageTable, PhysAddr, Prot};
//! use smmu_format::{ArmConfig, ArmS1};
//! use std::sync::Arc;
//!
//! let mem = Arc::new(ArenaMemory::new(0x3000_0000, 1 << 20));
//! let pt = PageTable::new(ArmS1::new(ArmConfig::new(4096, 48, 48))?, mem.clone())?;
//! pt.map_pages(Iova(0x1234_5000), PhysAddr(0x8_0000_0000), 0x1000, 1, Prot::RW | Prot::CACHE)?;
//! // docs/formats.md §5.3: L0 -> L1 -> L2 -> the page descriptor.
//! assert_eq!(mem.read_u64(0x3000_3A28), Some(0x0000_0008_0000_0F47));
//! let cd = pt.format().context_descriptor(pt.root_phys(), 1, true);
//! assert_eq!(cd[0], 0x0001_E205_C000_3510);
//! # Ok::<(), pgtable_core::Error>(())
//! ```
//!
//! Levels are numbered as in `pgtable-core`: 0 is the last level (hardware L3);
//! [`pgtable_core::Format::level_name`] and dumps use the hardware's L0..L3.

#![warn(missing_docs)]

pub mod cd;
mod cd_table;
mod command;
mod config;
pub mod descriptor;
mod error;
mod event;
mod field;
mod format;
mod geometry;
mod numbered;
pub mod stage1;
pub mod stage2;
pub mod ste;
mod stream_table;

pub use cd::{CdTranslationTable, ContextDescriptor};
pub use cd_table::{CdLocation, CdTable, CdTableFormat, L1_CD_DESCRIPTOR_SIZE, L1CdDescriptor};
pub use command::{COMMAND_SIZE, Command, Opcode, SyncCompletion, TlbiRange};
pub use config::ArmConfig;
pub use error::{CommandError, DecodeError, Structure};
pub use event::{EVENT_RECORD_SIZE, EventClass, EventId, EventRecord};
pub use format::{Arm, ArmS1, ArmS2, Stage};
pub use geometry::{Granule, Shape, address_size_bits, address_size_encoding};
pub use stage1::Stage1;
pub use stage2::Stage2;
pub use ste::{S1Dss, SteConfig, StreamTableEntry, Vtcr};
pub use stream_table::{
    L1_STREAM_DESCRIPTOR_SIZE, L1StreamDescriptor, SteLocation, StreamTable, StreamTableBase,
    StreamTableConfig, StreamTableFormat,
};
