//! How a domain is configured.

use crate::error::IovaError;

/// The default `max_cached_order`: sizes up to 32 pages are cached, as in Linux.
pub const DEFAULT_MAX_CACHED_ORDER: u32 = 5;
/// The largest accepted `max_cached_order` (sizes up to 1024 pages).
pub const MAX_CACHED_ORDER_LIMIT: u32 = 10;

/// Options for [`IovaDomain::with_options`].
///
/// ```
/// use iova_cache::{IovaDomain, IovaOptions};
/// let opts = IovaOptions { checked: true, depot_limit: 4, ..IovaOptions::new(4096, 1) };
/// let d = IovaDomain::with_options(&opts).unwrap();
/// assert_eq!(d.stats().max_cached_pages, 32);
/// ```
///
/// [`IovaDomain::with_options`]: crate::IovaDomain::with_options
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IovaOptions {
    /// The IOVA page size in bytes: a power of two from 4096 to 65536. It fixes the
    /// highest pfn, `u64::MAX / granule`.
    pub granule: u64,
    /// The lowest pfn ever allocated; at least 1, so that pfn 0 can mean "none".
    pub start_pfn: u64,
    /// Detect double frees and wrong-size frees in `free_fast` (each fast call then also
    /// takes the range-tree lock).
    pub checked: bool,
    /// Sizes `1 << 0 ..= 1 << max_cached_order` pages are cached; at most
    /// [`MAX_CACHED_ORDER_LIMIT`]. Unlike the C `struct iova_options`, 0 here means "cache
    /// single pages only"; the default is [`DEFAULT_MAX_CACHED_ORDER`].
    pub max_cached_order: u32,
    /// The cap: the most full magazines (of 127 ranges) the depot of each size class
    /// holds. 0 picks the default cap, `max(32, 2 * slots)`, where `slots` is the
    /// number of per-CPU slots (the configured CPUs, `_SC_NPROCESSORS_CONF`).
    ///
    /// Below its cap a depot sizes itself to the working set. It starts at, and decays
    /// back to, a floor of `min(2 * slots, cap)` magazines; it grows while allocations
    /// find it empty (by their worth in magazines, at the next push that finds it full);
    /// after 100 ms without growing it shrinks by one magazine per 100 ms. Magazines
    /// over its current size go back to the range tree, the oldest first, at most two
    /// per push (counted in [`IovaStats::trims`]). The time is checked on the depot's
    /// own operations; no thread runs in the background, so an untouched depot keeps
    /// what it holds until its next use or [`IovaDomain::flush_caches`].
    ///
    /// Every per-CPU slot has two magazines per size class, so at every moment
    ///
    /// ```text
    /// cached_pfns <= (2 * slots + cap) * 127 * (2^(max_cached_order + 1) - 1)
    /// ```
    ///
    /// ([`IovaDomain::cached_pfns_bound`]): with the defaults on 2 CPUs,
    /// `(4 + 32) * 127 * 63` = 288,036 pages. The caches' own memory is one 8-byte
    /// entry per cached range: `2 * slots` magazines per class allocated up front
    /// (about 2 KiB per pair), and up to `cap` depot magazines per class of 1016 bytes
    /// each.
    ///
    /// [`IovaStats::trims`]: crate::IovaStats::trims
    /// [`IovaDomain::flush_caches`]: crate::IovaDomain::flush_caches
    /// [`IovaDomain::cached_pfns_bound`]: crate::IovaDomain::cached_pfns_bound
    pub depot_limit: u32,
}

impl IovaOptions {
    /// Default options for a granule and start pfn: unchecked, sizes up to 32 pages
    /// cached, default depot limit.
    #[must_use]
    pub fn new(granule: u64, start_pfn: u64) -> Self {
        IovaOptions {
            granule,
            start_pfn,
            checked: false,
            max_cached_order: DEFAULT_MAX_CACHED_ORDER,
            depot_limit: 0,
        }
    }

    /// Checks the options.
    ///
    /// # Errors
    ///
    /// [`IovaError::Invalid`] for a granule that is not a power of two from 4096 to
    /// 65536, a `start_pfn` of 0 or above the highest pfn, or a `max_cached_order` above
    /// [`MAX_CACHED_ORDER_LIMIT`].
    pub fn validate(&self) -> Result<(), IovaError> {
        if !self.granule.is_power_of_two() || !(4096..=65536).contains(&self.granule) {
            return Err(IovaError::Invalid(
                "granule must be a power of two from 4096 to 65536",
            ));
        }
        if self.start_pfn == 0 {
            return Err(IovaError::Invalid("start_pfn must be at least 1"));
        }
        if self.start_pfn > self.max_pfn() {
            return Err(IovaError::Invalid(
                "start_pfn must not exceed the highest pfn (u64::MAX / granule)",
            ));
        }
        if self.max_cached_order > MAX_CACHED_ORDER_LIMIT {
            return Err(IovaError::Invalid("max_cached_order must be at most 10"));
        }
        Ok(())
    }

    /// The highest pfn of the IOVA space: the last page below 2^64 bytes.
    pub(crate) fn max_pfn(&self) -> u64 {
        u64::MAX >> self.granule.trailing_zeros()
    }
}

impl Default for IovaOptions {
    /// 4 KiB pages starting at pfn 1.
    fn default() -> Self {
        IovaOptions::new(4096, 1)
    }
}
