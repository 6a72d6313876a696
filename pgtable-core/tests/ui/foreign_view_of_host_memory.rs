// Host memory cannot vouch for an arbitrary physical address, so it cannot view tables
// the library did not build (the v0.1 core segfaulted in `translate` here).
use pgtable_core::testfmt::TestFormat;
use pgtable_core::{ForeignTable, HostMemory, PhysAddr};
use std::sync::Arc;

fn main() {
    let _ = ForeignTable::new(TestFormat::new(), Arc::new(HostMemory::new()), PhysAddr(0xdead_0000));
}
