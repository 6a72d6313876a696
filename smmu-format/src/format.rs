//! [`Arm`]: the `pgtable_core::Format` of both stages. One descriptor encoder and one
//! decoder, parameterised by the [`Stage`] whose leaf attributes differ.

use crate::config::ArmConfig;
use crate::descriptor::{
    self, BLOCK_NT, CONTIGUOUS, RES0_HIGH, TYPE_BLOCK, TYPE_MASK, TYPE_TABLE_OR_PAGE, VALID,
};
use crate::geometry::{Granule, Shape};
use crate::stage1::Stage1;
use crate::stage2::Stage2;
use pgtable_core::{
    AccessFlag, BitOp, ConfigError, DirtyBits, Entry, Error, Fault, Format, Geometry, HwInfo,
    OwnEntry, PhysAddr, Prot,
};
use std::fmt::Debug;

pub(crate) mod sealed {
    /// Only this crate's stages implement [`Stage`](super::Stage).
    pub trait Sealed {}
}

/// A translation stage: what differs between stage-1 and stage-2 descriptors.
///
/// Implemented by [`Stage1`] and [`Stage2`] only; it selects the leaf attribute
/// encoding, the start-level concatenation rule and the register values of [`Arm`].
pub trait Stage: sealed::Sealed + Copy + Default + Debug + Send + Sync + 'static {
    /// A name for dumps.
    const NAME: &'static str;
    /// Whether a small start-level-0 table is replaced by concatenated level-1 tables.
    const CONCATENATE: bool;

    /// The leaf bits for `prot`, besides the output address, the type bits and the
    /// contiguous hint.
    fn leaf_attributes(prot: Prot) -> u64;

    /// What a valid leaf descriptor grants, as [`Stage::leaf_attributes`] encoded it.
    fn leaf_prot(raw: u64) -> Prot;

    /// What a leaf encoded with `prot` grants (see [`Format::effective_prot`]).
    fn effective_prot(prot: Prot) -> Prot;

    /// The `regs` words of [`HwInfo`] for a table whose top is at `root`.
    fn registers(table: &Arm<Self>, root: u64) -> [u64; 4];

    /// What the hardware does to a clean DBM leaf when it writes through it (docs/c-api.md
    /// "Dirty tracking"): stage 1 clears AP\[2\], stage 2 sets S2AP\[1\].
    const DIRTY: BitOp;

    /// A leaf re-encoded for dirty tracking on (writable → DBM and clean) or off (DBM →
    /// writable without DBM); read-only leaves never carry DBM.
    fn track_dirty(raw: u64, on: bool) -> u64;
    /// What a table descriptor's hierarchical attributes take away from its subtree
    /// (see [`Format::table_limits`]): stage 1 reads APTable and UXNTable, stage 2 has
    /// none.
    fn table_limits(raw: u64) -> Prot;

    /// The names of those words, as dumps print them (unused words unnamed).
    const REGISTER_NAMES: &'static [&'static str];

    /// The structure pointing the SMMU at a table whose top is at `root`, tagged with
    /// ASID / VMID `id`, with coherent walks: its name and words.
    fn driver_structure(table: &Arm<Self>, root: PhysAddr, id: u16) -> (&'static str, Vec<u64>);
}

/// An Arm VMSAv8-64 long-descriptor table as an SMMUv3 walks it, at stage `S`.
///
/// Use the aliases [`ArmS1`] (context descriptor, TTB0) and [`ArmS2`] (stream table
/// entry, S2TTB). The value is the whole configuration; build it once and hand it to
/// `pgtable_core::PageTable::new`.
///
/// ```
/// use pgtable_core::{Format, HostMemory, Iova, PageTable, PhysAddr, Prot};
/// use smmu_format::{ArmConfig, ArmS1};
/// use std::sync::Arc;
///
/// let fmt = ArmS1::new(ArmConfig::new(4096, 48, 48))?;
/// assert_eq!(fmt.encode_leaf(0x8_0000_0000, 0, Prot::RW | Prot::CACHE), 0x8_0000_0F47);
/// let pt = PageTable::new(fmt, Arc::new(HostMemory::new()))?;
/// pt.map_pages(Iova(0x1234_5000), PhysAddr(0x8_0000_0000), 0x1000, 1, Prot::RW | Prot::CACHE)?;
/// assert_eq!(pt.iova_to_phys(Iova(0x1234_5678)), Some(PhysAddr(0x8_0000_0678)));
/// # Ok::<(), pgtable_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arm<S: Stage> {
    config: ArmConfig,
    shape: Shape,
    pgsize_bitmap: u64,
    stage: S,
    /// The address field, split as the granule packs it: bits kept in place, and
    /// (64K granule) bits 15:12 that hold PA\[51:48\]. Precomputed so the fast path's
    /// unpacking has no branch.
    addr_low: u64,
    addr_high: u64,
}

/// Stage 1: tables an SMMUv3 context descriptor points to (TTB0).
pub type ArmS1 = Arm<Stage1>;
/// Stage 2: tables an SMMUv3 stream table entry points to (S2TTB).
pub type ArmS2 = Arm<Stage2>;

impl<S: Stage> Arm<S> {
    /// The format for `config`, with the page sizes Linux allows
    /// ([`Granule::linux_page_sizes`], at the levels the input size has).
    ///
    /// # Errors
    /// [`Error::BadConfig`] when the granule or an address size is out of range (see
    /// [`ArmConfig`]).
    ///
    /// ```
    /// use smmu_format::{ArmConfig, ArmS2};
    /// let s2 = ArmS2::new(ArmConfig::new(4096, 40, 48))?;
    /// assert_eq!(s2.shape().concatenated_tables(), 2);
    /// assert!(ArmS2::new(ArmConfig::new(4096, 52, 52)).is_err());
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub fn new(config: ArmConfig) -> Result<Self, Error> {
        let granule = config.validate()?;
        let shape = Shape::new(granule, config.ias, S::CONCATENATE);
        let pgsize_bitmap = shape.existing_sizes(granule.linux_page_sizes(config.oas));
        // What `descriptor::unpack_address` does, as two masks.
        let (addr_low, addr_high) = match granule {
            Granule::K4 => (descriptor::mask(47, 12), 0),
            Granule::K16 => (descriptor::mask(47, 14), 0),
            Granule::K64 => (descriptor::mask(47, 16), descriptor::mask(15, 12)),
        };
        Ok(Arm {
            config,
            shape,
            pgsize_bitmap,
            stage: S::default(),
            addr_low,
            addr_high,
        })
    }

    /// Restricts the leaf sizes to `bitmap` (bit n: `1 << n` bytes); 0 keeps the sizes
    /// Linux allows.
    ///
    /// # Errors
    /// [`Error::BadConfig`] if `bitmap` holds a size this configuration cannot map as a
    /// leaf (contiguous-hint spans are no page size) or lacks the granule.
    ///
    /// ```
    /// use smmu_format::{ArmConfig, ArmS1};
    /// let s1 = ArmS1::new(ArmConfig::default())?.with_pgsize_bitmap(0x1000 | 0x20_0000)?;
    /// assert_eq!(s1.pgsize_bitmap(), 0x20_1000);
    /// assert!(ArmS1::new(ArmConfig::default())?.with_pgsize_bitmap(0x10000).is_err());
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub fn with_pgsize_bitmap(mut self, bitmap: u64) -> Result<Self, Error> {
        if bitmap == 0 {
            return Self::new(self.config);
        }
        let allowed = self
            .shape
            .existing_sizes(self.granule().linux_page_sizes(self.config.oas));
        if bitmap & !allowed != 0 {
            return Err(ConfigError::PageSizes {
                unsupported: bitmap & !allowed,
                allowed,
            }
            .into());
        }
        if bitmap & self.granule().bytes() == 0 {
            return Err(ConfigError::GranuleNotMapped {
                granule: self.granule().bytes(),
            }
            .into());
        }
        self.pgsize_bitmap = bitmap;
        Ok(self)
    }

    /// The configuration.
    pub fn config(&self) -> ArmConfig {
        self.config
    }

    /// The granule.
    pub fn granule(&self) -> Granule {
        self.shape.granule
    }

    /// Levels, start level, top-table size and concatenation.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The leaf sizes this table maps.
    pub fn pgsize_bitmap(&self) -> u64 {
        self.pgsize_bitmap
    }

    /// The stage marker.
    pub fn stage(&self) -> S {
        self.stage
    }

    /// The address a descriptor's field holds ([`descriptor::unpack_address`] without
    /// a branch on the granule).
    #[inline(always)]
    fn unpack(&self, raw: u64) -> u64 {
        (raw & self.addr_low) | ((raw & self.addr_high) << 36)
    }

    /// The names of the `regs` words [`Format::hw_info`] fills, as a dump prints them.
    ///
    /// ```
    /// use smmu_format::{ArmConfig, ArmS1, ArmS2};
    /// assert_eq!(ArmS1::new(ArmConfig::default())?.register_names(), ["TTB0", "CD TCR fields", "MAIR"]);
    /// assert_eq!(ArmS2::new(ArmConfig::default())?.register_names(), ["S2TTB", "STE VTCR"]);
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub fn register_names(&self) -> &'static [&'static str] {
        S::REGISTER_NAMES
    }

    /// The structures a driver programs to point the SMMU at a table whose top is at
    /// `root`, tagged with ASID (stage 1) or VMID (stage 2) `id`, with coherent table
    /// walks: the context descriptor or the stream table entry, each as its words.
    ///
    /// ```
    /// use pgtable_core::PhysAddr;
    /// use smmu_format::{ArmConfig, ArmS2};
    /// let s = ArmS2::new(ArmConfig::new(4096, 40, 48))?.driver_structures(PhysAddr(0x4000_0000), 1);
    /// assert_eq!(s[0].0, "stream table entry");
    /// assert_eq!(s[0].1[..4], [0xD, 0, 0x044D_3558_0000_0001, 0x4000_0000]);
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub fn driver_structures(&self, root: PhysAddr, id: u16) -> Vec<(&'static str, Vec<u64>)> {
        vec![S::driver_structure(self, root, id)]
    }

    /// log2 of the bytes an entry of core `level` spans.
    #[inline(always)]
    fn span_shift(&self, level: u32) -> u32 {
        let g = self.shape.granule;
        g.shift() + g.bits_per_level() * level
    }

    /// Largest table address a table descriptor may hold, as a bit count. Not `oas`:
    /// table pages live wherever the memory backend puts them (host virtual addresses
    /// with host memory), so only the descriptor field's own width limits them.
    #[inline(always)]
    fn table_address_bits(&self) -> u32 {
        self.config.oas.max(48)
    }
}

// SAFETY: a table descriptor is the packed address with type 0b11 above the last level;
// `decode` and `own_entry` unpack it back for every granule-aligned address the field
// holds (others fail the walker's install check). Leaves are pages (type 0b11 at the
// last level, where nothing is a table) or blocks (type 0b01), which `own_entry` never
// reads as tables, whatever AF/DBM/AP bits the hardware or dirty tracking toggle; every
// encoding has VALID set, so none is 0.
unsafe impl<S: Stage> Format for Arm<S> {
    fn geometry(&self) -> Geometry {
        let g = self.shape.granule;
        Geometry::new(
            self.shape.levels,
            g.shift(),
            g.bits_per_level(),
            self.shape.top_bits,
            self.config.ias,
            self.config.oas,
            self.pgsize_bitmap,
        )
    }

    fn name(&self) -> &'static str {
        S::NAME
    }

    fn level_name(&self, level: u32) -> &'static str {
        ["L3", "L2", "L1", "L0"]
            .get(level as usize)
            .copied()
            .unwrap_or("?")
    }

    #[inline(always)]
    fn encode_leaf(&self, pa: u64, level: u32, prot: Prot) -> u64 {
        let ty = if level == 0 {
            TYPE_TABLE_OR_PAGE
        } else {
            TYPE_BLOCK
        };
        descriptor::pack_address(pa, self.shape.granule) | S::leaf_attributes(prot) | ty
    }

    #[inline(always)]
    fn encode_table(&self, pa: u64, _level: u32) -> u64 {
        descriptor::pack_address(pa, self.shape.granule) | TYPE_TABLE_OR_PAGE
    }

    #[inline(always)]
    fn decode(&self, raw: u64, level: u32) -> Entry {
        if raw & VALID == 0 {
            return Entry::Empty;
        }
        let g = self.shape.granule;
        let is_block = raw & TYPE_MASK == TYPE_BLOCK;
        if level > 0 && !is_block {
            let pa = descriptor::unpack_address(raw, g);
            if pa >> self.table_address_bits() != 0 {
                return Entry::Fault(Fault::AddressSize { pa });
            }
            if raw & RES0_HIGH != 0 {
                return Entry::Fault(Fault::Reserved {
                    raw,
                    bits: raw & RES0_HIGH,
                });
            }
            return Entry::Table(pa);
        }
        // A leaf: a page at the last level, a block above it where blocks may be.
        if is_block && (level == 0 || !g.block_allowed(level, self.config.oas)) {
            return Entry::Fault(Fault::BadType { raw });
        }
        let span = 1u64 << self.span_shift(level);
        // OA bits below a block's size are RES0 (bit 16 is the nT hint).
        let low = raw & (span - 1) & !(g.bytes() - 1) & !BLOCK_NT;
        let reserved = low | (raw & RES0_HIGH);
        if reserved != 0 {
            return Entry::Fault(Fault::Reserved {
                raw,
                bits: reserved,
            });
        }
        let pa = descriptor::unpack_address(raw, g) & !(span - 1);
        if pa >> self.config.oas != 0 {
            return Entry::Fault(Fault::AddressSize { pa });
        }
        Entry::Leaf {
            pa,
            size: span,
            prot: S::leaf_prot(raw),
        }
    }

    #[inline(always)]
    fn own_entry(&self, raw: u64, level: u32) -> OwnEntry {
        if raw == 0 {
            OwnEntry::Empty
        } else if level > 0 && raw & TYPE_MASK == TYPE_TABLE_OR_PAGE {
            OwnEntry::Table(self.unpack(raw))
        } else {
            OwnEntry::Leaf
        }
    }

    #[inline(always)]
    fn own_leaf(&self, raw: u64, level: u32) -> Option<(u64, u64)> {
        let span = 1u64 << self.span_shift(level);
        Some((self.unpack(raw) & !(span - 1), span))
    }

    #[inline(always)]
    fn contig_entries(&self, level: u32) -> usize {
        if self.config.contiguous_hint {
            self.shape.granule.contig_entries(level)
        } else {
            1
        }
    }

    #[inline(always)]
    fn contig_bit(&self) -> u64 {
        if self.config.contiguous_hint {
            CONTIGUOUS
        } else {
            0
        }
    }

    fn effective_prot(&self, prot: Prot) -> Prot {
        S::effective_prot(prot)
    }

    /// Both stages track dirt with DBM (bit 51): stage 1 records it in AP\[2\] (clean =
    /// read-only), stage 2 in S2AP\[1\] (clean = no write permission).
    fn dirty_bits(&self) -> Option<DirtyBits> {
        Some(DirtyBits {
            tracked: descriptor::DBM,
            dirty: S::DIRTY,
            // Without HD, DBM is ignored and AP[2] / S2AP[1] alone decide the write.
            clean_denies_write: true,
        })
    }

    /// Stage 1 APTable\[1\] (bit 62) takes writes away, APTable\[0\] (bit 61)
    /// unprivileged access, UXNTable (bit 60) execution, unless HAD is set (§3.6).
    #[inline(always)]
    fn table_limits(&self, raw: u64, _level: u32) -> Prot {
        if self.config.hierarchical_disabled {
            Prot::empty()
        } else {
            S::table_limits(raw)
        }
    }

    /// AF (bit 10), in leaves only: clear, it faults unless HA sets it or AFFD
    /// disables the fault (§3.5).
    fn access_flag(&self) -> Option<AccessFlag> {
        Some(AccessFlag {
            bit: descriptor::AF,
            tables: false,
            required: true,
        })
    }

    #[inline(always)]
    fn track_dirty(&self, raw: u64, _level: u32, on: bool) -> u64 {
        S::track_dirty(raw, on)
    }

    fn hw_info(&self, root_phys: u64) -> HwInfo {
        HwInfo {
            root_phys: PhysAddr(root_phys),
            regs: S::registers(self, root_phys),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_unpacking_is_unpack_address() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for g in [4096, 16384, 65536] {
            let f = ArmS1::new(ArmConfig::new(g, 48, if g == 65536 { 52 } else { 48 })).unwrap();
            for _ in 0..10_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                assert_eq!(
                    f.unpack(x),
                    descriptor::unpack_address(x, f.granule()),
                    "{x:#x}"
                );
            }
        }
    }
}
