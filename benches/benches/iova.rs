//! IOVA allocator benchmarks, with vm-allocator and range-alloc (behind a Mutex, as a
//! multi-threaded VMM would have to use them) in the same run.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use benches::thread_counts;
use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use iova_cache::IovaDomain;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The last pfn below 4 GiB with 4 KiB pages: a 32-bit DMA mask.
const DMA32: u64 = 0xF_FFFF;
/// The last pfn of a 48-bit space.
const DMA48: u64 = (1 << 36) - 1;

fn domain() -> IovaDomain {
    IovaDomain::new(4096, 1, false).expect("domain")
}

fn fast_pair(c: &mut Criterion) {
    let mut g = c.benchmark_group("iova/fast_pair");
    g.throughput(Throughput::Elements(1));
    let d = domain();
    g.bench_function("iova-cache", |b| {
        b.iter(|| {
            let pfn = d.alloc_fast(1, DMA32, false).unwrap();
            d.free_fast(black_box(pfn), 1).unwrap();
        })
    });
    let vm = Mutex::new(vm_allocator::AddressAllocator::new(0x1000, DMA32 << 12).unwrap());
    g.bench_function("vm-allocator", |b| {
        b.iter(|| {
            let mut a = vm.lock().unwrap();
            let r = a
                .allocate(4096, 4096, vm_allocator::AllocPolicy::LastMatch)
                .unwrap();
            a.free(black_box(&r)).unwrap();
        })
    });
    let ra = Mutex::new(range_alloc::RangeAllocator::new(1..DMA32 + 1));
    g.bench_function("range-alloc", |b| {
        b.iter(|| {
            let mut a = ra.lock().unwrap();
            let r = a.allocate_range(1).unwrap();
            a.free_range(black_box(r));
        })
    });
    g.finish();
}

/// Ranges per batch in the batch groups, as in the Linux comparison of issue #13.
const BATCH: usize = 4096;

/// Which half of a batch a benchmark times.
#[derive(Debug, Clone, Copy)]
enum Half {
    Alloc,
    Free,
}

impl Half {
    fn name(self) -> &'static str {
        match self {
            Half::Alloc => "alloc",
            Half::Free => "free",
        }
    }
}

/// Times one half of `iters` batches: each batch allocates `BATCH` ranges of the sizes
/// `size` draws (drawn before the clock starts), then frees them in a shuffled order.
/// Only the allocations or only the frees are timed, so the per-element figure is the
/// cost of one call.
fn time_batches(
    iters: u64,
    half: Half,
    rng: &mut SmallRng,
    size: impl Fn(&mut SmallRng) -> u64,
    mut alloc: impl FnMut(u64) -> u64,
    mut free: impl FnMut(u64, u64),
) -> Duration {
    let mut sizes = Vec::with_capacity(BATCH);
    let mut got = Vec::with_capacity(BATCH);
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        sizes.clear();
        sizes.extend((0..BATCH).map(|_| size(rng)));
        let t0 = Instant::now();
        for &s in &sizes {
            got.push((alloc(s), s));
        }
        let t_alloc = t0.elapsed();
        got.shuffle(rng);
        let t1 = Instant::now();
        for &(pfn, s) in &got {
            free(pfn, s);
        }
        let t_free = t1.elapsed();
        got.clear();
        total += match half {
            Half::Alloc => t_alloc,
            Half::Free => t_free,
        };
    }
    total
}

/// `BATCH` allocations of random sizes, then frees in a shuffled order: the caches
/// under a working set far above one magazine per size class, with default options.
fn random_batches(c: &mut Criterion) {
    let mut g = c.benchmark_group("iova/random_batch_4096");
    g.throughput(Throughput::Elements(BATCH as u64));
    let size = |rng: &mut SmallRng| rng.gen_range(1..=32u64);
    let d = domain();
    let ra = Mutex::new(range_alloc::RangeAllocator::new(1..DMA32 + 1));
    let mut rng = SmallRng::seed_from_u64(1);
    for half in [Half::Alloc, Half::Free] {
        g.bench_function(BenchmarkId::new("iova-cache", half.name()), |b| {
            b.iter_custom(|iters| {
                time_batches(
                    iters,
                    half,
                    &mut rng,
                    size,
                    |s| d.alloc_fast(s, DMA32, false).unwrap(),
                    |pfn, s| d.free_fast(pfn, s).unwrap(),
                )
            })
        });
        g.bench_function(BenchmarkId::new("range-alloc", half.name()), |b| {
            b.iter_custom(|iters| {
                time_batches(
                    iters,
                    half,
                    &mut rng,
                    size,
                    |s| ra.lock().unwrap().allocate_range(s).unwrap().start,
                    |pfn, s| ra.lock().unwrap().free_range(pfn..pfn + s),
                )
            })
        });
    }
    g.finish();
}

/// The same batches with sizes the caches never hold: every call is the range tree.
/// Below a 48-bit limit: 4096 ranges of 64..256 pages, each aligned to its size rounded
/// up to a power of two, do not reliably fit below 4 GiB.
fn uncached(c: &mut Criterion) {
    let mut g = c.benchmark_group("iova/uncached_64_256");
    g.throughput(Throughput::Elements(BATCH as u64));
    let size = |rng: &mut SmallRng| rng.gen_range(64..=256u64);
    let d = domain();
    let ra = Mutex::new(range_alloc::RangeAllocator::new(1..DMA32 + 1));
    let mut rng = SmallRng::seed_from_u64(2);
    for half in [Half::Alloc, Half::Free] {
        g.bench_function(BenchmarkId::new("iova-cache", half.name()), |b| {
            b.iter_custom(|iters| {
                time_batches(
                    iters,
                    half,
                    &mut rng,
                    size,
                    |s| d.alloc_fast(s, DMA48, false).unwrap(),
                    |pfn, s| d.free_fast(pfn, s).unwrap(),
                )
            })
        });
        g.bench_function(BenchmarkId::new("range-alloc", half.name()), |b| {
            b.iter_custom(|iters| {
                time_batches(
                    iters,
                    half,
                    &mut rng,
                    size,
                    |s| ra.lock().unwrap().allocate_range(s).unwrap().start,
                    |pfn, s| ra.lock().unwrap().free_range(pfn..pfn + s),
                )
            })
        });
    }
    g.finish();
}

/// Alloc one range and free a random victim, with `live` ranges in the allocator.
fn churn(c: &mut Criterion) {
    let mut g = c.benchmark_group("iova/churn");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    let sizes = |rng: &mut SmallRng| rng.gen_range(1..=16u64);
    for live in [10_000usize, 100_000, 1_000_000] {
        let d = domain();
        let mut rng = SmallRng::seed_from_u64(3);
        let mut held: Vec<u64> = (0..live)
            .map(|_| d.alloc(sizes(&mut rng), DMA48, true).unwrap())
            .collect();
        // Free every other range so the tree is fragmented.
        for i in (0..held.len()).step_by(2) {
            d.free(held[i]).unwrap();
            held[i] = d.alloc(sizes(&mut rng), DMA48, true).unwrap();
        }
        g.bench_with_input(BenchmarkId::new("iova-cache", live), &live, |b, _| {
            b.iter(|| {
                let i = rng.gen_range(0..held.len());
                d.free(held[i]).unwrap();
                held[i] = d.alloc(sizes(&mut rng), DMA48, true).unwrap();
            })
        });
        if live <= 10_000 {
            let mut vm = vm_allocator::AddressAllocator::new(0x1000, DMA48 << 12).unwrap();
            let mut vheld: Vec<_> = (0..live)
                .map(|_| {
                    vm.allocate(
                        sizes(&mut rng) << 12,
                        4096,
                        vm_allocator::AllocPolicy::LastMatch,
                    )
                    .unwrap()
                })
                .collect();
            let vm = Mutex::new(vm);
            g.bench_with_input(BenchmarkId::new("vm-allocator", live), &live, |b, _| {
                b.iter(|| {
                    let i = rng.gen_range(0..vheld.len());
                    let mut a = vm.lock().unwrap();
                    a.free(&vheld[i]).unwrap();
                    vheld[i] = a
                        .allocate(
                            sizes(&mut rng) << 12,
                            4096,
                            vm_allocator::AllocPolicy::LastMatch,
                        )
                        .unwrap();
                })
            });
        }
        let mut ra = range_alloc::RangeAllocator::new(1..DMA48 + 1);
        let mut rheld: Vec<_> = (0..live)
            .map(|_| ra.allocate_range(sizes(&mut rng)).unwrap())
            .collect();
        for i in (0..rheld.len()).step_by(2) {
            ra.free_range(rheld[i].clone());
        }
        for i in (0..rheld.len()).step_by(2) {
            rheld[i] = ra.allocate_range(sizes(&mut rng)).unwrap();
        }
        let ra = Mutex::new(ra);
        g.bench_with_input(BenchmarkId::new("range-alloc", live), &live, |b, _| {
            b.iter(|| {
                let i = rng.gen_range(0..rheld.len());
                let mut a = ra.lock().unwrap();
                a.free_range(rheld[i].clone());
                rheld[i] = a.allocate_range(sizes(&mut rng)).unwrap();
            })
        });
    }
    g.finish();
}

fn fast_pair_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("iova/fast_pair_threads");
    let d = domain();
    for t in thread_counts() {
        g.throughput(Throughput::Elements(t as u64));
        g.bench_with_input(BenchmarkId::from_parameter(t), &t, |b, &t| {
            b.iter_custom(|iters| {
                std::thread::scope(|s| {
                    let hs: Vec<_> = (0..t)
                        .map(|_| {
                            let d = &d;
                            s.spawn(move || {
                                let t0 = Instant::now();
                                for _ in 0..iters {
                                    let pfn = d.alloc_fast(1, DMA32, false).unwrap();
                                    d.free_fast(pfn, 1).unwrap();
                                }
                                t0.elapsed()
                            })
                        })
                        .collect();
                    hs.into_iter().map(|h| h.join().unwrap()).max().unwrap()
                })
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = suite;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2)).sample_size(20);
    targets = fast_pair, random_batches, uncached, churn, fast_pair_threads
}
criterion_main!(suite);
