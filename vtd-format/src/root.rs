//! The root of the device → table chain: the RTADDR_REG value, the root table indexed
//! by bus, and its legacy-mode and scalable-mode entries (docs/formats.md §8.1, §8.2).

use crate::bits::{bit, field, flag, mask, place, pointer_above_haw};
use crate::error::{DecodeError, Structure};
use crate::fault_reason::FaultReason;
use pgtable_core::PhysAddr;

/// A root entry's size: 128 bits in both modes.
pub const ROOT_ENTRY_SIZE: u64 = 16;

/// A 4 KiB-aligned pointer field, bits 63:12.
const PTR: u64 = mask(63, 12);
/// Present (LP / UP in scalable mode), bit 0 of each pointer word.
const P: u32 = 0;
/// Reserved below a root entry's pointer: bits 11:1.
const PTR_WORD_RSVD: u64 = mask(11, 1);

/// RTADDR_REG's TTM field, bits 11:10.
const TTM_H: u32 = 11;
const TTM_L: u32 = 10;
/// Reserved RTADDR bits 9:0.
const RTADDR_RSVD: u64 = mask(9, 0);

/// The root-table index of a requester: its bus.
///
/// ```
/// assert_eq!(vtd_format::root_index(0x3a), 0x3a);
/// ```
pub const fn root_index(bus: u8) -> usize {
    bus as usize
}

/// The byte offset of a bus's entry in the root table (`bus * 16`, both modes).
///
/// ```
/// assert_eq!(vtd_format::root_entry_offset(0x3a), 0x3a0);
/// ```
pub const fn root_entry_offset(bus: u8) -> u64 {
    root_index(bus) as u64 * ROOT_ENTRY_SIZE
}

/// How the root table is laid out (RTADDR_REG.TTM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TranslationTableMode {
    /// 00: legacy root and context entries.
    Legacy = 0,
    /// 01: scalable-mode root and context entries, PASID tables.
    Scalable = 1,
}

/// The RTADDR_REG value (MMIO offset 0x20): root-table address (RTA, bits 63:12) and
/// translation-table mode (TTM, bits 11:10). The IOMMU takes it when software sets
/// GCMD.SRTP.
///
/// ```
/// use pgtable_core::PhysAddr;
/// use vtd_format::{RootTableAddress, TranslationTableMode};
/// let rta = RootTableAddress { table: PhysAddr(0x1_2345_6000), mode: TranslationTableMode::Scalable };
/// assert_eq!(rta.encode(), 0x1_2345_6400);
/// assert_eq!(RootTableAddress::decode(0x1_2345_6400, 48), Ok(rta));
/// assert_eq!(rta.root_entry(0x10), PhysAddr(0x1_2345_6100));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RootTableAddress {
    /// The 4 KiB-aligned root table (RTA); its low 12 bits are not encoded.
    pub table: PhysAddr,
    /// Legacy or scalable mode.
    pub mode: TranslationTableMode,
}

impl RootTableAddress {
    /// The register value.
    pub const fn encode(&self) -> u64 {
        (self.table.0 & PTR) | place(self.mode as u64, TTM_H, TTM_L)
    }

    /// The register value `value`, for an IOMMU with host address width `haw`.
    ///
    /// # Errors
    /// [`DecodeError::ReservedValue`] for TTM 10 or 11 (fault 0x31, QEMU's "invalid
    /// TTM"); [`DecodeError::Reserved`] for bits 9:0 or bits of RTA at or above `haw`
    /// (fault 0x8 in legacy mode, 0x30 in scalable mode).
    pub fn decode(value: u64, haw: u32) -> Result<Self, DecodeError> {
        let mode = match field(value, TTM_H, TTM_L) {
            0 => TranslationTableMode::Legacy,
            1 => TranslationTableMode::Scalable,
            ttm => return Err(Structure::RootTableAddress.invalid("TTM", ttm)),
        };
        let bits = value & (RTADDR_RSVD | pointer_above_haw(haw));
        if bits != 0 {
            let reason = match mode {
                TranslationTableMode::Legacy => FaultReason::RootTableAccess,
                TranslationTableMode::Scalable => FaultReason::SmRootTableAddressInvalid,
            };
            return Err(DecodeError::Reserved {
                structure: Structure::RootTableAddress,
                word: 0,
                bits,
                reason: Some(reason),
            });
        }
        Ok(RootTableAddress {
            table: PhysAddr(value & PTR),
            mode,
        })
    }

    /// Where the root entry for `bus` lies.
    pub const fn root_entry(&self, bus: u8) -> PhysAddr {
        PhysAddr((self.table.0 & PTR) + root_entry_offset(bus))
    }
}

/// One present bit and 4 KiB-aligned context-table pointer: a legacy root entry's low
/// word, and each half (LP/LCTP, UP/UCTP) of a scalable-mode root entry.
///
/// ```
/// use pgtable_core::PhysAddr;
/// use vtd_format::ContextTablePointer;
/// let p = ContextTablePointer { present: true, table: PhysAddr(0x5000) };
/// assert_eq!(p.encode(), 0x5001);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ContextTablePointer {
    /// P (legacy), LP or UP (scalable).
    pub present: bool,
    /// CTP, LCTP or UCTP; its low 12 bits are not encoded.
    pub table: PhysAddr,
}

impl ContextTablePointer {
    /// The 64-bit word.
    pub const fn encode(&self) -> u64 {
        (self.table.0 & PTR) | flag(self.present, P)
    }

    /// The fields of `word`, unchecked.
    const fn fields(word: u64) -> Self {
        ContextTablePointer {
            present: bit(word, P),
            table: PhysAddr(word & PTR),
        }
    }

    /// Word `index` of a `structure` root entry: reserved bits 11:1 and those at or
    /// above `haw` are checked when present.
    const fn decode_word(
        word: u64,
        haw: u32,
        structure: Structure,
        index: usize,
    ) -> Result<Self, DecodeError> {
        let p = Self::fields(word);
        let bits = word & (PTR_WORD_RSVD | pointer_above_haw(haw));
        if p.present && bits != 0 {
            return Err(structure.reserved(index, bits));
        }
        Ok(p)
    }
}

/// A legacy-mode root entry (128 bits): P and the context table of one bus; the high
/// word is reserved.
///
/// ```
/// use pgtable_core::PhysAddr;
/// use vtd_format::RootEntry;
/// let re = RootEntry { present: true, context_table: PhysAddr(0x1234_5000) };
/// assert_eq!(re.encode(), [0x1234_5001, 0]);
/// assert_eq!(RootEntry::decode([0x1234_5001, 0], 48), Ok(re));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RootEntry {
    /// P: the bus has a context table.
    pub present: bool,
    /// CTP: the 4 KiB-aligned context table; its low 12 bits are not encoded.
    pub context_table: PhysAddr,
}

impl RootEntry {
    /// The two words, low first.
    pub const fn encode(&self) -> [u64; 2] {
        let p = ContextTablePointer {
            present: self.present,
            table: self.context_table,
        };
        [p.encode(), 0]
    }

    /// The entry `words` of an IOMMU with host address width `haw`. A not-present
    /// entry's other bits are ignored, as the hardware ignores them.
    ///
    /// # Errors
    /// [`DecodeError::Reserved`] (fault 0xA) when a present entry has bits 11:1, bits
    /// of CTP at or above `haw`, or any bit of the high word set.
    pub const fn decode(words: [u64; 2], haw: u32) -> Result<Self, DecodeError> {
        let p = match ContextTablePointer::decode_word(words[0], haw, Structure::RootEntry, 0) {
            Ok(p) => p,
            Err(e) => return Err(e),
        };
        if p.present && words[1] != 0 {
            return Err(Structure::RootEntry.reserved(1, words[1]));
        }
        Ok(RootEntry {
            present: p.present,
            context_table: p.table,
        })
    }

    /// Where the legacy context entry of `devfn` lies, if the entry is present.
    pub const fn context_entry(&self, devfn: u8) -> Option<PhysAddr> {
        if self.present {
            Some(PhysAddr(
                (self.context_table.0 & PTR) + crate::context::context_entry_offset(devfn),
            ))
        } else {
            None
        }
    }
}

/// A scalable-mode root entry (128 bits): the lower half (LP, LCTP) serves devfn
/// 0–127, the upper half (UP, UCTP) devfn 128–255, each with its own 128-entry
/// context table of 256-bit entries.
///
/// ```
/// use pgtable_core::PhysAddr;
/// use vtd_format::{ContextTablePointer, ScalableRootEntry};
/// let re = ScalableRootEntry {
///     lower: ContextTablePointer { present: true, table: PhysAddr(0x1000) },
///     upper: ContextTablePointer { present: false, table: PhysAddr(0) },
/// };
/// assert_eq!(re.encode(), [0x1001, 0]);
/// assert_eq!(re.context_table(0x80), re.upper);
/// assert_eq!(re.context_entry(0x7f), Some(PhysAddr(0x1fe0)));
/// assert_eq!(re.context_entry(0xff), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ScalableRootEntry {
    /// LP and LCTP (low word).
    pub lower: ContextTablePointer,
    /// UP and UCTP (high word).
    pub upper: ContextTablePointer,
}

impl ScalableRootEntry {
    /// The two words, low first.
    pub const fn encode(&self) -> [u64; 2] {
        [self.lower.encode(), self.upper.encode()]
    }

    /// The entry `words` of an IOMMU with host address width `haw`: each present half
    /// is checked; a not-present half's other bits are ignored.
    ///
    /// # Errors
    /// [`DecodeError::Reserved`] (fault 0x3A) when a present half has bits 11:1 or
    /// bits of its pointer at or above `haw` set.
    pub const fn decode(words: [u64; 2], haw: u32) -> Result<Self, DecodeError> {
        let lower = match Self::decode_half(words, false, haw) {
            Ok(p) => p,
            Err(e) => return Err(e),
        };
        match Self::decode_half(words, true, haw) {
            Ok(upper) => Ok(ScalableRootEntry { lower, upper }),
            Err(e) => Err(e),
        }
    }

    /// Only the half a request from `devfn` uses, as the hardware reads it (the other
    /// half is not checked).
    ///
    /// # Errors
    /// As [`ScalableRootEntry::decode`], for that half.
    ///
    /// ```
    /// use vtd_format::ScalableRootEntry;
    /// let words = [0x1001 | 0x2, 0x2001]; // the lower half has reserved bit 1 set
    /// assert!(ScalableRootEntry::decode_for(words, 0x10, 48).is_err());
    /// assert_eq!(ScalableRootEntry::decode_for(words, 0x90, 48).unwrap().encode(), 0x2001);
    /// ```
    pub const fn decode_for(
        words: [u64; 2],
        devfn: u8,
        haw: u32,
    ) -> Result<ContextTablePointer, DecodeError> {
        Self::decode_half(words, devfn >= 0x80, haw)
    }

    const fn decode_half(
        words: [u64; 2],
        upper: bool,
        haw: u32,
    ) -> Result<ContextTablePointer, DecodeError> {
        let index = upper as usize;
        ContextTablePointer::decode_word(words[index], haw, Structure::ScalableRootEntry, index)
    }

    /// The half that serves `devfn`: the upper one for devfn 128–255.
    pub const fn context_table(&self, devfn: u8) -> ContextTablePointer {
        if devfn >= 0x80 {
            self.upper
        } else {
            self.lower
        }
    }

    /// Where the scalable-mode context entry of `devfn` lies, if its half is present.
    pub const fn context_entry(&self, devfn: u8) -> Option<PhysAddr> {
        let half = self.context_table(devfn);
        if half.present {
            Some(PhysAddr(
                (half.table.0 & PTR) + crate::context::scalable_context_entry_offset(devfn),
            ))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtaddr_fields() {
        let legacy = RootTableAddress::decode(0x0000_00ab_cdef_0000, 48).unwrap();
        assert_eq!(legacy.table, PhysAddr(0xab_cdef_0000));
        assert_eq!(legacy.mode, TranslationTableMode::Legacy);
        assert_eq!(
            RootTableAddress::decode(0x800, 48),
            Err(DecodeError::ReservedValue {
                structure: Structure::RootTableAddress,
                field: "TTM",
                value: 2,
                reason: Some(FaultReason::SmLegacyTtm),
            })
        );
        assert_eq!(
            RootTableAddress::decode(0x1_0000_0000_0001, 48),
            Err(DecodeError::Reserved {
                structure: Structure::RootTableAddress,
                word: 0,
                bits: 0x1_0000_0000_0001,
                reason: Some(FaultReason::RootTableAccess),
            })
        );
        assert_eq!(
            RootTableAddress::decode(0x401, 48)
                .unwrap_err()
                .fault_reason(),
            Some(FaultReason::SmRootTableAddressInvalid)
        );
    }

    #[test]
    fn not_present_halves_are_not_checked() {
        let re = ScalableRootEntry::decode([0xffe, 0x1001], 39).unwrap();
        assert!(!re.lower.present);
        assert_eq!(re.upper.table, PhysAddr(0x1000));
        assert_eq!(
            ScalableRootEntry::decode([0x1001, 0x80_0000_1001], 39),
            Err(Structure::ScalableRootEntry.reserved(1, 0x80_0000_0000))
        );
    }
}
