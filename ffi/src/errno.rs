//! Errors as C sees them: a positive errno value, returned negated.

use iova_cache::IovaError;
use pgtable_core::Error;
use std::ffi::c_int;

/// A positive errno value (`EINVAL`, ...); C functions return it negated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Errno(pub(crate) c_int);

impl Errno {
    /// Bad argument, NULL object, bad configuration.
    pub(crate) const INVAL: Errno = Errno(libc::EINVAL);
    /// Nothing mapped / gathered / allocated there.
    pub(crate) const NOENT: Errno = Errno(libc::ENOENT);
    /// A Rust panic was caught at the boundary, or a table entry could not be decoded.
    pub(crate) const IO: Errno = Errno(libc::EIO);

    /// The value a C function returns: `-errno`.
    pub(crate) const fn negated(self) -> c_int {
        -self.0
    }
}

impl From<&Error> for Errno {
    fn from(e: &Error) -> Self {
        Errno(match e {
            Error::UnsupportedSize(_)
            | Error::Misaligned { .. }
            | Error::BadProt(_)
            | Error::BadConfig(_)
            | Error::DirtyTrackingOff
            | Error::EmptyRange
            | Error::BitmapTooSmall { .. }
            | Error::NotTracked(_) => libc::EINVAL,
            Error::DirtyUnsupported => libc::EOPNOTSUPP,
            Error::IovaRange { .. } | Error::PhysRange { .. } => libc::ERANGE,
            Error::Exists { .. } => libc::EEXIST,
            // No usable table memory: none left, or a page whose address the format
            // cannot put in an entry (as Linux refuses such pages with -ENOMEM).
            Error::NoMemory { .. } | Error::TableUnencodable { .. } => libc::ENOMEM,
            Error::NotMapped(_) => libc::ENOENT,
            // `mem_ops->phys_to_virt` failed for a page of this table (broken memory
            // callbacks), or a corrupted entry: an I/O error, not "already mapped".
            Error::TableUnreachable { .. } | Error::Fault { .. } | Error::WalkBudget { .. } => {
                libc::EIO
            }
            _ => libc::EINVAL,
        })
    }
}

impl From<Error> for Errno {
    fn from(e: Error) -> Self {
        Errno::from(&e)
    }
}

impl From<IovaError> for Errno {
    fn from(e: IovaError) -> Self {
        Errno(-e.errno())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgtable_core::{ConfigError, Iova, PhysAddr};

    #[test]
    fn core_errors_map_to_the_documented_errno() {
        let rows = [
            (Error::UnsupportedSize(0x3000), libc::EINVAL),
            (
                Error::Misaligned {
                    what: "iova",
                    value: 1,
                    align: 4096,
                },
                libc::EINVAL,
            ),
            (Error::BadProt(0), libc::EINVAL),
            (Error::BadConfig(ConfigError::Granule(0x2000)), libc::EINVAL),
            (
                Error::IovaRange {
                    start: Iova(0),
                    len: 0,
                    bits: 48,
                },
                libc::ERANGE,
            ),
            (
                Error::PhysRange {
                    start: PhysAddr(0),
                    len: 0,
                    bits: 48,
                },
                libc::ERANGE,
            ),
            (
                Error::Exists {
                    iova: Iova(0),
                    mapped: 0x1000,
                },
                libc::EEXIST,
            ),
            (Error::NoMemory { mapped: 0 }, libc::ENOMEM),
            (
                Error::TableUnencodable {
                    pa: PhysAddr(1 << 60),
                },
                libc::ENOMEM,
            ),
            (
                Error::TableUnreachable {
                    pa: PhysAddr(0x1000),
                },
                libc::EIO,
            ),
            (Error::NotMapped(Iova(0)), libc::ENOENT),
        ];
        for (e, errno) in rows {
            assert_eq!(Errno::from(&e).negated(), -errno, "{e}");
        }
    }

    #[test]
    fn iova_errors_keep_their_errno() {
        assert_eq!(Errno::from(IovaError::NoSpace).negated(), -libc::ENOMEM);
        assert_eq!(Errno::from(IovaError::NotFound(3)).negated(), -libc::ENOENT);
        assert_eq!(
            Errno::from(IovaError::Exists { lo: 1, hi: 2 }).negated(),
            -libc::EEXIST
        );
    }
}
