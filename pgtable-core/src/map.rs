//! Mapping: `map_pages` (one page size) and `map` (best page sizes, all-or-nothing).

use crate::error::{Error, Result};
use crate::format::{Entry, Format};
use crate::memory::TableMemory;
use crate::prot::Prot;
use crate::sync::Ordering;
use crate::sync::epoch::{self, Guard};
use crate::table::{PageTable, entry};
use std::ops::ControlFlow;
use std::ptr::NonNull;

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
    let larger = bitmap & !((size << 1) - 1);
    let mut m = larger;
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

impl<F: Format, M: TableMemory> PageTable<F, M> {
    /// Maps `pgcount` pages of `pgsize` bytes from `iova` to `pa`.
    ///
    /// `pgsize` must be one of the table's page sizes, `iova` and `pa` aligned to it,
    /// the ranges inside the input and output address sizes, and `prot` must contain
    /// READ or WRITE. An empty subtree in the way is replaced by the larger leaf (its
    /// tables are retired through the epoch). Returns the bytes mapped.
    ///
    /// # Errors
    /// Argument errors ([`Error::UnsupportedSize`], [`Error::Misaligned`],
    /// [`Error::IovaRange`], [`Error::PhysRange`], [`Error::BadProt`]) change nothing.
    /// [`Error::Exists`] (a leaf is in the way) and [`Error::NoMemory`] leave the pages
    /// before the failure mapped and say how many bytes that is.
    #[inline]
    pub fn map_pages(
        &self,
        iova: u64,
        pa: u64,
        pgsize: u64,
        pgcount: u64,
        prot: Prot,
    ) -> Result<u64> {
        let g = epoch::pin();
        self.map_pages_in(&g, iova, pa, pgsize, pgcount, prot)
    }

    /// Maps `[iova, iova + len)` to `pa` with the largest page sizes that fit (see
    /// [`page_runs`]). All or nothing: on error the table's mappings are as before.
    /// `len == 0` maps nothing and returns 0.
    ///
    /// # Errors
    /// As [`PageTable::map_pages`]; `iova`, `pa` and `len` must be granule aligned.
    pub fn map(&self, iova: u64, pa: u64, len: u64, prot: Prot) -> Result<u64> {
        let g = epoch::pin();
        self.map_in(&g, iova, pa, len, prot)
    }

    pub(crate) fn map_in(
        &self,
        g: &Guard,
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
        let mut clash = |_: &[u64], t: &crate::Translation| ControlFlow::Break(t.iova.max(iova));
        if let ControlFlow::Break(at) = self.visit_leaves(g, iova, end, &mut clash) {
            return Err(Error::Exists {
                iova: at,
                mapped: 0,
            });
        }
        let (mut cur, mut cpa, mut left) = (iova, pa, len);
        while left > 0 {
            let (size, count) =
                next_run(self.geo.pgsize_bitmap, cur, cpa, left).expect("granule fits");
            if let Err(e) = self.map_pages_in(g, cur, cpa, size, count, prot) {
                let done = cur - iova + e.mapped();
                if done > 0 {
                    let mut gather = crate::Gather::new();
                    let _ = self.unmap_in(g, iova, done, &mut gather);
                }
                return Err(match e {
                    Error::Exists { iova, .. } => Error::Exists { iova, mapped: 0 },
                    Error::NoMemory { .. } => Error::NoMemory { mapped: 0 },
                    e => e,
                });
            }
            cur += size * count;
            cpa += size * count;
            left -= size * count;
        }
        Ok(len)
    }

    pub(crate) fn map_pages_in(
        &self,
        g: &Guard,
        iova: u64,
        pa: u64,
        pgsize: u64,
        pgcount: u64,
        prot: Prot,
    ) -> Result<u64> {
        let level = self
            .geo
            .level_of_size(pgsize)
            .ok_or(Error::UnsupportedSize(pgsize))?;
        Self::check_aligned("iova", iova, pgsize)?;
        Self::check_aligned("paddr", pa, pgsize)?;
        Self::check_prot(prot)?;
        if prot.bits() & !Prot::all().bits() != 0 {
            return Err(Error::BadProt(prot.bits()));
        }
        if pgcount == 0 {
            return Ok(0);
        }
        let total = pgsize.checked_mul(pgcount).ok_or(Error::IovaRange {
            start: iova,
            end: u64::MAX,
            bits: self.geo.va_bits,
        })?;
        self.check_iova(iova, total)?;
        self.check_pa(pa, total)?;

        let entries = self.geo.entries(level);
        let contig = self.fmt.contig_entries(level);
        let mut done = 0u64;
        while done < total {
            let cur = iova + done;
            let table = self
                .walk_alloc(g, cur, level)
                .map_err(|e| with_mapped(e, done))?;
            let first = self.geo.index(cur, level);
            // pgsize is a power of two: shift rather than divide on the fast path.
            let n = (entries - first).min(((total - done) >> pgsize.trailing_zeros()) as usize);
            let mut i = 0;
            while i < n {
                let idx = first + i;
                let cpa = pa + done;
                // The contiguous-hint test stays out of the common loop entirely when the
                // format has no groups at this level (`contig` is then 1).
                if contig > 1
                    && idx % contig == 0
                    && n - i >= contig
                    && cpa & (pgsize * contig as u64 - 1) == 0
                    && self.group_empty(table, idx, contig)
                {
                    let bit = self.fmt.contig_bit();
                    for j in 0..contig {
                        let raw = self.fmt.encode_leaf(cpa + j as u64 * pgsize, level, prot) | bit;
                        // SAFETY: `table` is live under the pin `g`; idx + j < entries.
                        unsafe { entry(table, idx + j) }.store(raw, Ordering::Release);
                    }
                    i += contig;
                    done += contig as u64 * pgsize;
                    continue;
                }
                // Plain leaves up to the next possible group start (or the end).
                let stop = if contig > 1 {
                    (idx / contig + 1) * contig - first
                } else {
                    n
                };
                while i < n.min(stop) {
                    // SAFETY: `table` is live under the pin `g`; first + i < entries.
                    let e = unsafe { entry(table, first + i) };
                    let old = e.load(Ordering::Acquire);
                    let new = self.fmt.encode_leaf(pa + done, level, prot);
                    if old != 0 {
                        self.replace_empty_subtree(g, e, old, level, new)
                            .map_err(|()| Error::Exists {
                                iova: iova + done,
                                mapped: done,
                            })?;
                    } else {
                        e.store(new, Ordering::Release);
                    }
                    i += 1;
                    done += pgsize;
                }
            }
            let first_entry = table.as_ptr().wrapping_add(first * 8);
            if let Some(p) = NonNull::new(first_entry) {
                self.shared.mem.clean(p, n * 8);
            }
        }
        Ok(total)
    }

    fn group_empty(&self, table: NonNull<u8>, idx: usize, n: usize) -> bool {
        // SAFETY: `table` is live under the caller's pin; idx + n <= entries.
        (idx..idx + n).all(|i| unsafe { entry(table, i) }.load(Ordering::Acquire) == 0)
    }

    /// Replaces the entry `e` (holding `old`) by the leaf `new` if `old` is a table
    /// whose subtree maps nothing; its tables are retired through the epoch.
    #[cold]
    #[inline(never)]
    fn replace_empty_subtree(
        &self,
        _g: &Guard,
        e: &crate::sync::AtomicU64,
        old: u64,
        level: u32,
        new: u64,
    ) -> std::result::Result<(), ()> {
        let Entry::Table(pa) = self.fmt.decode(old, level) else {
            return Err(());
        };
        if level == 0 {
            return Err(());
        }
        let child = self.table_at(pa, level - 1).ok_or(())?;
        if !self.subtree_empty(child, level - 1) {
            return Err(());
        }
        e.compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire)
            .map_err(|_| ())?;
        // Retire as an unmap without a gather would: readers are protected by the epoch.
        self.sink
            .clone()
            .retire(self.detached_pages(child, pa, level - 1));
        Ok(())
    }

    fn subtree_empty(&self, table: NonNull<u8>, level: u32) -> bool {
        (0..self.geo.entries(level)).all(|idx| {
            // SAFETY: `table` is reachable under the caller's pin; idx < entries.
            let raw = unsafe { entry(table, idx) }.load(Ordering::Acquire);
            match self.fmt.decode(raw, level) {
                Entry::Empty => true,
                Entry::Table(pa) if level > 0 => self
                    .table_at(pa, level - 1)
                    .is_some_and(|c| self.subtree_empty(c, level - 1)),
                _ => false,
            }
        })
    }

    /// Walks from the top to the table of `level` that holds `iova`'s entry, installing
    /// missing tables by compare-exchange (the loser of a race frees its page).
    #[inline(always)]
    fn walk_alloc(&self, _g: &Guard, iova: u64, level: u32) -> Result<NonNull<u8>> {
        let mut table = self.root.virt;
        let mut l = self.geo.top();
        while l > level {
            // SAFETY: `table` is the root or was reached under the pin `_g`.
            let e = unsafe { entry(table, self.geo.index(iova, l)) };
            let mut raw = e.load(Ordering::Acquire);
            table = loop {
                match self.fmt.decode(raw, l) {
                    Entry::Table(pa) => {
                        break self
                            .table_at(pa, l - 1)
                            .ok_or(Error::Exists { iova, mapped: 0 })?;
                    }
                    Entry::Empty if raw == 0 => {
                        let page = self
                            .shared
                            .alloc_table(self.geo.table_bytes(l - 1))
                            .ok_or(Error::NoMemory { mapped: 0 })?;
                        self.shared.mem.clean(page.virt, page.size);
                        let new = self.fmt.encode_table(page.phys, l);
                        match e.compare_exchange(0, new, Ordering::AcqRel, Ordering::Acquire) {
                            Ok(_) => {
                                self.shared.mem.clean(NonNull::from(e).cast(), 8);
                                break page.virt;
                            }
                            Err(cur) => {
                                // SAFETY: the page was never published.
                                unsafe { self.shared.free_now(page) };
                                raw = cur;
                            }
                        }
                    }
                    _ => {
                        let span = self.geo.entry_span(l);
                        return Err(Error::Exists {
                            iova: iova & !(span - 1),
                            mapped: 0,
                        });
                    }
                }
            };
            l -= 1;
        }
        Ok(table)
    }
}

fn with_mapped(e: Error, mapped: u64) -> Error {
    match e {
        Error::Exists { iova, .. } => Error::Exists { iova, mapped },
        Error::NoMemory { .. } => Error::NoMemory { mapped },
        e => e,
    }
}
