//! What a hardware format tells the walker: geometry, entry encodings, names, registers.
//!
//! Levels are numbered from 0 at the leaf-most (smallest page) level up to
//! `levels - 1` at the top, whatever the hardware calls them; a format translates to
//! its own names only for display ([`Format::level_name`]).

use crate::geometry::Geometry;
use crate::{PhysAddr, Prot};
use std::fmt;

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

/// A raw entry, decoded as the hardware would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// Not present.
    Empty,
    /// Points to the next-level table at this physical address.
    Table(u64),
    /// Part of a leaf (a page) of `size` bytes that maps output address `pa`.
    Leaf {
        /// Output address of the page's first byte.
        pa: u64,
        /// The page's size: the level's entry span, or a multiple of it for a leaf run
        /// (all entries of a run decode to the same page).
        size: u64,
        /// What the entry grants.
        prot: Prot,
    },
    /// A hardware walker would fault here.
    Fault(Fault),
}

/// What an entry of a table *this library built* is, classified with as few tests as
/// the format needs ([`Format::own_entry`]). The walker trusts its own tables on the
/// fast path; foreign tables are always fully [`decode`](Format::decode)d.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnEntry {
    /// Not present (0 in tables this library wrote).
    Empty,
    /// A table pointer to this physical address.
    Table(u64),
    /// A leaf (decode it for its address and permissions).
    Leaf,
}

/// One atomic bit operation on an entry: set these bits, or clear them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitOp {
    /// `fetch_or`.
    Set(u64),
    /// `fetch_and` with the complement.
    Clear(u64),
}

impl BitOp {
    /// Whether `raw` shows the effect of this operation.
    #[inline(always)]
    pub const fn done_in(self, raw: u64) -> bool {
        match self {
            BitOp::Set(b) => raw & b == b,
            BitOp::Clear(b) => raw & b == 0,
        }
    }

    /// The operation that undoes this one.
    #[inline(always)]
    pub const fn inverse(self) -> BitOp {
        match self {
            BitOp::Set(b) => BitOp::Clear(b),
            BitOp::Clear(b) => BitOp::Set(b),
        }
    }

    /// `raw` with the operation applied.
    #[inline(always)]
    pub const fn apply(self, raw: u64) -> u64 {
        match self {
            BitOp::Set(b) => raw | b,
            BitOp::Clear(b) => raw & !b,
        }
    }
}

/// How a format's writable leaves carry their dirty state while dirty tracking is on
/// (docs/c-api.md "Dirty tracking"): every state change is one atomic bit operation, so a
/// hardware write between a read and a clear is never lost.
///
/// ```
/// use pgtable_core::{BitOp, DirtyBits};
/// // VT-d second stage: writable leaves have W (bit 1); the hardware sets D (bit 9).
/// let d = DirtyBits { tracked: 1 << 1, dirty: BitOp::Set(1 << 9), clean_denies_write: false };
/// assert!(d.is_dirty(0x1000 | 0x3 | 1 << 9));
/// assert!(!d.is_dirty(0x1000 | 0x3));
/// assert!(!d.is_dirty(0x1000 | 0x1 | 1 << 9)); // read-only: never dirty
/// assert_eq!(d.clean().apply(0x1000 | 0x3 | 1 << 9), 0x1003);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirtyBits {
    /// A leaf is writable under tracking when all these bits are set (VT-d: the write
    /// permission; Arm: DBM).
    pub tracked: u64,
    /// What the hardware does to a clean tracked leaf when it writes through it.
    pub dirty: BitOp,
    /// Whether a clean tracked leaf denies writes to a walker that does not update
    /// dirty state (Arm: DBM only grants the write when hardware dirty updates are on;
    /// VT-d: the write permission stands on its own and the dirty bit only records).
    pub clean_denies_write: bool,
}

impl DirtyBits {
    /// Whether `raw`, a leaf of this library's encoding, is a dirty tracked leaf.
    #[inline(always)]
    pub const fn is_dirty(&self, raw: u64) -> bool {
        raw & self.tracked == self.tracked && self.dirty.done_in(raw)
    }

    /// The operation that makes a dirty leaf clean.
    #[inline(always)]
    pub const fn clean(&self) -> BitOp {
        self.dirty.inverse()
    }
}

/// A format's access flag: the bit a hardware walker sets in an entry it used (with
/// hardware updates on), or faults on when clear (Arm, without them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessFlag {
    /// The bit.
    pub bit: u64,
    /// Whether table entries carry it too (VT-d), or leaves only (Arm).
    pub tables: bool,
    /// Whether a leaf with the bit clear faults when the walker does not set it (Arm's
    /// access-flag fault); otherwise the bit is only a record (VT-d).
    pub required: bool,
}

/// Hardware register values a driver programs for a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HwInfo {
    /// Physical address of the top table (Arm S2: the first concatenated table).
    pub root_phys: PhysAddr,
    /// Format-specific register words; see the C API's `iommu_pt_info.regs`.
    pub regs: [u64; 4],
}

/// A page-table format: constants and inline functions the generic walker is
/// monomorphised over.
///
/// A value of the type carries the run-time configuration (address sizes, granule,
/// options), so one type serves every configuration of a hardware family.
///
/// # Safety
/// The walker follows the table pointers this trait decodes, so memory safety depends
/// on it. Implementors promise, for every configuration value:
/// - `decode(encode_table(pa, level), level)` is `Entry::Table(pa)` and
///   `own_entry(encode_table(pa, level), level)` is `OwnEntry::Table(pa)` for every
///   `level > 0` and every table page address `pa` the format can encode (the walker
///   also checks this for each table page it installs, and refuses pages for which it
///   does not hold with [`Error::TableUnencodable`](crate::Error::TableUnencodable));
/// - `own_entry(raw, level)` is never `Table` for a value that `encode_table` did not
///   produce: not for 0, not for any `encode_leaf` / `encode_leaf_run` value (with or
///   without the contiguous bit), nor for such a leaf after the hardware-updated bits
///   the format documents (access, dirty, write-permission toggles of dirty tracking)
///   changed; at level 0 it is never `Table`;
/// - `decode` of an `encode_leaf` / `encode_leaf_run` value is `Entry::Leaf`, and
///   neither encoding is 0.
///
/// A safe implementation that broke these rules could make the walker read or free
/// memory that is not a table page.
pub unsafe trait Format: Clone + Send + Sync + fmt::Debug + 'static {
    /// The table's geometry for this configuration.
    fn geometry(&self) -> Geometry;

    /// A short name for dumps, e.g. `"VT-d second stage"`.
    fn name(&self) -> &'static str;

    /// The hardware's name for entries of `level` (e.g. `"PDE"`, `"L2"`).
    fn level_name(&self, level: u32) -> &'static str;

    /// Encodes a one-entry leaf mapping `pa` at `level`.
    fn encode_leaf(&self, pa: u64, level: u32, prot: Prot) -> u64;

    /// Encodes entry `i` of a leaf run: a page of `size` bytes (a size of
    /// [`Geometry::leaf_sizes`] larger than the level's span) mapping `pa`, made of
    /// `size / span` consecutive entries of `level`. Formats whose contiguous encodings
    /// change the output-address field (AMD-Vi v1 replicated PTEs, RISC-V Svnapot)
    /// implement this, and their [`decode`](Format::decode) reports the run's page for
    /// each of its entries. Only formats that declare runs in their geometry are asked;
    /// the default replicates [`Format::encode_leaf`] of the page, which suits none.
    #[inline(always)]
    fn encode_leaf_run(&self, pa: u64, level: u32, size: u64, i: usize, prot: Prot) -> u64 {
        let _ = (size, i);
        self.encode_leaf(pa, level, prot)
    }

    /// Encodes an entry at `level` pointing to a table (of `level - 1`) at `pa`.
    fn encode_table(&self, pa: u64, level: u32) -> u64;

    /// Decodes a raw entry read from a table of `level`, as the hardware would.
    fn decode(&self, raw: u64, level: u32) -> Entry;

    /// Classifies an entry of a table this library built (see the trait's safety
    /// rules). The default decodes fully; formats override it with the few bit tests
    /// that tell their own encodings apart, which is what the map/unmap/translate
    /// descent runs on.
    #[inline(always)]
    fn own_entry(&self, raw: u64, level: u32) -> OwnEntry {
        match self.decode(raw, level) {
            Entry::Table(pa) if level > 0 => OwnEntry::Table(pa),
            Entry::Empty if raw == 0 => OwnEntry::Empty,
            Entry::Leaf { .. } => OwnEntry::Leaf,
            // Not something this library writes: treat it as a leaf, which the walker
            // never follows (an unmap clears it, a map refuses to overwrite it).
            _ => OwnEntry::Leaf,
        }
    }

    /// The page a leaf of this library's encoding belongs to: its output address and
    /// size, read with as few tests as the format needs (the `iova_to_phys` fast path;
    /// the address is data, not followed, so this is no safety rule). The default
    /// decodes fully.
    #[inline(always)]
    fn own_leaf(&self, raw: u64, level: u32) -> Option<(u64, u64)> {
        match self.decode(raw, level) {
            Entry::Leaf { pa, size, .. } => Some((pa, size)),
            _ => None,
        }
    }

    /// Entries of `level` grouped under a contiguous hint when a map covers the whole
    /// aligned group (1 = no grouping). The hint is an encoding detail: each entry is
    /// still a leaf of the level's span, and unmapping part of a group is allowed.
    #[inline(always)]
    fn contig_entries(&self, _level: u32) -> usize {
        1
    }

    /// The contiguous-hint bit (0 if the format has none).
    #[inline(always)]
    fn contig_bit(&self) -> u64 {
        0
    }

    /// How writable leaves carry their dirty state under dirty tracking; `None` for a
    /// format without one (the default).
    fn dirty_bits(&self) -> Option<DirtyBits> {
        None
    }

    /// A leaf of this library's encoding, re-encoded for dirty tracking on (a writable
    /// leaf becomes tracked and clean) or off (a tracked leaf becomes writable without
    /// tracking); read-only leaves are returned unchanged. `decode` must report a
    /// tracked leaf as writable, clean or dirty, and `own_entry` must still classify it
    /// as a leaf. The default (no dirty tracking) changes nothing.
    #[inline(always)]
    fn track_dirty(&self, raw: u64, level: u32, on: bool) -> u64 {
        let _ = (level, on);
        raw
    }

    /// What a table entry of `level` takes away from every leaf below it, as the
    /// hardware ANDs permissions across levels (VT-d R/W and U/S, Arm APTable and
    /// XNTable): `READ`/`WRITE` in the result are removed from the leaf's grant,
    /// `NOEXEC`/`PRIV` are added to it (see [`Prot::limited`]). Only foreign tables are
    /// asked (this library writes tables that limit nothing); the default limits
    /// nothing.
    #[inline(always)]
    fn table_limits(&self, raw: u64, level: u32) -> Prot {
        let _ = (raw, level);
        Prot::empty()
    }

    /// The format's access flag, if it has one (the default: none).
    fn access_flag(&self) -> Option<AccessFlag> {
        None
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
