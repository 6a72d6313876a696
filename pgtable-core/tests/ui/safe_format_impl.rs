// The walker follows the table addresses a format decodes: implementing `Format` is a
// promise that needs `unsafe impl`.
use pgtable_core::testfmt::TestFormat;
use pgtable_core::{Entry, Format, Geometry, HwInfo, Prot};

#[derive(Debug, Clone)]
struct Mine;

impl Format for Mine {
    fn geometry(&self) -> Geometry {
        TestFormat::new().geometry()
    }
    fn name(&self) -> &'static str {
        "mine"
    }
    fn level_name(&self, _level: u32) -> &'static str {
        "L"
    }
    fn encode_leaf(&self, pa: u64, _level: u32, _prot: Prot) -> u64 {
        pa | 1
    }
    fn encode_table(&self, pa: u64, _level: u32) -> u64 {
        pa | 1
    }
    fn decode(&self, raw: u64, _level: u32) -> Entry {
        Entry::Table(raw ^ 0x1000)
    }
    fn hw_info(&self, _root: u64) -> HwInfo {
        HwInfo::default()
    }
}

fn main() {}
