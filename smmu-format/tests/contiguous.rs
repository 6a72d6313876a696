//! The contiguous hint (docs/formats.md §3.2), entry by entry: whole aligned groups that
//! one map covers carry bit 52; nothing else does; unmapping part of a group clears
//! the bit on the whole group first and widens the invalidation to it.

use pgtable_core::{ArenaMemory, Format, Gather, PageTable, Prot};
use pgtable_core::{Iova, PhysAddr};
use smmu_format::descriptor::CONTIGUOUS;
use smmu_format::{Arm, ArmConfig, Granule, Stage, Stage1, Stage2};
use std::sync::Arc;

const BASE: u64 = 0x1000_0000;

struct Fixture<S: Stage> {
    pt: PageTable<Arm<S>, ArenaMemory>,
    mem: Arc<ArenaMemory>,
}

impl<S: Stage> Fixture<S> {
    fn new(granule: u64, hint: bool) -> Self {
        let cfg = ArmConfig::new(granule, 48, 48).with_contiguous_hint(hint);
        let mem = Arc::new(ArenaMemory::new(BASE, 1 << 24));
        let pt = PageTable::new(Arm::<S>::new(cfg).unwrap(), mem.clone()).unwrap();
        Fixture { pt, mem }
    }

    /// The raw entry of `level` that maps `iova`, read through the arena by walking
    /// the table words (not through the core).
    fn entry(&self, iova: u64, level: u32) -> u64 {
        let geo = *self.pt.geometry();
        let mut table = self.pt.root_phys().0;
        let mut l = geo.top();
        loop {
            let raw = self
                .mem
                .read_u64(table + 8 * geo.index(iova, l) as u64)
                .unwrap();
            if l == level {
                return raw;
            }
            assert_eq!(raw & 3, 3, "no table above {iova:#x} at level {l}");
            table = smmu_format::descriptor::unpack_address(raw, self.pt.format().granule());
            l -= 1;
        }
    }

    /// The entries of `count` pages of `level` from `iova`.
    fn entries(&self, iova: u64, level: u32, count: u64) -> Vec<u64> {
        let span = self.pt.geometry().entry_span(level);
        (0..count)
            .map(|i| self.entry(iova + i * span, level))
            .collect()
    }

    fn expected(&self, pa: u64, level: u32, count: u64, prot: Prot, contig: bool) -> Vec<u64> {
        let span = self.pt.geometry().entry_span(level);
        let bit = if contig { CONTIGUOUS } else { 0 };
        (0..count)
            .map(|i| self.pt.format().encode_leaf(pa + i * span, level, prot) | bit)
            .collect()
    }
}

fn granule_of(bytes: u64) -> Granule {
    Granule::from_bytes(bytes).unwrap()
}

/// Mapping whole groups, runs that are misaligned in IOVA or PA, and partial groups,
/// at L3 and L2, for one granule and stage.
fn groups_are_marked_exactly<S: Stage>(granule: u64) {
    let prot = Prot::RW | Prot::CACHE;
    for level in [0u32, 1] {
        let f = Fixture::<S>::new(granule, true);
        let n = granule_of(granule).contig_entries(level) as u64;
        assert_eq!(f.pt.format().contig_entries(level), n as usize);
        let size = f.pt.geometry().entry_span(level);
        let group = n * size;
        let what = format!("{granule:#x} level {level} ({n} x {size:#x})");

        // A whole aligned group: every entry has the hint and its own address.
        let (iova, pa) = (4 * group, 64 * group);
        f.pt.map_pages(Iova(iova), PhysAddr(pa), size, n, prot)
            .unwrap();
        assert_eq!(
            f.entries(iova, level, n),
            f.expected(pa, level, n, prot, true),
            "{what}"
        );
        assert_eq!(
            f.pt.iova_to_phys(Iova(iova + group - 1)),
            Some(PhysAddr(pa + group - 1)),
            "{what}"
        );

        // Misaligned IOVA: no entry gets the hint.
        let iova = 8 * group + size;
        f.pt.map_pages(Iova(iova), PhysAddr(68 * group + size), size, n, prot)
            .unwrap();
        assert_eq!(
            f.entries(iova, level, n),
            f.expected(68 * group + size, level, n, prot, false)
        );

        // Aligned IOVA, misaligned PA: none either.
        let iova = 12 * group;
        f.pt.map_pages(Iova(iova), PhysAddr(72 * group + size), size, n, prot)
            .unwrap();
        assert_eq!(
            f.entries(iova, level, n),
            f.expected(72 * group + size, level, n, prot, false)
        );

        // One group and a bit: the group is marked, the rest is not.
        let iova = 16 * group;
        f.pt.map_pages(Iova(iova), PhysAddr(80 * group), size, n + 3, prot)
            .unwrap();
        let mut want = f.expected(80 * group, level, n, prot, true);
        want.extend(f.expected(81 * group, level, 3, prot, false));
        assert_eq!(f.entries(iova, level, n + 3), want, "{what}");

        // One page short of a group: nothing.
        let iova = 20 * group;
        f.pt.map_pages(Iova(iova), PhysAddr(88 * group), size, n - 1, prot)
            .unwrap();
        assert_eq!(
            f.entries(iova, level, n - 1),
            f.expected(88 * group, level, n - 1, prot, false)
        );

        // Page by page: nothing (each map covers one page only).
        let iova = 24 * group;
        for i in 0..n {
            f.pt.map_pages(
                Iova(iova + i * size),
                PhysAddr(96 * group + i * size),
                size,
                1,
                prot,
            )
            .unwrap();
        }
        assert_eq!(
            f.entries(iova, level, n),
            f.expected(96 * group, level, n, prot, false)
        );
    }
}

#[test]
fn stage1_groups_every_granule() {
    for g in [4096, 16384, 65536] {
        groups_are_marked_exactly::<Stage1>(g);
    }
}

#[test]
fn stage2_groups_every_granule() {
    for g in [4096, 16384, 65536] {
        groups_are_marked_exactly::<Stage2>(g);
    }
}

#[test]
fn hint_is_off_by_default() {
    let f = Fixture::<Stage1>::new(4096, false);
    assert_eq!(
        (f.pt.format().contig_entries(0), f.pt.format().contig_bit()),
        (1, 0)
    );
    f.pt.map_pages(Iova(0x10_0000), PhysAddr(0x8000_0000), 0x1000, 16, Prot::RW)
        .unwrap();
    assert_eq!(
        f.entries(0x10_0000, 0, 16),
        f.expected(0x8000_0000, 0, 16, Prot::RW, false)
    );
}

#[test]
fn never_at_l1() {
    let f = Fixture::<Stage1>::new(4096, true);
    assert_eq!(f.pt.format().contig_entries(2), 1);
    assert_eq!(f.pt.format().contig_entries(3), 1);
    f.pt.map_pages(Iova(0), PhysAddr(0), 1 << 30, 16, Prot::RW)
        .unwrap();
    assert_eq!(f.entries(0, 2, 16), f.expected(0, 2, 16, Prot::RW, false));
}

#[test]
fn map_picks_groups_too() {
    let f = Fixture::<Stage1>::new(4096, true);
    // 64K + 4K from a 64K boundary: one 16-page group, then one plain page.
    f.pt.map(Iova(0x10_0000), PhysAddr(0x8000_0000), 0x1_1000, Prot::READ)
        .unwrap();
    let mut want = f.expected(0x8000_0000, 0, 16, Prot::READ, true);
    want.extend(f.expected(0x8001_0000, 0, 1, Prot::READ, false));
    assert_eq!(f.entries(0x10_0000, 0, 17), want);
}

/// Unmapping one page of a group: the others lose the hint (and keep everything
/// else), the page is gone, and the gather covers the whole group.
fn partial_unmap_breaks_the_group<S: Stage>(granule: u64) {
    let prot = Prot::RW | Prot::NOEXEC;
    for level in [0u32, 1] {
        let f = Fixture::<S>::new(granule, true);
        let n = granule_of(granule).contig_entries(level) as u64;
        let size = f.pt.geometry().entry_span(level);
        let group = n * size;
        let (iova, pa) = (2 * group, 6 * group);
        f.pt.map_pages(Iova(iova), PhysAddr(pa), size, 2 * n, prot)
            .unwrap();
        assert_eq!(
            f.entries(iova, level, 2 * n),
            f.expected(pa, level, 2 * n, prot, true)
        );

        // One page in the middle of the first group.
        let victim = 3;
        let mut g = Gather::new();
        assert_eq!(
            f.pt.unmap_pages(Iova(iova + victim * size), size, 1, &mut g),
            Ok(size)
        );
        assert_eq!(
            g.range(),
            Some(Iova(iova)..=Iova(iova + group - 1)),
            "whole group invalidated"
        );
        g.release();
        let mut want = f.expected(pa, level, n, prot, false);
        want[victim as usize] = 0;
        want.extend(f.expected(pa + group, level, n, prot, true));
        assert_eq!(
            f.entries(iova, level, 2 * n),
            want,
            "{granule:#x} level {level}"
        );
        assert_eq!(f.pt.iova_to_phys(Iova(iova + victim * size)), None);
        assert_eq!(
            f.pt.iova_to_phys(Iova(iova + (victim + 1) * size)),
            Some(PhysAddr(pa + (victim + 1) * size))
        );

        // A whole group unmapped at once: no rewrite needed, all entries clear.
        let mut g = Gather::new();
        assert_eq!(
            f.pt.unmap_pages(Iova(iova + group), size, n, &mut g),
            Ok(group)
        );
        assert_eq!(
            g.range(),
            Some(Iova(iova + group)..=Iova(iova + 2 * group - 1))
        );
        assert_eq!(f.entries(iova + group, level, n), vec![0; n as usize]);
        g.release();

        // A range straddling two groups: both are broken, the range spans both.
        let (iova, pa) = (10 * group, 20 * group);
        f.pt.map_pages(Iova(iova), PhysAddr(pa), size, 2 * n, prot)
            .unwrap();
        let mut g = Gather::new();
        let start = iova + group - 2 * size;
        assert_eq!(f.pt.unmap_pages(Iova(start), size, 4, &mut g), Ok(4 * size));
        assert_eq!(g.range(), Some(Iova(iova)..=Iova(iova + 2 * group - 1)));
        g.release();
        let mut want = f.expected(pa, level, 2 * n, prot, false);
        for i in n - 2..n + 2 {
            want[i as usize] = 0;
        }
        assert_eq!(f.entries(iova, level, 2 * n), want);
    }
}

#[test]
fn stage1_partial_unmap_every_granule() {
    for g in [4096, 16384, 65536] {
        partial_unmap_breaks_the_group::<Stage1>(g);
    }
}

#[test]
fn stage2_partial_unmap_every_granule() {
    for g in [4096, 16384, 65536] {
        partial_unmap_breaks_the_group::<Stage2>(g);
    }
}
