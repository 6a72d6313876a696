//! [`Session`]: a batch of operations under one epoch pin.

use crate::addr::{Iova, PhysAddr};
use crate::error::Result;
use crate::format::Format;
use crate::gather::Gather;
use crate::level::TableRef;
use crate::memory::TableMemory;
use crate::prot::Prot;
use crate::sync::epoch::Guard;
use crate::table::PageTable;
use crate::walk::{OwnTables, Translation, Walker};
use std::fmt;

/// A batch of operations under one epoch pin.
///
/// Pinning costs a few nanoseconds; a session pays it once. While a session is alive
/// this thread holds back reclamation of unlinked tables (everywhere, not only in this
/// table), so keep sessions short or call [`Session::repin`] now and then.
///
/// ```
/// # use pgtable_core::testfmt::TestFormat;
/// # use pgtable_core::{HostMemory, Iova, PageTable, PhysAddr, Prot};
/// # let pt = PageTable::new(TestFormat::new(), std::sync::Arc::new(HostMemory::new()))?;
/// let s = pt.session();
/// for i in 0..16 {
///     s.map_pages(Iova(i * 0x1000), PhysAddr(0x10_0000 + i * 0x1000), 0x1000, 1, Prot::RW)?;
/// }
/// assert_eq!(s.iova_to_phys(Iova(0xf010)), Some(PhysAddr(0x10_f010)));
/// # Ok::<(), pgtable_core::Error>(())
/// ```
#[must_use = "a session only pins the epoch; use it for operations"]
pub struct Session<'a, F: Format, M: TableMemory> {
    pt: &'a PageTable<F, M>,
    guard: Guard,
}

impl<F: Format, M: TableMemory> fmt::Debug for Session<'_, F, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").field("table", self.pt).finish()
    }
}

impl<'a, F: Format, M: TableMemory> Session<'a, F, M> {
    pub(crate) fn new(pt: &'a PageTable<F, M>, guard: Guard) -> Self {
        Session { pt, guard }
    }

    #[inline(always)]
    fn w(&self) -> Walker<'_, F, OwnTables<'_, M>> {
        self.pt.walker(&self.guard)
    }

    /// The table.
    pub fn table(&self) -> &'a PageTable<F, M> {
        self.pt
    }

    /// Unpins and pins again, letting reclamation advance.
    pub fn repin(&mut self) {
        self.guard.repin();
    }

    /// The top table, read-only, valid while this session's pin holds.
    pub fn root_table(&self) -> TableRef<'_> {
        self.w().root().table
    }

    /// [`PageTable::map_pages`] under the session's pin.
    ///
    /// # Errors
    /// As [`PageTable::map_pages`].
    #[inline]
    pub fn map_pages(
        &self,
        iova: Iova,
        pa: PhysAddr,
        pgsize: u64,
        pgcount: u64,
        prot: Prot,
    ) -> Result<u64> {
        self.pt
            .map_pages_in(&self.w(), iova.0, pa.0, pgsize, pgcount, prot)
    }

    /// [`PageTable::map`] under the session's pin.
    ///
    /// # Errors
    /// As [`PageTable::map`].
    #[inline]
    pub fn map(&self, iova: Iova, pa: PhysAddr, len: u64, prot: Prot) -> Result<u64> {
        self.pt.map_in(&self.w(), iova.0, pa.0, len, prot)
    }

    /// [`PageTable::unmap_pages`] under the session's pin.
    ///
    /// # Errors
    /// As [`PageTable::unmap_pages`].
    #[inline]
    pub fn unmap_pages(
        &self,
        iova: Iova,
        pgsize: u64,
        pgcount: u64,
        gather: &mut Gather,
    ) -> Result<u64> {
        self.pt
            .unmap_pages_in(&self.w(), iova.0, pgsize, pgcount, gather)
    }

    /// [`PageTable::unmap`] under the session's pin.
    ///
    /// # Errors
    /// As [`PageTable::unmap`].
    #[inline]
    pub fn unmap(&self, iova: Iova, len: u64, gather: &mut Gather) -> Result<u64> {
        self.pt.unmap_in(&self.w(), iova.0, len, gather)
    }

    /// [`PageTable::iova_to_phys`] under the session's pin.
    #[inline]
    pub fn iova_to_phys(&self, iova: Iova) -> Option<PhysAddr> {
        self.w().iova_to_phys(iova.0).map(PhysAddr)
    }

    /// [`PageTable::translate`] under the session's pin.
    ///
    /// # Errors
    /// As [`PageTable::translate`].
    #[inline]
    pub fn translate(&self, iova: Iova) -> Result<Translation> {
        self.w().lookup(iova.0)
    }
}
