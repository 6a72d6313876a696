// A table pointer cannot outlive the epoch pin under which it was reached.
use pgtable_core::testfmt::TestFormat;
use pgtable_core::{HostMemory, PageTable};
use std::sync::Arc;

fn main() {
    let pt = PageTable::new(TestFormat::new(), Arc::new(HostMemory::new())).unwrap();
    let root = {
        let session = pt.session();
        session.root_table()
    };
    let _ = root.load(0);
}
