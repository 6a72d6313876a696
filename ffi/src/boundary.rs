//! The one way into Rust from C: [`boundary`] runs an exported function's body, catches
//! any panic, and turns errors into the function's C return value; [`obj`],
//! [`obj_mut`] and [`out`] reject NULL pointers with `-EINVAL`.

use crate::errno::{self, Errno};
use std::ffi::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;

/// A C return type: what it carries for an error and for a caught panic.
pub(crate) trait CReturn {
    /// The value returned for `e`.
    fn failed(e: Errno) -> Self;
    /// The value returned when the body panicked.
    fn panicked() -> Self;
}

/// `int` functions: `-errno`, `-EIO` for a panic.
impl CReturn for c_int {
    fn failed(e: Errno) -> Self {
        e.negated()
    }
    fn panicked() -> Self {
        Errno::IO.negated()
    }
}

/// `uint64_t` functions (byte counts, addresses, pfns): 0 is their "nothing".
impl CReturn for u64 {
    fn failed(_: Errno) -> Self {
        0
    }
    fn panicked() -> Self {
        0
    }
}

/// Constructors returning a pointer: NULL.
impl<T> CReturn for *mut T {
    fn failed(_: Errno) -> Self {
        std::ptr::null_mut()
    }
    fn panicked() -> Self {
        std::ptr::null_mut()
    }
}

/// `void` functions have no error channel.
impl CReturn for () {
    fn failed(_: Errno) -> Self {}
    fn panicked() -> Self {}
}

/// Runs the body of an exported function: its `Err` becomes the C error value of `R`,
/// and a panic becomes `-EIO` (or 0 / NULL / nothing) instead of unwinding into C,
/// which would be undefined behaviour.
///
/// The body may have left its table part way through an operation when it panicked;
/// the core never panics on bad input and its tables stay memory safe under any
/// interleaving, so the handle stays usable.
///
/// A failure leaves its detail for `iommu_pt_last_error` on this thread.
pub(crate) fn boundary<R: CReturn>(body: impl FnOnce() -> Result<R, Errno>) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            errno::record_failure(e);
            R::failed(e)
        }
        Err(payload) => {
            caught(payload.as_ref());
            R::panicked()
        }
    }
}

/// Notes a caught panic as the thread's last error.
#[cold]
#[inline(never)]
fn caught(payload: &(dyn std::any::Any + Send)) {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    errno::note(format!("internal error (a Rust panic was caught): {what}").into());
    errno::record_failure(Errno::IO);
}

/// The object behind a handle, or `-EINVAL` for NULL.
///
/// # Safety
/// `p` must be NULL or point to a live `T` that nobody mutates for `'a` (the C API's
/// objects are `Sync`; their functions take `&self`).
pub(crate) unsafe fn obj<'a, T>(p: *const T) -> Result<&'a T, Errno> {
    // SAFETY: forwarded from the caller; `as_ref` handles NULL.
    unsafe { p.as_ref() }.ok_or_else(|| Errno::INVAL.because("a NULL object"))
}

/// The object behind a handle owned by the calling thread, or `-EINVAL` for NULL.
///
/// # Safety
/// `p` must be NULL or point to a live `T` that nobody else uses for `'a`.
pub(crate) unsafe fn obj_mut<'a, T>(p: *mut T) -> Result<&'a mut T, Errno> {
    // SAFETY: forwarded from the caller; `as_mut` handles NULL.
    unsafe { p.as_mut() }.ok_or_else(|| Errno::INVAL.because("a NULL object"))
}

/// An out-parameter the function must write, or `-EINVAL` for NULL. Checked before the
/// function does anything, written (with [`NonNull::write`]) when it succeeds.
pub(crate) fn out<T>(p: *mut T) -> Result<NonNull<T>, Errno> {
    NonNull::new(p).ok_or_else(|| Errno::INVAL.because("a NULL output pointer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_eio_or_the_empty_value() {
        let quiet = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let int: c_int = boundary(|| panic!("boom"));
        let count: u64 = boundary(|| panic!("boom"));
        let ptr: *mut u8 = boundary(|| panic!("boom"));
        std::panic::set_hook(quiet);
        assert_eq!(int, -libc::EIO);
        assert_eq!(count, 0);
        assert!(ptr.is_null());
    }

    #[test]
    fn errors_become_negative_errno() {
        let int: c_int = boundary(|| Err(Errno(libc::ERANGE)));
        assert_eq!(int, -libc::ERANGE);
        let ok: c_int = boundary(|| Ok(0));
        assert_eq!(ok, 0);
        let count: u64 = boundary(|| Err(Errno::INVAL));
        assert_eq!(count, 0);
    }

    #[test]
    fn null_pointers_are_einval() {
        // SAFETY: NULL is allowed.
        assert_eq!(unsafe { obj::<u32>(std::ptr::null()) }, Err(Errno::INVAL));
        // SAFETY: NULL is allowed.
        assert!(unsafe { obj_mut::<u32>(std::ptr::null_mut()) }.is_err());
        assert!(out::<u32>(std::ptr::null_mut()).is_err());
        let mut x = 5u32;
        // SAFETY: `x` is live and unshared.
        assert_eq!(unsafe { obj(&raw const x) }, Ok(&5));
        assert!(out(&raw mut x).is_ok());
    }
}
