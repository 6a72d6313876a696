// Sessions, builders and gathers are `#[must_use]`.
#![deny(unused_must_use)]
use pgtable_core::testfmt::TestFormat;
use pgtable_core::{Gather, HostMemory, PageTable};
use std::sync::Arc;

fn main() {
    let pt = PageTable::new(TestFormat::new(), Arc::new(HostMemory::new())).unwrap();
    pt.session();
    PageTable::builder(TestFormat::new(), Arc::new(HostMemory::new()));
    Gather::new();
}
