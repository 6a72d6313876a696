//! The one place the allocator's atomics, locks and yields come from.
//!
//! Under `cfg(loom)` these are loom's model-checked types, so the magazine / depot /
//! tree handoff can be explored exhaustively by `tests/loom.rs`; otherwise they are
//! `std`'s. Nothing else in the crate names `std::sync` directly.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom::thread::yield_now;

/// Process-wide statics of `cpu.rs`, which loom does not model (its CPU numbers are
/// loom's thread numbers).
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicIsize, AtomicUsize};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::thread::yield_now;

/// Locks a mutex, ignoring poisoning.
///
/// No critical section in this crate panics by design (bad input is rejected before a
/// lock is taken), and a poisoned lock would turn one bug into a permanently dead
/// allocator; the range tree's own invariant checks in tests are the safety net instead.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    #[cfg(not(loom))]
    {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }
    #[cfg(loom)]
    {
        m.lock().unwrap()
    }
}

/// Milliseconds on a monotonic clock since the first call: the depot's idle trimming
/// compares these.
///
/// Under loom, always 0: time does not pass inside a model, so the models explore the
/// magazine / depot / tree handoff with fixed depot targets (growth still happens;
/// decay is unit-tested with explicit times in `depot.rs`).
pub(crate) fn now_ms() -> u64 {
    #[cfg(not(loom))]
    {
        use std::sync::OnceLock;
        use std::time::Instant;
        static START: OnceLock<Instant> = OnceLock::new();
        let start = *START.get_or_init(Instant::now);
        u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
    #[cfg(loom)]
    {
        0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    #[test]
    fn now_ms_follows_the_monotonic_clock() {
        let a = super::now_ms();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = super::now_ms();
        assert!(b >= a + 20, "{a} -> {b}");
    }
}
