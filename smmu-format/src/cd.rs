//! The SMMUv3 context descriptor (64 bytes): a stage-1 translation's tables, controls and
//! ASID (docs/formats.md §3.9, §8.4). [`ArmS1::context_descriptor`] is the CD Linux's
//! `arm_smmu_make_s1_cd` writes for a stage-1 table.

use crate::descriptor::mask;
use crate::error::{DecodeError, Structure};
use crate::field::{Bits, unnamed, with_unnamed};
use crate::format::ArmS1;
use crate::geometry::{Granule, address_size_bits, address_size_encoding};
use crate::stage1::MAIR;
use pgtable_core::PhysAddr;

/// A CD's size.
pub const CD_SIZE: u64 = 64;

/// Dword 0 bits 5:0, T0SZ: `64 - ias`.
pub const CD0_T0SZ_SHIFT: u32 = 0;
/// Dword 0 bits 7:6, TG0 (0 = 4K, 1 = 64K, 2 = 16K).
pub const CD0_TG0_SHIFT: u32 = 6;
/// Dword 0 bits 9:8, IRGN0: inner cacheability of table walks (1 = WBWA, 0 = NC).
pub const CD0_IRGN0_SHIFT: u32 = 8;
/// Dword 0 bits 11:10, ORGN0: outer cacheability of table walks.
pub const CD0_ORGN0_SHIFT: u32 = 10;
/// Dword 0 bits 13:12, SH0: shareability of table walks (3 = inner, 2 = outer).
pub const CD0_SH0_SHIFT: u32 = 12;
/// Dword 0 bit 30, EPD1: no TTB1 walks.
pub const CD0_EPD1: u64 = 1 << 30;
/// Dword 0 bit 31, V: valid.
pub const CD0_V: u64 = 1 << 31;
/// Dword 0 bits 34:32, IPS: output size (see [`address_size_encoding`]).
pub const CD0_IPS_SHIFT: u32 = 32;
/// Dword 0 bit 41, AA64: VMSAv8-64 tables.
pub const CD0_AA64: u64 = 1 << 41;
/// Dword 0 bit 45, R: record faults.
pub const CD0_R: u64 = 1 << 45;
/// Dword 0 bit 46, A: abort (rather than RAZ/WI) on faults.
pub const CD0_A: u64 = 1 << 46;
/// Dword 0 bit 47, ASET: the ASID is not shared with a CPU.
pub const CD0_ASET: u64 = 1 << 47;
/// Dword 0 bits 63:48, ASID.
pub const CD0_ASID_SHIFT: u32 = 48;
/// Dword 1 bits 51:4, TTB0: a plain physical address (no 52-bit packing).
pub const CD1_TTB0_MASK: u64 = mask(51, 4);

/// One translation table's fields in dword 0, at TTB0's positions; TTB1's are 16 bits
/// higher.
const TSZ: Bits = Bits::new(5, 0);
const TG: Bits = Bits::new(7, 6);
const IRGN: Bits = Bits::new(9, 8);
const ORGN: Bits = Bits::new(11, 10);
const SH: Bits = Bits::new(13, 12);
const EPD: Bits = Bits::bit(14);
/// How far TTB1's dword-0 fields are above TTB0's.
const TT1_SHIFT: u32 = 16;
// The rest of dword 0.
const ENDI: Bits = Bits::bit(15);
const V: Bits = Bits::bit(31);
const IPS: Bits = Bits::new(34, 32);
const AFFD: Bits = Bits::bit(35);
const TBI: Bits = Bits::new(39, 38);
const AA64: Bits = Bits::bit(41);
const HD: Bits = Bits::bit(42);
const HA: Bits = Bits::bit(43);
const S: Bits = Bits::bit(44);
const R: Bits = Bits::bit(45);
const A: Bits = Bits::bit(46);
const ASET: Bits = Bits::bit(47);
const ASID: Bits = Bits::new(63, 48);
/// Dwords 1 (TTB0) and 2 (TTB1): NSCFG 0, HAD 1, TTB 51:4.
const NSCFG: Bits = Bits::bit(0);
const HAD: Bits = Bits::bit(1);
const TTB: Bits = Bits::new(51, 4);

/// The dword-0 bits of one translation table's fields (at TTB0's positions).
const TT_DW0: u64 = TSZ.mask() | TG.mask() | IRGN.mask() | ORGN.mask() | SH.mask() | EPD.mask();
/// The dword-1/2 bits of one translation table.
const TT_DWN: u64 = NSCFG.mask() | HAD.mask() | TTB.mask();

/// The bits of each dword [`ContextDescriptor`] names; the rest is kept in
/// [`ContextDescriptor::other`].
const NAMED: [u64; 8] = [
    TT_DW0
        | TT_DW0 << TT1_SHIFT
        | ENDI.mask()
        | V.mask()
        | IPS.mask()
        | AFFD.mask()
        | TBI.mask()
        | mask(47, 41)
        | ASID.mask(),
    TT_DWN,
    TT_DWN,
    u64::MAX,
    0,
    0,
    0,
    0,
];

/// Cacheability and shareability of table walks: the IRGN, ORGN and SH fields of a CD
/// translation table and of the STE's VTCR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct WalkAttributes {
    /// Inner cacheability: 0 NC, 1 WBWA.
    pub(crate) irgn: u8,
    /// Outer cacheability.
    pub(crate) orgn: u8,
    /// Shareability: 2 outer, 3 inner.
    pub(crate) sh: u8,
}

/// Linux's walk attributes: write-back write-allocate, inner shareable when walks are
/// coherent; non-cacheable, outer shareable otherwise.
pub(crate) const fn walk_attributes(coherent: bool) -> WalkAttributes {
    if coherent {
        WalkAttributes {
            irgn: 1,
            orgn: 1,
            sh: 3,
        }
    } else {
        WalkAttributes {
            irgn: 0,
            orgn: 0,
            sh: 2,
        }
    }
}

/// One of a CD's two translation tables: TTB0 for the lower input range, TTB1 for the
/// upper (sign-extended) one. Field encodings are raw; TTB1's TG differs from TTB0's
/// (see [`ContextDescriptor::granule`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CdTranslationTable {
    /// T0SZ / T1SZ: `64 - input bits`.
    pub tsz: u8,
    /// TG0 (0 = 4K, 1 = 64K, 2 = 16K) / TG1 (1 = 16K, 2 = 4K, 3 = 64K).
    pub tg: u8,
    /// IR0 / IR1: inner cacheability of walks (0 NC, 1 WBWA, 2 WT, 3 WB).
    pub irgn: u8,
    /// OR0 / OR1: outer cacheability of walks.
    pub orgn: u8,
    /// SH0 / SH1: shareability of walks (0 NS, 2 OS, 3 IS).
    pub sh: u8,
    /// EPD0 / EPD1: walks of this table are disabled (translation faults).
    pub epd: bool,
    /// TTB0 / TTB1 (`dw1[51:4]` / `dw2[51:4]`): the start table (an IPA when nested);
    /// bits outside 51:4 are not encoded.
    pub ttb: PhysAddr,
    /// HAD0 / HAD1 (`dw1[1]` / `dw2[1]`): hierarchical attributes disabled (position
    /// from QEMU only, docs/formats.md §6 #12 ⚠).
    pub had: bool,
    /// NSCFG0 / NSCFG1 (`dw1[0]` / `dw2[0]`): walks are non-secure (secure streams
    /// only; position from QEMU's CD layout only ⚠).
    pub nscfg: bool,
}

impl CdTranslationTable {
    /// The dword-0 fields at TTB0's positions.
    const fn dw0(&self) -> u64 {
        TSZ.put(self.tsz as u64)
            | TG.put(self.tg as u64)
            | IRGN.put(self.irgn as u64)
            | ORGN.put(self.orgn as u64)
            | SH.put(self.sh as u64)
            | EPD.flag(self.epd)
    }

    /// The TTB dword.
    const fn dwn(&self) -> u64 {
        NSCFG.flag(self.nscfg) | HAD.flag(self.had) | TTB.of(self.ttb.0)
    }

    /// The fields of `dw0` (at TTB0's positions) and the TTB dword `dwn`.
    const fn decode(dw0: u64, dwn: u64) -> Self {
        CdTranslationTable {
            tsz: TSZ.get(dw0) as u8,
            tg: TG.get(dw0) as u8,
            irgn: IRGN.get(dw0) as u8,
            orgn: ORGN.get(dw0) as u8,
            sh: SH.get(dw0) as u8,
            epd: EPD.is_set(dw0),
            ttb: PhysAddr(TTB.of(dwn)),
            had: HAD.is_set(dwn),
            nscfg: NSCFG.is_set(dwn),
        }
    }
}

/// A context descriptor (64 bytes), field by field.
///
/// Fields hold their raw encodings. Bits the type does not name (WXN, UWXN, PAN, the
/// AMAIR, IMPLEMENTATION DEFINED and MPAM words) are kept in
/// [`ContextDescriptor::other`], so `decode` then `encode` gives back the same words.
///
/// ```
/// use pgtable_core::PhysAddr;
/// use smmu_format::{CdTranslationTable, ContextDescriptor};
/// // docs/formats.md §5.3: 4K granule, IAS 48, TTB0 0x3000_0000, ASID 1, coherent walks.
/// let cd = ContextDescriptor {
///     valid: true,
///     tt0: CdTranslationTable { tsz: 16, irgn: 1, orgn: 1, sh: 3, ttb: PhysAddr(0x3000_0000), ..Default::default() },
///     tt1: CdTranslationTable { epd: true, ..Default::default() },
///     ips: 5,
///     aa64: true,
///     r: true,
///     a: true,
///     aset: true,
///     asid: 1,
///     mair: 0xF404_FF44,
///     ..Default::default()
/// };
/// let words = [0x0001_E205_C000_3510, 0x3000_0000, 0, 0xF404_FF44, 0, 0, 0, 0];
/// assert_eq!(cd.encode(), words);
/// assert_eq!(ContextDescriptor::decode(words), Ok(cd));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ContextDescriptor {
    /// V (`dw0[31]`).
    pub valid: bool,
    /// TTB0's fields: T0SZ, TG0, IR0, OR0, SH0, EPD0 (`dw0[14:0]`), TTB0, HAD0, NSCFG0
    /// (`dw1`).
    pub tt0: CdTranslationTable,
    /// TTB1's fields: T1SZ, TG1, IR1, OR1, SH1, EPD1 (`dw0[30:16]`), TTB1, HAD1, NSCFG1
    /// (`dw2`).
    pub tt1: CdTranslationTable,
    /// ENDI (`dw0[15]`): big-endian tables.
    pub endi: bool,
    /// IPS (`dw0[34:32]`): the output size ([`crate::address_size_bits`]).
    pub ips: u8,
    /// AFFD (`dw0[35]`): access-flag faults disabled.
    pub affd: bool,
    /// TBI (`dw0[39:38]`): top-byte ignore for TTB0 (bit 38) and TTB1 (bit 39).
    pub tbi: u8,
    /// AA64 (`dw0[41]`): VMSAv8-64 tables.
    pub aa64: bool,
    /// HD (`dw0[42]`): hardware dirty-state updates.
    pub hd: bool,
    /// HA (`dw0[43]`): hardware access-flag updates.
    pub ha: bool,
    /// S (`dw0[44]`): faults stall.
    pub s: bool,
    /// R (`dw0[45]`): faults are recorded.
    pub r: bool,
    /// A (`dw0[46]`): faults abort (rather than RAZ/WI).
    pub a: bool,
    /// ASET (`dw0[47]`): the ASID is not shared with a CPU.
    pub aset: bool,
    /// ASID (`dw0[63:48]`).
    pub asid: u16,
    /// MAIR (`dw3`): MAIR0 in bits 31:0, MAIR1 in 63:32.
    pub mair: u64,
    /// The bits of each dword no field above names, as they are.
    pub other: [u64; 8],
}

impl ContextDescriptor {
    /// The eight dwords, `dw0` first. Fields wider than their bit ranges are truncated.
    pub const fn encode(&self) -> [u64; 8] {
        let dw0 = self.tt0.dw0()
            | self.tt1.dw0() << TT1_SHIFT
            | ENDI.flag(self.endi)
            | V.flag(self.valid)
            | IPS.put(self.ips as u64)
            | AFFD.flag(self.affd)
            | TBI.put(self.tbi as u64)
            | AA64.flag(self.aa64)
            | HD.flag(self.hd)
            | HA.flag(self.ha)
            | S.flag(self.s)
            | R.flag(self.r)
            | A.flag(self.a)
            | ASET.flag(self.aset)
            | ASID.put(self.asid as u64);
        with_unnamed(
            [dw0, self.tt0.dwn(), self.tt1.dwn(), self.mair, 0, 0, 0, 0],
            &self.other,
            &NAMED,
        )
    }

    /// The descriptor `words`, checked for what makes a CD invalid or ILLEGAL
    /// regardless of the SMMU's features: V = 0; AA64 = 0 (AArch32 descriptors are not
    /// modelled, as in QEMU); IPS = 7; and for each table whose walks are enabled, a
    /// reserved TG, a TxSZ outside 16..=39 (12..=15 only with the 64K granule, for
    /// 52-bit inputs), or a TTB at or beyond the IPS. What depends on the SMMU's ID
    /// registers (HTTU for HA/HD, stalls, big-endian walks, VAX, OAS) is the caller's
    /// to check.
    ///
    /// # Errors
    /// [`DecodeError::Invalid`] or [`DecodeError::Illegal`] of the
    /// [`Structure::ContextDescriptor`]: C_BAD_CD.
    pub const fn decode(words: [u64; 8]) -> Result<Self, DecodeError> {
        let dw0 = words[0];
        let cd = Structure::ContextDescriptor;
        if !V.is_set(dw0) {
            return Err(DecodeError::Invalid { structure: cd });
        }
        let d = ContextDescriptor {
            valid: true,
            tt0: CdTranslationTable::decode(dw0, words[1]),
            tt1: CdTranslationTable::decode(dw0 >> TT1_SHIFT, words[2]),
            endi: ENDI.is_set(dw0),
            ips: IPS.get(dw0) as u8,
            affd: AFFD.is_set(dw0),
            tbi: TBI.get(dw0) as u8,
            aa64: AA64.is_set(dw0),
            hd: HD.is_set(dw0),
            ha: HA.is_set(dw0),
            s: S.is_set(dw0),
            r: R.is_set(dw0),
            a: A.is_set(dw0),
            aset: ASET.is_set(dw0),
            asid: ASID.get(dw0) as u16,
            mair: words[3],
            other: unnamed(words, &NAMED),
        };
        if !d.aa64 {
            return Err(cd.illegal("AA64", 0));
        }
        let Some(oa_bits) = address_size_bits(d.ips as u64) else {
            return Err(cd.illegal("IPS", d.ips as u64));
        };
        let tables = [
            (d.tt0, ["TG0", "T0SZ", "TTB0"]),
            (d.tt1, ["TG1", "T1SZ", "TTB1"]),
        ];
        let mut t = 0;
        while t < 2 {
            let (tt, [tg, tsz, ttb]) = tables[t];
            if !tt.epd {
                let Some(granule) = d.granule(t) else {
                    return Err(cd.illegal(tg, tt.tg as u64));
                };
                let min_tsz = if matches!(granule, Granule::K64) {
                    12
                } else {
                    16
                };
                if tt.tsz < min_tsz || tt.tsz > 39 {
                    return Err(cd.illegal(tsz, tt.tsz as u64));
                }
                if tt.ttb.0 >> oa_bits != 0 {
                    return Err(cd.illegal(ttb, tt.ttb.0));
                }
            }
            t += 1;
        }
        Ok(d)
    }

    /// The granule of translation table `table` (0: TTB0, 1: TTB1), whose TG fields
    /// encode it differently; `None` for a reserved TG (or a `table` above 1).
    ///
    /// ```
    /// use smmu_format::{CdTranslationTable, ContextDescriptor, Granule};
    /// let cd = ContextDescriptor {
    ///     tt0: CdTranslationTable { tg: 2, ..Default::default() },
    ///     tt1: CdTranslationTable { tg: 2, ..Default::default() },
    ///     ..Default::default()
    /// };
    /// assert_eq!((cd.granule(0), cd.granule(1)), (Some(Granule::K16), Some(Granule::K4)));
    /// ```
    pub const fn granule(&self, table: usize) -> Option<Granule> {
        match (table, self.tt0.tg, self.tt1.tg) {
            (0, tg, _) => Granule::from_tg(tg as u64),
            (1, _, 1) => Some(Granule::K16),
            (1, _, 2) => Some(Granule::K4),
            (1, _, 3) => Some(Granule::K64),
            _ => None,
        }
    }
}

impl ArmS1 {
    /// The context descriptor Linux writes for this table at `ttb0` with `asid`: TTB0's
    /// T0SZ, TG0, walk attributes and address; EPD1 (no TTB1); V, IPS, AA64, R, A, ASET
    /// and the ASID; the [`MAIR`]. `coherent` selects the walk attributes: WBWA and inner
    /// shareable, else non-cacheable and outer shareable. `ttb0` must be aligned to the
    /// top table's size.
    ///
    /// ```
    /// use pgtable_core::PhysAddr;
    /// use smmu_format::{ArmConfig, ArmS1};
    /// let s1 = ArmS1::new(ArmConfig::new(16384, 47, 48))?;
    /// let cd = s1.cd(PhysAddr(0x3100_0000), 1, true);
    /// assert_eq!((cd.tt0.tsz, cd.tt0.tg, cd.tt1.epd), (17, 2, true)); // docs/formats.md §5.4
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub fn cd(&self, ttb0: PhysAddr, asid: u16, coherent: bool) -> ContextDescriptor {
        ContextDescriptor {
            valid: true,
            tt0: self.tt0(ttb0, coherent),
            tt1: CdTranslationTable {
                epd: true,
                ..Default::default()
            },
            ips: self.ips(),
            aa64: true,
            r: true,
            a: true,
            aset: true,
            asid,
            mair: MAIR,
            ..Default::default()
        }
    }

    /// TTB0's fields for this table at `ttb0`.
    fn tt0(&self, ttb0: PhysAddr, coherent: bool) -> CdTranslationTable {
        let walk = walk_attributes(coherent);
        CdTranslationTable {
            tsz: (64 - self.config().ias) as u8,
            tg: self.granule().tg() as u8,
            irgn: walk.irgn,
            orgn: walk.orgn,
            sh: walk.sh,
            ttb: ttb0,
            ..Default::default()
        }
    }

    /// The IPS encoding of the output size.
    fn ips(&self) -> u8 {
        address_size_encoding(self.config().oas).expect("validated output size") as u8
    }

    /// The translation-control fields of CD dword 0 for this table: T0SZ, TG0,
    /// IRGN0, ORGN0, SH0 and IPS at their dword-0 positions, nothing else (the C API's
    /// `regs[1]`).
    ///
    /// ```
    /// use smmu_format::{ArmConfig, ArmS1};
    /// let s1 = ArmS1::new(ArmConfig::new(4096, 48, 48))?;
    /// assert_eq!(s1.tcr(true), 0x5_0000_3510);
    /// assert_eq!(s1.tcr(false), 0x5_0000_2010);
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub fn tcr(&self, coherent: bool) -> u64 {
        let fields = ContextDescriptor {
            tt0: self.tt0(PhysAddr(0), coherent),
            ips: self.ips(),
            ..Default::default()
        };
        fields.encode()[0]
    }

    /// The 64-byte context descriptor Linux writes for this table at `ttb0` with
    /// `asid` ([`ArmS1::cd`] encoded): dword 0 the [`tcr`](ArmS1::tcr) fields with
    /// EPD1, V, AA64, R, A, ASET and the ASID; dword 1 TTB0 (bits 51:4 of `ttb0`);
    /// dword 3 the [`MAIR`]; the other dwords 0.
    ///
    /// ```
    /// use pgtable_core::PhysAddr;
    /// use smmu_format::{ArmConfig, ArmS1};
    /// let s1 = ArmS1::new(ArmConfig::new(4096, 48, 48))?;
    /// let cd = s1.context_descriptor(PhysAddr(0x3000_0000), 1, true);
    /// assert_eq!(cd, [0x0001_E205_C000_3510, 0x3000_0000, 0, 0xF404_FF44, 0, 0, 0, 0]);
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub fn context_descriptor(&self, ttb0: PhysAddr, asid: u16, coherent: bool) -> [u64; 8] {
        self.cd(ttb0, asid, coherent).encode()
    }
}

#[cfg(test)]
mod tests {
    use crate::{ArmConfig, ArmS1};
    use pgtable_core::PhysAddr;

    #[test]
    fn tcr_fields_per_granule() {
        let tcr = |g, ias, oas| ArmS1::new(ArmConfig::new(g, ias, oas)).unwrap().tcr(true);
        // §5.4: 16K, ias 47: T0SZ 17, TG0 2.
        assert_eq!(tcr(16384, 47, 48) & 0xFF, 17 | (2 << 6));
        // §5.5: 64K, 52-bit PA: TG0 1, IPS 6.
        assert_eq!(tcr(65536, 48, 52), 16 | (1 << 6) | 0x3500 | (6 << 32));
        assert_eq!(tcr(65536, 52, 52) & 0x3F, 12);
        assert_eq!(tcr(4096, 32, 42) >> 32, 3);
    }

    #[test]
    fn non_coherent_descriptor() {
        let s1 = ArmS1::new(ArmConfig::new(4096, 48, 48)).unwrap();
        let cd = s1.context_descriptor(PhysAddr(0x3000_0000), 0xABCD, false);
        assert_eq!(cd[0], 0xABCD_E205_C000_2010);
        assert_eq!(cd[1], 0x3000_0000);
    }

    /// Every descriptor this crate builds passes the SMMU's checks.
    #[test]
    fn every_built_cd_decodes() {
        for g in [4096, 16384, 65536] {
            let max = if g == 65536 { 52 } else { 48 };
            for ias in 32..=max {
                let s1 = ArmS1::new(ArmConfig::new(g, ias, max)).unwrap();
                let cd = s1.cd(PhysAddr(0x1_0000), 1, ias % 2 == 0);
                assert_eq!(
                    super::ContextDescriptor::decode(cd.encode()),
                    Ok(cd),
                    "{g} {ias}"
                );
            }
        }
    }
}
