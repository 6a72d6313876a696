//! Dirty tracking in the simulation (`--dirty`): the live-migration pass.
//!
//! With tracking on, the devices write every page of their writable buffers, and the
//! first again for the completion status ([`PageTable::mark_dirty`], the hardware's
//! atomic update; a write that finds its leaf clean counts the leaf's pages dirtied), a
//! migration thread reads and clears the dirty state of the queues' IOVA window pass
//! after pass, and every unmap first harvests its buffer's dirty state, as VFIO's unmap
//! with a dirty bitmap does (a write to a buffer unmapped before a pass reached it is
//! otherwise lost). At
//! the end the pages the writes made dirty must equal the pages reported: each dirty
//! period of a leaf ends in exactly one clear, and that clear reports the leaf's pages.
//!
//! The lock-free design needs no exclusion between the passes and the queues: a clear
//! is one compare-exchange from the value read, and a page is reported only by the clear
//! that made it clean, so a pass overlapping an unmap's harvest, or an unmap, never
//! reports a write twice nor loses one. In the locked design the migration thread takes
//! the domain's lock shared for a whole pass, like the dumper (the queues' maps and
//! unmaps hold it exclusively).
//!
//! The device's writes need no exclusion: they are the hardware's atomic updates, which
//! the core's clear never loses.

use crate::latency;
use crate::workload::Shared;
use hdrhistogram::Histogram;
use pgtable_core::{DirtyFlags, Format, HostMemory, Iova, PageTable};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// The migration window spans this many times the bytes all queues keep mapped
/// together: the allocator hands out IOVAs from its limit down, and its caches and
/// fragmentation spread the live buffers over more than their total. Buffers outside
/// the window are still reported, by their unmap's harvest.
const WINDOW_SPANS: u64 = 4;

/// The IOVA range a migration pass reads and clears, in chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirtyWindow {
    /// First IOVA (a multiple of `chunk`).
    pub start: u64,
    /// One past the last IOVA.
    pub end: u64,
    /// Bytes one `read_and_clear_dirty` call covers (a power of two).
    pub chunk: u64,
}

impl DirtyWindow {
    /// The window of queues that allocate below `end` (one past the allocator's
    /// limit) and keep `total_span` bytes mapped together: the top
    /// `WINDOW_SPANS × total_span` bytes, widened down to a multiple of `chunk` and
    /// clipped at 0.
    ///
    /// `chunk` must be a power of two that no leaf crosses: with a table span, no
    /// buffer of the workload is larger and each is aligned to its size, so no leaf
    /// is. A clear reports only the pages of its range but cleans the whole leaf, so a
    /// leaf split between two chunks would lose the pages of the second.
    pub fn new(end: u64, total_span: u64, chunk: u64) -> Self {
        debug_assert!(chunk.is_power_of_two());
        let start = end.saturating_sub(total_span.saturating_mul(WINDOW_SPANS)) & !(chunk - 1);
        DirtyWindow { start, end, chunk }
    }

    /// Bytes in the window.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// The chunks, as (first IOVA, bytes); the last one ends at `end`.
    pub fn chunks(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let chunk = self.chunk;
        let end = self.end;
        std::iter::successors(Some(self.start), move |&c| {
            c.checked_add(chunk).filter(|&n| n < end)
        })
        .filter(move |&c| c < end)
        .map(move |c| (c, chunk.min(end - c)))
    }
}

/// What the migration thread counts.
#[derive(Debug, Default)]
pub struct MigrationCounters {
    /// Whole passes over the window completed.
    pub passes: AtomicU64,
    /// Pages the passes reported, the incomplete last one included.
    pub reported: AtomicU64,
    /// IOTLB invalidations the passes issued (one per pass that found a dirty page).
    pub invalidations: AtomicU64,
    /// Bytes those invalidations covered: from each pass's first dirty page to the end
    /// of its last, as a gather would collect them.
    pub invalidated: AtomicU64,
}

/// What the queues and the migration thread share when dirty tracking is on.
#[derive(Debug)]
pub struct Tracking {
    /// What a pass covers.
    pub window: DirtyWindow,
    /// Granule-sized pages, one bit each.
    pub page_size: u64,
    /// The migration thread's counts.
    pub counters: MigrationCounters,
}

impl Tracking {
    /// Bitmap words a range of `bytes` needs.
    pub fn words(&self, bytes: u64) -> usize {
        (bytes / self.page_size).div_ceil(64) as usize
    }
}

/// Reads and clears the dirty state of `[start, start + len)` into `bitmap` (one bit
/// per `page_size`, cleared first) and returns the pages reported.
///
/// # Errors
/// What [`PageTable::read_and_clear_dirty`] returns.
pub fn read_and_clear<F: Format>(
    pt: &PageTable<F, HostMemory>,
    start: u64,
    len: u64,
    page_size: u64,
    bitmap: &mut [u64],
) -> pgtable_core::Result<u64> {
    read_dirty(pt, start, len, page_size, bitmap, DirtyFlags::empty())
}

/// [`read_and_clear`] with `flags`.
fn read_dirty<F: Format>(
    pt: &PageTable<F, HostMemory>,
    start: u64,
    len: u64,
    page_size: u64,
    bitmap: &mut [u64],
    flags: DirtyFlags,
) -> pgtable_core::Result<u64> {
    let words = (len / page_size).div_ceil(64) as usize;
    let bitmap = &mut bitmap[..words];
    bitmap.fill(0);
    pt.read_and_clear_dirty(Iova(start), len, page_size, bitmap, flags)?;
    Ok(bitmap.iter().map(|w| u64::from(w.count_ones())).sum())
}

/// The first and one-past-last set bit of `bitmap`, if any.
fn set_span(bitmap: &[u64]) -> Option<(u64, u64)> {
    let first = bitmap.iter().position(|&w| w != 0)?;
    let last = bitmap.iter().rposition(|&w| w != 0)?;
    Some((
        first as u64 * 64 + u64::from(bitmap[first].trailing_zeros()),
        last as u64 * 64 + 64 - u64::from(bitmap[last].leading_zeros()),
    ))
}

/// One pass over the window: each chunk read and cleared, then one
/// "invalidation" of the IOTLB over what was dirty (a counted no-op, as the queues'
/// gather ranges are: the emulated hardware caches nothing). Stops early when `stop`
/// is set; returns whether it covered the whole window. Every page it reports is
/// counted, whether the pass completes or not: it was cleared.
pub fn pass<F: Format>(
    sh: &Shared<'_, F>,
    tr: &Tracking,
    bitmap: &mut [u64],
    stop: Option<&AtomicBool>,
) -> bool {
    let pt = &sh.dom.pt;
    let mut gathered: Option<(u64, u64)> = None;
    let mut complete = true;
    for (start, len) in tr.window.chunks() {
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            complete = false;
            break;
        }
        let reported = read_and_clear(pt, start, len, tr.page_size, bitmap);
        let span = set_span(&bitmap[..tr.words(len)]);
        match reported {
            Ok(n) => {
                tr.counters.reported.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => sh
                .errors
                .report(|| format!("read_and_clear_dirty {start:#x}+{len:#x}: {e}")),
        }
        if let Some((a, b)) = span {
            let (a, b) = (start + a * tr.page_size, start + b * tr.page_size);
            gathered = Some(gathered.map_or((a, b), |(lo, _)| (lo, b)));
        }
    }
    // The IOTLB invalidation a driver issues before it trusts the next pass goes here:
    // until then the IOTLB may hold a translation that says the page is dirty already.
    if let Some((lo, hi)) = gathered {
        tr.counters.invalidations.fetch_add(1, Ordering::Relaxed);
        tr.counters
            .invalidated
            .fetch_add(hi - lo, Ordering::Relaxed);
    }
    complete
}

/// The migration thread: passes over the window until `stop`, taking the domain's
/// lock shared for each whole pass in the locked design. Returns the times of its
/// complete passes.
pub fn migration_thread<F: Format>(sh: &Shared<'_, F>, tr: &Tracking) -> Histogram<u64> {
    let mut passes = latency::histogram();
    let mut bitmap = vec![0u64; tr.words(tr.window.chunk)];
    while !sh.stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        let complete = {
            let _r = sh.dom.reader();
            pass(sh, tr, &mut bitmap, Some(sh.stop))
        };
        if complete {
            passes.saturating_record(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
            tr.counters.passes.fetch_add(1, Ordering::Relaxed);
        }
    }
    passes
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 1 << 20;

    #[test]
    fn the_window_is_four_total_spans_below_the_limit_in_whole_chunks() {
        // 48-bit space, 2 queues of 16M: 128M below the top, in 2M chunks.
        let end = 1u64 << 48;
        let w = DirtyWindow::new(end, 32 * M, 2 * M);
        assert_eq!((w.start, w.end, w.len()), (end - 128 * M, end, 128 * M));
        assert_eq!(w.chunks().count(), 64);
        assert_eq!(w.chunks().next(), Some((end - 128 * M, 2 * M)));
        assert_eq!(w.chunks().last(), Some((end - 2 * M, 2 * M)));
        // 3 queues of 2M with 512M chunks (64K granule): 24M widens to one chunk.
        let w = DirtyWindow::new(1 << 42, 6 * M, 512 * M);
        assert_eq!((w.start, w.len()), ((1 << 42) - 512 * M, 512 * M));
        assert_eq!(w.chunks().collect::<Vec<_>>(), [(w.start, 512 * M)]);
        // A total span of no power of two: still four of them, in whole chunks.
        let w = DirtyWindow::new(1 << 32, 5 * M, 2 * M);
        assert_eq!(w.start, (1 << 32) - 20 * M);
        // Four total spans that are no whole chunk widen to the chunk below them.
        let w = DirtyWindow::new(1 << 32, 3 * M, 8 * M);
        assert_eq!(w.start, (1 << 32) - 16 * M);
    }

    #[test]
    fn the_window_clips_at_zero_and_the_last_chunk_at_the_end() {
        // More than the whole space: from 0.
        let w = DirtyWindow::new(1 << 32, 1 << 31, 2 * M);
        assert_eq!((w.start, w.end), (0, 1 << 32));
        assert_eq!(w.chunks().count(), 2048);
        // An end that is no multiple of the chunk: the last chunk is short.
        let w = DirtyWindow::new(10 * M, 1 << 40, 4 * M);
        assert_eq!(
            w.chunks().collect::<Vec<_>>(),
            [(0, 4 * M), (4 * M, 4 * M), (8 * M, 2 * M)]
        );
        // The top of a 64-bit space does not overflow.
        let w = DirtyWindow::new(!(4 * M - 1), 4 * M, 4 * M);
        assert_eq!(w.chunks().count(), 4);
    }

    #[test]
    fn set_spans_cover_first_to_last_bit() {
        assert_eq!(set_span(&[0, 0]), None);
        assert_eq!(set_span(&[1 << 3, 0]), Some((3, 4)));
        assert_eq!(set_span(&[0, 1 << 63]), Some((127, 128)));
        assert_eq!(set_span(&[1 << 5, 0, 0b110]), Some((5, 131)));
    }

    #[test]
    fn bitmap_words_round_up() {
        let tr = Tracking {
            window: DirtyWindow::new(1 << 48, 16 * M, 2 * M),
            page_size: 4096,
            counters: MigrationCounters::default(),
        };
        assert_eq!(tr.words(2 * M), 8);
        assert_eq!(tr.words(4096), 1);
        assert_eq!(tr.words(65 * 4096), 2);
    }
}
