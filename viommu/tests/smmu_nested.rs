//! Nested translation through the whole SMMU unit (stream table → nested STE → CD at
//! an IPA → stage 1 at IPAs → stage 2), on random tables, compared with the
//! composition of two single-stage walks: stage 1 decoded entry by entry with its
//! format, each table fetch and the output translated by a single-stage stage-2
//! `ForeignTable`. Results must agree exactly: the output, the size (the smaller
//! leaf), the permissions both stages grant, or the event (S2, CLASS, the IPA).

mod smmu_common;

use pgtable_core::{
    Access, Entry, FaultKind, ForeignTable, Format, Iova, PhysAddr, Prot, TableWriter, WalkFault,
    WriterPage,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use smmu_common::*;
use smmu_format::{ArmConfig, ArmS1, ArmS2, EventClass, EventId, SteConfig, StreamTableEntry};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use viommu::Perms;
use viommu::memory::ImageMemory;
use viommu::smmu::SmmuCaps;

/// What the composition of the two stages expects.
#[derive(Debug, PartialEq, Eq)]
enum Want {
    /// Output, leaf size, permissions.
    Ok(u64, u64, Perms),
    /// Event, S2, CLASS, `dw3` (the IPA of stage-2 faults).
    Fault(EventId, bool, EventClass, u64),
}

fn s2_event(f: &WalkFault) -> EventId {
    match f.kind {
        FaultKind::NotPresent | FaultKind::Entry(_) => EventId::FTranslation,
        FaultKind::Permission { .. } => EventId::FPermission,
        FaultKind::AccessFlag => EventId::FAccess,
    }
}

/// What both stages grant (as pgtable-core's nested walk combines them).
fn combine(s1: Prot, s2: Prot) -> Prot {
    let both = Prot::READ | Prot::WRITE | Prot::CACHE;
    let either = Prot::NOEXEC | Prot::PRIV | Prot::MMIO;
    (s1 & s2 & both) | ((s1 | s2) & either)
}

const IPA_MASK: u64 = ((1 << 52) - 1) & !0xfff;

/// The two single-stage models: stage 1's tables entry by entry (their IPAs from
/// `table_ipa`), stage 2 as a single-stage walk.
struct Model<'a> {
    s1: &'a TableWriter<ArmS1, ImageMemory>,
    table_ipa: &'a HashMap<u64, u64>,
    s2: &'a ForeignTable<ArmS2, ImageMemory>,
}

impl Model<'_> {
    fn want(&self, iova: u64, access: Access) -> Want {
        let fmt = self.s1.format();
        if iova >> 48 != 0 {
            return Want::Fault(EventId::FTranslation, false, EventClass::Input, 0);
        }
        for level in (0..=3).rev() {
            let entry = self
                .s1
                .entry_address(Iova(iova), level)
                .expect("tables on the path were written")
                .0;
            let desc_ipa = self.table_ipa[&(entry & !0xfff)] + (entry & 0xfff);
            if let Err(f) = self.s2.translate_access(Iova(desc_ipa), Access::READ) {
                return Want::Fault(
                    s2_event(&f),
                    true,
                    EventClass::TranslationTable,
                    desc_ipa & IPA_MASK,
                );
            }
            let raw = self.s1.read_entry(PhysAddr(entry)).unwrap();
            match fmt.decode(raw, level) {
                Entry::Table(_) => continue,
                Entry::Leaf { pa, size, prot } => {
                    if !access.allowed_by(prot) {
                        return Want::Fault(EventId::FPermission, false, EventClass::Input, 0);
                    }
                    let ipa = pa + (iova & (size - 1));
                    let s2_access = Access {
                        privileged: false,
                        ..access
                    };
                    return match self.s2.translate_access(Iova(ipa), s2_access) {
                        Err(f) => {
                            Want::Fault(s2_event(&f), true, EventClass::Input, ipa & IPA_MASK)
                        }
                        Ok(t) => Want::Ok(
                            t.pa.0,
                            size.min(t.size),
                            Perms::from_prot(combine(prot, t.prot)),
                        ),
                    };
                }
                _ => return Want::Fault(EventId::FTranslation, false, EventClass::Input, 0),
            }
        }
        unreachable!("level 0 holds leaves only")
    }
}

#[test]
fn nested_walks_through_the_unit_are_the_composition_of_two_single_stage_walks() {
    let prots = [
        Prot::READ,
        Prot::RW,
        Prot::WRITE,
        Prot::RW | Prot::PRIV,
        Prot::READ | Prot::NOEXEC | Prot::CACHE,
        Prot::RW | Prot::CACHE,
    ];
    for round in 0..4u64 {
        let mut rng = SmallRng::seed_from_u64(0x5eed_0500 + round);
        let g = Guest::new(32 << 20);
        let unit = g.unit(SmmuCaps::default());
        let strtab = g.linear_stream_table(&unit, 4);
        let s2w = RefCell::new(g.s2(40));
        // Data: IPA pages (below 2^30, in distinct 2 MiB regions) mapped by stage 2 to PAs beyond guest RAM (the
        // unit never reads data), some left out, some 2 MiB blocks.
        let mut used = HashSet::new();
        let mut data_ipas = vec![];
        for i in 0..300u64 {
            let ipa = loop {
                let ipa = rng.gen_range(0..1u64 << 18) << 12;
                if used.insert(ipa >> 21) {
                    break ipa;
                }
            };
            data_ipas.push(ipa);
            if rng.gen_ratio(1, 10) {
                continue;
            }
            let prot = prots[rng.gen_range(0..prots.len())] - Prot::PRIV;
            let (ipa, pa, size) = if rng.gen_ratio(1, 12) {
                (ipa & !(M2 - 1), 0x200_0000_0000 + i * M2, M2)
            } else {
                (ipa, 0x100_0000_0000 + i * K4, K4)
            };
            s2w.borrow_mut()
                .map(Iova(ipa), PhysAddr(pa), size, prot, &mut g.pages())
                .unwrap();
        }
        // Stage-1 table pages: in guest RAM, each at a fresh IPA in [2^31, 2^32) that
        // stage 2 maps readable, or (1 in 12 each) write-only or not at all.
        let table_ipa = RefCell::new(HashMap::new());
        let page_rng = RefCell::new(SmallRng::seed_from_u64(round));
        let ipa_page = || {
            let pa = g.page();
            let mut rng = page_rng.borrow_mut();
            let ipa = loop {
                let ipa = rng.gen_range(1u64 << 19..1 << 20) << 12;
                if !table_ipa.borrow().values().any(|&v| v == ipa) {
                    break ipa;
                }
            };
            // The root and the one hardware-L1 table (IOVAs are below 2^36) are
            // always readable, so that most walks get somewhere.
            let top = table_ipa.borrow().len() < 2;
            table_ipa.borrow_mut().insert(pa, ipa);
            let pick = if top { 2 } else { rng.gen_range(0..12) };
            let prot = match pick {
                0 => None,
                1 => Some(Prot::WRITE),
                _ => Some(if rng.gen_bool(0.5) {
                    Prot::RW
                } else {
                    Prot::READ
                }),
            };
            if let Some(prot) = prot {
                s2w.borrow_mut()
                    .map(Iova(ipa), PhysAddr(pa), K4, prot, &mut g.pages())
                    .unwrap();
            }
            WriterPage {
                pa: PhysAddr(pa),
                pointer: ipa,
            }
        };
        let root = ipa_page();
        let s1_fmt = ArmS1::new(ArmConfig::new(4096, 48, 48)).unwrap();
        let mut s1w = TableWriter::new(s1_fmt, g.mem.clone(), root.pa).unwrap();
        let mut iovas = vec![];
        let mut mapped = HashSet::new();
        for _ in 0..300 {
            let size = if rng.gen_ratio(1, 10) { M2 } else { K4 };
            let iova = rng.gen_range(0..1u64 << 36) & !(size - 1);
            if !mapped.insert(iova >> 21) {
                continue; // keep 4K leaves and blocks apart
            }
            // Mostly data IPAs, sometimes an IPA beyond stage 2's 40 bits.
            let ipa = if rng.gen_ratio(1, 30) {
                0x100_0000_0000 + (rng.gen_range(0..1u64 << 20) << 21)
            } else {
                data_ipas[rng.gen_range(0..data_ipas.len())] & !(size - 1)
            };
            let prot = prots[rng.gen_range(0..prots.len())];
            s1w.map(Iova(iova), PhysAddr(ipa), size, prot, &mut || {
                Some(ipa_page())
            })
            .unwrap();
            iovas.push(iova);
        }
        // The CD at an IPA stage 2 maps; a nested STE for stream 3 (VMID 2, ASID 5).
        let cd = g.page();
        let cd_ipa = 0x1_0000_0000;
        s2w.borrow_mut()
            .map(Iova(cd_ipa), PhysAddr(cd), K4, Prot::READ, &mut g.pages())
            .unwrap();
        g.cd(cd, &s1w.format().cd(PhysAddr(root.pointer), 5, true));
        let s2w = s2w.into_inner();
        g.ste(
            strtab,
            3,
            &StreamTableEntry {
                config: SteConfig::Nested,
                s1_context_ptr: PhysAddr(cd_ipa),
                ..s2w.format().ste(s2w.root(), 2, true)
            },
        );
        let s2_view = s2w.view().unwrap();
        let table_ipa = table_ipa.into_inner();
        let model = Model {
            s1: &s1w,
            table_ipa: &table_ipa,
            s2: &s2_view,
        };
        let accesses = [
            Access::READ,
            Access::WRITE,
            Access::RW.privileged(),
            Access {
                exec: true,
                ..Access::READ
            },
        ];
        let mut outcomes = [0usize; 4];
        for _ in 0..3000 {
            let iova = if rng.gen_ratio(7, 8) {
                iovas[rng.gen_range(0..iovas.len())] + rng.gen_range(0..K4)
            } else {
                rng.gen_range(0..1u64 << 36)
            };
            let access = accesses[rng.gen_range(0..accesses.len())];
            let want = model.want(iova, access);
            let got = match unit.translate(3, None, iova, access) {
                Ok(m) => Want::Ok(m.translate(iova).unwrap(), m.size, m.perms),
                Err(f) => {
                    let e = f.event.expect("an event");
                    assert!(f.recorded);
                    assert_eq!(unit.events(), [e]);
                    assert_eq!(e.input_addr, iova);
                    Want::Fault(e.event, e.s2, e.class, e.address2)
                }
            };
            assert_eq!(got, want, "round {round}, iova {iova:#x}, {access:?}");
            outcomes[match &got {
                Want::Ok(..) => 0,
                Want::Fault(_, false, ..) => 1,
                Want::Fault(_, true, EventClass::TranslationTable, _) => 2,
                Want::Fault(..) => 3,
            }] += 1;
        }
        // Every outcome occurs: translations, stage-1 faults, stage-2 faults on a
        // table fetch and on the output.
        assert!(
            outcomes.iter().all(|&n| n > 20),
            "round {round}: {outcomes:?}"
        );
    }
}
