//! Running out of space, limits around the 4 GiB boundary, and the window edges.

use std::collections::HashSet;

use iova_cache::{IovaDomain, IovaError, IovaOptions};

/// Last pfn below 4 GiB with 4 KiB pages.
const DMA32: u64 = 0xF_FFFF;

#[test]
fn a_full_domain_fails_until_a_range_is_freed() {
    let d = IovaDomain::new(4096, 1, false).unwrap();
    let limit = 1023;
    let mut got = HashSet::new();
    while let Some(pfn) = d.alloc_fast(1, limit, true) {
        assert!((1..=limit).contains(&pfn));
        assert!(got.insert(pfn), "{pfn} handed out twice");
    }
    assert_eq!(got.len() as u64, limit, "every pfn of 1..=limit is used");
    assert_eq!(d.alloc_fast(1, limit, true), None);
    assert_eq!(d.alloc(1, limit, false), Err(IovaError::NoSpace));
    // A freed page sits in a cache; a flushing allocation finds it wherever it is.
    d.free_fast(512, 1).unwrap();
    assert_eq!(d.alloc_fast(1, limit, true), Some(512));
    assert_eq!(d.alloc_fast(1, limit, true), None);
    // The slow path gives space back at once.
    d.free(700).unwrap();
    assert_eq!(d.alloc(1, limit, true), Ok(700));
}

#[test]
fn only_a_flush_merges_cached_buddies_into_a_larger_range() {
    let d = IovaDomain::new(4096, 1, false).unwrap();
    let limit = 255;
    while d.alloc_fast(1, limit, false).is_some() {}
    d.free_fast(100, 1).unwrap();
    d.free_fast(101, 1).unwrap();
    // Two single pages are cached, the tree is full: no pair without a flush...
    assert_eq!(d.alloc_fast(2, limit, false), None);
    assert_eq!(d.stats().cached_pfns, 2);
    // ...and with one, the pages go back to the tree and form an aligned pair.
    assert_eq!(d.alloc_fast(2, limit, true), Some(100));
    assert_eq!(d.stats().cached_pfns, 0);
    assert_eq!(d.find(101), Some((100, 101)));
}

#[test]
fn limits_below_at_and_above_4gib() {
    let d = IovaDomain::new(4096, 1, false).unwrap();
    assert_eq!(d.alloc_fast(1, DMA32, false), Some(DMA32));
    assert_eq!(d.alloc_fast(1, DMA32 - 1, false), Some(DMA32 - 1));
    assert_eq!(d.alloc_fast(1, DMA32 + 1, false), Some(DMA32 + 1));
    // 16 pages aligned to 16, ending at or below 4 GiB, avoiding the two pages above.
    assert_eq!(d.alloc(16, DMA32, true), Ok(0xF_FFE0));
    assert_eq!(d.alloc(16, DMA32, false), Ok(0xF_FFDE - 14));
    // The top of the 52-bit pfn space; larger limits are clamped to it.
    assert_eq!(d.max_pfn(), (1 << 52) - 1);
    assert_eq!(d.alloc_fast(1, u64::MAX, false), Some(d.max_pfn()));
    assert_eq!(
        d.alloc_fast(32, u64::MAX, false),
        Some(d.max_pfn() + 1 - 64)
    );
}

#[test]
fn a_full_32bit_window_leaves_higher_limits_working() {
    // start_pfn just below 4 GiB: 256 pages fit under the 32-bit limit.
    let start = DMA32 - 255;
    let d = IovaDomain::new(4096, start, false).unwrap();
    let mut n = 0;
    while let Some(pfn) = d.alloc_fast(1, DMA32, true) {
        assert!(pfn >= start && pfn <= DMA32);
        n += 1;
    }
    assert_eq!(n, 256);
    let high = d.alloc_fast(1, 2 * DMA32, true).unwrap();
    assert_eq!(high, 2 * DMA32);
    // A cached range above 4 GiB never satisfies a 32-bit request.
    d.free_fast(high, 1).unwrap();
    assert_eq!(d.alloc_fast(1, DMA32, false), None);
    assert_eq!(d.alloc_fast(1, DMA32, true), None);
    assert_eq!(
        d.stats().cached_pfns,
        0,
        "the failed flushing allocation emptied the caches"
    );
    assert_eq!(d.alloc_fast(1, DMA32 + 1, false), Some(DMA32 + 1));
}

#[test]
fn the_window_edges_hold() {
    let d = IovaDomain::new(4096, 100, false).unwrap();
    assert_eq!(d.alloc(1, 99, false), Err(IovaError::NoSpace));
    assert_eq!(d.alloc_fast(1, 99, true), None);
    assert_eq!(d.alloc_fast(2, 100, true), None, "needs 100..=101");
    assert_eq!(d.alloc(1, 100, false), Ok(100));
    assert_eq!(
        d.alloc(4, 103, true),
        Err(IovaError::NoSpace),
        "100 is taken, 96 is below start"
    );
    assert_eq!(d.alloc(4, 107, true), Ok(104));
    assert_eq!(d.find(99), None);
    let big = IovaDomain::new(65536, 1, false).unwrap();
    assert_eq!(big.max_pfn(), (1 << 48) - 1);
    assert_eq!(big.alloc(1 << 47, u64::MAX, true), Ok(1 << 47));
    assert_eq!(
        big.alloc(1 << 47, u64::MAX, true),
        Err(IovaError::NoSpace),
        "0 is below start"
    );
    assert_eq!(big.alloc((1 << 47) - 1, u64::MAX, false), Ok(1));
}

#[test]
fn zero_sizes_and_bad_arguments() {
    let d = IovaDomain::new(4096, 1, false).unwrap();
    assert_eq!(d.alloc_fast(0, DMA32, true), None);
    assert_eq!(d.alloc(0, DMA32, true).unwrap_err().errno(), -libc::EINVAL);
    assert_eq!(d.free_fast(5, 0).unwrap_err().errno(), -libc::EINVAL);
    assert_eq!(d.free_fast(0, 1).unwrap_err().errno(), -libc::EINVAL);
    assert_eq!(d.free_fast(u64::MAX, 1).unwrap_err().errno(), -libc::EINVAL);
    assert_eq!(
        d.free_fast(u64::MAX - 1, u64::MAX).unwrap_err().errno(),
        -libc::EINVAL
    );
    assert_eq!(
        d.free_fast(3, 4),
        Err(IovaError::BadFree { pfn: 3, size: 4 }),
        "misaligned"
    );
    assert_eq!(d.reserve(5, 4).unwrap_err().errno(), -libc::EINVAL);
    assert_eq!(d.free(77), Err(IovaError::NotFound(77)));
    assert_eq!(d.alloc_fast(u64::MAX, u64::MAX, true), None);
    assert_eq!(d.alloc(u64::MAX, u64::MAX, true), Err(IovaError::NoSpace));
    for bad in [
        IovaOptions::new(2048, 1),
        IovaOptions::new(4096 * 3, 1),
        IovaOptions::new(1 << 17, 1),
        IovaOptions::new(4096, 0),
        IovaOptions::new(4096, 1 << 52),
        IovaOptions {
            max_cached_order: 11,
            ..IovaOptions::default()
        },
    ] {
        let e = IovaDomain::with_options(&bad).unwrap_err();
        assert_eq!(e.errno(), -libc::EINVAL, "{bad:?}");
    }
    let ten = IovaOptions {
        max_cached_order: 10,
        ..IovaOptions::default()
    };
    assert_eq!(
        IovaDomain::with_options(&ten)
            .unwrap()
            .stats()
            .max_cached_pages,
        1024
    );
}

#[test]
fn reservations_merge_and_block_allocations() {
    let d = IovaDomain::new(4096, 1, false).unwrap();
    d.reserve(0xFEE00, 0xFEE7F).unwrap();
    d.reserve(0xFEE80, 0xFEEFF).unwrap(); // touches: merged
    d.reserve(0xFEE10, 0xFEE20).unwrap(); // inside: merged
    assert_eq!(d.find(0xFEE00), Some((0xFEE00, 0xFEEFF)));
    assert_eq!(d.find(0xFEEFF), Some((0xFEE00, 0xFEEFF)));
    assert_eq!(
        d.free(0xFEE40),
        Err(IovaError::NotFound(0xFEE40)),
        "reservations stay"
    );
    assert_eq!(d.alloc(0x100, 0xFEEFF, true), Ok(0xFED00));
    assert_eq!(d.stats().live_ranges, 1);
    // Over a live allocation: refused, nothing changed.
    assert_eq!(
        d.reserve(0xFEC00, 0xFED00),
        Err(IovaError::Exists {
            lo: 0xFED00,
            hi: 0xFEDFF
        })
    );
    assert_eq!(d.find(0xFEC00), None);
    // A range parked in a cache is not live: the reservation flushes it and succeeds.
    let p = d.alloc_fast(1, 0x1000, false).unwrap();
    d.free_fast(p, 1).unwrap();
    d.reserve(p, p).unwrap();
    assert_eq!(d.find(p), Some((p, p)));
    assert_eq!(d.alloc_fast(1, 0x1000, false), Some(p - 1));
    // Parts outside the window are ignored.
    d.reserve(0, 3).unwrap();
    assert_eq!(d.find(1), Some((1, 3)));
    assert_eq!(d.find(0), None);
}
