//! The stream table, STE, CD table and CD, event records and commands: golden words
//! written from the specification's bit positions (docs/formats.md §3.9, §5, §8), both
//! directions; random round trips; ILLEGAL fields met with the documented event; and
//! the StreamID / SubstreamID lookup arithmetic.

use pgtable_core::PhysAddr;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use smmu_format::*;

fn bad_ste(field: &'static str, value: u64) -> DecodeError {
    DecodeError::Illegal {
        structure: Structure::StreamTableEntry,
        field,
        value,
    }
}

fn bad_cd(field: &'static str, value: u64) -> DecodeError {
    DecodeError::Illegal {
        structure: Structure::ContextDescriptor,
        field,
        value,
    }
}

/// docs/formats.md §5.6's stage-2 STE.
fn s2_ste() -> StreamTableEntry {
    StreamTableEntry::decode([0xD, 0, 0x044D_3558_0000_0001, 0x4000_0000, 0, 0, 0, 0]).unwrap()
}

/// A stage-1 STE as Linux's `arm_smmu_make_cdtable_ste` builds it (2-level 64K CD
/// table, SSID 0 for transactions without one, WBRA inner-shareable CD fetches), with
/// full ATS, stalls disabled and incoming shareability.
fn s1_ste() -> StreamTableEntry {
    StreamTableEntry {
        valid: true,
        config: SteConfig::S1Translate,
        s1fmt: CdTableFormat::TwoLevel64K as u8,
        s1_context_ptr: PhysAddr(0x5000_0000),
        s1cdmax: 20,
        s1dss: S1Dss::Substream0 as u8,
        s1cir: 1,
        s1cor: 1,
        s1csh: 3,
        mev: true,
        s1stalld: true,
        eats: 1,
        shcfg: 1,
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------
// Golden words.

#[test]
fn stream_table_entries_golden() {
    let s2 = s2_ste();
    assert_eq!(
        (s2.valid, s2.config, s2.s2vmid, s2.s2ttb),
        (true, SteConfig::S2Translate, 1, PhysAddr(0x4000_0000))
    );
    assert_eq!(
        s2.vtcr,
        Vtcr {
            t0sz: 24,
            sl0: 1,
            irgn0: 1,
            orgn0: 1,
            sh0: 3,
            tg: 0,
            ps: 5
        }
    );
    assert!(s2.s2aa64 && s2.s2ptw && s2.s2r && !s2.s2endi && !s2.s2s);
    let s2_built = ArmS2::new(ArmConfig::new(4096, 40, 48)).unwrap();
    assert_eq!(s2_built.ste(PhysAddr(0x4000_0000), 1, true), s2);

    let s1 = s1_ste();
    let words = [0xA000_0000_5000_002B, 0x1000_1808_00D6, 0, 0, 0, 0, 0, 0];
    assert_eq!(s1.encode(), words);
    assert_eq!(StreamTableEntry::decode(words), Ok(s1));

    // Nested: both halves, every stage-2 flag.
    let nested = StreamTableEntry {
        config: SteConfig::Nested,
        s2fwb: true,
        strw: 2,
        s2vmid: 0xBEEF,
        vtcr: s2.vtcr,
        s2aa64: true,
        s2endi: true,
        s2affd: true,
        s2ptw: true,
        s2hd: true,
        s2ha: true,
        s2s: true,
        s2r: true,
        s2ttb: PhysAddr(0x4000_0000),
        ..s1
    };
    let words = [
        0xA000_0000_5000_002F,
        0x1000_9A08_00D6,
        0x07FD_3558_0000_BEEF,
        0x4000_0000,
        0,
        0,
        0,
        0,
    ];
    assert_eq!(nested.encode(), words);
    assert_eq!(StreamTableEntry::decode(words), Ok(nested));

    // Bypass and abort carry nothing else.
    for (config, dw0) in [(SteConfig::Bypass, 0x9), (SteConfig::Abort, 0x1)] {
        let ste = StreamTableEntry {
            valid: true,
            config,
            ..Default::default()
        };
        assert_eq!(ste.encode(), [dw0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(StreamTableEntry::decode(ste.encode()), Ok(ste));
    }
}

#[test]
fn context_descriptors_golden() {
    // docs/formats.md §5.3, and with HTTU dirty tracking.
    let s1 = ArmS1::new(ArmConfig::new(4096, 48, 48)).unwrap();
    let cd = s1.cd(PhysAddr(0x3000_0000), 1, true);
    let words = [
        0x0001_E205_C000_3510,
        0x3000_0000,
        0,
        0xF404_FF44,
        0,
        0,
        0,
        0,
    ];
    assert_eq!(cd.encode(), words);
    assert_eq!(ContextDescriptor::decode(words), Ok(cd));
    let httu = ContextDescriptor {
        hd: true,
        ha: true,
        ..cd
    };
    assert_eq!(httu.encode()[0], 0x0001_EE05_C000_3510);

    // Every named field set.
    let cd = ContextDescriptor {
        valid: true,
        tt0: CdTranslationTable {
            tsz: 25,
            tg: 2,
            irgn: 3,
            orgn: 2,
            sh: 2,
            epd: false,
            ttb: PhysAddr(0x8000_1000),
            had: true,
            nscfg: true,
        },
        tt1: CdTranslationTable {
            tsz: 16,
            tg: 2,
            irgn: 1,
            orgn: 1,
            sh: 3,
            epd: false,
            ttb: PhysAddr(0x9000_0000),
            had: false,
            nscfg: false,
        },
        endi: true,
        ips: 5,
        affd: true,
        tbi: 1,
        aa64: true,
        hd: true,
        ha: true,
        s: true,
        r: true,
        a: true,
        aset: true,
        asid: 0xBEEF,
        mair: 0xF404_FF44,
        other: [0; 8],
    };
    let words = [
        0xBEEF_FE4D_B590_AB99,
        0x8000_1003,
        0x9000_0000,
        0xF404_FF44,
        0,
        0,
        0,
        0,
    ];
    assert_eq!(cd.encode(), words);
    assert_eq!(ContextDescriptor::decode(words), Ok(cd));
    assert_eq!(
        (cd.granule(0), cd.granule(1)),
        (Some(Granule::K16), Some(Granule::K4))
    );
}

#[test]
fn unnamed_bits_are_kept() {
    // STE dw1 bit 46 (NSCFG), the VMS pointer word; CD bit 40 (PAN), AMAIR.
    let mut words = s2_ste().encode();
    words[1] |= 1 << 46;
    words[4] = 0x1234_5678;
    let ste = StreamTableEntry::decode(words).unwrap();
    assert_eq!(ste.other, [0, 1 << 46, 0, 0, 0x1234_5678, 0, 0, 0]);
    assert_eq!(ste.encode(), words);
    let s1 = ArmS1::new(ArmConfig::default()).unwrap();
    let mut words = s1.context_descriptor(PhysAddr(0x1000), 1, true);
    words[0] |= 1 << 40;
    words[4] = 0xFF;
    let cd = ContextDescriptor::decode(words).unwrap();
    assert_eq!(cd.other[0], 1 << 40);
    assert_eq!(cd.encode(), words);
}

#[test]
fn stream_table_golden() {
    let base = StreamTableBase {
        table: PhysAddr(0x8_0000_0000),
        read_allocate: false,
    };
    assert_eq!(base.encode(), 0x8_0000_0000);
    let cfg = StreamTableConfig {
        log2size: 16,
        split: 8,
        format: StreamTableFormat::TwoLevel,
    };
    assert_eq!(cfg.encode(), 0x1_0210);
    assert_eq!(
        StreamTableConfig::decode(0x2_0000),
        Err(DecodeError::Illegal {
            structure: Structure::StreamTableConfig,
            field: "FMT",
            value: 2
        })
    );
    let table = StreamTable {
        base: base.table,
        config: cfg,
    };
    // StreamID 0x3a12: L1 index 0x3a, L2 index 0x12.
    assert_eq!(
        table.locate(0x3a12),
        Ok(SteLocation::L1Descriptor(PhysAddr(0x8_0000_01d0)))
    );
    let l1 = L1StreamDescriptor {
        span: 9,
        l2_table: PhysAddr(0x9_0000_0000),
    };
    assert_eq!(l1.encode(), 0x9_0000_0009);
    assert_eq!(l1.ste(0x3a12, 8), Ok(PhysAddr(0x9_0000_0480)));
    // SPAN 0: no L2 table; SPAN 3: 4 STEs.
    let none = L1StreamDescriptor::decode(0x9_0000_0000);
    assert_eq!(none.ste(0x3a12, 8), Err(DecodeError::BadStreamId(0x3a12)));
    let small = L1StreamDescriptor { span: 3, ..l1 };
    assert_eq!(small.ste(0x3a03, 8), Ok(PhysAddr(0x9_0000_00c0)));
    assert_eq!(
        small.ste(0x3a04, 8).unwrap_err().event(),
        Some(EventId::CBadStreamId)
    );
    assert_eq!(
        table.locate(0x1_0000).unwrap_err().event(),
        Some(EventId::CBadStreamId)
    );
}

#[test]
fn cd_table_lookup() {
    let ste = s1_ste();
    let table = ste.cd_table().unwrap();
    assert_eq!(
        table,
        CdTable {
            base: PhysAddr(0x5000_0000),
            format: CdTableFormat::TwoLevel64K,
            s1cdmax: 20
        }
    );
    // SubstreamID 0xA_BCDE: L1 index 0x2AF, leaf index 0xDE.
    assert_eq!(
        table.locate(0xA_BCDE),
        Ok(CdLocation::L1Descriptor(PhysAddr(0x5000_1578)))
    );
    let l1 = L1CdDescriptor {
        valid: true,
        l2_table: PhysAddr(0x6000_0000),
    };
    assert_eq!(l1.encode(), 0x6000_0001);
    assert_eq!(
        l1.cd(0xA_BCDE, CdTableFormat::TwoLevel64K),
        Ok(PhysAddr(0x6000_3780))
    );
    assert_eq!(
        l1.cd(0xA_BCDE, CdTableFormat::TwoLevel4K),
        Ok(PhysAddr(0x6000_0780))
    );
    assert_eq!(
        L1CdDescriptor::decode(0x6000_0000)
            .cd(1, CdTableFormat::TwoLevel64K)
            .unwrap_err()
            .event(),
        Some(EventId::CBadSubstreamId)
    );
    assert_eq!(
        table.locate(1 << 20),
        Err(DecodeError::BadSubstreamId(1 << 20))
    );
    // Which SubstreamID a transaction uses.
    assert_eq!(ste.substream(None), Ok(Some(0)));
    assert_eq!(ste.substream(Some(0)), Err(DecodeError::BadSubstreamId(0)));
    let bypass = StreamTableEntry {
        s1dss: S1Dss::Bypass as u8,
        ..ste
    };
    assert_eq!(bypass.substream(None), Ok(None));
    assert_eq!(bypass.substream(Some(0)), Ok(Some(0)));
    let terminate = StreamTableEntry { s1dss: 0, ..ste };
    assert_eq!(
        terminate.substream(None).unwrap_err().event(),
        Some(EventId::FStreamDisabled)
    );
    let single = StreamTableEntry { s1cdmax: 0, ..ste };
    assert_eq!(single.substream(None), Ok(Some(0)));
    assert_eq!(
        single.substream(Some(0)),
        Err(DecodeError::BadSubstreamId(0))
    );
    // Not stage 1: no CD table.
    assert_eq!(s2_ste().cd_table(), None);
}

#[test]
fn event_records_golden() {
    let cases = [
        (
            EventRecord {
                stream_id: 0x10,
                substream_id: Some(5),
                pnu: true,
                rnw: true,
                input_addr: 0xDEAD_B000,
                ..EventRecord::new(EventId::FTranslation)
            },
            [0x10_0000_5810, 0x20A_0000_0000, 0xDEAD_B000, 0],
        ),
        (
            EventRecord {
                stream_id: 0x20,
                s2: true,
                class: EventClass::TranslationTable,
                ttrnw: true,
                input_addr: 0x1000,
                address2: 0x8000_0008,
                ..EventRecord::new(EventId::FWalkEabt)
            },
            [0x20_0000_000B, 0x1180_0000_0000, 0x1000, 0x8000_0008],
        ),
        (
            EventRecord {
                stream_id: 5,
                class: EventClass::Cd,
                ..EventRecord::new(EventId::CBadSte)
            },
            [0x5_0000_0004, 0, 0, 0],
        ),
        (
            EventRecord {
                stag: 0x1234,
                stall: true,
                ind: true,
                class: EventClass::Cd,
                ..EventRecord::new(EventId::FPermission)
            },
            [0x13, 0x4_8000_1234, 0, 0],
        ),
    ];
    for (ev, words) in cases {
        assert_eq!(ev.encode(), words, "{ev:?}");
        assert_eq!(EventRecord::decode(words), Ok(ev));
    }
    assert_eq!(cases[1].0.fetch_addr(), 0x8000_0008);
    assert_eq!(cases[1].0.ipa(), 0x8000_0000);
    assert_eq!(
        EventRecord::decode([0x0F, 0, 0, 0]),
        Err(DecodeError::UnknownEvent(0x0F))
    );
    assert_eq!(
        EventRecord::decode([0x10, 3 << 40, 0, 0]),
        Err(DecodeError::Illegal {
            structure: Structure::EventRecord,
            field: "CLASS",
            value: 3
        })
    );
}

#[test]
fn event_numbers_are_the_spec_numbers() {
    use EventId::*;
    let expected = [
        (FUut, 0x01),
        (CBadStreamId, 0x02),
        (FSteFetch, 0x03),
        (CBadSte, 0x04),
        (FBadAtsTreq, 0x05),
        (FStreamDisabled, 0x06),
        (FTranslForbidden, 0x07),
        (CBadSubstreamId, 0x08),
        (FCdFetch, 0x09),
        (CBadCd, 0x0A),
        (FWalkEabt, 0x0B),
        (FTranslation, 0x10),
        (FAddrSize, 0x11),
        (FAccess, 0x12),
        (FPermission, 0x13),
        (FTlbConflict, 0x20),
        (FCfgConflict, 0x21),
        (EPageRequest, 0x24),
        (FVmsFetch, 0x25),
    ];
    for (id, code) in expected {
        assert_eq!(id.code(), code);
        assert_eq!(EventId::from_code(code), Some(id));
    }
    let defined = (0..=255u8)
        .filter(|&c| EventId::from_code(c).is_some())
        .count();
    assert_eq!(defined, expected.len());
    assert!(FAccess.is_translation_fault() && !CBadCd.is_translation_fault());
}

#[test]
fn commands_golden() {
    let range = |leaf, ttl, tg, num, scale, addr| TlbiRange {
        leaf,
        ttl,
        tg,
        num,
        scale,
        addr,
    };
    let cases: Vec<(Command, [u64; 2])> = vec![
        (
            Command::PrefetchConfig {
                sid: 2,
                ssid: Some(1),
            },
            [0x2_0000_1801, 0],
        ),
        (
            Command::CfgiSte {
                sid: 0x100,
                leaf: true,
            },
            [0x100_0000_0003, 1],
        ),
        (
            Command::CfgiSteRange {
                sid: 0x100,
                range: 7,
            },
            [0x100_0000_0004, 7],
        ),
        (Command::CfgiAll, [0x4, 31]),
        (
            Command::CfgiCd {
                sid: 0x100,
                ssid: 3,
                leaf: true,
            },
            [0x100_0000_3005, 1],
        ),
        (Command::CfgiCdAll { sid: 0x100 }, [0x100_0000_0006, 0]),
        (Command::TlbiNhAll { vmid: 5 }, [0x5_0000_0010, 0]),
        (
            Command::TlbiNhAsid { vmid: 5, asid: 7 },
            [0x0007_0005_0000_0011, 0],
        ),
        (
            Command::TlbiNhVa {
                vmid: 0,
                asid: 1,
                range: range(true, 3, 1, 31, 2, 0x8000_0000),
            },
            [0x0001_0000_0021_F012, 0x8000_0701],
        ),
        (
            Command::TlbiNhVaa {
                vmid: 2,
                range: range(false, 0, 0, 0, 0, 0xFFFF_FFFF_FFFF_F000),
            },
            [0x2_0000_0013, 0xFFFF_FFFF_FFFF_F000],
        ),
        (Command::TlbiEl2All, [0x20, 0]),
        (Command::TlbiEl2Asid { asid: 9 }, [0x0009_0000_0000_0021, 0]),
        (
            Command::TlbiEl2Va {
                asid: 9,
                range: range(false, 0, 0, 0, 0, 0x1000),
            },
            [0x0009_0000_0000_0022, 0x1000],
        ),
        (
            Command::TlbiEl2Vaa {
                range: range(true, 0, 0, 0, 0, 0x2000),
            },
            [0x23, 0x2001],
        ),
        (Command::TlbiS12Vmall { vmid: 3 }, [0x3_0000_0028, 0]),
        (
            Command::TlbiS2Ipa {
                vmid: 1,
                range: range(true, 0, 0, 0, 0, 0x40_0000_0000),
            },
            [0x1_0000_002A, 0x40_0000_0001],
        ),
        (Command::TlbiNsnhAll, [0x30, 0]),
        (
            Command::AtcInv {
                sid: 0x100,
                ssid: Some(4),
                global: false,
                size: 9,
                addr: 0x20_0000,
            },
            [0x100_0000_4840, 0x20_0009],
        ),
        (
            Command::Sync {
                completion: SyncCompletion::Irq,
                msh: 3,
                msi_attr: 0xF,
                msi_data: 0x1234,
                msi_addr: PhysAddr(0xFEE0_0040),
            },
            [0x1234_0FC0_1046, 0xFEE0_0040],
        ),
        (
            Command::Sync {
                completion: SyncCompletion::None,
                msh: 0,
                msi_attr: 0,
                msi_data: 0,
                msi_addr: PhysAddr(0),
            },
            [0x46, 0],
        ),
        (
            Command::Other {
                opcode: Opcode::Resume,
                words: [0x1_0000_2044, 0xABCD],
            },
            [0x1_0000_2044, 0xABCD],
        ),
    ];
    for (c, words) in cases {
        assert_eq!(c.encode(), words, "{c:?}");
        assert_eq!(Command::decode(words), Ok(c), "{words:x?}");
    }
    // CMD_CFGI_ALL: Range 31 whatever the StreamID, and QEMU's opcode 0x07.
    assert_eq!(
        Command::decode([0x1234_0000_0004, 31]),
        Ok(Command::CfgiAll)
    );
    assert_eq!(Command::decode([0x07, 0]), Ok(Command::CfgiAll));
    // The IPA field ends at bit 51.
    let ipa = Command::TlbiS2Ipa {
        vmid: 0,
        range: range(false, 0, 0, 0, 0, 0xFFF0_0000_0000_1000),
    };
    assert_eq!(ipa.encode()[1], 0x1000);
}

#[test]
fn illegal_commands_are_cerror_ill() {
    for op in [0x00u8, 0x08, 0x14, 0x18, 0x1A, 0x29, 0x31, 0x42, 0x47, 0xFF] {
        let err = Command::decode([op as u64, 0]).unwrap_err();
        assert_eq!(err, DecodeError::UnknownOpcode(op));
        assert_eq!(err.command_error(), Some(CommandError::Ill));
        assert_eq!(err.event(), None);
    }
    let err = Command::decode([0x46 | 3 << 12, 0]).unwrap_err();
    assert_eq!(
        err,
        DecodeError::Illegal {
            structure: Structure::Command,
            field: "CS",
            value: 3
        }
    );
    assert_eq!(err.command_error(), Some(CommandError::Ill));
}

// ---------------------------------------------------------------------------------
// ILLEGAL structures.

#[test]
fn illegal_stes_are_c_bad_ste() {
    let with = |f: &dyn Fn(&mut StreamTableEntry)| {
        let mut ste = s2_ste();
        f(&mut ste);
        StreamTableEntry::decode(ste.encode())
    };
    let mut invalid = s2_ste().encode();
    invalid[0] &= !1;
    let err = StreamTableEntry::decode(invalid).unwrap_err();
    assert_eq!(
        err,
        DecodeError::Invalid {
            structure: Structure::StreamTableEntry
        }
    );
    assert_eq!(err.event(), Some(EventId::CBadSte));
    for config in 1..=3u64 {
        let words = [1 | config << 1, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            StreamTableEntry::decode(words),
            Err(bad_ste("Config", config))
        );
    }
    assert_eq!(with(&|s| s.s2aa64 = false), Err(bad_ste("S2AA64", 0)));
    assert_eq!(with(&|s| s.vtcr.tg = 3), Err(bad_ste("S2TG", 3)));
    assert_eq!(with(&|s| s.vtcr.ps = 7), Err(bad_ste("S2PS", 7)));
    assert_eq!(with(&|s| s.vtcr.sl0 = 3), Err(bad_ste("S2SL0", 3)));
    // 4K, start L1 (SL0 1): IAS 31..=43 (up to 16 concatenated L1 tables).
    assert_eq!(with(&|s| s.vtcr.t0sz = 20), Err(bad_ste("S2T0SZ", 20)));
    assert!(with(&|s| s.vtcr.t0sz = 21).is_ok());
    assert!(with(&|s| s.vtcr.t0sz = 33).is_ok());
    assert_eq!(with(&|s| s.vtcr.t0sz = 34), Err(bad_ste("S2T0SZ", 34)));
    // 4K, start L0 (SL0 2): IAS 40..=48.
    assert_eq!(
        with(&|s| {
            s.vtcr.sl0 = 2;
            s.vtcr.t0sz = 15
        }),
        Err(bad_ste("S2T0SZ", 15))
    );
    assert_eq!(
        with(&|s| s.s2ttb = PhysAddr(1 << 48)),
        Err(bad_ste("S2TTB", 1 << 48))
    );
    assert_eq!(with(&|s| s.eats = 3), Err(bad_ste("EATS", 3)));
    // Stage-1 fields.
    let with1 = |f: &dyn Fn(&mut StreamTableEntry)| {
        let mut ste = s1_ste();
        f(&mut ste);
        StreamTableEntry::decode(ste.encode())
    };
    assert_eq!(with1(&|s| s.s1fmt = 3), Err(bad_ste("S1Fmt", 3)));
    assert_eq!(with1(&|s| s.s1cdmax = 21), Err(bad_ste("S1CDMax", 21)));
    assert_eq!(with1(&|s| s.s1dss = 3), Err(bad_ste("S1DSS", 3)));
    // Fields of a stage the Config does not use are not looked at.
    assert!(with(&|s| s.s1fmt = 3).is_ok());
    assert!(with1(&|s| s.vtcr.tg = 3).is_ok());
    assert!(
        with1(&|s| {
            s.s1cdmax = 0;
            s.s1dss = 3
        })
        .is_ok()
    );
    let bypass = StreamTableEntry {
        valid: true,
        config: SteConfig::Bypass,
        eats: 3,
        ..Default::default()
    };
    assert!(StreamTableEntry::decode(bypass.encode()).is_ok());
}

#[test]
fn illegal_cds_are_c_bad_cd() {
    let s1 = ArmS1::new(ArmConfig::new(4096, 48, 48)).unwrap();
    let good = s1.cd(PhysAddr(0x3000_0000), 1, true);
    let with = |f: &dyn Fn(&mut ContextDescriptor)| {
        let mut cd = good;
        f(&mut cd);
        ContextDescriptor::decode(cd.encode())
    };
    let err = with(&|c| c.valid = false).unwrap_err();
    assert_eq!(
        err,
        DecodeError::Invalid {
            structure: Structure::ContextDescriptor
        }
    );
    assert_eq!(err.event(), Some(EventId::CBadCd));
    assert_eq!(with(&|c| c.aa64 = false), Err(bad_cd("AA64", 0)));
    assert_eq!(with(&|c| c.ips = 7), Err(bad_cd("IPS", 7)));
    assert_eq!(with(&|c| c.tt0.tg = 3), Err(bad_cd("TG0", 3)));
    assert_eq!(with(&|c| c.tt0.tsz = 40), Err(bad_cd("T0SZ", 40)));
    assert_eq!(with(&|c| c.tt0.tsz = 15), Err(bad_cd("T0SZ", 15)));
    assert!(with(&|c| c.tt0.tsz = 39).is_ok());
    // 52-bit inputs need the 64K granule.
    assert!(
        with(&|c| {
            c.tt0.tg = 1;
            c.tt0.tsz = 12
        })
        .is_ok()
    );
    assert_eq!(
        with(&|c| c.tt0.ttb = PhysAddr(1 << 48)),
        Err(bad_cd("TTB0", 1 << 48))
    );
    // TTB1: TG1 = 0 is reserved, once its walks are enabled.
    assert_eq!(
        with(&|c| {
            c.tt1.epd = false;
            c.tt1.tsz = 16
        }),
        Err(bad_cd("TG1", 0))
    );
    assert_eq!(
        with(&|c| {
            c.tt1.epd = false;
            c.tt1.tg = 2;
            c.tt1.tsz = 8
        }),
        Err(bad_cd("T1SZ", 8))
    );
    // A disabled table's fields are not looked at.
    assert!(
        with(&|c| {
            c.tt0.epd = true;
            c.tt0.tg = 3;
            c.tt0.tsz = 63
        })
        .is_ok()
    );
    assert_eq!(err.command_error(), None);
}

// ---------------------------------------------------------------------------------
// Random round trips.

#[test]
fn structures_round_trip() {
    let mut rng = SmallRng::seed_from_u64(14);
    let configs = [
        SteConfig::Abort,
        SteConfig::Bypass,
        SteConfig::S1Translate,
        SteConfig::S2Translate,
        SteConfig::Nested,
    ];
    let s2_shapes: Vec<Vtcr> = [4096, 16384, 65536]
        .into_iter()
        .flat_map(|g| {
            let max = if g == 65536 { 52 } else { 48 };
            (32..=max).map(move |ias| (g, ias, max))
        })
        .map(|(g, ias, oas)| {
            ArmS2::new(ArmConfig::new(g, ias, oas))
                .unwrap()
                .vtcr_fields(true)
        })
        .collect();
    for _ in 0..3000 {
        let u = |rng: &mut SmallRng, bits: u32| rng.r#gen::<u64>() >> (64 - bits);
        let mut vtcr = s2_shapes[rng.gen_range(0..s2_shapes.len())];
        vtcr.irgn0 = u(&mut rng, 2) as u8;
        vtcr.orgn0 = u(&mut rng, 2) as u8;
        vtcr.sh0 = u(&mut rng, 2) as u8;
        let ps_bits = address_size_bits(vtcr.ps as u64).unwrap();
        let mut other = [0u64; 8];
        other[1] = u(&mut rng, 64) & 0xFFFF_C000_0000_0000; // bits 63:46 are unnamed
        other[4] = u(&mut rng, 64);
        let ste = StreamTableEntry {
            valid: true,
            config: configs[rng.gen_range(0..configs.len())],
            s1fmt: rng.gen_range(0..3),
            s1_context_ptr: PhysAddr(u(&mut rng, 52) & !0x3F),
            s1cdmax: rng.gen_range(0..=20),
            s1dss: rng.gen_range(0..3),
            s1cir: u(&mut rng, 2) as u8,
            s1cor: u(&mut rng, 2) as u8,
            s1csh: u(&mut rng, 2) as u8,
            mev: rng.r#gen(),
            s2fwb: rng.r#gen(),
            s1stalld: rng.r#gen(),
            eats: rng.gen_range(0..3),
            strw: u(&mut rng, 2) as u8,
            shcfg: u(&mut rng, 2) as u8,
            s2vmid: rng.r#gen(),
            vtcr,
            s2aa64: true,
            s2endi: rng.r#gen(),
            s2affd: rng.r#gen(),
            s2ptw: rng.r#gen(),
            s2hd: rng.r#gen(),
            s2ha: rng.r#gen(),
            s2s: rng.r#gen(),
            s2r: rng.r#gen(),
            s2ttb: PhysAddr(u(&mut rng, ps_bits) & !0xF),
            other,
        };
        assert_eq!(StreamTableEntry::decode(ste.encode()), Ok(ste));

        let ips = rng.gen_range(0..=6u8);
        let oa = address_size_bits(ips as u64).unwrap();
        let table = |rng: &mut SmallRng, tt1: bool| {
            let granule: u8 = rng.gen_range(0..3);
            // TG0 0/1/2 = 4K/64K/16K; TG1 2/3/1.
            let tg = if tt1 {
                [2, 3, 1][granule as usize]
            } else {
                granule
            };
            let min = if granule == 1 { 12 } else { 16 };
            CdTranslationTable {
                tsz: rng.gen_range(min..=39),
                tg,
                irgn: u(rng, 2) as u8,
                orgn: u(rng, 2) as u8,
                sh: u(rng, 2) as u8,
                epd: rng.r#gen(),
                ttb: PhysAddr(u(rng, oa) & !0xF),
                had: rng.r#gen(),
                nscfg: rng.r#gen(),
            }
        };
        let cd = ContextDescriptor {
            valid: true,
            tt0: table(&mut rng, false),
            tt1: table(&mut rng, true),
            endi: rng.r#gen(),
            ips,
            affd: rng.r#gen(),
            tbi: u(&mut rng, 2) as u8,
            aa64: true,
            hd: rng.r#gen(),
            ha: rng.r#gen(),
            s: rng.r#gen(),
            r: rng.r#gen(),
            a: rng.r#gen(),
            aset: rng.r#gen(),
            asid: rng.r#gen(),
            mair: rng.r#gen(),
            other: [
                u(&mut rng, 64) & (0b11 << 36 | 1 << 40),
                u(&mut rng, 64) & (0xFFF << 52 | 0xC),
                0,
                0,
                u(&mut rng, 64),
                0,
                0,
                u(&mut rng, 64),
            ],
        };
        assert_eq!(ContextDescriptor::decode(cd.encode()), Ok(cd));

        let l1 = L1StreamDescriptor {
            span: rng.gen_range(0..32),
            l2_table: PhysAddr(u(&mut rng, 52) & !0x3F),
        };
        assert_eq!(L1StreamDescriptor::decode(l1.encode()), l1);
        let l1cd = L1CdDescriptor {
            valid: rng.r#gen(),
            l2_table: PhysAddr(u(&mut rng, 52) & !0xFFF),
        };
        assert_eq!(L1CdDescriptor::decode(l1cd.encode()), l1cd);
        let cfg = StreamTableConfig {
            log2size: rng.gen_range(0..64),
            split: rng.gen_range(0..32),
            format: if rng.r#gen() {
                StreamTableFormat::TwoLevel
            } else {
                StreamTableFormat::Linear
            },
        };
        assert_eq!(StreamTableConfig::decode(cfg.encode()), Ok(cfg));
        let base = StreamTableBase {
            table: PhysAddr(u(&mut rng, 52) & !0x3F),
            read_allocate: rng.r#gen(),
        };
        assert_eq!(StreamTableBase::decode(base.encode()), base);
    }
}

#[test]
fn records_and_commands_round_trip() {
    let mut rng = SmallRng::seed_from_u64(8);
    let events: Vec<EventId> = (0..=255).filter_map(EventId::from_code).collect();
    for _ in 0..3000 {
        let u = |rng: &mut SmallRng, bits: u32| rng.r#gen::<u64>() >> (64 - bits);
        let ev = EventRecord {
            event: events[rng.gen_range(0..events.len())],
            stream_id: rng.r#gen(),
            substream_id: rng.r#gen::<bool>().then(|| u(&mut rng, 20) as u32),
            stag: rng.r#gen(),
            stall: rng.r#gen(),
            pnu: rng.r#gen(),
            ind: rng.r#gen(),
            rnw: rng.r#gen(),
            s2: rng.r#gen(),
            class: [
                EventClass::Cd,
                EventClass::TranslationTable,
                EventClass::Input,
            ][rng.gen_range(0..3)],
            ttrnw: rng.r#gen(),
            input_addr: rng.r#gen(),
            address2: u(&mut rng, 52) & !7,
        };
        assert_eq!(EventRecord::decode(ev.encode()), Ok(ev));

        let sid: u32 = rng.r#gen();
        let ssid = u(&mut rng, 20) as u32;
        let vmid: u16 = rng.r#gen();
        let asid: u16 = rng.r#gen();
        let range = TlbiRange {
            leaf: rng.r#gen(),
            ttl: u(&mut rng, 2) as u8,
            tg: u(&mut rng, 2) as u8,
            num: u(&mut rng, 5) as u8,
            scale: u(&mut rng, 5) as u8,
            addr: u(&mut rng, 64) & !0xFFF,
        };
        let ipa = TlbiRange {
            addr: range.addr & ((1 << 52) - 1),
            ..range
        };
        let c = match rng.gen_range(0..18) {
            0 => Command::PrefetchConfig {
                sid,
                ssid: rng.r#gen::<bool>().then_some(ssid),
            },
            1 => Command::CfgiSte {
                sid,
                leaf: rng.r#gen(),
            },
            2 => Command::CfgiSteRange {
                sid,
                range: rng.gen_range(0..31),
            },
            3 => Command::CfgiCd {
                sid,
                ssid,
                leaf: rng.r#gen(),
            },
            4 => Command::CfgiCdAll { sid },
            5 => Command::TlbiNhAll { vmid },
            6 => Command::TlbiNhAsid { vmid, asid },
            7 => Command::TlbiNhVa { vmid, asid, range },
            8 => Command::TlbiNhVaa { vmid, range },
            9 => Command::TlbiEl2Asid { asid },
            10 => Command::TlbiEl2Va { asid, range },
            11 => Command::TlbiEl2Vaa { range },
            12 => Command::TlbiS12Vmall { vmid },
            13 => Command::TlbiS2Ipa { vmid, range: ipa },
            14 => Command::AtcInv {
                sid,
                ssid: rng.r#gen::<bool>().then_some(ssid),
                global: rng.r#gen(),
                size: u(&mut rng, 6) as u8,
                addr: range.addr,
            },
            15 => Command::Sync {
                completion: [
                    SyncCompletion::None,
                    SyncCompletion::Irq,
                    SyncCompletion::Sev,
                ][rng.gen_range(0..3)],
                msh: u(&mut rng, 2) as u8,
                msi_attr: u(&mut rng, 4) as u8,
                msi_data: rng.r#gen(),
                msi_addr: PhysAddr(u(&mut rng, 52) & !3),
            },
            16 => Command::Other {
                opcode: Opcode::PriResp,
                words: [rng.r#gen::<u64>() & !0xFF | 0x41, rng.r#gen()],
            },
            _ => Command::CfgiAll,
        };
        assert_eq!(Command::decode(c.encode()), Ok(c), "{c:?}");
    }
}
