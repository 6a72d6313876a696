//! `GuestRam` over vm-memory's `GuestMemoryMmap`: several regions, holes, ranges across a
//! region boundary refused, read-only regions, and tables decoded in place.
#![cfg(feature = "vm-memory")]

use pgtable_core::testfmt::TestFormat;
use pgtable_core::{ForeignTable, Iova, PhysAddr, ViewMemory};
use std::sync::Arc;
use viommu::Error;
use viommu::memory::{GuestRam, PhysAccess};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};

/// RAM at [0, 64K) and [128K, 192K), a hole between and nothing above.
fn two_regions() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[
        (GuestAddress(0), 0x1_0000),
        (GuestAddress(0x2_0000), 0x1_0000),
    ])
    .unwrap()
}

#[test]
fn views_stay_inside_one_region() {
    let ram = GuestRam::new(two_regions());
    assert!(ram.writable());
    // Whole regions, their last word, and nothing across a boundary or in the hole.
    assert!(ram.view(0, 0x1_0000).is_some());
    assert!(ram.view(0x2_0000, 0x1_0000).is_some());
    assert!(ram.view(0xfff8, 8).is_some());
    assert!(ram.view(0xfff8, 16).is_none());
    assert!(ram.view(0x1_0000, 8).is_none());
    assert!(ram.view(0x1_fff8, 16).is_none());
    assert!(ram.view(0x2_fff8, 16).is_none());
    assert!(ram.view(0x3_0000, 8).is_none());
    assert!(ram.view(0x2_0004, 8).is_none());
    assert!(ram.view(u64::MAX - 7, 8).is_none());
    // A view is the region's host memory: what vm-memory writes, the view reads.
    ram.memory()
        .write_obj(0x1122_3344_5566_7788u64, GuestAddress(0x2_0100))
        .unwrap();
    assert_eq!(ram.read_u64(0x2_0100).unwrap(), 0x1122_3344_5566_7788);
    ram.write_u64(0x2_0108, 0xabcd).unwrap();
    assert_eq!(
        ram.memory()
            .read_obj::<u64>(GuestAddress(0x2_0108))
            .unwrap(),
        0xabcd
    );
    // Word and byte accesses follow the same bounds.
    assert!(matches!(
        ram.read_u64(0x1_0000),
        Err(Error::OutOfRange { .. })
    ));
    assert!(ram.write_bytes(0xfffe, &[1, 2, 3, 4]).is_err());
    ram.write_bytes(0xfffc, &[1, 2, 3, 4]).unwrap();
    let mut buf = [0; 4];
    ram.memory()
        .read_slice(&mut buf, GuestAddress(0xfffc))
        .unwrap();
    assert_eq!(buf, [1, 2, 3, 4]);
    assert!(ram.is_writable(0, 0x1_0000) && !ram.is_writable(0x8000, 0x1_0000));
}

#[test]
fn read_only_regions_refuse_writes() {
    let ro = MmapRegion::<()>::build(
        None,
        0x1000,
        libc::PROT_READ,
        libc::MAP_ANONYMOUS | libc::MAP_PRIVATE,
    )
    .unwrap();
    let rw = MmapRegion::<()>::new(0x1000).unwrap();
    let mem = GuestMemoryMmap::from_regions(vec![
        GuestRegionMmap::new(rw, GuestAddress(0)).unwrap(),
        GuestRegionMmap::new(ro, GuestAddress(0x1000)).unwrap(),
    ])
    .unwrap();
    let ram = GuestRam::new(mem);
    // One read-only region makes the whole memory read-only for the walker.
    assert!(!ram.writable());
    assert!(ram.is_writable(0, 8) && !ram.is_writable(0x1000, 8));
    assert_eq!(ram.read_u64(0x1ff8).unwrap(), 0);
    assert!(matches!(ram.write_u64(0, 1), Err(Error::ReadOnly { .. })));
}

#[test]
fn guest_tables_decode_in_place() {
    // The guest writes a 4-level TestFormat table in its second region; the walker
    // decodes it there, and a table pointer into the hole is a fault, not a crash.
    let ram = Arc::new(GuestRam::new(two_regions()));
    let root = 0x2_0000u64;
    for table in [root, root + 0x1000, root + 0x2000] {
        ram.write_u64(table, (table + 0x1000) | 1).unwrap();
    }
    ram.write_u64(root + 0x3000 + 8, 0x7_0000_0000 | 0b111)
        .unwrap();
    // IOVA 0x8000_0000 goes through the root's entry 0, then entry 2 of the next table,
    // which points into the hole.
    ram.write_u64(root + 0x1000 + 16, 0x1_8000 | 1).unwrap();
    let view = ForeignTable::new(TestFormat::new(), ram.clone(), PhysAddr(root)).unwrap();
    assert_eq!(
        view.translate(Iova(0x1abc)).unwrap().pa,
        PhysAddr(0x7_0000_0abc)
    );
    let err = view.translate(Iova(0x8000_0000)).unwrap_err();
    assert!(err.to_string().contains("0x18000"), "{err}");
    // A root in the hole or straddling a boundary is refused up front.
    assert!(ForeignTable::new(TestFormat::new(), ram.clone(), PhysAddr(0x1_0000)).is_err());
    assert!(ForeignTable::new(TestFormat::new(), ram, PhysAddr(0xf800)).is_err());
}
