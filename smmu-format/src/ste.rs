//! The SMMUv3 stream table entry of a stage-2 table (FORMATS.md §3.8, §3.9), as Linux's
//! `arm_smmu_make_s2_domain_ste` fills it.

use crate::cd::walk_attributes;
use crate::descriptor::mask;
use crate::format::ArmS2;
use crate::geometry::{Granule, address_size_encoding};
use pgtable_core::PhysAddr;

/// Dword 0 bit 0, V: valid.
pub const STE0_V: u64 = 1 << 0;
/// Dword 0 bits 3:1, Config.
pub const STE0_CONFIG_SHIFT: u32 = 1;
/// Config value for stage-2 translation only.
pub const STE0_CONFIG_S2_TRANS: u64 = 6;
/// Dword 2 bits 15:0, S2VMID.
pub const STE2_VMID_SHIFT: u32 = 0;
/// Dword 2 bits 50:32: the 19-bit VTCR field.
pub const STE2_VTCR_SHIFT: u32 = 32;
/// Dword 2 bit 51, S2AA64: VMSAv8-64 tables.
pub const STE2_S2AA64: u64 = 1 << 51;
/// Dword 2 bit 54, S2PTW: stage-1 table walks to device memory fault.
pub const STE2_S2PTW: u64 = 1 << 54;
/// Dword 2 bit 58, S2R: record faults.
pub const STE2_S2R: u64 = 1 << 58;
/// Dword 3 bits 51:4, S2TTB: a plain physical address (no 52-bit packing).
pub const STE3_S2TTB_MASK: u64 = mask(51, 4);

/// VTCR bits 5:0, S2T0SZ: `64 - ias`.
pub const VTCR_T0SZ_SHIFT: u32 = 0;
/// VTCR bits 7:6, S2SL0: the start level (see [`ArmS2::s2sl0`]).
pub const VTCR_SL0_SHIFT: u32 = 6;
/// VTCR bits 15:14, S2TG (0 = 4K, 1 = 64K, 2 = 16K).
pub const VTCR_TG_SHIFT: u32 = 14;
/// VTCR bits 18:16, S2PS: output size.
pub const VTCR_PS_SHIFT: u32 = 16;

impl ArmS2 {
    /// The S2SL0 encoding of the start level: with 4K, 0/1/2 = L2/L1/L0; with 16K and
    /// 64K, 0/1/2 = L3/L2/L1. Never 3: concatenation keeps the start level encodable.
    ///
    /// ```
    /// use smmu_format::{ArmConfig, ArmS2};
    /// assert_eq!(ArmS2::new(ArmConfig::new(4096, 40, 48))?.s2sl0(), 1);
    /// assert_eq!(ArmS2::new(ArmConfig::new(16384, 48, 48))?.s2sl0(), 2);
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub fn s2sl0(&self) -> u64 {
        let start = self.shape().start_level() as u64;
        match self.granule() {
            Granule::K4 => 2 - start,
            Granule::K16 | Granule::K64 => 3 - start,
        }
    }

    /// The 19-bit VTCR field of STE dword 2 (the C API's `regs[1]`): S2T0SZ, S2SL0,
    /// S2IR0, S2OR0, S2SH0, S2TG and S2PS.
    ///
    /// ```
    /// use smmu_format::{ArmConfig, ArmS2};
    /// let s2 = ArmS2::new(ArmConfig::new(4096, 40, 48))?;
    /// assert_eq!(s2.vtcr(true), 0x53558);
    /// assert_eq!(s2.vtcr(false), 0x52058);
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub fn vtcr(&self, coherent: bool) -> u64 {
        let cfg = self.config();
        let ps = address_size_encoding(cfg.oas).expect("validated output size");
        (((64 - cfg.ias) as u64) << VTCR_T0SZ_SHIFT)
            | (self.s2sl0() << VTCR_SL0_SHIFT)
            | walk_attributes(coherent)
            | (self.granule().tg() << VTCR_TG_SHIFT)
            | (ps << VTCR_PS_SHIFT)
    }

    /// The 64-byte stream table entry Linux writes for this table at `s2ttb` with
    /// `vmid`: dword 0 V and Config = stage-2 only; dword 2 the VMID, the
    /// [`vtcr`](ArmS2::vtcr), S2AA64, S2PTW and S2R; dword 3 S2TTB (bits 51:4 of
    /// `s2ttb`); the other dwords 0 (no ATS, no SHCFG override). `s2ttb` must be
    /// aligned to the (concatenated) top table's size.
    ///
    /// ```
    /// use pgtable_core::PhysAddr;
    /// use smmu_format::{ArmConfig, ArmS2};
    /// let s2 = ArmS2::new(ArmConfig::new(4096, 40, 48))?;
    /// let ste = s2.stream_table_entry(PhysAddr(0x4000_0000), 1, true);
    /// assert_eq!(ste, [0xD, 0, 0x044D_3558_0000_0001, 0x4000_0000, 0, 0, 0, 0]);
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub fn stream_table_entry(&self, s2ttb: PhysAddr, vmid: u16, coherent: bool) -> [u64; 8] {
        let s2ttb = s2ttb.0;
        let dword0 = STE0_V | (STE0_CONFIG_S2_TRANS << STE0_CONFIG_SHIFT);
        let dword2 = ((vmid as u64) << STE2_VMID_SHIFT)
            | (self.vtcr(coherent) << STE2_VTCR_SHIFT)
            | STE2_S2AA64
            | STE2_S2PTW
            | STE2_S2R;
        [dword0, 0, dword2, s2ttb & STE3_S2TTB_MASK, 0, 0, 0, 0]
    }
}

#[cfg(test)]
mod tests {
    use crate::{ArmConfig, ArmS2};

    #[test]
    fn vtcr_per_granule() {
        let s2 = |g, ias, oas| ArmS2::new(ArmConfig::new(g, ias, oas)).unwrap();
        // 16K ias 48: L1 x 2, SL0 2, TG 2.
        assert_eq!(
            s2(16384, 48, 48).vtcr(true),
            16 | (2 << 6) | 0x3500 | (2 << 14) | (5 << 16)
        );
        // 64K ias 42: L2, SL0 1, TG 1, PS 52-bit.
        assert_eq!(
            s2(65536, 42, 52).vtcr(true),
            22 | (1 << 6) | 0x3500 | (1 << 14) | (6 << 16)
        );
        // 4K ias 48: L0, SL0 2.
        assert_eq!(s2(4096, 48, 48).s2sl0(), 2);
        assert_eq!(s2(4096, 32, 32).s2sl0(), 1);
        assert_eq!(s2(16384, 32, 32).s2sl0(), 1);
        assert!(s2(65536, 52, 52).vtcr(true) < 1 << 19);
    }
}
