//! One CPU's two magazines ("loaded" and "previous") for one size class.
//!
//! A magazine is a stack of first pfns of cached ranges of one size. Both magazines of a
//! pair and their lengths are guarded by one state word that is also the lock:
//!
//! ```text
//! bit 63: locked   bit 62: magazine 1 is the loaded one   bits 8..16: previous length
//! bits 0..8: loaded length
//! ```
//!
//! Taking the lock is one compare-exchange (Acquire) and releasing it one plain store
//! (Release) of the updated word, which carries the new lengths, so an uncontended fast
//! operation costs a single atomic read-modify-write. The entries themselves are
//! `AtomicU64`s accessed Relaxed under the lock: on x86-64 and AArch64 these are plain
//! loads and stores, and they keep the crate free of `unsafe`.
//!
//! The lock is only contended when a thread is preempted or migrates in the middle of an
//! operation, so the fast path never waits for it: [`MagazinePair::try_lock`] fails and
//! the caller falls back to the range tree. Only flushing waits ([`MagazinePair::lock`]).

use crate::sync::{AtomicU64, Ordering, yield_now};

/// Entries per magazine. 127 as in Linux; under loom one, so that the model moves
/// magazines to and from the depot after a couple of operations.
#[cfg(not(loom))]
pub(crate) const MAG_SIZE: usize = 127;
/// Entries per magazine. 127 as in Linux; under loom one, so that the model moves
/// magazines to and from the depot after a couple of operations.
#[cfg(loom)]
pub(crate) const MAG_SIZE: usize = 1;

/// A full magazine, as the depot keeps it.
pub(crate) type Magazine = Box<[u64; MAG_SIZE]>;

const LOCKED: u64 = 1 << 63;
const SWAPPED: u64 = 1 << 62;
const LEN_MASK: u64 = 0xff;
const PREV_SHIFT: u32 = 8;

/// The pair of magazines of one CPU and size class.
///
/// Aligned to two cache lines so neighbouring CPUs' pairs never share a line (nor an
/// adjacent-line prefetch pair).
#[repr(align(128))]
#[derive(Debug)]
pub(crate) struct MagazinePair {
    state: AtomicU64,
    /// Hits and misses, updated under the lock with a plain load and store.
    hits: AtomicU64,
    misses: AtomicU64,
    mags: [[AtomicU64; MAG_SIZE]; 2],
}

impl MagazinePair {
    pub(crate) fn new() -> Self {
        MagazinePair {
            state: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            mags: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }

    /// Locks the pair unless another thread holds it.
    #[inline]
    pub(crate) fn try_lock(&self) -> Option<PairGuard<'_>> {
        let mut cur = self.state.load(Ordering::Relaxed);
        loop {
            if cur & LOCKED != 0 {
                return None;
            }
            match self.state.compare_exchange(
                cur,
                cur | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Some(PairGuard {
                        pair: self,
                        state: cur,
                    });
                }
                // Lengths changed under us (another thread finished an operation):
                // retry, since the lock may well be free.
                Err(now) => cur = now,
            }
        }
    }

    /// Locks the pair, waiting for the holder. Holders never block or panic inside, so
    /// this only waits for a preempted holder to be scheduled again.
    pub(crate) fn lock(&self) -> PairGuard<'_> {
        loop {
            if let Some(g) = self.try_lock() {
                return g;
            }
            yield_now();
        }
    }

    /// Entries in both magazines, read without the lock (a consistent snapshot of the
    /// lengths, possibly stale).
    pub(crate) fn cached(&self) -> u64 {
        let s = self.state.load(Ordering::Acquire);
        (s & LEN_MASK) + ((s >> PREV_SHIFT) & LEN_MASK)
    }

    /// (hits, misses) so far.
    pub(crate) fn counters(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

/// Exclusive access to a [`MagazinePair`]; releases it, publishing the new lengths,
/// when dropped.
#[derive(Debug)]
pub(crate) struct PairGuard<'a> {
    pair: &'a MagazinePair,
    /// The state word as it will be published (without the lock bit).
    state: u64,
}

impl PairGuard<'_> {
    fn loaded(&self) -> &[AtomicU64; MAG_SIZE] {
        &self.pair.mags[usize::from(self.state & SWAPPED != 0)]
    }

    fn prev(&self) -> &[AtomicU64; MAG_SIZE] {
        &self.pair.mags[usize::from(self.state & SWAPPED == 0)]
    }

    pub(crate) fn loaded_len(&self) -> usize {
        (self.state & LEN_MASK) as usize
    }

    pub(crate) fn prev_len(&self) -> usize {
        ((self.state >> PREV_SHIFT) & LEN_MASK) as usize
    }

    fn set_lens(&mut self, loaded: usize, prev: usize) {
        self.state = (self.state & SWAPPED) | (prev as u64) << PREV_SHIFT | loaded as u64;
    }

    /// Exchanges the loaded and previous magazines.
    pub(crate) fn swap(&mut self) {
        let (l, p) = (self.loaded_len(), self.prev_len());
        self.state ^= SWAPPED;
        self.set_lens(p, l);
    }

    /// Takes an entry at or below `max` from the loaded magazine. The top entry (the
    /// most recently freed range) is tried first; the rest of the magazine is searched
    /// only if it is above `max`, so a caller with a low DMA limit still finds the low
    /// ranges that callers with high limits freed into the same magazine.
    #[inline]
    pub(crate) fn pop_at_most(&mut self, max: u64) -> Option<u64> {
        let len = self.loaded_len();
        let mag = self.loaded();
        let top = len.checked_sub(1)?;
        let found = (0..=top)
            .rev()
            .find(|&i| mag[i].load(Ordering::Relaxed) <= max)?;
        let pfn = mag[found].load(Ordering::Relaxed);
        if found != top {
            mag[found].store(mag[top].load(Ordering::Relaxed), Ordering::Relaxed);
        }
        let prev = self.prev_len();
        self.set_lens(top, prev);
        Some(pfn)
    }

    /// Takes the top entry of the loaded magazine if it is at or below `max`: the fast
    /// path's pop, which leaves the search of [`pop_at_most`](Self::pop_at_most) to the
    /// caller's slow path.
    #[inline]
    pub(crate) fn pop_top_at_most(&mut self, max: u64) -> Option<u64> {
        let top = self.loaded_len().checked_sub(1)?;
        let pfn = self.loaded()[top].load(Ordering::Relaxed);
        if pfn > max {
            return None;
        }
        // The loaded length is the low byte and is not 0.
        self.state -= 1;
        Some(pfn)
    }

    /// Whether the previous magazine holds an entry at or below `max`.
    pub(crate) fn prev_has_at_most(&self, max: u64) -> bool {
        let mag = self.prev();
        (0..self.prev_len()).any(|i| mag[i].load(Ordering::Relaxed) <= max)
    }

    /// Pushes onto the loaded magazine; false if it is full.
    #[inline]
    pub(crate) fn push(&mut self, pfn: u64) -> bool {
        let len = self.loaded_len();
        if len == MAG_SIZE {
            return false;
        }
        self.loaded()[len].store(pfn, Ordering::Relaxed);
        // The loaded length is the low byte and below MAG_SIZE < 255.
        self.state += 1;
        true
    }

    /// Empties the (full) previous magazine into a depot magazine.
    pub(crate) fn take_prev(&mut self) -> Magazine {
        debug_assert_eq!(self.prev_len(), MAG_SIZE);
        let mag = self.prev();
        let full = Box::new(std::array::from_fn(|i| mag[i].load(Ordering::Relaxed)));
        let loaded = self.loaded_len();
        self.set_lens(loaded, 0);
        full
    }

    /// Fills the (empty) loaded magazine from a depot magazine.
    pub(crate) fn install_loaded(&mut self, full: &[u64; MAG_SIZE]) {
        debug_assert_eq!(self.loaded_len(), 0);
        for (slot, &pfn) in self.loaded().iter().zip(full) {
            slot.store(pfn, Ordering::Relaxed);
        }
        let prev = self.prev_len();
        self.set_lens(MAG_SIZE, prev);
    }

    /// Empties both magazines into `out`.
    pub(crate) fn drain_into(&mut self, out: &mut Vec<u64>) {
        let (l, p) = (self.loaded_len(), self.prev_len());
        out.extend(self.loaded()[..l].iter().map(|e| e.load(Ordering::Relaxed)));
        out.extend(self.prev()[..p].iter().map(|e| e.load(Ordering::Relaxed)));
        self.set_lens(0, 0);
    }

    /// Counts a hit (`true`) or a miss.
    #[inline]
    pub(crate) fn count(&self, hit: bool) {
        // Under the lock nobody else writes the counter: no read-modify-write needed.
        let c = if hit {
            &self.pair.hits
        } else {
            &self.pair.misses
        };
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
}

impl Drop for PairGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.pair.state.store(self.state, Ordering::Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn push_pop_and_swap() {
        let p = MagazinePair::new();
        let mut g = p.try_lock().unwrap();
        assert!(p.try_lock().is_none(), "held lock must not be taken again");
        for pfn in 1..=MAG_SIZE as u64 {
            assert!(g.push(pfn * 10));
        }
        assert!(!g.push(1));
        g.swap();
        assert_eq!((g.loaded_len(), g.prev_len()), (0, MAG_SIZE));
        assert!(g.push(5));
        assert_eq!(g.pop_at_most(u64::MAX), Some(5));
        assert_eq!(g.pop_at_most(u64::MAX), None);
        assert!(g.prev_has_at_most(10));
        assert!(!g.prev_has_at_most(9));
        g.swap();
        // Searches below the top: takes 30, the top entry moves into its place.
        assert_eq!(g.pop_at_most(35), Some(30));
        assert_eq!(g.pop_at_most(35), Some(20));
        assert_eq!(g.pop_at_most(35), Some(10));
        assert_eq!(g.pop_at_most(35), None);
        drop(g);
        assert_eq!(p.cached(), MAG_SIZE as u64 - 3);
        let mut out = Vec::new();
        p.lock().drain_into(&mut out);
        assert_eq!(out.len(), MAG_SIZE - 3);
        assert_eq!(p.cached(), 0);
    }

    #[test]
    fn take_and_install_round_trip() {
        let p = MagazinePair::new();
        let mut g = p.lock();
        for pfn in 0..MAG_SIZE as u64 {
            g.push(pfn + 100);
        }
        g.swap();
        let full = g.take_prev();
        assert_eq!((g.loaded_len(), g.prev_len()), (0, 0));
        g.install_loaded(&full);
        assert_eq!(g.loaded_len(), MAG_SIZE);
        assert_eq!(g.pop_at_most(u64::MAX), Some(100 + MAG_SIZE as u64 - 1));
        g.count(true);
        g.count(false);
        g.count(false);
        drop(g);
        assert_eq!(p.counters(), (1, 2));
    }
}
