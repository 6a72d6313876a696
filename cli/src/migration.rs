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
//! A dirty clear is a mutator of its range (DESIGN.md "Concurrency contract", rule 1),
//! and a migration pass covers every queue's buffers, so it must not overlap their maps
//! and unmaps. The core reports a leaf from its load, before the atomic clear, so two
//! clears of one dirty leaf racing each other both report it (without exclusion, runs
//! of a few seconds report a few pages twice on every format); and on Arm stage 1 a
//! clear (setting `AP[2]`) landing on an entry an unmap just zeroed leaves a stray bit
//! behind. iommufd serialises the two with `iova_rwsem`; here:
//! - lock-free design: [`Claims`], a range lock at chunk granularity. No buffer crosses
//!   a chunk, so a queue claims the one chunk of its map, or of its harvest and unmap,
//!   and the migration thread claims the chunk it clears; each claim is one store to
//!   the claimer's own cache line, and a queue waits only when its buffer is in the
//!   chunk being cleared at that moment. The thread first reads each chunk with
//!   `NO_CLEAR`, unclaimed (it writes no entry, so it is a reader, like `walk`), and
//!   claims only the chunks with something to clear. Claiming every chunk kept a claim
//!   held nearly all the time the thread ran; on a machine with fewer free CPUs than
//!   threads, each preemption of it then stalled any queue that needed its chunk for a
//!   scheduler slice: 2 s runs lost 1.4 s that way, and half their maps.
//!   (Per-queue mutexes that the migration thread took all of, chunk after chunk, were
//!   worse still: every queue waited behind every chunk.)
//! - locked design: the queues' maps and unmaps already hold the domain's lock
//!   exclusively; the migration thread takes it shared for a whole pass, like the
//!   dumper.
//!
//! The device's writes need no exclusion: they are the hardware's atomic updates, which
//! the core's clear never loses.

use crate::latency;
use crate::workload::Shared;
use hdrhistogram::Histogram;
use pgtable_core::{DirtyFlags, Format, HostMemory, Iova, PageTable};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
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

/// No chunk: chunks start at multiples of a power of two, which `u64::MAX` is not.
const IDLE: u64 = u64::MAX;

/// A claim, on a cache line pair of its own so that claiming costs no other thread a
/// miss.
#[derive(Debug)]
#[repr(align(128))]
struct Slot(AtomicU64);

impl Default for Slot {
    fn default() -> Self {
        Slot(AtomicU64::new(IDLE))
    }
}

/// Spins a little, then yields, until `busy` is false: the other side holds a claim for
/// one map, unmap or chunk clear, and on a machine with fewer CPUs than threads it may
/// need this one's CPU to finish.
fn wait_while(busy: impl Fn() -> bool) {
    let mut spins = 0u32;
    while busy() {
        if spins < 64 {
            spins += 1;
            std::hint::spin_loop();
        } else {
            thread::yield_now();
        }
    }
}

/// The lock-free design's exclusion between the migration thread's clears and the
/// queues' maps and unmaps, at chunk granularity (see the module docs).
///
/// Each side stores its claim, then loads the other's (all `SeqCst`, so of two
/// claimers at least one sees the other: Dekker's handshake). A queue that sees its
/// chunk being cleared withdraws and waits until the clear moves on; the migration
/// thread never withdraws, it waits until no queue holds its chunk. Only the queues
/// give way, so neither side can wait for the other forever.
#[derive(Debug)]
pub struct Claims {
    /// The chunk the migration thread is clearing, or [`IDLE`].
    clearing: Slot,
    /// Per queue: the chunk of its map or unmap in progress, or [`IDLE`].
    queues: Vec<Slot>,
    /// The chunk size, a power of two.
    chunk: u64,
}

/// Queue `i`'s claim on a chunk; withdrawn when dropped.
#[derive(Debug)]
pub struct Claim<'a>(&'a AtomicU64);

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        // Release: the migration thread's SeqCst load that sees it also sees every
        // entry the map or unmap wrote.
        self.0.store(IDLE, Ordering::Release);
    }
}

impl Claims {
    /// Claims for `queues` queues over chunks of `chunk` bytes.
    pub fn new(queues: usize, chunk: u64) -> Self {
        debug_assert!(chunk.is_power_of_two());
        Claims {
            clearing: Slot::default(),
            queues: (0..queues).map(|_| Slot::default()).collect(),
            chunk,
        }
    }

    /// What queue `i` holds around a map of `[iova, iova + len)`, and around its
    /// harvest and unmap: a claim on its chunk, once no clear of it is in progress.
    /// `None` (no claim needed nor taken) when the range crosses a chunk, which no
    /// buffer of the workload does; the caller reports it.
    pub fn queue(&self, i: usize, iova: u64, len: u64) -> Option<Claim<'_>> {
        let c = iova & !(self.chunk - 1);
        if (iova + len - 1) & !(self.chunk - 1) != c {
            return None;
        }
        let mine = &self.queues[i].0;
        loop {
            mine.store(c, Ordering::SeqCst);
            if self.clearing.0.load(Ordering::SeqCst) != c {
                return Some(Claim(mine));
            }
            mine.store(IDLE, Ordering::SeqCst);
            wait_while(|| self.clearing.0.load(Ordering::Acquire) == c);
        }
    }

    /// Runs `f`, the clear of the chunk at `c`, once no queue maps or unmaps in it, and
    /// keeps them out until it returns.
    fn clearing<T>(&self, c: u64, f: impl FnOnce() -> T) -> T {
        self.clearing.0.store(c, Ordering::SeqCst);
        for q in &self.queues {
            wait_while(|| q.0.load(Ordering::SeqCst) == c);
        }
        let out = f();
        self.clearing.0.store(IDLE, Ordering::Release);
        out
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
    /// The chunk claims in the lock-free design; `None` in the locked one, whose
    /// domain lock already keeps the passes off the maps and unmaps.
    pub claims: Option<Claims>,
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

/// [`read_and_clear`] with `flags`: with [`DirtyFlags::NO_CLEAR`], only reads.
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

/// One pass over the window: each chunk read and cleared (in the lock-free design,
/// read first and, if anything is dirty, cleared under its claim), then one
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
        let reported = match &tr.claims {
            Some(claims) => {
                // A page dirtied after this read waits for the next pass or its
                // unmap's harvest; an error shows again in the clear.
                let seen = read_dirty(pt, start, len, tr.page_size, bitmap, DirtyFlags::NO_CLEAR);
                if matches!(seen, Ok(0)) {
                    continue;
                }
                claims.clearing(start, || {
                    read_and_clear(pt, start, len, tr.page_size, bitmap)
                })
            }
            None => read_and_clear(pt, start, len, tr.page_size, bitmap),
        };
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
/// lock shared for each whole pass in the locked design (claiming each chunk in the
/// lock-free one). Returns the times of its complete passes.
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
    fn a_queue_claims_the_chunk_of_its_buffer_only() {
        let c = Claims::new(2, 2 * M);
        let claim = c.queue(1, 6 * M + 4096, 8192).expect("within one chunk");
        assert_eq!(c.queues[1].0.load(Ordering::Relaxed), 6 * M);
        assert_eq!(c.queues[0].0.load(Ordering::Relaxed), IDLE);
        drop(claim);
        assert_eq!(c.queues[1].0.load(Ordering::Relaxed), IDLE);
        // A whole chunk is one claim; a range across two is refused.
        assert!(c.queue(0, 2 * M, 2 * M).is_some());
        assert!(c.queue(0, 2 * M - 4096, 8192).is_none());
        assert_eq!(c.queues[0].0.load(Ordering::Relaxed), IDLE);
    }

    #[test]
    fn a_clear_waits_for_the_queue_in_its_chunk_and_the_queue_for_the_clear() {
        use std::sync::Barrier;
        let c = Claims::new(1, 2 * M);
        // Another chunk's claim does not hold a clear back.
        let other = c.queue(0, 4 * M, 4096).unwrap();
        assert_eq!(c.clearing(0, || 7), 7);
        drop(other);
        let held = Barrier::new(2);
        let order = std::sync::Mutex::new(Vec::new());
        thread::scope(|s| {
            let claim = c.queue(0, 0, 4096).unwrap();
            s.spawn(|| {
                held.wait();
                c.clearing(0, || order.lock().unwrap().push("clear"));
            });
            held.wait();
            // The clear has stored its claim and waits for this one, or is about to.
            thread::sleep(std::time::Duration::from_millis(20));
            order.lock().unwrap().push("unmap");
            drop(claim);
        });
        assert_eq!(*order.lock().unwrap(), ["unmap", "clear"]);
        // And a queue waits for a clear in progress.
        let order = std::sync::Mutex::new(Vec::new());
        let started = Barrier::new(2);
        thread::scope(|s| {
            s.spawn(|| {
                c.clearing(0, || {
                    started.wait();
                    thread::sleep(std::time::Duration::from_millis(20));
                    order.lock().unwrap().push("clear");
                });
            });
            started.wait();
            let _claim = c.queue(0, 4096, 4096).unwrap();
            order.lock().unwrap().push("map");
        });
        assert_eq!(*order.lock().unwrap(), ["clear", "map"]);
    }

    #[test]
    fn bitmap_words_round_up() {
        let tr = Tracking {
            window: DirtyWindow::new(1 << 48, 16 * M, 2 * M),
            page_size: 4096,
            claims: None,
            counters: MigrationCounters::default(),
        };
        assert_eq!(tr.words(2 * M), 8);
        assert_eq!(tr.words(4096), 1);
        assert_eq!(tr.words(65 * 4096), 2);
    }
}
