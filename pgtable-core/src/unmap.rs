//! Unmapping: clear leaves, detach whole tables by compare-exchange into the gather.

use crate::addr::Iova;
use crate::error::{Error, Result};
use crate::format::Format;
use crate::gather::Gather;
use crate::level::Level;
use crate::memory::TableMemory;
use crate::sync::Ordering;
use crate::sync::epoch;
use crate::table::PageTable;
use crate::walk::{Class, OwnTables, Step, Visit, Walker};
use std::ops::ControlFlow;
use std::ptr::NonNull;

type Own<'g, F, M> = Walker<'g, F, OwnTables<'g, M>>;

impl<F: Format, M: TableMemory> PageTable<F, M> {
    /// Unmaps `pgcount` pages of `pgsize` from `iova`; returns the bytes unmapped.
    ///
    /// No splitting: a range starting inside a larger leaf unmaps nothing; a range
    /// ending inside a larger leaf removes that whole leaf and counts its length; the
    /// unmap stops at the first hole. A table whose whole span this call unmaps is
    /// detached into `gather`, which holds its pages until released (after the IOTLB
    /// invalidation).
    ///
    /// # Errors
    /// Bad arguments ([`Error::UnsupportedSize`], [`Error::Misaligned`],
    /// [`Error::IovaRange`]); nothing is changed then.
    #[inline]
    pub fn unmap_pages(
        &self,
        iova: Iova,
        pgsize: u64,
        pgcount: u64,
        gather: &mut Gather,
    ) -> Result<u64> {
        let g = epoch::pin();
        self.unmap_pages_in(&self.walker(&g), iova.0, pgsize, pgcount, gather)
    }

    /// Unmaps `[iova, iova + len)`, whatever the page sizes; see
    /// [`PageTable::unmap_pages`] for the rules.
    ///
    /// # Errors
    /// `iova` and `len` must be granule aligned and inside the input address space.
    pub fn unmap(&self, iova: Iova, len: u64, gather: &mut Gather) -> Result<u64> {
        let g = epoch::pin();
        self.unmap_in(&self.walker(&g), iova.0, len, gather)
    }

    /// [`PageTable::unmap`] without a gather: when the table has a flush hook it is
    /// called once for the unmapped range, then the unlinked tables go to epoch
    /// reclamation (as the C API's unmap with a NULL gather). Without a hook nothing
    /// invalidates the IOTLB: for tables no hardware walks.
    ///
    /// # Errors
    /// As [`PageTable::unmap`].
    pub fn unmap_now(&self, iova: Iova, len: u64) -> Result<u64> {
        let g = epoch::pin();
        let mut gather = Gather::new();
        let r = self.unmap_in(&self.walker(&g), iova.0, len, &mut gather);
        self.flush_and_release(gather);
        r
    }

    #[inline(always)]
    pub(crate) fn unmap_pages_in(
        &self,
        w: &Own<'_, F, M>,
        iova: u64,
        pgsize: u64,
        pgcount: u64,
        gather: &mut Gather,
    ) -> Result<u64> {
        if pgcount == 1 && self.unmap_one(w, iova, pgsize, gather) {
            return Ok(pgsize);
        }
        self.unmap_pages_slow(w, iova, pgsize, pgcount, gather)
    }

    /// The fast path: one plain leaf of exactly `pgsize` under installed tables (one
    /// page never covers a whole table, so nothing is detached). Returns false, having
    /// changed nothing, for anything else.
    #[inline(always)]
    fn unmap_one(&self, w: &Own<'_, F, M>, iova: u64, pgsize: u64, gather: &mut Gather) -> bool {
        let Some(level) = self.geo.level_of_size(pgsize) else {
            return false;
        };
        if iova & (pgsize - 1) != 0
            || iova.checked_add(pgsize).is_none_or(|e| e > self.va_end)
            || self.geo.has_runs(level)
        {
            return false;
        }
        let Some(at) = w.existing_table(iova, level) else {
            return false;
        };
        let e = at.entry(at.index(iova));
        let raw = e.load(Ordering::Acquire);
        if w.classify(raw, level) != Class::Leaf || raw & w.fmt.contig_bit() != 0 {
            return false;
        }
        e.store(0, Ordering::Release);
        self.shared.mem.clean(NonNull::from(e).cast(), 8);
        gather.add_range(iova, pgsize);
        true
    }

    #[inline(never)]
    fn unmap_pages_slow(
        &self,
        w: &Own<'_, F, M>,
        iova: u64,
        pgsize: u64,
        pgcount: u64,
        gather: &mut Gather,
    ) -> Result<u64> {
        self.geo
            .level_of_size(pgsize)
            .ok_or(Error::UnsupportedSize(pgsize))?;
        Self::check_aligned("iova", iova, pgsize)?;
        let len = pgsize.checked_mul(pgcount).ok_or(Error::IovaRange {
            start: Iova(iova),
            len: u64::MAX,
            bits: self.geo.va_bits,
        })?;
        self.unmap_range(w, iova, len, gather)
    }

    pub(crate) fn unmap_in(
        &self,
        w: &Own<'_, F, M>,
        iova: u64,
        len: u64,
        gather: &mut Gather,
    ) -> Result<u64> {
        let gran = self.geo.granule();
        Self::check_aligned("iova", iova, gran)?;
        Self::check_aligned("length", len, gran)?;
        self.unmap_range(w, iova, len, gather)
    }

    #[inline(always)]
    pub(crate) fn unmap_range(
        &self,
        w: &Own<'_, F, M>,
        iova: u64,
        len: u64,
        gather: &mut Gather,
    ) -> Result<u64> {
        let end = self.check_iova(iova, len)?;
        if len == 0 {
            return Ok(0);
        }
        // Descend without recursion while the range lies inside one entry's span without
        // covering all of it: only that entry can change at this level, and none of its
        // tables can be freed (the common single-page case goes straight to the leaf).
        let mut at = w.root();
        while at.level > 0 {
            let span = at.span();
            let base = iova & !(span - 1);
            if end > base + span || (iova == base && end == base + span) {
                break;
            }
            let idx = at.index(iova);
            let raw = at.entry(idx).load(Ordering::Acquire);
            match w.classify(raw, at.level) {
                Class::Table(pa) => match w.child(&at, idx, pa) {
                    Some(child) => at = child,
                    None => return Ok(0),
                },
                Class::Leaf => break,
                Class::Empty | Class::Bad(_) => return Ok(0),
            }
        }
        let mut v = Unmap {
            pt: self,
            start: iova,
            cur: iova,
            end,
            gather,
        };
        let _ = w.for_each(&at, iova, end - 1, &mut v);
        Ok(v.cur - iova)
    }
}

/// The unmap traversal: clears leaves from `start` on, stops at the first hole or at a
/// leaf that starts before `cur`, and detaches every table whose span it emptied.
struct Unmap<'p, 'a, F: Format, M: TableMemory> {
    pt: &'p PageTable<F, M>,
    start: u64,
    /// Everything in `[start, cur)` is unmapped.
    cur: u64,
    end: u64,
    gather: &'a mut Gather,
}

impl<'g, F: Format, M: TableMemory> Visit<'g, F, OwnTables<'g, M>> for Unmap<'_, '_, F, M> {
    type Break = ();

    #[inline(always)]
    fn entry(
        &mut self,
        w: &Own<'g, F, M>,
        at: &Level<'g>,
        idx: usize,
        raw: u64,
        class: Class,
    ) -> ControlFlow<(), Step<'g>> {
        match class {
            Class::Leaf => self.leaves(w, at, idx, raw),
            Class::Table(pa) => match w.child(at, idx, pa) {
                Some(child) => ControlFlow::Continue(Step::Descend(child)),
                None => ControlFlow::Break(()),
            },
            Class::Empty | Class::Bad(_) => ControlFlow::Break(()),
        }
    }

    fn leave(
        &mut self,
        w: &Own<'g, F, M>,
        at: &Level<'g>,
        idx: usize,
        raw: u64,
        child: &Level<'g>,
    ) -> ControlFlow<()> {
        let base = at.iova(idx);
        let span = at.span();
        // Every leaf of the span was removed by this call: unlink the table. The
        // compare-exchange makes exactly one thread the owner of the pages even if
        // overlapping (buggy) callers race here.
        if self.start <= base
            && self.cur >= base + span
            && at
                .entry(idx)
                .compare_exchange(raw, 0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.pt
                .shared
                .mem
                .clean(NonNull::from(at.entry(idx)).cast(), 8);
            if let Some(pa) = w.classify(raw, at.level).table() {
                for page in self.pt.detached_pages(w, child, pa) {
                    self.gather.add_page(&self.pt.sink, page);
                }
            }
            self.gather.add_range(base, span);
        }
        ControlFlow::Continue(())
    }
}

impl<'g, F: Format, M: TableMemory> Unmap<'_, '_, F, M> {
    /// Clears the leaf at `idx` and the plain leaves after it, up to the range's end.
    #[inline(always)]
    fn leaves(
        &mut self,
        w: &Own<'g, F, M>,
        at: &Level<'g>,
        idx: usize,
        raw: u64,
    ) -> ControlFlow<(), Step<'g>> {
        let level = at.level;
        let span = at.span();
        let base = at.iova(idx);
        if w.geo.has_runs(level) {
            let Some(leaf) = w.leaf(raw, level) else {
                return ControlFlow::Break(());
            };
            if leaf.size > span {
                return self.run(at, idx, leaf.size);
            }
        }
        if self.cur != base {
            return ControlFlow::Break(()); // the range starts inside a larger leaf
        }
        let contig = w.fmt.contig_entries(level);
        let bit = w.fmt.contig_bit();
        if contig > 1 && raw & bit != 0 {
            self.break_group(at, idx, contig, bit);
        }
        at.entry(idx).store(0, Ordering::Release);
        // The common case is a run of plain leaves: clear it in a tight loop and record
        // it once. At level 0 of a format without runs, every entry this table wrote is
        // empty (0) or a plain leaf, so no classification is needed there.
        let plain_below = level == 0 && !w.geo.has_runs(0);
        let mut next = base + span;
        let mut j = idx + 1;
        while j < at.len() && next < self.end {
            let raw = at.entry(j).load(Ordering::Acquire);
            if raw == 0
                || (contig > 1 && raw & bit != 0)
                || (!plain_below
                    && (w.classify(raw, level) != Class::Leaf || w.geo.has_runs(level)))
            {
                break;
            }
            at.entry(j).store(0, Ordering::Release);
            next += span;
            j += 1;
        }
        self.pt
            .shared
            .mem
            .clean(NonNull::from(at.entry(idx)).cast(), (j - idx) * 8);
        self.gather.add_range(base, next - base);
        self.cur = next;
        ControlFlow::Continue(Step::Next(j - idx))
    }

    /// Clears a leaf run of `size` bytes whose entries include `idx`.
    #[cold]
    fn run(&mut self, at: &Level<'g>, idx: usize, size: u64) -> ControlFlow<(), Step<'g>> {
        let k = (size >> at.shift) as usize;
        let first = Level::group_start(idx, k);
        let page = at.iova(first);
        if self.cur != page {
            return ControlFlow::Break(()); // the range starts inside the page
        }
        for j in first..first + k {
            at.entry(j).store(0, Ordering::Release);
        }
        self.pt
            .shared
            .mem
            .clean(NonNull::from(at.entry(first)).cast(), k * 8);
        self.gather.add_range(page, size);
        self.cur = page + size;
        ControlFlow::Continue(Step::Next(first + k - idx))
    }

    /// Before part of a contiguous group is unmapped, rewrites every entry of the group
    /// without the hint (so the group is never left partly marked) and widens the
    /// invalidation to the whole group.
    #[cold]
    fn break_group(&mut self, at: &Level<'g>, idx: usize, contig: usize, bit: u64) {
        let first = Level::group_start(idx, contig);
        let group_base = at.iova(first);
        let group_len = at.span() * contig as u64;
        if first == idx && self.end - group_base >= group_len {
            return; // the whole group goes: nothing to rewrite
        }
        for i in first..first + contig {
            let e = at.entry(i);
            let mut v = e.load(Ordering::Acquire);
            // Another thread may be unmapping its own part of the group: never resurrect
            // an entry it cleared.
            while v & bit != 0 {
                match e.compare_exchange(v, v & !bit, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => break,
                    Err(now) => v = now,
                }
            }
        }
        self.pt
            .shared
            .mem
            .clean(NonNull::from(at.entry(first)).cast(), contig * 8);
        self.gather.add_range(group_base, group_len);
    }
}
