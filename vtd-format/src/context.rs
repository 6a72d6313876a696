//! The context entry of a device (bus, devfn): legacy mode, 128 bits, pointing at the
//! second-stage table; scalable mode, 256 bits, pointing at the PASID directory
//! (docs/formats.md §1.2, §8.1, §8.2).

use crate::agaw::Agaw;
use crate::bits::{bit, field, flag, mask, place, pointer_above_haw, with_bit, with_field};
use crate::error::{DecodeError, Structure};
use pgtable_core::PhysAddr;

/// A legacy-mode context entry's size.
pub const CONTEXT_ENTRY_SIZE: u64 = 16;
/// A scalable-mode context entry's size.
pub const SCALABLE_CONTEXT_ENTRY_SIZE: u64 = 32;

/// Present (bit 0 of the first word, both modes).
const P: u32 = 0;
/// Fault processing disable (bit 1 of the first word, both modes).
const FPD: u32 = 1;
/// A 4 KiB-aligned table pointer field, bits 63:12.
const PTR: u64 = mask(63, 12);
/// Domain id: context `hi[23:8]`.
const CTX_DID_SHIFT: u32 = 8;
/// Translation type: context `lo[3:2]`.
const CTX_TT: u64 = mask(3, 2);
/// Address width: `hi[2:0]`.
const CTX_AW: u64 = mask(2, 0);
/// Legacy reserved bits: `lo[11:4]`, `hi[7]` and `hi[63:24]` (QEMU
/// `VTD_CONTEXT_ENTRY_RSVD_LO/HI`).
const CTX_RSVD_LO: u64 = mask(11, 4);
const CTX_RSVD_HI: u64 = mask(63, 24) | 1 << 7;

/// Scalable-mode `val[0]`: DTE, PASIDE, PRE, reserved 8:5, PDTS 11:9.
const SM_DTE: u32 = 2;
const SM_PASIDE: u32 = 3;
const SM_PRE: u32 = 4;
const SM_RSVD0: u64 = mask(8, 5);
const SM_PDTS_H: u32 = 11;
const SM_PDTS_L: u32 = 9;
/// Scalable-mode `val[1]`: RID_PASID 19:0, RID_PRIV 20, reserved 63:21.
const SM_RID_PASID_H: u32 = 19;
const SM_RID_PRIV: u32 = 20;
const SM_RSVD1: u64 = mask(63, 21);

/// The legacy context-table index of a requester: its devfn (256 entries).
///
/// ```
/// assert_eq!(vtd_format::context_index(0xa3), 0xa3);
/// ```
pub const fn context_index(devfn: u8) -> usize {
    devfn as usize
}

/// The byte offset of `devfn`'s entry in a legacy context table (`devfn * 16`).
///
/// ```
/// assert_eq!(vtd_format::context_entry_offset(0xa3), 0xa30);
/// ```
pub const fn context_entry_offset(devfn: u8) -> u64 {
    context_index(devfn) as u64 * CONTEXT_ENTRY_SIZE
}

/// The scalable-mode context-table index of a requester: `devfn & 0x7f`, in the
/// table of the root entry's lower (devfn < 128) or upper half.
///
/// ```
/// assert_eq!(vtd_format::scalable_context_index(0xa3), 0x23);
/// ```
pub const fn scalable_context_index(devfn: u8) -> usize {
    (devfn & 0x7f) as usize
}

/// The byte offset of `devfn`'s entry in its scalable-mode context table
/// (`(devfn & 0x7f) * 32`).
///
/// ```
/// assert_eq!(vtd_format::scalable_context_entry_offset(0xa3), 0x460);
/// ```
pub const fn scalable_context_entry_offset(devfn: u8) -> u64 {
    scalable_context_index(devfn) as u64 * SCALABLE_CONTEXT_ENTRY_SIZE
}

/// A legacy context entry's translation type (TT, `lo[3:2]`); 11 is reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TranslationType {
    /// 00: untranslated requests go through the second-stage table; translation
    /// requests are blocked (fault 0xD).
    Untranslated = 0,
    /// 01: as 00, and ATS translation requests are served (needs ECAP.DT).
    DeviceTlb = 1,
    /// 10: untranslated requests pass through untranslated (needs ECAP.PT).
    PassThrough = 2,
}

impl TranslationType {
    /// The type of TT value `code`; `None` for the reserved 11 (and beyond).
    ///
    /// ```
    /// use vtd_format::TranslationType;
    /// assert_eq!(TranslationType::from_code(2), Some(TranslationType::PassThrough));
    /// assert_eq!(TranslationType::from_code(3), None);
    /// ```
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(TranslationType::Untranslated),
            1 => Some(TranslationType::DeviceTlb),
            2 => Some(TranslationType::PassThrough),
            _ => None,
        }
    }
}

/// A legacy-mode (RTADDR.TTM = 00) context entry, 128 bits as two little-endian words.
///
/// The words are the entry; accessors read and `with_*` builders write its fields:
/// P, FPD, TT, SSPTPTR (`lo`), AW, DID (`hi`). The ignored AVAIL bits `hi[6:3]` are
/// kept as they are.
///
/// ```
/// use vtd_format::{Agaw, ContextEntry, TranslationType};
/// let ce = ContextEntry::second_stage(0x1000_0000, Agaw::Bits48, 1);
/// assert_eq!(ce.words(), [0x1000_0001, 0x102]); // docs/formats.md §5.1
/// assert_eq!((ce.ssptptr(), ce.aw(), ce.did()), (0x1000_0000, Some(Agaw::Bits48), 1));
/// let ats = ce.with_translation_type(TranslationType::DeviceTlb).with_fpd(true);
/// assert_eq!(ats.words(), [0x1000_0007, 0x102]);
/// assert_eq!(ContextEntry::decode(ats.words(), 48), Ok(ats));
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
            lo: (ssptptr & PTR) | flag(true, P),
            hi: aw.code() as u64 | (did as u64) << CTX_DID_SHIFT,
        }
    }

    /// The entry as the IOMMU reads it, low word first.
    pub const fn words(&self) -> [u64; 2] {
        [self.lo, self.hi]
    }

    /// The entry `words` of an IOMMU with host address width `haw`, checked as the
    /// hardware checks a present entry (a not-present one is returned as it is).
    /// Whether AW is in CAP.SAGAW and TT is supported (ECAP.DT/PT) depends on the
    /// IOMMU and is left to the caller (fault 0x3).
    ///
    /// # Errors
    /// [`DecodeError::Reserved`] (fault 0xB) for a set bit of `lo[11:4]`, of SSPTPTR at
    /// or above `haw`, of `hi[7]` or `hi[63:24]`; [`DecodeError::ReservedValue`]
    /// (fault 0x3) for TT = 11.
    pub const fn decode(words: [u64; 2], haw: u32) -> Result<Self, DecodeError> {
        let ce = ContextEntry {
            lo: words[0],
            hi: words[1],
        };
        if !ce.present() {
            return Ok(ce);
        }
        let reserved = [CTX_RSVD_LO | pointer_above_haw(haw), CTX_RSVD_HI];
        if let Err(e) = Structure::ContextEntry.check(&words, &reserved) {
            return Err(e);
        }
        if TranslationType::from_code(ce.translation_type()).is_none() {
            return Err(Structure::ContextEntry.invalid("TT", ce.translation_type() as u64));
        }
        Ok(ce)
    }

    /// The present bit.
    pub const fn present(&self) -> bool {
        bit(self.lo, P)
    }

    /// Fault processing disable (`lo[1]`): qualified faults of this device are not
    /// recorded.
    pub const fn fpd(&self) -> bool {
        bit(self.lo, FPD)
    }

    /// The translation type (TT, `lo[3:2]`): 0 = SS tables, 1 = also ATS, 2 = pass-through
    /// (see [`TranslationType::from_code`]).
    pub const fn translation_type(&self) -> u8 {
        ((self.lo & CTX_TT) >> 2) as u8
    }

    /// The second-stage table pointer.
    pub const fn ssptptr(&self) -> u64 {
        self.lo & PTR
    }

    /// The address width (`hi[2:0]`), if it is a defined one.
    pub const fn aw(&self) -> Option<Agaw> {
        Agaw::from_code((self.hi & CTX_AW) as u8)
    }

    /// The domain id (`hi[23:8]`).
    pub const fn did(&self) -> u16 {
        (self.hi >> CTX_DID_SHIFT) as u16
    }

    /// The same entry with P = `on`.
    pub const fn with_present(mut self, on: bool) -> Self {
        self.lo = with_bit(self.lo, P, on);
        self
    }

    /// The same entry with FPD = `on`.
    pub const fn with_fpd(mut self, on: bool) -> Self {
        self.lo = with_bit(self.lo, FPD, on);
        self
    }

    /// The same entry with translation type `tt`.
    pub const fn with_translation_type(mut self, tt: TranslationType) -> Self {
        self.lo = with_field(self.lo, 3, 2, tt as u64);
        self
    }

    /// The same entry pointing at the 4 KiB-aligned table `ssptptr` (low 12 bits
    /// dropped).
    pub const fn with_ssptptr(mut self, ssptptr: u64) -> Self {
        self.lo = (self.lo & !PTR) | (ssptptr & PTR);
        self
    }

    /// The same entry with address width `aw`.
    pub const fn with_aw(mut self, aw: Agaw) -> Self {
        self.hi = with_field(self.hi, 2, 0, aw.code() as u64);
        self
    }

    /// The same entry with domain id `did`.
    pub const fn with_did(mut self, did: u16) -> Self {
        self.hi = with_field(self.hi, 23, 8, did as u64);
        self
    }
}

/// A scalable-mode (RTADDR.TTM = 01) context entry, 256 bits: it points at the device's
/// PASID directory and says which requests the device may make.
///
/// ```
/// use pgtable_core::PhysAddr;
/// use vtd_format::ScalableContextEntry;
/// let ce = ScalableContextEntry {
///     present: true,
///     paside: true,
///     pdts: 2, // 2^9 directory entries: PASIDs below 2^15
///     pasid_dir: PhysAddr(0x4000_0000),
///     ..Default::default()
/// };
/// assert_eq!(ce.encode(), [0x4000_0409, 0, 0, 0]);
/// assert_eq!(ScalableContextEntry::decode(ce.encode(), 48), Ok(ce));
/// assert!(ce.covers_pasid(0x7fff) && !ce.covers_pasid(0x8000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ScalableContextEntry {
    /// P (`val[0][0]`).
    pub present: bool,
    /// FPD (`val[0][1]`): qualified faults are not recorded.
    pub fpd: bool,
    /// DTE (`val[0][2]`): device-TLB (ATS) translation requests allowed.
    pub dte: bool,
    /// PASIDE (`val[0][3]`): requests with PASID allowed.
    pub paside: bool,
    /// PRE (`val[0][4]`): page requests allowed.
    pub pre: bool,
    /// PDTS (`val[0][11:9]`, 0..=7): the PASID directory holds 2^(PDTS+7) entries.
    pub pdts: u8,
    /// PASIDDIRPTR (`val[0][63:12]`): the 4 KiB-aligned PASID directory; its low 12
    /// bits are not encoded.
    pub pasid_dir: PhysAddr,
    /// RID_PASID (`val[1][19:0]`): the PASID of requests without one.
    pub rid_pasid: u32,
    /// RID_PRIV (`val[1][20]`): requests without PASID are privileged.
    pub rid_priv: bool,
}

impl ScalableContextEntry {
    /// The four words, `val[0]` first. Fields wider than their bit ranges are
    /// truncated.
    pub const fn encode(&self) -> [u64; 4] {
        let val0 = flag(self.present, P)
            | flag(self.fpd, FPD)
            | flag(self.dte, SM_DTE)
            | flag(self.paside, SM_PASIDE)
            | flag(self.pre, SM_PRE)
            | place(self.pdts as u64, SM_PDTS_H, SM_PDTS_L)
            | (self.pasid_dir.0 & PTR);
        let val1 =
            place(self.rid_pasid as u64, SM_RID_PASID_H, 0) | flag(self.rid_priv, SM_RID_PRIV);
        [val0, val1, 0, 0]
    }

    /// The entry `words` of an IOMMU with host address width `haw`. A not-present
    /// entry's other bits are ignored.
    ///
    /// # Errors
    /// [`DecodeError::Reserved`] (fault 0x42) when a present entry has a bit of
    /// `val[0][8:5]`, of PASIDDIRPTR at or above `haw`, of `val[1][63:21]`, or of
    /// `val[2]`/`val[3]` set.
    pub const fn decode(words: [u64; 4], haw: u32) -> Result<Self, DecodeError> {
        let val0 = words[0];
        let ce = ScalableContextEntry {
            present: bit(val0, P),
            fpd: bit(val0, FPD),
            dte: bit(val0, SM_DTE),
            paside: bit(val0, SM_PASIDE),
            pre: bit(val0, SM_PRE),
            pdts: field(val0, SM_PDTS_H, SM_PDTS_L) as u8,
            pasid_dir: PhysAddr(val0 & PTR),
            rid_pasid: field(words[1], SM_RID_PASID_H, 0) as u32,
            rid_priv: bit(words[1], SM_RID_PRIV),
        };
        if !ce.present {
            return Ok(ce);
        }
        let reserved = [
            SM_RSVD0 | pointer_above_haw(haw),
            SM_RSVD1,
            u64::MAX,
            u64::MAX,
        ];
        match Structure::ScalableContextEntry.check(&words, &reserved) {
            Ok(()) => Ok(ce),
            Err(e) => Err(e),
        }
    }

    /// Entries of the PASID directory: 2^(PDTS+7).
    pub const fn pasid_dir_entries(&self) -> u32 {
        1 << ((self.pdts & 7) + 7)
    }

    /// Whether `pasid` falls inside the PASID directory (else fault 0x46).
    pub const fn covers_pasid(&self, pasid: u32) -> bool {
        (crate::pasid::pasid_dir_index(pasid) as u64) < self.pasid_dir_entries() as u64
            && pasid >> crate::pasid::PASID_BITS == 0
    }

    /// Where the PASID-directory entry of `pasid` lies.
    pub const fn pasid_dir_entry(&self, pasid: u32) -> PhysAddr {
        PhysAddr((self.pasid_dir.0 & PTR) + crate::pasid::pasid_dir_entry_offset(pasid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault_reason::FaultReason;

    #[test]
    fn context_entry_fields() {
        let ce = ContextEntry::second_stage(0xdead_b000 | 0xfff, Agaw::Bits57, 0xabcd);
        assert_eq!(ce.lo, 0xdead_b001);
        assert_eq!(ce.hi, 0xab_cd03);
        assert!(ce.present());
        assert_eq!(ce.translation_type(), 0);
        assert_eq!(ce.did(), 0xabcd);
        let moved = ce
            .with_ssptptr(0x1234_5000)
            .with_aw(Agaw::Bits39)
            .with_did(7)
            .with_present(false);
        assert_eq!(moved.words(), [0x1234_5000, 0x701]);
    }

    #[test]
    fn legacy_tt_11_is_invalid_not_reserved() {
        let ce = ContextEntry::second_stage(0x1000, Agaw::Bits48, 1);
        let words = [ce.lo | 0xc, ce.hi];
        let err = ContextEntry::decode(words, 48).unwrap_err();
        assert_eq!(err.fault_reason(), Some(FaultReason::ContextEntryInvalid));
        // The AVAIL bits are ignored, not reserved.
        assert!(ContextEntry::decode([ce.lo, ce.hi | 0x78], 48).is_ok());
    }

    #[test]
    fn pasid_directory_bounds() {
        let ce = ScalableContextEntry {
            pdts: 7,
            ..Default::default()
        };
        assert_eq!(ce.pasid_dir_entries(), 1 << 14);
        assert!(ce.covers_pasid(0xf_ffff) && !ce.covers_pasid(0x10_0000));
        assert_eq!(ScalableContextEntry::default().pasid_dir_entries(), 128);
        assert!(ScalableContextEntry::default().covers_pasid(0x1fff));
        assert!(!ScalableContextEntry::default().covers_pasid(0x2000));
    }
}
