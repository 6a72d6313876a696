//! Formats whose leaf sizes are not a level's span, and whose contiguous encodings change
//! the output-address field (RISC-V Svnapot, AMD-Vi v1 replicated PTEs), on the one
//! walker: the same batteries every hardware format runs, plus exact run encodings.

mod common;

use common::amdv1::AmdV1;
use common::napot::Napot;
use pgtable_core::conformance::{differential, every_size, stress};
use pgtable_core::{ArenaMemory, Error, Gather, HostMemory, Iova, PageTable, PhysAddr, Prot};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

const K4: u64 = 0x1000;
const K16: u64 = 0x4000;
const K64: u64 = 0x1_0000;
const M2: u64 = 0x20_0000;
const M8: u64 = 0x80_0000;

fn arena() -> Arc<ArenaMemory> {
    Arc::new(ArenaMemory::new(0x1000_0000, 16 << 20))
}

#[test]
fn napot_against_the_model() {
    differential(Napot, Arc::new(HostMemory::new()), 20_000, 11);
    differential(Napot, arena(), 10_000, 12);
    every_size(Napot, arena());
    stress(Napot, Duration::from_millis(400));
}

#[test]
fn replicated_ptes_against_the_model() {
    differential(AmdV1, Arc::new(HostMemory::new()), 20_000, 13);
    differential(AmdV1, arena(), 10_000, 14);
    every_size(AmdV1, arena());
    stress(AmdV1, Duration::from_millis(400));
}

/// The raw entries of the level-0 table holding `iova`.
fn level0(mem: &ArenaMemory, pt_table: u64, first: usize, n: usize) -> Vec<u64> {
    (first..first + n)
        .map(|i| mem.read_u64(pt_table + 8 * i as u64).unwrap())
        .collect()
}

#[test]
fn a_svnapot_page_is_sixteen_identical_entries_with_the_size_in_the_ppn() {
    let mem = arena();
    let pt = PageTable::new(Napot, mem.clone()).unwrap();
    let prot = Prot::RW | Prot::NOEXEC;
    pt.map_pages(Iova(0x3_0000), PhysAddr(0x8_1234_0000), K64, 1, prot)
        .unwrap();
    // Tables were laid out root, L2, L1, L0 in the fresh arena: L0 is the fourth page.
    let l0 = 0x1000_3000;
    let want = (1u64 << 63) | (((0x8_1234_0000u64 | 0x8000) >> 12) << 10) | 0xd7;
    assert_eq!(level0(&mem, l0, 0x30, 16), vec![want; 16]);
    assert_eq!(level0(&mem, l0, 0x2f, 1), vec![0]);
    assert_eq!(level0(&mem, l0, 0x40, 1), vec![0]);
    // Any address inside translates with the page's size.
    let t = pt.translate(Iova(0x3_abcd)).unwrap();
    assert_eq!((t.pa, t.size, t.level), (PhysAddr(0x8_1234_abcd), K64, 0));
    // A walk reports the page once.
    let mut seen = vec![];
    pt.walk(.., |t| {
        seen.push((t.iova, t.size));
        ControlFlow::<()>::Continue(())
    })
    .unwrap();
    assert_eq!(seen, [(Iova(0x3_0000), K64)]);
}

#[test]
fn replicated_ptes_encode_the_size_in_the_address() {
    let mem = arena();
    let pt = PageTable::new(AmdV1, mem.clone()).unwrap();
    pt.map_pages(Iova(0x8000), PhysAddr(0x5000_8000), K16, 1, Prot::RW)
        .unwrap();
    let l0 = 0x1000_3000;
    // PR | NL=7 | IR | IW, address with bit 12 set (16 KiB).
    let want = 0x5000_8000 | 0x1000 | 1 | (7 << 9) | (3 << 61);
    assert_eq!(level0(&mem, l0, 8, 4), vec![want; 4]);
    // An 8 MiB page of four level-1 entries.
    pt.map(Iova(4 * M8), PhysAddr(7 * M8), M8, Prot::READ)
        .unwrap();
    let t = pt.translate(Iova(4 * M8 + 0x12_3456)).unwrap();
    assert_eq!(
        (t.pa, t.size, t.level),
        (PhysAddr(7 * M8 + 0x12_3456), M8, 1)
    );
    assert_eq!(t.prot, Prot::READ);
}

#[test]
fn a_run_is_unmapped_whole_or_not_at_all() {
    for (pt, size) in [
        (PageTable::new(Napot, arena()).unwrap().into_any(), K64),
        (PageTable::new(AmdV1, arena()).unwrap().into_any(), K16),
    ] {
        pt.map_pages(Iova(size), PhysAddr(0x40_0000), size, 2, Prot::RW);
        let mut g = Gather::new();
        // A start inside the page unmaps nothing.
        assert_eq!(pt.unmap(Iova(size + K4), K4, &mut g), 0);
        assert!(g.is_empty());
        // An end inside it removes it whole.
        assert_eq!(pt.unmap(Iova(size), K4, &mut g), size);
        assert_eq!(g.range(), Some(Iova(size)..=Iova(2 * size - 1)));
        assert_eq!(pt.translate(Iova(size)), None);
        assert_eq!(pt.translate(Iova(2 * size)), Some(size));
        // A smaller page cannot go where part of a run is.
        assert!(pt.map_pages(Iova(2 * size + K4), PhysAddr(0), K4, 1, Prot::RW) < 0);
        assert_eq!(pt.unmap(Iova(2 * size), size, &mut g), size);
        g.release();
        // Now a run over an emptied range works again, next to nothing.
        pt.map_pages(Iova(size), PhysAddr(0x80_0000), size, 1, Prot::READ);
        assert_eq!(pt.translate(Iova(size + 8)), Some(size));
    }
}

/// The two formats behind one small interface, so one test body serves both.
trait AnyTable {
    fn map_pages(&self, iova: Iova, pa: PhysAddr, size: u64, n: u64, prot: Prot) -> i64;
    fn unmap(&self, iova: Iova, len: u64, g: &mut Gather) -> u64;
    fn translate(&self, iova: Iova) -> Option<u64>;
}

impl<F: pgtable_core::Format> AnyTable for PageTable<F, ArenaMemory> {
    fn map_pages(&self, iova: Iova, pa: PhysAddr, size: u64, n: u64, prot: Prot) -> i64 {
        match PageTable::map_pages(self, iova, pa, size, n, prot) {
            Ok(b) => b as i64,
            Err(Error::Exists { .. }) => -17,
            Err(e) => panic!("{e}"),
        }
    }
    fn unmap(&self, iova: Iova, len: u64, g: &mut Gather) -> u64 {
        PageTable::unmap(self, iova, len, g).unwrap()
    }
    fn translate(&self, iova: Iova) -> Option<u64> {
        PageTable::translate(self, iova).ok().map(|t| t.size)
    }
}

trait IntoAny {
    fn into_any(self) -> Box<dyn AnyTable>;
}

impl<F: pgtable_core::Format> IntoAny for PageTable<F, ArenaMemory> {
    fn into_any(self) -> Box<dyn AnyTable> {
        Box::new(self)
    }
}

#[test]
fn run_sizes_are_chosen_by_map() {
    let pt = PageTable::new(AmdV1, arena()).unwrap();
    // 4K, 16K, 64K then 2M, 8M pages as alignment allows.
    pt.map(Iova(0x3000), PhysAddr(0x3000), 2 * M8 - 0x3000, Prot::RW)
        .unwrap();
    let mut sizes = vec![];
    pt.walk(.., |t| {
        sizes.push(t.size);
        ControlFlow::<()>::Continue(())
    })
    .unwrap();
    let total: u64 = sizes.iter().sum();
    assert_eq!(total, 2 * M8 - 0x3000);
    assert_eq!(&sizes[..4], &[K4, K16, K16, K16]);
    assert_eq!(sizes.last(), Some(&M8));
    assert!(sizes.contains(&K64) && sizes.contains(&M2) && sizes.contains(&M8));
}
