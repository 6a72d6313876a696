//! Runs one kind of translation in a loop, for a profiler (callgrind counts the
//! instructions of `hot_*`): `vtd_profile hit|miss|own`.

use pgtable_core::{Access, HostMemory, Iova, PageTable, PhysAddr, Prot, TableWriter, WriterPage};
use std::cell::Cell;
use std::hint::black_box;
use std::sync::Arc;
use viommu::memory::{ImageMemory, PhysAccess};
use viommu::vtd::{VtdCaps, VtdUnit};
use vtd_format::{
    Agaw, ContextEntry, RootEntry, RootTableAddress, SourceId, TranslationTableMode, VtdSs,
};

const PAGES: u64 = 512;
const BASE: u64 = 0x4000_0000;
const DEV: SourceId = SourceId::new(0, 0x18);
const N: u64 = 1 << 16;

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

#[inline(never)]
fn hot_unit(u: &VtdUnit<ImageMemory>) {
    for i in 0..N {
        black_box(
            u.translate(DEV, None, BASE + (i % PAGES) * 0x1000, Access::READ)
                .unwrap(),
        );
    }
}

#[inline(never)]
fn hot_own(pt: &PageTable<VtdSs, HostMemory>) {
    for i in 0..N {
        black_box(pt.translate(Iova(BASE + (i % PAGES) * 0x1000)).unwrap());
    }
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("hit") => {
            let u = unit(4096);
            for i in 0..PAGES {
                u.translate(DEV, None, BASE + i * 0x1000, Access::READ)
                    .unwrap();
            }
            hot_unit(&u)
        }
        Some("miss") => hot_unit(&unit(1)),
        Some("own") => {
            let pt =
                PageTable::new(VtdSs::new(48, 48).unwrap(), Arc::new(HostMemory::new())).unwrap();
            pt.map_pages(Iova(BASE), PhysAddr(0x8000_0000), 0x1000, PAGES, Prot::RW)
                .unwrap();
            hot_own(&pt)
        }
        _ => eprintln!("usage: vtd_profile hit|miss|own"),
    }
}
