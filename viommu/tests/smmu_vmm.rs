//! A device doing DMA through vm-memory's `IommuMemory` over an SMMU unit's stream
//! (`SmmuUnit::device` behind `IommuBridge`), the unit walking tables the guest built
//! in the same `GuestMemoryMmap`: DMA lands at the translated address; after the
//! guest unmaps and invalidates, the bridge's own cache is gone too and the next DMA
//! faults with the event recorded.
#![cfg(feature = "vm-memory")]

use pgtable_core::{Iova, PhysAddr, Prot, TableWriter, WriterPage};
use smmu_format::{
    ArmConfig, ArmS1, Command, EventClass, EventId, EventRecord, SteConfig, StreamTableBase,
    StreamTableConfig, StreamTableEntry, StreamTableFormat, SyncCompletion, TlbiRange,
};
use std::cell::Cell;
use std::sync::Arc;
use viommu::memory::{GuestRam, PhysAccess};
use viommu::smmu::{SmmuCaps, SmmuFault, SmmuUnit};
use viommu::vmm::IommuBridge;
use viommu::{Access, DeviceTranslate};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap, IommuMemory};

const RAM: u64 = 0x4000_0000;
const SID: u32 = 0x10;
const IOVA: u64 = 0x1_0000_0000;

#[test]
fn dma_through_the_bridge_follows_the_guests_invalidations() {
    let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(RAM), 4 << 20)]).unwrap();
    let mem = Arc::new(GuestRam::new(ram.clone()));
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
    // The guest's stream table (32 STEs), CD and stage-1 table: IOVA -> a data page
    // (read-write), IOVA + 4K -> the next one (read-only).
    let strtab = alloc(32 * 64);
    let mut pages = || {
        let pa = alloc(0x1000);
        Some(WriterPage {
            pa: PhysAddr(pa),
            pointer: pa,
        })
    };
    let root = pages().unwrap().pa;
    let s1 = ArmS1::new(ArmConfig::new(4096, 48, 48)).unwrap();
    let mut w = TableWriter::new(s1, mem.clone(), root).unwrap();
    let data = alloc(0x2000);
    w.map(Iova(IOVA), PhysAddr(data), 0x1000, Prot::RW, &mut pages)
        .unwrap();
    w.map(
        Iova(IOVA + 0x1000),
        PhysAddr(data + 0x1000),
        0x1000,
        Prot::READ,
        &mut pages,
    )
    .unwrap();
    let cd = alloc(64);
    write(cd, &s1.context_descriptor(root, 1, true));
    write(
        strtab + 64 * u64::from(SID),
        &StreamTableEntry {
            valid: true,
            config: SteConfig::S1Translate,
            s1_context_ptr: PhysAddr(cd),
            ..Default::default()
        }
        .encode(),
    );

    let unit = SmmuUnit::new(mem.clone(), SmmuCaps::default());
    let cfg = StreamTableConfig {
        log2size: 5,
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
    let bridge = IommuBridge::new(unit.device(SID, None));
    unit.register_device_tlb(SID, None, Arc::new(bridge.clone()));
    let dma = IommuMemory::new(ram.clone(), bridge.clone(), true, ());

    // DMA lands in the data page, across the page boundary for reads.
    dma.write_obj(0xfeed_f00d_u32, GuestAddress(IOVA + 0xffc))
        .unwrap();
    assert_eq!(
        ram.read_obj::<u32>(GuestAddress(data + 0xffc)).unwrap(),
        0xfeed_f00d
    );
    ram.write_obj(0x55_u8, GuestAddress(data + 0x1000)).unwrap();
    assert_eq!(
        dma.read_obj::<u64>(GuestAddress(IOVA + 0xffc)).unwrap() >> 32,
        0x55
    );
    // The read-only page refuses a write, recorded as F_PERMISSION.
    assert!(dma.write_obj(1_u8, GuestAddress(IOVA + 0x1000)).is_err());
    let e = unit.events();
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].event, e[0].input_addr, e[0].rnw),
        (EventId::FPermission, IOVA + 0x1000, false)
    );

    // The guest unmaps IOVA, queues CMD_TLBI_NH_VA and CMD_SYNC.
    let leaf = w.entry_address(Iova(IOVA), 0).unwrap();
    w.write_entry(leaf, 0).unwrap();
    let tlbi = Command::TlbiNhVa {
        vmid: 0,
        asid: 1,
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
    unit.command(tlbi.encode()).unwrap();
    unit.command(sync.encode()).unwrap();
    // The next DMA faults: the bridge's cache was invalidated with the IOTLB.
    assert!(dma.read_obj::<u32>(GuestAddress(IOVA + 0x10)).is_err());
    let want = EventRecord {
        stream_id: SID,
        input_addr: IOVA + 0x10,
        rnw: true,
        class: EventClass::Input,
        ..EventRecord::new(EventId::FTranslation)
    };
    assert_eq!(unit.events(), [want]);
    // The device's own translation gives the unit's record back.
    let f = unit
        .device(SID, None)
        .translate(IOVA + 0x10, Access::READ)
        .unwrap_err();
    let record = f.downcast_ref::<SmmuFault>().unwrap();
    assert_eq!((record.event, record.level), (Some(want), Some(0)));
}
