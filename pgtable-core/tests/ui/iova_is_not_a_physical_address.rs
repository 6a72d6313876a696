// IOVAs and physical addresses do not mix: swapping them does not compile.
use pgtable_core::testfmt::TestFormat;
use pgtable_core::{HostMemory, Iova, PageTable, PhysAddr, Prot};
use std::sync::Arc;

fn main() {
    let pt = PageTable::new(TestFormat::new(), Arc::new(HostMemory::new())).unwrap();
    let _ = pt.map_pages(PhysAddr(0x8000), Iova(0x1000), 0x1000, 1, Prot::RW);
}
