//! The chain from a transaction to its tables (stream table → STE → CD table → CD),
//! decoded into a cached [`Config`], and the walk of that configuration's tables; each
//! broken link and walk fault turned into its event.

use super::{Httu, Inner, SmmuFault};
use crate::access::{Access, Perms};
use crate::memory::PhysAccess;
use crate::translate::Mapping;
use crate::unit::ChainLink;
use crate::unit::DeviceConfig;
use pgtable_core::{
    Error as CoreError, Fault, FaultKind, ForeignTable, Format, Geometry, Iova, Nested,
    NestedFault, Prot, Translation, ViewMemory, WalkFault, WalkPolicy,
};
use smmu_format::descriptor::RES0_HIGH;
use smmu_format::{
    ArmConfig, ArmS1, ArmS2, CdLocation, ContextDescriptor, DecodeError, EventClass, EventId,
    EventRecord, Granule, L1CdDescriptor, L1StreamDescriptor, SteConfig, SteLocation, StreamTable,
    StreamTableBase, StreamTableConfig, StreamTableEntry, StreamTableFormat, address_size_bits,
};
use std::sync::PoisonError;

/// Bits 51:3 of event record dword 3 (FetchAddr).
const FETCH_ADDR: u64 = ((1 << 52) - 1) & !0b111;
/// Bits 51:12 of event record dword 3 (IPA).
const IPA: u64 = ((1 << 52) - 1) & !0xfff;
/// The identity block a bypassed transaction is given.
const BYPASS_BLOCK: u64 = 1 << 30;

thread_local! {
    /// The structures a chain walk on this thread read, while `describe_chain` takes
    /// a trace (never on the translation path).
    pub(super) static TRACE: std::cell::RefCell<Option<Vec<ChainLink>>> =
        const { std::cell::RefCell::new(None) };
}

/// The transaction a chain walk or a table walk is for.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ctx {
    pub(super) sid: u32,
    pub(super) ssid: Option<u32>,
    pub(super) iova: u64,
    pub(super) access: Access,
}

/// Why a translation did not come from the IOTLB and a walk: a fault, or a bypass,
/// whose identity mapping is not cached.
#[derive(Debug)]
pub(super) enum Miss {
    Fault(SmmuFault),
    Identity(Mapping),
}

impl From<SmmuFault> for Miss {
    fn from(f: SmmuFault) -> Self {
        Miss::Fault(f)
    }
}

/// What a walk fault becomes in an event record, besides the event itself.
struct WalkEvent {
    s2: bool,
    class: EventClass,
    /// Whether a translation fault (0x10–0x13) is recorded (CD.R, STE.S2R).
    record: bool,
}

impl Ctx {
    /// A record of `event` for this transaction's stream: StreamID, SSV/SubstreamID,
    /// and nothing else (CLASS, RES0 in configuration records, is 0).
    fn record(&self, event: EventId) -> EventRecord {
        EventRecord {
            stream_id: self.sid,
            substream_id: self.ssid,
            class: EventClass::Cd,
            ..EventRecord::new(event)
        }
    }

    /// A configuration event (always recorded).
    fn config(&self, event: EventId) -> SmmuFault {
        SmmuFault {
            event: Some(self.record(event)),
            recorded: true,
            level: None,
        }
    }

    /// The configuration event a decode error names (`fallback` if it names none).
    fn decode(&self, e: DecodeError, fallback: EventId) -> SmmuFault {
        self.config(e.event().unwrap_or(fallback))
    }

    /// A fetch abort of the structure at `addr` (F_STE_FETCH, F_CD_FETCH).
    fn fetch(&self, event: EventId, addr: u64) -> SmmuFault {
        SmmuFault {
            event: Some(EventRecord {
                address2: addr & FETCH_ADDR,
                ..self.record(event)
            }),
            recorded: true,
            level: None,
        }
    }

    /// A walk event for this transaction: the access, InputAddr, S2, CLASS, and the IPA
    /// or FetchAddr in `dw3`.
    fn walk(&self, event: EventId, at: &WalkEvent, address2: u64, ttrnw: bool) -> SmmuFault {
        SmmuFault {
            event: Some(EventRecord {
                input_addr: self.iova,
                rnw: !self.access.write,
                ind: self.access.exec,
                pnu: self.access.privileged,
                s2: at.s2,
                class: at.class,
                ttrnw,
                address2,
                ..self.record(event)
            }),
            recorded: at.record || !event.is_translation_fault(),
            level: None,
        }
    }

    /// The event of a walk fault `f` of a stage of geometry `geo`. `fetch_pa` turns
    /// the (stage-output) address of a descriptor whose table could not be read into
    /// the physical address the record names.
    fn stage_fault(
        &self,
        geo: &Geometry,
        f: &WalkFault,
        at: WalkEvent,
        fetch_pa: impl FnOnce(u64) -> u64,
    ) -> SmmuFault {
        let (event, fetch) = classify(geo, f);
        let at = WalkEvent {
            // Stage 1's external aborts are fetching its tables.
            class: if event == EventId::FWalkEabt && !at.s2 {
                EventClass::TranslationTable
            } else {
                at.class
            },
            ..at
        };
        let address2 = match fetch {
            Some(desc) => fetch_pa(desc) & FETCH_ADDR,
            None if at.s2 => f.iova.0 & IPA,
            None => 0,
        };
        // A table fetch reads, unless it was the write half of a flag update (a
        // stage-2 permission fault that still allowed the read).
        let ttrnw = at.class == EventClass::TranslationTable
            && !matches!(f.kind, FaultKind::Permission { granted } if granted.contains(Prot::READ));
        SmmuFault {
            level: Some(f.level),
            ..self.walk(event, &at, address2, ttrnw)
        }
    }
}

/// The event of a walk fault, and for an external abort the address of the
/// descriptor whose table could not be read (in the stage's output space).
fn classify(geo: &Geometry, f: &WalkFault) -> (EventId, Option<u64>) {
    match f.kind {
        FaultKind::NotPresent => (EventId::FTranslation, None),
        FaultKind::AccessFlag => (EventId::FAccess, None),
        FaultKind::Permission { .. } => (EventId::FPermission, None),
        FaultKind::Entry(fault) => match fault {
            // Bits 49:48 are OA bits under LPA2: an output beyond the size.
            Fault::Reserved { bits, .. } if bits & RES0_HIGH != 0 => (EventId::FAddrSize, None),
            Fault::AddressSize { .. } => (EventId::FAddrSize, None),
            Fault::BadTableAddress { pa } if pa >> geo.oas != 0 => (EventId::FAddrSize, None),
            Fault::BadTableAddress { pa } => {
                let offset = geo.index(f.iova.0, f.level) as u64 * 8;
                (EventId::FWalkEabt, Some(pa.wrapping_add(offset)))
            }
            _ => (EventId::FTranslation, None),
        },
    }
}

/// What the chain decoded for one (StreamID, SubstreamID): the IOTLB tag and how to
/// walk.
pub(super) struct Config<V: ViewMemory> {
    tag: u32,
    kind: Kind<V>,
}

impl<V: ViewMemory> DeviceConfig for Config<V> {
    fn tag(&self) -> u32 {
        self.tag
    }
}

impl<V: ViewMemory> Config<V> {
    /// What the translations go through, in words (for a debugger or the CLI).
    pub(super) fn describe(&self) -> String {
        let (vmid, asid) = (self.tag >> 16, self.tag & 0xffff);
        let tables = match &self.kind {
            Kind::Bypass { .. } => "bypass".to_string(),
            Kind::Disabled { .. } => "stage 1 with TTB0 walks disabled (EPD0)".to_string(),
            Kind::Unreadable { root, s2, .. } => format!(
                "stage {} with its top table at {root:#x} outside memory",
                if *s2 { 2 } else { 1 }
            ),
            Kind::Stage1 { table, .. } => {
                format!("{} at {:#x}", table.format().name(), table.root_phys().0)
            }
            Kind::Stage2 { table, .. } => {
                format!("{} at {:#x}", table.format().name(), table.root_phys().0)
            }
            Kind::Nested { walk, .. } => format!(
                "nested: stage 1 at IPA {:#x} in stage 2 at {:#x}",
                walk.stage1_root(),
                walk.stage2().root_phys().0
            ),
        };
        format!("{tables}, VMID {vmid}, ASID {asid}")
    }

    /// The VMID of a nested configuration (whose stage-2 invalidations cannot be
    /// narrowed to IOVAs).
    pub(super) fn nested_vmid(&self) -> Option<u16> {
        match self.kind {
            Kind::Nested { .. } => Some((self.tag >> 16) as u16),
            _ => None,
        }
    }
}

// One per cached configuration, behind its `Arc`: boxing the walks would only add an
// indirection to every miss.
#[allow(clippy::large_enum_variant)]
enum Kind<V: ViewMemory> {
    /// Both stages bypassed: the output is the input, below 2^`oas`.
    Bypass { oas: u32 },
    /// Stage 1's TTB0 walks are disabled (EPD0): every input faults.
    Disabled { record: bool },
    /// The top table is not in memory: every input in range is an external abort.
    Unreadable {
        geo: Geometry,
        root: u64,
        s2: bool,
        record: bool,
    },
    Stage1 {
        table: ForeignTable<ArmS1, V>,
        record: bool,
    },
    Stage2 {
        table: ForeignTable<ArmS2, V>,
        record: bool,
    },
    Nested {
        walk: Nested<ArmS1, ArmS2, V>,
        s1_record: bool,
        s2_record: bool,
    },
}

/// Stage 2 as the STE configures it.
struct S2<V: ViewMemory> {
    fmt: ArmS2,
    root: u64,
    /// `None` when the top table is not in memory.
    table: Option<ForeignTable<ArmS2, V>>,
    record: bool,
}

impl<V: ViewMemory> S2<V> {
    /// The configuration of stage 2 alone.
    fn alone(self) -> Kind<V> {
        match self.table {
            Some(table) => Kind::Stage2 {
                table,
                record: self.record,
            },
            None => Kind::Unreadable {
                geo: self.fmt.geometry(),
                root: self.root,
                s2: true,
                record: self.record,
            },
        }
    }

    /// The physical address of `ipa` for a configuration fetch, or the stage-2 fault
    /// (CLASS = CD).
    fn fetch_address(&self, ipa: u64, ctx: &Ctx) -> Result<u64, SmmuFault> {
        let at = WalkEvent {
            s2: true,
            class: EventClass::Cd,
            record: self.record,
        };
        let geo = self.fmt.geometry();
        let fault = match &self.table {
            Some(t) => match t.translate_access(Iova(ipa), Access::READ) {
                Ok(t) => return Ok(t.pa.0),
                Err(f) => f,
            },
            None => unreadable(&geo, self.root, ipa),
        };
        Err(ctx.stage_fault(&geo, &fault, at, |a| a))
    }
}

/// The fault of a walk of `input` whose top table at `root` is not in memory.
fn unreadable(geo: &Geometry, root: u64, input: u64) -> WalkFault {
    let kind = if input >> geo.va_bits != 0 {
        Fault::InputRange
    } else {
        Fault::BadTableAddress { pa: root }
    };
    WalkFault {
        kind: FaultKind::Entry(kind),
        level: geo.top(),
        iova: Iova(input),
        entry: 0,
    }
}

/// Stage 1 as the CD configures it.
enum S1 {
    Disabled {
        record: bool,
    },
    Table {
        fmt: ArmS1,
        ttb0: u64,
        policy: WalkPolicy,
        record: bool,
    },
}

impl<V: ViewMemory> Inner<V> {
    /// The stream table the registers describe, if they describe one.
    fn stream_table(&self) -> Result<Option<StreamTable>, ()> {
        let Some((base, cfg)) = *self.strtab.read().unwrap_or_else(PoisonError::into_inner) else {
            return Ok(None);
        };
        let mut config = StreamTableConfig::decode(cfg).map_err(|_| ())?;
        if config.format == StreamTableFormat::TwoLevel && ![6, 8, 10].contains(&config.split) {
            return Err(());
        }
        config.log2size = config.log2size.min(self.caps.sid_bits);
        Ok(Some(StreamTable {
            base: StreamTableBase::decode(base).table,
            config,
        }))
    }

    /// `N` words of structure `name` at physical address `pa`, if they are all in
    /// memory (noted in the chain trace when one is being taken).
    fn read_words<const N: usize>(&self, name: &'static str, pa: u64) -> Option<[u64; N]> {
        let mut words = [0; N];
        for (i, w) in words.iter_mut().enumerate() {
            *w = self.mem.read_u64(pa.checked_add(8 * i as u64)?).ok()?;
        }
        TRACE.with(|t| {
            if let Some(links) = t.borrow_mut().as_mut() {
                links.push(ChainLink {
                    name,
                    pa: pgtable_core::PhysAddr(pa),
                    words: words.to_vec(),
                });
            }
        });
        Some(words)
    }

    /// `N` words of a CD-table structure at `addr` (an IPA when `s2` is given).
    fn fetch_cd_words<const N: usize>(
        &self,
        name: &'static str,
        addr: u64,
        s2: Option<&S2<V>>,
        ctx: &Ctx,
    ) -> Result<[u64; N], SmmuFault> {
        let pa = match s2 {
            Some(s2) => s2.fetch_address(addr, ctx)?,
            None => addr,
        };
        self.read_words(name, pa)
            .ok_or_else(|| ctx.fetch(EventId::FCdFetch, pa))
    }

    /// The output size of CD.IPS / STE.S2PS `code` for `granule`: capped at the
    /// unit's OAS, and at 48 bits but for the 64 KiB granule.
    fn output_bits(&self, code: u8, granule: Granule) -> Option<u32> {
        let max = if granule == Granule::K64 { 52 } else { 48 };
        Some(
            address_size_bits(u64::from(code))?
                .min(self.caps.oas)
                .min(max),
        )
    }

    /// What the unit refuses in an STE that decoded (C_BAD_STE).
    fn ste_supported(&self, ste: &StreamTableEntry) -> bool {
        let caps = &self.caps;
        let s1 = ste.config.s1_enabled();
        let s2 = ste.config.s2_enabled();
        !(s1 && (!caps.stage1 || ste.s1cdmax > caps.ssid_bits || ste.strw != 0)
            || s2
                && (!caps.stage2
                    || ste.s2s
                    || ste.s2endi
                    || ste.s2ha && caps.httu < Httu::Access
                    || ste.s2hd && caps.httu < Httu::AccessDirty)
            || (s1 || s2) && ste.eats != 0)
    }

    /// Stage 2 of a valid STE.
    fn stage2(&self, ste: &StreamTableEntry, ctx: &Ctx) -> Result<S2<V>, SmmuFault> {
        let bad = || ctx.config(EventId::CBadSte);
        let v = ste.vtcr;
        let granule = v.granule().ok_or_else(bad)?;
        let ias = 64 - u32::from(v.t0sz);
        let oas = self.output_bits(v.ps, granule).ok_or_else(bad)?;
        if ias > 48 && self.caps.oas < 52 || ste.s2ttb.0 >> oas != 0 {
            return Err(bad());
        }
        let fmt = ArmS2::new(ArmConfig::new(granule.bytes(), ias, oas)).map_err(|_| bad())?;
        if fmt.s2sl0() != u64::from(v.sl0) {
            return Err(bad());
        }
        let policy = WalkPolicy {
            set_accessed: ste.s2ha,
            set_dirty: ste.s2ha && ste.s2hd,
            access_faults: !ste.s2affd,
        };
        let table = match ForeignTable::new(fmt, self.mem.clone(), ste.s2ttb) {
            Ok(t) => Some(t.with_policy(policy).map_err(|_| bad())?),
            Err(CoreError::Fault { .. }) => None,
            Err(_) => return Err(bad()),
        };
        Ok(S2 {
            fmt,
            root: ste.s2ttb.0,
            table,
            record: ste.s2r,
        })
    }

    /// Stage 1 of a valid CD.
    fn stage1(&self, cd: &ContextDescriptor, ctx: &Ctx) -> Result<S1, SmmuFault> {
        let bad = || ctx.config(EventId::CBadCd);
        let caps = &self.caps;
        if cd.endi
            || cd.s
            || cd.ha && caps.httu < Httu::Access
            || cd.hd && caps.httu < Httu::AccessDirty
        {
            return Err(bad());
        }
        if cd.tt0.epd {
            return Ok(S1::Disabled { record: cd.r });
        }
        let granule = cd.granule(0).ok_or_else(bad)?;
        let ias = 64 - u32::from(cd.tt0.tsz);
        let oas = self.output_bits(cd.ips, granule).ok_or_else(bad)?;
        if ias > 48 && caps.oas < 52 || cd.tt0.ttb.0 >> oas != 0 {
            return Err(bad());
        }
        let config =
            ArmConfig::new(granule.bytes(), ias, oas).with_hierarchical_disabled(cd.tt0.had);
        Ok(S1::Table {
            fmt: ArmS1::new(config).map_err(|_| bad())?,
            ttb0: cd.tt0.ttb.0,
            policy: WalkPolicy {
                set_accessed: cd.ha,
                set_dirty: cd.ha && cd.hd,
                access_faults: !cd.affd,
            },
            record: cd.r,
        })
    }

    /// The CD of SubstreamID `ssid` in the STE's CD table (through stage 2 when `s2`
    /// is given).
    fn context_descriptor(
        &self,
        ste: &StreamTableEntry,
        ssid: u32,
        s2: Option<&S2<V>>,
        ctx: &Ctx,
    ) -> Result<ContextDescriptor, SmmuFault> {
        let bad_ssid = EventId::CBadSubstreamId;
        let table = ste.cd_table().ok_or_else(|| ctx.config(EventId::CBadSte))?;
        let cd = match table.locate(ssid).map_err(|e| ctx.decode(e, bad_ssid))? {
            CdLocation::Cd(pa) => pa.0,
            CdLocation::L1Descriptor(pa) => {
                let [word] = self.fetch_cd_words("L1 CD descriptor", pa.0, s2, ctx)?;
                L1CdDescriptor::decode(word)
                    .cd(ssid, table.format)
                    .map_err(|e| ctx.decode(e, bad_ssid))?
                    .0
            }
        };
        let words = self.fetch_cd_words("context descriptor", cd, s2, ctx)?;
        ContextDescriptor::decode(words).map_err(|e| ctx.decode(e, EventId::CBadCd))
    }

    /// Walks the chain of `ctx`'s stream to its configuration (rarely: out of line, so
    /// the translation path stays small).
    #[cold]
    #[inline(never)]
    pub(super) fn chain(&self, ctx: &Ctx) -> Result<Config<V>, Miss> {
        let table = match self.stream_table() {
            Ok(Some(table)) => table,
            // SMMUEN = 0, GBPA.ABORT = 1.
            Ok(None) => return Err(abort()),
            Err(()) => return Err(ctx.config(EventId::CBadStreamId).into()),
        };
        let bad_sid = EventId::CBadStreamId;
        let ste = match table.locate(ctx.sid).map_err(|e| ctx.decode(e, bad_sid))? {
            SteLocation::Ste(pa) => pa.0,
            SteLocation::L1Descriptor(pa) => {
                let [word] = self
                    .read_words("L1 stream table descriptor", pa.0)
                    .ok_or_else(|| ctx.fetch(EventId::FSteFetch, pa.0))?;
                L1StreamDescriptor::decode(word)
                    .ste(ctx.sid, table.config.split)
                    .map_err(|e| ctx.decode(e, bad_sid))?
                    .0
            }
        };
        let words = self
            .read_words("stream table entry", ste)
            .ok_or_else(|| ctx.fetch(EventId::FSteFetch, ste))?;
        let ste = StreamTableEntry::decode(words).map_err(|e| ctx.decode(e, EventId::CBadSte))?;
        if !self.ste_supported(&ste) {
            return Err(ctx.config(EventId::CBadSte).into());
        }
        let vmid = if self.caps.stage2 { ste.s2vmid } else { 0 };
        let s2 = match ste.config.s2_enabled() {
            true => Some(self.stage2(&ste, ctx)?),
            false => None,
        };
        let config = |kind, asid: u16| Config {
            tag: u32::from(vmid) << 16 | u32::from(asid),
            kind,
        };
        let bypass = || Kind::Bypass { oas: self.caps.oas };
        Ok(match ste.config {
            SteConfig::Abort => return Err(abort()),
            SteConfig::Bypass => config(bypass(), 0),
            SteConfig::S2Translate => config(s2.expect("stage 2 enabled").alone(), 0),
            SteConfig::S1Translate | SteConfig::Nested => {
                let Some(cd_ssid) = ste
                    .substream(ctx.ssid)
                    .map_err(|e| ctx.decode(e, EventId::CBadSubstreamId))?
                else {
                    // S1DSS = bypass: stage 1 is skipped.
                    return Ok(match s2 {
                        Some(s2) => config(s2.alone(), 0),
                        None => config(bypass(), 0),
                    });
                };
                let cd = self.context_descriptor(&ste, cd_ssid, s2.as_ref(), ctx)?;
                let kind = match (self.stage1(&cd, ctx)?, s2) {
                    (S1::Disabled { record }, _) => Kind::Disabled { record },
                    (
                        S1::Table {
                            fmt,
                            ttb0,
                            policy,
                            record,
                        },
                        None,
                    ) => {
                        match ForeignTable::new(fmt, self.mem.clone(), pgtable_core::PhysAddr(ttb0))
                        {
                            Ok(t) => Kind::Stage1 {
                                table: t
                                    .with_policy(policy)
                                    .map_err(|_| ctx.config(EventId::CBadCd))?,
                                record,
                            },
                            Err(_) => Kind::Unreadable {
                                geo: fmt.geometry(),
                                root: ttb0,
                                s2: false,
                                record,
                            },
                        }
                    }
                    (
                        S1::Table {
                            fmt,
                            ttb0,
                            policy,
                            record,
                        },
                        Some(s2),
                    ) => match s2.table {
                        Some(table) => Kind::Nested {
                            walk: Nested::new(fmt, ttb0, policy, table)
                                .map_err(|_| ctx.config(EventId::CBadCd))?,
                            s1_record: record,
                            s2_record: s2.record,
                        },
                        // Not reached: the CD fetch through stage 2 faulted first.
                        None => S2 { table: None, ..s2 }.alone(),
                    },
                };
                config(kind, cd.asid)
            }
        })
    }

    /// Walks `config`'s tables for `ctx` (out of line: the IOTLB hit path stays small).
    #[inline(never)]
    pub(super) fn walk(&self, config: &Config<V>, ctx: &Ctx) -> Result<Translation, Miss> {
        let input = ctx.iova;
        let in_ = |s2, record| WalkEvent {
            s2,
            class: EventClass::Input,
            record,
        };
        let fault = match &config.kind {
            Kind::Bypass { oas } => {
                if input >> oas != 0 {
                    return Err(ctx
                        .walk(EventId::FAddrSize, &in_(false, true), 0, false)
                        .into());
                }
                let base = input & !(BYPASS_BLOCK - 1);
                return Err(Miss::Identity(Mapping {
                    iova: base,
                    pa: base,
                    size: BYPASS_BLOCK,
                    perms: Perms::RW | Perms::EXEC,
                }));
            }
            Kind::Disabled { record } => {
                ctx.walk(EventId::FTranslation, &in_(false, *record), 0, false)
            }
            Kind::Unreadable {
                geo,
                root,
                s2,
                record,
            } => ctx.stage_fault(
                geo,
                &unreadable(geo, *root, input),
                in_(*s2, *record),
                |a| a,
            ),
            Kind::Stage1 { table, record } => {
                match table.translate_access(Iova(input), ctx.access) {
                    Ok(t) => return Ok(t),
                    Err(f) => {
                        let geo = table.format().geometry();
                        ctx.stage_fault(&geo, &f, in_(false, *record), |a| a)
                    }
                }
            }
            Kind::Stage2 { table, record } => {
                match table.translate_access(Iova(input), ctx.access) {
                    Ok(t) => return Ok(t),
                    Err(f) => {
                        let geo = table.format().geometry();
                        ctx.stage_fault(&geo, &f, in_(true, *record), |a| a)
                    }
                }
            }
            Kind::Nested {
                walk,
                s1_record,
                s2_record,
            } => match walk.translate(Iova(input), ctx.access) {
                Ok(t) => return Ok(t),
                Err(f) => nested_fault(walk, &f, ctx, *s1_record, *s2_record),
            },
        };
        Err(fault.into())
    }
}

/// The event of a nested walk's fault.
fn nested_fault<V: ViewMemory>(
    walk: &Nested<ArmS1, ArmS2, V>,
    f: &NestedFault,
    ctx: &Ctx,
    s1_record: bool,
    s2_record: bool,
) -> SmmuFault {
    if f.stage == 1 {
        let at = WalkEvent {
            s2: false,
            class: EventClass::Input,
            record: s1_record,
        };
        let geo = walk.stage1_format().geometry();
        // A stage-1 table the stage-2 output of which is not in memory: the fetch
        // address is that output.
        ctx.stage_fault(&geo, &f.fault, at, |ipa| {
            walk.stage2()
                .translate_access(Iova(ipa), Access::READ)
                .map_or(ipa, |t| t.pa.0)
        })
    } else {
        let at = WalkEvent {
            s2: true,
            class: if f.s1_table.is_some() {
                EventClass::TranslationTable
            } else {
                EventClass::Input
            },
            record: s2_record,
        };
        let geo = walk.stage2().format().geometry();
        ctx.stage_fault(&geo, &f.fault, at, |a| a)
    }
}

/// A transaction aborted without an event.
fn abort() -> Miss {
    Miss::Fault(SmmuFault {
        event: None,
        recorded: false,
        level: None,
    })
}
