//! [`UnitCache`]: what a VT-d and an SMMUv3 unit share in front of their walks: the
//! device → configuration cache (what the chain from a requester to its tables
//! decoded) and the IOTLB, filled and invalidated coherently.
//!
//! A translation for a device (a config key: the requester, and its PASID /
//! SubstreamID where it has one):
//! 1. looks the page up in the IOTLB by requester, PASID and page (not by tag: no
//!    configuration is read; an entry is current until an invalidation removes it, and
//!    the guest invalidates a device's entries whenever it changes its configuration):
//!    a hit that allows the access is the answer (no lock, nothing written);
//! 2. otherwise takes a fill ticket, then reads the cached configuration or walks the
//!    chain (caching the configuration it decoded, and dropping it again if an
//!    invalidation started meanwhile), then the tables, and caches the leaf under the
//!    configuration's tag with the ticket.
//!
//! A configuration invalidation (VT-d context-cache, PASID-cache; SMMU CFGI_*)
//! withdraws the fills in flight, drops the configurations it names, then invalidates
//! their IOTLB entries, in that order ([`UnitCache::invalidate_configs`]). Why no stale
//! configuration survives: a fill caches a configuration under the same writers' lock
//! that the invalidation drops it under, and checks its ticket after it; if it came
//! after the drop, it sees the withdrawal (which happened before the drop) and takes it
//! out again; if before, the drop removes it. A fill that read a stale configuration
//! after the withdrawal caches its leaf only if no invalidation started since its
//! ticket: the invalidation's IOTLB step comes after, so it removes or refuses it.

use crate::access::{Access, Perms};
use crate::attach::Attachments;
use crate::iotlb::{FillTicket, Iotlb, IotlbEntry, IotlbKey, PAGE_SHIFT, PageRange, Selector};
use crate::translate::DeviceTlb;
use crate::translate::Mapping;
use pgtable_core::{PhysAddr, Translation};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

/// One structure of a device's chain, as read from memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    /// What it is (e.g. `"root entry"`).
    pub name: &'static str,
    /// Where it lies.
    pub pa: PhysAddr,
    /// Its words, as read.
    pub words: Vec<u64>,
}

/// What a unit's chain walk decoded for one device, as the cache needs it.
pub trait DeviceConfig: Send + Sync + 'static {
    /// The tag the IOTLB files this device's translations under (VT-d DID; SMMU
    /// `vmid << 16 | asid`).
    fn tag(&self) -> u32;
}

/// A translation request: which device, which page, which access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The configuration cache's key for the device (see [`UnitCache`]).
    pub device: u64,
    /// The requester (VT-d source id, SMMU StreamID), as the IOTLB keys it.
    pub source: u32,
    /// The PASID / SubstreamID, if the request carries one.
    pub pasid: Option<u32>,
    /// The input address.
    pub iova: u64,
    /// What it asks for.
    pub access: Access,
}

/// A cache outside the unit (a device's ATC, vm-memory's IOTLB in
/// [`IommuBridge`](crate::vmm::IommuBridge)) and the requests it serves.
struct DeviceCache {
    source: u32,
    pasid: Option<u32>,
    tlb: Arc<dyn DeviceTlb>,
}

/// The device → configuration cache and the IOTLB of one unit, and the device-side
/// caches its invalidations must reach.
pub struct UnitCache<C> {
    configs: Attachments<C>,
    iotlb: Iotlb,
    devices: RwLock<Vec<DeviceCache>>,
}

impl<C> fmt::Debug for UnitCache<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnitCache")
            .field("configs", &self.configs)
            .field("iotlb", &self.iotlb)
            .finish_non_exhaustive()
    }
}

impl<C: DeviceConfig> UnitCache<C> {
    /// An empty cache with an IOTLB of `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        UnitCache {
            configs: Attachments::new(),
            iotlb: Iotlb::new(capacity),
            devices: RwLock::new(Vec::new()),
        }
    }

    /// Registers a cache that holds translations of requester `source` with `pasid`
    /// (from this unit): every invalidation that may concern them reaches it
    /// ([`DeviceTlb::invalidate_range`], or `invalidate_all` for a whole space).
    pub fn register_device_tlb(&self, source: u32, pasid: Option<u32>, tlb: Arc<dyn DeviceTlb>) {
        self.devices
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(DeviceCache { source, pasid, tlb });
    }

    /// Invalidates the IOTLB entries `sel` selects, then the registered device caches
    /// it may concern; returns when none of them serves a removed translation.
    pub fn invalidate(&self, sel: &Selector) {
        self.iotlb.invalidate(sel);
        self.notify(sel);
    }

    /// Passes an invalidation on to the device caches it may concern.
    fn notify(&self, sel: &Selector) {
        let devices = self.devices.read().unwrap_or_else(PoisonError::into_inner);
        let pages = sel.page_range();
        for d in devices
            .iter()
            .filter(|d| sel.selects_device(d.source, d.pasid))
        {
            // A range of 2^52 pages or more is no narrower than all of them (and its
            // length in bytes would not fit).
            let count = pages.last() - pages.first();
            if pages == PageRange::ALL || count >= (1 << (64 - PAGE_SHIFT)) - 1 {
                d.tlb.invalidate_all();
            } else {
                let first = pages.first() << PAGE_SHIFT;
                d.tlb.invalidate_range(first, (count + 1) << PAGE_SHIFT);
            }
        }
    }

    /// The IOTLB (for the unit's IOTLB invalidations).
    pub fn iotlb(&self) -> &Iotlb {
        &self.iotlb
    }

    /// The cached configurations (to inspect them).
    pub fn configs(&self) -> &Attachments<C> {
        &self.configs
    }

    /// Translates `req`: an IOTLB hit, or `chain` (device → configuration, called only
    /// when none is cached) then `walk` (configuration → leaf) on a miss. The leaf is
    /// cached at 4 KiB granularity with what it grants ([`Perms::from_prot`]).
    ///
    /// # Errors
    /// Whatever `chain` or `walk` report (the unit's fault records).
    pub fn translate<E>(
        &self,
        req: &Request,
        chain: impl FnOnce() -> Result<C, E>,
        walk: impl FnOnce(&C) -> Result<Translation, E>,
    ) -> Result<Mapping, E> {
        // The hit path reads no configuration: an entry is current until invalidated
        // (see `Iotlb::lookup_untagged`).
        if let Some((_, e)) = self.iotlb.lookup_untagged(req.source, req.pasid, req.iova)
            && e.perms.allows(req.access)
        {
            return Ok(Mapping::of_entry(req.iova, &e));
        }
        let ticket = self.iotlb.begin_fill();
        // The cached configuration is borrowed, not cloned (no reference count to
        // bounce between the device's threads).
        let mut walk = Some(walk);
        let cached = self.configs.with(req.device, |c| {
            let c = c?;
            let walk = walk.take()?;
            Some((walk(c), c.tag()))
        });
        let (t, tag) = match cached {
            Some((walked, tag)) => (walked?, tag),
            None => {
                let config = self.cache_config(req.device, chain()?, &ticket);
                let walk = walk.take().expect("the walk runs once");
                (walk(&config)?, config.tag())
            }
        };
        let size_shift = t.size.trailing_zeros() as u8;
        let leaf_pa = t.pa.0 - (req.iova & (t.size - 1));
        let entry =
            IotlbEntry::piece_of_leaf(leaf_pa, size_shift, req.iova, Perms::from_prot(t.prot));
        let key = IotlbKey::new(req.source, req.pasid, tag, req.iova);
        self.iotlb.insert(ticket, &key, entry);
        Ok(Mapping::of_entry(req.iova, &entry))
    }

    /// Caches `config` for `device`, unless an invalidation started since `ticket`.
    fn cache_config(&self, device: u64, config: C, ticket: &FillTicket) -> Arc<C> {
        let config = Arc::new(config);
        self.configs.attach(device, config.clone());
        if !self.iotlb.ticket_current(ticket) {
            // It may predate the invalidation: take it out again (only if it is still
            // the one cached here), and use it for this request only.
            self.configs
                .detach_where(|d, c| d == device && std::ptr::eq(c, &*config));
        }
        config
    }

    /// A configuration invalidation: drops the cached configurations `which` selects
    /// (by device key), then the IOTLB entries `entries` selects, coherently with
    /// fills in flight (see the module documentation). Returns the configurations
    /// dropped.
    pub fn invalidate_configs(
        &self,
        which: impl FnMut(u64, &C) -> bool,
        entries: &Selector,
    ) -> usize {
        self.iotlb.withdraw_fills();
        let gone = self.configs.detach_where(which).len();
        self.invalidate(entries);
        gone
    }
}
