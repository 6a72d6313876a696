//! The one place the walker's atomics, locks and epoch come from.
//!
//! Under `cfg(loom)` these are loom's model-checked types, and crossbeam-epoch runs on
//! loom too (its own `crossbeam_loom` support), so `tests/loom.rs` explores the install /
//! detach / retire / reclaim protocol exhaustively, reclamation included. Otherwise they
//! are `std`'s and crossbeam-epoch's global collector. Nothing else in the crate names
//! `std::sync::atomic` directly.

#[cfg(all(loom, not(crossbeam_loom)))]
compile_error!(
    "the loom models need crossbeam-epoch on loom too: \
     RUSTFLAGS=\"--cfg loom --cfg crossbeam_loom\""
);

#[cfg(loom)]
pub(crate) use loom::sync::Mutex;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

#[cfg(not(loom))]
pub(crate) use std::sync::Mutex;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Locks a mutex, ignoring poisoning: every critical section in this crate leaves its
/// data consistent even if a panic unwinds through it (they only push, pop or drain).
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

/// Epoch reclamation: crossbeam-epoch's default collector (on loom under `cfg(loom)`).
pub mod epoch {
    pub use crossbeam_epoch::{Guard, pin};
}
