//! What an unmap leaves the caller: the range to invalidate and the unlinked tables.

use crate::addr::Iova;
use crate::memory::TablePage;
use crate::reclaim::Reclaim;
use std::fmt;
use std::ops::RangeInclusive;
use std::sync::Arc;

/// The IOVA range unmaps changed and the table pages they unlinked, kept until the
/// caller has invalidated the IOTLB.
///
/// The IOMMU may still walk unlinked tables from its walk caches (docs/formats.md §4.1), so
/// none of the pages a gather holds is reused or freed before the caller
/// [`release`](Gather::release)s it after the invalidation; then they go to epoch
/// reclamation. A gather may collect the unmaps of several tables, of any formats and
/// memories, and may be reused after release.
///
/// **Forgetting the release** is a bug, so it is made loud, in the spirit of the
/// `x86_64` crate's `#[must_use] MapperFlush`: dropping a gather that still holds a range
/// or pages panics in debug builds, and in release builds keeps (leaks) the pages rather
/// than free memory the hardware may still read. A temporary such as
/// `pt.unmap(iova, len, &mut Gather::new())` therefore fails in every test run; use
/// [`PageTable::unmap_now`](crate::PageTable::unmap_now) when no gather is wanted.
///
/// ```
/// use pgtable_core::{Gather, HostMemory, Iova, PageTable, PhysAddr, Prot};
/// # use pgtable_core::testfmt::TestFormat;
/// # let pt = PageTable::new(TestFormat::new(), std::sync::Arc::new(HostMemory::new()))?;
/// pt.map(Iova(0x20_0000), PhysAddr(0x8000_0000), 0x20_0000, Prot::RW)?;
/// let mut gather = Gather::new();
/// pt.unmap(Iova(0x20_0000), 0x20_0000, &mut gather)?;
/// assert_eq!(gather.range(), Some(Iova(0x20_0000)..=Iova(0x3f_ffff)));
/// // ... invalidate that range in the IOTLB (and the walk caches if freed_tables() > 0),
/// gather.release();
/// assert!(gather.is_empty());
/// # Ok::<(), pgtable_core::Error>(())
/// ```
/// use pgtable_core::{Iova};
#[must_use = "unmapped ranges must be invalidated in the IOTLB, then the gather released"]
#[derive(Default)]
pub struct Gather {
    start: u64,
    last: u64,
    has_range: bool,
    freed: u64,
    /// Unlinked pages, per table they belong to (usually one).
    held: Vec<Held>,
}

struct Held {
    sink: Arc<dyn Reclaim>,
    pages: Vec<TablePage>,
}

impl fmt::Debug for Gather {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gather")
            .field("range", &self.range())
            .field("freed_tables", &self.freed)
            .field("tables", &self.held.len())
            .finish()
    }
}

impl Gather {
    /// An empty gather.
    pub fn new() -> Self {
        Self::default()
    }

    /// The inclusive IOVA range to invalidate, if anything was unmapped.
    pub fn range(&self) -> Option<RangeInclusive<Iova>> {
        self.has_range.then_some(Iova(self.start)..=Iova(self.last))
    }

    /// Table pages (in granules) unlinked into this gather and not yet released. When
    /// non-zero, the invalidation must also drop cached non-leaf entries (VT-d IH=0,
    /// Arm leaf=0).
    pub fn freed_tables(&self) -> u64 {
        self.freed
    }

    /// Whether nothing was gathered.
    pub fn is_empty(&self) -> bool {
        !self.has_range && self.held.is_empty()
    }

    /// Declares the invalidation done: every held table page (of every table) goes to
    /// epoch reclamation, and the gather is reset for reuse.
    pub fn release(&mut self) {
        for h in self.held.drain(..) {
            h.sink.retire(h.pages);
        }
        self.has_range = false;
        self.start = 0;
        self.last = 0;
        self.freed = 0;
    }

    #[inline(always)]
    pub(crate) fn add_range(&mut self, iova: u64, size: u64) {
        let last = iova + (size - 1);
        if self.has_range {
            self.start = self.start.min(iova);
            self.last = self.last.max(last);
        } else {
            self.start = iova;
            self.last = last;
            self.has_range = true;
        }
    }

    /// Holds `page`, unlinked from the table whose reclamation is `sink`, until release.
    pub(crate) fn add_page(&mut self, sink: &Arc<dyn Reclaim>, page: TablePage) {
        self.freed += sink.pages_of(&page);
        if let Some(h) = self
            .held
            .iter_mut()
            .rev()
            .find(|h| Arc::ptr_eq(&h.sink, sink))
        {
            h.pages.push(page);
        } else {
            self.held.push(Held {
                sink: sink.clone(),
                pages: vec![page],
            });
        }
    }
}

impl Drop for Gather {
    fn drop(&mut self) {
        if self.is_empty() {
            return;
        }
        // The invalidation may not have happened: the IOMMU may still walk the unlinked
        // tables, so they are kept (leaked), never freed. In debug builds this is a bug
        // report (unless we are already unwinding from another one).
        debug_assert!(
            std::thread::panicking(),
            "a Gather holding {:?} and {} table pages was dropped without release()",
            self.range(),
            self.freed
        );
    }
}
