//! # pgtable-core: IOMMU page tables you can read while they change
//!
//! A format-agnostic walker for I/O page tables. A [`Format`] (Intel VT-d, Arm
//! VMSAv8-64, or the small [`testfmt::TestFormat`]) supplies geometry and inline
//! entry encoders; [`PageTable`] is the one generic algorithm (map, unmap,
//! translate, walk, dump) monomorphised per format, over table pages from a
//! [`TableMemory`] ([`HostMemory`] or [`ArenaMemory`]).
//!
//! ```
//! use pgtable_core::testfmt::TestFormat;
//! use pgtable_core::{Gather, HostMemory, Iova, PageTable, PhysAddr, Prot};
//! use std::sync::Arc;
//!
//! let pt = PageTable::new(TestFormat::new(), Arc::new(HostMemory::new()))?;
//! pt.map_pages(Iova(0x10_0000), PhysAddr(0x8_0000_0000), 0x1000, 4, Prot::READ | Prot::WRITE)?;
//! let t = pt.translate(Iova(0x10_2345))?;
//! assert_eq!((t.pa, t.size, t.level), (PhysAddr(0x8_0000_2345), 0x1000, 0));
//! let mut gather = Gather::new();
//! assert_eq!(pt.unmap(Iova(0x10_0000), 0x4000, &mut gather)?, 0x4000);
//! // ... invalidate gather.range() in the IOTLB, then:
//! gather.release();
//! # Ok::<(), pgtable_core::Error>(())
//! ```
//!
//! ## Concurrency contract
//!
//! Every operation takes `&self`; a `PageTable` is `Send + Sync`.
//!
//! 1. **Mutators on disjoint ranges run concurrently, lock-free.** `map*` and `unmap*`
//!    on disjoint IOVA ranges may run at the same time from any threads. A missing
//!    table level is installed by compare-exchange from empty with release ordering;
//!    the loser of a race keeps its (never published) page for later and continues
//!    through the winner's table. A table is detached by compare-exchange from its
//!    table entry to empty, so of two racing detaches exactly one owns (and frees) the
//!    page. Leaves are written with release stores after checking the entry is empty.
//! 2. **Readers run anywhere, any time.** [`PageTable::iova_to_phys`],
//!    [`PageTable::translate`], [`PageTable::walk`], [`PageTable::dump`] and
//!    [`PageTable::info`] take no lock and may overlap any mutation. Each entry is one
//!    atomic 64-bit word read with acquire ordering, so a reader sees it either before
//!    or after a change, never torn.
//! 3. **No page is freed before the hardware and every reader let go.** Readers and
//!    mutators are pinned in crossbeam-epoch while they hold table pointers (a
//!    [`TableRef`] cannot outlive its pin). A table level is unlinked only when one
//!    unmap removes every leaf in its whole span, or a larger `map` replaces an empty
//!    subtree. The IOMMU may still walk an unlinked page from its walk caches, so:
//!    pages an unmap unlinks go into the caller's [`Gather`] — which may hold the pages
//!    of several tables, of any formats — and reach the epoch only when the caller
//!    releases it after the IOTLB invalidation; pages the library unlinks on its own (a
//!    map replacing an empty subtree, the rollback of a failed `map`,
//!    [`PageTable::unmap_now`]) reach it only after the table's [`FlushWalk`] hook
//!    returned (a table without a hook is one no hardware walks). After that a page is
//!    reused or freed only once every thread pinned at that point has unpinned.
//!    Dropping the table frees everything at once, including pages still waiting for
//!    the epoch (no reader can exist then); pages held by an unreleased gather stay
//!    with the gather.
//! 4. **Overlapping mutations are a caller bug, but memory safe.** Their mapping result
//!    is unspecified (a mapping may be lost or a table page leaked), yet every free
//!    still goes through exactly one successful compare-exchange (or swap) of the entry
//!    that pointed to the page, and through the epoch, so there is no use-after-free,
//!    no double free and no crash. The safe API relies on this.
//! 5. **Cost.** Each call pins once (a few nanoseconds); a [`Session`] pins once for a
//!    batch. Mapping into existing tables and unmapping leaves neither allocate nor lock.
//!    Reclamation stays off that path: a gather release becomes one deferred closure
//!    that moves its pages, as one batch, into the table's page cache, from which new
//!    tables are taken; the cache's surplus goes back to the memory in later releases,
//!    a bounded amount each time.
//!
//! ## Safety by construction
//! Safe code cannot make the walker touch memory that is not a live table page:
//! [`Format`] and [`TableMemory`] are `unsafe trait`s (their promises are what the
//! walker's safety rests on), each table page is checked when it is installed (the
//! format must encode its address and decode it back, the memory must map it back, or
//! the map fails with [`Error::TableUnencodable`] / [`Error::TableUnreachable`] and the
//! page is given back), and foreign tables can only be viewed in memory that checks
//! every address ([`ViewMemory`]).
//!
//! A gather belongs to one thread at a time (it is `Send`, not shared).
//!
//! ## Semantics
//! - `map_pages` refuses bad arguments before changing anything; a leaf in the range is
//!   [`Error::Exists`] (pages before it stay mapped). `map` picks the largest page
//!   sizes that fit ([`page_runs`]) and is all-or-nothing.
//! - `unmap*` never splits: a start inside a larger leaf unmaps nothing, an end inside
//!   one removes it whole, and the unmap stops at the first hole.
//! - Levels are numbered from 0 at the smallest page; dumps use the hardware's names.

#![warn(missing_docs)]

mod access;
mod addr;
#[cfg(feature = "conformance")]
pub mod conformance;
mod detach;
mod dirty;
mod dump;
mod error;
mod flush;
mod foreign;
mod format;
mod gather;
mod geometry;
mod level;
mod map;
mod memory;
mod prot;
mod reclaim;
mod session;
pub mod sync;
mod table;
pub mod testfmt;
mod unmap;
mod walk;
mod writer;

pub use access::{Access, FaultKind, Nested, NestedFault, WalkFault, WalkPolicy};
pub use addr::{Iova, PhysAddr};
pub use dirty::DirtyFlags;
pub use error::{ConfigError, Error, Result};
pub use flush::FlushWalk;
pub use foreign::{DEFAULT_WALK_BUDGET, ForeignTable};
pub use format::{AccessFlag, BitOp, DirtyBits, Entry, Fault, Format, HwInfo, OwnEntry};
pub use gather::Gather;
pub use geometry::{Geometry, MAX_LEVELS};
pub use level::TableRef;
pub use map::page_runs;
pub use memory::{ArenaMemory, ArenaStats, HostMemory, TableMemory, TablePage, ViewMemory};
pub use prot::Prot;
pub use reclaim::DEFAULT_PAGE_CACHE_BYTES;
pub use session::Session;
pub use table::{PageTable, PageTableBuilder, TableInfo};
pub use walk::{SharedTable, Translation};
pub use writer::{TableWriter, WriterPage};
