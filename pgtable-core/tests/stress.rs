//! Time-bounded stress: disjoint writers freeing whole tables, readers translating,
//! walking and dumping, on poisoned arena memory.

use pgtable_core::conformance::stress;
use pgtable_core::testfmt::TestFormat;
use std::time::Duration;

#[test]
fn stress_4_level() {
    stress(TestFormat::new(), Duration::from_millis(1500));
}

#[test]
fn stress_3_level_contiguous() {
    stress(
        TestFormat::with(3, 39).with_contig(16),
        Duration::from_millis(700),
    );
}
