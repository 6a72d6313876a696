//! The opaque `struct iova_domain` and the `iova_*` functions over it.

use crate::boundary::{boundary, obj, out};
use crate::errno::Errno;
use crate::types::{IOVA_F_CHECKED, iova_options, iova_stats};
use iova_cache::{DEFAULT_MAX_CACHED_ORDER, IovaDomain, IovaOptions};
use std::ffi::c_int;

/// An IOVA allocator (opaque to C).
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct iova_domain {
    domain: IovaDomain,
}

/// Stores a new domain in `*out`.
fn create(opts: &IovaOptions, out: *mut *mut iova_domain) -> Result<c_int, Errno> {
    let out = self::out(out)?;
    let domain = IovaDomain::with_options(opts)?;
    // SAFETY: `out` is non-NULL and writable (the exported function's caller promises).
    unsafe { out.write(Box::into_raw(Box::new(iova_domain { domain }))) };
    Ok(0)
}

/// Creates a domain of `granule`-byte pages whose allocations start at `start_pfn`,
/// with default options (`IOVA_F_CHECKED` in `flags` detects bad `iova_free_fast`s).
///
/// Returns 0; `-EINVAL` if `granule` is not a power of two from 4096 to 65536,
/// `start_pfn` is 0, `flags` has unknown bits, or `out` is NULL.
///
/// # Safety
/// `out` must be NULL or writable.
///
/// Thread safety: may be called from any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iova_domain_new(
    granule: u64,
    start_pfn: u64,
    flags: u32,
    out: *mut *mut iova_domain,
) -> c_int {
    boundary(|| {
        if flags & !IOVA_F_CHECKED != 0 {
            return Err(Errno::INVAL.because("unknown IOVA domain flags"));
        }
        let opts = IovaOptions {
            checked: flags & IOVA_F_CHECKED != 0,
            ..IovaOptions::new(granule, start_pfn)
        };
        create(&opts, out)
    })
}

/// Creates a domain from `*opts` (see `struct iova_options`).
///
/// Returns 0; `-EINVAL` for a NULL argument, a bad granule or `start_pfn`, unknown
/// flags, a non-zero `reserved` or `max_cached_order > 10`.
///
/// # Safety
/// `opts` must be NULL or readable; `out` NULL or writable.
///
/// Thread safety: may be called from any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iova_domain_new_with(
    opts: *const iova_options,
    out: *mut *mut iova_domain,
) -> c_int {
    boundary(|| {
        // SAFETY: the caller passes NULL or readable options.
        let o = unsafe { obj(opts) }?;
        if o.flags & !IOVA_F_CHECKED != 0 || o.reserved != 0 {
            return Err(Errno::INVAL.because("unknown IOVA domain flags, or reserved not 0"));
        }
        let opts = IovaOptions {
            granule: o.granule,
            start_pfn: o.start_pfn,
            checked: o.flags & IOVA_F_CHECKED != 0,
            max_cached_order: match o.max_cached_order {
                0 => DEFAULT_MAX_CACHED_ORDER,
                order => order,
            },
            depot_limit: o.depot_limit,
        };
        create(&opts, out)
    })
}

/// Frees the domain and everything it holds. NULL is a no-op.
///
/// # Safety
/// `d` must be NULL or a live domain, not used afterwards.
///
/// Thread safety: must not race any other call on this domain.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iova_domain_free(d: *mut iova_domain) {
    boundary(|| {
        if !d.is_null() {
            // SAFETY: `d` came from `create` (Box::into_raw), is freed once, and nothing
            // else uses it now (caller's promise).
            drop(unsafe { Box::from_raw(d) });
        }
        Ok(())
    })
}

/// Allocates `size` pages whose last pfn is at most `limit_pfn`, from this CPU's cache
/// when possible; returns the first pfn, or 0 when none fits (or `size` is 0, or `d` is
/// NULL). Sizes up to the largest cached size are rounded up to a power of two; every
/// range is aligned to its size rounded up to a power of two. With `flush_cache`, the
/// caches are emptied and the search retried before failing.
///
/// # Safety
/// `d` must be NULL or a live domain.
///
/// Thread safety: may run concurrently with any call but `iova_domain_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iova_alloc_fast(
    d: *mut iova_domain,
    size: u64,
    limit_pfn: u64,
    flush_cache: bool,
) -> u64 {
    boundary(|| {
        // SAFETY: the caller passes NULL or a live domain (used through `&`).
        let d = unsafe { obj(d) }?;
        Ok(d.domain
            .alloc_fast(size, limit_pfn, flush_cache)
            .unwrap_or(0))
    })
}

/// Gives back a range from `iova_alloc_fast` with the same `size`. Returns 0; in a
/// checked domain a double free or a wrong size returns `-EINVAL` and changes nothing
/// (an unchecked domain trusts the caller); `-EINVAL` for a NULL `d`, a zero size or a
/// range outside the domain.
///
/// # Safety
/// `d` must be NULL or a live domain.
///
/// Thread safety: may run concurrently with any call but `iova_domain_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iova_free_fast(d: *mut iova_domain, pfn: u64, size: u64) -> c_int {
    boundary(|| {
        // SAFETY: the caller passes NULL or a live domain (used through `&`).
        let d = unsafe { obj(d) }?;
        d.domain.free_fast(pfn, size)?;
        Ok(0)
    })
}

/// Allocates `size` pages ending at or below `limit_pfn` from the range tree (no cache),
/// aligned to `size` rounded up to a power of two if `size_aligned`; stores the first
/// pfn in `*pfn_lo`. Returns 0; `-ENOMEM` when nothing fits; `-EINVAL` for a zero size
/// or a NULL argument.
///
/// # Safety
/// `d` must be NULL or a live domain; `pfn_lo` NULL or writable.
///
/// Thread safety: may run concurrently with any call but `iova_domain_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iova_alloc(
    d: *mut iova_domain,
    size: u64,
    limit_pfn: u64,
    size_aligned: bool,
    pfn_lo: *mut u64,
) -> c_int {
    boundary(|| {
        // SAFETY: the caller passes NULL or a live domain (used through `&`).
        let d = unsafe { obj(d) }?;
        let pfn_lo = out(pfn_lo)?;
        let pfn = d.domain.alloc(size, limit_pfn, size_aligned)?;
        // SAFETY: `pfn_lo` is non-NULL and writable (caller's promise).
        unsafe { pfn_lo.write(pfn) };
        Ok(0)
    })
}

/// Frees the allocation containing `pfn` (from either path). Returns 0, `-ENOENT` if no
/// allocation contains it (reservations are permanent), `-EINVAL` for a NULL `d`.
///
/// # Safety
/// `d` must be NULL or a live domain.
///
/// Thread safety: may run concurrently with any call but `iova_domain_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iova_free(d: *mut iova_domain, pfn: u64) -> c_int {
    boundary(|| {
        // SAFETY: the caller passes NULL or a live domain (used through `&`).
        let d = unsafe { obj(d) }?;
        d.domain.free(pfn)?;
        Ok(0)
    })
}

/// Marks `[pfn_lo, pfn_hi]` as never to be allocated, merging with reservations it
/// overlaps or touches. Returns 0; `-EINVAL` if `pfn_lo > pfn_hi` or `d` is NULL;
/// `-EEXIST` if the range overlaps a live allocation (nothing changes).
///
/// # Safety
/// `d` must be NULL or a live domain.
///
/// Thread safety: may run concurrently with any call but `iova_domain_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iova_reserve(d: *mut iova_domain, pfn_lo: u64, pfn_hi: u64) -> c_int {
    boundary(|| {
        // SAFETY: the caller passes NULL or a live domain (used through `&`).
        let d = unsafe { obj(d) }?;
        d.domain.reserve(pfn_lo, pfn_hi)?;
        Ok(0)
    })
}

/// Stores the first and last pfn of the allocated (possibly cached) or reserved range
/// containing `pfn` in `*pfn_lo` and `*pfn_hi`. Returns 0, `-ENOENT` if there is none,
/// `-EINVAL` for a NULL argument.
///
/// # Safety
/// `d` must be NULL or a live domain; `pfn_lo` and `pfn_hi` NULL or writable.
///
/// Thread safety: may run concurrently with any call but `iova_domain_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iova_find(
    d: *const iova_domain,
    pfn: u64,
    pfn_lo: *mut u64,
    pfn_hi: *mut u64,
) -> c_int {
    boundary(|| {
        // SAFETY: the caller passes NULL or a live domain.
        let d = unsafe { obj(d) }?;
        let (lo_out, hi_out) = (out(pfn_lo)?, out(pfn_hi)?);
        let (lo, hi) = d
            .domain
            .find(pfn)
            .ok_or_else(|| Errno::NOENT.because("no range holds that pfn"))?;
        // SAFETY: both out-pointers are non-NULL and writable (caller's promise).
        unsafe {
            lo_out.write(lo);
            hi_out.write(hi);
        }
        Ok(0)
    })
}

/// Empties every per-CPU cache and the depot into the range tree. NULL is a no-op.
///
/// # Safety
/// `d` must be NULL or a live domain.
///
/// Thread safety: may run concurrently with any call but `iova_domain_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iova_flush_caches(d: *mut iova_domain) {
    boundary(|| {
        // SAFETY: the caller passes NULL or a live domain (used through `&`).
        if let Ok(d) = unsafe { obj(d) } {
            d.domain.flush_caches();
        }
        Ok(())
    })
}

/// Writes the domain's counters to `*out`. Returns 0, or `-EINVAL` for a NULL argument.
/// Under concurrent use each counter is exact for some moment.
///
/// # Safety
/// `d` must be NULL or a live domain; `out` NULL or writable.
///
/// Thread safety: may run concurrently with any call but `iova_domain_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iova_get_stats(d: *const iova_domain, out: *mut iova_stats) -> c_int {
    boundary(|| {
        // SAFETY: the caller passes NULL or a live domain.
        let d = unsafe { obj(d) }?;
        let out = self::out(out)?;
        let s = d.domain.stats();
        let stats = iova_stats {
            live_ranges: s.live_ranges,
            cached_pfns: s.cached_pfns,
            cache_hits: s.cache_hits,
            cache_misses: s.cache_misses,
            depot_magazines: s.depot_magazines,
            trims: s.trims,
            max_cached_pages: s.max_cached_pages,
        };
        // SAFETY: `out` is non-NULL and writable (caller's promise).
        unsafe { out.write(stats) };
        Ok(0)
    })
}
