//! The one place this crate's atomics come from.
//!
//! Under `cfg(loom)` the IOTLB's atomics, fences and spin hints are loom's, so
//! `tests/loom.rs` explores its seqlock and invalidation-generation protocol
//! exhaustively; otherwise they are `std`'s. Nothing else in the crate names
//! `std::sync::atomic` directly.
//!
//! [`host`] holds what loom cannot model, always `std`'s: guest memory is real memory
//! that a guest, a device or another process shares with us, reached through raw
//! pointers; the vm-memory bridge waits for requests in flight on other threads. Neither
//! appears in a loom model.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering, fence};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering, fence};

/// Atomics over guest memory (raw pointers into mappings) and the vm-memory side:
/// always `std`'s.
pub(crate) mod host {
    #[cfg(feature = "vm-memory")]
    pub(crate) use std::sync::atomic::fence;
    pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
}

/// Waits a little for another thread that holds an IOTLB slot. Under loom this yields,
/// so the model checker runs the holder.
#[inline]
pub(crate) fn spin(round: &mut u32) {
    #[cfg(loom)]
    {
        let _ = round;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    {
        // A holder keeps a slot for a handful of stores; if it was preempted there,
        // give it the core instead of burning ours (2-core machines).
        if *round < 64 {
            *round += 1;
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}
