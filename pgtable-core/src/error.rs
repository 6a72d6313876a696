//! The crate's error types: [`Error`] for operations, [`ConfigError`] for configurations.

use crate::addr::{Iova, PhysAddr};
use thiserror::Error;

/// Why a page-table operation was refused.
///
/// Every variant is returned before anything in the table changed, except
/// [`Error::Exists`] and [`Error::NoMemory`] from `map_pages`, which report how many
/// bytes were mapped before the failure (those pages stay mapped).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
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
    #[error("IOVA range {start}+{len:#x} is outside the {bits}-bit input address space")]
    IovaRange {
        /// First IOVA of the request.
        start: Iova,
        /// Length of the request in bytes (saturated at `u64::MAX`).
        len: u64,
        /// Usable input bits.
        bits: u32,
    },
    /// The output address range does not fit the table's output address size.
    #[error("physical range {start}+{len:#x} is outside the {bits}-bit output address space")]
    PhysRange {
        /// First output address.
        start: PhysAddr,
        /// Length in bytes (saturated at `u64::MAX`).
        len: u64,
        /// Output address bits.
        bits: u32,
    },
    /// The permission bits are unknown or grant neither read nor write.
    #[error("bad prot {0:#x}: must contain READ or WRITE and only IOMMU_PT_* bits")]
    BadProt(u32),
    /// A leaf already maps part of the range.
    #[error("IOVA {iova} is already mapped ({mapped:#x} bytes were mapped before it)")]
    Exists {
        /// The first mapped IOVA met.
        iova: Iova,
        /// Bytes this call mapped before it stopped.
        mapped: u64,
    },
    /// The table memory could not provide a table page.
    #[error("out of table memory ({mapped:#x} bytes were mapped before it)")]
    NoMemory {
        /// Bytes this call mapped before it stopped.
        mapped: u64,
    },
    /// The table memory handed out a page whose address the format cannot put in a
    /// table entry (e.g. above the address width of VT-d's table pointers). The page was
    /// given back; nothing was installed.
    #[error("table memory gave a page at {pa} that this format cannot point to")]
    TableUnencodable {
        /// The page's physical address.
        pa: PhysAddr,
    },
    /// The table memory does not map a page of this table back to a CPU address
    /// (a broken [`TableMemory`](crate::TableMemory) or C `mem_ops`). The walk stopped
    /// there; what lies below that table cannot be reached.
    #[error("table memory does not map the table page at {pa}")]
    TableUnreachable {
        /// The page's physical address.
        pa: PhysAddr,
    },
    /// Dirty tracking is off (or the format has no dirty state), so there is nothing to
    /// read.
    #[error("dirty tracking is off")]
    DirtyTrackingOff,
    /// The format has no dirty state to track.
    #[error("this format has no dirty tracking")]
    DirtyUnsupported,
    /// A range that must not be empty was.
    #[error("the range is empty")]
    EmptyRange,
    /// A bitmap too small for the range it reports on.
    #[error("the bitmap holds {have} bits, the range needs {need}")]
    BitmapTooSmall {
        /// Bits needed.
        need: u64,
        /// Bits the bitmap holds.
        have: u64,
    },
    /// The leaf at the IOVA cannot be written (no write permission, or no tracking).
    #[error("IOVA {0} is not writable under dirty tracking")]
    NotTracked(Iova),
    /// Nothing is mapped at the IOVA.
    #[error("IOVA {0} is not mapped")]
    NotMapped(Iova),
    /// The configuration asked of a format is not one it supports.
    #[error("unsupported configuration: {0}")]
    BadConfig(#[from] ConfigError),
    /// A walk of foreign tables read its budget of entries (tables shared between
    /// entries are walked under each of them); what it reported until then is right.
    #[error("the walk stopped after reading its budget of {entries} entries")]
    WalkBudget {
        /// The budget.
        entries: u64,
    },
    /// A table entry could not be decoded (foreign tables only).
    #[error("IOVA {iova}: {fault}")]
    Fault {
        /// The IOVA being translated.
        iova: Iova,
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

/// Why a format or table configuration was refused: which parameter, its value and what
/// would have been accepted.
///
/// ```
/// use pgtable_core::{ConfigError, Geometry};
/// let g = Geometry::new(4, 12, 9, 9, 48, 48, 0x20_0000); // no 4K pages
/// assert_eq!(g.validate(), Err(ConfigError::GranuleNotMapped { granule: 0x1000 }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The input (IOVA) address size is outside what the format supports.
    #[error("input address size {bits} is outside {min}..={max} bits")]
    InputSize {
        /// The requested size.
        bits: u32,
        /// Smallest accepted.
        min: u32,
        /// Largest accepted.
        max: u32,
    },
    /// The output address size is outside what the format supports.
    #[error("output address size {bits} is outside {min}..={max} bits")]
    OutputSize {
        /// The requested size.
        bits: u32,
        /// Smallest accepted.
        min: u32,
        /// Largest accepted.
        max: u32,
    },
    /// The input address size is not one of the few the format supports.
    #[error(
        "input address size {bits} is not supported: it must be {} bits",
        one_of(allowed)
    )]
    InputSizeNotOneOf {
        /// The requested size.
        bits: u32,
        /// The sizes accepted.
        allowed: &'static [u32],
    },
    /// An address size the format supports only with a larger granule (Arm: more than
    /// 48 bits need the 64K granule).
    #[error("{bits}-bit addresses need the {}K granule", granule >> 10)]
    NeedsGranule {
        /// The requested address size.
        bits: u32,
        /// The granule it needs.
        granule: u64,
    },
    /// The address width used for table pointers is outside what the format supports.
    #[error("table address width {bits} is outside {min}..={max} bits")]
    TableAddressWidth {
        /// The requested width.
        bits: u32,
        /// Smallest accepted.
        min: u32,
        /// Largest accepted.
        max: u32,
    },
    /// The translation granule is not one the format supports.
    #[error("granule {0:#x} is not supported")]
    Granule(u64),
    /// The page-size bitmap holds sizes the configuration cannot map.
    #[error(
        "page sizes {unsupported:#x} cannot be mapped by this configuration (it maps {allowed:#x})"
    )]
    PageSizes {
        /// The sizes that are not allowed.
        unsupported: u64,
        /// The sizes that are.
        allowed: u64,
    },
    /// The page-size bitmap lacks the granule, which every table must map.
    #[error("page sizes must include the granule {granule:#x}")]
    GranuleNotMapped {
        /// The granule.
        granule: u64,
    },
    /// Hardware updates (access and dirty flags) were asked of memory that cannot be
    /// written.
    #[error("access/dirty updates need writable memory")]
    ReadOnlyMemory,
    /// The geometry itself is inconsistent (a bug in a format).
    #[error("inconsistent geometry: {0}")]
    Geometry(&'static str),
}

/// "a, b or c".
fn one_of(values: &[u32]) -> String {
    match values {
        [] => "nothing".into(),
        [one] => one.to_string(),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(u32::to_string).collect();
            format!("{} or {last}", init.join(", "))
        }
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
