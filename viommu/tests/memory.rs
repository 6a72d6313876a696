//! `ImageMemory` and `PhysAccess`: bounds, alignment, read-only vs shared mappings, byte
//! ranges, atomic updates, and tables decoded in place.

use pgtable_core::testfmt::TestFormat;
use pgtable_core::{ArenaMemory, ForeignTable, Iova, PageTable, PhysAddr, Prot, ViewMemory};
use std::path::PathBuf;
use std::sync::Arc;
use viommu::Error;
use viommu::memory::{ImageMemory, PhysAccess};

/// A scratch file path for this test.
fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("viommu-{}-{name}", std::process::id()))
}

fn words(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn open_is_read_only_and_bounds_checked() {
    let path = scratch("ro.img");
    std::fs::write(&path, words(&[1, 2, 3, 0xdead_beef])).unwrap();
    let mem = ImageMemory::open(&path, 0x1000).unwrap();
    assert_eq!((mem.base(), mem.len(), mem.writable()), (0x1000, 32, false));
    assert_eq!(mem.read_u64(0x1000).unwrap(), 1);
    assert_eq!(mem.read_u64(0x1018).unwrap(), 0xdead_beef);
    // One word either side of the image, and a misaligned word.
    assert!(matches!(
        mem.read_u64(0xff8),
        Err(Error::OutOfRange { pa: 0xff8, len: 8 })
    ));
    assert!(matches!(
        mem.read_u64(0x1020),
        Err(Error::OutOfRange { .. })
    ));
    assert!(matches!(
        mem.read_u64(0x1004),
        Err(Error::Misaligned { pa: 0x1004 })
    ));
    // No write of any kind.
    assert!(matches!(
        mem.write_u64(0x1000, 9),
        Err(Error::ReadOnly { pa: 0x1000, len: 8 })
    ));
    assert!(matches!(
        mem.fetch_or_u64(0x1000, 1),
        Err(Error::ReadOnly { .. })
    ));
    assert!(matches!(
        mem.compare_exchange_u64(0x1000, 1, 2),
        Err(Error::ReadOnly { .. })
    ));
    assert!(matches!(
        mem.write_bytes(0x1000, b"x"),
        Err(Error::ReadOnly { .. })
    ));
    // The view refuses misaligned, overflowing and out-of-range requests.
    assert!(mem.view(0x1000, 32).is_some());
    assert!(mem.view(0x1000, 33).is_none());
    assert!(mem.view(0x1004, 8).is_none());
    assert!(mem.view(u64::MAX - 7, 8).is_none());
    assert!(mem.view(0x1018, usize::MAX).is_none());
    drop(mem);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        words(&[1, 2, 3, 0xdead_beef])
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn bad_layouts_say_why() {
    let path = scratch("bad.img");
    std::fs::write(&path, b"").unwrap();
    let err = ImageMemory::open(&path, 0).unwrap_err();
    assert!(matches!(err, Error::EmptyImage { .. }), "{err}");
    assert!(err.to_string().ends_with(": the image is empty"), "{err}");
    std::fs::write(&path, [0u8; 12]).unwrap();
    let err = ImageMemory::open(&path, 0).unwrap_err();
    assert!(matches!(err, Error::NotWholeWords { len: 12, .. }), "{err}");
    assert!(
        err.to_string()
            .contains("not a whole number of 64-bit entries")
    );
    std::fs::write(&path, [0u8; 16]).unwrap();
    assert!(matches!(
        ImageMemory::open(&path, 4),
        Err(Error::MisalignedBase { base: 4 })
    ));
    assert!(matches!(
        ImageMemory::open(&path, u64::MAX - 7),
        Err(Error::BeyondTop { len: 16, .. })
    ));
    // The last 16 bytes below 2^64 are fine.
    let top = ImageMemory::open(&path, u64::MAX - 15).unwrap();
    assert_eq!(top.read_u64(u64::MAX - 7).unwrap(), 0);
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(ImageMemory::open(&path, 0), Err(Error::Io { .. })));
    assert!(matches!(
        ImageMemory::open_rw(&path, 0),
        Err(Error::Io { .. })
    ));
    assert!(matches!(
        ImageMemory::anonymous(0, 0),
        Err(Error::EmptyImage { .. })
    ));
    assert!(matches!(
        ImageMemory::anonymous(8, 9),
        Err(Error::NotWholeWords { .. })
    ));
}

#[test]
fn open_rw_updates_reach_the_file() {
    let path = scratch("rw.img");
    std::fs::write(&path, words(&[0x1003, 0, 0, 0])).unwrap();
    let mem = ImageMemory::open_rw(&path, 0x8000).unwrap();
    assert!(mem.writable());
    // A walker setting access (bit 8) then dirty (bit 9) flags, racing nothing.
    assert_eq!(mem.fetch_or_u64(0x8000, 1 << 8).unwrap(), 0x1003);
    assert_eq!(
        mem.compare_exchange_u64(0x8000, 0x1103, 0x1303).unwrap(),
        Ok(0x1103)
    );
    assert_eq!(
        mem.compare_exchange_u64(0x8000, 0x1103, 0).unwrap(),
        Err(0x1303)
    );
    mem.write_u64(0x8018, u64::MAX).unwrap();
    mem.flush().unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        words(&[0x1303, 0, 0, u64::MAX])
    );
    drop(mem);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn anonymous_and_copied_memory_are_writable() {
    let mem = ImageMemory::anonymous(0x10_0000, 0x2000).unwrap();
    assert!(mem.writable() && !mem.is_empty());
    assert_eq!(mem.read_u64(0x10_1ff8).unwrap(), 0);
    let bytes: Vec<u8> = (0..64).collect();
    let copy = ImageMemory::from_bytes(0x40, &bytes).unwrap();
    assert!(copy.writable());
    assert_eq!(
        copy.read_u64(0x48).unwrap(),
        u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15])
    );
    copy.write_u64(0x40, 7).unwrap();
    assert_eq!(copy.read_u64(0x40).unwrap(), 7);
    assert!(matches!(
        ImageMemory::from_bytes(0, &[]),
        Err(Error::EmptyImage { .. })
    ));
}

#[test]
fn byte_ranges_of_any_alignment() {
    let mem = ImageMemory::anonymous(0x1000, 0x100).unwrap();
    let fill: Vec<u8> = (0..=255).collect();
    mem.write_bytes(0x1000, &fill).unwrap();
    // Every start and length over the first few words, against the model.
    for start in 0..24u64 {
        for len in 0..40usize {
            let mut buf = vec![0; len];
            mem.read_bytes(0x1000 + start, &mut buf).unwrap();
            assert_eq!(
                buf,
                fill[start as usize..start as usize + len],
                "{start} {len}"
            );
        }
    }
    // A partial-word write keeps the word's other bytes.
    mem.write_bytes(0x1003, &[0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x11])
        .unwrap();
    let mut model = fill.clone();
    model[3..10].copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x11]);
    let mut all = vec![0; 256];
    mem.read_bytes(0x1000, &mut all).unwrap();
    assert_eq!(all, model);
    // The last byte is in, one past it is not; a range wrapping 2^64 is refused.
    mem.read_bytes(0x10ff, &mut [0]).unwrap();
    assert!(matches!(
        mem.read_bytes(0x10ff, &mut [0, 0]),
        Err(Error::OutOfRange { pa: 0x10ff, len: 2 })
    ));
    assert!(mem.read_bytes(0xfff, &mut [0]).is_err());
    assert!(mem.write_bytes(u64::MAX, &[0, 0]).is_err());
    // Nothing to read is fine anywhere.
    mem.read_bytes(0, &mut []).unwrap();
}

#[test]
fn concurrent_flag_updates_are_never_lost() {
    let mem = Arc::new(ImageMemory::anonymous(0, 0x1000).unwrap());
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let mem = &mem;
            s.spawn(move || {
                for bit in (t..64).step_by(4) {
                    mem.fetch_or_u64(0x800, 1 << bit).unwrap();
                    // A neighbour's byte writes never disturb the flags word.
                    mem.write_bytes(0x808 + t, &[t as u8]).unwrap();
                }
            });
        }
    });
    assert_eq!(mem.read_u64(0x800).unwrap(), u64::MAX);
    assert_eq!(mem.read_u64(0x808).unwrap() & 0xffff_ffff, 0x0302_0100);
}

#[test]
fn tables_copied_into_an_image_decode_in_place() {
    // Build a table in an arena, copy the arena into an image at the same base, and
    // decode the image: every translation agrees.
    let base = 0x100_0000;
    let arena = Arc::new(ArenaMemory::new(base, 1 << 20));
    let pt = PageTable::new(TestFormat::new(), arena.clone()).unwrap();
    pt.map_pages(
        Iova(0x10_0000),
        PhysAddr(0x8_0000_0000),
        0x1000,
        3,
        Prot::RW,
    )
    .unwrap();
    pt.map_pages(
        Iova(0x4000_0000),
        PhysAddr(0x2_0000_0000),
        0x20_0000,
        1,
        Prot::READ,
    )
    .unwrap();
    let mut bytes = vec![0; 1 << 20];
    arena.read_bytes(base, &mut bytes).unwrap();
    let image = Arc::new(ImageMemory::from_bytes(base, &bytes).unwrap());
    let view = ForeignTable::new(TestFormat::new(), image, pt.root_phys()).unwrap();
    for iova in [
        0x10_0000,
        0x10_2fff,
        0x10_3000,
        0x4000_0000,
        0x401f_fff8,
        0x4020_0000,
    ] {
        assert_eq!(
            view.translate(Iova(iova)).ok(),
            pt.translate(Iova(iova)).ok(),
            "{iova:#x}"
        );
    }
}
