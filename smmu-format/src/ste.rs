//! The SMMUv3 stream table entry (64 bytes): how the SMMU treats the transactions of one
//! StreamID, where its stage-1 context descriptors are and how its stage-2 table is
//! walked (docs/formats.md §3.8, §3.9, §8.4). [`ArmS2::stream_table_entry`] is the entry
//! Linux's `arm_smmu_make_s2_domain_ste` writes for a stage-2 table.

use crate::cd::walk_attributes;
use crate::cd_table::{CdTable, CdTableFormat};
use crate::descriptor::mask;
use crate::error::{DecodeError, Structure};
use crate::field::{Bits, unnamed, with_unnamed};
use crate::format::ArmS2;
use crate::geometry::{Granule, address_size_bits, address_size_encoding};
use pgtable_core::PhysAddr;

/// An STE's size.
pub const STE_SIZE: u64 = 64;

/// Dword 0 bit 0, V: valid.
pub const STE0_V: u64 = 1 << 0;
/// Dword 0 bits 3:1, Config.
pub const STE0_CONFIG_SHIFT: u32 = 1;
/// Config value for stage-2 translation only.
pub const STE0_CONFIG_S2_TRANS: u64 = 6;
/// Dword 2 bits 15:0, S2VMID.
pub const STE2_VMID_SHIFT: u32 = 0;
/// Dword 2 bits 50:32: the 19-bit VTCR field.
pub const STE2_VTCR_SHIFT: u32 = 32;
/// Dword 2 bit 51, S2AA64: VMSAv8-64 tables.
pub const STE2_S2AA64: u64 = 1 << 51;
/// Dword 2 bit 54, S2PTW: stage-1 table walks to device memory fault.
pub const STE2_S2PTW: u64 = 1 << 54;
/// Dword 2 bit 58, S2R: record faults.
pub const STE2_S2R: u64 = 1 << 58;
/// Dword 3 bits 51:4, S2TTB: a plain physical address (no 52-bit packing).
pub const STE3_S2TTB_MASK: u64 = mask(51, 4);

/// VTCR bits 5:0, S2T0SZ: `64 - ias`.
pub const VTCR_T0SZ_SHIFT: u32 = 0;
/// VTCR bits 7:6, S2SL0: the start level (see [`ArmS2::s2sl0`]).
pub const VTCR_SL0_SHIFT: u32 = 6;
/// VTCR bits 15:14, S2TG (0 = 4K, 1 = 64K, 2 = 16K).
pub const VTCR_TG_SHIFT: u32 = 14;
/// VTCR bits 18:16, S2PS: output size.
pub const VTCR_PS_SHIFT: u32 = 16;

// Dword 0.
const V: Bits = Bits::bit(0);
const CONFIG: Bits = Bits::new(3, 1);
const S1FMT: Bits = Bits::new(5, 4);
const S1CTXPTR: Bits = Bits::new(51, 6);
const S1CDMAX: Bits = Bits::new(63, 59);
// Dword 1.
const S1DSS: Bits = Bits::new(1, 0);
const S1CIR: Bits = Bits::new(3, 2);
const S1COR: Bits = Bits::new(5, 4);
const S1CSH: Bits = Bits::new(7, 6);
const MEV: Bits = Bits::bit(19);
const S2FWB: Bits = Bits::bit(25);
const S1STALLD: Bits = Bits::bit(27);
const EATS: Bits = Bits::new(29, 28);
const STRW: Bits = Bits::new(31, 30);
const SHCFG: Bits = Bits::new(45, 44);
// Dword 2.
const S2VMID: Bits = Bits::new(15, 0);
const VTCR: Bits = Bits::new(50, 32);
const S2AA64: Bits = Bits::bit(51);
const S2ENDI: Bits = Bits::bit(52);
const S2AFFD: Bits = Bits::bit(53);
const S2PTW: Bits = Bits::bit(54);
const S2HD: Bits = Bits::bit(55);
const S2HA: Bits = Bits::bit(56);
const S2S: Bits = Bits::bit(57);
const S2R: Bits = Bits::bit(58);
// Dword 3.
const S2TTB: Bits = Bits::new(51, 4);

/// The bits of each dword [`StreamTableEntry`] names; the rest is kept in
/// [`StreamTableEntry::other`].
const NAMED: [u64; 8] = [
    V.mask() | CONFIG.mask() | S1FMT.mask() | S1CTXPTR.mask() | S1CDMAX.mask(),
    S1DSS.mask()
        | S1CIR.mask()
        | S1COR.mask()
        | S1CSH.mask()
        | MEV.mask()
        | S2FWB.mask()
        | S1STALLD.mask()
        | EATS.mask()
        | STRW.mask()
        | SHCFG.mask(),
    S2VMID.mask() | VTCR.mask() | mask(58, 51),
    S2TTB.mask(),
    0,
    0,
    0,
    0,
];

/// The largest S1CDMax: SubstreamIDs have 20 bits.
const MAX_S1CDMAX: u64 = 20;

/// What an STE does with its stream's transactions (Config, `dw0[3:1]`). The values
/// 0b001–0b011 are reserved (C_BAD_STE).
///
/// ```
/// use smmu_format::SteConfig;
/// assert_eq!(SteConfig::S2Translate as u8, 0b110);
/// assert!(SteConfig::Nested.s1_enabled() && SteConfig::Nested.s2_enabled());
/// assert_eq!(SteConfig::from_code(0b010), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum SteConfig {
    /// 0b000: abort every transaction, without an event.
    #[default]
    Abort = 0b000,
    /// 0b100: bypass both stages.
    Bypass = 0b100,
    /// 0b101: stage 1 only.
    S1Translate = 0b101,
    /// 0b110: stage 2 only.
    S2Translate = 0b110,
    /// 0b111: stage 1 nested in stage 2.
    Nested = 0b111,
}

impl SteConfig {
    /// The config of value `code`; `None` for the reserved ones.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0b000 => Some(SteConfig::Abort),
            0b100 => Some(SteConfig::Bypass),
            0b101 => Some(SteConfig::S1Translate),
            0b110 => Some(SteConfig::S2Translate),
            0b111 => Some(SteConfig::Nested),
            _ => None,
        }
    }

    /// Whether stage 1 translates (Config\[0\]).
    pub const fn s1_enabled(self) -> bool {
        self as u8 & 0b101 == 0b101
    }

    /// Whether stage 2 translates (Config\[1\]).
    pub const fn s2_enabled(self) -> bool {
        self as u8 & 0b110 == 0b110
    }
}

/// What a transaction without SubstreamID uses when the CD table has more than one
/// CD (S1DSS, `dw1[1:0]`); 0b11 is reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum S1Dss {
    /// 0b00: terminate it (F_STREAM_DISABLED).
    Terminate = 0b00,
    /// 0b01: bypass stage 1.
    Bypass = 0b01,
    /// 0b10: use CD 0 (and then a SubstreamID of 0 is not allowed).
    Substream0 = 0b10,
}

impl S1Dss {
    /// The behaviour of value `code`; `None` for the reserved 0b11.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0b00 => Some(S1Dss::Terminate),
            0b01 => Some(S1Dss::Bypass),
            0b10 => Some(S1Dss::Substream0),
            _ => None,
        }
    }
}

/// The stage-2 translation controls: the 19-bit VTCR field of STE dword 2 (`[50:32]`).
///
/// ```
/// use smmu_format::Vtcr;
/// // docs/formats.md §5.6: 4K granule, IAS 40 (S2T0SZ 24), start L1, WBWA, IS, 48-bit PS.
/// let v = Vtcr { t0sz: 24, sl0: 1, irgn0: 1, orgn0: 1, sh0: 3, tg: 0, ps: 5 };
/// assert_eq!(v.encode(), 0x53558);
/// assert_eq!(Vtcr::decode(0x53558), v);
/// assert_eq!(v.start_level(), Some(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Vtcr {
    /// S2T0SZ (`[5:0]`): `64 - IAS`.
    pub t0sz: u8,
    /// S2SL0 (`[7:6]`): the start level, by granule (see [`Vtcr::start_level`]).
    pub sl0: u8,
    /// S2IR0 (`[9:8]`): inner cacheability of walks (0 NC, 1 WBWA, 2 WT, 3 WB).
    pub irgn0: u8,
    /// S2OR0 (`[11:10]`): outer cacheability of walks.
    pub orgn0: u8,
    /// S2SH0 (`[13:12]`): shareability of walks (0 NS, 2 OS, 3 IS).
    pub sh0: u8,
    /// S2TG (`[15:14]`): 0 = 4K, 1 = 64K, 2 = 16K.
    pub tg: u8,
    /// S2PS (`[18:16]`): the output size (see [`crate::address_size_bits`]).
    pub ps: u8,
}

const VT_T0SZ: Bits = Bits::new(5, 0);
const VT_SL0: Bits = Bits::new(7, 6);
const VT_IR0: Bits = Bits::new(9, 8);
const VT_OR0: Bits = Bits::new(11, 10);
const VT_SH0: Bits = Bits::new(13, 12);
const VT_TG: Bits = Bits::new(15, 14);
const VT_PS: Bits = Bits::new(18, 16);

impl Vtcr {
    /// The 19-bit field value.
    pub const fn encode(&self) -> u64 {
        VT_T0SZ.put(self.t0sz as u64)
            | VT_SL0.put(self.sl0 as u64)
            | VT_IR0.put(self.irgn0 as u64)
            | VT_OR0.put(self.orgn0 as u64)
            | VT_SH0.put(self.sh0 as u64)
            | VT_TG.put(self.tg as u64)
            | VT_PS.put(self.ps as u64)
    }

    /// The fields of a VTCR value (bits above 18 are ignored).
    pub const fn decode(value: u64) -> Self {
        Vtcr {
            t0sz: VT_T0SZ.get(value) as u8,
            sl0: VT_SL0.get(value) as u8,
            irgn0: VT_IR0.get(value) as u8,
            orgn0: VT_OR0.get(value) as u8,
            sh0: VT_SH0.get(value) as u8,
            tg: VT_TG.get(value) as u8,
            ps: VT_PS.get(value) as u8,
        }
    }

    /// The granule S2TG selects.
    pub const fn granule(&self) -> Option<Granule> {
        Granule::from_tg(self.tg as u64)
    }

    /// The hardware start level (0..=3) S2SL0 selects for the granule: with 4K,
    /// 0/1/2 = L2/L1/L0; with 16K and 64K, 0/1/2 = L3/L2/L1. `None` for S2SL0 = 3
    /// (needs FEAT_TTST or LPA2, which this crate does not model) or a reserved S2TG.
    pub const fn start_level(&self) -> Option<u32> {
        match (self.granule(), self.sl0) {
            (Some(Granule::K4), sl0 @ 0..=2) => Some(2 - sl0 as u32),
            (Some(Granule::K16 | Granule::K64), sl0 @ 0..=2) => Some(3 - sl0 as u32),
            _ => None,
        }
    }

    /// Checks what the SMMU checks before it walks: S2TG, S2PS and S2SL0 defined, and
    /// an input size S2T0SZ the start level can resolve — at least one bit and at most
    /// 16 concatenated tables' worth, with IAS from 25 up to 48 (52 with the 64K
    /// granule).
    ///
    /// # Errors
    /// [`DecodeError::Illegal`] of the [`Structure::StreamTableEntry`] (C_BAD_STE)
    /// naming the first bad field.
    pub const fn check(&self) -> Result<(), DecodeError> {
        let ste = Structure::StreamTableEntry;
        let Some(g) = self.granule() else {
            return Err(ste.illegal("S2TG", self.tg as u64));
        };
        if address_size_bits(self.ps as u64).is_none() {
            return Err(ste.illegal("S2PS", self.ps as u64));
        }
        let Some(start) = self.start_level() else {
            return Err(ste.illegal("S2SL0", self.sl0 as u64));
        };
        let ias = 64 - self.t0sz as i32;
        let max_ias = if matches!(g, Granule::K64) { 52 } else { 48 };
        // The bits the start level resolves: from its entry span up to the IAS.
        let span_shift = (g.shift() + g.bits_per_level() * (3 - start)) as i32;
        let top_bits = ias - span_shift;
        if ias < 25 || ias > max_ias || top_bits < 1 || top_bits > g.bits_per_level() as i32 + 4 {
            return Err(ste.illegal("S2T0SZ", self.t0sz as u64));
        }
        Ok(())
    }
}

/// A stream table entry (64 bytes), field by field.
///
/// Fields hold their raw encodings; those with reserved values have decoders
/// ([`SteConfig`], [`CdTableFormat`], [`S1Dss`], [`Vtcr`]). Bits the type does not name
/// (the memory-attribute overrides, PRIVCFG/INSTCFG/NSCFG, the secure and VMS words)
/// are kept in [`StreamTableEntry::other`], so `decode` then `encode` gives back the
/// same words.
///
/// ```
/// use pgtable_core::PhysAddr;
/// use smmu_format::{StreamTableEntry, SteConfig, Vtcr};
/// // docs/formats.md §5.6: stage 2, VMID 1, S2TTB 0x4000_0000.
/// let ste = StreamTableEntry {
///     valid: true,
///     config: SteConfig::S2Translate,
///     s2vmid: 1,
///     vtcr: Vtcr::decode(0x53558),
///     s2aa64: true,
///     s2ptw: true,
///     s2r: true,
///     s2ttb: PhysAddr(0x4000_0000),
///     ..Default::default()
/// };
/// let words = [0xD, 0, 0x044D_3558_0000_0001, 0x4000_0000, 0, 0, 0, 0];
/// assert_eq!(ste.encode(), words);
/// assert_eq!(StreamTableEntry::decode(words), Ok(ste));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StreamTableEntry {
    /// V (`dw0[0]`).
    pub valid: bool,
    /// Config (`dw0[3:1]`).
    pub config: SteConfig,
    /// S1Fmt (`dw0[5:4]`): the CD table's format ([`CdTableFormat`]).
    pub s1fmt: u8,
    /// S1ContextPtr (`dw0[51:6]`): the CD table (an IPA when nested); bits outside
    /// 51:6 are not encoded.
    pub s1_context_ptr: PhysAddr,
    /// S1CDMax (`dw0[63:59]`): the CD table holds 2^S1CDMax CDs (0: one, no
    /// SubstreamIDs).
    pub s1cdmax: u8,
    /// S1DSS (`dw1[1:0]`): transactions without SubstreamID ([`S1Dss`]).
    pub s1dss: u8,
    /// S1CIR (`dw1[3:2]`): inner cacheability of CD fetches.
    pub s1cir: u8,
    /// S1COR (`dw1[5:4]`): outer cacheability of CD fetches.
    pub s1cor: u8,
    /// S1CSH (`dw1[7:6]`): shareability of CD fetches.
    pub s1csh: u8,
    /// MEV (`dw1[19]`): events may be merged.
    pub mev: bool,
    /// S2FWB (`dw1[25]`): stage-2 forced write-back.
    pub s2fwb: bool,
    /// S1STALLD (`dw1[27]`): stage-1 stalls disabled.
    pub s1stalld: bool,
    /// EATS (`dw1[29:28]`): 0 ATS aborted, 1 full ATS, 2 split-stage ATS; 3 reserved.
    pub eats: u8,
    /// STRW (`dw1[31:30]`): the translation regime (0 NS-EL1, 2 EL2, 3 EL2-E2H).
    pub strw: u8,
    /// SHCFG (`dw1[45:44]`): shareability override (1 = use the incoming value).
    pub shcfg: u8,
    /// S2VMID (`dw2[15:0]`).
    pub s2vmid: u16,
    /// VTCR (`dw2[50:32]`).
    pub vtcr: Vtcr,
    /// S2AA64 (`dw2[51]`): VMSAv8-64 stage-2 tables.
    pub s2aa64: bool,
    /// S2ENDI (`dw2[52]`): big-endian stage-2 tables.
    pub s2endi: bool,
    /// S2AFFD (`dw2[53]`): stage-2 access-flag faults disabled.
    pub s2affd: bool,
    /// S2PTW (`dw2[54]`): stage-1 walks that stage 2 maps as device memory fault.
    pub s2ptw: bool,
    /// S2HD (`dw2[55]`): stage-2 hardware dirty-state updates.
    pub s2hd: bool,
    /// S2HA (`dw2[56]`): stage-2 hardware access-flag updates.
    pub s2ha: bool,
    /// S2S (`dw2[57]`): stage-2 faults stall.
    pub s2s: bool,
    /// S2R (`dw2[58]`): stage-2 faults are recorded.
    pub s2r: bool,
    /// S2TTB (`dw3[51:4]`): the (concatenated) stage-2 start table; bits outside 51:4
    /// are not encoded.
    pub s2ttb: PhysAddr,
    /// The bits of each dword no field above names, as they are.
    pub other: [u64; 8],
}

impl StreamTableEntry {
    /// The eight dwords, `dw0` first. Fields wider than their bit ranges are truncated.
    pub const fn encode(&self) -> [u64; 8] {
        let dw0 = V.flag(self.valid)
            | CONFIG.put(self.config as u64)
            | S1FMT.put(self.s1fmt as u64)
            | S1CTXPTR.of(self.s1_context_ptr.0)
            | S1CDMAX.put(self.s1cdmax as u64);
        let dw1 = S1DSS.put(self.s1dss as u64)
            | S1CIR.put(self.s1cir as u64)
            | S1COR.put(self.s1cor as u64)
            | S1CSH.put(self.s1csh as u64)
            | MEV.flag(self.mev)
            | S2FWB.flag(self.s2fwb)
            | S1STALLD.flag(self.s1stalld)
            | EATS.put(self.eats as u64)
            | STRW.put(self.strw as u64)
            | SHCFG.put(self.shcfg as u64);
        let dw2 = S2VMID.put(self.s2vmid as u64)
            | VTCR.put(self.vtcr.encode())
            | S2AA64.flag(self.s2aa64)
            | S2ENDI.flag(self.s2endi)
            | S2AFFD.flag(self.s2affd)
            | S2PTW.flag(self.s2ptw)
            | S2HD.flag(self.s2hd)
            | S2HA.flag(self.s2ha)
            | S2S.flag(self.s2s)
            | S2R.flag(self.s2r);
        let dw3 = S2TTB.of(self.s2ttb.0);
        with_unnamed([dw0, dw1, dw2, dw3, 0, 0, 0, 0], &self.other, &NAMED)
    }

    /// The entry `words`, checked for what makes an STE invalid or ILLEGAL regardless of
    /// the SMMU's features: V = 0; a reserved Config; with stage 1, a reserved S1Fmt,
    /// S1CDMax above 20 or (with S1CDMax > 0) a reserved S1DSS; with stage 2, S2AA64 = 0
    /// (AArch32 tables are not modelled), a VTCR [`Vtcr::check`] refuses, or S2TTB
    /// beyond S2PS; EATS = 0b11 in a translating config. What depends on the SMMU's ID
    /// registers (stages offered, SSID size, stalls, ATS, HTTU, OAS) is the caller's to
    /// check.
    ///
    /// # Errors
    /// [`DecodeError::Invalid`] or [`DecodeError::Illegal`] of the
    /// [`Structure::StreamTableEntry`]: C_BAD_STE.
    pub const fn decode(words: [u64; 8]) -> Result<Self, DecodeError> {
        let [dw0, dw1, dw2, dw3, ..] = words;
        let ste = Structure::StreamTableEntry;
        if !V.is_set(dw0) {
            return Err(DecodeError::Invalid { structure: ste });
        }
        let Some(config) = SteConfig::from_code(CONFIG.get(dw0) as u8) else {
            return Err(ste.illegal("Config", CONFIG.get(dw0)));
        };
        let e = StreamTableEntry {
            valid: true,
            config,
            s1fmt: S1FMT.get(dw0) as u8,
            s1_context_ptr: PhysAddr(S1CTXPTR.of(dw0)),
            s1cdmax: S1CDMAX.get(dw0) as u8,
            s1dss: S1DSS.get(dw1) as u8,
            s1cir: S1CIR.get(dw1) as u8,
            s1cor: S1COR.get(dw1) as u8,
            s1csh: S1CSH.get(dw1) as u8,
            mev: MEV.is_set(dw1),
            s2fwb: S2FWB.is_set(dw1),
            s1stalld: S1STALLD.is_set(dw1),
            eats: EATS.get(dw1) as u8,
            strw: STRW.get(dw1) as u8,
            shcfg: SHCFG.get(dw1) as u8,
            s2vmid: S2VMID.get(dw2) as u16,
            vtcr: Vtcr::decode(VTCR.get(dw2)),
            s2aa64: S2AA64.is_set(dw2),
            s2endi: S2ENDI.is_set(dw2),
            s2affd: S2AFFD.is_set(dw2),
            s2ptw: S2PTW.is_set(dw2),
            s2hd: S2HD.is_set(dw2),
            s2ha: S2HA.is_set(dw2),
            s2s: S2S.is_set(dw2),
            s2r: S2R.is_set(dw2),
            s2ttb: PhysAddr(S2TTB.of(dw3)),
            other: unnamed(words, &NAMED),
        };
        if config.s1_enabled() {
            if CdTableFormat::from_code(e.s1fmt).is_none() {
                return Err(ste.illegal("S1Fmt", e.s1fmt as u64));
            }
            if e.s1cdmax as u64 > MAX_S1CDMAX {
                return Err(ste.illegal("S1CDMax", e.s1cdmax as u64));
            }
            if e.s1cdmax > 0 && S1Dss::from_code(e.s1dss).is_none() {
                return Err(ste.illegal("S1DSS", e.s1dss as u64));
            }
        }
        if config.s2_enabled() {
            if !e.s2aa64 {
                return Err(ste.illegal("S2AA64", 0));
            }
            if let Err(err) = e.vtcr.check() {
                return Err(err);
            }
            if let Some(bits) = address_size_bits(e.vtcr.ps as u64)
                && e.s2ttb.0 >> bits != 0
            {
                return Err(ste.illegal("S2TTB", e.s2ttb.0));
            }
        }
        if (config.s1_enabled() || config.s2_enabled()) && e.eats == 0b11 {
            return Err(ste.illegal("EATS", 0b11));
        }
        Ok(e)
    }

    /// The stage-1 CD table this STE points to, if stage 1 is enabled.
    ///
    /// ```
    /// use pgtable_core::PhysAddr;
    /// use smmu_format::{CdTableFormat, StreamTableEntry, SteConfig};
    /// let ste = StreamTableEntry {
    ///     valid: true,
    ///     config: SteConfig::S1Translate,
    ///     s1fmt: 2,
    ///     s1cdmax: 20,
    ///     s1_context_ptr: PhysAddr(0x8000),
    ///     ..Default::default()
    /// };
    /// let table = ste.cd_table().unwrap();
    /// assert_eq!((table.format, table.s1cdmax), (CdTableFormat::TwoLevel64K, 20));
    /// ```
    pub const fn cd_table(&self) -> Option<CdTable> {
        match CdTableFormat::from_code(self.s1fmt) {
            Some(format) if self.config.s1_enabled() => Some(CdTable {
                base: PhysAddr(S1CTXPTR.of(self.s1_context_ptr.0)),
                format,
                s1cdmax: self.s1cdmax,
            }),
            _ => None,
        }
    }

    /// The SubstreamID whose CD a transaction uses: its own `ssid`, or for a
    /// transaction without one, 0 when the CD table has a single CD, else as S1DSS says
    /// (`None`: bypass stage 1).
    ///
    /// # Errors
    /// [`DecodeError::BadSubstreamId`] (C_BAD_SUBSTREAMID) for a SubstreamID at or above
    /// 2^S1CDMax, any SubstreamID with S1CDMax = 0, and SubstreamID 0 with S1DSS =
    /// 0b10; [`DecodeError::StreamDisabled`] (F_STREAM_DISABLED) for a transaction
    /// without SubstreamID and S1DSS = 0b00 (docs/formats.md §8.4 ⚠: QEMU aborts silently).
    ///
    /// ```
    /// use smmu_format::{DecodeError, EventId, StreamTableEntry, SteConfig};
    /// let ste = StreamTableEntry { valid: true, config: SteConfig::S1Translate, s1cdmax: 4, s1dss: 2, ..Default::default() };
    /// assert_eq!(ste.substream(None), Ok(Some(0)));
    /// assert_eq!(ste.substream(Some(15)), Ok(Some(15)));
    /// assert_eq!(ste.substream(Some(16)).unwrap_err().event(), Some(EventId::CBadSubstreamId));
    /// assert_eq!(ste.substream(Some(0)), Err(DecodeError::BadSubstreamId(0)));
    /// ```
    pub const fn substream(&self, ssid: Option<u32>) -> Result<Option<u32>, DecodeError> {
        match ssid {
            Some(ssid) => {
                let zero_taken = self.s1cdmax > 0 && self.s1dss == S1Dss::Substream0 as u8;
                if self.s1cdmax == 0 || ssid >> self.s1cdmax != 0 || (ssid == 0 && zero_taken) {
                    Err(DecodeError::BadSubstreamId(ssid))
                } else {
                    Ok(Some(ssid))
                }
            }
            None if self.s1cdmax == 0 => Ok(Some(0)),
            None => match S1Dss::from_code(self.s1dss) {
                Some(S1Dss::Terminate) | None => Err(DecodeError::StreamDisabled),
                Some(S1Dss::Bypass) => Ok(None),
                Some(S1Dss::Substream0) => Ok(Some(0)),
            },
        }
    }
}

impl ArmS2 {
    /// The S2SL0 encoding of the start level: with 4K, 0/1/2 = L2/L1/L0; with 16K and
    /// 64K, 0/1/2 = L3/L2/L1. Never 3: concatenation keeps the start level encodable.
    ///
    /// ```
    /// use smmu_format::{ArmConfig, ArmS2};
    /// assert_eq!(ArmS2::new(ArmConfig::new(4096, 40, 48))?.s2sl0(), 1);
    /// assert_eq!(ArmS2::new(ArmConfig::new(16384, 48, 48))?.s2sl0(), 2);
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub fn s2sl0(&self) -> u64 {
        let start = self.shape().start_level() as u64;
        match self.granule() {
            Granule::K4 => 2 - start,
            Granule::K16 | Granule::K64 => 3 - start,
        }
    }

    /// The stage-2 translation controls of this table: S2T0SZ, S2SL0, the walk
    /// attributes (see [`crate::ArmS1::tcr`]), S2TG and S2PS.
    ///
    /// ```
    /// use smmu_format::{ArmConfig, ArmS2};
    /// let v = ArmS2::new(ArmConfig::new(4096, 40, 48))?.vtcr_fields(true);
    /// assert_eq!((v.t0sz, v.sl0, v.ps), (24, 1, 5));
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub fn vtcr_fields(&self, coherent: bool) -> Vtcr {
        let cfg = self.config();
        let walk = walk_attributes(coherent);
        Vtcr {
            t0sz: (64 - cfg.ias) as u8,
            sl0: self.s2sl0() as u8,
            irgn0: walk.irgn,
            orgn0: walk.orgn,
            sh0: walk.sh,
            tg: self.granule().tg() as u8,
            ps: address_size_encoding(cfg.oas).expect("validated output size") as u8,
        }
    }

    /// The 19-bit VTCR field of STE dword 2 (the C API's `regs[1]`): S2T0SZ, S2SL0,
    /// S2IR0, S2OR0, S2SH0, S2TG and S2PS.
    ///
    /// ```
    /// use smmu_format::{ArmConfig, ArmS2};
    /// let s2 = ArmS2::new(ArmConfig::new(4096, 40, 48))?;
    /// assert_eq!(s2.vtcr(true), 0x53558);
    /// assert_eq!(s2.vtcr(false), 0x52058);
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub fn vtcr(&self, coherent: bool) -> u64 {
        self.vtcr_fields(coherent).encode()
    }

    /// The stream table entry Linux writes for this table at `s2ttb` with `vmid`: V and
    /// Config = stage-2 only; the VMID, the [`vtcr`](ArmS2::vtcr), S2AA64, S2PTW and
    /// S2R; S2TTB; nothing else (no ATS, no SHCFG override). `s2ttb` must be aligned
    /// to the (concatenated) top table's size.
    ///
    /// ```
    /// use pgtable_core::PhysAddr;
    /// use smmu_format::{ArmConfig, ArmS2, SteConfig};
    /// let s2 = ArmS2::new(ArmConfig::new(4096, 40, 48))?;
    /// let ste = s2.ste(PhysAddr(0x4000_0000), 1, true);
    /// assert_eq!((ste.config, ste.s2vmid), (SteConfig::S2Translate, 1));
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub fn ste(&self, s2ttb: PhysAddr, vmid: u16, coherent: bool) -> StreamTableEntry {
        StreamTableEntry {
            valid: true,
            config: SteConfig::S2Translate,
            s2vmid: vmid,
            vtcr: self.vtcr_fields(coherent),
            s2aa64: true,
            s2ptw: true,
            s2r: true,
            s2ttb,
            ..Default::default()
        }
    }

    /// The 64-byte stream table entry Linux writes for this table at `s2ttb` with
    /// `vmid` ([`ArmS2::ste`] encoded): dword 0 V and Config = stage-2 only; dword 2 the
    /// VMID, the VTCR, S2AA64, S2PTW and S2R; dword 3 S2TTB (bits 51:4 of `s2ttb`); the
    /// other dwords 0.
    ///
    /// ```
    /// use pgtable_core::PhysAddr;
    /// use smmu_format::{ArmConfig, ArmS2};
    /// let s2 = ArmS2::new(ArmConfig::new(4096, 40, 48))?;
    /// let ste = s2.stream_table_entry(PhysAddr(0x4000_0000), 1, true);
    /// assert_eq!(ste, [0xD, 0, 0x044D_3558_0000_0001, 0x4000_0000, 0, 0, 0, 0]);
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub fn stream_table_entry(&self, s2ttb: PhysAddr, vmid: u16, coherent: bool) -> [u64; 8] {
        self.ste(s2ttb, vmid, coherent).encode()
    }
}

#[cfg(test)]
mod tests {
    use crate::{ArmConfig, ArmS2};

    #[test]
    fn vtcr_per_granule() {
        let s2 = |g, ias, oas| ArmS2::new(ArmConfig::new(g, ias, oas)).unwrap();
        // 16K ias 48: L1 x 2, SL0 2, TG 2.
        assert_eq!(
            s2(16384, 48, 48).vtcr(true),
            16 | (2 << 6) | 0x3500 | (2 << 14) | (5 << 16)
        );
        // 64K ias 42: L2, SL0 1, TG 1, PS 52-bit.
        assert_eq!(
            s2(65536, 42, 52).vtcr(true),
            22 | (1 << 6) | 0x3500 | (1 << 14) | (6 << 16)
        );
        // 4K ias 48: L0, SL0 2.
        assert_eq!(s2(4096, 48, 48).s2sl0(), 2);
        assert_eq!(s2(4096, 32, 32).s2sl0(), 1);
        assert_eq!(s2(16384, 32, 32).s2sl0(), 1);
        assert!(s2(65536, 52, 52).vtcr(true) < 1 << 19);
    }

    /// Every stage-2 configuration this crate builds passes the SMMU's VTCR checks.
    #[test]
    fn every_built_vtcr_is_legal() {
        for g in [4096, 16384, 65536] {
            let max = if g == 65536 { 52 } else { 48 };
            for ias in 32..=max {
                let s2 = ArmS2::new(ArmConfig::new(g, ias, max)).unwrap();
                assert_eq!(s2.vtcr_fields(true).check(), Ok(()), "{g} {ias}");
            }
        }
    }
}
