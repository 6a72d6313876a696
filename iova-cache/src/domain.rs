//! The allocator: a range tree behind a mutex, with per-CPU caches in front.

use std::fmt;

use crate::cache::{Caches, Freed};
use crate::error::IovaError;
use crate::gap::Request;
use crate::options::IovaOptions;
use crate::range_tree::{CACHED, Range, RangeTree};
use crate::stats::IovaStats;
use crate::sync::{Mutex, lock};

/// An IOVA allocator over the pfns `start_pfn..=max_pfn`.
///
/// Two ways in, as in Linux:
///
/// - [`alloc_fast`](Self::alloc_fast) / [`free_fast`](Self::free_fast): sizes up to
///   `1 << max_cached_order` pages are rounded up to a power of two and served from
///   per-CPU magazines, falling back to the tree;
/// - [`alloc`](Self::alloc) / [`free`](Self::free): the range tree directly, any size,
///   optionally unaligned.
///
/// Every range handed out is aligned to its size rounded up to a power of two (unless
/// [`alloc`](Self::alloc) is asked for an unaligned one), lies in
/// `start_pfn..=limit_pfn`, is placed as high as possible (top down, like Linux) when it
/// comes from the tree, and overlaps no other allocation and no reservation. Ranges
/// parked in the caches stay allocated in the tree: [`find`](Self::find) reports them
/// and `live_ranges` counts them.
///
/// All methods take `&self` and may be called from any number of threads at once.
///
/// ```
/// use iova_cache::IovaDomain;
/// let d = IovaDomain::new(4096, 1, false).unwrap();
/// let pfn = d.alloc_fast(3, 0xFFFFF, true).unwrap(); // 4 pages below 4 GiB
/// assert_eq!(pfn % 4, 0);
/// assert!(pfn + 3 <= 0xFFFFF);
/// assert_eq!(d.find(pfn + 2), Some((pfn, pfn + 3)));
/// d.free_fast(pfn, 3).unwrap();
/// // The next allocation of that size class comes straight from this CPU's cache.
/// assert_eq!(d.alloc_fast(4, 0xFFFFF, false), Some(pfn));
/// ```
pub struct IovaDomain {
    opts: IovaOptions,
    max_pfn: u64,
    /// Largest cached size in pages.
    max_cached: u64,
    tree: Mutex<RangeTree>,
    caches: Caches,
}

// Every method may be called from any thread at once; keep it that way.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<IovaDomain>();
};

impl fmt::Debug for IovaDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IovaDomain")
            .field("options", &self.opts)
            .field("max_pfn", &self.max_pfn)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl IovaDomain {
    /// A domain with default options (see [`IovaOptions::new`]), checked or not.
    ///
    /// # Errors
    ///
    /// [`IovaError::Invalid`] if `granule` is not a power of two from 4096 to 65536 or
    /// `start_pfn` is 0 or above the highest pfn.
    pub fn new(granule: u64, start_pfn: u64, checked: bool) -> Result<Self, IovaError> {
        Self::with_options(&IovaOptions {
            checked,
            ..IovaOptions::new(granule, start_pfn)
        })
    }

    /// A domain with the given options.
    ///
    /// # Errors
    ///
    /// [`IovaError::Invalid`] if the options are out of range (see
    /// [`IovaOptions::validate`]).
    pub fn with_options(opts: &IovaOptions) -> Result<Self, IovaError> {
        opts.validate()?;
        let max_pfn = opts.max_pfn();
        Ok(IovaDomain {
            opts: *opts,
            max_pfn,
            max_cached: 1 << opts.max_cached_order,
            tree: Mutex::new(RangeTree::new(opts.start_pfn, max_pfn)),
            caches: Caches::new(
                opts.max_cached_order as usize + 1,
                opts.depot_limit as usize,
            ),
        })
    }

    /// The options the domain was created with.
    #[must_use]
    pub fn options(&self) -> &IovaOptions {
        &self.opts
    }

    /// The highest pfn of the domain, `u64::MAX / granule`; larger limits are clamped
    /// to it.
    #[must_use]
    pub fn max_pfn(&self) -> u64 {
        self.max_pfn
    }

    /// Allocates `size` pages ending at or below `limit_pfn`, from the per-CPU caches if
    /// possible; `None` when nothing fits or `size` is 0.
    ///
    /// Sizes up to the largest cached size are rounded up to a power of two; every range
    /// is aligned to its size rounded up to a power of two. With `flush_cache`, a failed
    /// search empties every cache into the tree and searches once more before giving up,
    /// so it fails only if no aligned gap fits below the limit.
    #[inline]
    pub fn alloc_fast(&self, size: u64, limit_pfn: u64, flush_cache: bool) -> Option<u64> {
        if let Some(pfn) = self.fast_pop(size, limit_pfn) {
            return Some(pfn);
        }
        self.alloc_cached_or_tree(size, limit_pfn, flush_cache)
    }

    /// The common case of [`alloc_fast`](Self::alloc_fast), with no call that would
    /// make the caller save registers: an unchecked domain, a cached size (never above
    /// `max_pfn`, which is at least 2^48 - 1) below a limit that leaves room for it,
    /// served by the top of this CPU's loaded magazine. `None` says only "not here".
    #[inline(always)]
    fn fast_pop(&self, size: u64, limit_pfn: u64) -> Option<u64> {
        if self.opts.checked || size.wrapping_sub(1) >= self.max_cached {
            return None;
        }
        let pages = size.next_power_of_two();
        let limit = limit_pfn.min(self.max_pfn);
        // `limit + 1` cannot overflow: pfns stay below 2^53.
        let max_first = (limit + 1).wrapping_sub(pages);
        if max_first < self.opts.start_pfn || max_first > limit {
            return None;
        }
        self.caches
            .try_pop(pages.trailing_zeros() as usize, max_first)
    }

    /// [`alloc_fast`](Self::alloc_fast) past its first try: the rest of the caches,
    /// then the tree.
    #[inline(never)]
    fn alloc_cached_or_tree(&self, size: u64, limit_pfn: u64, flush_cache: bool) -> Option<u64> {
        if size.wrapping_sub(1) < self.max_cached {
            let pages = size.next_power_of_two();
            let limit = limit_pfn.min(self.max_pfn);
            let max_first = (limit + 1).wrapping_sub(pages);
            if max_first >= self.opts.start_pfn && max_first <= limit {
                let class = pages.trailing_zeros() as usize;
                if let Some(pfn) = self.caches.alloc(class, max_first)
                    && (!self.opts.checked || self.claim_cached(pfn))
                {
                    return Some(pfn);
                }
                return self.alloc_from_tree(Request::aligned(pages), limit, flush_cache);
            }
        }
        self.alloc_general(size, limit_pfn, flush_cache)
    }

    /// [`alloc_fast`](Self::alloc_fast) for every other case: zero or uncached sizes,
    /// limits with no room.
    #[inline(never)]
    fn alloc_general(&self, size: u64, limit_pfn: u64, flush_cache: bool) -> Option<u64> {
        if size == 0 || size > self.max_pfn {
            return None;
        }
        let cached = size <= self.max_cached;
        let size = if cached {
            size.next_power_of_two()
        } else {
            size
        };
        let limit = limit_pfn.min(self.max_pfn);
        let max_first = (limit + 1).checked_sub(size)?;
        if max_first < self.opts.start_pfn {
            return None;
        }
        if cached {
            let class = size.trailing_zeros() as usize;
            if let Some(pfn) = self.caches.alloc(class, max_first)
                && (!self.opts.checked || self.claim_cached(pfn))
            {
                return Some(pfn);
            }
        }
        self.alloc_from_tree(Request::aligned(size), limit, flush_cache)
    }

    fn alloc_from_tree(&self, req: Request, limit: u64, flush_cache: bool) -> Option<u64> {
        if let Some(pfn) = lock(&self.tree).alloc(req, limit) {
            return Some(pfn);
        }
        if !flush_cache {
            return None;
        }
        self.flush_caches();
        lock(&self.tree).alloc(req, limit)
    }

    /// Checked domains: a range leaving the cache is live again.
    fn claim_cached(&self, pfn: u64) -> bool {
        let mut tree = lock(&self.tree);
        match tree.find_exact(pfn) {
            Some(r) if r.is_cached() => tree.set_flags(pfn, r.flags & !CACHED).is_some(),
            // Not marked cached: some other path freed it meanwhile; drop it.
            _ => false,
        }
    }

    /// Gives back a range from [`alloc_fast`](Self::alloc_fast), with the same `size`.
    /// Ranges of a cached size go to this CPU's cache, others to the tree.
    ///
    /// An unchecked domain trusts the caller: a double free or a wrong size may make
    /// later answers wrong (as in Linux), though never memory-unsafe.
    ///
    /// # Errors
    ///
    /// - [`IovaError::Invalid`]: `size` is 0 or the range leaves the domain;
    /// - [`IovaError::BadFree`]: a cached size whose `pfn` is not aligned to it (no
    ///   `alloc_fast` range is), or, in a checked domain, `pfn` does not start a live
    ///   allocation of `size` pages (rounded as `alloc_fast` rounds): a double free or a
    ///   wrong size. Nothing changes.
    #[inline]
    pub fn free_fast(&self, pfn: u64, size: u64) -> Result<(), IovaError> {
        if self.fast_push(pfn, size) {
            return Ok(());
        }
        self.free_fast_general(pfn, size)
    }

    /// The common case of [`free_fast`](Self::free_fast), with no call that would make
    /// the caller save registers: an unchecked domain, a cached size, a range inside
    /// the domain aligned to its rounded size, onto this CPU's loaded magazine. False
    /// says only "not here": the general path re-checks and reports any error.
    #[inline(always)]
    fn fast_push(&self, pfn: u64, size: u64) -> bool {
        if self.opts.checked || size.wrapping_sub(1) >= self.max_cached {
            return false;
        }
        let pages = size.next_power_of_two();
        // `pages - 1 < max_pfn`: cached sizes are at most 1024 pages.
        pfn >= self.opts.start_pfn
            && pfn & (pages - 1) == 0
            && pfn <= self.max_pfn - (pages - 1)
            && self.caches.try_push(pages.trailing_zeros() as usize, pfn)
    }

    /// What a cache could not keep goes back to the tree.
    #[cold]
    #[inline(never)]
    fn free_spilled(&self, class: usize, pfn: u64, freed: Freed) {
        match freed {
            Freed::Cached => {}
            Freed::Trimmed(mags) => {
                let mut tree = lock(&self.tree);
                for mag in &mags {
                    release_locked(&mut tree, class, &mag[..], self.opts.checked);
                }
            }
            Freed::Busy => self.release(class, &[pfn]),
        }
    }

    /// [`free_fast`](Self::free_fast) with every check: checked domains, uncached sizes,
    /// bad arguments.
    #[inline(never)]
    fn free_fast_general(&self, pfn: u64, size: u64) -> Result<(), IovaError> {
        if size == 0 {
            return Err(IovaError::Invalid("free_fast size must not be zero"));
        }
        let cached = size <= self.max_cached;
        let pages = if cached {
            size.next_power_of_two()
        } else {
            size
        };
        if pfn < self.opts.start_pfn || pfn > self.max_pfn || pages - 1 > self.max_pfn - pfn {
            return Err(IovaError::Invalid(
                "free_fast range lies outside the domain's pfns",
            ));
        }
        if !cached {
            return self.free_uncached(pfn, size);
        }
        if pfn & (pages - 1) != 0 {
            return Err(IovaError::BadFree { pfn, size });
        }
        if self.opts.checked {
            let mut tree = lock(&self.tree);
            match tree.find_exact(pfn) {
                Some(r) if !r.is_reserved() && !r.is_cached() && r.pages() == pages => {
                    tree.set_flags(pfn, r.flags | CACHED);
                }
                _ => return Err(IovaError::BadFree { pfn, size }),
            }
        }
        let class = pages.trailing_zeros() as usize;
        match self.caches.free(class, pfn) {
            Freed::Cached => {}
            other => self.free_spilled(class, pfn, other),
        }
        Ok(())
    }

    fn free_uncached(&self, pfn: u64, size: u64) -> Result<(), IovaError> {
        let mut tree = lock(&self.tree);
        if self.opts.checked {
            match tree.find_exact(pfn) {
                Some(r) if !r.is_reserved() && r.pages() == size => {
                    tree.remove_found(r);
                    Ok(())
                }
                _ => Err(IovaError::BadFree { pfn, size }),
            }
        } else {
            // Like Linux's free_iova(): whatever allocation contains pfn.
            tree.remove_containing(pfn, |r| !r.is_reserved());
            Ok(())
        }
    }

    /// Frees cached ranges of class `class` back to the tree.
    fn release(&self, class: usize, pfns: &[u64]) {
        let mut tree = lock(&self.tree);
        release_locked(&mut tree, class, pfns, self.opts.checked);
    }

    /// Allocates `size` pages ending at or below `limit_pfn` from the range tree
    /// directly (no cache, no rounding), at the highest address that fits; aligned to
    /// `size` rounded up to a power of two if `size_aligned`.
    ///
    /// ```
    /// use iova_cache::{IovaDomain, IovaError};
    /// let d = IovaDomain::new(4096, 1, false).unwrap();
    /// assert_eq!(d.alloc(3, 100, false), Ok(98));
    /// assert_eq!(d.alloc(3, 100, true), Ok(92));
    /// assert_eq!(d.alloc(200, 100, false), Err(IovaError::NoSpace));
    /// ```
    ///
    /// # Errors
    ///
    /// [`IovaError::Invalid`] if `size` is 0; [`IovaError::NoSpace`] if no free gap
    /// fits (the caches are not flushed: see [`alloc_fast`](Self::alloc_fast)).
    pub fn alloc(&self, size: u64, limit_pfn: u64, size_aligned: bool) -> Result<u64, IovaError> {
        if size == 0 {
            return Err(IovaError::Invalid("alloc size must not be zero"));
        }
        if size > self.max_pfn {
            return Err(IovaError::NoSpace);
        }
        let req = if size_aligned {
            Request::aligned(size)
        } else {
            Request::unaligned(size)
        };
        lock(&self.tree)
            .alloc(req, limit_pfn.min(self.max_pfn))
            .ok_or(IovaError::NoSpace)
    }

    /// Frees the allocation containing `pfn`, whichever way it was allocated.
    ///
    /// # Errors
    ///
    /// [`IovaError::NotFound`] if no allocation contains `pfn`: it is free, reserved
    /// (reservations are permanent), or, in a checked domain, parked in a cache
    /// (already given back with `free_fast`).
    pub fn free(&self, pfn: u64) -> Result<(), IovaError> {
        let mut tree = lock(&self.tree);
        // Reservations are permanent; in a checked domain a cached range is already free.
        let freeable = |r: &Range| !(r.is_reserved() || self.opts.checked && r.is_cached());
        match tree.remove_containing(pfn, freeable) {
            Some(_) => Ok(()),
            None => Err(IovaError::NotFound(pfn)),
        }
    }

    /// Marks `lo..=hi` as never to be allocated, merging it with the reservations it
    /// overlaps or touches. The part outside `start_pfn..=max_pfn` is ignored (it can
    /// never be allocated anyway).
    ///
    /// ```
    /// use iova_cache::IovaDomain;
    /// let d = IovaDomain::new(4096, 1, false).unwrap();
    /// d.reserve(0xFEE00, 0xFEEFF).unwrap(); // the x86 MSI window
    /// assert_eq!(d.find(0xFEE80), Some((0xFEE00, 0xFEEFF)));
    /// assert_eq!(d.alloc_fast(1, 0xFEEFF, false), Some(0xFEDFF));
    /// ```
    ///
    /// # Errors
    ///
    /// [`IovaError::Invalid`] if `lo > hi`; [`IovaError::Exists`] if the range overlaps
    /// a live allocation (nothing changes). Ranges parked in the caches are not live:
    /// on a conflict the caches are flushed and the reservation retried.
    pub fn reserve(&self, lo: u64, hi: u64) -> Result<(), IovaError> {
        if lo > hi {
            return Err(IovaError::Invalid("reserve needs lo <= hi"));
        }
        let (lo, hi) = (lo.max(self.opts.start_pfn), hi.min(self.max_pfn));
        if lo > hi {
            return Ok(());
        }
        let mut flushed = false;
        loop {
            let conflict = match lock(&self.tree).reserve(lo, hi) {
                Ok(()) => return Ok(()),
                Err(r) => r,
            };
            if flushed || self.caches.cached_pages() == 0 {
                return Err(IovaError::Exists {
                    lo: conflict.lo,
                    hi: conflict.hi,
                });
            }
            self.flush_caches();
            flushed = true;
        }
    }

    /// The allocated (possibly cached) or reserved range containing `pfn`, as
    /// `(first, last)`.
    #[must_use]
    pub fn find(&self, pfn: u64) -> Option<(u64, u64)> {
        lock(&self.tree).find(pfn).map(|r| (r.lo, r.hi))
    }

    /// Empties every per-CPU magazine and depot into the range tree.
    ///
    /// Ranges freed by other threads while this runs may be cached again right away.
    pub fn flush_caches(&self) {
        let per_class = self.caches.drain();
        if per_class.iter().all(Vec::is_empty) {
            return;
        }
        let mut tree = lock(&self.tree);
        for (class, pfns) in per_class.iter().enumerate() {
            release_locked(&mut tree, class, pfns, self.opts.checked);
        }
    }

    /// Current counters; see [`IovaStats`].
    #[must_use]
    pub fn stats(&self) -> IovaStats {
        let (cache_hits, cache_misses) = self.caches.counters();
        IovaStats {
            live_ranges: lock(&self.tree).allocations(),
            cached_pfns: self.caches.cached_pages(),
            cache_hits,
            cache_misses,
            depot_magazines: self.caches.depot_magazines(),
            trims: self.caches.trims(),
            max_cached_pages: self.max_cached,
        }
    }

    /// The most pages the per-CPU magazines and the depots can ever hold together, the
    /// bound of [`IovaOptions::depot_limit`]:
    /// `(2 * slots + cap) * 127 * (2^(max_cached_order + 1) - 1)`, where `slots` is the
    /// number of per-CPU slots (the configured CPUs) and `cap` the depot cap.
    /// [`IovaStats::cached_pfns`] never exceeds it.
    ///
    /// ```
    /// use iova_cache::{IovaDomain, IovaOptions};
    /// let opts = IovaOptions { depot_limit: 8, max_cached_order: 1, ..IovaOptions::default() };
    /// let d = IovaDomain::with_options(&opts).unwrap();
    /// let pfns: Vec<u64> = (0..10_000).map(|_| d.alloc_fast(1, u64::MAX, false).unwrap()).collect();
    /// for pfn in pfns {
    ///     d.free_fast(pfn, 1).unwrap();
    /// }
    /// // Whatever the caches could not keep went back to the tree.
    /// let s = d.stats();
    /// assert!(s.cached_pfns <= d.cached_pfns_bound());
    /// assert_eq!(s.live_ranges, s.cached_pfns);
    /// ```
    #[must_use]
    pub fn cached_pfns_bound(&self) -> u64 {
        self.caches.bound_pages()
    }

    /// Bytes of range-tree nodes in use, and reserved including spare arena capacity:
    /// the allocator's memory per live range, not counting the fixed-size caches.
    #[must_use]
    pub fn tree_bytes(&self) -> (usize, usize) {
        lock(&self.tree).memory()
    }
}

/// Frees the ranges of class `class` starting at `pfns`, which came out of a cache.
/// Anything else found there (a reservation, a range of another size, in a checked
/// domain a range not marked cached) is left alone: only a bad unchecked `free_fast`
/// can put such a pfn in a cache, and leaving it is the least harmful answer.
fn release_locked(tree: &mut RangeTree, class: usize, pfns: &[u64], checked: bool) {
    for &pfn in pfns {
        if let Some(r) = tree.find_exact(pfn)
            && !r.is_reserved()
            && r.pages() == 1 << class
            && (!checked || r.is_cached())
        {
            tree.remove_found(r);
        }
    }
}
