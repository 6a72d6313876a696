//! The adjusted guest address width: how many second-stage levels a context or PASID
//! entry tells the IOMMU to walk (docs/formats.md §1.1).

/// An adjusted guest address width: the AW code that tells the IOMMU how many
/// second-stage levels to walk (docs/formats.md §1.1: `levels = AW + 2`).
///
/// ```
/// use vtd_format::Agaw;
/// assert_eq!(Agaw::Bits48.code(), 2);
/// assert_eq!(Agaw::Bits48.levels(), 4);
/// assert_eq!(Agaw::from_code(3), Some(Agaw::Bits57));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Agaw {
    /// 39-bit, 3-level (AW = 1, CAP.SAGAW bit 9).
    Bits39,
    /// 48-bit, 4-level (AW = 2, CAP.SAGAW bit 10).
    Bits48,
    /// 57-bit, 5-level (AW = 3, CAP.SAGAW bit 11).
    Bits57,
}

impl Agaw {
    /// The AW field value.
    pub const fn code(self) -> u8 {
        match self {
            Agaw::Bits39 => 1,
            Agaw::Bits48 => 2,
            Agaw::Bits57 => 3,
        }
    }

    /// The AGAW for an AW field value; `None` for 0 (2-level, never used) and the
    /// reserved values.
    pub const fn from_code(code: u8) -> Option<Agaw> {
        match code {
            1 => Some(Agaw::Bits39),
            2 => Some(Agaw::Bits48),
            3 => Some(Agaw::Bits57),
            _ => None,
        }
    }

    /// Table levels walked.
    pub const fn levels(self) -> u32 {
        self.code() as u32 + 2
    }

    /// Input address bits resolved (`30 + 9 * AW`).
    pub const fn bits(self) -> u32 {
        30 + 9 * self.code() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agaw_codes() {
        for a in [Agaw::Bits39, Agaw::Bits48, Agaw::Bits57] {
            assert_eq!(Agaw::from_code(a.code()), Some(a));
        }
        assert_eq!(Agaw::Bits39.bits(), 39);
        assert_eq!(Agaw::Bits57.bits(), 57);
        assert_eq!(Agaw::Bits57.levels(), 5);
        assert_eq!(Agaw::from_code(0), None);
        assert_eq!(Agaw::from_code(4), None);
    }
}
