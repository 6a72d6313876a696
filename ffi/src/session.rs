//! `iommu_pt_session`: one epoch pin shared by a batch of calls on the calling thread,
//! the C form of `pgtable_core::Session`.

use crate::boundary::boundary;
use crate::errno::Errno;
use pgtable_core::sync::epoch::{self, Guard};
use std::ffi::c_int;
use std::thread::{self, ThreadId};

/// A pinned batch of calls (opaque to C).
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct iommu_pt_session {
    /// Held, not read: its drop unpins.
    _guard: Guard,
    thread: ThreadId,
}

/// Pins the calling thread for a batch of page-table calls: until
/// `iommu_pt_session_end`, every `iommu_pt_*` call this thread makes (on any table)
/// shares this one pin instead of paying its own (a few nanoseconds each). Sessions nest.
///
/// While a session is open this thread holds back the reclamation of unlinked table
/// pages everywhere, so keep it short (a burst of maps or unmaps, one DMA batch) and
/// never block inside it. Returns NULL if memory is exhausted.
///
/// Thread safety: the session belongs to the calling thread; end it on that thread.
#[unsafe(no_mangle)]
pub extern "C" fn iommu_pt_session_begin() -> *mut iommu_pt_session {
    boundary(|| {
        Ok(Box::into_raw(Box::new(iommu_pt_session {
            _guard: epoch::pin(),
            thread: thread::current().id(),
        })))
    })
}

/// Ends a session begun on this thread. Returns 0; `-EINVAL` for NULL or for a session
/// begun on another thread (which is then left open: ending it there is the only
/// correct way).
///
/// # Safety
/// `s` must be NULL or a session from `iommu_pt_session_begin` not ended yet.
///
/// Thread safety: on the thread that began the session.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iommu_pt_session_end(s: *mut iommu_pt_session) -> c_int {
    boundary(|| {
        if s.is_null() {
            return Err(Errno::INVAL.because("a NULL session"));
        }
        // SAFETY: a live session (caller's promise); only read here.
        if unsafe { (*s).thread } != thread::current().id() {
            return Err(Errno::INVAL.because("a session ends on the thread that began it"));
        }
        // SAFETY: from Box::into_raw in `iommu_pt_session_begin`, ended once, on its
        // own thread (checked above), so the guard is dropped where it was made.
        drop(unsafe { Box::from_raw(s) });
        Ok(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ends_only_on_its_own_thread() {
        let s = iommu_pt_session_begin();
        assert!(!s.is_null());
        let addr = s as usize;
        let other = std::thread::spawn(move || {
            // SAFETY: a live session, deliberately on the wrong thread.
            unsafe { iommu_pt_session_end(addr as *mut iommu_pt_session) }
        })
        .join()
        .unwrap();
        assert_eq!(other, -libc::EINVAL);
        // SAFETY: the live session, on its thread.
        assert_eq!(unsafe { iommu_pt_session_end(s) }, 0);
        // SAFETY: NULL is allowed.
        let null = unsafe { iommu_pt_session_end(std::ptr::null_mut()) };
        assert_eq!(null, -libc::EINVAL);
    }
}
