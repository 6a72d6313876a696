//! The SMMUv3 context descriptor of a stage-1 table (FORMATS.md §3.9), as Linux's
//! `arm_smmu_make_s1_cd` fills it.

use crate::descriptor::mask;
use crate::format::ArmS1;
use crate::geometry::address_size_encoding;
use crate::stage1::MAIR;
use pgtable_core::PhysAddr;

/// Dword 0 bits 5:0, T0SZ: `64 - ias`.
pub const CD0_T0SZ_SHIFT: u32 = 0;
/// Dword 0 bits 7:6, TG0 (0 = 4K, 1 = 64K, 2 = 16K).
pub const CD0_TG0_SHIFT: u32 = 6;
/// Dword 0 bits 9:8, IRGN0: inner cacheability of table walks (1 = WBWA, 0 = NC).
pub const CD0_IRGN0_SHIFT: u32 = 8;
/// Dword 0 bits 11:10, ORGN0: outer cacheability of table walks.
pub const CD0_ORGN0_SHIFT: u32 = 10;
/// Dword 0 bits 13:12, SH0: shareability of table walks (3 = inner, 2 = outer).
pub const CD0_SH0_SHIFT: u32 = 12;
/// Dword 0 bit 30, EPD1: no TTB1 walks.
pub const CD0_EPD1: u64 = 1 << 30;
/// Dword 0 bit 31, V: valid.
pub const CD0_V: u64 = 1 << 31;
/// Dword 0 bits 34:32, IPS: output size (see [`address_size_encoding`]).
pub const CD0_IPS_SHIFT: u32 = 32;
/// Dword 0 bit 41, AA64: VMSAv8-64 tables.
pub const CD0_AA64: u64 = 1 << 41;
/// Dword 0 bit 45, R: record faults.
pub const CD0_R: u64 = 1 << 45;
/// Dword 0 bit 46, A: abort (rather than RAZ/WI) on faults.
pub const CD0_A: u64 = 1 << 46;
/// Dword 0 bit 47, ASET: the ASID is not shared with a CPU.
pub const CD0_ASET: u64 = 1 << 47;
/// Dword 0 bits 63:48, ASID.
pub const CD0_ASID_SHIFT: u32 = 48;
/// Dword 1 bits 51:4, TTB0: a plain physical address (no 52-bit packing).
pub const CD1_TTB0_MASK: u64 = mask(51, 4);

/// The cacheability and shareability fields (IRGN, ORGN, SH) for table walks, at
/// bits 13:8 of both CD dword 0 and the STE VTCR: write-back write-allocate, inner
/// shareable when walks are coherent; non-cacheable, outer shareable otherwise.
pub(crate) const fn walk_attributes(coherent: bool) -> u64 {
    if coherent {
        (1 << 8) | (1 << 10) | (3 << 12)
    } else {
        2 << 12
    }
}

impl ArmS1 {
    /// The translation-control fields of CD dword 0 for this table: T0SZ, TG0,
    /// IRGN0, ORGN0, SH0 and IPS at their dword-0 positions, nothing else (the C API's
    /// `regs[1]`).
    ///
    /// ```
    /// use smmu_format::{ArmConfig, ArmS1};
    /// let s1 = ArmS1::new(ArmConfig::new(4096, 48, 48))?;
    /// assert_eq!(s1.tcr(true), 0x5_0000_3510);
    /// assert_eq!(s1.tcr(false), 0x5_0000_2010);
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub fn tcr(&self, coherent: bool) -> u64 {
        let cfg = self.config();
        let ips = address_size_encoding(cfg.oas).expect("validated output size");
        (((64 - cfg.ias) as u64) << CD0_T0SZ_SHIFT)
            | (self.granule().tg() << CD0_TG0_SHIFT)
            | walk_attributes(coherent)
            | (ips << CD0_IPS_SHIFT)
    }

    /// The 64-byte context descriptor Linux writes for this table at `ttb0` with
    /// `asid`: dword 0 the [`tcr`](ArmS1::tcr) fields with EPD1, V, AA64, R, A, ASET
    /// and the ASID; dword 1 TTB0 (bits 51:4 of `ttb0`); dword 3 the [`MAIR`]; the
    /// other dwords 0. `coherent` selects the walk attributes (see
    /// [`ArmS1::tcr`]). `ttb0` must be aligned to the top table's size.
    ///
    /// ```
    /// use pgtable_core::PhysAddr;
    /// use smmu_format::{ArmConfig, ArmS1};
    /// let s1 = ArmS1::new(ArmConfig::new(4096, 48, 48))?;
    /// let cd = s1.context_descriptor(PhysAddr(0x3000_0000), 1, true);
    /// assert_eq!(cd, [0x0001_E205_C000_3510, 0x3000_0000, 0, 0xF404_FF44, 0, 0, 0, 0]);
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub fn context_descriptor(&self, ttb0: PhysAddr, asid: u16, coherent: bool) -> [u64; 8] {
        let ttb0 = ttb0.0;
        let dword0 = self.tcr(coherent)
            | CD0_EPD1
            | CD0_V
            | CD0_AA64
            | CD0_R
            | CD0_A
            | CD0_ASET
            | ((asid as u64) << CD0_ASID_SHIFT);
        [dword0, ttb0 & CD1_TTB0_MASK, 0, MAIR, 0, 0, 0, 0]
    }
}

#[cfg(test)]
mod tests {
    use crate::{ArmConfig, ArmS1};
    use pgtable_core::PhysAddr;

    #[test]
    fn tcr_fields_per_granule() {
        let tcr = |g, ias, oas| ArmS1::new(ArmConfig::new(g, ias, oas)).unwrap().tcr(true);
        // §5.4: 16K, ias 47: T0SZ 17, TG0 2.
        assert_eq!(tcr(16384, 47, 48) & 0xFF, 17 | (2 << 6));
        // §5.5: 64K, 52-bit PA: TG0 1, IPS 6.
        assert_eq!(tcr(65536, 48, 52), 16 | (1 << 6) | 0x3500 | (6 << 32));
        assert_eq!(tcr(65536, 52, 52) & 0x3F, 12);
        assert_eq!(tcr(4096, 32, 42) >> 32, 3);
    }

    #[test]
    fn non_coherent_descriptor() {
        let s1 = ArmS1::new(ArmConfig::new(4096, 48, 48)).unwrap();
        let cd = s1.context_descriptor(PhysAddr(0x3000_0000), 0xABCD, false);
        assert_eq!(cd[0], 0xABCD_E205_C000_2010);
        assert_eq!(cd[1], 0x3000_0000);
    }
}
