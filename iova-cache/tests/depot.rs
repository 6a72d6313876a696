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

/// Pins the calling thread to the CPU it runs on, so that one magazine pair serves
/// every call; false if the affinity cannot be set.
fn pin_to_this_cpu() -> bool {
    // SAFETY: sched_getcpu has no preconditions.
    let Ok(cpu) = usize::try_from(unsafe { libc::sched_getcpu() }) else {
        return false;
    };
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is a CPU number the kernel gave, below CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of that size; pid 0 is this thread.
    unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) == 0 }
}

/// Allocates `n` ranges of 32 pages and frees them all; returns the misses and trims
/// the round added.
fn round(d: &IovaDomain, n: usize) -> (u64, u64) {
    let before = d.stats();
    let pfns: Vec<u64> = (0..n)
        .map(|_| d.alloc_fast(32, u64::MAX, false).unwrap())
        .collect();
    for p in pfns {
        d.free_fast(p, 32).unwrap();
    }
    let after = d.stats();
    (
        after.cache_misses - before.cache_misses,
        after.trims - before.trims,
    )
}

#[test]
fn the_default_depot_grows_to_hold_a_burst_whole() {
    if !pin_to_this_cpu() {
        eprintln!("cannot pin the thread; skipped");
        return;
    }
    // 2048 ranges of one class: two magazines on the CPU (the loaded one left with 16
    // ranges, the previous one full) and 15 pushed to the depot.
    const N: usize = 2048;
    let pushed = (N as u64 - 2 * MAG).div_ceil(MAG);
    let on_cpu = N as u64 - pushed * MAG;
    assert_eq!((pushed, on_cpu), (15, 143));

    // Default options: the first round misses everything, and that demand grows the
    // depot past its floor at the first push that finds it full, so every later round
    // is served from the caches alone.
    let d = IovaDomain::new(4096, 1, false).unwrap();
    assert_eq!(round(&d, N), (N as u64, 0));
    for _ in 0..3 {
        assert_eq!(round(&d, N), (0, 0));
    }
    assert_eq!(d.stats().depot_magazines, pushed);

    // An explicit cap of 4 magazines (the fixed default of earlier versions on 2 CPUs)
    // keeps 4 of the 15 and trims the rest, every round.
    let opts = IovaOptions {
        depot_limit: 4,
        ..IovaOptions::default()
    };
    let d = IovaDomain::with_options(&opts).unwrap();
    assert_eq!(round(&d, N), (N as u64, pushed - 4));
    for _ in 0..3 {
        assert_eq!(round(&d, N), (N as u64 - on_cpu - 4 * MAG, pushed - 4));
    }
}
