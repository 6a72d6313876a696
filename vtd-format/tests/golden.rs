//! docs/formats.md §5.1 and §5.2 worked examples, byte for byte, with the tables placed at
//! the examples' physical addresses by an `ArenaMemory`.

use pgtable_core::{ArenaMemory, Format, PageTable, Prot, TableMemory, TablePage};
use pgtable_core::{Iova, PhysAddr};
use std::collections::BTreeMap;
use std::sync::Arc;
use vtd_format::{Agaw, ContextEntry, PasidEntry, VtdFs, VtdSs};

const SS_BASE: u64 = 0x1000_0000;
const FS_BASE: u64 = 0x2000_0000;
const IOVA: u64 = 0x1234_5000;
const PA: u64 = 0x8_0000_0000;
const PAGE: usize = 0x1000;

fn arena(base: u64) -> Arc<ArenaMemory> {
    Arc::new(ArenaMemory::new(base, 1 << 20))
}

/// An arena of 16 pages whose next allocations land, in order, on the pages `order`
/// (page indices from `base`): everything is handed out, then those pages are given
/// back first-in first-out. Places a top table above the tables below it.
fn arena_in_order(base: u64, order: &[usize]) -> Arc<ArenaMemory> {
    let mem = ArenaMemory::new(base, 16 * PAGE);
    let pages: Vec<TablePage> = (0..16).map(|_| mem.alloc(PAGE, PAGE).unwrap()).collect();
    for &i in order {
        // SAFETY: each page came from `mem.alloc` above, is freed once and not used
        // again by this function.
        unsafe { mem.free(pages[i]) };
    }
    Arc::new(mem)
}

/// Every non-zero word in the arena, by physical address.
fn nonzero_words(mem: &ArenaMemory) -> BTreeMap<u64, u64> {
    (0..mem.capacity() as u64 / 8)
        .map(|i| mem.base() + 8 * i)
        .filter_map(|pa| mem.read_u64(pa).filter(|&v| v != 0).map(|v| (pa, v)))
        .collect()
}

/// Asserts the arena holds exactly `words` and nothing else.
fn assert_words(mem: &ArenaMemory, words: &[(u64, u64)]) {
    let want: BTreeMap<u64, u64> = words.iter().copied().collect();
    let got = nonzero_words(mem);
    let hex = |m: &BTreeMap<u64, u64>| {
        m.iter()
            .map(|(a, v)| format!("[{a:#x}]={v:#018x}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(hex(&got), hex(&want));
}

// ------------------------------------------------------------------ §5.1 second stage

const SS_4LEVEL: [(u64, u64); 4] = [
    (0x1000_0000, 0x1000_1003),
    (0x1000_1000, 0x1000_2003),
    (0x1000_2488, 0x1000_3003),
    (0x1000_3a28, 0x8_0000_0003),
];

#[test]
fn ss_4level_rw_4k() {
    let mem = arena(SS_BASE);
    let pt = PageTable::new(VtdSs::new(48, 48).unwrap(), mem.clone()).unwrap();
    assert_eq!(pt.root_phys(), PhysAddr(0x1000_0000));
    pt.map_pages(Iova(IOVA), PhysAddr(PA), 0x1000, 1, Prot::RW)
        .unwrap();
    assert_words(&mem, &SS_4LEVEL);
    assert_eq!(pt.info().hw.root_phys, PhysAddr(0x1000_0000));
    assert_eq!(pt.info().hw.regs, [0x1000_0000, 2, 0, 0]);
    let t = pt.translate(Iova(IOVA + 0x123)).unwrap();
    assert_eq!(
        (t.pa, t.size, t.level, t.prot),
        (PhysAddr(PA + 0x123), 0x1000, 0, Prot::RW)
    );
}

#[test]
fn ss_force_snoop_leaf() {
    let mem = arena(SS_BASE);
    let pt = PageTable::new(VtdSs::new(48, 48).unwrap(), mem.clone()).unwrap();
    pt.map_pages(Iova(IOVA), PhysAddr(PA), 0x1000, 1, Prot::RW | Prot::CACHE)
        .unwrap();
    let mut words = SS_4LEVEL;
    words[3].1 = 0x8_0000_0803;
    assert_words(&mem, &words);
    assert_eq!(
        pt.translate(Iova(IOVA)).unwrap().prot,
        Prot::RW | Prot::CACHE
    );
}

#[test]
fn ss_context_and_pasid_entries() {
    let f = VtdSs::new(48, 48).unwrap();
    let ce = f.context_entry(PhysAddr(0x1000_0000), 1);
    assert_eq!(ce.lo, 0x0000_0000_1000_0001);
    assert_eq!(ce.hi, 0x0000_0000_0000_0102);
    assert_eq!(ce, ContextEntry::second_stage(0x1000_0000, Agaw::Bits48, 1));
    let pe = f.pasid_entry(PhysAddr(0x1000_0000), 1);
    assert_eq!(pe.val, [0x0000_0000_1000_0089, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        pe.with_pwsnp(true).val,
        [0x0000_0000_1000_0089, 0x0080_0001, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(pe, PasidEntry::second_stage(0x1000_0000, Agaw::Bits48, 1));
    // Other depths only change AW.
    assert_eq!(
        VtdSs::new(39, 48)
            .unwrap()
            .context_entry(PhysAddr(0x1000_1000), 1)
            .hi,
        0x101
    );
    assert_eq!(
        VtdSs::new(57, 48)
            .unwrap()
            .pasid_entry(PhysAddr(0x1000_4000), 1)
            .val[0],
        0x1000_408d
    );
}

#[test]
fn ss_3level_uses_the_pdpt_as_root() {
    // Skip one page so the PDPT lands at 0x1000_1000, as in the example.
    let mem = arena(SS_BASE);
    let _skip = mem.alloc(PAGE, PAGE).unwrap();
    let pt = PageTable::new(VtdSs::new(39, 48).unwrap(), mem.clone()).unwrap();
    assert_eq!(pt.root_phys(), PhysAddr(0x1000_1000));
    pt.map_pages(Iova(IOVA), PhysAddr(PA), 0x1000, 1, Prot::RW)
        .unwrap();
    assert_words(&mem, &SS_4LEVEL[1..]);
    assert_eq!(pt.info().hw.regs, [0x1000_1000, 1, 0, 0]);
    let ce = pt.format().context_entry(pt.root_phys(), 1);
    assert_eq!((ce.lo, ce.hi), (0x1000_1001, 0x101));
}

#[test]
fn ss_5level_adds_a_pml5() {
    // PML5 at page 4, then the PML4, PDPT, PD and PT at pages 0..3, as in the example.
    let mem = arena_in_order(SS_BASE, &[4, 0, 1, 2, 3]);
    let pt = PageTable::new(VtdSs::new(57, 48).unwrap(), mem.clone()).unwrap();
    assert_eq!(pt.root_phys(), PhysAddr(0x1000_4000));
    pt.map_pages(Iova(IOVA), PhysAddr(PA), 0x1000, 1, Prot::RW)
        .unwrap();
    let mut words = SS_4LEVEL.to_vec();
    words.push((0x1000_4000, 0x1000_0003));
    assert_words(&mem, &words);
    assert_eq!(pt.info().hw.regs, [0x1000_4000, 3, 0, 0]);
}

#[test]
fn ss_5level_in_allocation_order() {
    // The plain bump order puts the PML5 first; the same words, one table later.
    let mem = arena(SS_BASE);
    let pt = PageTable::new(VtdSs::new(57, 48).unwrap(), mem.clone()).unwrap();
    pt.map_pages(Iova(IOVA), PhysAddr(PA), 0x1000, 1, Prot::RW)
        .unwrap();
    assert_words(
        &mem,
        &[
            (0x1000_0000, 0x1000_1003),
            (0x1000_1000, 0x1000_2003),
            (0x1000_2000, 0x1000_3003),
            (0x1000_3488, 0x1000_4003),
            (0x1000_4a28, 0x8_0000_0003),
        ],
    );
}

#[test]
fn ss_2m_read_only_snoop() {
    let mem = arena(SS_BASE);
    let pt = PageTable::new(VtdSs::new(48, 48).unwrap(), mem.clone()).unwrap();
    pt.map_pages(
        Iova(0x4060_0000),
        PhysAddr(0x1_2340_0000),
        0x20_0000,
        1,
        Prot::READ | Prot::CACHE,
    )
    .unwrap();
    assert_words(
        &mem,
        &[
            (0x1000_0000, 0x1000_1003),
            (0x1000_1008, 0x1000_2003),
            (0x1000_2018, 0x0000_0001_2340_0881),
        ],
    );
    let t = pt.translate(Iova(0x4061_2345)).unwrap();
    assert_eq!(
        (t.pa, t.size, t.level, t.prot),
        (
            PhysAddr(0x1_2341_2345),
            0x20_0000,
            1,
            Prot::READ | Prot::CACHE
        )
    );
}

#[test]
fn ss_1g_rw() {
    let mem = arena(SS_BASE);
    let pt = PageTable::new(VtdSs::new(48, 48).unwrap(), mem.clone()).unwrap();
    pt.map_pages(
        Iova(0x80_4000_0000),
        PhysAddr(0x40_0000_0000),
        1 << 30,
        1,
        Prot::RW,
    )
    .unwrap();
    assert_words(
        &mem,
        &[
            (0x1000_0008, 0x1000_1003),
            (0x1000_1008, 0x0000_0040_0000_0083),
        ],
    );
    let t = pt.translate(Iova(0x80_4000_0000)).unwrap();
    assert_eq!(
        (t.pa, t.size, t.level),
        (PhysAddr(0x40_0000_0000), 1 << 30, 2)
    );
}

// ------------------------------------------------------------------- §5.2 first stage

const FS_4LEVEL_RW: [(u64, u64); 4] = [
    (0x2000_0000, 0x2000_1027),
    (0x2000_1000, 0x2000_2027),
    (0x2000_2488, 0x2000_3027),
    (0x2000_3a28, 0x8_0000_0067),
];

#[test]
fn fs_4level_rw_4k() {
    let mem = arena(FS_BASE);
    let pt = PageTable::new(VtdFs::new(48, 48).unwrap(), mem.clone()).unwrap();
    pt.map_pages(Iova(IOVA), PhysAddr(PA), 0x1000, 1, Prot::RW)
        .unwrap();
    assert_words(&mem, &FS_4LEVEL_RW);
    assert_eq!(pt.info().hw.regs, [0x2000_0000, 4, 0, 0]);
    assert_eq!(pt.translate(Iova(IOVA)).unwrap().prot, Prot::RW);
}

#[test]
fn fs_4level_read_only_4k() {
    let mem = arena(FS_BASE);
    let pt = PageTable::new(VtdFs::new(48, 48).unwrap(), mem.clone()).unwrap();
    pt.map_pages(Iova(IOVA), PhysAddr(PA), 0x1000, 1, Prot::READ)
        .unwrap();
    let mut words = FS_4LEVEL_RW;
    words[3].1 = 0x8_0000_0025;
    assert_words(&mem, &words);
    assert_eq!(pt.translate(Iova(IOVA)).unwrap().prot, Prot::READ);
}

#[test]
fn fs_write_only_maps_read_write() {
    let mem = arena(FS_BASE);
    let pt = PageTable::new(VtdFs::new(48, 48).unwrap(), mem.clone()).unwrap();
    pt.map_pages(Iova(IOVA), PhysAddr(PA), 0x1000, 1, Prot::WRITE)
        .unwrap();
    assert_words(&mem, &FS_4LEVEL_RW);
}

#[test]
fn fs_pasid_entry() {
    let f = VtdFs::new(48, 48).unwrap();
    let pe = f.pasid_entry(PhysAddr(0x2000_0000), 1);
    assert_eq!(pe.val, [0x49, 1, 0x0000_0000_2000_0000, 0, 0, 0, 0, 0]);
    assert_eq!(
        pe,
        PasidEntry::first_stage(0x2000_0000, false, Agaw::Bits48, 1)
    );
    let pe5 = VtdFs::new(57, 48)
        .unwrap()
        .pasid_entry(PhysAddr(0x2000_4000), 1);
    assert_eq!(pe5.val[2], 0x2000_4004); // FSPM = 1
    assert!(pe5.five_level());
}

#[test]
fn fs_5level_adds_a_pml5() {
    let mem = arena_in_order(FS_BASE, &[4, 0, 1, 2, 3]);
    let pt = PageTable::new(VtdFs::new(57, 48).unwrap(), mem.clone()).unwrap();
    assert_eq!(pt.root_phys(), PhysAddr(0x2000_4000));
    pt.map_pages(Iova(IOVA), PhysAddr(PA), 0x1000, 1, Prot::RW)
        .unwrap();
    let mut words = FS_4LEVEL_RW.to_vec();
    words.push((0x2000_4000, 0x2000_0027));
    assert_words(&mem, &words);
    assert_eq!(pt.info().hw.regs, [0x2000_4000, 5, 0, 0]);
}

#[test]
fn fs_2m_rw() {
    let mem = arena(FS_BASE);
    let pt = PageTable::new(VtdFs::new(48, 48).unwrap(), mem.clone()).unwrap();
    pt.map_pages(
        Iova(0x4060_0000),
        PhysAddr(0x1_2340_0000),
        0x20_0000,
        1,
        Prot::RW,
    )
    .unwrap();
    assert_words(
        &mem,
        &[
            (0x2000_0000, 0x2000_1027),
            (0x2000_1008, 0x2000_2027),
            (0x2000_2018, 0x0000_0001_2340_00e7),
        ],
    );
}

#[test]
fn fs_1g_rw_and_priv() {
    let mem = arena(FS_BASE);
    let pt = PageTable::new(VtdFs::new(48, 48).unwrap(), mem.clone()).unwrap();
    pt.map_pages(
        Iova(0x80_4000_0000),
        PhysAddr(0x40_0000_0000),
        1 << 30,
        1,
        Prot::RW | Prot::PRIV,
    )
    .unwrap();
    // P RW A D PS, U/S clear on the leaf only.
    assert_words(
        &mem,
        &[
            (0x2000_0008, 0x2000_1027),
            (0x2000_1008, 0x0000_0040_0000_00e3),
        ],
    );
    assert_eq!(
        pt.translate(Iova(0x80_4000_0000)).unwrap().prot,
        Prot::RW | Prot::PRIV
    );
}

// -------------------------------------------------------------------------- dumps

#[test]
fn dumps_use_linux_level_names() {
    let pt = PageTable::new(VtdSs::new(57, 48).unwrap(), arena(SS_BASE)).unwrap();
    pt.map_pages(Iova(IOVA), PhysAddr(PA), 0x1000, 1, Prot::RW)
        .unwrap();
    let text = pt.dump_string();
    let header = text.lines().nth(1).unwrap();
    let names: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(names, ["IOVA", "PML5E", "PML4E", "PDPE", "PDE", "PTE"]);
    assert!(text.starts_with("# VT-d second stage"));
    let line = text.lines().nth(2).unwrap();
    assert!(line.starts_with("0x0000000012345000 |"), "{line}");
    assert!(line.ends_with("0x0000000800000003"), "{line}");

    let fs = PageTable::new(VtdFs::new(48, 48).unwrap(), arena(FS_BASE)).unwrap();
    assert_eq!(fs.format().name(), "VT-d first stage");
    let header = fs.dump_string().lines().nth(1).unwrap().to_owned();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["IOVA", "PML4E", "PDPE", "PDE", "PTE"]
    );
}
