//! The crate's one error type.

use thiserror::Error;

/// Why an allocator operation was refused.
///
/// Every error is returned before anything changed. [`IovaError::errno`] gives the
/// negative errno the C API returns for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum IovaError {
    /// An argument is out of range (a zero size, `lo > hi`, a bad option, a pfn outside
    /// the domain). The text names the argument and what it must be.
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    /// A checked domain refused `free_fast`: `pfn` does not start a live allocation of
    /// `size` pages (rounded as `alloc_fast` rounds), because it was already freed, was
    /// never allocated, or has another size.
    #[error(
        "bad free_fast of pfn {pfn:#x}, size {size}: not a live allocation of that size (double free or wrong size)"
    )]
    BadFree {
        /// The pfn passed to `free_fast`.
        pfn: u64,
        /// The size passed to `free_fast`.
        size: u64,
    },
    /// No free range of the requested size and alignment lies at or below the limit.
    #[error("no free IOVA range of the requested size and alignment lies at or below the limit")]
    NoSpace,
    /// No allocation contains this pfn (reserved ranges cannot be freed).
    #[error("no allocation contains pfn {0:#x}")]
    NotFound(u64),
    /// The range to reserve overlaps the live allocation `lo..=hi`.
    #[error("the range overlaps the live allocation {lo:#x}..={hi:#x}; free it first")]
    Exists {
        /// First pfn of the conflicting allocation.
        lo: u64,
        /// Last pfn of the conflicting allocation.
        hi: u64,
    },
}

impl IovaError {
    /// The negative errno the C API returns for this error.
    ///
    /// ```
    /// use iova_cache::IovaError;
    /// assert_eq!(IovaError::NoSpace.errno(), -libc::ENOMEM);
    /// assert_eq!(IovaError::NotFound(7).errno(), -libc::ENOENT);
    /// ```
    #[must_use]
    pub fn errno(&self) -> i32 {
        match self {
            IovaError::Invalid(_) | IovaError::BadFree { .. } => -libc::EINVAL,
            IovaError::NoSpace => -libc::ENOMEM,
            IovaError::NotFound(_) => -libc::ENOENT,
            IovaError::Exists { .. } => -libc::EEXIST,
        }
    }
}
