//! [`FdWriter`]: `io::Write` over a C file descriptor the caller keeps owning.

use std::ffi::c_int;
use std::io;

/// Writes to a borrowed file descriptor with `write(2)`; never closes it.
#[derive(Debug)]
pub(crate) struct FdWriter(pub(crate) c_int);

impl io::Write for FdWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for `buf.len()` bytes; a bad fd is reported by write(2)
        // as EBADF, not undefined behaviour.
        let n = unsafe { libc::write(self.0, buf.as_ptr().cast(), buf.len()) };
        // A negative count is -1 with errno set; `write_all` retries EINTR and short
        // writes.
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_bad_descriptor_reports_ebadf() {
        let e = FdWriter(-1).write_all(b"x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
    }

    #[test]
    fn writes_reach_the_descriptor() {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        FdWriter(fds[1]).write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
        assert_eq!(n, 5);
        assert_eq!(&buf, b"hello");
        for fd in fds {
            // SAFETY: we opened both and close each once.
            unsafe { libc::close(fd) };
        }
    }
}
