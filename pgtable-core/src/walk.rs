//! The walker: one descent ([`Walker::lookup`]) and one range traversal
//! ([`Walker::for_each`]) that every operation is built on, over tables this library
//! built ([`OwnTables`]) or tables it only views ([`ViewTables`]).
//!
//! A traversal is a [`Visit`]or: the engine owns the recursion, the index range of each
//! table and the child cursors; the visitor only says, entry by entry, whether to
//! descend, how many entries to step over, or to stop. None of the algorithms built on
//! it holds an `unsafe` block: a table pointer is dereferenced only by
//! [`Walker::child`], whose safety argument is the [`Source`] it reads through.

use crate::addr::{Iova, PhysAddr};
use crate::error::{Error, Result};
use crate::format::{Entry, Fault, Format, OwnEntry};
use crate::geometry::Geometry;
use crate::level::{Level, TableRef};
use crate::memory::{TableMemory, ViewMemory};
use crate::prot::Prot;
use crate::sync::Ordering;
use crate::sync::epoch::Guard;
use std::collections::HashSet;
use std::ops::ControlFlow;
use std::ptr::NonNull;

/// One translation: a leaf, or the leaf that covers a queried IOVA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    /// For a walk, the leaf's first IOVA; for a translation, the queried IOVA.
    pub iova: Iova,
    /// The output address of `iova`.
    pub pa: PhysAddr,
    /// The leaf's size in bytes.
    pub size: u64,
    /// What the leaf grants, as the hardware would.
    pub prot: Prot,
    /// The leaf's level (0 = smallest page).
    pub level: u32,
}

/// A table page that tables not built here reach more than once (shared between
/// entries, or a cycle back to an ancestor): the first such entry a walk met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedTable {
    /// Physical address of the table reached again.
    pub phys: PhysAddr,
    /// Level of the entry that points to it.
    pub level: u32,
    /// First IOVA that entry covers.
    pub iova: Iova,
}

/// Where a walk finds the table an entry points to, and whether it may trust the
/// entries it reads there.
///
/// # Safety
/// `table(pa, bytes)` may return `Some(ptr)` only if `ptr` is 8-byte aligned and valid for
/// atomic reads and writes of `bytes` bytes for all of `'g`, for every `pa` the walker
/// passes: an address it read from an entry of a table reached through this source.
pub(crate) unsafe trait Source<'g>: Copy {
    /// Entries are this library's own encodings (classified with
    /// [`Format::own_entry`]); otherwise every entry is fully decoded.
    const OWN: bool;
    /// The CPU address of the table at `pa`.
    fn table(&self, pa: u64, bytes: usize) -> Option<NonNull<u8>>;
}

/// The tables of a [`PageTable`](crate::PageTable), walked under an epoch pin.
pub(crate) struct OwnTables<'g, M> {
    pub(crate) mem: &'g M,
    pub(crate) _pin: &'g Guard,
}

impl<M> Clone for OwnTables<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M> Copy for OwnTables<'_, M> {}

// SAFETY: the walker asks only for addresses it read, under the pin `'g`, from entries
// of pages of this table. Such a page was reachable at some point after the pin began,
// so it is live or was unlinked after that point, and unlinked pages are freed only
// after every pin older than the unlink has ended (concurrency rule 3): it stays
// allocated for `'g`. The `Format` contract makes every table entry hold the address
// of a page this table allocated, and `TableMemory`'s contract (checked for every page
// when it is installed) makes `phys_to_virt` return that page's CPU address.
unsafe impl<'g, M: TableMemory> Source<'g> for OwnTables<'g, M> {
    const OWN: bool = true;
    #[inline(always)]
    fn table(&self, pa: u64, bytes: usize) -> Option<NonNull<u8>> {
        self.mem.phys_to_virt(pa, bytes)
    }
}

/// Tables in memory that knows its bounds, walked read-only.
pub(crate) struct ViewTables<'g, V> {
    pub(crate) mem: &'g V,
}

impl<V> Clone for ViewTables<'_, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<V> Copy for ViewTables<'_, V> {}

// SAFETY: `ViewMemory::view` returns pointers only for ranges wholly inside memory that
// stays valid for as long as the memory object lives, which the `&'g V` outlives.
// Foreign addresses are not trusted: the view rejects anything outside its bounds.
unsafe impl<'g, V: ViewMemory> Source<'g> for ViewTables<'g, V> {
    const OWN: bool = false;
    #[inline(always)]
    fn table(&self, pa: u64, bytes: usize) -> Option<NonNull<u8>> {
        if !pa.is_multiple_of(8) {
            return None;
        }
        self.mem.view(pa, bytes)
    }
}

/// What an entry is, as much as a traversal needs to know to go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Empty,
    Table(u64),
    Leaf,
    Bad(Fault),
}

impl Class {
    /// The table address, for a table pointer.
    #[inline(always)]
    pub(crate) fn table(self) -> Option<u64> {
        match self {
            Class::Table(pa) => Some(pa),
            _ => None,
        }
    }
}

/// A decoded leaf: the page it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeafInfo {
    pub(crate) pa: u64,
    pub(crate) size: u64,
    pub(crate) prot: Prot,
}

/// What the engine does after a visitor looked at an entry.
pub(crate) enum Step<'g> {
    /// Go on `n` (at least 1) entries further.
    Next(usize),
    /// Visit the table below this entry, then call [`Visit::leave`] and go on.
    Descend(Level<'g>),
}

/// A traversal over the entries of a range, in ascending IOVA order, depth first.
pub(crate) trait Visit<'g, F: Format, S: Source<'g>> {
    /// The value a traversal stops with.
    type Break;

    /// Looks at entry `idx` of `at` (raw value `raw`, classified as `class`).
    fn entry(
        &mut self,
        w: &Walker<'g, F, S>,
        at: &Level<'g>,
        idx: usize,
        raw: u64,
        class: Class,
    ) -> ControlFlow<Self::Break, Step<'g>>;

    /// Called after the table below entry `idx` (holding `raw` when it was visited) was
    /// traversed without stopping.
    fn leave(
        &mut self,
        _w: &Walker<'g, F, S>,
        _at: &Level<'g>,
        _idx: usize,
        _raw: u64,
        _child: &Level<'g>,
    ) -> ControlFlow<Self::Break> {
        ControlFlow::Continue(())
    }
}

/// One walk over one tree: the format, the geometry and where table pages are found,
/// all borrowed for `'g`.
pub(crate) struct Walker<'g, F: Format, S> {
    pub(crate) fmt: &'g F,
    pub(crate) geo: &'g Geometry,
    pub(crate) src: S,
    root: Level<'g>,
}

impl<'g, F: Format, S: Source<'g>> Walker<'g, F, S> {
    /// A walker from the top table `root` (already known to be readable for `'g`).
    #[inline(always)]
    pub(crate) fn new(fmt: &'g F, geo: &'g Geometry, src: S, root: TableRef<'g>) -> Self {
        let top = geo.top();
        Walker {
            fmt,
            geo,
            src,
            root: Level {
                table: root,
                level: top,
                shift: geo.shift(top),
                base: 0,
            },
        }
    }

    /// The cursor of the top table.
    #[inline(always)]
    pub(crate) fn root(&self) -> Level<'g> {
        self.root
    }

    /// Classifies `raw`, read from a table of `level`: own tables by the format's fast
    /// test, foreign ones by a full decode.
    #[inline(always)]
    pub(crate) fn classify(&self, raw: u64, level: u32) -> Class {
        if S::OWN {
            match self.fmt.own_entry(raw, level) {
                OwnEntry::Empty => Class::Empty,
                OwnEntry::Table(pa) if level > 0 => Class::Table(pa),
                OwnEntry::Leaf => Class::Leaf,
                OwnEntry::Table(_) => Class::Bad(Fault::BadType { raw }),
            }
        } else {
            match self.fmt.decode(raw, level) {
                Entry::Empty => Class::Empty,
                Entry::Table(pa) if level > 0 => Class::Table(pa),
                Entry::Leaf { .. } => Class::Leaf,
                Entry::Fault(f) => Class::Bad(f),
                Entry::Table(_) => Class::Bad(Fault::BadType { raw }),
            }
        }
    }

    /// The page a leaf entry belongs to.
    #[inline(always)]
    pub(crate) fn leaf(&self, raw: u64, level: u32) -> Option<LeafInfo> {
        match self.fmt.decode(raw, level) {
            Entry::Leaf { pa, size, prot } => Some(LeafInfo { pa, size, prot }),
            _ => None,
        }
    }

    /// The cursor of the table that entry `idx` of `at` points to (at `pa`), if the
    /// source can reach it.
    #[inline(always)]
    pub(crate) fn child(&self, at: &Level<'g>, idx: usize, pa: u64) -> Option<Level<'g>> {
        // A child is never the top table: a full table of `bits_per_level` bits.
        let entries = 1usize << self.geo.bits_per_level;
        let virt = self.src.table(pa, entries * 8)?;
        // SAFETY: the source's contract: `virt` is aligned and stays valid for `'g`, for
        // an address read from an entry of a table reached through it (`at`).
        let table = unsafe { TableRef::from_raw(virt, entries) };
        Some(at.below(idx, table, self.geo.bits_per_level))
    }

    /// The error for a table the source cannot reach.
    #[cold]
    pub(crate) fn unreachable(iova: u64, pa: u64) -> Error {
        if S::OWN {
            Error::TableUnreachable { pa: PhysAddr(pa) }
        } else {
            Error::Fault {
                iova: Iova(iova),
                fault: Fault::BadTableAddress { pa },
            }
        }
    }

    /// The leaf covering `iova`, by one descent from the top.
    #[inline(always)]
    pub(crate) fn lookup(&self, iova: u64) -> Result<Translation> {
        if iova >> self.geo.va_bits != 0 {
            return Err(Error::IovaRange {
                start: Iova(iova),
                len: 1,
                bits: self.geo.va_bits,
            });
        }
        let mut at = self.root;
        // What the tables above take away (foreign tables; this library's limit nothing).
        let mut limits = Prot::empty();
        loop {
            let idx = at.index(iova);
            let raw = at.entry(idx).load(Ordering::Acquire);
            match self.classify(raw, at.level) {
                Class::Leaf => {
                    return match self.fmt.decode(raw, at.level) {
                        Entry::Leaf { pa, size, prot } => Ok(Translation {
                            iova: Iova(iova),
                            pa: PhysAddr(pa + (iova & (size - 1))),
                            size,
                            prot: prot.limited(limits),
                            level: at.level,
                        }),
                        Entry::Fault(fault) => Err(Error::Fault {
                            iova: Iova(iova),
                            fault,
                        }),
                        _ => Err(Error::Fault {
                            iova: Iova(iova),
                            fault: Fault::BadType { raw },
                        }),
                    };
                }
                Class::Table(pa) => {
                    if !S::OWN {
                        limits = limits.union(self.fmt.table_limits(raw, at.level));
                    }
                    at = self
                        .child(&at, idx, pa)
                        .ok_or_else(|| Self::unreachable(iova, pa))?;
                }
                Class::Empty => return Err(Error::NotMapped(Iova(iova))),
                Class::Bad(fault) => {
                    return Err(Error::Fault {
                        iova: Iova(iova),
                        fault,
                    });
                }
            }
        }
    }

    /// The table of `level` whose entry covers `iova`, if every table above it is
    /// installed (no allocation: the fast paths' descent).
    #[inline(always)]
    pub(crate) fn existing_table(&self, iova: u64, level: u32) -> Option<Level<'g>> {
        let mut at = self.root;
        while at.level > level {
            let idx = at.index(iova);
            let raw = at.entry(idx).load(Ordering::Acquire);
            let pa = self.classify(raw, at.level).table()?;
            at = self.child(&at, idx, pa)?;
        }
        Some(at)
    }

    /// The output address of `iova`, by one descent and the format's fast leaf read.
    #[inline(always)]
    pub(crate) fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        if iova >> self.geo.va_bits != 0 {
            return None;
        }
        let mut at = self.root;
        loop {
            let idx = at.index(iova);
            let raw = at.entry(idx).load(Ordering::Acquire);
            match self.classify(raw, at.level) {
                Class::Table(pa) => at = self.child(&at, idx, pa)?,
                Class::Leaf => {
                    let (pa, size) = if S::OWN {
                        self.fmt.own_leaf(raw, at.level)?
                    } else {
                        let leaf = self.leaf(raw, at.level)?;
                        (leaf.pa, leaf.size)
                    };
                    return Some(pa + (iova & (size - 1)));
                }
                Class::Empty | Class::Bad(_) => return None,
            }
        }
    }

    /// Visits the entries of `at` (and, where the visitor descends, of the tables below)
    /// that intersect `[start, last]`, in ascending IOVA order.
    pub(crate) fn for_each<V: Visit<'g, F, S>>(
        &self,
        at: &Level<'g>,
        start: u64,
        last: u64,
        v: &mut V,
    ) -> ControlFlow<V::Break> {
        let (mut idx, end) = at.indices(start, last);
        while idx < end {
            let raw = at.entry(idx).load(Ordering::Acquire);
            let class = self.classify(raw, at.level);
            match v.entry(self, at, idx, raw, class)? {
                Step::Next(n) => idx += n,
                Step::Descend(child) => {
                    self.for_each(&child, start, last, v)?;
                    v.leave(self, at, idx, raw, &child)?;
                    idx += 1;
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// Visits every leaf intersecting `[start, last]` in ascending order with the raw
    /// entries from the top down to it, reading at most `budget` entries. Foreign tables
    /// may share table pages between entries (each is walked under every entry that
    /// points to it) or loop back to an ancestor (which the levels bound); with
    /// `find_shared`, the first table page reached twice is reported, and entered once.
    pub(crate) fn leaves<B>(
        &self,
        start: u64,
        last: u64,
        budget: u64,
        find_shared: bool,
        f: &mut dyn FnMut(&[u64], &Translation) -> ControlFlow<B>,
    ) -> LeafWalk<B> {
        let mut v = Leaves {
            path: [0; 8],
            seen: find_shared.then(HashSet::new),
            repeat: None,
            covered: 0,
            budget,
            f,
        };
        if let Some(seen) = &mut v.seen {
            seen.insert(self.root.table.virt().as_ptr() as usize as u64);
        }
        let (flow, exhausted) = match self.for_each(&self.root, start, last, &mut v) {
            ControlFlow::Continue(()) => (ControlFlow::Continue(()), false),
            ControlFlow::Break(LeafStop::User(b)) => (ControlFlow::Break(b), false),
            ControlFlow::Break(LeafStop::Budget) => (ControlFlow::Continue(()), true),
        };
        LeafWalk {
            flow,
            repeat: v.repeat,
            exhausted: exhausted.then_some(budget),
        }
    }
}

/// How a leaf traversal ended.
pub(crate) struct LeafWalk<B> {
    /// The callback's `Break`, or `Continue` when it never stopped the walk.
    pub(crate) flow: ControlFlow<B>,
    /// The first table page reached twice, when asked for.
    pub(crate) repeat: Option<SharedTable>,
    /// The budget, when the walk stopped because it read that many entries.
    pub(crate) exhausted: Option<u64>,
}

impl<B> LeafWalk<B> {
    /// The result `walk` returns: the callback's `Break`, or the budget error.
    pub(crate) fn result(self) -> Result<Option<B>> {
        match self.exhausted {
            Some(entries) => Err(Error::WalkBudget { entries }),
            None => Ok(self.flow.break_value()),
        }
    }
}

/// Why a leaf traversal stopped.
enum LeafStop<B> {
    User(B),
    Budget,
}

/// The leaf traversal behind `walk`, `dump` and `map`'s overlap check.
struct Leaves<'f, B> {
    path: [u64; 8],
    /// Table pages entered so far, by CPU address, when looking for a shared one.
    seen: Option<HashSet<u64>>,
    repeat: Option<SharedTable>,
    /// The end of the last leaf reported: the other entries of a leaf run are skipped.
    covered: u64,
    /// Entries left to read.
    budget: u64,
    f: &'f mut dyn FnMut(&[u64], &Translation) -> ControlFlow<B>,
}

impl<'g, F: Format, S: Source<'g>, B> Visit<'g, F, S> for Leaves<'_, B> {
    type Break = LeafStop<B>;

    #[inline]
    fn entry(
        &mut self,
        w: &Walker<'g, F, S>,
        at: &Level<'g>,
        idx: usize,
        raw: u64,
        class: Class,
    ) -> ControlFlow<LeafStop<B>, Step<'g>> {
        if self.budget == 0 {
            return ControlFlow::Break(LeafStop::Budget);
        }
        self.budget -= 1;
        let depth = (w.geo.top() - at.level) as usize;
        self.path[depth] = raw;
        match class {
            Class::Leaf => {
                let Some(leaf) = w.leaf(raw, at.level) else {
                    return ControlFlow::Continue(Step::Next(1));
                };
                let span = at.span();
                let page = at.iova(idx) & !(leaf.size - 1);
                // A run's entries all describe its page: report it once, skip the rest.
                let k = (leaf.size / span).max(1) as usize;
                let rest = k - (idx - Level::group_start(idx, k));
                if page >= self.covered {
                    self.covered = page.wrapping_add(leaf.size);
                    let mut prot = leaf.prot;
                    if !S::OWN {
                        // The limits of the tables on the way down (this library's
                        // tables limit nothing).
                        for (d, &table) in self.path[..depth].iter().enumerate() {
                            let level = w.geo.top() - d as u32;
                            prot = prot.limited(w.fmt.table_limits(table, level));
                        }
                    }
                    let t = Translation {
                        iova: Iova(page),
                        pa: PhysAddr(leaf.pa),
                        size: leaf.size,
                        prot,
                        level: at.level,
                    };
                    if let ControlFlow::Break(b) = (self.f)(&self.path[..=depth], &t) {
                        return ControlFlow::Break(LeafStop::User(b));
                    }
                }
                ControlFlow::Continue(Step::Next(rest))
            }
            Class::Table(pa) => {
                let Some(child) = w.child(at, idx, pa) else {
                    return ControlFlow::Continue(Step::Next(1));
                };
                if let Some(seen) = &mut self.seen
                    && !seen.insert(child.table.virt().as_ptr() as usize as u64)
                {
                    self.repeat.get_or_insert(SharedTable {
                        phys: PhysAddr(pa),
                        level: at.level,
                        iova: Iova(at.iova(idx)),
                    });
                    return ControlFlow::Continue(Step::Next(1));
                }
                ControlFlow::Continue(Step::Descend(child))
            }
            Class::Empty | Class::Bad(_) => ControlFlow::Continue(Step::Next(1)),
        }
    }
}

/// `[start, last]` from a range of IOVAs below `1 << va_bits`; `None` when it is empty.
pub(crate) fn bounds(
    range: impl std::ops::RangeBounds<Iova>,
    va_bits: u32,
) -> Result<Option<(u64, u64)>> {
    use std::ops::Bound;
    let top = (1u64 << va_bits) - 1;
    let start = match range.start_bound() {
        Bound::Included(s) => s.0,
        Bound::Excluded(s) => match s.0.checked_add(1) {
            Some(v) => v,
            None => return Ok(None),
        },
        Bound::Unbounded => 0,
    };
    let last = match range.end_bound() {
        Bound::Included(e) => e.0,
        Bound::Excluded(e) => match e.0.checked_sub(1) {
            Some(v) => v,
            None => return Ok(None),
        },
        Bound::Unbounded => top.max(start),
    };
    if start > top || last > top {
        return Err(Error::IovaRange {
            start: Iova(start),
            len: last.saturating_sub(start).saturating_add(1),
            bits: va_bits,
        });
    }
    Ok((start <= last).then_some((start, last)))
}

impl<F: Format, M: TableMemory> crate::PageTable<F, M> {
    /// The output address of `iova` (with its in-page offset), if mapped.
    ///
    /// ```
    /// # use pgtable_core::testfmt::TestFormat;
    /// # use pgtable_core::{HostMemory, Iova, PageTable, PhysAddr, Prot};
    /// # let pt = PageTable::new(TestFormat::new(), std::sync::Arc::new(HostMemory::new()))?;
    /// pt.map_pages(Iova(0x1000), PhysAddr(0x5000), 0x1000, 1, Prot::READ)?;
    /// assert_eq!(pt.iova_to_phys(Iova(0x1abc)), Some(PhysAddr(0x5abc)));
    /// assert_eq!(pt.iova_to_phys(Iova(0x2000)), None);
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    #[inline]
    pub fn iova_to_phys(&self, iova: Iova) -> Option<PhysAddr> {
        let g = crate::sync::epoch::pin();
        self.walker(&g).iova_to_phys(iova.0).map(PhysAddr)
    }

    /// The leaf covering `iova`: output address, size, permissions, level.
    ///
    /// # Errors
    /// [`Error::IovaRange`] beyond the input address space, [`Error::NotMapped`] if no
    /// leaf covers it, [`Error::TableUnreachable`] if the memory fails to map a table.
    #[inline]
    pub fn translate(&self, iova: Iova) -> Result<Translation> {
        let g = crate::sync::epoch::pin();
        self.walker(&g).lookup(iova.0)
    }

    /// The raw entry of the leaf covering `iova` and its level: what the hardware reads,
    /// for debugging and for tests that check bits.
    ///
    /// # Errors
    /// As [`PageTable::translate`](crate::PageTable::translate).
    pub fn raw_leaf(&self, iova: Iova) -> Result<(u64, u32)> {
        let t = self.translate(iova)?;
        let g = crate::sync::epoch::pin();
        let w = self.walker(&g);
        let at = w
            .existing_table(iova.0, t.level)
            .ok_or(Error::NotMapped(iova))?;
        Ok((at.entry(at.index(iova.0)).load(Ordering::Acquire), t.level))
    }

    /// Calls `f` for every leaf intersecting `range` in ascending IOVA order (`..` for
    /// the whole input space). Stops at the first `Break` and returns its value.
    ///
    /// Safe to run while other threads map and unmap: each entry is seen either before
    /// or after a concurrent change.
    ///
    /// # Errors
    /// [`Error::IovaRange`] if the range goes beyond the input address space.
    ///
    /// ```
    /// # use pgtable_core::testfmt::TestFormat;
    /// # use pgtable_core::{HostMemory, Iova, PageTable, PhysAddr, Prot};
    /// use std::ops::ControlFlow;
    /// # let pt = PageTable::new(TestFormat::new(), std::sync::Arc::new(HostMemory::new()))?;
    /// pt.map(Iova(0), PhysAddr(0), 0x40_0000, Prot::RW)?;
    /// let mut sizes = vec![];
    /// pt.walk(.., |t| { sizes.push(t.size); ControlFlow::<()>::Continue(()) })?;
    /// assert_eq!(sizes, [0x20_0000, 0x20_0000]);
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub fn walk<B>(
        &self,
        range: impl std::ops::RangeBounds<Iova>,
        mut f: impl FnMut(&Translation) -> ControlFlow<B>,
    ) -> Result<Option<B>> {
        let Some((start, last)) = bounds(range, self.geo.va_bits)? else {
            return Ok(None);
        };
        let g = crate::sync::epoch::pin();
        let mut visit = |_: &[u64], t: &Translation| f(t);
        self.walker(&g)
            .leaves(start, last, u64::MAX, false, &mut visit)
            .result()
    }
}
