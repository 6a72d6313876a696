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
//! - [`iotlb`]: [`iotlb::Iotlb`], a bounded concurrent translation cache with lock-free
//!   lookups, keyed as the hardware tags translations (source, PASID, domain tag,
//!   page), whose invalidations are coherent with concurrent fills.
//! - [`attach`]: [`attach::Attachments`], device → configuration in `arc-swap`.
//! - [`Access`] and [`Perms`]: what a request asks for and what a translation grants.

#![warn(missing_docs)]

mod access;
pub mod attach;
mod error;
pub mod iotlb;
pub mod memory;
mod sync;

pub use access::{Access, Perms};
pub use error::{Error, Result};
