//! Stage-2 leaf attributes, as current io-pgtable-arm writes them (docs/formats.md §3.7,
//! §3.11).

use crate::descriptor::{AF, DBM, SH_INNER, SH_MASK, SH_OUTER, XN_BOTH, XN1};
use crate::format::{Arm, Stage, sealed};
use pgtable_core::{BitOp, PhysAddr, Prot};

/// Bit 6, S2AP\[0\]: reads allowed.
pub const S2AP_READ: u64 = 1 << 6;
/// Bit 7, S2AP\[1\]: writes allowed.
pub const S2AP_WRITE: u64 = 1 << 7;
/// Bits 5:2, MemAttr (without FWB): \[3:2\] outer, \[1:0\] inner or device type.
pub const MEMATTR_SHIFT: u32 = 2;
/// MemAttr field mask.
pub const MEMATTR_MASK: u64 = 0xF << MEMATTR_SHIFT;
/// MemAttr for `Prot::CACHE`: Normal, outer and inner write-back.
pub const MEMATTR_OIWB: u64 = 0xF;
/// MemAttr without `CACHE` or `MMIO`: Normal, outer and inner non-cacheable.
pub const MEMATTR_NC: u64 = 0x5;
/// MemAttr for `Prot::MMIO`: Device-nGnRE.
pub const MEMATTR_DEVICE: u64 = 0x1;

/// Stage 2 (the [`Stage`] of [`ArmS2`](crate::ArmS2)).
///
/// Leaves are `AF`, S2AP read/write as requested (write-only is expressible),
/// MemAttr 0x1 for `MMIO`, else 0xF for `CACHE`, else 0x5; SH inner with `CACHE`,
/// else outer; bits 54:53 for `NOEXEC` (as Linux writes them). `PRIV` has no stage-2
/// meaning and is dropped.
///
/// ```
/// use pgtable_core::{Format, Prot};
/// use smmu_format::{ArmConfig, ArmS2};
/// let s2 = ArmS2::new(ArmConfig::new(4096, 40, 48))?;
/// assert_eq!(s2.encode_leaf(0x8_0000_0000, 0, Prot::RW | Prot::CACHE), 0x8_0000_07FF);
/// assert_eq!(s2.effective_prot(Prot::WRITE | Prot::PRIV), Prot::WRITE);
/// # Ok::<(), pgtable_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Stage2;

impl sealed::Sealed for Stage2 {}

impl Stage for Stage2 {
    const NAME: &'static str = "Arm SMMUv3 stage 2";
    const CONCATENATE: bool = true;

    #[inline(always)]
    fn leaf_attributes(prot: Prot) -> u64 {
        let mut d = AF;
        if prot.contains(Prot::READ) {
            d |= S2AP_READ;
        }
        if prot.contains(Prot::WRITE) {
            d |= S2AP_WRITE;
        }
        let attr = if prot.contains(Prot::MMIO) {
            MEMATTR_DEVICE
        } else if prot.contains(Prot::CACHE) {
            MEMATTR_OIWB
        } else {
            MEMATTR_NC
        };
        d |= attr << MEMATTR_SHIFT;
        d |= if prot.contains(Prot::CACHE) {
            SH_INNER
        } else {
            SH_OUTER
        };
        if prot.contains(Prot::NOEXEC) {
            d |= XN_BOTH;
        }
        d
    }

    /// MemAttr with outer bits 00 is device memory (`MMIO`, plus `CACHE` when inner
    /// shareable, which is how `MMIO | CACHE` encodes); Normal memory is `CACHE` when
    /// outer and inner are write-back (0xF). `NOEXEC` is bit 54 (XN without FEAT_XNX).
    #[inline(always)]
    fn leaf_prot(raw: u64) -> Prot {
        let mut p = Prot::empty();
        if raw & S2AP_READ != 0 {
            p |= Prot::READ;
        }
        // With DBM a leaf without write permission is writable-clean.
        if raw & (S2AP_WRITE | DBM) != 0 {
            p |= Prot::WRITE;
        }
        if raw & XN1 != 0 {
            p |= Prot::NOEXEC;
        }
        let attr = (raw & MEMATTR_MASK) >> MEMATTR_SHIFT;
        if attr >> 2 == 0 {
            p |= Prot::MMIO;
            if raw & SH_MASK == SH_INNER {
                p |= Prot::CACHE;
            }
        } else if attr == MEMATTR_OIWB {
            p |= Prot::CACHE;
        }
        p
    }

    #[inline(always)]
    fn effective_prot(prot: Prot) -> Prot {
        prot & !Prot::PRIV
    }

    fn registers(table: &Arm<Self>, root: u64) -> [u64; 4] {
        // The library's walks are cache coherent (C API): WBWA, inner shareable.
        [root, table.vtcr(true), 0, 0]
    }

    /// Dirty = S2AP\[1\] set (writes allowed), clean = S2AP\[1\] clear, both with DBM.
    const DIRTY: BitOp = BitOp::Set(S2AP_WRITE);

    #[inline(always)]
    fn track_dirty(raw: u64, on: bool) -> u64 {
        if on && raw & S2AP_WRITE != 0 && raw & DBM == 0 {
            (raw | DBM) & !S2AP_WRITE
        } else if !on && raw & DBM != 0 {
            (raw & !DBM) | S2AP_WRITE
        } else {
            raw
        }
    }

    /// Stage 2 has no hierarchical attributes.
    #[inline(always)]
    fn table_limits(_raw: u64) -> Prot {
        Prot::empty()
    }

    const REGISTER_NAMES: &'static [&'static str] = &["S2TTB", "STE VTCR"];

    fn driver_structure(table: &Arm<Self>, root: PhysAddr, vmid: u16) -> (&'static str, Vec<u64>) {
        (
            "stream table entry",
            table.stream_table_entry(root, vmid, true).to_vec(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_match_io_pgtable_arm() {
        let a = Stage2::leaf_attributes;
        assert_eq!(a(Prot::RW | Prot::CACHE), 0x7FC);
        assert_eq!(a(Prot::READ | Prot::CACHE), 0x77C);
        assert_eq!(a(Prot::WRITE), 0x694);
        assert_eq!(a(Prot::RW), 0x694 | S2AP_READ);
        assert_eq!(a(Prot::RW | Prot::MMIO), 0x6C4);
        assert_eq!(a(Prot::RW | Prot::NOEXEC | Prot::PRIV) & !0x7FF, XN_BOTH);
        assert_eq!(a(Prot::RW | Prot::PRIV), a(Prot::RW));
    }

    #[test]
    fn every_prot_decodes_to_its_effective_prot() {
        for bits in 0..64 {
            let prot = Prot::from_bits_truncate(bits);
            if !prot.intersects(Prot::RW) {
                continue;
            }
            let raw = Stage2::leaf_attributes(prot) | 0b11;
            assert_eq!(
                Stage2::leaf_prot(raw),
                Stage2::effective_prot(prot),
                "{prot:?}"
            );
        }
    }
}
