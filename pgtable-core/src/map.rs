//! Mapping: `map_pages` (one page size) and `map` (best page sizes, all-or-nothing).

use crate::addr::{Iova, PhysAddr};
use crate::error::{Error, Result};
use crate::format::{Entry, Format, OwnEntry};
use crate::gather::Gather;
use crate::level::Level;
use crate::memory::{TableMemory, TablePage};
use crate::prot::Prot;
use crate::sync::Ordering;
use crate::sync::epoch;
use crate::table::PageTable;
use crate::walk::{Class, OwnTables, Walker};
use std::ops::ControlFlow;
use std::ptr::NonNull;

type Own<'g, F, M> = Walker<'g, F, OwnTables<'g, M>>;

/// The page sizes `map` uses for `[iova, iova + len)` → `pa`: at each step the largest
/// allowed size that both addresses are aligned to and that fits the rest, as
/// `(pgsize, pgcount)` runs. Pure function, exposed for tests and callers that want to
/// know the choice in advance.
///
/// ```
/// use pgtable_core::page_runs;
/// let bitmap = (1 << 12) | (1 << 21) | (1 << 30);
/// assert_eq!(page_runs(bitmap, 0x1f_f000, 0x1f_f000, 0x20_2000),
///            vec![(0x1000, 1), (0x20_0000, 1), (0x1000, 1)]);
/// ```
/// use pgtable_core::{Iova, PhysAddr};
pub fn page_runs(pgsize_bitmap: u64, iova: u64, pa: u64, len: u64) -> Vec<(u64, u64)> {
    let mut runs = Vec::new();
    let (mut iova, mut pa, mut left) = (iova, pa, len);
    while left > 0 {
        let Some((size, count)) = next_run(pgsize_bitmap, iova, pa, left) else {
            break;
        };
        runs.push((size, count));
        iova += size * count;
        pa += size * count;
        left -= size * count;
    }
    runs
}

/// The next run of equal page sizes: the greedy choice at `iova`, repeated until a
/// larger size could start (at the next boundary of the next larger size that `iova`
/// and `pa` agree on) or the length runs out.
#[inline]
fn next_run(bitmap: u64, iova: u64, pa: u64, left: u64) -> Option<(u64, u64)> {
    let align = iova | pa;
    // Sizes that both addresses are aligned to and that fit.
    let fit_align = if align == 0 {
        u64::MAX
    } else {
        ((align & align.wrapping_neg()) << 1).wrapping_sub(1)
    };
    let fit_len = if left.leading_zeros() == 0 {
        u64::MAX
    } else {
        (1u64 << (64 - left.leading_zeros())) - 1
    };
    let cand = bitmap & fit_align & fit_len;
    if cand == 0 {
        return None;
    }
    let size = 1u64 << (63 - cand.leading_zeros());
    let mut count = left / size;
    // The next larger size `iova` and `pa` share alignment with could take over at its
    // next boundary: stop the run there.
    let mut m = bitmap & !((size << 1) - 1);
    while m != 0 {
        let big = m & m.wrapping_neg();
        if (iova ^ pa) & (big - 1) == 0 {
            let boundary = (iova | (big - 1)).wrapping_add(1);
            if boundary > iova {
                count = count.min((boundary - iova) / size);
            }
            break;
        }
        m &= m - 1;
    }
    Some((size, count.max(1)))
}

/// Puts the bytes mapped so far into a `map_pages` error.
fn with_mapped(e: Error, mapped: u64) -> Error {
    match e {
        Error::Exists { iova, .. } => Error::Exists { iova, mapped },
        Error::NoMemory { .. } => Error::NoMemory { mapped },
        e => e,
    }
}

impl<F: Format, M: TableMemory> PageTable<F, M> {
    /// Maps `pgcount` pages of `pgsize` bytes from `iova` to `pa`.
    ///
    /// `pgsize` must be one of the table's page sizes, `iova` and `pa` aligned to it,
    /// the ranges inside the input and output address sizes, and `prot` must contain
    /// READ or WRITE and only known bits. An empty subtree in the way is replaced by the
    /// larger leaf (its tables are freed only after the flush hook, see [`FlushWalk`]).
    /// Returns the bytes mapped.
    ///
    /// [`FlushWalk`]: crate::FlushWalk
    ///
    /// # Errors
    /// Argument errors ([`Error::UnsupportedSize`], [`Error::Misaligned`],
    /// [`Error::IovaRange`], [`Error::PhysRange`], [`Error::BadProt`]) change nothing.
    /// [`Error::Exists`] (a leaf is in the way), [`Error::NoMemory`],
    /// [`Error::TableUnencodable`] and [`Error::TableUnreachable`] leave the pages
    /// before the failure mapped; the first two say how many bytes that is.
    #[inline]
    pub fn map_pages(
        &self,
        iova: Iova,
        pa: PhysAddr,
        pgsize: u64,
        pgcount: u64,
        prot: Prot,
    ) -> Result<u64> {
        let g = epoch::pin();
        self.map_pages_in(&self.walker(&g), iova.0, pa.0, pgsize, pgcount, prot)
    }

    /// Maps `[iova, iova + len)` to `pa` with the largest page sizes that fit (see
    /// [`page_runs`]). All or nothing: on error the table is exactly as before. Every
    /// table page the mapping needs is reserved before anything is written, so running
    /// out of table memory changes nothing. `len == 0` maps nothing and returns 0.
    ///
    /// # Errors
    /// As [`PageTable::map_pages`]; `iova`, `pa` and `len` must be granule aligned.
    pub fn map(&self, iova: Iova, pa: PhysAddr, len: u64, prot: Prot) -> Result<u64> {
        let g = epoch::pin();
        self.map_in(&self.walker(&g), iova.0, pa.0, len, prot)
    }

    #[inline(always)]
    pub(crate) fn map_pages_in(
        &self,
        w: &Own<'_, F, M>,
        iova: u64,
        pa: u64,
        pgsize: u64,
        pgcount: u64,
        prot: Prot,
    ) -> Result<u64> {
        if pgcount == 1 && self.map_one(w, iova, pa, pgsize, prot) {
            return Ok(pgsize);
        }
        self.map_pages_slow(w, iova, pa, pgsize, pgcount, prot)
    }

    /// The fast path: one valid page into tables that exist, over an empty entry.
    /// Returns false (having changed nothing) for anything else, which the slow path
    /// then decides and reports.
    #[inline(always)]
    fn map_one(&self, w: &Own<'_, F, M>, iova: u64, pa: u64, pgsize: u64, prot: Prot) -> bool {
        let Some(level) = self.geo.level_of_size(pgsize) else {
            return false;
        };
        let in_range = iova.checked_add(pgsize).is_some_and(|e| e <= self.va_end)
            && pa.checked_add(pgsize).is_some_and(|e| e <= self.oa_end);
        if (iova | pa) & (pgsize - 1) != 0
            || !in_range
            || !Self::prot_ok(prot)
            || self.geo.has_runs(level)
        {
            return false;
        }
        let Some(at) = w.existing_table(iova, level) else {
            return false;
        };
        let e = at.entry(at.index(iova));
        if e.load(Ordering::Acquire) != 0 {
            return false;
        }
        e.store(self.leaf(pa, level, prot), Ordering::Release);
        self.shared.mem.clean(NonNull::from(e).cast(), 8);
        true
    }

    #[inline(never)]
    fn map_pages_slow(
        &self,
        w: &Own<'_, F, M>,
        iova: u64,
        pa: u64,
        pgsize: u64,
        pgcount: u64,
        prot: Prot,
    ) -> Result<u64> {
        let mut reserve = Vec::new();
        let r = self.map_pages_reserved(w, iova, pa, pgsize, pgcount, prot, &mut reserve);
        if !reserve.is_empty() {
            self.shared.unused(reserve);
        }
        r.map_err(|(e, done)| with_mapped(e, done))
    }

    pub(crate) fn map_in(
        &self,
        w: &Own<'_, F, M>,
        iova: u64,
        pa: u64,
        len: u64,
        prot: Prot,
    ) -> Result<u64> {
        Self::check_prot(prot)?;
        if len == 0 {
            return Ok(0);
        }
        let gran = self.geo.granule();
        Self::check_aligned("iova", iova, gran)?;
        Self::check_aligned("paddr", pa, gran)?;
        Self::check_aligned("length", len, gran)?;
        let end = self.check_iova(iova, len)?;
        self.check_pa(pa, len)?;
        // Refuse before writing anything if a leaf is in the way.
        let mut clash = |_: &[u64], t: &crate::Translation| ControlFlow::Break(t.iova.0.max(iova));
        if let ControlFlow::Break(at) = w.leaves(iova, end - 1, u64::MAX, false, &mut clash).flow {
            return Err(Error::Exists {
                iova: Iova(at),
                mapped: 0,
            });
        }
        // Reserve every table page the mapping will install, so that running out of
        // memory leaves the table exactly as it was.
        let need = self.missing_tables(w, iova, pa, len);
        let mut reserve = Vec::with_capacity(need);
        for _ in 0..need {
            match self.shared.alloc_table(gran as usize) {
                Some(page) => reserve.push(page),
                None => {
                    self.shared.unused(reserve);
                    return Err(Error::NoMemory { mapped: 0 });
                }
            }
        }
        // Taken with pop(): the first page allocated becomes the first table installed,
        // so a fresh arena lays tables out in walk order, as the worked examples do.
        reserve.reverse();
        let (mut cur, mut cpa, mut left) = (iova, pa, len);
        let mut failed = None;
        while left > 0 {
            let (size, count) =
                next_run(self.geo.pgsize_bitmap, cur, cpa, left).expect("the granule fits");
            if let Err((e, done)) =
                self.map_pages_reserved(w, cur, cpa, size, count, prot, &mut reserve)
            {
                failed = Some((e, cur - iova + done));
                break;
            }
            cur += size * count;
            cpa += size * count;
            left -= size * count;
        }
        if !reserve.is_empty() {
            self.shared.unused(reserve);
        }
        let Some((e, done)) = failed else {
            return Ok(len);
        };
        // Only overlapping (buggy) callers or broken memory get here: undo what was
        // mapped, through the flush hook as an unmap without a gather.
        if done > 0 {
            let mut gather = Gather::new();
            let _ = self.unmap_range(w, iova, done, &mut gather);
            self.flush_and_release(gather);
        }
        Err(match e {
            Error::Exists { iova, .. } => Error::Exists { iova, mapped: 0 },
            Error::NoMemory { .. } => Error::NoMemory { mapped: 0 },
            e => e,
        })
    }

    /// `map_pages`, taking new table pages from `reserve` first. An error comes with
    /// the bytes mapped before it.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn map_pages_reserved(
        &self,
        w: &Own<'_, F, M>,
        iova: u64,
        pa: u64,
        pgsize: u64,
        pgcount: u64,
        prot: Prot,
        reserve: &mut Vec<TablePage>,
    ) -> Result<u64, (Error, u64)> {
        let checked = |r: Result<()>| r.map_err(|e| (e, 0));
        let level = self
            .geo
            .level_of_size(pgsize)
            .ok_or((Error::UnsupportedSize(pgsize), 0))?;
        checked(Self::check_aligned("iova", iova, pgsize))?;
        checked(Self::check_aligned("paddr", pa, pgsize))?;
        checked(Self::check_prot(prot))?;
        if pgcount == 0 {
            return Ok(0);
        }
        let total = pgsize.checked_mul(pgcount).ok_or((
            Error::IovaRange {
                start: Iova(iova),
                len: u64::MAX,
                bits: self.geo.va_bits,
            },
            0,
        ))?;
        checked(self.check_iova(iova, total).map(|_| ()))?;
        checked(self.check_pa(pa, total))?;

        let span = self.geo.entry_span(level);
        // Entries per page: 1, or the length of a leaf run.
        let k = (pgsize >> span.trailing_zeros()) as usize;
        let contig = if k == 1 {
            self.fmt.contig_entries(level)
        } else {
            1
        };
        let mut replaced = Vec::new();
        let mut done = 0u64;
        let result = 'fill: loop {
            if done >= total {
                break Ok(total);
            }
            let cur = iova + done;
            let at = match self.walk_alloc(w, cur, level, reserve) {
                Ok(at) => at,
                Err(e) => break Err((e, done)),
            };
            let first = at.index(cur);
            let n = (at.len() - first).min(((total - done) >> span.trailing_zeros()) as usize);
            let mut i = 0;
            while i < n {
                let idx = first + i;
                let cpa = pa + done;
                if k > 1 {
                    // A leaf run: every entry of the page must be free first.
                    for j in idx..idx + k {
                        let old = at.entry(j).load(Ordering::Acquire);
                        if old != 0 {
                            match self.unlink_empty(w, &at, j, old) {
                                Ok(pages) => replaced.extend(pages),
                                Err(e) => break 'fill Err((self.clash(e, iova + done), done)),
                            }
                        }
                    }
                    let track = self.dirty.load(Ordering::Relaxed);
                    for j in 0..k {
                        let mut raw = self.fmt.encode_leaf_run(cpa, level, pgsize, j, prot);
                        if track {
                            raw = self.fmt.track_dirty(raw, level, true);
                        }
                        at.entry(idx + j).store(raw, Ordering::Release);
                    }
                    i += k;
                    done += pgsize;
                    continue;
                }
                // A contiguous-hint group, when the whole aligned group is ours and free.
                // The test stays out of the common loop when the format has no groups
                // at this level (`contig` is then 1).
                if contig > 1
                    && idx % contig == 0
                    && n - i >= contig
                    && cpa & (span * contig as u64 - 1) == 0
                    && (idx..idx + contig).all(|j| at.entry(j).load(Ordering::Acquire) == 0)
                {
                    let bit = self.fmt.contig_bit();
                    for j in 0..contig {
                        let raw = self.leaf(cpa + j as u64 * span, level, prot) | bit;
                        at.entry(idx + j).store(raw, Ordering::Release);
                    }
                    i += contig;
                    done += contig as u64 * span;
                    continue;
                }
                // Plain leaves up to the next possible group start (or the end).
                let stop = if contig > 1 {
                    (Level::group_start(idx, contig) + contig - first).min(n)
                } else {
                    n
                };
                while i < stop {
                    let e = at.entry(first + i);
                    let old = e.load(Ordering::Acquire);
                    let new = self.leaf(pa + done, level, prot);
                    if old != 0 {
                        match self.unlink_empty(w, &at, first + i, old) {
                            Ok(pages) => replaced.extend(pages),
                            Err(e) => break 'fill Err((self.clash(e, iova + done), done)),
                        }
                    }
                    e.store(new, Ordering::Release);
                    i += 1;
                    done += span;
                }
            }
            self.shared
                .mem
                .clean(NonNull::from(at.entry(first)).cast(), n * 8);
        };
        // Replaced subtrees go to the epoch only once their leaves are written (the
        // flush hook already ran when each was unlinked).
        if !replaced.is_empty() {
            self.shared.retire_batch(replaced);
        }
        result
    }

    /// The error of a `map_pages` that met a leaf (or broken memory) at `iova`.
    #[cold]
    fn clash(&self, e: Error, iova: u64) -> Error {
        match e {
            Error::Exists { .. } => Error::Exists {
                iova: Iova(iova),
                mapped: 0,
            },
            e => e,
        }
    }

    /// Walks from the top to the table of `level` that holds `iova`'s entry, installing
    /// missing tables by compare-exchange (the loser of a race keeps its page for later).
    #[inline(always)]
    fn walk_alloc<'g>(
        &self,
        w: &Own<'g, F, M>,
        iova: u64,
        level: u32,
        reserve: &mut Vec<TablePage>,
    ) -> Result<Level<'g>> {
        let mut at = w.root();
        while at.level > level {
            let idx = at.index(iova);
            let e = at.entry(idx);
            let mut raw = e.load(Ordering::Acquire);
            at = loop {
                match w.classify(raw, at.level) {
                    Class::Table(pa) => {
                        break w
                            .child(&at, idx, pa)
                            .ok_or_else(|| Own::<F, M>::unreachable(iova, pa))?;
                    }
                    Class::Empty if raw == 0 => {
                        let page = self.new_table(at.level, reserve)?;
                        let new = self.fmt.encode_table(page.phys, at.level);
                        match e.compare_exchange(0, new, Ordering::AcqRel, Ordering::Acquire) {
                            Ok(_) => {
                                self.shared.mem.clean(NonNull::from(e).cast(), 8);
                                raw = new;
                            }
                            Err(now) => {
                                // Another mapper installed a table first: use theirs, and
                                // keep this (checked, zeroed, never published) page.
                                reserve.push(page);
                                raw = now;
                            }
                        }
                    }
                    _ => {
                        return Err(Error::Exists {
                            iova: Iova(iova & !(at.span() - 1)),
                            mapped: 0,
                        });
                    }
                }
            };
        }
        Ok(at)
    }

    /// A zeroed table page for an entry of `level`, checked to be installable: the
    /// format must encode its address (`decode(encode_table(pa)) == Table(pa)`, the
    /// run-time half of [`Format`]'s contract) and the memory must map it back.
    #[cold]
    fn new_table(&self, level: u32, reserve: &mut Vec<TablePage>) -> Result<TablePage> {
        let page = match reserve.pop() {
            Some(p) => p,
            None => self
                .shared
                .alloc_table(self.geo.table_bytes(level - 1))
                .ok_or(Error::NoMemory { mapped: 0 })?,
        };
        let raw = self.fmt.encode_table(page.phys, level);
        let encodable = raw != 0
            && self.fmt.decode(raw, level) == Entry::Table(page.phys)
            && self.fmt.own_entry(raw, level) == OwnEntry::Table(page.phys);
        if !encodable {
            self.shared.unused(vec![page]);
            return Err(Error::TableUnencodable {
                pa: PhysAddr(page.phys),
            });
        }
        if self.shared.mem.phys_to_virt(page.phys, page.size) != Some(page.virt) {
            self.shared.unused(vec![page]);
            return Err(Error::TableUnreachable {
                pa: PhysAddr(page.phys),
            });
        }
        self.shared.mem.clean(page.virt, page.size);
        Ok(page)
    }

    /// How many table pages mapping `[iova, iova + len)` → `pa` would install: for
    /// every table the chosen leaves need, whether it exists yet.
    fn missing_tables(&self, w: &Own<'_, F, M>, iova: u64, pa: u64, len: u64) -> usize {
        let top = self.geo.top();
        let mut last_counted = [u64::MAX; crate::geometry::MAX_LEVELS];
        let mut need = 0;
        let (mut cur, mut cpa, mut left) = (iova, pa, len);
        while left > 0 {
            let Some((size, count)) = next_run(self.geo.pgsize_bitmap, cur, cpa, left) else {
                break;
            };
            let Some(leaf_level) = self.geo.level_of_size(size) else {
                break;
            };
            let end = cur + size * count;
            // The leaves need a table at every level from theirs up to below the top.
            for level in leaf_level..top {
                let shift = self.geo.shift(level + 1);
                let mut t = cur >> shift << shift;
                while t < end {
                    if t != last_counted[level as usize] {
                        last_counted[level as usize] = t;
                        if !self.table_exists(w, t, level) {
                            need += 1;
                        }
                    }
                    t += 1 << shift;
                }
            }
            cur = end;
            cpa += size * count;
            left -= size * count;
        }
        need
    }

    /// Whether the table of `level` covering `iova` is installed.
    fn table_exists(&self, w: &Own<'_, F, M>, iova: u64, level: u32) -> bool {
        let mut at = w.root();
        while at.level > level {
            let idx = at.index(iova);
            let raw = at.entry(idx).load(Ordering::Acquire);
            match w.classify(raw, at.level).table() {
                Some(pa) => match w.child(&at, idx, pa) {
                    Some(c) => at = c,
                    None => return false,
                },
                None => return false,
            }
        }
        true
    }

    /// Runs this table's flush hook (if it has one) over the range `gather` holds, then
    /// releases the gather: what an unmap without a caller's invalidation does (see
    /// [`PageTable::unmap_now`]). A table without a hook just releases.
    pub fn flush_and_release(&self, mut gather: Gather) {
        if let (Some(hook), Some(r)) = (&self.flush, gather.range()) {
            hook.flush_walk(*r.start(), r.end().0 - r.start().0 + 1);
        }
        gather.release();
    }
}
