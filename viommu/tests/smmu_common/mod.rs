//! What the SMMU unit's tests share: guest RAM with a page allocator, and the
//! structures a guest's driver writes (stream table, STE, CD, tables), as Linux's
//! arm-smmu-v3 driver lays them out.
#![allow(dead_code)]

use pgtable_core::{Format, PhysAddr, TableWriter, WriterPage};
use smmu_format::{
    ArmConfig, ArmS1, ArmS2, Command, ContextDescriptor, StreamTableBase, StreamTableConfig,
    StreamTableEntry, StreamTableFormat, SyncCompletion, TlbiRange,
};
use std::cell::Cell;
use std::sync::Arc;
use viommu::memory::{ImageMemory, PhysAccess};
use viommu::smmu::{SmmuCaps, SmmuUnit};

/// Where guest RAM starts.
pub const RAM: u64 = 0x4000_0000;
pub const K4: u64 = 0x1000;
pub const M2: u64 = 0x20_0000;

/// Guest RAM and a bump allocator over it.
pub struct Guest {
    pub mem: Arc<ImageMemory>,
    next: Cell<u64>,
    end: u64,
}

impl Guest {
    /// `bytes` of zeroed guest RAM at [`RAM`].
    pub fn new(bytes: u64) -> Guest {
        Guest {
            mem: Arc::new(ImageMemory::anonymous(RAM, bytes).unwrap()),
            next: Cell::new(RAM),
            end: RAM + bytes,
        }
    }

    /// `bytes` of RAM aligned to `align` (zeroed: never handed out before).
    pub fn alloc(&self, bytes: u64, align: u64) -> u64 {
        let pa = self.next.get().next_multiple_of(align);
        assert!(pa + bytes <= self.end, "guest RAM exhausted");
        self.next.set(pa + bytes);
        pa
    }

    /// A 4 KiB page.
    pub fn page(&self) -> u64 {
        self.alloc(K4, K4)
    }

    /// 4 KiB table pages for a [`TableWriter`], addressed physically.
    pub fn pages(&self) -> impl FnMut() -> Option<WriterPage> + '_ {
        self.pages_of(K4)
    }

    /// Table pages of `bytes` (the granule) for a [`TableWriter`].
    pub fn pages_of(&self, bytes: u64) -> impl FnMut() -> Option<WriterPage> + '_ {
        move || {
            let pa = self.alloc(bytes, bytes);
            Some(WriterPage {
                pa: PhysAddr(pa),
                pointer: pa,
            })
        }
    }

    pub fn write(&self, pa: u64, words: &[u64]) {
        for (i, w) in words.iter().enumerate() {
            self.mem.write_u64(pa + 8 * i as u64, *w).unwrap();
        }
    }

    pub fn read(&self, pa: u64) -> u64 {
        self.mem.read_u64(pa).unwrap()
    }

    /// A top table for `fmt`, aligned to its size.
    pub fn top_table<F: Format>(&self, fmt: &F) -> u64 {
        let geo = fmt.geometry();
        let bytes = (geo.table_bytes(geo.top()) as u64).max(64);
        self.alloc(bytes, bytes)
    }

    /// A stage-1 table writer (4K granule, `ias` bits, 48-bit output).
    pub fn s1(&self, ias: u32) -> TableWriter<ArmS1, ImageMemory> {
        self.s1_with(ArmConfig::new(4096, ias, 48))
    }

    pub fn s1_with(&self, cfg: ArmConfig) -> TableWriter<ArmS1, ImageMemory> {
        let fmt = ArmS1::new(cfg).unwrap();
        let root = self.top_table(&fmt);
        TableWriter::new(fmt, self.mem.clone(), PhysAddr(root)).unwrap()
    }

    /// A stage-2 table writer (4K granule, `ias` bits, 48-bit output).
    pub fn s2(&self, ias: u32) -> TableWriter<ArmS2, ImageMemory> {
        let fmt = ArmS2::new(ArmConfig::new(4096, ias, 48)).unwrap();
        let root = self.top_table(&fmt);
        TableWriter::new(fmt, self.mem.clone(), PhysAddr(root)).unwrap()
    }

    /// A linear stream table of 2^`log2size` STEs, programmed into `unit`.
    pub fn linear_stream_table(&self, unit: &SmmuUnit<ImageMemory>, log2size: u8) -> u64 {
        let bytes = 64u64 << log2size;
        let base = self.alloc(bytes, bytes.max(64));
        program(unit, base, log2size, 0, StreamTableFormat::Linear);
        base
    }

    /// Writes `ste` as the STE of `sid` in the linear table at `base`.
    pub fn ste(&self, base: u64, sid: u32, ste: &StreamTableEntry) {
        self.write(base + 64 * u64::from(sid), &ste.encode());
    }

    /// Writes `cd` at `pa`.
    pub fn cd(&self, pa: u64, cd: &ContextDescriptor) {
        self.write(pa, &cd.encode());
    }

    /// A unit over this RAM.
    pub fn unit(&self, caps: SmmuCaps) -> SmmuUnit<ImageMemory> {
        SmmuUnit::new(self.mem.clone(), caps)
    }
}

/// Programs STRTAB_BASE and STRTAB_BASE_CFG.
pub fn program(
    unit: &SmmuUnit<ImageMemory>,
    base: u64,
    log2size: u8,
    split: u8,
    format: StreamTableFormat,
) {
    let cfg = StreamTableConfig {
        log2size,
        split,
        format,
    };
    unit.set_stream_table(
        StreamTableBase {
            table: PhysAddr(base),
            read_allocate: true,
        }
        .encode(),
        cfg.encode(),
    );
}

/// A stage-1 STE using the linear CD table at `cd_table` of 2^`s1cdmax` CDs.
pub fn s1_ste(cd_table: u64, s1cdmax: u8) -> StreamTableEntry {
    StreamTableEntry {
        valid: true,
        config: smmu_format::SteConfig::S1Translate,
        s1_context_ptr: PhysAddr(cd_table),
        s1cdmax,
        ..Default::default()
    }
}

/// The CD Linux writes for `w`'s table with `asid` (R = 1, coherent walks).
pub fn linux_cd(w: &TableWriter<ArmS1, ImageMemory>, asid: u16) -> ContextDescriptor {
    w.format().cd(w.root(), asid, true)
}

/// CMD_TLBI_NH_VA of one address.
pub fn tlbi_nh_va(vmid: u16, asid: u16, addr: u64) -> [u64; 2] {
    Command::TlbiNhVa {
        vmid,
        asid,
        range: TlbiRange {
            leaf: true,
            addr,
            ..Default::default()
        },
    }
    .encode()
}

/// CMD_SYNC without a signal.
pub fn sync() -> [u64; 2] {
    Command::Sync {
        completion: SyncCompletion::None,
        msh: 0,
        msi_attr: 0,
        msi_data: 0,
        msi_addr: PhysAddr(0),
    }
    .encode()
}
