//! The `iommu_pt_*` functions over a table handle.

use crate::boundary::{boundary, obj, out};
use crate::errno::Errno;
use crate::fd::FdWriter;
use crate::gather::iommu_pt_gather;
use crate::table::iommu_pt;
use crate::types::{
    iommu_pt_config, iommu_pt_info, iommu_pt_leaf_fn, iommu_pt_sg, iommu_pt_translation,
};
use pgtable_core::Prot;
use std::ffi::{c_int, c_void};
use std::io::{BufWriter, Write};
use std::ops::ControlFlow;

/// Creates a table as `cfg` describes and stores its handle in `*out`.
///
/// Returns 0; `-EINVAL` for a NULL argument, non-zero `flags`, an unknown format, an
/// address size, granule or `pgsize_bitmap` the format does not support, a `mem` with
/// a NULL callback or a `flush` without `flush_walk`; `-ENOMEM` if the top table cannot
/// be allocated; `-EIO` if `mem->phys_to_virt` does not map it back.
///
/// # Safety
/// `cfg` must be NULL or readable; `cfg->mem` NULL or a readable `iommu_pt_mem_ops`
/// whose callbacks (copied here) and `mem_ctx` stay valid until every page of the
/// table went back through `free`; `out` NULL or writable.
///
/// Thread safety: may be called from any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iommu_pt_new(
    cfg: *const iommu_pt_config,
    out: *mut *mut iommu_pt,
) -> c_int {
    boundary(|| {
        // SAFETY: the caller passes NULL or a readable config.
        let cfg = unsafe { obj(cfg) }?;
        let out = self::out(out)?;
        // SAFETY: `cfg.mem` is NULL or readable, with valid callbacks (caller's promise).
        let pt = unsafe { iommu_pt::new(cfg) }?;
        // SAFETY: `out` is non-NULL and writable (caller's promise).
        unsafe { out.write(Box::into_raw(Box::new(pt))) };
        Ok(0)
    })
}

/// Frees the table: every table page, in the tree or waiting for reclamation, is given
/// back (through `mem_ops->free`) before this returns. Pages held by an unreleased
/// gather are given back when that gather is released or freed. NULL is a no-op.
///
/// # Safety
/// `pt` must be NULL or a live table, not used afterwards.
///
/// Thread safety: must not race any other call on this table.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iommu_pt_free(pt: *mut iommu_pt) {
    boundary(|| {
        if !pt.is_null() {
            // SAFETY: `pt` came from `iommu_pt_new` (Box::into_raw), is freed once, and
            // nothing else uses it now (caller's promise).
            drop(unsafe { Box::from_raw(pt) });
        }
        Ok(())
    })
}

/// Writes the table's geometry, root, register values and live table-page count to
/// `*out`. Returns 0, or `-EINVAL` for a NULL argument.
///
/// # Safety
/// `pt` must be NULL or a live table; `out` NULL or writable.
///
/// Thread safety: may run concurrently with any call but `iommu_pt_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iommu_pt_get_info(pt: *const iommu_pt, out: *mut iommu_pt_info) -> c_int {
    boundary(|| {
        // SAFETY: the caller passes NULL or a live table.
        let pt = unsafe { obj(pt) }?;
        let out = self::out(out)?;
        // SAFETY: `out` is non-NULL and writable (caller's promise).
        unsafe { out.write(pt.info()) };
        Ok(0)
    })
}

/// Maps `pgcount` pages of `pgsize` bytes from `iova` to `paddr` with `prot`
/// (`IOMMU_PT_*`), writing the bytes mapped to `*mapped` (may be NULL).
///
/// Returns 0 (`pgcount == 0` maps nothing); `-EINVAL` for a size not in the bitmap, a
/// misaligned `iova` or `paddr`, a `prot` without READ or WRITE or with unknown bits;
/// `-ERANGE` outside the input or output address size; `-EEXIST` if a leaf is in the
/// range (the pages before it stay mapped, `*mapped` says how many bytes); `-ENOMEM`
/// when table memory runs out (likewise), or gives a page whose address the format
/// cannot put in a table entry; `-EIO` when `mem_ops->phys_to_virt` does not map a table
/// page back.
///
/// An empty subtree in the range is replaced by the larger leaf; with `flush` ops the
/// entry is first written empty, `flush_walk` runs once over its whole span, then the
/// leaf is written and only then do the replaced pages go to epoch reclamation.
///
/// # Safety
/// `pt` must be NULL or a live table; `mapped` NULL or writable.
///
/// Thread safety: concurrent with readers anywhere and mutators of disjoint ranges.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iommu_pt_map_pages(
    pt: *mut iommu_pt,
    iova: u64,
    paddr: u64,
    pgsize: u64,
    pgcount: u64,
    prot: u32,
    mapped: *mut u64,
) -> c_int {
    boundary(|| {
        // SAFETY: the caller passes NULL or a live table (used through `&`).
        let pt = unsafe { obj(pt) }?;
        let report = |bytes: u64| {
            // SAFETY: `mapped` is NULL or writable (caller's promise).
            if let Some(m) = unsafe { mapped.as_mut() } {
                *m = bytes;
            }
        };
        report(0);
        let prot =
            Prot::from_bits(prot).ok_or_else(|| Errno::INVAL.because("unknown prot bits"))?;
        match pt.map_pages(iova, paddr, pgsize, pgcount, prot) {
            Ok(bytes) => {
                report(bytes);
                Ok(0)
            }
            Err(e) => {
                report(e.mapped());
                Err(Errno::from(&e))
            }
        }
    })
}

/// Maps `[iova, iova + len)` to `paddr` with the largest page sizes that fit; all or
/// nothing. `len == 0` maps nothing and returns 0. Errors as `iommu_pt_map_pages`
/// (with `iova`, `paddr` and `len` granule aligned); on error nothing was mapped.
///
/// # Safety
/// `pt` must be NULL or a live table.
///
/// Thread safety: concurrent with readers anywhere and mutators of disjoint ranges.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iommu_pt_map(
    pt: *mut iommu_pt,
    iova: u64,
    paddr: u64,
    len: u64,
    prot: u32,
) -> c_int {
    boundary(|| {
        // SAFETY: the caller passes NULL or a live table (used through `&`).
        let pt = unsafe { obj(pt) }?;
        let prot =
            Prot::from_bits(prot).ok_or_else(|| Errno::INVAL.because("unknown prot bits"))?;
        pt.map(iova, paddr, len, prot)?;
        Ok(0)
    })
}

/// Maps a scatter-gather list: the `nents` pieces of `sg` one after another in IOVA
/// space from `iova` (piece `i` at `iova` plus the lengths of the pieces before it), each
/// with the largest page sizes that fit, as `iommu_pt_map` does, under one epoch pin and
/// one call (Linux's `iommu_map_sg`). All or nothing: on error nothing stays mapped.
/// Writes the bytes mapped to `*mapped` (may be NULL): the total on success, 0 on error.
///
/// Returns 0; errors as `iommu_pt_map` (each piece's `paddr` and `len` granule
/// aligned), `-EINVAL` for a NULL `sg` with `nents > 0`.
///
/// # Safety
/// `pt` must be NULL or a live table; `sg` NULL or `nents` readable pieces; `mapped`
/// NULL or writable.
///
/// Thread safety: concurrent with readers anywhere and mutators of disjoint ranges.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iommu_pt_map_sg(
    pt: *mut iommu_pt,
    iova: u64,
    sg: *const iommu_pt_sg,
    nents: usize,
    prot: u32,
    mapped: *mut u64,
) -> c_int {
    boundary(|| {
        // SAFETY: `mapped` is NULL or writable (caller's promise).
        if let Some(m) = unsafe { mapped.as_mut() } {
            *m = 0;
        }
        // SAFETY: the caller passes NULL or a live table (used through `&`).
        let pt = unsafe { obj(pt) }?;
        let prot =
            Prot::from_bits(prot).ok_or_else(|| Errno::INVAL.because("unknown prot bits"))?;
        let pieces = match nents {
            0 => &[][..],
            // SAFETY: `sg` holds `nents` readable pieces (caller's promise), checked
            // non-NULL here.
            n => unsafe { std::slice::from_raw_parts(obj(sg)?, n) },
        };
        let bytes = pt.map_sg(iova, pieces, prot)?;
        // SAFETY: as above.
        if let Some(m) = unsafe { mapped.as_mut() } {
            *m = bytes;
        }
        Ok(0)
    })
}

/// Unmaps `pgcount` pages of `pgsize` from `iova`; returns the bytes unmapped.
///
/// No splitting: a start inside a larger leaf or a hole at the start unmaps nothing (0);
/// an end inside a larger leaf removes it whole; the unmap stops at the first hole. Bad
/// arguments (NULL table, size not in the bitmap, misaligned `iova`, beyond the input
/// size) return 0 and change nothing. Tables whose whole span was unmapped go to
/// `gather` (given back after `iommu_pt_gather_release`); with a NULL `gather` they are
/// retired at once (freed when no reader can hold them), after one `flush_walk` of the
/// unmapped range when the table has flush ops.
///
/// # Safety
/// `pt` must be NULL or a live table; `gather` NULL or a live gather this thread owns.
///
/// Thread safety: concurrent with readers anywhere and mutators of disjoint ranges.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iommu_pt_unmap_pages(
    pt: *mut iommu_pt,
    iova: u64,
    pgsize: u64,
    pgcount: u64,
    gather: *mut iommu_pt_gather,
) -> u64 {
    boundary(|| {
        // SAFETY: the caller passes NULL or a live table (used through `&`).
        let pt = unsafe { obj(pt) }?;
        // SAFETY: the caller passes NULL or a live gather it owns.
        let gather = unsafe { gather.as_mut() }.map(|g| &mut g.gather);
        Ok(pt.unmap_pages(iova, pgsize, pgcount, gather)?)
    })
}

/// Unmaps `[iova, iova + len)` whatever the page sizes; returns the bytes unmapped.
/// Rules as `iommu_pt_unmap_pages`; a misaligned `iova` or a `len` that is not a
/// multiple of the granule returns 0.
///
/// # Safety
/// `pt` must be NULL or a live table; `gather` NULL or a live gather this thread owns.
///
/// Thread safety: concurrent with readers anywhere and mutators of disjoint ranges.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iommu_pt_unmap(
    pt: *mut iommu_pt,
    iova: u64,
    len: u64,
    gather: *mut iommu_pt_gather,
) -> u64 {
    boundary(|| {
        // SAFETY: the caller passes NULL or a live table (used through `&`).
        let pt = unsafe { obj(pt) }?;
        // SAFETY: the caller passes NULL or a live gather it owns.
        let gather = unsafe { gather.as_mut() }.map(|g| &mut g.gather);
        Ok(pt.unmap(iova, len, gather)?)
    })
}

/// The output address of `iova` (with its offset in the page), or 0 if it is not mapped
/// (or `pt` is NULL).
///
/// 0 is also the answer for an IOVA mapped to physical address 0: where that can
/// happen, call `iommu_pt_translate`, which returns 0 for any mapping (with `paddr`
/// 0 for that one) and `-ENOENT` when nothing is mapped. This call stays the cheapest
/// lookup and sets no error detail.
///
/// # Safety
/// `pt` must be NULL or a live table.
///
/// Thread safety: may run concurrently with any call but `iommu_pt_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iommu_pt_iova_to_phys(pt: *const iommu_pt, iova: u64) -> u64 {
    boundary(|| {
        // SAFETY: the caller passes NULL or a live table.
        let pt = unsafe { obj(pt) }?;
        Ok(pt.iova_to_phys(iova).unwrap_or(0))
    })
}

/// Writes the leaf covering `iova` to `*out` (`iova` = the queried IOVA, `paddr` its
/// output address). Returns 0; `-ENOENT` if unmapped; `-ERANGE` beyond the input size;
/// `-EINVAL` for a NULL argument.
///
/// # Safety
/// `pt` must be NULL or a live table; `out` NULL or writable.
///
/// Thread safety: may run concurrently with any call but `iommu_pt_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iommu_pt_translate(
    pt: *const iommu_pt,
    iova: u64,
    out: *mut iommu_pt_translation,
) -> c_int {
    boundary(|| {
        // SAFETY: the caller passes NULL or a live table.
        let pt = unsafe { obj(pt) }?;
        let out = self::out(out)?;
        let t = pt.translate(iova)?;
        // SAFETY: `out` is non-NULL and writable (caller's promise).
        unsafe { out.write(t) };
        Ok(0)
    })
}

/// Calls `fn(arg, leaf)` for each leaf intersecting `[iova, iova + len)` in ascending
/// IOVA order; `len == 0` means to the end of the input address space. A non-zero
/// return from `fn` stops the walk and is returned. Returns 0 when the walk completes;
/// `-ERANGE` if the range goes beyond the input size; `-EINVAL` for a NULL `pt` or `fn`.
///
/// # Safety
/// `pt` must be NULL or a live table; `fn` NULL or a function safe to call with `arg`.
///
/// `fn` runs on the calling thread, under the table's epoch pin (so it may call any
/// function of this table, but should not block for long: it delays reclamation).
///
/// Thread safety: may run concurrently with any call but `iommu_pt_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iommu_pt_walk(
    pt: *const iommu_pt,
    iova: u64,
    len: u64,
    r#fn: iommu_pt_leaf_fn,
    arg: *mut c_void,
) -> c_int {
    boundary(|| {
        // SAFETY: the caller passes NULL or a live table.
        let pt = unsafe { obj(pt) }?;
        let f = r#fn.ok_or_else(|| Errno::INVAL.because("a NULL walk callback"))?;
        let stopped = pt.walk(iova, len, |leaf| {
            // SAFETY: the caller promises `fn` may be called with `arg`; `leaf` lives
            // for the call.
            match unsafe { f(arg, leaf) } {
                0 => ControlFlow::Continue(()),
                rc => ControlFlow::Break(rc),
            }
        })?;
        Ok(stopped.unwrap_or(0))
    })
}

/// Writes the debugfs-style text dump of the table to the file descriptor `fd` (a
/// header naming the levels, then one line per leaf with its IOVA and the raw entry at
/// every level). Returns 0, `-errno` from `write`, or `-EINVAL` for a NULL `pt`.
///
/// # Safety
/// `pt` must be NULL or a live table.
///
/// A dump concurrent with mutators shows each entry either before or after its change.
///
/// Thread safety: may run concurrently with any call but `iommu_pt_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iommu_pt_dump(pt: *const iommu_pt, fd: c_int) -> c_int {
    boundary(|| {
        // SAFETY: the caller passes NULL or a live table.
        let pt = unsafe { obj(pt) }?;
        let mut w = BufWriter::with_capacity(16 << 10, FdWriter(fd));
        let written = pt.dump(&mut w).and_then(|()| w.flush());
        // After an error, drop what is buffered rather than write it again on drop.
        let _ = w.into_parts();
        written.map_err(|e| Errno(e.raw_os_error().unwrap_or(libc::EIO)))?;
        Ok(0)
    })
}
