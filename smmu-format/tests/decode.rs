//! Decoding: every encoding round-trips, and foreign descriptors are classified as a
//! hardware walker would (docs/formats.md §3.3 decoder).

use pgtable_core::{Entry, Fault, Format, Prot};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use smmu_format::descriptor::{BLOCK_NT, CONTIGUOUS};
use smmu_format::{Arm, ArmConfig, ArmS1, ArmS2, Stage};

fn s1(g: u64, ias: u32, oas: u32) -> ArmS1 {
    ArmS1::new(ArmConfig::new(g, ias, oas)).unwrap()
}

fn s2(g: u64, ias: u32, oas: u32) -> ArmS2 {
    ArmS2::new(ArmConfig::new(g, ias, oas)).unwrap()
}

/// Random leaves and tables at every level, every prot, with and without the hint.
fn round_trip<S: Stage>(fmt: Arm<S>, rng: &mut SmallRng) {
    let geo = fmt.geometry();
    for level in 0..geo.levels {
        let span = geo.entry_span(level);
        for _ in 0..200 {
            let pa = rng.gen_range(0..(1u64 << geo.oas)) & !(span - 1);
            let prot = Prot::from_bits_truncate(rng.gen_range(0..64)) | Prot::READ;
            let prot = if rng.gen_bool(0.3) {
                (prot - Prot::READ) | Prot::WRITE
            } else {
                prot
            };
            if geo.leaf_allowed(level) {
                let raw = fmt.encode_leaf(pa, level, prot);
                let want = Entry::Leaf {
                    pa,
                    size: span,
                    prot: fmt.effective_prot(prot),
                };
                assert_eq!(
                    fmt.decode(raw, level),
                    want,
                    "{fmt:?} level {level} {raw:#x}"
                );
                assert_eq!(fmt.decode(raw | CONTIGUOUS, level), want);
                assert_ne!(raw, 0);
            }
            if level > 0 {
                let tpa = rng.gen_range(0..(1u64 << geo.oas.max(48))) & !(geo.granule() - 1);
                let tpa = tpa & ((1 << geo.oas.max(48)) - 1);
                let raw = fmt.encode_table(tpa, level);
                assert_eq!(
                    fmt.decode(raw, level),
                    Entry::Table(tpa),
                    "{fmt:?} {raw:#x}"
                );
            }
        }
        assert_eq!(fmt.decode(0, level), Entry::Empty);
    }
}

#[test]
fn encodings_round_trip() {
    let mut rng = SmallRng::seed_from_u64(4);
    for g in [4096, 16384, 65536] {
        for (ias, oas) in [(32, 32), (40, 44), (48, 48)] {
            round_trip(s1(g, ias, oas), &mut rng);
            round_trip(s2(g, ias, oas), &mut rng);
        }
    }
    for (ias, oas) in [(48, 52), (52, 52)] {
        round_trip(s1(65536, ias, oas), &mut rng);
        round_trip(s2(65536, ias, oas), &mut rng);
    }
}

#[test]
fn invalid_descriptors_are_empty_whatever_else_is_set() {
    let f = s1(4096, 48, 48);
    for raw in [0u64, 2, u64::MAX - 1, 0x8_0000_0F46] {
        for level in 0..4 {
            assert_eq!(f.decode(raw, level), Entry::Empty);
        }
    }
}

#[test]
fn reserved_types_are_bad_types() {
    // Level 3 with type 0b01.
    let f = s1(4096, 48, 48);
    let raw = 0x8_0000_0F45;
    assert_eq!(f.decode(raw, 0), Entry::Fault(Fault::BadType { raw }));
    // 4K: blocks at L1 and L2 only, not L0 (needs LPA2).
    assert!(matches!(
        f.decode(0x4000_0000 | 0xF45, 2),
        Entry::Leaf { .. }
    ));
    let raw = 0x80_0000_0000 | 0xF45;
    assert_eq!(f.decode(raw, 3), Entry::Fault(Fault::BadType { raw }));
    // 16K: only L2 blocks; an L1 block (64G) is a fault, even where the level exists.
    let f = s1(16384, 47, 48);
    let raw = (1u64 << 36) | 0xF45;
    assert_eq!(f.decode(raw, 2), Entry::Fault(Fault::BadType { raw }));
    assert!(matches!(f.decode((1 << 25) | 0xF45, 1), Entry::Leaf { .. }));
    // 64K: an L1 block (4T) only with a 52-bit output.
    let raw = (1u64 << 42) | 0xF45;
    assert_eq!(
        s2(65536, 48, 48).decode(raw, 2),
        Entry::Fault(Fault::BadType { raw })
    );
    assert!(matches!(
        s2(65536, 48, 52).decode(raw, 2),
        Entry::Leaf { .. }
    ));
}

#[test]
fn outputs_beyond_oas_are_address_size_faults() {
    let f = s1(4096, 40, 40);
    let raw = (1u64 << 40) | 0xF47;
    assert_eq!(
        f.decode(raw, 0),
        Entry::Fault(Fault::AddressSize { pa: 1 << 40 })
    );
    assert!(matches!(
        f.decode(((1u64 << 40) - 0x1000) | 0xF47, 0),
        Entry::Leaf { .. }
    ));
    // 64K: bits 15:12 are OA[51:48], beyond a 48-bit output.
    let f = s2(65536, 48, 48);
    let raw = 0x1000 | 0x7FF;
    assert_eq!(
        f.decode(raw, 0),
        Entry::Fault(Fault::AddressSize { pa: 1 << 48 })
    );
    // Table addresses: the same packed bits are beyond what the field can hold then.
    let raw = 0x5001_0003 | 0xF000;
    assert_eq!(
        f.decode(raw, 1),
        Entry::Fault(Fault::AddressSize {
            pa: 0xF_0000_5001_0000
        })
    );
    assert_eq!(
        s2(65536, 48, 52).decode(raw, 1),
        Entry::Table(0xF_0000_5001_0000)
    );
}

/// Table pages live where the memory backend puts them (host virtual addresses with
/// host memory), so a table address above a small `oas` is still followed.
#[test]
fn table_addresses_are_not_limited_by_oas() {
    let f = s1(4096, 32, 32);
    assert_eq!(
        f.decode(0x7FFF_1234_5003, 1),
        Entry::Table(0x7FFF_1234_5000)
    );
}

#[test]
fn reserved_bits() {
    let f = s1(4096, 48, 48);
    // Output bits below a 2M block's size.
    let raw = 0x4000_0000 | 0x1000 | 0xF45;
    assert_eq!(
        f.decode(raw, 1),
        Entry::Fault(Fault::Reserved { raw, bits: 0x1000 })
    );
    // ... except nT (bit 16), a hint.
    let raw = 0x4000_0000 | BLOCK_NT | 0xF45;
    assert_eq!(
        f.decode(raw, 1),
        Entry::Leaf {
            pa: 0x4000_0000,
            size: 0x20_0000,
            prot: Prot::RW | Prot::CACHE
        }
    );
    // Bits 49:48 (OA only under LPA2).
    let raw = (1u64 << 48) | 0x8_0000_0F47;
    assert_eq!(
        f.decode(raw, 0),
        Entry::Fault(Fault::Reserved { raw, bits: 1 << 48 })
    );
    let raw = (1u64 << 49) | 0x3000_1003;
    assert_eq!(
        f.decode(raw, 2),
        Entry::Fault(Fault::Reserved { raw, bits: 1 << 49 })
    );
    // Software, ignored and hierarchical bits do not matter.
    let raw = (0xFu64 << 55) | 0x3000_1003 | 0xFFC;
    assert_eq!(f.decode(raw, 2), Entry::Table(0x3000_1000));
}

#[test]
fn foreign_permissions() {
    let f = s1(4096, 48, 48);
    // AP = 0b10 (privileged read-only), XN only (bit 54), device memory.
    let raw = 0x8_0000_0000 | 0x80 | (2 << 2) | 0x400 | (1 << 54) | 3;
    let want = Prot::READ | Prot::PRIV | Prot::NOEXEC | Prot::MMIO;
    assert_eq!(
        f.decode(raw, 0),
        Entry::Leaf {
            pa: 0x8_0000_0000,
            size: 0x1000,
            prot: want
        }
    );
    // Stage 2: S2AP = 00 grants nothing; write-only is expressible.
    let g = s2(4096, 48, 48);
    assert_eq!(
        g.decode(0x8_0000_0403 | (5 << 2), 0),
        Entry::Leaf {
            pa: 0x8_0000_0000,
            size: 0x1000,
            prot: Prot::empty()
        }
    );
    let raw = g.encode_leaf(0x8_0000_0000, 0, Prot::WRITE);
    assert_eq!(
        g.decode(raw, 0),
        Entry::Leaf {
            pa: 0x8_0000_0000,
            size: 0x1000,
            prot: Prot::WRITE
        }
    );
}
