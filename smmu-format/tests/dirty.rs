//! Dirty tracking on both Arm stages (DBM with AP[2] at stage 1, S2AP[1] at stage 2),
//! every granule: the core's dirty batteries.

use pgtable_core::conformance::{dirty_by_hardware_walks, dirty_concurrency, dirty_tracking};
use pgtable_core::{ArenaMemory, HostMemory};
use smmu_format::{ArmConfig, ArmS1, ArmS2};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn dirty_tracking_on_both_stages() {
    for g in [4096, 16384, 65536] {
        let cfg = ArmConfig::new(g, 48, 48);
        dirty_tracking(ArmS1::new(cfg).unwrap(), Arc::new(HostMemory::new()));
        dirty_tracking(
            ArmS2::new(cfg).unwrap(),
            Arc::new(ArenaMemory::new(0x4000_0000, 16 << 20)),
        );
    }
    for g in [4096, 16384, 65536] {
        // HD walks: stage 1 clears AP[2], stage 2 sets S2AP[1] on a written DBM leaf.
        let cfg = ArmConfig::new(g, 48, 48);
        dirty_by_hardware_walks(ArmS1::new(cfg).unwrap());
        dirty_by_hardware_walks(ArmS2::new(cfg).unwrap());
    }
    dirty_concurrency(
        ArmS1::new(ArmConfig::new(4096, 48, 48)).unwrap(),
        Duration::from_millis(300),
    );
    dirty_concurrency(
        ArmS2::new(ArmConfig::new(4096, 40, 40)).unwrap(),
        Duration::from_millis(300),
    );
}

/// The exact words of docs/c-api.md's dirty-tracking table.
#[test]
fn clean_and_dirty_words_are_the_documented_ones() {
    use pgtable_core::{Format, Prot};
    const DBM: u64 = 1 << 51;
    const AP2: u64 = 1 << 7;
    let s1 = ArmS1::new(ArmConfig::new(4096, 48, 48)).unwrap();
    let w = s1.encode_leaf(0x8_0000_0000, 0, Prot::RW | Prot::CACHE);
    assert_eq!(w & (DBM | AP2), 0, "no tracking: writable, no DBM");
    let clean = s1.track_dirty(w, 0, true);
    assert_eq!(clean, w | DBM | AP2);
    let d = s1.dirty_bits().unwrap();
    assert!(!d.is_dirty(clean));
    assert_eq!(d.dirty.apply(clean), w | DBM, "dirty: DBM = 1, AP[2] = 0");
    assert_eq!(s1.track_dirty(clean, 0, false), w);
    let ro = s1.encode_leaf(0x8_0000_0000, 0, Prot::READ);
    assert_eq!(
        s1.track_dirty(ro, 0, true),
        ro,
        "read-only leaves never carry DBM"
    );

    const S2AP1: u64 = 1 << 7;
    let s2 = ArmS2::new(ArmConfig::new(4096, 40, 40)).unwrap();
    let w = s2.encode_leaf(0x80_0000, 0, Prot::RW);
    assert_eq!(w & (DBM | S2AP1), S2AP1);
    let clean = s2.track_dirty(w, 0, true);
    assert_eq!(clean, (w | DBM) & !S2AP1, "clean: DBM = 1, S2AP[1] = 0");
    assert_eq!(s2.dirty_bits().unwrap().dirty.apply(clean), w | DBM);
    assert_eq!(s2.track_dirty(clean, 0, false), w);
}
