//! The device → table chain structures, fault records and invalidation descriptors:
//! golden words written from the specification's bit positions (docs/formats.md §1.2, §5,
//! §8), both directions; random round trips; and every reserved bit met with the
//! documented error and fault reason.

use pgtable_core::{Iova, PhysAddr};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use vtd_format::*;

const HAW: u32 = 48;

/// The error for reserved `bits` in word `word` of `structure`.
fn reserved(structure: Structure, word: usize, bits: u64) -> DecodeError {
    DecodeError::Reserved {
        structure,
        word,
        bits,
        reason: structure.reserved_fault(),
    }
}

/// Calls `check(words with bit b of word w set)` for each reserved bit `b` of `masks`,
/// and once with all of them; `check` gets the words and the bits it set.
fn each_reserved_bit<const N: usize>(
    valid: [u64; N],
    masks: [u64; N],
    mut check: impl FnMut([u64; N], usize, u64),
) {
    for (w, &m) in masks.iter().enumerate() {
        for b in 0..64 {
            if m & 1 << b != 0 {
                let mut words = valid;
                words[w] |= 1 << b;
                check(words, w, 1 << b);
            }
        }
        if m != 0 {
            let mut words = valid;
            words[w] |= m;
            check(words, w, m);
        }
    }
}

// ---------------------------------------------------------------------------------
// Golden words.

#[test]
fn rtaddr_golden() {
    let scalable = RootTableAddress {
        table: PhysAddr(0x12_3456_7000),
        mode: TranslationTableMode::Scalable,
    };
    assert_eq!(scalable.encode(), 0x12_3456_7400);
    assert_eq!(RootTableAddress::decode(0x12_3456_7400, HAW), Ok(scalable));
    let legacy = RootTableAddress {
        mode: TranslationTableMode::Legacy,
        ..scalable
    };
    assert_eq!(legacy.encode(), 0x12_3456_7000);
    assert_eq!(legacy.root_entry(0xff), PhysAddr(0x12_3456_7ff0));
}

#[test]
fn legacy_chain_golden() {
    // RTADDR -> root entry of bus 0x3a -> context entry of 00:03.0 -> §5.1's table.
    let rta = RootTableAddress::decode(0x1_0000, HAW).unwrap();
    assert_eq!(rta.root_entry(0x3a), PhysAddr(0x1_03a0));
    let re = RootEntry {
        present: true,
        context_table: PhysAddr(0x2_0000),
    };
    assert_eq!(re.encode(), [0x2_0001, 0]);
    assert_eq!(RootEntry::decode([0x2_0001, 0], HAW), Ok(re));
    assert_eq!(re.context_entry(0x18), Some(PhysAddr(0x2_0180)));
    assert_eq!(root_entry_offset(0x3a), 0x3a0);
    assert_eq!(context_entry_offset(0x18), 0x180);

    let ce = ContextEntry::decode([0x1000_0001, 0x102], HAW).unwrap();
    assert!(ce.present() && !ce.fpd());
    assert_eq!(
        TranslationType::from_code(ce.translation_type()),
        Some(TranslationType::Untranslated)
    );
    assert_eq!(
        (ce.ssptptr(), ce.aw(), ce.did()),
        (0x1000_0000, Some(Agaw::Bits48), 1)
    );
    let pt = ContextEntry::default()
        .with_present(true)
        .with_fpd(true)
        .with_translation_type(TranslationType::PassThrough)
        .with_ssptptr(0x1000_0000)
        .with_aw(Agaw::Bits39)
        .with_did(0xabcd);
    assert_eq!(pt.words(), [0x1000_000b, 0xab_cd01]);
}

#[test]
fn scalable_chain_golden() {
    // Root entry: both halves present.
    let re = ScalableRootEntry {
        lower: ContextTablePointer {
            present: true,
            table: PhysAddr(0x2000_0000),
        },
        upper: ContextTablePointer {
            present: true,
            table: PhysAddr(0x2000_1000),
        },
    };
    assert_eq!(re.encode(), [0x2000_0001, 0x2000_1001]);
    assert_eq!(ScalableRootEntry::decode(re.encode(), HAW), Ok(re));
    // devfn 0x93 -> upper table, index 0x13, 32-byte entries.
    assert_eq!(scalable_context_index(0x93), 0x13);
    assert_eq!(re.context_entry(0x93), Some(PhysAddr(0x2000_1260)));
    assert_eq!(re.context_entry(0x13), Some(PhysAddr(0x2000_0260)));

    // Context entry: every field set.
    let ce = ScalableContextEntry {
        present: true,
        fpd: true,
        dte: true,
        paside: true,
        pre: true,
        pdts: 7,
        pasid_dir: PhysAddr(0x3000_0000),
        rid_pasid: 0x1_2345,
        rid_priv: true,
    };
    assert_eq!(ce.encode(), [0x3000_0e1f, 0x11_2345, 0, 0]);
    assert_eq!(
        ScalableContextEntry::decode([0x3000_0e1f, 0x11_2345, 0, 0], HAW),
        Ok(ce)
    );
    // PASID 0xA_BCDE: directory index 0x2AF3, table index 0x1E.
    assert_eq!(ce.pasid_dir_entry(0xA_BCDE), PhysAddr(0x3001_5798));

    let de = PasidDirEntry {
        present: true,
        fpd: false,
        table: PhysAddr(0x4000_0000),
    };
    assert_eq!(de.encode(), 0x4000_0001);
    assert_eq!(PasidDirEntry::decode(0x4000_0001, HAW), Ok(de));
    assert_eq!(de.pasid_entry(0xA_BCDE), PhysAddr(0x4000_0780));
    // FPD is read even from a not-present directory entry.
    assert_eq!(
        PasidDirEntry::decode(0x2, HAW),
        Ok(PasidDirEntry {
            present: false,
            fpd: true,
            table: PhysAddr(0)
        })
    );
}

#[test]
fn pasid_entry_golden() {
    // docs/formats.md §5.1 / §5.2.
    let ss = PasidEntry::decode([0x1000_0089, 0x80_0001, 0, 0, 0, 0, 0, 0], HAW).unwrap();
    assert_eq!(Pgtt::from_code(ss.pgtt()), Some(Pgtt::SecondStage));
    assert_eq!(
        (ss.ssptptr(), ss.aw(), ss.did(), ss.pwsnp()),
        (0x1000_0000, Some(Agaw::Bits48), 1, true)
    );
    let fs = PasidEntry::decode([0x49, 1, 0x2000_0000, 0, 0, 0, 0, 0], HAW).unwrap();
    assert_eq!(Pgtt::from_code(fs.pgtt()), Some(Pgtt::FirstStage));
    assert_eq!((fs.fsptptr(), fs.five_level()), (0x2000_0000, false));

    // Nested, every field the chain uses set (Linux `intel_pasid_setup_nested` sets
    // this combination, with FSPTPTR a guest address).
    let nested = PasidEntry::default()
        .with_present(true)
        .with_fpd(true)
        .with_aw(Agaw::Bits48)
        .with_pgtt(Pgtt::Nested)
        .with_ssade(true)
        .with_ssptptr(0x1000_0000)
        .with_did(5)
        .with_pwsnp(true)
        .with_pgsnp(true)
        .with_sre(true)
        .with_five_level(true)
        .with_wpe(true)
        .with_eafe(true)
        .with_fsptptr(0x5000_0000);
    let words = [0x1000_02cb, 0x180_0005, 0x5000_0095, 0, 0, 0, 0, 0];
    assert_eq!(nested.val, words);
    let d = PasidEntry::decode(words, HAW).unwrap();
    assert_eq!(d, nested);
    assert!(d.present() && d.fpd() && d.ssade() && d.sre() && d.wpe() && d.eafe());
    assert!(d.pwsnp() && d.pgsnp() && d.five_level());
    assert_eq!(
        (d.did(), d.ssptptr(), d.fsptptr()),
        (5, 0x1000_0000, 0x5000_0000)
    );
}

#[test]
fn fault_record_golden() {
    // A legacy read fault of 00:03.0 at 0x1234_5678.
    let rec = FaultRecord {
        source: SourceId::new(0, 0x18),
        address: Iova(0x1234_5000),
        read: true,
        ..FaultRecord::new(FaultReason::ReadDenied)
    };
    assert_eq!(rec.encode(), [0x1234_5000, 0xc000_0006_0000_0018]);
    assert_eq!(
        FaultRecord::decode([0x1234_5000, 0xc000_0006_0000_0018]),
        Ok(rec)
    );

    // A scalable-mode write fault with PASID 0x12345, privileged, from 3a:02.2.
    let rec = FaultRecord {
        source: SourceId(0x3a12),
        address: Iova(0x7fff_f000),
        pasid: Some(0x1_2345),
        privileged: true,
        ..FaultRecord::new(FaultReason::SmWriteDenied)
    };
    let words = [0x7fff_f000, 0x8123_4585_a000_3a12];
    assert_eq!(rec.encode(), words);
    assert_eq!(FaultRecord::decode(words), Ok(rec));

    // Translation request, execute, T2, cleared F.
    let rec = FaultRecord {
        valid: false,
        execute: true,
        t2: true,
        address_type: AddressType::TranslationRequest,
        ..FaultRecord::new(FaultReason::TranslationTypeBlocked)
    };
    assert_eq!(rec.encode(), [0, 0x1000_000d_5000_0000]);
    assert_eq!(
        FaultRecord::decode([0, 0x0000_00ff_0000_0000]),
        Err(DecodeError::UnknownFaultReason(0xff))
    );
    assert_eq!(
        FaultRecord::decode([0, 0x3000_0001_0000_0000]),
        Err(DecodeError::ReservedValue {
            structure: Structure::FaultRecord,
            field: "AT",
            value: 3,
            reason: None
        })
    );
}

#[test]
fn invalidation_descriptors_golden() {
    use InvalidationDescriptor as D;
    let page = |addr, am, ih| PasidIotlbScope::Page {
        addr: Iova(addr),
        am,
        ih,
    };
    let cases: [(D, [u64; 2]); 17] = [
        (D::ContextCache(ContextCacheScope::Global), [0x11, 0]),
        (
            D::ContextCache(ContextCacheScope::Domain { did: 5 }),
            [0x5_0021, 0],
        ),
        (
            D::ContextCache(ContextCacheScope::Device {
                did: 5,
                sid: SourceId(0x3a12),
                function_mask: 3,
            }),
            [0x0003_3a12_0005_0031, 0],
        ),
        (
            D::Iotlb {
                scope: IotlbScope::Global,
                drain_reads: true,
                drain_writes: true,
            },
            [0xd2, 0],
        ),
        (
            D::Iotlb {
                scope: IotlbScope::Domain { did: 1 },
                drain_reads: false,
                drain_writes: false,
            },
            [0x1_0022, 0],
        ),
        (
            D::Iotlb {
                scope: IotlbScope::Page {
                    did: 1,
                    addr: Iova(0x1234_5000),
                    am: 0,
                    ih: false,
                },
                drain_reads: true,
                drain_writes: false,
            },
            [0x1_00b2, 0x1234_5000],
        ),
        (
            D::DeviceTlb {
                pfsid: SourceId(0x1234),
                max_pending: 0x1f,
                sid: SourceId(0x0100),
                size: true,
                addr: Iova(0x7000_0000),
            },
            [0x1230_0100_001f_4003, 0x7000_0001],
        ),
        (
            D::InterruptEntryCache(InterruptCacheScope::Global),
            [0x4, 0],
        ),
        (
            D::InterruptEntryCache(InterruptCacheScope::Index {
                index: 0x40,
                mask: 3,
            }),
            [0x40_1800_0014, 0],
        ),
        (
            D::Wait {
                interrupt: true,
                status: Some((PhysAddr(0x1000_0040), 0xdead_beef)),
                fence: true,
                page_drain: false,
            },
            [0xdead_beef_0000_0075, 0x1000_0040],
        ),
        (
            D::Wait {
                interrupt: false,
                status: None,
                fence: false,
                page_drain: true,
            },
            [0x85, 0],
        ),
        (
            D::PasidIotlb {
                did: 1,
                pasid: 0x1_2345,
                scope: PasidIotlbScope::Pasid,
            },
            [0x1_2345_0001_0026, 0],
        ),
        (
            D::PasidIotlb {
                did: 1,
                pasid: 0x1_2345,
                scope: page(0x8000_0000, 9, true),
            },
            [0x1_2345_0001_0036, 0x8000_0049],
        ),
        (
            D::PasidCache(PasidCacheScope::Domain { did: 7 }),
            [0x7_0007, 0],
        ),
        (
            D::PasidCache(PasidCacheScope::Pasid { did: 7, pasid: 1 }),
            [0x1_0007_0017, 0],
        ),
        (D::PasidCache(PasidCacheScope::Global), [0x37, 0]),
        (
            D::PasidDeviceTlb {
                pfsid: SourceId(0x0001),
                max_pending: 0,
                sid: SourceId(0x0100),
                pasid: 0x1_2345,
                global: true,
                size: true,
                addr: Iova(0x4000_0000),
            },
            [0x1_2345_0100_1008, 0x4000_0801],
        ),
    ];
    for (d, words) in cases {
        assert_eq!(d.encode(), words, "{d:?}");
        assert_eq!(D::decode(words), Ok(d), "{words:x?}");
        assert_eq!(D::decode_256([words[0], words[1], 0, 0]), Ok(d));
        assert_eq!(d.encode_256(), [words[0], words[1], 0, 0]);
        assert_eq!(d.type_code() as u64, words[0] & 0xf);
    }
    assert_eq!(
        invalidation_range(Iova(0x8000_0000), 9),
        (Iova(0x8000_0000), 0x20_0000)
    );
}

#[test]
fn unknown_descriptor_types_and_granularities() {
    use InvalidationDescriptor as D;
    assert_eq!(
        D::decode([0, 0]),
        Err(DecodeError::UnknownDescriptorType(0))
    );
    assert_eq!(
        D::decode([0x9, 0]),
        Err(DecodeError::UnknownDescriptorType(9))
    );
    assert_eq!(
        D::decode([0xf, 0]),
        Err(DecodeError::UnknownDescriptorType(0xf))
    );
    // qw0[11:9] extends the type: 0x201 is type 0x11.
    assert_eq!(
        D::decode([0x201, 0]),
        Err(DecodeError::UnknownDescriptorType(0x11))
    );
    let g = |ty: u64, g: u64| D::decode([ty | g << 4, 0]).unwrap_err();
    let invalid = |g| DecodeError::ReservedValue {
        structure: Structure::InvalidationDescriptor,
        field: "G",
        value: g,
        reason: None,
    };
    assert_eq!(g(0x1, 0), invalid(0));
    assert_eq!(g(0x2, 0), invalid(0));
    assert_eq!(g(0x6, 0), invalid(0));
    assert_eq!(g(0x6, 1), invalid(1));
    assert_eq!(g(0x7, 2), invalid(2));
    assert_eq!(
        D::decode_256([0x11, 0, 0, 1]),
        Err(reserved(Structure::InvalidationDescriptor, 3, 1))
    );
}

// ---------------------------------------------------------------------------------
// Reserved bits.

#[test]
fn reserved_bits_of_a_present_root_entry_raise_0xa_legacy_0x3a_scalable() {
    let valid = [0x2_0001, 0];
    let masks = [0xffe | 0xffff << 48, u64::MAX];
    each_reserved_bit(valid, masks, |words, w, bits| {
        assert_eq!(
            RootEntry::decode(words, HAW),
            Err(reserved(Structure::RootEntry, w, bits))
        );
        assert_eq!(
            RootEntry::decode(words, HAW).unwrap_err().fault_reason(),
            Some(FaultReason::RootEntryReserved)
        );
    });
    let valid = [0x2_0001, 0x3_0001];
    let masks = [0xffe | 0xffff << 48, 0xffe | 0xffff << 48];
    each_reserved_bit(valid, masks, |words, w, bits| {
        let err = ScalableRootEntry::decode(words, HAW).unwrap_err();
        assert_eq!(err, reserved(Structure::ScalableRootEntry, w, bits));
        assert_eq!(err.fault_reason(), Some(FaultReason::SmRootEntryReserved));
        // Only the half the devfn uses is checked.
        let devfn = if w == 0 { 0x80 } else { 0x7f };
        assert!(ScalableRootEntry::decode_for(words, devfn, HAW).is_ok());
    });
    // Not present: nothing is checked.
    assert!(RootEntry::decode([u64::MAX - 1, u64::MAX], HAW).is_ok());
}

#[test]
fn reserved_bits_of_context_entries() {
    let valid = ContextEntry::second_stage(0x1000, Agaw::Bits48, 1).words();
    let masks = [0xff0 | 0xffff << 48, 0xffff_ffff_ff00_0080];
    each_reserved_bit(valid, masks, |words, w, bits| {
        let err = ContextEntry::decode(words, HAW).unwrap_err();
        assert_eq!(err, reserved(Structure::ContextEntry, w, bits));
        assert_eq!(err.fault_reason(), Some(FaultReason::ContextEntryReserved));
    });
    let valid = ScalableContextEntry {
        present: true,
        pasid_dir: PhysAddr(0x1000),
        ..Default::default()
    }
    .encode();
    let masks = [
        0x1e0 | 0xffff << 48,
        0xffff_ffff_ffe0_0000,
        u64::MAX,
        u64::MAX,
    ];
    each_reserved_bit(valid, masks, |words, w, bits| {
        let err = ScalableContextEntry::decode(words, HAW).unwrap_err();
        assert_eq!(err, reserved(Structure::ScalableContextEntry, w, bits));
        assert_eq!(
            err.fault_reason(),
            Some(FaultReason::SmContextEntryReserved)
        );
    });
}

#[test]
fn reserved_bits_of_pasid_structures() {
    each_reserved_bit([0x1001], [0xffc | 0xffff << 48], |words, w, bits| {
        let err = PasidDirEntry::decode(words[0], HAW).unwrap_err();
        assert_eq!(err, reserved(Structure::PasidDirEntry, w, bits));
        assert_eq!(err.fault_reason(), Some(FaultReason::PasidDirEntryReserved));
    });
    let valid = PasidEntry::second_stage(0x1000, Agaw::Bits48, 1).val;
    let masks = [
        0xc00 | 0xffff << 48,
        0x7f_0000,
        0xf00,
        u64::MAX,
        u64::MAX,
        u64::MAX,
        u64::MAX,
        u64::MAX,
    ];
    each_reserved_bit(valid, masks, |words, w, bits| {
        let err = PasidEntry::decode(words, HAW).unwrap_err();
        assert_eq!(err, reserved(Structure::PasidEntry, w, bits));
        assert_eq!(err.fault_reason(), Some(FaultReason::PasidEntryReserved));
    });
}

#[test]
fn reserved_bits_of_records_and_descriptors() {
    let valid = FaultRecord::new(FaultReason::ReadDenied).encode();
    each_reserved_bit(valid, [0xfff, 0xfff_0000], |words, w, bits| {
        assert_eq!(
            FaultRecord::decode(words),
            Err(reserved(Structure::FaultRecord, w, bits))
        );
    });
    // Per type: a valid descriptor and its reserved bits.
    let cases: [([u64; 2], [u64; 2]); 8] = [
        ([0x11, 0], [0xfffc_0000_0000_f1c0, u64::MAX]),
        ([0x12, 0], [0xffff_ffff_0000_f100, 0xf80]),
        ([0x3, 0], [0x000f_0000_ffe0_01f0, 0xffe]),
        ([0x4, 0], [0xffff_0000_07ff_f1e0, u64::MAX]),
        ([0x5, 0], [0xffff_f100, 0x3]),
        ([0x26, 0], [0xfff0_0000_0000_f1c0, 0xf80]),
        ([0x7, 0], [0xfff0_0000_0000_f1c0, u64::MAX]),
        ([0x8, 0], [0, 0x7fe]),
    ];
    for (valid, masks) in cases {
        assert!(InvalidationDescriptor::decode(valid).is_ok(), "{valid:x?}");
        each_reserved_bit(valid, masks, |words, w, bits| {
            let err = InvalidationDescriptor::decode(words).unwrap_err();
            assert_eq!(err, reserved(Structure::InvalidationDescriptor, w, bits));
            assert_eq!(err.fault_reason(), None);
        });
    }
}

#[test]
fn pointers_above_the_haw_are_reserved() {
    for haw in [39, 46, 48, 52] {
        let high = 1u64 << haw;
        assert!(RootEntry::decode([high | 1, 0], haw).is_err());
        assert!(RootEntry::decode([(high >> 1) | 1, 0], haw).is_ok());
        assert!(PasidDirEntry::decode(high | 1, haw).is_err());
        let ce = ScalableContextEntry {
            present: true,
            pasid_dir: PhysAddr(high),
            ..Default::default()
        };
        assert!(ScalableContextEntry::decode(ce.encode(), haw).is_err());
        assert!(RootTableAddress::decode(high, haw).is_err());
    }
}

// ---------------------------------------------------------------------------------
// Random round trips.

fn page(rng: &mut SmallRng, bits: u32) -> u64 {
    rng.r#gen::<u64>() >> (64 - bits) & !0xfff
}

#[test]
fn chain_structures_round_trip() {
    let mut rng = SmallRng::seed_from_u64(14);
    for _ in 0..2000 {
        let haw = rng.gen_range(39..=52);
        let rta = RootTableAddress {
            table: PhysAddr(page(&mut rng, haw)),
            mode: if rng.r#gen() {
                TranslationTableMode::Scalable
            } else {
                TranslationTableMode::Legacy
            },
        };
        assert_eq!(RootTableAddress::decode(rta.encode(), haw), Ok(rta));

        let re = RootEntry {
            present: rng.r#gen(),
            context_table: PhysAddr(page(&mut rng, haw)),
        };
        assert_eq!(RootEntry::decode(re.encode(), haw), Ok(re));

        let half = |rng: &mut SmallRng| ContextTablePointer {
            present: rng.r#gen(),
            table: PhysAddr(page(rng, haw)),
        };
        let sre = ScalableRootEntry {
            lower: half(&mut rng),
            upper: half(&mut rng),
        };
        assert_eq!(ScalableRootEntry::decode(sre.encode(), haw), Ok(sre));

        let aw = [Agaw::Bits39, Agaw::Bits48, Agaw::Bits57][rng.gen_range(0..3)];
        let tt = TranslationType::from_code(rng.gen_range(0..3)).unwrap();
        let ce = ContextEntry::default()
            .with_present(true)
            .with_fpd(rng.r#gen())
            .with_translation_type(tt)
            .with_ssptptr(page(&mut rng, haw))
            .with_aw(aw)
            .with_did(rng.r#gen());
        let d = ContextEntry::decode(ce.words(), haw).unwrap();
        assert_eq!(d, ce);
        assert_eq!(TranslationType::from_code(d.translation_type()), Some(tt));
        assert_eq!(d.aw(), Some(aw));

        let sce = ScalableContextEntry {
            present: rng.r#gen(),
            fpd: rng.r#gen(),
            dte: rng.r#gen(),
            paside: rng.r#gen(),
            pre: rng.r#gen(),
            pdts: rng.gen_range(0..8),
            pasid_dir: PhysAddr(page(&mut rng, haw)),
            rid_pasid: rng.gen_range(0..1 << 20),
            rid_priv: rng.r#gen(),
        };
        assert_eq!(ScalableContextEntry::decode(sce.encode(), haw), Ok(sce));

        let de = PasidDirEntry {
            present: rng.r#gen(),
            fpd: rng.r#gen(),
            table: PhysAddr(page(&mut rng, haw)),
        };
        assert_eq!(PasidDirEntry::decode(de.encode(), haw), Ok(de));

        let pgtt = Pgtt::from_code(rng.gen_range(1..=4)).unwrap();
        let (ss, fs) = (page(&mut rng, haw), page(&mut rng, haw));
        let pe = PasidEntry::default()
            .with_present(true)
            .with_fpd(rng.r#gen())
            .with_aw(aw)
            .with_pgtt(pgtt)
            .with_ssade(rng.r#gen())
            .with_ssptptr(ss)
            .with_did(rng.r#gen())
            .with_pwsnp(rng.r#gen())
            .with_pgsnp(rng.r#gen())
            .with_sre(rng.r#gen())
            .with_five_level(rng.r#gen())
            .with_wpe(rng.r#gen())
            .with_eafe(rng.r#gen())
            .with_fsptptr(fs);
        let d = PasidEntry::decode(pe.val, haw).unwrap();
        assert_eq!(d, pe);
        assert_eq!(Pgtt::from_code(d.pgtt()), Some(pgtt));
        assert_eq!((d.ssptptr(), d.fsptptr(), d.aw()), (ss, fs, Some(aw)));
    }
}

#[test]
fn records_and_descriptors_round_trip() {
    use InvalidationDescriptor as D;
    let mut rng = SmallRng::seed_from_u64(8);
    let reasons: Vec<FaultReason> = (0..=255).filter_map(FaultReason::from_code).collect();
    for _ in 0..2000 {
        let rec = FaultRecord {
            valid: rng.r#gen(),
            reason: reasons[rng.gen_range(0..reasons.len())],
            source: SourceId(rng.r#gen()),
            address: Iova(page(&mut rng, 64)),
            pasid: rng.r#gen::<bool>().then(|| rng.gen_range(0..1 << 20)),
            read: rng.r#gen(),
            t2: rng.r#gen(),
            privileged: rng.r#gen(),
            execute: rng.r#gen(),
            address_type: [
                AddressType::Untranslated,
                AddressType::TranslationRequest,
                AddressType::Translated,
            ][rng.gen_range(0..3)],
        };
        assert_eq!(FaultRecord::decode(rec.encode()), Ok(rec));

        let did: u16 = rng.r#gen();
        let pasid = rng.gen_range(0..1u32 << 20);
        let addr = Iova(page(&mut rng, 64));
        let am = rng.gen_range(0..64);
        let d = match rng.gen_range(0..8) {
            0 => D::ContextCache(ContextCacheScope::Device {
                did,
                sid: SourceId(rng.r#gen()),
                function_mask: rng.gen_range(0..4),
            }),
            1 => D::Iotlb {
                scope: IotlbScope::Page {
                    did,
                    addr,
                    am,
                    ih: rng.r#gen(),
                },
                drain_reads: rng.r#gen(),
                drain_writes: rng.r#gen(),
            },
            2 => D::DeviceTlb {
                pfsid: SourceId(rng.r#gen()),
                max_pending: rng.gen_range(0..32),
                sid: SourceId(rng.r#gen()),
                size: rng.r#gen(),
                addr,
            },
            3 => D::InterruptEntryCache(InterruptCacheScope::Index {
                index: rng.r#gen(),
                mask: rng.gen_range(0..32),
            }),
            4 => D::Wait {
                interrupt: rng.r#gen(),
                status: Some((PhysAddr(rng.r#gen::<u64>() & !3), rng.r#gen())),
                fence: rng.r#gen(),
                page_drain: rng.r#gen(),
            },
            5 => D::PasidIotlb {
                did,
                pasid,
                scope: PasidIotlbScope::Page {
                    addr,
                    am,
                    ih: rng.r#gen(),
                },
            },
            6 => D::PasidCache(PasidCacheScope::Pasid { did, pasid }),
            _ => D::PasidDeviceTlb {
                pfsid: SourceId(rng.r#gen()),
                max_pending: rng.gen_range(0..32),
                sid: SourceId(rng.r#gen()),
                pasid,
                global: rng.r#gen(),
                size: rng.r#gen(),
                addr,
            },
        };
        assert_eq!(D::decode(d.encode()), Ok(d));
        assert_eq!(D::decode_256(d.encode_256()), Ok(d));
    }
}
