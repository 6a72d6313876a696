//! docs/formats.md §5.3–§5.6, byte for byte: tables built in an arena at the examples'
//! physical addresses, every word compared, every other word of the region zero.

use pgtable_core::{ArenaMemory, Format, HwInfo, PageTable, Prot};
use pgtable_core::{Iova, PhysAddr};
use smmu_format::{Arm, ArmConfig, ArmS1, ArmS2, Stage};
use std::sync::Arc;

const RWC: Prot = Prot::READ.union(Prot::WRITE).union(Prot::CACHE);

fn table<S: Stage>(
    cfg: ArmConfig,
    base: u64,
) -> (PageTable<Arm<S>, ArenaMemory>, Arc<ArenaMemory>) {
    let mem = Arc::new(ArenaMemory::new(base, 1 << 22));
    let pt = PageTable::new(Arm::<S>::new(cfg).unwrap(), mem.clone()).unwrap();
    assert_eq!(pt.root_phys(), PhysAddr(base));
    (pt, mem)
}

/// Asserts the arena holds exactly `words` (physical address, value) and zeros elsewhere.
fn assert_words(mem: &ArenaMemory, words: &[(u64, u64)]) {
    for &(pa, want) in words {
        assert_eq!(
            mem.read_u64(pa),
            Some(want),
            "word at {pa:#x}: got {:#018x}, want {want:#018x}",
            mem.read_u64(pa).unwrap_or(0)
        );
    }
    let snapshot = mem.snapshot();
    let nonzero: Vec<(u64, u64)> = snapshot
        .chunks_exact(8)
        .enumerate()
        .map(|(i, w)| {
            (
                mem.base() + 8 * i as u64,
                u64::from_le_bytes(w.try_into().unwrap()),
            )
        })
        .filter(|&(_, v)| v != 0)
        .collect();
    let mut expected = words.to_vec();
    expected.sort();
    assert_eq!(nonzero, expected, "the region holds other words too");
}

fn s1_4k() -> (PageTable<ArmS1, ArenaMemory>, Arc<ArenaMemory>) {
    table(ArmConfig::new(4096, 48, 48), 0x3000_0000)
}

#[test]
fn s1_4k_page_rw_cache() {
    let (pt, mem) = s1_4k();
    assert_eq!(
        pt.map_pages(Iova(0x1234_5000), PhysAddr(0x8_0000_0000), 0x1000, 1, RWC),
        Ok(0x1000)
    );
    assert_words(
        &mem,
        &[
            (0x3000_0000, 0x0000_0000_3000_1003),
            (0x3000_1000, 0x0000_0000_3000_2003),
            (0x3000_2488, 0x0000_0000_3000_3003),
            (0x3000_3A28, 0x0000_0008_0000_0F47),
        ],
    );
    let t = pt.translate(Iova(0x1234_5678)).unwrap();
    assert_eq!(
        (t.pa, t.size, t.level, t.prot),
        (PhysAddr(0x8_0000_0678), 0x1000, 0, RWC)
    );
}

#[test]
fn s1_4k_leaf_variants() {
    let cases = [
        (Prot::READ | Prot::CACHE, 0x0000_0008_0000_0FC7),
        (Prot::RW, 0x0000_0008_0000_0E43),
        (RWC | Prot::NOEXEC, 0x0060_0008_0000_0F47),
    ];
    for (prot, leaf) in cases {
        let (pt, mem) = s1_4k();
        pt.map_pages(Iova(0x1234_5000), PhysAddr(0x8_0000_0000), 0x1000, 1, prot)
            .unwrap();
        assert_eq!(mem.read_u64(0x3000_3A28), Some(leaf), "{prot:?}");
        assert_eq!(pt.translate(Iova(0x1234_5000)).unwrap().prot, prot);
    }
}

#[test]
fn s1_4k_2m_block() {
    let (pt, mem) = s1_4k();
    pt.map_pages(
        Iova(0x4060_0000),
        PhysAddr(0x1_2340_0000),
        0x20_0000,
        1,
        RWC,
    )
    .unwrap();
    assert_words(
        &mem,
        &[
            (0x3000_0000, 0x0000_0000_3000_1003),
            (0x3000_1008, 0x0000_0000_3000_2003),
            (0x3000_2018, 0x0000_0001_2340_0F45),
        ],
    );
    let t = pt.translate(Iova(0x4071_2345)).unwrap();
    assert_eq!(
        (t.pa, t.size, t.level),
        (PhysAddr(0x1_2351_2345), 0x20_0000, 1)
    );
}

#[test]
fn s1_4k_context_descriptor_and_registers() {
    let (pt, _mem) = s1_4k();
    let cd = pt.format().context_descriptor(pt.root_phys(), 1, true);
    assert_eq!(
        cd,
        [
            0x0001_E205_C000_3510,
            0x0000_0000_3000_0000,
            0,
            0x0000_0000_F404_FF44,
            0,
            0,
            0,
            0
        ]
    );
    assert_eq!(
        pt.info().hw,
        HwInfo {
            root_phys: PhysAddr(0x3000_0000),
            regs: [0x3000_0000, 0x0000_0005_0000_3510, 0xF404_FF44, 0]
        }
    );
    let names: Vec<_> = (0..4).rev().map(|l| pt.format().level_name(l)).collect();
    assert_eq!(names, ["L0", "L1", "L2", "L3"]);
    assert!(pt.dump_string().lines().nth(1).unwrap().contains("L0"));
}

#[test]
fn s1_16k_ias47() {
    let (pt, mem) = table::<smmu_format::Stage1>(ArmConfig::new(16384, 47, 48), 0x3100_0000);
    pt.map_pages(Iova(0x1234_4000), PhysAddr(0x8_0000_0000), 0x4000, 1, RWC)
        .unwrap();
    assert_words(
        &mem,
        &[
            (0x3100_0000, 0x0000_0000_3100_4003),
            (0x3100_4048, 0x0000_0000_3100_8003),
            (0x3100_8688, 0x0000_0008_0000_0F47),
        ],
    );
    let cd = pt.format().context_descriptor(pt.root_phys(), 1, true);
    assert_eq!(cd[0] & 0xFF, 17 | (2 << 6));
    assert_eq!(cd[1], 0x3100_0000);
    assert_eq!(pt.format().level_name(2), "L1");
}

#[test]
fn s1_64k_52_bit_pa() {
    let (pt, mem) = table::<smmu_format::Stage1>(ArmConfig::new(65536, 48, 52), 0x5000_0000);
    assert_eq!(pt.geometry().top_bits, 6); // 64 entries, 512 bytes
    pt.map_pages(
        Iova(0x1234_0000),
        PhysAddr(0x000F_1234_5678_0000),
        0x1_0000,
        1,
        RWC,
    )
    .unwrap();
    assert_words(
        &mem,
        &[
            (0x5000_0000, 0x0000_0000_5001_0003),
            (0x5001_0000, 0x0000_0000_5002_0003),
            (0x5002_91A0, 0x0000_1234_5678_FF47),
        ],
    );
    assert_eq!(
        pt.iova_to_phys(Iova(0x1234_0042)),
        Some(PhysAddr(0x000F_1234_5678_0042))
    );
    let tcr = pt.info().hw.regs[1];
    assert_eq!((tcr >> 32) & 7, 6, "IPS 52 bits");
    assert_eq!((tcr >> 6) & 3, 1, "TG0 64K");
    // A 52-bit IAS makes the L1 table 1024 entries (T0SZ 12).
    let s1 = ArmS1::new(ArmConfig::new(65536, 52, 52)).unwrap();
    assert_eq!((s1.geometry().top_bits, s1.tcr(true) & 0x3F), (10, 12));
}

#[test]
fn s2_4k_ias40_concatenated() {
    let (pt, mem) = table::<smmu_format::Stage2>(ArmConfig::new(4096, 40, 48), 0x4000_0000);
    assert_eq!(pt.info().table_pages, 2, "two concatenated L1 tables");
    pt.map_pages(Iova(0x1234_5000), PhysAddr(0x8_0000_0000), 0x1000, 1, RWC)
        .unwrap();
    pt.map_pages(
        Iova(0x80_4000_0000),
        PhysAddr(0x9_0000_0000),
        0x4000_0000,
        1,
        RWC,
    )
    .unwrap();
    assert_words(
        &mem,
        &[
            (0x4000_0000, 0x0000_0000_4000_2003),
            (0x4000_2488, 0x0000_0000_4000_3003),
            (0x4000_3A28, 0x0000_0008_0000_07FF),
            (0x4000_1008, 0x0000_0009_0000_07FD),
        ],
    );
    assert_eq!(
        pt.iova_to_phys(Iova(0x80_4123_4567)),
        Some(PhysAddr(0x9_0123_4567))
    );
    let ste = pt.format().stream_table_entry(pt.root_phys(), 1, true);
    assert_eq!(
        ste,
        [
            0xD,
            0,
            0x044D_3558_0000_0001,
            0x0000_0000_4000_0000,
            0,
            0,
            0,
            0
        ]
    );
    assert_eq!(pt.info().hw.regs, [0x4000_0000, 0x53558, 0, 0]);
    let s2: &ArmS2 = pt.format();
    assert_eq!((s2.s2sl0(), s2.level_name(2)), (1, "L1"));
}
