//! Table pages from the host heap, with physical address == CPU address.

use super::{TableMemory, TablePage};
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;

/// Table pages from the global allocator; the "physical" address is the CPU address,
/// so C code (and a debugger) can follow table pointers directly.
///
/// ```
/// use pgtable_core::{HostMemory, TableMemory};
/// let m = HostMemory::new();
/// let p = m.alloc(4096, 4096).unwrap();
/// assert_eq!(p.phys, p.virt.as_ptr() as u64);
/// // SAFETY: p came from m.alloc and is not used again.
/// unsafe { m.free(p) };
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct HostMemory;

impl HostMemory {
    /// The host-memory backend.
    pub const fn new() -> Self {
        HostMemory
    }
}

// SAFETY: alloc_zeroed with a layout of (size, align) gives zeroed, aligned memory owned
// until dealloc; phys == virt, so phys_to_virt is the identity on live allocations.
unsafe impl TableMemory for HostMemory {
    #[inline]
    fn alloc(&self, size: usize, align: usize) -> Option<TablePage> {
        // Tables are aligned to their own size; the layout is rebuilt from the size
        // alone in `free`, so an alignment above the size's power of two is refused.
        if size == 0 || align > size.next_power_of_two() {
            return None;
        }
        let layout = Layout::from_size_align(size, size.next_power_of_two()).ok()?;
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc_zeroed(layout) };
        let virt = NonNull::new(p)?;
        // The "physical" address is the CPU address, exposed so that phys_to_virt may
        // turn it back into a pointer with this allocation's provenance.
        Some(TablePage {
            virt,
            phys: p.expose_provenance() as u64,
            size,
        })
    }

    #[inline]
    unsafe fn free(&self, page: TablePage) {
        let Ok(layout) = Layout::from_size_align(page.size, page.size.next_power_of_two()) else {
            return; // not from `alloc`: nothing we could free safely
        };
        // SAFETY: the caller guarantees `page` came from `alloc` with this layout.
        unsafe { dealloc(page.virt.as_ptr(), layout) };
    }

    #[inline(always)]
    fn phys_to_virt(&self, phys: u64, _len: usize) -> Option<NonNull<u8>> {
        NonNull::new(std::ptr::with_exposed_provenance_mut(phys as usize))
    }
}
