//! Granules, start levels, stage-2 concatenation, leaf sizes and contiguous groups
//! (docs/formats.md §3.1, §3.2, §3.8).
//!
//! Levels here are the core's: 0 is the last level (hardware L3), counting upward. The
//! hardware's numbering (L0..L3, counting downward) only appears in names and in
//! [`Shape::start_level`].

/// A VMSAv8-64 translation granule: the page size and the size of a (non-start) table.
///
/// ```
/// use smmu_format::Granule;
/// let g = Granule::from_bytes(16384).unwrap();
/// assert_eq!((g.shift(), g.bits_per_level()), (14, 11));
/// assert_eq!(g.tg(), 2); // CD.TG0 / STE.S2TG encoding
/// assert!(Granule::from_bytes(8192).is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Granule {
    /// 4 KiB pages, 512-entry tables.
    K4,
    /// 16 KiB pages, 2048-entry tables.
    K16,
    /// 64 KiB pages, 8192-entry tables; the only granule with 52-bit addresses here.
    K64,
}

impl Granule {
    /// The granule of `bytes` (4096, 16384 or 65536).
    pub const fn from_bytes(bytes: u64) -> Option<Granule> {
        match bytes {
            4096 => Some(Granule::K4),
            16384 => Some(Granule::K16),
            65536 => Some(Granule::K64),
            _ => None,
        }
    }

    /// log2 of the granule in bytes.
    pub const fn shift(self) -> u32 {
        match self {
            Granule::K4 => 12,
            Granule::K16 => 14,
            Granule::K64 => 16,
        }
    }

    /// The granule in bytes.
    pub const fn bytes(self) -> u64 {
        1 << self.shift()
    }

    /// Input bits one table level resolves (`shift - 3`: 8-byte descriptors).
    pub const fn bits_per_level(self) -> u32 {
        self.shift() - 3
    }

    /// The TG0 (context descriptor) and S2TG (stream table entry) encoding:
    /// 0 = 4K, 1 = 64K, 2 = 16K. (TG1 uses other values; it is never programmed here.)
    pub const fn tg(self) -> u64 {
        match self {
            Granule::K4 => 0,
            Granule::K64 => 1,
            Granule::K16 => 2,
        }
    }

    /// The granule of a TG0 / S2TG encoding (0 = 4K, 1 = 64K, 2 = 16K); `None` for the
    /// reserved 3.
    ///
    /// ```
    /// use smmu_format::Granule;
    /// assert_eq!(Granule::from_tg(2), Some(Granule::K16));
    /// assert_eq!(Granule::from_tg(3), None);
    /// ```
    pub const fn from_tg(tg: u64) -> Option<Granule> {
        match tg {
            0 => Some(Granule::K4),
            1 => Some(Granule::K64),
            2 => Some(Granule::K16),
            _ => None,
        }
    }

    /// The leaf sizes Linux's io-pgtable-arm allows (`arm_lpae_restrict_pgsizes`):
    /// 4K: 4K/2M/1G; 16K: 16K/32M; 64K: 64K/512M, plus 4T with a 52-bit output.
    pub const fn linux_page_sizes(self, oas: u32) -> u64 {
        match self {
            Granule::K4 => (1 << 12) | (1 << 21) | (1 << 30),
            Granule::K16 => (1 << 14) | (1 << 25),
            Granule::K64 => (1 << 16) | (1 << 29) | if oas > 48 { 1 << 42 } else { 0 },
        }
    }

    /// Whether a block descriptor is architecturally valid at core `level` (>= 1):
    /// 4K at L2 and L1 (L0 needs LPA2), 16K at L2 (L1 needs LPA2), 64K at L2, and at
    /// L1 with a 52-bit output (FEAT_LPA). A walker faults on blocks elsewhere.
    pub(crate) const fn block_allowed(self, level: u32, oas: u32) -> bool {
        match (self, level) {
            (Granule::K4, 1 | 2) | (Granule::K16, 1) | (Granule::K64, 1) => true,
            (Granule::K64, 2) => oas > 48,
            _ => false,
        }
    }

    /// Entries grouped by one contiguous hint at core `level`: L3 16/128/32, L2
    /// 16/32/32 for 4K/16K/64K (Linux's `CONT_PTE_SHIFT` / `CONT_PMD_SHIFT`). Never at
    /// L1 or above, whose counts no two sources agree on (docs/formats.md §6 #11).
    pub const fn contig_entries(self, level: u32) -> usize {
        match (self, level) {
            (Granule::K4, 0 | 1) => 16,
            (Granule::K16, 0) => 128,
            (Granule::K16, 1) | (Granule::K64, 0 | 1) => 32,
            _ => 1,
        }
    }
}

/// How many levels a configuration walks and how many bits its top table resolves.
///
/// ```
/// use smmu_format::{Granule, Shape};
/// // Stage 1, 4K, 48-bit input: start at L0 with 512 entries.
/// let s = Shape::new(Granule::K4, 48, false);
/// assert_eq!((s.levels, s.top_bits, s.start_level(), s.concatenated_tables()), (4, 9, 0, 1));
/// // Stage 2, 4K, 40-bit input: two concatenated L1 tables instead of a 2-entry L0.
/// let s = Shape::new(Granule::K4, 40, true);
/// assert_eq!((s.levels, s.top_bits, s.start_level(), s.concatenated_tables()), (3, 10, 1, 2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// The granule.
    pub granule: Granule,
    /// Levels walked (the start level is `4 - levels` in hardware numbering).
    pub levels: u32,
    /// Input bits the top (start-level) table resolves: fewer than a full table for a
    /// small start table, up to 4 more for concatenated stage-2 tables.
    pub top_bits: u32,
}

impl Shape {
    /// The shape for an `ias`-bit input (at least `granule.shift() + 1` bits). With
    /// `concatenate` (stage 2), Linux's rule applies: a start-level-0 table of at most
    /// 16 entries is replaced by that many concatenated level-1 tables.
    ///
    /// # Panics
    /// For an `ias` outside what [`ArmConfig`](crate::ArmConfig) allows (fewer than
    /// `granule.shift() + 1` bits, or more than four levels' worth).
    pub const fn new(granule: Granule, ias: u32, concatenate: bool) -> Shape {
        let g = granule.shift();
        let bpl = granule.bits_per_level();
        // levels = ceil((ias - g) / bpl)
        let levels = (ias - g).div_ceil(bpl);
        assert!(levels >= 1 && levels <= 4, "input size out of range");
        let top_bits = ias - (g + bpl * (levels - 1));
        if concatenate && levels == 4 && top_bits <= 4 {
            Shape {
                granule,
                levels: 3,
                top_bits: top_bits + bpl,
            }
        } else {
            Shape {
                granule,
                levels,
                top_bits,
            }
        }
    }

    /// The start level in hardware numbering (0..=3).
    pub const fn start_level(&self) -> u32 {
        4 - self.levels
    }

    /// Granule-sized tables concatenated at the start level (1 = none; at most 16).
    pub const fn concatenated_tables(&self) -> u32 {
        let bpl = self.granule.bits_per_level();
        if self.top_bits > bpl {
            1 << (self.top_bits - bpl)
        } else {
            1
        }
    }

    /// Entries of the top table (all concatenated tables together).
    pub const fn top_entries(&self) -> u64 {
        1 << self.top_bits
    }

    /// Bytes one entry of core `level` spans.
    pub const fn entry_span(&self, level: u32) -> u64 {
        1 << (self.granule.shift() + self.granule.bits_per_level() * level)
    }

    /// The leaf sizes of `sizes` at levels this shape has (a block size can exceed
    /// the top level's span when the input is small).
    pub const fn existing_sizes(&self, sizes: u64) -> u64 {
        let top_span = self.entry_span(self.levels - 1);
        sizes & ((top_span << 1) - 1)
    }
}

/// The CD.IPS / STE.S2PS encoding of an output size: the smallest of 32, 36, 40, 42,
/// 44, 48, 52 bits that is at least `bits` (0..=6); `None` above 52.
///
/// ```
/// assert_eq!(smmu_format::address_size_encoding(48), Some(5));
/// assert_eq!(smmu_format::address_size_encoding(45), Some(5));
/// assert_eq!(smmu_format::address_size_encoding(52), Some(6));
/// ```
pub const fn address_size_encoding(bits: u32) -> Option<u64> {
    let mut i = 0;
    while i < ADDRESS_SIZES.len() {
        if bits <= ADDRESS_SIZES[i] {
            return Some(i as u64);
        }
        i += 1;
    }
    None
}

/// The output size of a CD.IPS / STE.S2PS encoding (0..=6: 32, 36, 40, 42, 44, 48, 52
/// bits); `None` for the reserved 7.
///
/// ```
/// assert_eq!(smmu_format::address_size_bits(5), Some(48));
/// assert_eq!(smmu_format::address_size_bits(7), None);
/// ```
pub const fn address_size_bits(code: u64) -> Option<u32> {
    match code {
        0..=6 => Some(ADDRESS_SIZES[code as usize]),
        _ => None,
    }
}

/// The output sizes, by IPS / S2PS encoding.
const ADDRESS_SIZES: [u32; 7] = [32, 36, 40, 42, 44, 48, 52];

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/formats.md §3.1's start-level table, every row and column.
    #[test]
    fn stage1_start_levels_match_the_spec_table() {
        #[rustfmt::skip]
        let rows: [(u32, [(u32, u64); 3]); 18] = [
            (32, [(1, 4), (2, 128), (2, 8)]),
            (33, [(1, 8), (2, 256), (2, 16)]),
            (34, [(1, 16), (2, 512), (2, 32)]),
            (35, [(1, 32), (2, 1024), (2, 64)]),
            (36, [(1, 64), (2, 2048), (2, 128)]),
            (37, [(1, 128), (1, 2), (2, 256)]),
            (38, [(1, 256), (1, 4), (2, 512)]),
            (39, [(1, 512), (1, 8), (2, 1024)]),
            (40, [(0, 2), (1, 16), (2, 2048)]),
            (41, [(0, 4), (1, 32), (2, 4096)]),
            (42, [(0, 8), (1, 64), (2, 8192)]),
            (43, [(0, 16), (1, 128), (1, 2)]),
            (44, [(0, 32), (1, 256), (1, 4)]),
            (45, [(0, 64), (1, 512), (1, 8)]),
            (46, [(0, 128), (1, 1024), (1, 16)]),
            (47, [(0, 256), (1, 2048), (1, 32)]),
            (48, [(0, 512), (0, 2), (1, 64)]),
            (52, [(9, 0), (9, 0), (1, 1024)]),
        ];
        for (ias, cols) in rows {
            for (g, (start, entries)) in [Granule::K4, Granule::K16, Granule::K64]
                .into_iter()
                .zip(cols)
            {
                if start == 9 {
                    continue;
                }
                let s = Shape::new(g, ias, false);
                assert_eq!(
                    (s.start_level(), s.top_entries()),
                    (start, entries),
                    "{g:?} ias {ias}"
                );
            }
        }
    }

    /// docs/formats.md §3.8: what Linux emits at stage 2.
    #[test]
    fn stage2_concatenation_follows_linux() {
        let cases = [
            (Granule::K4, 32, 1, 1),
            (Granule::K4, 39, 1, 1),
            (Granule::K4, 40, 1, 2),
            (Granule::K4, 41, 1, 4),
            (Granule::K4, 42, 1, 8),
            (Granule::K4, 43, 1, 16),
            (Granule::K4, 44, 0, 1),
            (Granule::K4, 48, 0, 1),
            (Granule::K16, 36, 2, 1),
            (Granule::K16, 37, 1, 1),
            (Granule::K16, 47, 1, 1),
            (Granule::K16, 48, 1, 2),
            (Granule::K64, 42, 2, 1),
            (Granule::K64, 43, 1, 1),
            (Granule::K64, 48, 1, 1),
            (Granule::K64, 52, 1, 1),
        ];
        for (g, ias, start, concat) in cases {
            let s = Shape::new(g, ias, true);
            assert_eq!(
                (s.start_level(), s.concatenated_tables()),
                (start, concat),
                "{g:?} ias {ias}"
            );
            assert_eq!(s.entry_span(s.levels - 1) << s.top_bits, 1 << ias);
        }
    }

    #[test]
    fn page_sizes_are_restricted_to_existing_levels() {
        // 64K with a 52-bit output allows 4T, but only where an L1 exists.
        let sizes = Granule::K64.linux_page_sizes(52);
        assert_eq!(
            Shape::new(Granule::K64, 48, false).existing_sizes(sizes),
            sizes
        );
        assert_eq!(
            Shape::new(Granule::K64, 42, false).existing_sizes(sizes),
            (1 << 16) | (1 << 29)
        );
        let sizes = Granule::K4.linux_page_sizes(48);
        assert_eq!(
            Shape::new(Granule::K4, 32, false).existing_sizes(sizes),
            sizes
        );
    }

    #[test]
    fn address_size_encodings() {
        let want = [
            (32, 0),
            (33, 1),
            (36, 1),
            (40, 2),
            (41, 3),
            (42, 3),
            (44, 4),
            (48, 5),
            (49, 6),
            (52, 6),
        ];
        for (bits, enc) in want {
            assert_eq!(address_size_encoding(bits), Some(enc), "{bits}");
        }
        assert_eq!(address_size_encoding(53), None);
    }
}
