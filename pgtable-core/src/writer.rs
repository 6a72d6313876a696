//! [`TableWriter`]: builds tables in memory someone else owns (a guest's RAM, a test
//! image), as that owner's driver would, for the walks of [`ForeignTable`] and
//! [`Nested`](crate::Nested) to read.

use crate::addr::{Iova, PhysAddr};
use crate::error::{ConfigError, Error, Result};
use crate::foreign::ForeignTable;
use crate::format::Format;
use crate::geometry::Geometry;
use crate::memory::ViewMemory;
use crate::prot::Prot;
use crate::sync::{AtomicU64, Ordering};
use std::collections::HashMap;
use std::sync::Arc;

/// A table page for [`TableWriter`]: where it lies in memory, and the address its parent
/// entry holds (the same, except for a nested stage 1 whose table pointers are
/// intermediate addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterPage {
    /// Where the page lies in the memory written.
    pub pa: PhysAddr,
    /// The address a table entry pointing to it holds.
    pub pointer: u64,
}

/// Builds tables of format `F` in writable [`ViewMemory`], one entry store at a time,
/// the way a guest's driver writes its tables: the VMM's tests, examples and firmware
/// use it to lay out what a vIOMMU then walks. Table pages come from the caller, so
/// their addresses can be chosen (and, for a nested stage 1, be intermediate
/// addresses). Nothing is ever freed: unmap by writing entries with
/// [`TableWriter::write_entry`].
///
/// ```
/// # use pgtable_core::testfmt::TestFormat;
/// use pgtable_core::{ArenaMemory, Iova, PhysAddr, Prot, TableMemory, TableWriter, WriterPage};
/// use std::sync::Arc;
/// let mem = Arc::new(ArenaMemory::new(0x100_0000, 1 << 20));
/// let mut next = 0x100_0000u64;
/// let mut page = || { let pa = next; next += 0x1000; Some(WriterPage { pa: PhysAddr(pa), pointer: pa }) };
/// let root = page().unwrap();
/// let mut w = TableWriter::new(TestFormat::new(), mem.clone(), root.pa)?;
/// w.map(Iova(0x4000), PhysAddr(0x9000), 0x1000, Prot::READ, &mut page)?;
/// assert_eq!(w.view()?.translate(Iova(0x4321))?.pa, PhysAddr(0x9321));
/// # Ok::<(), pgtable_core::Error>(())
/// ```
#[derive(Debug)]
pub struct TableWriter<F: Format, V: ViewMemory> {
    fmt: F,
    geo: Geometry,
    mem: Arc<V>,
    root: PhysAddr,
    /// Tables written so far: (level, first IOVA covered) → where the page lies.
    tables: HashMap<(u32, u64), u64>,
}

impl<F: Format, V: ViewMemory> TableWriter<F, V> {
    /// A writer whose top table lies at `root` (which it clears).
    ///
    /// # Errors
    /// [`Error::BadConfig`] for an inconsistent format or memory that cannot be
    /// written, [`Error::Fault`] if the top table is not in memory.
    pub fn new(fmt: F, mem: Arc<V>, root: PhysAddr) -> Result<Self> {
        let geo = fmt.geometry();
        geo.validate()?;
        if !mem.writable() {
            return Err(Error::BadConfig(ConfigError::ReadOnlyMemory));
        }
        let w = TableWriter {
            fmt,
            geo,
            mem,
            root,
            tables: HashMap::from([((geo.top(), 0), root.0)]),
        };
        w.clear(root.0, geo.table_bytes(geo.top()))?;
        Ok(w)
    }

    /// The top table's address.
    pub fn root(&self) -> PhysAddr {
        self.root
    }

    /// The format.
    pub fn format(&self) -> &F {
        &self.fmt
    }

    /// A read-only walk of what was written (table pointers read as physical
    /// addresses: not for a nested stage 1).
    ///
    /// # Errors
    /// As [`ForeignTable::new`].
    pub fn view(&self) -> Result<ForeignTable<F, V>> {
        ForeignTable::new(self.fmt.clone(), self.mem.clone(), self.root)
    }

    fn word(&self, pa: u64) -> Result<&AtomicU64> {
        let ptr = self
            .mem
            .view(pa, 8)
            .filter(|_| pa.is_multiple_of(8))
            .ok_or(Error::Fault {
                iova: Iova(0),
                fault: crate::Fault::BadTableAddress { pa },
            })?;
        // SAFETY: `view` vouched for 8 bytes at `pa` (8-byte aligned, as `pa` is) for as
        // long as the memory lives, which `&self` borrows, and `writable()` (checked in
        // `new`) for atomic read-modify-writes and so for stores.
        Ok(unsafe { &*ptr.cast::<AtomicU64>().as_ptr() })
    }

    fn clear(&self, pa: u64, bytes: usize) -> Result<()> {
        for off in (0..bytes as u64).step_by(8) {
            self.word(pa + off)?.store(0, Ordering::Release);
        }
        Ok(())
    }

    /// Reads the 8-byte entry at `pa`.
    ///
    /// # Errors
    /// [`Error::Fault`] if `pa` is not in memory.
    pub fn read_entry(&self, pa: PhysAddr) -> Result<u64> {
        Ok(self.word(pa.0)?.load(Ordering::Acquire))
    }

    /// Stores `raw` into the entry at `pa` (to unmap, or to corrupt on purpose).
    ///
    /// # Errors
    /// [`Error::Fault`] if `pa` is not in memory.
    pub fn write_entry(&self, pa: PhysAddr, raw: u64) -> Result<()> {
        self.word(pa.0)?.store(raw, Ordering::Release);
        Ok(())
    }

    /// Where the entry of `level` on `iova`'s path lies, if that table was written.
    pub fn entry_address(&self, iova: Iova, level: u32) -> Option<PhysAddr> {
        let span_bits = self.geo.shift(level) + self.geo.index_bits(level);
        let base = if span_bits >= 64 {
            0
        } else {
            iova.0 & !((1u64 << span_bits) - 1)
        };
        let table = *self.tables.get(&(level, base))?;
        let idx = self.geo.index(iova.0, level) as u64;
        Some(PhysAddr(table + idx * 8))
    }

    /// The lowest level whose table on `iova`'s path was written (a walk of an IOVA
    /// nothing maps stops at this level's empty entry).
    pub fn deepest(&self, iova: Iova) -> u32 {
        (0..=self.geo.top())
            .find(|&l| self.entry_address(iova, l).is_some())
            .unwrap_or(self.geo.top())
    }

    /// Maps `[iova, iova + size)` to `out` with leaves of `size` (one of the format's
    /// page sizes), writing missing tables into pages `page` provides (it returns
    /// `None` when it has none left). Existing entries are overwritten.
    ///
    /// # Errors
    /// [`Error::UnsupportedSize`], [`Error::Misaligned`], [`Error::NoMemory`] when
    /// `page` ran out, [`Error::Fault`] for a page outside memory.
    pub fn map(
        &mut self,
        iova: Iova,
        out: PhysAddr,
        size: u64,
        prot: Prot,
        page: &mut dyn FnMut() -> Option<WriterPage>,
    ) -> Result<()> {
        let level = self
            .geo
            .level_of_size(size)
            .ok_or(Error::UnsupportedSize(size))?;
        for (what, value) in [("iova", iova.0), ("paddr", out.0)] {
            if value % size != 0 {
                return Err(Error::Misaligned {
                    what,
                    value,
                    align: size,
                });
            }
        }
        let mut at = self.geo.top();
        while at > level {
            let entry = self
                .entry_address(iova, at)
                .expect("the walk descends from tables it wrote");
            let below = at - 1;
            let span_bits = self.geo.shift(below) + self.geo.index_bits(below);
            let base = iova.0 & !((1u64 << span_bits) - 1);
            if !self.tables.contains_key(&(below, base)) {
                let p = page().ok_or(Error::NoMemory { mapped: 0 })?;
                self.clear(p.pa.0, self.geo.table_bytes(below))?;
                self.write_entry(entry, self.fmt.encode_table(p.pointer, at))?;
                self.tables.insert((below, base), p.pa.0);
            }
            at = below;
        }
        let entry = self.entry_address(iova, level).expect("written above");
        self.write_entry(entry, self.fmt.encode_leaf(out.0, level, prot))
    }
}
