//! A bounded region of table memory at a chosen physical base (phys != virt).

use super::{TableMemory, TablePage, ViewMemory};
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::collections::{BTreeMap, VecDeque};
use std::ptr::NonNull;
use std::sync::Mutex;

/// A fixed region of `capacity` bytes that the IOMMU sees at physical address `base`.
///
/// Allocation is a bump pointer over the region, so a fresh arena lays tables out
/// exactly like hand-written examples (the first table at `base`, the next after it);
/// freed tables are reused first-in first-out only once the bump pointer reaches the
/// end, which keeps a freed page unused (and, with poisoning, poisoned) as long as
/// possible. Every allocation and free is tracked, so tests can check that each page
/// was freed exactly once ([`ArenaMemory::stats`]).
///
/// This is a test and tooling backend: it takes a lock per allocation.
///
/// ```
/// use pgtable_core::{ArenaMemory, TableMemory};
/// let m = ArenaMemory::new(0x1000_0000, 1 << 20);
/// let p = m.alloc(4096, 4096).unwrap();
/// assert_eq!(p.phys, 0x1000_0000);
/// assert_eq!(m.phys_to_virt(0x1000_0008, 8).unwrap().as_ptr() as usize,
///            p.virt.as_ptr() as usize + 8);
/// // SAFETY: p came from m.alloc and is not used again.
/// unsafe { m.free(p) };
/// assert_eq!(m.stats().live, 0);
/// ```
#[derive(Debug)]
pub struct ArenaMemory {
    region: NonNull<u8>,
    layout: Layout,
    base: u64,
    poison: Option<u64>,
    state: Mutex<ArenaState>,
}

// SAFETY: the region is owned by the arena; all bookkeeping is behind the mutex, and the
// table memory itself is accessed by the walker through atomics.
unsafe impl Send for ArenaMemory {}
// SAFETY: as above.
unsafe impl Sync for ArenaMemory {}

#[derive(Debug, Default)]
struct ArenaState {
    bump: usize,
    free: BTreeMap<usize, VecDeque<usize>>,
    live: BTreeMap<usize, usize>,
    stats: ArenaStats,
}

/// Allocation counters of an [`ArenaMemory`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ArenaStats {
    /// Allocations served.
    pub allocs: u64,
    /// Frees accepted.
    pub frees: u64,
    /// Allocations currently live.
    pub live: u64,
    /// Bytes currently live.
    pub live_bytes: u64,
    /// Allocations refused for lack of space.
    pub failed: u64,
    /// Frees of something not live (double frees or foreign pointers): always a bug.
    pub bad_frees: u64,
}

/// The largest alignment a table needs: 16 concatenated 64 KiB stage-2 tables.
const REGION_ALIGN: usize = 1 << 20;

impl ArenaMemory {
    /// An arena of `capacity` bytes (rounded up to 64 KiB) seen at physical `base`,
    /// which must be aligned to 1 MiB so that table alignment carries over.
    ///
    /// # Panics
    /// If `base` is misaligned or the host cannot provide the region.
    pub fn new(base: u64, capacity: usize) -> Self {
        Self::build(base, capacity, None)
    }

    /// Like [`ArenaMemory::new`], but every freed table is filled with `pattern`, so a
    /// reader that reaches a freed table reads the pattern instead of a plausible entry.
    pub fn with_poison(base: u64, capacity: usize, pattern: u64) -> Self {
        Self::build(base, capacity, Some(pattern))
    }

    fn build(base: u64, capacity: usize, poison: Option<u64>) -> Self {
        assert!(
            base.is_multiple_of(REGION_ALIGN as u64),
            "arena base {base:#x} must be 1 MiB aligned"
        );
        let capacity = capacity.max(1 << 16).next_multiple_of(1 << 16);
        let layout = Layout::from_size_align(capacity, REGION_ALIGN).expect("arena layout");
        // SAFETY: the layout has a non-zero size.
        let region = NonNull::new(unsafe { alloc_zeroed(layout) }).expect("arena region");
        ArenaMemory {
            region,
            layout,
            base,
            poison,
            state: Mutex::new(ArenaState::default()),
        }
    }

    /// The physical address of the region's first byte.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The region's size in bytes.
    pub fn capacity(&self) -> usize {
        self.layout.size()
    }

    /// Current counters.
    pub fn stats(&self) -> ArenaStats {
        self.lock().stats
    }

    /// Reads the 64-bit little-endian word at physical address `phys` (for tests that
    /// check table contents byte for byte). `None` outside the region or misaligned.
    pub fn read_u64(&self, phys: u64) -> Option<u64> {
        let off = self.offset(phys)?;
        if off % 8 != 0 || off + 8 > self.capacity() {
            return None;
        }
        // SAFETY: in bounds and aligned; table words are written with atomics, and an
        // 8-byte aligned plain read of them is what the hardware does too.
        let v = unsafe {
            (*self
                .region
                .as_ptr()
                .add(off)
                .cast::<std::sync::atomic::AtomicU64>())
            .load(std::sync::atomic::Ordering::Acquire)
        };
        Some(v)
    }

    /// A copy of the region's bytes (e.g. to write a memory image).
    pub fn snapshot(&self) -> Vec<u8> {
        (0..self.capacity() / 8)
            .flat_map(|i| {
                self.read_u64(self.base + 8 * i as u64)
                    .unwrap_or(0)
                    .to_le_bytes()
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ArenaState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn offset(&self, phys: u64) -> Option<usize> {
        let off = phys.checked_sub(self.base)?;
        (off < self.capacity() as u64).then_some(off as usize)
    }
}

impl Drop for ArenaMemory {
    fn drop(&mut self) {
        // SAFETY: the region was allocated in `build` with this layout.
        unsafe { dealloc(self.region.as_ptr(), self.layout) };
    }
}

// SAFETY: allocations are disjoint pieces of the owned region, zeroed before being handed
// out, aligned both in the region (aligned to 1 MiB) and physically (base aligned to
// 1 MiB); phys_to_virt maps only addresses inside the region.
unsafe impl TableMemory for ArenaMemory {
    fn alloc(&self, size: usize, align: usize) -> Option<TablePage> {
        if size == 0 || !align.is_power_of_two() || align > REGION_ALIGN {
            return None;
        }
        let mut st = self.lock();
        let start = st.bump.next_multiple_of(align);
        let off = if start + size <= self.capacity() {
            st.bump = start + size;
            Some(start)
        } else {
            let q = st.free.get_mut(&size);
            let pos = q
                .as_ref()
                .and_then(|q| q.iter().position(|&o| o % align == 0));
            match (q, pos) {
                (Some(q), Some(i)) => q.remove(i),
                _ => None,
            }
        };
        let Some(off) = off else {
            st.stats.failed += 1;
            return None;
        };
        st.live.insert(off, size);
        st.stats.allocs += 1;
        st.stats.live += 1;
        st.stats.live_bytes += size as u64;
        drop(st);
        // SAFETY: [off, off + size) is inside the region and owned by nobody else now.
        let virt = unsafe { self.region.add(off) };
        // SAFETY: as above; reused pages may hold poison, and tables must start zeroed.
        unsafe { std::ptr::write_bytes(virt.as_ptr(), 0, size) };
        Some(TablePage {
            virt,
            phys: self.base + off as u64,
            size,
        })
    }

    unsafe fn free(&self, page: TablePage) {
        let off = page.virt.as_ptr() as usize - self.region.as_ptr() as usize;
        let mut st = self.lock();
        if st.live.get(&off) != Some(&page.size) {
            st.stats.bad_frees += 1;
            return;
        }
        st.live.remove(&off);
        if let Some(pattern) = self.poison {
            let words = page.size / 8;
            let p = page.virt.as_ptr().cast::<std::sync::atomic::AtomicU64>();
            for i in 0..words {
                // SAFETY: the page was live until now and lies inside the region; stray
                // readers (a bug this poisoning exists to catch) read it atomically.
                unsafe { (*p.add(i)).store(pattern, std::sync::atomic::Ordering::Relaxed) };
            }
        }
        st.free.entry(page.size).or_default().push_back(off);
        st.stats.frees += 1;
        st.stats.live -= 1;
        st.stats.live_bytes -= page.size as u64;
    }

    #[inline]
    fn phys_to_virt(&self, phys: u64, len: usize) -> Option<NonNull<u8>> {
        let off = self.offset(phys)?;
        if len > self.capacity() - off {
            return None;
        }
        // SAFETY: off is inside the region.
        Some(unsafe { self.region.add(off) })
    }
}

// SAFETY: `view` hands out pointers only for ranges wholly inside the region, which the
// arena owns until it drops; the region is 1 MiB aligned, so an 8-byte aligned `phys`
// gives an 8-byte aligned pointer, and misaligned requests are refused.
unsafe impl ViewMemory for ArenaMemory {
    #[inline]
    fn view(&self, phys: u64, len: usize) -> Option<NonNull<u8>> {
        if !phys.is_multiple_of(8) {
            return None;
        }
        let off = self.offset(phys)?;
        if len > self.capacity() - off {
            return None;
        }
        // SAFETY: off is inside the region.
        Some(unsafe { self.region.add(off) })
    }

    fn writable(&self) -> bool {
        true
    }
}
