//! The shared depot of full magazines of one size class: sized to the working set,
//! trimmed when idle, never above its cap.
//!
//! CPUs that free more than they allocate push full magazines here; CPUs that allocate
//! more than they free take them. How many the depot keeps is its **target**, which
//! moves between a floor and a cap (see [`DepotLimits`]):
//!
//! - it **grows** while allocations show demand: every allocation that wanted a
//!   magazine and found the depot empty is counted, and the next push that finds the
//!   depot at its target raises the target by those misses in magazines (rounded up)
//!   instead of giving a magazine back. A working set that overflowed the depot once is
//!   kept whole the next time;
//! - it **decays** while they do not: after [`DECAY_MS`] without growth the target drops
//!   by one magazine per further [`DECAY_MS`] (Linux trims its depot by one magazine per
//!   100 ms too), down to the floor. No thread or timer does this: the time stamps are
//!   checked on the depot's own operations, which are the fast path's slow path (one in
//!   a magazine's worth of calls);
//! - **over its target**, a push gives back the *oldest* magazines, at most two per
//!   push so no caller pays for a long trim, to be freed to the range tree: the coldest
//!   ranges go, the recently freed ones stay. Without that, cached IOVAs would park
//!   space for good (the throughput collapse Linux users reported when cached IOVAs
//!   fragmented the space). The caller frees them after dropping the depot lock.
//!
//! The cap is a hard bound at every moment, so the depot never holds more than `cap`
//! magazines, whatever the timing. A depot nobody touches keeps what it holds (at most
//! the cap) until its next operation or a flush.

use std::collections::VecDeque;

use crate::magazine::{MAG_SIZE, Magazine};
use crate::sync::{Mutex, lock};

/// Milliseconds without growth after which the target drops by one magazine, and the
/// period of each further drop: Linux's `IOVA_DEPOT_DELAY`.
pub(crate) const DECAY_MS: u64 = 100;

/// Magazines a push gives back at most, when the depot is over its target.
const MAX_TRIM_PER_PUSH: usize = 2;

/// Where a depot's target may move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DepotLimits {
    /// The target after a long idle time, and at the start.
    pub(crate) floor: usize,
    /// The most magazines ever held.
    pub(crate) cap: usize,
}

impl DepotLimits {
    /// The limits for a domain with `slots` per-CPU slots: `depot_limit` is the
    /// caller's cap, 0 for the default [`default_cap`]; the floor is `2 * slots`, the
    /// fixed limit of earlier versions, or the cap if lower. Both are at least one.
    pub(crate) fn new(depot_limit: usize, slots: usize) -> Self {
        let cap = if depot_limit == 0 {
            default_cap(slots)
        } else {
            depot_limit
        };
        let cap = cap.max(1);
        DepotLimits {
            floor: (2 * slots).clamp(1, cap),
            cap,
        }
    }
}

/// The default cap with `slots` per-CPU slots: `max(32, 2 * slots)` magazines.
///
/// 32 magazines of 127 ranges hold a burst of 4096 in-flight ranges of one size class
/// on top of the per-CPU magazines (Linux's `MAX_GLOBAL_MAGS` was 32 until its depot
/// became an unbounded list trimmed over time).
pub(crate) fn default_cap(slots: usize) -> usize {
    32.max(2 * slots)
}

/// Full magazines of one size class.
#[derive(Debug)]
pub(crate) struct Depot {
    state: Mutex<State>,
    limits: DepotLimits,
}

#[derive(Debug)]
struct State {
    /// Oldest at the front.
    full: VecDeque<Magazine>,
    /// Magazines kept before the oldest go back: `floor..=cap`.
    target: usize,
    /// Pops that found the depot empty since the target last grew (each one an
    /// allocation that went to the range tree).
    starved: usize,
    /// When the target last grew or decayed, in [`crate::sync::now_ms`] time.
    changed_ms: u64,
}

impl Depot {
    /// An empty depot whose target starts at the floor.
    pub(crate) fn new(limits: DepotLimits, now_ms: u64) -> Self {
        Depot {
            state: Mutex::new(State {
                full: VecDeque::new(),
                target: limits.floor,
                starved: 0,
                changed_ms: now_ms,
            }),
            limits,
        }
    }

    /// Adds a full magazine at time `now_ms`; returns the magazines (none, one or two,
    /// oldest first) to give back to the tree because the depot is over its target.
    pub(crate) fn push(&self, mag: Magazine, now_ms: u64) -> Vec<Magazine> {
        let mut st = lock(&self.state);
        st.decay(self.limits, now_ms);
        if st.full.len() >= st.target && st.starved > 0 && st.target < self.limits.cap {
            // Allocations missed since the depot last grew: keep their worth.
            let grow = st.starved.div_ceil(MAG_SIZE);
            st.target = (st.target + grow).min(self.limits.cap);
            st.starved = 0;
            st.changed_ms = now_ms;
        }
        st.full.push_back(mag);
        let over = st.full.len().saturating_sub(st.target);
        st.full.drain(..over.min(MAX_TRIM_PER_PUSH)).collect()
    }

    /// Takes the most recently pushed magazine at time `now_ms`, or counts a starved
    /// allocation.
    pub(crate) fn pop(&self, now_ms: impl FnOnce() -> u64) -> Option<Magazine> {
        let mut st = lock(&self.state);
        match st.full.pop_back() {
            Some(mag) => {
                st.decay(self.limits, now_ms());
                Some(mag)
            }
            None => {
                st.starved = st.starved.saturating_add(1);
                None
            }
        }
    }

    /// Takes every magazine. The target stays: a flush empties the cache, it does not
    /// say the working set shrank.
    pub(crate) fn drain(&self) -> Vec<Magazine> {
        lock(&self.state).full.drain(..).collect()
    }

    /// Magazines held.
    pub(crate) fn len(&self) -> usize {
        lock(&self.state).full.len()
    }

    /// Runs `f` with the depot locked, given the magazines it holds: nothing moves
    /// between the depot and a per-CPU pair meanwhile (see `Caches::cached_pages`).
    pub(crate) fn with_len<T>(&self, f: impl FnOnce(usize) -> T) -> T {
        let st = lock(&self.state);
        f(st.full.len())
    }

    /// The current target.
    #[cfg(test)]
    pub(crate) fn target(&self) -> usize {
        lock(&self.state).target
    }
}

impl State {
    /// Lowers the target by one magazine per [`DECAY_MS`] elapsed beyond the first
    /// since it last changed, down to the floor. Demand counted before then is stale.
    fn decay(&mut self, limits: DepotLimits, now_ms: u64) {
        let idle = now_ms.saturating_sub(self.changed_ms);
        if idle < DECAY_MS {
            return;
        }
        let steps = usize::try_from(idle / DECAY_MS).unwrap_or(usize::MAX);
        self.target = self.target.saturating_sub(steps).max(limits.floor);
        self.starved = 0;
        // Keep the remainder, so that decay runs at one step per period however often
        // it is checked.
        self.changed_ms = now_ms - idle % DECAY_MS;
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn mag(tag: u64) -> Magazine {
        Box::new([tag; MAG_SIZE])
    }

    fn tags(mags: &[Magazine]) -> Vec<u64> {
        mags.iter().map(|m| m[0]).collect()
    }

    fn limits(floor: usize, cap: usize) -> DepotLimits {
        DepotLimits { floor, cap }
    }

    #[test]
    fn limits_follow_the_documented_formula() {
        assert_eq!(DepotLimits::new(0, 2), limits(4, 32));
        assert_eq!(DepotLimits::new(0, 16), limits(32, 32));
        assert_eq!(DepotLimits::new(0, 64), limits(128, 128));
        assert_eq!(DepotLimits::new(64, 2), limits(4, 64));
        assert_eq!(DepotLimits::new(2, 16), limits(2, 2));
        assert_eq!(DepotLimits::new(1, 1), limits(1, 1));
    }

    #[test]
    fn over_the_target_the_oldest_magazine_goes_back() {
        let d = Depot::new(limits(2, 2), 0);
        assert!(d.push(mag(1), 0).is_empty());
        assert!(d.push(mag(2), 0).is_empty());
        assert_eq!(tags(&d.push(mag(3), 0)), [1]);
        assert_eq!(d.len(), 2);
        assert_eq!(d.pop(|| 0).map(|m| m[0]), Some(3));
        assert_eq!(d.drain().len(), 1);
        assert!(d.pop(|| 0).is_none());
    }

    #[test]
    fn misses_grow_the_target_by_their_worth_in_magazines_up_to_the_cap() {
        let d = Depot::new(limits(1, 4), 0);
        assert!(d.push(mag(1), 0).is_empty());
        assert_eq!(d.pop(|| 0).map(|m| m[0]), Some(1));
        // A magazine and one range's worth of allocations found the depot empty.
        for _ in 0..=MAG_SIZE {
            assert!(d.pop(|| 0).is_none());
        }
        assert!(d.push(mag(2), 1).is_empty());
        // At the target (1) with two magazines of demand: grow to 3, keep this one.
        assert!(d.push(mag(3), 2).is_empty());
        assert_eq!(d.target(), 3);
        assert!(d.push(mag(4), 3).is_empty());
        // Demand was used up: over the target again, the oldest goes.
        assert_eq!(tags(&d.push(mag(5), 4)), [2]);
        assert_eq!(d.target(), 3);
        // Lots of demand, but never above the cap.
        for _ in 0..10 * MAG_SIZE {
            assert!(d.pop(|| 5).is_some() || d.len() == 0);
        }
        for t in 6..12 {
            let _ = d.push(mag(t), 5);
        }
        assert_eq!(d.target(), 4);
        assert_eq!(d.len(), 4);
    }

    #[test]
    fn an_idle_target_decays_one_magazine_per_period_and_trims_two_per_push() {
        let d = Depot::new(limits(2, 8), 0);
        for _ in 0..6 * MAG_SIZE {
            assert!(d.pop(|| 0).is_none());
        }
        for t in 0..8 {
            assert!(d.push(mag(t), 10).is_empty());
        }
        assert_eq!((d.target(), d.len()), (8, 8));
        // Within the first period nothing changes.
        assert_eq!(tags(&d.push(mag(8), 10 + DECAY_MS - 1)), [0]);
        assert_eq!(d.target(), 8);
        // Three periods after the growth: down by three to 5; a push over the target
        // gives back at most two magazines, the oldest.
        assert_eq!(tags(&d.push(mag(9), 10 + 3 * DECAY_MS)), [1, 2]);
        assert_eq!((d.target(), d.len()), (5, 7));
        assert_eq!(tags(&d.push(mag(10), 10 + 3 * DECAY_MS + 1)), [3, 4]);
        assert_eq!(tags(&d.push(mag(11), 10 + 3 * DECAY_MS + 2)), [5, 6]);
        assert_eq!((d.target(), d.len()), (5, 5));
        // Checked often or rarely, the decay is one step per period, to the floor.
        assert_eq!(tags(&d.push(mag(12), 10 + 4 * DECAY_MS - 1)), [7]);
        assert_eq!(d.target(), 5);
        assert_eq!(d.pop(|| 10 + 4 * DECAY_MS).map(|m| m[0]), Some(12));
        assert_eq!(d.target(), 4);
        assert_eq!(tags(&d.push(mag(13), 10 + 100 * DECAY_MS)), [8, 9]);
        assert_eq!((d.target(), d.len()), (2, 3));
        // Still over the target: the next push goes on trimming.
        assert_eq!(tags(&d.push(mag(14), 10 + 100 * DECAY_MS)), [10, 11]);
        assert_eq!((d.target(), d.len()), (2, 2));
    }

    #[test]
    fn demand_older_than_a_period_grows_nothing() {
        let d = Depot::new(limits(1, 8), 0);
        for _ in 0..3 * MAG_SIZE {
            assert!(d.pop(|| 0).is_none());
        }
        assert!(d.push(mag(1), 0).is_empty());
        assert_eq!(tags(&d.push(mag(2), DECAY_MS)), [1]);
        assert_eq!(d.target(), 1);
    }

    #[test]
    fn a_drain_keeps_the_target() {
        let d = Depot::new(limits(1, 8), 0);
        for _ in 0..3 * MAG_SIZE {
            assert!(d.pop(|| 0).is_none());
        }
        assert!(d.push(mag(1), 0).is_empty());
        assert!(d.push(mag(2), 0).is_empty());
        assert_eq!(d.target(), 4);
        assert_eq!(d.drain().len(), 2);
        assert_eq!(d.target(), 4);
    }
}
