//! SMMU unit benchmarks, per translation: an IOTLB hit through the unit (target: at
//! most 10 ns), and a miss that walks a 4-level stage-1 guest table (stream table →
//! STE → CD cached; the walk and the fill) compared, in the same run, with
//! pgtable-core translating its own table of the same shape (`PageTable::translate`;
//! target: at most 1.5×). Also: the bare walk of the guest table
//! (`ForeignTable::translate_access`) and a nested miss, to place the unit's own cost.
//!
//! `cargo bench -p iommu-pt-viommu --bench smmu`

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use pgtable_core::{
    Access, Format, HostMemory, Iova, PageTable, PhysAddr, Prot, TableWriter, WriterPage,
};
use smmu_format::{
    ArmConfig, ArmS1, ArmS2, SteConfig, StreamTableBase, StreamTableConfig, StreamTableEntry,
    StreamTableFormat,
};
use std::cell::Cell;
use std::sync::Arc;
use viommu::memory::{ImageMemory, PhysAccess};
use viommu::smmu::{SmmuCaps, SmmuUnit};

const RAM: u64 = 0x4000_0000;
const K4: u64 = 0x1000;
const M2: u64 = 0x20_0000;
/// The working set: 256 pages, each under its own last-level table (2 MiB + 4 KiB
/// apart), so walks touch 1 MiB of tables, as the own-table peer's do.
const PAGES: u64 = 256;

fn iovas() -> Vec<u64> {
    (0..PAGES).map(|i| 0x10_0000_0000 + i * (M2 + K4)).collect()
}

/// Guest RAM with a stream table: stream 1 stage 1 (4-level 4K table mapping
/// [`iovas`]), stream 2 nested (the same stage 1 at IPAs = PA − RAM, stage 2 mapping
/// all RAM with 2 MiB blocks). Returns the memory and the stage-1 table's root.
fn guest() -> (Arc<ImageMemory>, u64, u64) {
    let mem = Arc::new(ImageMemory::anonymous(RAM, 64 << 20).unwrap());
    let next = Cell::new(RAM);
    let alloc = |bytes: u64| {
        let pa = next.get().next_multiple_of(bytes.max(64));
        next.set(pa + bytes);
        pa
    };
    let write = |pa: u64, words: &[u64]| {
        for (i, w) in words.iter().enumerate() {
            mem.write_u64(pa + 8 * i as u64, *w).unwrap();
        }
    };
    let strtab = alloc(4 * 64);
    let s1 = ArmS1::new(ArmConfig::new(4096, 48, 48)).unwrap();
    let root = alloc(K4);
    let mut w = TableWriter::new(s1, mem.clone(), PhysAddr(root)).unwrap();
    // Stream 1's tables, addressed physically.
    let mut page = || {
        let pa = alloc(K4);
        Some(WriterPage {
            pa: PhysAddr(pa),
            pointer: pa,
        })
    };
    for (i, iova) in iovas().into_iter().enumerate() {
        w.map(
            Iova(iova),
            PhysAddr(0x8_0000_0000 + i as u64 * K4),
            K4,
            Prot::RW,
            &mut page,
        )
        .unwrap();
    }
    // Stream 2's stage 1: the same leaves, its tables at IPAs.
    let nroot = alloc(K4);
    let mut n = TableWriter::new(s1, mem.clone(), PhysAddr(nroot)).unwrap();
    let mut ipa_page = || {
        let pa = alloc(K4);
        Some(WriterPage {
            pa: PhysAddr(pa),
            pointer: pa - RAM,
        })
    };
    for (i, iova) in iovas().into_iter().enumerate() {
        // Output IPAs in guest RAM's IPA range, which stage 2 maps.
        n.map(
            Iova(iova),
            PhysAddr((i as u64 * K4) % (32 << 20)),
            K4,
            Prot::RW,
            &mut ipa_page,
        )
        .unwrap();
    }
    let s2 = ArmS2::new(ArmConfig::new(4096, 40, 48)).unwrap();
    let s2_root = alloc(2 * K4);
    let mut s2w = TableWriter::new(s2, mem.clone(), PhysAddr(s2_root)).unwrap();
    for off in (0..64 << 20).step_by(M2 as usize) {
        s2w.map(Iova(off), PhysAddr(RAM + off), M2, Prot::RW, &mut page)
            .unwrap();
    }
    let cd = alloc(64);
    write(cd, &s1.context_descriptor(PhysAddr(root), 1, true));
    let ncd = alloc(64);
    write(ncd, &s1.context_descriptor(PhysAddr(nroot - RAM), 2, true));
    write(
        strtab + 64,
        &StreamTableEntry {
            valid: true,
            config: SteConfig::S1Translate,
            s1_context_ptr: PhysAddr(cd),
            ..Default::default()
        }
        .encode(),
    );
    write(
        strtab + 128,
        &StreamTableEntry {
            config: SteConfig::Nested,
            s1_context_ptr: PhysAddr(ncd - RAM),
            ..s2.ste(PhysAddr(s2_root), 1, true)
        }
        .encode(),
    );
    (mem, strtab, root)
}

fn unit(mem: &Arc<ImageMemory>, strtab: u64, iotlb_entries: usize) -> SmmuUnit<ImageMemory> {
    let unit = SmmuUnit::new(
        mem.clone(),
        SmmuCaps {
            iotlb_entries,
            ..SmmuCaps::default()
        },
    );
    let cfg = StreamTableConfig {
        log2size: 2,
        split: 0,
        format: StreamTableFormat::Linear,
    };
    unit.set_stream_table(
        StreamTableBase {
            table: PhysAddr(strtab),
            read_allocate: false,
        }
        .encode(),
        cfg.encode(),
    );
    unit
}

fn translate(c: &mut Criterion) {
    let (mem, strtab, root) = guest();
    let iovas = iovas();
    let mut g = c.benchmark_group("smmu");
    g.throughput(Throughput::Elements(PAGES));

    // Hits: every page cached (an IOTLB 16 times the working set).
    let hits = unit(&mem, strtab, 16 * PAGES as usize);
    for &iova in &iovas {
        hits.translate(1, None, iova, Access::READ).unwrap();
    }
    g.bench_function(BenchmarkId::new("hit", PAGES), |b| {
        b.iter(|| {
            for &iova in &iovas {
                black_box(hits.translate(1, None, black_box(iova), Access::READ)).ok();
            }
        })
    });

    // Misses: a one-entry IOTLB, so every translation walks and fills (the
    // configuration stays cached).
    let misses = unit(&mem, strtab, 1);
    g.bench_function(BenchmarkId::new("miss-walk-4-level", PAGES), |b| {
        b.iter(|| {
            for &iova in &iovas {
                black_box(misses.translate(1, None, black_box(iova), Access::READ)).ok();
            }
        })
    });
    g.bench_function(BenchmarkId::new("miss-nested", PAGES), |b| {
        b.iter(|| {
            for &iova in &iovas {
                black_box(misses.translate(2, None, black_box(iova), Access::READ)).ok();
            }
        })
    });

    // The bare access walk of the same guest table.
    let s1 = ArmS1::new(ArmConfig::new(4096, 48, 48)).unwrap();
    let view = pgtable_core::ForeignTable::new(s1, mem.clone(), PhysAddr(root)).unwrap();
    g.bench_function(BenchmarkId::new("foreign-translate-access", PAGES), |b| {
        b.iter(|| {
            for &iova in &iovas {
                black_box(view.translate_access(Iova(black_box(iova)), Access::READ)).ok();
            }
        })
    });

    // pgtable-core translating its own table of the same shape.
    let own = PageTable::new(s1, Arc::new(HostMemory::new())).unwrap();
    for (i, &iova) in iovas.iter().enumerate() {
        own.map_pages(
            Iova(iova),
            PhysAddr(0x8_0000_0000 + i as u64 * K4),
            K4,
            1,
            Prot::RW,
        )
        .unwrap();
    }
    assert_eq!(own.format().geometry().levels, 4);
    g.bench_function(BenchmarkId::new("own-table-translate", PAGES), |b| {
        b.iter(|| {
            for &iova in &iovas {
                black_box(own.translate(Iova(black_box(iova)))).ok();
            }
        })
    });
    g.finish();
}

criterion_group!(benches, translate);
criterion_main!(benches);
