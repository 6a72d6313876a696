//! The depot is bounded: cached space stays bounded however many ranges are freed, and
//! the excess goes back to the tree (counted as trims).

use iova_cache::{IovaDomain, IovaOptions};

const LIMIT: u64 = 0xF_FFFF;
/// Entries per magazine (as in Linux).
const MAG: u64 = 127;

/// Every CPU the allocator keeps magazines for.
fn possible_cpus() -> u64 {
    // SAFETY: sysconf takes an integer selector and touches no memory of ours.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
    u64::try_from(n).unwrap()
}

#[test]
fn cached_pages_stay_bounded_and_trims_grow() {
    let depot_limit = 2u64;
    let opts = IovaOptions {
        depot_limit: depot_limit as u32,
        ..IovaOptions::default()
    };
    let d = IovaDomain::with_options(&opts).unwrap();
    let cpus = possible_cpus();
    let n = 20_000;
    let pfns: Vec<u64> = (0..n)
        .map(|_| d.alloc_fast(1, LIMIT, false).unwrap())
        .collect();
    let mut last_trims = 0;
    for (i, &p) in pfns.iter().enumerate() {
        d.free_fast(p, 1).unwrap();
        if i % 1000 == 999 {
            let s = d.stats();
            // Two magazines per CPU (the thread may have run on any of them) plus the depot.
            let bound = 2 * MAG * cpus + depot_limit * MAG;
            assert!(s.cached_pfns <= bound, "{s:?}");
            assert!(s.depot_magazines <= depot_limit, "{s:?}");
            assert!(s.trims >= last_trims);
            last_trims = s.trims;
            // Exact accounting: every cached single page is still allocated in the tree,
            // every trimmed one is not.
            assert_eq!(s.live_ranges, (n - i as u64 - 1) + s.cached_pfns, "{s:?}");
        }
    }
    let s = d.stats();
    // Every freed page is either still cached or went back to the tree in a trimmed
    // magazine (one thread, so no pair was ever busy).
    assert_eq!(s.trims * MAG + s.cached_pfns, n, "{s:?}");
    assert!(
        s.trims > 0 && s.cached_pfns <= 2 * MAG * cpus + depot_limit * MAG,
        "{s:?}"
    );
    // Trimmed ranges are really free: a 32-bit window's worth can be allocated again.
    d.flush_caches();
    assert_eq!(d.stats().live_ranges, 0);
}

#[test]
fn a_depot_refill_respects_the_callers_limit() {
    // Fill this CPU's magazines and the depot with ranges above 4 GiB, drain the
    // magazines with high-limit allocations, then ask below 4 GiB: the magazine taken
    // from the depot holds nothing low enough, so the range must come from the tree.
    let d = IovaDomain::new(4096, 1, false).unwrap();
    let high: Vec<u64> = (0..3 * MAG)
        .map(|_| d.alloc_fast(1, u64::MAX, false).unwrap())
        .collect();
    assert!(high.iter().all(|&p| p > LIMIT));
    for &p in &high {
        d.free_fast(p, 1).unwrap();
    }
    for _ in 0..2 * MAG {
        assert!(d.alloc_fast(1, u64::MAX, false).unwrap() > LIMIT);
    }
    for _ in 0..8 {
        let low = d.alloc_fast(1, LIMIT, false).unwrap();
        assert!(low <= LIMIT, "{low:#x} is above the limit");
    }
}

#[test]
fn mixed_limits_share_one_magazine() {
    // Low and high ranges freed into the same magazine: a low-limit caller finds the
    // low ones anywhere in it, not only at the top.
    let d = IovaDomain::new(4096, 1, false).unwrap();
    let low = d.alloc_fast(1, LIMIT, false).unwrap();
    let highs: Vec<u64> = (0..10)
        .map(|_| d.alloc_fast(1, u64::MAX, false).unwrap())
        .collect();
    d.free_fast(low, 1).unwrap();
    for &h in &highs {
        d.free_fast(h, 1).unwrap();
    }
    let before = d.stats();
    assert_eq!(d.alloc_fast(1, LIMIT, false), Some(low));
    let after = d.stats();
    // On one CPU (almost always, with no other load) that was a cache hit.
    assert!(after.cache_hits + after.cache_misses > before.cache_hits + before.cache_misses);
}
