//! [`SmmuUnit`]: an emulated Arm SMMUv3 over guest memory.
//!
//! A transaction carries a StreamID, maybe a SubstreamID, an input address and an
//! access; the unit walks what the guest wrote as the hardware walks it
//! (docs/formats.md §8.4–§8.7):
//!
//! 1. STRTAB_BASE / STRTAB_BASE_CFG ([`SmmuUnit::set_stream_table`]) → the STE, through
//!    an L1 descriptor for a two-level table;
//! 2. the STE: abort, bypass, stage 1, stage 2 or nested (Config);
//! 3. for stage 1, the CD table (linear or two-level, its pointers IPAs when nested)
//!    → the CD of the transaction's SubstreamID (or of S1DSS for one without);
//! 4. the tables: [`ArmS1`] at TTB0, [`ArmS2`] at S2TTB, or both as pgtable-core's
//!    [`Nested`] walk, with access and dirty flags set where the guest enabled HTTU.
//!
//! Every broken link raises the event the hardware raises (C_BAD_STREAMID, F_STE_FETCH,
//! C_BAD_STE, F_STREAM_DISABLED, C_BAD_SUBSTREAMID, F_CD_FETCH, C_BAD_CD), and a walk
//! that faults raises F_WALK_EABT, F_TRANSLATION, F_ADDR_SIZE, F_ACCESS or
//! F_PERMISSION with the stage (S2), CLASS, the input address, the IPA of stage-2
//! faults, the access (RnW, InD, PnU) and SSV/SubstreamID. [`SmmuUnit::translate`]
//! returns it as an [`SmmuFault`], and the unit puts it into its event queue
//! ([`SmmuUnit::events`]) unless the guest asked it not to: translation faults
//! (0x10–0x13) are recorded only with CD.R (stage 1) or STE.S2R (stage 2) set.
//!
//! The decoded chain of each (StreamID, SubstreamID) and the leaves walked are cached
//! ([`UnitCache`]); the guest's commands ([`SmmuUnit::command`]) drop them as the
//! table in [`crate::iotlb`] says, synchronously, so CMD_SYNC has nothing left to wait
//! for. [`SmmuUnit::device`] gives one stream's [`DeviceTranslate`], for
//! `vmm::IommuBridge`; [`SmmuUnit::register_device_tlb`] makes the unit invalidate a
//! device-side cache (the bridge) with every command that may concern it.
//!
//! ```
//! use pgtable_core::{Access, Iova, PhysAddr, Prot, TableWriter, WriterPage};
//! use smmu_format::{
//!     ArmConfig, ArmS1, EventClass, EventId, SteConfig, StreamTableConfig, StreamTableBase,
//!     StreamTableEntry, StreamTableFormat,
//! };
//! use std::sync::Arc;
//! use viommu::memory::{ImageMemory, PhysAccess};
//! use viommu::smmu::{SmmuCaps, SmmuUnit};
//!
//! // 1 MiB of guest RAM at 0x4000_0000: a linear stream table of 16 STEs at
//! // 0x4000_0000, one CD at 0x4000_1000, stage-1 tables from 0x4000_2000 on.
//! const RAM: u64 = 0x4000_0000;
//! let mem = Arc::new(ImageMemory::anonymous(RAM, 1 << 20)?);
//! let s1 = ArmS1::new(ArmConfig::new(4096, 48, 48))?;
//! let mut next = RAM + 0x3000;
//! let mut page = || { let pa = next; next += 0x1000; Some(WriterPage { pa: PhysAddr(pa), pointer: pa }) };
//! let mut tables = TableWriter::new(s1, mem.clone(), PhysAddr(RAM + 0x2000))?;
//! tables.map(Iova(0x1234_5000), PhysAddr(0x8_0000_0000), 0x1000, Prot::READ, &mut page)?;
//! // The CD Linux writes for it (ASID 1, faults recorded), and a stage-1 STE for SID 3.
//! let cd = tables.format().context_descriptor(PhysAddr(RAM + 0x2000), 1, true);
//! for (i, w) in cd.iter().enumerate() {
//!     mem.write_u64(RAM + 0x1000 + 8 * i as u64, *w)?;
//! }
//! let ste = StreamTableEntry {
//!     valid: true,
//!     config: SteConfig::S1Translate,
//!     s1_context_ptr: PhysAddr(RAM + 0x1000),
//!     ..Default::default()
//! };
//! for (i, w) in ste.encode().iter().enumerate() {
//!     mem.write_u64(RAM + 3 * 64 + 8 * i as u64, *w)?;
//! }
//!
//! let unit = SmmuUnit::new(mem, SmmuCaps::default());
//! let cfg = StreamTableConfig { log2size: 4, split: 0, format: StreamTableFormat::Linear };
//! unit.set_stream_table(StreamTableBase { table: PhysAddr(RAM), read_allocate: false }.encode(), cfg.encode());
//! let m = unit.translate(3, None, 0x1234_5678, Access::READ)?;
//! assert_eq!(m.translate(0x1234_5678), Some(0x8_0000_0678));
//! // A write is a stage-1 permission fault, recorded (CD.R) in the event queue.
//! let fault = unit.translate(3, None, 0x1234_5678, Access::WRITE).unwrap_err();
//! let event = fault.event.unwrap();
//! assert_eq!((event.event, event.s2, event.class), (EventId::FPermission, false, EventClass::Input));
//! assert_eq!((event.input_addr, event.rnw), (0x1234_5678, false));
//! assert_eq!(unit.events(), [event]);
//! // SID 16 is beyond the 16-entry table: C_BAD_STREAMID.
//! let fault = unit.translate(16, None, 0, Access::READ).unwrap_err();
//! assert_eq!(fault.event.unwrap().event, EventId::CBadStreamId);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Decisions where the specification or our sources leave a choice
//!
//! - **Before [`SmmuUnit::set_stream_table`]** every transaction aborts without an
//!   event (SMMUEN = 0 with GBPA.ABORT = 1). A reserved STRTAB_BASE_CFG.FMT or a
//!   two-level SPLIT other than 6, 8 or 10 makes every StreamID C_BAD_STREAMID
//!   (CONSTRAINED UNPREDICTABLE in the specification). LOG2SIZE is capped at
//!   [`SmmuCaps::sid_bits`].
//! - **Two-level stream tables**: an L2 array holds 2^(SPAN−1) STEs; beyond, and with
//!   SPAN = 0, C_BAD_STREAMID (formats.md §8.8 #5). **STE Config 0b001–0b011** is
//!   C_BAD_STE (§8.8 #6), and **S1DSS = terminate** raises F_STREAM_DISABLED (§8.8 #7).
//! - **What is C_BAD_STE** besides `StreamTableEntry::decode`'s checks: a stage the
//!   caps do not offer; S1CDMax above [`SmmuCaps::ssid_bits`]; S2HA/S2HD without
//!   HTTU; S2S (no stalls); S2ENDI (little-endian walks only); EATS ≠ 0 (no ATS);
//!   STRW ≠ 0 with stage 1 (no EL2 regime); an S2SL0 that is not the start level
//!   [`ArmS2`] computes for S2T0SZ and S2TG (Linux's rule: other concatenations,
//!   valid in the architecture, are refused); S2T0SZ above 32 (input sizes under 32
//!   bits are not modelled); S2TTB at or beyond the effective S2PS.
//! - **What is C_BAD_CD** besides `ContextDescriptor::decode`'s checks: HA without
//!   HTTU, HD without HTTU dirty support; S = 1 (no stalls); ENDI = 1; T0SZ above 32
//!   (not modelled); a 52-bit input (T0SZ < 16) unless the OAS is 52 bits (VAX is
//!   taken to come with a 52-bit OAS); TTB0 at or beyond the effective IPS. CD.A = 0
//!   (RAZ/WI instead of abort) is accepted: the device model decides what a refused
//!   transaction returns.
//! - **Effective output sizes**: CD.IPS and S2PS, capped at [`SmmuCaps::oas`] and, but
//!   for the 64 KiB granule, at 48 bits.
//! - **HTTU**: HA sets access flags, HA with HD records dirty state (HD alone does
//!   nothing); AFFD / S2AFFD turn access-flag faults off. A unit over read-only memory
//!   offers no HTTU.
//! - **Not modelled**: TTB1 (an input with bit 55 set faults with F_TRANSLATION, as if
//!   EPD1), TBI (a tagged input faults with F_TRANSLATION), S2PTW (stage-1 walks
//!   through stage-2 device memory are not refused), stalls, ATS, the EL2 regimes.
//! - **Walk outcomes → events**: not present, a bad descriptor type and an input
//!   beyond TxSZ are F_TRANSLATION; an output or table address beyond the effective
//!   size, and descriptor bits 49:48 (OA bits under LPA2) set, are F_ADDR_SIZE; other
//!   reserved bits (a block's low OA bits) F_TRANSLATION; a table outside guest
//!   memory F_WALK_EABT with FetchAddr, the physical address of the descriptor read
//!   (CLASS = TT at stage 1; at stage 2 the CLASS of what stage 2 was translating).
//!   F_WALK_EABT is always recorded; translation faults as CD.R / STE.S2R say.
//! - **Configuration events** (C_BAD_*, F_STREAM_DISABLED) carry StreamID and
//!   SSV/SubstreamID only (every other field 0; `EventRecord::class` then reads as
//!   CD, the value 0 of a field these records do not have); F_STE_FETCH and F_CD_FETCH also the FetchAddr of the
//!   structure read (the L1 descriptor, STE, L1 CD descriptor or CD). Walk events carry
//!   InputAddr, RnW (0 for a write, also a read-write), InD, PnU, S2, CLASS, and the
//!   IPA (stage-2 faults, `dw3[51:12]`) or FetchAddr (F_WALK_EABT, `dw3[51:3]`);
//!   TTRnW is set for CLASS = TT faults of a descriptor read.
//! - **Levels**: the 32-byte record has no level field; [`SmmuFault::level`] holds
//!   the level of the table being read, in pgtable-core's numbering (0 = the last
//!   level); [`SmmuFault::arm_level`] gives the hardware's L0–L3.
//! - **Caching**: the configuration of a (StreamID, SubstreamID) is cached with device
//!   key `sid | ssid << 32 | 1 << 63` (without SubstreamID: `sid`). Tags are
//!   `vmid << 16 | asid`: stage 1 uses the STE's S2VMID when the unit has stage 2 (0
//!   otherwise) with the CD's ASID; stage-2-only configurations use ASID 0. Bypass
//!   (Config, or S1DSS) is not cached in the IOTLB (it costs no walk); its
//!   configuration is, and the [`Mapping`] given is the 1 GiB identity block around the
//!   input. Faults are never cached. An input at or beyond the OAS in bypass is
//!   F_ADDR_SIZE (stage 1, CLASS = IN, always recorded).
//! - **Commands**: see [`SmmuUnit::command`].
//! - **Event queue**: bounded ([`SmmuCaps::event_queue_entries`]); a record that does
//!   not fit is lost and sets the overflow flag ([`SmmuUnit::event_overflow`]), as
//!   EVTQ_PROD.OVFLG does; [`SmmuUnit::events`] drains the queue and clears the flag.

mod chain;
mod commands;

use crate::access::Access;
use crate::translate::{DeviceTlb, DeviceTranslate, Mapping, TranslateFault};
use crate::unit::{ChainLink, Request, UnitCache};
use chain::{Config, Ctx, Miss};
use pgtable_core::ViewMemory;
use smmu_format::EventRecord;
use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

#[cfg(doc)]
use pgtable_core::Nested;
#[cfg(doc)]
use smmu_format::{ArmS1, ArmS2};

/// Which hardware updates of access flags and dirty state the SMMU offers
/// (SMMU_IDR0.HTTU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Httu {
    /// 0b00: none; CD.HA/HD and STE.S2HA/S2HD are refused (C_BAD_CD, C_BAD_STE).
    None,
    /// 0b01: access flags (HA, S2HA).
    Access,
    /// 0b10: access flags and dirty state (HA + HD, S2HA + S2HD).
    #[default]
    AccessDirty,
}

/// What the emulated SMMU offers, as its ID registers would say, for what matters to
/// translation; and the sizes of its caches and event queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SmmuCaps {
    /// Stage-1 translation (IDR0.S1P).
    pub stage1: bool,
    /// Stage-2 translation (IDR0.S2P).
    pub stage2: bool,
    /// Output address size in bits (IDR5.OAS): 32 to 52.
    pub oas: u32,
    /// SubstreamID bits (IDR1.SSIDSIZE): 0 to 20.
    pub ssid_bits: u8,
    /// StreamID bits (IDR1.SIDSIZE): 0 to 32.
    pub sid_bits: u8,
    /// Hardware access-flag and dirty-state updates (IDR0.HTTU).
    pub httu: Httu,
    /// IOTLB entries (rounded up to a power of two).
    pub iotlb_entries: usize,
    /// Event queue entries (EVTQ size): records beyond are lost, with the overflow flag.
    pub event_queue_entries: usize,
}

impl Default for SmmuCaps {
    /// Both stages, 48-bit OAS, 20-bit SubstreamIDs, 16-bit StreamIDs, HTTU with dirty
    /// state, 4096 IOTLB entries, 1024 event records.
    fn default() -> Self {
        SmmuCaps {
            stage1: true,
            stage2: true,
            oas: 48,
            ssid_bits: 20,
            sid_bits: 16,
            httu: Httu::AccessDirty,
            iotlb_entries: 4096,
            event_queue_entries: 1024,
        }
    }
}

/// A transaction the SMMU refused: the event it raises, whether the event went into
/// the event queue, and where the walk was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmmuFault {
    /// The event record, or `None` for a transaction aborted without one (STE Config
    /// = abort, no stream table yet).
    pub event: Option<EventRecord>,
    /// Whether the record went into the event queue: not for a translation fault the
    /// guest did not ask to record (CD.R, STE.S2R clear), nor when the queue was full.
    pub recorded: bool,
    /// For a walk fault, the level of the table being read, in pgtable-core's
    /// numbering (0 = the last level, hardware L3); `None` for configuration events.
    /// The event record has no level field.
    pub level: Option<u32>,
}

impl SmmuFault {
    /// The level of [`SmmuFault::level`] as the architecture numbers it (L0–L3;
    /// 3 = the last level).
    pub fn arm_level(&self) -> Option<u32> {
        self.level.map(|l| 3u32.saturating_sub(l))
    }
}

impl fmt::Display for SmmuFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(e) = &self.event else {
            return f.write_str("aborted without an event");
        };
        write!(f, "{} for StreamID {:#x}", e.event, e.stream_id)?;
        if let Some(ssid) = e.substream_id {
            write!(f, " SubstreamID {ssid:#x}")?;
        }
        if e.event.is_translation_fault() || e.event == smmu_format::EventId::FWalkEabt {
            let class = match e.class {
                smmu_format::EventClass::Cd => "CD",
                smmu_format::EventClass::TranslationTable => "TT",
                smmu_format::EventClass::Input => "IN",
            };
            write!(
                f,
                ", stage {}, CLASS {class}, input {:#x}",
                if e.s2 { 2 } else { 1 },
                e.input_addr
            )?;
            if let Some(l) = self.arm_level() {
                write!(f, ", at L{l}")?;
            }
        }
        if !self.recorded {
            f.write_str(" (not recorded)")?;
        }
        Ok(())
    }
}

impl std::error::Error for SmmuFault {}

/// The event queue: bounded, with an overflow flag.
#[derive(Debug)]
struct EventQueue {
    records: VecDeque<EventRecord>,
    capacity: usize,
    overflow: bool,
}

/// The unit's state, shared with its devices.
struct Inner<V: ViewMemory> {
    mem: Arc<V>,
    caps: SmmuCaps,
    /// STRTAB_BASE and STRTAB_BASE_CFG, once written.
    strtab: RwLock<Option<(u64, u64)>>,
    cache: UnitCache<Config<V>>,
    events: Mutex<EventQueue>,
}

/// An emulated SMMUv3 over guest memory `V`; see the [module documentation](self).
/// Cloning gives another handle to the same unit; every method takes `&self` and may
/// be called from any thread.
pub struct SmmuUnit<V: ViewMemory> {
    inner: Arc<Inner<V>>,
}

impl<V: ViewMemory> Clone for SmmuUnit<V> {
    fn clone(&self) -> Self {
        SmmuUnit {
            inner: self.inner.clone(),
        }
    }
}

impl<V: ViewMemory> fmt::Debug for SmmuUnit<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmmuUnit")
            .field("caps", &self.inner.caps)
            .field(
                "strtab",
                &*self
                    .inner
                    .strtab
                    .read()
                    .unwrap_or_else(PoisonError::into_inner),
            )
            .field("cache", &self.inner.cache)
            .finish_non_exhaustive()
    }
}

/// The configuration cache's key of a (StreamID, SubstreamID).
const fn device_key(sid: u32, ssid: Option<u32>) -> u64 {
    match ssid {
        Some(ssid) => sid as u64 | (ssid as u64) << 32 | 1 << 63,
        None => sid as u64,
    }
}

impl<V: ViewMemory> SmmuUnit<V> {
    /// A unit walking guest memory `mem`, offering `caps`. Over memory that cannot be
    /// written the unit offers no HTTU (its updates need atomic writes).
    pub fn new(mem: Arc<V>, caps: SmmuCaps) -> Self {
        let mut caps = caps;
        caps.oas = caps.oas.clamp(32, 52);
        caps.ssid_bits = caps.ssid_bits.min(20);
        caps.sid_bits = caps.sid_bits.min(32);
        if !mem.writable() {
            caps.httu = Httu::None;
        }
        SmmuUnit {
            inner: Arc::new(Inner {
                mem,
                caps,
                strtab: RwLock::new(None),
                cache: UnitCache::new(caps.iotlb_entries),
                events: Mutex::new(EventQueue {
                    records: VecDeque::new(),
                    capacity: caps.event_queue_entries,
                    overflow: false,
                }),
            }),
        }
    }

    /// What the unit offers (as [`SmmuUnit::new`] adjusted it).
    pub fn caps(&self) -> SmmuCaps {
        self.inner.caps
    }

    /// The guest memory.
    pub fn memory(&self) -> &Arc<V> {
        &self.inner.mem
    }

    /// The guest's STRTAB_BASE and STRTAB_BASE_CFG register values (and SMMUEN):
    /// translations from now on start at this stream table. Every cached configuration
    /// and translation is dropped, as by CMD_CFGI_ALL and CMD_TLBI_NSNH_ALL.
    pub fn set_stream_table(&self, strtab_base: u64, strtab_base_cfg: u64) {
        *self
            .inner
            .strtab
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some((strtab_base, strtab_base_cfg));
        self.inner
            .invalidate_configs(|_, _| true, &crate::iotlb::Selector::ALL);
    }

    /// Translates `iova` for `access` by stream `sid` with SubstreamID `ssid`: an IOTLB
    /// hit, or the walk of the guest's structures and tables. Access and dirty flags
    /// are set as the guest's HTTU settings say.
    ///
    /// # Errors
    /// The [`SmmuFault`], already put into the event queue if it is recorded.
    pub fn translate(
        &self,
        sid: u32,
        ssid: Option<u32>,
        iova: u64,
        access: Access,
    ) -> Result<Mapping, SmmuFault> {
        let inner = &*self.inner;
        let req = Request {
            device: device_key(sid, ssid),
            source: sid,
            pasid: ssid,
            iova,
            access,
        };
        let ctx = Ctx {
            sid,
            ssid,
            iova,
            access,
        };
        match inner
            .cache
            .translate(&req, || inner.chain(&ctx), |c| inner.walk(c, &ctx))
        {
            Ok(m) | Err(Miss::Identity(m)) => Ok(m),
            Err(Miss::Fault(mut f)) => {
                inner.report(&mut f);
                Err(f)
            }
        }
    }

    /// The chain of `sid` (and `ssid`): every structure read, in order, and what the
    /// translations go through, or the fault that stopped the chain (for a debugger or
    /// the CLI's decode). Nothing is cached or recorded.
    pub fn describe_chain(
        &self,
        sid: u32,
        ssid: Option<u32>,
    ) -> (Vec<ChainLink>, Result<String, SmmuFault>) {
        let ctx = Ctx {
            sid,
            ssid,
            iova: 0,
            access: Access::READ,
        };
        chain::TRACE.with(|t| *t.borrow_mut() = Some(Vec::new()));
        let config = self.inner.chain(&ctx);
        let links = chain::TRACE
            .with(|t| t.borrow_mut().take())
            .unwrap_or_default();
        let config = match config {
            Ok(c) => Ok(c.describe()),
            Err(Miss::Fault(f)) => Err(f),
            Err(Miss::Identity(_)) => Ok("bypass".to_string()),
        };
        (links, config)
    }

    /// Executes one command from the guest's command queue, completely: invalidations
    /// take effect (in the IOTLB, the configuration cache and the registered device
    /// TLBs) before it returns, so CMD_SYNC only signals.
    ///
    /// - CMD_CFGI_STE, CMD_CFGI_STE_RANGE, CMD_CFGI_ALL (0x04 with Range 31, or QEMU's
    ///   0x07), CMD_CFGI_CD, CMD_CFGI_CD_ALL drop the cached configurations they name
    ///   and their translations (CFGI_CD of SubstreamID 0 also drops the stream's
    ///   transactions without SubstreamID, which may use CD 0).
    /// - CMD_TLBI_NH_ASID drops the ASID's translations; CMD_TLBI_NH_ALL and
    ///   CMD_TLBI_S12_VMALL the VMID's; CMD_TLBI_NSNH_ALL everything. CMD_TLBI_NH_VA
    ///   drops the addresses in every ASID of the VMID (global leaves are cached per
    ///   ASID, and NH_VA removes global entries too), as CMD_TLBI_NH_VAA does.
    ///   CMD_TLBI_S2_IPA drops the IPAs of the VMID's stage-2-only translations, and,
    ///   if a nested configuration of the VMID is cached (whose IOVAs the IPA does
    ///   not tell), all of the VMID's. Ranges (TG ≠ 0) are honoured (IDR3.RIL).
    /// - CMD_ATC_INV drops the stream's translations in its range and invalidates its
    ///   device TLBs there.
    /// - CMD_SYNC completes at once. With CS = SIG_IRQ and an MSIAddress inside guest
    ///   memory, MSIData is written there (32 bits), as Linux's MSI polling of the
    ///   command queue expects; an MSI to a doorbell outside memory is the VMM's to
    ///   deliver (decode the command with `smmu_format::Command`).
    /// - CMD_PREFETCH_CONFIG, CMD_PREFETCH_ADDR, CMD_RESUME and CMD_STALL_TERM are
    ///   accepted and do nothing (prefetches are hints; nothing ever stalls).
    ///
    /// # Errors
    /// [`CommandError::Ill`](smmu_format::CommandError::Ill) (CERROR_ILL) for an
    /// undefined opcode or an ILLEGAL field (a reserved CMD_SYNC CS), and for commands
    /// this SMMU does not implement: CMD_TLBI_EL2_* (no EL2 regime) and CMD_PRI_RESP
    /// (no PRI). The command has no effect then.
    pub fn command(&self, words: [u64; 2]) -> Result<(), smmu_format::CommandError> {
        self.inner.command(words)
    }

    /// Drains the event queue, oldest first, and clears the overflow flag.
    pub fn events(&self) -> Vec<EventRecord> {
        let mut q = self
            .inner
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        q.overflow = false;
        q.records.drain(..).collect()
    }

    /// Whether an event was lost because the queue was full since the last
    /// [`SmmuUnit::events`].
    pub fn event_overflow(&self) -> bool {
        self.inner
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .overflow
    }

    /// The translations of stream `sid` (with SubstreamID `ssid`) as a
    /// [`DeviceTranslate`], for `vmm::IommuBridge` or a device model.
    pub fn device(&self, sid: u32, ssid: Option<u32>) -> SmmuDevice<V> {
        SmmuDevice {
            unit: self.clone(),
            sid,
            ssid,
        }
    }

    /// Registers a device-side cache of the translations of stream `sid` with
    /// SubstreamID `ssid` (such as the `vmm::IommuBridge` of [`SmmuUnit::device`]):
    /// every command that may drop its translations invalidates it before the command
    /// returns ([`UnitCache::register_device_tlb`]).
    pub fn register_device_tlb(&self, sid: u32, ssid: Option<u32>, tlb: Arc<dyn DeviceTlb>) {
        self.inner.cache.register_device_tlb(sid, ssid, tlb);
    }

    /// The unit's configuration cache and IOTLB (to inspect them).
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            configurations: self.inner.cache.configs().len(),
            translations: self.inner.cache.iotlb().len(),
        }
    }
}

/// How much the unit has cached (a snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheStats {
    /// Cached (StreamID, SubstreamID) configurations.
    pub configurations: usize,
    /// Cached translations (4 KiB IOTLB entries).
    pub translations: usize,
}

impl<V: ViewMemory> Inner<V> {
    /// Puts a fault's event into the queue if it is to be recorded; updates
    /// `recorded` with whether it was.
    #[cold]
    fn report(&self, f: &mut SmmuFault) {
        let Some(event) = f.event.filter(|_| f.recorded) else {
            f.recorded = false;
            return;
        };
        let mut q = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        if q.records.len() < q.capacity {
            q.records.push_back(event);
        } else {
            q.overflow = true;
            f.recorded = false;
        }
    }
}

/// One stream's translations through its [`SmmuUnit`] (from [`SmmuUnit::device`]):
/// a [`DeviceTranslate`] whose faults carry the [`SmmuFault`]
/// ([`TranslateFault::downcast_ref`]).
pub struct SmmuDevice<V: ViewMemory> {
    unit: SmmuUnit<V>,
    sid: u32,
    ssid: Option<u32>,
}

impl<V: ViewMemory> SmmuDevice<V> {
    /// The StreamID.
    pub fn sid(&self) -> u32 {
        self.sid
    }

    /// The SubstreamID its transactions carry, if any.
    pub fn ssid(&self) -> Option<u32> {
        self.ssid
    }

    /// The unit.
    pub fn unit(&self) -> &SmmuUnit<V> {
        &self.unit
    }
}

impl<V: ViewMemory> fmt::Debug for SmmuDevice<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmmuDevice")
            .field("sid", &self.sid)
            .field("ssid", &self.ssid)
            .finish_non_exhaustive()
    }
}

impl<V: ViewMemory> DeviceTranslate for SmmuDevice<V> {
    fn translate(&self, iova: u64, access: Access) -> Result<Mapping, TranslateFault> {
        self.unit
            .translate(self.sid, self.ssid, iova, access)
            .map_err(|f| TranslateFault::new(iova, access, f))
    }
}
