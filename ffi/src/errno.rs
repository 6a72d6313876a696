//! Errors as C sees them: a positive errno value, returned negated, and the detail of
//! the last failure on each thread (`iommu_pt_last_error`).
//!
//! Wherever an error is made, its detail is noted for the call in progress
//! ([`Errno::because`], or the core error's message in the conversions below); when the
//! call fails, [`boundary`](crate::boundary::boundary) takes the noted detail (or the
//! errno's description) and keeps it for C to read. Nothing is written on success, so
//! the fast paths pay nothing: an error is noted only where it is returned, never made
//! and dropped, so a noted detail always belongs to the failure that takes it.

use iova_cache::IovaError;
use pgtable_core::Error;
use std::borrow::Cow;
use std::cell::RefCell;
use std::ffi::{CStr, CString, c_int};

thread_local! {
    /// The detail of the error the call in progress on this thread is making.
    static PENDING: RefCell<Option<Cow<'static, str>>> = const { RefCell::new(None) };
    /// The detail of the last failed call on this thread, as C reads it.
    static LAST: RefCell<CString> = RefCell::new(CString::default());
}

/// Notes `why` as the detail of the error the call in progress is making.
#[cold]
#[inline(never)]
pub(crate) fn note(why: Cow<'static, str>) {
    PENDING.with(|p| *p.borrow_mut() = Some(why));
}

/// Ends a failed call that returns `e`: its detail becomes the thread's last error.
#[cold]
#[inline(never)]
pub(crate) fn record_failure(e: Errno) {
    let why = PENDING
        .with(|p| p.borrow_mut().take())
        .unwrap_or_else(|| Cow::Borrowed(describe(e.0).to_str().unwrap_or("error")));
    // A detail never holds NUL (messages are ours), but cut at one rather than fail.
    let bytes: Vec<u8> = why.bytes().take_while(|&b| b != 0).collect();
    let text = CString::new(bytes).unwrap_or_default();
    LAST.with(|l| *l.borrow_mut() = text);
}

/// Runs `f` with the thread's last error.
pub(crate) fn with_last<R>(f: impl FnOnce(&CStr) -> R) -> R {
    LAST.with(|l| f(&l.borrow()))
}

/// What an errno value (positive or negated) means in this API: static text.
pub(crate) fn describe(err: c_int) -> &'static CStr {
    match err.unsigned_abs() as c_int {
        0 => c"success",
        libc::EINVAL => {
            c"invalid argument: a NULL object or pointer, an unsupported page size, a misaligned address or length, bad prot or flags, or a configuration the format refuses"
        }
        libc::ERANGE => c"address out of range: beyond the input (IOVA) or output address size",
        libc::EEXIST => c"already mapped, allocated or reserved",
        libc::ENOENT => c"nothing there: not mapped, not allocated, or an empty gather",
        libc::ENOMEM => c"out of memory: no table page (or one the format cannot point to), or no IOVA space",
        libc::EIO => {
            c"I/O error: table memory the callbacks cannot map, a corrupt entry, or an internal error caught at the boundary"
        }
        libc::EOPNOTSUPP => c"not supported by this format",
        libc::EBUSY => c"busy: still in use",
        _ => c"unknown error",
    }
}

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

    /// This error, with `why` noted as its detail (see `iommu_pt_last_error`).
    pub(crate) fn because(self, why: &'static str) -> Errno {
        note(Cow::Borrowed(why));
        self
    }

    /// The value a C function returns: `-errno`.
    pub(crate) const fn negated(self) -> c_int {
        -self.0
    }
}

impl From<&Error> for Errno {
    fn from(e: &Error) -> Self {
        note(Cow::Owned(e.to_string()));
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
        note(Cow::Owned(e.to_string()));
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
