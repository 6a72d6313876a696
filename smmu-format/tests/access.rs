//! Arm walks by access type (docs/formats.md §3.5–§3.7, §3.10): AF faults and HA, DBM with
//! and without HD, APTable / UXNTable limits and HAD, stage-2 S2AP.

use pgtable_core::conformance::written_table;
use pgtable_core::{
    Access, ArenaMemory, FaultKind, Format, Iova, PhysAddr, Prot, TableWriter, WalkPolicy,
};
use smmu_format::{ArmConfig, ArmS1, ArmS2, descriptor};

const BASE: u64 = 0x8000_0000;

/// A table mapping 0x5000 -> 0x9000 with `prot`, written as a guest would.
fn table<F: Format>(fmt: F, prot: Prot) -> TableWriter<F, ArenaMemory> {
    written_table(fmt, BASE, Iova(0x5000), PhysAddr(0x9000), 0x1000, prot)
}

fn edit<F: Format>(w: &TableWriter<F, ArenaMemory>, level: u32, f: impl Fn(u64) -> u64) -> u64 {
    let at = w.entry_address(Iova(0x5000), level).unwrap();
    let raw = f(w.read_entry(at).unwrap());
    w.write_entry(at, raw).unwrap();
    raw
}

fn leaf<F: Format>(w: &TableWriter<F, ArenaMemory>) -> u64 {
    w.read_entry(w.entry_address(Iova(0x5000), 0).unwrap())
        .unwrap()
}

fn kind<F: Format>(
    w: &TableWriter<F, ArenaMemory>,
    policy: WalkPolicy,
    a: Access,
) -> Option<FaultKind> {
    let view = w.view().unwrap().with_policy(policy).unwrap();
    view.translate_access(Iova(0x5000), a).err().map(|f| {
        assert_eq!(f.iova, Iova(0x5000));
        f.kind
    })
}

const NO_AF_FAULTS: WalkPolicy = WalkPolicy {
    access_faults: false,
    ..WalkPolicy::READ_ONLY
};
const HA: WalkPolicy = WalkPolicy {
    set_accessed: true,
    ..WalkPolicy::READ_ONLY
};

#[test]
fn a_clear_access_flag_faults_unless_affd_or_ha() {
    let w = table(ArmS1::new(ArmConfig::default()).unwrap(), Prot::RW);
    let raw = edit(&w, 0, |e| e & !descriptor::AF);
    let view = w.view().unwrap();
    let f = view
        .translate_access(Iova(0x5000), Access::READ)
        .unwrap_err();
    assert_eq!((f.kind, f.level, f.entry), (FaultKind::AccessFlag, 0, raw));
    // AFFD: no fault, nothing written.
    assert_eq!(kind(&w, NO_AF_FAULTS, Access::READ), None);
    assert_eq!(leaf(&w), raw);
    // HA: the walker sets AF, in the leaf only (tables have none).
    let top = w
        .read_entry(w.entry_address(Iova(0x5000), 3).unwrap())
        .unwrap();
    assert_eq!(kind(&w, HA, Access::READ), None);
    assert_eq!(leaf(&w), raw | descriptor::AF);
    assert_eq!(
        w.read_entry(w.entry_address(Iova(0x5000), 3).unwrap())
            .unwrap(),
        top
    );
}

/// A clean DBM leaf: read-only without HD; with HD a write flips `dirty_bit`.
fn dbm_case<F: Format>(f: F, dirty_bit: u64, clean_has_bit: bool) {
    let w = table(f.clone(), Prot::RW);
    let clean = edit(&w, 0, |e| f.track_dirty(e, 0, true));
    let want = descriptor::DBM | if clean_has_bit { dirty_bit } else { 0 };
    assert_eq!(clean & (descriptor::DBM | dirty_bit), want);
    // Without HD, DBM is ignored: the clean leaf is read-only.
    assert_eq!(kind(&w, WalkPolicy::READ_ONLY, Access::READ), None);
    assert!(matches!(
        kind(&w, WalkPolicy::READ_ONLY, Access::WRITE),
        Some(FaultKind::Permission { granted }) if !granted.contains(Prot::WRITE)
    ));
    assert_eq!(leaf(&w), clean);
    // With HD, a read leaves it clean and a write makes it dirty.
    assert_eq!(kind(&w, WalkPolicy::UPDATE, Access::READ), None);
    assert_eq!(leaf(&w), clean);
    assert_eq!(kind(&w, WalkPolicy::UPDATE, Access::WRITE), None);
    assert_eq!(leaf(&w), clean ^ dirty_bit);
}

#[test]
fn dbm_grants_writes_only_with_hardware_dirty_updates() {
    // Stage 1: clean = AP[2] (bit 7) set; a write clears it.
    dbm_case(ArmS1::new(ArmConfig::default()).unwrap(), 1 << 7, true);
    // Stage 2: clean = S2AP[1] (bit 7) clear; a write sets it.
    dbm_case(ArmS2::new(ArmConfig::default()).unwrap(), 1 << 7, false);
}

#[test]
fn stage1_table_attributes_limit_the_subtree_unless_had() {
    let cfg = ArmConfig::default();
    let w = table(ArmS1::new(cfg).unwrap(), Prot::RW);
    let top = w.entry_address(Iova(0x5000), 3).unwrap();
    let table_entry = w.read_entry(top).unwrap();
    let denied = |bits: u64, a: Access| {
        w.write_entry(top, table_entry | bits).unwrap();
        let f = kind(&w, WalkPolicy::READ_ONLY, a);
        w.write_entry(top, table_entry).unwrap();
        f
    };
    let perm = |f: Option<FaultKind>| matches!(f, Some(FaultKind::Permission { .. }));
    assert!(perm(denied(descriptor::AP_TABLE_RDONLY, Access::WRITE)));
    assert!(!perm(denied(descriptor::AP_TABLE_RDONLY, Access::READ)));
    assert!(perm(denied(descriptor::AP_TABLE_NO_UNPRIV, Access::READ)));
    assert!(!perm(denied(
        descriptor::AP_TABLE_NO_UNPRIV,
        Access::READ.privileged()
    )));
    let exec = Access {
        exec: true,
        ..Access::READ
    };
    assert!(perm(denied(descriptor::UXN_TABLE, exec)));
    assert!(!perm(denied(0, exec)));
    // The plain translation reports the limited grant too.
    w.write_entry(top, table_entry | descriptor::AP_TABLE_RDONLY)
        .unwrap();
    let t = w.view().unwrap().translate(Iova(0x5000)).unwrap();
    assert!(!t.prot.contains(Prot::WRITE));
    // HAD: the same table, walked with hierarchical attributes disabled.
    let had = ArmS1::new(cfg.with_hierarchical_disabled(true)).unwrap();
    let view =
        pgtable_core::ForeignTable::new(had, w.view().unwrap().memory().clone(), w.root()).unwrap();
    assert!(view.translate_access(Iova(0x5000), Access::WRITE).is_ok());
}

#[test]
fn stage2_permissions_come_from_s2ap_alone() {
    let w = table(ArmS2::new(ArmConfig::default()).unwrap(), Prot::WRITE);
    assert!(matches!(
        kind(&w, WalkPolicy::READ_ONLY, Access::READ),
        Some(FaultKind::Permission { granted }) if granted == Prot::WRITE
    ));
    assert_eq!(kind(&w, WalkPolicy::READ_ONLY, Access::WRITE), None);
    // Bits 62:59 of a stage-2 table descriptor are no limits.
    edit(&w, 3, |e| {
        e | descriptor::AP_TABLE_RDONLY | descriptor::AP_TABLE_NO_UNPRIV
    });
    assert_eq!(kind(&w, WalkPolicy::READ_ONLY, Access::WRITE), None);
}
