//! [`Vtd`]: the `pgtable_core::Format` of both VT-d stages. One geometry, one
//! configuration path and one decoder, parameterised by the [`VtdStage`] whose entry
//! bits, reserved masks and registers differ.

use crate::agaw::Agaw;
use crate::bits::MAX_HAW;
use crate::decoder::{self, Decoder};
use crate::levels::{self, PageSizes, SZ_1G, SZ_2M, SZ_4K};
use pgtable_core::{
    AccessFlag, DirtyBits, Entry, Error, Format, Geometry, HwInfo, OwnEntry, PhysAddr, Prot,
};
use std::fmt::Debug;

pub(crate) mod sealed {
    /// Only this crate's stages implement [`VtdStage`](super::VtdStage).
    pub trait Sealed {}
}

/// A VT-d translation stage: what differs between second-stage and first-stage
/// entries.
///
/// Implemented by [`Second`](crate::Second) and [`First`](crate::First) only. A stage
/// value may carry stage-only options (the second stage's snoop control).
pub trait VtdStage:
    sealed::Sealed + Copy + Default + Debug + PartialEq + Eq + Send + Sync + 'static
{
    /// A name for dumps.
    const NAME: &'static str;
    /// The names of [`HwInfo::regs`], as dumps print them (unused words unnamed).
    const REGISTER_NAMES: &'static [&'static str];
    /// An entry is present when any of these bits is set (SS: R|W, FS: P).
    const PRESENT: u64;
    /// The bits of every table pointer besides its address.
    const TABLE_BITS: u64;

    /// The levels for an `ias`-bit configuration.
    ///
    /// # Errors
    /// [`Error::BadConfig`] when the stage has no paging mode of that size.
    fn levels_for(ias: u32) -> Result<u32, Error>;

    /// The usable input bits of a `levels`-level table configured for `ias`.
    fn va_bits(levels: u32, ias: u32) -> u32;

    /// Reserved bits of a present entry of core `level` (see the stages'
    /// `reserved_mask`).
    fn reserved(table: &Vtd<Self>, level: u32, leaf: bool) -> u64;

    /// Encodes a leaf mapping `pa` at core `level`.
    fn encode_leaf(self, pa: u64, level: u32, prot: Prot) -> u64;

    /// What a present leaf grants.
    fn leaf_prot(raw: u64) -> Prot;

    /// What a leaf encoded with `prot` grants (see [`Format::effective_prot`]).
    fn effective_prot(self, prot: Prot) -> Prot;

    /// The `regs` words of [`HwInfo`] for a table whose top is at `root`.
    fn registers(table: &Vtd<Self>, root: u64) -> [u64; 4];

    /// How a writable leaf carries its dirty state (docs/c-api.md "Dirty tracking"): the
    /// stage's write permission, and the D bit the hardware sets.
    const DIRTY: DirtyBits;

    /// The accessed flag the hardware sets in every entry it walks with A/D updates on
    /// (second stage: SSADE; first stage: always).
    const ACCESSED: u64;

    /// What a non-leaf entry takes away from its subtree (see
    /// [`Format::table_limits`]).
    fn table_limits(raw: u64) -> Prot;

    /// A leaf re-encoded for dirty tracking on (a writable leaf becomes clean, D = 0) or
    /// off (the stage's encoding without tracking).
    fn track_dirty(raw: u64, on: bool) -> u64;

    /// The structures pointing the IOMMU at a table whose top is at `root`, for
    /// domain `did`, with coherent walks: their names and words.
    fn driver_structures(
        table: &Vtd<Self>,
        root: PhysAddr,
        did: u16,
    ) -> Vec<(&'static str, Vec<u64>)>;
}

/// Intel VT-d page tables of stage `S`: a tree of 4 KiB tables of 512 entries, 3 to 5
/// levels, 4 KiB / 2 MiB / 1 GiB leaves.
///
/// Use the aliases [`VtdSs`](crate::VtdSs) (second stage) and
/// [`VtdFs`](crate::VtdFs) (first stage, x86-64 paging), which document their
/// configurations. The value is the whole configuration; build it once and hand it to
/// `pgtable_core::PageTable::new`.
///
/// ```
/// use pgtable_core::{Format, Prot};
/// use vtd_format::{VtdFs, VtdSs};
/// assert_eq!(VtdSs::new(48, 48)?.encode_leaf(0x8_0000_0000, 0, Prot::RW), 0x8_0000_0003);
/// assert_eq!(VtdFs::new(48, 48)?.encode_leaf(0x8_0000_0000, 0, Prot::RW), 0x8_0000_0067);
/// # Ok::<(), pgtable_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vtd<S: VtdStage> {
    ias: u32,
    levels: u32,
    oas: u32,
    haw: u32,
    sizes: PageSizes,
    stage: S,
    decoder: Decoder,
}

impl<S: VtdStage> Vtd<S> {
    /// A table for `ias`-bit IOVAs and `oas`-bit output addresses, with 4 KiB, 2 MiB and
    /// 1 GiB leaves (see the aliases for the accepted sizes).
    ///
    /// # Errors
    /// [`Error::BadConfig`] when `ias` selects no paging mode of the stage, or `oas`
    /// is outside 12..=52.
    ///
    /// ```
    /// use pgtable_core::Format;
    /// use vtd_format::{VtdFs, VtdSs};
    /// assert_eq!(VtdSs::new(39, 46)?.geometry().levels, 3);
    /// assert_eq!(VtdFs::new(57, 46)?.geometry().levels, 5);
    /// assert!(VtdFs::new(39, 46).is_err());
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub fn new(ias: u32, oas: u32) -> Result<Self, Error> {
        let levels = S::levels_for(ias)?;
        levels::check_oas(oas)?;
        Ok(Vtd {
            ias,
            levels,
            oas,
            haw: MAX_HAW,
            sizes: PageSizes::new(SZ_4K | SZ_2M | SZ_1G),
            stage: S::default(),
            decoder: Decoder::UNSET,
        }
        .refreshed())
    }

    /// Recomputes the decode masks after the configuration changed.
    fn refreshed(mut self) -> Self {
        self.decoder = Decoder::new(
            S::PRESENT,
            |level, leaf| S::reserved(&self, level, leaf),
            self.oas,
            self.haw,
            |level| self.sizes.hw_leaf(level),
        );
        self
    }

    /// The same table with stage options `stage`.
    pub(crate) fn with_stage(mut self, stage: S) -> Self {
        self.stage = stage;
        self.refreshed()
    }

    /// The same table whose hardware walks the superpages in `hw` (a subset of
    /// 2 MiB | 1 GiB; 4 KiB is always walked).
    pub(crate) fn with_hw_sizes(mut self, hw: u64) -> Self {
        self.sizes = self.sizes.with_hw(hw & (SZ_2M | SZ_1G));
        self.refreshed()
    }

    /// Restricts the page sizes `map` uses to `bitmap` (bit n: `1 << n` bytes); 0 means
    /// every size the configuration allows.
    ///
    /// # Errors
    /// [`Error::BadConfig`] if `bitmap` lacks 4 KiB or holds a size this configuration
    /// cannot map.
    ///
    /// ```
    /// use vtd_format::VtdSs;
    /// assert!(VtdSs::new(48, 48)?.with_pgsize_bitmap(0x1000 | 0x4000_0000).is_ok());
    /// assert!(VtdSs::new(48, 48)?.with_pgsize_bitmap(0x20_0000).is_err());
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub fn with_pgsize_bitmap(mut self, bitmap: u64) -> Result<Self, Error> {
        self.sizes = self.sizes.with_requested(bitmap)?;
        Ok(self)
    }

    /// The host address width the decoder enforces on next-table pointers (`oas..=52`).
    ///
    /// Defaults to 52, because table pages are wherever the memory backend puts them
    /// ([`pgtable_core::HostMemory`] uses host virtual addresses, which may lie above
    /// a small `oas`). Set it to the IOMMU's HAW to decode foreign tables exactly as
    /// that hardware would: then table pointers with bits at or above `haw` fault too.
    ///
    /// # Errors
    /// [`Error::BadConfig`] if `haw` is below `oas` or above 52.
    ///
    /// ```
    /// use vtd_format::VtdSs;
    /// assert!(VtdSs::new(48, 40)?.with_haw(46).is_ok());
    /// assert!(VtdSs::new(48, 40)?.with_haw(39).is_err());
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub fn with_haw(mut self, haw: u32) -> Result<Self, Error> {
        levels::check_haw(haw, self.oas)?;
        self.haw = haw;
        Ok(self.refreshed())
    }

    /// The AGAW matching this table's depth: the AW code a context or PASID entry
    /// carries for it (3 levels: 39-bit, 4: 48-bit, 5: 57-bit).
    ///
    /// ```
    /// use vtd_format::{Agaw, VtdFs, VtdSs};
    /// assert_eq!(VtdSs::new(40, 48)?.agaw(), Agaw::Bits48);
    /// assert_eq!(VtdFs::new(57, 48)?.agaw(), Agaw::Bits57);
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub const fn agaw(&self) -> Agaw {
        match self.levels {
            3 => Agaw::Bits39,
            4 => Agaw::Bits48,
            _ => Agaw::Bits57,
        }
    }

    /// The names of the `regs` words [`Format::hw_info`] fills, as a dump prints them.
    ///
    /// ```
    /// use vtd_format::{VtdFs, VtdSs};
    /// assert_eq!(VtdSs::new(48, 48)?.register_names(), ["SSPTPTR", "AW"]);
    /// assert_eq!(VtdFs::new(48, 48)?.register_names(), ["FSPTPTR", "levels"]);
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub const fn register_names(&self) -> &'static [&'static str] {
        S::REGISTER_NAMES
    }

    /// The structures a driver programs to point the IOMMU at a table whose top is at
    /// `root`, for domain id `did`, with coherent table walks, each as its words: for
    /// the second stage the legacy-mode context entry and the scalable-mode PASID entry
    /// (with PWSNP), for the first stage the PASID entry.
    ///
    /// ```
    /// use pgtable_core::PhysAddr;
    /// use vtd_format::{VtdFs, VtdSs};
    /// let s = VtdSs::new(48, 48)?.driver_structures(PhysAddr(0x1000_0000), 1);
    /// assert_eq!(s[0], ("context entry (legacy mode)", vec![0x1000_0001, 0x102]));
    /// assert_eq!(s[1].1[..2], [0x1000_0089, 0x80_0001]);
    /// let s = VtdFs::new(48, 48)?.driver_structures(PhysAddr(0x2000_0000), 1);
    /// assert_eq!(s[0].0, "PASID entry (scalable mode)");
    /// assert_eq!(s[0].1[..3], [0x49, 0x80_0001, 0x2000_0000]);
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub fn driver_structures(&self, root: PhysAddr, did: u16) -> Vec<(&'static str, Vec<u64>)> {
        S::driver_structures(self, root, did)
    }

    /// The IOVAs a VT-d table must leave unmapped: the interrupt window
    /// ([`crate::INTERRUPT_RANGE`]), where DMA writes are interrupt requests.
    ///
    /// ```
    /// use vtd_format::VtdSs;
    /// assert_eq!(VtdSs::new(48, 48)?.reserved_iova(), (0xFEE0_0000, 0xFEEF_FFFF));
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub const fn reserved_iova(&self) -> (u64, u64) {
        (
            *crate::INTERRUPT_RANGE.start(),
            *crate::INTERRUPT_RANGE.end(),
        )
    }

    /// The stage and its options.
    pub(crate) const fn stage(&self) -> S {
        self.stage
    }

    /// Output address bits.
    pub(crate) const fn oas(&self) -> u32 {
        self.oas
    }

    /// Host address width of table pointers.
    pub(crate) const fn haw(&self) -> u32 {
        self.haw
    }

    /// Levels walked.
    pub(crate) const fn levels(&self) -> u32 {
        self.levels
    }
}

// SAFETY: table pointers are `pa | S::TABLE_BITS` with PS clear, which `decode` (the
// shared decoder: PS clear above level 0 is a table, address bits 51:12 below the HAW)
// and `own_entry` (bits 51:12) both give back as `pa` for every 4 KiB-aligned `pa` below
// the table HAW (other addresses fail the walker's install check). Leaves are PTEs or
// carry PS, which `own_entry` never reads as a table, whatever A/D bits the hardware
// sets; neither encoding is 0 (a leaf has R or W, or P; a table pointer R|W or P).
unsafe impl<S: VtdStage> Format for Vtd<S> {
    fn geometry(&self) -> Geometry {
        levels::geometry(
            self.levels,
            S::va_bits(self.levels, self.ias),
            self.oas,
            self.sizes.used(),
        )
    }

    fn name(&self) -> &'static str {
        S::NAME
    }

    fn level_name(&self, level: u32) -> &'static str {
        levels::level_name(level)
    }

    #[inline(always)]
    fn encode_leaf(&self, pa: u64, level: u32, prot: Prot) -> u64 {
        self.stage.encode_leaf(pa, level, prot)
    }

    #[inline(always)]
    fn own_entry(&self, raw: u64, level: u32) -> OwnEntry {
        decoder::own_entry(raw, level)
    }

    #[inline(always)]
    fn own_leaf(&self, raw: u64, level: u32) -> Option<(u64, u64)> {
        decoder::own_leaf(raw, level)
    }

    fn dirty_bits(&self) -> Option<DirtyBits> {
        Some(S::DIRTY)
    }

    /// R/W (and, first stage, U/S) are ANDed across levels (§1.4, §2.2).
    #[inline(always)]
    fn table_limits(&self, raw: u64, _level: u32) -> Prot {
        S::table_limits(raw)
    }

    /// A (second stage bit 8, first stage bit 5) on every level; a record only, never
    /// a fault.
    fn access_flag(&self) -> Option<AccessFlag> {
        Some(AccessFlag {
            bit: S::ACCESSED,
            tables: true,
            required: false,
        })
    }

    #[inline(always)]
    fn track_dirty(&self, raw: u64, _level: u32, on: bool) -> u64 {
        S::track_dirty(raw, on)
    }

    #[inline(always)]
    fn encode_table(&self, pa: u64, _level: u32) -> u64 {
        // Permissive at every table level: permissions AND across levels, so the leaf
        // decides.
        pa | S::TABLE_BITS
    }

    /// Decodes an entry as the hardware walker does (docs/formats.md §1.4, §2.2): not
    /// present ([`Entry::Empty`], every other bit ignored), a leaf (a PTE, or PS=1 at
    /// a PDE/PDPTE whose size the hardware walks), or a table pointer. It faults with
    /// [`pgtable_core::Fault::Reserved`] (the raw entry and the offending bits) on a
    /// set bit of the stage's `reserved_mask`, and on PS=1 where the superpage size is
    /// disabled. The permission bits of table pointers are not reported.
    #[inline(always)]
    fn decode(&self, raw: u64, level: u32) -> Entry {
        self.decoder.decode(raw, level, S::leaf_prot)
    }

    fn effective_prot(&self, prot: Prot) -> Prot {
        self.stage.effective_prot(prot)
    }

    fn hw_info(&self, root_phys: u64) -> HwInfo {
        HwInfo {
            root_phys: PhysAddr(root_phys),
            regs: S::registers(self, root_phys),
        }
    }
}
