//! The fast path: per-CPU magazine pairs and a bounded depot for every size class.
//!
//! Size class `c` caches ranges of `2^c` pages, naturally aligned. Each CPU has one
//! [`MagazinePair`] per class; the calling thread uses the pair of the CPU it runs on.
//! The protocol follows Linux's `iova_rcache`:
//!
//! - alloc: pop from the loaded magazine; else from the previous one (swapping them);
//!   else, if a magazine is empty, refill it with a full magazine from the depot;
//!   else miss (the caller goes to the range tree);
//! - free: push onto the loaded magazine; else swap with a non-full previous one; else
//!   move the full previous magazine to the depot, make the loaded one previous and
//!   start an empty one. The depot may hand back its oldest magazine, which the caller
//!   frees to the tree (a trim).
//!
//! Lock order: a pair, then a depot. The range tree's lock is never taken while either
//! is held, so the handoff between them cannot deadlock (checked by `tests/loom.rs`).

use crate::cpu;
use crate::depot::{Depot, DepotLimits};
use crate::magazine::{MAG_SIZE, Magazine, MagazinePair, PairGuard};
use crate::sync::{AtomicU64, Ordering, now_ms};

/// What happened to a range given to [`Caches::free`].
#[derive(Debug)]
pub(crate) enum Freed {
    /// It is cached.
    Cached,
    /// It is cached, and the depot gave back these older magazines for the tree.
    Trimmed(Vec<Magazine>),
    /// The pair was busy: the caller frees the range to the tree itself.
    Busy,
}

/// All per-CPU pairs and depots of one domain.
#[derive(Debug)]
pub(crate) struct Caches {
    classes: usize,
    slots: usize,
    limits: DepotLimits,
    /// `slots * classes` pairs, slot-major.
    pairs: Box<[MagazinePair]>,
    depots: Box<[Depot]>,
    /// Misses because a pair was busy (counted outside any pair).
    busy_misses: AtomicU64,
    trims: AtomicU64,
}

impl Caches {
    /// Caches for `classes` size classes; at most `depot_limit` full magazines per
    /// class in the depot, 0 for the default cap (see [`DepotLimits::new`]).
    pub(crate) fn new(classes: usize, depot_limit: usize) -> Self {
        let slots = cpu::slot_count().max(1);
        let limits = DepotLimits::new(depot_limit, slots);
        let now = now_ms();
        Caches {
            classes,
            slots,
            limits,
            pairs: (0..slots * classes).map(|_| MagazinePair::new()).collect(),
            depots: (0..classes).map(|_| Depot::new(limits, now)).collect(),
            busy_misses: AtomicU64::new(0),
            trims: AtomicU64::new(0),
        }
    }

    #[inline]
    fn pair(&self, class: usize) -> &MagazinePair {
        let cpu = cpu::current();
        let slot = if cpu < self.slots {
            cpu
        } else {
            cpu % self.slots
        };
        &self.pairs[slot * self.classes + class]
    }

    /// The fast path's pop: the top of this CPU's loaded magazine, if it is at or
    /// below `max_first`, counted as a hit; `None` for anything else (a busy pair, an
    /// empty or unsuitable top), with nothing counted: the caller then goes to
    /// [`Caches::alloc`]. Free of calls but the CPU-number fallback, so callers stay
    /// leaves on this path.
    #[inline(always)]
    pub(crate) fn try_pop(&self, class: usize, max_first: u64) -> Option<u64> {
        let mut g = self.pair(class).try_lock()?;
        let pfn = g.pop_top_at_most(max_first)?;
        g.count(true);
        Some(pfn)
    }

    /// The fast path's push: onto this CPU's loaded magazine if the pair is free and
    /// the magazine not full; false otherwise, the caller then going to
    /// [`Caches::free`].
    #[inline(always)]
    pub(crate) fn try_push(&self, class: usize, pfn: u64) -> bool {
        self.pair(class).try_lock().is_some_and(|mut g| g.push(pfn))
    }

    /// Takes a cached range of class `class` whose first pfn is at most `max_first`.
    #[inline]
    pub(crate) fn alloc(&self, class: usize, max_first: u64) -> Option<u64> {
        let Some(mut g) = self.pair(class).try_lock() else {
            return self.busy_miss();
        };
        if let Some(pfn) = g.pop_top_at_most(max_first) {
            g.count(true);
            return Some(pfn);
        }
        self.alloc_refill(g, class, max_first)
    }

    #[cold]
    fn busy_miss(&self) -> Option<u64> {
        self.busy_misses.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// The top of the loaded magazine was empty or above `max_first`: search it, then
    /// try the previous one, then the depot.
    #[cold]
    #[inline(never)]
    fn alloc_refill(&self, mut g: PairGuard<'_>, class: usize, max_first: u64) -> Option<u64> {
        let got = self.refill(&mut g, class, max_first);
        g.count(got.is_some());
        got
    }

    fn refill(&self, g: &mut PairGuard<'_>, class: usize, max_first: u64) -> Option<u64> {
        if let Some(pfn) = g.pop_at_most(max_first) {
            return Some(pfn);
        }
        if g.prev_has_at_most(max_first) {
            g.swap();
            return g.pop_at_most(max_first);
        }
        if g.prev_len() == 0 {
            // Keep what the loaded magazine holds (too high for this caller, fine for
            // others) and free the loaded slot for a depot magazine.
            g.swap();
        }
        if g.loaded_len() == 0
            && let Some(full) = self.depots[class].pop(now_ms)
        {
            g.install_loaded(&full);
            return g.pop_at_most(max_first);
        }
        None
    }

    /// Caches the range of class `class` starting at `pfn`.
    #[inline]
    pub(crate) fn free(&self, class: usize, pfn: u64) -> Freed {
        let Some(mut g) = self.pair(class).try_lock() else {
            return Freed::Busy;
        };
        if g.push(pfn) {
            return Freed::Cached;
        }
        self.free_overflow(g, class, pfn)
    }

    /// The loaded magazine is full: swap, or move the previous one to the depot.
    #[cold]
    #[inline(never)]
    fn free_overflow(&self, mut g: PairGuard<'_>, class: usize, pfn: u64) -> Freed {
        if g.prev_len() < MAG_SIZE {
            g.swap();
            g.push(pfn);
            return Freed::Cached;
        }
        // Both full: the previous magazine holds the older ranges, so it is the one to
        // go (Linux sends the loaded one, which leaves a previous magazine full of ranges
        // nobody's limit admits stuck on the CPU for good). The loaded one becomes the
        // previous one.
        let full = g.take_prev();
        g.swap();
        g.push(pfn);
        drop(g);
        let back = self.depots[class].push(full, now_ms());
        if back.is_empty() {
            return Freed::Cached;
        }
        self.trims.fetch_add(back.len() as u64, Ordering::Relaxed);
        Freed::Trimmed(back)
    }

    /// Empties every magazine and depot; returns the first pfns per class.
    pub(crate) fn drain(&self) -> Vec<Vec<u64>> {
        (0..self.classes)
            .map(|class| {
                let mut out = Vec::new();
                for slot in 0..self.slots {
                    self.pairs[slot * self.classes + class]
                        .lock()
                        .drain_into(&mut out);
                }
                for mag in self.depots[class].drain() {
                    out.extend_from_slice(&mag[..]);
                }
                out
            })
            .collect()
    }

    /// Pages held by all magazines and depots.
    ///
    /// Each class is counted with its depot locked, so a magazine moving between the
    /// depot and a pair (which happens under the depot lock) is counted once; one that
    /// a pair has given up but the depot not yet received is not counted. Ranges that
    /// threads take from one CPU's magazine and free into another's while this runs can
    /// be seen in both, as in any unsynchronised sum over CPUs.
    pub(crate) fn cached_pages(&self) -> u64 {
        (0..self.classes)
            .map(|class| {
                self.depots[class].with_len(|in_depot| {
                    let in_pairs: u64 = (0..self.slots)
                        .map(|slot| self.pairs[slot * self.classes + class].cached())
                        .sum();
                    (in_pairs + (in_depot * MAG_SIZE) as u64) << class
                })
            })
            .sum()
    }

    /// The most pages the caches can hold (see `IovaDomain::cached_pfns_bound`):
    /// per class, two magazines per slot and the depot's cap.
    pub(crate) fn bound_pages(&self) -> u64 {
        let per_class = ((2 * self.slots + self.limits.cap) * MAG_SIZE) as u64;
        (0..self.classes).map(|class| per_class << class).sum()
    }

    /// (hits, misses) over all pairs.
    pub(crate) fn counters(&self) -> (u64, u64) {
        let (hits, misses) = self
            .pairs
            .iter()
            .map(MagazinePair::counters)
            .fold((0, 0), |(h, m), (ph, pm)| (h + ph, m + pm));
        (hits, misses + self.busy_misses.load(Ordering::Relaxed))
    }

    /// Full magazines in all depots.
    pub(crate) fn depot_magazines(&self) -> u64 {
        self.depots.iter().map(|d| d.len() as u64).sum()
    }

    /// Magazines trimmed from the depots so far.
    pub(crate) fn trims(&self) -> u64 {
        self.trims.load(Ordering::Relaxed)
    }
}
