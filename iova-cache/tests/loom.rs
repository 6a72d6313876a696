//! Loom model of the handoff between per-CPU magazine pairs, the depot and the range
//! tree (`RUSTFLAGS="--cfg loom" cargo test -p iova-cache --test loom --release`).
//!
//! Under loom a magazine holds one range and there are two CPU slots: the model's main
//! thread and the second spawned thread share slot 0, the first and third spawned
//! threads slot 1. With a depot limit of one magazine, a handful of frees and allocations drive every
//! path: pair lock contention (the busy fallback to the tree), swapping magazines,
//! pushing the older one to the depot, a trim back to the tree racing a depot refill on
//! the other CPU, and misses that fall through to the tree. After every interleaving, no
//! range may have been handed out twice and none may be lost.
//!
//! With the default depot limits (a floor of `2 * slots` = 4 magazines, the default cap
//! above it) the same frees are kept rather than trimmed, and allocations that find the
//! depot empty count demand for its growth. That variant also reads the statistics
//! while the others run: they count each class with its depot locked (taken without any
//! pair lock, so no order with the pair-then-depot refills can deadlock), and never
//! report more cached pages than the model has free.
#![cfg(loom)]

use iova_cache::{IovaDomain, IovaOptions};
use loom::sync::Arc;
use loom::thread;

/// Pfns 1..=LIMIT are the whole space the model uses.
const LIMIT: u64 = 7;

fn model(checked: bool, depot_limit: u32) {
    let mut builder = loom::model::Builder::new();
    // The default-depot variant reads the statistics too, which takes every lock;
    // two preemptions keep its exploration as long as the others'.
    builder.preemption_bound = Some(if depot_limit == 0 { 2 } else { 3 });
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = runs.clone();
    builder.check(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = Arc::new(
            IovaDomain::with_options(&IovaOptions {
                checked,
                max_cached_order: 0,
                depot_limit,
                ..IovaOptions::new(4096, 1)
            })
            .unwrap(),
        );
        // Seven single pages, top down: 7, 6, ..., 1.
        let p: Vec<u64> = (0..LIMIT)
            .map(|_| d.alloc(1, LIMIT, false).unwrap())
            .collect();
        // Slot 0 (shared by main and the second thread): both magazines full.
        d.free_fast(p[0], 1).unwrap();
        d.free_fast(p[1], 1).unwrap();

        // Slot 1: empty, so its allocation needs the depot or the tree.
        let d1 = d.clone();
        let (p2, p3) = (p[2], p[3]);
        let t1 = thread::spawn(move || {
            let got = d1.alloc_fast(1, LIMIT, false);
            d1.free_fast(p2, 1).unwrap();
            got
        });
        // Slot 0: both magazines full, so these frees push to the depot and trim.
        let d2 = d.clone();
        let (p4, p5, kept) = (p[4], p[5], p[6]);
        let t2 = thread::spawn(move || {
            d2.free_fast(p3, 1).unwrap();
            d2.free_fast(p4, 1).unwrap();
            d2.alloc_fast(1, LIMIT, false)
        });
        // Slot 1 again: contends with the first thread for that pair's lock.
        let d3 = d.clone();
        let t3 = thread::spawn(move || {
            d3.free_fast(p5, 1).unwrap();
            if depot_limit == 0 {
                // `kept` is owned throughout.
                let s = d3.stats();
                assert!(s.cached_pfns < LIMIT, "{s:?}");
            }
            d3.alloc_fast(1, LIMIT, false)
        });
        let got: Vec<u64> = [t1.join().unwrap(), t2.join().unwrap(), t3.join().unwrap()]
            .into_iter()
            .flatten()
            .collect();
        // Still owned: `kept` (never freed) and whatever the threads got.
        let mut owned = got.clone();
        owned.push(kept);
        for &o in &owned {
            assert_eq!(d.find(o), Some((o, o)), "owned range {o} not allocated");
        }
        owned.sort_unstable();
        owned.dedup();
        assert_eq!(owned.len(), got.len() + 1, "one range handed out twice");

        // Conservation: after a flush the tree holds exactly the owned ranges, and every
        // other page can be allocated again.
        d.flush_caches();
        let s = d.stats();
        assert_eq!(
            (s.live_ranges, s.cached_pfns, s.depot_magazines),
            (owned.len() as u64, 0, 0)
        );
        if depot_limit == 0 {
            // Four magazines at most ever reach the depot: under its floor, none is
            // trimmed.
            assert_eq!(s.trims, 0);
        }
        let mut again = 0;
        while let Some(x) = d.alloc_fast(1, LIMIT, false) {
            assert!(!owned.contains(&x));
            again += 1;
        }
        assert_eq!(again + owned.len() as u64, LIMIT);
    });
    eprintln!(
        "explored {} executions",
        runs.load(std::sync::atomic::Ordering::Relaxed)
    );
}

#[test]
fn magazine_depot_tree_handoff() {
    model(false, 1);
}

#[test]
fn magazine_depot_tree_handoff_checked() {
    model(true, 1);
}

#[test]
fn magazine_depot_tree_handoff_default_depot() {
    model(false, 0);
}
