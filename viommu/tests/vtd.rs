//! The VT-d unit against guest-built chains: every fault reason it can meet, reached by
//! a crafted structure or table, with its exact code and record; translations through
//! each PGTT; FPD and the fault log; invalidations.

use pgtable_core::{Access, Format, Iova, PhysAddr, Prot, TableWriter, WriterPage};
use std::cell::Cell;
use std::sync::Arc;
use viommu::memory::{ImageMemory, PhysAccess};
use viommu::vtd::{VtdCaps, VtdUnit};
use vtd_format::{
    Agaw, ContextCacheScope, ContextEntry, ContextTablePointer, FaultReason, FaultRecord,
    InvalidationDescriptor, IotlbScope, PasidDirEntry, PasidEntry, Pgtt, RootEntry,
    RootTableAddress, ScalableContextEntry, ScalableRootEntry, SourceId, TranslationTableMode,
    TranslationType, VtdFs, VtdSs,
};

const ROOT: u64 = 0x1000;
const CTX: u64 = 0x2000;
const PASID_DIR: u64 = 0x3000;
const PASID_TABLE: u64 = 0x4000;
const SS_ROOT: u64 = 0x5000;
const FS_ROOT: u64 = 0x6000;
/// Outside the 16 MiB of guest memory, below the 48-bit host address width.
const NOWHERE: u64 = 0x7000_0000;
const DEV: SourceId = SourceId::new(0, 0x18);
const DID: u16 = 5;
/// Mapped read-write to 0x80_0000, read-only to 0x80_1000, write-only to 0x80_2000.
const RW_PAGE: u64 = 0x10_0000;
const RO_PAGE: u64 = 0x10_1000;
const WO_PAGE: u64 = 0x10_2000;

/// Guest RAM with a bump allocator for table pages.
struct Guest {
    mem: Arc<ImageMemory>,
    next: Cell<u64>,
}

impl Guest {
    fn new() -> Self {
        Guest {
            mem: Arc::new(ImageMemory::anonymous(0, 16 << 20).unwrap()),
            next: Cell::new(0x10_0000),
        }
    }

    fn page(&self) -> WriterPage {
        let pa = self.next.get();
        self.next.set(pa + 0x1000);
        WriterPage {
            pa: PhysAddr(pa),
            pointer: pa,
        }
    }

    fn write(&self, pa: u64, words: &[u64]) {
        for (i, w) in words.iter().enumerate() {
            self.mem.write_u64(pa + 8 * i as u64, *w).unwrap();
        }
    }

    fn read(&self, pa: u64) -> u64 {
        self.mem.read_u64(pa).unwrap()
    }

    /// A table at `root` mapping the three test pages.
    fn tables<F: Format>(&self, fmt: F, root: u64) -> TableWriter<F, ImageMemory> {
        let mut w = TableWriter::new(fmt, self.mem.clone(), PhysAddr(root)).unwrap();
        let mut page = || Some(self.page());
        for (iova, pa, prot) in [
            (RW_PAGE, 0x80_0000, Prot::RW),
            (RO_PAGE, 0x80_1000, Prot::READ),
            (WO_PAGE, 0x80_2000, Prot::WRITE),
        ] {
            w.map(Iova(iova), PhysAddr(pa), 0x1000, prot, &mut page)
                .unwrap();
        }
        w
    }

    /// Legacy mode: root entry of bus 0 → context table → `ce` for DEV.
    fn legacy(&self, ce: ContextEntry) -> u64 {
        self.write(
            ROOT,
            &RootEntry {
                present: true,
                context_table: PhysAddr(CTX),
            }
            .encode(),
        );
        self.write(CTX + u64::from(DEV.devfn()) * 16, &ce.words());
        RootTableAddress {
            table: PhysAddr(ROOT),
            mode: TranslationTableMode::Legacy,
        }
        .encode()
    }

    /// Scalable mode: root → context (PASIDE, 2^13 PASIDs, RID_PASID 0) → PASID
    /// directory → PASID table, with `pe` for PASIDs 0 and 1.
    fn scalable(&self, pe: PasidEntry) -> u64 {
        let lower = ContextTablePointer {
            present: true,
            table: PhysAddr(CTX),
        };
        let root = ScalableRootEntry {
            lower,
            upper: ContextTablePointer::default(),
        };
        self.write(ROOT, &root.encode());
        let ce = ScalableContextEntry {
            present: true,
            paside: true,
            pasid_dir: PhysAddr(PASID_DIR),
            ..Default::default()
        };
        self.write(CTX + u64::from(DEV.devfn()) * 32, &ce.encode());
        let de = PasidDirEntry {
            present: true,
            fpd: false,
            table: PhysAddr(PASID_TABLE),
        };
        self.write(PASID_DIR, &[de.encode()]);
        self.write(PASID_TABLE, &pe.val);
        self.write(PASID_TABLE + 64, &pe.val);
        RootTableAddress {
            table: PhysAddr(ROOT),
            mode: TranslationTableMode::Scalable,
        }
        .encode()
    }

    fn unit(&self, rtaddr: u64) -> VtdUnit<ImageMemory> {
        let unit = VtdUnit::new(self.mem.clone(), VtdCaps::default());
        unit.set_root_table(rtaddr);
        unit
    }
}

fn ss_fmt() -> VtdSs {
    VtdSs::new(48, 48).unwrap()
}

fn fs_fmt() -> VtdFs {
    VtdFs::new(48, 48).unwrap()
}

/// A request and what it must give.
struct Req {
    pasid: Option<u32>,
    iova: u64,
    access: Access,
}

const READ: Req = Req {
    pasid: None,
    iova: RW_PAGE,
    access: Access::READ,
};

fn fault_of(unit: &VtdUnit<ImageMemory>, r: &Req) -> FaultRecord {
    let f = unit
        .translate(DEV, r.pasid, r.iova, r.access)
        .expect_err("the request must fault");
    assert!(f.recorded, "{f}");
    let logged = unit.take_faults();
    assert_eq!(logged, [f.record]);
    // The record is byte-exact: it decodes back to itself.
    assert_eq!(FaultRecord::decode(f.record.encode()), Ok(f.record));
    assert_eq!(f.record.source, DEV);
    assert_eq!(f.record.address, Iova(r.iova & !0xfff));
    assert_eq!(f.record.read, !r.access.write);
    assert_eq!(f.record.privileged, r.access.privileged);
    f.record
}

/// Each case: a name, the chain (built on a fresh guest, possibly broken), the request
/// and the reason.
type Case = (&'static str, fn(&Guest) -> u64, Req, FaultReason);

fn legacy_ok(g: &Guest) -> u64 {
    g.tables(ss_fmt(), SS_ROOT);
    g.legacy(ContextEntry::second_stage(SS_ROOT, Agaw::Bits48, DID))
}

fn sm_ss(g: &Guest) -> u64 {
    g.tables(ss_fmt(), SS_ROOT);
    g.scalable(PasidEntry::second_stage(SS_ROOT, Agaw::Bits48, DID))
}

fn sm_fs(g: &Guest) -> u64 {
    g.tables(fs_fmt(), FS_ROOT);
    g.scalable(PasidEntry::first_stage(FS_ROOT, false, Agaw::Bits48, DID).with_sre(true))
}

/// Nested: the first stage maps the test pages to GPAs 0x80_x000; its table pages lie
/// at GPA = HPA + 0x100_0000 (`shift`), which the second stage maps (read-write, or
/// `prot` for the top table), together with the output pages (identity).
fn nested_with(g: &Guest, top_prot: Prot, skip_table: Option<usize>) -> u64 {
    nested_aw(g, Agaw::Bits48, top_prot, skip_table)
}

/// As [`nested_with`], with a second stage of width `aw`.
fn nested_aw(g: &Guest, aw: Agaw, top_prot: Prot, skip_table: Option<usize>) -> u64 {
    const SHIFT: u64 = 0x100_0000;
    let ss_fmt = VtdSs::new(aw.bits(), 48).unwrap();
    let mut ss = TableWriter::new(ss_fmt, g.mem.clone(), PhysAddr(SS_ROOT)).unwrap();
    let pages: Vec<WriterPage> = (0..8)
        .map(|_| {
            let p = g.page();
            WriterPage {
                pa: p.pa,
                pointer: p.pa.0 + SHIFT,
            }
        })
        .collect();
    let fs_root = pages[0];
    let mut fs = TableWriter::new(fs_fmt(), g.mem.clone(), fs_root.pa).unwrap();
    let mut rest = pages[1..].iter().copied();
    let mut used = vec![fs_root];
    for (iova, gpa, prot) in [
        (RW_PAGE, 0x80_0000, Prot::RW),
        (RO_PAGE, 0x80_1000, Prot::READ),
        (WO_PAGE, 0x80_2000, Prot::WRITE),
    ] {
        fs.map(Iova(iova), PhysAddr(gpa), 0x1000, prot, &mut || {
            let p = rest.next();
            used.extend(p);
            p
        })
        .unwrap();
    }
    let mut ss_pages = || Some(g.page());
    for (i, p) in used.iter().enumerate() {
        if Some(i) == skip_table {
            continue;
        }
        let prot = if i == 0 { top_prot } else { Prot::RW };
        ss.map(Iova(p.pointer), p.pa, 0x1000, prot, &mut ss_pages)
            .unwrap();
    }
    // The output GPAs, identity, all read-write (the first stage decides).
    ss.map(
        Iova(0x80_0000),
        PhysAddr(0x80_0000),
        0x1000,
        Prot::RW,
        &mut ss_pages,
    )
    .unwrap();
    ss.map(
        Iova(0x80_1000),
        PhysAddr(0x80_1000),
        0x1000,
        Prot::READ,
        &mut ss_pages,
    )
    .unwrap();
    let pe = PasidEntry::second_stage(SS_ROOT, aw, DID)
        .with_pgtt(Pgtt::Nested)
        .with_fsptptr(fs_root.pointer);
    g.scalable(pe)
}

fn nested(g: &Guest) -> u64 {
    nested_with(g, Prot::RW, None)
}

/// Overwrites the word at `pa` with `f(word)`.
fn patch(g: &Guest, pa: u64, f: impl Fn(u64) -> u64) {
    g.write(pa, &[f(g.read(pa))]);
}

/// Where the leaf entry of `iova` lies in the table at `root`.
fn leaf_at<F: Format>(g: &Guest, fmt: F, root: u64, iova: u64) -> u64 {
    // Rebuild a writer over the same pages to find the entry: the writer knows no
    // pages it did not write, so walk by hand.
    let geo = fmt.geometry();
    let mut table = root;
    for level in (1..geo.levels).rev() {
        let e = g.read(table + geo.index(iova, level) as u64 * 8);
        table = e & 0x000f_ffff_ffff_f000;
    }
    table + geo.index(iova, 0) as u64 * 8
}

/// The entry of `level` on `iova`'s path in the table at `root`.
fn entry_at<F: Format>(g: &Guest, fmt: F, root: u64, iova: u64, level: u32) -> u64 {
    let geo = fmt.geometry();
    let mut table = root;
    for l in ((level + 1)..geo.levels).rev() {
        table = g.read(table + geo.index(iova, l) as u64 * 8) & 0x000f_ffff_ffff_f000;
    }
    table + geo.index(iova, level) as u64 * 8
}

fn write_req(iova: u64) -> Req {
    Req {
        pasid: None,
        iova,
        access: Access::WRITE,
    }
}

fn read_req(iova: u64) -> Req {
    Req {
        pasid: None,
        iova,
        access: Access::READ,
    }
}

#[test]
fn every_legacy_fault_reason() {
    use FaultReason as R;
    let cases: Vec<Case> = vec![
        (
            "root entry not present",
            |g| {
                let rta = legacy_ok(g);
                g.write(ROOT, &[0, 0]);
                rta
            },
            READ,
            R::RootEntryNotPresent,
        ),
        (
            "context entry not present",
            |g| {
                let rta = legacy_ok(g);
                g.write(CTX + 0x18 * 16, &[0, 0]);
                rta
            },
            READ,
            R::ContextEntryNotPresent,
        ),
        (
            "AW not in SAGAW",
            |g| {
                g.tables(ss_fmt(), SS_ROOT);
                g.legacy(ContextEntry::second_stage(SS_ROOT, Agaw::Bits57, DID))
            },
            READ,
            R::ContextEntryInvalid,
        ),
        (
            "TT reserved",
            |g| {
                let rta = legacy_ok(g);
                patch(g, CTX + 0x18 * 16, |w| w | 0b1100);
                rta
            },
            READ,
            R::ContextEntryInvalid,
        ),
        (
            "second-stage root not in memory",
            |g| g.legacy(ContextEntry::second_stage(NOWHERE, Agaw::Bits48, DID)),
            READ,
            R::ContextEntryInvalid,
        ),
        (
            "input beyond the AGAW",
            |g| legacy_ok(g),
            read_req(1 << 48),
            R::AddressBeyondMgaw,
        ),
        (
            "write to a read-only page",
            |g| legacy_ok(g),
            write_req(RO_PAGE),
            R::WriteDenied,
        ),
        (
            "read of a write-only page",
            |g| legacy_ok(g),
            read_req(WO_PAGE),
            R::ReadDenied,
        ),
        (
            "read of an unmapped page",
            |g| legacy_ok(g),
            read_req(0x40_0000),
            R::ReadDenied,
        ),
        (
            "write of an unmapped page",
            |g| legacy_ok(g),
            write_req(0x40_0000),
            R::WriteDenied,
        ),
        (
            "lower second-stage table not in memory",
            |g| {
                let rta = legacy_ok(g);
                patch(g, entry_at(g, ss_fmt(), SS_ROOT, RW_PAGE, 1), |_| {
                    NOWHERE | 0b11
                });
                rta
            },
            READ,
            R::PagingEntryAccess,
        ),
        (
            "root table not in memory",
            |g| {
                legacy_ok(g);
                RootTableAddress {
                    table: PhysAddr(NOWHERE),
                    mode: TranslationTableMode::Legacy,
                }
                .encode()
            },
            READ,
            R::RootTableAccess,
        ),
        (
            "context table not in memory",
            |g| {
                let rta = legacy_ok(g);
                g.write(
                    ROOT,
                    &RootEntry {
                        present: true,
                        context_table: PhysAddr(NOWHERE),
                    }
                    .encode(),
                );
                rta
            },
            READ,
            R::ContextTableAccess,
        ),
        (
            "root entry reserved bit",
            |g| {
                let rta = legacy_ok(g);
                patch(g, ROOT + 8, |_| 1);
                rta
            },
            READ,
            R::RootEntryReserved,
        ),
        (
            "context entry reserved bit",
            |g| {
                let rta = legacy_ok(g);
                patch(g, CTX + 0x18 * 16, |w| w | 1 << 4);
                rta
            },
            READ,
            R::ContextEntryReserved,
        ),
        (
            "second-stage leaf reserved bit",
            |g| {
                let rta = legacy_ok(g);
                patch(g, leaf_at(g, ss_fmt(), SS_ROOT, RW_PAGE), |w| w | 1 << 62);
                rta
            },
            READ,
            R::PagingEntryReserved,
        ),
        (
            "output in the interrupt window",
            |g| {
                let rta = legacy_ok(g);
                patch(g, leaf_at(g, ss_fmt(), SS_ROOT, RW_PAGE), |w| {
                    (w & 0xfff) | 0xFEE0_0000
                });
                rta
            },
            READ,
            R::InterruptAddress,
        ),
    ];
    run(cases);
}

#[test]
fn every_scalable_mode_fault_reason() {
    use FaultReason as R;
    let pasid = |p: u32, access: Access, iova: u64| Req {
        pasid: Some(p),
        iova,
        access,
    };
    let cases: Vec<Case> = vec![
        (
            "RTADDR reserved bits",
            |g| sm_ss(g) | 1,
            READ,
            R::SmRootTableAddressInvalid,
        ),
        (
            "a PASID request in legacy mode",
            |g| legacy_ok(g),
            pasid(1, Access::READ, RW_PAGE),
            R::SmLegacyTtm,
        ),
        (
            "root table not in memory",
            |g| {
                sm_ss(g);
                RootTableAddress {
                    table: PhysAddr(NOWHERE),
                    mode: TranslationTableMode::Scalable,
                }
                .encode()
            },
            READ,
            R::SmRootEntryAccess,
        ),
        (
            "root entry half not present",
            |g| {
                let rta = sm_ss(g);
                g.write(ROOT, &[0]);
                rta
            },
            READ,
            R::SmRootEntryNotPresent,
        ),
        (
            "root entry reserved bit",
            |g| {
                let rta = sm_ss(g);
                patch(g, ROOT, |w| w | 0b10);
                rta
            },
            READ,
            R::SmRootEntryReserved,
        ),
        (
            "context table not in memory",
            |g| {
                let rta = sm_ss(g);
                g.write(ROOT, &[NOWHERE | 1]);
                rta
            },
            READ,
            R::SmContextEntryAccess,
        ),
        (
            "context entry not present",
            |g| {
                let rta = sm_ss(g);
                patch(g, CTX + 0x18 * 32, |w| w & !1);
                rta
            },
            READ,
            R::SmContextEntryNotPresent,
        ),
        (
            "context entry reserved bit",
            |g| {
                let rta = sm_ss(g);
                patch(g, CTX + 0x18 * 32 + 24, |_| 1);
                rta
            },
            READ,
            R::SmContextEntryReserved,
        ),
        (
            "a PASID request without PASIDE",
            |g| {
                let rta = sm_ss(g);
                patch(g, CTX + 0x18 * 32, |w| w & !(1 << 3));
                rta
            },
            pasid(1, Access::READ, RW_PAGE),
            R::SmPasidDisabled,
        ),
        (
            "PASID beyond the directory",
            |g| sm_ss(g),
            pasid(0x2000, Access::READ, RW_PAGE),
            R::SmPasidBeyondDirectory,
        ),
        (
            "PASID directory not in memory",
            |g| {
                let rta = sm_ss(g);
                patch(g, CTX + 0x18 * 32, |w| (w & 0xfff) | NOWHERE);
                rta
            },
            READ,
            R::PasidDirEntryAccess,
        ),
        (
            "PASID-directory entry not present",
            |g| {
                let rta = sm_ss(g);
                g.write(PASID_DIR, &[0]);
                rta
            },
            READ,
            R::PasidDirEntryNotPresent,
        ),
        (
            "PASID-directory entry reserved bit",
            |g| {
                let rta = sm_ss(g);
                patch(g, PASID_DIR, |w| w | 1 << 2);
                rta
            },
            READ,
            R::PasidDirEntryReserved,
        ),
        (
            "PASID table not in memory",
            |g| {
                let rta = sm_ss(g);
                g.write(PASID_DIR, &[NOWHERE | 1]);
                rta
            },
            READ,
            R::PasidEntryAccess,
        ),
        (
            "PASID entry not present",
            |g| {
                let rta = sm_ss(g);
                patch(g, PASID_TABLE, |w| w & !1);
                rta
            },
            READ,
            R::PasidEntryNotPresent,
        ),
        (
            "PASID entry reserved bit",
            |g| {
                let rta = sm_ss(g);
                patch(g, PASID_TABLE + 24, |_| 1);
                rta
            },
            READ,
            R::PasidEntryReserved,
        ),
        (
            "PGTT reserved",
            |g| {
                let rta = sm_ss(g);
                patch(g, PASID_TABLE, |w| w & !(0b111 << 6) | 0b101 << 6);
                rta
            },
            READ,
            R::PasidEntryInvalid,
        ),
        (
            "AW not in SAGAW",
            |g| {
                g.tables(ss_fmt(), SS_ROOT);
                g.scalable(PasidEntry::second_stage(SS_ROOT, Agaw::Bits57, DID))
            },
            READ,
            R::PasidEntryInvalid,
        ),
        (
            "a supervisor request without SRE",
            |g| sm_ss(g),
            Req {
                pasid: None,
                iova: RW_PAGE,
                access: Access::READ.privileged(),
            },
            R::SmSupervisorRequestDisabled,
        ),
        (
            "second-stage lower table not in memory",
            |g| {
                let rta = sm_ss(g);
                patch(g, entry_at(g, ss_fmt(), SS_ROOT, RW_PAGE, 2), |_| {
                    NOWHERE | 0b11
                });
                rta
            },
            READ,
            R::SmSsEntryAccess,
        ),
        (
            "second-stage entry not present",
            |g| sm_ss(g),
            read_req(0x40_0000),
            R::SmSsPermission,
        ),
        (
            "second-stage entry reserved bit",
            |g| {
                let rta = sm_ss(g);
                patch(g, leaf_at(g, ss_fmt(), SS_ROOT, RW_PAGE), |w| w | 1 << 62);
                rta
            },
            READ,
            R::SmSsEntryReserved,
        ),
        (
            "SSPTPTR not in memory",
            |g| g.scalable(PasidEntry::second_stage(NOWHERE, Agaw::Bits48, DID)),
            READ,
            R::SmSsRootInvalid,
        ),
        (
            "input beyond the second-stage width",
            |g| sm_ss(g),
            read_req(1 << 48),
            R::SmAddressBeyondSs,
        ),
        (
            "write to a read-only page",
            |g| sm_ss(g),
            write_req(RO_PAGE),
            R::SmWriteDenied,
        ),
        (
            "read of a write-only page",
            |g| sm_ss(g),
            read_req(WO_PAGE),
            R::SmReadDenied,
        ),
        (
            "output in the interrupt window",
            |g| {
                let rta = sm_ss(g);
                patch(g, leaf_at(g, ss_fmt(), SS_ROOT, RW_PAGE), |w| {
                    (w & 0xfff) | 0xFEE0_0000
                });
                rta
            },
            READ,
            R::SmInterruptAddress,
        ),
    ];
    run(cases);
}

#[test]
fn every_first_stage_and_nested_fault_reason() {
    use FaultReason as R;
    let cases: Vec<Case> = vec![
        (
            "first-stage lower table not in memory",
            |g| {
                let rta = sm_fs(g);
                patch(g, entry_at(g, fs_fmt(), FS_ROOT, RW_PAGE, 1), |_| {
                    NOWHERE | 0x27
                });
                rta
            },
            READ,
            R::FsEntryAccess,
        ),
        (
            "first-stage entry not present",
            |g| sm_fs(g),
            read_req(0x40_0000),
            R::FsEntryNotPresent,
        ),
        (
            "first-stage entry reserved bit",
            |g| {
                let rta = sm_fs(g);
                patch(g, entry_at(g, fs_fmt(), FS_ROOT, RW_PAGE, 3), |w| {
                    w | 1 << 7
                });
                rta
            },
            READ,
            R::FsEntryReserved,
        ),
        (
            "FSPTPTR not in memory",
            |g| g.scalable(PasidEntry::first_stage(NOWHERE, false, Agaw::Bits48, DID)),
            READ,
            R::FsRootAccess,
        ),
        (
            "a non-canonical input",
            |g| sm_fs(g),
            read_req(1 << 47),
            R::FsNonCanonical,
        ),
        (
            "a user request to a supervisor page",
            |g| {
                let rta = sm_fs(g);
                patch(g, entry_at(g, fs_fmt(), FS_ROOT, RW_PAGE, 2), |w| {
                    w & !0b100
                });
                rta
            },
            READ,
            R::FsUserDenied,
        ),
        (
            "a first-stage write to a read-only page",
            |g| sm_fs(g),
            write_req(RO_PAGE),
            R::SmWriteDenied,
        ),
        (
            "nested: a first-stage table beyond the second-stage width",
            |g| {
                let rta = nested_aw(g, Agaw::Bits39, Prot::RW, None);
                // The first stage's top entry for RW_PAGE points to a GPA at 2^40, inside
                // the host address width but beyond the 39-bit second stage.
                let fs_root = g.read(PASID_TABLE + 16) & !0xfff;
                let at = fs_root - 0x100_0000 + fs_fmt().geometry().index(RW_PAGE, 3) as u64 * 8;
                patch(g, at, |w| (w & 0xfff) | 1 << 40);
                rta
            },
            READ,
            R::NestedFsAddressBeyondSs,
        ),
        (
            "nested: the second stage does not map the first-stage root",
            |g| nested_with(g, Prot::RW, Some(0)),
            READ,
            R::NestedFsRootReadDenied,
        ),
        (
            "nested: the second stage does not map a lower first-stage table",
            |g| nested_with(g, Prot::RW, Some(2)),
            READ,
            R::NestedFsTableReadDenied,
        ),
        (
            "nested: the second stage denies the first stage's A/D write",
            |g| nested_with(g, Prot::READ, None),
            READ,
            R::NestedFsWriteDenied,
        ),
        (
            "nested: the second stage does not map the output",
            |g| nested(g),
            write_req(WO_PAGE),
            R::SmSsPermission,
        ),
        (
            "nested: the second stage denies the output's write",
            |g| nested(g),
            write_req(RO_PAGE),
            R::SmWriteDenied,
        ),
    ];
    run(cases);
}

fn run(cases: Vec<Case>) {
    for (name, build, req, reason) in cases {
        let g = Guest::new();
        let unit = g.unit(build(&g));
        let rec = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fault_of(&unit, &req)))
            .unwrap_or_else(|_| panic!("case {name:?}"));
        assert_eq!(rec.reason, reason, "case {name:?}: {rec:?}");
        assert_eq!(rec.pasid, req.pasid, "case {name:?}");
    }
}

#[test]
fn translations_through_every_kind_of_entry() {
    for (name, build, writable_from_start) in [
        ("legacy", legacy_ok as fn(&Guest) -> u64, true),
        ("second stage", sm_ss, true),
        ("first stage", sm_fs, true),
        ("nested", nested, true),
    ] {
        let g = Guest::new();
        let unit = g.unit(build(&g));
        let m = unit
            .translate(DEV, None, RW_PAGE + 0x123, Access::RW)
            .unwrap();
        assert_eq!(m.translate(RW_PAGE + 0x123), Some(0x80_0123), "{name}");
        let m = unit
            .translate(DEV, None, RO_PAGE + 8, Access::READ)
            .unwrap();
        assert_eq!(m.translate(RO_PAGE + 8), Some(0x80_1008), "{name}");
        assert_eq!(m.size, 0x1000);
        let _ = writable_from_start;
        assert!(unit.take_faults().is_empty(), "{name}");
    }
    // Pass-through, legacy TT = 10 and PGTT = 100: output = input.
    let g = Guest::new();
    let rta = g.legacy(
        ContextEntry::second_stage(0, Agaw::Bits48, DID)
            .with_translation_type(TranslationType::PassThrough),
    );
    let unit = g.unit(rta);
    let m = unit
        .translate(DEV, None, 0x1234_5678, Access::WRITE)
        .unwrap();
    assert_eq!(m.translate(0x1234_5678), Some(0x1234_5678));
    let g = Guest::new();
    let rta =
        g.scalable(PasidEntry::second_stage(0, Agaw::Bits48, DID).with_pgtt(Pgtt::PassThrough));
    let m = g
        .unit(rta)
        .translate(DEV, Some(1), 0x9000, Access::READ)
        .unwrap();
    assert_eq!(m.translate(0x9abc), Some(0x9abc));
}

#[test]
fn fpd_suppresses_qualified_faults_and_a_full_log_overflows() {
    let g = Guest::new();
    let rta = legacy_ok(&g);
    patch(&g, CTX + 0x18 * 16, |w| w | 0b10); // FPD
    let unit = g.unit(rta);
    let f = unit
        .translate(DEV, None, RO_PAGE, Access::WRITE)
        .unwrap_err();
    assert_eq!(
        (f.record.reason, f.recorded),
        (FaultReason::WriteDenied, false)
    );
    assert!(unit.take_faults().is_empty());
    // A fault found before the context entry is known is always recorded.
    g.write(ROOT, &[0, 0]);
    unit.set_root_table(rta);
    let f = unit
        .translate(DEV, None, RO_PAGE, Access::READ)
        .unwrap_err();
    assert_eq!(
        (f.record.reason, f.recorded),
        (FaultReason::RootEntryNotPresent, true)
    );
    assert_eq!(unit.take_faults(), [f.record]);
    // Eight records fit; the ninth is dropped and PFO set.
    for i in 0..8 {
        assert!(
            unit.translate(DEV, None, i << 12, Access::READ)
                .unwrap_err()
                .recorded
        );
    }
    assert!(
        !unit
            .translate(DEV, None, 0, Access::READ)
            .unwrap_err()
            .recorded
    );
    assert!(unit.take_overflow() && !unit.take_overflow());
    assert_eq!(unit.take_faults().len(), 8);
}

#[test]
fn invalidations_drop_what_the_guest_changed() {
    let g = Guest::new();
    let rta = sm_ss(&g);
    let unit = g.unit(rta);
    assert!(unit.translate(DEV, None, RW_PAGE, Access::READ).is_ok());
    // The guest unmaps the page: the IOTLB still has it (as the hardware's would)...
    let leaf = leaf_at(&g, ss_fmt(), SS_ROOT, RW_PAGE);
    g.write(leaf, &[0]);
    assert!(unit.translate(DEV, None, RW_PAGE, Access::READ).is_ok());
    // ...until a page-selective invalidation of another domain (nothing happens) and
    // then of its own (RID_PASID 0, so a PASID-based one).
    unit.apply(InvalidationDescriptor::Iotlb {
        scope: IotlbScope::Page {
            did: DID + 1,
            addr: Iova(RW_PAGE),
            am: 0,
            ih: false,
        },
        drain_reads: false,
        drain_writes: false,
    });
    assert!(unit.translate(DEV, None, RW_PAGE, Access::READ).is_ok());
    let p_iotlb = InvalidationDescriptor::PasidIotlb {
        did: DID,
        pasid: 0,
        scope: vtd_format::PasidIotlbScope::Page {
            addr: Iova(RW_PAGE),
            am: 0,
            ih: false,
        },
    };
    unit.invalidate(p_iotlb.encode()).unwrap();
    let f = unit
        .translate(DEV, None, RW_PAGE, Access::READ)
        .unwrap_err();
    assert_eq!(f.record.reason, FaultReason::SmSsPermission);
    unit.take_faults();
    // The guest points the PASID entry at another table: the cached chain serves until
    // a PASID-cache invalidation.
    let other = 0x50_000;
    g.write(other, &[0]);
    let mut w = g.tables(ss_fmt(), 0x9000);
    w.map(
        Iova(0x30_0000),
        PhysAddr(0x90_0000),
        0x1000,
        Prot::READ,
        &mut || Some(g.page()),
    )
    .unwrap();
    g.write(
        PASID_TABLE,
        &PasidEntry::second_stage(0x9000, Agaw::Bits48, DID).val,
    );
    assert!(unit.translate(DEV, None, 0x30_0000, Access::READ).is_err());
    unit.take_faults();
    unit.apply(InvalidationDescriptor::PasidCache(
        vtd_format::PasidCacheScope::Pasid { did: DID, pasid: 0 },
    ));
    let m = unit.translate(DEV, None, 0x30_0000, Access::READ).unwrap();
    assert_eq!(m.translate(0x30_0000), Some(0x90_0000));
    // A global context-cache invalidation drops everything.
    unit.apply(InvalidationDescriptor::ContextCache(
        ContextCacheScope::Global,
    ));
    assert!(unit.cache().configs().is_empty() && unit.cache().iotlb().is_empty());
}

/// Nested translation through the unit against the composition of two single-stage
/// models (IOVA → GPA, GPA → HPA) on random tables.
#[test]
fn nested_is_the_composition_of_first_and_second_stage_models() {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use std::collections::HashMap;
    const SHIFT: u64 = 0x1_0000_0000; // GPA of a first-stage table page = HPA + SHIFT
    for seed in 0..4 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let g = Guest::new();
        let mut ss = TableWriter::new(ss_fmt(), g.mem.clone(), PhysAddr(SS_ROOT)).unwrap();
        let fs_root = g.page();
        let mut fs_pages = vec![fs_root.pa];
        let mut fs = TableWriter::new(fs_fmt(), g.mem.clone(), fs_root.pa).unwrap();
        let mut s1: HashMap<u64, (u64, Prot)> = HashMap::new();
        let mut s2: HashMap<u64, (u64, Prot)> = HashMap::new();
        let s1_prots = [Prot::READ, Prot::RW, Prot::RW | Prot::PRIV];
        let s2_prots = [Prot::READ, Prot::RW, Prot::WRITE];
        for _ in 0..200 {
            let iova = rng.gen_range(0..1u64 << 30) & !0xfff;
            let gpa = rng.gen_range(0..1u64 << 28) & !0xfff;
            let prot = s1_prots[rng.gen_range(0..3)];
            fs.map(Iova(iova), PhysAddr(gpa), 0x1000, prot, &mut || {
                let p = g.page();
                fs_pages.push(p.pa);
                Some(WriterPage {
                    pa: p.pa,
                    pointer: p.pa.0 + SHIFT,
                })
            })
            .unwrap();
            s1.insert(iova, (gpa, prot));
            if rng.gen_ratio(4, 5) && !s2.contains_key(&gpa) {
                let hpa = 0x80_0000 + rng.gen_range(0..0x100u64) * 0x1000;
                let prot = s2_prots[rng.gen_range(0..3)];
                ss.map(Iova(gpa), PhysAddr(hpa), 0x1000, prot, &mut || {
                    Some(g.page())
                })
                .unwrap();
                s2.insert(gpa, (hpa, prot));
            }
        }
        for p in &fs_pages {
            ss.map(Iova(p.0 + SHIFT), *p, 0x1000, Prot::RW, &mut || {
                Some(g.page())
            })
            .unwrap();
        }
        // The first stage's root pointer is a GPA too.
        let pe = PasidEntry::second_stage(SS_ROOT, Agaw::Bits48, DID)
            .with_pgtt(Pgtt::Nested)
            .with_fsptptr(fs_root.pa.0 + SHIFT)
            .with_sre(true);
        let unit = g.unit(g.scalable(pe));
        let iovas: Vec<u64> = s1.keys().copied().collect();
        let accesses = [
            Access::READ,
            Access::WRITE,
            Access::READ.privileged(),
            Access::RW,
        ];
        for _ in 0..2000 {
            let iova = if rng.gen_ratio(9, 10) {
                iovas[rng.gen_range(0..iovas.len())] + rng.gen_range(0..0x1000)
            } else {
                rng.gen_range(0..1u64 << 30)
            };
            let access = accesses[rng.gen_range(0..accesses.len())];
            use FaultReason as R;
            let want: Result<u64, FaultReason> = match s1.get(&(iova & !0xfff)) {
                None => Err(R::FsEntryNotPresent),
                Some(&(_, p)) if !access.privileged && p.contains(Prot::PRIV) => {
                    Err(R::FsUserDenied)
                }
                Some(&(_, p)) if access.write && !p.contains(Prot::WRITE) => Err(R::SmWriteDenied),
                Some(&(gpa, _)) => match s2.get(&gpa) {
                    None => Err(R::SmSsPermission),
                    Some(&(_, p)) if access.write && !p.contains(Prot::WRITE) => {
                        Err(R::SmWriteDenied)
                    }
                    Some(&(_, p)) if access.read && !p.contains(Prot::READ) => Err(R::SmReadDenied),
                    Some(&(hpa, _)) => Ok(hpa + (iova & 0xfff)),
                },
            };
            let got = unit
                .translate(DEV, None, iova, access)
                .map(|m| m.translate(iova).unwrap())
                .map_err(|f| f.record.reason);
            assert_eq!(got, want, "seed {seed}, iova {iova:#x}, {access:?}");
            unit.take_faults();
        }
    }
}

/// Random words in every structure of the chain and the tables: the unit answers
/// (a translation or a fault), never panics, and each answer is bounded work.
#[test]
fn mutated_guest_memory_never_panics() {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    let mut rng = SmallRng::seed_from_u64(0xbad_5eed);
    let builds: [fn(&Guest) -> u64; 4] = [legacy_ok, sm_ss, sm_fs, nested];
    for round in 0..300 {
        let g = Guest::new();
        let rta = builds[round % 4](&g);
        let end = g.next.get();
        for _ in 0..rng.gen_range(1..20) {
            let at = rng.gen_range(ROOT / 8..end / 8) * 8;
            let word = match rng.gen_range(0..3) {
                0 => rng.r#gen::<u64>(),
                1 => g.read(at) ^ (1 << rng.gen_range(0..64)),
                _ => g.read(at) & !(1 << rng.gen_range(0..12)),
            };
            g.write(at, &[word]);
        }
        let unit = g.unit(if rng.gen_ratio(1, 10) {
            rng.r#gen()
        } else {
            rta
        });
        for _ in 0..20 {
            let iova = if rng.r#gen() {
                RW_PAGE | rng.gen_range(0..0x3000)
            } else {
                rng.r#gen()
            };
            let pasid = rng.gen_ratio(1, 4).then(|| rng.gen_range(0..4));
            let access = Access {
                read: rng.r#gen(),
                write: rng.r#gen(),
                exec: rng.gen_ratio(1, 8),
                privileged: rng.r#gen(),
            };
            let _ = unit.translate(DEV, pasid, iova, access);
            let _ = unit.describe_chain(DEV, pasid);
        }
    }
}

/// DMA threads translate one page while the guest remaps it round after round: each
/// round's mapping is unmapped and invalidated (page-selective, PASID-based) before the
/// next round is mapped. A translation that starts after round r's invalidation
/// completed never returns round r's (or an older) output.
#[test]
fn no_translation_outlives_its_invalidation() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};
    let g = Guest::new();
    let rta = sm_ss(&g);
    let unit = Arc::new(g.unit(rta));
    let leaf = leaf_at(&g, ss_fmt(), SS_ROOT, RW_PAGE);
    let retired = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let psi = InvalidationDescriptor::PasidIotlb {
        did: DID,
        pasid: 0,
        scope: vtd_format::PasidIotlbScope::Page {
            addr: Iova(RW_PAGE),
            am: 0,
            ih: false,
        },
    };
    let fmt = ss_fmt();
    let hits = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let before = retired.load(Ordering::Acquire);
                    if let Ok(m) = unit.translate(DEV, None, RW_PAGE, Access::READ) {
                        let round = m.translate(RW_PAGE).unwrap() >> 12;
                        assert!(
                            round > before,
                            "round {round} was retired ({before}) before this lookup"
                        );
                        hits.fetch_add(1, Ordering::Relaxed);
                    }
                    unit.take_faults();
                }
            });
        }
        let start = Instant::now();
        let mut round = 1u64;
        while start.elapsed() < Duration::from_millis(800) {
            g.write(leaf, &[fmt.encode_leaf(round << 12, 0, Prot::READ)]);
            std::thread::yield_now();
            g.write(leaf, &[0]);
            unit.apply(psi);
            retired.store(round, Ordering::Release);
            round += 1;
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert!(
        hits.load(Ordering::Relaxed) > 0,
        "the DMA threads saw some mappings"
    );
}
