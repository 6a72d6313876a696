//! The simulated device: what one DMA queue and the debugfs reader do in a loop, and
//! the rule that says which translations are legitimate.
//!
//! A queue is a ring of DMA buffers: it allocates an IOVA range, maps a buffer there and
//! has the device translate every page of it, and keeps it mapped until its buffers in
//! flight would exceed its IOVA span; then it unmaps the oldest, invalidates the
//! gathered range, releases the gather and frees the IOVA range. So each queue keeps
//! about `span` bytes mapped, and `--span` sets how large the table grows.
//!
//! Every mapping follows one relation, [`DmaPlan::pa_of`]: the buffer byte at IOVA `i`
//! lives at physical address `(i mod 2^(oas-1)) + 2^(oas-2) + 1 MiB`. So whoever reads
//! the table (the device translating its own buffer, or the dumper seeing anyone's) can
//! tell a real translation from a torn, stale or freed one without knowing who mapped
//! what. The relation keeps every naturally aligned buffer physically contiguous, and
//! the 1 MiB offset keeps table-sized buffers off block alignment, so they are mapped
//! page by page and fill a whole last-level table, which their unmap then frees.
//!
//! With `--dirty` (see [`crate::migration`]), the device also writes every page of a
//! buffer it may write, then its first page again (the completion status), and each
//! unmap first harvests the buffer's dirty state.

use crate::domain::Domain;
use crate::latency::{self, Call, CallTimes};
use crate::migration::{Tracking, read_and_clear};
use crate::schedstat::ThreadCpu;
use hdrhistogram::Histogram;
use pgtable_core::{Format, Gather, Prot, Translation};
use pgtable_core::{Iova, PhysAddr};
use std::collections::VecDeque;
use std::io;
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// The physical misalignment of table-sized buffers (see the module docs).
const PA_SKEW: u64 = 1 << 20;

/// The smallest output size the relation works with: a table-sized buffer (up to
/// 512 MiB with the 64K granule) must fit in `2^(oas-1)`.
pub const MIN_OAS: u32 = 32;

/// The buffer sizes a queue maps, in bytes, with their weights (out of 100): mostly
/// small packets and descriptors, some large block I/O.
const SIZE_MIX: [(u64, u64); 7] = [
    (4 << 10, 40),
    (8 << 10, 10),
    (16 << 10, 10),
    (32 << 10, 10),
    (64 << 10, 15),
    (128 << 10, 10),
    (256 << 10, 5),
];

/// DMA directions, as permissions: to the device (it reads), from the device (it
/// writes), bidirectional; all coherent.
const PROT_MIX: [Prot; 3] = [
    Prot::READ.union(Prot::CACHE),
    Prot::WRITE.union(Prot::CACHE),
    Prot::RW.union(Prot::CACHE),
];

/// The shape of the workload for one table.
#[derive(Debug, Clone, Copy)]
pub struct DmaPlan {
    granule_shift: u32,
    /// `2^(oas-1) - 1`.
    low_mask: u64,
    /// `2^(oas-2) + PA_SKEW`.
    pa_base: u64,
    /// Bytes one last-level table maps: the size of the big buffers, the largest.
    pub table_span: u64,
    /// One cycle in this many maps a table-sized buffer.
    big_every: u64,
    /// Last IOVA pfn a queue may allocate.
    pub limit_pfn: u64,
    /// Bytes of IOVA space each queue keeps mapped at most.
    pub span: u64,
    /// One past the last usable IOVA.
    iova_end: u64,
    /// What each entry of [`PROT_MIX`] becomes in this format.
    effective: [Prot; 3],
}

impl DmaPlan {
    /// The plan for a table of format `fmt`, whose `oas` is at least [`MIN_OAS`], with
    /// queues keeping `span` bytes mapped (at least one table span).
    pub fn new<F: Format>(fmt: &F, span: u64) -> Self {
        let geo = fmt.geometry();
        debug_assert!((MIN_OAS..64).contains(&geo.oas));
        let iova_end = 1u64 << geo.va_bits;
        let table_span = geo.entry_span(1);
        DmaPlan {
            granule_shift: geo.granule_shift,
            low_mask: (1u64 << (geo.oas - 1)) - 1,
            pa_base: (1u64 << (geo.oas - 2)) + PA_SKEW,
            table_span,
            // About 8 extra page translations per cycle on average, whatever the granule.
            big_every: (geo.entries(0) as u64 / 8).max(1),
            limit_pfn: (iova_end >> geo.granule_shift) - 1,
            span: span.max(table_span),
            iova_end,
            effective: PROT_MIX.map(|p| fmt.effective_prot(p)),
        }
    }

    /// The physical address of the buffer byte at `iova`.
    #[inline(always)]
    pub fn pa_of(&self, iova: u64) -> u64 {
        (iova & self.low_mask) + self.pa_base
    }

    fn granule(&self) -> u64 {
        1 << self.granule_shift
    }

    /// Whether `t`, a leaf seen by a reader, is one some queue could have mapped: the
    /// relation holds, and it is a granule-sized page (no buffer is block aligned both
    /// in IOVA and physically) with one of the workload's permissions.
    fn legitimate(&self, t: &Translation) -> bool {
        t.pa.0 == self.pa_of(t.iova.0)
            && t.iova.0 < self.iova_end
            && t.size == self.granule()
            && self.effective.contains(&t.prot)
    }

    /// The next buffer size: mostly the mix, now and then a whole table span.
    fn pick_size(&self, rng: &mut SplitMix) -> u64 {
        if rng.next().is_multiple_of(self.big_every) {
            return self.table_span;
        }
        let mut r = rng.next() % 100;
        for (size, weight) in SIZE_MIX {
            if r < weight {
                return size.max(self.granule());
            }
            r -= weight;
        }
        self.granule()
    }
}

/// A small, fast, deterministic generator (SplitMix64): each queue gets its own seed.
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Counters one queue publishes for the progress display and the peak sampler; padded
/// to keep queues off each other's cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct QueueCounters {
    /// Buffers mapped.
    pub maps: AtomicU64,
    /// Buffers unmapped (each one IOTLB invalidation).
    pub unmaps: AtomicU64,
    /// Pages translated by the device.
    pub translations: AtomicU64,
    /// Bytes invalidated (the gathers' ranges).
    pub invalidated: AtomicU64,
    /// Table pages the unmaps unlinked, released through the gathers.
    pub tables_freed: AtomicU64,
    /// Bytes mapped now.
    pub in_flight: AtomicU64,
    /// Pages the unmaps' harvests reported (`--dirty`), for the rate while running.
    pub harvested: AtomicU64,
}

/// What the debugfs reader counted.
#[derive(Debug, Default)]
pub struct ReaderCounters {
    /// Whole-table passes (a dump and a check of every leaf) completed.
    pub passes: AtomicU64,
    /// Leaves checked.
    pub leaves: AtomicU64,
}

/// The largest table seen, sampled by the dumper after every pass and by the progress
/// display at every tick (both cheap: a few atomic loads).
#[derive(Debug, Default)]
pub struct Peaks {
    /// Most bytes mapped at once, all queues together.
    pub mapped: AtomicU64,
    /// Most table pages in the tree or waiting for reclamation.
    pub table_pages: AtomicU64,
}

impl Peaks {
    /// Takes one sample of `dom` and the queues' mapped bytes.
    pub fn sample<F: Format>(&self, dom: &Domain<F>, queues: &[QueueCounters]) {
        let mapped = queues
            .iter()
            .map(|q| q.in_flight.load(Ordering::Relaxed))
            .sum();
        self.mapped.fetch_max(mapped, Ordering::Relaxed);
        self.table_pages
            .fetch_max(dom.table_pages(), Ordering::Relaxed);
    }
}

/// Errors seen by any thread: a count and the first few messages.
#[derive(Debug, Default)]
pub struct ErrorLog {
    count: AtomicU64,
    first: Mutex<Vec<String>>,
}

/// Messages kept for the report.
const KEPT_ERRORS: usize = 8;

impl ErrorLog {
    /// Records an error.
    pub fn report(&self, msg: impl FnOnce() -> String) {
        if (self.count.fetch_add(1, Ordering::Relaxed) as usize) < KEPT_ERRORS {
            self.first
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(msg());
        }
    }

    /// Errors recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The first messages.
    pub fn messages(&self) -> Vec<String> {
        self.first.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What the queues and the reader share.
#[derive(Debug)]
pub struct Shared<'a, F: Format> {
    /// The domain: table, allocator, design.
    pub dom: &'a Domain<F>,
    /// The mapping rule.
    pub plan: DmaPlan,
    /// Set when time is up.
    pub stop: &'a AtomicBool,
    /// Where errors go.
    pub errors: &'a ErrorLog,
    /// Every queue's counters.
    pub queues: &'a [QueueCounters],
    /// The largest table seen.
    pub peaks: &'a Peaks,
    /// Dirty tracking, with `--dirty`.
    pub dirty: Option<&'a Tracking>,
}

/// A buffer a queue has mapped and not yet unmapped.
#[derive(Debug, Clone, Copy)]
struct Buffer {
    pfn: u64,
    len: u64,
}

/// What a queue counts locally and publishes after each buffer.
#[derive(Debug, Default)]
struct Tally {
    maps: u64,
    unmaps: u64,
    translations: u64,
    invalidated: u64,
    freed: u64,
    in_flight: u64,
    dirtied: u64,
    harvested: u64,
}

impl Tally {
    fn publish(&self, out: &QueueCounters) {
        out.maps.store(self.maps, Ordering::Relaxed);
        out.unmaps.store(self.unmaps, Ordering::Relaxed);
        out.translations.store(self.translations, Ordering::Relaxed);
        out.invalidated.store(self.invalidated, Ordering::Relaxed);
        out.tables_freed.store(self.freed, Ordering::Relaxed);
        out.in_flight.store(self.in_flight, Ordering::Relaxed);
        out.harvested.store(self.harvested, Ordering::Relaxed);
    }
}

/// What a device queue returns when it stops.
#[derive(Debug)]
pub struct QueueEnd {
    /// The times of its calls until `stop`.
    pub times: CallTimes,
    /// Where the kernel tells, the CPU time it got and how long it waited for a CPU
    /// until `stop`.
    pub cpu: Option<ThreadCpu>,
    /// Pages its writes made dirty (`--dirty`).
    pub dirtied: u64,
    /// Pages its unmaps' harvests reported, those of its teardown included.
    pub harvested: u64,
}

/// A queue's own state for [`retire`].
struct Queue {
    gather: Gather,
    tally: Tally,
    /// The harvest's bitmap: one bit per granule of the largest buffer.
    bitmap: Vec<u64>,
}

/// One device queue, a ring of DMA buffers: allocate an IOVA, map a buffer, translate
/// each page as the device would and check it (with `--dirty`, then write it if the
/// buffer is writable); once its buffers would exceed the span, unmap the oldest into a
/// gather (with `--dirty`, harvesting its dirty state first), "invalidate" the gathered
/// range, release the gather and free the IOVA; until `stop`. Then it unmaps what it
/// still has (untimed) and returns.
pub fn device_queue<F: Format>(sh: &Shared<'_, F>, seed: u64, out: &QueueCounters) -> QueueEnd {
    let cpu_at_start = ThreadCpu::now();
    let plan = &sh.plan;
    let dom = sh.dom;
    let granule = plan.granule();
    let mut rng = SplitMix(seed);
    let mut times = CallTimes::default();
    let mut ring = VecDeque::new();
    let mut q = Queue {
        gather: Gather::new(),
        tally: Tally::default(),
        bitmap: sh
            .dirty
            .map_or_else(Vec::new, |d| vec![0; d.words(plan.table_span)]),
    };
    while !sh.stop.load(Ordering::Relaxed) {
        let len = plan.pick_size(&mut rng);
        while q.tally.in_flight + len > plan.span {
            let Some(oldest) = ring.pop_front() else {
                break;
            };
            retire(sh, oldest, &mut q, &mut times);
        }
        let pages = len >> plan.granule_shift;
        let allocated = times.timed(Call::IovaAlloc, || {
            dom.iova.alloc_fast(pages, plan.limit_pfn, true)
        });
        let Some(pfn) = allocated else {
            sh.errors
                .report(|| format!("IOVA allocation of {len:#x} bytes failed"));
            continue;
        };
        let iova = pfn << plan.granule_shift;
        let pa = plan.pa_of(iova);
        let which = (rng.next() % PROT_MIX.len() as u64) as usize;
        // The pin is part of the map: it is where crossbeam may run deferred frees.
        let (s, mapped) = times.timed(Call::Map, || {
            let s = dom.pt.session();
            let r = {
                let _w = dom.writer();
                s.map(Iova(iova), PhysAddr(pa), len, PROT_MIX[which])
            };
            (s, r)
        });
        match mapped {
            Ok(n) if n == len => q.tally.maps += 1,
            r => sh
                .errors
                .report(|| format!("map {iova:#x}+{len:#x} -> {pa:#x}: {r:?}")),
        }
        let writes = sh.dirty.is_some() && PROT_MIX[which].contains(Prot::WRITE);
        for page in 0..pages {
            // A different offset in each page, as a device walking a buffer would.
            let at = iova + page * granule + ((page * 0x48 + which as u64 * 8) & (granule - 1));
            let t = times.timed(Call::Translate, || {
                let _r = dom.reader();
                s.translate(Iova(at))
            });
            let leaf = match t {
                Ok(t) if t.pa.0 == plan.pa_of(at) && t.prot == plan.effective[which] => t.size,
                r => {
                    sh.errors.report(|| {
                        format!(
                            "device translation of {at:#x} (expected {:#x}): {r:?}",
                            plan.pa_of(at)
                        )
                    });
                    continue;
                }
            };
            if writes {
                dma_write(sh, at, leaf, &mut q.tally, &mut times);
            }
        }
        if writes {
            // The completion status, written back into the buffer's first page after
            // the data: mostly into a leaf still dirty, which counts nothing, unless a
            // pass cleared it in between, when it counts (and is reported) again.
            dma_write(sh, iova, granule, &mut q.tally, &mut times);
        }
        drop(s);
        q.tally.translations += pages;
        q.tally.in_flight += len;
        ring.push_back(Buffer { pfn, len });
        q.tally.publish(out);
    }
    let cpu = cpu_at_start.and_then(|start| Some(ThreadCpu::now()?.since(start)));
    // Teardown, outside the measured time and counts (the tally is no longer
    // published): the table must end empty, and what the harvests report here still
    // counts towards the final check of dirty tracking.
    let mut untimed = CallTimes::default();
    while let Some(b) = ring.pop_front() {
        retire(sh, b, &mut q, &mut untimed);
    }
    QueueEnd {
        times,
        cpu,
        dirtied: q.tally.dirtied,
        harvested: q.tally.harvested,
    }
}

/// The device writes at `at` through a translation to a leaf of `leaf` bytes: the
/// hardware's atomic update of the leaf's dirty state. When locked it takes the shared
/// lock, as the translation does, which keeps the walk off freed tables there.
fn dma_write<F: Format>(
    sh: &Shared<'_, F>,
    at: u64,
    leaf: u64,
    tally: &mut Tally,
    times: &mut CallTimes,
) {
    let dom = sh.dom;
    let w = times.timed(Call::DmaWrite, || {
        let _r = dom.reader();
        dom.pt.mark_dirty(Iova(at))
    });
    match w {
        // This write made the leaf dirty: all its pages will be reported.
        Ok(true) => tally.dirtied += leaf >> sh.plan.granule_shift,
        // Already dirty: reported once, with the write that made it so.
        Ok(false) => {}
        Err(e) => sh
            .errors
            .report(|| format!("device write of {at:#x} (mark_dirty): {e}")),
    }
}

/// With `--dirty`, harvests the dirty state of `b`; unmaps it, checks and
/// "invalidates" what the gather collected, releases it, and frees the IOVA range.
fn retire<F: Format>(sh: &Shared<'_, F>, b: Buffer, q: &mut Queue, times: &mut CallTimes) {
    let plan = &sh.plan;
    let dom = sh.dom;
    let iova = b.pfn << plan.granule_shift;
    let len = b.len;
    let Queue {
        gather,
        tally,
        bitmap,
    } = q;
    let (harvested, unmapped, range, freed) = times.timed(Call::Unmap, || {
        let s = dom.pt.session();
        let (h, r) = {
            let _w = dom.writer();
            // Before the leaves go, their dirty state: over exactly this buffer, so
            // that a write no migration pass has reported yet is not lost with them
            // (VFIO's unmap with a dirty bitmap). A pass clearing it at the same time
            // reports each write once with it (the core's clear is exact).
            let h = sh
                .dirty
                .map(|d| read_and_clear(&dom.pt, iova, len, d.page_size, bitmap));
            (h, s.unmap(Iova(iova), len, gather))
        };
        drop(s);
        // The IOTLB invalidation a driver would issue for the gathered range goes here,
        // then the unlinked tables go to reclamation.
        let (range, freed) = (gather.range(), gather.freed_tables());
        gather.release();
        (h, r, range, freed)
    });
    match harvested {
        None => {}
        Some(Ok(n)) => tally.harvested += n,
        Some(Err(e)) => sh
            .errors
            .report(|| format!("dirty harvest of {iova:#x}+{len:#x}: {e}")),
    }
    match unmapped {
        Ok(n) if n == len => tally.unmaps += 1,
        r => sh
            .errors
            .report(|| format!("unmap {iova:#x}+{len:#x}: {r:?}")),
    }
    match range {
        Some(r) if *r.start() == Iova(iova) && *r.end() == Iova(iova + len - 1) => {
            tally.invalidated += len;
        }
        r => sh
            .errors
            .report(|| format!("gather of {iova:#x}+{len:#x} asks to invalidate {r:x?}")),
    }
    // One unmap removed every leaf of a table's span: the table must go with them.
    if len == plan.table_span && freed == 0 {
        sh.errors
            .report(|| format!("unmap of the whole table span {iova:#x}+{len:#x} freed no table"));
    }
    tally.freed += freed;
    tally.in_flight -= len;
    let pages = len >> plan.granule_shift;
    if let Err(e) = times.timed(Call::IovaFree, || dom.iova.free_fast(b.pfn, pages)) {
        sh.errors
            .report(|| format!("IOVA free of pfn {:#x}: {e}", b.pfn));
    }
}

/// A sink for the dump that fails as soon as `stop` is set, so that a pass over a huge
/// table does not outlast the run.
struct Until<'a>(&'a AtomicBool);

impl io::Write for Until<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0.load(Ordering::Relaxed) {
            return Err(io::Error::other("time is up"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The debugfs reader: dumps the whole table and checks every leaf it walks is a
/// legitimate translation, pass after pass until `stop`; in the locked design it holds
/// the lock for each whole pass. Returns the times of its complete passes.
pub fn debugfs_reader<F: Format>(sh: &Shared<'_, F>, out: &ReaderCounters) -> Histogram<u64> {
    let mut passes = latency::histogram();
    while !sh.stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        let mut leaves = 0;
        let complete = {
            let _r = sh.dom.reader();
            let dumped = sh.dom.pt.dump(&mut Until(sh.stop));
            if let Err(e) = &dumped
                && !sh.stop.load(Ordering::Relaxed)
            {
                sh.errors.report(|| format!("dump: {e}"));
            }
            let walked = sh.dom.pt.walk(.., |t| {
                if sh.stop.load(Ordering::Relaxed) {
                    return ControlFlow::Break(());
                }
                leaves += 1;
                if !sh.plan.legitimate(t) {
                    sh.errors.report(|| {
                        format!(
                            "the dumper saw a leaf no queue mapped: {t:x?} (expected pa {:#x})",
                            sh.plan.pa_of(t.iova.0)
                        )
                    });
                }
                ControlFlow::Continue(())
            });
            match walked {
                Ok(None) => dumped.is_ok(),
                Ok(Some(())) => false,
                Err(e) => {
                    sh.errors.report(|| format!("walk: {e}"));
                    false
                }
            }
        };
        if complete {
            passes.saturating_record(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
            out.passes.fetch_add(1, Ordering::Relaxed);
        }
        out.leaves.fetch_add(leaves, Ordering::Relaxed);
        sh.peaks.sample(sh.dom, sh.queues);
    }
    passes
}

/// Leaves still mapped (after every queue stopped, there must be none).
pub fn leaves_left<F: Format>(dom: &Domain<F>) -> u64 {
    let mut n = 0;
    let _ = dom.pt.walk(.., |_| {
        n += 1;
        ControlFlow::<()>::Continue(())
    });
    n
}
