//! The interface between a vIOMMU unit and the devices behind it: a unit translates
//! for one device through [`DeviceTranslate`]; caches on the device side (vm-memory's
//! IOTLB in `vmm::IommuBridge`, a device's ATC) are kept coherent through
//! [`DeviceTlb`].

use crate::access::{Access, Perms};
use crate::iotlb::IotlbEntry;
use std::error::Error as StdError;
use std::fmt;

/// Translation for one device (one requester, and PASID if it has one), as its vIOMMU
/// unit performs it: IOTLB first, the guest's tables on a miss, access and dirty flags
/// set as the hardware would, faults recorded as the hardware would.
///
/// ```
/// use viommu::{Access, DeviceTranslate, Mapping, Perms, TranslateFault};
/// /// Identity-maps the first 4 GiB, read-write.
/// #[derive(Debug)]
/// struct Identity;
/// impl DeviceTranslate for Identity {
///     fn translate(&self, iova: u64, access: Access) -> Result<Mapping, TranslateFault> {
///         if iova >= 1 << 32 {
///             return Err(TranslateFault::new(iova, access, "beyond the aperture"));
///         }
///         Ok(Mapping { iova: iova & !0x3fff_ffff, pa: iova & !0x3fff_ffff, size: 1 << 30, perms: Perms::RW })
///     }
/// }
/// assert_eq!(Identity.translate(0x1234, Access::WRITE)?.translate(0x1234), Some(0x1234));
/// assert!(Identity.translate(1 << 32, Access::READ).is_err());
/// # Ok::<(), TranslateFault>(())
/// ```
pub trait DeviceTranslate: Send + Sync + fmt::Debug {
    /// Translates one IOVA for this device with this access, walking the guest's
    /// tables on an IOTLB miss. The mapping returned contains `iova` and permits
    /// `access`.
    ///
    /// # Errors
    /// The fault the hardware would raise, carrying its architectural record (VT-d
    /// fault reason and record, SMMU event), already recorded by the unit if the guest
    /// asked for it.
    fn translate(&self, iova: u64, access: Access) -> Result<Mapping, TranslateFault>;
}

/// A shared translator translates (a unit handing out `Arc`s of its per-device state).
impl<T: DeviceTranslate + ?Sized> DeviceTranslate for std::sync::Arc<T> {
    fn translate(&self, iova: u64, access: Access) -> Result<Mapping, TranslateFault> {
        (**self).translate(iova, access)
    }
}

/// A translation: the leaf that maps `iova` (or the 4 KiB piece of it that the unit
/// chose to give).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mapping {
    /// First input address the mapping covers.
    pub iova: u64,
    /// Output address of `iova`.
    pub pa: u64,
    /// Bytes covered.
    pub size: u64,
    /// What it grants.
    pub perms: Perms,
}

impl Mapping {
    /// The whole leaf an IOTLB entry for `iova` is a piece of.
    ///
    /// ```
    /// use viommu::{iotlb::IotlbEntry, Mapping, Perms};
    /// let e = IotlbEntry::piece_of_leaf(0x8000_0000, 21, 0x1234_5678, Perms::READ);
    /// let m = Mapping::of_entry(0x1234_5678, &e);
    /// assert_eq!((m.iova, m.pa, m.size), (0x1220_0000, 0x8000_0000, 0x20_0000));
    /// assert_eq!(m.translate(0x1234_5678), Some(e.translate(0x1234_5678)));
    /// ```
    pub const fn of_entry(iova: u64, entry: &IotlbEntry) -> Mapping {
        let shift = if entry.size_shift >= 64 {
            63
        } else {
            entry.size_shift as u32
        };
        let size = 1u64 << shift;
        let in_leaf = iova & (size - 1) & !0xfff;
        Mapping {
            iova: iova & !(size - 1),
            pa: (entry.pa & !0xfff).wrapping_sub(in_leaf),
            size,
            perms: entry.perms,
        }
    }

    /// Whether `iova` is in the mapping.
    pub const fn contains(&self, iova: u64) -> bool {
        iova >= self.iova && iova - self.iova < self.size
    }

    /// The output address of `iova`, if it is in the mapping.
    pub const fn translate(&self, iova: u64) -> Option<u64> {
        if self.contains(iova) {
            Some(self.pa.wrapping_add(iova - self.iova))
        } else {
            None
        }
    }
}

/// A translation the IOMMU refused: the request, and the unit's architectural record
/// of the fault (opaque here; [`TranslateFault::downcast_ref`] gives it back).
///
/// ```
/// use viommu::{Access, TranslateFault};
/// #[derive(Debug, PartialEq)]
/// struct Event { id: u8 }
/// impl std::fmt::Display for Event {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         write!(f, "event {:#04x}", self.id)
///     }
/// }
/// impl std::error::Error for Event {}
/// let fault = TranslateFault::new(0x1000, Access::WRITE, Event { id: 0x10 });
/// assert_eq!(fault.to_string(), "write of IOVA 0x1000 refused: event 0x10");
/// assert_eq!(fault.downcast_ref::<Event>(), Some(&Event { id: 0x10 }));
/// ```
#[derive(Debug)]
pub struct TranslateFault {
    iova: u64,
    access: Access,
    record: Box<dyn StdError + Send + Sync>,
}

impl TranslateFault {
    /// A fault of `access` at `iova`, described by `record`.
    pub fn new(
        iova: u64,
        access: Access,
        record: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        TranslateFault {
            iova,
            access,
            record: record.into(),
        }
    }

    /// The faulting input address.
    pub fn iova(&self) -> u64 {
        self.iova
    }

    /// The request that faulted.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The unit's record of the fault.
    pub fn record(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.record
    }

    /// The record, if it is an `R`.
    pub fn downcast_ref<R: StdError + 'static>(&self) -> Option<&R> {
        self.record.downcast_ref()
    }

    /// The record, given back.
    pub fn into_record(self) -> Box<dyn StdError + Send + Sync> {
        self.record
    }
}

impl fmt::Display for TranslateFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match (self.access.exec, self.access.write) {
            (true, _) => "instruction fetch",
            (false, true) => "write",
            (false, false) => "read",
        };
        let privileged = if self.access.privileged {
            "privileged "
        } else {
            ""
        };
        write!(
            f,
            "{privileged}{kind} of IOVA {:#x} refused: {}",
            self.iova, self.record
        )
    }
}

/// The record is part of the message, so it is not also reported as a source.
impl StdError for TranslateFault {}

/// A cache of one device's translations kept outside the unit (vm-memory's IOTLB in
/// `vmm::IommuBridge`, an emulated ATC), which the unit must
/// invalidate with every invalidation that may concern the device, IOTLB and
/// configuration invalidations included: its entries came from the unit's IOTLB.
///
/// Object safe, so a unit keeps `Arc<dyn DeviceTlb>`s per device without knowing
/// their types.
pub trait DeviceTlb: Send + Sync + fmt::Debug {
    /// Drops every cached translation; returns when no request uses any of them.
    fn invalidate_all(&self);

    /// Drops the translations of any leaf overlapping the `len` bytes at `iova`;
    /// returns when no request uses any of them.
    fn invalidate_range(&self, iova: u64, len: u64);
}
