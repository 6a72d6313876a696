//! Every event the SMMU unit raises, each reached by a structure or table a guest
//! crafted, with its exact fields (EventID, S2, CLASS, InputAddr, IPA / FetchAddr,
//! RnW / InD / PnU, SSV / SubstreamID), whether it is recorded, and the level.

mod smmu_common;

use pgtable_core::{Access, Iova, PhysAddr, Prot, TableWriter, WriterPage};
use smmu_common::*;
use smmu_format::{
    ArmConfig, ArmS1, ArmS2, CdTranslationTable, Command, ContextDescriptor, EventClass, EventId,
    EventRecord, L1CdDescriptor, L1StreamDescriptor, SteConfig, StreamTableEntry,
    StreamTableFormat, Vtcr,
};
use std::cell::RefCell;
use viommu::memory::ImageMemory;
use viommu::smmu::{Httu, SmmuCaps, SmmuFault, SmmuUnit};

const SID: u32 = 1;

/// The record of `f`, checked to survive encode → decode.
fn event(f: &SmmuFault) -> EventRecord {
    let e = f.event.expect("an event");
    assert_eq!(EventRecord::decode(e.encode()), Ok(e));
    e
}

/// A configuration event of `id` for `sid` / `ssid`: recorded, nothing else set
/// (CLASS, RES0 there, is 0).
fn config_event(id: EventId, sid: u32, ssid: Option<u32>) -> EventRecord {
    EventRecord {
        stream_id: sid,
        substream_id: ssid,
        class: EventClass::Cd,
        ..EventRecord::new(id)
    }
}

/// Checks that `f` is the recorded configuration event `want` and the only event.
fn assert_config(unit: &SmmuUnit<ImageMemory>, f: SmmuFault, want: EventRecord) {
    assert_eq!(
        f,
        SmmuFault {
            event: Some(want),
            recorded: true,
            level: None
        }
    );
    assert_eq!(event(&f), want);
    assert_eq!(unit.events(), [want]);
}

/// Stage 1 for stream [`SID`]: a linear stream table of 16 STEs, one CD (Linux's,
/// ASID 1, R = 1), a 4-level 4K table with a few leaves.
struct Fx {
    g: Guest,
    unit: SmmuUnit<ImageMemory>,
    strtab: u64,
    w: TableWriter<ArmS1, ImageMemory>,
    cd_pa: u64,
}

const RO: u64 = 0x10_0000; // -> 0x8000_0000, read-only
const RW: u64 = 0x11_0000; // -> 0x8001_0000
const XN: u64 = 0x12_0000; // -> 0x8002_0000, no exec
const PRIV: u64 = 0x13_0000; // -> 0x8003_0000, privileged only
const UNMAPPED: u64 = 0x20_0000;

impl Fx {
    fn new(caps: SmmuCaps) -> Fx {
        let g = Guest::new(8 << 20);
        let unit = g.unit(caps);
        let strtab = g.linear_stream_table(&unit, 4);
        let mut w = g.s1(48);
        for (iova, pa, prot) in [
            (RO, 0x8000_0000, Prot::READ | Prot::CACHE),
            (RW, 0x8001_0000, Prot::RW),
            (XN, 0x8002_0000, Prot::RW | Prot::NOEXEC),
            (PRIV, 0x8003_0000, Prot::RW | Prot::PRIV),
        ] {
            w.map(Iova(iova), PhysAddr(pa), K4, prot, &mut g.pages())
                .unwrap();
        }
        let cd_pa = g.alloc(64, 64);
        g.cd(cd_pa, &linux_cd(&w, 1));
        g.ste(strtab, SID, &s1_ste(cd_pa, 0));
        Fx {
            g,
            unit,
            strtab,
            w,
            cd_pa,
        }
    }

    fn cd(&self) -> ContextDescriptor {
        linux_cd(&self.w, 1)
    }

    fn set_cd(&self, cd: &ContextDescriptor) {
        self.set_cd_words(&cd.encode());
    }

    fn set_cd_words(&self, words: &[u64; 8]) {
        self.g.write(self.cd_pa, words);
        self.unit
            .command(Command::CfgiCdAll { sid: SID }.encode())
            .unwrap();
    }

    fn set_ste(&self, sid: u32, ste: &StreamTableEntry) {
        self.set_ste_words(sid, &ste.encode());
    }

    fn set_ste_words(&self, sid: u32, words: &[u64; 8]) {
        self.g.write(self.strtab + 64 * u64::from(sid), words);
        self.unit
            .command(Command::CfgiSte { sid, leaf: true }.encode())
            .unwrap();
    }

    fn translate(&self, iova: u64, access: Access) -> Result<u64, SmmuFault> {
        self.unit
            .translate(SID, None, iova, access)
            .map(|m| m.translate(iova).unwrap())
    }

    /// A stage-1 walk event of stream [`SID`] for `iova` and `access`.
    fn walk_event(&self, id: EventId, iova: u64, access: Access) -> EventRecord {
        EventRecord {
            stream_id: SID,
            input_addr: iova,
            rnw: !access.write,
            ind: access.exec,
            pnu: access.privileged,
            class: EventClass::Input,
            ..EventRecord::new(id)
        }
    }
}

#[test]
fn the_fixture_translates() {
    let fx = Fx::new(SmmuCaps::default());
    assert_eq!(fx.translate(RO + 0x123, Access::READ), Ok(0x8000_0123));
    assert_eq!(fx.translate(RW + 8, Access::RW), Ok(0x8001_0008));
    assert_eq!(
        fx.translate(PRIV, Access::WRITE.privileged()),
        Ok(0x8003_0000)
    );
    assert!(fx.unit.events().is_empty());
}

#[test]
fn c_bad_streamid() {
    let fx = Fx::new(SmmuCaps::default());
    // A StreamID at or above 2^LOG2SIZE (16).
    let f = fx.unit.translate(16, Some(3), 0, Access::READ).unwrap_err();
    let want = config_event(EventId::CBadStreamId, 16, Some(3));
    assert_eq!(want.encode(), [0x10_0000_3802, 0, 0, 0]);
    assert_config(&fx.unit, f, want);
    // LOG2SIZE is capped at SIDSIZE.
    let g = Guest::new(1 << 20);
    let unit = g.unit(SmmuCaps {
        sid_bits: 3,
        ..SmmuCaps::default()
    });
    g.linear_stream_table(&unit, 4);
    let f = unit.translate(8, None, 0, Access::READ).unwrap_err();
    assert_config(&unit, f, config_event(EventId::CBadStreamId, 8, None));
    // A reserved STRTAB_BASE_CFG.FMT, and a two-level SPLIT other than 6/8/10.
    unit.set_stream_table(RAM, 4 | 2 << 16);
    let f = unit.translate(1, None, 0, Access::READ).unwrap_err();
    assert_config(&unit, f, config_event(EventId::CBadStreamId, 1, None));
    program(&unit, RAM, 4, 7, StreamTableFormat::TwoLevel);
    let f = unit.translate(1, None, 0, Access::READ).unwrap_err();
    assert_config(&unit, f, config_event(EventId::CBadStreamId, 1, None));
}

#[test]
fn c_bad_streamid_two_level() {
    let g = Guest::new(1 << 20);
    let unit = g.unit(SmmuCaps::default());
    // 2^16 StreamIDs, SPLIT 8: 256 L1 descriptors.
    let l1 = g.alloc(256 * 8, 256 * 8);
    program(&unit, l1, 16, 8, StreamTableFormat::TwoLevel);
    // L1[1] holds 2^(SPAN-1) = 2 STEs; L1[0] has SPAN 0.
    let l2 = g.alloc(128, 128);
    g.write(
        l1 + 8,
        &[L1StreamDescriptor {
            span: 2,
            l2_table: PhysAddr(l2),
        }
        .encode()],
    );
    g.write(
        l2 + 64,
        &StreamTableEntry {
            valid: true,
            config: SteConfig::Bypass,
            ..Default::default()
        }
        .encode(),
    );
    assert_eq!(
        unit.translate(0x101, None, 0x1234, Access::READ)
            .unwrap()
            .translate(0x1234),
        Some(0x1234)
    );
    for sid in [0x5, 0x102, 0x1_0000] {
        let f = unit.translate(sid, None, 0, Access::READ).unwrap_err();
        assert_config(&unit, f, config_event(EventId::CBadStreamId, sid, None));
    }
}

#[test]
fn f_ste_fetch() {
    let g = Guest::new(1 << 20);
    let unit = g.unit(SmmuCaps::default());
    // A linear table outside guest memory: FetchAddr is the STE's address.
    program(&unit, 0x1000_0000, 8, 0, StreamTableFormat::Linear);
    let f = unit.translate(3, None, 0, Access::READ).unwrap_err();
    let want = EventRecord {
        address2: 0x1000_00C0,
        ..config_event(EventId::FSteFetch, 3, None)
    };
    assert_eq!(want.encode(), [0x3_0000_0003, 0, 0, 0x1000_00C0]);
    assert_config(&unit, f, want);
    // A two-level L1 table outside memory: the L1 descriptor's address.
    program(&unit, 0x1000_0000, 16, 8, StreamTableFormat::TwoLevel);
    let f = unit.translate(0x305, None, 0, Access::READ).unwrap_err();
    let want = EventRecord {
        address2: 0x1000_0018,
        ..config_event(EventId::FSteFetch, 0x305, None)
    };
    assert_config(&unit, f, want);
    // An L2 array outside memory: the STE's address.
    let l1 = g.alloc(256 * 8, 256 * 8);
    program(&unit, l1, 16, 8, StreamTableFormat::TwoLevel);
    g.write(
        l1 + 3 * 8,
        &[L1StreamDescriptor {
            span: 9,
            l2_table: PhysAddr(0x2000_0000),
        }
        .encode()],
    );
    let f = unit.translate(0x305, None, 0, Access::READ).unwrap_err();
    let want = EventRecord {
        address2: 0x2000_0140,
        ..config_event(EventId::FSteFetch, 0x305, None)
    };
    assert_config(&unit, f, want);
}

#[test]
fn c_bad_ste() {
    let fx = Fx::new(SmmuCaps::default());
    let bad = |fx: &Fx| {
        let f = fx.unit.translate(SID, None, RO, Access::READ).unwrap_err();
        assert_config(&fx.unit, f, config_event(EventId::CBadSte, SID, None));
    };
    let good = s1_ste(fx.cd_pa, 0);
    // V = 0.
    fx.set_ste(
        SID,
        &StreamTableEntry {
            valid: false,
            ..good
        },
    );
    bad(&fx);
    // A reserved Config (0b001).
    let mut words = good.encode();
    words[0] = words[0] & !0b1110 | 0b001 << 1;
    fx.set_ste_words(SID, &words);
    bad(&fx);
    // Stage 2: a reserved S2TG; an S2SL0 that is not Linux's start level (4K, IAS 32
    // at L2 x 4, valid in the architecture); S2HA without HTTU comes below.
    let s2 = ArmS2::new(ArmConfig::new(4096, 32, 48)).unwrap();
    let s2_ste = s2.ste(PhysAddr(RAM), 1, true);
    assert_eq!(s2_ste.vtcr.sl0, 1);
    for vtcr in [
        Vtcr {
            tg: 3,
            ..s2_ste.vtcr
        },
        Vtcr {
            sl0: 0,
            ..s2_ste.vtcr
        },
    ] {
        fx.set_ste(SID, &StreamTableEntry { vtcr, ..s2_ste });
        bad(&fx);
    }
    // S2S (stalls), S2ENDI, EATS, STRW = EL2 with stage 1.
    fx.set_ste(
        SID,
        &StreamTableEntry {
            s2s: true,
            ..s2_ste
        },
    );
    bad(&fx);
    fx.set_ste(
        SID,
        &StreamTableEntry {
            s2endi: true,
            ..s2_ste
        },
    );
    bad(&fx);
    fx.set_ste(SID, &StreamTableEntry { eats: 1, ..good });
    bad(&fx);
    fx.set_ste(SID, &StreamTableEntry { strw: 2, ..good });
    bad(&fx);
    // S1CDMax above SSIDSIZE (20), and the unmodified STE translates again.
    let mut words = good.encode();
    words[0] |= 21 << 59;
    fx.set_ste_words(SID, &words);
    bad(&fx);
    fx.set_ste(SID, &good);
    assert_eq!(fx.translate(RO, Access::READ), Ok(0x8000_0000));
}

#[test]
fn c_bad_ste_for_what_the_unit_does_not_offer() {
    let caps = [
        SmmuCaps {
            stage1: false,
            ..SmmuCaps::default()
        },
        SmmuCaps {
            stage2: false,
            ..SmmuCaps::default()
        },
        SmmuCaps {
            httu: Httu::None,
            ..SmmuCaps::default()
        },
        SmmuCaps {
            httu: Httu::Access,
            ..SmmuCaps::default()
        },
        SmmuCaps {
            ssid_bits: 3,
            ..SmmuCaps::default()
        },
    ];
    for (i, caps) in caps.into_iter().enumerate() {
        let fx = Fx::new(caps);
        let s2 = ArmS2::new(ArmConfig::new(4096, 40, 48)).unwrap();
        let s2_ste = s2.ste(PhysAddr(RAM), 1, true);
        let ste = match i {
            0 => s1_ste(fx.cd_pa, 0),
            1 => s2_ste,
            2 => StreamTableEntry {
                s2ha: true,
                ..s2_ste
            },
            3 => StreamTableEntry {
                s2ha: true,
                s2hd: true,
                ..s2_ste
            },
            _ => s1_ste(fx.cd_pa, 4),
        };
        fx.set_ste(SID, &ste);
        let f = fx
            .unit
            .translate(SID, Some(1), RO, Access::READ)
            .unwrap_err();
        assert_config(&fx.unit, f, config_event(EventId::CBadSte, SID, Some(1)));
    }
}

#[test]
fn f_stream_disabled() {
    let fx = Fx::new(SmmuCaps::default());
    // Four CDs, S1DSS = terminate: a transaction without SubstreamID.
    fx.set_ste(SID, &s1_ste(fx.cd_pa, 2));
    let f = fx.unit.translate(SID, None, RO, Access::READ).unwrap_err();
    let want = config_event(EventId::FStreamDisabled, SID, None);
    assert_eq!(want.encode(), [0x1_0000_0006, 0, 0, 0]);
    assert_config(&fx.unit, f, want);
}

#[test]
fn c_bad_substreamid() {
    let fx = Fx::new(SmmuCaps::default());
    let bad = |ssid: u32| {
        let f = fx
            .unit
            .translate(SID, Some(ssid), RO, Access::READ)
            .unwrap_err();
        assert_config(
            &fx.unit,
            f,
            config_event(EventId::CBadSubstreamId, SID, Some(ssid)),
        );
    };
    // Any SubstreamID with S1CDMax = 0.
    bad(0);
    bad(1);
    // A SubstreamID at or above 2^S1CDMax.
    fx.set_ste(SID, &s1_ste(fx.cd_pa, 2));
    bad(4);
    // SubstreamID 0 while S1DSS = 0b10 gives CD 0 to transactions without one.
    fx.set_ste(
        SID,
        &StreamTableEntry {
            s1dss: 2,
            ..s1_ste(fx.cd_pa, 2)
        },
    );
    bad(0);
    assert_eq!(fx.translate(RO, Access::READ), Ok(0x8000_0000));
    // A two-level CD table (4K leaves of 64 CDs) whose L1 descriptor is not valid.
    let l1 = fx.g.alloc(64, 64);
    fx.g.write(
        l1,
        &[L1CdDescriptor {
            valid: true,
            l2_table: PhysAddr(fx.cd_pa & !0xfff),
        }
        .encode()],
    );
    fx.set_ste(
        SID,
        &StreamTableEntry {
            s1fmt: 1,
            ..s1_ste(l1, 8)
        },
    );
    bad(64);
    let ssid = ((fx.cd_pa & 0xfff) / 64) as u32;
    let m = fx
        .unit
        .translate(SID, Some(ssid), RO, Access::READ)
        .unwrap();
    assert_eq!(m.translate(RO), Some(0x8000_0000));
}

#[test]
fn f_cd_fetch() {
    let fx = Fx::new(SmmuCaps::default());
    // The CD table outside memory: FetchAddr is the CD's address.
    fx.set_ste(SID, &s1_ste(0x1000_0000, 4));
    let f = fx
        .unit
        .translate(SID, Some(5), RO, Access::READ)
        .unwrap_err();
    let want = EventRecord {
        address2: 0x1000_0140,
        ..config_event(EventId::FCdFetch, SID, Some(5))
    };
    assert_config(&fx.unit, f, want);
    // A two-level CD table (64K leaves) whose L1 table is outside memory: the L1
    // descriptor's address; whose leaf is: the CD's.
    fx.set_ste(
        SID,
        &StreamTableEntry {
            s1fmt: 2,
            ..s1_ste(0x1000_0000, 12)
        },
    );
    let f = fx
        .unit
        .translate(SID, Some(0x805), RO, Access::READ)
        .unwrap_err();
    let want = EventRecord {
        address2: 0x1000_0010,
        ..config_event(EventId::FCdFetch, SID, Some(0x805))
    };
    assert_config(&fx.unit, f, want);
    let l1 = fx.g.alloc(64, 64);
    fx.g.write(
        l1 + 16,
        &[L1CdDescriptor {
            valid: true,
            l2_table: PhysAddr(0x2000_0000),
        }
        .encode()],
    );
    fx.set_ste(
        SID,
        &StreamTableEntry {
            s1fmt: 2,
            ..s1_ste(l1, 12)
        },
    );
    let f = fx
        .unit
        .translate(SID, Some(0x805), RO, Access::READ)
        .unwrap_err();
    let want = EventRecord {
        address2: 0x2000_0140,
        ..config_event(EventId::FCdFetch, SID, Some(0x805))
    };
    assert_config(&fx.unit, f, want);
}

#[test]
fn c_bad_cd() {
    let fx = Fx::new(SmmuCaps {
        oas: 44,
        ..SmmuCaps::default()
    });
    let good = fx.cd();
    let bad = |cd: &[u64; 8]| {
        fx.set_cd_words(cd);
        let f = fx.unit.translate(SID, None, RO, Access::READ).unwrap_err();
        assert_config(&fx.unit, f, config_event(EventId::CBadCd, SID, None));
    };
    let tt0 = good.tt0;
    for cd in [
        ContextDescriptor {
            valid: false,
            ..good
        },
        // T0SZ beyond 39, and 33 (a 31-bit input, not modelled).
        ContextDescriptor {
            tt0: CdTranslationTable { tsz: 40, ..tt0 },
            ..good
        },
        ContextDescriptor {
            tt0: CdTranslationTable { tsz: 33, ..tt0 },
            ..good
        },
        // A reserved TG0, IPS and AA64 = 0.
        ContextDescriptor {
            tt0: CdTranslationTable { tg: 3, ..tt0 },
            ..good
        },
        ContextDescriptor { ips: 7, ..good },
        ContextDescriptor {
            aa64: false,
            ..good
        },
        // TTB0 beyond the IPS, and beyond the effective IPS (OAS 44).
        ContextDescriptor { ips: 0, ..good }.with_ttb0(0x1_0000_0000),
        good.with_ttb0(1 << 45),
        // Stalls, big-endian walks.
        ContextDescriptor { s: true, ..good },
        ContextDescriptor { endi: true, ..good },
    ] {
        bad(&cd.encode());
    }
    fx.set_cd(&good);
    assert_eq!(fx.translate(RO, Access::READ), Ok(0x8000_0000));
    // HA / HD without HTTU.
    for (httu, ha, hd) in [(Httu::None, true, false), (Httu::Access, true, true)] {
        let fx = Fx::new(SmmuCaps {
            httu,
            ..SmmuCaps::default()
        });
        fx.set_cd(&ContextDescriptor { ha, hd, ..fx.cd() });
        let f = fx.unit.translate(SID, None, RO, Access::READ).unwrap_err();
        assert_config(&fx.unit, f, config_event(EventId::CBadCd, SID, None));
    }
}

trait WithTtb0 {
    fn with_ttb0(self, ttb0: u64) -> Self;
}

impl WithTtb0 for ContextDescriptor {
    fn with_ttb0(self, ttb0: u64) -> Self {
        ContextDescriptor {
            tt0: CdTranslationTable {
                ttb: PhysAddr(ttb0),
                ..self.tt0
            },
            ..self
        }
    }
}

#[test]
fn f_walk_eabt_at_stage_1() {
    let mut fx = Fx::new(SmmuCaps::default());
    // The hardware-L1 descriptor of 0x4000_0000 points to a table outside memory.
    let iova = 0x4012_3456;
    fx.w.map(
        Iova(iova & !0xfff),
        PhysAddr(0x9000_0000),
        K4,
        Prot::RW,
        &mut fx.g.pages(),
    )
    .unwrap();
    let entry = fx.w.entry_address(Iova(iova), 2).unwrap();
    fx.w.write_entry(entry, 0x1000_0000 | 3).unwrap();
    // Not recorded translation faults do not hide external aborts.
    fx.set_cd(&ContextDescriptor {
        r: false,
        ..fx.cd()
    });
    let f = fx
        .unit
        .translate(SID, None, iova, Access::WRITE)
        .unwrap_err();
    let want = EventRecord {
        class: EventClass::TranslationTable,
        ttrnw: true,
        // The L2 table's entry for the IOVA: index 0 (bits 29:21).
        address2: 0x1000_0000,
        ..fx.walk_event(EventId::FWalkEabt, iova, Access::WRITE)
    };
    assert_eq!(
        want.encode(),
        [0x1_0000_000B, 0x1100_0000_0000, iova, 0x1000_0000]
    );
    assert_eq!(
        f,
        SmmuFault {
            event: Some(want),
            recorded: true,
            level: Some(1)
        }
    );
    assert_eq!((f.arm_level(), event(&f)), (Some(2), want));
    assert_eq!(fx.unit.events(), [want]);
    // TTB0 outside memory: the top table's entry.
    fx.set_cd(&fx.cd().with_ttb0(0x2000_0000));
    let f = fx
        .unit
        .translate(SID, None, 0x80_1234_5678, Access::READ)
        .unwrap_err();
    let want = EventRecord {
        class: EventClass::TranslationTable,
        ttrnw: true,
        address2: 0x2000_0008,
        ..fx.walk_event(EventId::FWalkEabt, 0x80_1234_5678, Access::READ)
    };
    assert_eq!((f.event, f.level, f.recorded), (Some(want), Some(3), true));
    assert_eq!(fx.unit.events(), [want]);
}

#[test]
fn f_translation_at_stage_1() {
    let fx = Fx::new(SmmuCaps::default());
    // Nothing mapped at 0x20_0000: the hardware-L2 entry is empty.
    let f = fx
        .unit
        .translate(SID, None, UNMAPPED + 0x10, Access::READ)
        .unwrap_err();
    let want = fx.walk_event(EventId::FTranslation, UNMAPPED + 0x10, Access::READ);
    assert_eq!(
        want.encode(),
        [0x1_0000_0010, 0x208_0000_0000, 0x20_0010, 0]
    );
    assert_eq!((f.event, f.recorded, f.level), (Some(want), true, Some(1)));
    assert_eq!(fx.unit.events(), [want]);
    // Inputs beyond T0SZ (48 bits), in TTB1's half, or tagged (TBI not modelled).
    for iova in [1 << 48, 0xFFFF_8000_0000_0000, 0x0100_0000_0010_0000] {
        let f = fx
            .unit
            .translate(SID, None, iova, Access::READ)
            .unwrap_err();
        let want = fx.walk_event(EventId::FTranslation, iova, Access::READ);
        assert_eq!((f.event, f.level), (Some(want), Some(3)));
        assert_eq!(fx.unit.events(), [want]);
    }
    // A block where none may be (hardware L0) and a block's low output bits set.
    let mut fx = fx;
    fx.w.map(
        Iova(0x8000_0000),
        PhysAddr(0x1_0000_0000),
        1 << 30,
        Prot::RW,
        &mut fx.g.pages(),
    )
    .unwrap();
    let block = fx.w.entry_address(Iova(0x8000_0000), 2).unwrap();
    fx.w.write_entry(block, fx.w.read_entry(block).unwrap() | 0x1000)
        .unwrap();
    let f = fx
        .unit
        .translate(SID, None, 0x8000_0000, Access::READ)
        .unwrap_err();
    assert_eq!(event(&f).event, EventId::FTranslation);
    assert_eq!(f.level, Some(2));
    // EPD0: every input faults; with R = 0 nothing is recorded.
    let cd = fx.cd();
    fx.unit.events();
    fx.g.cd(
        fx.cd_pa,
        &ContextDescriptor {
            tt0: CdTranslationTable {
                epd: true,
                ..cd.tt0
            },
            r: false,
            ..cd
        },
    );
    fx.unit
        .command(
            Command::CfgiCd {
                sid: SID,
                ssid: 0,
                leaf: true,
            }
            .encode(),
        )
        .unwrap();
    let f = fx.unit.translate(SID, None, RO, Access::READ).unwrap_err();
    let want = fx.walk_event(EventId::FTranslation, RO, Access::READ);
    assert_eq!((f.event, f.recorded, f.level), (Some(want), false, None));
    assert!(fx.unit.events().is_empty());
}

#[test]
fn translation_faults_are_recorded_only_with_cd_r() {
    let fx = Fx::new(SmmuCaps::default());
    fx.set_cd(&ContextDescriptor {
        r: false,
        ..fx.cd()
    });
    for (iova, access) in [(UNMAPPED, Access::READ), (RO, Access::WRITE)] {
        let f = fx.unit.translate(SID, None, iova, access).unwrap_err();
        assert!(!f.recorded);
        assert!(f.event.is_some());
    }
    assert!(fx.unit.events().is_empty());
}

#[test]
fn f_addr_size() {
    let mut fx = Fx::new(SmmuCaps::default());
    // IPS = 32 bits: a leaf output at 4 GiB, a table beyond it.
    fx.w.map(
        Iova(0x5000_0000),
        PhysAddr(0x1_0000_0000),
        K4,
        Prot::RW,
        &mut fx.g.pages(),
    )
    .unwrap();
    fx.w.map(
        Iova(0xC000_0000),
        PhysAddr(0x9000_0000),
        K4,
        Prot::RW,
        &mut fx.g.pages(),
    )
    .unwrap();
    let table = fx.w.entry_address(Iova(0xC000_0000), 2).unwrap();
    fx.w.write_entry(table, 0x2_0000_0000 | 3).unwrap();
    fx.set_cd(&ContextDescriptor { ips: 0, ..fx.cd() });
    for (iova, level) in [(0x5000_0123, 0), (0xC000_0000, 1)] {
        let f = fx
            .unit
            .translate(SID, None, iova, Access::READ)
            .unwrap_err();
        let want = fx.walk_event(EventId::FAddrSize, iova, Access::READ);
        assert_eq!(
            (f.event, f.level, f.recorded),
            (Some(want), Some(level), true)
        );
        assert_eq!(fx.unit.events(), [want]);
    }
    // With a 48-bit IPS the table outside memory is an external abort instead.
    fx.set_cd(&fx.cd());
    let f = fx
        .unit
        .translate(SID, None, 0xC000_0000, Access::READ)
        .unwrap_err();
    assert_eq!(event(&f).event, EventId::FWalkEabt);
    assert_eq!(event(&f).fetch_addr(), 0x2_0000_0000);
    // Descriptor bits 49:48 (OA bits only under LPA2).
    let leaf = fx.w.entry_address(Iova(RW), 0).unwrap();
    fx.w.write_entry(leaf, fx.w.read_entry(leaf).unwrap() | 1 << 48)
        .unwrap();
    fx.unit.command(tlbi_nh_va(0, 1, RW)).unwrap();
    let f = fx.unit.translate(SID, None, RW, Access::READ).unwrap_err();
    assert_eq!((event(&f).event, f.level), (EventId::FAddrSize, Some(0)));
    // Bypass beyond the OAS.
    let g = Guest::new(1 << 20);
    let unit = g.unit(SmmuCaps {
        oas: 40,
        ..SmmuCaps::default()
    });
    let strtab = g.linear_stream_table(&unit, 2);
    g.ste(
        strtab,
        2,
        &StreamTableEntry {
            valid: true,
            config: SteConfig::Bypass,
            ..Default::default()
        },
    );
    let m = unit
        .translate(2, None, (1 << 40) - 1, Access::WRITE)
        .unwrap();
    assert_eq!(
        (m.iova, m.pa, m.size),
        ((1 << 40) - (1 << 30), (1 << 40) - (1 << 30), 1 << 30)
    );
    let f = unit.translate(2, None, 1 << 40, Access::WRITE).unwrap_err();
    let want = EventRecord {
        stream_id: 2,
        input_addr: 1 << 40,
        class: EventClass::Input,
        ..EventRecord::new(EventId::FAddrSize)
    };
    assert_eq!((f.event, f.recorded), (Some(want), true));
}

#[test]
fn f_access() {
    let fx = Fx::new(SmmuCaps::default());
    let leaf = fx.w.entry_address(Iova(RW), 0).unwrap();
    let raw = fx.w.read_entry(leaf).unwrap();
    fx.w.write_entry(leaf, raw & !(1 << 10)).unwrap();
    let f = fx.unit.translate(SID, None, RW, Access::READ).unwrap_err();
    let want = fx.walk_event(EventId::FAccess, RW, Access::READ);
    assert_eq!(want.encode(), [0x1_0000_0012, 0x208_0000_0000, RW, 0]);
    assert_eq!((f.event, f.level, f.recorded), (Some(want), Some(0), true));
    assert_eq!(fx.unit.events(), [want]);
    // AFFD: no fault, the flag stays clear.
    fx.set_cd(&ContextDescriptor {
        affd: true,
        ..fx.cd()
    });
    assert_eq!(fx.translate(RW, Access::READ), Ok(0x8001_0000));
    assert_eq!(fx.w.read_entry(leaf).unwrap(), raw & !(1 << 10));
    // HA: the SMMU sets it.
    fx.set_cd(&ContextDescriptor {
        ha: true,
        ..fx.cd()
    });
    assert_eq!(fx.translate(RW, Access::READ), Ok(0x8001_0000));
    assert_eq!(fx.w.read_entry(leaf).unwrap(), raw);
}

#[test]
fn f_permission() {
    let fx = Fx::new(SmmuCaps::default());
    let priv_write = Access::WRITE.privileged();
    let exec = Access {
        exec: true,
        ..Access::READ
    };
    for (iova, access) in [
        (RO, Access::WRITE),
        (RO, priv_write),
        (XN, exec),
        (PRIV, Access::READ),
    ] {
        let f = fx.unit.translate(SID, None, iova, access).unwrap_err();
        let want = fx.walk_event(EventId::FPermission, iova, access);
        assert_eq!((f.event, f.level, f.recorded), (Some(want), Some(0), true));
        assert_eq!(fx.unit.events(), [want]);
    }
    let f = fx.unit.translate(SID, None, RO, priv_write).unwrap_err();
    assert_eq!(
        f.to_string(),
        "F_PERMISSION (0x13) for StreamID 0x1, stage 1, CLASS IN, input 0x100000, at L3"
    );
    // RnW 0 (write), PnU 1; InD for the fetch.
    assert_eq!(event(&f).encode()[1], 0x202_0000_0000);
    let f = fx.unit.translate(SID, None, XN, exec).unwrap_err();
    assert_eq!(event(&f).encode()[1], 0x20C_0000_0000);
    fx.unit.events();
    // APTable[1] (bit 62) on the top table entry takes writes away, unless HAD.
    let top = fx.w.entry_address(Iova(RW), 3).unwrap();
    fx.w.write_entry(top, fx.w.read_entry(top).unwrap() | 1 << 62)
        .unwrap();
    fx.unit.command(tlbi_nh_va(0, 1, RW)).unwrap();
    assert_eq!(fx.translate(RW, Access::READ), Ok(0x8001_0000));
    let f = fx.unit.translate(SID, None, RW, Access::WRITE).unwrap_err();
    assert_eq!((event(&f).event, f.level), (EventId::FPermission, Some(0)));
    let cd = fx.cd();
    fx.set_cd(&ContextDescriptor {
        tt0: CdTranslationTable {
            had: true,
            ..cd.tt0
        },
        ..cd
    });
    assert_eq!(fx.translate(RW, Access::WRITE), Ok(0x8001_0000));
}

#[test]
fn config_abort_is_silent_and_bypass_is_identity() {
    let fx = Fx::new(SmmuCaps::default());
    fx.set_ste(
        SID,
        &StreamTableEntry {
            valid: true,
            config: SteConfig::Abort,
            ..Default::default()
        },
    );
    let f = fx.unit.translate(SID, None, RO, Access::READ).unwrap_err();
    assert_eq!(
        f,
        SmmuFault {
            event: None,
            recorded: false,
            level: None
        }
    );
    assert!(fx.unit.events().is_empty());
    fx.set_ste(
        SID,
        &StreamTableEntry {
            valid: true,
            config: SteConfig::Bypass,
            ..Default::default()
        },
    );
    let m = fx
        .unit
        .translate(SID, None, 0x1234_5678, Access::RW)
        .unwrap();
    assert_eq!((m.iova, m.pa, m.size), (0, 0, 1 << 30));
    assert_eq!(m.translate(0x1234_5678), Some(0x1234_5678));
    // Bypass fills no IOTLB entry.
    assert_eq!(fx.unit.cache_stats().translations, 0);
    // Before the guest programs a stream table, everything aborts silently.
    let g = Guest::new(1 << 20);
    let f = g
        .unit(SmmuCaps::default())
        .translate(0, None, 0, Access::READ);
    assert_eq!(f.unwrap_err().event, None);
}

#[test]
fn the_event_queue_is_bounded() {
    let fx = Fx::new(SmmuCaps {
        event_queue_entries: 2,
        ..SmmuCaps::default()
    });
    for i in 0..3 {
        let f = fx
            .unit
            .translate(SID, None, UNMAPPED + i, Access::READ)
            .unwrap_err();
        assert_eq!(f.recorded, i < 2);
    }
    assert!(fx.unit.event_overflow());
    let events = fx.unit.events();
    assert_eq!(
        events.iter().map(|e| e.input_addr).collect::<Vec<_>>(),
        [UNMAPPED, UNMAPPED + 1]
    );
    assert!(!fx.unit.event_overflow());
}

/// Stage 2 only: stream [`SID`] with VMID 5, S2R = 1, IPA space 40 bits (two
/// concatenated L1 tables).
#[test]
fn stage_2_faults() {
    let g = Guest::new(4 << 20);
    let unit = g.unit(SmmuCaps::default());
    let strtab = g.linear_stream_table(&unit, 4);
    let mut s2 = g.s2(40);
    s2.map(
        Iova(0x1_0000_0000),
        PhysAddr(0x8000_0000),
        K4,
        Prot::READ,
        &mut g.pages(),
    )
    .unwrap();
    s2.map(
        Iova(0x2_0000_0000),
        PhysAddr(0x8000_1000),
        K4,
        Prot::RW,
        &mut g.pages(),
    )
    .unwrap();
    let ste = s2.format().ste(s2.root(), 5, true);
    g.ste(strtab, SID, &ste);
    let s2_event = |id, ipa: u64, access: Access| EventRecord {
        stream_id: SID,
        input_addr: ipa,
        rnw: !access.write,
        s2: true,
        class: EventClass::Input,
        address2: ipa & !0xfff,
        ..EventRecord::new(id)
    };
    let m = unit
        .translate(SID, None, 0x1_0000_0123, Access::READ)
        .unwrap();
    assert_eq!(m.translate(0x1_0000_0123), Some(0x8000_0123));
    // F_PERMISSION, F_TRANSLATION (not mapped; beyond the 40-bit IPA space).
    let f = unit
        .translate(SID, None, 0x1_0000_0123, Access::WRITE)
        .unwrap_err();
    let want = s2_event(EventId::FPermission, 0x1_0000_0123, Access::WRITE);
    assert_eq!(
        want.encode(),
        [0x1_0000_0013, 0x280_0000_0000, 0x1_0000_0123, 0x1_0000_0000]
    );
    assert_eq!((f.event, f.level, f.recorded), (Some(want), Some(0), true));
    let f = unit
        .translate(SID, None, 0x3_0000_0000, Access::READ)
        .unwrap_err();
    let want_tr = s2_event(EventId::FTranslation, 0x3_0000_0000, Access::READ);
    assert_eq!((f.event, f.level), (Some(want_tr), Some(2)));
    let f = unit
        .translate(SID, None, 1 << 40, Access::READ)
        .unwrap_err();
    assert_eq!(event(&f).event, EventId::FTranslation);
    assert_eq!(unit.events().len(), 3);
    // F_ACCESS with S2AFFD = 0; not with S2AFFD = 1 or S2HA.
    let leaf = s2.entry_address(Iova(0x2_0000_0000), 0).unwrap();
    let raw = s2.read_entry(leaf).unwrap();
    s2.write_entry(leaf, raw & !(1 << 10)).unwrap();
    let f = unit
        .translate(SID, None, 0x2_0000_0000, Access::READ)
        .unwrap_err();
    assert_eq!(
        f.event,
        Some(s2_event(EventId::FAccess, 0x2_0000_0000, Access::READ))
    );
    for ste in [
        StreamTableEntry {
            s2affd: true,
            ..ste
        },
        StreamTableEntry { s2ha: true, ..ste },
    ] {
        g.ste(strtab, SID, &ste);
        unit.command(
            Command::CfgiSte {
                sid: SID,
                leaf: true,
            }
            .encode(),
        )
        .unwrap();
        assert!(
            unit.translate(SID, None, 0x2_0000_0000, Access::READ)
                .is_ok()
        );
    }
    assert_eq!(s2.read_entry(leaf).unwrap(), raw);
    // S2R = 0: nothing recorded.
    g.ste(strtab, SID, &StreamTableEntry { s2r: false, ..ste });
    unit.command(
        Command::CfgiSte {
            sid: SID,
            leaf: true,
        }
        .encode(),
    )
    .unwrap();
    unit.events();
    let f = unit
        .translate(SID, None, 0x3_0000_0000, Access::READ)
        .unwrap_err();
    assert_eq!((f.event, f.recorded), (Some(want_tr), false));
    assert!(unit.events().is_empty());
    // F_WALK_EABT: a stage-2 table outside memory (CLASS = IN), and S2TTB outside it.
    let table = s2.entry_address(Iova(0x2_0000_0000), 1).unwrap();
    s2.write_entry(table, 0x1000_0000 | 3).unwrap();
    unit.command(Command::TlbiS12Vmall { vmid: 5 }.encode())
        .unwrap();
    let f = unit
        .translate(SID, None, 0x2_0000_0000, Access::READ)
        .unwrap_err();
    let want = EventRecord {
        address2: 0x1000_0000,
        ..s2_event(EventId::FWalkEabt, 0x2_0000_0000, Access::READ)
    };
    assert_eq!((f.event, f.level, f.recorded), (Some(want), Some(0), true));
    g.ste(
        strtab,
        SID,
        &StreamTableEntry {
            s2ttb: PhysAddr(0x2000_0000),
            ..ste
        },
    );
    unit.command(
        Command::CfgiSte {
            sid: SID,
            leaf: true,
        }
        .encode(),
    )
    .unwrap();
    let f = unit
        .translate(SID, None, 0x2_0000_0000, Access::READ)
        .unwrap_err();
    let want = EventRecord {
        // Entry 8 of the concatenated L1 tables (IPA bits 39:30).
        address2: 0x2000_0040,
        ..s2_event(EventId::FWalkEabt, 0x2_0000_0000, Access::READ)
    };
    assert_eq!((f.event, f.level), (Some(want), Some(2)));
}

/// Nested: stage 2 maps IPA `IPA_BASE + x` to `RAM + x` for the pages in use.
const IPA_BASE: u64 = 0x10_0000_0000;

fn ipa(pa: u64) -> u64 {
    pa - RAM + IPA_BASE
}

struct NestedFx {
    g: Guest,
    unit: SmmuUnit<ImageMemory>,
    strtab: u64,
    s2: RefCell<TableWriter<ArmS2, ImageMemory>>,
    s1: TableWriter<ArmS1, ImageMemory>,
    /// The PA of the CD, whose IPA the STE holds.
    cd_pa: u64,
    ste: StreamTableEntry,
}

impl NestedFx {
    fn new() -> NestedFx {
        let g = Guest::new(8 << 20);
        let unit = g.unit(SmmuCaps::default());
        let strtab = g.linear_stream_table(&unit, 4);
        let s2 = RefCell::new(g.s2(40));
        let map_s2 = |pa: u64, prot| {
            s2.borrow_mut()
                .map(Iova(ipa(pa)), PhysAddr(pa), K4, prot, &mut g.pages())
                .unwrap()
        };
        // Stage 1's tables at IPAs.
        let root = g.page();
        map_s2(root, Prot::RW);
        let mut s1 = TableWriter::new(
            ArmS1::new(ArmConfig::new(4096, 48, 48)).unwrap(),
            g.mem.clone(),
            PhysAddr(root),
        )
        .unwrap();
        let mut page = || {
            let pa = g.page();
            map_s2(pa, Prot::RW);
            Some(WriterPage {
                pa: PhysAddr(pa),
                pointer: ipa(pa),
            })
        };
        // 0x10_0000 -> IPA of a data page (RW at both stages); 0x11_0000 -> an IPA
        // stage 2 maps read-only; 0x12_0000 -> an IPA stage 2 does not map.
        let data = g.page();
        map_s2(data, Prot::RW);
        let ro = g.page();
        map_s2(ro, Prot::READ);
        for (iova, out) in [
            (0x10_0000, ipa(data)),
            (0x11_0000, ipa(ro)),
            (0x12_0000, 0x90_0000_0000),
        ] {
            s1.map(Iova(iova), PhysAddr(out), K4, Prot::RW, &mut page)
                .unwrap();
        }
        let cd_pa = g.page();
        map_s2(cd_pa, Prot::READ);
        let mut cd = s1.format().cd(PhysAddr(ipa(root)), 3, true);
        cd.tt0.ttb = PhysAddr(ipa(root));
        g.cd(cd_pa, &cd);
        let ste = StreamTableEntry {
            config: SteConfig::Nested,
            s1_context_ptr: PhysAddr(ipa(cd_pa)),
            ..s2.borrow().format().ste(s2.borrow().root(), 7, true)
        };
        g.ste(strtab, SID, &ste);
        NestedFx {
            g,
            unit,
            strtab,
            s2,
            s1,
            cd_pa,
            ste,
        }
    }

    fn set_ste(&self, ste: &StreamTableEntry) {
        self.g.ste(self.strtab, SID, ste);
        self.unit
            .command(
                Command::CfgiSte {
                    sid: SID,
                    leaf: true,
                }
                .encode(),
            )
            .unwrap();
    }

    fn event(&self, id: EventId, s2: bool, class: EventClass, iova: u64, a2: u64) -> EventRecord {
        EventRecord {
            stream_id: SID,
            input_addr: iova,
            rnw: true,
            s2,
            class,
            address2: a2,
            ttrnw: class == EventClass::TranslationTable,
            ..EventRecord::new(id)
        }
    }
}

#[test]
fn nested_faults() {
    let fx = NestedFx::new();
    let data = fx.unit.translate(SID, None, 0x10_0123, Access::RW).unwrap();
    assert_eq!(data.translate(0x10_0123).unwrap() & 0xfff, 0x123);
    // Stage 1: not mapped (S2 = 0, CLASS = IN).
    let f = fx
        .unit
        .translate(SID, None, 0x20_0000, Access::READ)
        .unwrap_err();
    let want = fx.event(
        EventId::FTranslation,
        false,
        EventClass::Input,
        0x20_0000,
        0,
    );
    assert_eq!((f.event, f.level), (Some(want), Some(1)));
    // Stage 2 on the output: not mapped, and read-only (S2 = 1, CLASS = IN, the IPA).
    let f = fx
        .unit
        .translate(SID, None, 0x12_0456, Access::READ)
        .unwrap_err();
    let want = fx.event(
        EventId::FTranslation,
        true,
        EventClass::Input,
        0x12_0456,
        0x90_0000_0000,
    );
    assert_eq!(
        want.encode(),
        [0x1_0000_0010, 0x288_0000_0000, 0x12_0456, 0x90_0000_0000]
    );
    assert_eq!((f.event, f.level, f.recorded), (Some(want), Some(2), true));
    let f = fx
        .unit
        .translate(SID, None, 0x11_0000, Access::WRITE)
        .unwrap_err();
    let ro_ipa = fx
        .unit
        .translate(SID, None, 0x11_0000, Access::READ)
        .unwrap();
    let want = EventRecord {
        rnw: false,
        ..fx.event(EventId::FPermission, true, EventClass::Input, 0x11_0000, 0)
    };
    let got = event(&f);
    assert_eq!(EventRecord { address2: 0, ..got }, want);
    assert_eq!(ipa(ro_ipa.pa), got.ipa());
    assert_eq!(fx.unit.events().len(), 3);
    // Stage 2 on a stage-1 table fetch: the L3 table's IPA unmapped (CLASS = TT, the
    // descriptor's IPA).
    let l3_entry = fx.s1.entry_address(Iova(0x10_0000), 0).unwrap().0;
    let desc_ipa = ipa(l3_entry);
    let s2_leaf = fx.s2.borrow().entry_address(Iova(desc_ipa), 0).unwrap();
    fx.s2.borrow().write_entry(s2_leaf, 0).unwrap();
    fx.unit
        .command(Command::TlbiS12Vmall { vmid: 7 }.encode())
        .unwrap();
    let f = fx
        .unit
        .translate(SID, None, 0x10_0123, Access::READ)
        .unwrap_err();
    let want = fx.event(
        EventId::FTranslation,
        true,
        EventClass::TranslationTable,
        0x10_0123,
        desc_ipa & !0xfff,
    );
    assert_eq!(want.encode()[1], 0x1188_0000_0000);
    assert_eq!((f.event, f.level, f.recorded), (Some(want), Some(0), true));
    assert_eq!(fx.unit.events(), [want]);
    // ... and mapped to a PA outside memory: a stage-1 external abort whose
    // FetchAddr is that PA.
    let raw = fx.s2.borrow().format().encode_leaf_for_test(0x1000_0000);
    fx.s2.borrow().write_entry(s2_leaf, raw).unwrap();
    fx.unit
        .command(Command::TlbiS12Vmall { vmid: 7 }.encode())
        .unwrap();
    let f = fx
        .unit
        .translate(SID, None, 0x10_0123, Access::READ)
        .unwrap_err();
    let want = fx.event(
        EventId::FWalkEabt,
        false,
        EventClass::TranslationTable,
        0x10_0123,
        0x1000_0000 | l3_entry & 0xfff,
    );
    assert_eq!((f.event, f.level, f.recorded), (Some(want), Some(0), true));
}

#[test]
fn nested_cd_faults() {
    let fx = NestedFx::new();
    // The CD's IPA unmapped at stage 2: S2 = 1, CLASS = CD, the CD's IPA.
    fx.set_ste(&StreamTableEntry {
        s1_context_ptr: PhysAddr(0x80_0000_0000),
        ..fx.ste
    });
    let f = fx
        .unit
        .translate(SID, None, 0x10_0000, Access::READ)
        .unwrap_err();
    let want = fx.event(
        EventId::FTranslation,
        true,
        EventClass::Cd,
        0x10_0000,
        0x80_0000_0000,
    );
    assert_eq!(
        want.encode(),
        [0x1_0000_0010, 0x88_0000_0000, 0x10_0000, 0x80_0000_0000]
    );
    assert_eq!((f.event, f.level, f.recorded), (Some(want), Some(2), true));
    // Not recorded without S2R.
    fx.set_ste(&StreamTableEntry {
        s1_context_ptr: PhysAddr(0x80_0000_0000),
        s2r: false,
        ..fx.ste
    });
    fx.unit.events();
    let f = fx
        .unit
        .translate(SID, None, 0x10_0000, Access::READ)
        .unwrap_err();
    assert_eq!((f.event, f.recorded), (Some(want), false));
    assert!(fx.unit.events().is_empty());
    // Mapped to a PA outside memory: F_CD_FETCH with that PA.
    let out_ipa = 0x20_0000_0000;
    fx.s2
        .borrow_mut()
        .map(
            Iova(out_ipa),
            PhysAddr(0x1000_0000),
            K4,
            Prot::READ,
            &mut fx.g.pages(),
        )
        .unwrap();
    fx.set_ste(&StreamTableEntry {
        s1_context_ptr: PhysAddr(out_ipa + 0x40),
        ..fx.ste
    });
    let f = fx
        .unit
        .translate(SID, None, 0x10_0000, Access::READ)
        .unwrap_err();
    let want = EventRecord {
        address2: 0x1000_0040,
        ..config_event(EventId::FCdFetch, SID, None)
    };
    assert_config(&fx.unit, f, want);
    // S2TTB outside memory: the CD fetch's stage-2 walk aborts (CLASS = CD).
    fx.set_ste(&StreamTableEntry {
        s2ttb: PhysAddr(0x2000_0000),
        ..fx.ste
    });
    let f = fx
        .unit
        .translate(SID, None, 0x10_0000, Access::READ)
        .unwrap_err();
    let cd_ipa = ipa(fx.cd_pa);
    let want = EventRecord {
        ttrnw: false,
        ..fx.event(
            EventId::FWalkEabt,
            true,
            EventClass::Cd,
            0x10_0000,
            0x2000_0000 + (cd_ipa >> 30) * 8,
        )
    };
    assert_eq!((f.event, f.level, f.recorded), (Some(want), Some(2), true));
    // S1DSS = bypass with S1CDMax > 0: stage 2 alone, without a CD.
    fx.set_ste(&StreamTableEntry {
        s1dss: 1,
        s1cdmax: 2,
        ..fx.ste
    });
    let m = fx
        .unit
        .translate(SID, None, ipa(fx.cd_pa) + 8, Access::READ)
        .unwrap();
    assert_eq!(m.translate(ipa(fx.cd_pa) + 8), Some(fx.cd_pa + 8));
}

trait LeafForTest {
    fn encode_leaf_for_test(&self, pa: u64) -> u64;
}

impl LeafForTest for ArmS2 {
    fn encode_leaf_for_test(&self, pa: u64) -> u64 {
        use pgtable_core::Format;
        self.encode_leaf(pa, 0, Prot::RW)
    }
}
