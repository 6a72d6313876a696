//! The iteration primitive every traversal is built on (the Rust form of generic_pt's
//! `pt_state`): a [`TableRef`] whose lifetime is that of the epoch pin (or the view) that
//! made it reachable, and a [`Level`] cursor that owns the index and span arithmetic.
//!
//! The `unsafe` of the walker lives in two places only: [`TableRef::from_raw`], whose
//! callers (the walker's table sources) vouch that a page stays readable for `'g`, and
//! [`TableRef::entry`], which is safe because the index is masked into the table.

use crate::sync::{AtomicU64, Ordering};
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// One table page, readable for as long as `'g`: the epoch pin under which it was
/// reached (a table pointer cannot outlive its pin, as crossbeam's `Shared<'g>`), or
/// the borrow of the memory a foreign view reads.
///
/// Outside the crate it is read-only: [`TableRef::load`] reads one raw entry.
///
/// ```compile_fail
/// # use pgtable_core::testfmt::TestFormat;
/// # use pgtable_core::{HostMemory, PageTable};
/// # let pt = PageTable::new(TestFormat::new(), std::sync::Arc::new(HostMemory::new())).unwrap();
/// let root = {
///     let session = pt.session();
///     session.root_table() // borrows the session's pin...
/// }; // ...which ends here
/// root.load(0);
/// ```
#[derive(Clone, Copy)]
pub struct TableRef<'g> {
    entries: NonNull<AtomicU64>,
    /// Entries − 1 (tables hold a power of two of entries).
    mask: usize,
    _life: PhantomData<&'g [AtomicU64]>,
}

impl fmt::Debug for TableRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableRef")
            .field("virt", &self.entries)
            .field("entries", &self.len())
            .finish()
    }
}

impl<'g> TableRef<'g> {
    /// A table of `entries` 8-byte entries at `virt`.
    ///
    /// # Safety
    /// `virt` must be 8-byte aligned and valid for atomic reads and writes of `entries`
    /// (a power of two) 64-bit words for all of `'g`.
    #[inline(always)]
    pub(crate) unsafe fn from_raw(virt: NonNull<u8>, entries: usize) -> Self {
        debug_assert!(entries.is_power_of_two());
        debug_assert!((virt.as_ptr() as usize).is_multiple_of(8));
        TableRef {
            entries: virt.cast(),
            mask: entries - 1,
            _life: PhantomData,
        }
    }

    /// The entry `idx`. An index beyond the table is a walker bug: it is masked back into
    /// the table (and asserts in debug builds), so it can never reach other memory.
    #[inline(always)]
    pub(crate) fn entry(self, idx: usize) -> &'g AtomicU64 {
        debug_assert!(
            idx <= self.mask,
            "index {idx} beyond a table of {}",
            self.len()
        );
        // SAFETY: `idx & mask` is below the entry count, and `from_raw`'s caller promised
        // the entries stay valid for 'g.
        unsafe { &*self.entries.as_ptr().add(idx & self.mask) }
    }

    /// Reads entry `idx` (acquire), as a hardware walker would see it.
    #[inline(always)]
    pub fn load(self, idx: usize) -> u64 {
        self.entry(idx).load(Ordering::Acquire)
    }

    /// Number of entries.
    #[inline(always)]
    pub fn len(self) -> usize {
        self.mask + 1
    }

    /// Always false: a table has at least one entry.
    pub fn is_empty(self) -> bool {
        false
    }

    /// The CPU address of the table.
    pub(crate) fn virt(self) -> NonNull<u8> {
        self.entries.cast()
    }
}

/// A cursor over one table: which level it is, where its IOVA span starts, and the
/// index / span / contiguous-group arithmetic every traversal shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Level<'g> {
    pub(crate) table: TableRef<'g>,
    /// The level number (0 = smallest pages).
    pub(crate) level: u32,
    /// log2 of the bytes one entry spans.
    pub(crate) shift: u32,
    /// The IOVA of entry 0.
    pub(crate) base: u64,
}

impl<'g> Level<'g> {
    /// Entry `idx`.
    #[inline(always)]
    pub(crate) fn entry(&self, idx: usize) -> &'g AtomicU64 {
        self.table.entry(idx)
    }

    /// Number of entries.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Bytes one entry spans.
    #[inline(always)]
    pub(crate) fn span(&self) -> u64 {
        1u64 << self.shift
    }

    /// The index of the entry that covers `iova` (which must lie in this table's span).
    #[inline(always)]
    pub(crate) fn index(&self, iova: u64) -> usize {
        // Tables are aligned to their span: masking is the offset from `base`.
        ((iova >> self.shift) as usize) & self.table.mask
    }

    /// The first IOVA entry `idx` covers.
    #[inline(always)]
    pub(crate) fn iova(&self, idx: usize) -> u64 {
        self.base + ((idx as u64) << self.shift)
    }

    /// The last IOVA this table covers.
    #[inline(always)]
    pub(crate) fn last(&self) -> u64 {
        // A top table of a 64-bit space spans 2^64: the shift wraps to 0, minus one.
        self.base
            .wrapping_add(((self.len() as u64) << self.shift).wrapping_sub(1))
    }

    /// The index range `[first, end)` of the entries that intersect `[start, last]`.
    #[inline(always)]
    pub(crate) fn indices(&self, start: u64, last: u64) -> (usize, usize) {
        let first = if start > self.base {
            self.index(start)
        } else {
            0
        };
        let end = if last >= self.last() {
            self.len()
        } else {
            self.index(last) + 1
        };
        (first, end)
    }

    /// The first index of the aligned group of `n` entries (a power of two) that holds
    /// `idx`: a contiguous-hint group, or the entries of a leaf run.
    #[inline(always)]
    pub(crate) fn group_start(idx: usize, n: usize) -> usize {
        idx & !(n - 1)
    }

    /// The cursor of the table entry `idx` points to, at `virt` with `entries` entries.
    #[inline(always)]
    pub(crate) fn below(&self, idx: usize, table: TableRef<'g>, bits: u32) -> Level<'g> {
        Level {
            table,
            level: self.level - 1,
            shift: self.shift - bits,
            base: self.iova(idx),
        }
    }
}
