//! Every page size at every level of every configuration, and the edges of the input
//! space: the last page below it, the first IOVA beyond it, FS's upper half.

use pgtable_core::{ArenaMemory, Error, Format, Gather, PageTable, Prot};
use pgtable_core::{Iova, PhysAddr};
use std::sync::Arc;
use vtd_format::{SZ_1G, SZ_2M, SZ_4K, VtdFs, VtdSs};

fn table<F: Format>(f: F) -> PageTable<F, ArenaMemory> {
    PageTable::new(f, Arc::new(ArenaMemory::new(0x1000_0000, 4 << 20))).unwrap()
}

/// Identity-at-an-offset mappings of each size, checked through their whole life.
fn each_size_each_level<F: Format>(f: F) {
    let geo = f.geometry();
    let pt = table(f.clone());
    let offset = 0x40_0000_0000 % (1 << geo.oas);
    for (level, size) in [(0, SZ_4K), (1, SZ_2M), (2, SZ_1G)] {
        if !geo.leaf_allowed(level) {
            assert!(matches!(
                pt.map_pages(Iova(0), PhysAddr(0), size, 1, Prot::RW),
                Err(Error::UnsupportedSize(s)) if s == size
            ));
            continue;
        }
        let end = 1u64 << geo.va_bits;
        for iova in [size, 5 * size, end - size]
            .into_iter()
            .filter(|&i| i + size <= end)
        {
            let pa = ((iova + offset) % (1 << geo.oas)) & !(size - 1);
            let prot = Prot::RW;
            assert_eq!(
                pt.map_pages(Iova(iova), PhysAddr(pa), size, 1, prot),
                Ok(size)
            );
            assert!(matches!(
                pt.map_pages(Iova(iova), PhysAddr(pa), size, 1, prot),
                Err(Error::Exists { iova: at, mapped: 0 }) if at == Iova(iova)
            ));
            let t = pt.translate(Iova(iova + size - 8)).unwrap();
            assert_eq!(
                (t.pa, t.size, t.level),
                (PhysAddr(pa + size - 8), size, level)
            );
            assert_eq!(t.prot, f.effective_prot(prot));
            let mut g = Gather::new();
            assert_eq!(pt.unmap(Iova(iova), size, &mut g), Ok(size));
            g.release();
            assert!(matches!(pt.translate(Iova(iova)), Err(Error::NotMapped(_))));
            assert_eq!(
                pt.map_pages(Iova(iova), PhysAddr(pa), size, 1, Prot::READ),
                Ok(size)
            );
            assert_eq!(pt.iova_to_phys(Iova(iova)), Some(PhysAddr(pa)));
            assert_eq!(pt.unmap_pages(Iova(iova), size, 1, &mut g), Ok(size));
            g.release();
        }
    }
}

#[test]
fn second_stage_every_size_every_level() {
    for ias in [31, 39, 40, 48, 49, 57] {
        each_size_each_level(VtdSs::new(ias, 48).unwrap());
    }
    each_size_each_level(VtdSs::new(48, 48).unwrap().with_large_pages(false, true));
    each_size_each_level(VtdSs::new(48, 48).unwrap().with_large_pages(true, false));
    each_size_each_level(VtdSs::new(48, 36).unwrap());
}

#[test]
fn first_stage_every_size_every_level() {
    for ias in [48, 57] {
        each_size_each_level(VtdFs::new(ias, 48).unwrap());
    }
    each_size_each_level(VtdFs::new(48, 48).unwrap().with_1g_pages(false));
}

#[test]
fn second_stage_input_limit_is_ias() {
    for ias in [31, 39, 44, 48, 57] {
        let pt = table(VtdSs::new(ias, 48).unwrap());
        let end = 1u64 << ias;
        assert_eq!(
            pt.map_pages(Iova(end - SZ_4K), PhysAddr(0x1000), SZ_4K, 1, Prot::RW),
            Ok(SZ_4K)
        );
        assert_eq!(pt.iova_to_phys(Iova(end - 1)), Some(PhysAddr(0x1fff)));
        assert!(matches!(
            pt.map_pages(Iova(end), PhysAddr(0x1000), SZ_4K, 1, Prot::RW),
            Err(Error::IovaRange { bits, .. }) if bits == ias
        ));
        assert!(matches!(
            pt.translate(Iova(end)),
            Err(Error::IovaRange { .. })
        ));
    }
}

#[test]
fn first_stage_refuses_the_upper_half() {
    for (ias, upper) in [(48, 0xffff_8000_0000_0000u64), (57, 0xff00_0000_0000_0000)] {
        let pt = table(VtdFs::new(ias, 48).unwrap());
        let half = 1u64 << (ias - 1);
        // The last lower-half page is fine.
        assert_eq!(
            pt.map_pages(Iova(half - SZ_4K), PhysAddr(0x1000), SZ_4K, 1, Prot::RW),
            Ok(SZ_4K)
        );
        assert_eq!(pt.iova_to_phys(Iova(half - 1)), Some(PhysAddr(0x1fff)));
        // The first upper-half (canonical) IOVA, and a non-canonical one, are not.
        for iova in [upper, upper + 0x1000, half] {
            assert!(matches!(
                pt.map_pages(Iova(iova), PhysAddr(0x1000), SZ_4K, 1, Prot::RW),
                Err(Error::IovaRange { bits, .. }) if bits == ias - 1
            ));
            assert!(matches!(
                pt.translate(Iova(iova)),
                Err(Error::IovaRange { .. })
            ));
        }
        assert!(
            pt.walk(
                Iova(upper)..Iova(upper) + 0x1000,
                |_| std::ops::ControlFlow::<()>::Continue(())
            )
            .is_err()
        );
    }
}

#[test]
fn output_limit_is_oas() {
    let pt = table(VtdSs::new(48, 40).unwrap());
    assert_eq!(
        pt.map_pages(Iova(0), PhysAddr((1 << 40) - SZ_2M), SZ_2M, 1, Prot::RW),
        Ok(SZ_2M)
    );
    assert!(matches!(
        pt.map_pages(Iova(SZ_2M), PhysAddr(1 << 40), SZ_2M, 1, Prot::RW),
        Err(Error::PhysRange { bits: 40, .. })
    ));
    let pt = table(VtdFs::new(48, 39).unwrap());
    assert!(matches!(
        pt.map_pages(Iova(0), PhysAddr(1 << 39), SZ_4K, 1, Prot::RW),
        Err(Error::PhysRange { bits: 39, .. })
    ));
}

#[test]
fn pgsize_bitmap_restricts_map() {
    let f = VtdSs::new(48, 48)
        .unwrap()
        .with_pgsize_bitmap(SZ_4K)
        .unwrap();
    assert_eq!(f.geometry().pgsize_bitmap, SZ_4K);
    let pt = table(f);
    assert_eq!(
        pt.map_pages(Iova(0), PhysAddr(0), SZ_2M, 1, Prot::RW),
        Err(Error::UnsupportedSize(SZ_2M))
    );
    assert_eq!(pt.map(Iova(0), PhysAddr(0), SZ_2M, Prot::RW), Ok(SZ_2M));
    let t = pt.translate(Iova(0x1f_f000)).unwrap();
    assert_eq!((t.size, t.level), (SZ_4K, 0));

    // 0 is "everything the configuration maps"; unsupported sizes and no 4K fail.
    let all = SZ_4K | SZ_2M | SZ_1G;
    let ss = VtdSs::new(48, 48).unwrap();
    assert_eq!(
        ss.with_pgsize_bitmap(0).unwrap().geometry().pgsize_bitmap,
        all
    );
    let fs = VtdFs::new(48, 48).unwrap();
    assert_eq!(
        fs.with_pgsize_bitmap(0).unwrap().geometry().pgsize_bitmap,
        all
    );
    for bad in [
        SZ_2M,
        SZ_2M | SZ_1G,
        SZ_4K | 1 << 39,
        SZ_4K | 1 << 16,
        SZ_4K | 1 << 13,
    ] {
        assert!(
            matches!(ss.with_pgsize_bitmap(bad), Err(Error::BadConfig(_))),
            "{bad:#x}"
        );
        assert!(
            matches!(fs.with_pgsize_bitmap(bad), Err(Error::BadConfig(_))),
            "{bad:#x}"
        );
    }
    // A size the capability turned off cannot be asked for.
    assert!(
        ss.with_large_pages(true, false)
            .with_pgsize_bitmap(all)
            .is_err()
    );
    assert!(fs.with_1g_pages(false).with_pgsize_bitmap(all).is_err());
}

#[test]
fn map_picks_superpages() {
    let pt = table(VtdSs::new(39, 48).unwrap());
    // 4K up to a 2M boundary, 2M up to 1G, one 1G, then 4K.
    let (iova, len) = (SZ_1G - SZ_2M - SZ_4K, SZ_4K + SZ_2M + SZ_1G + SZ_4K);
    assert_eq!(pt.map(Iova(iova), PhysAddr(iova), len, Prot::RW), Ok(len));
    let mut levels = vec![];
    pt.walk(.., |t| {
        levels.push((t.iova.0, t.level));
        std::ops::ControlFlow::<()>::Continue(())
    })
    .unwrap();
    assert_eq!(
        levels,
        [
            (SZ_1G - SZ_2M - SZ_4K, 0),
            (SZ_1G - SZ_2M, 1),
            (SZ_1G, 2),
            (2 * SZ_1G, 0)
        ]
    );
}
