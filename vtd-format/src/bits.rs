//! Bit-field arithmetic shared by every VT-d structure.
//!
//! VT-d manuals and FORMATS.md describe fields as inclusive bit ranges `b[h:l]`;
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
/// entry (`H = mask(51, HAW)` of FORMATS.md §1.4 and §2.2; empty when `haw` is 52).
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
    fn above_haw_matches_spec_h() {
        assert_eq!(above_haw(39), mask(51, 39));
        assert_eq!(above_haw(12), mask(51, 12));
    }
}
