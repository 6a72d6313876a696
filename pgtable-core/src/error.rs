//! The crate's one error type.

use thiserror::Error;

/// Why a page-table operation was refused.
///
/// Every variant is returned before anything in the table changed, except
/// [`Error::Exists`] and [`Error::NoMemory`] from `map_pages`, which report how many
/// bytes were mapped before the failure (those pages stay mapped).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// The page size is not one this table was configured to map.
    #[error("page size {0:#x} is not supported by this table (see its pgsize_bitmap)")]
    UnsupportedSize(u64),
    /// An address or length is not aligned to the page size it is used with.
    #[error("{what} {value:#x} is not aligned to {align:#x}")]
    Misaligned {
        /// Which argument.
        what: &'static str,
        /// Its value.
        value: u64,
        /// The alignment it needs.
        align: u64,
    },
    /// The IOVA range does not fit the table's input address size.
    #[error("IOVA range {start:#x}..{end:#x} is outside the {bits}-bit input address space")]
    IovaRange {
        /// First IOVA of the request.
        start: u64,
        /// One past the last IOVA of the request (saturating).
        end: u64,
        /// Usable input bits.
        bits: u32,
    },
    /// The output address range does not fit the table's output address size.
    #[error("physical range {start:#x}..{end:#x} is outside the {bits}-bit output address space")]
    PhysRange {
        /// First output address.
        start: u64,
        /// One past the last output address (saturating).
        end: u64,
        /// Output address bits.
        bits: u32,
    },
    /// The permission bits are unknown or grant neither read nor write.
    #[error("bad prot {0:#x}: must contain READ or WRITE and only IOMMU_PT_* bits")]
    BadProt(u32),
    /// A length that must be non-zero was zero.
    #[error("length must not be zero")]
    ZeroLength,
    /// A leaf already maps part of the range.
    #[error("IOVA {iova:#x} is already mapped ({mapped:#x} bytes were mapped before it)")]
    Exists {
        /// The first mapped IOVA met.
        iova: u64,
        /// Bytes this call mapped before it stopped.
        mapped: u64,
    },
    /// The table memory could not provide a table page.
    #[error("out of table memory ({mapped:#x} bytes were mapped before it)")]
    NoMemory {
        /// Bytes this call mapped before it stopped.
        mapped: u64,
    },
    /// Nothing is mapped at the IOVA.
    #[error("IOVA {0:#x} is not mapped")]
    NotMapped(u64),
    /// The configuration asked of a format is not one it supports.
    #[error("unsupported configuration: {0}")]
    BadConfig(String),
    /// A table entry could not be decoded (foreign tables only).
    #[error("IOVA {iova:#x}: {fault}")]
    Fault {
        /// The IOVA being translated.
        iova: u64,
        /// Why the walk stopped.
        fault: crate::Fault,
    },
}

impl Error {
    /// Bytes mapped before the failure, for errors of a `map_pages` that stopped part way.
    pub fn mapped(&self) -> u64 {
        match *self {
            Error::Exists { mapped, .. } | Error::NoMemory { mapped } => mapped,
            _ => 0,
        }
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
