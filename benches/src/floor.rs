//! The floor: the same format's walk with plain loads and stores through `&mut self`,
//! no atomics, no epoch, no gather, no checks beyond what the walk needs. Written for
//! the benchmarks only and never shipped: the ratio of the real table's time to this
//! one's is what safety (concurrent readers, deferred reclamation) costs.
//!
//! It uses the format's own encoders and fast classifier, so the bits written are the
//! real table's bits; tables come from the global allocator (physical = virtual), and
//! a table whose whole span an unmap clears is freed at once, as a single-threaded
//! walker may.

use pgtable_core::{Format, Geometry, OwnEntry, Prot};
use std::alloc::{Layout, alloc_zeroed, dealloc};

/// A single-threaded table of format `F` with plain memory accesses.
#[derive(Debug)]
pub struct Floor<F: Format> {
    fmt: F,
    geo: Geometry,
    root: *mut u64,
}

// SAFETY: the floor owns its pages; moving it to another thread moves them too.
unsafe impl<F: Format> Send for Floor<F> {}

impl<F: Format> Floor<F> {
    /// An empty table.
    pub fn new(fmt: F) -> Self {
        let geo = fmt.geometry();
        let root = alloc_table(geo.table_bytes(geo.top()).max(64));
        Floor { fmt, geo, root }
    }

    #[inline(always)]
    fn table(&self, raw: u64, level: u32) -> Option<*mut u64> {
        match self.fmt.own_entry(raw, level) {
            OwnEntry::Table(pa) => Some(pa as usize as *mut u64),
            _ => None,
        }
    }

    /// The table of `level` holding `iova`'s entry, allocating missing tables.
    #[inline(always)]
    fn descend_alloc(&mut self, iova: u64, level: u32) -> *mut u64 {
        let mut t = self.root;
        let mut l = self.geo.top();
        while l > level {
            // SAFETY: `t` is a live table of this floor and the index is in range.
            let e = unsafe { t.add(self.geo.index(iova, l)) };
            // SAFETY: as above.
            let raw = unsafe { *e };
            t = match self.table(raw, l) {
                Some(next) => next,
                None => {
                    let next = alloc_table(self.geo.table_bytes(l - 1));
                    // SAFETY: as above; nobody else accesses the floor (`&mut self`).
                    unsafe { *e = self.fmt.encode_table(next as u64, l) };
                    next
                }
            };
            l -= 1;
        }
        t
    }

    /// Maps `count` pages of `pgsize` (a span of the format's levels).
    #[inline(always)]
    pub fn map_pages(&mut self, iova: u64, pa: u64, pgsize: u64, count: u64, prot: Prot) {
        let level = self.geo.level_of_size(pgsize).expect("a page size");
        let n0 = self.geo.entries(level) as u64;
        let mut done = 0;
        while done < count {
            let cur = iova + done * pgsize;
            let t = self.descend_alloc(cur, level);
            let first = self.geo.index(cur, level) as u64;
            let n = (n0 - first).min(count - done);
            for i in 0..n {
                let raw = self.fmt.encode_leaf(pa + (done + i) * pgsize, level, prot);
                // SAFETY: `t` is a live table; first + i < entries.
                unsafe { *t.add((first + i) as usize) = raw };
            }
            done += n;
        }
    }

    /// Unmaps `count` pages of `pgsize`; frees the last-level tables whose whole span
    /// this call cleared. Returns the bytes unmapped.
    #[inline(always)]
    pub fn unmap_pages(&mut self, iova: u64, pgsize: u64, count: u64) -> u64 {
        let level = self.geo.level_of_size(pgsize).expect("a page size");
        let n0 = self.geo.entries(level) as u64;
        let mut done = 0;
        while done < count {
            let cur = iova + done * pgsize;
            // Descend to the parent of the table holding `cur`'s leaf.
            let mut t = self.root;
            let mut l = self.geo.top();
            let mut parent: *mut u64 = std::ptr::null_mut();
            while l > level {
                // SAFETY: `t` is a live table; the index is in range.
                let e = unsafe { t.add(self.geo.index(cur, l)) };
                // SAFETY: as above.
                match self.table(unsafe { *e }, l) {
                    Some(next) => {
                        parent = e;
                        t = next;
                    }
                    None => return done * pgsize,
                }
                l -= 1;
            }
            let first = self.geo.index(cur, level) as u64;
            let n = (n0 - first).min(count - done);
            if first == 0 && n == n0 && !parent.is_null() {
                // The whole table goes: unlink and free it at once.
                // SAFETY: `parent` is the live entry pointing to `t`, which nobody else
                // can reach now.
                unsafe {
                    *parent = 0;
                    dealloc_table(t, self.geo.table_bytes(level));
                }
            } else {
                for i in first..first + n {
                    // SAFETY: `t` is a live table; i < entries.
                    unsafe { *t.add(i as usize) = 0 };
                }
            }
            done += n;
        }
        count * pgsize
    }

    /// The output address of `iova`.
    #[inline(always)]
    pub fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        let mut t = self.root;
        let mut l = self.geo.top();
        loop {
            // SAFETY: `t` is a live table; the index is in range.
            let raw = unsafe { *t.add(self.geo.index(iova, l)) };
            match self.fmt.own_entry(raw, l) {
                OwnEntry::Table(pa) if l > 0 => {
                    t = pa as usize as *mut u64;
                    l -= 1;
                }
                OwnEntry::Leaf => {
                    let (pa, size) = self.fmt.own_leaf(raw, l)?;
                    return Some(pa + (iova & (size - 1)));
                }
                _ => return None,
            }
        }
    }

    fn free_below(&mut self, t: *mut u64, level: u32) {
        if level == 0 {
            return;
        }
        for i in 0..self.geo.entries(level) {
            // SAFETY: `t` is a live table; i < entries.
            let raw = unsafe { *t.add(i) };
            if let Some(next) = self.table(raw, level) {
                self.free_below(next, level - 1);
                // SAFETY: the child is reachable only through this entry.
                unsafe { dealloc_table(next, self.geo.table_bytes(level - 1)) };
            }
        }
    }
}

impl<F: Format> Drop for Floor<F> {
    fn drop(&mut self) {
        let top = self.geo.top();
        self.free_below(self.root, top);
        // SAFETY: the root came from alloc_table with this size.
        unsafe { dealloc_table(self.root, self.geo.table_bytes(top).max(64)) };
    }
}

fn alloc_table(bytes: usize) -> *mut u64 {
    let layout = Layout::from_size_align(bytes, bytes).expect("table layout");
    // SAFETY: non-zero size.
    let p = unsafe { alloc_zeroed(layout) }.cast::<u64>();
    assert!(!p.is_null(), "out of memory");
    p
}

/// # Safety
/// `t` came from `alloc_table(bytes)` and is not used again.
unsafe fn dealloc_table(t: *mut u64, bytes: usize) {
    let layout = Layout::from_size_align(bytes, bytes).expect("table layout");
    // SAFETY: forwarded.
    unsafe { dealloc(t.cast(), layout) };
}
