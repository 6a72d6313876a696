//! [`VtdUnit`]: an emulated Intel VT-d remapping unit over guest memory.
//!
//! A translation starts from the requester (bus, device, function) and its PASID, as
//! the hardware does (docs/formats.md §8.1, §8.2): RTADDR → root entry → context entry
//! (legacy mode: the second-stage table; scalable mode: the PASID directory) → PASID
//! entry → first-stage, second-stage or nested tables, or pass-through. Every broken
//! link and every walk fault becomes the fault record the hardware would write, with
//! its architectural reason code (§8.3), recorded unless the guest disabled fault
//! processing for that device (FPD) or the fault log is full.
//!
//! The decoded chain of each device is cached with its translations
//! ([`UnitCache`]); the guest's queued-invalidation descriptors drop them
//! ([`VtdUnit::invalidate`]).
//!
//! Decisions where the specification leaves a choice or our sources disagree (§8.8):
//! - scalable-mode second-stage walks report the scalable-mode codes (0x78–0x7B,
//!   0x83–0x86), as Linux's reason table lists them; a not-present second-stage entry
//!   (R = W = 0) is 0x79 (an R/W permission fault: VT-d has no separate present bit
//!   there); a denied read is 0x86, a denied write 0x85;
//! - first-stage input addresses are the lower canonical half only (0x80 above it);
//! - the interrupt window (0xFEE0_0000..=0xFEEF_FFFF) as a translation's output
//!   faults with 0xE (legacy) / 0x87 (scalable);
//! - first-stage A/D updates happen whenever the memory is writable (the hardware
//!   always makes them); second-stage ones when the entry's SSADE is set and the unit
//!   supports them ([`VtdCaps::ssads`]);
//! - pass-through translations are not cached (they cost no walk).
//!
//! ```
//! use pgtable_core::{Access, Iova, PhysAddr, Prot, TableWriter, WriterPage};
//! use std::sync::Arc;
//! use viommu::memory::{ImageMemory, PhysAccess};
//! use viommu::vtd::{VtdCaps, VtdUnit};
//! use vtd_format::{Agaw, ContextEntry, RootEntry, RootTableAddress, SourceId, TranslationTableMode, VtdSs};
//!
//! // 1 MiB of guest RAM at 0: root table at 0x1000, context table at 0x2000,
//! // second-stage tables from 0x3000 on.
//! let mem = Arc::new(ImageMemory::anonymous(0, 1 << 20)?);
//! let dev = SourceId::new(0, 0x18); // 00:03.0
//! let root = RootEntry { present: true, context_table: PhysAddr(0x2000) };
//! let [lo, hi] = root.encode();
//! mem.write_u64(0x1000, lo)?;
//! mem.write_u64(0x1008, hi)?;
//! let ctx = ContextEntry::second_stage(0x3000, Agaw::Bits48, 7).words();
//! mem.write_u64(0x2000 + 0x18 * 16, ctx[0])?;
//! mem.write_u64(0x2008 + 0x18 * 16, ctx[1])?;
//! let mut next = 0x4000;
//! let mut page = || { let pa = next; next += 0x1000; Some(WriterPage { pa: PhysAddr(pa), pointer: pa }) };
//! let mut ss = TableWriter::new(VtdSs::new(48, 48).unwrap(), mem.clone(), PhysAddr(0x3000)).unwrap();
//! ss.map(Iova(0x10_0000), PhysAddr(0x8_0000), 0x1000, Prot::READ, &mut page).unwrap();
//!
//! let unit = VtdUnit::new(mem, VtdCaps::default());
//! unit.set_root_table(RootTableAddress { table: PhysAddr(0x1000), mode: TranslationTableMode::Legacy }.encode());
//! let m = unit.translate(dev, None, 0x10_0123, Access::READ).unwrap();
//! assert_eq!(m.translate(0x10_0123), Some(0x8_0123));
//! // A write faults: reason 0x5, recorded in the fault log.
//! let fault = unit.translate(dev, None, 0x10_0123, Access::WRITE).unwrap_err();
//! assert_eq!(fault.record.reason.code(), 0x5);
//! assert_eq!(unit.take_faults()[0].address, Iova(0x10_0000));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::access::Access;
use crate::access::Perms;
use crate::iotlb::{PageRange, PasidMatch, Selector};
use crate::memory::PhysAccess;
use crate::translate::{DeviceTranslate, Mapping, TranslateFault};
use crate::unit::{DeviceConfig, Request, UnitCache};
use pgtable_core::{
    Fault, FaultKind, ForeignTable, Iova, Nested, NestedFault, PhysAddr, Prot, Translation,
    ViewMemory, WalkFault, WalkPolicy,
};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use vtd_format::{
    Agaw, ContextCacheScope, ContextEntry, DecodeError, FaultReason, FaultRecord,
    InvalidationDescriptor, IotlbScope, PasidCacheScope, PasidDirEntry, PasidEntry,
    PasidIotlbScope, Pgtt, RootEntry, RootTableAddress, ScalableContextEntry, ScalableRootEntry,
    SourceId, TranslationTableMode, TranslationType, VtdFs, VtdSs,
};

/// The interrupt window a translation may not land in.
const INTERRUPT_WINDOW: std::ops::RangeInclusive<u64> = 0xFEE0_0000..=0xFEEF_FFFF;

/// What the emulated unit supports (its CAP and ECAP registers, as far as translation
/// goes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VtdCaps {
    /// Host address width (CAP.MGAW + 1): table pointers and outputs at or above it
    /// are reserved bits.
    pub haw: u32,
    /// The second-stage widths supported (CAP.SAGAW), as a bit mask of AW codes
    /// (bit 1: 39-bit, bit 2: 48-bit, bit 3: 57-bit).
    pub sagaw: u8,
    /// Scalable mode (ECAP.SMTS).
    pub scalable: bool,
    /// Pass-through (ECAP.PT).
    pub pass_through: bool,
    /// Device-TLB / ATS (ECAP.DT).
    pub device_tlb: bool,
    /// First-stage tables (ECAP.FSTS).
    pub first_stage: bool,
    /// Second-stage tables in scalable mode (ECAP.SSTS).
    pub second_stage: bool,
    /// Nested translation (ECAP.NEST).
    pub nested: bool,
    /// Second-stage access/dirty updates (ECAP.SSADS).
    pub ssads: bool,
    /// IOTLB entries.
    pub iotlb_entries: usize,
    /// Fault recording registers (CAP.NFR + 1).
    pub fault_records: usize,
}

impl Default for VtdCaps {
    /// A 48-bit host address width, 39/48-bit second stage, and every feature.
    fn default() -> Self {
        VtdCaps {
            haw: 48,
            sagaw: 0b0110,
            scalable: true,
            pass_through: true,
            device_tlb: true,
            first_stage: true,
            second_stage: true,
            nested: true,
            ssads: true,
            iotlb_entries: 4096,
            fault_records: 8,
        }
    }
}

impl VtdCaps {
    fn supports(&self, aw: Option<Agaw>) -> Option<Agaw> {
        aw.filter(|a| self.sagaw >> a.code() & 1 == 1)
    }
}

/// A translation the unit refused: the fault record the hardware writes, and whether
/// it was recorded (not when fault processing is disabled for the device and the
/// reason is a qualified one, nor when the fault log was full).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VtdFault {
    /// The record.
    pub record: FaultRecord,
    /// Whether it went into the fault log.
    pub recorded: bool,
}

impl fmt::Display for VtdFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.record;
        write!(f, "VT-d fault {} from {}", r.reason, r.source)?;
        if let Some(pasid) = r.pasid {
            write!(f, " PASID {pasid:#x}")?;
        }
        write!(f, " at {:#x}", r.address.0)
    }
}

impl std::error::Error for VtdFault {}

pub use crate::unit::ChainLink;

/// The tables a device's requests go through.
#[derive(Debug)]
pub enum VtdTables<V: ViewMemory> {
    /// Untranslated: output = input.
    PassThrough,
    /// Second stage only.
    Second(ForeignTable<VtdSs, V>),
    /// First stage only.
    First(ForeignTable<VtdFs, V>),
    /// First stage nested in the second.
    Nested(Box<Nested<VtdFs, VtdSs, V>>),
}

/// What the chain decoded for one device (and PASID).
#[derive(Debug)]
pub struct VtdConfig<V: ViewMemory> {
    /// The domain id tagging its translations.
    pub did: u16,
    /// Scalable mode (which fault codes apply).
    pub scalable: bool,
    /// Fault processing disabled: qualified faults are not recorded.
    pub fpd: bool,
    /// Scalable mode: the PASID the requests use (theirs, or RID_PASID).
    pub pasid: Option<u32>,
    /// The tables.
    pub tables: VtdTables<V>,
}

impl<V: ViewMemory> DeviceConfig for VtdConfig<V> {
    fn tag(&self) -> u32 {
        u32::from(self.did)
    }
}

/// Why the chain stopped, before any record is made.
struct ChainFault {
    reason: FaultReason,
    fpd: bool,
}

impl ChainFault {
    fn new(reason: FaultReason) -> Self {
        ChainFault { reason, fpd: false }
    }
}

/// The fault a decode error of a present structure raises (its reserved-bit or
/// reserved-value reason).
fn decode_fault(e: DecodeError, fpd: bool) -> ChainFault {
    ChainFault {
        reason: e.fault_reason().unwrap_or(FaultReason::ContextEntryInvalid),
        fpd,
    }
}

/// An emulated VT-d remapping unit; see the [module documentation](self).
pub struct VtdUnit<V: ViewMemory> {
    mem: Arc<V>,
    caps: VtdCaps,
    /// RTADDR_REG as last latched by SRTP; 0 before.
    rtaddr: AtomicU64,
    cache: UnitCache<VtdConfig<V>>,
    faults: Mutex<Vec<FaultRecord>>,
    /// FSTS.PFO: a fault was dropped because the log was full.
    overflow: AtomicBool,
}

impl<V: ViewMemory> fmt::Debug for VtdUnit<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VtdUnit")
            .field("caps", &self.caps)
            .field(
                "rtaddr",
                &format_args!("{:#x}", self.rtaddr.load(Ordering::Relaxed)),
            )
            .field("cache", &self.cache)
            .finish()
    }
}

impl<V: ViewMemory> VtdUnit<V> {
    /// A unit over guest memory `mem` with capabilities `caps`, before the guest set its
    /// root table.
    pub fn new(mem: Arc<V>, caps: VtdCaps) -> Self {
        VtdUnit {
            mem,
            caps,
            rtaddr: AtomicU64::new(0),
            cache: UnitCache::new(caps.iotlb_entries.max(1)),
            faults: Mutex::new(Vec::new()),
            overflow: AtomicBool::new(false),
        }
    }

    /// The capabilities.
    pub fn caps(&self) -> &VtdCaps {
        &self.caps
    }

    /// The guest wrote `rtaddr` to RTADDR_REG and set GCMD.SRTP: the unit uses the new
    /// root table from now on, and drops every cached chain and translation (as the
    /// guest's global invalidations after SRTP would).
    pub fn set_root_table(&self, rtaddr: u64) {
        self.rtaddr.store(rtaddr, Ordering::Release);
        self.cache.invalidate_configs(|_, _| true, &Selector::ALL);
    }

    /// The cache in front of the walks.
    pub fn cache(&self) -> &UnitCache<VtdConfig<V>> {
        &self.cache
    }

    /// The recorded faults, oldest first, taken out of the log (the guest reading the
    /// fault recording registers and clearing their F bits).
    pub fn take_faults(&self) -> Vec<FaultRecord> {
        std::mem::take(&mut *self.faults.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// FSTS.PFO: whether a fault was dropped because the log was full (cleared by the
    /// call).
    pub fn take_overflow(&self) -> bool {
        self.overflow.swap(false, Ordering::Relaxed)
    }

    /// Translates `iova` for a request from `source` (with `pasid`, if it carries one)
    /// asking for `access`: through the IOTLB, or the chain and the tables.
    ///
    /// # Errors
    /// The [`VtdFault`], with its record (also logged unless suppressed).
    pub fn translate(
        &self,
        source: SourceId,
        pasid: Option<u32>,
        iova: u64,
        access: Access,
    ) -> Result<Mapping, VtdFault> {
        let req = Request {
            device: device_key(source, pasid),
            source: u32::from(source.0),
            pasid,
            iova,
            access,
        };
        let result = self.cache.translate(
            &req,
            || self.chain(source, pasid, access, None),
            |c| self.walk(c, iova, access),
        );
        // Pass-through maps 1:1 and is not cached.
        match result {
            Ok(m) => Ok(m),
            Err(Miss::PassThrough) => Ok(Mapping {
                iova: iova & !0xfff,
                pa: iova & !0xfff,
                size: 0x1000,
                perms: Perms::RW | Perms::EXEC,
            }),
            Err(Miss::Fault(f)) => Err(self.record(source, pasid, iova, access, f)),
        }
    }

    /// The chain of `source` (and `pasid`): every structure read, in order, and the
    /// fault that stopped it if one did (for a debugger or the CLI's decode).
    pub fn describe_chain(
        &self,
        source: SourceId,
        pasid: Option<u32>,
    ) -> (Vec<ChainLink>, Result<VtdConfig<V>, FaultReason>) {
        let mut links = Vec::new();
        let r = self
            .chain(source, pasid, Access::READ, Some(&mut links))
            .map_err(|m| match m {
                Miss::Fault(f) => f.reason,
                Miss::PassThrough => FaultReason::ContextEntryInvalid,
            });
        (links, r)
    }

    /// Records the fault (unless suppressed) and makes its value.
    fn record(
        &self,
        source: SourceId,
        pasid: Option<u32>,
        iova: u64,
        access: Access,
        f: ChainFault,
    ) -> VtdFault {
        let record = FaultRecord {
            source,
            address: Iova(iova & !0xfff),
            pasid,
            read: !access.write,
            privileged: access.privileged,
            execute: access.exec,
            ..FaultRecord::new(f.reason)
        };
        let suppressed = f.fpd && f.reason.is_qualified();
        let recorded = !suppressed && {
            let mut log = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
            if log.len() < self.caps.fault_records {
                log.push(record);
                true
            } else {
                self.overflow.store(true, Ordering::Relaxed);
                false
            }
        };
        VtdFault { record, recorded }
    }

    /// Reads `N` words at `pa`, noting them in `trace`; `None` if they are not in memory.
    fn read<const N: usize>(
        &self,
        name: &'static str,
        pa: u64,
        trace: &mut Option<&mut Vec<ChainLink>>,
    ) -> Option<[u64; N]> {
        let mut words = [0; N];
        for (i, w) in words.iter_mut().enumerate() {
            *w = self.mem.read_u64(pa.checked_add(8 * i as u64)?).ok()?;
        }
        if let Some(t) = trace {
            t.push(ChainLink {
                name,
                pa: PhysAddr(pa),
                words: words.to_vec(),
            });
        }
        Some(words)
    }

    /// Walks from RTADDR to the device's tables.
    fn chain(
        &self,
        source: SourceId,
        pasid: Option<u32>,
        access: Access,
        mut trace: Option<&mut Vec<ChainLink>>,
    ) -> Result<VtdConfig<V>, Miss> {
        use FaultReason as R;
        let haw = self.caps.haw;
        let rta = RootTableAddress::decode(self.rtaddr.load(Ordering::Acquire), haw)
            .map_err(|e| decode_fault(e, false))?;
        let scalable = rta.mode == TranslationTableMode::Scalable;
        if scalable && !self.caps.scalable {
            return Err(ChainFault::new(R::SmRootTableAddressInvalid).into());
        }
        let at = rta.root_entry(source.bus()).0;
        if !scalable {
            if pasid.is_some() {
                return Err(ChainFault::new(R::SmLegacyTtm).into());
            }
            let words = self
                .read::<2>("root entry", at, &mut trace)
                .ok_or(ChainFault::new(R::RootTableAccess))?;
            let root = RootEntry::decode(words, haw).map_err(|e| decode_fault(e, false))?;
            let Some(at) = root.context_entry(source.devfn()) else {
                return Err(ChainFault::new(R::RootEntryNotPresent).into());
            };
            let words = self
                .read::<2>("context entry", at.0, &mut trace)
                .ok_or(ChainFault::new(R::ContextTableAccess))?;
            let ce = ContextEntry::decode(words, haw).map_err(|e| decode_fault(e, false))?;
            if !ce.present() {
                return Err(ChainFault::new(R::ContextEntryNotPresent).into());
            }
            return self.legacy_tables(&ce);
        }
        let words = self
            .read::<2>("scalable-mode root entry", at, &mut trace)
            .ok_or(ChainFault::new(R::SmRootEntryAccess))?;
        let half = ScalableRootEntry::decode_for(words, source.devfn(), haw)
            .map_err(|e| decode_fault(e, false))?;
        let root = ScalableRootEntry {
            lower: half,
            upper: half,
        };
        let Some(at) = root.context_entry(source.devfn()) else {
            return Err(ChainFault::new(R::SmRootEntryNotPresent).into());
        };
        let words = self
            .read::<4>("scalable-mode context entry", at.0, &mut trace)
            .ok_or(ChainFault::new(R::SmContextEntryAccess))?;
        let ce = ScalableContextEntry::decode(words, haw).map_err(|e| decode_fault(e, false))?;
        if !ce.present {
            return Err(ChainFault::new(R::SmContextEntryNotPresent).into());
        }
        let fpd = ce.fpd;
        let fault = |reason| ChainFault { reason, fpd };
        if pasid.is_some() && !ce.paside {
            return Err(fault(R::SmPasidDisabled).into());
        }
        let pasid = pasid.unwrap_or(ce.rid_pasid);
        if !ce.covers_pasid(pasid) {
            return Err(fault(R::SmPasidBeyondDirectory).into());
        }
        let words = self
            .read::<1>(
                "PASID-directory entry",
                ce.pasid_dir_entry(pasid).0,
                &mut trace,
            )
            .ok_or(fault(R::PasidDirEntryAccess))?;
        let de = PasidDirEntry::decode(words[0], haw).map_err(|e| decode_fault(e, fpd))?;
        let fpd = fpd || de.fpd;
        let fault = |reason| ChainFault { reason, fpd };
        if !de.present {
            return Err(fault(R::PasidDirEntryNotPresent).into());
        }
        let words = self
            .read::<8>("PASID entry", de.pasid_entry(pasid).0, &mut trace)
            .ok_or(fault(R::PasidEntryAccess))?;
        let pe = PasidEntry::decode(words, haw).map_err(|e| decode_fault(e, fpd))?;
        let fpd = fpd || pe.fpd();
        let fault = |reason| ChainFault { reason, fpd };
        if !pe.present() {
            return Err(fault(R::PasidEntryNotPresent).into());
        }
        if access.privileged && !pe.sre() {
            return Err(fault(R::SmSupervisorRequestDisabled).into());
        }
        self.scalable_tables(&pe, fpd, pasid)
    }

    /// The tables of a present legacy context entry.
    fn legacy_tables(&self, ce: &ContextEntry) -> Result<VtdConfig<V>, Miss> {
        let invalid = || {
            Miss::from(ChainFault {
                reason: FaultReason::ContextEntryInvalid,
                fpd: ce.fpd(),
            })
        };
        let tt = TranslationType::from_code(ce.translation_type()).ok_or_else(invalid)?;
        let tables = match tt {
            TranslationType::PassThrough if self.caps.pass_through => VtdTables::PassThrough,
            TranslationType::DeviceTlb if !self.caps.device_tlb => return Err(invalid()),
            TranslationType::PassThrough => return Err(invalid()),
            _ => {
                let aw = self.caps.supports(ce.aw()).ok_or_else(invalid)?;
                VtdTables::Second(
                    self.second_stage(aw, ce.ssptptr(), false)
                        .ok_or_else(invalid)?,
                )
            }
        };
        Ok(VtdConfig {
            did: ce.did(),
            scalable: false,
            fpd: ce.fpd(),
            pasid: None,
            tables,
        })
    }

    /// The tables of a present PASID entry.
    fn scalable_tables(
        &self,
        pe: &PasidEntry,
        fpd: bool,
        pasid: u32,
    ) -> Result<VtdConfig<V>, Miss> {
        let invalid = || {
            Miss::from(ChainFault {
                reason: FaultReason::PasidEntryInvalid,
                fpd,
            })
        };
        let pgtt = Pgtt::from_code(pe.pgtt()).ok_or_else(invalid)?;
        let supported = match pgtt {
            Pgtt::FirstStage => self.caps.first_stage,
            Pgtt::SecondStage => self.caps.second_stage,
            Pgtt::Nested => self.caps.nested && self.caps.first_stage && self.caps.second_stage,
            Pgtt::PassThrough => self.caps.pass_through,
        };
        if !supported {
            return Err(invalid());
        }
        let ss = || -> Result<ForeignTable<VtdSs, V>, Miss> {
            let aw = self.caps.supports(pe.aw()).ok_or_else(invalid)?;
            let root_ok = self.second_stage(aw, pe.ssptptr(), pe.ssade() && self.caps.ssads);
            // An unreadable SSPTPTR: scalable mode has its own reason.
            root_ok.ok_or(Miss::from(ChainFault {
                reason: FaultReason::SmSsRootInvalid,
                fpd,
            }))
        };
        let fs_format = || {
            VtdFs::new(if pe.five_level() { 57 } else { 48 }, self.caps.haw)
                .and_then(|f| f.with_haw(self.caps.haw))
                .map_err(|_| invalid())
        };
        // The hardware always updates first-stage A/D; only memory we may not write
        // keeps it from doing so here.
        let fs_policy = if self.mem.writable() {
            WalkPolicy::UPDATE
        } else {
            WalkPolicy::READ_ONLY
        };
        let tables = match pgtt {
            Pgtt::PassThrough => VtdTables::PassThrough,
            Pgtt::SecondStage => VtdTables::Second(ss()?),
            Pgtt::FirstStage => {
                let view =
                    ForeignTable::new(fs_format()?, self.mem.clone(), PhysAddr(pe.fsptptr()))
                        .and_then(|v| v.with_policy(fs_policy))
                        .map_err(|_| {
                            Miss::from(ChainFault {
                                reason: FaultReason::FsRootAccess,
                                fpd,
                            })
                        })?;
                VtdTables::First(view)
            }
            Pgtt::Nested => {
                let nested = Nested::new(fs_format()?, pe.fsptptr(), fs_policy, ss()?)
                    .map_err(|_| invalid())?;
                VtdTables::Nested(Box::new(nested))
            }
        };
        Ok(VtdConfig {
            did: pe.did(),
            scalable: true,
            fpd,
            pasid: Some(pasid),
            tables,
        })
    }

    /// A second-stage view of `aw` rooted at `root`, or `None` if the root table is
    /// not in memory.
    fn second_stage(&self, aw: Agaw, root: u64, ad: bool) -> Option<ForeignTable<VtdSs, V>> {
        let fmt = VtdSs::new(aw.bits(), self.caps.haw)
            .ok()?
            .with_haw(self.caps.haw)
            .ok()?;
        let view = ForeignTable::new(fmt, self.mem.clone(), PhysAddr(root)).ok()?;
        let policy = if ad && self.mem.writable() {
            WalkPolicy::UPDATE
        } else {
            WalkPolicy::READ_ONLY
        };
        view.with_policy(policy).ok()
    }

    /// Walks the device's tables for `iova`.
    fn walk(&self, c: &VtdConfig<V>, iova: u64, access: Access) -> Result<Translation, Miss> {
        let fault = |reason| Miss::from(ChainFault { reason, fpd: c.fpd });
        let t = match &c.tables {
            VtdTables::PassThrough => return Err(Miss::PassThrough),
            VtdTables::Second(ss) => ss
                .translate_access(Iova(iova), access)
                .map_err(|f| fault(ss_reason(&f, access, c.scalable, None)))?,
            VtdTables::First(fs) => fs
                .translate_access(Iova(iova), access)
                .map_err(|f| fault(fs_reason(&f, access)))?,
            VtdTables::Nested(n) => {
                let top = pgtable_core::Format::geometry(n.stage1_format()).top();
                n.translate(Iova(iova), access)
                    .map_err(|f| fault(nested_reason(&f, access, top)))?
            }
        };
        let page = t.pa.0 & !(t.size - 1);
        if INTERRUPT_WINDOW.contains(&t.pa.0)
            || page <= *INTERRUPT_WINDOW.end() && page + (t.size - 1) >= *INTERRUPT_WINDOW.start()
        {
            return Err(fault(if c.scalable {
                FaultReason::SmInterruptAddress
            } else {
                FaultReason::InterruptAddress
            }));
        }
        Ok(t)
    }

    /// Applies one queued-invalidation descriptor (128-bit form) to the caches.
    ///
    /// # Errors
    /// The descriptor's decode error (the hardware reports an invalidation-queue
    /// error, FSTS.IQE); nothing is invalidated.
    pub fn invalidate(&self, words: [u64; 2]) -> Result<(), DecodeError> {
        self.apply(InvalidationDescriptor::decode(words)?);
        Ok(())
    }

    /// Applies one decoded invalidation descriptor.
    pub fn apply(&self, desc: InvalidationDescriptor) {
        let did_of = |did: u16| move |_: u64, c: &VtdConfig<V>| c.did == did;
        match desc {
            InvalidationDescriptor::ContextCache(scope) => match scope {
                ContextCacheScope::Global => {
                    self.cache.invalidate_configs(|_, _| true, &Selector::ALL);
                }
                ContextCacheScope::Domain { did } => {
                    self.cache
                        .invalidate_configs(did_of(did), &Selector::ALL.tag(u32::from(did)));
                }
                ContextCacheScope::Device {
                    sid, function_mask, ..
                } => {
                    // FM masks the function number's high bits (1: bit 2, 2: bits 2:1,
                    // 3: all three).
                    let masked = (0b111u16 << (3 - function_mask.min(3))) & 0b111;
                    let hit =
                        move |d: u64, _: &VtdConfig<V>| (d as u16) & !masked == sid.0 & !masked;
                    // The IOTLB selects by blocks of low bits: every function of the
                    // device when any is masked (more than asked, never less).
                    let bits = if masked == 0 { 0 } else { 3 };
                    let sel = Selector::ALL.source_block(u32::from(sid.0), bits);
                    self.cache.invalidate_configs(hit, &sel);
                }
            },
            InvalidationDescriptor::PasidCache(scope) => match scope {
                PasidCacheScope::Global => {
                    self.cache.invalidate_configs(|_, _| true, &Selector::ALL);
                }
                PasidCacheScope::Domain { did } => {
                    self.cache
                        .invalidate_configs(did_of(did), &Selector::ALL.tag(u32::from(did)));
                }
                PasidCacheScope::Pasid { did, pasid } => {
                    // Requests without PASID may use this one as their RID_PASID: drop
                    // every configuration of the domain for that PASID.
                    let hit =
                        move |_: u64, c: &VtdConfig<V>| c.did == did && c.pasid == Some(pasid);
                    let sel = Selector::ALL
                        .tag(u32::from(did))
                        .pasid(PasidMatch::Is(pasid));
                    self.cache.invalidate_configs(hit, &sel);
                }
            },
            InvalidationDescriptor::Iotlb { scope, .. } => {
                let sel = match scope {
                    IotlbScope::Global => Selector::ALL,
                    IotlbScope::Domain { did } => Selector::ALL.tag(u32::from(did)),
                    IotlbScope::Page { did, addr, am, .. } => Selector::ALL
                        .tag(u32::from(did))
                        .pages(PageRange::aligned(addr.0, u32::from(am))),
                };
                self.cache.invalidate(&sel);
            }
            InvalidationDescriptor::PasidIotlb { did, pasid, scope } => {
                // Requests without PASID use their context entry's RID_PASID, which may
                // be this one: their entries of the domain go too (the IOTLB files them
                // without a PASID).
                let pages = match scope {
                    PasidIotlbScope::Pasid => PageRange::ALL,
                    PasidIotlbScope::Page { addr, am, .. } => {
                        PageRange::aligned(addr.0, u32::from(am))
                    }
                };
                let sel = Selector::ALL.tag(u32::from(did)).pages(pages);
                self.cache.invalidate(&sel.pasid(PasidMatch::Is(pasid)));
                if self.rid_pasid_in_use(did, pasid) {
                    self.cache.invalidate(&sel.pasid(PasidMatch::Without));
                }
            }
            InvalidationDescriptor::DeviceTlb {
                sid, size, addr, ..
            } => {
                let range = device_tlb_range(addr.0, size);
                self.cache
                    .invalidate(&Selector::ALL.source(u32::from(sid.0)).pages(range));
            }
            InvalidationDescriptor::PasidDeviceTlb {
                sid,
                pasid,
                size,
                addr,
                global,
                ..
            } => {
                let range = device_tlb_range(addr.0, size);
                let mut sel = Selector::ALL.source(u32::from(sid.0)).pages(range);
                if !global {
                    sel = sel.pasid(PasidMatch::Is(pasid));
                }
                self.cache.invalidate(&sel);
            }
            // Interrupt-entry cache and wait descriptors touch no translation.
            _ => {}
        }
    }

    /// Registers a device-side cache (a [`crate::vmm::IommuBridge`], an ATC) holding
    /// translations of `source` with `pasid`: every invalidation that may concern
    /// them reaches it.
    pub fn register_device_tlb(
        &self,
        source: SourceId,
        pasid: Option<u32>,
        tlb: Arc<dyn crate::DeviceTlb>,
    ) {
        self.cache
            .register_device_tlb(u32::from(source.0), pasid, tlb);
    }

    /// Whether a cached configuration of domain `did` serves requests without PASID
    /// through RID_PASID `pasid` (a PASID-based invalidation of `pasid` then concerns
    /// them too).
    fn rid_pasid_in_use(&self, did: u16, pasid: u32) -> bool {
        self.cache
            .configs()
            .snapshot()
            .iter()
            .any(|(key, c)| key >> 16 == 0 && c.did == did && c.pasid == Some(pasid))
    }

    /// The translator of one device (and PASID), for [`crate::vmm::IommuBridge`]
    /// (register the bridge with [`VtdUnit::register_device_tlb`] so that the guest's
    /// invalidations reach its cache).
    pub fn device(self: &Arc<Self>, source: SourceId, pasid: Option<u32>) -> VtdDevice<V> {
        VtdDevice {
            unit: self.clone(),
            source,
            pasid,
        }
    }
}

/// The range a device-TLB invalidation's address and S bit name: with S set, the
/// lowest clear bit of ADDR\[63:12\] gives the size (2^(n+1) pages).
fn device_tlb_range(addr: u64, size: bool) -> PageRange {
    let page = addr >> 12;
    if !size {
        return PageRange::pages(page, 1);
    }
    let n = (!page).trailing_zeros().min(51);
    let count = 1u64 << (n + 1);
    PageRange::pages(page & !(count - 1), count)
}

/// The configuration cache key of a device and PASID: the source id, and the PASID
/// plus one above it (0 for requests without PASID).
fn device_key(source: SourceId, pasid: Option<u32>) -> u64 {
    u64::from(source.0) | pasid.map_or(0, |p| u64::from(p) + 1) << 16
}

/// Why a fill stopped: a fault, or a pass-through device (no walk, no cache).
enum Miss {
    Fault(ChainFault),
    PassThrough,
}

impl From<ChainFault> for Miss {
    fn from(f: ChainFault) -> Self {
        Miss::Fault(f)
    }
}

/// The denied-access reason: write if the access writes and the grant lacks it.
fn denied(access: Access, granted: Prot, write: FaultReason, read: FaultReason) -> FaultReason {
    if access.write && !granted.contains(Prot::WRITE) {
        write
    } else {
        read
    }
}

/// The reason of a second-stage walk fault (legacy or scalable codes).
fn ss_reason(f: &WalkFault, access: Access, scalable: bool, _: Option<u32>) -> FaultReason {
    use FaultReason as R;
    let top = f.entry == 0 && matches!(f.kind, FaultKind::Entry(Fault::BadTableAddress { .. }));
    match (f.kind, scalable) {
        (FaultKind::NotPresent, false) => {
            denied(access, Prot::empty(), R::WriteDenied, R::ReadDenied)
        }
        (FaultKind::NotPresent, true) => R::SmSsPermission,
        (FaultKind::Permission { granted }, false) => {
            denied(access, granted, R::WriteDenied, R::ReadDenied)
        }
        (FaultKind::Permission { granted }, true) => {
            denied(access, granted, R::SmWriteDenied, R::SmReadDenied)
        }
        (FaultKind::Entry(Fault::InputRange), false) => R::AddressBeyondMgaw,
        (FaultKind::Entry(Fault::InputRange), true) => R::SmAddressBeyondSs,
        (FaultKind::Entry(Fault::BadTableAddress { .. }), false) if top => R::ContextEntryInvalid,
        (FaultKind::Entry(Fault::BadTableAddress { .. }), false) => R::PagingEntryAccess,
        (FaultKind::Entry(Fault::BadTableAddress { .. }), true) if top => R::SmSsRootInvalid,
        (FaultKind::Entry(Fault::BadTableAddress { .. }), true) => R::SmSsEntryAccess,
        (FaultKind::Entry(Fault::AddressSize { .. }), true) => R::SmSsAddressBeyondMax,
        (_, false) => R::PagingEntryReserved,
        (_, true) => R::SmSsEntryReserved,
    }
}

/// The reason of a first-stage walk fault.
fn fs_reason(f: &WalkFault, access: Access) -> FaultReason {
    use FaultReason as R;
    match f.kind {
        FaultKind::NotPresent => R::FsEntryNotPresent,
        FaultKind::Entry(Fault::InputRange) => R::FsNonCanonical,
        FaultKind::Entry(Fault::BadTableAddress { .. }) if f.entry == 0 => R::FsRootAccess,
        FaultKind::Entry(Fault::BadTableAddress { .. }) => R::FsEntryAccess,
        FaultKind::Entry(_) | FaultKind::AccessFlag => R::FsEntryReserved,
        FaultKind::Permission { granted } => {
            if !access.privileged && granted.contains(Prot::PRIV) {
                R::FsUserDenied
            } else if access.exec && granted.contains(Prot::NOEXEC) {
                R::SmExecuteDenied
            } else {
                denied(access, granted, R::SmWriteDenied, R::SmReadDenied)
            }
        }
    }
}

/// The reason of a nested walk fault: first-stage codes, the second stage's own when
/// it faults on the output, and 0x74–0x77 when it faults on a first-stage table.
fn nested_reason(f: &NestedFault, access: Access, s1_top: u32) -> FaultReason {
    use FaultReason as R;
    match (f.stage, f.s1_table) {
        (1, _) => fs_reason(&f.fault, access),
        (_, None) => ss_reason(&f.fault, access, true, None),
        (_, Some(level)) => {
            let top = level == s1_top;
            match f.fault.kind {
                FaultKind::Entry(Fault::InputRange) => R::NestedFsAddressBeyondSs,
                FaultKind::NotPresent | FaultKind::Permission { .. } => {
                    let write = matches!(f.fault.kind, FaultKind::Permission { granted } if granted.contains(Prot::READ));
                    if write {
                        R::NestedFsWriteDenied
                    } else if top {
                        R::NestedFsRootReadDenied
                    } else {
                        R::NestedFsTableReadDenied
                    }
                }
                _ => ss_reason(&f.fault, Access::READ, true, None),
            }
        }
    }
}

/// One device's translations through a [`VtdUnit`].
pub struct VtdDevice<V: ViewMemory> {
    unit: Arc<VtdUnit<V>>,
    source: SourceId,
    pasid: Option<u32>,
}

impl<V: ViewMemory> fmt::Debug for VtdDevice<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VtdDevice")
            .field("source", &self.source)
            .field("pasid", &self.pasid)
            .finish()
    }
}

impl<V: ViewMemory> DeviceTranslate for VtdDevice<V> {
    fn translate(&self, iova: u64, access: Access) -> Result<Mapping, TranslateFault> {
        self.unit
            .translate(self.source, self.pasid, iova, access)
            .map_err(|f| TranslateFault::new(iova, access, f))
    }
}
