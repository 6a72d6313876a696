//! What the second and first stage share: the x86-style tree of 4 KiB tables, each
//! resolving 9 IOVA bits, its entry names, and the choice of page sizes.
//!
//! VT-d numbers levels 1 (PTE) to 5 (PML5E); the core numbers them 0 to 4. Both stages
//! use the same IOVA split (docs/formats.md §1.1, §2.1), so the geometry is built here once.

use pgtable_core::{ConfigError, Error, Geometry};

/// A 4 KiB page, mapped by a PTE (core level 0).
pub const SZ_4K: u64 = 1 << 12;
/// A 2 MiB page, mapped by a PDE with PS=1 (core level 1).
pub const SZ_2M: u64 = 1 << 21;
/// A 1 GiB page, mapped by a PDPTE with PS=1 (core level 2).
pub const SZ_1G: u64 = 1 << 30;

/// log2 of the table and smallest page size.
pub(crate) const GRANULE_SHIFT: u32 = 12;
/// IOVA bits one 512-entry table resolves.
pub(crate) const BITS_PER_LEVEL: u32 = 9;

/// Core level of a PDPTE (1 GiB leaves).
pub(crate) const PDPTE: u32 = 2;
/// The lowest core level of the PML4E/PML5E entries, which never map pages.
pub(crate) const PML4E: u32 = 3;

/// Linux's debugfs names (`domain_translation_struct`), indexed by core level.
const NAMES: [&str; 5] = ["PTE", "PDE", "PDPE", "PML4E", "PML5E"];

/// The name Linux's IOMMU debugfs gives entries of core `level` (0 = PTE).
///
/// ```
/// use vtd_format::level_name;
/// assert_eq!(level_name(0), "PTE");
/// assert_eq!(level_name(4), "PML5E");
/// assert_eq!(level_name(9), "?");
/// ```
pub fn level_name(level: u32) -> &'static str {
    NAMES.get(level as usize).copied().unwrap_or("?")
}

/// Levels needed to resolve `bits` of IOVA: 3 up to 39 bits, 4 up to 48, 5 up to 57
/// (the AGAW steps of docs/formats.md §1.1). `None` beyond 57.
pub(crate) const fn levels_for(bits: u32) -> Option<u32> {
    match bits {
        0..=39 => Some(3),
        40..=48 => Some(4),
        49..=57 => Some(5),
        _ => None,
    }
}

/// The geometry of a `levels`-level tree whose usable IOVAs are below `1 << va_bits`.
pub(crate) const fn geometry(levels: u32, va_bits: u32, oas: u32, pgsizes: u64) -> Geometry {
    Geometry::new(
        levels,
        GRANULE_SHIFT,
        BITS_PER_LEVEL,
        BITS_PER_LEVEL,
        va_bits,
        oas,
        pgsizes,
    )
}

/// IOVA bits below the output address of a leaf at core `level`.
#[inline(always)]
pub(crate) const fn leaf_shift(level: u32) -> u32 {
    GRANULE_SHIFT + BITS_PER_LEVEL * level
}

/// Checks an output address size: VT-d addresses are at most 52 bits, and a table
/// must be able to map at least one 4 KiB page.
pub(crate) fn check_oas(oas: u32) -> Result<(), Error> {
    if (GRANULE_SHIFT..=crate::bits::MAX_HAW).contains(&oas) {
        Ok(())
    } else {
        Err(ConfigError::OutputSize {
            bits: oas,
            min: GRANULE_SHIFT,
            max: crate::bits::MAX_HAW,
        }
        .into())
    }
}

/// Checks a host address width for next-table pointers: at least the output size, at
/// most 52 bits.
pub(crate) fn check_haw(haw: u32, oas: u32) -> Result<(), Error> {
    if (oas..=crate::bits::MAX_HAW).contains(&haw) {
        Ok(())
    } else {
        Err(ConfigError::TableAddressWidth {
            bits: haw,
            min: oas,
            max: crate::bits::MAX_HAW,
        }
        .into())
    }
}

/// The page sizes of a configuration: which the hardware can walk (the large-page
/// capability bits), and which of those the caller lets `map` use.
///
/// Kept apart because the decoder follows the hardware (a foreign 2 MiB leaf is valid
/// wherever the capability allows it) while mapping follows the caller's bitmap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageSizes {
    /// Sizes the hardware walks.
    hw: u64,
    /// Sizes the caller asked for; 0 = all of `hw`.
    requested: u64,
}

impl PageSizes {
    /// All of `hw` usable.
    pub(crate) const fn new(hw: u64) -> Self {
        PageSizes { hw, requested: 0 }
    }

    /// The hardware now walks `hw` (4 KiB always included); a requested size it no
    /// longer walks is dropped.
    pub(crate) const fn with_hw(self, hw: u64) -> Self {
        PageSizes {
            hw: hw | SZ_4K,
            requested: self.requested,
        }
    }

    /// Sizes `map` may use: `bitmap`, or all the hardware walks when it is 0.
    ///
    /// # Errors
    /// [`Error::BadConfig`] when `bitmap` lacks 4 KiB or holds a size the hardware
    /// cannot map.
    pub(crate) fn with_requested(self, bitmap: u64) -> Result<Self, Error> {
        if bitmap != 0 && bitmap & SZ_4K == 0 {
            return Err(ConfigError::GranuleNotMapped { granule: SZ_4K }.into());
        }
        if bitmap & !self.hw != 0 {
            return Err(ConfigError::PageSizes {
                unsupported: bitmap & !self.hw,
                allowed: self.hw,
            }
            .into());
        }
        Ok(PageSizes {
            hw: self.hw,
            requested: bitmap,
        })
    }

    /// Sizes `map` uses.
    #[inline(always)]
    pub(crate) const fn used(&self) -> u64 {
        if self.requested == 0 {
            self.hw
        } else {
            self.requested & self.hw
        }
    }

    /// Whether the hardware accepts a leaf (PS=1) at core `level`.
    #[inline(always)]
    pub(crate) const fn hw_leaf(&self, level: u32) -> bool {
        level <= PDPTE && self.hw & (1 << leaf_shift(level)) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agaw_steps() {
        assert_eq!(levels_for(31), Some(3));
        assert_eq!(levels_for(39), Some(3));
        assert_eq!(levels_for(40), Some(4));
        assert_eq!(levels_for(48), Some(4));
        assert_eq!(levels_for(49), Some(5));
        assert_eq!(levels_for(57), Some(5));
        assert_eq!(levels_for(58), None);
    }

    #[test]
    fn requested_sizes_are_a_subset_with_4k() {
        let all = SZ_4K | SZ_2M | SZ_1G;
        let p = PageSizes::new(all);
        assert_eq!(p.used(), all);
        assert_eq!(p.with_requested(0).unwrap().used(), all);
        assert_eq!(
            p.with_requested(SZ_4K | SZ_1G).unwrap().used(),
            SZ_4K | SZ_1G
        );
        assert!(p.with_requested(SZ_2M).is_err());
        assert!(p.with_requested(SZ_4K | (1 << 39)).is_err());
        assert!(p.with_requested(SZ_4K | (1 << 13)).is_err());
        let narrowed = p.with_requested(SZ_4K | SZ_2M).unwrap().with_hw(SZ_1G);
        assert_eq!(narrowed.used(), SZ_4K);
        assert!(narrowed.hw_leaf(PDPTE) && !narrowed.hw_leaf(1) && narrowed.hw_leaf(0));
        assert!(!narrowed.hw_leaf(PML4E));
    }

    #[test]
    fn names_count_up_from_the_pte() {
        assert_eq!(
            (0..5).map(level_name).collect::<Vec<_>>(),
            ["PTE", "PDE", "PDPE", "PML4E", "PML5E"]
        );
    }
}
