//! A small VMM with an emulated Arm SMMUv3: the guest builds its stream table, CD and
//! stage-1 table in guest RAM, a device model does DMA through vm-memory's
//! `IommuMemory`, the guest unmaps and queues CMD_TLBI_NH_VA + CMD_SYNC, and the
//! device's next DMA gets the event record.
//!
//! The scenario is nested (STE.Config = 0b111): the guest's stage 1 (its CD and
//! tables at intermediate addresses) inside the VMM's stage 2.

use pgtable_core::{Iova, PhysAddr, Prot, TableWriter, WriterPage};
use smmu_format::{
    ArmConfig, ArmS1, ArmS2, Command, EventRecord, SteConfig, StreamTableBase, StreamTableConfig,
    StreamTableEntry, StreamTableFormat, SyncCompletion, TlbiRange,
};
use std::cell::Cell;
use std::sync::Arc;
use viommu::memory::{GuestRam, PhysAccess};
use viommu::smmu::{SmmuCaps, SmmuFault, SmmuUnit};
use viommu::vmm::IommuBridge;
use viommu::{Access, DeviceTranslate};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap, IommuMemory};

/// Host RAM: 64 MiB at physical 0.
const RAM: u64 = 64 << 20;
/// Stage 2 maps IPA x to PA x + SHIFT for the guest's 32 MiB.
const SHIFT: u64 = 0x100_0000;
const GUEST_RAM: u64 = 32 << 20;
/// The device: a NIC with StreamID 0x18, in VM 1; the guest's ASID 3.
const NIC: u32 = 0x18;
const VMID: u16 = 1;
const ASID: u16 = 3;
/// The buffer the NIC writes: IOVA 0x7000_0000 -> IPA 0x20_0000 -> PA 0x120_0000.
const IOVA: u64 = 0x7000_0000;
const IPA: u64 = 0x20_0000;

/// Runs the scenario, printing what happens.
pub fn run() -> Result<(), Box<dyn std::error::Error>> {
    let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), RAM as usize)])?;
    let mem = Arc::new(GuestRam::new(ram.clone()));
    // Host pages from 48 MiB on (the VMM's), guest pages from IPA 16 MiB on.
    let host = Cell::new(48 << 20);
    let host_page = |bytes: u64| {
        let pa = host.get();
        host.set(pa + bytes);
        pa
    };
    let guest = Cell::new(16 << 20);
    let guest_page = || {
        let ipa = guest.get();
        guest.set(ipa + 0x1000);
        ipa
    };
    let write = |pa: u64, words: &[u64]| -> Result<(), viommu::Error> {
        for (i, w) in words.iter().enumerate() {
            mem.write_u64(pa + 8 * i as u64, *w)?;
        }
        Ok(())
    };

    // The VMM: stage 2 (IPA 40 bits, two concatenated L1 tables) and the stream table.
    let s2 = ArmS2::new(ArmConfig::new(4096, 40, 48))?;
    let s2_root = host_page(0x2000);
    let mut s2w = TableWriter::new(s2, mem.clone(), PhysAddr(s2_root))?;
    let mut host_pages = || {
        let pa = host_page(0x1000);
        Some(WriterPage {
            pa: PhysAddr(pa),
            pointer: pa,
        })
    };
    for ipa in (0..GUEST_RAM).step_by(2 << 20) {
        s2w.map(
            Iova(ipa),
            PhysAddr(ipa + SHIFT),
            2 << 20,
            Prot::RW | Prot::CACHE,
            &mut host_pages,
        )?;
    }
    let strtab = host_page(256 * 64);

    // The guest: a stage-1 table whose pointers are IPAs, and its CD.
    let s1 = ArmS1::new(ArmConfig::new(4096, 48, 48))?;
    let s1_root = guest_page();
    let mut s1w = TableWriter::new(s1, mem.clone(), PhysAddr(s1_root + SHIFT))?;
    let mut guest_pages = || {
        let ipa = guest_page();
        Some(WriterPage {
            pa: PhysAddr(ipa + SHIFT),
            pointer: ipa,
        })
    };
    s1w.map(
        Iova(IOVA),
        PhysAddr(IPA),
        0x1000,
        Prot::RW | Prot::CACHE,
        &mut guest_pages,
    )?;
    let cd = guest_page();
    write(
        cd + SHIFT,
        &s1.context_descriptor(PhysAddr(s1_root), ASID, true),
    )?;

    // The VMM writes the nested STE (the guest's CD pointer, its stage 2) and programs
    // STRTAB_BASE / STRTAB_BASE_CFG.
    let ste = StreamTableEntry {
        config: SteConfig::Nested,
        s1_context_ptr: PhysAddr(cd),
        ..s2.ste(PhysAddr(s2_root), VMID, true)
    };
    write(strtab + 64 * u64::from(NIC), &ste.encode())?;
    let unit = SmmuUnit::new(mem.clone(), SmmuCaps::default());
    let cfg = StreamTableConfig {
        log2size: 8,
        split: 0,
        format: StreamTableFormat::Linear,
    };
    unit.set_stream_table(
        StreamTableBase {
            table: PhysAddr(strtab),
            read_allocate: true,
        }
        .encode(),
        cfg.encode(),
    );
    println!(
        "stream table at {strtab:#x}: StreamID {NIC:#x} nested, VMID {VMID}, CD at IPA {cd:#x}"
    );

    // The NIC's DMA goes through the unit; the bridge's cache follows its invalidations.
    let bridge = IommuBridge::new(unit.device(NIC, None));
    unit.register_device_tlb(NIC, None, Arc::new(bridge.clone()));
    let dma = IommuMemory::new(ram.clone(), bridge, true, ());
    let m = unit.translate(NIC, None, IOVA, Access::WRITE)?;
    println!(
        "IOVA {IOVA:#x} -> PA {:#x} ({} KiB, {:?})",
        m.translate(IOVA).unwrap(),
        m.size >> 10,
        m.perms
    );
    dma.write_slice(b"a packet", GuestAddress(IOVA + 0x40))?;
    let mut got = [0u8; 8];
    ram.read_slice(&mut got, GuestAddress(IPA + SHIFT + 0x40))?;
    println!(
        "NIC wrote {:?} at PA {:#x}",
        std::str::from_utf8(&got)?,
        IPA + SHIFT + 0x40
    );

    // The guest unmaps the buffer and queues CMD_TLBI_NH_VA and CMD_SYNC.
    let leaf = s1w.entry_address(Iova(IOVA), 0).expect("mapped above");
    s1w.write_entry(leaf, 0)?;
    let tlbi = Command::TlbiNhVa {
        vmid: VMID,
        asid: ASID,
        range: TlbiRange {
            leaf: true,
            addr: IOVA,
            ..Default::default()
        },
    };
    let sync = Command::Sync {
        completion: SyncCompletion::None,
        msh: 0,
        msi_attr: 0,
        msi_data: 0,
        msi_addr: PhysAddr(0),
    };
    for c in [tlbi, sync] {
        unit.command(c.encode())
            .map_err(|e| format!("command refused: {e:?}"))?;
    }
    println!("guest: unmapped IOVA {IOVA:#x}, CMD_TLBI_NH_VA + CMD_SYNC");

    // The NIC's next DMA faults; the event is in the queue.
    let err = dma
        .write_slice(b"another", GuestAddress(IOVA + 0x40))
        .unwrap_err();
    println!("NIC's next DMA: {err}");
    for e in unit.events() {
        let words = e.encode();
        println!(
            "event: {:?}, StreamID {:#x}, InputAddr {:#x}, RnW {}, S2 {}, CLASS {:?}",
            e.event, e.stream_id, e.input_addr, e.rnw, e.s2, e.class
        );
        println!("  as the event queue holds it: {words:016x?}");
        assert_eq!(EventRecord::decode(words), Ok(e));
    }
    // The same fault, asked for directly: the unit's record comes back.
    let f = unit
        .device(NIC, None)
        .translate(IOVA, Access::WRITE)
        .expect_err("unmapped");
    let record = f.downcast_ref::<SmmuFault>().expect("an SMMU fault");
    println!("the device's view: {record}");
    Ok(())
}
