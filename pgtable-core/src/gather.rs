//! What an unmap leaves the caller: the range to invalidate and the unlinked tables.

use crate::memory::TablePage;
use crate::reclaim::Reclaim;
use std::fmt;
use std::sync::Arc;

/// The IOVA range an unmap changed and the table pages it unlinked.
///
/// The IOMMU may still walk unlinked tables from its walk caches, so they are handed
/// to epoch reclamation only when the caller [`release`](Gather::release)s the gather
/// after invalidating the range (dropping it releases too). A gather may be reused
/// after release, and may collect several unmaps (the range grows to cover them).
///
/// ```
/// use pgtable_core::Gather;
/// let g = Gather::new();
/// assert_eq!(g.range(), None);
/// assert_eq!(g.freed_tables(), 0);
/// ```
#[must_use = "unmapped ranges must be invalidated in the IOTLB before the gather is released"]
#[derive(Default)]
pub struct Gather {
    start: u64,
    last: u64,
    has_range: bool,
    freed: u64,
    pages: Vec<TablePage>,
    sink: Option<Arc<dyn Reclaim>>,
}

impl fmt::Debug for Gather {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gather")
            .field("range", &self.range())
            .field("freed_tables", &self.freed)
            .finish()
    }
}

impl Gather {
    /// An empty gather.
    pub fn new() -> Self {
        Self::default()
    }

    /// The inclusive IOVA range `(start, last)` to invalidate, if anything was unmapped.
    pub fn range(&self) -> Option<(u64, u64)> {
        self.has_range.then_some((self.start, self.last))
    }

    /// Table pages (in granules) unlinked into this gather and not yet released. When
    /// non-zero, the invalidation must also drop cached non-leaf entries (VT-d IH=0,
    /// Arm leaf=0).
    pub fn freed_tables(&self) -> u64 {
        self.freed
    }

    /// Whether nothing was gathered.
    pub fn is_empty(&self) -> bool {
        !self.has_range && self.pages.is_empty()
    }

    /// Declares the invalidation done: the held table pages go to epoch reclamation,
    /// and the gather is reset for reuse.
    pub fn release(&mut self) {
        let pages = std::mem::take(&mut self.pages);
        if let Some(sink) = self.sink.take() {
            sink.retire(pages);
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

    pub(crate) fn add_page(&mut self, sink: &Arc<dyn Reclaim>, page: TablePage) {
        match &self.sink {
            Some(s) if Arc::ptr_eq(s, sink) => {}
            Some(_) => {
                // Pages of another table: send those home first.
                let old = self.sink.take().expect("checked");
                old.retire(std::mem::take(&mut self.pages));
                self.sink = Some(sink.clone());
            }
            None => self.sink = Some(sink.clone()),
        }
        self.freed += sink.pages_of(&page);
        self.pages.push(page);
    }
}

impl Drop for Gather {
    fn drop(&mut self) {
        self.release();
    }
}
