//! Loom models of the table protocol: install by compare-exchange, detach by
//! compare-exchange, retire through the gather, and reclamation itself: crossbeam-epoch
//! runs on loom too (its `crossbeam_loom` support), so the deferred closures that move
//! released pages into the page cache run inside the model, whenever the epoch can
//! advance. Run with
//! `RUSTFLAGS="--cfg loom --cfg crossbeam_loom" cargo test -p pgtable-core --test loom --release`.
//!
//! Reclaimed pages are poisoned while they wait in the page cache, and this memory
//! poisons a page when it is freed and counts frees, so a protocol that let a reader
//! reach a reclaimed page, or freed a page twice, fails here.
#![cfg(loom)]

use loom::sync::atomic::{AtomicU64, Ordering};
use pgtable_core::testfmt::TestFormat;
use pgtable_core::{Error, Gather, Iova, PageTable, PhysAddr, Prot, TableMemory, TablePage};
use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

const POISON: u64 = 0xdead_beef_dead_beef;

#[derive(Default)]
struct LoomMemory {
    pages: Mutex<HashMap<u64, (Box<[AtomicU64]>, bool)>>,
    next: Mutex<u64>,
}

impl LoomMemory {
    fn live(&self) -> usize {
        self.pages
            .lock()
            .unwrap()
            .values()
            .filter(|(_, freed)| !freed)
            .count()
    }
}

// SAFETY: pages are boxed slices of (loom) atomics kept alive until the memory drops, so
// pointers stay valid even after a free (which only poisons and marks); phys is unique.
unsafe impl TableMemory for LoomMemory {
    fn alloc(&self, size: usize, align: usize) -> Option<TablePage> {
        let mut next = self.next.lock().unwrap();
        // Synthetic physical addresses, 4 KiB apart (the test format keeps table
        // addresses 4 KiB aligned), starting away from zero.
        let phys = (*next)
            .max(0x10_0000)
            .next_multiple_of((align as u64).max(0x1000));
        *next = phys + (size as u64).max(0x1000);
        let entries: Box<[AtomicU64]> = (0..size / 8).map(|_| AtomicU64::new(0)).collect();
        let virt = NonNull::new(entries.as_ptr() as *mut u8).unwrap();
        self.pages.lock().unwrap().insert(phys, (entries, false));
        Some(TablePage { virt, phys, size })
    }

    unsafe fn free(&self, page: TablePage) {
        let mut pages = self.pages.lock().unwrap();
        let (entries, freed) = pages.get_mut(&page.phys).expect("freeing an unknown page");
        assert!(!*freed, "page {:#x} freed twice", page.phys);
        *freed = true;
        for e in entries.iter() {
            e.store(POISON, Ordering::Relaxed);
        }
    }

    fn phys_to_virt(&self, phys: u64, _len: usize) -> Option<NonNull<u8>> {
        let pages = self.pages.lock().unwrap();
        let base = *pages.keys().filter(|&&p| p <= phys).max()?;
        let off = (phys - base) as usize;
        NonNull::new(unsafe_ptr(&pages[&base].0, off))
    }
}

fn unsafe_ptr(entries: &[AtomicU64], byte_off: usize) -> *mut u8 {
    entries[byte_off / 8..].as_ptr() as *mut u8
}

/// Bound preemptions (the races of interest need at most two) and allow the larger
/// number of branches the table walks and the epoch produce.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.max_branches = 1_000_000;
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

/// Two levels of four 32-byte entries (`TestFormat::tiny`): pages are 32 bytes.
fn two_level(mem: &Arc<LoomMemory>) -> PageTable<TestFormat, LoomMemory> {
    PageTable::new(TestFormat::tiny(), mem.clone()).unwrap()
}

const PG: u64 = 32;
const ENTRIES: u64 = 4;

#[test]
fn racing_mutators_install_one_table_level() {
    model(|| {
        let mem = Arc::new(LoomMemory::default());
        let pt = Arc::new(two_level(&mem));
        let t = {
            let pt = pt.clone();
            loom::thread::spawn(move || {
                pt.map_pages(Iova(0), PhysAddr(0x8000), PG, 1, Prot::RW)
                    .unwrap()
            })
        };
        pt.map_pages(Iova(PG), PhysAddr(0x9000), PG, 1, Prot::RW)
            .unwrap();
        t.join().unwrap();
        assert_eq!(pt.iova_to_phys(Iova(0)), Some(PhysAddr(0x8000)));
        assert_eq!(pt.iova_to_phys(Iova(PG)), Some(PhysAddr(0x9000)));
        // One table was installed; the loser's page was kept in the cache.
        let info = pt.info();
        assert_eq!(info.table_pages - info.cached_pages, 2);
        assert_eq!(mem.live() as u64, info.table_pages);
        drop(pt);
        assert_eq!(mem.live(), 0);
    });
}

#[test]
fn reader_walks_through_a_table_being_detached_and_reclaimed() {
    model(|| {
        let mem = Arc::new(LoomMemory::default());
        let pt = Arc::new(two_level(&mem));
        let span = ENTRIES * PG;
        // The tiny format keeps output addresses 4 KiB aligned: one page per call.
        for i in 0..ENTRIES {
            pt.map_pages(
                Iova(i * PG),
                PhysAddr(0x100_0000 + i * 0x1000),
                PG,
                1,
                Prot::RW,
            )
            .unwrap();
        }
        let reader = {
            let pt = pt.clone();
            loom::thread::spawn(move || match pt.translate(Iova(2 * PG + 5)) {
                Ok(t) => assert_eq!(
                    t.pa,
                    PhysAddr(0x100_2000 + 5),
                    "reader saw a reclaimed page"
                ),
                Err(Error::NotMapped(_)) => {}
                Err(e) => panic!("reader saw {e}"),
            })
        };
        let mut g = Gather::new();
        assert_eq!(pt.unmap(Iova(0), span, &mut g).unwrap(), span);
        assert_eq!(g.freed_tables(), 1);
        // Release (the deferred closure may run now or later, when the reader unpinned).
        g.release();
        reader.join().unwrap();
        assert_eq!(pt.iova_to_phys(Iova(2 * PG)), None);
        drop(pt);
        assert_eq!(mem.live(), 0);
    });
}

#[test]
fn a_gather_over_two_tables_frees_nothing_before_release() {
    model(|| {
        let mem = Arc::new(LoomMemory::default());
        let a = two_level(&mem);
        let b = two_level(&mem);
        for pt in [&a, &b] {
            for i in 0..ENTRIES {
                pt.map_pages(
                    Iova(i * PG),
                    PhysAddr(0x10_0000 + i * 0x1000),
                    PG,
                    1,
                    Prot::RW,
                )
                .unwrap();
            }
        }
        let before = mem.live();
        let mut g = Gather::new();
        // Concurrent pins and unpins on another thread let the epoch advance.
        let churn = loom::thread::spawn(|| {
            for _ in 0..2 {
                let guard = pgtable_core::sync::epoch::pin();
                guard.flush();
            }
        });
        assert_eq!(
            a.unmap(Iova(0), ENTRIES * PG, &mut g).unwrap(),
            ENTRIES * PG
        );
        assert_eq!(
            b.unmap(Iova(0), ENTRIES * PG, &mut g).unwrap(),
            ENTRIES * PG
        );
        assert_eq!(g.freed_tables(), 2);
        churn.join().unwrap();
        assert_eq!(mem.live(), before, "a page was freed before the release");
        g.release();
        drop(a);
        drop(b);
        assert_eq!(mem.live(), 0);
    });
}

#[test]
fn racing_detaches_free_a_table_once() {
    model(|| {
        let mem = Arc::new(LoomMemory::default());
        let pt = Arc::new(two_level(&mem));
        let span = ENTRIES * PG;
        pt.map_pages(Iova(0), PhysAddr(0), PG, ENTRIES, Prot::RW)
            .unwrap();
        // Overlapping unmaps are a caller bug, but must stay memory safe.
        let other = {
            let pt = pt.clone();
            loom::thread::spawn(move || {
                let mut g = Gather::new();
                let n = pt.unmap(Iova(0), span, &mut g).unwrap();
                let freed = g.freed_tables();
                g.release();
                (n, freed)
            })
        };
        let mut g = Gather::new();
        let mine = pt.unmap(Iova(0), span, &mut g).unwrap();
        let freed_here = g.freed_tables();
        g.release();
        let (theirs, freed_there) = other.join().unwrap();
        assert!(mine + theirs >= span);
        assert!(freed_here + freed_there <= 1, "both detached the table");
        drop(pt);
        assert_eq!(mem.live(), 0);
    });
}
