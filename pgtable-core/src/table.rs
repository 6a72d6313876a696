//! [`PageTable`]: the generic walker every format is compiled into.

use crate::error::{Error, Result};
use crate::format::{Entry, Format, Geometry, HwInfo};
use crate::gather::Gather;
use crate::memory::{TableMemory, TablePage};
use crate::prot::Prot;
use crate::reclaim::{Reclaim, Shared};
use crate::sync::epoch::{self, Guard};
use crate::sync::{AtomicU64, Ordering};
use std::collections::HashSet;
use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;

/// What a walk carries down the tree: the raw entries on the path (for dumps) and, for
/// foreign tables, the table pages already walked and the first one met again.
pub(crate) struct VisitState {
    path: [u64; 8],
    seen: Option<HashSet<u64>>,
    repeat: Option<SharedTable>,
}

/// A table page that tables not built here reach more than once (shared between
/// entries, or a cycle back to an ancestor): the first such entry a walk met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedTable {
    /// Physical address of the table reached again.
    pub phys: u64,
    /// Level of the entry that points to it.
    pub level: u32,
    /// First IOVA that entry covers.
    pub iova: u64,
}

/// One translation: a leaf, or the leaf that covers a queried IOVA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    /// For [`PageTable::walk`], the leaf's first IOVA; for [`PageTable::translate`], the
    /// queried IOVA.
    pub iova: u64,
    /// The output address of `iova`.
    pub pa: u64,
    /// The leaf's size in bytes.
    pub size: u64,
    /// What the leaf grants, as the hardware would.
    pub prot: Prot,
    /// The leaf's level (0 = smallest page).
    pub level: u32,
}

/// What [`PageTable::info`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableInfo {
    /// The table's geometry (levels, address sizes, page sizes).
    pub geometry: Geometry,
    /// Table pages (in granules) allocated and not yet given back, root included,
    /// counting pages waiting for reclamation or held by gathers.
    pub table_pages: u64,
    /// Root physical address and register values.
    pub hw: HwInfo,
}

/// An I/O page table of format `F` whose table pages come from `M`.
///
/// All operations take `&self`; see the crate docs for the concurrency contract.
///
/// ```
/// # use pgtable_core::testfmt::TestFormat;
/// use pgtable_core::{Gather, HostMemory, PageTable, Prot};
/// use std::sync::Arc;
///
/// let pt = PageTable::new(TestFormat::new(), Arc::new(HostMemory::new())).unwrap();
/// pt.map(0x20_0000, 0x8000_0000, 0x20_1000, Prot::RW).unwrap(); // one 2M + one 4K leaf
/// assert_eq!(pt.iova_to_phys(0x40_0123), Some(0x8020_0123));
/// let mut g = Gather::new();
/// assert_eq!(pt.unmap(0x20_0000, 0x20_1000, &mut g).unwrap(), 0x20_1000);
/// assert_eq!(g.range(), Some((0x20_0000, 0x40_0fff)));
/// g.release(); // after invalidating the IOTLB
/// assert_eq!(pt.iova_to_phys(0x40_0123), None);
/// ```
pub struct PageTable<F: Format, M: TableMemory> {
    pub(crate) fmt: F,
    pub(crate) geo: Geometry,
    pub(crate) root: TablePage,
    pub(crate) shared: Arc<Shared<M>>,
    pub(crate) sink: Arc<dyn Reclaim>,
    /// False for a [`ForeignTable`]'s view: its pages are not ours to free.
    owned: bool,
}

impl<F: Format, M: TableMemory> fmt::Debug for PageTable<F, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageTable")
            .field("format", &self.fmt)
            .field("root", &format_args!("{:#x}", self.root.phys))
            .field("table_pages", &self.shared.live_pages())
            .finish()
    }
}

/// The entry `idx` of the table at `table`.
///
/// # Safety
/// `table` must point to a live table (or one protected by the caller's epoch pin)
/// with more than `idx` entries.
#[inline(always)]
pub(crate) unsafe fn entry<'a>(table: NonNull<u8>, idx: usize) -> &'a AtomicU64 {
    // SAFETY: forwarded from the caller; entries are 8-byte aligned AtomicU64s (under
    // loom the memory backend lays out loom atomics, hence `add` in units of the type).
    unsafe { &*table.as_ptr().cast::<AtomicU64>().add(idx) }
}

impl<F: Format, M: TableMemory> PageTable<F, M> {
    /// A table with an empty top table.
    ///
    /// # Errors
    /// [`Error::BadConfig`] if the format's geometry is inconsistent,
    /// [`Error::NoMemory`] if the top table cannot be allocated.
    pub fn new(fmt: F, mem: Arc<M>) -> Result<Self> {
        let geo = fmt.geometry();
        geo.validate().map_err(Error::BadConfig)?;
        let shared = Arc::new(Shared::new(mem, geo.granule_shift));
        let root = shared
            .alloc_table(geo.table_bytes(geo.top()))
            .ok_or(Error::NoMemory { mapped: 0 })?;
        let sink: Arc<dyn Reclaim> = shared.clone();
        Ok(PageTable {
            fmt,
            geo,
            root,
            shared,
            sink,
            owned: true,
        })
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
    pub fn root_phys(&self) -> u64 {
        self.root.phys
    }

    /// Levels, root, register values and the live table-page count.
    pub fn info(&self) -> TableInfo {
        TableInfo {
            geometry: self.geo,
            table_pages: self.shared.live_pages(),
            hw: self.fmt.hw_info(self.root.phys),
        }
    }

    /// Pins the epoch once for a batch of operations (see [`Session`]).
    pub fn session(&self) -> Session<'_, F, M> {
        Session {
            pt: self,
            guard: epoch::pin(),
        }
    }

    /// The CPU pointer of the next-level table at `pa` (a table of `level`).
    #[inline(always)]
    pub(crate) fn table_at(&self, pa: u64, level: u32) -> Option<NonNull<u8>> {
        self.shared
            .mem
            .phys_to_virt(pa, self.geo.table_bytes(level))
    }

    // ---------------------------------------------------------------- checks

    pub(crate) fn check_iova(&self, iova: u64, len: u64) -> Result<u64> {
        let limit = 1u64 << self.geo.va_bits;
        match iova.checked_add(len) {
            Some(end) if end <= limit => Ok(end),
            e => Err(Error::IovaRange {
                start: iova,
                end: e.unwrap_or(u64::MAX),
                bits: self.geo.va_bits,
            }),
        }
    }

    pub(crate) fn check_pa(&self, pa: u64, len: u64) -> Result<()> {
        let bits = self.geo.oas;
        let ok = match pa.checked_add(len) {
            Some(end) => bits >= 64 || end <= 1u64 << bits,
            None => false,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::PhysRange {
                start: pa,
                end: pa.saturating_add(len),
                bits,
            })
        }
    }

    pub(crate) fn check_prot(prot: Prot) -> Result<()> {
        if prot.intersects(Prot::RW) {
            Ok(())
        } else {
            Err(Error::BadProt(prot.bits()))
        }
    }

    pub(crate) fn check_aligned(what: &'static str, value: u64, align: u64) -> Result<()> {
        if value & (align - 1) == 0 {
            Ok(())
        } else {
            Err(Error::Misaligned { what, value, align })
        }
    }

    // ---------------------------------------------------------------- reads

    /// The output address of `iova` (with its in-page offset), if mapped.
    ///
    /// ```
    /// # use pgtable_core::testfmt::TestFormat;
    /// # use pgtable_core::{HostMemory, PageTable, Prot};
    /// # let pt = PageTable::new(TestFormat::new(), std::sync::Arc::new(HostMemory::new())).unwrap();
    /// pt.map_pages(0x1000, 0x5000, 0x1000, 1, Prot::READ).unwrap();
    /// assert_eq!(pt.iova_to_phys(0x1abc), Some(0x5abc));
    /// assert_eq!(pt.iova_to_phys(0x2000), None);
    /// ```
    #[inline]
    pub fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        let g = epoch::pin();
        self.lookup(&g, iova).ok().map(|t| t.pa)
    }

    /// The leaf covering `iova`: output address, size, permissions, level.
    ///
    /// # Errors
    /// [`Error::IovaRange`] beyond the input address space, [`Error::NotMapped`] if no
    /// leaf covers it, [`Error::Fault`] if an entry is malformed.
    #[inline]
    pub fn translate(&self, iova: u64) -> Result<Translation> {
        let g = epoch::pin();
        self.lookup(&g, iova)
    }

    #[inline(always)]
    pub(crate) fn lookup(&self, _g: &Guard, iova: u64) -> Result<Translation> {
        if iova >> self.geo.va_bits != 0 {
            return Err(Error::IovaRange {
                start: iova,
                end: iova,
                bits: self.geo.va_bits,
            });
        }
        let mut table = self.root.virt;
        let mut level = self.geo.top();
        loop {
            // SAFETY: `table` is the root or a table reached from it under the pin `_g`,
            // so it cannot be freed before `_g` is dropped; the index is in range.
            let raw = unsafe { entry(table, self.geo.index(iova, level)) }.load(Ordering::Acquire);
            match self.fmt.decode(raw, level) {
                Entry::Leaf { pa, prot } => {
                    let size = self.geo.entry_span(level);
                    return Ok(Translation {
                        iova,
                        pa: pa + (iova & (size - 1)),
                        size,
                        prot,
                        level,
                    });
                }
                Entry::Table(pa) if level > 0 => {
                    level -= 1;
                    table = self.table_at(pa, level).ok_or(Error::Fault {
                        iova,
                        fault: crate::Fault::BadTableAddress { pa },
                    })?;
                }
                Entry::Empty => return Err(Error::NotMapped(iova)),
                Entry::Fault(fault) => return Err(Error::Fault { iova, fault }),
                Entry::Table(_) => {
                    return Err(Error::Fault {
                        iova,
                        fault: crate::Fault::BadType { raw },
                    });
                }
            }
        }
    }

    /// Calls `f` for every leaf intersecting `[iova, iova + len)` in ascending IOVA
    /// order; `len == 0` means to the end of the input address space. Stops at the
    /// first `Break` and returns its value.
    ///
    /// Safe to run while other threads map and unmap: each entry is seen either before
    /// or after a concurrent change.
    ///
    /// # Errors
    /// [`Error::IovaRange`] if the range goes beyond the input address space.
    ///
    /// ```
    /// # use pgtable_core::testfmt::TestFormat;
    /// # use pgtable_core::{HostMemory, PageTable, Prot};
    /// use std::ops::ControlFlow;
    /// # let pt = PageTable::new(TestFormat::new(), std::sync::Arc::new(HostMemory::new())).unwrap();
    /// pt.map(0x0, 0x0, 0x40_0000, Prot::RW).unwrap();
    /// let mut sizes = vec![];
    /// pt.walk(0, 0, |t| { sizes.push(t.size); ControlFlow::<()>::Continue(()) }).unwrap();
    /// assert_eq!(sizes, [0x20_0000, 0x20_0000]);
    /// ```
    pub fn walk<B>(
        &self,
        iova: u64,
        len: u64,
        mut f: impl FnMut(&Translation) -> std::ops::ControlFlow<B>,
    ) -> Result<Option<B>> {
        let end = if len == 0 {
            self.check_iova(iova, 0)?;
            1u64 << self.geo.va_bits
        } else {
            self.check_iova(iova, len)?
        };
        if iova >= end {
            return Ok(None);
        }
        let g = epoch::pin();
        let mut visit = |_: &[u64], t: &Translation| f(t);
        Ok(self.visit_leaves(&g, iova, end, &mut visit).break_value())
    }

    /// Visits leaves intersecting `[start, end)` in order, giving the raw entries from
    /// the top down to the leaf.
    pub(crate) fn visit_leaves<B>(
        &self,
        g: &Guard,
        start: u64,
        end: u64,
        f: &mut dyn FnMut(&[u64], &Translation) -> std::ops::ControlFlow<B>,
    ) -> std::ops::ControlFlow<B> {
        self.visit_leaves_in(g, start, end, &mut self.visit_state(), f)
    }

    /// A fresh walk state. Tables this library did not build may share or loop back to
    /// tables (the root included); walking each table page once bounds the work by the
    /// image's size. Our own tables form a tree, so they need no bookkeeping.
    fn visit_state(&self) -> VisitState {
        VisitState {
            path: [0u64; 8],
            seen: (!self.owned).then(|| HashSet::from([self.root.phys])),
            repeat: None,
        }
    }

    fn visit_leaves_in<B>(
        &self,
        g: &Guard,
        start: u64,
        end: u64,
        state: &mut VisitState,
        f: &mut dyn FnMut(&[u64], &Translation) -> std::ops::ControlFlow<B>,
    ) -> std::ops::ControlFlow<B> {
        self.visit_table(g, self.root.virt, self.geo.top(), 0, start, end, state, f)
    }

    // The guard is never read: taking it proves the caller holds an epoch pin.
    #[allow(clippy::only_used_in_recursion)]
    #[allow(clippy::too_many_arguments)]
    fn visit_table<B>(
        &self,
        g: &Guard,
        table: NonNull<u8>,
        level: u32,
        table_base: u64,
        start: u64,
        end: u64,
        state: &mut VisitState,
        f: &mut dyn FnMut(&[u64], &Translation) -> std::ops::ControlFlow<B>,
    ) -> std::ops::ControlFlow<B> {
        use std::ops::ControlFlow;
        let span = self.geo.entry_span(level);
        let n = self.geo.entries(level);
        let first = if start > table_base {
            ((start - table_base) >> self.geo.shift(level)) as usize
        } else {
            0
        };
        let depth = (self.geo.top() - level) as usize;
        for idx in first..n {
            let base = table_base + idx as u64 * span;
            if base >= end {
                break;
            }
            // SAFETY: `table` is live under the pin `g` and idx < entries.
            let raw = unsafe { entry(table, idx) }.load(Ordering::Acquire);
            state.path[depth] = raw;
            match self.fmt.decode(raw, level) {
                Entry::Leaf { pa, prot } => {
                    let t = Translation {
                        iova: base,
                        pa,
                        size: span,
                        prot,
                        level,
                    };
                    f(&state.path[..=depth], &t)?;
                }
                Entry::Table(pa) if level > 0 => {
                    if let Some(seen) = &mut state.seen {
                        if !seen.insert(pa) {
                            state.repeat.get_or_insert(SharedTable {
                                phys: pa,
                                level,
                                iova: base,
                            });
                            continue;
                        }
                    }
                    if let Some(child) = self.table_at(pa, level - 1) {
                        self.visit_table(g, child, level - 1, base, start, end, state, f)?;
                    }
                }
                _ => {}
            }
        }
        ControlFlow::Continue(())
    }
}

impl<F: Format, M: TableMemory> Drop for PageTable<F, M> {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        // SAFETY: dropping needs `&mut self`, so no reader of this table exists.
        unsafe { self.shared.shutdown() };
        let top = self.geo.top();
        // SAFETY: as above; the tree is ours alone now.
        unsafe { self.free_subtree(self.root.virt, top) };
        // SAFETY: the root came from alloc_table and is freed only here.
        unsafe { self.shared.free_now(self.root) };
    }
}

impl<F: Format, M: TableMemory> PageTable<F, M> {
    /// Frees every table below `table` (not `table` itself).
    ///
    /// # Safety
    /// Nobody else may reach the subtree.
    unsafe fn free_subtree(&self, table: NonNull<u8>, level: u32) {
        if level == 0 {
            return;
        }
        for idx in 0..self.geo.entries(level) {
            // SAFETY: the subtree is ours; idx < entries.
            let raw = unsafe { entry(table, idx) }.load(Ordering::Acquire);
            if let Entry::Table(pa) = self.fmt.decode(raw, level) {
                if let Some(child) = self.table_at(pa, level - 1) {
                    // SAFETY: as above.
                    unsafe { self.free_subtree(child, level - 1) };
                    // SAFETY: the page was allocated by this table, reachable only
                    // through this entry, and is freed once.
                    unsafe { self.shared.free_now(self.table_page(child, pa, level - 1)) };
                }
            }
        }
    }

    /// The allocation record of the table of `level` at CPU address `virt`, physical
    /// `phys` (what `alloc_table` handed out for it).
    #[inline]
    pub(crate) fn table_page(&self, virt: NonNull<u8>, phys: u64, level: u32) -> TablePage {
        TablePage {
            virt,
            phys,
            size: self.shared.alloc_size(self.geo.table_bytes(level)),
        }
    }

    /// Every page of a subtree the caller just unlinked (its entry detached by a
    /// successful compare-exchange): the table of `level` at `virt`/`phys` and every
    /// table below it.
    pub(crate) fn detached_pages(
        &self,
        virt: NonNull<u8>,
        phys: u64,
        level: u32,
    ) -> Vec<TablePage> {
        let mut pages = Vec::new();
        self.collect_subtree(virt, level, &mut pages);
        pages.push(self.table_page(virt, phys, level));
        pages
    }

    /// Collects every table below the detached `table` into `out` by swapping each
    /// table entry to empty, so that under overlapping misuse exactly one thread
    /// collects (and frees) each page.
    fn collect_subtree(&self, table: NonNull<u8>, level: u32, out: &mut Vec<TablePage>) {
        if level == 0 {
            return;
        }
        for idx in 0..self.geo.entries(level) {
            // SAFETY: the caller detached `table` and holds a pin; idx < entries.
            let e = unsafe { entry(table, idx) };
            let raw = e.load(Ordering::Acquire);
            if raw == 0 {
                continue;
            }
            if let Entry::Table(pa) = self.fmt.decode(raw, level) {
                if e.compare_exchange(raw, 0, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    if let Some(child) = self.table_at(pa, level - 1) {
                        self.collect_subtree(child, level - 1, out);
                        out.push(self.table_page(child, pa, level - 1));
                    }
                }
            }
        }
    }
}

/// A batch of operations under one epoch pin.
///
/// Pinning costs a few nanoseconds; a session pays it once. While a session is alive
/// this thread holds back reclamation of unlinked tables (everywhere, not only in this
/// table), so keep sessions short or call [`Session::repin`] now and then.
///
/// ```
/// # use pgtable_core::testfmt::TestFormat;
/// # use pgtable_core::{Gather, HostMemory, PageTable, Prot};
/// # let pt = PageTable::new(TestFormat::new(), std::sync::Arc::new(HostMemory::new())).unwrap();
/// let s = pt.session();
/// for i in 0..16 {
///     s.map_pages(i * 0x1000, 0x10_0000 + i * 0x1000, 0x1000, 1, Prot::RW).unwrap();
/// }
/// assert_eq!(s.iova_to_phys(0xf010), Some(0x10_f010));
/// ```
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
    /// The table.
    pub fn table(&self) -> &'a PageTable<F, M> {
        self.pt
    }

    /// Unpins and pins again, letting reclamation advance.
    pub fn repin(&mut self) {
        #[cfg(not(loom))]
        self.guard.repin();
    }

    /// [`PageTable::map_pages`] under the session's pin.
    ///
    /// # Errors
    /// As [`PageTable::map_pages`].
    #[inline]
    pub fn map_pages(
        &self,
        iova: u64,
        pa: u64,
        pgsize: u64,
        pgcount: u64,
        prot: Prot,
    ) -> Result<u64> {
        self.pt
            .map_pages_in(&self.guard, iova, pa, pgsize, pgcount, prot)
    }

    /// [`PageTable::map`] under the session's pin.
    ///
    /// # Errors
    /// As [`PageTable::map`].
    #[inline]
    pub fn map(&self, iova: u64, pa: u64, len: u64, prot: Prot) -> Result<u64> {
        self.pt.map_in(&self.guard, iova, pa, len, prot)
    }

    /// [`PageTable::unmap_pages`] under the session's pin.
    ///
    /// # Errors
    /// As [`PageTable::unmap_pages`].
    #[inline]
    pub fn unmap_pages(
        &self,
        iova: u64,
        pgsize: u64,
        pgcount: u64,
        gather: &mut Gather,
    ) -> Result<u64> {
        self.pt
            .unmap_pages_in(&self.guard, iova, pgsize, pgcount, gather)
    }

    /// [`PageTable::unmap`] under the session's pin.
    ///
    /// # Errors
    /// As [`PageTable::unmap`].
    #[inline]
    pub fn unmap(&self, iova: u64, len: u64, gather: &mut Gather) -> Result<u64> {
        self.pt.unmap_in(&self.guard, iova, len, gather)
    }

    /// [`PageTable::iova_to_phys`] under the session's pin.
    #[inline]
    pub fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        self.pt.lookup(&self.guard, iova).ok().map(|t| t.pa)
    }

    /// [`PageTable::translate`] under the session's pin.
    ///
    /// # Errors
    /// As [`PageTable::translate`].
    #[inline]
    pub fn translate(&self, iova: u64) -> Result<Translation> {
        self.pt.lookup(&self.guard, iova)
    }
}

/// A read-only view of tables this library did not build (a guest's tables, a memory
/// image), decoded exactly as the hardware would: translations report why they fault
/// (not present, reserved bits, address size, a table outside memory).
///
/// Nothing is written to the tables and nothing is freed; every next-table address is
/// checked against the memory before it is followed, a translation is bounded by the
/// format's level count, and `walk`/`dump` enter each table page once, so corrupt,
/// shared or cyclic tables cannot loop or blow up.
///
/// ```
/// # use pgtable_core::testfmt::TestFormat;
/// use pgtable_core::{ArenaMemory, ForeignTable, PageTable, Prot};
/// use std::sync::Arc;
/// let mem = Arc::new(ArenaMemory::new(0x100_0000, 1 << 20));
/// let pt = PageTable::new(TestFormat::new(), mem.clone()).unwrap();
/// pt.map_pages(0x5000, 0x9000, 0x1000, 1, Prot::RW).unwrap();
/// let view = ForeignTable::new(TestFormat::new(), mem.clone(), pt.root_phys()).unwrap();
/// assert_eq!(view.translate(0x5010).unwrap().pa, 0x9010);
/// ```
pub struct ForeignTable<F: Format, M: TableMemory> {
    pt: PageTable<F, M>,
}

impl<F: Format, M: TableMemory> fmt::Debug for ForeignTable<F, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForeignTable")
            .field("table", &self.pt)
            .finish()
    }
}

impl<F: Format, M: TableMemory> ForeignTable<F, M> {
    /// A view of the tables whose top table is at `root_phys` in `mem`.
    ///
    /// # Errors
    /// [`Error::BadConfig`] for an inconsistent format, [`Error::Fault`] with
    /// [`crate::Fault::BadTableAddress`] if the top table is not inside `mem`.
    pub fn new(fmt: F, mem: Arc<M>, root_phys: u64) -> Result<Self> {
        let geo = fmt.geometry();
        geo.validate().map_err(Error::BadConfig)?;
        let shared = Arc::new(Shared::new(mem, geo.granule_shift));
        let size = geo.table_bytes(geo.top());
        let virt = shared
            .mem
            .phys_to_virt(root_phys, size)
            .ok_or(Error::Fault {
                iova: 0,
                fault: crate::Fault::BadTableAddress { pa: root_phys },
            })?;
        let root = TablePage {
            virt,
            phys: root_phys,
            size,
        };
        let sink: Arc<dyn Reclaim> = shared.clone();
        Ok(ForeignTable {
            pt: PageTable {
                fmt,
                geo,
                root,
                shared,
                sink,
                owned: false,
            },
        })
    }

    /// See [`PageTable::translate`]; faults carry the reason.
    ///
    /// # Errors
    /// As [`PageTable::translate`].
    pub fn translate(&self, iova: u64) -> Result<Translation> {
        self.pt.translate(iova)
    }

    /// See [`PageTable::walk`].
    ///
    /// # Errors
    /// As [`PageTable::walk`].
    pub fn walk<B>(
        &self,
        iova: u64,
        len: u64,
        f: impl FnMut(&Translation) -> std::ops::ControlFlow<B>,
    ) -> Result<Option<B>> {
        self.pt.walk(iova, len, f)
    }

    /// See [`PageTable::dump`].
    ///
    /// # Errors
    /// Whatever `out` returns.
    pub fn dump(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        self.pt.dump(out)
    }

    /// The geometry and register values (the page count is meaningless here: 0 pages
    /// were allocated by this view).
    pub fn info(&self) -> TableInfo {
        self.pt.info()
    }

    /// The first table page reached twice (shared or cyclic tables), if any: such
    /// tables are walked and dumped once, so a caller that wants the whole picture may
    /// refuse them instead.
    pub fn shared_table(&self) -> Option<SharedTable> {
        let g = epoch::pin();
        let mut state = self.pt.visit_state();
        let end = 1u64 << self.pt.geo.va_bits;
        let mut leaves = |_: &[u64], _: &Translation| std::ops::ControlFlow::<()>::Continue(());
        let _ = self.pt.visit_leaves_in(&g, 0, end, &mut state, &mut leaves);
        state.repeat
    }
}
