//! The 128-bit fault record the IOMMU writes into a fault recording register when it
//! blocks a DMA request (docs/formats.md §8.3).

use crate::bits::{bit, field, flag, mask, place};
use crate::error::{DecodeError, Structure};
use crate::fault_reason::FaultReason;
use crate::source_id::SourceId;
use pgtable_core::Iova;

/// `lo[63:12]`: FI, the faulting page; `lo[11:0]` reserved.
const FI: u64 = mask(63, 12);
/// `hi` fields: SID 15:0, reserved 27:16, T2 28, PRIV 29, EXE 30, PP 31, FR 39:32,
/// PV 59:40, AT 61:60, T1 62, F 63.
const SID_H: u32 = 15;
const HI_RSVD: u64 = mask(27, 16);
const T2: u32 = 28;
const PRIV: u32 = 29;
const EXE: u32 = 30;
const PP: u32 = 31;
const FR_H: u32 = 39;
const FR_L: u32 = 32;
const PV_H: u32 = 59;
const PV_L: u32 = 40;
const AT_H: u32 = 61;
const AT_L: u32 = 60;
const T1: u32 = 62;
const F: u32 = 63;

/// A fault recording register's size.
pub const FAULT_RECORD_SIZE: u64 = 16;

/// The MMIO offset of fault recording register `index` of an IOMMU whose CAP_REG is
/// `cap` (CAP.FRO, bits 33:24, counts 16-byte units).
///
/// ```
/// // QEMU's CAP.FRO = 0x22: the first record at 0x220.
/// assert_eq!(vtd_format::fault_record_offset(0x22 << 24, 0), 0x220);
/// assert_eq!(vtd_format::fault_record_offset(0x22 << 24, 2), 0x240);
/// ```
pub const fn fault_record_offset(cap: u64, index: u32) -> u64 {
    (field(cap, 33, 24) + index as u64) * FAULT_RECORD_SIZE
}

/// How many fault recording registers an IOMMU with CAP_REG `cap` has (CAP.NFR + 1,
/// NFR at bits 47:40).
///
/// ```
/// assert_eq!(vtd_format::fault_record_count(7 << 40), 8);
/// ```
pub const fn fault_record_count(cap: u64) -> u32 {
    field(cap, 47, 40) as u32 + 1
}

/// What kind of address the faulting request carried (AT, `hi[61:60]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum AddressType {
    /// 00: an untranslated request.
    #[default]
    Untranslated = 0,
    /// 01: an ATS translation request.
    TranslationRequest = 1,
    /// 10: an already translated request.
    Translated = 2,
}

/// A primary fault record (128 bits).
///
/// ```
/// use pgtable_core::Iova;
/// use vtd_format::{FaultReason, FaultRecord, SourceId};
/// let rec = FaultRecord {
///     reason: FaultReason::WriteDenied,
///     source: SourceId::new(0, 0x18),
///     address: Iova(0x1234_5000),
///     ..FaultRecord::new(FaultReason::WriteDenied)
/// };
/// assert_eq!(rec.encode(), [0x1234_5000, 0x8000_0005_0000_0018]);
/// assert_eq!(FaultRecord::decode(rec.encode()), Ok(rec));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FaultRecord {
    /// F (`hi[63]`): the register holds a fault (software clears it by writing 1).
    pub valid: bool,
    /// FR (`hi[39:32]`).
    pub reason: FaultReason,
    /// SID (`hi[15:0]`): the requester.
    pub source: SourceId,
    /// FI (`lo[63:12]`): the page of the faulting address; its low 12 bits are not
    /// recorded.
    pub address: Iova,
    /// PP and PV (`hi[31]`, `hi[59:40]`): the request's PASID, if it had one.
    pub pasid: Option<u32>,
    /// T1 (`hi[62]`): 1 = a read, 0 = a write.
    pub read: bool,
    /// T2 (`hi[28]`), the second type bit of newer specs (docs/formats.md §8.3 ⚠).
    pub t2: bool,
    /// PRIV (`hi[29]`): the request was privileged.
    pub privileged: bool,
    /// EXE (`hi[30]`): the request asked for execute permission.
    pub execute: bool,
    /// AT (`hi[61:60]`).
    pub address_type: AddressType,
}

impl FaultRecord {
    /// A valid record of `reason` for an untranslated write without PASID from
    /// requester 0 at address 0; set the other fields with struct-update syntax.
    pub const fn new(reason: FaultReason) -> Self {
        FaultRecord {
            valid: true,
            reason,
            source: SourceId(0),
            address: Iova(0),
            pasid: None,
            read: false,
            t2: false,
            privileged: false,
            execute: false,
            address_type: AddressType::Untranslated,
        }
    }

    /// The two words, low first.
    pub const fn encode(&self) -> [u64; 2] {
        let (pp, pv) = match self.pasid {
            Some(pasid) => (true, pasid as u64),
            None => (false, 0),
        };
        let hi = self.source.0 as u64
            | flag(self.t2, T2)
            | flag(self.privileged, PRIV)
            | flag(self.execute, EXE)
            | flag(pp, PP)
            | place(self.reason.code() as u64, FR_H, FR_L)
            | place(pv, PV_H, PV_L)
            | place(self.address_type as u64, AT_H, AT_L)
            | flag(self.read, T1)
            | flag(self.valid, F);
        [self.address.0 & FI, hi]
    }

    /// The record `words`. With PP clear, PV is ignored.
    ///
    /// # Errors
    /// [`DecodeError::Reserved`] for a set bit of `lo[11:0]` or `hi[27:16]`;
    /// [`DecodeError::UnknownFaultReason`] for an FR code [`FaultReason`] does not
    /// define; [`DecodeError::ReservedValue`] for AT = 11.
    pub const fn decode(words: [u64; 2]) -> Result<Self, DecodeError> {
        let [lo, hi] = words;
        if let Err(e) = Structure::FaultRecord.check(&words, &[mask(11, 0), HI_RSVD]) {
            return Err(e);
        }
        let code = field(hi, FR_H, FR_L) as u8;
        let Some(reason) = FaultReason::from_code(code) else {
            return Err(DecodeError::UnknownFaultReason(code));
        };
        let address_type = match field(hi, AT_H, AT_L) {
            0 => AddressType::Untranslated,
            1 => AddressType::TranslationRequest,
            2 => AddressType::Translated,
            at => return Err(Structure::FaultRecord.invalid("AT", at)),
        };
        Ok(FaultRecord {
            valid: bit(hi, F),
            reason,
            source: SourceId(field(hi, SID_H, 0) as u16),
            address: Iova(lo & FI),
            pasid: if bit(hi, PP) {
                Some(field(hi, PV_H, PV_L) as u32)
            } else {
                None
            },
            read: bit(hi, T1),
            t2: bit(hi, T2),
            privileged: bit(hi, PRIV),
            execute: bit(hi, EXE),
            address_type,
        })
    }
}
