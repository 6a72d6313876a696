//! Each hole the v0.1 core had, as a test that safe code can no longer crash the process
//! or free a page the hardware may still reach.

mod common;

use common::memories::{Flaky, Logging};
use common::napot::Napot;
use pgtable_core::conformance::CountingMemory;
use pgtable_core::testfmt::TestFormat;
use pgtable_core::{
    ArenaMemory, Entry, Error, Fault, ForeignTable, Format, Gather, Geometry, HostMemory, HwInfo,
    Iova, PageTable, PhysAddr, Prot,
};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const K4: u64 = 0x1000;
const M2: u64 = 0x20_0000;

fn leaves<F: Format, M: pgtable_core::TableMemory>(pt: &PageTable<F, M>) -> Vec<(Iova, u64)> {
    let mut v = vec![];
    pt.walk(.., |t| {
        v.push((t.iova, t.size));
        ControlFlow::<()>::Continue(())
    })
    .unwrap();
    v
}

#[test]
fn a_table_page_the_format_cannot_encode_is_refused_and_nothing_leaks() {
    // The test format's table pointers hold bits 51:12; an arena above 2^52 hands out
    // pages it cannot point to (VT-d with a 40-bit HAW over memory above 2^40 is the
    // same hole, tested in vtd-format).
    let mem = Arc::new(CountingMemory::new(ArenaMemory::new(1 << 52, 1 << 20)));
    let pt = PageTable::new(TestFormat::new(), mem.clone()).unwrap();
    assert_eq!(mem.live(), 1, "the root is no entry: it may live anywhere");
    let e = pt
        .map_pages(Iova(0x1000), PhysAddr(0x2000), K4, 1, Prot::RW)
        .unwrap_err();
    assert!(
        matches!(e, Error::TableUnencodable { pa } if pa.0 >= 1 << 52),
        "{e}"
    );
    assert_eq!(pt.iova_to_phys(Iova(0x1000)), None);
    assert!(leaves(&pt).is_empty());
    assert_eq!(pt.map(Iova(0), PhysAddr(0), M2, Prot::RW).unwrap_err(), e);
    drop(pt);
    assert_eq!(mem.live(), 0, "the refused page went back");
    assert_eq!(mem.bad_frees(), 0);
}

/// The test format with a `decode` that lies about table addresses: what a safe `Format`
/// impl could do before `Format` became an `unsafe trait`.
#[derive(Debug, Clone)]
struct Liar;

// SAFETY: deliberately broken for this test: decode does not return the address
// encode_table was given. The walker's install check must catch it before any entry is
// written, which is what this test asserts.
unsafe impl Format for Liar {
    fn geometry(&self) -> Geometry {
        TestFormat::new().geometry()
    }
    fn name(&self) -> &'static str {
        "liar"
    }
    fn level_name(&self, level: u32) -> &'static str {
        TestFormat::new().level_name(level)
    }
    fn encode_leaf(&self, pa: u64, level: u32, prot: Prot) -> u64 {
        TestFormat::new().encode_leaf(pa, level, prot)
    }
    fn encode_table(&self, pa: u64, level: u32) -> u64 {
        TestFormat::new().encode_table(pa, level)
    }
    fn decode(&self, raw: u64, level: u32) -> Entry {
        match TestFormat::new().decode(raw, level) {
            Entry::Table(pa) => Entry::Table(pa ^ 0x10_0000),
            e => e,
        }
    }
    fn hw_info(&self, root_phys: u64) -> HwInfo {
        TestFormat::new().hw_info(root_phys)
    }
}

#[test]
fn a_format_whose_decode_lies_cannot_make_the_walker_follow_it() {
    let mem = Arc::new(CountingMemory::new(HostMemory::new()));
    let pt = PageTable::new(Liar, mem.clone()).unwrap();
    let e = pt
        .map_pages(Iova(0), PhysAddr(0), K4, 1, Prot::RW)
        .unwrap_err();
    assert!(matches!(e, Error::TableUnencodable { .. }), "{e}");
    assert!(leaves(&pt).is_empty());
    drop(pt); // the v0.1 core crashed here
    assert_eq!(mem.live(), 0);
}

#[test]
fn a_foreign_view_checks_every_address_against_its_memory() {
    let mem = Arc::new(ArenaMemory::new(0x100_0000, 1 << 20));
    // An arbitrary root outside the memory is refused (the v0.1 core crashed here
    // through HostMemory, which no longer views foreign tables at all).
    let e = ForeignTable::new(TestFormat::new(), mem.clone(), PhysAddr(0xdead_0000)).unwrap_err();
    assert!(matches!(
        e,
        Error::Fault {
            fault: Fault::BadTableAddress { pa: 0xdead_0000 },
            ..
        }
    ));
    // A root inside whose entry points outside: the translation faults, with the reason.
    let pt = PageTable::new(TestFormat::new(), mem.clone()).unwrap();
    pt.map_pages(Iova(0), PhysAddr(0), K4, 1, Prot::RW).unwrap();
    let view = ForeignTable::new(TestFormat::new(), mem.clone(), pt.root_phys()).unwrap();
    assert_eq!(view.translate(Iova(0)).unwrap().pa, PhysAddr(0));
    poke(&mem, pt.root_phys().0, 0x7777_0000_1001);
    assert_eq!(
        view.translate(Iova(0)),
        Err(Error::Fault {
            iova: Iova(0),
            fault: Fault::BadTableAddress {
                pa: 0x7777_0000_1000
            }
        })
    );
    assert!(leaves_of(&view).is_empty());
}

fn leaves_of<F: Format>(view: &ForeignTable<F, ArenaMemory>) -> Vec<Iova> {
    let mut v = vec![];
    view.walk(.., |t| {
        v.push(t.iova);
        ControlFlow::<()>::Continue(())
    })
    .unwrap();
    v
}

/// Overwrites a word of the arena, as a guest would.
fn poke(mem: &ArenaMemory, pa: u64, value: u64) {
    use pgtable_core::ViewMemory;
    let p = mem.view(pa, 8).unwrap();
    // SAFETY: an aligned word inside the arena; table words are accessed atomically.
    unsafe { (*p.as_ptr().cast::<std::sync::atomic::AtomicU64>()).store(value, Ordering::Release) };
}

#[test]
fn memory_that_stops_mapping_its_pages_gets_errors_not_crashes() {
    // phys_to_virt refuses every page after the root: the first install fails with
    // TableUnreachable (C: -EIO), not -EEXIST, and nothing leaks.
    let mem = Arc::new(CountingMemory::new(Flaky::new(HostMemory::new(), 1)));
    let pt = PageTable::new(TestFormat::new(), mem.clone()).unwrap();
    let e = pt
        .map_pages(Iova(0), PhysAddr(0), K4, 1, Prot::RW)
        .unwrap_err();
    assert!(matches!(e, Error::TableUnreachable { .. }), "{e}");
    drop(pt);
    assert_eq!((mem.live(), mem.bad_frees()), (0, 0));

    // It breaks after tables were installed: reads and unmaps report or stop, the drop
    // frees what it can reach, never twice.
    let mem = Arc::new(CountingMemory::new(Flaky::new(HostMemory::new(), u64::MAX)));
    let pt = PageTable::new(TestFormat::new(), mem.clone()).unwrap();
    pt.map_pages(Iova(0), PhysAddr(0), K4, 4, Prot::RW).unwrap();
    mem.inner().broken.store(true, Ordering::Relaxed);
    assert!(matches!(
        pt.translate(Iova(0)),
        Err(Error::TableUnreachable { .. })
    ));
    assert_eq!(pt.iova_to_phys(Iova(0)), None);
    let mut g = Gather::new();
    assert_eq!(pt.unmap(Iova(0), 4 * K4, &mut g), Ok(0));
    assert!(g.is_empty());
    assert!(matches!(
        pt.map_pages(Iova(0x8000), PhysAddr(0), K4, 1, Prot::RW),
        Err(Error::TableUnreachable { .. })
    ));
    drop(pt);
    assert_eq!(mem.bad_frees(), 0);
    assert_eq!(
        mem.live(),
        3,
        "the tables below the root could not be reached"
    );
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "dropped without release")]
fn a_gather_dropped_without_release_is_a_bug_report() {
    let pt = PageTable::new(TestFormat::new(), Arc::new(HostMemory::new())).unwrap();
    pt.map_pages(Iova(0), PhysAddr(0), K4, 1, Prot::RW).unwrap();
    // The v0.1 core released (and could free) here, before any invalidation.
    let _ = pt.unmap(Iova(0), K4, &mut Gather::new());
}

#[test]
fn a_gather_over_two_tables_of_two_formats_frees_nothing_before_release() {
    // Table A: the test format on a logging arena; table B: Sv48+Svnapot on host memory.
    let arena = Arc::new(Logging::new(ArenaMemory::with_poison(
        0x4000_0000,
        8 << 20,
        !0,
    )));
    let host = Arc::new(Logging::new(HostMemory::new()));
    let a = PageTable::builder(TestFormat::new(), arena.clone())
        .page_cache_bytes(0)
        .build()
        .unwrap();
    let b = PageTable::builder(Napot, host.clone())
        .page_cache_bytes(0)
        .build()
        .unwrap();
    // Concurrent traffic on a third table pins and unpins the epoch many times, and
    // frees pages of its own, so reclamation keeps running while the gather is held.
    let busy = PageTable::new(TestFormat::new(), Arc::new(HostMemory::new())).unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (busy, stop) = (&busy, &stop);
            s.spawn(move || {
                let base = (t + 1) << 30;
                while !stop.load(Ordering::Relaxed) {
                    busy.map_pages(Iova(base), PhysAddr(0), K4, 512, Prot::RW)
                        .unwrap();
                    assert_eq!(busy.unmap_now(Iova(base), M2), Ok(M2));
                    crossbeam_epoch::pin().flush();
                }
            });
        }
        for round in 0..20u64 {
            let iova = Iova(round * M2);
            a.map_pages(iova, PhysAddr(0), K4, 512, Prot::RW).unwrap();
            b.map_pages(iova, PhysAddr(0), K4, 512, Prot::RW).unwrap();
            let held_a = arena.live();
            let held_b = host.live();
            let mut g = Gather::new();
            assert_eq!(a.unmap(iova, M2, &mut g), Ok(M2));
            assert_eq!(b.unmap(iova, M2, &mut g), Ok(M2));
            assert_eq!(g.freed_tables(), 2, "one level-0 table of each");
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_millis(20) {
                crossbeam_epoch::pin().flush();
                std::thread::yield_now();
            }
            // The v0.1 core freed A's page as soon as B's arrived in the gather.
            assert_eq!(
                arena.live(),
                held_a,
                "round {round}: a page of A was freed early"
            );
            assert_eq!(
                host.live(),
                held_b,
                "round {round}: a page of B was freed early"
            );
            g.release();
            // After the release, both go back once the epoch allows.
            let t0 = Instant::now();
            while (arena.live().len() == held_a.len() || host.live().len() == held_b.len())
                && t0.elapsed() < Duration::from_secs(10)
            {
                crossbeam_epoch::pin().flush();
                std::thread::yield_now();
            }
            assert_eq!(arena.live().len(), held_a.len() - 1, "round {round}");
            assert_eq!(host.live().len(), held_b.len() - 1, "round {round}");
        }
        stop.store(true, Ordering::Relaxed);
    });
}
