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
