//! The pathology Linux users hit: one thread allocates, another frees, for 10M
//! operations, with default options. Every range the allocating CPU uses comes through
//! the depot from the freeing CPU, and bursts larger than the depot's cap push it to its
//! limit. Cached space must stay under the documented bound at every sample, the
//! process's memory must not grow with the number of operations, and the depot must
//! keep serving the allocating side (most allocations are cache hits).
//!
//! Alone in its test binary, so the resident set is this test's own.

use std::sync::mpsc::sync_channel;
use std::thread;

use iova_cache::{IovaDomain, IovaOptions};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Allocations plus frees.
const OPS: u64 = 10_000_000;
/// Ranges per batch handed from the allocating thread to the freeing one.
const BATCH: usize = 256;
/// Every `BURST_EVERY`th batch is a burst this large: more ranges of the large size
/// classes than two magazines per CPU and a full depot hold.
const BURST: usize = 16 * 1024;
const BURST_EVERY: u64 = 64;
/// Batches in flight at most (the channel's capacity).
const IN_FLIGHT: usize = 4;
/// The last pfn of a 48-bit space: room for every burst.
const LIMIT: u64 = (1 << 36) - 1;
/// Entries per magazine.
const MAG: u64 = 127;

/// Every per-CPU slot the allocator keeps magazines for.
fn slots() -> u64 {
    // SAFETY: sysconf takes an integer selector and touches no memory of ours.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
    u64::try_from(n).unwrap()
}

/// Resident set size in bytes, from `/proc/self/statm`.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap()
}

#[test]
fn alloc_on_one_thread_free_on_another_stays_bounded() {
    let opts = IovaOptions::default();
    let d = IovaDomain::with_options(&opts).unwrap();
    // The documented bound: per size class, two magazines per slot and the depot's
    // default cap of max(32, 2 * slots) magazines.
    let cap = 32.max(2 * slots());
    let classes = u64::from(opts.max_cached_order) + 1;
    let bound = (2 * slots() + cap) * MAG * ((1 << classes) - 1);
    assert_eq!(d.cached_pfns_bound(), bound);

    let (to_free, freeing) = sync_channel::<Vec<(u64, u64)>>(IN_FLIGHT);
    let (to_reuse, reusing) = sync_channel::<Vec<(u64, u64)>>(IN_FLIGHT + 2);
    let (max_cached, rss_growth, allocs, steady, steady_misses) = thread::scope(|s| {
        let d = &d;
        let allocator = s.spawn(move || {
            let mut rng = SmallRng::seed_from_u64(13);
            let (mut allocs, mut batches) = (0u64, 0u64);
            // Allocations in ordinary batches after the first bursts, and their misses
            // (this thread is the only one allocating, so the counter's growth over a
            // batch is exactly that batch's misses). A burst empties the depots, and
            // the batches allocated while it is being freed may find them empty, so
            // the count starts `2 * IN_FLIGHT` batches after each burst.
            let (mut steady, mut steady_misses) = (0u64, 0u64);
            while 2 * allocs < OPS {
                let burst = batches % BURST_EVERY == BURST_EVERY - 1;
                let n = if burst { BURST } else { BATCH };
                let mut v = reusing.try_recv().unwrap_or_default();
                v.clear();
                let misses = d.stats().cache_misses;
                for _ in 0..n {
                    let size = rng.gen_range(1..=32);
                    v.push((d.alloc_fast(size, LIMIT, false).unwrap(), size));
                }
                let since_burst = batches % BURST_EVERY;
                if !burst && batches > 4 * BURST_EVERY && since_burst >= 2 * IN_FLIGHT as u64 {
                    steady += n as u64;
                    steady_misses += d.stats().cache_misses - misses;
                }
                allocs += n as u64;
                batches += 1;
                to_free.send(v).unwrap();
            }
            (allocs, steady, steady_misses)
        });
        let freer = s.spawn(move || {
            let (mut max_cached, mut rss_start, mut rss_max) = (0, 0, 0);
            let mut frees = 0u64;
            for (batch, v) in freeing.iter().enumerate() {
                for &(pfn, size) in &v {
                    d.free_fast(pfn, size).unwrap();
                }
                frees += v.len() as u64;
                let _ = to_reuse.try_send(v);
                let s = d.stats();
                assert!(s.cached_pfns <= bound, "{s:?} over the bound {bound}");
                max_cached = max_cached.max(s.cached_pfns);
                if batch % 256 == 0 {
                    let now = rss();
                    // After a warm-up (every size class's magazines, the depots at
                    // their caps, the tree at its largest), memory must stay flat.
                    if frees < OPS / 20 {
                        rss_start = now;
                    }
                    rss_max = rss_max.max(now);
                }
            }
            (max_cached, rss_max.saturating_sub(rss_start), frees)
        });
        let (allocs, steady, steady_misses) = allocator.join().unwrap();
        let (max_cached, growth, frees) = freer.join().unwrap();
        assert_eq!(frees, allocs);
        (max_cached, growth, allocs, steady, steady_misses)
    });
    let s = d.stats();
    eprintln!(
        "{allocs} allocs and frees: at most {max_cached} cached pfns (bound {bound}), \
         {steady_misses} misses in {steady} allocations between bursts, \
         RSS grew {rss_growth} bytes after the warm-up, {s:?}"
    );
    assert!(2 * allocs >= OPS);
    // Bursts overflow the depots: they gave magazines back to the tree.
    assert!(s.trims > 0, "{s:?}");
    // The cap was reached, so the bound is tight enough to matter.
    assert!(max_cached > bound / 4, "{max_cached} of {bound}");
    // Between bursts the depot carries the ranges across: the allocating side
    // hardly ever misses (every miss is a slow-path allocation).
    assert!(
        steady_misses * 100 <= steady,
        "{steady_misses} misses in {steady} allocations between bursts"
    );
    assert!(rss_growth <= 16 << 20, "RSS grew {rss_growth} bytes");
    // Everything was freed: a flush returns every cached range to the tree.
    d.flush_caches();
    let s = d.stats();
    assert_eq!((s.live_ranges, s.cached_pfns), (0, 0), "{s:?}");
}
