//! [`PhysAccess`]: checked atomic accesses to any [`ViewMemory`] by physical address.

use crate::error::{Error, Result};
use crate::sync::host::{AtomicU64, Ordering};
use pgtable_core::ViewMemory;
use std::ptr::NonNull;

/// Atomic, bounds-checked accesses by physical address, for every [`ViewMemory`]: what
/// a vIOMMU needs to read a guest's structures, set access/dirty flags the way the
/// hardware does, and what tests and device models need to put bytes into guest memory.
///
/// Word accesses are single atomic 64-bit operations on 8-byte aligned addresses
/// (loads acquire, stores release, read-modify-writes both), so they never tear against
/// a guest vCPU or another walker updating the same entry. Byte accesses are made of
/// relaxed 64-bit atomics too (one per word touched); order them with a word access, as a
/// device orders its data before a descriptor write. Writes need a writable memory ([`ViewMemory::writable`]).
///
/// ```
/// use viommu::memory::{ImageMemory, PhysAccess};
/// let mem = ImageMemory::anonymous(0x1000, 0x1000)?;
/// mem.write_bytes(0x1003, b"guest")?;
/// let mut buf = [0; 5];
/// mem.read_bytes(0x1003, &mut buf)?;
/// assert_eq!(&buf, b"guest");
/// assert_eq!(mem.compare_exchange_u64(0x1800, 0, 7)?, Ok(0));
/// assert_eq!(mem.compare_exchange_u64(0x1800, 0, 9)?, Err(7));
/// # Ok::<(), viommu::Error>(())
/// ```
pub trait PhysAccess: ViewMemory {
    /// The 64-bit little-endian word at `pa` (acquire).
    ///
    /// # Errors
    /// [`Error::Misaligned`] unless `pa` is 8-byte aligned, [`Error::OutOfRange`]
    /// unless the word is in memory.
    fn read_u64(&self, pa: u64) -> Result<u64> {
        Ok(word(self, pa)?.load(Ordering::Acquire))
    }

    /// Stores `value` at `pa` (release).
    ///
    /// # Errors
    /// As [`PhysAccess::read_u64`], and [`Error::ReadOnly`] on read-only memory.
    fn write_u64(&self, pa: u64, value: u64) -> Result<()> {
        writable(self, pa, 8)?;
        word(self, pa)?.store(value, Ordering::Release);
        Ok(())
    }

    /// Replaces the word at `pa` by `new` if it holds `current`: `Ok(Ok(current))` when
    /// it did, `Ok(Err(actual))` when it held `actual` instead (acquire-release).
    ///
    /// # Errors
    /// As [`PhysAccess::write_u64`].
    fn compare_exchange_u64(&self, pa: u64, current: u64, new: u64) -> Result<Result<u64, u64>> {
        writable(self, pa, 8)?;
        Ok(word(self, pa)?.compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire))
    }

    /// Sets `bits` in the word at `pa` and returns its previous value (acquire-release):
    /// how a walker sets an access or dirty flag without losing a concurrent update.
    ///
    /// # Errors
    /// As [`PhysAccess::write_u64`].
    fn fetch_or_u64(&self, pa: u64, bits: u64) -> Result<u64> {
        writable(self, pa, 8)?;
        Ok(word(self, pa)?.fetch_or(bits, Ordering::AcqRel))
    }

    /// Fills `buf` from the bytes at `pa`.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] unless the 8-byte words holding the range are all in
    /// memory (and, for memory made of regions, in one region).
    fn read_bytes(&self, pa: u64, buf: &mut [u8]) -> Result<()> {
        let mut done = 0;
        for_words(self, pa, buf.len(), |w, lo, n| {
            let bytes = w.load(Ordering::Relaxed).to_le_bytes();
            buf[done..done + n].copy_from_slice(&bytes[lo..lo + n]);
            done += n;
        })
    }

    /// Writes `buf` to the bytes at `pa`. Bytes of a word only partly covered are
    /// merged into it atomically, so neighbouring bytes written concurrently survive.
    ///
    /// # Errors
    /// As [`PhysAccess::read_bytes`], and [`Error::ReadOnly`] on read-only memory.
    fn write_bytes(&self, pa: u64, buf: &[u8]) -> Result<()> {
        writable(self, pa, buf.len() as u64)?;
        let mut done = 0;
        for_words(self, pa, buf.len(), |w, lo, n| {
            let mut bytes = [0; 8];
            bytes[lo..lo + n].copy_from_slice(&buf[done..done + n]);
            let value = u64::from_le_bytes(bytes);
            if n == 8 {
                w.store(value, Ordering::Relaxed);
            } else {
                let mask = (u64::MAX >> (64 - 8 * n)) << (8 * lo);
                let _ = w.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                    Some(old & !mask | value)
                });
            }
            done += n;
        })
    }
}

impl<V: ViewMemory + ?Sized> PhysAccess for V {}

fn writable<V: ViewMemory + ?Sized>(mem: &V, pa: u64, len: u64) -> Result<()> {
    if mem.writable() {
        Ok(())
    } else {
        Err(Error::ReadOnly { pa, len })
    }
}

/// The word at `pa`, checked.
fn word<V: ViewMemory + ?Sized>(mem: &V, pa: u64) -> Result<&AtomicU64> {
    if !pa.is_multiple_of(8) {
        return Err(Error::Misaligned { pa });
    }
    let ptr = mem.view(pa, 8).ok_or(Error::OutOfRange { pa, len: 8 })?;
    // SAFETY: `view` vouched that the 8 bytes at `pa` lie in memory that stays valid for
    // atomic 8-byte accesses for as long as `mem` lives (the returned borrow is tied to
    // `mem`), and returned an 8-byte aligned pointer for an 8-byte aligned `pa`. All
    // accesses through it are atomic; stores and read-modify-writes happen only after
    // `writable()` said the memory takes them.
    Ok(unsafe { AtomicU64::from_ptr(ptr.as_ptr().cast()) })
}

/// Calls `f(word, first byte in it, byte count)` for each 8-byte word that `[pa, pa + len)`
/// touches, in order, after checking that all of them lie in memory.
fn for_words<V: ViewMemory + ?Sized>(
    mem: &V,
    pa: u64,
    len: usize,
    mut f: impl FnMut(&AtomicU64, usize, usize),
) -> Result<()> {
    if len == 0 {
        return Ok(());
    }
    let out = Error::OutOfRange {
        pa,
        len: len as u64,
    };
    let start = pa & !7;
    let Some(end) = pa
        .checked_add(len as u64)
        .and_then(|e| e.checked_next_multiple_of(8))
    else {
        return Err(out);
    };
    let Ok(span) = usize::try_from(end - start) else {
        return Err(out);
    };
    let base: NonNull<u8> = mem.view(start, span).ok_or(out)?;
    let mut at = pa;
    let mut left = len;
    while left > 0 {
        let lo = (at % 8) as usize;
        let n = (8 - lo).min(left);
        let off = (at & !7) - start;
        // SAFETY: `off + 8 <= span`: the word at `at & !7` lies in `[start, end)`, which
        // `view` vouched for as memory valid for atomic accesses while `mem` lives, and
        // 8-byte aligned (it returned an aligned pointer for the aligned `start`).
        let ptr = unsafe { base.as_ptr().add(off as usize) };
        // SAFETY: `ptr` is 8-byte aligned and valid for atomic 8-byte accesses (above);
        // every access to guest memory in this crate is such a 64-bit atomic.
        let w = unsafe { AtomicU64::from_ptr(ptr.cast()) };
        f(w, lo, n);
        at += n as u64;
        left -= n;
    }
    Ok(())
}
