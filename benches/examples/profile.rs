//! A fixed amount of one fast-path operation, for instruction counts under callgrind:
//!
//! ```sh
//! cargo build --release -p benches --example profile
//! valgrind --tool=callgrind target/release/examples/profile map_4k session
//! ```
//!
//! Operations: `map_4k`, `unmap_4k`, `iova_to_phys`, `map_2m`, `unmap_2m`; variants:
//! `floor`, `session`, `per_call`, `capi`. Each runs 2^16 calls over an already
//! allocated set of tables, on the Arm stage-1 4K format (or `vtd-ss` as a third arg).

use benches::capi::CTable;
use benches::floor::Floor;
use benches::{arm_s1_4k_48, vtd_ss_48};
use iommu_pt::types::{IOMMU_PT_FMT_ARM_S1, IOMMU_PT_FMT_VTD_SS};
use pgtable_core::{Format, Gather, HostMemory, Iova, PageTable, PhysAddr, Prot};
use std::hint::black_box;
use std::sync::Arc;

const N: u64 = 1 << 16;
const BASE: u64 = 0x40_0000_0000;
const K4: u64 = 0x1000;
const M2: u64 = 0x20_0000;

fn run<F: Format>(fmt: F, c_format: u32, op: &str, how: &str) {
    let big = op.ends_with("2m");
    let size = if big { M2 } else { K4 };
    let n = if big { 512 } else { N };
    let pt = PageTable::new(fmt.clone(), Arc::new(HostMemory::new())).unwrap();
    let ct = CTable::new(c_format, 48, 48, 4096);
    let mut floor = Floor::new(fmt);
    // Tables exist; for unmap and lookup, the pages are mapped.
    pt.map_pages(Iova(BASE), PhysAddr(BASE), size, n, Prot::RW)
        .unwrap();
    ct.map_pages(BASE, BASE, size, n);
    floor.map_pages(BASE, BASE, size, n, Prot::RW);
    if op.starts_with("map") {
        let mut g = Gather::new();
        for i in 0..n {
            pt.unmap_pages(Iova(BASE + i * size), size, 1, &mut g)
                .unwrap();
            ct.unmap_pages(BASE + i * size, size, 1);
            floor.unmap_pages(BASE + i * size, size, 1);
        }
        g.release();
        ct.release();
    }
    hot(&pt, &ct, &mut floor, op, how, size, n);
    ct.release();
}

/// The measured loop (callgrind: `--toggle-collect=*profile*hot*`): the operation is
/// chosen once, outside it.
#[inline(never)]
fn hot<F: Format>(
    pt: &PageTable<F, HostMemory>,
    ct: &CTable,
    floor: &mut Floor<F>,
    op: &str,
    how: &str,
    size: u64,
    n: u64,
) {
    let mut g = Gather::new();
    let s = pt.session();
    let at = |i: u64| BASE + i * size;
    let map = op.starts_with("map");
    match (op, how) {
        ("iova_to_phys", "floor") => each(n, |i| {
            black_box(floor.iova_to_phys(at(i)));
        }),
        ("iova_to_phys", "session") => each(n, |i| {
            black_box(s.iova_to_phys(Iova(at(i))));
        }),
        ("iova_to_phys", "per_call") => each(n, |i| {
            black_box(pt.iova_to_phys(Iova(at(i))));
        }),
        ("iova_to_phys", _) => each(n, |i| {
            black_box(ct.iova_to_phys(at(i)));
        }),
        (_, "floor") if map => each(n, |i| floor.map_pages(at(i), at(i), size, 1, Prot::RW)),
        (_, "session") if map => each(n, |i| {
            s.map_pages(Iova(at(i)), PhysAddr(at(i)), size, 1, Prot::RW)
                .unwrap();
        }),
        (_, "per_call") if map => each(n, |i| {
            pt.map_pages(Iova(at(i)), PhysAddr(at(i)), size, 1, Prot::RW)
                .unwrap();
        }),
        (_, _) if map => each(n, |i| assert_eq!(ct.map_pages(at(i), at(i), size, 1), 0)),
        (_, "floor") => each(n, |i| {
            black_box(floor.unmap_pages(at(i), size, 1));
        }),
        (_, "session") => each(n, |i| {
            s.unmap_pages(Iova(at(i)), size, 1, &mut g).unwrap();
        }),
        (_, "per_call") => each(n, |i| {
            pt.unmap_pages(Iova(at(i)), size, 1, &mut g).unwrap();
        }),
        (_, _) => each(n, |i| assert_eq!(ct.unmap_pages(at(i), size, 1), size)),
    }
    drop(s);
    g.release();
}

#[inline(always)]
fn each(n: u64, mut f: impl FnMut(u64)) {
    for i in 0..n {
        f(i);
    }
}

fn main() {
    if std::env::args().count() > 9 {
        let pt = PageTable::new(arm_s1_4k_48(), Arc::new(HostMemory::new())).unwrap();
        black_box(asm_session_lookup(&pt.session(), black_box(0)));
        black_box(asm_floor_lookup(&Floor::new(arm_s1_4k_48()), black_box(0)));
    }
    let args: Vec<String> = std::env::args().collect();
    let op = args.get(1).map_or("map_4k", String::as_str);
    let how = args.get(2).map_or("session", String::as_str);
    match args.get(3).map(String::as_str) {
        Some("vtd-ss") => run(vtd_ss_48(), IOMMU_PT_FMT_VTD_SS, op, how),
        _ => run(arm_s1_4k_48(), IOMMU_PT_FMT_ARM_S1, op, how),
    }
}

/// For reading the generated code: `objdump -d -C target/release/examples/profile`.
#[inline(never)]
pub fn asm_session_lookup(
    s: &pgtable_core::Session<'_, smmu_format::ArmS1, HostMemory>,
    iova: u64,
) -> Option<PhysAddr> {
    s.iova_to_phys(Iova(iova))
}

/// See [`asm_session_lookup`].
#[inline(never)]
pub fn asm_floor_lookup(f: &Floor<smmu_format::ArmS1>, iova: u64) -> Option<u64> {
    f.iova_to_phys(iova)
}
