//! Descriptor bits both stages share, and the output-address field with its 52-bit
//! packing (docs/formats.md §3.3, §3.4).

use crate::geometry::Granule;

/// Bit 0: the descriptor is valid. With it clear, bits 63:1 are ignored.
pub const VALID: u64 = 1 << 0;
/// Bits 1:0 of a table descriptor (levels above the last) or a page descriptor (the last).
pub const TYPE_TABLE_OR_PAGE: u64 = 0b11;
/// Bits 1:0 of a block descriptor; reserved (a fault) at the last level.
pub const TYPE_BLOCK: u64 = 0b01;
/// Mask of the type bits.
pub const TYPE_MASK: u64 = 0b11;

/// Bits 9:8: shareability of the output (both stages).
pub const SH_SHIFT: u32 = 8;
/// Shareability field mask.
pub const SH_MASK: u64 = 0b11 << SH_SHIFT;
/// Outer shareable (io-pgtable: everything but cacheable memory).
pub const SH_OUTER: u64 = 0b10 << SH_SHIFT;
/// Inner shareable (io-pgtable: cacheable memory).
pub const SH_INNER: u64 = 0b11 << SH_SHIFT;
/// Bit 10: access flag. Always set: no access-flag faults on fresh mappings.
pub const AF: u64 = 1 << 10;
/// Bit 16 of a block: nT (FEAT_BBM block-translation hint); never written, tolerated.
pub const BLOCK_NT: u64 = 1 << 16;
/// Bit 51: DBM, dirty bit modifier (§3.10): with hardware dirty updates on, a leaf with
/// DBM is writable and its write permission bit records the dirty state.
pub const DBM: u64 = 1 << 51;
/// Bit 52: the contiguous hint (§3.2).
pub const CONTIGUOUS: u64 = 1 << 52;
/// Bit 53: PXN at stage 1, XN\[0\] at stage 2.
pub const XN0: u64 = 1 << 53;
/// Bit 54: UXN/XN at stage 1, XN\[1\] at stage 2: "not executable" in a
/// single-privilege regime and without FEAT_XNX.
pub const XN1: u64 = 1 << 54;
/// What io-pgtable writes for NOEXEC at either stage: bits 54:53 = 0b11.
pub const XN_BOTH: u64 = XN0 | XN1;
/// Table descriptor bit 60 (stage 1): UXNTable, execute-never for the subtree.
pub const UXN_TABLE: u64 = 1 << 60;
/// Table descriptor bit 61 (stage 1): APTable\[0\], no unprivileged access below.
pub const AP_TABLE_NO_UNPRIV: u64 = 1 << 61;
/// Table descriptor bit 62 (stage 1): APTable\[1\], read-only below.
pub const AP_TABLE_RDONLY: u64 = 1 << 62;
/// Bits 49:48: OA\[49:48\] only under FEAT_LPA2, which is never enabled: RES0.
pub const RES0_HIGH: u64 = 0b11 << 48;

/// `mask(h, l)` of docs/formats.md: bits `h..=l` set.
pub(crate) const fn mask(h: u32, l: u32) -> u64 {
    ((u64::MAX >> (63 - h)) >> l) << l
}

/// The address field bits 47:12 (Linux `ARM_LPAE_PTE_ADDR_MASK`).
const ADDR_47_12: u64 = mask(47, 12);

/// Packs a (granule-aligned) physical address into a descriptor's address field:
/// PA\[47:g\] in place, and for the 64K granule PA\[51:48\] in bits 15:12 (§3.4).
/// Both table and block/page descriptors use this.
///
/// ```
/// use smmu_format::{Granule, descriptor::{pack_address, unpack_address}};
/// let pa = 0x000F_1234_5678_0000;
/// let field = pack_address(pa, Granule::K64);
/// assert_eq!(field, 0x0000_1234_5678_F000);
/// assert_eq!(unpack_address(field, Granule::K64), pa);
/// assert_eq!(pack_address(0x8_0000_0000, Granule::K4), 0x8_0000_0000);
/// ```
#[inline(always)]
pub const fn pack_address(pa: u64, granule: Granule) -> u64 {
    // Of each pair of overlapping bits (51:48 and 15:12) one is always zero: a
    // 64K-aligned address has 15:12 clear, and a 4K/16K one is below 2^48.
    let _ = granule;
    (pa | (pa >> 36)) & ADDR_47_12
}

/// The address a descriptor's field holds: bits 47:g, plus bits 15:12 as PA\[51:48\]
/// with the 64K granule. The inverse of [`pack_address`].
#[inline(always)]
pub const fn unpack_address(raw: u64, granule: Granule) -> u64 {
    match granule {
        Granule::K64 => (raw & mask(47, 16)) | ((raw & mask(15, 12)) << 36),
        Granule::K4 => raw & mask(47, 12),
        Granule::K16 => raw & mask(47, 14),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(mask(47, 12), 0x0000_FFFF_FFFF_F000);
        assert_eq!(mask(63, 0), u64::MAX);
        assert_eq!(mask(0, 0), 1);
        assert_eq!(mask(15, 12), 0xF000);
    }

    #[test]
    fn packing_round_trips_52_bit_addresses() {
        for pa in [
            0u64,
            0x1_0000,
            0x000F_FFFF_FFFF_0000,
            0x0008_0000_0000_0000,
            0x1234_5678_0000,
        ] {
            assert_eq!(
                unpack_address(pack_address(pa, Granule::K64), Granule::K64),
                pa
            );
        }
        for pa in [0u64, 0x1000, 0x0000_FFFF_FFFF_F000] {
            assert_eq!(
                unpack_address(pack_address(pa, Granule::K4), Granule::K4),
                pa
            );
        }
    }
}
