//! The scalable-mode PASID tables: the PASID directory (indexed by PASID\[19:6\]) and
//! the PASID tables it points to (indexed by PASID\[5:0\]), whose 512-bit entries
//! select the first- and/or second-stage tables (docs/formats.md §1.2, §2.1, §8.2).

use crate::agaw::Agaw;
use crate::bits::{bit, field, flag, mask, pointer_above_haw, with_bit, with_field};
use crate::error::{DecodeError, Structure};
use pgtable_core::PhysAddr;

/// Bits of a PASID.
pub const PASID_BITS: u32 = 20;
/// A PASID-directory entry's size.
pub const PASID_DIR_ENTRY_SIZE: u64 = 8;
/// A PASID-table entry's size.
pub const PASID_ENTRY_SIZE: u64 = 64;

/// Present (bit 0 of the directory entry and of the PASID entry's first word).
const P: u32 = 0;
/// Fault processing disable (bit 1, both).
const FPD: u32 = 1;
/// A 4 KiB-aligned table pointer field, bits 63:12.
const PTR: u64 = mask(63, 12);
/// Directory entry bits 11:2 are reserved.
const DIR_RSVD: u64 = mask(11, 2);

/// `val[0]`: AW 4:2, PGTT 8:6, SSADE 9, reserved 11:10, SSPTPTR 63:12.
const AW_H: u32 = 4;
const AW_L: u32 = 2;
const PGTT_H: u32 = 8;
const PGTT_L: u32 = 6;
const SSADE: u32 = 9;
const RSVD0: u64 = mask(11, 10);
/// `val[1]`: DID 15:0, reserved 22:16, PWSNP 23, PGSNP 24 (then memory-type controls).
const RSVD1: u64 = mask(22, 16);
const PWSNP: u32 = 23;
const PGSNP: u32 = 24;
/// `val[2]`: SRE 0, FSPM 3:2, WPE 4, EAFE 7, reserved 11:8, FSPTPTR 63:12.
const SRE: u32 = 0;
const FSPM_H: u32 = 3;
const FSPM_L: u32 = 2;
const WPE: u32 = 4;
const EAFE: u32 = 7;
const RSVD2: u64 = mask(11, 8);

/// The PASID-directory index of `pasid`: PASID\[19:6\].
///
/// ```
/// assert_eq!(vtd_format::pasid_dir_index(0xA_BCDE), 0x2AF3);
/// ```
pub const fn pasid_dir_index(pasid: u32) -> usize {
    field(pasid as u64, PASID_BITS - 1, 6) as usize
}

/// The byte offset of `pasid`'s entry in the PASID directory.
///
/// ```
/// assert_eq!(vtd_format::pasid_dir_entry_offset(0xA_BCDE), 0x1_5798);
/// ```
pub const fn pasid_dir_entry_offset(pasid: u32) -> u64 {
    pasid_dir_index(pasid) as u64 * PASID_DIR_ENTRY_SIZE
}

/// The PASID-table index of `pasid`: PASID\[5:0\].
///
/// ```
/// assert_eq!(vtd_format::pasid_table_index(0xA_BCDE), 0x1E);
/// ```
pub const fn pasid_table_index(pasid: u32) -> usize {
    (pasid & 0x3f) as usize
}

/// The byte offset of `pasid`'s entry in its PASID table.
///
/// ```
/// assert_eq!(vtd_format::pasid_entry_offset(0xA_BCDE), 0x780);
/// ```
pub const fn pasid_entry_offset(pasid: u32) -> u64 {
    pasid_table_index(pasid) as u64 * PASID_ENTRY_SIZE
}

/// A PASID-directory entry (64 bits): P, FPD and the PASID table of 64 PASIDs.
///
/// ```
/// use pgtable_core::PhysAddr;
/// use vtd_format::PasidDirEntry;
/// let de = PasidDirEntry { present: true, fpd: true, table: PhysAddr(0x7_0000) };
/// assert_eq!(de.encode(), 0x7_0003);
/// assert_eq!(PasidDirEntry::decode(0x7_0003, 48), Ok(de));
/// assert_eq!(de.pasid_entry(0x41), PhysAddr(0x7_0040));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PasidDirEntry {
    /// P: the PASID table exists.
    pub present: bool,
    /// FPD: qualified faults of these PASIDs are not recorded (honoured even when P=0).
    pub fpd: bool,
    /// The 4 KiB-aligned PASID table; its low 12 bits are not encoded.
    pub table: PhysAddr,
}

impl PasidDirEntry {
    /// The 64-bit entry.
    pub const fn encode(&self) -> u64 {
        (self.table.0 & PTR) | flag(self.fpd, FPD) | flag(self.present, P)
    }

    /// The entry `word` of an IOMMU with host address width `haw`. A not-present
    /// entry is returned with its FPD (the hardware reads FPD before P).
    ///
    /// # Errors
    /// [`DecodeError::Reserved`] (fault 0x52) when a present entry has bits 11:2 or
    /// bits of the pointer at or above `haw` set.
    pub const fn decode(word: u64, haw: u32) -> Result<Self, DecodeError> {
        let de = PasidDirEntry {
            present: bit(word, P),
            fpd: bit(word, FPD),
            table: PhysAddr(word & PTR),
        };
        let bits = word & (DIR_RSVD | pointer_above_haw(haw));
        if de.present && bits != 0 {
            return Err(Structure::PasidDirEntry.reserved(0, bits));
        }
        Ok(de)
    }

    /// Where the PASID entry of `pasid` lies in this entry's table.
    pub const fn pasid_entry(&self, pasid: u32) -> PhysAddr {
        PhysAddr((self.table.0 & PTR) + pasid_entry_offset(pasid))
    }
}

/// PASID-granular translation type (PGTT, PASID entry `val[0][8:6]`): which tables
/// requests with this PASID go through. Other codes are reserved (fault 0x5B).
///
/// ```
/// use vtd_format::Pgtt;
/// assert_eq!(Pgtt::Nested as u8, 0b011);
/// assert_eq!(Pgtt::from_code(0b100), Some(Pgtt::PassThrough));
/// assert_eq!(Pgtt::from_code(0), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Pgtt {
    /// 001: first stage only (FSPTPTR is a host address; needs ECAP.FSTS).
    FirstStage = 0b001,
    /// 010: second stage only (needs ECAP.SSTS).
    SecondStage = 0b010,
    /// 011: first stage nested in the second (FSPTPTR is a guest address; needs
    /// ECAP.NEST).
    Nested = 0b011,
    /// 100: untranslated (needs ECAP.PT).
    PassThrough = 0b100,
}

impl Pgtt {
    /// The type of PGTT value `code`; `None` for the reserved codes.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0b001 => Some(Pgtt::FirstStage),
            0b010 => Some(Pgtt::SecondStage),
            0b011 => Some(Pgtt::Nested),
            0b100 => Some(Pgtt::PassThrough),
            _ => None,
        }
    }

    /// Whether requests go through the first-stage table.
    pub const fn uses_first_stage(self) -> bool {
        matches!(self, Pgtt::FirstStage | Pgtt::Nested)
    }

    /// Whether requests (or, nested, the first-stage walk) go through the
    /// second-stage table.
    pub const fn uses_second_stage(self) -> bool {
        matches!(self, Pgtt::SecondStage | Pgtt::Nested)
    }
}

/// A scalable-mode PASID-table entry, 512 bits as eight little-endian words.
///
/// The words are the entry; accessors read and `with_*` builders write the fields the
/// page tables use: P, FPD, AW, PGTT, SSADE, SSPTPTR (`val[0]`); DID, PWSNP, PGSNP
/// (`val[1]`); SRE, FSPM, WPE, EAFE, FSPTPTR (`val[2]`). The other defined fields
/// (SSEE, the memory-type controls, ERE, NXE, SMEP) are kept as they are.
///
/// ```
/// use vtd_format::{Agaw, PasidEntry, Pgtt};
/// let pe = PasidEntry::second_stage(0x1000_0000, Agaw::Bits48, 1).with_pwsnp(true);
/// assert_eq!(pe.val[..2], [0x1000_0089, 0x80_0001]); // docs/formats.md §5.1
/// let fs = PasidEntry::first_stage(0x2000_0000, false, Agaw::Bits48, 1);
/// assert_eq!(fs.val[..3], [0x49, 1, 0x2000_0000]); // docs/formats.md §5.2
/// let nested = pe.with_pgtt(Pgtt::Nested).with_fsptptr(0x3000_0000).with_sre(true);
/// assert_eq!(nested.val[..3], [0x1000_00c9, 0x80_0001, 0x3000_0001]);
/// assert_eq!(PasidEntry::decode(nested.val, 48), Ok(nested));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PasidEntry {
    /// The eight words, `val[0]` holding bits 63:0.
    pub val: [u64; 8],
}

impl PasidEntry {
    /// A present entry translating through the second-stage table at `ssptptr` only
    /// (PGTT = 010), `aw` levels deep, tagged with domain id `did`. `ssptptr` must be
    /// 4 KiB aligned (its low 12 bits are dropped).
    pub const fn second_stage(ssptptr: u64, aw: Agaw, did: u16) -> Self {
        PasidEntry { val: [0; 8] }
            .with_present(true)
            .with_pgtt(Pgtt::SecondStage)
            .with_aw(aw)
            .with_ssptptr(ssptptr)
            .with_did(did)
    }

    /// A present entry translating through the first-stage table at `fsptptr` only
    /// (PGTT = 001), with 5-level paging when `five_level` (FSPM = 1), tagged with
    /// domain id `did`. Linux also fills AW for first-stage entries (with the IOMMU's
    /// AGAW), so `aw` is written too. `fsptptr` must be 4 KiB aligned.
    pub const fn first_stage(fsptptr: u64, five_level: bool, aw: Agaw, did: u16) -> Self {
        PasidEntry { val: [0; 8] }
            .with_present(true)
            .with_pgtt(Pgtt::FirstStage)
            .with_aw(aw)
            .with_did(did)
            .with_fsptptr(fsptptr)
            .with_five_level(five_level)
    }

    /// The entry `words` of an IOMMU with host address width `haw`, checked as the
    /// hardware checks a present entry (a not-present one is returned as it is). The
    /// pointer of a stage the PGTT uses must lie below `haw` (for [`Pgtt::Nested`]
    /// FSPTPTR is a guest address, which the second-stage walk checks instead).
    /// Whether the PGTT, AW and FSPM are supported by the IOMMU (ECAP, CAP.SAGAW,
    /// CAP.FS5LP) is left to the caller (fault 0x5B).
    ///
    /// # Errors
    /// [`DecodeError::Reserved`] (fault 0x5A) for a set bit of `val[0][11:10]`,
    /// `val[1][22:16]`, `val[2][11:8]`, `val[3..8]`, or of a used pointer at or above
    /// `haw`; [`DecodeError::ReservedValue`] (fault 0x5B) for a reserved PGTT, or a
    /// reserved FSPM (10, 11) when the first stage is used.
    pub const fn decode(words: [u64; 8], haw: u32) -> Result<Self, DecodeError> {
        let pe = PasidEntry { val: words };
        if !pe.present() {
            return Ok(pe);
        }
        let Some(pgtt) = Pgtt::from_code(pe.pgtt()) else {
            return Err(Structure::PasidEntry.invalid("PGTT", pe.pgtt() as u64));
        };
        let above = pointer_above_haw(haw);
        let ss = if pgtt.uses_second_stage() { above } else { 0 };
        let fs = if matches!(pgtt, Pgtt::FirstStage) {
            above
        } else {
            0
        };
        let reserved = [
            RSVD0 | ss,
            RSVD1,
            RSVD2 | fs,
            u64::MAX,
            u64::MAX,
            u64::MAX,
            u64::MAX,
            u64::MAX,
        ];
        if let Err(e) = Structure::PasidEntry.check(&words, &reserved) {
            return Err(e);
        }
        if pgtt.uses_first_stage() && pe.fspm() > 1 {
            return Err(Structure::PasidEntry.invalid("FSPM", pe.fspm() as u64));
        }
        Ok(pe)
    }

    /// The present bit.
    pub const fn present(&self) -> bool {
        bit(self.val[0], P)
    }

    /// Fault processing disable (`val[0][1]`).
    pub const fn fpd(&self) -> bool {
        bit(self.val[0], FPD)
    }

    /// The PASID-granular translation type code (see [`Pgtt::from_code`]): 1 first
    /// stage, 2 second stage, 3 nested, 4 pass-through.
    pub const fn pgtt(&self) -> u8 {
        field(self.val[0], PGTT_H, PGTT_L) as u8
    }

    /// The address width (`val[0][4:2]`), if it is a defined one.
    pub const fn aw(&self) -> Option<Agaw> {
        Agaw::from_code(field(self.val[0], AW_H, AW_L) as u8)
    }

    /// SSADE (`val[0][9]`): second-stage accessed/dirty updates enabled.
    pub const fn ssade(&self) -> bool {
        bit(self.val[0], SSADE)
    }

    /// The second-stage table pointer (`val[0][63:12]`).
    pub const fn ssptptr(&self) -> u64 {
        self.val[0] & PTR
    }

    /// The domain id (`val[1][15:0]`).
    pub const fn did(&self) -> u16 {
        self.val[1] as u16
    }

    /// PWSNP (`val[1][23]`): page walks snoop.
    pub const fn pwsnp(&self) -> bool {
        bit(self.val[1], PWSNP)
    }

    /// PGSNP (`val[1][24]`): every access through this PASID snoops.
    pub const fn pgsnp(&self) -> bool {
        bit(self.val[1], PGSNP)
    }

    /// SRE (`val[2][0]`): supervisor (privileged) requests allowed.
    pub const fn sre(&self) -> bool {
        bit(self.val[2], SRE)
    }

    /// The first-stage paging mode FSPM (`val[2][3:2]`): 0 = 4-level, 1 = 5-level.
    pub const fn fspm(&self) -> u8 {
        field(self.val[2], FSPM_H, FSPM_L) as u8
    }

    /// Whether first-stage paging is 5-level (FSPM = 1).
    pub const fn five_level(&self) -> bool {
        self.fspm() == 1
    }

    /// WPE (`val[2][4]`): supervisor writes honour the R/W bits.
    pub const fn wpe(&self) -> bool {
        bit(self.val[2], WPE)
    }

    /// EAFE (`val[2][7]`): the extended-accessed flag (first-stage bit 10) is set.
    pub const fn eafe(&self) -> bool {
        bit(self.val[2], EAFE)
    }

    /// The first-stage table pointer (`val[2][63:12]`): a host address with
    /// [`Pgtt::FirstStage`], a guest address with [`Pgtt::Nested`].
    pub const fn fsptptr(&self) -> u64 {
        self.val[2] & PTR
    }

    /// The same entry with P = `on`.
    pub const fn with_present(mut self, on: bool) -> Self {
        self.val[0] = with_bit(self.val[0], P, on);
        self
    }

    /// The same entry with FPD = `on`.
    pub const fn with_fpd(mut self, on: bool) -> Self {
        self.val[0] = with_bit(self.val[0], FPD, on);
        self
    }

    /// The same entry with translation type `pgtt`.
    pub const fn with_pgtt(mut self, pgtt: Pgtt) -> Self {
        self.val[0] = with_field(self.val[0], PGTT_H, PGTT_L, pgtt as u64);
        self
    }

    /// The same entry with address width `aw`.
    pub const fn with_aw(mut self, aw: Agaw) -> Self {
        self.val[0] = with_field(self.val[0], AW_H, AW_L, aw.code() as u64);
        self
    }

    /// The same entry with SSADE = `on`.
    pub const fn with_ssade(mut self, on: bool) -> Self {
        self.val[0] = with_bit(self.val[0], SSADE, on);
        self
    }

    /// The same entry with the 4 KiB-aligned second-stage table `ssptptr` (low 12 bits
    /// dropped).
    pub const fn with_ssptptr(mut self, ssptptr: u64) -> Self {
        self.val[0] = (self.val[0] & !PTR) | (ssptptr & PTR);
        self
    }

    /// The same entry with domain id `did`.
    pub const fn with_did(mut self, did: u16) -> Self {
        self.val[1] = with_field(self.val[1], 15, 0, did as u64);
        self
    }

    /// Sets or clears PWSNP (page-walk snoop). Linux sets it when ECAP.SMPWC = 1, i.e.
    /// when table walks are cache-coherent, which is what this library assumes.
    pub const fn with_pwsnp(mut self, on: bool) -> Self {
        self.val[1] = with_bit(self.val[1], PWSNP, on);
        self
    }

    /// Sets or clears PGSNP (force snoop for all DMA through this PASID); Linux uses it
    /// for force-coherent first-stage domains, which have no per-page SNP bit.
    pub const fn with_pgsnp(mut self, on: bool) -> Self {
        self.val[1] = with_bit(self.val[1], PGSNP, on);
        self
    }

    /// The same entry with SRE = `on`.
    pub const fn with_sre(mut self, on: bool) -> Self {
        self.val[2] = with_bit(self.val[2], SRE, on);
        self
    }

    /// The same entry with 5-level (FSPM = 1) or 4-level (FSPM = 0) first-stage paging.
    pub const fn with_five_level(mut self, on: bool) -> Self {
        self.val[2] = with_field(self.val[2], FSPM_H, FSPM_L, on as u64);
        self
    }

    /// The same entry with WPE = `on`.
    pub const fn with_wpe(mut self, on: bool) -> Self {
        self.val[2] = with_bit(self.val[2], WPE, on);
        self
    }

    /// The same entry with EAFE = `on`.
    pub const fn with_eafe(mut self, on: bool) -> Self {
        self.val[2] = with_bit(self.val[2], EAFE, on);
        self
    }

    /// The same entry with the 4 KiB-aligned first-stage table `fsptptr` (low 12 bits
    /// dropped).
    pub const fn with_fsptptr(mut self, fsptptr: u64) -> Self {
        self.val[2] = (self.val[2] & !PTR) | (fsptptr & PTR);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::place as at;
    use crate::fault_reason::FaultReason;

    #[test]
    fn pasid_entry_fields() {
        let pe = PasidEntry::second_stage(0x1000_0000, Agaw::Bits48, 7)
            .with_pwsnp(true)
            .with_pgsnp(true);
        assert_eq!(pe.val[1], 7 | 1 << PWSNP | 1 << PGSNP);
        assert_eq!(
            (pe.pgtt(), pe.did(), pe.pwsnp(), pe.pgsnp()),
            (2, 7, true, true)
        );
        let pe = pe.with_pwsnp(false).with_pgsnp(false);
        assert_eq!(pe.val[1], 7);
        let fs = PasidEntry::first_stage(0x2000_0000, true, Agaw::Bits57, 1);
        assert_eq!(fs.val[0], 0x4d);
        assert_eq!(fs.val[2], 0x2000_0004);
        assert!(fs.five_level());
        assert_eq!((fs.pgtt(), fs.fsptptr(), fs.ssptptr()), (1, 0x2000_0000, 0));
        assert_eq!(fs.val[3..], [0; 5]);
    }

    #[test]
    fn reserved_pgtt_and_fspm_are_invalid() {
        let ss = PasidEntry::second_stage(0x1000, Agaw::Bits48, 1);
        for code in [0u64, 5, 6, 7] {
            let mut words = ss.val;
            words[0] = with_field(words[0], PGTT_H, PGTT_L, code);
            let err = PasidEntry::decode(words, 48).unwrap_err();
            assert_eq!(err.fault_reason(), Some(FaultReason::PasidEntryInvalid));
        }
        let fs = PasidEntry::first_stage(0x1000, false, Agaw::Bits48, 1);
        let mut words = fs.val;
        words[2] |= at(2, FSPM_H, FSPM_L);
        assert_eq!(
            PasidEntry::decode(words, 48),
            Err(Structure::PasidEntry.invalid("FSPM", 2))
        );
        // FSPM is not looked at when only the second stage is used.
        let mut words = ss.val;
        words[2] |= at(3, FSPM_H, FSPM_L);
        assert!(PasidEntry::decode(words, 48).is_ok());
    }

    #[test]
    fn only_used_pointers_are_held_to_the_haw() {
        let high = 1 << 50;
        let ss = PasidEntry::second_stage(0x1000, Agaw::Bits48, 1).with_fsptptr(high);
        assert!(PasidEntry::decode(ss.val, 48).is_ok());
        let ss = ss.with_ssptptr(high);
        assert_eq!(
            PasidEntry::decode(ss.val, 48),
            Err(Structure::PasidEntry.reserved(0, high))
        );
        let nested = PasidEntry::second_stage(0x1000, Agaw::Bits48, 1)
            .with_pgtt(Pgtt::Nested)
            .with_fsptptr(high);
        assert!(PasidEntry::decode(nested.val, 48).is_ok());
        let fs = nested.with_pgtt(Pgtt::FirstStage);
        assert_eq!(
            PasidEntry::decode(fs.val, 48),
            Err(Structure::PasidEntry.reserved(2, high))
        );
    }
}
