//! Dirty tracking (docs/design.md "Dirty tracking", docs/c-api.md API level 2): turning it on
//! and off, reading and clearing the dirty state of a range, and the hardware's side for
//! emulated walkers and tests.
//!
//! Every dirty state change of an entry is one atomic bit operation ([`BitOp`]): the
//! hardware (or an emulated walker) sets the dirty state with one, and
//! [`PageTable::read_and_clear_dirty`] clears it with one, after a plain load showed it
//! dirty. A write that lands between the load and the clear is in the entry when the
//! clear's read-modify-write runs, so it is reported now; one that lands after the load
//! of a clean entry is left dirty for the next call. None is ever lost.

use crate::addr::Iova;
use crate::error::{Error, Result};
use crate::format::{DirtyBits, Format};
use crate::level::Level;
use crate::memory::TableMemory;
use crate::sync::epoch;
use crate::sync::{AtomicU64, Ordering};
use crate::table::PageTable;
use crate::walk::{Class, OwnTables, Step, Visit, Walker};
use bitflags::bitflags;
use std::ops::ControlFlow;

type Own<'g, F, M> = Walker<'g, F, OwnTables<'g, M>>;

bitflags! {
    /// Options of [`PageTable::read_and_clear_dirty`] (the C API's
    /// `IOMMU_PT_DIRTY_*`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct DirtyFlags: u32 {
        /// Report without clearing: the call writes nothing (a reader).
        const NO_CLEAR = 1;
    }
}

/// Applies `bits.clean()` to `e`, which held `raw`, by compare-exchange, retrying while
/// `e` holds a dirty leaf (`leaf` says which values are leaves); whether this call made
/// it clean.
#[inline]
fn clean_once(e: &AtomicU64, raw: u64, bits: DirtyBits, leaf: impl Fn(u64) -> bool) -> bool {
    let mut cur = raw;
    while bits.is_dirty(cur) && leaf(cur) {
        match e.compare_exchange(
            cur,
            bits.clean().apply(cur),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => return true,
            Err(now) => cur = now,
        }
    }
    false
}

/// Sets bits `first..=last` of `bitmap` (bit `i` is bit `i % 64` of word `i / 64`).
fn set_bits(bitmap: &mut [u64], first: u64, last: u64) {
    let (fw, lw) = ((first / 64) as usize, (last / 64) as usize);
    let lo = !0u64 << (first % 64);
    let hi = !0u64 >> (63 - last % 64);
    if fw == lw {
        bitmap[fw] |= lo & hi;
        return;
    }
    bitmap[fw] |= lo;
    bitmap[fw + 1..lw].iter_mut().for_each(|w| *w = !0);
    bitmap[lw] |= hi;
}

/// Rewrites every leaf for tracking on or off.
struct Retrack {
    on: bool,
}

impl<'g, F: Format, M: TableMemory> Visit<'g, F, OwnTables<'g, M>> for Retrack {
    type Break = ();

    fn entry(
        &mut self,
        w: &Own<'g, F, M>,
        at: &Level<'g>,
        idx: usize,
        raw: u64,
        class: Class,
    ) -> ControlFlow<(), Step<'g>> {
        match class {
            Class::Leaf => {
                let e = at.entry(idx);
                let mut old = raw;
                loop {
                    let new = w.fmt.track_dirty(old, at.level, self.on);
                    if new == old {
                        break;
                    }
                    // The hardware may set the dirty state meanwhile: retry on what it
                    // wrote, so its update is folded in, never overwritten.
                    match e.compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire) {
                        Ok(_) => break,
                        Err(now) => old = now,
                    }
                }
                ControlFlow::Continue(Step::Next(1))
            }
            Class::Table(pa) => match w.child(at, idx, pa) {
                Some(child) => ControlFlow::Continue(Step::Descend(child)),
                None => ControlFlow::Continue(Step::Next(1)),
            },
            Class::Empty | Class::Bad(_) => ControlFlow::Continue(Step::Next(1)),
        }
    }
}

/// Reports (and clears) the dirty leaves of `[start, end)`.
struct ReadClear<'b> {
    bits: DirtyBits,
    start: u64,
    end: u64,
    page_shift: u32,
    bitmap: &'b mut [u64],
    clear: bool,
}

impl<'g, F: Format, M: TableMemory> Visit<'g, F, OwnTables<'g, M>> for ReadClear<'_> {
    type Break = ();

    #[inline]
    fn entry(
        &mut self,
        w: &Own<'g, F, M>,
        at: &Level<'g>,
        idx: usize,
        raw: u64,
        class: Class,
    ) -> ControlFlow<(), Step<'g>> {
        match class {
            Class::Leaf => {
                if !self.bits.is_dirty(raw) {
                    return ControlFlow::Continue(Step::Next(1));
                }
                let (size, rest) = if w.geo.has_runs(at.level) {
                    let size = w.leaf(raw, at.level).map_or(at.span(), |l| l.size);
                    let k = (size >> at.shift).max(1) as usize;
                    (size, k - (idx - Level::group_start(idx, k)))
                } else {
                    (at.span(), 1)
                };
                // Clearing reports only the clean this call made: a compare-exchange
                // from the value read, retried while the entry is still a dirty leaf. So
                // two overlapping clears never both report one write, and a clear
                // racing an unmap never writes into the emptied entry.
                if self.clear
                    && !clean_once(at.entry(idx), raw, self.bits, |v| {
                        w.classify(v, at.level) == Class::Leaf
                    })
                {
                    return ControlFlow::Continue(Step::Next(rest));
                }
                let page = at.iova(idx) & !(size - 1);
                let a = page.max(self.start);
                let b = (page + size).min(self.end);
                set_bits(
                    self.bitmap,
                    (a - self.start) >> self.page_shift,
                    (b - 1 - self.start) >> self.page_shift,
                );
                ControlFlow::Continue(Step::Next(rest))
            }
            Class::Table(pa) => match w.child(at, idx, pa) {
                Some(child) => ControlFlow::Continue(Step::Descend(child)),
                None => ControlFlow::Continue(Step::Next(1)),
            },
            Class::Empty | Class::Bad(_) => ControlFlow::Continue(Step::Next(1)),
        }
    }
}

impl<F: Format, M: TableMemory> PageTable<F, M> {
    /// Turns dirty tracking on or off.
    ///
    /// On: every writable leaf becomes clean, and writable leaves mapped from now on are
    /// written clean (turn the hardware's dirty updates on first: an Arm clean leaf
    /// faults on a write without them). Off: every writable leaf becomes writable
    /// without tracking, and new leaves are written so (turn the hardware's updates off
    /// after). Read-only leaves never change. Setting the state it already has does
    /// nothing. Must not race mutators of the table.
    ///
    /// # Errors
    /// [`Error::DirtyUnsupported`] if the format has no dirty state.
    ///
    /// ```
    /// # use pgtable_core::testfmt::TestFormat;
    /// use pgtable_core::{DirtyFlags, HostMemory, Iova, PageTable, PhysAddr, Prot};
    /// # let pt = PageTable::new(TestFormat::new(), std::sync::Arc::new(HostMemory::new()))?;
    /// pt.map_pages(Iova(0x10_0000), PhysAddr(0x8000_0000), 0x1000, 4, Prot::RW)?;
    /// pt.set_dirty_tracking(true)?;
    /// assert!(pt.mark_dirty(Iova(0x10_2000))?); // what the hardware does on a DMA write
    /// let mut bitmap = [0u64; 1];
    /// pt.read_and_clear_dirty(Iova(0x10_0000), 0x4000, 0x1000, &mut bitmap, DirtyFlags::empty())?;
    /// assert_eq!(bitmap, [0b0100]);
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub fn set_dirty_tracking(&self, on: bool) -> Result<()> {
        if self.fmt.dirty_bits().is_none() {
            return Err(Error::DirtyUnsupported);
        }
        if self.dirty.swap(on, Ordering::AcqRel) == on {
            return Ok(());
        }
        let g = epoch::pin();
        let w = self.walker(&g);
        let root = w.root();
        let _ = w.for_each(&root, 0, root.last(), &mut Retrack { on });
        Ok(())
    }

    /// Whether dirty tracking is on.
    pub fn dirty_tracking(&self) -> bool {
        self.dirty.load(Ordering::Relaxed)
    }

    /// Sets in `bitmap` one bit per `page_size` bytes from `iova` (bit `i` is bit
    /// `i % 64` of `bitmap[i / 64]`) for every page of `[iova, iova + len)` that a dirty
    /// leaf covers (a dirty 2 MiB leaf sets the bits of all its 2 MiB), and makes those
    /// leaves clean unless `flags` has [`DirtyFlags::NO_CLEAR`]. Only sets bits, never
    /// clears them. Each clear is one compare-exchange from the value read, and a page is
    /// reported only by the call whose clear succeeded, so no hardware write is lost and
    /// none is reported twice, even by overlapping calls (see the module docs);
    /// invalidate the IOTLB for the range before trusting later reads. A mutator of its
    /// range: it may run with mutators of disjoint ranges and readers anywhere. With
    /// `NO_CLEAR` it writes nothing and is a reader.
    ///
    /// # Errors
    /// [`Error::DirtyTrackingOff`]; [`Error::UnsupportedSize`] for a `page_size` that is
    /// not a power of two at least the granule; [`Error::Misaligned`] for an `iova` or
    /// `len` not a multiple of it; [`Error::EmptyRange`] for `len == 0`;
    /// [`Error::BitmapTooSmall`]; [`Error::IovaRange`] beyond the input size. No error
    /// changes an entry or a bit.
    pub fn read_and_clear_dirty(
        &self,
        iova: Iova,
        len: u64,
        page_size: u64,
        bitmap: &mut [u64],
        flags: DirtyFlags,
    ) -> Result<()> {
        let bits = match self.fmt.dirty_bits() {
            Some(b) if self.dirty_tracking() => b,
            _ => return Err(Error::DirtyTrackingOff),
        };
        if !page_size.is_power_of_two() || page_size < self.geo.granule() {
            return Err(Error::UnsupportedSize(page_size));
        }
        Self::check_aligned("iova", iova.0, page_size)?;
        Self::check_aligned("length", len, page_size)?;
        if len == 0 {
            return Err(Error::EmptyRange);
        }
        let end = self.check_iova(iova.0, len)?;
        let need = len >> page_size.trailing_zeros();
        let have = bitmap.len() as u64 * 64;
        if have < need {
            return Err(Error::BitmapTooSmall { need, have });
        }
        let g = epoch::pin();
        let w = self.walker(&g);
        let root = w.root();
        let mut v = ReadClear {
            bits,
            start: iova.0,
            end,
            page_shift: page_size.trailing_zeros(),
            bitmap,
            clear: !flags.contains(DirtyFlags::NO_CLEAR),
        };
        let _ = w.for_each(&root, iova.0, end - 1, &mut v);
        Ok(())
    }

    /// What the hardware does when a device writes through the leaf covering `iova`
    /// while dirty tracking is on: one atomic operation that marks the leaf dirty. For
    /// emulated IOMMUs whose devices write through these tables, and for tests. Returns
    /// whether the leaf was clean before.
    ///
    /// # Errors
    /// [`Error::NotMapped`], [`Error::IovaRange`], or [`Error::NotTracked`] when the
    /// leaf is not writable under tracking (read-only, or tracking off).
    pub fn mark_dirty(&self, iova: Iova) -> Result<bool> {
        let bits = match self.fmt.dirty_bits() {
            Some(b) if self.dirty_tracking() => b,
            _ => return Err(Error::NotTracked(iova)),
        };
        let t = self.translate(iova)?;
        let g = epoch::pin();
        let w = self.walker(&g);
        let Some(at) = w.existing_table(iova.0, t.level) else {
            return Err(Error::NotMapped(iova));
        };
        let e = at.entry(at.index(iova.0));
        let mut raw = e.load(Ordering::Acquire);
        // A compare-exchange, as the hardware's locked update: a leaf unmapped meanwhile
        // is left alone (no bit lands in the emptied entry).
        loop {
            if w.classify(raw, t.level) != Class::Leaf || raw & bits.tracked != bits.tracked {
                return Err(Error::NotTracked(iova));
            }
            if bits.is_dirty(raw) {
                return Ok(false);
            }
            match e.compare_exchange(
                raw,
                bits.dirty.apply(raw),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(true),
                Err(now) => raw = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::set_bits;

    #[test]
    fn bit_ranges_fill_words_exactly() {
        let mut b = [0u64; 3];
        set_bits(&mut b, 3, 3);
        assert_eq!(b, [1 << 3, 0, 0]);
        set_bits(&mut b, 60, 130);
        assert_eq!(b, [(1 << 3) | (0xf << 60), !0, 0b111]);
        let mut c = [0u64; 2];
        set_bits(&mut c, 0, 127);
        assert_eq!(c, [!0, !0]);
    }
}
