//! What aligned allocations learn about the space below their limit, so that the next
//! search starts next to the free space instead of scanning every full subtree between
//! the limit and it.
//!
//! Top-down filling is the common pattern: every allocation lands just below the last
//! one. Linux serves it in O(1) from a cached node, but its answer is then "below the
//! last allocation", not the highest fit. Ours must stay the highest fit, and the range
//! tree finds it in O(log n) visits, but each visit scans the children between the
//! limit and the free space; a [`Hint`] lets it skip them, exactly:
//!
//! - a hint for a limit `L` says that every free gap (cut at `L`) reaching above `top`
//!   scores at most `score` (see `gap.rs`), except a few gaps it knows exactly (its
//!   holes: typically the slack each allocation leaves above itself for alignment);
//! - a request whose key exceeds `score` (so fits none of the unknown gaps) goes to the
//!   highest hole it fits, with no search at all, or, if it fits none, is searched for
//!   below `top`: the same answer as a search from `L`;
//! - `top + 1` is the first pfn of a live range. Insertions only shrink gaps, so they
//!   keep a hint true (one that cuts into a hole folds the hole's score into `score`);
//!   only removing a range above `top` and at or below `L` can make a gap there
//!   grow, and that drops the hint.

use crate::gap::{self, Request};

/// Gaps a hint knows exactly.
const HOLES: usize = 4;
/// Hints kept, one per limit, the least recently used dropped first.
const HINTS: usize = 2;

/// A free gap known exactly, cut at the hint's limit; score 0: none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Hole {
    lo: u64,
    hi: u64,
    score: u64,
}

/// What is known of the free gaps in a stretch of the space: the `holes` exactly, and
/// every other gap scores at most `score`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Region {
    score: u64,
    holes: [Hole; HOLES],
}

impl Region {
    /// A gap a search passed over: kept as a hole unless every hole outscores it. Its
    /// exact score is computed only if a cheap bound of it exceeds what the region
    /// already allows, which after the first few gaps of a long search is rare.
    #[inline]
    pub(crate) fn pass_gap(&mut self, lo: u64, hi: u64) {
        if lo <= hi && score_bound(hi + 1 - lo) > self.score {
            self.keep(lo, hi);
        }
    }

    /// A subtree a search passed over, whose gaps score at most `score`.
    #[inline]
    pub(crate) fn pass_subtree(&mut self, score: u64) {
        self.fold(score);
    }

    /// The gap `lo..=hi` (empty if `lo > hi`), known exactly: kept as a hole unless
    /// every hole outscores it.
    pub(crate) fn keep(&mut self, lo: u64, hi: u64) {
        if lo <= hi {
            self.keep_hole(Hole {
                lo,
                hi,
                score: gap::score(lo, hi),
            });
        }
    }

    fn keep_hole(&mut self, h: Hole) {
        if h.score <= self.score {
            // Allowed anyway: nothing to remember.
            return;
        }
        let weakest = (0..HOLES)
            .min_by_key(|&i| self.holes[i].score)
            .expect("HOLES > 0");
        if self.holes[weakest].score < h.score {
            self.fold(self.holes[weakest].score);
            self.holes[weakest] = h;
        } else {
            self.fold(h.score);
        }
    }

    fn fold(&mut self, score: u64) {
        self.score = self.score.max(score);
    }

    /// Everything `other` knows, added to this.
    fn absorb(&mut self, other: &Region) {
        self.fold(other.score);
        for h in other.holes.iter().filter(|h| h.score != 0) {
            self.keep_hole(*h);
        }
    }

    /// An allocation took `lo..=hi`: holes it cut into are known no longer, but what is
    /// left of them scores no more than they did.
    fn cut(&mut self, lo: u64, hi: u64) {
        for i in 0..HOLES {
            let h = self.holes[i];
            if h.score != 0 && h.lo <= hi && lo <= h.hi {
                self.fold(h.score);
                self.holes[i] = Hole::default();
            }
        }
    }
}

/// See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hint {
    limit: u64,
    top: u64,
    region: Region,
}

/// How to find the highest fit of a request, from what the hints know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// No usable hint: search below the limit.
    Full,
    /// Search below this pfn (the limit's hint's top); nothing above fits.
    Below(u64),
    /// The highest fit is here, in hole `hole` of the limit's hint.
    Hole { at: u64, hole: usize },
}

/// The hints of one range tree.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hints {
    /// Most recently used first.
    slots: [Option<Hint>; HINTS],
}

impl Hints {
    /// How to find the highest fit of `req` below `limit` (already cut at the tree's
    /// last pfn).
    #[inline]
    pub(crate) fn plan(&self, req: Request, limit: u64) -> Plan {
        let key = req.key();
        let Some(h) = self.slots.iter().flatten().find(|h| h.limit == limit) else {
            return Plan::Full;
        };
        if key == 0 || h.region.score >= key {
            return Plan::Full;
        }
        let best = h
            .region
            .holes
            .iter()
            .enumerate()
            .filter(|(_, o)| o.score >= key)
            .filter_map(|(i, o)| Some((req.place(o.lo, o.hi, limit)?, i)))
            .max();
        match best {
            Some((at, hole)) => Plan::Hole { at, hole },
            None => Plan::Below(h.top),
        }
    }

    /// `req` was placed at `at` below `limit` as `plan` said; `found` is what the search
    /// (if there was one) learned of the space between `at` and where it started.
    pub(crate) fn placed(&mut self, req: Request, limit: u64, at: u64, plan: Plan, found: &Region) {
        let end = at + req.size() - 1;
        let i = self
            .slots
            .iter()
            .position(|s| s.is_some_and(|h| h.limit == limit));
        for (j, h) in self.slots.iter_mut().enumerate() {
            if let Some(h) = h
                && (Some(j) != i || !matches!(plan, Plan::Hole { .. }))
            {
                h.region.cut(at, end);
            }
        }
        if req.key() == 0 {
            // Unaligned requests neither use nor teach hints.
            return;
        }
        let learned = match (plan, i.and_then(|i| self.slots[i])) {
            (Plan::Hole { hole, .. }, Some(mut h)) => {
                let o = h.region.holes[hole];
                h.region.holes[hole] = Hole::default();
                h.region.keep(o.lo, at - 1);
                h.region.keep(end + 1, o.hi);
                h
            }
            (Plan::Below(_), Some(mut h)) => {
                h.top = at - 1;
                h.region.absorb(found);
                h
            }
            _ => Hint {
                limit,
                top: at - 1,
                region: *found,
            },
        };
        let at = i.unwrap_or(HINTS - 1);
        self.slots.copy_within(..at, 1);
        self.slots[0] = Some(learned);
    }

    /// The range `lo..=hi` was removed: drop the hints it may have broken.
    pub(crate) fn removed(&mut self, lo: u64, hi: u64) {
        for s in &mut self.slots {
            if s.is_some_and(|h| hi > h.top && lo <= h.limit) {
                *s = None;
            }
        }
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.slots = [None; HINTS];
    }
}

/// An upper bound of the score of any gap of `len` pages, in a few instructions: the
/// order is at most ilog2(len) and the tail at most the length.
fn score_bound(len: u64) -> u64 {
    (u64::from(len.ilog2()) + 1) << gap::ORDER_SHIFT | len
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every gap a region was told of is one of its holes or scores at most its bound.
    fn covers(r: &Region, gaps: &[(u64, u64)]) {
        for &(lo, hi) in gaps {
            let held = r
                .holes
                .iter()
                .any(|h| h.score != 0 && (h.lo, h.hi) == (lo, hi));
            assert!(
                held || gap::score(lo, hi) <= r.score,
                "{lo}..={hi} lost: {r:?}"
            );
        }
    }

    #[test]
    fn a_region_keeps_the_best_holes_and_bounds_the_rest() {
        let mut r = Region::default();
        let mut told = Vec::new();
        // Gaps of many lengths and alignments, passed over or kept.
        for k in 0..200u64 {
            let lo = 1 + k * 1000 + k % 7;
            let hi = lo + (k * 37) % 300;
            if k % 3 == 0 {
                r.keep(lo, hi);
            } else {
                r.pass_gap(lo, hi);
            }
            told.push((lo, hi));
            covers(&r, &told);
        }
        // The holes are the best gaps: none of them scores at most the bound.
        assert!(r.holes.iter().all(|h| h.score > r.score));
        let best = told
            .iter()
            .map(|&(lo, hi)| gap::score(lo, hi))
            .max()
            .unwrap();
        assert!(r.holes.iter().any(|h| h.score == best));
        // Cutting into a hole forgets it but keeps its score as a bound.
        let h = *r.holes.iter().max_by_key(|h| h.score).unwrap();
        r.cut(h.lo, h.lo);
        assert!(!r.holes.contains(&h));
        assert!(r.score >= h.score);
        covers(&r, &told);
    }

    #[test]
    fn score_bound_is_an_upper_bound() {
        for lo in 1..300u64 {
            for len in 1..300 {
                assert!(
                    score_bound(len) >= gap::score(lo, lo + len - 1),
                    "{lo} {len}"
                );
            }
        }
    }
}
