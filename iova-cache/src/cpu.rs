//! Which per-CPU cache the calling thread uses.
//!
//! The CPU number comes, in order of preference, from:
//!
//! 1. the `cpu_id` field of the thread's rseq area (x86-64 Linux with glibc >= 2.35):
//!    glibc registers an rseq area for every thread and exports its offset from the
//!    thread pointer as `__rseq_offset`; the kernel keeps `cpu_id` current whenever the
//!    thread returns to user space on another CPU. Reading it is one load from the
//!    thread's own TLS, about what the kernel pays for `smp_processor_id()`;
//! 2. `sched_getcpu` where no rseq area is registered (`__rseq_size == 0`, e.g. with
//!    `GLIBC_TUNABLES=glibc.pthread.rseq=0`, an older glibc or another C library, or a
//!    thread whose registration failed), and on other Linux targets. It costs a function
//!    call (about 2.5 ns on our 2-vCPU bench machine) and, without rseq, a vDSO call;
//! 3. a per-thread slot handed out round-robin, where `sched_getcpu` fails.
//!
//! `__rseq_offset` is looked up once with `dlsym`, not linked, so the library still
//! loads on a C library without it. A thread may migrate right after reading its CPU
//! number: that is harmless, because every per-CPU cache is guarded by its own lock
//! word (see `magazine.rs`); the CPU number only keeps that lock uncontended in the
//! common case.

/// How many per-CPU slots to create: every CPU id `sched_getcpu` can return.
pub(crate) fn slot_count() -> usize {
    #[cfg(all(target_os = "linux", not(loom)))]
    {
        // SAFETY: sysconf takes an integer selector, touches no memory of ours and has no
        // preconditions; it returns -1 on failure, handled below.
        let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
        if let Ok(n) = usize::try_from(n)
            && n > 0
        {
            return n;
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
    #[cfg(all(target_os = "linux", target_arch = "x86_64", not(loom)))]
    if let Some(cpu) = rseq::cpu_id() {
        return cpu as usize;
    }
    fallback()
}

/// Where rseq gives no CPU number: a call, kept out of line so that the fast path stays
/// free of call-clobbered registers.
#[cold]
#[inline(never)]
fn fallback() -> usize {
    #[cfg(all(target_os = "linux", not(loom)))]
    if let Some(cpu) = sched_getcpu() {
        return cpu;
    }
    thread_slot()
}

/// The CPU number from `sched_getcpu`, if it has one.
#[cfg(all(target_os = "linux", not(loom)))]
fn sched_getcpu() -> Option<usize> {
    // SAFETY: sched_getcpu takes no arguments and has no preconditions; it returns -1 on
    // failure, handled here.
    usize::try_from(unsafe { libc::sched_getcpu() }).ok()
}

/// The CPU number as the kernel publishes it in glibc's rseq area.
#[cfg(all(target_os = "linux", target_arch = "x86_64", not(loom)))]
mod rseq {
    use crate::sync::{AtomicIsize, Ordering};

    /// `OFFSET` before the first lookup.
    const UNKNOWN: isize = isize::MIN;
    /// `OFFSET` when the C library registers no rseq area.
    const NONE: isize = isize::MIN + 1;
    /// Offset of `struct rseq::cpu_id` (a `u32` after `cpu_id_start`).
    const CPU_ID: isize = 4;

    /// `__rseq_offset + CPU_ID`, or [`UNKNOWN`] / [`NONE`]. glibc fixes `__rseq_offset`
    /// before any user code runs, so one racy lookup per thread at most is harmless.
    static OFFSET: AtomicIsize = AtomicIsize::new(UNKNOWN);

    /// The calling thread's CPU number, or `None` if no rseq area is registered for it.
    #[inline]
    pub(super) fn cpu_id() -> Option<u32> {
        let mut off = OFFSET.load(Ordering::Relaxed);
        if off == UNKNOWN {
            off = lookup();
        }
        if off == NONE {
            return None;
        }
        let tp: usize;
        // SAFETY: on x86-64 Linux `fs` holds the thread pointer and its word 0 is the
        // thread control block's pointer to itself (the x86-64 TLS ABI; glibc and musl
        // both lay it out so), readable by the thread at any time. The asm reads that
        // one word, writes nothing and keeps the stack and flags.
        unsafe {
            core::arch::asm!(
                "mov {}, qword ptr fs:[0]",
                out(reg) tp,
                options(nostack, readonly, preserves_flags, pure),
            );
        }
        let field = tp.wrapping_add_signed(off) as *const u32;
        // SAFETY: `off` came from glibc's `__rseq_offset` with a registered area
        // (`__rseq_size >= 8`), so `tp + off` is this thread's `struct rseq`, which lives
        // in the thread's control block as long as the thread does, 32-byte aligned; its
        // `cpu_id` is a `u32` at offset 4. The kernel rewrites it only when this thread
        // re-enters user space, so a volatile read is never torn.
        let cpu = unsafe { field.read_volatile() };
        // RSEQ_CPU_ID_UNINITIALIZED (-1) and RSEQ_CPU_ID_REGISTRATION_FAILED (-2): this
        // thread has no area even though the process has.
        (cpu < 1 << 31).then_some(cpu)
    }

    /// Finds `__rseq_offset` and `__rseq_size` (glibc >= 2.35) and caches the offset of
    /// `cpu_id` from the thread pointer, or [`NONE`].
    #[cold]
    fn lookup() -> isize {
        // SAFETY: dlsym with RTLD_DEFAULT and NUL-terminated names only searches the
        // loaded objects' symbol tables; it returns NULL when a name is not found.
        let (off, size) = unsafe {
            (
                libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_offset".as_ptr()),
                libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_size".as_ptr()),
            )
        };
        let found = if off.is_null() || size.is_null() {
            NONE
        } else {
            // SAFETY: glibc defines `const unsigned int __rseq_size` and `const ptrdiff_t
            // __rseq_offset`, aligned, written once during start-up, before any code of
            // ours can run, and read-only afterwards.
            let (off, size) = unsafe { (*off.cast::<isize>(), *size.cast::<u32>()) };
            // Size 0: rseq is disabled (tunable, kernel without rseq). The area must reach
            // past `cpu_id`.
            if size >= 8 { off + CPU_ID } else { NONE }
        };
        OFFSET.store(found, Ordering::Relaxed);
        found
    }

    /// Whether this process reads CPU numbers from rseq.
    #[cfg(test)]
    pub(super) fn available() -> bool {
        cpu_id().is_some()
    }
}

/// Fallback: a per-thread slot, assigned round-robin on first use.
#[cfg(not(loom))]
fn thread_slot() -> usize {
    use crate::sync::{AtomicUsize, Ordering};
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

#[cfg(all(test, target_os = "linux", not(loom)))]
mod tests {
    use super::*;

    /// Runs `f` with the calling thread pinned to `cpu`, then restores its affinity.
    fn pinned<T>(cpu: usize, f: impl FnOnce() -> T) -> Option<T> {
        // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
        let mut old: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let size = size_of::<libc::cpu_set_t>();
        // SAFETY: `old` is a writable cpu_set_t of `size` bytes; pid 0 is this thread.
        if unsafe { libc::sched_getaffinity(0, size, &mut old) } != 0 {
            return None;
        }
        // SAFETY: reads the set filled in above.
        if !unsafe { libc::CPU_ISSET(cpu, &old) } {
            return None;
        }
        // SAFETY: as above.
        let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `cpu` < CPU_SETSIZE (it is in `old`).
        unsafe { libc::CPU_SET(cpu, &mut one) };
        // SAFETY: `one` is a valid set of `size` bytes; pid 0 is this thread.
        assert_eq!(unsafe { libc::sched_setaffinity(0, size, &one) }, 0);
        let out = f();
        // SAFETY: restores the set read above.
        assert_eq!(unsafe { libc::sched_setaffinity(0, size, &old) }, 0);
        Some(out)
    }

    #[test]
    fn pinned_thread_reads_its_cpu_on_every_path() {
        let mut checked = 0;
        for cpu in 0..slot_count() {
            let got = pinned(cpu, || {
                #[cfg(target_arch = "x86_64")]
                let rseq = rseq::cpu_id();
                #[cfg(not(target_arch = "x86_64"))]
                let rseq: Option<u32> = None;
                (current(), sched_getcpu(), rseq)
            });
            let Some((current, sched, rseq)) = got else {
                continue;
            };
            assert_eq!(current, cpu);
            assert_eq!(sched, Some(cpu));
            if let Some(r) = rseq {
                assert_eq!(r as usize, cpu);
            }
            checked += 1;
        }
        assert!(checked > 0, "no CPU could be pinned");
    }

    /// With glibc >= 2.35 and rseq left on (the default), the fast route is the one
    /// taken; `GLIBC_TUNABLES=glibc.pthread.rseq=0` must turn it off, and the fallback
    /// must still give the right CPU (checked by re-running the test above in a child).
    #[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
    #[test]
    fn rseq_route_is_used_unless_glibc_disables_it() {
        let disabled = std::env::var("GLIBC_TUNABLES").is_ok_and(|v| v.contains("rseq=0"));
        if disabled {
            assert!(!rseq::available());
            return;
        }
        // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
        let version = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
        let minor: u32 = version
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("2.")?.split('.').next()?.parse().ok())
            .unwrap_or(0);
        if minor >= 35 {
            assert!(rseq::available(), "glibc {version:?} registers rseq");
        }
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args(["--exact", "--test-threads", "1"])
            .args(["cpu::tests::pinned_thread_reads_its_cpu_on_every_path"])
            .args(["cpu::tests::rseq_route_is_used_unless_glibc_disables_it"])
            .env("GLIBC_TUNABLES", "glibc.pthread.rseq=0")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert!(stdout.contains("2 passed"), "{stdout}");
    }
}
