//! A raw physical-memory image as [`ViewMemory`]: a file mapped privately, read through
//! bounds-checked physical addresses.

use crate::error::CliError;
use memmap2::{MmapMut, MmapOptions};
use pgtable_core::ViewMemory;
use std::fs::File;
use std::path::Path;
use std::ptr::NonNull;

/// The bytes of an image file seen at physical address `base`.
///
/// The file is opened read-only and mapped copy-on-write (`MAP_PRIVATE`), so nothing
/// done through the mapping can reach the file. Nothing in it is trusted: every
/// physical address is checked against the file's extent before use.
#[derive(Debug)]
pub struct ImageMemory {
    /// Keeps the mapping alive; accessed only through `ptr`.
    _map: MmapMut,
    /// The mapping's first byte, taken from a mutable borrow so that the pointers
    /// handed to the walker may be used for any access the mapping allows.
    ptr: NonNull<u8>,
    len: u64,
    base: u64,
}

// SAFETY: the mapping is owned and never resized or remapped; all access goes through
// raw pointers, and the walker reads table entries atomically.
unsafe impl Send for ImageMemory {}
// SAFETY: as above; nothing in `ImageMemory` itself changes after `open`.
unsafe impl Sync for ImageMemory {}

impl ImageMemory {
    /// Maps `path` as the memory at `base`.
    ///
    /// # Errors
    /// The file cannot be opened or mapped, is empty, is not a whole number of 64-bit
    /// words, or `base` is not 8-byte aligned or leaves no room for the file below 2^64.
    pub fn open(path: &Path, base: u64) -> Result<Self, CliError> {
        let io = |source| CliError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let name = path.display();
        if len == 0 {
            return Err(CliError::Image(format!("{name}: the image is empty")));
        }
        if len % 8 != 0 {
            return Err(CliError::Image(format!(
                "{name}: the image is {len} bytes, not a whole number of 64-bit entries (truncated?)"
            )));
        }
        if base % 8 != 0 {
            return Err(CliError::Image(format!(
                "--base {base:#x} is not 8-byte aligned"
            )));
        }
        if base.checked_add(len - 1).is_none() {
            return Err(CliError::Image(format!(
                "--base {base:#x}: an image of {len} bytes there would end beyond 2^64"
            )));
        }
        let Ok(map_len) = usize::try_from(len) else {
            return Err(CliError::Image(format!("{name}: too large to map")));
        };
        // SAFETY: the mapping is private and we only read it; the file must not be
        // truncated by another process while we run (that is a SIGBUS, not a torn
        // read), which is the usual condition for reading memory dumps through mmap.
        let mut map = unsafe { MmapOptions::new().len(map_len).map_copy(&file) }.map_err(io)?;
        let ptr =
            NonNull::new(map.as_mut_ptr()).ok_or_else(|| io(std::io::ErrorKind::Other.into()))?;
        Ok(ImageMemory {
            _map: map,
            ptr,
            len,
            base,
        })
    }

    /// The physical address of the image's first byte.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The image's size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The offset of `[phys, phys + len)` in the image, if it lies inside and `phys`
    /// is 8-byte aligned (table entries are read as aligned 64-bit words).
    fn offset(&self, phys: u64, len: usize) -> Option<usize> {
        let off = phys.checked_sub(self.base)?;
        let end = off.checked_add(len as u64)?;
        (phys % 8 == 0 && end <= self.len()).then_some(off as usize)
    }
}

// SAFETY: `view` returns pointers only for 8-byte aligned ranges wholly inside the
// private mapping, which lives as long as `self` and is never unmapped or resized while a
// table views it (the view holds `self` in an `Arc`). The mapping is copy-on-write and
// reported read-only (`writable` is false), so nothing reaches the file.
unsafe impl ViewMemory for ImageMemory {
    fn view(&self, phys: u64, len: usize) -> Option<NonNull<u8>> {
        let off = self.offset(phys, len)?;
        // SAFETY: `off + len` is within the mapping, so the pointer stays inside it.
        Some(unsafe { self.ptr.add(off) })
    }
}
