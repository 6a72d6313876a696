//! Dirty tracking on both VT-d stages: second-stage D (bit 9) and first-stage D (bit
//! 6), the core's dirty batteries and the exact words of docs/c-api.md's table.

use pgtable_core::conformance::{dirty_by_hardware_walks, dirty_concurrency, dirty_tracking};
use pgtable_core::{ArenaMemory, Format, HostMemory, Prot};
use std::sync::Arc;
use std::time::Duration;
use vtd_format::{VtdFs, VtdSs};

#[test]
fn both_stages_through_the_batteries() {
    for ias in [39, 48, 57] {
        dirty_tracking(VtdSs::new(ias, 48).unwrap(), Arc::new(HostMemory::new()));
    }
    dirty_tracking(
        VtdFs::new(48, 48).unwrap(),
        Arc::new(ArenaMemory::new(0x4000_0000, 16 << 20)),
    );
    dirty_tracking(VtdFs::new(57, 52).unwrap(), Arc::new(HostMemory::new()));
    // SSADE / first-stage walks set D on the leaves they write.
    dirty_by_hardware_walks(VtdSs::new(48, 48).unwrap());
    dirty_by_hardware_walks(VtdFs::new(48, 48).unwrap());
    dirty_concurrency(VtdSs::new(48, 48).unwrap(), Duration::from_millis(300));
    dirty_concurrency(VtdFs::new(48, 48).unwrap(), Duration::from_millis(300));
}

#[test]
fn clean_and_dirty_words_are_the_documented_ones() {
    const D_SS: u64 = 1 << 9;
    const A_SS: u64 = 1 << 8;
    let ss = VtdSs::new(48, 48).unwrap();
    let w = ss.encode_leaf(0x8_0000_0000, 0, Prot::RW);
    assert_eq!(w, 0x8_0000_0003);
    let clean = ss.track_dirty(w | A_SS | D_SS, 0, true);
    assert_eq!(clean, w | A_SS, "clean: D = 0 (A may stay)");
    let d = ss.dirty_bits().unwrap();
    assert!(d.is_dirty(clean | D_SS) && !d.is_dirty(clean));
    assert_eq!(
        ss.track_dirty(clean, 0, false),
        clean,
        "off: nothing changes on SS"
    );
    let ro = ss.encode_leaf(0x8_0000_0000, 0, Prot::READ);
    assert!(!d.is_dirty(ro | D_SS), "read-only leaves are never dirty");

    const D_FS: u64 = 1 << 6;
    let fs = VtdFs::new(48, 48).unwrap();
    let w = fs.encode_leaf(0x8_0000_0000, 0, Prot::RW);
    assert_eq!(
        w, 0x8_0000_0067,
        "no tracking: D preset, as Linux writes it"
    );
    let clean = fs.track_dirty(w, 0, true);
    assert_eq!(clean, w & !D_FS, "clean: D = 0");
    assert_eq!(clean, 0x8_0000_0027);
    assert_eq!(
        fs.dirty_bits().unwrap().dirty.apply(clean),
        w,
        "dirty: D = 1"
    );
    assert_eq!(fs.track_dirty(clean, 0, false), w, "off: D = 1 again");
    let ro = fs.encode_leaf(0x8_0000_0000, 0, Prot::READ);
    assert_eq!(fs.track_dirty(ro, 0, true), ro);
}
