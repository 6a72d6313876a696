//! One test per rule of docs/design.md "Semantics", on the test format.

use pgtable_core::testfmt::TestFormat;
use pgtable_core::{
    ArenaMemory, Error, Gather, HostMemory, Iova, PageTable, PhysAddr, Prot, Translation, page_runs,
};
use rand::{Rng, SeedableRng, rngs::SmallRng};
use std::ops::ControlFlow;
use std::sync::Arc;

const K4: u64 = 0x1000;
const M2: u64 = 0x20_0000;
const G1: u64 = 0x4000_0000;

type Pt = PageTable<TestFormat, ArenaMemory>;

fn table() -> Pt {
    PageTable::new(
        TestFormat::new(),
        Arc::new(ArenaMemory::new(0x1000_0000, 16 << 20)),
    )
    .unwrap()
}

fn leaves(pt: &Pt) -> Vec<Translation> {
    let mut v = Vec::new();
    pt.walk(.., |t| {
        v.push(*t);
        ControlFlow::<()>::Continue(())
    })
    .unwrap();
    v
}

/// Waits (bounded) until reclamation has moved `want` pages into the page cache.
fn settle(pt: &Pt, want: u64) -> u64 {
    for _ in 0..10_000 {
        if pt.info().cached_pages == want {
            break;
        }
        crossbeam_epoch_flush();
    }
    pt.info().cached_pages
}

fn crossbeam_epoch_flush() {
    // Pin/flush cycles let the global epoch advance and run deferred frees.
    crossbeam_epoch::pin().flush();
    std::thread::yield_now();
}

#[test]
fn map_over_a_mapping_fails_and_keeps_pages_before_it() {
    let pt = table();
    pt.map_pages(Iova(0x3000), PhysAddr(0x9000), K4, 1, Prot::READ)
        .unwrap();
    let before = leaves(&pt);
    let err = pt
        .map_pages(Iova(0x1000), PhysAddr(0x10_0000), K4, 4, Prot::RW)
        .unwrap_err();
    assert_eq!(
        err,
        Error::Exists {
            iova: Iova(0x3000),
            mapped: 0x2000
        }
    );
    // Pages before the clash stay mapped, the clashing one is untouched, none after it.
    assert_eq!(pt.iova_to_phys(Iova(0x1000)), Some(PhysAddr(0x10_0000)));
    assert_eq!(pt.iova_to_phys(Iova(0x2000)), Some(PhysAddr(0x10_1000)));
    assert_eq!(pt.translate(Iova(0x3000)).unwrap().pa, PhysAddr(0x9000));
    assert_eq!(pt.translate(Iova(0x3000)).unwrap().prot, Prot::READ);
    assert_eq!(pt.iova_to_phys(Iova(0x4000)), None);
    assert_eq!(leaves(&pt).len(), before.len() + 2);
    // A larger page over a smaller one fails too, and so does a smaller one under a larger.
    assert!(matches!(
        pt.map_pages(Iova(0), PhysAddr(0), M2, 1, Prot::RW),
        Err(Error::Exists { mapped: 0, .. })
    ));
    pt.map_pages(Iova(G1), PhysAddr(G1), M2, 1, Prot::RW)
        .unwrap();
    assert!(matches!(
        pt.map_pages(Iova(G1 + K4), PhysAddr(0), K4, 1, Prot::RW),
        Err(Error::Exists { mapped: 0, .. })
    ));
}

#[test]
fn empty_subtree_is_replaced_by_a_larger_leaf() {
    let pt = table();
    assert_eq!(pt.info().table_pages, 1);
    pt.map_pages(Iova(G1 + 0x5000), PhysAddr(0), K4, 3, Prot::RW)
        .unwrap();
    assert_eq!(pt.info().table_pages, 4); // root + PDPT + PD + PT
    // Unmap in two calls: the tables stay, empty.
    let mut g = Gather::new();
    assert_eq!(pt.unmap(Iova(G1 + 0x5000), K4, &mut g).unwrap(), K4);
    assert_eq!(pt.unmap(Iova(G1 + 0x6000), 2 * K4, &mut g).unwrap(), 2 * K4);
    assert_eq!(g.freed_tables(), 0);
    g.release();
    assert_eq!(pt.info().table_pages, 4);
    // A 1G leaf replaces the empty PD (and its PT).
    pt.map_pages(Iova(G1), PhysAddr(2 * G1), G1, 1, Prot::READ)
        .unwrap();
    let t = pt.translate(Iova(G1 + 0x5000)).unwrap();
    assert_eq!((t.pa, t.size, t.level), (PhysAddr(2 * G1 + 0x5000), G1, 2));
    assert_eq!(leaves(&pt).len(), 1);
    assert_eq!(settle(&pt, 2), 2, "the replaced PD and PT are reclaimed");
    // Cached for new tables until trimmed.
    assert_eq!(pt.info().table_pages, 4);
    assert_eq!(pt.trim_page_cache(), 2);
    assert_eq!(pt.info().table_pages, 2);
}

#[test]
fn unmap_starting_inside_a_larger_leaf_unmaps_nothing() {
    let pt = table();
    pt.map_pages(Iova(M2), PhysAddr(0), M2, 1, Prot::RW)
        .unwrap();
    let mut g = Gather::new();
    assert_eq!(pt.unmap(Iova(M2 + K4), K4, &mut g).unwrap(), 0);
    assert_eq!(pt.unmap_pages(Iova(M2 + K4), K4, 1, &mut g).unwrap(), 0);
    assert!(g.is_empty());
    assert_eq!(pt.iova_to_phys(Iova(M2)), Some(PhysAddr(0)));
}

#[test]
fn unmap_ending_inside_a_larger_leaf_removes_it_whole() {
    let pt = table();
    pt.map_pages(Iova(M2 - K4), PhysAddr(0x1000), K4, 1, Prot::RW)
        .unwrap();
    pt.map_pages(Iova(M2), PhysAddr(4 * M2), M2, 1, Prot::RW)
        .unwrap();
    let mut g = Gather::new();
    assert_eq!(pt.unmap(Iova(M2 - K4), 2 * K4, &mut g).unwrap(), K4 + M2);
    assert_eq!(g.range(), Some(Iova(M2 - K4)..=Iova(2 * M2 - 1)));
    g.release();
    assert!(leaves(&pt).is_empty());
}

#[test]
fn unmap_stops_at_the_first_hole() {
    let pt = table();
    pt.map_pages(Iova(0), PhysAddr(0), K4, 2, Prot::RW).unwrap();
    pt.map_pages(Iova(3 * K4), PhysAddr(0), K4, 2, Prot::RW)
        .unwrap();
    let mut g = Gather::new();
    assert_eq!(pt.unmap(Iova(0), 5 * K4, &mut g).unwrap(), 2 * K4);
    assert_eq!(g.range(), Some(Iova(0)..=Iova(2 * K4 - 1)));
    assert_eq!(leaves(&pt).len(), 2);
    // A hole at the start unmaps nothing.
    assert_eq!(pt.unmap(Iova(2 * K4), 3 * K4, &mut g).unwrap(), 0);
    assert_eq!(leaves(&pt).len(), 2);
    g.release();
}

#[test]
fn whole_span_unmap_frees_the_table_into_the_gather() {
    let arena = Arc::new(ArenaMemory::new(0x1000_0000, 16 << 20));
    let pt = PageTable::new(TestFormat::new(), arena.clone()).unwrap();
    pt.map_pages(Iova(M2), PhysAddr(0), K4, 512, Prot::RW)
        .unwrap();
    assert_eq!(arena.stats().live, 4);
    let mut g = Gather::new();
    assert_eq!(pt.unmap(Iova(M2), M2, &mut g).unwrap(), M2);
    assert_eq!(g.freed_tables(), 1);
    assert_eq!(g.range(), Some(Iova(M2)..=Iova(2 * M2 - 1)));
    // Held by the gather: not given back before release.
    for _ in 0..100 {
        crossbeam_epoch_flush();
    }
    assert_eq!(arena.stats().live, 4);
    assert_eq!(pt.info().table_pages, 4);
    g.release();
    assert_eq!(g.freed_tables(), 0);
    assert_eq!(g.range(), None);
    assert_eq!(settle(&pt, 1), 1, "the PT went to the page cache");
    assert_eq!(arena.stats().live, 4);
    assert_eq!(pt.trim_page_cache(), 1);
    assert_eq!(arena.stats().live, 3);
    drop(pt);
    assert_eq!(arena.stats().live, 0);
    assert_eq!(arena.stats().bad_frees, 0);
}

#[test]
fn gather_released_after_the_table_is_dropped_frees_its_pages() {
    let arena = Arc::new(ArenaMemory::new(0x1000_0000, 16 << 20));
    let pt = PageTable::new(TestFormat::new(), arena.clone()).unwrap();
    pt.map_pages(Iova(0), PhysAddr(0), K4, 512, Prot::RW)
        .unwrap();
    let mut g = Gather::new();
    assert_eq!(pt.unmap(Iova(0), M2, &mut g).unwrap(), M2);
    drop(pt);
    assert_eq!(arena.stats().live, 1, "the gather still holds the PT");
    g.release();
    assert_eq!(arena.stats().live, 0);
}

#[test]
fn map_is_all_or_nothing() {
    let pt = table();
    pt.map_pages(Iova(M2 + 0x10_0000), PhysAddr(0), K4, 1, Prot::RW)
        .unwrap();
    let before = leaves(&pt);
    let pages = pt.info().table_pages;
    let err = pt.map(Iova(0), PhysAddr(0), 2 * M2, Prot::RW).unwrap_err();
    assert!(matches!(err, Error::Exists { mapped: 0, .. }));
    assert_eq!(leaves(&pt), before);
    assert_eq!(pt.info().table_pages, pages);
    // Out of table memory part way: rolled back too.
    let small = PageTable::new(TestFormat::new(), Arc::new(ArenaMemory::new(0, 1 << 16))).unwrap();
    let err = small
        .map(Iova(0), PhysAddr(K4), 20 * M2, Prot::RW)
        .unwrap_err();
    assert!(matches!(err, Error::NoMemory { mapped: 0 }), "{err:?}");
    assert!(
        small
            .walk(.., |_| ControlFlow::Break(()))
            .unwrap()
            .is_none()
    );
}

#[test]
fn map_picks_the_largest_page_sizes() {
    let pt = table();
    // 4K up to the 2M boundary, 2M pages, then 4K.
    assert_eq!(
        pt.map(
            Iova(M2 - 2 * K4),
            PhysAddr(M2 - 2 * K4),
            2 * K4 + 2 * M2 + K4,
            Prot::RW
        ),
        Ok(2 * K4 + 2 * M2 + K4)
    );
    let sizes: Vec<u64> = leaves(&pt).iter().map(|t| t.size).collect();
    assert_eq!(sizes, [K4, K4, M2, M2, K4]);
    // Different alignment of iova and pa: only 4K pages.
    assert_eq!(pt.map(Iova(G1), PhysAddr(G1 + K4), M2, Prot::RW), Ok(M2));
    assert_eq!(pt.translate(Iova(G1)).unwrap().size, K4);
}

#[test]
fn page_size_choice_equals_brute_force() {
    let bitmap = K4 | M2 | G1;
    let mut rng = SmallRng::seed_from_u64(7);
    for _ in 0..4_000 {
        let iova = rng.gen_range(0..1u64 << 33) & !(K4 - 1);
        let pa = if rng.gen_bool(0.5) {
            iova ^ (rng.gen_range(0..4u64) << 21)
        } else {
            rng.gen_range(0..1u64 << 33) & !(K4 - 1)
        };
        let len = if rng.gen_bool(0.1) {
            rng.gen_range(1..1u64 << 19)
        } else {
            rng.gen_range(1..1u64 << 10)
        } * K4;
        let mut want = Vec::new();
        let (mut i, mut p, mut l) = (iova, pa, len);
        while l > 0 {
            let s = [G1, M2, K4]
                .into_iter()
                .find(|&s| i % s == 0 && p % s == 0 && s <= l)
                .unwrap();
            want.push(s);
            i += s;
            p += s;
            l -= s;
        }
        let got: Vec<u64> = page_runs(bitmap, iova, pa, len)
            .into_iter()
            .flat_map(|(s, c)| std::iter::repeat_n(s, c as usize))
            .collect();
        assert_eq!(got, want, "{iova:#x} -> {pa:#x} len {len:#x}");
    }
}

#[test]
fn bad_arguments_are_refused_and_change_nothing() {
    let pt = table();
    pt.map_pages(Iova(0), PhysAddr(0), K4, 1, Prot::RW).unwrap();
    let before = leaves(&pt);
    let pages = pt.info().table_pages;
    let cases: Vec<(Result<u64, Error>, Error)> = vec![
        (
            pt.map_pages(Iova(K4), PhysAddr(0), 0x2000, 1, Prot::RW),
            Error::UnsupportedSize(0x2000),
        ),
        (
            pt.map_pages(Iova(0x800), PhysAddr(0), K4, 1, Prot::RW),
            Error::Misaligned {
                what: "iova",
                value: 0x800,
                align: K4,
            },
        ),
        (
            pt.map_pages(Iova(K4), PhysAddr(0x10), K4, 1, Prot::RW),
            Error::Misaligned {
                what: "paddr",
                value: 0x10,
                align: K4,
            },
        ),
        (
            pt.map_pages(Iova(K4), PhysAddr(0), K4, 1, Prot::CACHE),
            Error::BadProt(4),
        ),
        (
            pt.map_pages(Iova(1 << 48), PhysAddr(0), K4, 1, Prot::RW),
            Error::IovaRange {
                start: Iova(1 << 48),
                len: K4,
                bits: 48,
            },
        ),
        (
            pt.map_pages(Iova((1 << 48) - K4), PhysAddr(0), K4, 2, Prot::RW),
            Error::IovaRange {
                start: Iova((1 << 48) - K4),
                len: 2 * K4,
                bits: 48,
            },
        ),
        (
            pt.map_pages(Iova(K4), PhysAddr(1 << 48), K4, 1, Prot::RW),
            Error::PhysRange {
                start: PhysAddr(1 << 48),
                len: K4,
                bits: 48,
            },
        ),
        (
            pt.map(Iova(K4), PhysAddr(0), 0x800, Prot::RW),
            Error::Misaligned {
                what: "length",
                value: 0x800,
                align: K4,
            },
        ),
        (
            pt.unmap(Iova(0x800), K4, &mut Gather::new()),
            Error::Misaligned {
                what: "iova",
                value: 0x800,
                align: K4,
            },
        ),
        (
            pt.unmap_pages(Iova(0), 0x3000, 1, &mut Gather::new()),
            Error::UnsupportedSize(0x3000),
        ),
        (
            pt.unmap(Iova(1 << 48), K4, &mut Gather::new()),
            Error::IovaRange {
                start: Iova(1 << 48),
                len: K4,
                bits: 48,
            },
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, Err(want));
    }
    assert_eq!(pt.map_pages(Iova(K4), PhysAddr(0), K4, 0, Prot::RW), Ok(0));
    assert_eq!(pt.map(Iova(K4), PhysAddr(0), 0, Prot::RW), Ok(0));
    assert_eq!(
        pt.translate(Iova(1 << 48)),
        Err(Error::IovaRange {
            start: Iova(1 << 48),
            len: 1,
            bits: 48
        })
    );
    assert_eq!(pt.translate(Iova(K4)), Err(Error::NotMapped(Iova(K4))));
    assert_eq!(leaves(&pt), before);
    assert_eq!(pt.info().table_pages, pages);
    assert!(
        pt.walk(Iova(1 << 48)..Iova(1 << 48) + K4, |_| {
            ControlFlow::<()>::Continue(())
        })
        .is_err()
    );
}

#[test]
fn walk_is_ascending_and_clipped_to_the_range() {
    let pt = table();
    pt.map(Iova(0), PhysAddr(0), 3 * M2, Prot::RW).unwrap();
    pt.map_pages(Iova(G1), PhysAddr(0), K4, 8, Prot::READ)
        .unwrap();
    let mut got = Vec::new();
    pt.walk(Iova(M2 + K4)..Iova(G1 + 2 * K4), |t| {
        got.push(t.iova.0);
        ControlFlow::<()>::Continue(())
    })
    .unwrap();
    assert_eq!(got, [M2, 2 * M2, G1, G1 + K4]);
    let stopped = pt.walk(.., |t| {
        if t.iova == Iova(G1) {
            ControlFlow::Break(t.size)
        } else {
            ControlFlow::Continue(())
        }
    });
    assert_eq!(stopped, Ok(Some(K4)));
}

#[test]
fn dump_names_levels_and_prints_every_entry_on_the_path() {
    let pt = table();
    pt.map_pages(Iova(0x1234_5000), PhysAddr(0x8_0000_0000), K4, 1, Prot::RW)
        .unwrap();
    pt.map_pages(
        Iova(0x4060_0000),
        PhysAddr(0x1_2340_0000),
        M2,
        1,
        Prot::READ,
    )
    .unwrap();
    let text = pt.dump_string();
    let want = "\
# test format: 4 levels, IAS 48, OAS 48, granule 0x1000, root 0x10000000
IOVA\t\t\tPML4E\t\t\tPDPE\t\t\tPDE\t\t\tPTE\t\t
0x0000000012345000 |\t0x0000000010001001\t0x0000000010002001\t0x0000000010003001\t0x0000000800000007
0x0000000040600000 |\t0x0000000010001001\t0x0000000010004001\t0x0000000123400083
";
    assert_eq!(text, want);
}

#[test]
fn info_reports_geometry_root_and_pages() {
    let pt = table();
    let i = pt.info();
    assert_eq!(
        (i.geometry.levels, i.geometry.ias(), i.table_pages),
        (4, 48, 1)
    );
    assert_eq!(i.hw.root_phys, PhysAddr(0x1000_0000));
    assert_eq!(i.hw.regs[0], 0x1000_0000);
}

#[test]
fn contiguous_groups_are_set_whole_and_broken_whole() {
    let arena = Arc::new(ArenaMemory::new(0x1000_0000, 16 << 20));
    let pt = PageTable::new(TestFormat::new().with_contig(16), arena.clone()).unwrap();
    const CONT: u64 = 1 << 52;
    // 16 aligned pages with aligned pa: the whole group gets the hint; 8 more do not.
    pt.map_pages(Iova(0), PhysAddr(0x10_0000), K4, 24, Prot::RW)
        .unwrap();
    let pt_table = 0x1000_3000;
    for i in 0..24 {
        let raw = arena.read_u64(pt_table + 8 * i).unwrap();
        assert_eq!(raw & CONT != 0, i < 16, "entry {i}: {raw:#x}");
    }
    // Misaligned pa: no hint.
    pt.map_pages(Iova(0x10_0000), PhysAddr(0x10_1000), K4, 16, Prot::RW)
        .unwrap();
    for i in 0..16 {
        assert_eq!(arena.read_u64(pt_table + 8 * (256 + i)).unwrap() & CONT, 0);
    }
    // Unmap one page inside the group: every other member loses the hint first.
    let mut g = Gather::new();
    assert_eq!(pt.unmap(Iova(0x3000), K4, &mut g).unwrap(), K4);
    assert_eq!(
        g.range(),
        Some(Iova(0)..=Iova(0xffff)),
        "the whole group is invalidated"
    );
    g.release();
    for i in 0..16 {
        let raw = arena.read_u64(pt_table + 8 * i).unwrap();
        assert_eq!(raw & CONT, 0);
        assert_eq!(raw == 0, i == 3);
    }
    assert_eq!(pt.iova_to_phys(Iova(0x4000)), Some(PhysAddr(0x10_4000)));
    // Unmapping a whole group needs no rewrite and leaves the range exact.
    pt.map_pages(Iova(0x2_0000), PhysAddr(0x2_0000), K4, 16, Prot::RW)
        .unwrap();
    let mut g = Gather::new();
    assert_eq!(pt.unmap(Iova(0x2_0000), 16 * K4, &mut g).unwrap(), 16 * K4);
    assert_eq!(g.range(), Some(Iova(0x2_0000)..=Iova(0x2_ffff)));
    g.release();
}

#[test]
fn host_memory_tables_are_followable_by_address() {
    let pt = PageTable::new(TestFormat::new(), Arc::new(HostMemory::new())).unwrap();
    pt.map_pages(Iova(0), PhysAddr(0x5000), K4, 1, Prot::RW)
        .unwrap();
    // SAFETY: HostMemory's physical address is the CPU address of the live root.
    let e = unsafe { *(pt.root_phys().0 as *const u64) };
    assert_eq!(e & 1, 1);
}

#[test]
fn tables_gathers_and_memories_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<PageTable<TestFormat, HostMemory>>();
    send_sync::<PageTable<TestFormat, ArenaMemory>>();
    send_sync::<Gather>();
    send_sync::<pgtable_core::ForeignTable<TestFormat, ArenaMemory>>();
}

/// Memory over a plain vector, so a test can write any (corrupt) table image.
#[derive(Debug)]
struct Image {
    words: Vec<std::sync::atomic::AtomicU64>,
    base: u64,
}

// SAFETY: `view` only returns pointers inside the vector, which lives as long as `self`.
unsafe impl pgtable_core::ViewMemory for Image {
    fn view(&self, phys: u64, len: usize) -> Option<std::ptr::NonNull<u8>> {
        let off = phys.checked_sub(self.base)? as usize;
        (off.is_multiple_of(8) && off + len <= self.words.len() * 8)
            .then(|| std::ptr::NonNull::from(&self.words[off / 8]).cast())
    }
}

#[test]
fn foreign_tables_that_loop_are_walked_within_a_budget() {
    // Every entry of the root points back to the root: the levels bound each path, but
    // the tree it stands for has 512^4 leaves. A walk reads at most its budget of
    // entries, reports every leaf it met on the way, in order, and says it stopped.
    let base = 0x10_0000u64;
    let words = (0..512)
        .map(|_| std::sync::atomic::AtomicU64::new(base | 1))
        .collect();
    let img = Arc::new(Image { words, base });
    let view = pgtable_core::ForeignTable::new(TestFormat::new(), img, PhysAddr(base))
        .unwrap()
        .with_walk_budget(1 << 16);
    let mut next = 0u64;
    let r = view.walk(.., |t| {
        assert_eq!((t.iova, t.pa, t.size), (Iova(next), PhysAddr(base), 0x1000));
        next += 0x1000;
        ControlFlow::<()>::Continue(())
    });
    assert_eq!(r, Err(Error::WalkBudget { entries: 1 << 16 }));
    // Two table entries on the way down, then 127 level-1 entries with their 512
    // leaves each, one more level-1 entry, and the 382 leaves the budget leaves.
    assert_eq!(next / 0x1000, 127 * 512 + 382);
    // The page shared between entries (here the root itself) is reported on request.
    let shared = view.shared_table().unwrap();
    assert_eq!(
        (shared.phys, shared.level, shared.iova),
        (PhysAddr(base), 3, Iova(0))
    );
    let mut out = Vec::new();
    let e = view
        .clone()
        .with_walk_budget(100)
        .dump(&mut out)
        .unwrap_err();
    assert!(e.to_string().contains("budget of 100 entries"), "{e}");
    // A translation is bounded by the level count: three table steps, then the root's
    // entry read as a level-0 leaf.
    let t = view.translate(Iova(0x1234_5000)).unwrap();
    assert_eq!((t.pa, t.level, t.size), (PhysAddr(base), 0, 0x1000));
}
