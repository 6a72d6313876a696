//! Table-page accounting, epoch reclamation, and the page cache that recycles freed
//! table pages.
//!
//! A page unlinked from the tree may still be read by a pinned reader (and walked by
//! the IOMMU until the caller's invalidation), so it is reused or freed only when
//! 1. the hardware can no longer reach it: the caller released the
//!    [`Gather`](crate::Gather) holding it, or the table's flush hook returned, and then
//! 2. every thread pinned at that point has unpinned (crossbeam-epoch).
//!
//! Reclamation stays off the map/unmap fast path (docs/design.md rule 5). Each release
//! becomes **one** deferred closure, whatever its size, and that closure does O(1)
//! work: it moves the whole batch into the table's page cache. crossbeam runs deferred
//! closures on whichever thread pins, so a map that happens to collect pays a few
//! pointer moves, never hundreds of frees. New tables are taken from the cache first;
//! pages beyond its limit go back to the [`TableMemory`] in the releasing call (a
//! gather release), a bounded number per release, in [`Shared::trim`], or at drop.
//!
//! A table built without a cache (`page_cache_bytes(0)`, and C tables over the caller's
//! `mem_ops`, whose owners expect their pages back promptly) frees each batch in its
//! deferred closure instead, page by page, as soon as the epoch allows.
//!
//! Each released batch is also registered with its table (a map from batch id, O(1)
//! per release however many batches wait behind a pinned reader), so that dropping the
//! table gives back every page still waiting for the epoch at once: no reader can hold
//! a reference to a dropped table, and `iommu_pt_free` promises C callers that every
//! page went back before it returns.

use crate::memory::{TableMemory, TablePage};
use crate::sync::epoch;
use crate::sync::{AtomicU64, AtomicUsize, Mutex, Ordering, lock};
use std::collections::HashMap;
use std::sync::Arc;

/// Bytes of table pages a table keeps cached for reuse by default (1024 4 KiB pages,
/// 64 pages of 64 KiB).
pub const DEFAULT_PAGE_CACHE_BYTES: usize = 4 << 20;

/// Where a gather sends the pages it releases. Type-erased so that a [`crate::Gather`]
/// does not carry the table's memory type, and may hold pages of several tables.
pub(crate) trait Reclaim: Send + Sync {
    /// Hands `pages` to epoch reclamation (or frees them now if the table is gone), then
    /// gives back a bounded amount of page-cache surplus.
    fn retire(self: Arc<Self>, pages: Vec<TablePage>);
    /// Table pages (in granules) that `page` counts as.
    fn pages_of(&self, page: &TablePage) -> u64;
}

/// What a table shares with its gathers and deferred closures.
pub(crate) struct Shared<M: TableMemory> {
    pub(crate) mem: Arc<M>,
    granule_shift: u32,
    /// Table pages (in granules) allocated from the memory and not yet given back:
    /// in the tree, in gathers, waiting for the epoch, or cached.
    live: AtomicU64,
    /// Pages in the cache (read without the lock to skip it when empty).
    cached: AtomicUsize,
    cache_limit: usize,
    cache: Mutex<Cache>,
    pending: Mutex<Pending>,
}

/// Recycled pages, as the batches they were released in (moving a batch in is O(1)).
struct Cache {
    alive: bool,
    ready: Vec<Vec<TablePage>>,
}

/// Batches released and not yet through the epoch, so that drop can free them.
struct Pending {
    alive: bool,
    next_id: u64,
    batches: HashMap<u64, Arc<Batch>>,
}

/// Pages released together; emptied by whichever comes first, the deferred closure or
/// the table's drop.
struct Batch {
    pages: Mutex<Vec<TablePage>>,
}

impl<M: TableMemory> Shared<M> {
    pub(crate) fn new(mem: Arc<M>, granule_shift: u32, cache_bytes: usize) -> Self {
        Shared {
            mem,
            granule_shift,
            live: AtomicU64::new(0),
            cached: AtomicUsize::new(0),
            cache_limit: cache_bytes >> granule_shift,
            cache: Mutex::new(Cache {
                alive: true,
                ready: Vec::new(),
            }),
            pending: Mutex::new(Pending {
                alive: true,
                next_id: 0,
                batches: HashMap::new(),
            }),
        }
    }

    fn count(&self, size: usize) -> u64 {
        ((size >> self.granule_shift) as u64).max(1)
    }

    /// The size of a normal (non-top) table: one granule.
    #[inline(always)]
    fn page_bytes(&self) -> usize {
        1 << self.granule_shift
    }

    /// The allocation size of a table of `size` bytes: small Arm top tables get at least
    /// 64 bytes (the CD/STE pointer fields need 16, 52-bit configurations 64).
    #[inline(always)]
    pub(crate) fn alloc_size(&self, size: usize) -> usize {
        size.max(64.min(1 << self.granule_shift))
    }

    /// Allocates a zeroed table of `size` bytes aligned to its size, from the cache when
    /// it holds a page of that size.
    #[inline]
    pub(crate) fn alloc_table(&self, size: usize) -> Option<TablePage> {
        let size = self.alloc_size(size);
        if size == self.page_bytes()
            && self.cached.load(Ordering::Relaxed) > 0
            && let Some(page) = self.pop_cached()
        {
            zero(page);
            return Some(page);
        }
        let page = self.mem.alloc(size, size)?;
        self.live.fetch_add(self.count(size), Ordering::Relaxed);
        Some(page)
    }

    fn pop_cached(&self) -> Option<TablePage> {
        let mut c = lock(&self.cache);
        let batch = c.ready.last_mut()?;
        let page = batch.pop();
        if batch.is_empty() {
            c.ready.pop();
        }
        if page.is_some() {
            self.cached.fetch_sub(1, Ordering::Relaxed);
        }
        page
    }

    /// Takes back pages that were allocated but never published (a lost install race,
    /// an unused reservation): they go to the cache, or to the memory if the cache is
    /// full or they are not plain table pages.
    pub(crate) fn unused(&self, pages: Vec<TablePage>) {
        let (plain, other): (Vec<_>, Vec<_>) =
            pages.into_iter().partition(|p| p.size == self.page_bytes());
        for p in other {
            // SAFETY: never published, so unreachable by anyone; freed once.
            unsafe { self.free_now(p) };
        }
        if plain.is_empty() {
            return;
        }
        let n = plain.len();
        let mut c = lock(&self.cache);
        if c.alive && self.cached.load(Ordering::Relaxed) + n <= self.cache_limit {
            c.ready.push(plain);
            self.cached.fetch_add(n, Ordering::Relaxed);
            return;
        }
        drop(c);
        for p in plain {
            // SAFETY: as above.
            unsafe { self.free_now(p) };
        }
    }

    /// Gives a page back to the memory.
    ///
    /// # Safety
    /// `page` came from `alloc_table` of this table, is unreachable by every reader and
    /// by the hardware, and is freed only once.
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

    /// Pages currently cached for reuse.
    pub(crate) fn cached_pages(&self) -> usize {
        self.cached.load(Ordering::Relaxed)
    }

    /// Gives back to the memory up to `budget` cached pages beyond `keep`.
    pub(crate) fn trim(&self, keep: usize, budget: usize) -> usize {
        if self.cached.load(Ordering::Relaxed) <= keep {
            return 0;
        }
        let mut out = Vec::new();
        {
            let mut c = lock(&self.cache);
            while out.len() < budget && self.cached.load(Ordering::Relaxed) > keep {
                let Some(batch) = c.ready.last_mut() else {
                    break;
                };
                let Some(p) = batch.pop() else {
                    c.ready.pop();
                    continue;
                };
                if batch.is_empty() {
                    c.ready.pop();
                }
                self.cached.fetch_sub(1, Ordering::Relaxed);
                out.push(p);
            }
        }
        let n = out.len();
        for p in out {
            // SAFETY: cached pages went through the hardware's release and the epoch, and
            // were taken out of the cache, so nobody else reaches or frees them.
            unsafe { self.free_now(p) };
        }
        n
    }

    /// Hands `pages` to the epoch as one batch, registered for the table's drop. Does
    /// no trimming: callable from the map path.
    pub(crate) fn retire_batch(self: &Arc<Self>, pages: Vec<TablePage>) {
        if pages.is_empty() {
            return;
        }
        let batch = Arc::new(Batch {
            pages: Mutex::new(pages),
        });
        let id = {
            let mut p = lock(&self.pending);
            if p.alive {
                let id = p.next_id;
                p.next_id += 1;
                p.batches.insert(id, batch.clone());
                Some(id)
            } else {
                None
            }
        };
        let Some(id) = id else {
            // The table was dropped: no reader of it can exist any more.
            for p in std::mem::take(&mut *lock(&batch.pages)) {
                // SAFETY: the hardware released the pages (the caller's release), no
                // reader of a dropped table exists, and the batch was never shared.
                unsafe { self.free_now(p) };
            }
            return;
        };
        let shared = self.clone();
        let guard = epoch::pin();
        guard.defer(move || shared.recycle(id, &batch));
        // Push the bag along so long-idle threads do not hold pages for ever.
        guard.flush();
    }

    /// The deferred closure: every reader pinned before the release has unpinned. O(1):
    /// the batch moves into the cache as a whole.
    fn recycle(&self, id: u64, batch: &Batch) {
        {
            // Hold the batch while handing its pages on: a drop racing with this waits
            // for it, so it returns only once every page is back in the memory.
            let mut held = lock(&batch.pages);
            let pages = std::mem::take(&mut *held);
            // In debug builds and loom models, reclaimed pages are poisoned while they wait
            // in the cache, so that a reader the epoch failed to protect reads garbage
            // rather than a plausible table (tests check for it).
            #[cfg(any(loom, debug_assertions))]
            pages.iter().for_each(|p| fill(*p, RECLAIMED));
            let n = pages.len();
            let mut c = lock(&self.cache);
            if c.alive && self.cache_limit > 0 {
                if n > 0 {
                    c.ready.push(pages);
                    self.cached.fetch_add(n, Ordering::Relaxed);
                }
            } else {
                drop(c);
                for p in pages {
                    // SAFETY: through the hardware release and the epoch; taken out of
                    // the batch, so this is the only free.
                    unsafe { self.free_now(p) };
                }
            }
        }
        lock(&self.pending).batches.remove(&id);
    }

    /// Called once by the table's drop: gives back every cached page and every page still
    /// waiting for the epoch.
    ///
    /// # Safety
    /// No reader of the table may exist any more.
    pub(crate) unsafe fn shutdown(&self) {
        let batches = {
            let mut p = lock(&self.pending);
            p.alive = false;
            std::mem::take(&mut p.batches)
        };
        let cached = {
            let mut c = lock(&self.cache);
            c.alive = false;
            std::mem::take(&mut c.ready)
        };
        for page in cached.into_iter().flatten() {
            self.cached.fetch_sub(1, Ordering::Relaxed);
            // SAFETY: cached pages are unreachable; taken out of the cache, freed once.
            unsafe { self.free_now(page) };
        }
        for (_, b) in batches {
            let mut pages = lock(&b.pages);
            for p in pages.drain(..) {
                // SAFETY: the table is gone, so no reader can reach its retired pages (the
                // hardware released them: they were retired); taking them out of the
                // batch makes this the only free.
                unsafe { self.free_now(p) };
            }
        }
    }
}

/// What reclaimed pages hold while they wait in the cache (debug builds and loom).
#[cfg(any(loom, debug_assertions))]
pub(crate) const RECLAIMED: u64 = 0xdead_7ab1_e000_0bad;

/// Zeroes a recycled page before it becomes a table again.
fn zero(page: TablePage) {
    fill(page, 0);
}

/// Writes `word` to every entry of a page nobody else reaches (it went through the epoch
/// and is held by the cache, or is being taken out of it).
fn fill(page: TablePage, word: u64) {
    for i in 0..page.size / 8 {
        // SAFETY: the page is allocated, 8-byte aligned, ours alone (see above) and `i` is
        // inside it. Atomic stores, because the walker's entries are atomics (loom's,
        // under the model).
        unsafe {
            (*page.virt.as_ptr().cast::<AtomicU64>().add(i)).store(word, Ordering::Relaxed);
        }
    }
}

impl<M: TableMemory> Reclaim for Shared<M> {
    fn retire(self: Arc<Self>, pages: Vec<TablePage>) {
        let n = pages.len();
        self.retire_batch(pages);
        // The releasing call (not a map or unmap) returns surplus to the memory, a
        // bounded amount each time.
        self.trim(self.cache_limit, 2 * n + 16);
    }

    fn pages_of(&self, page: &TablePage) -> u64 {
        self.count(page.size)
    }
}
