//! Checked domains catch double frees and wrong sizes and change nothing; unchecked
//! domains fed garbage may answer wrongly but never panic.

use iova_cache::{IovaDomain, IovaError, IovaOptions, IovaStats};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const LIMIT: u64 = 0xF_FFFF;

fn checked() -> IovaDomain {
    IovaDomain::new(4096, 1, true).unwrap()
}

/// The parts of the stats a refused free must not change.
fn state(d: &IovaDomain) -> (u64, u64, u64) {
    let IovaStats {
        live_ranges,
        cached_pfns,
        depot_magazines,
        ..
    } = d.stats();
    (live_ranges, cached_pfns, depot_magazines)
}

#[test]
fn a_double_free_is_refused_and_changes_nothing() {
    let d = checked();
    let a = d.alloc_fast(4, LIMIT, false).unwrap();
    let keep = d.alloc_fast(4, LIMIT, false).unwrap();
    d.free_fast(a, 4).unwrap();
    let before = state(&d);
    assert_eq!(
        d.free_fast(a, 4),
        Err(IovaError::BadFree { pfn: a, size: 4 })
    );
    assert_eq!(
        d.free_fast(a, 3),
        Err(IovaError::BadFree { pfn: a, size: 3 })
    );
    assert_eq!(state(&d), before);
    // The cached range is not live for `free` either.
    assert_eq!(d.free(a), Err(IovaError::NotFound(a)));
    assert_eq!(state(&d), before);
    // It comes back exactly once.
    assert_eq!(d.alloc_fast(4, LIMIT, false), Some(a));
    assert_ne!(d.alloc_fast(4, LIMIT, false), Some(a));
    assert_eq!(d.find(keep), Some((keep, keep + 3)));
}

#[test]
fn a_wrong_size_is_refused_and_changes_nothing() {
    let d = checked();
    let b = d.alloc_fast(8, LIMIT, false).unwrap();
    let before = state(&d);
    for wrong in [1, 2, 4, 9, 16, 32] {
        assert_eq!(
            d.free_fast(b, wrong),
            Err(IovaError::BadFree {
                pfn: b,
                size: wrong
            })
        );
    }
    assert_eq!(
        d.free_fast(b + 4, 4),
        Err(IovaError::BadFree {
            pfn: b + 4,
            size: 4
        })
    );
    assert_eq!(state(&d), before);
    assert_eq!(d.find(b), Some((b, b + 7)));
    // 5 rounds to 8 just as alloc_fast rounded it.
    d.free_fast(b, 5).unwrap();
    // Uncached sizes are exact.
    let c = d.alloc_fast(100, LIMIT, false).unwrap();
    assert_eq!(c % 128, 0);
    assert_eq!(
        d.free_fast(c, 99),
        Err(IovaError::BadFree { pfn: c, size: 99 })
    );
    d.free_fast(c, 100).unwrap();
    assert_eq!(
        d.free_fast(c, 100),
        Err(IovaError::BadFree { pfn: c, size: 100 })
    );
}

#[test]
fn never_allocated_and_reserved_ranges_are_refused() {
    let d = checked();
    assert_eq!(
        d.free_fast(0x1000, 1),
        Err(IovaError::BadFree {
            pfn: 0x1000,
            size: 1
        })
    );
    d.reserve(0x2000, 0x2003).unwrap();
    assert_eq!(
        d.free_fast(0x2000, 4),
        Err(IovaError::BadFree {
            pfn: 0x2000,
            size: 4
        })
    );
    assert_eq!(d.find(0x2001), Some((0x2000, 0x2003)));
    // A range from the slow path may be given back through the fast path.
    let s = d.alloc(2, LIMIT, true).unwrap();
    d.free_fast(s, 2).unwrap();
    assert_eq!(d.stats().cached_pfns, 2);
}

#[test]
fn cached_ranges_survive_flushes_and_trims_in_checked_mode() {
    let opts = IovaOptions {
        checked: true,
        depot_limit: 1,
        ..IovaOptions::default()
    };
    let d = IovaDomain::with_options(&opts).unwrap();
    let pfns: Vec<u64> = (0..2000)
        .map(|_| d.alloc_fast(1, LIMIT, false).unwrap())
        .collect();
    for &p in &pfns {
        d.free_fast(p, 1).unwrap();
    }
    let s = d.stats();
    assert!(s.trims > 0);
    assert_eq!(
        s.live_ranges, s.cached_pfns,
        "every live range is a cached one"
    );
    for &p in &pfns {
        assert_eq!(
            d.free_fast(p, 1),
            Err(IovaError::BadFree { pfn: p, size: 1 })
        );
    }
    d.flush_caches();
    assert_eq!(d.stats().live_ranges, 0);
}

#[test]
fn unchecked_garbage_frees_never_panic() {
    let d = IovaDomain::with_options(&IovaOptions {
        depot_limit: 1,
        ..IovaOptions::new(4096, 1)
    })
    .unwrap();
    let mut rng = SmallRng::seed_from_u64(99);
    let mut live = Vec::new();
    for _ in 0..50_000 {
        match rng.gen_range(0..6) {
            0 | 1 => {
                if let Some(p) = d.alloc_fast(
                    rng.gen_range(1..=40),
                    rng.gen_range(0..0x800),
                    rng.gen_bool(0.1),
                ) {
                    live.push(p);
                }
            }
            2 => {
                // Double frees, wrong sizes, pfns never handed out.
                let pfn = if live.is_empty() || rng.gen_bool(0.3) {
                    rng.r#gen::<u64>() >> rng.gen_range(0..64)
                } else {
                    live[rng.gen_range(0..live.len())]
                };
                let size = rng.r#gen::<u64>() >> rng.gen_range(0..64);
                let _ = d.free_fast(pfn, size);
                let _ = d.free_fast(pfn, rng.gen_range(1..=64));
            }
            3 => {
                let _ = d.free(rng.gen_range(0..0x900));
            }
            4 => {
                let lo = rng.gen_range(0..0x900);
                let _ = d.reserve(lo, lo + rng.gen_range(0..4));
                let _ = d.alloc(
                    rng.gen_range(1..=64),
                    rng.gen_range(0..0x900),
                    rng.gen_bool(0.5),
                );
            }
            _ => {
                let _ = d.find(rng.gen_range(0..0x900));
                if rng.gen_ratio(1, 100) {
                    d.flush_caches();
                }
            }
        }
    }
    d.flush_caches();
    let _ = d.stats();
}
