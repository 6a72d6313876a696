//! Translation by access type, as an IOMMU walks a table on a device's behalf:
//! permissions ANDed across levels, access and dirty flags set where the configuration
//! enables hardware updates, and a fault that says what the hardware would report
//! (the kind, the level, the input address and the entry).
//!
//! One descent ([`descend`]) serves a single stage ([`ForeignTable::translate_access`])
//! and both stages of a nested walk ([`Nested`]): only the way a table address becomes
//! readable memory differs ([`Fetch`]), directly in memory or through stage 2.

use crate::addr::{Iova, PhysAddr};
use crate::error::{ConfigError, Error, Result};
use crate::foreign::ForeignTable;
use crate::format::{Entry, Fault, Format};
use crate::geometry::Geometry;
use crate::level::{Level, TableRef};
use crate::memory::ViewMemory;
use crate::prot::Prot;
use crate::sync::Ordering;
use crate::walk::Translation;
use std::fmt;
use std::ptr::NonNull;

/// What a device access asks for.
///
/// ```
/// use pgtable_core::Access;
/// let a = Access::WRITE.privileged();
/// assert!(a.write && a.privileged && !a.read);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Access {
    /// A read (or the read half of an atomic).
    pub read: bool,
    /// A write (or the write half of an atomic).
    pub write: bool,
    /// An instruction fetch.
    pub exec: bool,
    /// A privileged (supervisor) access; otherwise unprivileged (user).
    pub privileged: bool,
}

impl Access {
    /// An unprivileged read.
    pub const READ: Access = Access {
        read: true,
        write: false,
        exec: false,
        privileged: false,
    };
    /// An unprivileged write.
    pub const WRITE: Access = Access {
        read: false,
        write: true,
        exec: false,
        privileged: false,
    };
    /// An unprivileged read-modify-write.
    pub const RW: Access = Access {
        read: true,
        write: true,
        exec: false,
        privileged: false,
    };

    /// The same access, made privileged.
    pub const fn privileged(self) -> Access {
        Access {
            privileged: true,
            ..self
        }
    }

    /// Whether a leaf granting `prot` (after the tables' limits) allows this access.
    ///
    /// ```
    /// use pgtable_core::{Access, Prot};
    /// assert!(Access::READ.allowed_by(Prot::READ));
    /// assert!(!Access::WRITE.allowed_by(Prot::READ));
    /// assert!(!Access::READ.allowed_by(Prot::READ | Prot::PRIV));
    /// assert!(Access::READ.privileged().allowed_by(Prot::READ | Prot::PRIV));
    /// ```
    pub const fn allowed_by(self, prot: Prot) -> bool {
        !(self.read && !prot.contains(Prot::READ)
            || self.write && !prot.contains(Prot::WRITE)
            || self.exec && prot.contains(Prot::NOEXEC)
            || !self.privileged && prot.contains(Prot::PRIV))
    }
}

/// The hardware updates a walk makes, as the guest's configuration enables them
/// (VT-d: SSADE for the second stage, always for the first; Arm: CD.HA/HD, STE
/// S2HA/S2HD), and whether a clear access flag faults (Arm: AFFD / S2AFFD off).
///
/// Updates need memory that can be written ([`ViewMemory::writable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WalkPolicy {
    /// Set the access flag in every entry used (where the format has one).
    pub set_accessed: bool,
    /// Record writes in the leaf's dirty state (where the format has one).
    pub set_dirty: bool,
    /// A leaf whose required access flag is clear faults (when it is not set instead).
    pub access_faults: bool,
}

impl WalkPolicy {
    /// No updates; access-flag faults on (a read-only walk, as the hardware with A/D
    /// updates off).
    pub const READ_ONLY: WalkPolicy = WalkPolicy {
        set_accessed: false,
        set_dirty: false,
        access_faults: true,
    };
    /// Set access and dirty flags.
    pub const UPDATE: WalkPolicy = WalkPolicy {
        set_accessed: true,
        set_dirty: true,
        access_faults: true,
    };

    /// Whether the walk writes entries.
    pub const fn updates(self) -> bool {
        self.set_accessed || self.set_dirty
    }
}

impl Default for WalkPolicy {
    fn default() -> Self {
        WalkPolicy::READ_ONLY
    }
}

/// Why a walk for an access faulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The entry is not present (a translation fault).
    NotPresent,
    /// The entry cannot be used: reserved bits, a bad type, an address beyond the
    /// output size, an input beyond the input size, or a table outside memory.
    Entry(Fault),
    /// The leaf, under the limits of the tables above it, does not allow the access.
    Permission {
        /// What the leaf granted, limits applied.
        granted: Prot,
    },
    /// The leaf's access flag is clear and the walk may not set it.
    AccessFlag,
}

/// A fault of one stage's walk: what, where in the table, for which input address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkFault {
    /// Why.
    pub kind: FaultKind,
    /// The level of the table the walker was reading (or fetching) when it faulted
    /// (0 = the smallest pages; the top level for an input out of range).
    pub level: u32,
    /// The stage's input address (for stage 2 of a nested walk, an IPA / GPA).
    pub iova: Iova,
    /// The raw entry that faulted (for a table fetch, the entry pointing to the table;
    /// 0 where none was read).
    pub entry: u64,
}

impl fmt::Display for WalkFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FaultKind::NotPresent => write!(f, "not present")?,
            FaultKind::Entry(fault) => write!(f, "{fault}")?,
            FaultKind::Permission { granted } => {
                write!(f, "permission fault (grants {granted:?})")?
            }
            FaultKind::AccessFlag => write!(f, "access flag fault")?,
        }
        write!(
            f,
            " at level {} for input {:#x} (entry {:#018x})",
            self.level, self.iova.0, self.entry
        )
    }
}

impl std::error::Error for WalkFault {}

/// A fault of a nested (two-stage) walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NestedFault {
    /// The stage that faulted: 1 or 2.
    pub stage: u8,
    /// The fault of that stage's walk (for stage 2, `fault.iova` is the IPA / GPA).
    pub fault: WalkFault,
    /// The device's input address.
    pub iova: Iova,
    /// For a stage-2 fault, the level of the stage-1 table whose fetch faulted (`None`
    /// when stage 2 faulted on stage 1's output address).
    pub s1_table: Option<u32>,
}

impl fmt::Display for NestedFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stage {} {}", self.stage, self.fault)?;
        match (self.stage, self.s1_table) {
            (2, Some(level)) => write!(
                f,
                ", fetching the stage-1 level-{level} table for {:#x}",
                self.iova.0
            ),
            (2, None) => write!(f, ", translating stage 1's output for {:#x}", self.iova.0),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for NestedFault {}

impl From<WalkFault> for NestedFault {
    fn from(fault: WalkFault) -> Self {
        NestedFault {
            stage: 1,
            fault,
            iova: fault.iova,
            s1_table: None,
        }
    }
}

/// How a walk turns a table address (a stage's output space) into readable memory.
///
/// # Safety
/// `table` may return `Ok(ptr)` only when `ptr` is 8-byte aligned and valid for atomic
/// reads of `bytes` bytes for `'m` and, when `update` is true, for atomic
/// read-modify-writes too.
pub(crate) unsafe trait Fetch<'m> {
    /// The fault a walk through this fetch reports.
    type Error: From<WalkFault>;
    /// The table of `bytes` bytes at `pa`, of which the walk reads the entry at byte
    /// offset `offset` next (and, when `update`, may write it); `fault` is what to
    /// report when the address is not readable memory.
    fn table(
        &mut self,
        pa: u64,
        bytes: usize,
        offset: u64,
        update: bool,
        fault: WalkFault,
    ) -> core::result::Result<NonNull<u8>, Self::Error>;
}

/// Tables read directly in memory that knows its bounds.
struct Direct<'m, V>(&'m V);

// SAFETY: `ViewMemory::view` vouches for the whole range for as long as the memory
// lives (`'m`), and for read-modify-writes when it is writable, which is checked here.
unsafe impl<'m, V: ViewMemory> Fetch<'m> for Direct<'m, V> {
    type Error = WalkFault;
    #[inline(always)]
    fn table(
        &mut self,
        pa: u64,
        bytes: usize,
        _offset: u64,
        update: bool,
        fault: WalkFault,
    ) -> core::result::Result<NonNull<u8>, WalkFault> {
        if !pa.is_multiple_of(8) || update && !self.0.writable() {
            return Err(fault);
        }
        self.0.view(pa, bytes).ok_or(fault)
    }
}

/// One walk's inputs besides the tables.
pub(crate) struct Walk<'a, F> {
    pub(crate) fmt: &'a F,
    pub(crate) geo: &'a Geometry,
    pub(crate) root: u64,
    pub(crate) policy: WalkPolicy,
}

/// How many times a leaf update is retried when the entry changes under it before the
/// walk starts again from the top (a guest rewriting the entry at the same moment).
const UPDATE_RETRIES: u32 = 64;

/// The translation of `iova` for `access`, as the hardware walks: every entry fully
/// decoded, table limits ANDed, the access flag and dirty state updated (atomically, on
/// the entry as it was read) where the policy says so.
pub(crate) fn descend<'m, F: Format, X: Fetch<'m>>(
    w: &Walk<'_, F>,
    fetch: &mut X,
    iova: u64,
    access: Access,
) -> core::result::Result<Translation, X::Error> {
    let geo = w.geo;
    let top = geo.top();
    let fault = |kind, level, entry| WalkFault {
        kind,
        level,
        iova: Iova(iova),
        entry,
    };
    if iova >> geo.va_bits != 0 {
        return Err(fault(FaultKind::Entry(Fault::InputRange), top, 0).into());
    }
    let af = w.fmt.access_flag();
    let dirty = w.fmt.dirty_bits();
    let updates = w.policy.updates();
    let mut retries = 0;
    'walk: loop {
        let bad_root = fault(
            FaultKind::Entry(Fault::BadTableAddress { pa: w.root }),
            top,
            0,
        );
        let first = geo.index(iova, top) as u64 * 8;
        let virt = fetch.table(w.root, geo.table_bytes(top), first, updates, bad_root)?;
        // SAFETY: the `Fetch` contract: aligned and valid for `'m` (read-modify-writes
        // only where `updates` asked for them, and only then are entries written).
        let table = unsafe { TableRef::from_raw(virt, geo.entries(top)) };
        let mut at = Level {
            table,
            level: top,
            shift: geo.shift(top),
            base: 0,
        };
        let mut limits = Prot::empty();
        loop {
            let idx = at.index(iova);
            let entry = at.entry(idx);
            let raw = entry.load(Ordering::Acquire);
            let level = at.level;
            match w.fmt.decode(raw, level) {
                Entry::Empty => return Err(fault(FaultKind::NotPresent, level, raw).into()),
                Entry::Fault(f) => return Err(fault(FaultKind::Entry(f), level, raw).into()),
                Entry::Table(pa) if level > 0 => {
                    limits = limits.union(w.fmt.table_limits(raw, level));
                    if let Some(af) = af.filter(|a| a.tables && w.policy.set_accessed)
                        && raw & af.bit == 0
                    {
                        // An OR cannot undo a concurrent change: the hardware's
                        // locked update of a table entry.
                        entry.fetch_or(af.bit, Ordering::AcqRel);
                    }
                    let bad = fault(
                        FaultKind::Entry(Fault::BadTableAddress { pa }),
                        level - 1,
                        raw,
                    );
                    let entries = 1usize << geo.bits_per_level;
                    let next = geo.index(iova, level - 1) as u64 * 8;
                    let virt = fetch.table(pa, entries * 8, next, updates, bad)?;
                    // SAFETY: as for the root.
                    let table = unsafe { TableRef::from_raw(virt, entries) };
                    at = at.below(idx, table, geo.bits_per_level);
                }
                Entry::Table(_) => {
                    return Err(fault(FaultKind::Entry(Fault::BadType { raw }), level, raw).into());
                }
                Entry::Leaf { pa, size, prot } => {
                    let mut granted = prot.limited(limits);
                    let mut new = raw;
                    if let Some(af) = af
                        && raw & af.bit == 0
                    {
                        if w.policy.set_accessed {
                            new |= af.bit;
                        } else if af.required && w.policy.access_faults {
                            return Err(fault(FaultKind::AccessFlag, level, raw).into());
                        }
                    }
                    if let Some(d) = dirty {
                        let tracked_clean = raw & d.tracked == d.tracked && !d.dirty.done_in(raw);
                        if tracked_clean && granted.contains(Prot::WRITE) {
                            if w.policy.set_dirty {
                                if access.write {
                                    new = d.dirty.apply(new);
                                } else {
                                    // Not cacheable for writes: a later write must walk
                                    // again to record itself, as the hardware's TLB
                                    // holds a clean leaf read-only.
                                    granted = granted.difference(Prot::WRITE);
                                }
                            } else if d.clean_denies_write {
                                granted = granted.difference(Prot::WRITE);
                            }
                        }
                    }
                    if !access.allowed_by(granted) {
                        let kind = FaultKind::Permission { granted };
                        return Err(fault(kind, level, raw).into());
                    }
                    if new != raw
                        && entry
                            .compare_exchange(raw, new, Ordering::AcqRel, Ordering::Acquire)
                            .is_err()
                    {
                        // The entry changed since it was read: decide again on what it
                        // holds now, from the top (its tables may have changed too).
                        retries += 1;
                        if retries < UPDATE_RETRIES {
                            continue 'walk;
                        }
                        // A guest rewriting the entry without pause: fault rather than
                        // spin (the device retries, as after any fault).
                        return Err(fault(FaultKind::NotPresent, level, raw).into());
                    }
                    return Ok(Translation {
                        iova: Iova(iova),
                        pa: PhysAddr(pa + (iova & (size - 1))),
                        size,
                        prot: granted,
                        level,
                    });
                }
            }
        }
    }
}

impl<F: Format, V: ViewMemory> ForeignTable<F, V> {
    /// The translation of `iova` for `access`, as the IOMMU would walk it: the
    /// translation (output address, page size, what the page grants with the tables'
    /// limits ANDed in), or the fault the hardware would report. Access and dirty flags
    /// are set as [`ForeignTable::with_policy`] says (by default nothing is written).
    ///
    /// The grant is what a TLB may cache: a clean leaf whose writes the hardware must
    /// record (dirty updates on, or an Arm DBM leaf) grants `WRITE` only to a write,
    /// which made it dirty; any other access sees it read-only, so a later write walks
    /// again.
    ///
    /// # Errors
    /// The [`WalkFault`]: what, at which level, with the raw entry.
    ///
    /// ```
    /// # use pgtable_core::testfmt::TestFormat;
    /// use pgtable_core::{Access, ArenaMemory, FaultKind, ForeignTable, Iova, PageTable, PhysAddr, Prot};
    /// use std::sync::Arc;
    /// let mem = Arc::new(ArenaMemory::new(0x100_0000, 1 << 20));
    /// let pt = PageTable::new(TestFormat::new(), mem.clone())?;
    /// pt.map_pages(Iova(0x5000), PhysAddr(0x9000), 0x1000, 1, Prot::READ)?;
    /// let view = ForeignTable::new(TestFormat::new(), mem, pt.root_phys())?;
    /// assert_eq!(view.translate_access(Iova(0x5010), Access::READ)?.pa, PhysAddr(0x9010));
    /// let f = view.translate_access(Iova(0x5010), Access::WRITE).unwrap_err();
    /// assert_eq!(f.kind, FaultKind::Permission { granted: Prot::READ });
    /// assert_eq!(f.level, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn translate_access(
        &self,
        iova: Iova,
        access: Access,
    ) -> core::result::Result<Translation, WalkFault> {
        descend(
            &self.access_walk(),
            &mut Direct(&**self.memory()),
            iova.0,
            access,
        )
    }

    /// What one stage-2 walk of `ipa` needs, for a nested walk.
    fn stage2(
        &self,
        ipa: u64,
        access: Access,
        iova: Iova,
        s1_table: Option<u32>,
    ) -> core::result::Result<Translation, NestedFault> {
        self.translate_access(Iova(ipa), access)
            .map_err(|fault| NestedFault {
                stage: 2,
                fault,
                iova,
                s1_table,
            })
    }
}

/// A nested (two-stage) translation: a stage-1 table whose table pointers and output
/// are intermediate addresses (Arm IPAs, VT-d GPAs), each translated through a stage-2
/// [`ForeignTable`] over the same memory, as an Arm nested STE or a VT-d scalable-mode
/// nested PASID entry configures it.
///
/// Stage-1 table fetches are stage-2 reads (writes where stage 1 updates access or
/// dirty flags); the output is translated for the access itself. The result grants
/// what both stages grant, for the smaller of the two pages.
///
/// ```
/// # use pgtable_core::testfmt::TestFormat;
/// use pgtable_core::{Access, ArenaMemory, ForeignTable, Iova, Nested, PhysAddr, Prot};
/// use pgtable_core::{TableWriter, WalkPolicy, WriterPage};
/// use std::{cell::Cell, sync::Arc};
/// let mem = Arc::new(ArenaMemory::new(0x100_0000, 4 << 20));
/// let next = &Cell::new(0x100_0000u64);
/// // Table pages one after another; a parent entry holds `pa - offset`.
/// let pages = |offset: u64| move || {
///     let pa = next.get();
///     next.set(pa + 0x1000);
///     Some(WriterPage { pa: PhysAddr(pa), pointer: pa - offset })
/// };
/// // Stage 2 (tables addressed physically) maps IPA x to PA x + 0x100_0000.
/// let mut s2_pages = pages(0);
/// let s2_root = s2_pages().unwrap().pa;
/// let mut s2 = TableWriter::new(TestFormat::new(), mem.clone(), s2_root)?;
/// s2.map(Iova(0), PhysAddr(0x100_0000), 0x20_0000, Prot::RW, &mut s2_pages)?;
/// // Stage 1's table pointers are IPAs; it maps IOVA 0x4000 to IPA 0x8000.
/// let mut s1_pages = pages(0x100_0000);
/// let s1_root = s1_pages().unwrap();
/// let mut s1 = TableWriter::new(TestFormat::new(), mem.clone(), s1_root.pa)?;
/// s1.map(Iova(0x4000), PhysAddr(0x8000), 0x1000, Prot::READ, &mut s1_pages)?;
/// let s2_view = ForeignTable::new(TestFormat::new(), mem, s2_root)?;
/// let nested = Nested::new(TestFormat::new(), s1_root.pointer, WalkPolicy::READ_ONLY, s2_view)?;
/// let t = nested.translate(Iova(0x4123), Access::READ)?;
/// assert_eq!(t.pa, PhysAddr(0x100_8123));
/// assert_eq!(nested.translate(Iova(0x4123), Access::WRITE).unwrap_err().stage, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Nested<F1: Format, F2: Format, V: ViewMemory> {
    s1: F1,
    s1_geo: Geometry,
    s1_root: u64,
    s1_policy: WalkPolicy,
    s2: ForeignTable<F2, V>,
}

impl<F1: Format, F2: Format, V: ViewMemory> fmt::Debug for Nested<F1, F2, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nested")
            .field("s1", &self.s1)
            .field("s1_root", &PhysAddr(self.s1_root))
            .field("s1_policy", &self.s1_policy)
            .field("s2", &self.s2)
            .finish()
    }
}

impl<F1: Format, F2: Format, V: ViewMemory> Nested<F1, F2, V> {
    /// Stage 1 in format `s1` with its top table at intermediate address `s1_root`,
    /// updating flags as `s1_policy` says, over `s2`.
    ///
    /// # Errors
    /// [`Error::BadConfig`] for an inconsistent stage-1 format, or a policy that
    /// updates entries over memory that cannot be written.
    pub fn new(
        s1: F1,
        s1_root: u64,
        s1_policy: WalkPolicy,
        s2: ForeignTable<F2, V>,
    ) -> Result<Self> {
        let s1_geo = s1.geometry();
        s1_geo.validate()?;
        if s1_policy.updates() && !s2.memory().writable() {
            return Err(Error::BadConfig(ConfigError::ReadOnlyMemory));
        }
        Ok(Nested {
            s1,
            s1_geo,
            s1_root,
            s1_policy,
            s2,
        })
    }

    /// The stage-2 table.
    pub fn stage2(&self) -> &ForeignTable<F2, V> {
        &self.s2
    }

    /// The stage-1 format.
    pub fn stage1_format(&self) -> &F1 {
        &self.s1
    }

    /// The stage-1 top table's intermediate address.
    pub fn stage1_root(&self) -> u64 {
        self.s1_root
    }

    /// The translation of `iova` for `access` through both stages.
    ///
    /// # Errors
    /// The [`NestedFault`]: the stage, its walk fault (with the IPA for stage 2), the
    /// device's address, and for a stage-2 fault on a stage-1 table fetch, that
    /// table's level.
    pub fn translate(
        &self,
        iova: Iova,
        access: Access,
    ) -> core::result::Result<Translation, NestedFault> {
        let walk = Walk {
            fmt: &self.s1,
            geo: &self.s1_geo,
            root: self.s1_root,
            policy: self.s1_policy,
        };
        let mut fetch = ThroughStage2 { s2: &self.s2, iova };
        let t1 = descend(&walk, &mut fetch, iova.0, access)?;
        let s2_access = Access {
            privileged: false,
            ..access
        };
        let t2 = self.s2.stage2(t1.pa.0, s2_access, iova, None)?;
        Ok(Translation {
            iova,
            pa: t2.pa,
            size: t1.size.min(t2.size),
            prot: combine(t1.prot, t2.prot),
            level: t1.level,
        })
    }
}

/// What both stages grant: each permission both give, each restriction either
/// imposes, cacheable only when both say so.
fn combine(s1: Prot, s2: Prot) -> Prot {
    let both = Prot::READ | Prot::WRITE | Prot::CACHE;
    let either = Prot::NOEXEC | Prot::PRIV | Prot::MMIO;
    (s1 & s2 & both) | ((s1 | s2) & either)
}

/// Stage-1 tables fetched through stage 2.
struct ThroughStage2<'m, F2: Format, V: ViewMemory> {
    s2: &'m ForeignTable<F2, V>,
    iova: Iova,
}

// SAFETY: the pointer comes from `ViewMemory::view` of the stage-2 output, which
// vouches for the range for as long as the memory lives (`'m`); read-modify-writes are
// asked for only over writable memory (`Nested::new` checks).
unsafe impl<'m, F2: Format, V: ViewMemory> Fetch<'m> for ThroughStage2<'m, F2, V> {
    type Error = NestedFault;
    fn table(
        &mut self,
        ipa: u64,
        bytes: usize,
        offset: u64,
        update: bool,
        fault: WalkFault,
    ) -> core::result::Result<NonNull<u8>, NestedFault> {
        let access = if update { Access::RW } else { Access::READ };
        // The hardware translates the address of the descriptor it fetches, and a
        // stage-2 fault names that address.
        let descriptor = ipa.wrapping_add(offset);
        let t = self
            .s2
            .stage2(descriptor, access, self.iova, Some(fault.level))?;
        // The whole table must lie in that one stage-2 page (a table is aligned to its
        // size, and no larger than the smallest page in every hardware format).
        let pa = t.pa.0.wrapping_sub(offset);
        let page = t.pa.0 & !(t.size - 1);
        let fits = pa >= page && pa - page + bytes as u64 <= t.size;
        let mem = &**self.s2.memory();
        if pa % 8 != 0 || !fits || update && !mem.writable() {
            return Err(fault.into());
        }
        mem.view(pa, bytes).ok_or_else(|| fault.into())
    }
}
