//! The flush hook: when the library unlinks tables itself, the hardware's caches are
//! flushed before the pages can be freed, with the entry empty while the hook runs
//! (break-before-make), and only then is the leaf written.

mod common;

use common::memories::{Event, Failing, Logging};
use pgtable_core::testfmt::TestFormat;
use pgtable_core::{ArenaMemory, Error, Gather, Iova, PageTable, PhysAddr, Prot};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const K4: u64 = 0x1000;
const M2: u64 = 0x20_0000;
const G1: u64 = 0x4000_0000;

type Mem = Logging<ArenaMemory>;

/// A table whose hook logs each flush with the entry it finds at `watch` (a physical
/// address in the arena) while it runs.
fn table(watch: Arc<Mutex<u64>>) -> (PageTable<TestFormat, Mem>, Arc<Mem>) {
    let mem = Arc::new(Logging::new(ArenaMemory::new(0x1000_0000, 16 << 20)));
    let log = mem.clone();
    let pt = PageTable::builder(TestFormat::new(), mem.clone())
        .page_cache_bytes(0)
        .flush(move |iova: Iova, size: u64| {
            let at = *watch.lock().unwrap();
            let entry = log.inner.read_u64(at).unwrap_or(u64::MAX);
            log.push(Event::Flush {
                iova: iova.0,
                size,
                entry,
            });
        })
        .build()
        .unwrap();
    (pt, mem)
}

/// Lets the epoch run deferred frees until `done` or a timeout.
fn settle(mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() && t0.elapsed() < Duration::from_secs(10) {
        crossbeam_epoch::pin().flush();
        std::thread::yield_now();
    }
}

#[test]
fn an_empty_two_level_subtree_replaced_by_a_1g_leaf_is_flushed_first() {
    let watch = Arc::new(Mutex::new(0));
    let (pt, mem) = table(watch.clone());
    // Root (0x1000_0000), PDPT (..1000), PD (..2000), PT (..3000) for G1 + 0x5000.
    pt.map_pages(Iova(G1 + 0x5000), PhysAddr(0), K4, 1, Prot::RW)
        .unwrap();
    pt.unmap_now(Iova(G1 + 0x5000), K4).unwrap(); // the tables stay, empty
    let flushes = |mem: &Mem| {
        mem.events()
            .into_iter()
            .filter(|e| matches!(e, Event::Flush { .. }))
            .count()
    };
    assert_eq!(flushes(&mem), 1, "unmap_now flushed its range");
    // The PDPT entry for G1 is entry 1 of the page at 0x1000_1000.
    *watch.lock().unwrap() = 0x1000_1000 + 8;
    let before = mem.events().len();
    pt.map_pages(Iova(G1), PhysAddr(2 * G1), G1, 1, Prot::READ)
        .unwrap();
    let t = pt.translate(Iova(G1 + 0x5000)).unwrap();
    assert_eq!((t.pa, t.size, t.level), (PhysAddr(2 * G1 + 0x5000), G1, 2));
    // The leaf was written after the hook returned.
    assert_eq!(mem.inner.read_u64(0x1000_1008), Some((2 * G1) | 0x83));
    settle(|| mem.live().len() == 2);
    let after: Vec<Event> = mem.events()[before..].to_vec();
    assert_eq!(
        after,
        [
            // Break-before-make: the entry is empty while the hook runs, over the whole
            // replaced span, once.
            Event::Flush {
                iova: G1,
                size: G1,
                entry: 0
            },
            // Then (and only then) the PD and the PT go back, children first.
            Event::Free(0x1000_3000),
            Event::Free(0x1000_2000),
        ]
    );
}

#[test]
fn every_replaced_entry_of_one_map_is_flushed_before_its_pages_go() {
    let watch = Arc::new(Mutex::new(0));
    let (pt, mem) = table(watch);
    // Three empty level-0 tables under three 2M entries.
    for i in 0..3 {
        pt.map_pages(Iova(i * M2), PhysAddr(0), K4, 1, Prot::RW)
            .unwrap();
    }
    let mut g = Gather::new();
    for i in 0..3 {
        pt.unmap(Iova(i * M2), K4, &mut g).unwrap();
    }
    g.release();
    let before = mem.events().len();
    pt.map(Iova(0), PhysAddr(0), 3 * M2, Prot::RW).unwrap();
    settle(|| mem.live().len() == 3);
    let after: Vec<Event> = mem.events()[before..].to_vec();
    let pos = |want: &dyn Fn(&Event) -> bool| {
        after
            .iter()
            .position(want)
            .unwrap_or_else(|| panic!("not in {after:x?}"))
    };
    for i in 0..3u64 {
        let flush = pos(&|e| matches!(e, Event::Flush { iova, size: M2, .. } if *iova == i * M2));
        let free = pos(&|e| *e == Event::Free(0x1000_3000 + i * 0x1000));
        assert!(flush < free, "{after:x?}");
    }
}

#[test]
fn unmap_now_flushes_the_range_once_before_releasing_its_tables() {
    let watch = Arc::new(Mutex::new(0));
    let (pt, mem) = table(watch);
    pt.map_pages(Iova(M2), PhysAddr(0), K4, 512, Prot::RW)
        .unwrap();
    let before = mem.events().len();
    assert_eq!(pt.unmap_now(Iova(M2), M2), Ok(M2));
    settle(|| mem.live().len() == 3);
    let after: Vec<Event> = mem.events()[before..].to_vec();
    assert!(matches!(
        after[..],
        [
            Event::Flush {
                iova: M2,
                size: M2,
                ..
            },
            Event::Free(0x1000_3000)
        ]
    ));
    // Without a hook, nothing is called (and nothing is needed: no hardware walks it).
    let plain = PageTable::new(TestFormat::new(), Arc::new(ArenaMemory::new(0, 1 << 20))).unwrap();
    plain
        .map_pages(Iova(0), PhysAddr(0), K4, 1, Prot::RW)
        .unwrap();
    assert_eq!(plain.unmap_now(Iova(0), K4), Ok(K4));
}

#[test]
fn a_failed_map_is_rolled_back_through_the_hook() {
    // Memory that maps only its first pages back: the map reserves its tables, installs
    // the first ones, and then meets a page the memory will not map: everything it did
    // is undone, through the flush hook, and nothing leaks.
    let watch = Arc::new(Mutex::new(0));
    let mem = Arc::new(Logging::new(common::memories::Flaky::new(
        ArenaMemory::new(0x1000_0000, 16 << 20),
        4, // root, PDPT, PD, one PT
    )));
    let log = mem.clone();
    let pt = PageTable::builder(TestFormat::new(), mem.clone())
        .page_cache_bytes(0)
        .flush(move |iova: Iova, size: u64| {
            let _ = &watch;
            log.push(Event::Flush {
                iova: iova.0,
                size,
                entry: 0,
            })
        })
        .build()
        .unwrap();
    // 2M + 4K with misaligned pa: 513 4K pages over two level-0 tables; the second is
    // one the memory refuses to map back.
    let e = pt
        .map(Iova(0), PhysAddr(K4), M2 + K4, Prot::RW)
        .unwrap_err();
    assert!(matches!(e, Error::TableUnreachable { .. }), "{e}");
    assert_eq!(pt.iova_to_phys(Iova(0)), None);
    assert_eq!(pt.iova_to_phys(Iova(M2)), None);
    let flushed: Vec<_> = mem
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::Flush { .. }))
        .collect();
    assert_eq!(
        flushed,
        [Event::Flush {
            iova: 0,
            size: M2,
            entry: 0
        }],
        "the mapped prefix was flushed once"
    );
    drop(pt);
    assert!(mem.live().is_empty(), "nothing leaked");
}

#[test]
fn out_of_memory_at_any_allocation_leaves_the_table_exactly_as_it_was() {
    use std::sync::atomic::Ordering::Relaxed;
    // A map that needs many tables: 5 x 2M of 4K pages (misaligned pa) across a 1G
    // boundary: two PDs, six PTs. Fail every k-th allocation, for every k it reaches.
    let (iova, len) = (Iova(G1 - 3 * M2), 5 * M2);
    for every in 2..=12 {
        let mem = Arc::new(Failing::new(ArenaMemory::new(0x1000_0000, 16 << 20), every));
        let pt = PageTable::new(TestFormat::new(), mem.clone()).unwrap();
        // Something already there (if memory allows), so "as it was" is not "empty".
        let _ = pt.map_pages(iova - K4, PhysAddr(0), K4, 1, Prot::READ);
        pt.trim_page_cache();
        let leaves = |pt: &PageTable<TestFormat, _>| pt.dump_string();
        let was = (leaves(&pt), pt.info().table_pages, mem.live.load(Relaxed));
        match pt.map(iova, PhysAddr(K4), len, Prot::RW) {
            Ok(_) => assert!(every > 9, "k={every}: the map needs up to 9 allocations"),
            Err(e) => {
                assert_eq!(e, Error::NoMemory { mapped: 0 }, "k={every}");
                // Pages reserved before the failure went to the cache: give them back.
                pt.trim_page_cache();
                let now = (leaves(&pt), pt.info().table_pages, mem.live.load(Relaxed));
                assert_eq!(now, was, "k={every}: the table or its memory changed");
            }
        }
        drop(pt);
        assert_eq!(mem.live.load(Relaxed), 0, "k={every}: leaked");
    }
}
