//! What a hardware format tells the walker: geometry, entry encodings, names, registers.
//!
//! Levels are numbered from 0 at the leaf-most (smallest page) level up to
//! `levels - 1` at the top, whatever the hardware calls them; a format translates to
//! its own names only for display ([`Format::level_name`]).

use crate::Prot;
use std::fmt;

/// The shape of a table: how many levels, how many IOVA bits each resolves, and which
/// page sizes it may hold. Computed once by [`Format::geometry`] and cached by the table.
///
/// Every level but the top resolves `bits_per_level` bits in a table of
/// `1 << granule_shift` bytes; the top table resolves `top_bits` bits, which may be
/// fewer (a small Arm start-level table) or more (concatenated Arm stage-2 tables).
///
/// ```
/// use pgtable_core::Geometry;
/// // x86-64 style: 4 levels of 512 entries, 4K/2M/1G pages.
/// let g = Geometry::new(4, 12, 9, 9, 48, 48, (1 << 12) | (1 << 21) | (1 << 30));
/// assert_eq!(g.shift(1), 21);
/// assert_eq!(g.index(0x1234_5000, 1), 0x91);
/// assert_eq!(g.ias(), 48);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Number of levels; the top is `levels - 1`.
    pub levels: u32,
    /// log2 of the smallest page (the granule) and of a non-top table's size in bytes.
    pub granule_shift: u32,
    /// IOVA bits resolved by a non-top level (`granule_shift - 3`).
    pub bits_per_level: u32,
    /// IOVA bits resolved by the top level.
    pub top_bits: u32,
    /// Usable input bits: IOVAs must be below `1 << va_bits` (may be less than
    /// [`Geometry::ias`], e.g. the lower canonical half of x86-64 paging).
    pub va_bits: u32,
    /// Output address bits.
    pub oas: u32,
    /// Page sizes the table maps (bit n set: a `1 << n` byte leaf is allowed).
    pub pgsize_bitmap: u64,
}

impl Geometry {
    /// A geometry from its parts (see the field docs).
    pub const fn new(
        levels: u32,
        granule_shift: u32,
        bits_per_level: u32,
        top_bits: u32,
        va_bits: u32,
        oas: u32,
        pgsize_bitmap: u64,
    ) -> Self {
        Geometry {
            levels,
            granule_shift,
            bits_per_level,
            top_bits,
            va_bits,
            oas,
            pgsize_bitmap,
        }
    }

    /// The top level's number.
    #[inline(always)]
    pub const fn top(&self) -> u32 {
        self.levels - 1
    }

    /// The IOVA shift of `level`: an entry there spans `1 << shift(level)` bytes.
    #[inline(always)]
    pub const fn shift(&self, level: u32) -> u32 {
        self.granule_shift + self.bits_per_level * level
    }

    /// Bytes one entry of `level` spans.
    #[inline(always)]
    pub const fn entry_span(&self, level: u32) -> u64 {
        1u64 << self.shift(level)
    }

    /// Index bits resolved at `level`.
    #[inline(always)]
    pub const fn index_bits(&self, level: u32) -> u32 {
        if level == self.levels - 1 {
            self.top_bits
        } else {
            self.bits_per_level
        }
    }

    /// Entries in a table of `level`.
    #[inline(always)]
    pub const fn entries(&self, level: u32) -> usize {
        1usize << self.index_bits(level)
    }

    /// Bytes of a table of `level`.
    #[inline(always)]
    pub const fn table_bytes(&self, level: u32) -> usize {
        self.entries(level) * 8
    }

    /// The entry index of `iova` in its table of `level`.
    #[inline(always)]
    pub const fn index(&self, iova: u64, level: u32) -> usize {
        ((iova >> self.shift(level)) & ((1u64 << self.index_bits(level)) - 1)) as usize
    }

    /// Input address bits the tables resolve.
    pub const fn ias(&self) -> u32 {
        self.shift(self.levels - 1) + self.top_bits
    }

    /// The granule in bytes.
    pub const fn granule(&self) -> u64 {
        1u64 << self.granule_shift
    }

    /// Whether a leaf may sit at `level`.
    #[inline(always)]
    pub const fn leaf_allowed(&self, level: u32) -> bool {
        self.shift(level) < 64 && self.pgsize_bitmap & (1u64 << self.shift(level)) != 0
    }

    /// The level whose entries map pages of `pgsize` bytes, if it is an allowed leaf size.
    #[inline]
    pub fn level_of_size(&self, pgsize: u64) -> Option<u32> {
        if !pgsize.is_power_of_two() || self.pgsize_bitmap & pgsize == 0 {
            return None;
        }
        // A short scan beats a division on the map/unmap fast path.
        let s = pgsize.trailing_zeros();
        (0..self.levels).find(|&l| self.shift(l) == s)
    }

    /// Table pages an allocation of `bytes` counts as (a concatenated root counts as
    /// its pages, a small top table as one).
    pub const fn pages_of(&self, bytes: usize) -> u64 {
        let p = (bytes >> self.granule_shift) as u64;
        if p == 0 { 1 } else { p }
    }

    /// Checks the geometry is self-consistent, for formats' constructors.
    ///
    /// # Errors
    /// A description of the first inconsistency.
    pub fn validate(&self) -> Result<(), String> {
        if self.levels == 0 || self.levels > 6 {
            return Err(format!("{} levels", self.levels));
        }
        // Hardware granules are 4K..64K; smaller ones exist only for model checking
        // (tiny tables keep loom's state space small).
        if !(5..=16).contains(&self.granule_shift) || self.bits_per_level != self.granule_shift - 3
        {
            return Err("granule must be a power of two up to 64K, with 8-byte entries".into());
        }
        if self.top_bits == 0 || self.top_bits > self.bits_per_level + 4 {
            return Err(format!("top level resolves {} bits", self.top_bits));
        }
        if self.ias() > 64 || self.va_bits > self.ias() || self.va_bits == 0 {
            return Err("input address size".into());
        }
        if self.oas > 64 || self.oas < self.granule_shift {
            return Err("output address size".into());
        }
        if self.pgsize_bitmap & self.granule() == 0 {
            return Err("the granule must be an allowed page size".into());
        }
        let mut m = self.pgsize_bitmap;
        while m != 0 {
            let s = m & m.wrapping_neg();
            if self.level_of_size(s).is_none() {
                return Err(format!("page size {s:#x} is no level's span"));
            }
            m &= m - 1;
        }
        Ok(())
    }
}

/// Why a hardware walker would fault on an entry (foreign or corrupted tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A present entry has reserved bits set.
    Reserved {
        /// The raw entry.
        raw: u64,
        /// The reserved bits that are set.
        bits: u64,
    },
    /// The entry's type is not valid at this level (e.g. an Arm block where blocks are not
    /// allowed, or the reserved level-3 encoding).
    BadType {
        /// The raw entry.
        raw: u64,
    },
    /// The output or next-table address is beyond the output address size.
    AddressSize {
        /// The address.
        pa: u64,
    },
    /// The IOVA is outside the input address space (or non-canonical).
    InputRange,
    /// A next-table address does not refer to readable table memory.
    BadTableAddress {
        /// The address.
        pa: u64,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Fault::Reserved { raw, bits } => {
                write!(
                    f,
                    "reserved bit set (entry {raw:#018x}, reserved bits {bits:#x})"
                )
            }
            Fault::BadType { raw } => {
                write!(f, "invalid descriptor type at this level ({raw:#018x})")
            }
            Fault::AddressSize { pa } => write!(f, "address size fault ({pa:#x})"),
            Fault::InputRange => write!(f, "input address out of range"),
            Fault::BadTableAddress { pa } => write!(f, "table address {pa:#x} is not in memory"),
        }
    }
}

/// A raw entry, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// Not present.
    Empty,
    /// Points to the next-level table at this physical address.
    Table(u64),
    /// Maps `1 << shift(level)` bytes at this output address with these permissions.
    Leaf {
        /// Output address of the leaf's first byte.
        pa: u64,
        /// What the entry grants.
        prot: Prot,
    },
    /// A hardware walker would fault here.
    Fault(Fault),
}

/// Hardware register values a driver programs for a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HwInfo {
    /// Physical address of the top table (Arm S2: the first concatenated table).
    pub root_phys: u64,
    /// Format-specific register words; see the C API's `iommu_pt_info.regs`.
    pub regs: [u64; 4],
}

/// A page-table format: constants and inline functions the generic walker is
/// monomorphised over.
///
/// A value of the type carries the run-time configuration (address sizes, granule,
/// options), so one type serves every configuration of a hardware family.
///
/// # Contract
/// For every level and every `pa` aligned to the level's span and below `1 << oas`:
/// `decode(encode_leaf(pa, level, prot), level)` is `Leaf { pa, .. }` (when a leaf is
/// allowed at `level`), `decode(encode_table(pa, level), level)` is `Table(pa)`
/// (for `level > 0`), `decode(0, level)` is `Empty`, and neither encoding is 0.
pub trait Format: Clone + Send + Sync + fmt::Debug + 'static {
    /// The table's geometry for this configuration.
    fn geometry(&self) -> Geometry;

    /// A short name for dumps, e.g. `"VT-d second stage"`.
    fn name(&self) -> &'static str;

    /// The hardware's name for entries of `level` (e.g. `"PDE"`, `"L2"`).
    fn level_name(&self, level: u32) -> &'static str;

    /// Encodes a leaf mapping `pa` at `level`.
    fn encode_leaf(&self, pa: u64, level: u32, prot: Prot) -> u64;

    /// Encodes an entry at `level` pointing to a table (of `level - 1`) at `pa`.
    fn encode_table(&self, pa: u64, level: u32) -> u64;

    /// Decodes a raw entry read from a table of `level`, as the hardware would.
    fn decode(&self, raw: u64, level: u32) -> Entry;

    /// Entries of `level` grouped under a contiguous hint when a map covers the whole
    /// aligned group (1 = no grouping).
    #[inline(always)]
    fn contig_entries(&self, _level: u32) -> usize {
        1
    }

    /// The contiguous-hint bit (0 if the format has none).
    #[inline(always)]
    fn contig_bit(&self) -> u64 {
        0
    }

    /// What the format actually grants for a requested `prot` (e.g. write-only becomes
    /// read-write where write-only cannot be expressed). Used by callers and tests to
    /// predict what `translate` reports.
    fn effective_prot(&self, prot: Prot) -> Prot {
        prot
    }

    /// Register values for a table whose top table is at `root_phys`.
    fn hw_info(&self, root_phys: u64) -> HwInfo;
}
