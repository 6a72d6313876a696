//! The structures that point an IOMMU at a page table: the legacy-mode context entry
//! and the scalable-mode PASID entry (FORMATS.md §1.2, §2.1).
//!
//! Only the fields the page tables determine are filled (present, translation type,
//! address width, table pointer, domain id, snoop controls); a driver or VMM adds
//! the rest (FPD, PASID-table fields, ...) itself and can compare what it reads.

use crate::bits::mask;

/// Present (bit 0 of the context entry's and the PASID entry's first word).
const P: u64 = 1;
/// A 4 KiB-aligned table pointer field, bits 63:12.
const PTR: u64 = mask(63, 12);
/// Domain id: context `hi[23:8]`.
const CTX_DID_SHIFT: u32 = 8;
/// Translation type: context `lo[3:2]`.
const CTX_TT: u64 = mask(3, 2);
/// Address width: PASID `val[0][4:2]`.
const PASID_AW_SHIFT: u32 = 2;
/// PASID-granular translation type: `val[0][8:6]`.
const PGTT_SHIFT: u32 = 6;
const PGTT: u64 = mask(8, 6);
/// PGTT = 001: first stage only.
const PGTT_FS: u64 = 0b001;
/// PGTT = 010: second stage only.
const PGTT_SS: u64 = 0b010;
/// Page-walk snoop: `val[1]` bit 23.
const PWSNP: u64 = 1 << 23;
/// Page snoop (force snoop for all DMA through the PASID): `val[1]` bit 24.
const PGSNP: u64 = 1 << 24;
/// First-stage paging mode: `val[2][3:2]`, 0 = 4-level, 1 = 5-level.
const FSPM_SHIFT: u32 = 2;
const FSPM: u64 = mask(3, 2);

/// An adjusted guest address width: the AW code that tells the IOMMU how many
/// second-stage levels to walk (FORMATS.md §1.1: `levels = AW + 2`).
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

/// A legacy-mode (RTADDR.TTM = 00) context entry, 128 bits as two little-endian words.
///
/// ```
/// use vtd_format::{Agaw, ContextEntry};
/// let ce = ContextEntry::second_stage(0x1000_0000, Agaw::Bits48, 1);
/// assert_eq!(ce.words(), [0x1000_0001, 0x102]); // FORMATS.md §5.1
/// assert_eq!((ce.ssptptr(), ce.aw(), ce.did()), (0x1000_0000, Some(Agaw::Bits48), 1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ContextEntry {
    /// Bits 63:0: P, FPD, TT, SSPTPTR.
    pub lo: u64,
    /// Bits 127:64: AW, DID.
    pub hi: u64,
}

impl ContextEntry {
    /// A present entry translating untranslated requests through the second-stage
    /// table at `ssptptr` (TT = 00), `aw` levels deep, tagged with domain id `did`.
    /// `ssptptr` must be 4 KiB aligned; its low 12 bits are not part of the field and
    /// are dropped.
    pub const fn second_stage(ssptptr: u64, aw: Agaw, did: u16) -> Self {
        ContextEntry {
            lo: (ssptptr & PTR) | P,
            hi: aw.code() as u64 | (did as u64) << CTX_DID_SHIFT,
        }
    }

    /// The entry as the IOMMU reads it, low word first.
    pub const fn words(&self) -> [u64; 2] {
        [self.lo, self.hi]
    }

    /// The present bit.
    pub const fn present(&self) -> bool {
        self.lo & P != 0
    }

    /// The translation type (TT, `lo[3:2]`): 0 = SS tables, 1 = also ATS, 2 = pass-through.
    pub const fn translation_type(&self) -> u8 {
        ((self.lo & CTX_TT) >> 2) as u8
    }

    /// The second-stage table pointer.
    pub const fn ssptptr(&self) -> u64 {
        self.lo & PTR
    }

    /// The address width (`hi[2:0]`), if it is a defined one.
    pub const fn aw(&self) -> Option<Agaw> {
        Agaw::from_code((self.hi & 0x7) as u8)
    }

    /// The domain id (`hi[23:8]`).
    pub const fn did(&self) -> u16 {
        (self.hi >> CTX_DID_SHIFT) as u16
    }
}

/// A scalable-mode PASID-table entry, 512 bits as eight little-endian words.
///
/// ```
/// use vtd_format::{Agaw, PasidEntry};
/// let pe = PasidEntry::second_stage(0x1000_0000, Agaw::Bits48, 1).with_pwsnp(true);
/// assert_eq!(pe.val[..2], [0x1000_0089, 0x80_0001]); // FORMATS.md §5.1
/// let fs = PasidEntry::first_stage(0x2000_0000, false, Agaw::Bits48, 1);
/// assert_eq!(fs.val[..3], [0x49, 1, 0x2000_0000]); // FORMATS.md §5.2
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PasidEntry {
    /// The eight words, `val[0]` holding bits 63:0.
    pub val: [u64; 8],
}

impl PasidEntry {
    /// A present entry translating through the second-stage table at `ssptptr` only
    /// (PGTT = 010), `aw` levels deep, tagged with domain id `did`. `ssptptr` must be
    /// 4 KiB aligned (its low 12 bits are dropped).
    pub const fn second_stage(ssptptr: u64, aw: Agaw, did: u16) -> Self {
        let mut val = [0; 8];
        val[0] = (ssptptr & PTR) | PGTT_SS << PGTT_SHIFT | Self::aw_field(aw) | P;
        val[1] = did as u64;
        PasidEntry { val }
    }

    /// A present entry translating through the first-stage table at `fsptptr` only
    /// (PGTT = 001), with 5-level paging when `five_level` (FSPM = 1), tagged with
    /// domain id `did`. Linux also fills AW for first-stage entries (with the IOMMU's
    /// AGAW), so `aw` is written too. `fsptptr` must be 4 KiB aligned.
    pub const fn first_stage(fsptptr: u64, five_level: bool, aw: Agaw, did: u16) -> Self {
        let mut val = [0; 8];
        val[0] = PGTT_FS << PGTT_SHIFT | Self::aw_field(aw) | P;
        val[1] = did as u64;
        val[2] = (fsptptr & PTR) | (five_level as u64) << FSPM_SHIFT;
        PasidEntry { val }
    }

    const fn aw_field(aw: Agaw) -> u64 {
        (aw.code() as u64) << PASID_AW_SHIFT
    }

    /// Sets or clears PWSNP (page-walk snoop). Linux sets it when ECAP.SMPWC = 1, i.e.
    /// when table walks are cache-coherent, which is what this library assumes.
    pub const fn with_pwsnp(mut self, on: bool) -> Self {
        self.val[1] = if on {
            self.val[1] | PWSNP
        } else {
            self.val[1] & !PWSNP
        };
        self
    }

    /// Sets or clears PGSNP (force snoop for all DMA through this PASID); Linux uses it
    /// for force-coherent first-stage domains, which have no per-page SNP bit.
    pub const fn with_pgsnp(mut self, on: bool) -> Self {
        self.val[1] = if on {
            self.val[1] | PGSNP
        } else {
            self.val[1] & !PGSNP
        };
        self
    }

    /// The present bit.
    pub const fn present(&self) -> bool {
        self.val[0] & P != 0
    }

    /// The PASID-granular translation type: 1 first stage, 2 second stage, 3 nested,
    /// 4 pass-through.
    pub const fn pgtt(&self) -> u8 {
        ((self.val[0] & PGTT) >> PGTT_SHIFT) as u8
    }

    /// The address width (`val[0][4:2]`), if it is a defined one.
    pub const fn aw(&self) -> Option<Agaw> {
        Agaw::from_code(((self.val[0] >> PASID_AW_SHIFT) & 0x7) as u8)
    }

    /// The second-stage table pointer (`val[0][63:12]`).
    pub const fn ssptptr(&self) -> u64 {
        self.val[0] & PTR
    }

    /// The first-stage table pointer (`val[2][63:12]`).
    pub const fn fsptptr(&self) -> u64 {
        self.val[2] & PTR
    }

    /// Whether first-stage paging is 5-level (FSPM = 1).
    pub const fn five_level(&self) -> bool {
        (self.val[2] & FSPM) >> FSPM_SHIFT == 1
    }

    /// The domain id (`val[1][15:0]`).
    pub const fn did(&self) -> u16 {
        self.val[1] as u16
    }

    /// PWSNP.
    pub const fn pwsnp(&self) -> bool {
        self.val[1] & PWSNP != 0
    }

    /// PGSNP.
    pub const fn pgsnp(&self) -> bool {
        self.val[1] & PGSNP != 0
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

    #[test]
    fn context_entry_fields() {
        let ce = ContextEntry::second_stage(0xdead_b000 | 0xfff, Agaw::Bits57, 0xabcd);
        assert_eq!(ce.lo, 0xdead_b001);
        assert_eq!(ce.hi, 0xab_cd03);
        assert!(ce.present());
        assert_eq!(ce.translation_type(), 0);
        assert_eq!(ce.did(), 0xabcd);
    }

    #[test]
    fn pasid_entry_fields() {
        let pe = PasidEntry::second_stage(0x1000_0000, Agaw::Bits48, 7)
            .with_pwsnp(true)
            .with_pgsnp(true);
        assert_eq!(pe.val[1], 7 | PWSNP | PGSNP);
        assert_eq!(
            (pe.pgtt(), pe.did(), pe.pwsnp(), pe.pgsnp()),
            (2, 7, true, true)
        );
        let pe = pe.with_pwsnp(false).with_pgsnp(false);
        assert_eq!(pe.val[1], 7);
        let fs = PasidEntry::first_stage(0x2000_0000, true, Agaw::Bits57, 1);
        assert_eq!(fs.val[0], 0x4d);
        assert_eq!(fs.val[2], 0x2000_0004);
        assert!(fs.five_level());
        assert_eq!((fs.pgtt(), fs.fsptptr(), fs.ssptptr()), (1, 0x2000_0000, 0));
        assert_eq!(fs.val[3..], [0; 5]);
    }
}
