//! Page-table benchmarks: every hot operation of every format, groups named
//! `<format>/<operation>` with throughput in pages, and aarch64-paging on the same
//! Arm stage-1 4K work in the same run.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use benches::{
    K4, M2, PA_DELTA, WINDOW, arm_s1_4k_48, arm_s1_64k_48, arm_s2_4k_40, base_for, map_each, table,
    thread_counts, unmap_each, vtd_fs_48, vtd_ss_48, warm_tables,
};
use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use pgtable_core::testfmt::TestFormat;
use pgtable_core::{Format, Gather, HostMemory, PageTable, Prot};
use pgtable_core::{Iova, PhysAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

type Pt<F> = PageTable<F, HostMemory>;

/// Times `op(i)` for `iters` consecutive pages of the window, running `reset` (untimed)
/// whenever the window is used up.
fn cycle(
    iters: u64,
    per_window: u64,
    mut op: impl FnMut(u64),
    mut reset: impl FnMut(),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = (iters - done).min(per_window);
        let t = Instant::now();
        for i in 0..n {
            op(i);
        }
        total += t.elapsed();
        done += n;
        reset();
    }
    total
}

fn single_pages<F: Format>(c: &mut Criterion, name: &str, fmt: F) {
    let base = base_for(&fmt);
    let gran = fmt.geometry().granule();
    let pages = WINDOW / gran;

    let mut g = c.benchmark_group(format!("{name}/map_4k"));
    g.throughput(Throughput::Elements(1));
    {
        let pt: Pt<F> = table(fmt.clone());
        warm_tables(&pt, base);
        g.bench_function("per_call_pin", |b| {
            b.iter_custom(|iters| {
                cycle(
                    iters,
                    pages,
                    |i| {
                        let iova = base + i * gran;
                        black_box(pt.map_pages(
                            Iova(iova),
                            PhysAddr(iova + PA_DELTA),
                            gran,
                            1,
                            Prot::RW,
                        ))
                        .unwrap();
                    },
                    || unmap_each(&pt, base, gran),
                )
            })
        });
        g.bench_function("session", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let n = (iters - done).min(pages);
                    let s = pt.session();
                    let t = Instant::now();
                    for i in 0..n {
                        let iova = base + i * gran;
                        black_box(s.map_pages(
                            Iova(iova),
                            PhysAddr(iova + PA_DELTA),
                            gran,
                            1,
                            Prot::RW,
                        ))
                        .unwrap();
                    }
                    total += t.elapsed();
                    drop(s);
                    done += n;
                    unmap_each(&pt, base, gran);
                }
                total
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group(format!("{name}/unmap_4k"));
    g.throughput(Throughput::Elements(1));
    {
        let pt: Pt<F> = table(fmt.clone());
        warm_tables(&pt, base);
        map_each(&pt, base, gran);
        g.bench_function("per_call_pin", |b| {
            b.iter_custom(|iters| {
                let mut gather = Gather::new();
                let elapsed = cycle(
                    iters,
                    pages,
                    |i| {
                        black_box(pt.unmap_pages(Iova(base + i * gran), gran, 1, &mut gather))
                            .unwrap();
                    },
                    || map_each(&pt, base, gran),
                );
                gather.release();
                elapsed
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group(format!("{name}/iova_to_phys"));
    g.throughput(Throughput::Elements(1));
    {
        let pt: Pt<F> = table(fmt.clone());
        pt.map_pages(Iova(base), PhysAddr(base + PA_DELTA), gran, pages, Prot::RW)
            .unwrap();
        g.bench_function("per_call_pin", |b| {
            b.iter_custom(|iters| {
                cycle(
                    iters,
                    pages,
                    |i| assert!(black_box(pt.iova_to_phys(Iova(base + i * gran))).is_some()),
                    || {},
                )
            })
        });
        g.bench_function("session", |b| {
            b.iter_custom(|iters| {
                let s = pt.session();
                cycle(
                    iters,
                    pages,
                    |i| assert!(black_box(s.iova_to_phys(Iova(base + i * gran))).is_some()),
                    || {},
                )
            })
        });
    }
    g.finish();
}

fn batched<F: Format>(c: &mut Criterion, name: &str, fmt: F) {
    let base = base_for(&fmt);
    let geo = fmt.geometry();
    let gran = geo.granule();
    // 512 pages per call; with a 4K granule that is one whole level-0 table.
    let per_table = 512u64;
    let span = gran * per_table;
    let tables = WINDOW / span;
    let whole_table = geo.entries(0) as u64 == per_table;

    let mut g = c.benchmark_group(format!("{name}/map_512"));
    g.throughput(Throughput::Elements(per_table));
    {
        let pt: Pt<F> = table(fmt.clone());
        warm_tables(&pt, base);
        g.bench_function("existing_tables", |b| {
            b.iter_custom(|iters| {
                let mut gather = Gather::new();
                cycle(
                    iters,
                    tables,
                    |i| {
                        let iova = base + i * span;
                        black_box(pt.map_pages(
                            Iova(iova),
                            PhysAddr(iova + PA_DELTA),
                            gran,
                            per_table,
                            Prot::RW,
                        ))
                        .unwrap();
                    },
                    || {
                        // Unmap in two halves so the tables stay for the next round.
                        for i in 0..tables {
                            let iova = base + i * span;
                            pt.unmap(Iova(iova), span / 2, &mut gather).unwrap();
                            pt.unmap(Iova(iova + span / 2), span / 2, &mut gather)
                                .unwrap();
                        }
                        gather.release();
                    },
                )
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group(format!("{name}/unmap_512"));
    g.throughput(Throughput::Elements(per_table));
    {
        let pt: Pt<F> = table(fmt.clone());
        let id = if whole_table {
            "frees_table"
        } else {
            "part_of_table"
        };
        g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let mut gather = Gather::new();
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let n = (iters - done).min(tables);
                    pt.map_pages(
                        Iova(base),
                        PhysAddr(base + PA_DELTA),
                        gran,
                        n * per_table,
                        Prot::RW,
                    )
                    .unwrap();
                    let t = Instant::now();
                    for i in 0..n {
                        black_box(pt.unmap_pages(
                            Iova(base + i * span),
                            gran,
                            per_table,
                            &mut gather,
                        ))
                        .unwrap();
                    }
                    total += t.elapsed();
                    gather.release();
                    done += n;
                }
                total
            })
        });
    }
    g.finish();

    // Leaves one level up (2M for 4K granules, 512M for 64K).
    if geo.leaf_allowed(1) {
        let big = geo.entry_span(1);
        let count = (WINDOW / big).max(1);
        let mut g = c.benchmark_group(format!("{name}/map_2m"));
        g.throughput(Throughput::Elements(big / gran));
        let pt: Pt<F> = table(fmt.clone());
        // One map + one unmap per call (a window holds few large leaves).
        g.bench_function("map_unmap_pair", |b| {
            let mut gather = Gather::new();
            let mut i = 0u64;
            b.iter(|| {
                let iova = base + (i % count) * big;
                pt.map_pages(Iova(iova), PhysAddr(iova + PA_DELTA), big, 1, Prot::RW)
                    .unwrap();
                black_box(pt.unmap_pages(Iova(iova), big, 1, &mut gather)).unwrap();
                i += 1;
            });
            gather.release();
        });
        g.finish();
    }

    // `map` of mixed lengths: the best page sizes chosen per call.
    let mut g = c.benchmark_group(format!("{name}/map_mixed"));
    let lens: Vec<u64> = [1, 2, 16, 3, 512, 5, 64, 513, 8, 1024]
        .iter()
        .map(|p| p * gran)
        .collect();
    let total: u64 = lens.iter().sum();
    g.throughput(Throughput::Elements(total / gran));
    {
        let pt: Pt<F> = table(fmt.clone());
        g.bench_function("map_then_unmap", |b| {
            let mut gather = Gather::new();
            b.iter(|| {
                let mut iova = base;
                for &l in &lens {
                    // 2M-align each run's pa with its iova so large leaves can be used.
                    black_box(pt.map(Iova(iova), PhysAddr(iova + PA_DELTA), l, Prot::RW)).unwrap();
                    iova += l;
                }
                pt.unmap(Iova(base), total, &mut gather).unwrap();
                gather.release();
            })
        });
    }
    g.finish();
}

fn threads<F: Format>(c: &mut Criterion, name: &str, fmt: F) {
    let gran = fmt.geometry().granule();
    let region = WINDOW / 4;
    for reader in [false, true] {
        let op = if reader {
            "writers_with_dump_reader"
        } else {
            "disjoint_writers"
        };
        let mut g = c.benchmark_group(format!("{name}/{op}"));
        for t in thread_counts() {
            let pt: Pt<F> = table(fmt.clone());
            g.throughput(Throughput::Elements(t as u64));
            g.bench_with_input(BenchmarkId::from_parameter(t), &t, |b, &t| {
                b.iter_custom(|iters| {
                    let stop = AtomicBool::new(false);
                    std::thread::scope(|s| {
                        if reader {
                            let (pt, stop) = (&pt, &stop);
                            s.spawn(move || {
                                while !stop.load(Ordering::Relaxed) {
                                    pt.dump(&mut std::io::sink()).unwrap();
                                }
                            });
                        }
                        let handles: Vec<_> = (0..t)
                            .map(|w| {
                                let pt = &pt;
                                s.spawn(move || {
                                    let base = w as u64 * region;
                                    let per = region / gran;
                                    let sess = pt.session();
                                    let mut gather = Gather::new();
                                    let t0 = Instant::now();
                                    for i in 0..iters {
                                        let iova = base + (i % per) * gran;
                                        sess.map_pages(
                                            Iova(iova),
                                            PhysAddr(iova + PA_DELTA),
                                            gran,
                                            1,
                                            Prot::RW,
                                        )
                                        .unwrap();
                                        sess.unmap_pages(Iova(iova), gran, 1, &mut gather).unwrap();
                                    }
                                    let elapsed = t0.elapsed();
                                    gather.release();
                                    elapsed
                                })
                            })
                            .collect();
                        let max = handles
                            .into_iter()
                            .map(|h| h.join().unwrap())
                            .max()
                            .unwrap();
                        stop.store(true, Ordering::Relaxed);
                        max
                    })
                })
            });
        }
        g.finish();
    }
}

/// aarch64-paging on the Arm stage-1 4K work: identity map, `map_range` per page,
/// 512-page ranges, 2M blocks; unmapping by mapping without VALID.
fn aarch64_paging_peer(c: &mut Criterion) {
    use aarch64_paging::descriptor::El1Attributes as A;
    use aarch64_paging::idmap::IdMap;
    use aarch64_paging::paging::{Constraints, El1And0, MemoryRegion};
    let attrs = A::VALID
        | A::ACCESSED
        | A::NON_GLOBAL
        | A::ATTRIBUTE_INDEX_1
        | A::INNER_SHAREABLE
        | A::USER;
    let none = A::ACCESSED | A::NON_GLOBAL | A::ATTRIBUTE_INDEX_1 | A::INNER_SHAREABLE | A::USER;
    let base = 0x40_0000_0000usize;
    let pages = (WINDOW / K4) as usize;
    let mut idmap = IdMap::with_asid(1, 0, El1And0);
    idmap
        .map_range(&MemoryRegion::new(base, base + WINDOW as usize), none)
        .unwrap();

    let mut g = c.benchmark_group("aarch64-paging/map_4k");
    g.throughput(Throughput::Elements(1));
    g.bench_function("map_range", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let n = (iters - done).min(pages as u64) as usize;
                let t = Instant::now();
                for i in 0..n {
                    let a = base + i * K4 as usize;
                    black_box(idmap.map_range(&MemoryRegion::new(a, a + K4 as usize), attrs))
                        .unwrap();
                }
                total += t.elapsed();
                idmap
                    .map_range(&MemoryRegion::new(base, base + WINDOW as usize), none)
                    .unwrap();
                done += n as u64;
            }
            total
        })
    });
    g.finish();

    let mut g = c.benchmark_group("aarch64-paging/unmap_4k");
    g.throughput(Throughput::Elements(1));
    g.bench_function("map_range_invalid", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let n = (iters - done).min(pages as u64) as usize;
                idmap
                    .map_range(&MemoryRegion::new(base, base + WINDOW as usize), attrs)
                    .unwrap();
                let t = Instant::now();
                for i in 0..n {
                    let a = base + i * K4 as usize;
                    black_box(idmap.map_range(&MemoryRegion::new(a, a + K4 as usize), none))
                        .unwrap();
                }
                total += t.elapsed();
                done += n as u64;
            }
            total
        })
    });
    g.finish();

    let mut g = c.benchmark_group("aarch64-paging/map_512");
    g.throughput(Throughput::Elements(512));
    g.bench_function("map_range", |b| {
        // 512 pages per call, not one 2M block (which aarch64-paging would pick by
        // itself); only the map is timed, like our map_512.
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters as usize {
                let a = base + (i % 512) * M2 as usize;
                let r = MemoryRegion::new(a, a + M2 as usize);
                let t = Instant::now();
                black_box(idmap.map_range_with_constraints(
                    &r,
                    attrs,
                    Constraints::NO_BLOCK_MAPPINGS,
                ))
                .unwrap();
                total += t.elapsed();
                idmap
                    .map_range_with_constraints(&r, none, Constraints::NO_BLOCK_MAPPINGS)
                    .unwrap();
            }
            total
        })
    });
    g.finish();

    let mut g = c.benchmark_group("aarch64-paging/map_2m");
    g.throughput(Throughput::Elements(512));
    let mut blocks = IdMap::with_asid(1, 0, El1And0);
    g.bench_function("map_unmap_pair", |b| {
        let mut i = 0usize;
        b.iter(|| {
            let a = base + (i % 512) * M2 as usize;
            black_box(blocks.map_range(&MemoryRegion::new(a, a + M2 as usize), attrs)).unwrap();
            blocks
                .map_range(&MemoryRegion::new(a, a + M2 as usize), none)
                .unwrap();
            i += 1;
        })
    });
    g.finish();
}

fn all(c: &mut Criterion) {
    // The core on its own test format (issue targets of pgtable-core).
    single_pages(c, "core-testfmt", TestFormat::new());
    batched(c, "core-testfmt", TestFormat::new());
    single_pages(c, "vtd-ss-48", vtd_ss_48());
    single_pages(c, "arm-s1-4k-48", arm_s1_4k_48());
    aarch64_paging_peer(c);
    single_pages(c, "vtd-fs-48", vtd_fs_48());
    single_pages(c, "arm-s1-64k-48", arm_s1_64k_48());
    single_pages(c, "arm-s2-4k-40", arm_s2_4k_40());
    batched(c, "vtd-ss-48", vtd_ss_48());
    batched(c, "vtd-fs-48", vtd_fs_48());
    batched(c, "arm-s1-4k-48", arm_s1_4k_48());
    batched(c, "arm-s1-64k-48", arm_s1_64k_48());
    batched(c, "arm-s2-4k-40", arm_s2_4k_40());
    threads(c, "vtd-ss-48", vtd_ss_48());
    threads(c, "vtd-fs-48", vtd_fs_48());
    threads(c, "arm-s1-4k-48", arm_s1_4k_48());
    threads(c, "arm-s1-64k-48", arm_s1_64k_48());
    threads(c, "arm-s2-4k-40", arm_s2_4k_40());
}

criterion_group! {
    name = suite;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2)).sample_size(20);
    targets = all
}
criterion_main!(suite);
