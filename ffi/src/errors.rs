//! `iommu_pt_strerror` and `iommu_pt_last_error`: what an error value means, and the
//! detail of the last failure on this thread.

use crate::errno;
use std::ffi::{c_char, c_int};

/// What the error value `err` (a negative return value, or a positive errno) means in
/// this API: a static NUL-terminated string, never NULL, never freed. For `-EINVAL`,
/// which several causes share, `iommu_pt_last_error` says which one it was.
///
/// Thread safety: may be called from any thread.
#[unsafe(no_mangle)]
pub extern "C" fn iommu_pt_strerror(err: c_int) -> *const c_char {
    errno::describe(err).as_ptr()
}

/// The detail of the last call on this thread that failed (returned a negative errno,
/// 0 where 0 means failure, or NULL), e.g. `"paddr 0x1234 is not aligned to 0x1000"`;
/// `""` before any failure. Like `errno`, a successful call leaves it as it was, so read
/// it right after the failure. The string is NUL-terminated and stays valid until the
/// next failing call on this thread; never NULL, never freed by the caller.
///
/// Thread safety: each thread reads its own.
#[unsafe(no_mangle)]
pub extern "C" fn iommu_pt_last_error() -> *const c_char {
    // The CString lives in this thread's storage until the next failure replaces it:
    // the pointer stays valid that long, as documented.
    errno::with_last(|s| s.as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boundary::boundary;
    use crate::errno::Errno;
    use std::ffi::CStr;

    fn text(p: *const c_char) -> String {
        // SAFETY: both functions return NUL-terminated strings that live long enough.
        unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned()
    }

    #[test]
    fn strerror_names_each_errno_either_sign() {
        assert_eq!(text(iommu_pt_strerror(0)), "success");
        for e in [
            libc::EINVAL,
            libc::ERANGE,
            libc::EEXIST,
            libc::ENOENT,
            libc::ENOMEM,
            libc::EIO,
        ] {
            assert_eq!(text(iommu_pt_strerror(-e)), text(iommu_pt_strerror(e)));
            assert_ne!(text(iommu_pt_strerror(-e)), "unknown error", "{e}");
        }
        assert_eq!(text(iommu_pt_strerror(-9999)), "unknown error");
        assert_eq!(text(iommu_pt_strerror(c_int::MIN)), "unknown error");
    }

    #[test]
    fn the_last_error_is_the_last_failure_of_this_thread() {
        std::thread::spawn(|| {
            assert_eq!(text(iommu_pt_last_error()), "");
            let r: c_int = boundary(|| Err(Errno::INVAL.because("a NULL object")));
            assert_eq!(r, -libc::EINVAL);
            assert_eq!(text(iommu_pt_last_error()), "a NULL object");
            // Success leaves it; a failure without a noted detail gets the errno's text.
            let ok: c_int = boundary(|| Ok(0));
            assert_eq!(ok, 0);
            assert_eq!(text(iommu_pt_last_error()), "a NULL object");
            let r: c_int = boundary(|| Err(Errno(libc::ERANGE)));
            assert_eq!(r, -libc::ERANGE);
            assert_eq!(text(iommu_pt_last_error()), text(iommu_pt_strerror(r)));
            // A core error's detail is its message.
            let e = pgtable_core::Error::Misaligned {
                what: "paddr",
                value: 0x1234,
                align: 0x1000,
            };
            let r: c_int = boundary(|| Err(Errno::from(&e)));
            assert_eq!(r, -libc::EINVAL);
            assert_eq!(
                text(iommu_pt_last_error()),
                "paddr 0x1234 is not aligned to 0x1000"
            );
        })
        .join()
        .unwrap();
    }
}
