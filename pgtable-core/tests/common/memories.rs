//! Memories that misbehave or report on purpose, over any inner memory.

use pgtable_core::{TableMemory, TablePage};
use std::collections::HashSet;
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Fails every `k`-th allocation (counting from 1), and counts live pages.
#[derive(Debug)]
pub struct Failing<M> {
    pub inner: M,
    pub every: u64,
    calls: AtomicU64,
    pub live: AtomicU64,
}

impl<M> Failing<M> {
    pub fn new(inner: M, every: u64) -> Self {
        Failing {
            inner,
            every,
            calls: AtomicU64::new(0),
            live: AtomicU64::new(0),
        }
    }
}

// SAFETY: forwards to `inner`; refusing an allocation is always allowed.
unsafe impl<M: TableMemory> TableMemory for Failing<M> {
    fn alloc(&self, size: usize, align: usize) -> Option<TablePage> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        if self.every != 0 && n.is_multiple_of(self.every) {
            return None;
        }
        let p = self.inner.alloc(size, align)?;
        self.live.fetch_add(1, Ordering::Relaxed);
        Some(p)
    }
    unsafe fn free(&self, page: TablePage) {
        self.live.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: forwarded.
        unsafe { self.inner.free(page) }
    }
    fn phys_to_virt(&self, phys: u64, len: usize) -> Option<NonNull<u8>> {
        self.inner.phys_to_virt(phys, len)
    }
}

/// What happened, in order: frees of pages (by physical address) and anything a test
/// logs itself (a flush hook).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Alloc(u64),
    Free(u64),
    Flush { iova: u64, size: u64, entry: u64 },
}

/// Logs every allocation and free.
#[derive(Debug)]
pub struct Logging<M> {
    pub inner: M,
    pub log: Mutex<Vec<Event>>,
}

impl<M> Logging<M> {
    pub fn new(inner: M) -> Self {
        Logging {
            inner,
            log: Mutex::new(Vec::new()),
        }
    }
    pub fn push(&self, e: Event) {
        self.log.lock().unwrap().push(e);
    }
    pub fn events(&self) -> Vec<Event> {
        self.log.lock().unwrap().clone()
    }
    /// Pages allocated and not freed.
    pub fn live(&self) -> HashSet<u64> {
        let mut live = HashSet::new();
        for e in self.events() {
            match e {
                Event::Alloc(p) => {
                    live.insert(p);
                }
                Event::Free(p) => {
                    assert!(live.remove(&p), "{p:#x} freed twice");
                }
                Event::Flush { .. } => {}
            }
        }
        live
    }
}

// SAFETY: pure forwarding; the log is bookkeeping.
unsafe impl<M: TableMemory> TableMemory for Logging<M> {
    fn alloc(&self, size: usize, align: usize) -> Option<TablePage> {
        let p = self.inner.alloc(size, align)?;
        self.push(Event::Alloc(p.phys));
        Some(p)
    }
    unsafe fn free(&self, page: TablePage) {
        self.push(Event::Free(page.phys));
        // SAFETY: forwarded.
        unsafe { self.inner.free(page) }
    }
    fn phys_to_virt(&self, phys: u64, len: usize) -> Option<NonNull<u8>> {
        self.inner.phys_to_virt(phys, len)
    }
}

/// A memory whose `phys_to_virt` stops answering (returns `None`) for every page once
/// `broken` is set, or for every page allocated after the first `good` ones: the C
/// `mem_ops` failure mode the library must survive.
#[derive(Debug)]
pub struct Flaky<M> {
    pub inner: M,
    pub broken: AtomicBool,
    pub good: u64,
    allocs: AtomicU64,
    bad_pages: Mutex<HashSet<u64>>,
}

impl<M> Flaky<M> {
    pub fn new(inner: M, good: u64) -> Self {
        Flaky {
            inner,
            broken: AtomicBool::new(false),
            good,
            allocs: AtomicU64::new(0),
            bad_pages: Mutex::new(HashSet::new()),
        }
    }
}

// SAFETY: forwards to `inner`, and only ever answers `None` instead of a pointer, which
// the contract allows.
unsafe impl<M: TableMemory> TableMemory for Flaky<M> {
    fn alloc(&self, size: usize, align: usize) -> Option<TablePage> {
        let p = self.inner.alloc(size, align)?;
        if self.allocs.fetch_add(1, Ordering::Relaxed) >= self.good {
            self.bad_pages.lock().unwrap().insert(p.phys);
        }
        Some(p)
    }
    unsafe fn free(&self, page: TablePage) {
        // SAFETY: forwarded.
        unsafe { self.inner.free(page) }
    }
    fn phys_to_virt(&self, phys: u64, len: usize) -> Option<NonNull<u8>> {
        if self.broken.load(Ordering::Relaxed) || self.bad_pages.lock().unwrap().contains(&phys) {
            return None;
        }
        self.inner.phys_to_virt(phys, len)
    }
}
