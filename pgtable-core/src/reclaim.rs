//! Table-page accounting and epoch-based reclamation.
//!
//! A page unlinked from the tree may still be read by a pinned reader (and walked by
//! the IOMMU until the caller's invalidation), so it is freed only when
//! 1. the caller released the [`Gather`](crate::Gather) holding it, and then
//! 2. every thread pinned when it was released has unpinned (crossbeam-epoch).
//!
//! Each released batch is also registered with its table, so that dropping the table
//! gives back every page still waiting for the epoch at once (no reader can hold a
//! reference to a dropped table), which is what `iommu_pt_free` promises C callers.

use crate::memory::{TableMemory, TablePage};
use crate::sync::{AtomicU64, Mutex, Ordering, lock};
use std::sync::Arc;

/// Where a gather sends the pages it releases. Type-erased so that a [`crate::Gather`]
/// does not carry the table's memory type.
pub(crate) trait Reclaim: Send + Sync {
    /// Hands `pages` to epoch reclamation (or frees them now if the table is gone).
    fn retire(self: Arc<Self>, pages: Vec<TablePage>);
    /// Table pages (in granules) that `page` counts as.
    fn pages_of(&self, page: &TablePage) -> u64;
}

/// What a table shares with its gathers and deferred frees.
pub(crate) struct Shared<M: TableMemory> {
    pub(crate) mem: Arc<M>,
    granule_shift: u32,
    /// Table pages (in granules) allocated and not yet given back.
    live: AtomicU64,
    registry: Mutex<Registry>,
}

struct Registry {
    /// False once the table was dropped: later releases free at once.
    alive: bool,
    batches: Vec<Arc<Batch>>,
}

/// Pages released together; emptied by whichever comes first, the deferred free or the
/// table's drop.
struct Batch {
    pages: Mutex<Vec<TablePage>>,
}

impl<M: TableMemory> Shared<M> {
    pub(crate) fn new(mem: Arc<M>, granule_shift: u32) -> Self {
        Shared {
            mem,
            granule_shift,
            live: AtomicU64::new(0),
            registry: Mutex::new(Registry {
                alive: true,
                batches: Vec::new(),
            }),
        }
    }

    fn count(&self, size: usize) -> u64 {
        ((size >> self.granule_shift) as u64).max(1)
    }

    /// The allocation size of a table of `size` bytes: small Arm top tables get at least
    /// 64 bytes (the CD/STE pointer fields need 16, 52-bit configurations 64).
    #[inline(always)]
    pub(crate) fn alloc_size(&self, size: usize) -> usize {
        size.max(64.min(1 << self.granule_shift))
    }

    /// Allocates a zeroed table of `size` bytes aligned to its size.
    #[inline]
    pub(crate) fn alloc_table(&self, size: usize) -> Option<TablePage> {
        let size = self.alloc_size(size);
        let page = self.mem.alloc(size, size)?;
        self.live.fetch_add(self.count(size), Ordering::Relaxed);
        Some(page)
    }

    /// Frees a page nobody else can reach.
    ///
    /// # Safety
    /// `page` came from `alloc_table` of this table, is unreachable by every reader,
    /// and is freed only once.
    #[inline]
    pub(crate) unsafe fn free_now(&self, page: TablePage) {
        let n = self.count(page.size);
        // SAFETY: forwarded from the caller.
        unsafe { self.mem.free(page) };
        self.live.fetch_sub(n, Ordering::Relaxed);
    }

    pub(crate) fn live_pages(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }

    /// Called once by the table's drop: frees every page still waiting for the epoch.
    ///
    /// # Safety
    /// No reader of the table may exist any more.
    pub(crate) unsafe fn shutdown(&self) {
        let batches = {
            let mut reg = lock(&self.registry);
            reg.alive = false;
            std::mem::take(&mut reg.batches)
        };
        for b in batches {
            let mut pages = lock(&b.pages);
            for p in pages.drain(..) {
                // SAFETY: the table is gone, so no reader can reach its retired pages;
                // taking them out of the batch makes this the only free.
                unsafe { self.free_now(p) };
            }
        }
    }
}

impl<M: TableMemory> Reclaim for Shared<M> {
    fn retire(self: Arc<Self>, pages: Vec<TablePage>) {
        if pages.is_empty() {
            return;
        }
        let batch = Arc::new(Batch {
            pages: Mutex::new(pages),
        });
        let alive = {
            let mut reg = lock(&self.registry);
            if reg.alive {
                // Forget batches the epoch already freed, so the registry stays as
                // small as the number of batches in flight.
                reg.batches.retain(|b| !lock(&b.pages).is_empty());
                reg.batches.push(batch.clone());
            }
            reg.alive
        };
        if !alive {
            for p in std::mem::take(&mut *lock(&batch.pages)) {
                // SAFETY: the table was dropped, so no reader can reach the page, and the
                // batch was never shared.
                unsafe { self.free_now(p) };
            }
            return;
        }
        defer_free(self, batch);
    }

    fn pages_of(&self, page: &TablePage) -> u64 {
        self.count(page.size)
    }
}

#[cfg(not(loom))]
fn defer_free<M: TableMemory>(shared: Arc<Shared<M>>, batch: Arc<Batch>) {
    let guard = crossbeam_epoch::pin();
    guard.defer(move || {
        // Free while holding the batch's lock: a table drop racing with this (on another
        // thread) waits here, so it returns only once every page is back in the memory.
        let mut pages = lock(&batch.pages);
        for p in pages.drain(..) {
            // SAFETY: every reader pinned before the release has unpinned (that is when
            // crossbeam runs this), the caller's invalidation is done (it released the
            // gather), and taking the pages out of the batch makes this the only free.
            unsafe { shared.free_now(p) };
        }
    });
    // Push the bag along so long-idle threads do not hold pages for ever.
    guard.flush();
}

/// Under loom the registry keeps the batch until the table drops (see `sync::epoch`).
#[cfg(loom)]
fn defer_free<M: TableMemory>(_shared: Arc<Shared<M>>, _batch: Arc<Batch>) {}
