//! [`DecodeError`]: why a VT-d structure read from memory (or a register value) is not
//! one the hardware accepts, and which fault reason the hardware records for it.

use crate::fault_reason::FaultReason;
use std::fmt;

/// The VT-d structures this crate decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Structure {
    /// The RTADDR_REG value.
    RootTableAddress,
    /// A legacy-mode root entry.
    RootEntry,
    /// A scalable-mode root entry.
    ScalableRootEntry,
    /// A legacy-mode context entry.
    ContextEntry,
    /// A scalable-mode context entry.
    ScalableContextEntry,
    /// A PASID-directory entry.
    PasidDirEntry,
    /// A PASID-table entry.
    PasidEntry,
    /// A fault record.
    FaultRecord,
    /// A queued-invalidation descriptor.
    InvalidationDescriptor,
}

impl Structure {
    /// The name, as messages print it.
    pub const fn name(self) -> &'static str {
        match self {
            Structure::RootTableAddress => "RTADDR_REG",
            Structure::RootEntry => "root entry",
            Structure::ScalableRootEntry => "scalable-mode root entry",
            Structure::ContextEntry => "context entry",
            Structure::ScalableContextEntry => "scalable-mode context entry",
            Structure::PasidDirEntry => "PASID-directory entry",
            Structure::PasidEntry => "PASID entry",
            Structure::FaultRecord => "fault record",
            Structure::InvalidationDescriptor => "invalidation descriptor",
        }
    }

    /// The fault a present entry of this structure with a reserved bit set raises:
    /// 0xA / 0x3A (root entry), 0xB / 0x42 (context entry), 0x52, 0x5A; none for
    /// what software reads (fault records), the invalidation queue (which reports an
    /// invalidation-queue error, FSTS.IQE, instead) and RTADDR (whose fault depends on
    /// its TTM: [`crate::RootTableAddress::decode`]).
    pub const fn reserved_fault(self) -> Option<FaultReason> {
        match self {
            Structure::RootEntry => Some(FaultReason::RootEntryReserved),
            Structure::ScalableRootEntry => Some(FaultReason::SmRootEntryReserved),
            Structure::ContextEntry => Some(FaultReason::ContextEntryReserved),
            Structure::ScalableContextEntry => Some(FaultReason::SmContextEntryReserved),
            Structure::PasidDirEntry => Some(FaultReason::PasidDirEntryReserved),
            Structure::PasidEntry => Some(FaultReason::PasidEntryReserved),
            Structure::RootTableAddress
            | Structure::FaultRecord
            | Structure::InvalidationDescriptor => None,
        }
    }

    /// The fault a present entry of this structure with a reserved field value raises:
    /// 0x3 (legacy context entry), 0x43 (scalable context entry), 0x5B (PASID entry),
    /// 0x31 (RTADDR's TTM).
    pub const fn invalid_fault(self) -> Option<FaultReason> {
        match self {
            Structure::RootTableAddress => Some(FaultReason::SmLegacyTtm),
            Structure::ContextEntry => Some(FaultReason::ContextEntryInvalid),
            Structure::ScalableContextEntry => Some(FaultReason::SmContextEntryInvalid),
            Structure::PasidEntry => Some(FaultReason::PasidEntryInvalid),
            _ => None,
        }
    }

    /// The error for reserved `bits` set in word `word`.
    pub(crate) const fn reserved(self, word: usize, bits: u64) -> DecodeError {
        DecodeError::Reserved {
            structure: self,
            word,
            bits,
            reason: self.reserved_fault(),
        }
    }

    /// `Ok` when no bit of `reserved` is set in word `word` of `words`.
    pub(crate) const fn check(self, words: &[u64], reserved: &[u64]) -> Result<(), DecodeError> {
        let mut i = 0;
        while i < words.len() {
            let bits = words[i] & reserved[i];
            if bits != 0 {
                return Err(self.reserved(i, bits));
            }
            i += 1;
        }
        Ok(())
    }

    /// The error for a reserved `value` of `field`.
    pub(crate) const fn invalid(self, field: &'static str, value: u64) -> DecodeError {
        DecodeError::ReservedValue {
            structure: self,
            field,
            value,
            reason: self.invalid_fault(),
        }
    }
}

impl fmt::Display for Structure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a VT-d structure does not decode.
///
/// [`DecodeError::fault_reason`] is the FR code the hardware records for it, so a
/// walker can turn a decode error straight into a fault record.
///
/// ```
/// use vtd_format::{DecodeError, FaultReason, RootEntry};
/// let err = RootEntry::decode([0x1000_0001 | 0x10, 0], 48).unwrap_err();
/// assert_eq!(err.fault_reason(), Some(FaultReason::RootEntryReserved));
/// assert_eq!(err.to_string(), "root entry: reserved bits 0x10 set in word 0 (fault 0x0a)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A present structure has reserved bits set.
    #[error("{structure}: reserved bits {bits:#x} set in word {word}{}", fault_suffix(*reason))]
    Reserved {
        /// Which structure.
        structure: Structure,
        /// The 64-bit word holding the bits (0 = lowest).
        word: usize,
        /// The reserved bits that are set.
        bits: u64,
        /// What the hardware records.
        reason: Option<FaultReason>,
    },
    /// A present structure has a field value the architecture reserves.
    #[error("{structure}: {field} = {value:#x} is a reserved value{}", fault_suffix(*reason))]
    ReservedValue {
        /// Which structure.
        structure: Structure,
        /// The field, by its spec name.
        field: &'static str,
        /// Its value.
        value: u64,
        /// What the hardware records.
        reason: Option<FaultReason>,
    },
    /// A queued-invalidation descriptor type the architecture does not define (the
    /// hardware reports an invalidation-queue error).
    #[error("invalidation descriptor type {0:#x} is not defined")]
    UnknownDescriptorType(u8),
    /// A fault record's FR code is not one [`FaultReason`] defines.
    #[error("fault reason {0:#x} is not defined")]
    UnknownFaultReason(u8),
}

/// " (fault 0x..)" when there is one.
fn fault_suffix(reason: Option<FaultReason>) -> String {
    reason.map_or_else(String::new, |r| format!(" (fault {:#04x})", r.code()))
}

impl DecodeError {
    /// The fault reason the hardware records for this error; `None` for what is no
    /// DMA-remapping fault (invalidation descriptors, fault records).
    pub const fn fault_reason(&self) -> Option<FaultReason> {
        match *self {
            DecodeError::Reserved { reason, .. } | DecodeError::ReservedValue { reason, .. } => {
                reason
            }
            DecodeError::UnknownDescriptorType(_) | DecodeError::UnknownFaultReason(_) => None,
        }
    }
}
