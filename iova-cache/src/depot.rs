//! The shared depot of full magazines of one size class, bounded.
//!
//! CPUs that free more than they allocate push full magazines here; CPUs that allocate
//! more than they free take them. Without a bound, a burst of frees would park IOVA
//! space here for good (the throughput collapse Linux users reported when cached IOVAs
//! fragmented the space), so when the depot is over its limit it hands its *oldest*
//! magazine back to be freed to the range tree: the coldest ranges go, the recently
//! freed ones stay. The caller does that freeing after dropping the depot lock.

use std::collections::VecDeque;

use crate::magazine::Magazine;
use crate::sync::{Mutex, lock};

/// Full magazines of one size class.
#[derive(Debug)]
pub(crate) struct Depot {
    full: Mutex<VecDeque<Magazine>>,
    limit: usize,
}

impl Depot {
    /// A depot keeping at most `limit` magazines (at least one).
    pub(crate) fn new(limit: usize) -> Self {
        Depot {
            full: Mutex::new(VecDeque::new()),
            limit: limit.max(1),
        }
    }

    /// Adds a full magazine; returns the magazine to give back to the tree if the
    /// depot is now over its limit.
    pub(crate) fn push(&self, mag: Magazine) -> Option<Magazine> {
        let mut full = lock(&self.full);
        full.push_back(mag);
        if full.len() > self.limit {
            full.pop_front()
        } else {
            None
        }
    }

    /// Takes the most recently pushed magazine.
    pub(crate) fn pop(&self) -> Option<Magazine> {
        lock(&self.full).pop_back()
    }

    /// Takes every magazine.
    pub(crate) fn drain(&self) -> Vec<Magazine> {
        lock(&self.full).drain(..).collect()
    }

    /// Magazines held.
    pub(crate) fn len(&self) -> usize {
        lock(&self.full).len()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::magazine::MAG_SIZE;

    fn mag(tag: u64) -> Magazine {
        Box::new([tag; MAG_SIZE])
    }

    #[test]
    fn over_the_limit_the_oldest_magazine_goes_back() {
        let d = Depot::new(2);
        assert!(d.push(mag(1)).is_none());
        assert!(d.push(mag(2)).is_none());
        assert_eq!(d.push(mag(3)).map(|m| m[0]), Some(1));
        assert_eq!(d.len(), 2);
        assert_eq!(d.pop().map(|m| m[0]), Some(3));
        assert_eq!(d.drain().len(), 1);
        assert!(d.pop().is_none());
    }
}
