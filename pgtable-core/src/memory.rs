//! Where table pages live: the [`TableMemory`] trait and its backends.

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

/// Memory for table pages.
///
/// Held in an `Arc` by the table, its gathers and its deferred frees, so it must be
/// `Send + Sync` and outlive every page it handed out.
///
/// # Safety
/// Implementors promise that
/// - `alloc(size, align)` returns memory that is zeroed, aligned to `align` both as a CPU
///   pointer and as a physical address, valid for reads and writes of `size` bytes until
///   it is given back with `free`, and not handed out again before then;
/// - `phys_to_virt(phys)` for any physical address inside a live allocation returns
///   the CPU pointer of that byte (the walker reads and writes 8-byte entries through
///   it), and returns `None` rather than a dangling pointer for addresses it does not own.
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

    /// The CPU pointer of physical address `phys`, if this memory holds the `len`
    /// bytes from there (the walker asks for whole tables).
    fn phys_to_virt(&self, phys: u64, len: usize) -> Option<NonNull<u8>>;

    /// Makes `len` bytes written at `virt` visible to a non-coherent table walker
    /// (clean to the point of coherency). The default is for coherent walkers: nothing.
    #[inline(always)]
    fn clean(&self, _virt: NonNull<u8>, _len: usize) {}
}
