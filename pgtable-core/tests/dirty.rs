//! Dirty tracking on the test format (the hardware formats run the same batteries).

use pgtable_core::conformance::{dirty_by_hardware_walks, dirty_concurrency, dirty_tracking};
use pgtable_core::testfmt::TestFormat;
use pgtable_core::{ArenaMemory, HostMemory};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn encodings_transitions_bitmaps_and_bad_arguments() {
    dirty_tracking(TestFormat::new(), Arc::new(HostMemory::new()));
    dirty_tracking(
        TestFormat::with(3, 39),
        Arc::new(ArenaMemory::new(0x4000_0000, 8 << 20)),
    );
}

#[test]
fn the_access_walk_as_hardware_dirties_what_it_writes() {
    dirty_by_hardware_walks(TestFormat::new());
    dirty_by_hardware_walks(TestFormat::with(3, 39));
}

#[test]
fn no_write_is_lost_or_invented_under_concurrency() {
    dirty_concurrency(TestFormat::new(), Duration::from_millis(500));
}

/// Two overlapping read-and-clear loops beside a "hardware" writer: every write is
/// reported exactly once in total (a page is reported only by the clear that made it
/// clean), none twice.
#[test]
fn overlapping_clears_report_each_write_once() {
    use pgtable_core::{DirtyFlags, Iova, PageTable, PhysAddr, Prot};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    const PAGES: u64 = 256;
    let pt = PageTable::new(TestFormat::new(), Arc::new(HostMemory::new())).unwrap();
    pt.map_pages(Iova(0), PhysAddr(0x1000_0000), 0x1000, PAGES, Prot::RW)
        .unwrap();
    pt.set_dirty_tracking(true).unwrap();
    let stop = AtomicBool::new(false);
    let (written, reported) = (AtomicU64::new(0), AtomicU64::new(0));
    let clear = || {
        let mut bm = [0u64; (PAGES / 64) as usize];
        pt.read_and_clear_dirty(
            Iova(0),
            PAGES * 0x1000,
            0x1000,
            &mut bm,
            DirtyFlags::empty(),
        )
        .unwrap();
        bm.iter().map(|w| u64::from(w.count_ones())).sum::<u64>()
    };
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    reported.fetch_add(clear(), Ordering::Relaxed);
                }
            });
        }
        let start = std::time::Instant::now();
        let mut x = 0x9e37_79b9u64;
        while start.elapsed() < Duration::from_millis(300) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if pt.mark_dirty(Iova((x % PAGES) * 0x1000)).unwrap() {
                written.fetch_add(1, Ordering::Relaxed);
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    reported.fetch_add(clear(), Ordering::Relaxed);
    let (w, r) = (written.into_inner(), reported.into_inner());
    assert!(w > 1000, "{w} writes");
    assert_eq!(r, w, "reported {r} of {w} writes");
}
