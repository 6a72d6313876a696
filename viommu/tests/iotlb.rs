//! `Iotlb` semantics, single-threaded: exact entries, keys kept apart, eviction, fill
//! tickets, and every invalidation method against an independent model of what it
//! selects (leaf semantics included).

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use viommu::iotlb::{Iotlb, IotlbEntry, IotlbKey, PageRange, PasidMatch, Selector};
use viommu::{Access, Perms};

fn entry(pa: u64, size_shift: u8) -> IotlbEntry {
    IotlbEntry {
        pa,
        size_shift,
        perms: Perms::RW,
    }
}

fn fill(tlb: &Iotlb, key: IotlbKey, e: IotlbEntry) -> bool {
    let t = tlb.begin_fill();
    tlb.insert(t, &key, e)
}

#[test]
fn a_hit_returns_exactly_what_was_inserted_for_exactly_that_key() {
    let tlb = Iotlb::new(1 << 12);
    let key = IotlbKey::new(0x0108, Some(5), 42, 0x7fff_f000);
    let e = IotlbEntry {
        pa: 0xf_ffff_f000,
        size_shift: 12,
        perms: Perms::READ | Perms::PRIV_WRITE | Perms::CLEAN,
    };
    assert_eq!(tlb.lookup(&key), None);
    assert!(fill(&tlb, key, e));
    assert_eq!(tlb.lookup(&key), Some(e));
    assert_eq!(
        tlb.lookup(&key).unwrap().translate(0x7fff_fabc),
        0xf_ffff_fabc
    );
    // Every field of the key matters; no PASID is not PASID 0.
    for other in [
        IotlbKey {
            source: 0x0109,
            ..key
        },
        IotlbKey { pasid: None, ..key },
        IotlbKey {
            pasid: Some(0),
            ..key
        },
        IotlbKey {
            pasid: Some(u32::MAX),
            ..key
        },
        IotlbKey { tag: 43, ..key },
        IotlbKey {
            page: key.page + 1,
            ..key
        },
        IotlbKey {
            page: key.page | 1 << 51,
            ..key
        },
    ] {
        assert_eq!(tlb.lookup(&other), None, "{other:?}");
    }
    // The extremes of every field survive the packing.
    let top = IotlbKey {
        source: u32::MAX,
        pasid: Some(u32::MAX),
        tag: u32::MAX,
        page: u64::MAX >> 12,
    };
    let e = IotlbEntry {
        pa: !0xfff,
        size_shift: 63,
        perms: Perms::all(),
    };
    assert!(fill(&tlb, top, e));
    assert_eq!(tlb.lookup(&top), Some(e));
    assert_eq!(tlb.len(), 2);
    // The low 12 bits of the output are not part of the entry; leaf sizes are at
    // least a page.
    let k = IotlbKey::new(1, None, 1, 0x5000);
    assert!(fill(&tlb, k, entry(0x9123, 3)));
    assert_eq!(tlb.lookup(&k), Some(entry(0x9000, 12)));
}

#[test]
fn a_full_slot_evicts_and_a_small_cache_stays_small() {
    let tlb = Iotlb::new(1);
    assert_eq!(tlb.capacity(), 1);
    let (a, b) = (IotlbKey::new(1, None, 1, 0), IotlbKey::new(2, None, 1, 0));
    assert!(fill(&tlb, a, entry(0x1000, 12)));
    assert!(fill(&tlb, b, entry(0x2000, 12)));
    assert_eq!(
        (tlb.lookup(&a), tlb.lookup(&b)),
        (None, Some(entry(0x2000, 12)))
    );
    assert_eq!(tlb.len(), 1);
    // Consecutive pages of one context never conflict up to the capacity.
    let tlb = Iotlb::new(256);
    for page in 0..256 {
        assert!(fill(
            &tlb,
            IotlbKey::new(3, Some(1), 9, page << 12),
            entry(page << 12, 12)
        ));
    }
    assert_eq!(tlb.len(), 256);
}

#[test]
fn a_fill_across_an_invalidation_is_not_cached() {
    let tlb = Iotlb::new(64);
    let key = IotlbKey::new(1, None, 1, 0x1000);
    // Even an invalidation that selects nothing withdraws the fills in flight across it.
    let t = tlb.begin_fill();
    assert_eq!(tlb.invalidate_tag(77), 0);
    assert!(!tlb.insert(t, &key, entry(0x1000, 12)));
    assert_eq!(tlb.lookup(&key), None);
    assert!(tlb.is_empty());
    // A ticket belongs to one cache.
    let other = Iotlb::new(64);
    let t = other.begin_fill();
    assert!(!tlb.insert(t, &key, entry(0x1000, 12)));
    assert!(tlb.is_empty());
}

#[test]
fn page_ranges_and_permissions_are_exact() {
    assert_eq!(PageRange::pages(5, 0), PageRange::pages(5, 1));
    assert_eq!(
        (
            PageRange::pages(5, 3).first(),
            PageRange::pages(5, 3).last()
        ),
        (5, 7)
    );
    assert_eq!(PageRange::pages(u64::MAX, 9).last(), u64::MAX);
    assert_eq!(PageRange::bytes(0x1000, 0x1000), PageRange::pages(1, 1));
    assert_eq!(PageRange::bytes(0x1000, 0x1001), PageRange::pages(1, 2));
    assert_eq!(PageRange::bytes(0x1000, 0), PageRange::pages(1, 1));
    assert_eq!(PageRange::bytes(u64::MAX, u64::MAX).last(), u64::MAX >> 12);
    assert_eq!(
        PageRange::aligned(0x1234_5000, 9),
        PageRange::pages(0x12200, 512)
    );
    assert_eq!(PageRange::aligned(0x1234_5000, 64), PageRange::ALL);
    // A leaf meets a range when any of its pages is in it.
    let r = PageRange::pages(0x200, 1);
    assert!(r.meets_leaf(0x3ff, 21) && !r.meets_leaf(0x400, 21) && !r.meets_leaf(0x1ff, 12));
    assert!(r.meets_leaf(0x3_ffff, 30) && r.meets_leaf(0, 63));

    let user = Access::READ;
    let priv_write = Access::WRITE.privileged();
    let fetch = Access {
        exec: true,
        ..Access::READ
    };
    let cases = [
        (Perms::READ, [true, false, false]),
        (Perms::RW, [true, true, false]),
        (Perms::RW.privileged_only(), [false, true, false]),
        (Perms::READ | Perms::PRIV_WRITE, [true, true, false]),
        (Perms::RW | Perms::CLEAN, [true, false, false]),
        (Perms::READ | Perms::USER_EXEC, [true, false, true]),
        (Perms::READ | Perms::PRIV_EXEC, [true, false, false]),
        (Perms::WRITE, [false, true, false]),
    ];
    for (perms, want) in cases {
        let got = [
            perms.allows(user),
            perms.allows(priv_write),
            perms.allows(fetch),
        ];
        assert_eq!(got, want, "{perms:?}");
    }
}

/// One invalidation method and what it should select, restated independently.
#[derive(Debug, Clone, Copy)]
enum Inv {
    All,
    Source(u32),
    SourceBlock(u32, u32),
    SourcePasid(u32, u32),
    SourceRange(u32, PasidMatch, u64, u64),
    Tag(u32),
    TagMasked(u32, u32),
    TagRange(u32, u64, u64),
    TagPasid(u32, u32),
    TagPasidRange(u32, u32, u64, u64),
    General(u32, u32, PasidMatch, u64, u64),
}

impl Inv {
    fn run(self, tlb: &Iotlb) -> usize {
        let r = |first, count| PageRange::pages(first, count);
        match self {
            Inv::All => tlb.invalidate_all(),
            Inv::Source(s) => tlb.invalidate_source(s),
            Inv::SourceBlock(s, b) => tlb.invalidate_source_block(s, b),
            Inv::SourcePasid(s, p) => tlb.invalidate_source_pasid(s, p),
            Inv::SourceRange(s, p, f, n) => tlb.invalidate_source_range(s, p, r(f, n)),
            Inv::Tag(t) => tlb.invalidate_tag(t),
            Inv::TagMasked(t, m) => tlb.invalidate_tag_masked(t, m),
            Inv::TagRange(t, f, n) => tlb.invalidate_tag_range(t, r(f, n)),
            Inv::TagPasid(t, p) => tlb.invalidate_tag_pasid(t, p),
            Inv::TagPasidRange(t, p, f, n) => tlb.invalidate_tag_pasid_range(t, p, r(f, n)),
            Inv::General(s, t, p, f, n) => {
                tlb.invalidate(&Selector::ALL.source(s).tag(t).pasid(p).pages(r(f, n)))
            }
        }
    }

    /// Whether the entry cached for `key` from a leaf of `1 << shift` bytes goes.
    fn selects(self, key: &IotlbKey, shift: u8) -> bool {
        let leaf_pages = 1u64 << (shift - 12);
        let leaf_first = key.page / leaf_pages * leaf_pages;
        let meets = |f: u64, n: u64| leaf_first < f + n && f < leaf_first + leaf_pages;
        let pasid = |m: PasidMatch| match m {
            PasidMatch::Any => true,
            PasidMatch::Without => key.pasid.is_none(),
            PasidMatch::Is(p) => key.pasid == Some(p),
        };
        match self {
            Inv::All => true,
            Inv::Source(s) => key.source == s,
            Inv::SourceBlock(s, b) => b >= 32 || key.source >> b == s >> b,
            Inv::SourcePasid(s, p) => key.source == s && key.pasid == Some(p),
            Inv::SourceRange(s, p, f, n) => key.source == s && pasid(p) && meets(f, n),
            Inv::Tag(t) => key.tag == t,
            Inv::TagMasked(t, m) => key.tag & m == t & m,
            Inv::TagRange(t, f, n) => key.tag == t && meets(f, n),
            Inv::TagPasid(t, p) => key.tag == t && key.pasid == Some(p),
            Inv::TagPasidRange(t, p, f, n) => key.tag == t && key.pasid == Some(p) && meets(f, n),
            Inv::General(s, t, p, f, n) => {
                key.source == s && key.tag == t && pasid(p) && meets(f, n)
            }
        }
    }
}

#[test]
fn every_invalidation_removes_exactly_what_it_selects() {
    let mut rng = SmallRng::seed_from_u64(0x10b);
    let tlb = Iotlb::new(1 << 10);
    let pasids = [None, Some(0), Some(1), Some(0xf_ffff)];
    let tags = [0, 1, 2 << 16 | 1, 2 << 16 | 2, 3 << 16 | 1];
    let pasid_match = |rng: &mut SmallRng| match rng.gen_range(0..3) {
        0 => PasidMatch::Any,
        1 => PasidMatch::Without,
        _ => PasidMatch::Is(pasids[rng.gen_range(1..4)].unwrap()),
    };
    let mut removed_total = 0;
    for round in 0..2_000 {
        // Fill a few entries: small key spaces so that selectors hit; pages near leaf
        // boundaries; 4K, 2M and 1G leaves.
        for _ in 0..rng.gen_range(0..24) {
            let shift = [12u8, 12, 21, 30][rng.gen_range(0..4)];
            let page = [0u64, 1, 0x1ff, 0x200, 0x201, 0x3_ffff, 0x4_0000][rng.gen_range(0..7)]
                + rng.gen_range(0..3);
            let key = IotlbKey {
                source: rng.gen_range(0..6),
                pasid: pasids[rng.gen_range(0..4)],
                tag: tags[rng.gen_range(0..5)],
                page,
            };
            fill(&tlb, key, entry(page << 12, shift));
        }
        let (s, t) = (rng.gen_range(0..6), tags[rng.gen_range(0..5)]);
        let p = pasids[rng.gen_range(1..4)].unwrap();
        let (f, n) = (
            [0u64, 1, 0x1ff, 0x200, 0x3_ffff, 0x4_0000][rng.gen_range(0..6)],
            [1u64, 2, 0x200, 0x4_0000][rng.gen_range(0..4)],
        );
        let inv = match rng.gen_range(0..11) {
            0 if round % 10 == 0 => Inv::All,
            0 | 1 => Inv::Source(s),
            2 => Inv::SourceBlock(s, rng.gen_range(0..3) * 16 / 2),
            3 => Inv::SourcePasid(s, p),
            4 => Inv::SourceRange(s, pasid_match(&mut rng), f, n),
            5 => Inv::Tag(t),
            6 => Inv::TagMasked(t, 0xffff_0000),
            7 => Inv::TagRange(t, f, n),
            8 => Inv::TagPasid(t, p),
            9 => Inv::TagPasidRange(t, p, f, n),
            _ => Inv::General(s, t, pasid_match(&mut rng), f, n),
        };
        let before = tlb.entries();
        let (gone, kept): (Vec<_>, Vec<_>) = before
            .iter()
            .partition(|(k, e)| inv.selects(k, e.size_shift));
        assert_eq!(inv.run(&tlb), gone.len(), "{inv:?}");
        let mut after = tlb.entries();
        let mut kept: Vec<_> = kept.into_iter().copied().collect();
        after.sort_by_key(|(k, _)| (k.source, k.pasid, k.tag, k.page));
        kept.sort_by_key(|(k, _)| (k.source, k.pasid, k.tag, k.page));
        assert_eq!(after, kept, "{inv:?}");
        for (k, _) in &gone {
            assert_eq!(tlb.lookup(k), None);
        }
        for (k, e) in &kept {
            assert_eq!(tlb.lookup(k), Some(*e));
        }
        removed_total += gone.len();
    }
    // The model was exercised, not vacuous.
    assert!(removed_total > 5_000, "{removed_total}");
}
