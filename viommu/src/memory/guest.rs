//! [`GuestRam`]: a vm-memory guest's RAM as table memory, zero-copy.

use pgtable_core::ViewMemory;
use std::ptr::NonNull;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryRegion, MemoryRegionAddress};

/// A vm-memory backend whose host addresses the walker may dereference.
///
/// vm-memory's traits are safe to implement, so nothing stops an implementation from
/// returning any pointer from `get_host_address`; a table walker that follows it must
/// rely on a promise, and this trait is that promise (the way
/// [`ViewMemory`] is for table memory). It is implemented for vm-memory's own
/// [`GuestMemoryMmap`](vm_memory::GuestMemoryMmap); implement it for another backend
/// only if it keeps the promise.
///
/// # Safety
/// Implementors promise that, for as long as the backend lives:
/// - `find_region(a)` returns a region containing `a`, and the regions never change (a
///   `GuestMemoryBackend` is immutable; a VMM swaps in a new one instead);
/// - for an address inside a region, `get_host_address` returns the host address of
///   that byte of a mapping that stays mapped, unmoved and readable by atomic
///   operations, with consecutive guest bytes of the region at consecutive host
///   addresses, and page-aligned at the region's start;
/// - `region_writable(r)` is true only if all of `r` takes atomic writes.
pub unsafe trait TrustedBackend: GuestMemoryBackend + Send + Sync + 'static {
    /// Whether the region's host mapping may be written.
    fn region_writable(region: &Self::R) -> bool;
}

// SAFETY: `GuestMemoryMmap` is an immutable, sorted collection of `Arc`-held regions; each
// region is one `MmapRegion`, created by `mmap` (or by `MmapRegion::build_raw`, whose
// caller vouches for the mapping) and unmapped only when its last `Arc` drops, which the
// collection holds; `get_host_address` is the mapping's start plus the checked offset.
// `prot()` is the protection the region was mapped with.
#[cfg(unix)]
unsafe impl<B> TrustedBackend for vm_memory::GuestMemoryMmap<B>
where
    B: vm_memory::bitmap::Bitmap + Send + Sync + 'static,
{
    fn region_writable(region: &vm_memory::GuestRegionMmap<B>) -> bool {
        region.prot() & libc::PROT_WRITE != 0
    }
}

/// A guest's RAM, from any [`TrustedBackend`] (vm-memory's `GuestMemoryMmap`), as
/// [`ViewMemory`]: tables the guest wrote are walked in place, with no copies.
///
/// `view(pa, len)` gives the host pointer only if the whole range lies in one region
/// (a range in a hole or across a region boundary is refused, as the hardware's read of
/// an entry there would fail). The memory is writable (for access/dirty updates) when
/// every region is; [`GuestRam::is_writable`] answers for one range.
///
/// ```
/// use viommu::memory::{GuestRam, PhysAccess};
/// use vm_memory::{GuestAddress, GuestMemoryMmap};
/// let ram = GuestRam::new(GuestMemoryMmap::<()>::from_ranges(&[
///     (GuestAddress(0), 0x10000),
///     (GuestAddress(0x20000), 0x10000),
/// ])?);
/// ram.write_u64(0x20008, 42)?;
/// assert_eq!(ram.read_u64(0x20008)?, 42);
/// assert!(ram.read_u64(0x10000).is_err()); // the hole
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct GuestRam<M> {
    mem: M,
    writable: bool,
}

impl<M: TrustedBackend> GuestRam<M> {
    /// The RAM of `mem`.
    pub fn new(mem: M) -> Self {
        let writable = mem.num_regions() > 0 && mem.iter().all(M::region_writable);
        GuestRam { mem, writable }
    }

    /// The vm-memory backend.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// The vm-memory backend, given back.
    pub fn into_inner(self) -> M {
        self.mem
    }

    /// Whether `[pa, pa + len)` lies in one region that takes writes.
    pub fn is_writable(&self, pa: u64, len: u64) -> bool {
        self.region_of(pa, len)
            .is_some_and(|(r, _)| M::region_writable(r))
    }

    /// The region holding all of `[pa, pa + len)` and the offset of `pa` in it.
    fn region_of(&self, pa: u64, len: u64) -> Option<(&M::R, u64)> {
        let region = self.mem.find_region(GuestAddress(pa))?;
        let off = pa.checked_sub(region.start_addr().0)?;
        (off.checked_add(len)? <= region.len()).then_some((region, off))
    }
}

// SAFETY: `view` returns a pointer only for an 8-byte aligned range wholly inside one
// region, computed by the region's `get_host_address`; `TrustedBackend` promises that
// this is the host address of that byte in a mapping that stays valid for atomic access
// as long as the backend (owned by `self`) lives, contiguous over the region and page
// aligned at its start, so the range is valid and the pointer 8-byte aligned (also
// checked). `writable` is true only if every region takes writes.
unsafe impl<M: TrustedBackend> ViewMemory for GuestRam<M> {
    #[inline]
    fn view(&self, phys: u64, len: usize) -> Option<NonNull<u8>> {
        if !phys.is_multiple_of(8) {
            return None;
        }
        let (region, off) = self.region_of(phys, len as u64)?;
        let ptr = region.get_host_address(MemoryRegionAddress(off)).ok()?;
        if !(ptr as usize).is_multiple_of(8) {
            return None;
        }
        NonNull::new(ptr)
    }

    fn writable(&self) -> bool {
        self.writable
    }
}
