//! The flush hook: how the library reaches the IOMMU's caches when it unlinks tables on
//! its own.

use crate::addr::Iova;

/// Invalidates the IOMMU's walk caches and IOTLB for a range, and waits until that has
/// completed: what a table calls, synchronously on the mapping or unmapping thread,
/// whenever it unlinks table pages outside an unmap-with-gather:
///
/// - a `map` that replaces an empty subtree by a larger leaf: the table entry is
///   detached (written empty), the hook runs once with the entry's whole span (so on
///   Arm the entry is empty while it runs: break-before-make), then the leaf is
///   written, then the replaced pages go to epoch reclamation;
/// - the rollback of a failed `map`, and [`PageTable::unmap_now`](crate::PageTable::unmap_now)
///   (an unmap without a gather): the hook runs once with the unmapped range before the
///   unlinked pages go to epoch reclamation.
///
/// A table without a hook is one no hardware walks (an emulated IOMMU whose only walkers
/// are CPU readers): there the epoch alone protects unlinked pages. This is the Rust
/// side of the C API's `iommu_pt_flush_ops`.
///
/// Any `Fn(Iova, u64) + Send + Sync` is a hook:
///
/// ```
/// use pgtable_core::{FlushWalk, Iova};
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
///
/// let flushed = Arc::new(AtomicU64::new(0));
/// let seen = flushed.clone();
/// let hook = move |_iova: Iova, size: u64| { seen.fetch_add(size, Ordering::Relaxed); };
/// hook.flush_walk(Iova(0x20_0000), 0x20_0000);
/// assert_eq!(flushed.load(Ordering::Relaxed), 0x20_0000);
/// ```
pub trait FlushWalk: Send + Sync {
    /// Invalidates walk caches and IOTLB for `[iova, iova + size)` and waits for the
    /// invalidation to complete.
    fn flush_walk(&self, iova: Iova, size: u64);
}

impl<F: Fn(Iova, u64) + Send + Sync> FlushWalk for F {
    fn flush_walk(&self, iova: Iova, size: u64) {
        self(iova, size)
    }
}
