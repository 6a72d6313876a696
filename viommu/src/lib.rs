//! # viommu: the building blocks of an emulated IOMMU
//!
//! A VMM that emulates a VT-d or an SMMUv3 walks tables the guest wrote into guest RAM,
//! caches what it walked, and must drop exactly what the guest's invalidation commands
//! say. This crate holds what both units share:
//!
//! - [`memory`]: guest memory as table memory. [`memory::ImageMemory`] (a file or
//!   anonymous mapping at a physical base) and, with the `vm-memory` feature,
//!   `memory::GuestRam` (vm-memory's `GuestMemoryMmap`), both bounds-checked, zero-copy
//!   [`ViewMemory`](pgtable_core::ViewMemory)s, with atomic word accesses for
//!   access/dirty updates ([`memory::PhysAccess`]).

#![warn(missing_docs)]

mod error;
pub mod memory;
#[allow(dead_code, unused_imports)] // the IOTLB's atomics arrive with it
mod sync;

pub use error::{Error, Result};
