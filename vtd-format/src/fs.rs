//! The first-stage (FS, formerly "first-level") format: x86-64 4- and 5-level paging
//! as VT-d walks it, FORMATS.md §2.
//!
//! Entries are written exactly as Linux's generic_pt `x86_64` writes them (§2.3): a
//! table pointer is `pa | P | R/W | U/S | A` (0x27), so the leaf decides; a leaf is
//! `pa | P | U/S | A` (0x25) plus `R/W | D` (0x42) when writable and PS (0x80) above
//! the PTE. A and D are preset so the IOMMU never has to write the tables.

use crate::bits::{MAX_HAW, above_haw, mask};
use crate::context::{Agaw, PasidEntry};
use crate::decoder::{self, Decoder, PS};
use crate::levels::{self, PML4E, PageSizes, SZ_1G, SZ_2M, SZ_4K, leaf_shift};
use pgtable_core::{ConfigError, Entry, Error, Format, Geometry, HwInfo, OwnEntry, PhysAddr, Prot};

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

/// VT-d first-stage page tables: x86-64 paging with 4 levels (`ias` 48) or 5 levels
/// (`ias` 57, needs CAP.FS5LP).
///
/// x86-64 addresses are sign-extended from bit `ias - 1`; this table serves only the
/// **lower canonical half**, as Linux's intel driver does, so its usable input size is
/// `ias - 1` bits ([`Geometry::va_bits`]). An IOVA at or above `1 << (ias - 1)` (upper
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VtdFs {
    levels: u32,
    oas: u32,
    haw: u32,
    sizes: PageSizes,
    decoder: Decoder,
}

impl VtdFs {
    /// Recomputes the decode masks after the configuration changed.
    fn refreshed(mut self) -> Self {
        let d = Decoder::new(
            P,
            |level, leaf| self.reserved_mask(level, leaf),
            self.oas,
            self.haw,
            |level| self.sizes.hw_leaf(level),
        );
        self.decoder = d;
        self
    }

    /// A table for `ias` = 48 (4-level) or 57 (5-level) paging and `oas`-bit output
    /// addresses, with 2 MiB and 1 GiB leaves.
    ///
    /// # Errors
    /// [`Error::BadConfig`] if `ias` is neither 48 nor 57, or `oas` is outside 12..=52.
    pub fn new(ias: u32, oas: u32) -> Result<Self, Error> {
        let levels = match ias {
            48 => 4,
            57 => 5,
            _ => {
                return Err(ConfigError::InputSizeNotOneOf {
                    bits: ias,
                    allowed: &[48, 57],
                }
                .into());
            }
        };
        levels::check_oas(oas)?;
        Ok(VtdFs {
            levels,
            oas,
            haw: MAX_HAW,
            sizes: PageSizes::new(SZ_4K | SZ_2M | SZ_1G),
            decoder: Decoder::UNSET,
        }
        .refreshed())
    }

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
    pub fn with_1g_pages(mut self, enabled: bool) -> Self {
        let hw = SZ_2M | if enabled { SZ_1G } else { 0 };
        self.sizes = self.sizes.with_hw(hw);
        self.refreshed()
    }

    /// Restricts the page sizes `map` uses to `bitmap`; 0 means every size the
    /// configuration allows.
    ///
    /// # Errors
    /// [`Error::BadConfig`] if `bitmap` lacks 4 KiB or holds a size this configuration
    /// cannot map.
    pub fn with_pgsize_bitmap(mut self, bitmap: u64) -> Result<Self, Error> {
        self.sizes = self.sizes.with_requested(bitmap)?;
        Ok(self)
    }

    /// The host address width the decoder enforces on next-table pointers (`oas..=52`,
    /// default 52); see [`crate::VtdSs::with_haw`] for why it is separate from `oas`.
    ///
    /// # Errors
    /// [`Error::BadConfig`] if `haw` is below `oas` or above 52.
    pub fn with_haw(mut self, haw: u32) -> Result<Self, Error> {
        levels::check_haw(haw, self.oas)?;
        self.haw = haw;
        Ok(self.refreshed())
    }

    /// Whether this is 5-level paging (PASID-entry FSPM = 1).
    pub const fn five_level(&self) -> bool {
        self.levels == 5
    }

    /// The scalable-mode PASID entry (PGTT=001, first stage only) for a table whose top
    /// table is at `fsptptr`, tagged with domain id `did` (FORMATS.md §2.1, §5.2). AW
    /// is filled as Linux fills it, with the AGAW matching the paging depth.
    ///
    /// ```
    /// use pgtable_core::{PhysAddr};
    /// use vtd_format::VtdFs;
    /// let pe = VtdFs::new(48, 48)?.pasid_entry(PhysAddr(0x2000_0000), 1);
    /// assert_eq!(pe.val[..3], [0x49, 1, 0x2000_0000]);
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub const fn pasid_entry(&self, fsptptr: PhysAddr, did: u16) -> PasidEntry {
        let aw = if self.five_level() {
            Agaw::Bits57
        } else {
            Agaw::Bits48
        };
        PasidEntry::first_stage(fsptptr.0, self.five_level(), aw, did)
    }

    /// The bits that must be zero in a present entry of core `level` (0 = PTE), as a
    /// leaf or as a table pointer: QEMU's `VTD_FPTE_*` masks of FORMATS.md §2.2 with
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
            above_haw(self.oas) | low
        } else {
            let ps = if level >= PML4E { PS } else { 0 };
            above_haw(self.haw) | ps
        }
    }
}

// SAFETY: table pointers are `pa | permission bits` with PS clear, which `decode` (the
// shared decoder: PS clear above level 0 is a table, address bits 51:12 below the HAW)
// and `own_entry` (bits 51:12) both give back as `pa` for every 4 KiB-aligned `pa` below
// the table HAW (other addresses fail the walker's install check). Leaves are PTEs or
// carry PS, which `own_entry` never reads as a table, whatever A/D bits the hardware
// sets; neither encoding is 0 (a leaf has R or W, or P; a table pointer R|W or P).
unsafe impl Format for VtdFs {
    fn geometry(&self) -> Geometry {
        let ias = 12 + 9 * self.levels;
        levels::geometry(self.levels, ias - 1, self.oas, self.sizes.used())
    }

    fn name(&self) -> &'static str {
        "VT-d first stage"
    }

    fn level_name(&self, level: u32) -> &'static str {
        levels::level_name(level)
    }

    #[inline(always)]
    fn encode_leaf(&self, pa: u64, level: u32, prot: Prot) -> u64 {
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

    #[inline(always)]
    fn own_entry(&self, raw: u64, level: u32) -> OwnEntry {
        decoder::own_entry(raw, level)
    }

    #[inline(always)]
    fn own_leaf(&self, raw: u64, level: u32) -> Option<(u64, u64)> {
        decoder::own_leaf(raw, level)
    }

    #[inline(always)]
    fn encode_table(&self, pa: u64, _level: u32) -> u64 {
        // Permissive at every table level: R/W and U/S AND across levels.
        pa | P | RW | US | A
    }

    /// Decodes an entry as the hardware walker does (FORMATS.md §2.2):
    /// - P = 0: [`Entry::Empty`] (every other bit is ignored);
    /// - a PTE, or PS=1 in a PDE, or in a PDPTE when 1 GiB pages are enabled:
    ///   [`Entry::Leaf`], always READ, WRITE if R/W, PRIV if U/S is clear;
    /// - otherwise [`Entry::Table`], the address of the next table.
    ///
    /// It faults with [`Fault::Reserved`] (the raw entry and the offending bits) on a
    /// set bit of [`VtdFs::reserved_mask`] — address bits at or above the HAW, a
    /// superpage's low address bits, PS in a PML4E/PML5E — and on PS=1 in a PDPTE
    /// without 1 GiB support. Bits 63:52 (XD included) are ignored, as QEMU does.
    /// The permission bits of table pointers are not reported.
    #[inline(always)]
    fn decode(&self, raw: u64, level: u32) -> Entry {
        self.decoder.decode(raw, level, |raw| {
            let mut prot = Prot::READ;
            if raw & RW != 0 {
                prot |= Prot::WRITE;
            }
            if raw & US == 0 {
                prot |= Prot::PRIV;
            }
            prot
        })
    }

    fn effective_prot(&self, prot: Prot) -> Prot {
        Prot::READ | (prot & (Prot::WRITE | Prot::PRIV))
    }

    /// `regs = [FSPTPTR, levels (4 or 5), 0, 0]`.
    fn hw_info(&self, root_phys: u64) -> HwInfo {
        HwInfo {
            root_phys: PhysAddr(root_phys),
            regs: [root_phys, self.levels as u64, 0, 0],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
