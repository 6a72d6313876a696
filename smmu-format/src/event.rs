//! The SMMU event queue's 32-byte records and their event numbers (docs/formats.md §8.5):
//! what the SMMU reports when a configuration is broken or a translation faults.

use crate::descriptor::mask;
use crate::error::{DecodeError, Structure};
use crate::numbered::numbered;
use std::fmt;

/// An event record's size.
pub const EVENT_RECORD_SIZE: u64 = 32;

numbered! {
    /// An SMMUv3 event number (EventID, event record `dw0[7:0]`).
    ///
    /// ```
    /// use smmu_format::EventId;
    /// assert_eq!(EventId::CBadSte as u8, 0x04);
    /// assert_eq!(EventId::from_code(0x10), Some(EventId::FTranslation));
    /// assert_eq!(EventId::FPermission.to_string(), "F_PERMISSION (0x13)");
    /// ```
    #[non_exhaustive]
    pub enum EventId {
        /// F_UUT: unsupported upstream transaction.
        FUut = 0x01,
        /// C_BAD_STREAMID: the StreamID is outside the stream table, or its 2-level L1
        /// descriptor has no L2 table.
        CBadStreamId = 0x02,
        /// F_STE_FETCH: an external abort fetching the STE (or its L1 descriptor).
        FSteFetch = 0x03,
        /// C_BAD_STE: the STE is not valid, or ILLEGAL.
        CBadSte = 0x04,
        /// F_BAD_ATS_TREQ: an ATS translation request the STE does not allow.
        FBadAtsTreq = 0x05,
        /// F_STREAM_DISABLED: a transaction without SubstreamID while S1DSS terminates
        /// them.
        FStreamDisabled = 0x06,
        /// F_TRANSL_FORBIDDEN: a translated (ATS) transaction the STE's EATS forbids.
        FTranslForbidden = 0x07,
        /// C_BAD_SUBSTREAMID: the SubstreamID is outside the CD table, or its L1 CD
        /// descriptor is not valid.
        CBadSubstreamId = 0x08,
        /// F_CD_FETCH: an external abort fetching a CD (or L1 CD descriptor).
        FCdFetch = 0x09,
        /// C_BAD_CD: the CD is not valid, or ILLEGAL.
        CBadCd = 0x0A,
        /// F_WALK_EABT: an external abort during a table walk.
        FWalkEabt = 0x0B,
        /// F_TRANSLATION: an invalid descriptor, an input outside the TxSZ range, or a
        /// disabled (EPD) table.
        FTranslation = 0x10,
        /// F_ADDR_SIZE: an output or table address beyond the IPS / S2PS size.
        FAddrSize = 0x11,
        /// F_ACCESS: the access flag is clear and not updated by hardware.
        FAccess = 0x12,
        /// F_PERMISSION: AP / XN / S2AP deny the access.
        FPermission = 0x13,
        /// F_TLB_CONFLICT: a TLB conflict.
        FTlbConflict = 0x20,
        /// F_CFG_CONFLICT: a configuration-cache conflict.
        FCfgConflict = 0x21,
        /// E_PAGE_REQUEST: a PRI page request, recorded as an event.
        EPageRequest = 0x24,
        /// F_VMS_FETCH: an external abort fetching a VMS.
        FVmsFetch = 0x25,
    }
}

impl EventId {
    /// The architectural name.
    pub const fn name(self) -> &'static str {
        use EventId::*;
        match self {
            FUut => "F_UUT",
            CBadStreamId => "C_BAD_STREAMID",
            FSteFetch => "F_STE_FETCH",
            CBadSte => "C_BAD_STE",
            FBadAtsTreq => "F_BAD_ATS_TREQ",
            FStreamDisabled => "F_STREAM_DISABLED",
            FTranslForbidden => "F_TRANSL_FORBIDDEN",
            CBadSubstreamId => "C_BAD_SUBSTREAMID",
            FCdFetch => "F_CD_FETCH",
            CBadCd => "C_BAD_CD",
            FWalkEabt => "F_WALK_EABT",
            FTranslation => "F_TRANSLATION",
            FAddrSize => "F_ADDR_SIZE",
            FAccess => "F_ACCESS",
            FPermission => "F_PERMISSION",
            FTlbConflict => "F_TLB_CONFLICT",
            FCfgConflict => "F_CFG_CONFLICT",
            EPageRequest => "E_PAGE_REQUEST",
            FVmsFetch => "F_VMS_FETCH",
        }
    }

    /// Whether this is a translation fault (0x10–0x13), recorded only when the CD's R
    /// (stage 1) or the STE's S2R (stage 2) is set.
    pub const fn is_translation_fault(self) -> bool {
        matches!(self.code(), 0x10..=0x13)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:#04x})", self.name(), self.code())
    }
}

/// What the SMMU was doing when a fault occurred (CLASS, `dw1[41:40]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum EventClass {
    /// 0: fetching a CD (nested: the CD address's stage-2 translation).
    Cd = 0,
    /// 1: fetching a stage-1 table descriptor or TTB.
    TranslationTable = 1,
    /// 2: translating the input address.
    #[default]
    Input = 2,
}

/// `dw0`: EventID 7:0, SSV 11, SubstreamID 31:12, StreamID 63:32.
const SSV: u32 = 11;
/// `dw1`: STAG 15:0, Stall 31, PnU 33, InD 34, RnW 35, S2 39, CLASS 41:40, TTRnW 44.
const STALL: u32 = 31;
const PNU: u32 = 33;
const IND: u32 = 34;
const RNW: u32 = 35;
const S2: u32 = 39;
const TTRNW: u32 = 44;
/// `dw3[51:3]`: the IPA (S2 faults, bits 51:12) or the descriptor fetch address.
const ADDR2: u64 = mask(51, 3);

/// A 32-byte event record.
///
/// ```
/// use smmu_format::{EventClass, EventId, EventRecord};
/// // A stage-2 permission fault on a write by stream 0x100, IPA 0x8000_0000.
/// let ev = EventRecord {
///     stream_id: 0x100,
///     input_addr: 0x1234_5678,
///     s2: true,
///     class: EventClass::Input,
///     address2: 0x8000_0000,
///     ..EventRecord::new(EventId::FPermission)
/// };
/// assert_eq!(ev.encode(), [0x100_0000_0013, 0x280_0000_0000, 0x1234_5678, 0x8000_0000]);
/// assert_eq!(EventRecord::decode(ev.encode()), Ok(ev));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventRecord {
    /// EventID (`dw0[7:0]`).
    pub event: EventId,
    /// StreamID (`dw0[63:32]`).
    pub stream_id: u32,
    /// SSV and SubstreamID (`dw0[11]`, `dw0[31:12]`).
    pub substream_id: Option<u32>,
    /// STAG (`dw1[15:0]`): the stall tag of a stalled transaction.
    pub stag: u16,
    /// Stall (`dw1[31]`): the transaction is stalled, awaiting CMD_RESUME.
    pub stall: bool,
    /// PnU (`dw1[33]`): the access was privileged.
    pub pnu: bool,
    /// InD (`dw1[34]`): an instruction fetch.
    pub ind: bool,
    /// RnW (`dw1[35]`): 1 = read, 0 = write.
    pub rnw: bool,
    /// S2 (`dw1[39]`): the fault occurred at stage 2.
    pub s2: bool,
    /// CLASS (`dw1[41:40]`).
    pub class: EventClass,
    /// TTRnW (`dw1[44]`): the faulting table-walk access was a read.
    pub ttrnw: bool,
    /// InputAddr (`dw2`).
    pub input_addr: u64,
    /// `dw3[51:3]`: the IPA of a stage-2 fault ([`EventRecord::ipa`]) or the address
    /// of a failed fetch ([`EventRecord::fetch_addr`]); bits outside 51:3 are dropped.
    pub address2: u64,
}

impl EventRecord {
    /// A record of `event` for stream 0, without SubstreamID, a stage-1 write of the
    /// input address 0; set the other fields with struct-update syntax.
    pub const fn new(event: EventId) -> Self {
        EventRecord {
            event,
            stream_id: 0,
            substream_id: None,
            stag: 0,
            stall: false,
            pnu: false,
            ind: false,
            rnw: false,
            s2: false,
            class: EventClass::Input,
            ttrnw: false,
            input_addr: 0,
            address2: 0,
        }
    }

    /// The four words, `dw0` first. Fields wider than their bit ranges are truncated.
    pub const fn encode(&self) -> [u64; 4] {
        let (ssv, ssid) = match self.substream_id {
            Some(ssid) => (1, ssid as u64 & mask(19, 0)),
            None => (0, 0),
        };
        let dw0 =
            self.event.code() as u64 | ssv << SSV | ssid << 12 | (self.stream_id as u64) << 32;
        let dw1 = self.stag as u64
            | (self.stall as u64) << STALL
            | (self.pnu as u64) << PNU
            | (self.ind as u64) << IND
            | (self.rnw as u64) << RNW
            | (self.s2 as u64) << S2
            | (self.class as u64) << 40
            | (self.ttrnw as u64) << TTRNW;
        [dw0, dw1, self.input_addr, self.address2 & ADDR2]
    }

    /// The record `words`. Bits outside the fields are ignored.
    ///
    /// # Errors
    /// [`DecodeError::UnknownEvent`] for an EventID [`EventId`] does not define;
    /// [`DecodeError::Illegal`] for CLASS = 3.
    pub fn decode(words: [u64; 4]) -> Result<Self, DecodeError> {
        let [dw0, dw1, dw2, dw3] = words;
        let Some(event) = EventId::from_code(dw0 as u8) else {
            return Err(DecodeError::UnknownEvent(dw0 as u8));
        };
        let class = match (dw1 >> 40) & 3 {
            0 => EventClass::Cd,
            1 => EventClass::TranslationTable,
            2 => EventClass::Input,
            class => return Err(Structure::EventRecord.illegal("CLASS", class)),
        };
        let bit = |n: u32| dw1 & (1 << n) != 0;
        Ok(EventRecord {
            event,
            stream_id: (dw0 >> 32) as u32,
            substream_id: if dw0 & (1 << SSV) != 0 {
                Some(((dw0 >> 12) & mask(19, 0)) as u32)
            } else {
                None
            },
            stag: dw1 as u16,
            stall: bit(STALL),
            pnu: bit(PNU),
            ind: bit(IND),
            rnw: bit(RNW),
            s2: bit(S2),
            class,
            ttrnw: bit(TTRNW),
            input_addr: dw2,
            address2: dw3 & ADDR2,
        })
    }

    /// The IPA of a stage-2 fault (`dw3[51:12]`).
    pub const fn ipa(&self) -> u64 {
        self.address2 & mask(51, 12)
    }

    /// The address of the descriptor or structure whose fetch failed (`dw3[51:3]`).
    pub const fn fetch_addr(&self) -> u64 {
        self.address2
    }
}
