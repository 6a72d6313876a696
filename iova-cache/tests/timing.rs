//! Rough timings printed as ns/op, not benchmarks (the criterion benches carry the
//! targets). Ignored by default; run with
//! `cargo test -p iova-cache --release --test timing -- --ignored --nocapture --test-threads 1`.

use std::hint::black_box;
use std::time::Instant;

use iova_cache::IovaDomain;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const DMA32: u64 = 0xF_FFFF;

fn report(what: &str, ops: u64, t: Instant) {
    println!(
        "{what}: {:.1} ns/op",
        t.elapsed().as_nanos() as f64 / ops as f64
    );
}

#[test]
#[ignore = "timing; run in release with --ignored"]
fn fast_pair() {
    let d = IovaDomain::new(4096, 1, false).unwrap();
    let n = 20_000_000;
    for _ in 0..1000 {
        let p = d.alloc_fast(1, DMA32, false).unwrap();
        d.free_fast(p, 1).unwrap();
    }
    let t = Instant::now();
    for _ in 0..n {
        let p = d.alloc_fast(black_box(1), black_box(DMA32), false).unwrap();
        d.free_fast(black_box(p), 1).unwrap();
    }
    report(
        "fast pair (alloc_fast + free_fast, size 1, 32-bit limit)",
        n,
        t,
    );
}

#[test]
#[ignore = "timing; run in release with --ignored"]
fn fast_batches_of_random_sizes() {
    let d = IovaDomain::new(4096, 1, false).unwrap();
    let mut rng = SmallRng::seed_from_u64(1);
    let mut batch = Vec::with_capacity(64);
    let rounds = 100_000;
    let t = Instant::now();
    for _ in 0..rounds {
        for _ in 0..64 {
            let size = rng.gen_range(1..=32);
            batch.push((d.alloc_fast(size, DMA32, true).unwrap(), size));
        }
        for i in (1..batch.len()).rev() {
            batch.swap(i, rng.gen_range(0..=i));
        }
        for (p, s) in batch.drain(..) {
            d.free_fast(p, s).unwrap();
        }
    }
    report(
        "fast pair, batches of 64 random sizes 1..32 freed shuffled",
        rounds * 64,
        t,
    );
}

#[test]
#[ignore = "timing; run in release with --ignored"]
fn uncached_sizes() {
    let d = IovaDomain::new(4096, 1, false).unwrap();
    let mut rng = SmallRng::seed_from_u64(2);
    let n = 2_000_000;
    let t = Instant::now();
    for _ in 0..n {
        let size = rng.gen_range(64..=256);
        let p = d.alloc_fast(size, DMA32, true).unwrap();
        d.free_fast(p, size).unwrap();
    }
    report("uncached pair (sizes 64..256, tree only)", n, t);
}

fn churn(live: usize) {
    let d = IovaDomain::new(4096, 1, false).unwrap();
    let mut rng = SmallRng::seed_from_u64(3);
    let limit = 1 << 40;
    let mut ranges: Vec<u64> = (0..live)
        .map(|_| d.alloc(rng.gen_range(1..=16), limit, true).unwrap())
        .collect();
    // Fragment: replace random victims until the layout is random.
    for _ in 0..live {
        let k = rng.gen_range(0..live);
        d.free(ranges[k]).unwrap();
        ranges[k] = d.alloc(rng.gen_range(1..=16), limit, true).unwrap();
    }
    let n = 1_000_000;
    let t = Instant::now();
    for _ in 0..n {
        let k = rng.gen_range(0..live);
        d.free(ranges[k]).unwrap();
        let limit = if rng.gen_bool(0.5) {
            limit
        } else {
            rng.gen_range(1 << 20..limit)
        };
        ranges[k] = d
            .alloc(rng.gen_range(1..=16), limit, true)
            .unwrap_or_else(|_| d.alloc(1, 1 << 40, true).unwrap());
    }
    let (used, reserved) = d.tree_bytes();
    report(
        &format!(
            "slow-path churn (free random victim + alloc 1..16 aligned, random limits) at {live} live"
        ),
        n,
        t,
    );
    println!(
        "  tree memory: {:.1} B/range in use, {:.1} B/range reserved",
        used as f64 / live as f64,
        reserved as f64 / live as f64
    );
}

#[test]
#[ignore = "timing; run in release with --ignored"]
fn slow_path_churn() {
    for live in live_counts() {
        churn(live);
    }
}

/// `IOVA_CHURN_LIVE=10000,100000` picks the sizes; default 10k, 100k and 1M.
fn live_counts() -> Vec<usize> {
    std::env::var("IOVA_CHURN_LIVE").map_or_else(
        |_| vec![10_000, 100_000, 1_000_000],
        |v| v.split(',').map(|n| n.trim().parse().unwrap()).collect(),
    )
}
