//! IOTLB benchmarks: the time per lookup of hits (target: at most 10 ns) and misses,
//! of a fill and of an invalidation scan; and lookups on 1..N threads (`BENCH_THREADS`, default
//! the available parallelism), to show that they scale. A `RwLock<HashMap>` runs beside
//! the IOTLB as a peer.
//!
//! `cargo bench -p iommu-pt-viommu --bench iotlb`

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use std::collections::HashMap;
use std::sync::{Barrier, RwLock};
use std::time::{Duration, Instant};
use viommu::Perms;
use viommu::iotlb::{Iotlb, IotlbEntry, IotlbKey, PageRange};

/// The scaling benchmark's working set: 1024 pages of one device, all cached.
const PAGES: u64 = 1024;
/// Lookups per thread per iteration of the scaling benchmark.
const PER_THREAD: u64 = 1 << 16;

fn keys(tag: u32, pages: u64) -> Vec<IotlbKey> {
    (0..pages)
        .map(|p| IotlbKey::new(0x0100, Some(1), tag, p << 12))
        .collect()
}

fn entry(key: &IotlbKey) -> IotlbEntry {
    IotlbEntry {
        pa: 0x8_0000_0000 + (key.page << 12),
        size_shift: 12,
        perms: Perms::RW,
    }
}

/// A cache of `4 * pages` slots holding `pages` pages of one device (tag 1).
fn filled(pages: u64) -> (Iotlb, Vec<IotlbKey>) {
    let tlb = Iotlb::new(4 * pages as usize);
    let keys = keys(1, pages);
    for k in &keys {
        let t = tlb.begin_fill();
        assert!(tlb.insert(t, k, entry(k)));
    }
    (tlb, keys)
}

fn peer(keys: &[IotlbKey]) -> RwLock<HashMap<IotlbKey, IotlbEntry>> {
    RwLock::new(keys.iter().map(|k| (*k, entry(k))).collect())
}

fn latency(c: &mut Criterion) {
    let mut g = c.benchmark_group("iotlb");
    // Each iteration looks up every page of the working set once: the time per element
    // is the time per lookup. 256 pages keep the slots (16 KiB) in L1; 4096 (256 KiB)
    // do not.
    for pages in [256u64, 4096] {
        let (tlb, hits) = filled(pages);
        let misses = keys(2, pages);
        let map = peer(&hits);
        g.throughput(Throughput::Elements(pages));
        g.bench_function(BenchmarkId::new("hit", pages), |b| {
            b.iter(|| {
                for k in &hits {
                    black_box(tlb.lookup(black_box(k)));
                }
            })
        });
        g.bench_function(BenchmarkId::new("miss", pages), |b| {
            b.iter(|| {
                for k in &misses {
                    black_box(tlb.lookup(black_box(k)));
                }
            })
        });
        g.bench_function(BenchmarkId::new("peer/rwlock-hashmap/hit", pages), |b| {
            b.iter(|| {
                for k in &hits {
                    black_box(map.read().unwrap().get(black_box(k)).copied());
                }
            })
        });
    }
    let (tlb, hits) = filled(PAGES);
    g.throughput(Throughput::Elements(1));
    g.bench_function("fill", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % PAGES as usize;
            let t = tlb.begin_fill();
            black_box(tlb.insert(t, &hits[i], entry(&hits[i])))
        })
    });
    // One page-selective invalidation scans all 4096 slots.
    g.bench_function("invalidate-page/4096-slots", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % PAGES;
            black_box(tlb.invalidate_tag_range(1, PageRange::pages(i, 1)))
        })
    });
    g.finish();
}

fn threads() -> usize {
    std::env::var("BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1)
}

/// Runs `lookup` `iters * PER_THREAD` times on each of `n` threads; the wall time from
/// when all have started to when all are done.
fn timed_on(n: usize, iters: u64, lookup: &(dyn Fn(usize) + Sync)) -> Duration {
    let start = Barrier::new(n + 1);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..n)
            .map(|t| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    let mut i = t * 97;
                    for _ in 0..iters * PER_THREAD {
                        i = (i + 1) % PAGES as usize;
                        lookup(i);
                    }
                })
            })
            .collect();
        start.wait();
        let began = Instant::now();
        for w in workers {
            w.join().unwrap();
        }
        began.elapsed()
    })
}

fn scaling(c: &mut Criterion) {
    let (tlb, hits) = filled(PAGES);
    let map = peer(&hits);
    let mut g = c.benchmark_group("iotlb-threads");
    for n in 1..=threads() {
        g.throughput(Throughput::Elements(PER_THREAD * n as u64));
        g.bench_with_input(BenchmarkId::new("hit", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                timed_on(n, iters, &|i| {
                    black_box(tlb.lookup(black_box(&hits[i])));
                })
            })
        });
        g.bench_with_input(
            BenchmarkId::new("peer/rwlock-hashmap/hit", n),
            &n,
            |b, &n| {
                b.iter_custom(|iters| {
                    timed_on(n, iters, &|i| {
                        black_box(map.read().unwrap().get(black_box(&hits[i])).copied());
                    })
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, latency, scaling);
criterion_main!(benches);
