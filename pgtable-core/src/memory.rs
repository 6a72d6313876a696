//! Where table pages live: [`TableMemory`] (memory the library builds tables in) and
//! [`ViewMemory`] (memory it may only look at tables in), with their backends.

mod arena;
mod host;

pub use arena::{ArenaMemory, ArenaStats};
pub use host::HostMemory;

use std::ptr::NonNull;

/// One table allocation: its CPU pointer, physical address and size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TablePage {
    /// CPU address of the first byte.
    pub virt: NonNull<u8>,
    /// Physical address the IOMMU sees.
    pub phys: u64,
    /// Size in bytes.
    pub size: usize,
}

// SAFETY: a TablePage is only an address record; whoever dereferences `virt` does so
// under the table's epoch rules, from any thread.
unsafe impl Send for TablePage {}
// SAFETY: as above; the record itself is immutable.
unsafe impl Sync for TablePage {}

/// Memory for the tables a [`PageTable`](crate::PageTable) builds.
///
/// Held in an `Arc` by the table, its gathers and its deferred frees, so it must be
/// `Send + Sync` and outlive every page it handed out.
///
/// The walker only asks `phys_to_virt` for pages it allocated itself (it checks that
/// `phys_to_virt(page.phys)` gives `page.virt` back before it installs a page), so a
/// memory that cannot tell its own pages from others' (like [`HostMemory`]) is fine
/// here; viewing tables built elsewhere needs a [`ViewMemory`].
///
/// # Safety
/// Implementors promise that
/// - `alloc(size, align)` returns memory that is zeroed, aligned to `align` both as a CPU
///   pointer and as a physical address, valid for reads and writes of `size` bytes until
///   it is given back with `free`, and not handed out again before then;
/// - `phys_to_virt(phys, len)`, for `[phys, phys + len)` inside a live allocation,
///   returns the CPU pointer of byte `phys` or `None`, never another pointer (the
///   walker reads and writes 8-byte entries through it).
pub unsafe trait TableMemory: Send + Sync + 'static {
    /// Allocates a zeroed table of `size` bytes aligned to `align` (both powers of two).
    /// `None` when memory is exhausted.
    fn alloc(&self, size: usize, align: usize) -> Option<TablePage>;

    /// Gives a table back.
    ///
    /// # Safety
    /// `page` must come from `alloc` on this memory and not have been freed since; no
    /// one may access it afterwards.
    unsafe fn free(&self, page: TablePage);

    /// The CPU pointer of physical address `phys`, where `[phys, phys + len)` is part
    /// of a live allocation (the walker asks for whole tables).
    fn phys_to_virt(&self, phys: u64, len: usize) -> Option<NonNull<u8>>;

    /// Makes `len` bytes written at `virt` visible to a non-coherent table walker
    /// (clean to the point of coherency). The default is for coherent walkers: nothing.
    #[inline(always)]
    fn clean(&self, _virt: NonNull<u8>, _len: usize) {}
}

/// Memory that knows its bounds, so the walker may decode tables it did not build
/// there (a guest's RAM, a memory image): every table address a foreign entry holds is
/// checked against it before it is followed.
///
/// [`HostMemory`] is deliberately not a `ViewMemory`: it would have to accept any
/// address as a pointer.
///
/// # Safety
/// Implementors promise that `view(phys, len)` returns `Some(ptr)` only when every byte
/// of `[phys, phys + len)` lies in memory that stays valid for atomic 8-byte reads (and,
/// when [`ViewMemory::writable`] is true, atomic read-modify-writes) for as long as
/// `self` lives, with `ptr` pointing at byte `phys` and 8-byte aligned when `phys` is;
/// and `None` for any range it cannot vouch for (outside the memory, overflowing,
/// misaligned).
pub unsafe trait ViewMemory: Send + Sync + 'static {
    /// The CPU pointer of the `len` bytes at `phys`, if they all lie in this memory.
    fn view(&self, phys: u64, len: usize) -> Option<NonNull<u8>>;

    /// Whether entries may be updated in place (atomically), as a hardware walker does
    /// when it sets access and dirty flags. `false` by default (read-only memory).
    fn writable(&self) -> bool {
        false
    }
}
