//! The second-stage (SS, formerly "second-level") format: docs/formats.md §1.
//!
//! Entries are written exactly as Linux's generic_pt `vtdss` writes them (§1.8):
//! a table pointer is `pa | R | W`, so permissions are decided at the leaf alone (they
//! AND across levels in hardware); a leaf is `pa | R? | W? | SNP? | PS?`. There is no
//! present bit: an entry with R = W = 0 is not present and its other bits are free.

use crate::bits::{above_haw, mask};
use crate::context::ContextEntry;
use crate::decoder::PS;
use crate::format::{Vtd, VtdStage, sealed};
use crate::levels::{self, PML4E, SZ_1G, SZ_2M, leaf_shift};
use crate::pasid::PasidEntry;
use pgtable_core::{BitOp, ConfigError, DirtyBits, Error, PhysAddr, Prot};

/// Read permission (bit 0).
const R: u64 = 1 << 0;
/// Write permission (bit 1).
const W: u64 = 1 << 1;
/// Snoop: force a snooped access to the page (bit 11, leaves only).
const SNP: u64 = 1 << 11;
/// The former transient-mapping bit, reserved since spec 3.2 (docs/formats.md §6 #1).
const TM: u64 = 1 << 62;
/// Dirty (bit 9), set by the hardware on a write when PASID-entry SSADE is on (§1.7);
/// A (accessed, bit 8) may be set with it.
const D: u64 = 1 << 9;
/// Accessed (bit 8, every level), set by the hardware with SSADE.
const A: u64 = 1 << 8;

/// The second stage (the [`VtdStage`] of [`VtdSs`]), with its one option: whether
/// leaves may carry SNP ([`VtdSs::with_snoop_control`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Second {
    snoop: bool,
}

/// VT-d second-stage page tables: 3, 4 or 5 levels (AW codes 1, 2, 3) of 512 entries.
///
/// Configuration mirrors the capability registers a driver reads:
/// - `ias` (31..=57) picks the levels, as Linux does: 3 up to 39 bits, 4 up to 48, 5 up
///   to 57 (the smallest AGAW that holds it). IOVAs must be below `1 << ias`; SS
///   zero-extends, so there is no upper half.
/// - `oas` (12..=52) is the host address width leaf outputs must fit. The decoder
///   treats address bits at or above it as reserved, as hardware with that HAW does.
/// - Leaves: 4 KiB always; 2 MiB and 1 GiB unless turned off with
///   [`VtdSs::with_large_pages`] (CAP.SSLPS bits 34 and 35).
/// - SNP (force snoop, [`Prot::CACHE`]) is written unless
///   [`VtdSs::with_snoop_control`] turns it off (legacy mode without ECAP.SC).
///
/// [`Prot::NOEXEC`], [`Prot::MMIO`] and [`Prot::PRIV`] have no second-stage encoding:
/// they are accepted and ignored (`Format::effective_prot` drops them).
///
/// ```
/// use pgtable_core::{ArenaMemory, Format, Iova, PageTable, PhysAddr, Prot};
/// use std::sync::Arc;
/// use vtd_format::VtdSs;
///
/// let mem = Arc::new(ArenaMemory::new(0x1000_0000, 1 << 20));
/// let pt = PageTable::new(VtdSs::new(48, 48)?, mem.clone())?;
/// pt.map_pages(Iova(0x1234_5000), PhysAddr(0x8_0000_0000), 0x1000, 1, Prot::RW)?;
/// // docs/formats.md §5.1: the PTE lands in the fourth table at index 0x145.
/// assert_eq!(mem.read_u64(0x1000_3a28), Some(0x8_0000_0003));
/// assert_eq!(pt.info().hw.regs[..2], [0x1000_0000, 2]); // SSPTPTR, AW
/// # Ok::<(), pgtable_core::Error>(())
/// ```
pub type VtdSs = Vtd<Second>;

impl Default for Second {
    /// Snoop control on.
    fn default() -> Self {
        Second { snoop: true }
    }
}

impl sealed::Sealed for Second {}

impl VtdStage for Second {
    const NAME: &'static str = "VT-d second stage";
    const REGISTER_NAMES: &'static [&'static str] = &["SSPTPTR", "AW"];
    const PRESENT: u64 = R | W;
    const TABLE_BITS: u64 = R | W;
    const DIRTY: DirtyBits = DirtyBits {
        tracked: W,
        dirty: BitOp::Set(D),
        clean_denies_write: false,
    };
    const ACCESSED: u64 = A;

    #[inline(always)]
    fn table_limits(raw: u64) -> Prot {
        let mut limits = Prot::empty();
        if raw & R == 0 {
            limits |= Prot::READ;
        }
        if raw & W == 0 {
            limits |= Prot::WRITE;
        }
        limits
    }

    /// Clean = D clear on a writable leaf; without tracking the leaf is left as the
    /// hardware left it (Linux writes no D in the second stage either).
    #[inline(always)]
    fn track_dirty(raw: u64, on: bool) -> u64 {
        if on && raw & W != 0 { raw & !D } else { raw }
    }

    fn levels_for(ias: u32) -> Result<u32, Error> {
        // Below 31 bits the AGAW would be 30 (AW 0, 2 levels), which no current
        // hardware reports and generic_pt never picks.
        levels::levels_for(ias)
            .filter(|_| ias >= 31)
            .ok_or_else(|| {
                ConfigError::InputSize {
                    bits: ias,
                    min: 31,
                    max: 57,
                }
                .into()
            })
    }

    fn va_bits(_levels: u32, ias: u32) -> u32 {
        ias
    }

    fn reserved(table: &VtdSs, level: u32, leaf: bool) -> u64 {
        table.reserved_mask(level, leaf)
    }

    #[inline(always)]
    fn encode_leaf(self, pa: u64, level: u32, prot: Prot) -> u64 {
        let mut e = pa;
        if prot.contains(Prot::READ) {
            e |= R;
        }
        if prot.contains(Prot::WRITE) {
            e |= W;
        }
        if self.snoop && prot.contains(Prot::CACHE) {
            e |= SNP;
        }
        if level > 0 {
            e |= PS;
        }
        e
    }

    /// READ/WRITE from bits 0/1 and CACHE from SNP.
    #[inline(always)]
    fn leaf_prot(raw: u64) -> Prot {
        let mut prot = Prot::empty();
        if raw & R != 0 {
            prot |= Prot::READ;
        }
        if raw & W != 0 {
            prot |= Prot::WRITE;
        }
        if raw & SNP != 0 {
            prot |= Prot::CACHE;
        }
        prot
    }

    fn effective_prot(self, prot: Prot) -> Prot {
        let cache = if self.snoop {
            Prot::CACHE
        } else {
            Prot::empty()
        };
        prot & (Prot::RW | cache)
    }

    /// `regs = [SSPTPTR, AW code, 0, 0]`.
    fn registers(table: &VtdSs, root: u64) -> [u64; 4] {
        [root, table.agaw().code() as u64, 0, 0]
    }

    fn driver_structures(table: &VtdSs, root: PhysAddr, did: u16) -> Vec<(&'static str, Vec<u64>)> {
        vec![
            (
                "context entry (legacy mode)",
                table.context_entry(root, did).words().to_vec(),
            ),
            (
                "PASID entry (scalable mode)",
                table.pasid_entry(root, did).with_pwsnp(true).val.to_vec(),
            ),
        ]
    }
}

impl VtdSs {
    /// Which superpages the hardware walks, as CAP.SSLPS reports them (bit 34: 2 MiB,
    /// bit 35: 1 GiB). A disabled size is neither mapped nor accepted by the decoder
    /// (PS=1 there is a reserved-bit fault).
    ///
    /// ```
    /// use pgtable_core::Format;
    /// use vtd_format::VtdSs;
    /// let f = VtdSs::new(48, 48)?.with_large_pages(true, false);
    /// assert_eq!(f.geometry().pgsize_bitmap, 0x1000 | 0x20_0000);
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub fn with_large_pages(self, two_m: bool, one_g: bool) -> Self {
        let hw = if two_m { SZ_2M } else { 0 } | if one_g { SZ_1G } else { 0 };
        self.with_hw_sizes(hw)
    }

    /// Whether leaves may carry SNP (bit 11): true in scalable mode or with ECAP.SC,
    /// the default. Without it SNP is a reserved bit, so [`Prot::CACHE`] is dropped
    /// when mapping and the decoder faults on a leaf with SNP set.
    ///
    /// ```
    /// use pgtable_core::{Format, Prot};
    /// use vtd_format::VtdSs;
    /// let f = VtdSs::new(48, 48)?.with_snoop_control(false);
    /// assert_eq!(f.encode_leaf(0x1000, 0, Prot::RW | Prot::CACHE), 0x1003);
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub fn with_snoop_control(self, enabled: bool) -> Self {
        self.with_stage(Second { snoop: enabled })
    }

    /// The legacy-mode context entry (TT=00, present) pointing at a table whose top
    /// table is at `ssptptr`, tagged with domain id `did` (docs/formats.md §1.2).
    ///
    /// ```
    /// use pgtable_core::PhysAddr;
    /// use vtd_format::VtdSs;
    /// let ce = VtdSs::new(48, 48)?.context_entry(PhysAddr(0x1000_0000), 1);
    /// assert_eq!((ce.lo, ce.hi), (0x1000_0001, 0x102));
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub const fn context_entry(&self, ssptptr: PhysAddr, did: u16) -> ContextEntry {
        ContextEntry::second_stage(ssptptr.0, self.agaw(), did)
    }

    /// The scalable-mode PASID entry (PGTT=010, second stage only) for a table whose top
    /// table is at `ssptptr` (docs/formats.md §1.2). Add PWSNP with
    /// [`PasidEntry::with_pwsnp`] when ECAP.SMPWC is set.
    ///
    /// ```
    /// use pgtable_core::PhysAddr;
    /// use vtd_format::VtdSs;
    /// let pe = VtdSs::new(48, 48)?.pasid_entry(PhysAddr(0x1000_0000), 1);
    /// assert_eq!(pe.val[..2], [0x1000_0089, 1]);
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub const fn pasid_entry(&self, ssptptr: PhysAddr, did: u16) -> PasidEntry {
        PasidEntry::second_stage(ssptptr.0, self.agaw(), did)
    }

    /// The bits a hardware walker requires to be zero in a present entry of core
    /// `level` (0 = PTE), as a leaf or as a table pointer: the masks of docs/formats.md §1.4
    /// with HAW = `oas` for leaves and the table HAW ([`VtdSs::with_haw`]) for table
    /// pointers. PS is not included for a leaf (it is what makes the leaf).
    ///
    /// ```
    /// use vtd_format::VtdSs;
    /// let f = VtdSs::new(48, 48)?.with_haw(48)?;
    /// assert_eq!(f.reserved_mask(3, false), 0x400f_0000_0000_0880); // PML4E
    /// assert_eq!(f.reserved_mask(1, true), 0x400f_0000_001f_f000); // 2 MiB PDE
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    #[inline(always)]
    pub const fn reserved_mask(&self, level: u32, leaf: bool) -> u64 {
        if leaf {
            let low = if level > 0 {
                mask(leaf_shift(level) - 1, 12)
            } else {
                0
            };
            let snp = if self.stage().snoop { 0 } else { SNP };
            above_haw(self.oas()) | TM | low | snp
        } else {
            let ps = if level >= PML4E { PS } else { 0 };
            above_haw(self.haw()) | TM | SNP | ps
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgtable_core::{Entry, Fault, Format};

    fn f48() -> VtdSs {
        VtdSs::new(48, 48).unwrap().with_haw(48).unwrap()
    }

    #[test]
    fn configurations() {
        for (ias, levels, aw) in [(31, 3, 1), (39, 3, 1), (40, 4, 2), (48, 4, 2), (57, 5, 3)] {
            let f = VtdSs::new(ias, 48).unwrap();
            let g = f.geometry();
            assert_eq!((g.levels, g.va_bits, g.oas), (levels, ias, 48));
            assert_eq!(f.hw_info(0x5000).regs, [0x5000, aw, 0, 0]);
            g.validate().unwrap();
        }
        for (ias, oas) in [(30, 48), (58, 48), (48, 11), (48, 53), (0, 0)] {
            assert!(VtdSs::new(ias, oas).is_err(), "{ias} {oas}");
        }
        assert!(VtdSs::new(48, 40).unwrap().with_haw(39).is_err());
        assert!(VtdSs::new(48, 40).unwrap().with_haw(53).is_err());
    }

    #[test]
    fn spec_masks_at_haw_48() {
        let f = f48();
        assert_eq!(f.reserved_mask(4, false), 0x400f_0000_0000_0880);
        assert_eq!(f.reserved_mask(3, false), 0x400f_0000_0000_0880);
        assert_eq!(f.reserved_mask(2, false), 0x400f_0000_0000_0800);
        assert_eq!(f.reserved_mask(1, false), 0x400f_0000_0000_0800);
        assert_eq!(f.reserved_mask(2, true), 0x400f_0000_3fff_f000);
        assert_eq!(f.reserved_mask(1, true), 0x400f_0000_001f_f000);
        assert_eq!(f.reserved_mask(0, true), 0x400f_0000_0000_0000);
        let nosnp = f.with_snoop_control(false);
        assert_eq!(nosnp.reserved_mask(0, true), 0x400f_0000_0000_0800);
        assert_eq!(nosnp.reserved_mask(2, true), 0x400f_0000_3fff_f800);
    }

    #[test]
    fn ps_in_a_pte_is_ignored() {
        // docs/formats.md §6 #4: hardware does not consult PS at level 1 (our level 0).
        assert_eq!(
            f48().decode(0x8_0000_0083, 0),
            Entry::Leaf {
                pa: 0x8_0000_0000,
                size: 0x1000,
                prot: Prot::RW
            }
        );
    }

    #[test]
    fn disabled_superpage_is_reserved() {
        let f = f48().with_large_pages(false, true);
        assert_eq!(
            f.decode(0x4020_0083, 1),
            Entry::Fault(Fault::Reserved {
                raw: 0x4020_0083,
                bits: PS
            })
        );
        assert!(matches!(f.decode(0x4000_0083, 2), Entry::Leaf { .. }));
    }

    #[test]
    fn write_only_is_kept() {
        // generic_pt vtdss writes W without R (docs/formats.md §6 #7); so do we.
        let f = f48();
        assert_eq!(f.encode_leaf(0x1000, 0, Prot::WRITE), 0x1002);
        assert_eq!(f.effective_prot(Prot::WRITE), Prot::WRITE);
    }
}
