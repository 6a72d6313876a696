//! The one place the walker's atomics and locks come from.
//!
//! Under `cfg(loom)` these are loom's model-checked types, so the install / detach /
//! retire protocol can be explored exhaustively by `tests/loom.rs`; otherwise they are
//! `std`'s. Nothing else in the crate names `std::sync::atomic` directly.

#[cfg(loom)]
pub(crate) use loom::sync::Mutex;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};

#[cfg(not(loom))]
pub(crate) use std::sync::Mutex;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};

/// Locks a mutex, ignoring poisoning: every critical section in this crate leaves its
/// data consistent even if a panic unwinds through it (they only push or drain vectors).
pub(crate) fn lock<T>(m: &Mutex<T>) -> impl std::ops::DerefMut<Target = T> + '_ {
    #[cfg(not(loom))]
    {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }
    #[cfg(loom)]
    {
        m.lock().unwrap()
    }
}

/// Epoch reclamation.
///
/// Outside loom this is crossbeam-epoch's global collector. Under loom, a guard is a
/// token and nothing is reclaimed before the table is dropped (loom cannot model
/// crossbeam's own internals, which crossbeam checks itself); the loom model checks
/// that the *protocol* never frees a page a reader can still reach and never frees
/// one twice.
pub mod epoch {
    #[cfg(not(loom))]
    pub use crossbeam_epoch::{Guard, pin};

    /// Model-checking stand-in for a pinned epoch guard.
    #[cfg(loom)]
    #[derive(Debug)]
    pub struct Guard(());

    /// Model-checking stand-in for `crossbeam_epoch::pin`.
    #[cfg(loom)]
    pub fn pin() -> Guard {
        Guard(())
    }
}
