//! IOTLB coherence under stress: DMA threads look up, and on a miss walk a shared guest
//! table and insert, while the guest changes its table and invalidates. After each
//! invalidation returns, a lookup gives the new truth (or something newer) or misses.
//! Time-bounded (about a second), checked against the guest's model of its own table.
#![cfg(not(loom))]

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use viommu::Perms;
use viommu::iotlb::{Iotlb, IotlbEntry, IotlbKey, PageRange};

/// Leaves of 8 pages (32 KiB), so range invalidations of one page must remove the
/// leaf's other cached pages too.
const LEAVES: u64 = 64;
const LEAF_SHIFT: u8 = 15;
const PAGES: u64 = 1 << (LEAF_SHIFT - 12);
const TAG: u32 = 5;

/// A leaf's state is a version; it is mapped, to PA `version << 20`, unless the
/// version is a multiple of 3.
fn mapped(version: u64) -> bool {
    !version.is_multiple_of(3)
}

fn key(page: u64) -> IotlbKey {
    // Two devices in one domain, each with half of the leaves.
    IotlbKey::new((page / PAGES % 2) as u32, None, TAG, page << 12)
}

struct Guest {
    /// The table: each leaf's current version.
    table: Vec<AtomicU64>,
    /// Each leaf's version as of the last invalidation that completed.
    settled: Vec<AtomicU64>,
}

#[test]
fn lookups_after_an_invalidation_never_return_what_it_removed() {
    let tlb = Iotlb::new(256); // smaller than the 512 pages: evictions too
    let guest = Guest {
        table: (0..LEAVES).map(|_| AtomicU64::new(1)).collect(),
        settled: (0..LEAVES).map(|_| AtomicU64::new(1)).collect(),
    };
    let stop = AtomicBool::new(false);
    let (hits, fills, invalidations) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_millis(1000);
    std::thread::scope(|s| {
        for t in 0..3u64 {
            let (tlb, guest, stop, hits, fills) = (&tlb, &guest, &stop, &hits, &fills);
            s.spawn(move || {
                let mut rng = SmallRng::seed_from_u64(t);
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..256 {
                        let page = rng.gen_range(0..LEAVES * PAGES);
                        let leaf = (page / PAGES) as usize;
                        // What every lookup from now on must at least know.
                        let floor = guest.settled[leaf].load(Ordering::Acquire);
                        match tlb.lookup(&key(page)) {
                            Some(e) => {
                                let version = e.pa >> 20;
                                assert!(
                                    version >= floor && mapped(version),
                                    "page {page:#x}: cached version {version}, settled {floor}"
                                );
                                assert_eq!((e.pa >> 12) % PAGES, page % PAGES);
                                assert_eq!(e.size_shift, LEAF_SHIFT);
                                hits.fetch_add(1, Ordering::Relaxed);
                            }
                            None => {
                                let ticket = tlb.begin_fill();
                                let version = guest.table[leaf].load(Ordering::Acquire);
                                if mapped(version) {
                                    let leaf_pa = version << 20;
                                    let e = IotlbEntry::piece_of_leaf(
                                        leaf_pa,
                                        LEAF_SHIFT,
                                        page << 12,
                                        Perms::RW,
                                    );
                                    if tlb.insert(ticket, &key(page), e) {
                                        fills.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                            }
                        }
                    }
                }
            });
        }
        let (tlb, guest, stop, invalidations) = (&tlb, &guest, &stop, &invalidations);
        s.spawn(move || {
            let mut rng = SmallRng::seed_from_u64(99);
            let mut round = 0u64;
            while Instant::now() < deadline {
                round += 1;
                let leaf = rng.gen_range(0..LEAVES);
                let version = guest.table[leaf as usize].load(Ordering::Relaxed) + 1;
                guest.table[leaf as usize].store(version, Ordering::Release);
                // One page of the leaf, or wider invalidations now and then.
                let page = leaf * PAGES + rng.gen_range(0..PAGES);
                match round % 16 {
                    0 => tlb.invalidate_all(),
                    1 => tlb.invalidate_source((leaf % 2) as u32),
                    2 => tlb.invalidate_tag(TAG),
                    3 => tlb.invalidate_tag_range(TAG, PageRange::aligned(page << 12, 3)),
                    _ => tlb.invalidate_tag_range(TAG, PageRange::pages(page, 1)),
                };
                guest.settled[leaf as usize].store(version, Ordering::Release);
                invalidations.fetch_add(1, Ordering::Relaxed);
            }
            stop.store(true, Ordering::Relaxed);
        });
    });
    let (hits, fills, invalidations) = (
        hits.into_inner(),
        fills.into_inner(),
        invalidations.into_inner(),
    );
    println!("{hits} hits, {fills} fills, {invalidations} invalidations");
    // The run exercised what it checks.
    assert!(hits > 1000 && fills > 100 && invalidations > 100);
}
