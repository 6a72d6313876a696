//! An IOVA allocator: an O(log n) range tree with per-CPU magazines and a bounded depot
//! in front.
//!
//! [`IovaDomain`] hands out ranges of I/O virtual page frame numbers (pfns) below a
//! per-call limit, the job of Linux's `drivers/iommu/iova.c`, with the same two paths:
//!
//! - the **fast path** ([`IovaDomain::alloc_fast`], [`IovaDomain::free_fast`]) caches
//!   freed power-of-two ranges in per-CPU magazines (two per CPU and size class; the CPU
//!   number read from the thread's rseq area where glibc registers one, else from
//!   `sched_getcpu`) and a shared depot of full magazines per size class. The depot
//!   grows while allocations find it empty, shrinks by one magazine per 100 ms while
//!   they do not, and never exceeds its cap, trimming the excess back to the tree, so
//!   cached space is bounded at every moment:
//!   `cached_pfns <= (2 * cpus + cap) * 127 * (2^(max_cached_order + 1) - 1)` pages,
//!   with a default cap of `max(32, 2 * cpus)` magazines (see
//!   [`IovaOptions::depot_limit`] and [`IovaDomain::cached_pfns_bound`]);
//! - the **slow path** ([`IovaDomain::alloc`], [`IovaDomain::free`], ...) is a B+ tree
//!   of allocated and reserved ranges whose nodes summarise the free gaps below them,
//!   so the highest fitting aligned gap under any limit is found in O(log n) whatever
//!   the fragmentation (Linux walks its rbtree linearly).
//!
//! The semantics are those of the `iova_*` functions of the C API (`docs/c-api.md`), which
//! wrap this crate; [`IovaError::errno`] gives their return values.
//!
//! ```
//! use iova_cache::{IovaDomain, IovaError};
//!
//! let d = IovaDomain::new(4096, 1, true).unwrap(); // checked: catches double frees
//! let dma32 = 0xFFFFF; // last pfn below 4 GiB
//! let a = d.alloc_fast(8, dma32, true).unwrap();
//! assert_eq!(a, 0xFFFF8); // top down, aligned to its size
//! d.free_fast(a, 8).unwrap();
//! assert_eq!(d.free_fast(a, 8), Err(IovaError::BadFree { pfn: a, size: 8 }));
//! assert_eq!(d.stats().cached_pfns, 8);
//! ```

mod cache;
mod cpu;
mod depot;
mod domain;
mod error;
mod gap;
mod hint;
mod magazine;
mod options;
mod range_tree;
mod stats;
mod sync;

pub use domain::IovaDomain;
pub use error::IovaError;
pub use options::{DEFAULT_MAX_CACHED_ORDER, IovaOptions, MAX_CACHED_ORDER_LIMIT};
pub use stats::IovaStats;
