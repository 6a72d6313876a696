//! An IOMMU domain as the simulation drives it: its table, its IOVA allocator, and the
//! discipline of one of two designs over the very same table code.
//!
//! - [`Design::LockFree`], this library's: writers on disjoint ranges and readers
//!   anywhere, no lock at all; unlinked tables are freed through the epoch.
//! - [`Design::Locked`], the design it replaces, as simpler drivers do it: one lock per
//!   domain. Every map and unmap takes it exclusively; every reader takes it shared
//!   (without RCU-style freeing, the lock is what keeps a reader off a freed table
//!   page), and the debugfs dumper holds it for a whole pass.
//!
//! The lock is an [`RwLock`] beside the table rather than around it, so both designs
//! run one workload through the same calls; the locked one just takes it first. It is
//! parking_lot's task-fair lock: readers queue behind a waiting writer, as they do
//! behind a kernel rwlock or spinlock. (std's `RwLock` lets a reader retake the lock
//! between a writer's wake-up and its turn, so a dumper passing back to back starves
//! the writers for hundreds of milliseconds: an artifact of that lock, not the design.)

use crate::error::CliError;
use iova_cache::IovaDomain;
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use pgtable_core::{Format, Geometry, HostMemory, PageTable};
use serde::Serialize;
use std::sync::Arc;

/// How a domain's software paths synchronise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Design {
    /// No lock: this library's concurrency contract.
    LockFree,
    /// One reader-writer lock per domain.
    Locked,
}

impl Design {
    /// The name the summary prints.
    pub fn name(self) -> &'static str {
        match self {
            Design::LockFree => "lock-free",
            Design::Locked => "locked",
        }
    }
}

/// A table, its IOVA allocator and its design's lock.
#[derive(Debug)]
pub struct Domain<F: Format> {
    /// The I/O page table.
    pub pt: PageTable<F, HostMemory>,
    /// The IOVA allocator in front of it.
    pub iova: IovaDomain,
    /// `Some` in the locked design.
    lock: Option<RwLock<()>>,
}

impl<F: Format> Domain<F> {
    /// An empty domain of format `fmt`, whose allocator never hands out the IOVAs
    /// `reserved` (first and last byte).
    ///
    /// # Errors
    /// [`CliError::Config`] if the table or the allocator refuses the configuration.
    pub fn new(fmt: F, design: Design, reserved: Option<(u64, u64)>) -> Result<Self, CliError> {
        let pt = PageTable::new(fmt, Arc::new(HostMemory::new()))
            .map_err(|e| CliError::Config(e.to_string()))?;
        let geo = *pt.geometry();
        let iova = IovaDomain::new(geo.granule(), 1, false)
            .map_err(|e| CliError::Config(format!("IOVA domain: {e}")))?;
        if let Some((first, last)) = reserved {
            iova.reserve(first >> geo.granule_shift, last >> geo.granule_shift)
                .map_err(|e| CliError::Config(format!("IOVA reservation: {e}")))?;
        }
        Ok(Domain {
            pt,
            iova,
            lock: (design == Design::Locked).then(|| RwLock::new(())),
        })
    }

    /// What a map or unmap takes first: the lock, exclusively (nothing when lock-free).
    #[inline(always)]
    pub fn writer(&self) -> Option<RwLockWriteGuard<'_, ()>> {
        self.lock.as_ref().map(RwLock::write)
    }

    /// What a reader takes first: the lock, shared (nothing when lock-free).
    #[inline(always)]
    pub fn reader(&self) -> Option<RwLockReadGuard<'_, ()>> {
        self.lock.as_ref().map(RwLock::read)
    }

    /// Table pages in the tree or waiting for reclamation (not those cached for reuse).
    pub fn table_pages(&self) -> u64 {
        let info = self.pt.info();
        info.table_pages.saturating_sub(info.cached_pages)
    }
}

/// The fewest table pages (in granules) that `mapped` bytes of granule-sized pages
/// need: a perfectly packed mapping fills every table but the last of each level.
pub fn min_table_pages(geo: &Geometry, mapped: u64) -> u64 {
    // The top table always exists; it may span several granules (concatenated Arm
    // stage-2 tables), and a small one still takes a page of its own.
    let top = ((geo.table_bytes(geo.top()) as u64) >> geo.granule_shift).max(1);
    // A table of level l (l below the top) spans what one entry of level l + 1 maps.
    let below: u64 = (0..geo.top())
        .map(|l| mapped.div_ceil(geo.entry_span(l + 1)))
        .sum();
    top + below
}

#[cfg(test)]
mod tests {
    use super::*;
    use smmu_format::{ArmConfig, ArmS2};
    use vtd_format::VtdSs;

    #[test]
    fn minimum_tables_of_a_four_level_table() {
        let geo = VtdSs::new(48, 48).unwrap().geometry();
        // Nothing mapped: the root alone.
        assert_eq!(min_table_pages(&geo, 0), 1);
        // One page: one table per level.
        assert_eq!(min_table_pages(&geo, 4096), 4);
        // 32 MiB: 16 last-level tables, one of each above.
        assert_eq!(min_table_pages(&geo, 32 << 20), 16 + 1 + 1 + 1);
        // 2 MiB + 4 KiB spills into a second last-level table.
        assert_eq!(min_table_pages(&geo, (2 << 20) + 4096), 2 + 1 + 1 + 1);
        // 1 TiB: 512 Ki last-level tables, 1 Ki, 2, and the root.
        assert_eq!(
            min_table_pages(&geo, 1 << 40),
            (1 << 19) + (1 << 10) + 2 + 1
        );
    }

    #[test]
    fn minimum_tables_count_a_concatenated_root_in_granules() {
        // Stage 2, 4K granule, 40-bit input: two concatenated level-1 tables at the top.
        let geo = ArmS2::new(ArmConfig::new(4096, 40, 40)).unwrap().geometry();
        assert_eq!(geo.levels, 3);
        assert_eq!(min_table_pages(&geo, 4096), 2 + 1 + 1);
    }

    #[test]
    fn the_lock_exists_only_in_the_locked_design() {
        let fmt = VtdSs::new(48, 48).unwrap();
        let d = Domain::new(fmt, Design::LockFree, None).unwrap();
        assert!(d.writer().is_none() && d.reader().is_none());
        let d = Domain::new(fmt, Design::Locked, Some((0xFEE0_0000, 0xFEEF_FFFF))).unwrap();
        let r1 = d.reader();
        let r2 = d.reader();
        assert!(r1.is_some() && r2.is_some());
        drop((r1, r2));
        assert!(d.writer().is_some());
        assert_eq!(d.table_pages(), 1);
    }
}
