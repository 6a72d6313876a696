//! Guest memory as table memory: [`ImageMemory`] (a file or anonymous mapping at a
//! physical base) and, with the `vm-memory` feature, `GuestRam` (any trusted vm-memory
//! backend), both bounds-checked and zero-copy [`ViewMemory`]s that
//! [`ForeignTable`](pgtable_core::ForeignTable) and the vIOMMU units walk, plus
//! [`PhysAccess`]: checked atomic word and byte accesses on any of them.
//!
//! Read-only memories (`writable() == false`) serve decoding; writable ones also take
//! the atomic read-modify-writes a hardware walker makes when it sets access and dirty
//! flags.
//!
//! ```
//! use viommu::memory::{ImageMemory, PhysAccess};
//! let mem = ImageMemory::anonymous(0x8000_0000, 0x2000)?;
//! mem.write_u64(0x8000_1008, 0x1234_5003)?;
//! assert_eq!(mem.fetch_or_u64(0x8000_1008, 1 << 6)?, 0x1234_5003); // a dirty flag
//! assert_eq!(mem.read_u64(0x8000_1008)?, 0x1234_5043);
//! assert!(mem.read_u64(0x8000_2000).is_err()); // past the end
//! # Ok::<(), viommu::Error>(())
//! ```

#[cfg(feature = "vm-memory")]
mod guest;
mod image;
mod phys;

#[cfg(feature = "vm-memory")]
pub use guest::{GuestRam, TrustedBackend};
pub use image::ImageMemory;
pub use phys::PhysAccess;

pub use pgtable_core::ViewMemory;
