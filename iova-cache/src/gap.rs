//! Where a request fits in a free gap, and the two numbers per gap that let the range
//! tree decide "does some gap in this subtree fit?" exactly, in O(1).
//!
//! A request is `size` pages aligned to `align`, where `align` is 1 (unaligned) or the
//! size rounded up to a power of two, so `align / 2 < size <= align`. Placement is top
//! down: the highest aligned start whose range still ends inside the gap and at or below
//! the limit.
//!
//! For unaligned requests a gap fits iff its length is at least `size`, so the tree keeps
//! the largest gap length per subtree. Aligned requests are where a plain "largest gap"
//! fails: a gap can be long enough yet not contain an aligned start with room after it,
//! and a search guided by lengths alone can visit every such gap (the linear behaviour
//! of Linux's rbtree walk). The tree therefore also keeps, per subtree, the maximum
//! **score** of its gaps:
//!
//! - `o` = the largest order such that the gap contains a naturally aligned block of
//!   `2^o` pages;
//! - `tail` = pages from the first `2^(o+1)`-aligned pfn in the gap to its end (0 if
//!   there is none); it is below `2^(o+1)` because no full such block fits;
//! - `score = (o + 1) << 56 | tail`.
//!
//! A request of `size` aligned to `2^k` (k >= 1) fits a gap **iff**
//! `score >= k << 56 | size`: if `o >= k` an aligned `2^k` block (hence the request)
//! fits; if `o < k - 1` no aligned `2^(k-1)` block fits, but a placement would contain
//! one because `size > 2^(k-1)`; and if `o == k - 1` the gap holds at most one
//! `2^k`-aligned pfn (two would bound a full block), so it fits iff `tail >= size`. The
//! order of the pair `(o + 1, tail)` is exactly the order of the packed integer, so a
//! subtree's maximum score answers the question for all its gaps at once.

/// Bits of a score below the order field; pfns are below 2^53, so `tail` fits.
pub(crate) const ORDER_SHIFT: u32 = 56;

/// A request for `size` pages aligned to `align`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Request {
    size: u64,
    align: u64,
    /// For aligned requests, the least gap score that fits; unused when `align == 1`.
    key: u64,
}

impl Request {
    /// `size` pages, no alignment. `size` must be non-zero.
    pub(crate) fn unaligned(size: u64) -> Self {
        debug_assert!(size > 0);
        Request {
            size,
            align: 1,
            key: 0,
        }
    }

    /// `size` pages aligned to `size` rounded up to a power of two. `size` must be
    /// non-zero and at most 2^62.
    pub(crate) fn aligned(size: u64) -> Self {
        debug_assert!(size > 0 && size <= 1 << 62);
        let align = size.next_power_of_two();
        let k = u64::from(align.trailing_zeros());
        Request {
            size,
            align,
            key: (k << ORDER_SHIFT) | size,
        }
    }

    /// Pages requested.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// For an aligned request, the least gap score that fits it (1 for a single page,
    /// which any gap fits); 0 for an unaligned one, which fits by length alone.
    pub(crate) fn key(&self) -> u64 {
        self.key
    }

    /// Whether some gap summarised by (largest length, largest score) fits this request,
    /// ignoring any limit.
    #[inline]
    pub(crate) fn fits(&self, max_len: u64, max_score: u64) -> bool {
        if self.align == 1 {
            max_len >= self.size
        } else {
            max_score >= self.key
        }
    }

    /// The highest start for this request inside the gap `lo..=hi` whose range ends at
    /// or below `limit`, if any. An empty gap has `lo == hi + 1`.
    #[inline]
    pub(crate) fn place(&self, lo: u64, hi: u64, limit: u64) -> Option<u64> {
        let hi = hi.min(limit);
        if hi < lo || hi - lo + 1 < self.size {
            return None;
        }
        let start = (hi + 1 - self.size) & !(self.align - 1);
        (start >= lo).then_some(start)
    }
}

/// The score of the non-empty gap `lo..=hi` (see the module docs). `hi < 2^53`.
pub(crate) fn score(lo: u64, hi: u64) -> u64 {
    debug_assert!(lo <= hi && hi < 1 << 53);
    let end = hi + 1;
    let mut order = (end - lo).ilog2();
    if align_up(lo, order) + (1 << order) > end {
        // A gap of length >= 2^order always holds an aligned 2^(order-1) block.
        order -= 1;
    }
    let next = order + 1;
    let tail = end.saturating_sub(align_up(lo, next));
    (u64::from(next) << ORDER_SHIFT) | tail
}

/// `pfn` rounded up to a multiple of `2^order`.
fn align_up(pfn: u64, order: u32) -> u64 {
    let mask = (1u64 << order) - 1;
    (pfn + mask) & !mask
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slow truth: does any `align`-aligned start in `lo..=hi` leave room for `size`?
    fn brute_fits(lo: u64, hi: u64, size: u64, align: u64) -> bool {
        (lo..=hi).any(|s| s % align == 0 && s + size - 1 <= hi)
    }

    #[test]
    fn score_decides_aligned_fit_exactly_for_every_small_gap() {
        for lo in 1..80u64 {
            for hi in lo..lo + 70 {
                let sc = score(lo, hi);
                for size in 1..=64u64 {
                    let req = Request::aligned(size);
                    let want = brute_fits(lo, hi, size, size.next_power_of_two());
                    let got = if size == 1 { true } else { req.fits(0, sc) };
                    assert_eq!(got, want, "gap {lo}..={hi} size {size}");
                    assert_eq!(req.place(lo, hi, u64::MAX).is_some(), want);
                }
            }
        }
    }

    #[test]
    fn unaligned_fit_uses_length() {
        let req = Request::unaligned(5);
        assert!(req.fits(5, 0));
        assert!(!req.fits(4, u64::MAX));
        assert_eq!(req.place(3, 7, u64::MAX), Some(3));
        assert_eq!(req.place(3, 9, 8), Some(4));
        assert_eq!(req.place(3, 9, 6), None);
    }

    #[test]
    fn place_is_highest_aligned_start_under_limit() {
        let req = Request::aligned(3); // align 4
        assert_eq!(req.place(0, 100, u64::MAX), Some(96));
        assert_eq!(req.place(0, 100, 98), Some(96));
        assert_eq!(req.place(0, 100, 97), Some(92));
        assert_eq!(req.place(97, 100, u64::MAX), None);
        // Empty gap.
        assert_eq!(req.place(10, 9, u64::MAX), None);
    }

    #[test]
    fn score_at_the_top_of_the_pfn_space() {
        let top = (1u64 << 52) - 1;
        let sc = score(1, top);
        assert!(Request::aligned(1 << 51).fits(0, sc));
        assert!(!Request::aligned((1 << 51) + 1).fits(0, sc));
        assert_eq!(Request::aligned(1 << 51).place(1, top, top), Some(1 << 51));
    }
}
