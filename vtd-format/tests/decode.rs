//! Entry encodings and the hardware decoder: every prot combination round-trips at
//! every leaf level, and every reserved bit of docs/formats.md §1.4 / §2.2 faults.

use pgtable_core::{
    ArenaMemory, Entry, Fault, ForeignTable, Format, Iova, PageTable, PhysAddr, Prot,
};
use std::sync::Arc;
use vtd_format::{VtdFs, VtdSs};

/// Every request the core accepts: READ and/or WRITE, with any attribute bits.
fn all_prots() -> impl Iterator<Item = Prot> {
    (0..64u32)
        .map(Prot::from_bits_truncate)
        .filter(|p| p.intersects(Prot::RW))
}

fn ss48() -> VtdSs {
    VtdSs::new(48, 48).unwrap().with_haw(48).unwrap()
}

fn fs48() -> VtdFs {
    VtdFs::new(48, 48).unwrap().with_haw(48).unwrap()
}

/// Output addresses to try at a level of `shift`: low, a typical one, the highest.
fn pas(shift: u32, oas: u32) -> [u64; 3] {
    [
        0,
        0x8_0000_0000 & !((1 << shift) - 1),
        (1 << oas) - (1 << shift),
    ]
}

// ------------------------------------------------------------------------ encodings

#[test]
fn ss_leaf_bits_for_every_prot() {
    for f in [ss48(), ss48().with_snoop_control(false)] {
        let snoop = f.encode_leaf(0, 0, Prot::READ | Prot::CACHE) & 0x800 != 0;
        for level in 0..3 {
            let shift = 12 + 9 * level;
            for pa in pas(shift, 48) {
                for p in all_prots() {
                    let raw = f.encode_leaf(pa, level, p);
                    let mut want = pa;
                    want |= if p.contains(Prot::READ) { 1 } else { 0 };
                    want |= if p.contains(Prot::WRITE) { 2 } else { 0 };
                    want |= if snoop && p.contains(Prot::CACHE) {
                        0x800
                    } else {
                        0
                    };
                    want |= if level > 0 { 0x80 } else { 0 };
                    assert_eq!(raw, want, "{p:?} at level {level}");
                    let eff = p & (Prot::RW | if snoop { Prot::CACHE } else { Prot::empty() });
                    assert_eq!(f.effective_prot(p), eff);
                    assert_eq!(
                        f.decode(raw, level),
                        Entry::Leaf {
                            pa,
                            size: 1 << shift,
                            prot: eff
                        },
                        "{p:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn fs_leaf_bits_for_every_prot() {
    let f = fs48();
    for level in 0..3 {
        let shift = 12 + 9 * level;
        for pa in pas(shift, 48) {
            for p in all_prots() {
                let raw = f.encode_leaf(pa, level, p);
                let mut want = pa | 0x25;
                want |= if p.contains(Prot::WRITE) { 0x42 } else { 0 };
                want &= if p.contains(Prot::PRIV) { !0x4 } else { !0 };
                want |= if level > 0 { 0x80 } else { 0 };
                assert_eq!(raw, want, "{p:?} at level {level}");
                let eff = Prot::READ | (p & (Prot::WRITE | Prot::PRIV));
                assert_eq!(f.effective_prot(p), eff);
                assert_eq!(
                    f.decode(raw, level),
                    Entry::Leaf {
                        pa,
                        size: 1 << shift,
                        prot: eff
                    },
                    "{p:?}"
                );
            }
        }
    }
}

#[test]
fn table_pointers_round_trip_and_nothing_encodes_to_zero() {
    fn check<F: Format>(f: F) {
        let g = f.geometry();
        for level in 0..g.levels {
            assert_eq!(f.decode(0, level), Entry::Empty);
            if level > 0 {
                for pa in [0, 0x1000, 0x000f_ffff_ffff_f000] {
                    let raw = f.encode_table(pa, level);
                    assert_ne!(raw, 0);
                    assert_eq!(f.decode(raw, level), Entry::Table(pa), "level {level}");
                }
            }
            if g.leaf_allowed(level) {
                assert_ne!(f.encode_leaf(0, level, Prot::READ), 0);
                assert_ne!(f.encode_leaf(0, level, Prot::WRITE), 0);
            }
        }
    }
    for ias in [39, 48, 57] {
        check(VtdSs::new(ias, 52).unwrap());
        check(VtdSs::new(ias, 40).unwrap());
    }
    for ias in [48, 57] {
        check(VtdFs::new(ias, 52).unwrap());
        check(VtdFs::new(ias, 40).unwrap());
    }
    assert_eq!(VtdSs::new(48, 48).unwrap().encode_table(0x1000, 1), 0x1003);
    assert_eq!(VtdFs::new(48, 48).unwrap().encode_table(0x1000, 1), 0x1027);
}

/// Maps every prot at every level through the walker and reads it back.
fn prot_through_the_table<F: Format>(f: F) {
    let mem = Arc::new(ArenaMemory::new(0x1000_0000, 4 << 20));
    let pt = PageTable::new(f.clone(), mem).unwrap();
    let mut iova = 0;
    for size in [0x1000u64, 0x20_0000, 0x4000_0000] {
        for p in all_prots() {
            iova += size;
            iova = iova.next_multiple_of(size);
            pt.map_pages(Iova(iova), PhysAddr(iova), size, 1, p)
                .unwrap();
            let t = pt.translate(Iova(iova)).unwrap();
            assert_eq!(
                (t.pa, t.size, t.prot),
                (PhysAddr(iova), size, f.effective_prot(p))
            );
        }
    }
}

#[test]
fn every_prot_at_every_level_through_the_walker() {
    prot_through_the_table(ss48());
    prot_through_the_table(ss48().with_snoop_control(false));
    prot_through_the_table(fs48());
}

// ---------------------------------------------------------------- reserved masks

/// Sets each bit of `mask` alone in the valid entry `base` and expects a reserved
/// fault naming exactly that bit.
fn assert_each_bit_reserved<F: Format>(f: &F, level: u32, base: u64, mask: u64, what: &str) {
    assert_eq!(base & mask, 0, "{what}: base entry has reserved bits");
    assert!(
        !matches!(f.decode(base, level), Entry::Fault(_) | Entry::Empty),
        "{what}: base entry must decode"
    );
    for b in (0..64).filter(|b| mask & (1 << b) != 0) {
        let raw = base | 1 << b;
        assert_eq!(
            f.decode(raw, level),
            Entry::Fault(Fault::Reserved { raw, bits: 1 << b }),
            "{what}: bit {b}"
        );
    }
}

/// Sets each bit of `ignored` alone in `base` and expects the same decode.
fn assert_each_bit_ignored<F: Format>(f: &F, level: u32, base: u64, ignored: u64, what: &str) {
    let want = f.decode(base, level);
    for b in (0..64).filter(|b| ignored & (1 << b) != 0) {
        assert_eq!(f.decode(base | 1 << b, level), want, "{what}: bit {b}");
    }
}

/// docs/formats.md §1.4 table, HAW = 48 column.
const SS_PML4E: u64 = 0x400F_0000_0000_0880;
const SS_NONLEAF: u64 = 0x400F_0000_0000_0800;
const SS_1G: u64 = 0x400F_0000_3FFF_F000;
const SS_2M: u64 = 0x400F_0000_001F_F000;
const SS_PTE: u64 = 0x400F_0000_0000_0000;

#[test]
fn ss_reserved_masks_at_haw_48() {
    let f = VtdSs::new(57, 48).unwrap().with_haw(48).unwrap();
    let table = 0x1000_1003;
    assert_each_bit_reserved(&f, 4, table, SS_PML4E, "PML5E");
    assert_each_bit_reserved(&f, 3, table, SS_PML4E, "PML4E");
    assert_each_bit_reserved(&f, 2, table, SS_NONLEAF, "PDPTE -> PD");
    assert_each_bit_reserved(&f, 1, table, SS_NONLEAF, "PDE -> PT");
    assert_each_bit_reserved(&f, 2, 0x40_0000_0083, SS_1G, "1G PDPTE");
    assert_each_bit_reserved(&f, 1, 0x1_2340_0083, SS_2M, "2M PDE");
    assert_each_bit_reserved(&f, 0, 0x8_0000_0003, SS_PTE, "PTE");

    let nosnp = f.with_snoop_control(false);
    assert_each_bit_reserved(&nosnp, 2, 0x40_0000_0083, SS_1G | 0x800, "1G, no SC");
    assert_each_bit_reserved(&nosnp, 1, 0x1_2340_0083, SS_2M | 0x800, "2M, no SC");
    assert_each_bit_reserved(&nosnp, 0, 0x8_0000_0003, SS_PTE | 0x800, "PTE, no SC");
}

#[test]
fn ss_ignored_bits() {
    let f = VtdSs::new(57, 48).unwrap().with_haw(48).unwrap();
    // X (deprecated), EMT/IPAT, A, D, bit 10, 61:52 and 63 (docs/formats.md §1.3, §6 #3).
    let ignored = 0x7c | 0x700 | 0xbff0_0000_0000_0000;
    for level in 0..5 {
        assert_each_bit_ignored(&f, level, 0x1000_1003, ignored, "table");
    }
    assert_each_bit_ignored(&f, 0, 0x8_0000_0003, ignored | 0x80, "PTE"); // PS unused
    assert_each_bit_ignored(&f, 1, 0x1_2340_0083, ignored, "2M");
    assert_each_bit_ignored(&f, 2, 0x40_0000_0083, ignored, "1G");
    // R = W = 0: not present whatever else is set.
    assert_eq!(f.decode(!3, 0), Entry::Empty);
    assert_eq!(f.decode(!3, 4), Entry::Empty);
}

#[test]
fn ss_haw_follows_oas_for_leaves() {
    let f = VtdSs::new(48, 39).unwrap();
    let h = 0x000f_ff80_0000_0000; // mask(51, 39)
    assert_each_bit_reserved(&f, 0, 0x10_0000_0003, h | 1 << 62, "PTE, HAW 39");
    // Table pointers follow the table HAW, 52 by default: tables may live anywhere.
    assert_eq!(
        f.decode(0x0008_0000_0000_1003, 1),
        Entry::Table(0x0008_0000_0000_1000)
    );
    let strict = f.with_haw(39).unwrap();
    assert_each_bit_reserved(&strict, 1, 0x1003, h | 1 << 62 | 0x800, "PDE, HAW 39");
}

#[test]
fn ss_disabled_superpages_fault() {
    let f = VtdSs::new(48, 48).unwrap().with_large_pages(false, false);
    for (level, raw) in [(1, 0x1_2340_0083u64), (2, 0x40_0000_0083)] {
        assert_eq!(
            f.decode(raw, level),
            Entry::Fault(Fault::Reserved { raw, bits: 0x80 }),
            "level {level}"
        );
    }
    assert_eq!(f.geometry().pgsize_bitmap, 0x1000);
    let only_2m = VtdSs::new(48, 48).unwrap().with_large_pages(true, false);
    assert!(matches!(
        only_2m.decode(0x1_2340_0083, 1),
        Entry::Leaf { .. }
    ));
    assert!(matches!(only_2m.decode(0x40_0000_0083, 2), Entry::Fault(_)));
}

/// docs/formats.md §2.2 (QEMU `VTD_FPTE_*`), HAW = 48.
const FS_H: u64 = 0x000F_0000_0000_0000;

#[test]
fn fs_reserved_masks_at_haw_48() {
    let f = VtdFs::new(57, 48).unwrap().with_haw(48).unwrap();
    let table = 0x2000_1027;
    assert_each_bit_reserved(&f, 4, table, FS_H | 0x80, "PML5E");
    assert_each_bit_reserved(&f, 3, table, FS_H | 0x80, "PML4E");
    assert_each_bit_reserved(&f, 2, table, FS_H, "PDPTE -> PD");
    assert_each_bit_reserved(&f, 1, table, FS_H, "PDE -> PT");
    assert_each_bit_reserved(&f, 2, 0x40_0000_00e7, FS_H | 0x3fff_e000, "1G PDPTE");
    assert_each_bit_reserved(&f, 1, 0x1_2340_00e7, FS_H | 0x1f_e000, "2M PDE");
    assert_each_bit_reserved(&f, 0, 0x8_0000_0067, FS_H, "PTE");
}

#[test]
fn fs_ignored_bits() {
    let f = VtdFs::new(57, 48).unwrap().with_haw(48).unwrap();
    // PWT, PCD, A, D, G, 9, EA, 11, and 63:52 with XD (docs/formats.md §2.2, §6 #5).
    let ignored = 0x18 | 0x60 | 0xf00 | 0xfff0_0000_0000_0000;
    for level in 0..5 {
        assert_each_bit_ignored(&f, level, 0x2000_1027, ignored, "table");
    }
    assert_each_bit_ignored(&f, 0, 0x8_0000_0067, ignored | 0x80, "PTE"); // PAT
    assert_each_bit_ignored(&f, 1, 0x1_2340_00e7, ignored | 0x1000, "2M"); // PAT
    assert_each_bit_ignored(&f, 2, 0x40_0000_00e7, ignored | 0x1000, "1G");
    assert_eq!(f.decode(!1, 0), Entry::Empty);
}

#[test]
fn fs_without_fs1gp_faults_on_1g() {
    let f = VtdFs::new(48, 48).unwrap().with_1g_pages(false);
    let raw = 0x40_0000_00e7;
    assert_eq!(
        f.decode(raw, 2),
        Entry::Fault(Fault::Reserved { raw, bits: 0x80 })
    );
    assert!(matches!(f.decode(0x1_2340_00e7, 1), Entry::Leaf { .. }));
}

#[test]
fn fs_prot_bits_decode() {
    let f = fs48();
    let leaf = |raw| f.decode(raw, 0);
    assert_eq!(
        leaf(0x1025),
        Entry::Leaf {
            pa: 0x1000,
            size: 0x1000,
            prot: Prot::READ
        }
    );
    assert_eq!(
        leaf(0x1027),
        Entry::Leaf {
            pa: 0x1000,
            size: 0x1000,
            prot: Prot::RW
        }
    );
    assert_eq!(
        leaf(0x1023),
        Entry::Leaf {
            pa: 0x1000,
            size: 0x1000,
            prot: Prot::RW | Prot::PRIV
        }
    );
    assert_eq!(
        leaf(0x1001),
        Entry::Leaf {
            pa: 0x1000,
            size: 0x1000,
            prot: Prot::READ | Prot::PRIV
        }
    );
}

/// Overwrites the entry at physical `pa` of the arena, as foreign software would.
fn poke(mem: &ArenaMemory, pa: u64, value: u64) {
    use pgtable_core::TableMemory;
    use std::sync::atomic::{AtomicU64, Ordering};
    let p = mem.phys_to_virt(pa, 8).unwrap();
    assert_eq!(pa % 8, 0);
    // SAFETY: `pa` is an 8-byte aligned word inside a live table page of `mem` (the
    // arena keeps it mapped while `mem` lives); table words are only accessed
    // atomically, so an atomic store cannot race with a plain access.
    unsafe { (*p.as_ptr().cast::<AtomicU64>()).store(value, Ordering::Release) };
}

#[test]
fn walker_reports_reserved_faults_in_foreign_tables() {
    let mem = Arc::new(ArenaMemory::new(0x1000_0000, 1 << 20));
    let pt = PageTable::new(ss48(), mem.clone()).unwrap();
    pt.map_pages(
        Iova(0x1234_5000),
        PhysAddr(0x8_0000_0000),
        0x1000,
        1,
        Prot::RW,
    )
    .unwrap();
    // The same tables, as a VMM would see them in a guest's memory.
    let view = ForeignTable::new(ss48(), mem.clone(), pt.root_phys()).unwrap();
    // Bit 62 (the former TM bit) in the PTE, as an old driver might have written it.
    poke(&mem, 0x1000_3a28, 0x4000_0008_0000_0003);
    match view.translate(Iova(0x1234_5000)) {
        Err(pgtable_core::Error::Fault {
            iova: Iova(0x1234_5000),
            fault:
                Fault::Reserved {
                    raw: 0x4000_0008_0000_0003,
                    bits: 0x4000_0000_0000_0000,
                },
        }) => {}
        other => panic!("{other:?}"),
    }
    // PS in the PML4E.
    poke(&mem, 0x1000_3a28, 0x8_0000_0003);
    poke(&mem, 0x1000_0000, 0x1000_1083);
    assert!(matches!(
        view.translate(Iova(0x1234_5000)),
        Err(pgtable_core::Error::Fault {
            fault: Fault::Reserved { bits: 0x80, .. },
            ..
        })
    ));
    poke(&mem, 0x1000_0000, 0x1000_1003);
    assert_eq!(
        view.translate(Iova(0x1234_5678)).unwrap().pa,
        PhysAddr(0x8_0000_0678)
    );
}
