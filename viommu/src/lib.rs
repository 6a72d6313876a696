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
//! - [`DeviceTranslate`], [`Mapping`], [`TranslateFault`], [`DeviceTlb`]: what a unit
//!   offers each device, and how device-side caches stay coherent with it.
//! - `vmm` (feature `vm-memory`): `vmm::IommuBridge`, a device's translations as
//!   vm-memory's `Iommu`, so device models do DMA through `IommuMemory`.
//! - [`Access`] and [`Perms`]: what a request asks for and what a translation grants.
//! - [`mod@unit`]: [`unit::UnitCache`], the configuration cache and IOTLB in front of a
//!   unit's walks, filled and invalidated coherently.

#![warn(missing_docs)]

mod access;
pub mod attach;
mod error;
pub mod iotlb;
pub mod memory;
pub mod smmu;
mod sync;
mod translate;
pub mod unit;
#[cfg(feature = "vm-memory")]
pub mod vmm;
pub mod vtd;

pub use access::{Access, Perms};
pub use error::{Error, Result};
pub use translate::{DeviceTlb, DeviceTranslate, Mapping, TranslateFault};
