//! Model-based differential test: long random sequences of every operation against a
//! `BTreeMap` model of what the caller owns.
//!
//! The model cannot know which freed ranges still sit in a cache, so it keeps them in a
//! "maybe cached" set: `find` may report such a range or nothing. Whenever the caches
//! are known to be empty (`cached_pfns == 0`), the domain must agree with the model
//! exactly, including *where* the slow path places a range: the highest aligned fit
//! below the limit, computed by brute force.

use std::collections::BTreeMap;

use iova_cache::{IovaDomain, IovaError, IovaOptions};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Top of the small window most requests use, so the space fills and fragments.
const TOP: u64 = 1 << 14;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// From `alloc_fast(size)`; the range covers the rounded size.
    Fast(u64),
    /// From `alloc`.
    Slow,
}

struct Model {
    start: u64,
    max_pfn: u64,
    max_cached: u64,
    /// Live allocations: first pfn -> (last pfn, kind).
    live: BTreeMap<u64, (u64, Kind)>,
    /// Reservations, merged as the domain merges them: first -> last.
    reserved: BTreeMap<u64, u64>,
    /// Ranges given back with `free_fast` that may still be cached: first -> last.
    maybe_cached: BTreeMap<u64, u64>,
}

/// The interval of `map` containing `pfn`.
fn containing(map: &BTreeMap<u64, u64>, pfn: u64) -> Option<(u64, u64)> {
    map.range(..=pfn)
        .next_back()
        .filter(|(_, hi)| **hi >= pfn)
        .map(|(lo, hi)| (*lo, *hi))
}

fn place(lo: u64, hi: u64, limit: u64, size: u64, align: u64) -> Option<u64> {
    let hi = hi.min(limit);
    if hi < lo || hi - lo + 1 < size {
        return None;
    }
    let s = (hi + 1 - size) & !(align - 1);
    (s >= lo).then_some(s)
}

impl Model {
    fn occupied(&self) -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, u64)> = self
            .live
            .iter()
            .map(|(lo, (hi, _))| (*lo, *hi))
            .chain(self.reserved.iter().map(|(lo, hi)| (*lo, *hi)))
            .collect();
        v.sort_unstable();
        v
    }

    /// The highest placement the slow path must choose when the caches are empty.
    fn highest_fit(&self, size: u64, align: u64, limit: u64) -> Option<u64> {
        let limit = limit.min(self.max_pfn);
        let mut bounds = vec![(0, self.start - 1)];
        bounds.extend(self.occupied());
        bounds.push((self.max_pfn + 1, self.max_pfn + 1));
        bounds
            .windows(2)
            .rev()
            .find_map(|w| place(w[0].1 + 1, w[1].0 - 1, limit, size, align))
    }

    fn overlaps_owned(&self, lo: u64, hi: u64) -> Option<(u64, u64)> {
        self.occupied()
            .into_iter()
            .find(|&(a, b)| a <= hi && b >= lo)
    }

    fn live_containing(&self, pfn: u64) -> Option<(u64, u64, Kind)> {
        self.live
            .range(..=pfn)
            .next_back()
            .filter(|(_, (hi, _))| *hi >= pfn)
            .map(|(lo, (hi, k))| (*lo, *hi, *k))
    }

    /// Records a new allocation after checking it against everything the caller owns.
    fn take(&mut self, lo: u64, pages: u64, align: u64, limit: u64, kind: Kind, ctx: &str) {
        let hi = lo + pages - 1;
        assert!(lo >= self.start, "{ctx}: {lo:#x} below start_pfn");
        assert!(
            hi <= limit.min(self.max_pfn),
            "{ctx}: {lo:#x}+{pages} above limit {limit:#x}"
        );
        assert_eq!(lo % align, 0, "{ctx}: {lo:#x} not aligned to {align}");
        assert_eq!(
            self.overlaps_owned(lo, hi),
            None,
            "{ctx}: {lo:#x}..={hi:#x} overlaps"
        );
        // Whatever was cached there has left the cache.
        let stale: Vec<u64> = self
            .maybe_cached
            .iter()
            .filter(|(a, b)| **a <= hi && **b >= lo)
            .map(|(a, _)| *a)
            .collect();
        for a in stale {
            self.maybe_cached.remove(&a);
        }
        self.live.insert(lo, (hi, kind));
    }

    fn reserve(&mut self, lo: u64, hi: u64) {
        let (mut lo, mut hi) = (lo, hi);
        let near: Vec<(u64, u64)> = self
            .reserved
            .iter()
            .filter(|(a, b)| **a <= hi.saturating_add(1) && **b + 1 >= lo)
            .map(|(a, b)| (*a, *b))
            .collect();
        for (a, b) in near {
            self.reserved.remove(&a);
            lo = lo.min(a);
            hi = hi.max(b);
        }
        self.reserved.insert(lo, hi);
    }
}

fn random_limit(rng: &mut SmallRng, m: &Model) -> u64 {
    match rng.gen_range(0..10) {
        0 => m.max_pfn,
        1 => u64::MAX,
        2 => rng.gen_range(0..m.start + 4),
        _ => rng.gen_range(m.start..=TOP),
    }
}

fn random_size(rng: &mut SmallRng) -> u64 {
    match rng.gen_range(0..20) {
        0..=11 => 1,
        12..=14 => rng.gen_range(2..=4),
        15..=18 => rng.gen_range(1..=40),
        _ => rng.gen_range(33..=130),
    }
}

fn run(seed: u64, ops: usize) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let opts = IovaOptions {
        granule: 4096 << rng.gen_range(0..=4),
        start_pfn: rng.gen_range(1..=16),
        checked: seed.is_multiple_of(2),
        max_cached_order: if seed.is_multiple_of(3) {
            5
        } else {
            rng.gen_range(0..=5)
        },
        // 0: the default, self-sizing depot.
        depot_limit: rng.gen_range(0..=3),
    };
    let d = IovaDomain::with_options(&opts).unwrap();
    let mut m = Model {
        start: opts.start_pfn,
        max_pfn: d.max_pfn(),
        max_cached: 1 << opts.max_cached_order,
        live: BTreeMap::new(),
        reserved: BTreeMap::new(),
        maybe_cached: BTreeMap::new(),
    };
    let ctx = |step: usize, what: &str| format!("seed {seed} step {step} {what} ({opts:?})");
    // Phases alternate between mostly allocating and mostly freeing, so the window
    // fills up, runs out, and fragments.
    let mut alloc_bias = 0.7;
    // Coverage counters: placements checked against the brute force, exhausted allocs.
    let (mut exact, mut full) = (0u64, 0u64);
    let (mut max_depot, mut max_cached) = (0u64, 0u64);
    for step in 0..ops {
        if step % 2000 == 0 {
            alloc_bias = if alloc_bias > 0.5 { 0.3 } else { 0.8 };
        }
        let before = d.stats();
        let caches_empty = before.cached_pfns == 0;
        if caches_empty {
            assert!(before.depot_magazines == 0);
            m.maybe_cached.clear();
        }
        let r = rng.gen_range(0..100);
        let allocating = r < 80 && rng.gen_bool(alloc_bias);
        match r {
            // alloc_fast
            0..=63 if allocating => {
                let (size, limit, flush) = (
                    random_size(&mut rng),
                    random_limit(&mut rng, &m),
                    rng.gen_bool(0.2),
                );
                let pages = if size <= m.max_cached {
                    size.next_power_of_two()
                } else {
                    size
                };
                let align = size.next_power_of_two();
                let got = d.alloc_fast(size, limit, flush);
                let could_fit = limit.min(m.max_pfn) + 1 >= m.start + pages;
                let hit = d.stats().cache_hits > before.cache_hits;
                let c = ctx(
                    step,
                    &format!("alloc_fast({size}, {limit:#x}, {flush}) = {got:x?}"),
                );
                if caches_empty || (flush && got.is_none()) {
                    // The tree holds exactly the model: the answer is the brute force.
                    assert!(!hit, "{c}");
                    assert_eq!(got, m.highest_fit(pages, align, limit), "{c}");
                    exact += 1;
                }
                full += u64::from(got.is_none() && could_fit);
                // A request that cannot fit between start_pfn and the limit fails at once;
                // any other failure with `flush` must have emptied the caches first.
                if flush && got.is_none() && could_fit {
                    assert_eq!(d.stats().cached_pfns, 0, "{c}: failed without flushing");
                }
                if let Some(lo) = got {
                    m.take(lo, pages, align, limit, Kind::Fast(size), &c);
                }
            }
            // alloc
            64..=79 if allocating => {
                let (size, limit, aligned) = (
                    random_size(&mut rng),
                    random_limit(&mut rng, &m),
                    rng.gen_bool(0.6),
                );
                let align = if aligned { size.next_power_of_two() } else { 1 };
                let got = d.alloc(size, limit, aligned);
                let c = ctx(
                    step,
                    &format!("alloc({size}, {limit:#x}, {aligned}) = {got:x?}"),
                );
                if caches_empty {
                    assert_eq!(got.ok(), m.highest_fit(size, align, limit), "{c}");
                    exact += 1;
                }
                match got {
                    Ok(lo) => m.take(lo, size, align, limit, Kind::Slow, &c),
                    Err(e) => assert_eq!(e, IovaError::NoSpace, "{c}"),
                }
            }
            // free_fast / free of something live
            0..=79 if !m.live.is_empty() => {
                let k = rng.gen_range(0..m.live.len());
                let (&lo, &(hi, kind)) = m.live.iter().nth(k).unwrap();
                match kind {
                    Kind::Fast(size) if rng.gen_bool(0.8) => {
                        if opts.checked && rng.gen_bool(0.2) {
                            // A wrong size: rejected, nothing changes.
                            let pages = hi - lo + 1;
                            let wrong = if pages > 1 && rng.gen_bool(0.5) {
                                pages / 2
                            } else {
                                pages * 2
                            };
                            if wrong != pages && wrong <= m.max_cached {
                                let c =
                                    ctx(step, &format!("wrong-size free_fast({lo:#x}, {wrong})"));
                                // BadFree, or Invalid when the doubled size would leave the domain.
                                let got = d.free_fast(lo, wrong);
                                assert!(
                                    matches!(got, Err(IovaError::BadFree { pfn, size }) if pfn == lo && size == wrong)
                                        || matches!(got, Err(IovaError::Invalid(_)))
                                            && lo + wrong - 1 > m.max_pfn,
                                    "{c}: {got:?}"
                                );
                                assert_eq!(d.find(lo), Some((lo, hi)), "{c}");
                                continue;
                            }
                        }
                        d.free_fast(lo, size).unwrap();
                        m.live.remove(&lo);
                        if size <= m.max_cached {
                            m.maybe_cached.insert(lo, hi);
                        }
                        if opts.checked && rng.gen_bool(0.1) {
                            let c = ctx(step, &format!("double free_fast({lo:#x}, {size})"));
                            assert_eq!(
                                d.free_fast(lo, size),
                                Err(IovaError::BadFree { pfn: lo, size }),
                                "{c}"
                            );
                        }
                    }
                    _ => {
                        let pfn = rng.gen_range(lo..=hi);
                        assert_eq!(
                            d.free(pfn),
                            Ok(()),
                            "{}",
                            ctx(step, &format!("free({pfn:#x})"))
                        );
                        m.live.remove(&lo);
                    }
                }
            }
            // free of something not live
            80..=84 => {
                let pfn = rng.gen_range(0..=TOP + 8);
                let owned = m.live_containing(pfn).is_some();
                let cached = containing(&m.maybe_cached, pfn).is_some();
                if !owned && (!cached || opts.checked) {
                    let c = ctx(step, &format!("free({pfn:#x}) of a free or reserved pfn"));
                    assert_eq!(d.free(pfn), Err(IovaError::NotFound(pfn)), "{c}");
                }
            }
            // reserve
            85 => {
                let lo = rng.gen_range(0..=TOP);
                let hi = lo + rng.gen_range(0..8);
                let c = ctx(step, &format!("reserve({lo:#x}, {hi:#x})"));
                let (clo, chi) = (lo.max(m.start), hi.min(m.max_pfn));
                let conflict = m
                    .live
                    .iter()
                    .find(|(a, (b, _))| **a <= chi && *b >= clo)
                    .map(|(a, (b, _))| (*a, *b));
                match conflict {
                    Some((a, b)) => {
                        let got = d.reserve(lo, hi);
                        assert!(matches!(got, Err(IovaError::Exists { .. })), "{c}: {got:?}");
                        if let Err(IovaError::Exists { lo: elo, hi: ehi }) = got {
                            assert!(
                                elo <= chi && ehi >= clo,
                                "{c}: reported {elo:#x}..={ehi:#x}, model has {a:#x}..={b:#x}"
                            );
                            assert!(m.live.contains_key(&elo), "{c}");
                        }
                    }
                    None => {
                        assert_eq!(d.reserve(lo, hi), Ok(()), "{c}");
                        if clo <= chi {
                            m.reserve(clo, chi);
                            let stale: Vec<u64> = m
                                .maybe_cached
                                .iter()
                                .filter(|(a, b)| **a <= chi && **b >= clo)
                                .map(|(a, _)| *a)
                                .collect();
                            for a in stale {
                                m.maybe_cached.remove(&a);
                            }
                        }
                    }
                }
            }
            // flush
            86 if rng.gen_bool(0.2) => {
                d.flush_caches();
                m.maybe_cached.clear();
                let s = d.stats();
                assert_eq!((s.cached_pfns, s.depot_magazines), (0, 0));
                assert_eq!(
                    s.live_ranges,
                    m.live.len() as u64,
                    "{}",
                    ctx(step, "live after flush")
                );
            }
            // A burst of fast frees: fills magazines, pushes them to the depot, trims.
            87 if rng.gen_bool(0.05) => {
                let fast: Vec<(u64, u64, u64)> = m
                    .live
                    .iter()
                    .filter_map(|(lo, (hi, k))| match k {
                        Kind::Fast(size) => Some((*lo, *hi, *size)),
                        Kind::Slow => None,
                    })
                    .take(rng.gen_range(100..=2000))
                    .collect();
                for (lo, hi, size) in fast {
                    d.free_fast(lo, size).unwrap();
                    m.live.remove(&lo);
                    if size <= m.max_cached {
                        m.maybe_cached.insert(lo, hi);
                    }
                }
            }
            // find
            _ => {
                let pfn = if !m.live.is_empty() && rng.gen_bool(0.5) {
                    let (&lo, &(hi, _)) =
                        m.live.iter().nth(rng.gen_range(0..m.live.len())).unwrap();
                    rng.gen_range(lo..=hi + 1)
                } else {
                    rng.gen_range(0..=TOP + 8)
                };
                let got = d.find(pfn);
                let c = ctx(step, &format!("find({pfn:#x}) = {got:x?}"));
                if let Some((lo, hi, _)) = m.live_containing(pfn) {
                    assert_eq!(got, Some((lo, hi)), "{c}");
                } else if let Some(r) = containing(&m.reserved, pfn) {
                    assert_eq!(got, Some(r), "{c}");
                } else if let Some(r) = containing(&m.maybe_cached, pfn) {
                    assert!(got.is_none() || got == Some(r), "{c}");
                } else {
                    assert_eq!(got, None, "{c}");
                }
            }
        }
        let s = d.stats();
        max_depot = max_depot.max(s.depot_magazines);
        max_cached = max_cached.max(s.cached_pfns);
        let live = m.live.len() as u64;
        assert!(
            s.live_ranges >= live && s.live_ranges <= live + m.maybe_cached.len() as u64,
            "{}: live_ranges {} vs model {live} + {} maybe cached",
            ctx(step, "stats"),
            s.live_ranges,
            m.maybe_cached.len()
        );
    }
    let s = d.stats();
    eprintln!(
        "seed {seed}: {} live, {} reserved, {exact} exact placements checked, {full} exhausted allocs, \
         at most {max_depot} depot magazines and {max_cached} cached pages, {s:?}",
        m.live.len(),
        m.reserved.len()
    );
    assert!(
        exact > ops as u64 / 20 && full > 0,
        "the sequence must exercise exact placement and exhaustion"
    );
    d.flush_caches();
    assert_eq!(d.stats().live_ranges, m.live.len() as u64);
}

#[test]
fn random_operations_agree_with_the_model_fixed_seed() {
    run(0x10_0a, 40_000);
}

#[test]
fn random_operations_agree_with_the_model_more_seeds() {
    for seed in 1..=4 {
        run(seed, 20_000);
    }
}
