//! Which per-CPU cache the calling thread uses.
//!
//! The CPU number comes from `sched_getcpu`, which glibc answers from the thread's rseq
//! area (about a nanosecond). A thread may migrate right after asking: that is harmless,
//! because every per-CPU cache is guarded by its own lock word (see `magazine.rs`); the
//! CPU number only keeps that lock uncontended in the common case. Where `sched_getcpu`
//! fails, each thread gets a fixed slot, handed out round-robin, for the same effect.

/// How many per-CPU slots to create: every CPU id `sched_getcpu` can return.
pub(crate) fn slot_count() -> usize {
    #[cfg(all(target_os = "linux", not(loom)))]
    {
        // SAFETY: sysconf takes an integer selector, touches no memory of ours and has no
        // preconditions; it returns -1 on failure, handled below.
        let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
        if let Ok(n) = usize::try_from(n) {
            if n > 0 {
                return n;
            }
        }
    }
    #[cfg(loom)]
    {
        // Two slots: enough for the model to move magazines between CPUs.
        2
    }
    #[cfg(not(loom))]
    {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// The calling thread's slot number (not reduced modulo [`slot_count`]).
#[inline]
pub(crate) fn current() -> usize {
    #[cfg(all(target_os = "linux", not(loom)))]
    {
        // SAFETY: sched_getcpu takes no arguments and has no preconditions; it returns -1
        // on failure, handled below.
        let cpu = unsafe { libc::sched_getcpu() };
        if let Ok(cpu) = usize::try_from(cpu) {
            return cpu;
        }
    }
    thread_slot()
}

/// Fallback: a per-thread slot, assigned round-robin on first use.
#[cfg(not(loom))]
fn thread_slot() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    std::thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    SLOT.with(|s| *s)
}

/// Under loom the slot is loom's thread number (0 for the model's main thread, then
/// 1, 2, ... in spawn order; its `ThreadId` prints as `ThreadId(n)`), so a model knows
/// which of its threads share a CPU: with two slots, main and the second spawned thread
/// do. No atomics, so the model stays small.
#[cfg(loom)]
fn thread_slot() -> usize {
    let id = format!("{:?}", loom::thread::current().id());
    id.bytes()
        .filter(u8::is_ascii_digit)
        .fold(0, |n, b| n * 10 + usize::from(b - b'0'))
}
