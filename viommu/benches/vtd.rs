//! The VT-d unit per translation: an IOTLB hit through the unit (target: at most
//! 10 ns), and a miss that walks a 4-level guest second-stage table, beside
//! pgtable-core translating its own table of the same shape (target: at most 1.5×).
//!
//! `cargo bench -p iommu-pt-viommu --bench vtd`

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use pgtable_core::{Access, HostMemory, Iova, PageTable, PhysAddr, Prot, TableWriter, WriterPage};
use std::cell::Cell;
use std::sync::Arc;
use viommu::memory::{ImageMemory, PhysAccess};
use viommu::vtd::{VtdCaps, VtdUnit};
use vtd_format::{
    Agaw, ContextEntry, RootEntry, RootTableAddress, SourceId, TranslationTableMode, VtdSs,
};

/// Pages mapped (and translated round robin): one last-level table's worth.
const PAGES: u64 = 512;
const BASE: u64 = 0x4000_0000;
const DEV: SourceId = SourceId::new(0, 0x18);

/// Guest memory holding a legacy chain to a 4-level second-stage table of `PAGES` 4K
/// pages at `BASE`, and a unit over it with an IOTLB of `entries`.
fn unit(entries: usize) -> VtdUnit<ImageMemory> {
    let mem = Arc::new(ImageMemory::anonymous(0, 4 << 20).unwrap());
    let next = Cell::new(0x10_0000u64);
    let mut page = || {
        let pa = next.get();
        next.set(pa + 0x1000);
        Some(WriterPage {
            pa: PhysAddr(pa),
            pointer: pa,
        })
    };
    let mut ss =
        TableWriter::new(VtdSs::new(48, 48).unwrap(), mem.clone(), PhysAddr(0x3000)).unwrap();
    for i in 0..PAGES {
        ss.map(
            Iova(BASE + i * 0x1000),
            PhysAddr(0x8000_0000 + i * 0x1000),
            0x1000,
            Prot::RW,
            &mut page,
        )
        .unwrap();
    }
    let root = RootEntry {
        present: true,
        context_table: PhysAddr(0x2000),
    }
    .encode();
    mem.write_u64(0x1000, root[0]).unwrap();
    let ce = ContextEntry::second_stage(0x3000, Agaw::Bits48, 1).words();
    mem.write_u64(0x2000 + u64::from(DEV.devfn()) * 16, ce[0])
        .unwrap();
    mem.write_u64(0x2008 + u64::from(DEV.devfn()) * 16, ce[1])
        .unwrap();
    let unit = VtdUnit::new(
        mem,
        VtdCaps {
            iotlb_entries: entries,
            ..VtdCaps::default()
        },
    );
    unit.set_root_table(
        RootTableAddress {
            table: PhysAddr(0x1000),
            mode: TranslationTableMode::Legacy,
        }
        .encode(),
    );
    unit
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("vtd");
    let iovas: Vec<u64> = (0..PAGES).map(|i| BASE + i * 0x1000 + 0x10).collect();
    // Hits: every page cached (4096 slots for 512 pages).
    let hot = unit(4096);
    for &iova in &iovas {
        hot.translate(DEV, None, iova, Access::READ).unwrap();
    }
    g.bench_function("unit_hit", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % iovas.len();
            black_box(
                hot.translate(DEV, None, black_box(iovas[i]), Access::READ)
                    .unwrap(),
            )
        })
    });
    // Misses: an IOTLB of one slot, translated round robin, walks every time.
    let cold = unit(1);
    g.bench_function("unit_miss_walk", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % iovas.len();
            black_box(
                cold.translate(DEV, None, black_box(iovas[i]), Access::READ)
                    .unwrap(),
            )
        })
    });
    // pgtable-core translating its own table of the same shape: the reference.
    let own = PageTable::new(VtdSs::new(48, 48).unwrap(), Arc::new(HostMemory::new())).unwrap();
    own.map_pages(Iova(BASE), PhysAddr(0x8000_0000), 0x1000, PAGES, Prot::RW)
        .unwrap();
    g.bench_function("own_translate", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % iovas.len();
            black_box(own.translate(Iova(black_box(iovas[i]))).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
