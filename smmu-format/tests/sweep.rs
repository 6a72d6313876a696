//! The sweep Linux's io-pgtable-arm selftest runs: every granule, input and output
//! size (output >= input), both stages.

use pgtable_core::{Error, Format, Gather, HostMemory, PageTable, Prot};
use pgtable_core::{Iova, PhysAddr};
use smmu_format::{Arm, ArmConfig, Stage, Stage1, Stage2};
use std::sync::Arc;

const GRANULES: [u64; 3] = [4096, 16384, 65536];
const SIZES: [u32; 6] = [32, 36, 40, 42, 44, 48];
const GIB: u64 = 1 << 30;

fn sizes(bitmap: u64) -> impl Iterator<Item = u64> {
    (0..64).map(|b| 1u64 << b).filter(move |s| bitmap & s != 0)
}

/// One configuration of the selftest; panics with the configuration on failure.
fn selftest<S: Stage>(cfg: ArmConfig) {
    let fmt = Arm::<S>::new(cfg).unwrap_or_else(|e| panic!("{cfg:?}: {e}"));
    let pt = PageTable::new(fmt, Arc::new(HostMemory::new())).unwrap();
    let ias = cfg.ias;
    let bitmap = pt.geometry().pgsize_bitmap;
    let largest = 1u64 << (63 - bitmap.leading_zeros());
    let step = largest.max(GIB);
    let what = format!("{} {cfg:?}", fmt.name());

    // An empty table translates nothing.
    for iova in [0, 42, GIB + 42, 2 * GIB + 42, (1 << ias) - 1] {
        assert_eq!(pt.iova_to_phys(Iova(iova)), None, "{what}: {iova:#x}");
    }
    assert!(
        matches!(pt.translate(Iova(1 << ias)), Err(Error::IovaRange { .. })),
        "{what}"
    );

    // Every page size: map identity, refuse an overlapping map, translate.
    let prot = Prot::RW | Prot::NOEXEC | Prot::CACHE;
    let mut iova = 0;
    for size in sizes(bitmap) {
        assert_eq!(
            pt.map_pages(Iova(iova), PhysAddr(iova), size, 1, prot),
            Ok(size),
            "{what}: map {size:#x}"
        );
        assert!(
            matches!(
                pt.map_pages(
                    Iova(iova),
                    PhysAddr(iova + size),
                    size,
                    1,
                    Prot::READ | Prot::NOEXEC
                ),
                Err(Error::Exists { .. })
            ),
            "{what}: double map {size:#x}"
        );
        let t = pt.translate(Iova(iova + 42)).unwrap();
        assert_eq!(
            (t.pa, t.size, t.prot),
            (PhysAddr(iova + 42), size, fmt.effective_prot(prot)),
            "{what}"
        );
        iova += step;
    }

    // Unmap each leaf, check it is gone, remap it write-only.
    iova = 0;
    for size in sizes(bitmap) {
        let mut gather = Gather::new();
        assert_eq!(
            pt.unmap_pages(Iova(iova), size, 1, &mut gather),
            Ok(size),
            "{what}: unmap {size:#x}"
        );
        assert_eq!(
            gather.range(),
            Some(Iova(iova)..=Iova(iova + size - 1)),
            "{what}"
        );
        gather.release();
        assert_eq!(
            pt.iova_to_phys(Iova(iova + 42)),
            None,
            "{what}: {size:#x} still mapped"
        );
        assert_eq!(
            pt.map_pages(Iova(iova), PhysAddr(iova), size, 1, Prot::WRITE),
            Ok(size),
            "{what}: remap"
        );
        let t = pt.translate(Iova(iova + 42)).unwrap();
        assert_eq!(
            (t.pa, t.prot),
            (PhysAddr(iova + 42), fmt.effective_prot(Prot::WRITE)),
            "{what}"
        );
        iova += step;
    }

    // The last largest page below the input size (the corner of concatenated tables).
    let top = (1u64 << ias) - largest;
    assert_eq!(
        pt.map_pages(Iova(top), PhysAddr(top), largest, 1, prot),
        Ok(largest),
        "{what}: top page"
    );
    assert_eq!(
        pt.iova_to_phys(Iova(top + 42)),
        Some(PhysAddr(top + 42)),
        "{what}"
    );
    assert_eq!(
        pt.iova_to_phys(Iova((1 << ias) - 1)),
        Some(PhysAddr((1 << ias) - 1)),
        "{what}"
    );
    let mut gather = Gather::new();
    assert_eq!(
        pt.unmap_pages(Iova(top), largest, 1, &mut gather),
        Ok(largest),
        "{what}"
    );
    gather.release();
    assert_eq!(pt.iova_to_phys(Iova(top + 42)), None, "{what}");
}

fn sweep<S: Stage>() {
    let mut configs = 0;
    for granule in GRANULES {
        for (j, &oas) in SIZES.iter().enumerate() {
            for &ias in &SIZES[..=j] {
                selftest::<S>(ArmConfig::new(granule, ias, oas));
                configs += 1;
            }
        }
    }
    assert_eq!(configs, 3 * 21);
}

#[test]
fn linux_selftest_sweep_stage1() {
    sweep::<Stage1>();
}

#[test]
fn linux_selftest_sweep_stage2() {
    sweep::<Stage2>();
}

/// 52-bit output with the 64K granule adds 4T blocks at L1; 52-bit input makes the
/// top table 1024 entries.
#[test]
fn linux_selftest_64k_52_bit() {
    for (ias, oas) in [(44, 52), (48, 52), (52, 52), (42, 52), (48, 50)] {
        let cfg = ArmConfig::new(65536, ias, oas);
        selftest::<Stage1>(cfg);
        selftest::<Stage2>(cfg);
    }
    let s1 = Arm::<Stage1>::new(ArmConfig::new(65536, 48, 52)).unwrap();
    assert_eq!(s1.pgsize_bitmap(), (1 << 16) | (1 << 29) | (1 << 42));
    let s1 = Arm::<Stage1>::new(ArmConfig::new(65536, 42, 52)).unwrap();
    assert_eq!(
        s1.pgsize_bitmap(),
        (1 << 16) | (1 << 29),
        "no L1 below 43 bits"
    );
}

#[test]
fn pgsize_bitmaps() {
    let s1 = |g, ias, oas| Arm::<Stage1>::new(ArmConfig::new(g, ias, oas)).unwrap();
    assert_eq!(s1(4096, 48, 48).pgsize_bitmap(), 0x4020_1000);
    assert_eq!(s1(16384, 48, 48).pgsize_bitmap(), 0x200_4000);
    assert_eq!(s1(65536, 48, 48).pgsize_bitmap(), 0x2001_0000);
    // Restricting works, as does 0 (Linux's sizes).
    let only_4k = s1(4096, 48, 48).with_pgsize_bitmap(0x1000).unwrap();
    assert_eq!(only_4k.pgsize_bitmap(), 0x1000);
    assert_eq!(
        only_4k.with_pgsize_bitmap(0).unwrap().pgsize_bitmap(),
        0x4020_1000
    );
    // Sizes the format cannot map, or no granule, are configuration errors.
    for bad in [
        0x20_0000,
        0x2000,
        0x1_0000,
        0x80_0000_0000 | 0x1000,
        0x1000 | (1 << 63),
    ] {
        assert!(
            matches!(
                s1(4096, 48, 48).with_pgsize_bitmap(bad),
                Err(Error::BadConfig(_))
            ),
            "{bad:#x}"
        );
    }
    assert!(
        s1(65536, 48, 48)
            .with_pgsize_bitmap((1 << 42) | (1 << 16))
            .is_err()
    );
    assert!(
        s1(65536, 48, 52)
            .with_pgsize_bitmap((1 << 42) | (1 << 16))
            .is_ok()
    );
    // The core accepts what the format reports.
    let fmt = s1(16384, 36, 40).with_pgsize_bitmap(0x4000).unwrap();
    let pt = PageTable::new(fmt, Arc::new(HostMemory::new())).unwrap();
    assert_eq!(
        pt.map_pages(Iova(0), PhysAddr(0), 1 << 25, 1, Prot::RW),
        Err(Error::UnsupportedSize(1 << 25))
    );
}
