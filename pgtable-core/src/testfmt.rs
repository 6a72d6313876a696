//! A small format for testing and benchmarking the core without the hardware crates.
//!
//! x86-64-like: 512 eight-byte entries per 4 KiB table, 4 levels (48-bit input) by
//! default, 4K / 2M / 1G leaves. Entry bits: 0 present, 1 read, 2 write, 3 cache,
//! 4 noexec, 5 mmio, 6 priv, 7 leaf above level 0, 8 dirty, 9 accessed, 12..52 address,
//! 52 contiguous hint. A table entry's bits 1..=6 are limits on everything below it, in
//! the same layout (read and write taken away, noexec and priv added); this library
//! writes tables with none.

use crate::{
    AccessFlag, BitOp, DirtyBits, Entry, Fault, Format, Geometry, HwInfo, OwnEntry, PhysAddr, Prot,
};

const P: u64 = 1;
const PS: u64 = 1 << 7;
const PROT_SHIFT: u32 = 1;
const ADDR: u64 = ((1u64 << 52) - 1) & !0xfff;
const CONT: u64 = 1 << 52;
const W: u64 = 1 << 2;
/// Dirty (VT-d second-stage style: the hardware sets it on a write).
const D: u64 = 1 << 8;
/// Accessed (set by a walker with hardware updates on, at every level; never required).
const A: u64 = 1 << 9;

/// The test format's configuration.
///
/// ```
/// use pgtable_core::testfmt::TestFormat;
/// use pgtable_core::Format;
/// let f = TestFormat::new();
/// assert_eq!(f.geometry().levels, 4);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestFormat {
    levels: u32,
    oas: u32,
    contig: usize,
    tiny: bool,
}

impl Default for TestFormat {
    fn default() -> Self {
        Self::new()
    }
}

impl TestFormat {
    /// 4 levels, 48-bit input and output, no contiguous hint.
    pub const fn new() -> Self {
        TestFormat {
            levels: 4,
            oas: 48,
            contig: 1,
            tiny: false,
        }
    }

    /// `levels` (2..=5) levels of 9 bits and an `oas`-bit output.
    pub const fn with(levels: u32, oas: u32) -> Self {
        TestFormat {
            levels,
            oas,
            contig: 1,
            tiny: false,
        }
    }

    /// Two levels of 4-entry, 32-byte tables mapping 32-byte pages (9-bit input): not a
    /// hardware shape, but small enough for loom to explore every interleaving of a
    /// whole-table unmap. Output addresses must be 4 KiB aligned.
    pub const fn tiny() -> Self {
        TestFormat {
            levels: 2,
            oas: 48,
            contig: 1,
            tiny: true,
        }
    }

    /// Groups `n` (a power of two, up to 512) entries of levels 0 and 1 under the
    /// contiguous hint bit 52.
    pub const fn with_contig(mut self, n: usize) -> Self {
        self.contig = n;
        self
    }
}

// SAFETY: a table entry is `pa | P` without PS (decode and own_entry give `pa` back for
// any 4K-aligned pa below 2^52, refused otherwise by the install check); a leaf always has
// PS above level 0, and at level 0 nothing is a table, so no leaf classifies as a table.
unsafe impl Format for TestFormat {
    fn geometry(&self) -> Geometry {
        if self.tiny {
            return Geometry::new(2, 5, 2, 2, 9, self.oas, 1 << 5);
        }
        let bitmap = (1u64 << 12) | (1 << 21) | if self.levels > 2 { 1 << 30 } else { 0 };
        Geometry::new(
            self.levels,
            12,
            9,
            9,
            12 + 9 * self.levels,
            self.oas,
            bitmap,
        )
    }

    fn name(&self) -> &'static str {
        "test format"
    }

    fn level_name(&self, level: u32) -> &'static str {
        ["PTE", "PDE", "PDPE", "PML4E", "PML5E", "PML6E"]
            .get(level as usize)
            .copied()
            .unwrap_or("?")
    }

    #[inline(always)]
    fn encode_leaf(&self, pa: u64, level: u32, prot: Prot) -> u64 {
        pa | P | ((prot.bits() as u64) << PROT_SHIFT) | if level > 0 { PS } else { 0 }
    }

    #[inline(always)]
    fn encode_table(&self, pa: u64, _level: u32) -> u64 {
        pa | P
    }

    #[inline(always)]
    fn decode(&self, raw: u64, level: u32) -> Entry {
        if raw & P == 0 {
            return Entry::Empty;
        }
        let pa = raw & ADDR;
        if level == 0 || raw & PS != 0 {
            let shift = if self.tiny {
                5 + 2 * level
            } else {
                12 + 9 * level
            };
            let span_mask = (1u64 << shift) - 1;
            if pa & span_mask != 0 || level > 2 {
                return Entry::Fault(Fault::Reserved {
                    raw,
                    bits: pa & span_mask,
                });
            }
            let prot = Prot::from_bits_truncate(((raw >> PROT_SHIFT) & 0x3f) as u32);
            return Entry::Leaf {
                pa,
                size: span_mask + 1,
                prot,
            };
        }
        Entry::Table(pa)
    }

    #[inline(always)]
    fn own_entry(&self, raw: u64, level: u32) -> OwnEntry {
        if raw == 0 {
            OwnEntry::Empty
        } else if level == 0 || raw & PS != 0 {
            OwnEntry::Leaf
        } else {
            OwnEntry::Table(raw & ADDR)
        }
    }

    #[inline(always)]
    fn contig_entries(&self, level: u32) -> usize {
        if level <= 1 { self.contig } else { 1 }
    }

    #[inline(always)]
    fn contig_bit(&self) -> u64 {
        if self.contig > 1 { CONT } else { 0 }
    }

    fn dirty_bits(&self) -> Option<DirtyBits> {
        Some(DirtyBits {
            tracked: W,
            dirty: BitOp::Set(D),
            clean_denies_write: false,
        })
    }

    #[inline(always)]
    fn table_limits(&self, raw: u64, _level: u32) -> Prot {
        Prot::from_bits_truncate(((raw >> PROT_SHIFT) & 0x3f) as u32)
    }

    fn access_flag(&self) -> Option<AccessFlag> {
        Some(AccessFlag {
            bit: A,
            tables: true,
            required: false,
        })
    }

    #[inline(always)]
    fn track_dirty(&self, raw: u64, _level: u32, on: bool) -> u64 {
        // Writable leaves are clean with D = 0; without tracking D is simply left alone.
        if on && raw & W != 0 { raw & !D } else { raw }
    }

    fn hw_info(&self, root_phys: u64) -> HwInfo {
        HwInfo {
            root_phys: PhysAddr(root_phys),
            regs: [root_phys, self.levels as u64, 0, 0],
        }
    }
}
