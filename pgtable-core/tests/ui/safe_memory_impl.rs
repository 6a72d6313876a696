// Table memory hands the walker raw pointers: implementing it needs `unsafe impl`.
use pgtable_core::{TableMemory, TablePage};
use std::ptr::NonNull;

struct Mine;

impl TableMemory for Mine {
    fn alloc(&self, _size: usize, _align: usize) -> Option<TablePage> {
        None
    }
    unsafe fn free(&self, _page: TablePage) {}
    fn phys_to_virt(&self, phys: u64, _len: usize) -> Option<NonNull<u8>> {
        NonNull::new(phys as *mut u8)
    }
}

fn main() {}
