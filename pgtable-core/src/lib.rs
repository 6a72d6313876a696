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
//! use pgtable_core::{Gather, HostMemory, PageTable, Prot};
//! use std::sync::Arc;
//!
//! let pt = PageTable::new(TestFormat::new(), Arc::new(HostMemory::new()))?;
//! pt.map_pages(0x10_0000, 0x8_0000_0000, 0x1000, 4, Prot::READ | Prot::WRITE)?;
//! let t = pt.translate(0x10_2345)?;
//! assert_eq!((t.pa, t.size, t.level), (0x8_0000_2345, 0x1000, 0));
//! let mut gather = Gather::new();
//! assert_eq!(pt.unmap(0x10_0000, 0x4000, &mut gather)?, 0x4000);
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
//!    the loser of a race frees its (never published) page at once and continues
//!    through the winner's table. A table is detached by compare-exchange from its
//!    table entry to empty, so of two racing detaches exactly one owns (and frees) the
//!    page. Leaves are written with release stores after checking the entry is empty.
//! 2. **Readers run anywhere, any time.** [`PageTable::iova_to_phys`],
//!    [`PageTable::translate`], [`PageTable::walk`], [`PageTable::dump`] and
//!    [`PageTable::info`] take no lock and may overlap any mutation. Each entry is one
//!    atomic 64-bit word read with acquire ordering, so a reader sees it either before
//!    or after a change, never torn.
//! 3. **No reader touches a freed page.** Readers and mutators are pinned in
//!    crossbeam-epoch while they hold table pointers. A table level is unlinked only when
//!    one unmap removes every leaf in its whole span (or a larger `map` replaces an
//!    empty subtree); the unlinked pages go into the caller's [`Gather`] and reach the
//!    epoch collector only when the gather is released (after the caller's IOTLB
//!    invalidation, because the IOMMU may still walk them), and are freed only after
//!    every thread pinned at that point has unpinned. Dropping the table frees
//!    everything at once, including pages still waiting for the epoch (no reader can
//!    exist then).
//! 4. **Overlapping mutations are a caller bug, but memory safe.** Their mapping result
//!    is unspecified (a mapping may be lost or a table page leaked), yet every free
//!    still goes through exactly one successful compare-exchange (or swap) of the entry
//!    that pointed to the page, and through the epoch, so there is no use-after-free,
//!    no double free and no crash. The safe API relies on this.
//! 5. **Cost.** Each call pins once (a few nanoseconds); a [`Session`] pins once for a
//!    batch. Mapping into existing tables and unmapping leaves neither allocate nor lock.
//!    Releasing a gather that holds table pages takes a short per-table lock to register
//!    the batch (that is what lets drop reclaim synchronously).
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

#[cfg(feature = "conformance")]
pub mod conformance;
mod dump;
mod error;
mod format;
mod gather;
mod map;
mod memory;
mod prot;
mod reclaim;
pub mod sync;
mod table;
pub mod testfmt;
mod unmap;

pub use error::{Error, Result};
pub use format::{Entry, Fault, Format, Geometry, HwInfo};
pub use gather::Gather;
pub use map::page_runs;
pub use memory::{ArenaMemory, ArenaStats, HostMemory, TableMemory, TablePage};
pub use prot::Prot;
pub use table::{ForeignTable, PageTable, Session, SharedTable, TableInfo, Translation};
