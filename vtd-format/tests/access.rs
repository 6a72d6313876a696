//! VT-d walks by access type (docs/formats.md §1.3–§1.7, §2.2): R/W and U/S ANDed across
//! levels, A on every level and D on written leaves when updates are on.

use pgtable_core::conformance::written_table;
use pgtable_core::{
    Access, ArenaMemory, FaultKind, Format, Iova, PhysAddr, Prot, TableWriter, WalkPolicy,
};
use vtd_format::{VtdFs, VtdSs};

const BASE: u64 = 0x8000_0000;

/// A table mapping 0x5000 -> 0x9000 with `prot`, written as a guest would.
fn table<F: Format>(fmt: F, prot: Prot) -> TableWriter<F, ArenaMemory> {
    written_table(fmt, BASE, Iova(0x5000), PhysAddr(0x9000), 0x1000, prot)
}

fn path<F: Format>(w: &TableWriter<F, ArenaMemory>) -> Vec<u64> {
    (0..4)
        .rev()
        .map(|l| {
            w.read_entry(w.entry_address(Iova(0x5000), l).unwrap())
                .unwrap()
        })
        .collect()
}

fn set_path<F: Format>(w: &TableWriter<F, ArenaMemory>, entries: &[u64]) {
    for (l, &e) in (0..4).rev().zip(entries) {
        w.write_entry(w.entry_address(Iova(0x5000), l).unwrap(), e)
            .unwrap();
    }
}

fn fault<F: Format>(w: &TableWriter<F, ArenaMemory>, a: Access) -> Option<FaultKind> {
    w.view()
        .unwrap()
        .translate_access(Iova(0x5000), a)
        .err()
        .map(|f| f.kind)
}

fn perm(f: Option<FaultKind>) -> bool {
    matches!(f, Some(FaultKind::Permission { .. }))
}

#[test]
fn second_stage_r_and_w_are_anded_across_levels() {
    let w = table(VtdSs::new(48, 48).unwrap(), Prot::RW);
    let full = path(&w);
    // W clear in the level-2 table entry: reads pass, writes fault.
    let mut p = full.clone();
    p[1] &= !0b10;
    set_path(&w, &p);
    assert!(!perm(fault(&w, Access::READ)));
    assert!(perm(fault(&w, Access::WRITE)));
    assert_eq!(
        w.view().unwrap().translate(Iova(0x5000)).unwrap().prot,
        Prot::READ
    );
    // R clear in the top entry: writes pass, reads fault.
    let mut p = full.clone();
    p[0] &= !0b01;
    set_path(&w, &p);
    assert!(perm(fault(&w, Access::READ)));
    assert!(!perm(fault(&w, Access::WRITE)));
}

#[test]
fn second_stage_updates_set_a_everywhere_and_d_on_writes() {
    let w = table(VtdSs::new(48, 48).unwrap(), Prot::RW);
    let before = path(&w);
    let view = w.view().unwrap().with_policy(WalkPolicy::UPDATE).unwrap();
    view.translate_access(Iova(0x5000), Access::READ).unwrap();
    let accessed: Vec<u64> = before.iter().map(|e| e | 1 << 8).collect();
    assert_eq!(path(&w), accessed);
    view.translate_access(Iova(0x5000), Access::WRITE).unwrap();
    let mut dirty = accessed;
    dirty[3] |= 1 << 9;
    assert_eq!(path(&w), dirty);
    // Without SSADE nothing is written, and a clean writable leaf still takes writes.
    let w = table(VtdSs::new(48, 48).unwrap(), Prot::RW);
    let before = path(&w);
    assert_eq!(fault(&w, Access::WRITE), None);
    assert_eq!(path(&w), before);
}

#[test]
fn first_stage_rw_and_us_are_anded_and_a_d_are_set() {
    let w = table(VtdFs::new(48, 48).unwrap(), Prot::RW);
    // Linux-style leaves preset A and D; clear them everywhere to watch the walker.
    let bare: Vec<u64> = path(&w).iter().map(|e| e & !(1 << 5 | 1 << 6)).collect();
    set_path(&w, &bare);
    let mut p = bare.clone();
    p[2] &= !0b100; // U/S clear at level 1: supervisor only
    set_path(&w, &p);
    assert!(perm(fault(&w, Access::READ)));
    assert!(!perm(fault(&w, Access::READ.privileged())));
    let mut p = bare.clone();
    p[0] &= !0b10; // R/W clear at the top: read-only
    set_path(&w, &p);
    assert!(perm(fault(&w, Access::WRITE)));
    set_path(&w, &bare);
    let view = w.view().unwrap().with_policy(WalkPolicy::UPDATE).unwrap();
    view.translate_access(Iova(0x5000), Access::WRITE).unwrap();
    let mut want: Vec<u64> = bare.iter().map(|e| e | 1 << 5).collect();
    want[3] |= 1 << 6;
    assert_eq!(path(&w), want);
}
