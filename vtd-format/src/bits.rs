//! Bit-field arithmetic shared by every VT-d structure.
//!
//! VT-d manuals and docs/formats.md describe fields as inclusive bit ranges `b[h:l]`;
//! [`mask`] is that notation, so the constants and masks below read like the spec.

/// `mask(h, l)`: bits `h` down to `l` inclusive set (`h >= l`, both below 64).
///
/// ```
/// use vtd_format::bits::mask;
/// assert_eq!(mask(20, 12), 0x1f_f000);
/// assert_eq!(mask(63, 0), u64::MAX);
/// ```
#[inline(always)]
pub const fn mask(h: u32, l: u32) -> u64 {
    (u64::MAX >> (63 - h)) & (u64::MAX << l)
}

/// The widest host address width VT-d defines (entry address fields end at bit 51).
pub const MAX_HAW: u32 = 52;

/// Bits of an entry's address field at or above `haw`: reserved in every present
/// entry (`H = mask(51, HAW)` of docs/formats.md §1.4 and §2.2; empty when `haw` is 52).
///
/// ```
/// use vtd_format::bits::above_haw;
/// assert_eq!(above_haw(48), 0x000f_0000_0000_0000);
/// assert_eq!(above_haw(52), 0);
/// ```
#[inline(always)]
pub const fn above_haw(haw: u32) -> u64 {
    if haw >= MAX_HAW {
        0
    } else {
        mask(MAX_HAW - 1, haw)
    }
}

/// The address bits of an entry whose output is aligned to `1 << low` and below
/// `1 << haw`: `mask(haw - 1, low)`.
///
/// ```
/// use vtd_format::bits::addr_field;
/// assert_eq!(addr_field(48, 12), 0x0000_ffff_ffff_f000);
/// assert_eq!(addr_field(39, 21), 0x0000_007f_ffe0_0000);
/// ```
#[inline(always)]
pub const fn addr_field(haw: u32, low: u32) -> u64 {
    mask(haw - 1, low)
}

/// Bits of a structure's 4 KiB-aligned pointer field (root, context, PASID-directory
/// and PASID entries, RTADDR) at or above `haw`: `mask(63, HAW)`. Unlike a paging
/// entry, whose bits 63:52 are ignored, these structures reserve every bit above the
/// host address width (QEMU `~VTD_HAW_MASK`).
///
/// ```
/// use vtd_format::bits::pointer_above_haw;
/// assert_eq!(pointer_above_haw(48), 0xffff_0000_0000_0000);
/// assert_eq!(pointer_above_haw(52), 0xfff0_0000_0000_0000);
/// ```
#[inline(always)]
pub const fn pointer_above_haw(haw: u32) -> u64 {
    mask(63, haw)
}

/// Field `h:l` of `word`, shifted down to bit 0.
///
/// ```
/// use vtd_format::bits::field;
/// assert_eq!(field(0x1c0, 8, 6), 0b111);
/// ```
#[inline(always)]
pub const fn field(word: u64, h: u32, l: u32) -> u64 {
    (word & mask(h, l)) >> l
}

/// `value` placed in field `h:l`; bits of `value` beyond the field's width are dropped.
///
/// ```
/// use vtd_format::bits::place;
/// assert_eq!(place(0b010, 8, 6), 0x80);
/// assert_eq!(place(0xff, 3, 2), 0xc);
/// ```
#[inline(always)]
pub const fn place(value: u64, h: u32, l: u32) -> u64 {
    (value << l) & mask(h, l)
}

/// Bit `n` of `word`.
#[inline(always)]
pub(crate) const fn bit(word: u64, n: u32) -> bool {
    word & (1 << n) != 0
}

/// `on` as bit `n`.
#[inline(always)]
pub(crate) const fn flag(on: bool, n: u32) -> u64 {
    (on as u64) << n
}

/// `word` with bit `n` set to `on`.
#[inline(always)]
pub(crate) const fn with_bit(word: u64, n: u32, on: bool) -> u64 {
    (word & !(1 << n)) | flag(on, n)
}

/// `word` with field `h:l` replaced by `value` (truncated to the field).
#[inline(always)]
pub(crate) const fn with_field(word: u64, h: u32, l: u32, value: u64) -> u64 {
    (word & !mask(h, l)) | place(value, h, l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_edges() {
        assert_eq!(mask(0, 0), 1);
        assert_eq!(mask(63, 63), 1 << 63);
        assert_eq!(mask(51, 48), 0xf << 48);
    }

    #[test]
    fn fields_round_trip() {
        assert_eq!(field(place(0x5a, 15, 8), 15, 8), 0x5a);
        assert_eq!(with_field(u64::MAX, 11, 4, 0), 0xffff_ffff_ffff_f00f);
        assert_eq!(with_bit(0, 63, true), 1 << 63);
        assert!(bit(with_bit(0, 5, true), 5));
        assert_eq!(flag(false, 3), 0);
    }

    #[test]
    fn above_haw_matches_spec_h() {
        assert_eq!(above_haw(39), mask(51, 39));
        assert_eq!(above_haw(12), mask(51, 12));
    }
}
