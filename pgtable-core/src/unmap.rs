//! Unmapping: clear leaves, detach whole tables by compare-exchange into the gather.

use crate::error::{Error, Result};
use crate::format::{Entry, Format};
use crate::gather::Gather;
use crate::memory::TableMemory;
use crate::sync::Ordering;
use crate::sync::epoch::{self, Guard};
use crate::table::{PageTable, entry};
use std::ptr::NonNull;

impl<F: Format, M: TableMemory> PageTable<F, M> {
    /// Unmaps `pgcount` pages of `pgsize` from `iova`; returns the bytes unmapped.
    ///
    /// No splitting: a range starting inside a larger leaf unmaps nothing; a range
    /// ending inside a larger leaf removes that whole leaf and counts its length; the
    /// unmap stops at the first hole. A table whose whole span this call unmaps is
    /// detached into `gather` (freed after the gather is released and readers unpin).
    ///
    /// # Errors
    /// Bad arguments ([`Error::UnsupportedSize`], [`Error::Misaligned`],
    /// [`Error::IovaRange`]); nothing is changed then.
    #[inline]
    pub fn unmap_pages(
        &self,
        iova: u64,
        pgsize: u64,
        pgcount: u64,
        gather: &mut Gather,
    ) -> Result<u64> {
        let g = epoch::pin();
        self.unmap_pages_in(&g, iova, pgsize, pgcount, gather)
    }

    /// Unmaps `[iova, iova + len)`, whatever the page sizes; see
    /// [`PageTable::unmap_pages`] for the rules.
    ///
    /// # Errors
    /// `iova` and `len` must be granule aligned and inside the input address space.
    pub fn unmap(&self, iova: u64, len: u64, gather: &mut Gather) -> Result<u64> {
        let g = epoch::pin();
        self.unmap_in(&g, iova, len, gather)
    }

    pub(crate) fn unmap_pages_in(
        &self,
        g: &Guard,
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
            start: iova,
            end: u64::MAX,
            bits: self.geo.va_bits,
        })?;
        self.unmap_range(g, iova, len, gather)
    }

    pub(crate) fn unmap_in(
        &self,
        g: &Guard,
        iova: u64,
        len: u64,
        gather: &mut Gather,
    ) -> Result<u64> {
        let gran = self.geo.granule();
        Self::check_aligned("iova", iova, gran)?;
        Self::check_aligned("length", len, gran)?;
        self.unmap_range(g, iova, len, gather)
    }

    #[inline(always)]
    fn unmap_range(&self, g: &Guard, iova: u64, len: u64, gather: &mut Gather) -> Result<u64> {
        let end = self.check_iova(iova, len)?;
        if len == 0 {
            return Ok(0);
        }
        // Descend without recursion while the range lies inside one entry's span without
        // covering all of it: only that entry can change at this level, and none of its
        // tables can be freed (the common single-page case goes straight to the leaf).
        let mut table = self.root.virt;
        let mut level = self.geo.top();
        while level > 0 {
            let span = self.geo.entry_span(level);
            let base = iova & !(span - 1);
            if end > base + span || (iova == base && end == base + span) {
                break;
            }
            // SAFETY: `table` is the root or was reached under the pin `g`.
            let raw = unsafe { entry(table, self.geo.index(iova, level)) }.load(Ordering::Acquire);
            match self.fmt.decode(raw, level) {
                Entry::Table(pa) => match self.table_at(pa, level - 1) {
                    Some(child) => {
                        table = child;
                        level -= 1;
                    }
                    None => return Ok(0),
                },
                Entry::Leaf { .. } => break,
                _ => return Ok(0),
            }
        }
        let mut cur = iova;
        self.unmap_table(g, table, level, &mut cur, end, gather);
        Ok(cur - iova)
    }

    /// Unmaps from `*cur` towards `end` inside `table` (of `level`), advancing `*cur`
    /// past what it removed. Returns false when it stopped early (a hole, or a start
    /// inside a larger leaf).
    // The guard is never read: taking it proves the caller holds an epoch pin.
    #[allow(clippy::only_used_in_recursion)]
    fn unmap_table(
        &self,
        g: &Guard,
        table: NonNull<u8>,
        level: u32,
        cur: &mut u64,
        end: u64,
        gather: &mut Gather,
    ) -> bool {
        let span = self.geo.entry_span(level);
        let n = self.geo.entries(level);
        let mut idx = self.geo.index(*cur, level);
        while *cur < end && idx < n {
            // SAFETY: `table` is the root or was reached under the pin `g`; idx < n.
            let e = unsafe { entry(table, idx) };
            let raw = e.load(Ordering::Acquire);
            let base = *cur & !(span - 1);
            match self.fmt.decode(raw, level) {
                Entry::Leaf { .. } => {
                    if *cur != base {
                        return false;
                    }
                    let contig = self.fmt.contig_entries(level);
                    if contig > 1 && raw & self.fmt.contig_bit() != 0 {
                        self.break_group(table, idx, contig, base, end, span, gather);
                    }
                    e.store(0, Ordering::Release);
                    // The common case is a run of plain leaves: clear it in a tight loop
                    // and record it once.
                    let first = idx;
                    let mut next = base + span;
                    idx += 1;
                    while idx < n && next < end {
                        // SAFETY: as above; idx < n.
                        let e = unsafe { entry(table, idx) };
                        let raw = e.load(Ordering::Acquire);
                        let plain = contig == 1 || raw & self.fmt.contig_bit() == 0;
                        // At level 0 every entry this table wrote is empty (0) or a
                        // leaf, so the full decode is needed only above it.
                        if raw == 0
                            || !plain
                            || (level > 0
                                && !matches!(self.fmt.decode(raw, level), Entry::Leaf { .. }))
                        {
                            break;
                        }
                        e.store(0, Ordering::Release);
                        next += span;
                        idx += 1;
                    }
                    if let Some(p) = NonNull::new(table.as_ptr().wrapping_add(first * 8)) {
                        self.shared.mem.clean(p, (idx - first) * 8);
                    }
                    gather.add_range(base, next - base);
                    *cur = next;
                    continue;
                }
                Entry::Table(pa) if level > 0 => {
                    let Some(child) = self.table_at(pa, level - 1) else {
                        return false;
                    };
                    let whole = *cur == base && end - base >= span;
                    if !self.unmap_table(g, child, level - 1, cur, end, gather) {
                        return false;
                    }
                    // Every leaf of the span was removed by this call: unlink the table.
                    // The compare-exchange makes exactly one thread the owner of the page
                    // even if overlapping (buggy) callers race here.
                    if whole
                        && *cur >= base + span
                        && e.compare_exchange(raw, 0, Ordering::AcqRel, Ordering::Acquire)
                            .is_ok()
                    {
                        self.shared.mem.clean(NonNull::from(e).cast(), 8);
                        let pages = self.detached_pages(child, pa, level - 1);
                        for p in pages {
                            gather.add_page(&self.sink, p);
                        }
                        gather.add_range(base, span);
                    }
                }
                _ => return false,
            }
            idx += 1;
        }
        true
    }

    /// Before part of a contiguous group is unmapped, rewrites every entry of the group
    /// without the hint (break-before-make order: the group is never left partly marked)
    /// and widens the invalidation to the whole group.
    #[allow(clippy::too_many_arguments)]
    fn break_group(
        &self,
        table: NonNull<u8>,
        idx: usize,
        contig: usize,
        base: u64,
        end: u64,
        span: u64,
        gather: &mut Gather,
    ) {
        let first = idx & !(contig - 1);
        let group_base = base - (idx - first) as u64 * span;
        let group_len = span * contig as u64;
        if first == idx && end - base >= group_len {
            return; // the whole group goes: nothing to rewrite
        }
        let bit = self.fmt.contig_bit();
        for i in first..first + contig {
            // SAFETY: `table` is live under the caller's pin; the group lies in the table.
            let e = unsafe { entry(table, i) };
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
        if let Some(p) = NonNull::new(table.as_ptr().wrapping_add(first * 8)) {
            self.shared.mem.clean(p, contig * 8);
        }
        gather.add_range(group_base, group_len);
    }
}
