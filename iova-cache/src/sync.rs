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
