//! The fast path against its floor and against Linux (issue 12): one call per page or
//! block, as a driver makes them, in five variants measured in one run:
//!
//! - `floor`: the same format's walk with plain loads and stores (`benches::floor`);
//! - `session`: the Rust table inside one pinned `Session`;
//! - `per_call`: the Rust table, each call pinning on its own;
//! - `capi`: through the C API (function pointers, as C calls it), each call pinning;
//! - `capi_session`: through the C API inside `iommu_pt_session_begin/_end`.
//!
//! Plus `pin/pin_unpin` (what one epoch pin costs here), the reclamation-stall test
//! (`stalls/*`: each of 512 2 MiB maps after a 512-table release timed on its own),
//! release cost beside an open session (`release/*`), and what a concurrent reader
//! costs a writer (`readers/*`). `scripts/bench-report.sh` turns them into the tables of
//! `benches/README.md`.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use benches::capi::CTable;
use benches::floor::Floor;
use benches::{M2, PA_DELTA, WINDOW, arm_s1_4k_48, vtd_fs_48, vtd_ss_48};
use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use iommu_pt::types::{IOMMU_PT_FMT_ARM_S1, IOMMU_PT_FMT_VTD_FS, IOMMU_PT_FMT_VTD_SS};
use pgtable_core::{Format, Gather, HostMemory, Iova, PageTable, PhysAddr, Prot};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

type Pt<F> = PageTable<F, HostMemory>;

/// The 4 KiB window: 1 GiB at 256 GiB.
const BASE: u64 = 0x40_0000_0000;
/// The 2 MiB window: another GiB, never holding 4 KiB pages (so a block map never
/// replaces a table).
const BASE_2M: u64 = 0x80_0000_0000;
const K4: u64 = 0x1000;
const PAGES: u64 = WINDOW / K4;
const BLOCKS: u64 = WINDOW / M2;

/// A format under test, with its C constant.
struct Case<F> {
    name: &'static str,
    fmt: F,
    c_format: u32,
}

/// Times `op(i)` for consecutive `i` up to `per_round`, running `reset` (untimed) after
/// each round.
fn rounds(
    iters: u64,
    per_round: u64,
    mut op: impl FnMut(u64),
    mut reset: impl FnMut(),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = (iters - done).min(per_round);
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

fn rust_table<F: Format>(fmt: &F) -> Pt<F> {
    PageTable::new(fmt.clone(), Arc::new(HostMemory::new())).expect("table")
}

/// Everything a variant needs: a Rust table, a C table and a floor of one format, with
/// the window's tables already allocated (mapped once, then unmapped page by page).
struct Tables<F: Format> {
    pt: Pt<F>,
    c: CTable,
    floor: Floor<F>,
}

impl<F: Format> Tables<F> {
    fn new(case: &Case<F>) -> Self {
        let t = Tables {
            pt: rust_table(&case.fmt),
            c: CTable::new(case.c_format, 48, 48, 4096),
            floor: Floor::new(case.fmt.clone()),
        };
        t.pt.map_pages(Iova(BASE), PhysAddr(BASE + PA_DELTA), K4, PAGES, Prot::RW)
            .unwrap();
        assert_eq!(t.c.map_pages(BASE, BASE + PA_DELTA, K4, PAGES), 0);
        t
    }

    fn unmap_window(&mut self) {
        let s = self.pt.session();
        let mut g = Gather::new();
        for i in 0..PAGES {
            let iova = BASE + i * K4;
            s.unmap_pages(Iova(iova), K4, 1, &mut g).unwrap();
            self.c.unmap_pages(iova, K4, 1);
            self.floor.unmap_pages(iova, K4, 1);
        }
        drop(s);
        g.release();
        self.c.release();
    }

    fn map_window(&mut self) {
        let s = self.pt.session();
        for i in 0..PAGES {
            let iova = BASE + i * K4;
            s.map_pages(Iova(iova), PhysAddr(iova + PA_DELTA), K4, 1, Prot::RW)
                .unwrap();
            self.c.map_pages(iova, iova + PA_DELTA, K4, 1);
            self.floor.map_pages(iova, iova + PA_DELTA, K4, 1, Prot::RW);
        }
    }
}

fn single_pages<F: Format>(c: &mut Criterion, case: &Case<F>) {
    let mut t = Tables::new(case);
    t.unmap_window();
    t.floor
        .map_pages(BASE, BASE + PA_DELTA, K4, PAGES, Prot::RW);
    t.unmap_window();
    let t = std::cell::RefCell::new(t);
    let name = case.name;
    let pa = |i: u64| BASE + i * K4 + PA_DELTA;
    let iova = |i: u64| BASE + i * K4;

    // map one 4K page, tables allocated
    let mut g = c.benchmark_group(format!("fast/{name}/map_4k"));
    g.throughput(Throughput::Elements(1));
    g.bench_function("floor", |b| {
        b.iter_custom(|n| {
            let mut t = t.borrow_mut();
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < n {
                let k = (n - done).min(PAGES);
                let t0 = Instant::now();
                for i in 0..k {
                    t.floor.map_pages(iova(i), pa(i), K4, 1, Prot::RW);
                }
                total += t0.elapsed();
                done += k;
                for i in 0..k {
                    t.floor.unmap_pages(iova(i), K4, 1);
                }
            }
            total
        })
    });
    let unmap_rust = |t: &Tables<F>| {
        let s = t.pt.session();
        let mut g = Gather::new();
        for i in 0..PAGES {
            let _ = s.unmap_pages(Iova(iova(i)), K4, 1, &mut g);
        }
        drop(s);
        g.release();
    };
    g.bench_function("session", |b| {
        b.iter_custom(|n| {
            let t = t.borrow();
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < n {
                let k = (n - done).min(PAGES);
                let s = t.pt.session();
                let t0 = Instant::now();
                for i in 0..k {
                    black_box(s.map_pages(Iova(iova(i)), PhysAddr(pa(i)), K4, 1, Prot::RW))
                        .unwrap();
                }
                total += t0.elapsed();
                drop(s);
                done += k;
                unmap_rust(&t);
            }
            total
        })
    });
    g.bench_function("per_call", |b| {
        b.iter_custom(|n| {
            let t = t.borrow();
            rounds(
                n,
                PAGES,
                |i| {
                    black_box(t.pt.map_pages(Iova(iova(i)), PhysAddr(pa(i)), K4, 1, Prot::RW))
                        .unwrap();
                },
                || unmap_rust(&t),
            )
        })
    });
    let unmap_c = |t: &Tables<F>| {
        for i in 0..PAGES {
            t.c.unmap_pages(iova(i), K4, 1);
        }
        t.c.release();
    };
    g.bench_function("capi", |b| {
        b.iter_custom(|n| {
            let t = t.borrow();
            rounds(
                n,
                PAGES,
                |i| assert_eq!(t.c.map_pages(iova(i), pa(i), K4, 1), 0),
                || unmap_c(&t),
            )
        })
    });
    g.bench_function("capi_session", |b| {
        b.iter_custom(|n| {
            let t = t.borrow();
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < n {
                let k = (n - done).min(PAGES);
                total += t.c.in_session(|| {
                    let t0 = Instant::now();
                    for i in 0..k {
                        assert_eq!(t.c.map_pages(iova(i), pa(i), K4, 1), 0);
                    }
                    t0.elapsed()
                });
                done += k;
                unmap_c(&t);
            }
            total
        })
    });
    g.finish();

    // unmap one 4K page (the tables stay: no single-page unmap covers a table's span)
    t.borrow_mut().map_window();
    let mut g = c.benchmark_group(format!("fast/{name}/unmap_4k"));
    g.throughput(Throughput::Elements(1));
    g.bench_function("floor", |b| {
        b.iter_custom(|n| {
            let mut t = t.borrow_mut();
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < n {
                let k = (n - done).min(PAGES);
                let t0 = Instant::now();
                for i in 0..k {
                    black_box(t.floor.unmap_pages(iova(i), K4, 1));
                }
                total += t0.elapsed();
                done += k;
                for i in 0..k {
                    t.floor.map_pages(iova(i), pa(i), K4, 1, Prot::RW);
                }
            }
            total
        })
    });
    let map_rust = |t: &Tables<F>| {
        let s = t.pt.session();
        for i in 0..PAGES {
            let _ = s.map_pages(Iova(iova(i)), PhysAddr(pa(i)), K4, 1, Prot::RW);
        }
    };
    g.bench_function("session", |b| {
        b.iter_custom(|n| {
            let t = t.borrow();
            let mut total = Duration::ZERO;
            let mut done = 0;
            let mut gather = Gather::new();
            while done < n {
                let k = (n - done).min(PAGES);
                let s = t.pt.session();
                let t0 = Instant::now();
                for i in 0..k {
                    black_box(s.unmap_pages(Iova(iova(i)), K4, 1, &mut gather)).unwrap();
                }
                total += t0.elapsed();
                drop(s);
                gather.release();
                done += k;
                map_rust(&t);
            }
            total
        })
    });
    g.bench_function("per_call", |b| {
        b.iter_custom(|n| {
            let t = t.borrow();
            let mut gather = Gather::new();
            let d = rounds(
                n,
                PAGES,
                |i| {
                    black_box(t.pt.unmap_pages(Iova(iova(i)), K4, 1, &mut gather)).unwrap();
                },
                || map_rust(&t),
            );
            gather.release();
            d
        })
    });
    let map_c = |t: &Tables<F>| {
        t.c.release();
        for i in 0..PAGES {
            t.c.map_pages(iova(i), pa(i), K4, 1);
        }
    };
    g.bench_function("capi", |b| {
        b.iter_custom(|n| {
            let t = t.borrow();
            rounds(
                n,
                PAGES,
                |i| assert_eq!(t.c.unmap_pages(iova(i), K4, 1), K4),
                || map_c(&t),
            )
        })
    });
    g.bench_function("capi_session", |b| {
        b.iter_custom(|n| {
            let t = t.borrow();
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < n {
                let k = (n - done).min(PAGES);
                total += t.c.in_session(|| {
                    let t0 = Instant::now();
                    for i in 0..k {
                        assert_eq!(t.c.unmap_pages(iova(i), K4, 1), K4);
                    }
                    t0.elapsed()
                });
                done += k;
                map_c(&t);
            }
            total
        })
    });
    g.finish();

    // iova_to_phys of every page of the mapped window
    t.borrow_mut().unmap_window();
    t.borrow_mut().map_window();
    let mut g = c.benchmark_group(format!("fast/{name}/iova_to_phys"));
    g.throughput(Throughput::Elements(1));
    g.bench_function("floor", |b| {
        b.iter_custom(|n| {
            let t = t.borrow();
            rounds(
                n,
                PAGES,
                |i| assert!(black_box(t.floor.iova_to_phys(iova(i))).is_some()),
                || {},
            )
        })
    });
    g.bench_function("session", |b| {
        b.iter_custom(|n| {
            let t = t.borrow();
            let s = t.pt.session();
            rounds(
                n,
                PAGES,
                |i| assert!(black_box(s.iova_to_phys(Iova(iova(i)))).is_some()),
                || {},
            )
        })
    });
    g.bench_function("per_call", |b| {
        b.iter_custom(|n| {
            let t = t.borrow();
            rounds(
                n,
                PAGES,
                |i| assert!(black_box(t.pt.iova_to_phys(Iova(iova(i)))).is_some()),
                || {},
            )
        })
    });
    g.bench_function("capi", |b| {
        b.iter_custom(|n| {
            let t = t.borrow();
            rounds(
                n,
                PAGES,
                |i| assert_ne!(t.c.iova_to_phys(iova(i)), 0),
                || {},
            )
        })
    });
    g.bench_function("capi_session", |b| {
        b.iter_custom(|n| {
            let t = t.borrow();
            t.c.in_session(|| {
                rounds(
                    n,
                    PAGES,
                    |i| assert_ne!(t.c.iova_to_phys(iova(i)), 0),
                    || {},
                )
            })
        })
    });
    g.finish();
}

/// 2 MiB blocks (map, unmap) and 512 pages per call (map, unmap: a whole table).
fn blocks_and_batches<F: Format>(c: &mut Criterion, case: &Case<F>) {
    let name = case.name;
    let pt = rust_table(&case.fmt);
    let ct = CTable::new(case.c_format, 48, 48, 4096);
    let mut floor = Floor::new(case.fmt.clone());
    // Allocate the level-1 table of the block window once.
    pt.map_pages(Iova(BASE_2M), PhysAddr(0), M2, 1, Prot::RW)
        .unwrap();
    pt.unmap_now(Iova(BASE_2M), M2).unwrap();
    ct.map_pages(BASE_2M, 0, M2, 1);
    ct.unmap_pages(BASE_2M, M2, 1);
    ct.release();
    floor.map_pages(BASE_2M, 0, M2, 1, Prot::RW);
    floor.unmap_pages(BASE_2M, M2, 1);
    let iova = |i: u64| BASE_2M + i * M2;
    let pa = |i: u64| iova(i) + PA_DELTA;

    for op in ["map_2m", "unmap_2m"] {
        let map = op == "map_2m";
        let mut g = c.benchmark_group(format!("fast/{name}/{op}"));
        g.throughput(Throughput::Elements(1));
        g.bench_function("floor", |b| {
            b.iter_custom(|n| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < n {
                    let k = (n - done).min(BLOCKS);
                    if !map {
                        floor.map_pages(iova(0), pa(0), M2, k, Prot::RW);
                    }
                    let t0 = Instant::now();
                    for i in 0..k {
                        if map {
                            floor.map_pages(iova(i), pa(i), M2, 1, Prot::RW);
                        } else {
                            black_box(floor.unmap_pages(iova(i), M2, 1));
                        }
                    }
                    total += t0.elapsed();
                    if map {
                        floor.unmap_pages(iova(0), M2, k);
                    }
                    done += k;
                }
                total
            })
        });
        let variant = |b: &mut criterion::Bencher, how: &str| {
            b.iter_custom(|n| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                let mut gather = Gather::new();
                let rust = matches!(how, "session" | "per_call");
                while done < n {
                    let k = (n - done).min(BLOCKS);
                    if !map && rust {
                        pt.map_pages(Iova(iova(0)), PhysAddr(pa(0)), M2, k, Prot::RW)
                            .unwrap();
                    } else if !map {
                        assert_eq!(ct.map_pages(iova(0), pa(0), M2, k), 0);
                    }
                    let s = (how == "session").then(|| pt.session());
                    let cs = (how == "capi_session")
                        .then(|| iommu_pt::session::iommu_pt_session_begin());
                    let t0 = Instant::now();
                    for i in 0..k {
                        match (how, map) {
                            ("session", true) => {
                                let s = s.as_ref().unwrap();
                                black_box(s.map_pages(
                                    Iova(iova(i)),
                                    PhysAddr(pa(i)),
                                    M2,
                                    1,
                                    Prot::RW,
                                ))
                                .unwrap();
                            }
                            ("session", false) => {
                                let s = s.as_ref().unwrap();
                                black_box(s.unmap_pages(Iova(iova(i)), M2, 1, &mut gather))
                                    .unwrap();
                            }
                            ("per_call", true) => {
                                black_box(pt.map_pages(
                                    Iova(iova(i)),
                                    PhysAddr(pa(i)),
                                    M2,
                                    1,
                                    Prot::RW,
                                ))
                                .unwrap();
                            }
                            ("per_call", false) => {
                                black_box(pt.unmap_pages(Iova(iova(i)), M2, 1, &mut gather))
                                    .unwrap();
                            }
                            (_, true) => assert_eq!(ct.map_pages(iova(i), pa(i), M2, 1), 0),
                            (_, false) => assert_eq!(ct.unmap_pages(iova(i), M2, 1), M2),
                        }
                    }
                    total += t0.elapsed();
                    drop(s);
                    if let Some(cs) = cs {
                        // SAFETY: the session this thread began above.
                        unsafe { iommu_pt::session::iommu_pt_session_end(cs) };
                    }
                    if map && rust {
                        pt.unmap(Iova(iova(0)), k * M2, &mut gather).unwrap();
                    } else if map {
                        ct.unmap_pages(iova(0), M2, k);
                    }
                    gather.release();
                    ct.release();
                    done += k;
                }
                total
            })
        };
        for how in ["session", "per_call", "capi", "capi_session"] {
            g.bench_function(how, |b| variant(b, how));
        }
        g.finish();
    }

    // 512 pages per call: into existing tables (map), and a whole table (unmap, which
    // detaches it into the gather; the release is not timed).
    let per = 512u64;
    let span = per * K4;
    let tables = WINDOW / span;
    let iova = |i: u64| BASE + i * span;
    let pa = |i: u64| iova(i) + PA_DELTA;
    for op in ["map_512", "unmap_512"] {
        let map = op == "map_512";
        let pt = rust_table(&case.fmt);
        let ct = CTable::new(case.c_format, 48, 48, 4096);
        let mut floor = Floor::new(case.fmt.clone());
        let mut g = c.benchmark_group(format!("fast/{name}/{op}"));
        g.throughput(Throughput::Elements(per));
        // Tables exist: map the window, then unmap it in halves (tables stay).
        let halves = |pt: &Pt<F>, ct: &CTable| {
            let mut gather = Gather::new();
            for i in 0..tables {
                for h in 0..2 {
                    let at = iova(i) + h * span / 2;
                    pt.unmap(Iova(at), span / 2, &mut gather).unwrap();
                    ct.unmap_pages(at, K4, per / 2);
                }
            }
            gather.release();
            ct.release();
        };
        pt.map_pages(Iova(BASE), PhysAddr(BASE + PA_DELTA), K4, PAGES, Prot::RW)
            .unwrap();
        ct.map_pages(BASE, BASE + PA_DELTA, K4, PAGES);
        halves(&pt, &ct);
        g.bench_function("floor", |b| {
            b.iter_custom(|n| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < n {
                    let k = (n - done).min(tables);
                    if !map {
                        floor.map_pages(BASE, BASE + PA_DELTA, K4, k * per, Prot::RW);
                    }
                    let t0 = Instant::now();
                    for i in 0..k {
                        if map {
                            floor.map_pages(iova(i), pa(i), K4, per, Prot::RW);
                        } else {
                            black_box(floor.unmap_pages(iova(i), K4, per));
                        }
                    }
                    total += t0.elapsed();
                    if map {
                        for i in 0..k {
                            // Halves, so the floor keeps its tables too.
                            floor.unmap_pages(iova(i), K4, per / 2);
                            floor.unmap_pages(iova(i) + span / 2, K4, per / 2);
                        }
                    }
                    done += k;
                }
                total
            })
        });
        let variant = |b: &mut criterion::Bencher, how: &str| {
            b.iter_custom(|n| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                let mut gather = Gather::new();
                let rust = matches!(how, "session" | "per_call");
                while done < n {
                    let k = (n - done).min(tables);
                    if !map && rust {
                        pt.map_pages(Iova(BASE), PhysAddr(BASE + PA_DELTA), K4, k * per, Prot::RW)
                            .unwrap();
                    } else if !map {
                        assert_eq!(ct.map_pages(BASE, BASE + PA_DELTA, K4, k * per), 0);
                    }
                    let s = (how == "session").then(|| pt.session());
                    let t0 = Instant::now();
                    for i in 0..k {
                        match (how, map) {
                            ("session", true) => {
                                black_box(s.as_ref().unwrap().map_pages(
                                    Iova(iova(i)),
                                    PhysAddr(pa(i)),
                                    K4,
                                    per,
                                    Prot::RW,
                                ))
                                .unwrap();
                            }
                            ("session", false) => {
                                black_box(s.as_ref().unwrap().unmap_pages(
                                    Iova(iova(i)),
                                    K4,
                                    per,
                                    &mut gather,
                                ))
                                .unwrap();
                            }
                            ("per_call", true) => {
                                black_box(pt.map_pages(
                                    Iova(iova(i)),
                                    PhysAddr(pa(i)),
                                    K4,
                                    per,
                                    Prot::RW,
                                ))
                                .unwrap();
                            }
                            ("per_call", false) => {
                                black_box(pt.unmap_pages(Iova(iova(i)), K4, per, &mut gather))
                                    .unwrap();
                            }
                            (_, true) => assert_eq!(ct.map_pages(iova(i), pa(i), K4, per), 0),
                            (_, false) => assert_eq!(ct.unmap_pages(iova(i), K4, per), span),
                        }
                    }
                    total += t0.elapsed();
                    drop(s);
                    gather.release();
                    ct.release();
                    if map {
                        halves(&pt, &ct);
                    }
                    done += k;
                }
                total
            })
        };
        for how in ["session", "per_call", "capi"] {
            g.bench_function(how, |b| variant(b, how));
        }
        g.finish();
    }
}

/// One epoch pin and unpin, not nested: what `per_call` pays over `session`.
fn pin(c: &mut Criterion) {
    let mut g = c.benchmark_group("pin");
    g.throughput(Throughput::Elements(1));
    g.bench_function("pin_unpin", |b| {
        b.iter(|| drop(black_box(pgtable_core::sync::epoch::pin())))
    });
    g.finish();
}

/// Releases 512 tables, then times each of the next 512 2 MiB maps on its own; the
/// worst call against the median is the stall (v0.1: one call in 512 ran every
/// deferred free). Writes `target/criterion/stalls/<name>.json`.
fn stalls<F: Format>(c: &mut Criterion, case: &Case<F>) {
    let name = case.name;
    let mut samples: Vec<u64> = Vec::new();
    let mut g = c.benchmark_group(format!("stalls/{name}"));
    g.throughput(Throughput::Elements(512));
    g.bench_function("map_2m_after_release", |b| {
        b.iter_custom(|n| {
            let mut total = Duration::ZERO;
            for _ in 0..n {
                let pt = rust_table(&case.fmt);
                pt.map_pages(Iova(BASE), PhysAddr(0), K4, PAGES, Prot::RW)
                    .unwrap();
                let mut gather = Gather::new();
                pt.unmap(Iova(BASE), WINDOW, &mut gather).unwrap();
                assert!(gather.freed_tables() >= 512);
                gather.release();
                for i in 0..BLOCKS {
                    let at = BASE_2M + i * M2;
                    let t0 = Instant::now();
                    black_box(pt.map_pages(Iova(at), PhysAddr(at), M2, 1, Prot::RW)).unwrap();
                    let d = t0.elapsed();
                    total += d;
                    samples.push(d.as_nanos() as u64);
                }
                // Keep the table (and its reclamation) out of the timed part.
                drop(black_box(pt));
            }
            total
        })
    });
    g.finish();
    if samples.is_empty() {
        return;
    }
    samples.sort_unstable();
    let pct = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
    let (median, p99, max) = (pct(0.5), pct(0.99), *samples.last().unwrap());
    println!(
        "stalls/{name}: {} calls, median {median} ns, p99 {p99} ns, max {max} ns, max/median {:.1}",
        samples.len(),
        max as f64 / median.max(1) as f64
    );
    let dir = std::path::Path::new("target/criterion/stalls");
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(
        dir.join(format!("{name}.json")),
        format!(
            "{{\"calls\": {}, \"median_ns\": {median}, \"p99_ns\": {p99}, \"max_ns\": {max}}}\n",
            samples.len()
        ),
    );
}

/// A gather release (one whole table) alone, and beside a thread holding a session
/// open for the whole sample, so that every batch released waits behind it.
fn release<F: Format>(c: &mut Criterion, case: &Case<F>) {
    let name = case.name;
    let mut g = c.benchmark_group(format!("release/{name}"));
    g.throughput(Throughput::Elements(1));
    for beside in [false, true] {
        let pt = rust_table(&case.fmt);
        let id = if beside { "beside_session" } else { "alone" };
        g.bench_function(id, |b| {
            b.iter_custom(|n| {
                let pinned = AtomicBool::new(!beside);
                let stop = AtomicBool::new(false);
                std::thread::scope(|s| {
                    if beside {
                        let (pt, pinned, stop) = (&pt, &pinned, &stop);
                        s.spawn(move || {
                            let _session = pt.session();
                            pinned.store(true, Ordering::Release);
                            while !stop.load(Ordering::Relaxed) {
                                std::thread::sleep(Duration::from_micros(200));
                            }
                        });
                    }
                    while !pinned.load(Ordering::Acquire) {
                        std::hint::spin_loop();
                    }
                    let mut total = Duration::ZERO;
                    let mut gather = Gather::new();
                    for i in 0..n {
                        let at = BASE + (i % 512) * M2;
                        pt.map_pages(Iova(at), PhysAddr(0), K4, 512, Prot::RW)
                            .unwrap();
                        pt.unmap(Iova(at), M2, &mut gather).unwrap();
                        let t0 = Instant::now();
                        gather.release();
                        total += t0.elapsed();
                    }
                    stop.store(true, Ordering::Relaxed);
                    total
                })
            })
        });
    }
    g.finish();
}

/// A single-page writer (map + unmap per iteration, each call pinning) alone, and with a
/// second thread translating its range, walking its range, or dumping the whole table.
fn readers<F: Format>(c: &mut Criterion, case: &Case<F>) {
    let name = case.name;
    let mut g = c.benchmark_group(format!("readers/{name}"));
    g.throughput(Throughput::Elements(1));
    let region = 1024 * K4;
    for reader in ["alone", "translate", "walk", "dump"] {
        let pt = rust_table(&case.fmt);
        // Some mappings around the writer's, so the reader has leaves to read.
        pt.map_pages(Iova(BASE + region), PhysAddr(0), K4, 4096, Prot::RW)
            .unwrap();
        g.bench_function(reader, |b| {
            b.iter_custom(|n| {
                let stop = AtomicBool::new(false);
                std::thread::scope(|s| {
                    let (pt, stop) = (&pt, &stop);
                    if reader != "alone" {
                        s.spawn(move || {
                            let mut i = 0u64;
                            while !stop.load(Ordering::Relaxed) {
                                match reader {
                                    "translate" => {
                                        black_box(pt.iova_to_phys(Iova(BASE + (i % 1024) * K4)));
                                    }
                                    "walk" => {
                                        pt.walk(Iova(BASE)..Iova(BASE + 2 * region), |t| {
                                            black_box(t);
                                            std::ops::ControlFlow::<()>::Continue(())
                                        })
                                        .unwrap();
                                    }
                                    _ => pt.dump(&mut std::io::sink()).unwrap(),
                                }
                                i += 1;
                            }
                        });
                    }
                    let mut gather = Gather::new();
                    let t0 = Instant::now();
                    for i in 0..n {
                        let at = BASE + (i % 1024) * K4;
                        pt.map_pages(Iova(at), PhysAddr(at), K4, 1, Prot::RW)
                            .unwrap();
                        pt.unmap_pages(Iova(at), K4, 1, &mut gather).unwrap();
                    }
                    let d = t0.elapsed();
                    gather.release();
                    stop.store(true, Ordering::Relaxed);
                    d
                })
            })
        });
    }
    g.finish();
}

/// `read_and_clear_dirty` over a GiB of 4K leaves, all clean and with 1% dirty, against
/// a plain `walk` of the same range (issue 15: ≤ 1.2× and ≤ 1.5×).
fn dirty<F: Format>(c: &mut Criterion, case: &Case<F>) {
    use pgtable_core::DirtyFlags;
    let name = case.name;
    let pt = rust_table(&case.fmt);
    pt.map_pages(Iova(BASE), PhysAddr(0), K4, PAGES, Prot::RW)
        .unwrap();
    pt.set_dirty_tracking(true).unwrap();
    let mut bitmap = vec![0u64; (PAGES / 64) as usize];
    let mut g = c.benchmark_group(format!("dirty/{name}"));
    g.throughput(Throughput::Elements(PAGES));
    g.sample_size(10);
    g.bench_function("walk", |b| {
        b.iter(|| {
            pt.walk(Iova(BASE)..Iova(BASE + WINDOW), |t| {
                black_box(t);
                std::ops::ControlFlow::<()>::Continue(())
            })
            .unwrap()
        })
    });
    g.bench_function("read_and_clear_clean", |b| {
        b.iter(|| {
            pt.read_and_clear_dirty(Iova(BASE), WINDOW, K4, &mut bitmap, DirtyFlags::empty())
                .unwrap()
        })
    });
    g.bench_function("read_and_clear_1pct", |b| {
        b.iter_custom(|n| {
            let mut total = Duration::ZERO;
            for _ in 0..n {
                // One page in a hundred, as the hardware would have written them.
                for i in (0..PAGES).step_by(100) {
                    pt.mark_dirty(Iova(BASE + i * K4)).unwrap();
                }
                let t0 = Instant::now();
                pt.read_and_clear_dirty(Iova(BASE), WINDOW, K4, &mut bitmap, DirtyFlags::empty())
                    .unwrap();
                total += t0.elapsed();
            }
            total
        })
    });
    g.finish();
}

fn all(c: &mut Criterion) {
    pin(c);
    let arm = Case {
        name: "arm-s1-4k-48",
        fmt: arm_s1_4k_48(),
        c_format: IOMMU_PT_FMT_ARM_S1,
    };
    let ss = Case {
        name: "vtd-ss-48",
        fmt: vtd_ss_48(),
        c_format: IOMMU_PT_FMT_VTD_SS,
    };
    let fs = Case {
        name: "vtd-fs-48",
        fmt: vtd_fs_48(),
        c_format: IOMMU_PT_FMT_VTD_FS,
    };
    single_pages(c, &arm);
    blocks_and_batches(c, &arm);
    single_pages(c, &ss);
    blocks_and_batches(c, &ss);
    single_pages(c, &fs);
    stalls(c, &arm);
    release(c, &arm);
    readers(c, &arm);
    dirty(c, &arm);
    dirty(c, &ss);
}

criterion_group!(benches, all);
criterion_main!(benches);
