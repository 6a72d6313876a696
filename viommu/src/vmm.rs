//! [`IommuBridge`]: a device's translations as vm-memory's [`Iommu`], so a device
//! model does its DMA through `IommuMemory` and every access goes through the vIOMMU.
//!
//! ```
//! use viommu::vmm::IommuBridge;
//! use viommu::{Access, DeviceTranslate, DeviceTlb, Mapping, Perms, TranslateFault};
//! use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap, IommuMemory};
//!
//! /// IOVA = PA + 0x1_0000_0000 for the first 64 KiB of RAM.
//! #[derive(Debug)]
//! struct Offset;
//! impl DeviceTranslate for Offset {
//!     fn translate(&self, iova: u64, access: Access) -> Result<Mapping, TranslateFault> {
//!         let pa = iova.wrapping_sub(1 << 32);
//!         if pa >= 0x1_0000 {
//!             return Err(TranslateFault::new(iova, access, "not mapped"));
//!         }
//!         Ok(Mapping { iova: iova & !0xfff, pa: pa & !0xfff, size: 0x1000, perms: Perms::RW })
//!     }
//! }
//!
//! let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x1_0000)])?;
//! let bridge = IommuBridge::new(Offset);
//! let dma = IommuMemory::new(ram.clone(), bridge.clone(), true, ());
//! dma.write_obj(0xfeed_u32, GuestAddress(0x1_0000_0ffe))?; // crosses a page boundary
//! assert_eq!(ram.read_obj::<u32>(GuestAddress(0xffe))?, 0xfeed);
//! assert!(dma.read_obj::<u8>(GuestAddress(0x1_0001_0000)).is_err()); // not mapped
//! bridge.invalidate_range(0x1_0000_0000, 0x1000); // what the unit does on a guest's invalidation
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Coherence
//!
//! The bridge keeps its own cache (a vm-memory [`Iotlb`] behind an `RwLock`), filled
//! from [`DeviceTranslate`] and emptied by [`DeviceTlb::invalidate_range`] /
//! [`DeviceTlb::invalidate_all`], which the unit calls for every invalidation that may
//! concern the device. Two rules make it behave like the hardware:
//!
//! - a fill that raced an invalidation is not cached (a generation, compared under
//!   the write lock, as in [`crate::iotlb`]);
//! - an invalidation returns only when the requests that might use what it removed
//!   are done: each [`Iommu::translate`] returns a guard holding a token of the
//!   current *epoch* (taken before it looked anything up), and an invalidation starts
//!   a new epoch and waits until every token of the old one has been dropped, i.e.
//!   until the DMA copies in flight have finished (what the guest's completion wait,
//!   CMD_SYNC or an invalidation-wait descriptor, promises).
//!
//! The guard is a private copy of the request's mappings, so no lock is held while the
//! device copies: nested accesses cannot deadlock against a waiting invalidation, and
//! invalidations never starve (new requests take the new epoch's token). The one thing
//! a device model must not do is invalidate its own bridge while it holds a slice of
//! the same bridge's memory: the invalidation would wait for itself.

use crate::access::{Access, Perms};
use crate::sync::host::{Ordering, fence};
use crate::translate::{DeviceTlb, DeviceTranslate, Mapping};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;
use vm_memory::iommu::{Error, IotlbFails, IotlbIterator, IovaRange};
use vm_memory::{GuestAddress, Iommu, Iotlb, Permissions};

/// One device's view of its vIOMMU as vm-memory's [`Iommu`]; see the [module
/// documentation](self). Cloning gives another handle to the same bridge (one for
/// `IommuMemory`, one for the unit that invalidates it).
pub struct IommuBridge<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for IommuBridge<T> {
    fn clone(&self) -> Self {
        IommuBridge {
            shared: self.shared.clone(),
        }
    }
}

struct Shared<T> {
    device: T,
    /// The kind of request this device makes, but for `write` (from the access).
    base: Access,
    cache: RwLock<Cache>,
}

struct Cache {
    tlb: Iotlb,
    /// Incremented by every invalidation.
    generation: u64,
    /// The largest mapping cached, so a range invalidation removes whole leaves.
    max_size: u64,
    /// The current epoch: requests in flight hold clones.
    epoch: Arc<Epoch>,
}

/// A token of an epoch of requests.
#[derive(Debug)]
struct Epoch;

/// What [`IommuBridge`]'s translations are read from: a private copy of the mappings
/// of one request, and a token that keeps invalidations from completing while the
/// request is in flight.
#[derive(Debug)]
pub struct BridgeGuard {
    tlb: Iotlb,
    _epoch: Arc<Epoch>,
}

impl std::ops::Deref for BridgeGuard {
    type Target = Iotlb;

    fn deref(&self) -> &Iotlb {
        &self.tlb
    }
}

impl<T: fmt::Debug> fmt::Debug for IommuBridge<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let generation = self
            .shared
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .generation;
        f.debug_struct("IommuBridge")
            .field("device", &self.shared.device)
            .field("generation", &generation)
            .finish_non_exhaustive()
    }
}

impl<T: DeviceTranslate> IommuBridge<T> {
    /// The bridge of `device`, whose requests are unprivileged data accesses.
    pub fn new(device: T) -> Self {
        Self::with_access(device, Access::READ)
    }

    /// The bridge of `device`, whose requests are of kind `base` (privileged, or
    /// instruction fetches); each request's `write` comes from its vm-memory access.
    pub fn with_access(device: T, base: Access) -> Self {
        IommuBridge {
            shared: Arc::new(Shared {
                device,
                base,
                cache: RwLock::new(Cache {
                    tlb: Iotlb::new(),
                    generation: 0,
                    max_size: 0,
                    epoch: Arc::new(Epoch),
                }),
            }),
        }
    }

    /// The device's translator.
    pub fn device(&self) -> &T {
        &self.shared.device
    }

    /// Translates `[start, start + len)` for `access` through the device, every page
    /// (leaf by leaf), adding each mapping and what vm-memory may do with it to `out`.
    fn resolve(
        &self,
        start: u64,
        len: u64,
        access: Permissions,
        out: &mut Vec<(Mapping, Permissions)>,
    ) -> Result<(), Error> {
        let base = self.shared.base;
        let request = Access {
            // A request that asks for nothing is checked as a read.
            read: access.allow(Permissions::Read) || !access.has_write(),
            write: access.has_write(),
            ..base
        };
        let end = start + len;
        let mut at = start;
        while at < end {
            let fault = |f: crate::TranslateFault| Error::CannotResolve {
                iova_range: range(at, end - at),
                reason: f.to_string(),
            };
            let m = self.shared.device.translate(at, request).map_err(fault)?;
            if !m.contains(at) {
                return Err(Error::IommuMisconfigured {
                    reason: format!("the translation of IOVA {at:#x} does not contain it: {m:?}"),
                });
            }
            // What the leaf grants this device, plus what the walk just allowed (a
            // write sets the dirty flag the cached permissions may still lack).
            let mut grant = grants(m.perms, base);
            if request.write {
                grant = grant | Permissions::Write;
            }
            if request.read {
                grant = grant | Permissions::Read;
            }
            out.push((m, grant));
            match m.iova.checked_add(m.size) {
                Some(next) => at = next,
                None => break,
            }
        }
        Ok(())
    }

    fn read(&self) -> RwLockReadGuard<'_, Cache> {
        self.shared
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Cache> {
        self.shared
            .cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a new epoch after `change`, and waits until no request of the old one
    /// is in flight.
    fn invalidate(&self, change: impl FnOnce(&mut Cache)) {
        let old = {
            let mut cache = self.write();
            cache.generation += 1;
            change(&mut cache);
            std::mem::replace(&mut cache.epoch, Arc::new(Epoch))
        };
        let mut round = 0u32;
        while Arc::strong_count(&old) > 1 {
            round += 1;
            if round < 64 {
                std::hint::spin_loop();
            } else if round < 128 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(20));
            }
        }
        // Pairs with the release decrement of each token's drop: the requests' copies
        // happen before the invalidation returns.
        fence(Ordering::Acquire);
    }
}

impl Cache {
    fn insert(&mut self, m: &Mapping, grant: Permissions) {
        set_mapping(&mut self.tlb, m, grant);
        self.max_size = self.max_size.max(m.size);
    }
}

fn set_mapping(tlb: &mut Iotlb, m: &Mapping, grant: Permissions) {
    // vm-memory's ranges end below 2^64: the top byte of the space is not mapped.
    let len = m.size.min(u64::MAX - m.iova);
    if len > 0 {
        // `set_mapping` cannot fail (its `Result` is for future use).
        let _ = tlb.set_mapping(
            GuestAddress(m.iova),
            GuestAddress(m.pa),
            len as usize,
            grant,
        );
    }
}

impl<T: DeviceTranslate> Iommu for IommuBridge<T> {
    type IotlbGuard<'a>
        = BridgeGuard
    where
        Self: 'a;

    fn translate(
        &self,
        iova: GuestAddress,
        length: usize,
        access: Permissions,
    ) -> Result<IotlbIterator<BridgeGuard>, Error> {
        let start = iova.0;
        if start.checked_add(length as u64).is_none() {
            return Err(Error::CannotResolve {
                iova_range: range(start, length as u64),
                reason: "the range wraps past the top of the address space".into(),
            });
        }
        // The token is taken before anything is looked up: an invalidation that starts
        // after this point waits for this request.
        let (generation, epoch, fails) = {
            let cache = self.read();
            let epoch = cache.epoch.clone();
            match Iotlb::lookup(&cache.tlb, iova, length, access) {
                Ok(hit) => return Ok(private(hit, iova, length, access, epoch)),
                Err(fails) => (cache.generation, epoch, fails),
            }
        };
        let mut found = Vec::new();
        for r in fails.misses.iter().chain(&fails.access_fails) {
            self.resolve(r.base.0, r.length as u64, access, &mut found)?;
        }
        {
            let mut cache = self.write();
            if cache.generation == generation {
                for (m, grant) in &found {
                    cache.insert(m, *grant);
                }
                if let Ok(hit) = Iotlb::lookup(&cache.tlb, iova, length, access) {
                    return Ok(private(hit, iova, length, access, epoch));
                }
            }
        }
        // An invalidation ran since the lookup (what hit may be gone, what was walked
        // may be stale): nothing is cached, and this request alone uses a fresh
        // translation of its whole range (its token makes later invalidations wait).
        found.clear();
        self.resolve(start, length as u64, access, &mut found)?;
        let mut tlb = Iotlb::new();
        for (m, grant) in &found {
            set_mapping(&mut tlb, m, *grant);
        }
        let guard = BridgeGuard { tlb, _epoch: epoch };
        Iotlb::lookup(guard, iova, length, access).map_err(|f| refused(iova, length, &f))
    }
}

impl<T: DeviceTranslate> DeviceTlb for IommuBridge<T> {
    fn invalidate_all(&self) {
        self.invalidate(|cache| {
            cache.tlb.invalidate_all();
            cache.max_size = 0;
        });
    }

    fn invalidate_range(&self, iova: u64, len: u64) {
        self.invalidate(|cache| {
            // Any cached mapping that overlaps the range lies within it once widened
            // by the largest mapping: so the whole leaf goes, as on the hardware.
            let pad = cache.max_size.saturating_sub(1);
            let start = iova.saturating_sub(pad);
            let end = iova.saturating_add(len).saturating_add(pad);
            if end > start {
                cache
                    .tlb
                    .invalidate_mapping(GuestAddress(start), (end - start) as usize);
            }
        });
    }
}

/// The mappings of a successful lookup, copied into a private guard holding `epoch`.
fn private(
    hit: IotlbIterator<&Iotlb>,
    iova: GuestAddress,
    length: usize,
    access: Permissions,
    epoch: Arc<Epoch>,
) -> IotlbIterator<BridgeGuard> {
    let mut tlb = Iotlb::new();
    let mut at = iova.0;
    for piece in hit {
        let _ = tlb.set_mapping(GuestAddress(at), piece.base, piece.length, access);
        at += piece.length as u64;
    }
    let guard = BridgeGuard { tlb, _epoch: epoch };
    match Iotlb::lookup(guard, iova, length, access) {
        Ok(it) => it,
        Err(_) => unreachable!("a copy of a successful lookup covers the same range"),
    }
}

fn range(start: u64, len: u64) -> IovaRange {
    IovaRange {
        base: GuestAddress(start),
        length: usize::try_from(len).unwrap_or(usize::MAX),
    }
}

fn refused(iova: GuestAddress, length: usize, fails: &IotlbFails) -> Error {
    let first = fails.misses.first().or(fails.access_fails.first());
    Error::CannotResolve {
        iova_range: range(iova.0, length as u64),
        reason: match first {
            Some(r) => format!("{:#x}+{:#x} is not translated", r.base.0, r.length),
            None => "not translated".into(),
        },
    }
}

/// What vm-memory may do through a translation granting `perms` to requests like
/// `base`.
fn grants(perms: Perms, base: Access) -> Permissions {
    let read = perms.allows(Access {
        read: true,
        write: false,
        ..base
    });
    let write = perms.allows(Access {
        read: false,
        write: true,
        ..base
    });
    match (read, write) {
        (false, false) => Permissions::No,
        (true, false) => Permissions::Read,
        (false, true) => Permissions::Write,
        (true, true) => Permissions::ReadWrite,
    }
}
