//! Golden translations through the SMMU unit: linear and two-level stream tables,
//! linear and two-level CD tables (4K and 64K leaves), the three granules, stage 2
//! alone with concatenated tables, nested, S1DSS, and hardware dirty-state updates,
//! each with the exact mapping (leaf, output, size, permissions).

mod smmu_common;

use pgtable_core::{Access, Iova, PhysAddr, Prot, TableWriter, WriterPage};
use smmu_common::*;
use smmu_format::{
    ArmConfig, ArmS1, ContextDescriptor, EventId, L1CdDescriptor, L1StreamDescriptor, SteConfig,
    StreamTableEntry, StreamTableFormat,
};
use viommu::smmu::SmmuCaps;
use viommu::{Mapping, Perms};

const RWX: Perms = Perms::RW.union(Perms::EXEC);
const RX: Perms = Perms::READ.union(Perms::EXEC);

#[test]
fn linear_stream_table_and_linear_cd_table() {
    let g = Guest::new(8 << 20);
    let unit = g.unit(SmmuCaps::default());
    let strtab = g.linear_stream_table(&unit, 8);
    // Four CDs; transactions without SubstreamID use CD 0 (S1DSS = 0b10).
    let cds = g.alloc(4 * 64, 256);
    let mut a = g.s1(48);
    a.map(
        Iova(0x1000),
        PhysAddr(0x8000_1000),
        K4,
        Prot::RW,
        &mut g.pages(),
    )
    .unwrap();
    let mut b = g.s1(39);
    b.map(
        Iova(0x1000),
        PhysAddr(0x8000_2000),
        K4,
        Prot::READ,
        &mut g.pages(),
    )
    .unwrap();
    b.map(
        Iova(0x4000_0000),
        PhysAddr(0xC000_0000),
        M2,
        Prot::RW | Prot::NOEXEC,
        &mut g.pages(),
    )
    .unwrap();
    let mut c = g.s1_with(ArmConfig::new(16384, 47, 48));
    let mut pages16 = g.pages_of(0x4000);
    c.map(
        Iova(0x4000),
        PhysAddr(0x8000_4000),
        0x4000,
        Prot::RW | Prot::PRIV,
        &mut pages16,
    )
    .unwrap();
    c.map(
        Iova(0x200_0000),
        PhysAddr(0x1_0200_0000),
        32 << 20,
        Prot::RW,
        &mut pages16,
    )
    .unwrap();
    g.cd(cds, &linux_cd(&a, 1));
    g.cd(cds + 64, &linux_cd(&b, 2));
    g.cd(cds + 3 * 64, &linux_cd(&c, 3));
    g.ste(
        strtab,
        0x42,
        &StreamTableEntry {
            s1dss: 2,
            ..s1_ste(cds, 2)
        },
    );
    let t = |ssid, iova, access| unit.translate(0x42, ssid, iova, access);
    assert_eq!(
        t(None, 0x1234, Access::RW),
        Ok(Mapping {
            iova: 0x1000,
            pa: 0x8000_1000,
            size: K4,
            perms: RWX
        })
    );
    assert_eq!(
        t(Some(1), 0x1234, Access::READ),
        Ok(Mapping {
            iova: 0x1000,
            pa: 0x8000_2000,
            size: K4,
            perms: RX
        })
    );
    assert_eq!(
        t(Some(1), 0x4012_3456, Access::WRITE),
        Ok(Mapping {
            iova: 0x4000_0000,
            pa: 0xC000_0000,
            size: M2,
            perms: Perms::RW
        })
    );
    assert_eq!(
        t(Some(3), 0x5678, Access::WRITE.privileged()),
        Ok(Mapping {
            iova: 0x4000,
            pa: 0x8000_4000,
            size: 0x4000,
            perms: RWX.privileged_only()
        })
    );
    assert_eq!(
        t(Some(3), 0x300_0000, Access::READ).map(|m| (m.iova, m.pa, m.size)),
        Ok((0x200_0000, 0x1_0200_0000, 32 << 20))
    );
    // CD 2 is not valid; CD 1's table has 39 input bits.
    let f = t(Some(2), 0x1234, Access::READ).unwrap_err();
    assert_eq!(f.event.unwrap().event, EventId::CBadCd);
    let f = t(Some(1), 1 << 39, Access::READ).unwrap_err();
    assert_eq!(f.event.unwrap().event, EventId::FTranslation);
    // What was cached: three configurations (faults are not cached), five
    // translations.
    let stats = unit.cache_stats();
    assert_eq!((stats.configurations, stats.translations), (3, 5));
}

#[test]
fn two_level_stream_table_and_two_level_cd_tables() {
    let g = Guest::new(8 << 20);
    let unit = g.unit(SmmuCaps::default());
    // Linux's layout: 2^16 StreamIDs, SPLIT 8, L1 descriptors with SPAN 9.
    let l1 = g.alloc(256 * 8, 256 * 8);
    program(&unit, l1, 16, 8, StreamTableFormat::TwoLevel);
    let l2 = g.alloc(256 * 64, 256 * 64);
    g.write(
        l1 + 0x12 * 8,
        &[L1StreamDescriptor {
            span: 9,
            l2_table: PhysAddr(l2),
        }
        .encode()],
    );
    // A 64K-granule table for SubstreamID 0x1234 of a 64K-leaf CD table (S1Fmt 2):
    // L1 index 4, leaf index 0x234.
    let mut w = g.s1_with(ArmConfig::new(65536, 48, 48));
    let mut pages64 = g.pages_of(0x1_0000);
    w.map(
        Iova(0x1_0000),
        PhysAddr(0x9000_0000),
        0x1_0000,
        Prot::RW,
        &mut pages64,
    )
    .unwrap();
    w.map(
        Iova(0x2000_0000),
        PhysAddr(0x2_0000_0000),
        512 << 20,
        Prot::READ,
        &mut pages64,
    )
    .unwrap();
    let cd_l1 = g.alloc(64 * 8, 512);
    let leaf = g.alloc(1024 * 64, K4);
    g.write(
        cd_l1 + 4 * 8,
        &[L1CdDescriptor {
            valid: true,
            l2_table: PhysAddr(leaf),
        }
        .encode()],
    );
    g.cd(leaf + 0x234 * 64, &linux_cd(&w, 9));
    // Without SubstreamID: S1DSS = bypass.
    g.write(
        l2 + 0x34 * 64,
        &StreamTableEntry {
            s1fmt: 2,
            s1dss: 1,
            ..s1_ste(cd_l1, 16)
        }
        .encode(),
    );
    let t = |ssid, iova, access| unit.translate(0x1234, ssid, iova, access);
    assert_eq!(
        t(Some(0x1234), 0x1_2345, Access::WRITE),
        Ok(Mapping {
            iova: 0x1_0000,
            pa: 0x9000_0000,
            size: 0x1_0000,
            perms: RWX
        })
    );
    assert_eq!(
        t(Some(0x1234), 0x3000_0000, Access::READ),
        Ok(Mapping {
            iova: 0x2000_0000,
            pa: 0x2_0000_0000,
            size: 512 << 20,
            perms: RX
        })
    );
    assert_eq!(
        t(None, 0x5_4321, Access::READ).unwrap().translate(0x5_4321),
        Some(0x5_4321)
    );
    // Its L1 CD descriptor 5 is not valid.
    let f = t(Some(0x1634), 0, Access::READ).unwrap_err();
    assert_eq!(f.event.unwrap().event, EventId::CBadSubstreamId);
    // A 4K-leaf CD table (S1Fmt 1, 64 CDs per leaf) for StreamID 0x1235:
    // SubstreamID 0x41 is L1 index 1, leaf index 1.
    let mut w4 = g.s1(48);
    w4.map(
        Iova(0x7000),
        PhysAddr(0xA000_7000),
        K4,
        Prot::READ,
        &mut g.pages(),
    )
    .unwrap();
    let cd_l1 = g.alloc(64, 64);
    let leaf = g.page();
    g.write(
        cd_l1 + 8,
        &[L1CdDescriptor {
            valid: true,
            l2_table: PhysAddr(leaf),
        }
        .encode()],
    );
    g.cd(leaf + 64, &linux_cd(&w4, 10));
    g.write(
        l2 + 0x35 * 64,
        &StreamTableEntry {
            s1fmt: 1,
            ..s1_ste(cd_l1, 7)
        }
        .encode(),
    );
    let m = unit
        .translate(0x1235, Some(0x41), 0x7008, Access::READ)
        .unwrap();
    assert_eq!((m.iova, m.pa, m.size), (0x7000, 0xA000_7000, K4));
}

#[test]
fn stage_2_alone_with_concatenated_tables() {
    let g = Guest::new(4 << 20);
    let unit = g.unit(SmmuCaps::default());
    let strtab = g.linear_stream_table(&unit, 4);
    // IAS 40: two concatenated L1 tables (formats.md §5.6).
    let mut s2 = g.s2(40);
    assert_eq!(s2.format().shape().concatenated_tables(), 2);
    s2.map(
        Iova(0x80_4000_0000),
        PhysAddr(0x1_0000_0000),
        M2,
        Prot::RW,
        &mut g.pages(),
    )
    .unwrap();
    s2.map(
        Iova(0x1000),
        PhysAddr(0x5000),
        K4,
        Prot::WRITE,
        &mut g.pages(),
    )
    .unwrap();
    g.ste(strtab, 3, &s2.format().ste(s2.root(), 9, true));
    assert_eq!(
        unit.translate(3, None, 0x80_4012_3456, Access::RW),
        Ok(Mapping {
            iova: 0x80_4000_0000,
            pa: 0x1_0000_0000,
            size: M2,
            perms: RWX
        })
    );
    // Stage 2 can be write-only.
    assert_eq!(
        unit.translate(3, None, 0x1008, Access::WRITE),
        Ok(Mapping {
            iova: 0x1000,
            pa: 0x5000,
            size: K4,
            perms: Perms::WRITE | Perms::EXEC
        })
    );
    let f = unit.translate(3, None, 0x1008, Access::READ).unwrap_err();
    assert_eq!(f.event.unwrap().event, EventId::FPermission);
}

#[test]
fn nested_translation() {
    let g = Guest::new(8 << 20);
    let unit = g.unit(SmmuCaps::default());
    let strtab = g.linear_stream_table(&unit, 4);
    // Stage 2 maps the guest's "RAM" at IPA 0 to host RAM at RAM (2 MiB blocks, RW),
    // and IPA 0x4000_0000 to host PA 0x1_0000_0000 (a 4K page, read-only).
    let mut s2 = g.s2(40);
    for off in (0..8 << 20).step_by(M2 as usize) {
        s2.map(Iova(off), PhysAddr(RAM + off), M2, Prot::RW, &mut g.pages())
            .unwrap();
    }
    s2.map(
        Iova(0x4000_0000),
        PhysAddr(0x1_0000_0000),
        K4,
        Prot::READ,
        &mut g.pages(),
    )
    .unwrap();
    // Stage 1 (the guest's own), its tables at IPAs = PA - RAM.
    let root = g.page();
    let mut s1 = TableWriter::new(
        ArmS1::new(ArmConfig::new(4096, 48, 48)).unwrap(),
        g.mem.clone(),
        PhysAddr(root),
    )
    .unwrap();
    let mut ipa_pages = || {
        let pa = g.page();
        Some(WriterPage {
            pa: PhysAddr(pa),
            pointer: pa - RAM,
        })
    };
    s1.map(
        Iova(0x1_0000),
        PhysAddr(0x4000_0000),
        K4,
        Prot::RW,
        &mut ipa_pages,
    )
    .unwrap();
    s1.map(
        Iova(0x20_0000),
        PhysAddr(0x60_0000),
        M2,
        Prot::RW,
        &mut ipa_pages,
    )
    .unwrap();
    let cd = g.alloc(64, 64);
    g.cd(cd, &s1.format().cd(PhysAddr(root - RAM), 4, true));
    g.ste(
        strtab,
        2,
        &StreamTableEntry {
            config: SteConfig::Nested,
            s1_context_ptr: PhysAddr(cd - RAM),
            ..s2.format().ste(s2.root(), 6, true)
        },
    );
    // Both stages grant read-write for the block: 2 MiB, RW.
    assert_eq!(
        unit.translate(2, None, 0x21_2345, Access::WRITE),
        Ok(Mapping {
            iova: 0x20_0000,
            pa: RAM + 0x60_0000,
            size: M2,
            perms: RWX
        })
    );
    // Stage 1 grants RW, stage 2 read: the page is read-only.
    assert_eq!(
        unit.translate(2, None, 0x1_0010, Access::READ),
        Ok(Mapping {
            iova: 0x1_0000,
            pa: 0x1_0000_0000,
            size: K4,
            perms: RX
        })
    );
    let f = unit
        .translate(2, None, 0x1_0010, Access::WRITE)
        .unwrap_err();
    let e = f.event.unwrap();
    assert_eq!(
        (e.event, e.s2, e.ipa()),
        (EventId::FPermission, true, 0x4000_0000)
    );
    // Tagged with VMID 6 and ASID 4: TLBI_NH_ASID of another ASID keeps them.
    unit.command(smmu_format::Command::TlbiNhAsid { vmid: 6, asid: 5 }.encode())
        .unwrap();
    assert_eq!(unit.cache_stats().translations, 2);
    unit.command(smmu_format::Command::TlbiNhAsid { vmid: 6, asid: 4 }.encode())
        .unwrap();
    assert_eq!(unit.cache_stats().translations, 0);
}

#[test]
fn hardware_dirty_state() {
    let g = Guest::new(4 << 20);
    let unit = g.unit(SmmuCaps::default());
    let strtab = g.linear_stream_table(&unit, 2);
    let mut w = g.s1(48);
    w.map(
        Iova(0x1000),
        PhysAddr(0x8000_1000),
        K4,
        Prot::RW,
        &mut g.pages(),
    )
    .unwrap();
    // Writable-clean: DBM (51) with AP[2] (7).
    let leaf = w.entry_address(Iova(0x1000), 0).unwrap();
    let dirty = w.read_entry(leaf).unwrap() | 1 << 51;
    let clean = dirty | 1 << 7;
    w.write_entry(leaf, clean).unwrap();
    let cd_pa = g.alloc(64, 64);
    g.ste(strtab, 1, &s1_ste(cd_pa, 0));
    // HA + HD: a read sees the page read-only (cacheable so); a write marks it dirty.
    g.cd(
        cd_pa,
        &ContextDescriptor {
            ha: true,
            hd: true,
            ..linux_cd(&w, 1)
        },
    );
    let m = unit.translate(1, None, 0x1000, Access::READ).unwrap();
    assert_eq!((m.pa, m.perms), (0x8000_1000, RX));
    assert_eq!(w.read_entry(leaf).unwrap(), clean);
    let m = unit.translate(1, None, 0x1000, Access::WRITE).unwrap();
    assert_eq!((m.pa, m.perms), (0x8000_1000, RWX));
    assert_eq!(w.read_entry(leaf).unwrap(), dirty);
    // HA only: DBM is ignored, AP[2] is read-only.
    w.write_entry(leaf, clean).unwrap();
    g.cd(
        cd_pa,
        &ContextDescriptor {
            ha: true,
            ..linux_cd(&w, 1)
        },
    );
    unit.command(smmu_format::Command::CfgiCdAll { sid: 1 }.encode())
        .unwrap();
    let f = unit.translate(1, None, 0x1000, Access::WRITE).unwrap_err();
    assert_eq!(f.event.unwrap().event, EventId::FPermission);
    assert_eq!(w.read_entry(leaf).unwrap(), clean);
}
