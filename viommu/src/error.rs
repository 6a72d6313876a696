//! The crate's one error type.

use std::path::PathBuf;
use thiserror::Error;

/// Why a memory could not be set up or accessed. Each message is one line a user can
/// act on.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be opened, sized or mapped.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file (`<anonymous>` for an anonymous mapping).
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// An image file has no bytes.
    #[error("{}: the image is empty", path.display())]
    EmptyImage {
        /// The file.
        path: PathBuf,
    },
    /// An image's size is not a whole number of 64-bit words.
    #[error(
        "{}: the image is {len} bytes, not a whole number of 64-bit entries (truncated?)",
        path.display()
    )]
    NotWholeWords {
        /// The file (`<anonymous>` for memory built in place).
        path: PathBuf,
        /// Its size in bytes.
        len: u64,
    },
    /// The physical base of a memory is not 8-byte aligned.
    #[error("base {base:#x} is not 8-byte aligned")]
    MisalignedBase {
        /// The base asked for.
        base: u64,
    },
    /// A memory of this size at this base would end beyond 2^64.
    #[error("base {base:#x}: {len} bytes there would end beyond 2^64")]
    BeyondTop {
        /// The base asked for.
        base: u64,
        /// The memory's size in bytes.
        len: u64,
    },
    /// The memory is larger than this process can map.
    #[error("{len} bytes are too many to map in this process")]
    TooLarge {
        /// The size asked for.
        len: u64,
    },
    /// A physical range is not (wholly) inside the memory, or not in one region of it.
    #[error("physical range {pa:#x}+{len:#x} is not in memory")]
    OutOfRange {
        /// First byte of the range.
        pa: u64,
        /// Its length in bytes.
        len: u64,
    },
    /// A 64-bit word access at an address that is not 8-byte aligned.
    #[error("physical address {pa:#x} is not 8-byte aligned for a 64-bit access")]
    Misaligned {
        /// The address.
        pa: u64,
    },
    /// A write to memory that is mapped read-only.
    #[error("cannot write {len:#x} bytes at {pa:#x}: the memory is read-only")]
    ReadOnly {
        /// First byte of the write.
        pa: u64,
        /// Its length in bytes.
        len: u64,
    },
}

/// `Result` with this crate's [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
