//! [`PageTable`]: the table every format is compiled into, its construction and its
//! teardown. The operations live in their own modules (`map`, `unmap`, `walk`, `dump`,
//! `session`).

use crate::addr::{Iova, PhysAddr};
use crate::error::{Error, Result};
use crate::flush::FlushWalk;
use crate::format::{Format, HwInfo};
use crate::geometry::Geometry;
use crate::level::TableRef;
use crate::memory::{TableMemory, TablePage};
use crate::prot::Prot;
use crate::reclaim::{DEFAULT_PAGE_CACHE_BYTES, Reclaim, Shared};
use crate::session::Session;
use crate::sync::AtomicBool;
use crate::sync::epoch::{self, Guard};
use crate::walk::{OwnTables, Walker};
use std::fmt;
use std::sync::Arc;

/// What [`PageTable::info`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableInfo {
    /// The table's geometry (levels, address sizes, page sizes).
    pub geometry: Geometry,
    /// Table pages (in granules) allocated and not yet given back, root included,
    /// counting pages waiting for reclamation, held by gathers or cached for reuse.
    pub table_pages: u64,
    /// Of those, pages cached for reuse by new tables.
    pub cached_pages: u64,
    /// Root physical address and register values.
    pub hw: HwInfo,
}

/// An I/O page table of format `F` whose table pages come from `M`.
///
/// All operations take `&self`; see the crate docs for the concurrency contract.
///
/// ```
/// # use pgtable_core::testfmt::TestFormat;
/// use pgtable_core::{Gather, HostMemory, Iova, PageTable, PhysAddr, Prot};
/// use std::sync::Arc;
///
/// let pt = PageTable::new(TestFormat::new(), Arc::new(HostMemory::new()))?;
/// pt.map(Iova(0x20_0000), PhysAddr(0x8000_0000), 0x20_1000, Prot::RW)?; // 2M + 4K
/// assert_eq!(pt.iova_to_phys(Iova(0x40_0123)), Some(PhysAddr(0x8020_0123)));
/// let mut g = Gather::new();
/// assert_eq!(pt.unmap(Iova(0x20_0000), 0x20_1000, &mut g)?, 0x20_1000);
/// assert_eq!(g.range(), Some(Iova(0x20_0000)..=Iova(0x40_0fff)));
/// g.release(); // after invalidating the IOTLB
/// assert_eq!(pt.iova_to_phys(Iova(0x40_0123)), None);
/// # Ok::<(), pgtable_core::Error>(())
/// ```
/// use pgtable_core::{PhysAddr};
pub struct PageTable<F: Format, M: TableMemory> {
    pub(crate) fmt: F,
    pub(crate) geo: Geometry,
    pub(crate) root: TablePage,
    pub(crate) shared: Arc<Shared<M>>,
    pub(crate) sink: Arc<dyn Reclaim>,
    pub(crate) flush: Option<Arc<dyn FlushWalk>>,
    /// `1 << va_bits` and `1 << oas` (saturated): the fast paths' range checks.
    pub(crate) va_end: u64,
    pub(crate) oa_end: u64,
    /// Dirty tracking is on: new writable leaves are written clean.
    pub(crate) dirty: AtomicBool,
}

impl<F: Format, M: TableMemory> fmt::Debug for PageTable<F, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageTable")
            .field("format", &self.fmt)
            .field("root", &PhysAddr(self.root.phys))
            .field("table_pages", &self.shared.live_pages())
            .field("flush_hook", &self.flush.is_some())
            .finish()
    }
}

/// Options for a [`PageTable`]: a flush hook and the page cache size.
///
/// ```
/// # use pgtable_core::testfmt::TestFormat;
/// use pgtable_core::{HostMemory, Iova, PageTable};
/// use std::sync::Arc;
///
/// let pt = PageTable::builder(TestFormat::new(), Arc::new(HostMemory::new()))
///     .flush(|iova: Iova, size: u64| { /* invalidate, wait */ })
///     .page_cache_bytes(1 << 20)
///     .build()?;
/// # Ok::<(), pgtable_core::Error>(())
/// ```
/// use pgtable_core::{Iova, PhysAddr};
#[must_use = "a builder does nothing until build() is called"]
pub struct PageTableBuilder<F: Format, M: TableMemory> {
    fmt: F,
    mem: Arc<M>,
    flush: Option<Arc<dyn FlushWalk>>,
    cache_bytes: usize,
}

impl<F: Format, M: TableMemory> fmt::Debug for PageTableBuilder<F, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageTableBuilder")
            .field("format", &self.fmt)
            .field("flush_hook", &self.flush.is_some())
            .field("page_cache_bytes", &self.cache_bytes)
            .finish()
    }
}

impl<F: Format, M: TableMemory> PageTableBuilder<F, M> {
    /// The hook the table calls when it unlinks tables outside an unmap-with-gather
    /// (see [`FlushWalk`]). Without one, no hardware is assumed to walk the table.
    pub fn flush(mut self, hook: impl FlushWalk + 'static) -> Self {
        self.flush = Some(Arc::new(hook));
        self
    }

    /// [`PageTableBuilder::flush`] with a hook already shared.
    pub fn flush_shared(mut self, hook: Arc<dyn FlushWalk>) -> Self {
        self.flush = Some(hook);
        self
    }

    /// How many bytes of freed table pages the table keeps for reuse by new tables
    /// (default [`DEFAULT_PAGE_CACHE_BYTES`]). 0 turns the cache off: every reclaimed
    /// page goes back to the memory as soon as the epoch frees it, at the cost of those
    /// frees running wherever crossbeam collects (possibly inside a map or unmap).
    pub fn page_cache_bytes(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// Builds the table with an empty top table.
    ///
    /// # Errors
    /// [`Error::BadConfig`] if the format's geometry is inconsistent,
    /// [`Error::NoMemory`] if the top table cannot be allocated,
    /// [`Error::TableUnreachable`] if the memory does not map it back.
    pub fn build(self) -> Result<PageTable<F, M>> {
        let geo = self.fmt.geometry();
        geo.validate()?;
        let shared = Arc::new(Shared::new(self.mem, geo.granule_shift, self.cache_bytes));
        let root = shared
            .alloc_table(geo.table_bytes(geo.top()))
            .ok_or(Error::NoMemory { mapped: 0 })?;
        if shared.mem.phys_to_virt(root.phys, root.size) != Some(root.virt) {
            shared.unused(vec![root]);
            return Err(Error::TableUnreachable {
                pa: PhysAddr(root.phys),
            });
        }
        let sink: Arc<dyn Reclaim> = shared.clone();
        Ok(PageTable {
            fmt: self.fmt,
            geo,
            root,
            shared,
            sink,
            flush: self.flush,
            va_end: 1u64 << geo.va_bits,
            oa_end: if geo.oas >= 64 {
                u64::MAX
            } else {
                1u64 << geo.oas
            },
            dirty: AtomicBool::new(false),
        })
    }
}

impl<F: Format, M: TableMemory> PageTable<F, M> {
    /// A table with an empty top table, no flush hook and the default page cache.
    ///
    /// # Errors
    /// As [`PageTableBuilder::build`].
    pub fn new(fmt: F, mem: Arc<M>) -> Result<Self> {
        Self::builder(fmt, mem).build()
    }

    /// A builder, for a flush hook or another page cache size.
    pub fn builder(fmt: F, mem: Arc<M>) -> PageTableBuilder<F, M> {
        PageTableBuilder {
            fmt,
            mem,
            flush: None,
            cache_bytes: DEFAULT_PAGE_CACHE_BYTES,
        }
    }

    /// The format value this table was built with.
    pub fn format(&self) -> &F {
        &self.fmt
    }

    /// The table's geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geo
    }

    /// The table memory.
    pub fn memory(&self) -> &Arc<M> {
        &self.shared.mem
    }

    /// Physical address of the top table.
    pub fn root_phys(&self) -> PhysAddr {
        PhysAddr(self.root.phys)
    }

    /// Levels, root, register values and the live table-page count.
    pub fn info(&self) -> TableInfo {
        TableInfo {
            geometry: self.geo,
            table_pages: self.shared.live_pages(),
            cached_pages: self.shared.cached_pages() as u64,
            hw: self.fmt.hw_info(self.root.phys),
        }
    }

    /// Pins the epoch once for a batch of operations (see [`Session`]).
    pub fn session(&self) -> Session<'_, F, M> {
        Session::new(self, epoch::pin())
    }

    /// Gives every cached table page back to the memory; returns how many. (The cache
    /// otherwise stays within its limit on its own, trimmed by gather releases.)
    pub fn trim_page_cache(&self) -> usize {
        self.shared.trim(0, usize::MAX)
    }

    /// A walker over this table's pages, under the pin `g`.
    #[inline(always)]
    pub(crate) fn walker<'g>(&'g self, g: &'g Guard) -> Walker<'g, F, OwnTables<'g, M>> {
        // SAFETY: the root page was allocated (and checked to map back) by `build` and is
        // freed only by `drop`, which needs `&mut self`: it outlives this borrow. Tables
        // hold a power of two of entries.
        let root = unsafe { TableRef::from_raw(self.root.virt, self.geo.entries(self.geo.top())) };
        let src = OwnTables {
            mem: &*self.shared.mem,
            _pin: g,
        };
        Walker::new(&self.fmt, &self.geo, src, root)
    }

    /// The leaf `encode_leaf` gives, written clean when dirty tracking is on.
    #[inline(always)]
    pub(crate) fn leaf(&self, pa: u64, level: u32, prot: Prot) -> u64 {
        let raw = self.fmt.encode_leaf(pa, level, prot);
        if self.dirty.load(crate::sync::Ordering::Relaxed) {
            self.fmt.track_dirty(raw, level, true)
        } else {
            raw
        }
    }

    /// The allocation record of a table of `level` at `virt` / `phys`.
    #[inline]
    pub(crate) fn table_page(&self, table: TableRef<'_>, phys: u64, level: u32) -> TablePage {
        TablePage {
            virt: table.virt(),
            phys,
            size: self.shared.alloc_size(self.geo.table_bytes(level)),
        }
    }

    // ---------------------------------------------------------------- checks

    /// `[iova, iova + len)` inside the usable input space; returns its end.
    #[inline(always)]
    pub(crate) fn check_iova(&self, iova: u64, len: u64) -> Result<u64> {
        match iova.checked_add(len) {
            Some(end) if end <= self.va_end => Ok(end),
            _ => Err(Error::IovaRange {
                start: Iova(iova),
                len,
                bits: self.geo.va_bits,
            }),
        }
    }

    #[inline(always)]
    pub(crate) fn check_pa(&self, pa: u64, len: u64) -> Result<()> {
        match pa.checked_add(len) {
            Some(end) if end <= self.oa_end => Ok(()),
            _ => Err(Error::PhysRange {
                start: PhysAddr(pa),
                len,
                bits: self.geo.oas,
            }),
        }
    }

    /// READ or WRITE, and only known bits.
    #[inline(always)]
    pub(crate) fn prot_ok(prot: Prot) -> bool {
        prot.intersects(Prot::RW) && prot.bits() & !Prot::all().bits() == 0
    }

    #[inline(always)]
    pub(crate) fn check_prot(prot: Prot) -> Result<()> {
        if Self::prot_ok(prot) {
            Ok(())
        } else {
            Err(Error::BadProt(prot.bits()))
        }
    }

    #[inline(always)]
    pub(crate) fn check_aligned(what: &'static str, value: u64, align: u64) -> Result<()> {
        if value & (align - 1) == 0 {
            Ok(())
        } else {
            Err(Error::Misaligned { what, value, align })
        }
    }
}

impl<F: Format, M: TableMemory> Drop for PageTable<F, M> {
    fn drop(&mut self) {
        // SAFETY: dropping needs `&mut self`, so no reader of this table exists.
        unsafe { self.shared.shutdown() };
        let g = epoch::pin();
        self.free_tree(&g);
        // SAFETY: the root came from alloc_table and is freed only here.
        unsafe { self.shared.free_now(self.root) };
    }
}
