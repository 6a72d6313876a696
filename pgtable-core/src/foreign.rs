//! [`ForeignTable`]: a read-only view of tables this library did not build.

use crate::access::{Walk, WalkPolicy};
use crate::addr::{Iova, PhysAddr};
use crate::error::{ConfigError, Error, Result};
use crate::format::{Fault, Format};
use crate::geometry::Geometry;
use crate::level::TableRef;
use crate::memory::ViewMemory;
use crate::sync::epoch::{self, Guard};
use crate::table::TableInfo;
use crate::walk::{SharedTable, Translation, ViewTables, Walker, bounds};
use std::fmt;
use std::ops::ControlFlow;
use std::sync::Arc;

/// A read-only view of tables this library did not build (a guest's tables, a memory
/// image), decoded exactly as the hardware would: translations report why they fault
/// (not present, reserved bits, address size, a table outside memory).
///
/// The memory must know its bounds ([`ViewMemory`]; [`HostMemory`](crate::HostMemory)
/// is not one): every next-table address is checked against it before it is followed,
/// a translation is bounded by the format's level count, and `walk`/`dump` read at most
/// a budget of entries ([`ForeignTable::with_walk_budget`]): a table page shared
/// between entries is walked under each of them, as the hardware would, and corrupt or
/// cyclic tables cannot loop or blow up. Nothing is written to the tables (unless
/// [`ForeignTable::with_policy`] asks for the hardware's access/dirty updates) and
/// nothing is freed.
///
/// ```
/// # use pgtable_core::testfmt::TestFormat;
/// use pgtable_core::{ArenaMemory, ForeignTable, Iova, PageTable, PhysAddr, Prot};
/// use std::sync::Arc;
/// let mem = Arc::new(ArenaMemory::new(0x100_0000, 1 << 20));
/// let pt = PageTable::new(TestFormat::new(), mem.clone())?;
/// pt.map_pages(Iova(0x5000), PhysAddr(0x9000), 0x1000, 1, Prot::RW)?;
/// let view = ForeignTable::new(TestFormat::new(), mem.clone(), pt.root_phys())?;
/// assert_eq!(view.translate(Iova(0x5010))?.pa, PhysAddr(0x9010));
/// # Ok::<(), pgtable_core::Error>(())
/// ```
///
/// Memory that cannot vouch for arbitrary addresses cannot be viewed:
///
/// ```compile_fail
/// # use pgtable_core::testfmt::TestFormat;
/// use pgtable_core::{ForeignTable, HostMemory, PhysAddr};
/// let view = ForeignTable::new(TestFormat::new(), std::sync::Arc::new(HostMemory::new()),
///                              PhysAddr(0xdead_0000));
/// ```
/// use pgtable_core::{Iova, PhysAddr};
pub struct ForeignTable<F: Format, V: ViewMemory> {
    fmt: F,
    geo: Geometry,
    root_phys: u64,
    mem: Arc<V>,
    policy: WalkPolicy,
    budget: u64,
}

impl<F: Format, V: ViewMemory> Clone for ForeignTable<F, V> {
    fn clone(&self) -> Self {
        ForeignTable {
            fmt: self.fmt.clone(),
            geo: self.geo,
            root_phys: self.root_phys,
            mem: self.mem.clone(),
            policy: self.policy,
            budget: self.budget,
        }
    }
}

/// How many entries a [`ForeignTable::walk`] or [`ForeignTable::dump`] reads at most by
/// default: tables a guest shares between entries are walked under each of them, so
/// the work of a walk is bounded by this budget rather than by the memory's size.
pub const DEFAULT_WALK_BUDGET: u64 = 1 << 26;

impl<F: Format, V: ViewMemory> fmt::Debug for ForeignTable<F, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForeignTable")
            .field("format", &self.fmt)
            .field("root", &PhysAddr(self.root_phys))
            .finish()
    }
}

impl<F: Format, V: ViewMemory> ForeignTable<F, V> {
    /// A view of the tables whose top table is at `root` in `mem`.
    ///
    /// # Errors
    /// [`Error::BadConfig`] for an inconsistent format, [`Error::Fault`] with
    /// [`Fault::BadTableAddress`] if the top table is not inside `mem`.
    pub fn new(fmt: F, mem: Arc<V>, root: PhysAddr) -> Result<Self> {
        let geo = fmt.geometry();
        geo.validate()?;
        let view = ForeignTable {
            fmt,
            geo,
            root_phys: root.0,
            mem,
            policy: WalkPolicy::READ_ONLY,
            budget: DEFAULT_WALK_BUDGET,
        };
        if view.root_ptr().is_none() {
            return Err(Error::Fault {
                iova: Iova(0),
                fault: Fault::BadTableAddress { pa: root.0 },
            });
        }
        Ok(view)
    }

    /// The hardware updates [`ForeignTable::translate_access`] makes (by default none).
    ///
    /// # Errors
    /// [`Error::BadConfig`] with [`ConfigError::ReadOnlyMemory`] for a policy that
    /// updates entries over memory that cannot be written.
    pub fn with_policy(mut self, policy: WalkPolicy) -> Result<Self> {
        if policy.updates() && !self.mem.writable() {
            return Err(Error::BadConfig(ConfigError::ReadOnlyMemory));
        }
        self.policy = policy;
        Ok(self)
    }

    /// The hardware updates `translate_access` makes.
    pub fn policy(&self) -> WalkPolicy {
        self.policy
    }

    /// Bounds the entries a `walk` or `dump` reads (see [`DEFAULT_WALK_BUDGET`]).
    pub fn with_walk_budget(mut self, entries: u64) -> Self {
        self.budget = entries;
        self
    }

    /// The inputs of an access walk.
    pub(crate) fn access_walk(&self) -> Walk<'_, F> {
        Walk {
            fmt: &self.fmt,
            geo: &self.geo,
            root: self.root_phys,
            policy: self.policy,
        }
    }

    fn root_ptr(&self) -> Option<std::ptr::NonNull<u8>> {
        if !self.root_phys.is_multiple_of(8) {
            return None;
        }
        self.mem
            .view(self.root_phys, self.geo.table_bytes(self.geo.top()))
    }

    fn walker<'g>(&'g self, _g: &'g Guard) -> Walker<'g, F, ViewTables<'g, V>> {
        let virt = self.root_ptr().expect("checked in new()");
        // SAFETY: `view` vouched that the whole top table lies in memory valid for as
        // long as `self.mem` lives, which outlives this borrow of `self`; it is 8-byte
        // aligned (the root address is), and tables hold a power of two of entries.
        let root = unsafe { TableRef::from_raw(virt, self.geo.entries(self.geo.top())) };
        Walker::new(&self.fmt, &self.geo, ViewTables { mem: &*self.mem }, root)
    }

    /// The format.
    pub fn format(&self) -> &F {
        &self.fmt
    }

    /// The memory viewed.
    pub fn memory(&self) -> &Arc<V> {
        &self.mem
    }

    /// The top table's physical address.
    pub fn root_phys(&self) -> PhysAddr {
        PhysAddr(self.root_phys)
    }

    /// See [`PageTable::translate`](crate::PageTable::translate); faults carry the reason.
    ///
    /// # Errors
    /// [`Error::IovaRange`], [`Error::NotMapped`], or [`Error::Fault`] with the reason.
    pub fn translate(&self, iova: Iova) -> Result<Translation> {
        let g = epoch::pin();
        self.walker(&g).lookup(iova.0)
    }

    /// See [`PageTable::walk`](crate::PageTable::walk).
    ///
    /// # Errors
    /// As [`PageTable::walk`](crate::PageTable::walk).
    pub fn walk<B>(
        &self,
        range: impl std::ops::RangeBounds<Iova>,
        mut f: impl FnMut(&Translation) -> ControlFlow<B>,
    ) -> Result<Option<B>> {
        let Some((start, last)) = bounds(range, self.geo.va_bits)? else {
            return Ok(None);
        };
        let g = epoch::pin();
        let mut visit = |_: &[u64], t: &Translation| f(t);
        self.walker(&g)
            .leaves(start, last, self.budget, false, &mut visit)
            .result()
    }

    /// See [`PageTable::dump`](crate::PageTable::dump).
    ///
    /// # Errors
    /// Whatever `out` returns.
    pub fn dump(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        let g = epoch::pin();
        crate::dump::dump_tree(&self.walker(&g), self.root_phys, self.budget, out)
    }

    /// The geometry and register values (0 pages: a view allocates none).
    pub fn info(&self) -> TableInfo {
        TableInfo {
            geometry: self.geo,
            table_pages: 0,
            cached_pages: 0,
            hw: self.fmt.hw_info(self.root_phys),
        }
    }

    /// The first table page reached twice (shared or cyclic tables), if any, found by
    /// entering each table page once: a caller may refuse such tables, or expect their
    /// `walk` to report the shared leaves under every entry that reaches them.
    pub fn shared_table(&self) -> Option<SharedTable> {
        let g = epoch::pin();
        let mut leaves = |_: &[u64], _: &Translation| ControlFlow::<()>::Continue(());
        self.walker(&g)
            .leaves(
                0,
                (1u64 << self.geo.va_bits) - 1,
                u64::MAX,
                true,
                &mut leaves,
            )
            .repeat
    }
}
