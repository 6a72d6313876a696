//! The first-stage (FS, formerly "first-level") format: x86-64 4- and 5-level paging
//! as VT-d walks it, docs/formats.md §2.
//!
//! Entries are written exactly as Linux's generic_pt `x86_64` writes them (§2.3): a
//! table pointer is `pa | P | R/W | U/S | A` (0x27), so the leaf decides; a leaf is
//! `pa | P | U/S | A` (0x25) plus `R/W | D` (0x42) when writable and PS (0x80) above
//! the PTE. A and D are preset so the IOMMU never has to write the tables.

use crate::bits::{above_haw, mask};
use crate::decoder::PS;
use crate::format::{Vtd, VtdStage, sealed};
use crate::levels::{PML4E, SZ_1G, SZ_2M, leaf_shift};
use crate::pasid::PasidEntry;
use pgtable_core::{BitOp, ConfigError, DirtyBits, Error, PhysAddr, Prot};

/// Present (bit 0).
const P: u64 = 1 << 0;
/// Writable (bit 1).
const RW: u64 = 1 << 1;
/// User-accessible (bit 2). DMA without a privileged PASID counts as user mode and
/// needs U/S=1 at every level.
const US: u64 = 1 << 2;
/// Accessed (bit 5).
const A: u64 = 1 << 5;
/// Dirty (bit 6, leaves only).
const D: u64 = 1 << 6;

/// The first stage (the [`VtdStage`] of [`VtdFs`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct First;

/// VT-d first-stage page tables: x86-64 paging with 4 levels (`ias` 48) or 5 levels
/// (`ias` 57, needs CAP.FS5LP).
///
/// x86-64 addresses are sign-extended from bit `ias - 1`; this table serves only the
/// **lower canonical half**, as Linux's intel driver does, so its usable input size is
/// `ias - 1` bits (`Geometry::va_bits`). An IOVA at or above `1 << (ias - 1)` (upper
/// half, or non-canonical) is refused by `map`, `translate` and `walk` with
/// [`Error::IovaRange`].
///
/// Leaves: 4 KiB and 2 MiB always, 1 GiB unless turned off with
/// [`VtdFs::with_1g_pages`] (CAP.FS1GP). Write-only maps as read-write, and
/// [`Prot::PRIV`] clears U/S on the leaf (supervisor-only page). [`Prot::CACHE`],
/// [`Prot::NOEXEC`] and [`Prot::MMIO`] have no encoding here and are dropped (XD is
/// deprecated together with PASID-entry NXE).
///
/// ```
/// use pgtable_core::{ArenaMemory, Error, Iova, PageTable, PhysAddr, Prot};
/// use std::sync::Arc;
/// use vtd_format::VtdFs;
///
/// let mem = Arc::new(ArenaMemory::new(0x2000_0000, 1 << 20));
/// let pt = PageTable::new(VtdFs::new(48, 48)?, mem.clone())?;
/// pt.map_pages(Iova(0x1234_5000), PhysAddr(0x8_0000_0000), 0x1000, 1, Prot::RW)?;
/// assert_eq!(mem.read_u64(0x2000_3a28), Some(0x8_0000_0067)); // P RW US A D
/// let upper = 0xffff_8000_0000_0000;
/// assert!(matches!(pt.translate(Iova(upper)), Err(Error::IovaRange { .. })));
/// # Ok::<(), pgtable_core::Error>(())
/// ```
pub type VtdFs = Vtd<First>;

impl sealed::Sealed for First {}

impl VtdStage for First {
    const NAME: &'static str = "VT-d first stage";
    const REGISTER_NAMES: &'static [&'static str] = &["FSPTPTR", "levels"];
    const PRESENT: u64 = P;
    const TABLE_BITS: u64 = P | RW | US | A;
    const DIRTY: DirtyBits = DirtyBits {
        tracked: RW,
        dirty: BitOp::Set(D),
        clean_denies_write: false,
    };
    const ACCESSED: u64 = A;

    #[inline(always)]
    fn table_limits(raw: u64) -> Prot {
        let mut limits = Prot::empty();
        if raw & RW == 0 {
            limits |= Prot::WRITE;
        }
        if raw & US == 0 {
            limits |= Prot::PRIV;
        }
        limits
    }

    /// Clean = D clear on a writable leaf; without tracking writable leaves carry D
    /// preset, as Linux writes them, so the IOMMU never has to set it.
    #[inline(always)]
    fn track_dirty(raw: u64, on: bool) -> u64 {
        match (on, raw & RW != 0) {
            (true, true) => raw & !D,
            (false, true) => raw | D,
            _ => raw,
        }
    }

    fn levels_for(ias: u32) -> Result<u32, Error> {
        match ias {
            48 => Ok(4),
            57 => Ok(5),
            _ => Err(ConfigError::InputSizeNotOneOf {
                bits: ias,
                allowed: &[48, 57],
            }
            .into()),
        }
    }

    /// The lower canonical half only.
    fn va_bits(levels: u32, _ias: u32) -> u32 {
        leaf_shift(levels) - 1
    }

    fn reserved(table: &VtdFs, level: u32, leaf: bool) -> u64 {
        table.reserved_mask(level, leaf)
    }

    #[inline(always)]
    fn encode_leaf(self, pa: u64, level: u32, prot: Prot) -> u64 {
        let mut e = pa | P | A;
        if !prot.contains(Prot::PRIV) {
            e |= US;
        }
        if prot.contains(Prot::WRITE) {
            e |= RW | D;
        }
        if level > 0 {
            e |= PS;
        }
        e
    }

    /// Always READ, WRITE if R/W, PRIV if U/S is clear. Bits 63:52 (XD included) are
    /// ignored, as QEMU does.
    #[inline(always)]
    fn leaf_prot(raw: u64) -> Prot {
        let mut prot = Prot::READ;
        if raw & RW != 0 {
            prot |= Prot::WRITE;
        }
        if raw & US == 0 {
            prot |= Prot::PRIV;
        }
        prot
    }

    fn effective_prot(self, prot: Prot) -> Prot {
        Prot::READ | (prot & (Prot::WRITE | Prot::PRIV))
    }

    /// `regs = [FSPTPTR, levels (4 or 5), 0, 0]`.
    fn registers(table: &VtdFs, root: u64) -> [u64; 4] {
        [root, table.levels() as u64, 0, 0]
    }

    fn driver_structures(table: &VtdFs, root: PhysAddr, did: u16) -> Vec<(&'static str, Vec<u64>)> {
        vec![(
            "PASID entry (scalable mode)",
            table.pasid_entry(root, did).with_pwsnp(true).val.to_vec(),
        )]
    }
}

impl VtdFs {
    /// Whether the hardware walks 1 GiB leaves (CAP.FS1GP, bit 56). When off, 1 GiB is
    /// neither mapped nor accepted by the decoder (PS=1 in a PDPTE is reserved).
    ///
    /// ```
    /// use pgtable_core::Format;
    /// use vtd_format::VtdFs;
    /// let f = VtdFs::new(48, 48)?.with_1g_pages(false);
    /// assert_eq!(f.geometry().pgsize_bitmap, 0x1000 | 0x20_0000);
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub fn with_1g_pages(self, enabled: bool) -> Self {
        self.with_hw_sizes(SZ_2M | if enabled { SZ_1G } else { 0 })
    }

    /// Whether this is 5-level paging (PASID-entry FSPM = 1).
    ///
    /// ```
    /// use vtd_format::VtdFs;
    /// assert!(VtdFs::new(57, 48)?.five_level());
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub const fn five_level(&self) -> bool {
        self.levels() == 5
    }

    /// The scalable-mode PASID entry (PGTT=001, first stage only) for a table whose top
    /// table is at `fsptptr`, tagged with domain id `did` (docs/formats.md §2.1, §5.2). AW
    /// is filled as Linux fills it, with the AGAW matching the paging depth.
    ///
    /// ```
    /// use pgtable_core::PhysAddr;
    /// use vtd_format::VtdFs;
    /// let pe = VtdFs::new(48, 48)?.pasid_entry(PhysAddr(0x2000_0000), 1);
    /// assert_eq!(pe.val[..3], [0x49, 1, 0x2000_0000]);
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub const fn pasid_entry(&self, fsptptr: PhysAddr, did: u16) -> PasidEntry {
        PasidEntry::first_stage(fsptptr.0, self.five_level(), self.agaw(), did)
    }

    /// The bits that must be zero in a present entry of core `level` (0 = PTE), as a
    /// leaf or as a table pointer: QEMU's `VTD_FPTE_*` masks of docs/formats.md §2.2 with
    /// HAW = `oas` for leaves and the table HAW ([`VtdFs::with_haw`]) for table
    /// pointers. Bit 12 of a superpage is PAT, not address, so it is not reserved.
    ///
    /// ```
    /// use vtd_format::VtdFs;
    /// let f = VtdFs::new(48, 48)?.with_haw(48)?;
    /// assert_eq!(f.reserved_mask(3, false), 0x000f_0000_0000_0080); // PML4E
    /// assert_eq!(f.reserved_mask(2, true), 0x000f_0000_3fff_e000); // 1 GiB PDPTE
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    #[inline(always)]
    pub const fn reserved_mask(&self, level: u32, leaf: bool) -> u64 {
        if leaf {
            let low = if level > 0 {
                mask(leaf_shift(level) - 1, 13)
            } else {
                0
            };
            above_haw(self.oas()) | low
        } else {
            let ps = if level >= PML4E { PS } else { 0 };
            above_haw(self.haw()) | ps
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgtable_core::{Entry, Format};

    #[test]
    fn configurations() {
        let f = VtdFs::new(48, 46).unwrap();
        let g = f.geometry();
        assert_eq!((g.levels, g.va_bits, g.ias(), g.oas), (4, 47, 48, 46));
        assert_eq!(f.hw_info(0x7000).regs, [0x7000, 4, 0, 0]);
        let g = VtdFs::new(57, 52).unwrap().geometry();
        assert_eq!((g.levels, g.va_bits, g.ias()), (5, 56, 57));
        g.validate().unwrap();
        for (ias, oas) in [(39, 48), (47, 48), (56, 48), (48, 53), (48, 8)] {
            assert!(VtdFs::new(ias, oas).is_err(), "{ias} {oas}");
        }
    }

    #[test]
    fn spec_masks_at_haw_48() {
        let f = VtdFs::new(48, 48).unwrap().with_haw(48).unwrap();
        let h = 0x000f_0000_0000_0000;
        assert_eq!(f.reserved_mask(4, false), h | 0x80);
        assert_eq!(f.reserved_mask(2, false), h);
        assert_eq!(f.reserved_mask(1, false), h);
        assert_eq!(f.reserved_mask(1, true), h | 0x1f_e000);
        assert_eq!(f.reserved_mask(0, true), h);
    }

    #[test]
    fn pat_bit_of_a_superpage_is_not_address() {
        let f = VtdFs::new(48, 48).unwrap();
        assert_eq!(
            f.decode(0x1_2340_10e7, 1),
            Entry::Leaf {
                pa: 0x1_2340_0000,
                size: 0x20_0000,
                prot: Prot::RW
            }
        );
    }

    #[test]
    fn xd_and_software_bits_are_ignored() {
        let f = VtdFs::new(48, 48).unwrap();
        assert_eq!(
            f.decode(0xfff0_0008_0000_0025, 0),
            Entry::Leaf {
                pa: 0x8_0000_0000,
                size: 0x1000,
                prot: Prot::READ
            }
        );
    }
}
