//! [`ImageMemory`]: a file (or anonymous memory) mapped at a physical base.

use crate::error::{Error, Result};
use memmap2::{MmapMut, MmapOptions};
use pgtable_core::ViewMemory;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

/// Physical memory made of one mapping: an image file (a memory dump, QEMU's
/// `pmemsave`, what `iommu-pt dump --image-out` writes) or anonymous memory, seen at
/// physical address `base`. Every physical address is checked against its extent;
/// nothing in it is trusted.
///
/// - [`ImageMemory::open`]: read-only, for decoding. The file is mapped copy-on-write
///   (`MAP_PRIVATE`) and reported read-only (`writable() == false`), so nothing reaches
///   the file.
/// - [`ImageMemory::open_rw`]: a shared writable mapping (`writable() == true`): the
///   atomic access/dirty-flag updates of an emulated walker land in the file.
/// - [`ImageMemory::anonymous`] / [`ImageMemory::from_bytes`]: zeroed (or filled)
///   writable memory, for tests and example VMMs.
///
/// ```
/// use pgtable_core::{ForeignTable, Iova, PhysAddr};
/// use pgtable_core::testfmt::TestFormat;
/// use viommu::memory::{ImageMemory, PhysAccess};
/// use std::sync::Arc;
/// // A guest builds a one-leaf table by hand (TestFormat: 4 levels of 4 KiB tables;
/// // bit 0 present, bits 1/2 read/write).
/// let mem = Arc::new(ImageMemory::anonymous(0x4000_0000, 0x4000)?);
/// for table in [0x4000_0000u64, 0x4000_1000, 0x4000_2000] {
///     mem.write_u64(table, (table + 0x1000) | 1)?; // entry 0 -> next table
/// }
/// mem.write_u64(0x4000_3000, 0x9000_0000 | 0b111)?; // the 4K leaf, read-write
/// let view = ForeignTable::new(TestFormat::new(), mem, PhysAddr(0x4000_0000))?;
/// assert_eq!(view.translate(Iova(0x123))?.pa, PhysAddr(0x9000_0123));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ImageMemory {
    /// Keeps the mapping alive (and serves `flush`); the contents are accessed only
    /// through `ptr`.
    map: MmapMut,
    /// The mapping's first byte, taken from a mutable borrow so that the pointers
    /// handed out may be used for any access the mapping allows.
    ptr: NonNull<u8>,
    len: u64,
    base: u64,
    writable: bool,
}

// SAFETY: the mapping is owned and never resized or remapped; every access to its
// contents goes through raw pointers with atomic operations.
unsafe impl Send for ImageMemory {}
// SAFETY: as above; nothing in `ImageMemory` itself changes after construction.
unsafe impl Sync for ImageMemory {}

const ANONYMOUS: &str = "<anonymous>";

impl ImageMemory {
    /// Maps the file at `path`, read-only, as the memory at `base`.
    ///
    /// The file must not be truncated by another process while it is mapped (that
    /// would be a `SIGBUS`, not a torn read): the usual condition for reading a memory
    /// dump through `mmap`.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be opened or mapped; [`Error::EmptyImage`],
    /// [`Error::NotWholeWords`], [`Error::MisalignedBase`], [`Error::BeyondTop`] or
    /// [`Error::TooLarge`] for a layout that cannot be memory.
    pub fn open(path: impl AsRef<Path>, base: u64) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(io(path))?;
        let len = layout(path, &file, base)?;
        // SAFETY: a private (copy-on-write) mapping that this type only reads (it
        // reports itself read-only); see above for truncation by another process.
        let map = unsafe { MmapOptions::new().len(len).map_copy(&file) }.map_err(io(path))?;
        Self::new(map, base, false)
    }

    /// Maps the file at `path` shared and writable as the memory at `base`: atomic
    /// updates (an emulated walker setting access/dirty flags) land in the file.
    ///
    /// Anything else that writes the file at the same time must do so with aligned
    /// 64-bit atomics too, and must not truncate it while it is mapped.
    ///
    /// # Errors
    /// As [`ImageMemory::open`]; the file must also be writable.
    pub fn open_rw(path: impl AsRef<Path>, base: u64) -> Result<Self> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io(path))?;
        let len = layout(path, &file, base)?;
        // SAFETY: a shared mapping; every access this type makes to it is an aligned
        // 64-bit atomic, and the caller keeps the file's length (see above).
        let map = unsafe { MmapOptions::new().len(len).map_mut(&file) }.map_err(io(path))?;
        Self::new(map, base, true)
    }

    /// `len` bytes of zeroed, writable memory at `base`.
    ///
    /// # Errors
    /// [`Error::EmptyImage`], [`Error::NotWholeWords`], [`Error::MisalignedBase`],
    /// [`Error::BeyondTop`] or [`Error::TooLarge`] for a layout that cannot be memory;
    /// [`Error::Io`] if the system refuses the mapping.
    pub fn anonymous(base: u64, len: u64) -> Result<Self> {
        let path = Path::new(ANONYMOUS);
        let len = check(path, base, len)?;
        let map = MmapOptions::new().len(len).map_anon().map_err(io(path))?;
        Self::new(map, base, true)
    }

    /// Writable memory at `base` holding a copy of `bytes`.
    ///
    /// # Errors
    /// As [`ImageMemory::anonymous`] with `bytes.len()`.
    pub fn from_bytes(base: u64, bytes: &[u8]) -> Result<Self> {
        let mut map = Self::anonymous(base, bytes.len() as u64)?;
        map.map.copy_from_slice(bytes);
        // Re-derive the pointer after the mutable use of the mapping above.
        map.ptr = NonNull::new(map.map.as_mut_ptr()).expect("a mapping is never at 0");
        Ok(map)
    }

    fn new(mut map: MmapMut, base: u64, writable: bool) -> Result<Self> {
        let len = map.len() as u64;
        let ptr = NonNull::new(map.as_mut_ptr()).expect("a mapping is never at 0");
        Ok(ImageMemory {
            map,
            ptr,
            len,
            base,
            writable,
        })
    }

    /// The physical address of the first byte.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Always `false`: an image has at least one 64-bit word.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `[pa, pa + len)` lies wholly inside the memory.
    ///
    /// ```
    /// # use viommu::memory::ImageMemory;
    /// let mem = ImageMemory::anonymous(0x1000, 0x1000)?;
    /// assert!(mem.contains(0x1ff8, 8) && !mem.contains(0x1ff8, 9) && !mem.contains(0xff8, 8));
    /// # Ok::<(), viommu::Error>(())
    /// ```
    pub fn contains(&self, pa: u64, len: u64) -> bool {
        self.offset(pa, len).is_some()
    }

    /// Writes what was changed through a shared file mapping back to the file
    /// (`msync`); nothing to do for the other kinds.
    ///
    /// # Errors
    /// [`Error::Io`] if the system fails to write the file.
    pub fn flush(&self) -> Result<()> {
        if self.writable {
            self.map.flush().map_err(io(Path::new(ANONYMOUS)))?;
        }
        Ok(())
    }

    /// The offset of `[pa, pa + len)` in the mapping, if it lies inside.
    fn offset(&self, pa: u64, len: u64) -> Option<usize> {
        let off = pa.checked_sub(self.base)?;
        let end = off.checked_add(len)?;
        (end <= self.len).then_some(off as usize)
    }
}

// SAFETY: `view` returns pointers only for 8-byte aligned ranges wholly inside the
// mapping, which lives (never unmapped, moved or resized) as long as `self`; the
// mapping's start is page aligned and the base 8-byte aligned, so an aligned `phys` gives
// an aligned pointer. `writable` is true only for shared file and anonymous mappings,
// which take atomic read-modify-writes; the copy-on-write mapping of `open` reports
// itself read-only, so nothing reaches the file.
unsafe impl ViewMemory for ImageMemory {
    #[inline]
    fn view(&self, phys: u64, len: usize) -> Option<NonNull<u8>> {
        if !phys.is_multiple_of(8) {
            return None;
        }
        let off = self.offset(phys, len as u64)?;
        // SAFETY: `off + len` is within the mapping, so the pointer stays inside it.
        Some(unsafe { self.ptr.add(off) })
    }

    fn writable(&self) -> bool {
        self.writable
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The length of `file` as a mapping at `base`, checked.
fn layout(path: &Path, file: &File, base: u64) -> Result<usize> {
    let len = file.metadata().map_err(io(path))?.len();
    check(path, base, len)
}

fn check(path: &Path, base: u64, len: u64) -> Result<usize> {
    let path_buf = || PathBuf::from(path);
    if len == 0 {
        return Err(Error::EmptyImage { path: path_buf() });
    }
    if !len.is_multiple_of(8) {
        return Err(Error::NotWholeWords {
            path: path_buf(),
            len,
        });
    }
    if !base.is_multiple_of(8) {
        return Err(Error::MisalignedBase { base });
    }
    if base.checked_add(len - 1).is_none() {
        return Err(Error::BeyondTop { base, len });
    }
    usize::try_from(len).map_err(|_| Error::TooLarge { len })
}
