//! A small VMM with an emulated IOMMU: the guest builds its tables in guest RAM, a
//! device model does DMA through vm-memory's `IommuMemory`, the guest unmaps and queues
//! an invalidation, and the device's next DMA gets the architectural fault record.
//!
//! The VT-d scenario: scalable mode, a nested PASID entry (a first-stage table whose
//! pointers and outputs are guest-physical addresses, translated by a second stage).

use pgtable_core::{Iova, PhysAddr, Prot, TableWriter, WriterPage};
use std::cell::Cell;
use std::sync::Arc;
use viommu::memory::{GuestRam, PhysAccess};
use viommu::vmm::IommuBridge;
use viommu::vtd::{VtdFault, VtdUnit};
use viommu::{DeviceTlb, TranslateFault};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap, IommuMemory};
use vtd_format::{
    Agaw, ContextTablePointer, InvalidationDescriptor, PasidDirEntry, PasidEntry, PasidIotlbScope,
    Pgtt, RootTableAddress, ScalableContextEntry, ScalableRootEntry, SourceId,
    TranslationTableMode, VtdFs, VtdSs,
};

/// Guest RAM: 64 MiB at guest-physical 0.
const RAM: u64 = 64 << 20;
/// The device: a NIC at 00:03.0, using PASID 5.
const NIC: SourceId = SourceId::new(0, 0x18);
const PASID: u32 = 5;
const DID: u16 = 3;
/// The buffer the NIC writes: IOVA 0x7000_0000 (first stage) -> 0x20_0000 (second
/// stage's input) -> 0x120_0000 in RAM.
const IOVA: u64 = 0x7000_0000;
const MID: u64 = 0x20_0000;
const BUFFER: u64 = 0x120_0000;
/// The second stage maps its input x to RAM x + SHIFT (so the two stages show).
const SHIFT: u64 = 0x100_0000;

/// Runs the scenario, printing what happens.
pub fn run() -> Result<(), Box<dyn std::error::Error>> {
    let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), RAM as usize)])?;
    let mem = Arc::new(GuestRam::new(ram.clone()));

    println!("== the guest builds its VT-d structures in RAM");
    let next = Cell::new(0x10_0000u64);
    let page = || {
        let pa = next.get();
        next.set(pa + 0x1000);
        pa
    };
    let put = |pa: u64, words: &[u64]| -> Result<(), viommu::Error> {
        for (i, w) in words.iter().enumerate() {
            mem.write_u64(pa + 8 * i as u64, *w)?;
        }
        Ok(())
    };
    let (root, ctx, dir, table) = (page(), page(), page(), page());
    let lower = ContextTablePointer {
        present: true,
        table: PhysAddr(ctx),
    };
    put(
        root,
        &ScalableRootEntry {
            lower,
            upper: ContextTablePointer::default(),
        }
        .encode(),
    )?;
    let ce = ScalableContextEntry {
        present: true,
        paside: true,
        pasid_dir: PhysAddr(dir),
        ..Default::default()
    };
    put(ctx + u64::from(NIC.devfn()) * 32, &ce.encode())?;
    put(
        dir,
        &[PasidDirEntry {
            present: true,
            fpd: false,
            table: PhysAddr(table),
        }
        .encode()],
    )?;
    // Second stage: the first 8 MiB of its input space to RAM + SHIFT.
    let ss_root = page();
    let mut ss = TableWriter::new(VtdSs::new(48, 48)?, mem.clone(), PhysAddr(ss_root))?;
    let mut ss_page = || {
        let pa = page();
        Some(WriterPage {
            pa: PhysAddr(pa),
            pointer: pa,
        })
    };
    ss.map(Iova(0), PhysAddr(SHIFT), 0x20_0000, Prot::RW, &mut ss_page)?;
    ss.map(
        Iova(0x20_0000),
        PhysAddr(SHIFT + 0x20_0000),
        0x20_0000,
        Prot::RW,
        &mut ss_page,
    )?;
    // First stage: its table pages lie in RAM at p, seen by the second stage at p - SHIFT.
    let mut fs_page = || {
        let pa = page() + SHIFT;
        Some(WriterPage {
            pa: PhysAddr(pa),
            pointer: pa - SHIFT,
        })
    };
    let fs_root = fs_page().unwrap();
    let mut fs = TableWriter::new(VtdFs::new(48, 48)?, mem.clone(), fs_root.pa)?;
    fs.map(Iova(IOVA), PhysAddr(MID), 0x1000, Prot::RW, &mut fs_page)?;
    // The guest leaves A and D clear (Linux presets them): the walk will set them.
    let leaf = fs.entry_address(Iova(IOVA), 0).expect("mapped");
    fs.write_entry(leaf, fs.read_entry(leaf)? & !0x60)?;
    println!("   first-stage leaf {:#018x}", fs.read_entry(leaf)?);
    let pe = PasidEntry::second_stage(ss_root, Agaw::Bits48, DID)
        .with_pgtt(Pgtt::Nested)
        .with_fsptptr(fs_root.pointer);
    put(table + u64::from(PASID % 64) * 64, &pe.val)?;
    let rtaddr = RootTableAddress {
        table: PhysAddr(root),
        mode: TranslationTableMode::Scalable,
    }
    .encode();
    println!(
        "   RTADDR {rtaddr:#x}; {NIC} PASID {PASID}: nested, first stage at GPA {:#x}, second stage at {ss_root:#x}",
        fs_root.pointer
    );
    println!("   IOVA {IOVA:#x} -> {MID:#x} (first stage) -> {BUFFER:#x} (second stage)");

    println!("== the VMM: a VT-d unit, and the NIC doing DMA through IommuMemory");
    let unit = Arc::new(VtdUnit::new(mem.clone(), Default::default()));
    unit.set_root_table(rtaddr);
    let bridge = IommuBridge::new(unit.device(NIC, Some(PASID)));
    unit.cache().register_device_tlb(
        u32::from(NIC.0),
        Some(PASID),
        Arc::new(bridge.clone()) as Arc<dyn DeviceTlb>,
    );
    let dma = IommuMemory::new(ram.clone(), bridge.clone(), true, ());

    dma.write_slice(b"hello, guest", GuestAddress(IOVA + 0x10))?;
    let mut got = [0u8; 12];
    ram.read_slice(&mut got, GuestAddress(BUFFER + 0x10))?;
    println!(
        "   NIC wrote at IOVA {:#x}; the guest reads RAM {:#x}: {:?}",
        IOVA + 0x10,
        BUFFER + 0x10,
        std::str::from_utf8(&got)?
    );
    let leaf = fs.entry_address(Iova(IOVA), 0).expect("mapped");
    println!(
        "   first-stage leaf now {:#018x}: the walk set A (bit 5) and D (bit 6)",
        fs.read_entry(leaf)?
    );

    println!("== the guest unmaps the buffer and queues a PASID-based IOTLB invalidation");
    fs.write_entry(leaf, 0)?;
    let desc = InvalidationDescriptor::PasidIotlb {
        did: DID,
        pasid: PASID,
        scope: PasidIotlbScope::Page {
            addr: Iova(IOVA),
            am: 0,
            ih: false,
        },
    };
    let words = desc.encode();
    println!("   descriptor {:#018x} {:#018x}", words[0], words[1]);
    unit.invalidate(words)?; // the VMM's invalidation-queue handler

    println!("== the NIC's next DMA");
    match dma.write_slice(b"late", GuestAddress(IOVA + 0x10)) {
        Ok(()) => println!("   unexpected: the write went through"),
        Err(e) => println!("   refused: {e}"),
    }
    for rec in unit.take_faults() {
        let [lo, hi] = rec.encode();
        println!(
            "   fault record: reason {} for {} PASID {:?} at {:#x}, {} ({lo:#018x} {hi:#018x})",
            rec.reason,
            rec.source,
            rec.pasid,
            rec.address.0,
            if rec.read { "read" } else { "write" }
        );
    }
    // The same fault, as a DeviceTranslate caller sees it.
    let f: TranslateFault = viommu::DeviceTranslate::translate(
        &unit.device(NIC, Some(PASID)),
        IOVA,
        pgtable_core::Access::WRITE,
    )
    .expect_err("unmapped");
    let rec = f.downcast_ref::<VtdFault>().expect("a VT-d fault").record;
    println!(
        "   as the device model sees it: {f} (reason code {:#04x})",
        rec.reason.code()
    );
    Ok(())
}
