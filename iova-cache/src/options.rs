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
    /// Full magazines the depot keeps per size class before it gives the oldest back to
    /// the tree; 0 picks the default, twice the number of CPUs.
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
