//! Time-bounded multi-thread stress test. Every allocated pfn is marked in an atomic
//! bitmap by the thread that got it and unmarked by the thread that frees it (another
//! one: ranges travel through channels), so two live owners of one pfn fail at once.
//! More threads than cores, so pair locks are sometimes held by preempted threads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use iova_cache::{IovaDomain, IovaOptions};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const THREADS: usize = 4;
/// Ranges queued for each thread to free, at most.
const IN_FLIGHT: usize = 1024;
/// Most requests stay below this, so the space runs out and flushes happen.
const WINDOW: u64 = 1 << 18;
/// A reservation inside the window nobody may touch.
const RESERVED: (u64, u64) = (0x1000, 0x10ff);

struct Bitmap(Vec<AtomicU64>);

impl Bitmap {
    fn new(pages: u64) -> Self {
        Bitmap((0..pages / 64 + 1).map(|_| AtomicU64::new(0)).collect())
    }

    fn claim(&self, lo: u64, pages: u64) {
        for p in lo..lo + pages {
            let prev = self.0[(p / 64) as usize].fetch_or(1 << (p % 64), Ordering::AcqRel);
            assert_eq!(prev & 1 << (p % 64), 0, "pfn {p:#x} handed out while owned");
        }
    }

    fn release(&self, lo: u64, pages: u64) {
        for p in lo..lo + pages {
            let prev = self.0[(p / 64) as usize].fetch_and(!(1 << (p % 64)), Ordering::AcqRel);
            assert_ne!(prev & 1 << (p % 64), 0, "pfn {p:#x} freed while not owned");
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Owned {
    lo: u64,
    size: u64,
    pages: u64,
    fast: bool,
}

/// Where ranges above the window land: tracked in the bitmap only below this.
const TRACKED: u64 = 4 * WINDOW;

fn give_back(d: &IovaDomain, map: &Bitmap, rng: &mut SmallRng, o: Owned) {
    map.release(o.lo, o.pages);
    if o.fast && rng.gen_bool(0.9) {
        d.free_fast(o.lo, o.size).unwrap();
    } else {
        d.free(o.lo + rng.gen_range(0..o.pages)).unwrap();
    }
}

fn worker(
    d: &IovaDomain,
    map: &Bitmap,
    seed: u64,
    deadline: Instant,
    tx: SyncSender<Owned>,
    rx: &Receiver<Owned>,
) -> u64 {
    let mut rng = SmallRng::seed_from_u64(seed);
    let max_cached = d.stats().max_cached_pages;
    let mut ops = 0;
    while Instant::now() < deadline {
        for _ in 0..64 {
            let size = match rng.gen_range(0..10) {
                0..=5 => 1,
                6..=8 => rng.gen_range(2..=32),
                _ => rng.gen_range(33..=80),
            };
            // Mostly one DMA mask, some lower and higher ones mixed in.
            let limit = match rng.gen_range(0..10) {
                0 => WINDOW / 2,
                1 => TRACKED - 1,
                _ => WINDOW,
            };
            let fast = rng.gen_bool(0.85);
            let got = if fast {
                d.alloc_fast(size, limit, rng.gen_bool(0.05))
            } else {
                d.alloc(size, limit, rng.gen_bool(0.5)).ok()
            };
            ops += 1;
            if let Some(lo) = got {
                let pages = if fast && size <= max_cached {
                    size.next_power_of_two()
                } else {
                    size
                };
                assert!(
                    lo >= 1 && lo + pages - 1 <= limit,
                    "{lo:#x}+{pages} over {limit:#x}"
                );
                map.claim(lo, pages);
                assert_eq!(d.find(lo + pages - 1), Some((lo, lo + pages - 1)));
                // Hand it to the next thread to free; if that one lags behind (its queue
                // is full), free it here so the space in flight stays bounded.
                match tx.try_send(Owned {
                    lo,
                    size,
                    pages,
                    fast,
                }) {
                    Ok(()) => {}
                    Err(TrySendError::Full(o)) => give_back(d, map, &mut rng, o),
                    Err(TrySendError::Disconnected(_)) => unreachable!(),
                }
            }
        }
        // Free what the previous thread allocated.
        while let Ok(o) = rx.try_recv() {
            give_back(d, map, &mut rng, o);
            ops += 1;
        }
        if rng.gen_ratio(1, 50) {
            d.flush_caches();
        }
        let _ = d.stats();
    }
    ops
}

fn stress(opts: IovaOptions, duration: Duration) {
    let d = Arc::new(IovaDomain::with_options(&opts).unwrap());
    let map = Arc::new(Bitmap::new(TRACKED));
    d.reserve(RESERVED.0, RESERVED.1).unwrap();
    map.claim(RESERVED.0, RESERVED.1 - RESERVED.0 + 1);
    let (txs, rxs): (Vec<SyncSender<Owned>>, Vec<Receiver<Owned>>) =
        (0..THREADS).map(|_| sync_channel(IN_FLIGHT)).unzip();
    let start = Arc::new(Barrier::new(THREADS));
    let deadline = Instant::now() + duration;
    let handles: Vec<_> = rxs
        .into_iter()
        .enumerate()
        .map(|(i, rx)| {
            let (d, map, start) = (d.clone(), map.clone(), start.clone());
            let tx = txs[(i + 1) % THREADS].clone();
            thread::spawn(move || {
                start.wait();
                let ops = worker(&d, &map, i as u64 + 1, deadline, tx, &rx);
                (ops, rx)
            })
        })
        .collect();
    drop(txs);
    let mut total = 0;
    let mut leftovers = Vec::new();
    for h in handles {
        let (ops, rx) = h.join().unwrap();
        total += ops;
        leftovers.push(rx);
    }
    for rx in leftovers {
        for o in rx.try_iter() {
            map.release(o.lo, o.pages);
            d.free(o.lo).unwrap();
        }
    }
    let s = d.stats();
    eprintln!("{total} operations in {duration:?} ({opts:?}): {s:?}");
    assert!(s.cache_hits > 0 && s.cache_misses > 0);
    d.flush_caches();
    let s = d.stats();
    assert_eq!(
        (s.live_ranges, s.cached_pfns, s.depot_magazines),
        (0, 0, 0),
        "{s:?}"
    );
    assert_eq!(d.find(RESERVED.0), Some(RESERVED));
    map.release(RESERVED.0, RESERVED.1 - RESERVED.0 + 1);
    assert!(map.0.iter().all(|w| w.load(Ordering::Relaxed) == 0));
}

#[test]
fn concurrent_alloc_free_never_double_allocates() {
    stress(
        IovaOptions {
            depot_limit: 1,
            ..IovaOptions::default()
        },
        Duration::from_millis(1300),
    );
}

#[test]
fn concurrent_checked_domain_accepts_every_correct_free() {
    stress(
        IovaOptions {
            checked: true,
            max_cached_order: 3,
            depot_limit: 2,
            ..IovaOptions::new(4096, 1)
        },
        Duration::from_millis(600),
    );
}
