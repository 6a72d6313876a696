//! Translation by access type over tables built as a guest would: limits ANDed across
//! levels, access/dirty updates, every fault kind with its level, and nested walks
//! checked against the composition of two single-stage models.

use pgtable_core::testfmt::TestFormat;
use pgtable_core::{
    Access, ArenaMemory, ConfigError, Error, Fault, FaultKind, ForeignTable, Format, Iova, Nested,
    NestedFault, PhysAddr, Prot, TableWriter, Translation, ViewMemory, WalkFault, WalkPolicy,
    WriterPage,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::ptr::NonNull;
use std::sync::Arc;

const BASE: u64 = 0x4000_0000;
const K4: u64 = 0x1000;
const M2: u64 = 0x20_0000;
/// Test-format table-limit bits (a table entry's bits 1..=6 hold a `Prot`).
const LIMIT_WRITE: u64 = (Prot::WRITE.bits() as u64) << 1;
const LIMIT_PRIV: u64 = (Prot::PRIV.bits() as u64) << 1;
const LIMIT_NOEXEC: u64 = (Prot::NOEXEC.bits() as u64) << 1;
/// Test-format accessed and dirty bits.
const A: u64 = 1 << 9;
const D: u64 = 1 << 8;

/// A 4-level test-format table in a fresh arena, mapping 0x5000 → 0x9000 with `prot`.
fn one_page(prot: Prot) -> TableWriter<TestFormat, ArenaMemory> {
    pgtable_core::conformance::written_table(
        TestFormat::new(),
        BASE,
        Iova(0x5000),
        PhysAddr(0x9000),
        K4,
        prot,
    )
}

fn set_bits(w: &TableWriter<TestFormat, ArenaMemory>, iova: u64, level: u32, bits: u64) {
    let at = w.entry_address(Iova(iova), level).unwrap();
    w.write_entry(at, w.read_entry(at).unwrap() | bits).unwrap();
}

#[test]
fn table_limits_are_anded_into_every_translation() {
    let w = one_page(Prot::RW);
    set_bits(&w, 0x5000, 3, LIMIT_WRITE);
    set_bits(&w, 0x5000, 2, LIMIT_PRIV);
    set_bits(&w, 0x5000, 1, LIMIT_NOEXEC);
    let view = w.view().unwrap();
    let expect = Prot::READ | Prot::PRIV | Prot::NOEXEC;
    assert_eq!(view.translate(Iova(0x5000)).unwrap().prot, expect);
    let mut walked = vec![];
    view.walk(.., |t| {
        walked.push(t.prot);
        ControlFlow::<()>::Continue(())
    })
    .unwrap();
    assert_eq!(walked, [expect]);
    let priv_read = Access::READ.privileged();
    assert_eq!(
        view.translate_access(Iova(0x5008), priv_read).unwrap(),
        Translation {
            iova: Iova(0x5008),
            pa: PhysAddr(0x9008),
            size: K4,
            prot: expect,
            level: 0
        }
    );
    let leaf = w
        .read_entry(w.entry_address(Iova(0x5000), 0).unwrap())
        .unwrap();
    let denied = |access| view.translate_access(Iova(0x5000), access).unwrap_err();
    for access in [
        Access::WRITE.privileged(),
        Access::READ,
        Access {
            exec: true,
            ..priv_read
        },
    ] {
        assert_eq!(
            denied(access),
            WalkFault {
                kind: FaultKind::Permission { granted: expect },
                level: 0,
                iova: Iova(0x5000),
                entry: leaf
            },
            "{access:?}"
        );
    }
}

#[test]
fn hardware_updates_set_accessed_on_the_path_and_dirty_on_writes() {
    let w = one_page(Prot::RW);
    let path = |w: &TableWriter<TestFormat, ArenaMemory>| -> Vec<u64> {
        (0..4)
            .rev()
            .map(|l| {
                w.read_entry(w.entry_address(Iova(0x5000), l).unwrap())
                    .unwrap()
            })
            .collect()
    };
    let before = path(&w);
    // Without a policy, nothing is written.
    let view = w.view().unwrap();
    view.translate_access(Iova(0x5000), Access::RW).unwrap();
    assert_eq!(path(&w), before);
    let view = view.with_policy(WalkPolicy::UPDATE).unwrap();
    // A clean leaf is cacheable read-only: a later write must walk to record itself.
    let t = view.translate_access(Iova(0x5000), Access::READ).unwrap();
    assert_eq!(t.prot, Prot::READ);
    let read: Vec<u64> = before.iter().map(|e| e | A).collect();
    assert_eq!(path(&w), read);
    let t = view.translate_access(Iova(0x5000), Access::WRITE).unwrap();
    assert_eq!(t.prot, Prot::RW);
    let mut written = read.clone();
    written[3] |= D;
    assert_eq!(path(&w), written);
    // Dirty now: reads see it writable.
    let t = view.translate_access(Iova(0x5000), Access::READ).unwrap();
    assert_eq!(t.prot, Prot::RW);
    // A read-only leaf is never made dirty, and a denied write writes no leaf bit.
    let w = one_page(Prot::READ);
    let view = w.view().unwrap().with_policy(WalkPolicy::UPDATE).unwrap();
    let leaf_at = w.entry_address(Iova(0x5000), 0).unwrap();
    let leaf = w.read_entry(leaf_at).unwrap();
    assert!(matches!(
        view.translate_access(Iova(0x5000), Access::WRITE)
            .unwrap_err()
            .kind,
        FaultKind::Permission { .. }
    ));
    assert_eq!(w.read_entry(leaf_at).unwrap(), leaf);
}

/// Memory over a vector that can be made read-only.
struct Image {
    words: Vec<std::sync::atomic::AtomicU64>,
    writable: bool,
}

// SAFETY: `view` only returns pointers inside the vector, which lives as long as `self`.
unsafe impl ViewMemory for Image {
    fn view(&self, phys: u64, len: usize) -> Option<NonNull<u8>> {
        let off = phys.checked_sub(BASE)? as usize;
        (off.is_multiple_of(8) && off.checked_add(len)? <= self.words.len() * 8)
            .then(|| NonNull::from(&self.words[off / 8]).cast())
    }
    fn writable(&self) -> bool {
        self.writable
    }
}

#[test]
fn updates_over_read_only_memory_are_refused() {
    let img = Arc::new(Image {
        words: (0..512).map(|_| 0.into()).collect(),
        writable: false,
    });
    let view = ForeignTable::new(TestFormat::new(), img.clone(), PhysAddr(BASE)).unwrap();
    let refused = Err(Error::BadConfig(ConfigError::ReadOnlyMemory));
    assert_eq!(
        view.clone().with_policy(WalkPolicy::UPDATE).map(|_| ()),
        refused
    );
    assert_eq!(
        Nested::new(TestFormat::new(), 0, WalkPolicy::UPDATE, view.clone()).map(|_| ()),
        refused
    );
    assert_eq!(
        TableWriter::new(TestFormat::new(), img, PhysAddr(BASE)).map(|_| ()),
        refused
    );
    // Reading is fine, and so is a policy that writes nothing.
    let quiet = WalkPolicy {
        access_faults: false,
        ..WalkPolicy::READ_ONLY
    };
    let view = view.with_policy(quiet).unwrap();
    assert_eq!(
        view.translate_access(Iova(0), Access::READ)
            .unwrap_err()
            .kind,
        FaultKind::NotPresent
    );
}

#[test]
fn every_fault_kind_names_its_level_input_and_entry() {
    let w = one_page(Prot::RW);
    let view = w.view().unwrap();
    let fault = |iova: u64| view.translate_access(Iova(iova), Access::READ).unwrap_err();
    // Nothing at 0x40_0000: the level-1 table has an empty entry there.
    assert_eq!(
        fault(0x40_0000),
        WalkFault {
            kind: FaultKind::NotPresent,
            level: 1,
            iova: Iova(0x40_0000),
            entry: 0
        }
    );
    // Beyond the 48-bit input.
    assert_eq!(
        fault(1 << 48),
        WalkFault {
            kind: FaultKind::Entry(Fault::InputRange),
            level: 3,
            iova: Iova(1 << 48),
            entry: 0
        }
    );
    // A 2M leaf whose address is not 2M aligned: reserved bits, at level 1.
    let misaligned = 0x8000_0000 | 0x1000;
    let at = w.entry_address(Iova(0x5000), 1).unwrap();
    let table_entry = w.read_entry(at).unwrap();
    let bad = TestFormat::new().encode_leaf(misaligned, 1, Prot::READ);
    w.write_entry(at, bad).unwrap();
    assert_eq!(
        fault(0x5000),
        WalkFault {
            kind: FaultKind::Entry(Fault::Reserved {
                raw: bad,
                bits: 0x1000
            }),
            level: 1,
            iova: Iova(0x5000),
            entry: bad
        }
    );
    // A table pointer outside memory: the fault names the table's level and the
    // entry pointing to it.
    let outside = 0x7000_0000 | 1;
    w.write_entry(at, outside).unwrap();
    assert_eq!(
        fault(0x5000),
        WalkFault {
            kind: FaultKind::Entry(Fault::BadTableAddress { pa: 0x7000_0000 }),
            level: 0,
            iova: Iova(0x5000),
            entry: outside
        }
    );
    w.write_entry(at, table_entry).unwrap();
    assert_eq!(
        view.translate_access(Iova(0x5000), Access::READ)
            .unwrap()
            .pa,
        PhysAddr(0x9000)
    );
}

/// A leaf of a single-stage model: the page's output address and grant.
#[derive(Debug, Clone, Copy)]
struct Leaf {
    out: u64,
    size: u64,
    prot: Prot,
}

/// A single-stage model: leaves by first address, and the tables the writer made.
struct Model {
    leaves: HashMap<u64, Leaf>,
}

impl Model {
    fn leaf(&self, addr: u64) -> Option<(u64, Leaf)> {
        [K4, M2].iter().find_map(|&size| {
            let page = addr & !(size - 1);
            self.leaves
                .get(&page)
                .filter(|l| l.size == size)
                .map(|&l| (page, l))
        })
    }
}

/// What the composition of the two models says a nested walk gives: stage-1 table
/// fetches through stage 2 (top down), the stage-1 leaf, then stage 2 of its output.
#[allow(clippy::too_many_arguments)]
fn expected(
    s1: &Model,
    s1w: &TableWriter<TestFormat, ArenaMemory>,
    s1_tables: &HashMap<u64, u64>,
    s2: &Model,
    s2w: &TableWriter<TestFormat, ArenaMemory>,
    iova: u64,
    access: Access,
) -> Result<Translation, NestedFault> {
    let s2_fault = |ipa: u64, kind, level, s1_table| NestedFault {
        stage: 2,
        fault: WalkFault {
            kind,
            level,
            iova: Iova(ipa),
            entry: s2_entry(s2w, ipa, level),
        },
        iova: Iova(iova),
        s1_table,
    };
    let s2_walk = |ipa: u64, access: Access, s1_table| -> Result<(u64, Leaf), NestedFault> {
        match s2.leaf(ipa) {
            None => Err(s2_fault(
                ipa,
                FaultKind::NotPresent,
                s2w.deepest(Iova(ipa)),
                s1_table,
            )),
            Some((page, l)) if !access.allowed_by(l.prot) => {
                let level = if l.size == K4 { 0 } else { 1 };
                let _ = page;
                Err(s2_fault(
                    ipa,
                    FaultKind::Permission { granted: l.prot },
                    level,
                    s1_table,
                ))
            }
            Some(hit) => Ok(hit),
        }
    };
    // Stage-1 tables on the path, top down: each fetch is a stage-2 read of the
    // descriptor's IPA.
    for level in (0..4).rev() {
        let Some(at) = s1w.entry_address(Iova(iova), level) else {
            break;
        };
        let ipa = s1_tables[&(at.0 & !(K4 - 1))] + (at.0 & (K4 - 1));
        s2_walk(ipa, Access::READ, Some(level))?;
    }
    let Some((page, l1)) = s1.leaf(iova) else {
        let level = s1w.deepest(Iova(iova));
        let entry = s1w
            .read_entry(s1w.entry_address(Iova(iova), level).unwrap())
            .unwrap();
        return Err(NestedFault::from(WalkFault {
            kind: FaultKind::NotPresent,
            level,
            iova: Iova(iova),
            entry,
        }));
    };
    let level = if l1.size == K4 { 0 } else { 1 };
    if !access.allowed_by(l1.prot) {
        let entry = s1w
            .read_entry(s1w.entry_address(Iova(iova), level).unwrap())
            .unwrap();
        return Err(NestedFault::from(WalkFault {
            kind: FaultKind::Permission { granted: l1.prot },
            level,
            iova: Iova(iova),
            entry,
        }));
    }
    let ipa = l1.out + (iova - page);
    let (page2, l2) = s2_walk(
        ipa,
        Access {
            privileged: false,
            ..access
        },
        None,
    )?;
    Ok(Translation {
        iova: Iova(iova),
        pa: PhysAddr(l2.out + (ipa - page2)),
        size: l1.size.min(l2.size),
        prot: (l1.prot & l2.prot & (Prot::RW | Prot::CACHE))
            | ((l1.prot | l2.prot) & (Prot::PRIV | Prot::NOEXEC | Prot::MMIO)),
        level,
    })
}

/// The raw stage-2 entry at `level` on `ipa`'s path (0 where no table is there).
fn s2_entry(w: &TableWriter<TestFormat, ArenaMemory>, ipa: u64, level: u32) -> u64 {
    w.entry_address(Iova(ipa), level)
        .map_or(0, |at| w.read_entry(at).unwrap())
}

#[test]
fn nested_walks_are_the_composition_of_two_single_stage_models() {
    let mut rng = SmallRng::seed_from_u64(0x5eed_0001);
    let prots = [
        Prot::READ,
        Prot::RW,
        Prot::WRITE,
        Prot::RW | Prot::PRIV,
        Prot::READ | Prot::NOEXEC | Prot::CACHE,
        Prot::RW | Prot::CACHE,
    ];
    for round in 0..8 {
        // Guest RAM: 16 MiB at BASE. Stage 2 maps IPAs (below 2^39) to it; its own
        // tables are addressed physically. Stage-1 table pages get random IPAs, and a
        // few are left out of stage 2 or made unreadable there.
        let mem = Arc::new(ArenaMemory::new(BASE, 16 << 20));
        let mut next = BASE;
        let mut phys_page = move || {
            let pa = next;
            next += K4;
            pa
        };
        let s2_root = PhysAddr(phys_page());
        let mut s2w = TableWriter::new(TestFormat::new(), mem.clone(), s2_root).unwrap();
        let mut s2 = Model {
            leaves: HashMap::new(),
        };
        let shared_pages = std::cell::RefCell::new(phys_page);
        let mut s2_page = || {
            let pa = shared_pages.borrow_mut()();
            Some(WriterPage {
                pa: PhysAddr(pa),
                pointer: pa,
            })
        };
        // Data: 2 MiB of guest RAM at BASE + 8 MiB, seen at random IPAs.
        let data = BASE + (8 << 20);
        let mut used_ipa = HashSet::new();
        let mut ipa_pages = vec![];
        for i in 0..512u64 {
            let ipa = loop {
                let ipa = rng.gen_range(0..1u64 << 27) << 12;
                if used_ipa.insert(ipa >> 21) {
                    break ipa;
                }
            };
            ipa_pages.push(ipa);
            if rng.gen_ratio(1, 10) {
                continue; // an IPA stage 2 does not map
            }
            let prot = prots[rng.gen_range(0..prots.len())] - Prot::PRIV;
            let big = rng.gen_ratio(1, 16);
            let (ipa, pa, size) = if big {
                (ipa & !(M2 - 1), BASE + (12 << 20), M2)
            } else {
                (ipa, data + i * K4, K4)
            };
            s2w.map(Iova(ipa), PhysAddr(pa), size, prot, &mut s2_page)
                .unwrap();
            s2.leaves.insert(
                ipa,
                Leaf {
                    out: pa,
                    size,
                    prot,
                },
            );
        }
        // Stage-1 table pages: physical pages, each given a fresh IPA that stage 2
        // maps (read-write, or with probability 1/12 unreadable or unmapped).
        let mut s1_tables: HashMap<u64, u64> = HashMap::new();
        let mut s1_page_rng = SmallRng::seed_from_u64(round);
        let mut make_s1_page = |s2w: &mut TableWriter<TestFormat, ArenaMemory>,
                                s2: &mut Model,
                                s1_tables: &mut HashMap<u64, u64>|
         -> WriterPage {
            let pa = shared_pages.borrow_mut()();
            let ipa = loop {
                let ipa = s1_page_rng.gen_range(1u64 << 27..1 << 28) << 12;
                if !s1_tables.values().any(|&v| v == ipa) {
                    break ipa;
                }
            };
            // The root is always reachable, so that most walks get somewhere.
            let pick = if s1_tables.is_empty() {
                2
            } else {
                s1_page_rng.gen_range(0..12)
            };
            s1_tables.insert(pa, ipa);
            // Stage 2 maps the table's IPA read-write, write-only (unreadable), or not.
            let prot = match pick {
                0 => None,
                1 => Some(Prot::WRITE),
                _ => Some(Prot::RW),
            };
            if let Some(prot) = prot {
                s2w.map(Iova(ipa), PhysAddr(pa), K4, prot, &mut || {
                    let pa = shared_pages.borrow_mut()();
                    Some(WriterPage {
                        pa: PhysAddr(pa),
                        pointer: pa,
                    })
                })
                .unwrap();
                s2.leaves.insert(
                    ipa,
                    Leaf {
                        out: pa,
                        size: K4,
                        prot,
                    },
                );
            }
            WriterPage {
                pa: PhysAddr(pa),
                pointer: ipa,
            }
        };
        let s1_root = make_s1_page(&mut s2w, &mut s2, &mut s1_tables);
        let mut s1w = TableWriter::new(TestFormat::new(), mem.clone(), s1_root.pa).unwrap();
        let mut s1 = Model {
            leaves: HashMap::new(),
        };
        let mut iovas = vec![];
        for _ in 0..300 {
            let big = rng.gen_ratio(1, 10);
            let size = if big { M2 } else { K4 };
            let iova = rng.gen_range(0..1u64 << 36) & !(size - 1);
            if s1.leaf(iova).is_some()
                || (big && (0..512).any(|i| s1.leaf(iova + i * K4).is_some()))
            {
                continue;
            }
            let ipa = ipa_pages[rng.gen_range(0..ipa_pages.len())] & !(size - 1);
            let prot = prots[rng.gen_range(0..prots.len())];
            s1w.map(Iova(iova), PhysAddr(ipa), size, prot, &mut || {
                Some(make_s1_page(&mut s2w, &mut s2, &mut s1_tables))
            })
            .unwrap();
            s1.leaves.insert(
                iova,
                Leaf {
                    out: ipa,
                    size,
                    prot,
                },
            );
            iovas.push(iova);
        }
        let s2_view = ForeignTable::new(TestFormat::new(), mem.clone(), s2_root).unwrap();
        let nested = Nested::new(
            TestFormat::new(),
            s1_root.pointer,
            WalkPolicy::READ_ONLY,
            s2_view,
        )
        .unwrap();
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
        for _ in 0..4000 {
            let iova = if rng.gen_ratio(7, 8) {
                iovas[rng.gen_range(0..iovas.len())] + rng.gen_range(0..K4)
            } else {
                rng.gen_range(0..1u64 << 36)
            };
            let access = accesses[rng.gen_range(0..accesses.len())];
            let got = nested.translate(Iova(iova), access);
            let want = expected(&s1, &s1w, &s1_tables, &s2, &s2w, iova, access);
            assert_eq!(got, want, "round {round}, iova {iova:#x}, {access:?}");
            outcomes[match &got {
                Ok(_) => 0,
                Err(f) if f.stage == 1 => 1,
                Err(f) if f.s1_table.is_some() => 2,
                Err(_) => 3,
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
