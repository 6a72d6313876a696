//! Shared set-up for the criterion suites in `benches/`: the formats under test, a
//! 1 GiB window of 4 KiB pages, and the thread counts of the scaling groups.
//!
//! Run everything with `cargo bench -p benches`; see `benches/README.md` for the numbers
//! and `scripts/bench-report.sh` / `scripts/bench-scaling.sh` for the reports.

pub mod capi;
pub mod floor;

use pgtable_core::{Format, Gather, HostMemory, PageTable, Prot};
use pgtable_core::{Iova, PhysAddr};
use smmu_format::{ArmConfig, ArmS1, ArmS2};
use std::sync::Arc;
use vtd_format::{VtdFs, VtdSs};

/// 4 KiB.
pub const K4: u64 = 0x1000;
/// 2 MiB.
pub const M2: u64 = 0x20_0000;
/// The window the per-page groups cycle through: 1 GiB, 262,144 pages.
pub const WINDOW: u64 = 0x4000_0000;
/// Where the window starts (away from 0 so every level's index is exercised).
pub const BASE: u64 = 0x40_0000_0000;
/// Output addresses are the IOVA plus this.
pub const PA_DELTA: u64 = 0x10_0000_0000;

/// VT-d second stage, 48-bit.
pub fn vtd_ss_48() -> VtdSs {
    VtdSs::new(48, 48).expect("VT-d SS 48")
}
/// VT-d first stage, 4-level.
pub fn vtd_fs_48() -> VtdFs {
    VtdFs::new(48, 48).expect("VT-d FS 48")
}
/// Arm stage 1, 4 KiB granule, 48-bit.
pub fn arm_s1_4k_48() -> ArmS1 {
    ArmS1::new(ArmConfig::new(4096, 48, 48)).expect("Arm S1 4K/48")
}
/// Arm stage 1, 64 KiB granule, 48-bit.
pub fn arm_s1_64k_48() -> ArmS1 {
    ArmS1::new(ArmConfig::new(65536, 48, 48)).expect("Arm S1 64K/48")
}
/// Arm stage 2, 4 KiB granule, 40-bit (two concatenated L1 tables).
pub fn arm_s2_4k_40() -> ArmS2 {
    ArmS2::new(ArmConfig::new(4096, 40, 40)).expect("Arm S2 4K/40")
}

/// The thread counts of the scaling groups: 1..=N with N from `BENCH_THREADS` or the
/// machine's parallelism.
pub fn thread_counts() -> Vec<usize> {
    let n = std::env::var("BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    (1..=n.max(1)).collect()
}

/// A table on host memory with `fmt`.
pub fn table<F: Format>(fmt: F) -> PageTable<F, HostMemory> {
    PageTable::new(fmt, Arc::new(HostMemory::new())).expect("table")
}

/// The base IOVA of the window for a format whose input space may be small (the
/// 40-bit stage 2): the window must fit below the input size.
pub fn base_for<F: Format>(fmt: &F) -> u64 {
    let va = fmt.geometry().va_bits;
    if va >= 40 {
        BASE.min((1u64 << (va - 1)) - WINDOW)
    } else {
        0
    }
}

/// Maps the whole window with 4 KiB pages (so every table exists), then unmaps it page
/// by page (single-page unmaps never free a table): the tables stay, empty.
pub fn warm_tables<F: Format>(pt: &PageTable<F, HostMemory>, base: u64) {
    let g = pt.geometry().granule();
    pt.map_pages(
        Iova(base),
        PhysAddr(base + PA_DELTA),
        g,
        WINDOW / g,
        Prot::RW,
    )
    .expect("warm map");
    unmap_each(pt, base, g);
}

/// Unmaps the window one page at a time.
pub fn unmap_each<F: Format>(pt: &PageTable<F, HostMemory>, base: u64, pgsize: u64) {
    let s = pt.session();
    let mut gather = Gather::new();
    for i in 0..WINDOW / pgsize {
        let _ = s.unmap_pages(Iova(base + i * pgsize), pgsize, 1, &mut gather);
    }
    gather.release();
}

/// Maps the window one page at a time.
pub fn map_each<F: Format>(pt: &PageTable<F, HostMemory>, base: u64, pgsize: u64) {
    let s = pt.session();
    for i in 0..WINDOW / pgsize {
        let iova = base + i * pgsize;
        let _ = s.map_pages(Iova(iova), PhysAddr(iova + PA_DELTA), pgsize, 1, Prot::RW);
    }
}

/// The repository README's Rust example, compiled and run as a doc test so that it
/// stays true (here, in the crate that is never published, so no published crate
/// reaches outside its package).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
