//! [`Attachments`]: the configuration each device (source id) is attached to, read
//! lock-free on every translation, replaced rarely.
//!
//! ## Why one `ArcSwap` of a map
//!
//! The configuration a unit decodes for a device (its context/PASID entry or STE/CD:
//! table roots, formats, tags) changes only when the guest reprograms it and issues a
//! configuration invalidation (VT-d context-cache, SMMU CFGI_*), while every
//! translation reads it first (its tag is part of the IOTLB key). So reads must be
//! cheap and never wait, and writes may be slow:
//!
//! - a read is one `arc-swap` load (no write to a shared counter, so DMA threads of one
//!   device do not bounce a cache line) and one hash probe; [`Attachments::with`]
//!   borrows the configuration without even cloning its `Arc`;
//! - a write copies the map (O(devices), under a writers' mutex readers never see) and
//!   swaps it in atomically, so a range or domain-wide detach (CFGI_STE_RANGE, a VT-d
//!   domain-selective context-cache invalidation) is one atomic change too.
//!
//! A table of per-device `ArcSwap` slots would make writes O(1), but SMMU StreamIDs
//! are 32 bits wide (the table would be sparse and need its own growth protocol), and
//! range changes would no longer be atomic.
//!
//! ## Ordering with the IOTLB
//!
//! A unit's translation takes its IOTLB [`FillTicket`](crate::iotlb::FillTicket) before
//! it reads the attachment; its configuration invalidation changes the attachment and
//! then invalidates the IOTLB entries of the devices it changed. A walk that used the
//! old configuration then took its ticket before the invalidation began, so its entry
//! is never cached past it (see [`crate::iotlb`], "Coherence").
//!
//! ```
//! use viommu::attach::Attachments;
//! #[derive(Debug, PartialEq)]
//! struct Context { did: u16, root: u64 }
//! let devices = Attachments::new();
//! devices.attach(0x0100, Context { did: 1, root: 0x1000 });
//! devices.attach(0x0108, Context { did: 2, root: 0x2000 });
//! assert_eq!(devices.with(0x0100, |c| c.map(|c| c.did)), Some(1));
//! // A domain-selective invalidation of domain 2.
//! let gone = devices.detach_where(|_, c| c.did == 2);
//! assert_eq!(gone.len(), 1);
//! assert!(devices.get(0x0108).is_none());
//! ```

use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

type Map<C> = HashMap<u64, Arc<C>, BuildHasherDefault<SourceHasher>>;

/// Device keys are small integers (a source id, with a PASID / SubstreamID above
/// it): one multiply spreads them (SipHash would double the
/// cost of a read).
#[derive(Default)]
struct SourceHasher(u64);

impl Hasher for SourceHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u32(u32::from(b) ^ (self.0 as u32).rotate_left(8));
        }
    }

    #[inline]
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Device → configuration, with lock-free reads; see the [module documentation](self).
pub struct Attachments<C> {
    map: ArcSwap<Map<C>>,
    /// Serialises writers (readers never take it), so each write is one copy and one
    /// swap, and what a write returns is exactly what it changed.
    writers: Mutex<()>,
}

impl<C> Default for Attachments<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C> fmt::Debug for Attachments<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sources: Vec<u64> = self.map.load().keys().copied().collect();
        sources.sort_unstable();
        f.debug_struct("Attachments")
            .field("sources", &sources)
            .finish()
    }
}

impl<C> Attachments<C> {
    /// No device attached.
    pub fn new() -> Self {
        Attachments {
            map: ArcSwap::from_pointee(Map::default()),
            writers: Mutex::new(()),
        }
    }

    /// The configuration `source` is attached to.
    pub fn get(&self, source: u64) -> Option<Arc<C>> {
        self.map.load().get(&source).cloned()
    }

    /// Calls `f` with the configuration `source` is attached to, without cloning its
    /// `Arc`: the cheapest read, for the translation path.
    #[inline]
    pub fn with<R>(&self, source: u64, f: impl FnOnce(Option<&Arc<C>>) -> R) -> R {
        f(self.map.load().get(&source))
    }

    /// Attaches `source` to `config`; returns what it was attached to before.
    pub fn attach(&self, source: u64, config: impl Into<Arc<C>>) -> Option<Arc<C>> {
        let config = config.into();
        self.update(|map| map.insert(source, config))
    }

    /// Detaches `source`; returns what it was attached to.
    pub fn detach(&self, source: u64) -> Option<Arc<C>> {
        self.update(|map| map.remove(&source))
    }

    /// Detaches, in one atomic change, every device for which `f(source, config)` is
    /// true; returns them, by source.
    pub fn detach_where(&self, mut f: impl FnMut(u64, &C) -> bool) -> Vec<(u64, Arc<C>)> {
        let mut gone = self.update(|map| {
            let sources: Vec<u64> = map
                .iter()
                .filter(|(s, c)| f(**s, c))
                .map(|(s, _)| *s)
                .collect();
            sources
                .into_iter()
                .filter_map(|s| map.remove(&s).map(|c| (s, c)))
                .collect::<Vec<_>>()
        });
        gone.sort_unstable_by_key(|(s, _)| *s);
        gone
    }

    /// Detaches every device; returns how many there were.
    pub fn clear(&self) -> usize {
        self.update(|map| std::mem::take(map).len())
    }

    /// The number of attached devices.
    pub fn len(&self) -> usize {
        self.map.load().len()
    }

    /// Whether no device is attached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every attachment, by source (a snapshot).
    pub fn snapshot(&self) -> Vec<(u64, Arc<C>)> {
        let mut all: Vec<_> = self
            .map
            .load()
            .iter()
            .map(|(s, c)| (*s, c.clone()))
            .collect();
        all.sort_unstable_by_key(|(s, _)| *s);
        all
    }

    /// Applies `change` to a copy of the map and publishes it.
    fn update<R>(&self, change: impl FnOnce(&mut Map<C>) -> R) -> R {
        // A panic in `change` leaves the published map untouched: nothing to repair.
        let _writer = self.writers.lock().unwrap_or_else(PoisonError::into_inner);
        let mut map = Map::clone(&self.map.load());
        let r = change(&mut map);
        self.map.store(Arc::new(map));
        r
    }
}
