//! [`Geometry`]: how many levels a table has, how many IOVA bits each resolves, and
//! which leaf sizes each level may hold.

use crate::error::ConfigError;

/// The most levels a geometry may have.
pub const MAX_LEVELS: usize = 6;

/// The shape of a table: how many levels, how many IOVA bits each resolves, and which
/// page sizes it may hold. Computed once by [`Format::geometry`](crate::Format::geometry)
/// and cached by the table.
///
/// Every level but the top resolves `bits_per_level` bits in a table of
/// `1 << granule_shift` bytes; the top table resolves `top_bits` bits, which may be
/// fewer (a small Arm start-level table) or more (concatenated Arm stage-2 tables).
///
/// A leaf is usually one entry spanning its level's `1 << shift(level)` bytes. Some
/// formats also have *leaf runs*: a page of a larger size made of several consecutive
/// entries of one level (AMD-Vi v1 replicated PTEs, RISC-V Svnapot). Such sizes are
/// declared per level with [`Geometry::with_leaf_sizes`], and the format encodes each
/// entry of a run with [`Format::encode_leaf_run`](crate::Format::encode_leaf_run).
///
/// ```
/// use pgtable_core::Geometry;
/// // x86-64 style: 4 levels of 512 entries, 4K/2M/1G pages.
/// let g = Geometry::new(4, 12, 9, 9, 48, 48, (1 << 12) | (1 << 21) | (1 << 30));
/// assert_eq!(g.shift(1), 21);
/// assert_eq!(g.index(0x1234_5000, 1), 0x91);
/// assert_eq!(g.ias(), 48);
/// assert_eq!(g.level_of_size(0x20_0000), Some(1));
/// // A 64K page made of 16 level-0 entries (Svnapot-style):
/// let g = g.with_leaf_sizes(0, 0x1000 | 0x1_0000);
/// assert_eq!(g.level_of_size(0x1_0000), Some(0));
/// assert!(g.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Number of levels; the top is `levels - 1`.
    pub levels: u32,
    /// log2 of the smallest page (the granule) and of a non-top table's size in bytes.
    pub granule_shift: u32,
    /// IOVA bits resolved by a non-top level (`granule_shift - 3`).
    pub bits_per_level: u32,
    /// IOVA bits resolved by the top level.
    pub top_bits: u32,
    /// Usable input bits: IOVAs must be below `1 << va_bits` (may be less than
    /// [`Geometry::ias`], e.g. the lower canonical half of x86-64 paging).
    pub va_bits: u32,
    /// Output address bits.
    pub oas: u32,
    /// Page sizes the table maps (bit n set: a `1 << n` byte leaf is allowed): the union
    /// of every level's leaf sizes.
    pub pgsize_bitmap: u64,
    /// Leaf sizes per level; sizes of `pgsize_bitmap` that are no level's (an error that
    /// [`Geometry::validate`] reports) are kept in `unplaced`.
    level_sizes: [u64; MAX_LEVELS],
    unplaced: u64,
    /// For each size bit n: 1 + the level whose leaves are `1 << n` bytes, or 0.
    level_by_size: [u8; 64],
}

impl Geometry {
    /// A geometry from its parts (see the field docs). Each size of `pgsize_bitmap` is a
    /// one-entry leaf of the level whose entries span that size.
    pub const fn new(
        levels: u32,
        granule_shift: u32,
        bits_per_level: u32,
        top_bits: u32,
        va_bits: u32,
        oas: u32,
        pgsize_bitmap: u64,
    ) -> Self {
        let mut g = Geometry {
            levels,
            granule_shift,
            bits_per_level,
            top_bits,
            va_bits,
            oas,
            pgsize_bitmap,
            level_sizes: [0; MAX_LEVELS],
            unplaced: pgsize_bitmap,
            level_by_size: [0; 64],
        };
        let mut l = 0;
        while l < levels && l < MAX_LEVELS as u32 {
            let s = g.shift(l);
            if s < 64 && pgsize_bitmap & (1u64 << s) != 0 {
                g.level_sizes[l as usize] = 1u64 << s;
                g.unplaced &= !(1u64 << s);
            }
            l += 1;
        }
        g.index_sizes()
    }

    /// Recomputes `level_by_size` from `level_sizes`.
    const fn index_sizes(mut self) -> Self {
        self.level_by_size = [0; 64];
        let mut l = 0;
        while l < MAX_LEVELS {
            let mut n = 0;
            while n < 64 {
                if self.level_sizes[l] & (1u64 << n) != 0 {
                    self.level_by_size[n] = l as u8 + 1;
                }
                n += 1;
            }
            l += 1;
        }
        self
    }

    /// Declares the leaf sizes of `level` (bit n: a `1 << n` byte page), replacing what
    /// [`Geometry::new`] derived from the bitmap for it; each must be the level's entry
    /// span times a power of two that fits one table. `pgsize_bitmap` follows.
    pub const fn with_leaf_sizes(mut self, level: u32, sizes: u64) -> Self {
        if (level as usize) < MAX_LEVELS {
            let old = self.level_sizes[level as usize];
            self.level_sizes[level as usize] = sizes;
            self.pgsize_bitmap = (self.pgsize_bitmap & !old) | sizes;
            self.unplaced &= !sizes;
        }
        self.index_sizes()
    }

    /// The top level's number.
    #[inline(always)]
    pub const fn top(&self) -> u32 {
        self.levels - 1
    }

    /// The IOVA shift of `level`: an entry there spans `1 << shift(level)` bytes.
    #[inline(always)]
    pub const fn shift(&self, level: u32) -> u32 {
        self.granule_shift + self.bits_per_level * level
    }

    /// Bytes one entry of `level` spans.
    #[inline(always)]
    pub const fn entry_span(&self, level: u32) -> u64 {
        1u64 << self.shift(level)
    }

    /// Index bits resolved at `level`.
    #[inline(always)]
    pub const fn index_bits(&self, level: u32) -> u32 {
        if level == self.levels - 1 {
            self.top_bits
        } else {
            self.bits_per_level
        }
    }

    /// Entries in a table of `level`.
    #[inline(always)]
    pub const fn entries(&self, level: u32) -> usize {
        1usize << self.index_bits(level)
    }

    /// Bytes of a table of `level`.
    #[inline(always)]
    pub const fn table_bytes(&self, level: u32) -> usize {
        self.entries(level) * 8
    }

    /// The entry index of `iova` in its table of `level`.
    #[inline(always)]
    pub const fn index(&self, iova: u64, level: u32) -> usize {
        ((iova >> self.shift(level)) & ((1u64 << self.index_bits(level)) - 1)) as usize
    }

    /// Input address bits the tables resolve.
    pub const fn ias(&self) -> u32 {
        self.shift(self.levels - 1) + self.top_bits
    }

    /// The granule in bytes.
    pub const fn granule(&self) -> u64 {
        1u64 << self.granule_shift
    }

    /// The leaf sizes `level` may hold (bit n: a `1 << n` byte page).
    #[inline(always)]
    pub const fn leaf_sizes(&self, level: u32) -> u64 {
        if (level as usize) < MAX_LEVELS {
            self.level_sizes[level as usize]
        } else {
            0
        }
    }

    /// Whether a leaf may sit at `level`.
    #[inline(always)]
    pub const fn leaf_allowed(&self, level: u32) -> bool {
        self.leaf_sizes(level) != 0
    }

    /// Whether `level` has leaves made of several entries (leaf runs).
    #[inline(always)]
    pub const fn has_runs(&self, level: u32) -> bool {
        self.leaf_sizes(level) & !self.entry_span(level) != 0
    }

    /// The level whose leaves have `pgsize` bytes, if it is an allowed page size.
    #[inline(always)]
    pub fn level_of_size(&self, pgsize: u64) -> Option<u32> {
        if !pgsize.is_power_of_two() || self.pgsize_bitmap & pgsize == 0 {
            return None;
        }
        match self.level_by_size[pgsize.trailing_zeros() as usize] {
            0 => None,
            l => Some(l as u32 - 1),
        }
    }

    /// Table pages an allocation of `bytes` counts as (a concatenated root counts as
    /// its pages, a small top table as one).
    pub const fn pages_of(&self, bytes: usize) -> u64 {
        let p = (bytes >> self.granule_shift) as u64;
        if p == 0 { 1 } else { p }
    }

    /// Checks the geometry is self-consistent, for formats' constructors.
    ///
    /// # Errors
    /// [`ConfigError::Geometry`] naming the first inconsistency,
    /// [`ConfigError::GranuleNotMapped`] or [`ConfigError::PageSizes`] for the page
    /// sizes.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.levels == 0 || self.levels as usize > MAX_LEVELS {
            return Err(ConfigError::Geometry("a table has 1 to 6 levels"));
        }
        // Hardware granules are 4K..64K; smaller ones exist only for model checking
        // (tiny tables keep loom's state space small).
        if !(5..=16).contains(&self.granule_shift) || self.bits_per_level != self.granule_shift - 3
        {
            return Err(ConfigError::Geometry(
                "the granule must be a power of two up to 64K, with 8-byte entries",
            ));
        }
        if self.top_bits == 0 || self.top_bits > self.bits_per_level + 4 {
            return Err(ConfigError::Geometry(
                "the top level resolves 1 to bits_per_level + 4 bits",
            ));
        }
        // `1 << ias` must fit in a u64: ranges and spans end at most there.
        if self.ias() > 63 || self.va_bits > self.ias() || self.va_bits == 0 {
            return Err(ConfigError::Geometry("input address size"));
        }
        if self.oas > 64 || self.oas < self.granule_shift {
            return Err(ConfigError::Geometry("output address size"));
        }
        if self.pgsize_bitmap & self.granule() == 0 {
            return Err(ConfigError::GranuleNotMapped {
                granule: self.granule(),
            });
        }
        if self.unplaced != 0 {
            return Err(ConfigError::PageSizes {
                unsupported: self.unplaced,
                allowed: self.pgsize_bitmap & !self.unplaced,
            });
        }
        for level in 0..self.levels {
            let sizes = self.leaf_sizes(level);
            let span = self.entry_span(level);
            let table = span << self.index_bits(level);
            // Every size is the span times a power of two that fits the table.
            if sizes & (span - 1) != 0 || (table != 0 && sizes >= table && sizes != 0) {
                return Err(ConfigError::Geometry(
                    "a level's leaf sizes must be its span times a power of two within one table",
                ));
            }
        }
        for level in self.levels..MAX_LEVELS as u32 {
            if self.leaf_sizes(level) != 0 {
                return Err(ConfigError::Geometry("leaf sizes declared beyond the top"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_land_on_the_level_whose_span_they_are() {
        let g = Geometry::new(4, 12, 9, 9, 48, 48, 0x1000 | 0x20_0000 | 0x4000_0000);
        assert_eq!(g.leaf_sizes(0), 0x1000);
        assert_eq!(g.leaf_sizes(1), 0x20_0000);
        assert_eq!(g.leaf_sizes(2), 0x4000_0000);
        assert_eq!(g.leaf_sizes(3), 0);
        assert!(!g.has_runs(0));
        assert_eq!(g.validate(), Ok(()));
    }

    #[test]
    fn a_size_that_is_no_span_is_refused_unless_declared_as_a_run() {
        let g = Geometry::new(4, 12, 9, 9, 48, 48, 0x1000 | 0x4000);
        assert_eq!(
            g.validate(),
            Err(ConfigError::PageSizes {
                unsupported: 0x4000,
                allowed: 0x1000
            })
        );
        let g = g.with_leaf_sizes(0, 0x1000 | 0x4000);
        assert_eq!(g.validate(), Ok(()));
        assert!(g.has_runs(0));
        assert_eq!(g.level_of_size(0x4000), Some(0));
        assert_eq!(g.pgsize_bitmap, 0x5000);
        // A run as large as a whole table is no run: that is the next level's leaf.
        let g = Geometry::new(4, 12, 9, 9, 48, 48, 0x1000).with_leaf_sizes(0, 0x20_1000);
        assert!(g.validate().is_err());
        // Sizes below the level's span are not leaves of it.
        let g = Geometry::new(4, 12, 9, 9, 48, 48, 0x1000).with_leaf_sizes(1, 0x1000);
        assert!(g.validate().is_err());
    }

    #[test]
    fn inconsistent_shapes_are_named() {
        let ok = Geometry::new(4, 12, 9, 9, 48, 48, 0x1000);
        assert_eq!(ok.validate(), Ok(()));
        for bad in [
            Geometry::new(0, 12, 9, 9, 48, 48, 0x1000),
            Geometry::new(7, 12, 9, 9, 48, 48, 0x1000),
            Geometry::new(4, 12, 8, 9, 48, 48, 0x1000),
            Geometry::new(4, 12, 9, 0, 48, 48, 0x1000),
            Geometry::new(4, 12, 9, 9, 49, 48, 0x1000),
            Geometry::new(4, 12, 9, 9, 48, 11, 0x1000),
        ] {
            assert!(
                matches!(bad.validate(), Err(ConfigError::Geometry(_))),
                "{bad:?}"
            );
        }
    }
}
