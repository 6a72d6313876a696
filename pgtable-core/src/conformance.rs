//! Test batteries any [`Format`] can be run through (feature `conformance`).
//!
//! The same checks the core runs on its test format, so that every hardware format is
//! held to one standard: a long random differential against a `BTreeMap` model with a
//! leak check, every page size at every level, and a time-bounded multi-threaded
//! stress on poisoned memory. Each panics with a description of the first mismatch.

use crate::{
    ArenaMemory, Error, Format, Gather, Geometry, Iova, PageTable, PhysAddr, Prot, TableMemory,
    TablePage, Translation, page_runs,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A memory wrapper that checks every page is freed exactly once and counts live pages.
#[derive(Debug)]
pub struct CountingMemory<M> {
    inner: M,
    live: Mutex<HashMap<u64, usize>>,
    allocs: AtomicU64,
    bad_frees: AtomicU64,
}

impl<M: TableMemory> CountingMemory<M> {
    /// Wraps `inner`.
    pub fn new(inner: M) -> Self {
        CountingMemory {
            inner,
            live: Mutex::new(HashMap::new()),
            allocs: AtomicU64::new(0),
            bad_frees: AtomicU64::new(0),
        }
    }

    /// Allocations not yet freed.
    pub fn live(&self) -> usize {
        self.live.lock().unwrap().len()
    }

    /// Live pages counted in granules of `1 << granule_shift` (a small top table counts 1).
    pub fn live_pages(&self, granule_shift: u32) -> u64 {
        self.live
            .lock()
            .unwrap()
            .values()
            .map(|&s| ((s >> granule_shift) as u64).max(1))
            .sum()
    }

    /// Allocations made so far.
    pub fn allocs(&self) -> u64 {
        self.allocs.load(Ordering::Relaxed)
    }

    /// Frees of something not live (double frees): must stay 0.
    pub fn bad_frees(&self) -> u64 {
        self.bad_frees.load(Ordering::Relaxed)
    }

    /// The wrapped memory.
    pub fn inner(&self) -> &M {
        &self.inner
    }
}

// SAFETY: forwards to `inner`, which upholds the contract; the bookkeeping only refuses
// to forward frees of pages that are not live.
unsafe impl<M: TableMemory> TableMemory for CountingMemory<M> {
    fn alloc(&self, size: usize, align: usize) -> Option<TablePage> {
        let p = self.inner.alloc(size, align)?;
        self.allocs.fetch_add(1, Ordering::Relaxed);
        let old = self.live.lock().unwrap().insert(p.phys, p.size);
        assert!(old.is_none(), "memory handed out {:#x} twice", p.phys);
        Some(p)
    }

    unsafe fn free(&self, page: TablePage) {
        if self.live.lock().unwrap().remove(&page.phys) != Some(page.size) {
            self.bad_frees.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // SAFETY: the page was live in `inner` until now (checked above).
        unsafe { self.inner.free(page) };
    }

    fn phys_to_virt(&self, phys: u64, len: usize) -> Option<NonNull<u8>> {
        self.inner.phys_to_virt(phys, len)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Leaf {
    pa: u64,
    size: u64,
    prot: Prot,
}

/// The reference: leaves by first IOVA.
#[derive(Debug, Default)]
struct Model {
    leaves: BTreeMap<u64, Leaf>,
}

impl Model {
    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.leaves
            .range(..end)
            .next_back()
            .is_some_and(|(&iova, l)| iova + l.size > start)
    }

    fn find(&self, iova: u64) -> Option<(u64, Leaf)> {
        let (&base, &l) = self.leaves.range(..=iova).next_back()?;
        (iova < base + l.size).then_some((base, l))
    }

    /// The rule of `map_pages`: pages before the first one overlapping a leaf are mapped.
    fn map_pages(&mut self, iova: u64, pa: u64, size: u64, count: u64, prot: Prot) -> u64 {
        for k in 0..count {
            let s = iova + k * size;
            if self.overlaps(s, s + size) {
                return k * size;
            }
            self.leaves.insert(
                s,
                Leaf {
                    pa: pa + k * size,
                    size,
                    prot,
                },
            );
        }
        count * size
    }

    /// The rule of `unmap`: no splitting, stop at the first hole.
    fn unmap(&mut self, iova: u64, len: u64) -> u64 {
        let end = iova + len;
        let mut cur = iova;
        while cur < end {
            match self.find(cur) {
                Some((base, l)) if base == cur => {
                    self.leaves.remove(&base);
                    cur = base + l.size;
                }
                _ => break,
            }
        }
        cur - iova
    }
}

fn sizes(geo: &Geometry) -> Vec<u64> {
    (0..64)
        .map(|b| 1u64 << b)
        .filter(|s| geo.pgsize_bitmap & s != 0)
        .collect()
}

fn random_prot(rng: &mut SmallRng) -> Prot {
    let rw = [Prot::READ, Prot::WRITE, Prot::RW][rng.gen_range(0..3)];
    let extra = Prot::from_bits_truncate(rng.gen_range(0..16u32) << 2);
    rw | extra
}

fn check_all<F: Format, M: TableMemory>(pt: &PageTable<F, M>, model: &Model, fmt: &F) {
    let mut got = Vec::new();
    pt.walk(.., |t| {
        got.push(*t);
        ControlFlow::<()>::Continue(())
    })
    .unwrap();
    let want: Vec<Translation> = model
        .leaves
        .iter()
        .map(|(&iova, l)| Translation {
            iova: Iova(iova),
            pa: PhysAddr(l.pa),
            size: l.size,
            prot: fmt.effective_prot(l.prot),
            level: pt.geometry().level_of_size(l.size).unwrap(),
        })
        .collect();
    assert_eq!(
        got.len(),
        want.len(),
        "walk leaf count differs from the model"
    );
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "walk differs from the model");
    }
}

/// A window of IOVA (and PA) space small enough for collisions, big enough for the two
/// largest page sizes below 1 GiB-ish spans.
fn window(geo: &Geometry) -> (u64, Vec<u64>) {
    let limit = 1u64 << geo.va_bits.min(geo.oas).min(40);
    let mut usable: Vec<u64> = sizes(geo)
        .into_iter()
        .filter(|&s| s.saturating_mul(4) <= limit)
        .collect();
    usable.truncate(3);
    let biggest = *usable.last().expect("the granule fits");
    let w = (biggest * 4)
        .max(geo.granule() * 4 * geo.entries(0) as u64)
        .min(limit);
    (w, usable)
}

/// Runs `ops` random operations (map_pages, map, unmap_pages, unmap, translate) against
/// a model; checks every result, a full walk every few hundred operations, the live
/// table-page count against the memory's, and after drop that every page was freed
/// exactly once.
///
/// # Panics
/// On the first difference from the model.
pub fn differential<F: Format, M: TableMemory>(fmt: F, mem: Arc<M>, ops: usize, seed: u64) {
    let mem = Arc::new(CountingMemory::new(ArcMem(mem)));
    let geo = fmt.geometry();
    let (win, usable) = window(&geo);
    let gran = geo.granule();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut model = Model::default();
    let mut held: Vec<Gather> = Vec::new();
    {
        let pt = PageTable::new(fmt.clone(), mem.clone()).expect("table");
        let base = (1u64 << geo.va_bits.min(geo.oas))
            .saturating_sub(win)
            .min(win)
            & !(win - 1);
        for op in 0..ops {
            let size = usable[rng.gen_range(0..usable.len())];
            let iova = base + rng.gen_range(0..win / size) * size;
            let pa = rng.gen_range(0..win / size) * size;
            let prot = random_prot(&mut rng);
            match rng.gen_range(0..10) {
                0..=2 => {
                    let count = rng.gen_range(1..=((base + win - iova) / size).min(8));
                    let want = model.map_pages(iova, pa, size, count, prot);
                    match pt.map_pages(Iova(iova), PhysAddr(pa), size, count, prot) {
                        Ok(n) => assert_eq!((n, want), (count * size, n), "op {op}: map_pages"),
                        Err(e) => {
                            assert!(matches!(e, Error::Exists { .. }), "op {op}: {e}");
                            assert_eq!(e.mapped(), want, "op {op}: map_pages mapped before clash");
                        }
                    }
                }
                3 => {
                    let len = rng.gen_range(1..=((base + win - iova) / gran).min(2048)) * gran;
                    let pa = pa & !(size - 1);
                    let runs = page_runs(geo.pgsize_bitmap, iova, pa, len);
                    check_runs(&geo, iova, pa, len, &runs);
                    let clash = model.overlaps(iova, iova + len);
                    match pt.map(Iova(iova), PhysAddr(pa), len, prot) {
                        Ok(n) => {
                            assert!(!clash, "op {op}: map over a mapping succeeded");
                            assert_eq!(n, len);
                            let (mut i, mut p) = (iova, pa);
                            for (s, c) in runs {
                                assert_eq!(model.map_pages(i, p, s, c, prot), s * c);
                                i += s * c;
                                p += s * c;
                            }
                        }
                        Err(e) => assert!(
                            clash && matches!(e, Error::Exists { mapped: 0, .. }),
                            "op {op}: {e}"
                        ),
                    }
                }
                4..=5 => {
                    let count = rng.gen_range(1..=((base + win - iova) / size).min(8));
                    let want = model.unmap(iova, size * count);
                    let mut g = Gather::new();
                    let got = pt.unmap_pages(Iova(iova), size, count, &mut g).unwrap();
                    assert_eq!(
                        got, want,
                        "op {op}: unmap_pages({iova:#x}, {size:#x}, {count})"
                    );
                    if want > 0 {
                        let r = g.range().expect("a range");
                        assert!(
                            r.start().0 <= iova && r.end().0 >= iova + want - 1,
                            "op {op}: gather range"
                        );
                    }
                    if rng.gen_bool(0.3) {
                        held.push(g);
                    } else {
                        g.release();
                    }
                }
                6 => {
                    let len = rng.gen_range(1..=((base + win - iova) / gran).min(4096)) * gran;
                    let want = model.unmap(iova, len);
                    if rng.gen_bool(0.5) {
                        let mut g = Gather::new();
                        let got = pt.unmap(Iova(iova), len, &mut g).unwrap();
                        assert_eq!(got, want, "op {op}: unmap");
                        g.release();
                    } else {
                        let got = pt.unmap_now(Iova(iova), len).unwrap();
                        assert_eq!(got, want, "op {op}: unmap_now");
                    }
                }
                _ => {
                    let q = iova + rng.gen_range(0..size);
                    let got = pt.translate(Iova(q));
                    match model.find(q) {
                        Some((b, l)) => {
                            let t =
                                got.unwrap_or_else(|e| panic!("op {op}: translate {q:#x}: {e}"));
                            assert_eq!(t.pa, PhysAddr(l.pa + (q - b)), "op {op}");
                            assert_eq!(t.size, l.size, "op {op}");
                            assert_eq!(t.prot, fmt.effective_prot(l.prot), "op {op}");
                        }
                        None => {
                            assert!(matches!(got, Err(Error::NotMapped(_))), "op {op}: {got:?}")
                        }
                    }
                }
            }
            if held.len() > 8 || rng.gen_bool(0.05) {
                held.iter_mut().for_each(Gather::release);
                held.clear();
            }
            if op % 512 == 511 {
                check_all(&pt, &model, &fmt);
                // Another thread (another test in this process) may be running one of this
                // table's deferred frees right now, between the memory's free and the
                // table's count: let in-flight frees land before comparing.
                let mut tries = 0;
                while pt.info().table_pages != mem.live_pages(geo.granule_shift) && tries < 1000 {
                    std::thread::yield_now();
                    tries += 1;
                }
                assert_eq!(
                    pt.info().table_pages,
                    mem.live_pages(geo.granule_shift),
                    "op {op}: live pages"
                );
            }
        }
        check_all(&pt, &model, &fmt);
        // Unmap everything leaf by leaf; tables whose spans are wholly unmapped in one call
        // are freed, the rest stay until drop.
        let leaves: Vec<(u64, u64)> = model.leaves.iter().map(|(&i, l)| (i, l.size)).collect();
        for (i, s) in leaves {
            let mut g = Gather::new();
            assert_eq!(pt.unmap(Iova(i), s, &mut g).unwrap(), s);
            g.release();
        }
        assert!(
            pt.walk(.., |_| ControlFlow::Break(())).unwrap().is_none(),
            "leaves left"
        );
        // Gathers still held when the table goes must still be released safely.
        // Two of them stay unreleased past the drop.
        while held.len() > 2 {
            let mut g = held.pop().expect("non-empty");
            g.release();
        }
    }
    held.iter_mut().for_each(Gather::release);
    assert_eq!(mem.bad_frees(), 0, "a page was freed twice");
    assert_eq!(mem.live(), 0, "table pages leaked");
}

/// Forwards to an `Arc<M>` so callers keep their handle on the memory.
#[derive(Debug)]
struct ArcMem<M>(Arc<M>);

// SAFETY: pure forwarding to the inner memory.
unsafe impl<M: TableMemory> TableMemory for ArcMem<M> {
    fn alloc(&self, size: usize, align: usize) -> Option<TablePage> {
        self.0.alloc(size, align)
    }
    unsafe fn free(&self, page: TablePage) {
        // SAFETY: forwarded.
        unsafe { self.0.free(page) }
    }
    fn phys_to_virt(&self, phys: u64, len: usize) -> Option<NonNull<u8>> {
        self.0.phys_to_virt(phys, len)
    }
    fn clean(&self, virt: NonNull<u8>, len: usize) {
        self.0.clean(virt, len)
    }
}

/// Checks `page_runs` against a brute-force greedy choice made one page at a time.
fn check_runs(geo: &Geometry, iova: u64, pa: u64, len: u64, runs: &[(u64, u64)]) {
    let mut want = Vec::new();
    let (mut i, mut p, mut left) = (iova, pa, len);
    while left > 0 {
        let s = sizes(geo)
            .into_iter()
            .rev()
            .find(|&s| i % s == 0 && p % s == 0 && s <= left)
            .expect("the granule always fits");
        want.push(s);
        i += s;
        p += s;
        left -= s;
    }
    let got: Vec<u64> = runs
        .iter()
        .flat_map(|&(s, c)| std::iter::repeat_n(s, c as usize))
        .collect();
    assert_eq!(
        got, want,
        "page size choice for {iova:#x}+{len:#x} -> {pa:#x}"
    );
}

/// Every page size at every level: map at an offset, double map fails, translate,
/// unmap returns the size, the translation is gone, remap works; then the last page
/// below the input size, and the first beyond it is refused; the output size is
/// enforced.
///
/// # Panics
/// On the first failure.
pub fn every_size<F: Format, M: TableMemory>(fmt: F, mem: Arc<M>) {
    let geo = fmt.geometry();
    let pt = PageTable::new(fmt.clone(), mem).expect("table");
    let va_end = 1u64 << geo.va_bits;
    let oa_end = if geo.oas >= 64 {
        u64::MAX
    } else {
        1u64 << geo.oas
    };
    assert!(
        pt.translate(Iova(0)).is_err() && pt.iova_to_phys(Iova(va_end - 1)).is_none(),
        "empty table translates"
    );
    for size in sizes(&geo) {
        let level = geo.level_of_size(size).unwrap();
        for n in [1u64, 3] {
            let iova = n * size;
            if iova + size > va_end || iova + size > oa_end {
                continue;
            }
            let pa = iova;
            let prot = Prot::RW | Prot::CACHE;
            let (iova, pa) = (Iova(iova), PhysAddr(pa));
            assert_eq!(
                pt.map_pages(iova, pa, size, 1, prot),
                Ok(size),
                "map {size:#x} at {iova}"
            );
            assert!(
                matches!(
                    pt.map_pages(iova, pa, size, 1, prot),
                    Err(Error::Exists { mapped: 0, .. })
                ),
                "double map of {size:#x}"
            );
            let t = pt.translate(iova + size / 2).unwrap();
            assert_eq!((t.pa, t.size, t.level), (pa + size / 2, size, level));
            assert_eq!(t.prot, fmt.effective_prot(prot));
            let mut g = Gather::new();
            assert_eq!(pt.unmap_pages(iova, size, 1, &mut g), Ok(size));
            assert_eq!(g.range(), Some(iova..=iova + (size - 1)));
            g.release();
            assert_eq!(pt.iova_to_phys(iova), None);
            assert_eq!(
                pt.map_pages(iova, pa, size, 1, Prot::READ),
                Ok(size),
                "remap"
            );
            assert_eq!(pt.unmap(iova, size, &mut g), Ok(size));
            g.release();
        }
        // The last page below the input size.
        let last = va_end - size;
        let pa = (oa_end.min(va_end) - size) & !(size - 1);
        let (last, pa) = (Iova(last), PhysAddr(pa));
        assert_eq!(
            pt.map_pages(last, pa, size, 1, Prot::READ),
            Ok(size),
            "last {size:#x} page"
        );
        assert_eq!(pt.iova_to_phys(Iova(va_end - 1)), Some(pa + (size - 1)));
        assert!(matches!(
            pt.map_pages(Iova(va_end), pa, size, 1, Prot::READ),
            Err(Error::IovaRange { .. })
        ));
        let mut g = Gather::new();
        assert_eq!(pt.unmap_pages(last, size, 1, &mut g), Ok(size));
        g.release();
        if geo.oas < 64 {
            assert!(matches!(
                pt.map_pages(Iova(0), PhysAddr(oa_end), size, 1, Prot::READ),
                Err(Error::PhysRange { .. })
            ));
        }
    }
    assert!(
        pt.walk(.., |_| ControlFlow::Break(())).unwrap().is_none(),
        "leaves left"
    );
}

/// Stress on poisoned memory for `duration`: writer threads map and unmap disjoint
/// regions while reader threads translate, walk and dump everything. The writers'
/// patterns: whole level-0 tables (mapped, then freed by one unmap), partial spans, a
/// large leaf replacing an emptied table, and, where the table has four levels or more,
/// a whole level-2 span holding tables of tables (large leaves plus one full level-0
/// table) unmapped in one call, which detaches a multi-level subtree. Every output
/// address is a fixed function of its IOVA, so a reader can check what it sees without
/// coordination: it must only ever see "unmapped" or the right address, never poison or
/// a fault.
///
/// Half of the time runs with no page cache (every released page goes back to the
/// poisoning memory at once), half with the default cache (pages are recycled).
///
/// # Panics
/// On a wrong translation, a fault, a leak or a double free.
pub fn stress<F: Format>(fmt: F, duration: Duration) {
    stress_with(fmt.clone(), duration / 2, 0);
    stress_with(fmt, duration / 2, crate::DEFAULT_PAGE_CACHE_BYTES);
}

fn stress_with<F: Format>(fmt: F, duration: Duration, cache_bytes: usize) {
    const POISON: u64 = 0xdead_beef_dead_beef;
    let geo = fmt.geometry();
    let writers = 2u64;
    let span = geo.entry_span(1); // one level-0 table's reach
    // A level-2 entry below the top holds tables of tables.
    let deep = geo.levels >= 4 && geo.leaf_allowed(1);
    let span2 = geo.entry_span(2);
    let limit = 1u64 << geo.va_bits.min(geo.oas);
    let want = if deep { span2 } else { span * 4 };
    let per_writer = want.min(limit / (writers * 2));
    assert!(
        per_writer >= span,
        "address space too small for the stress layout"
    );
    let deep = deep && per_writer >= span2;
    let delta = per_writer * writers; // pa = iova + delta
    let arena = Arc::new(ArenaMemory::with_poison(0x4000_0000, 64 << 20, POISON));
    let mem = Arc::new(CountingMemory::new(ArcMem(arena.clone())));
    {
        let pt = PageTable::builder(fmt.clone(), mem.clone())
            .page_cache_bytes(cache_bytes)
            .build()
            .expect("table");
        let stop = AtomicBool::new(false);
        let reads = AtomicU64::new(0);
        let large = geo.leaf_allowed(1);
        std::thread::scope(|s| {
            for w in 0..writers {
                let (pt, stop) = (&pt, &stop);
                s.spawn(move || {
                    let base = w * per_writer;
                    let mut rng = SmallRng::seed_from_u64(w);
                    let n0 = geo.entries(0) as u64;
                    let gran = geo.granule();
                    let at = |i: u64| (Iova(i), PhysAddr(i + delta));
                    while !stop.load(Ordering::Relaxed) {
                        let spans = per_writer / span;
                        let a = base + rng.gen_range(0..spans) * span;
                        let (ia, pa) = at(a);
                        let mut g = Gather::new();
                        match rng.gen_range(0..4) {
                            0 => {
                                // A whole table: mapped, then freed by one unmap.
                                pt.map_pages(ia, pa, gran, n0, Prot::RW).unwrap();
                                assert_eq!(pt.unmap(ia, span, &mut g), Ok(span));
                                assert!(
                                    g.freed_tables() >= 1,
                                    "a whole-span unmap frees the table"
                                );
                            }
                            1 => {
                                // Half a table, unmapped in two calls: the table stays.
                                pt.map_pages(ia, pa, gran, n0 / 2, Prot::READ).unwrap();
                                assert_eq!(
                                    pt.iova_to_phys(ia + gran),
                                    Some(pa + gran),
                                    "own mapping"
                                );
                                assert_eq!(pt.unmap(ia, span / 4, &mut g), Ok(span / 4));
                                assert_eq!(pt.unmap(ia + span / 4, span / 4, &mut g), Ok(span / 4));
                            }
                            2 if large => {
                                // A large leaf, possibly replacing an emptied table.
                                pt.map_pages(ia, pa, span, 1, Prot::RW).unwrap();
                                assert_eq!(pt.unmap_pages(ia, span, 1, &mut g), Ok(span));
                            }
                            3 if deep => {
                                // A level-2 span: large leaves and one level-0 table,
                                // then one unmap detaches the level-1 table and the
                                // level-0 table below it.
                                let (b, pb) = at(base);
                                let k = rng.gen_range(0..span2 / span);
                                for j in 0..span2 / span {
                                    let (i, p) = (b + j * span, pb + j * span);
                                    if j == k {
                                        pt.map_pages(i, p, gran, n0, Prot::RW).unwrap();
                                    } else {
                                        pt.map_pages(i, p, span, 1, Prot::RW).unwrap();
                                    }
                                }
                                assert_eq!(pt.unmap(b, span2, &mut g), Ok(span2));
                                assert!(g.freed_tables() >= 2, "two levels detached");
                            }
                            _ => {}
                        }
                        g.release();
                    }
                });
            }
            for r in 0..2u64 {
                let (pt, stop, reads) = (&pt, &stop, &reads);
                s.spawn(move || {
                    let mut rng = SmallRng::seed_from_u64(100 + r);
                    let end = per_writer * writers;
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..256 {
                            let q = rng.gen_range(0..end);
                            match pt.translate(Iova(q)) {
                                Ok(t) => assert_eq!(
                                    t.pa,
                                    PhysAddr(q + delta),
                                    "reader saw a wrong translation"
                                ),
                                Err(Error::NotMapped(_)) => {}
                                Err(e) => panic!("reader saw {e}"),
                            }
                            n += 1;
                        }
                        pt.walk(..Iova(end), |t| {
                            assert_eq!(t.pa, PhysAddr(t.iova.0 + delta), "walk saw a wrong leaf");
                            ControlFlow::<()>::Continue(())
                        })
                        .unwrap();
                        if r == 0 {
                            pt.dump(&mut std::io::sink()).unwrap();
                            let _ = pt.info();
                        }
                    }
                    reads.fetch_add(n, Ordering::Relaxed);
                });
            }
            let t0 = Instant::now();
            while t0.elapsed() < duration {
                std::thread::sleep(Duration::from_millis(10));
            }
            stop.store(true, Ordering::Relaxed);
        });
        assert!(reads.load(Ordering::Relaxed) > 0);
        // Unmap what the writers left, so the leak check below also covers tables freed
        // through a gather after the stress; the root itself must still be live.
        let mut g = Gather::new();
        for w in 0..writers {
            let _ = pt.unmap(Iova(w * per_writer), per_writer, &mut g);
        }
        g.release();
        let root_entry = arena.read_u64(pt.root_phys().0).unwrap();
        assert_ne!(root_entry, POISON, "the root was freed");
    }
    assert_eq!(mem.bad_frees(), 0, "a page was freed twice");
    assert_eq!(mem.live(), 0, "table pages leaked");
    assert_eq!(arena.stats().bad_frees, 0);
    assert_eq!(
        arena.stats().live,
        0,
        "arena {:?}, counting allocs {}",
        arena.stats(),
        mem.allocs()
    );
}

/// Dirty tracking on a format that has it: the exact clean and dirty encodings,
/// enabling and disabling, bitmaps for partial ranges, page sizes and large leaves,
/// `NO_CLEAR`, and every bad argument refused with nothing changed.
///
/// # Panics
/// On the first failure.
pub fn dirty_tracking<F: Format, M: TableMemory>(fmt: F, mem: Arc<M>) {
    use crate::{DirtyFlags, Iova};
    let bits = fmt.dirty_bits().expect("a format with dirty tracking");
    let geo = fmt.geometry();
    let g = geo.granule();
    let big = (geo.leaf_allowed(1) && geo.entry_span(1) <= 1 << 30).then(|| geo.entry_span(1));
    let pt = PageTable::new(fmt.clone(), mem).expect("table");
    let base = g * geo.entries(0) as u64 * 4; // away from 0, table aligned
    let i = |n: u64| Iova(base + n * g);
    let p = |n: u64| PhysAddr(0x1000_0000 + n * g);
    // 16 writable pages, 4 read-only ones, and a large writable leaf.
    pt.map_pages(i(0), p(0), g, 16, Prot::RW).unwrap();
    pt.map_pages(i(16), p(16), g, 4, Prot::READ).unwrap();
    let big_at = big.map(|b| Iova((base + 2 * b) & !(b - 1)));
    if let (Some(b), Some(at)) = (big, big_at) {
        pt.map_pages(at, PhysAddr(b), b, 1, Prot::RW).unwrap();
    }
    let raw = |iova: Iova| pt.raw_leaf(iova).unwrap().0;
    let before: Vec<u64> = (0..20).map(|n| raw(i(n))).collect();
    // Off: nothing to read, and marking is refused.
    let mut bm = [0u64; 1];
    assert_eq!(
        pt.read_and_clear_dirty(i(0), 16 * g, g, &mut bm, DirtyFlags::empty()),
        Err(Error::DirtyTrackingOff)
    );
    assert!(pt.mark_dirty(i(0)).is_err());
    // On: writable leaves become tracked and clean, read-only ones do not change.
    pt.set_dirty_tracking(true).unwrap();
    assert!(pt.dirty_tracking());
    for n in 0..16 {
        let r = raw(i(n));
        assert_eq!(r & bits.tracked, bits.tracked, "page {n}: tracked");
        assert!(!bits.is_dirty(r), "page {n}: clean after enabling ({r:#x})");
        assert_eq!(r, fmt.track_dirty(before[n as usize], 0, true), "page {n}");
        let t = pt.translate(i(n)).unwrap();
        assert!(
            t.prot.contains(Prot::WRITE),
            "a clean tracked leaf is reported writable"
        );
    }
    for n in 16..20 {
        assert_eq!(
            raw(i(n)),
            before[n as usize],
            "read-only page {n} unchanged"
        );
        assert_ne!(
            raw(i(n)) & bits.tracked,
            bits.tracked,
            "read-only page {n}: untracked"
        );
        assert!(
            pt.mark_dirty(i(n)).is_err(),
            "read-only pages are not tracked"
        );
    }
    // Enabling twice changes nothing (not even dirty leaves).
    assert_eq!(pt.mark_dirty(i(3)), Ok(true));
    assert_eq!(pt.mark_dirty(i(3)), Ok(false), "already dirty");
    pt.set_dirty_tracking(true).unwrap();
    assert!(bits.is_dirty(raw(i(3))), "enabling twice is a no-op");
    // The dirty encoding is the hardware's bit operation, exactly.
    assert_eq!(
        raw(i(3)),
        bits.dirty.apply(fmt.track_dirty(before[3], 0, true))
    );
    // A bitmap of a partial range: pages 2..10 at granule size; 3 and 7 dirty.
    assert_eq!(pt.mark_dirty(i(7)), Ok(true));
    let mut bm = [0u64; 1];
    pt.read_and_clear_dirty(i(2), 8 * g, g, &mut bm, DirtyFlags::NO_CLEAR)
        .unwrap();
    assert_eq!(bm, [(1 << 1) | (1 << 5)], "NO_CLEAR report");
    assert!(
        bits.is_dirty(raw(i(3))) && bits.is_dirty(raw(i(7))),
        "NO_CLEAR keeps them"
    );
    // Bits are only ever set, never cleared by a call.
    let mut bm = [1u64 << 63];
    pt.read_and_clear_dirty(i(2), 8 * g, g, &mut bm, DirtyFlags::empty())
        .unwrap();
    assert_eq!(bm, [(1 << 63) | (1 << 1) | (1 << 5)]);
    assert!(
        !bits.is_dirty(raw(i(3))) && !bits.is_dirty(raw(i(7))),
        "cleared"
    );
    let mut bm = [0u64; 1];
    pt.read_and_clear_dirty(i(0), 16 * g, g, &mut bm, DirtyFlags::empty())
        .unwrap();
    assert_eq!(bm, [0], "nothing dirty any more");
    // A coarser page size: one bit per 4 granules.
    pt.mark_dirty(i(5)).unwrap();
    pt.mark_dirty(i(6)).unwrap();
    pt.mark_dirty(i(13)).unwrap();
    let mut bm = [0u64; 1];
    pt.read_and_clear_dirty(i(0), 16 * g, 4 * g, &mut bm, DirtyFlags::empty())
        .unwrap();
    assert_eq!(bm, [0b1010]);
    // A dirty large leaf reports every page it covers, clipped to the range.
    if let (Some(b), Some(at)) = (big, big_at) {
        assert_eq!(pt.mark_dirty(at + g), Ok(true));
        let pages = b / g;
        let mut bm = vec![0u64; pages.div_ceil(64) as usize + 1];
        pt.read_and_clear_dirty(at + 2 * g, b - 2 * g, g, &mut bm, DirtyFlags::empty())
            .unwrap();
        let set: u64 = bm.iter().map(|w| w.count_ones() as u64).sum();
        assert_eq!(set, pages - 2, "every page of the leaf inside the range");
        assert!(!bits.is_dirty(pt.raw_leaf(at).unwrap().0));
    }
    // Leaves mapped while tracking is on start clean.
    pt.map_pages(i(20), p(20), g, 1, Prot::RW).unwrap();
    let r = raw(i(20));
    assert!(
        r & bits.tracked == bits.tracked && !bits.is_dirty(r),
        "{r:#x}"
    );
    // Bad arguments: their errors, nothing changed.
    pt.mark_dirty(i(1)).unwrap();
    let snapshot: Vec<u64> = (0..21).map(|n| raw(i(n))).collect();
    for (len, ps, at, err) in [
        (16 * g, g + 1, i(0), Error::UnsupportedSize(g + 1)),
        (16 * g, g / 2, i(0), Error::UnsupportedSize(g / 2)),
        (
            16 * g,
            2 * g,
            i(1),
            Error::Misaligned {
                what: "iova",
                value: i(1).0,
                align: 2 * g,
            },
        ),
        (
            3 * g,
            2 * g,
            i(0),
            Error::Misaligned {
                what: "length",
                value: 3 * g,
                align: 2 * g,
            },
        ),
        (0, g, i(0), Error::EmptyRange),
        (
            65 * g,
            g,
            i(0),
            Error::BitmapTooSmall { need: 65, have: 64 },
        ),
    ] {
        let mut bm = [0u64; 1];
        assert_eq!(
            pt.read_and_clear_dirty(at, len, ps, &mut bm, DirtyFlags::empty()),
            Err(err)
        );
        assert_eq!(bm, [0], "no bit changed");
    }
    let top = 1u64 << geo.va_bits;
    let mut bm = [0u64; 1];
    assert!(matches!(
        pt.read_and_clear_dirty(Iova(top - g), 2 * g, g, &mut bm, DirtyFlags::empty()),
        Err(Error::IovaRange { .. })
    ));
    let now: Vec<u64> = (0..21).map(|n| raw(i(n))).collect();
    assert_eq!(now, snapshot, "no entry changed");
    // Off: writable leaves lose tracking; they stay writable.
    pt.set_dirty_tracking(false).unwrap();
    for n in 0..16 {
        let r = raw(i(n));
        assert_eq!(
            r,
            fmt.track_dirty(snapshot[n as usize], 0, false),
            "page {n}"
        );
        assert!(pt.translate(i(n)).unwrap().prot.contains(Prot::WRITE));
    }
    pt.map_pages(i(21), p(21), g, 1, Prot::RW).unwrap();
    assert_eq!(
        raw(i(21)),
        fmt.encode_leaf(p(21).0, 0, Prot::RW),
        "written untracked"
    );
}

/// Dirty tracking with the access-typed walk as the hardware: a
/// [`ForeignTable`](crate::ForeignTable) over the table's own memory, updating dirty
/// state as an IOMMU with hardware dirty updates would ([`WalkPolicy::UPDATE`](crate::WalkPolicy::UPDATE)).
/// Reads leave pages clean, each write is reported by the next read-and-clear and
/// then no more, on pages of every leaf size the format has.
///
/// # Panics
/// On the first page reported wrongly.
pub fn dirty_by_hardware_walks<F: Format>(fmt: F) {
    use crate::{Access, DirtyFlags, ForeignTable, WalkPolicy};
    let geo = fmt.geometry();
    let g = geo.granule();
    let mem = Arc::new(ArenaMemory::new(0x4000_0000, 32 << 20));
    let pt = PageTable::new(fmt.clone(), mem.clone()).expect("table");
    // 64 granule pages, then one leaf of each larger size the format maps (up to 1 GiB).
    let base = geo.entry_span(1).max(g) * 4;
    pt.map_pages(Iova(base), PhysAddr(0x1_0000_0000), g, 64, Prot::RW)
        .unwrap();
    let mut big = vec![];
    for level in 1..geo.levels {
        let size = geo.entry_span(level);
        if geo.leaf_allowed(level) && size <= 1 << 30 {
            let at = Iova((base + 64 * g + size).next_multiple_of(size) + size * 4);
            pt.map_pages(at, PhysAddr(size), size, 1, Prot::RW).unwrap();
            big.push((at, size));
        }
    }
    pt.set_dirty_tracking(true).unwrap();
    let hw = ForeignTable::new(fmt, mem, pt.root_phys())
        .unwrap()
        .with_policy(WalkPolicy::UPDATE)
        .unwrap();
    let dirty_pages = |start: Iova, len: u64| -> Vec<u64> {
        let mut bm = vec![0u64; (len / g).div_ceil(64) as usize];
        pt.read_and_clear_dirty(start, len, g, &mut bm, DirtyFlags::empty())
            .unwrap();
        (0..len / g)
            .filter(|&n| bm[(n / 64) as usize] >> (n % 64) & 1 == 1)
            .collect()
    };
    let run = 64 * g;
    for n in 0..64 {
        hw.translate_access(Iova(base + n * g + 8), Access::READ)
            .unwrap();
    }
    assert_eq!(
        dirty_pages(Iova(base), run),
        Vec::<u64>::new(),
        "reads dirty nothing"
    );
    let written = [3u64, 17, 40, 63];
    for &n in &written {
        let t = hw
            .translate_access(Iova(base + n * g + 8), Access::WRITE)
            .unwrap();
        assert!(t.prot.contains(Prot::WRITE), "page {n} written");
    }
    assert_eq!(
        dirty_pages(Iova(base), run),
        written,
        "each write is reported"
    );
    assert_eq!(
        dirty_pages(Iova(base), run),
        Vec::<u64>::new(),
        "and cleared"
    );
    for (at, size) in big {
        hw.translate_access(Iova(at.0 + size / 2), Access::WRITE)
            .unwrap();
        let all: Vec<u64> = (0..size / g).collect();
        assert_eq!(
            dirty_pages(at, size),
            all,
            "a written {size:#x} leaf is all dirty"
        );
        assert_eq!(dirty_pages(at, size), Vec::<u64>::new());
    }
}

/// Hardware, a migration loop and a mapper at once: one thread marks pages dirty as a
/// device writing through the table would, one loops read-and-clear, one maps and
/// unmaps a disjoint range. Every clean-to-dirty transition the hardware made must be
/// reported exactly once: none lost, none invented.
///
/// # Panics
/// If a write was lost or a report was invented.
pub fn dirty_concurrency<F: Format>(fmt: F, duration: Duration) {
    use crate::{DirtyFlags, Iova};
    use std::sync::atomic::AtomicU32;
    const PAGES: u64 = 256;
    let geo = fmt.geometry();
    let g = geo.granule();
    let pt = PageTable::new(fmt, Arc::new(crate::HostMemory::new())).expect("table");
    let base = g * geo.entries(0) as u64 * 8;
    pt.map_pages(Iova(base), PhysAddr(0), g, PAGES, Prot::RW)
        .unwrap();
    pt.set_dirty_tracking(true).unwrap();
    let written: Vec<AtomicU32> = (0..PAGES).map(|_| AtomicU32::new(0)).collect();
    let mut reported = vec![0u32; PAGES as usize];
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let (pt, stop, written) = (&pt, &stop, &written);
        s.spawn(move || {
            let mut rng = SmallRng::seed_from_u64(9);
            while !stop.load(Ordering::Relaxed) {
                let n = rng.gen_range(0..PAGES);
                if pt.mark_dirty(Iova(base + n * g)).unwrap() {
                    written[n as usize].fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        s.spawn(move || {
            // A disjoint range, mapped and unmapped in whole tables.
            let other = base + g * geo.entries(0) as u64 * 4;
            while !stop.load(Ordering::Relaxed) {
                pt.map_pages(Iova(other), PhysAddr(0), g, geo.entries(0) as u64, Prot::RW)
                    .unwrap();
                pt.unmap_now(Iova(other), g * geo.entries(0) as u64)
                    .unwrap();
            }
        });
        let t0 = Instant::now();
        let scan = |reported: &mut Vec<u32>| {
            let mut bm = vec![0u64; PAGES.div_ceil(64) as usize];
            pt.read_and_clear_dirty(Iova(base), PAGES * g, g, &mut bm, DirtyFlags::empty())
                .unwrap();
            for (n, r) in reported.iter_mut().enumerate() {
                *r += (bm[n / 64] >> (n % 64) & 1) as u32;
            }
        };
        while t0.elapsed() < duration {
            scan(&mut reported);
        }
        stop.store(true, Ordering::Relaxed);
        scan(&mut reported);
    });
    // The threads have stopped: one more pass catches what the last writes left.
    let mut bm = vec![0u64; PAGES.div_ceil(64) as usize];
    pt.read_and_clear_dirty(Iova(base), PAGES * g, g, &mut bm, DirtyFlags::empty())
        .unwrap();
    for (n, r) in reported.iter_mut().enumerate() {
        *r += (bm[n / 64] >> (n % 64) & 1) as u32;
    }
    let total: u32 = reported.iter().sum();
    assert!(total > 0, "the hardware thread wrote nothing");
    for n in 0..PAGES as usize {
        assert_eq!(
            reported[n],
            written[n].load(Ordering::Relaxed),
            "page {n}: dirty periods reported vs written"
        );
    }
}

/// A table of `fmt` written as a guest would ([`crate::TableWriter`]) in a fresh 1 MiB
/// [`ArenaMemory`] at `base` (the top table at `base`, the others after it), mapping the
/// `size` bytes at `iova` to `pa` with `prot`: what the access-walk tests of every
/// format start from.
///
/// # Panics
/// If the format refuses the mapping.
pub fn written_table<F: Format>(
    fmt: F,
    base: u64,
    iova: Iova,
    pa: PhysAddr,
    size: u64,
    prot: Prot,
) -> crate::TableWriter<F, ArenaMemory> {
    let mem = Arc::new(ArenaMemory::new(base, 1 << 20));
    let mut next = base;
    let mut page = move || {
        let pa = next;
        next += 0x1000;
        Some(crate::WriterPage {
            pa: PhysAddr(pa),
            pointer: pa,
        })
    };
    let root = page().expect("a page").pa;
    let mut w = crate::TableWriter::new(fmt, mem, root).expect("a writer");
    w.map(iova, pa, size, prot, &mut page).expect("the mapping");
    w
}
