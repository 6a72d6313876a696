//! Stage-1 leaf attributes, as current io-pgtable-arm writes them (docs/formats.md §3.5,
//! §3.11), and the MAIR they index.

use crate::descriptor::{
    AF, AP_TABLE_NO_UNPRIV, AP_TABLE_RDONLY, DBM, SH_INNER, SH_MASK, SH_OUTER, UXN_TABLE, XN_BOTH,
    XN1,
};
use crate::format::{Arm, Stage, sealed};
use pgtable_core::{BitOp, PhysAddr, Prot};

/// Bit 6, AP\[1\]: unprivileged accesses allowed (clear for `Prot::PRIV`).
pub const AP_UNPRIV: u64 = 1 << 6;
/// Bit 7, AP\[2\]: read-only.
pub const AP_RDONLY: u64 = 1 << 7;
/// Bit 11, nG: TLB entries are tagged with the ASID. io-pgtable always sets it.
pub const NG: u64 = 1 << 11;
/// Bits 4:2, AttrIndx: which byte of [`MAIR`] gives the memory type.
pub const ATTR_INDEX_SHIFT: u32 = 2;
/// AttrIndx field mask.
pub const ATTR_INDEX_MASK: u64 = 0b111 << ATTR_INDEX_SHIFT;
/// MAIR index 0: Normal, non-cacheable (no `Prot::CACHE`).
pub const ATTR_NC: u64 = 0;
/// MAIR index 1: Normal, write-back read/write-allocate (`Prot::CACHE`).
pub const ATTR_CACHE: u64 = 1;
/// MAIR index 2: Device-nGnRE (`Prot::MMIO`).
pub const ATTR_DEVICE: u64 = 2;
/// MAIR index 3: inner non-cacheable, outer write-back (Linux's system-cache type;
/// never written here).
pub const ATTR_INC_OCACHE: u64 = 3;
/// The MAIR Linux programs into the context descriptor: index 0 = 0x44, 1 = 0xFF,
/// 2 = 0x04, 3 = 0xF4, 4..7 = 0x00 (Device-nGnRnE).
pub const MAIR: u64 = 0xF404_FF44;

/// Stage 1 (the [`Stage`] of [`ArmS1`](crate::ArmS1)).
///
/// Leaves are `nG | AF`, `AP[1]` unless `PRIV`, `AP[2]` without `WRITE`, AttrIndx 2
/// for `MMIO`, else 1 for `CACHE`, else 0; SH inner with `CACHE`, else outer; bits
/// 54:53 for `NOEXEC`. Every stage-1 mapping is readable, so `WRITE` alone maps
/// read-write.
///
/// ```
/// use pgtable_core::{Format, Prot};
/// use smmu_format::{ArmConfig, ArmS1};
/// let s1 = ArmS1::new(ArmConfig::default())?;
/// assert_eq!(s1.encode_leaf(0x8_0000_0000, 0, Prot::READ | Prot::CACHE), 0x8_0000_0FC7);
/// assert_eq!(s1.effective_prot(Prot::WRITE), Prot::RW);
/// # Ok::<(), pgtable_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Stage1;

impl sealed::Sealed for Stage1 {}

impl Stage for Stage1 {
    const NAME: &'static str = "Arm SMMUv3 stage 1";
    const CONCATENATE: bool = false;

    #[inline(always)]
    fn leaf_attributes(prot: Prot) -> u64 {
        let mut d = NG | AF;
        if !prot.contains(Prot::PRIV) {
            d |= AP_UNPRIV;
        }
        if !prot.contains(Prot::WRITE) {
            d |= AP_RDONLY;
        }
        let index = if prot.contains(Prot::MMIO) {
            ATTR_DEVICE
        } else if prot.contains(Prot::CACHE) {
            ATTR_CACHE
        } else {
            ATTR_NC
        };
        d |= index << ATTR_INDEX_SHIFT;
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

    /// Reads the memory type through Linux's [`MAIR`]: index 1 is `CACHE`, 2 and 4..7
    /// are device memory (`MMIO`, plus `CACHE` when inner shareable, which is how
    /// `MMIO | CACHE` encodes), 0 and 3 neither. `NOEXEC` is bit 54 (UXN, or XN in a
    /// single-privilege regime).
    #[inline(always)]
    fn leaf_prot(raw: u64) -> Prot {
        let mut p = Prot::READ;
        // With DBM a read-only leaf is writable-clean: the hardware's dirty update grants
        // the write.
        if raw & AP_RDONLY == 0 || raw & DBM != 0 {
            p |= Prot::WRITE;
        }
        if raw & AP_UNPRIV == 0 {
            p |= Prot::PRIV;
        }
        if raw & XN1 != 0 {
            p |= Prot::NOEXEC;
        }
        match (raw & ATTR_INDEX_MASK) >> ATTR_INDEX_SHIFT {
            ATTR_NC | ATTR_INC_OCACHE => {}
            ATTR_CACHE => p |= Prot::CACHE,
            _ => {
                p |= Prot::MMIO;
                if raw & SH_MASK == SH_INNER {
                    p |= Prot::CACHE;
                }
            }
        }
        p
    }

    #[inline(always)]
    fn effective_prot(prot: Prot) -> Prot {
        let kept = Prot::WRITE | Prot::CACHE | Prot::MMIO | Prot::NOEXEC | Prot::PRIV;
        (prot & kept) | Prot::READ
    }

    fn registers(table: &Arm<Self>, root: u64) -> [u64; 4] {
        // The library's walks are cache coherent (C API): WBWA, inner shareable.
        [root, table.tcr(true), MAIR, 0]
    }

    /// Dirty = AP\[2\] clear (writes allowed), clean = AP\[2\] set, both with DBM.
    const DIRTY: BitOp = BitOp::Clear(AP_RDONLY);

    #[inline(always)]
    fn track_dirty(raw: u64, on: bool) -> u64 {
        if on && raw & (AP_RDONLY | DBM) == 0 {
            raw | DBM | AP_RDONLY
        } else if !on && raw & DBM != 0 {
            raw & !(DBM | AP_RDONLY)
        } else {
            raw
        }
    }

    #[inline(always)]
    fn table_limits(raw: u64) -> Prot {
        let mut limits = Prot::empty();
        if raw & AP_TABLE_RDONLY != 0 {
            limits |= Prot::WRITE;
        }
        if raw & AP_TABLE_NO_UNPRIV != 0 {
            limits |= Prot::PRIV;
        }
        if raw & UXN_TABLE != 0 {
            limits |= Prot::NOEXEC;
        }
        limits
    }

    const REGISTER_NAMES: &'static [&'static str] = &["TTB0", "CD TCR fields", "MAIR"];

    fn driver_structure(table: &Arm<Self>, root: PhysAddr, asid: u16) -> (&'static str, Vec<u64>) {
        (
            "context descriptor",
            table.context_descriptor(root, asid, true).to_vec(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/formats.md §5.3 leaf variants, attributes only.
    #[test]
    fn attributes_match_io_pgtable_arm() {
        let a = Stage1::leaf_attributes;
        assert_eq!(a(Prot::RW | Prot::CACHE), 0xF44);
        assert_eq!(a(Prot::READ | Prot::CACHE), 0xFC4);
        assert_eq!(a(Prot::RW), 0xE40);
        assert_eq!(
            a(Prot::RW | Prot::CACHE | Prot::NOEXEC),
            0x0060_0000_0000_0F44
        );
        assert_eq!(a(Prot::RW | Prot::MMIO), 0xE48);
        assert_eq!(a(Prot::RW | Prot::MMIO | Prot::CACHE), 0xF48);
        assert_eq!(a(Prot::RW | Prot::PRIV), 0xE00);
        assert_eq!(a(Prot::WRITE), a(Prot::RW));
    }

    #[test]
    fn every_prot_decodes_to_its_effective_prot() {
        for bits in 0..64 {
            let prot = Prot::from_bits_truncate(bits);
            if !prot.intersects(Prot::RW) {
                continue;
            }
            let raw = Stage1::leaf_attributes(prot) | 0b11;
            assert_eq!(
                Stage1::leaf_prot(raw),
                Stage1::effective_prot(prot),
                "{prot:?}"
            );
        }
    }

    #[test]
    fn foreign_memory_types_read_through_linux_mair() {
        let with = |index: u64| (index << ATTR_INDEX_SHIFT) | NG | AF | AP_UNPRIV | 0b11;
        assert_eq!(Stage1::leaf_prot(with(3)), Prot::RW);
        assert_eq!(Stage1::leaf_prot(with(5)), Prot::RW | Prot::MMIO);
    }
}
