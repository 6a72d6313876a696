//! Counters a domain reports.

/// A snapshot of a domain's state and counters, from [`IovaDomain::stats`].
///
/// Taken without stopping other threads: under concurrent use each field is exact for
/// some moment, not all fields for the same moment.
///
/// [`IovaDomain::stats`]: crate::IovaDomain::stats
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IovaStats {
    /// Allocations in the range tree, including those parked in the caches (reservations
    /// are not counted).
    pub live_ranges: u64,
    /// Pages covered by the ranges the caches hold (per-CPU magazines and the depot).
    pub cached_pfns: u64,
    /// `alloc_fast` calls of a cached size served from a cache.
    pub cache_hits: u64,
    /// `alloc_fast` calls of a cached size the caches could not serve.
    pub cache_misses: u64,
    /// Full magazines waiting in the depots, all size classes together.
    pub depot_magazines: u64,
    /// Magazines the depots gave back to the tree because they were over their limit:
    /// the size each depot has grown or decayed to, never above its cap (see
    /// [`IovaOptions::depot_limit`]).
    ///
    /// [`IovaOptions::depot_limit`]: crate::IovaOptions::depot_limit
    pub trims: u64,
    /// The largest size, in pages, the caches serve (`1 << max_cached_order`).
    pub max_cached_pages: u64,
}
