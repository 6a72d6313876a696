//! The simulated device: what one DMA queue and the debugfs reader do in a loop, and
//! the rule that says which translations are legitimate.
//!
//! Every mapping follows one relation, [`DmaPlan::pa_of`]: the buffer byte at IOVA `i`
//! lives at physical address `(i mod 2^(oas-1)) + 2^(oas-2) + 1 MiB`. So whoever reads
//! the table (the device translating its own buffer, or the dumper seeing anyone's) can
//! tell a real translation from a torn, stale or freed one without knowing who mapped
//! what. The relation keeps every naturally aligned buffer physically contiguous, and
//! the 1 MiB offset keeps table-sized buffers off block alignment, so they are mapped
//! page by page and fill a whole last-level table, which their unmap then frees.

use iova_cache::IovaDomain;
use pgtable_core::{Format, Gather, HostMemory, PageTable, Prot, Translation};
use pgtable_core::{Iova, PhysAddr};
use std::io;
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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
    /// Bytes one last-level table maps: the size of the big buffers.
    table_span: u64,
    /// One cycle in this many maps a table-sized buffer.
    big_every: u64,
    /// Last IOVA pfn a queue may allocate.
    pub limit_pfn: u64,
    /// One past the last usable IOVA.
    iova_end: u64,
    /// What each entry of [`PROT_MIX`] becomes in this format.
    effective: [Prot; 3],
}

impl DmaPlan {
    /// The plan for a table of format `fmt`, whose `oas` is at least [`MIN_OAS`].
    pub fn new<F: Format>(fmt: &F) -> Self {
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
        if rng.next() % self.big_every == 0 {
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

/// Counters one queue publishes for the progress display; padded to keep queues off
/// each other's cache lines.
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
}

/// What the debugfs reader counted.
#[derive(Debug, Default)]
pub struct ReaderCounters {
    /// Whole-table dumps written.
    pub passes: AtomicU64,
    /// Leaves checked.
    pub leaves: AtomicU64,
    /// Most table pages seen allocated.
    pub peak_pages: AtomicU64,
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

/// What a queue and the reader share.
#[derive(Debug)]
pub struct Shared<'a, F: Format> {
    /// The domain's table.
    pub pt: &'a PageTable<F, HostMemory>,
    /// The domain's IOVA allocator.
    pub iova: &'a IovaDomain,
    /// The mapping rule.
    pub plan: DmaPlan,
    /// Set when time is up.
    pub stop: &'a AtomicBool,
    /// Where errors go.
    pub errors: &'a ErrorLog,
}

/// One device queue: allocate an IOVA, map the buffer, translate each page as the
/// device would and check it, unmap into a gather, "invalidate" the gathered range,
/// release the gather, free the IOVA; until `stop`.
pub fn device_queue<F: Format>(sh: &Shared<'_, F>, seed: u64, out: &QueueCounters) {
    let plan = &sh.plan;
    let granule = plan.granule();
    let mut rng = SplitMix(seed);
    let mut gather = Gather::new();
    let (mut maps, mut unmaps, mut translations, mut invalidated, mut freed) = (0, 0, 0, 0, 0);
    while !sh.stop.load(Ordering::Relaxed) {
        let len = plan.pick_size(&mut rng);
        let pages = len >> plan.granule_shift;
        let Some(pfn) = sh.iova.alloc_fast(pages, plan.limit_pfn, true) else {
            sh.errors
                .report(|| format!("IOVA allocation of {len:#x} bytes failed"));
            continue;
        };
        let iova = pfn << plan.granule_shift;
        let pa = plan.pa_of(iova);
        let which = (rng.next() % PROT_MIX.len() as u64) as usize;
        let s = sh.pt.session();
        match s.map(Iova(iova), PhysAddr(pa), len, PROT_MIX[which]) {
            Ok(n) if n == len => maps += 1,
            r => sh
                .errors
                .report(|| format!("map {iova:#x}+{len:#x} -> {pa:#x}: {r:?}")),
        }
        for page in 0..pages {
            // A different offset in each page, as a device walking a buffer would.
            let at = iova + page * granule + ((page * 0x48 + which as u64 * 8) & (granule - 1));
            match s.translate(Iova(at)) {
                Ok(t) if t.pa.0 == plan.pa_of(at) && t.prot == plan.effective[which] => {}
                r => sh.errors.report(|| {
                    format!(
                        "device translation of {at:#x} (expected {:#x}): {r:?}",
                        plan.pa_of(at)
                    )
                }),
            }
        }
        translations += pages;
        match s.unmap(Iova(iova), len, &mut gather) {
            Ok(n) if n == len => unmaps += 1,
            r => sh
                .errors
                .report(|| format!("unmap {iova:#x}+{len:#x}: {r:?}")),
        }
        drop(s);
        // The IOTLB invalidation a driver would issue for the gathered range.
        match gather.range() {
            Some(r) if *r.start() == Iova(iova) && *r.end() == Iova(iova + len - 1) => {
                invalidated += len;
            }
            r => sh
                .errors
                .report(|| format!("gather of {iova:#x}+{len:#x} asks to invalidate {r:x?}")),
        }
        // One unmap removed every leaf of a table's span: the table must go with them.
        if len == plan.table_span && gather.freed_tables() == 0 {
            sh.errors.report(|| {
                format!("unmap of the whole table span {iova:#x}+{len:#x} freed no table")
            });
        }
        freed += gather.freed_tables();
        gather.release();
        if let Err(e) = sh.iova.free_fast(pfn, pages) {
            sh.errors
                .report(|| format!("IOVA free of pfn {pfn:#x}: {e}"));
        }
        out.maps.store(maps, Ordering::Relaxed);
        out.unmaps.store(unmaps, Ordering::Relaxed);
        out.translations.store(translations, Ordering::Relaxed);
        out.invalidated.store(invalidated, Ordering::Relaxed);
        out.tables_freed.store(freed, Ordering::Relaxed);
    }
}

/// The debugfs reader: dumps the whole table and checks every leaf it walks is a
/// legitimate translation, over and over until `stop`.
pub fn debugfs_reader<F: Format>(sh: &Shared<'_, F>, out: &ReaderCounters) {
    while !sh.stop.load(Ordering::Relaxed) {
        if let Err(e) = sh.pt.dump(&mut io::sink()) {
            sh.errors.report(|| format!("dump: {e}"));
        }
        let mut leaves = 0;
        let walked = sh.pt.walk(.., |t| {
            leaves += 1;
            if !sh.plan.legitimate(t) {
                sh.errors.report(|| {
                    format!(
                        "the dumper saw a leaf no queue mapped: {t:x?} (expected pa {:#x})",
                        sh.plan.pa_of(t.iova.0)
                    )
                });
            }
            ControlFlow::<()>::Continue(())
        });
        if let Err(e) = walked {
            sh.errors.report(|| format!("walk: {e}"));
        }
        out.leaves.fetch_add(leaves, Ordering::Relaxed);
        out.passes.fetch_add(1, Ordering::Relaxed);
        out.peak_pages
            .fetch_max(sh.pt.info().table_pages, Ordering::Relaxed);
    }
}

/// Leaves still mapped (after every queue stopped, there must be none).
pub fn leaves_left<F: Format>(pt: &PageTable<F, HostMemory>) -> u64 {
    let mut n = 0;
    let _ = pt.walk(.., |_| {
        n += 1;
        ControlFlow::<()>::Continue(())
    });
    n
}
