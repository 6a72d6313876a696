//! The SMMU command queue's 16-byte commands: configuration-cache and TLB invalidations
//! and CMD_SYNC (docs/formats.md §4.2, §8.7). An opcode the SMMU does not define, or an
//! ILLEGAL field, is CERROR_ILL ([`DecodeError::command_error`]).

use crate::error::{DecodeError, Structure};
use crate::field::Bits;
use crate::numbered::numbered;
use pgtable_core::PhysAddr;

/// A command's size.
pub const COMMAND_SIZE: u64 = 16;

// Dword 0.
const OP: Bits = Bits::new(7, 0);
const GLOBAL: Bits = Bits::bit(9);
const SSV: Bits = Bits::bit(11);
const SSID: Bits = Bits::new(31, 12);
const SID: Bits = Bits::new(63, 32);
const NUM: Bits = Bits::new(16, 12);
const SCALE: Bits = Bits::new(24, 20);
const VMID: Bits = Bits::new(47, 32);
const ASID: Bits = Bits::new(63, 48);
const SYNC_CS: Bits = Bits::new(13, 12);
const SYNC_MSH: Bits = Bits::new(23, 22);
const SYNC_MSIATTR: Bits = Bits::new(27, 24);
const SYNC_MSIDATA: Bits = Bits::new(63, 32);
// Dword 1.
const LEAF: Bits = Bits::bit(0);
const RANGE: Bits = Bits::new(4, 0);
const TTL: Bits = Bits::new(9, 8);
const TG: Bits = Bits::new(11, 10);
const VA: Bits = Bits::new(63, 12);
const IPA: Bits = Bits::new(51, 12);
const ATC_SIZE: Bits = Bits::new(5, 0);
const SYNC_MSIADDR: Bits = Bits::new(51, 2);

/// CMD_CFGI_STE_RANGE's Range that means every STE: CMD_CFGI_ALL.
const RANGE_ALL: u64 = 31;
/// The opcode QEMU's command enum gives CMD_CFGI_ALL, accepted when decoding
/// (docs/formats.md §8.8 #3).
const QEMU_CFGI_ALL: u8 = 0x07;

numbered! {
    /// A command opcode (`dw0[7:0]`).
    #[non_exhaustive]
    pub enum Opcode {
        /// CMD_PREFETCH_CONFIG.
        PrefetchConfig = 0x01,
        /// CMD_PREFETCH_ADDR.
        PrefetchAddr = 0x02,
        /// CMD_CFGI_STE.
        CfgiSte = 0x03,
        /// CMD_CFGI_STE_RANGE (and CMD_CFGI_ALL, with Range 31).
        CfgiSteRange = 0x04,
        /// CMD_CFGI_CD.
        CfgiCd = 0x05,
        /// CMD_CFGI_CD_ALL.
        CfgiCdAll = 0x06,
        /// CMD_TLBI_NH_ALL.
        TlbiNhAll = 0x10,
        /// CMD_TLBI_NH_ASID.
        TlbiNhAsid = 0x11,
        /// CMD_TLBI_NH_VA.
        TlbiNhVa = 0x12,
        /// CMD_TLBI_NH_VAA.
        TlbiNhVaa = 0x13,
        /// CMD_TLBI_EL2_ALL.
        TlbiEl2All = 0x20,
        /// CMD_TLBI_EL2_ASID.
        TlbiEl2Asid = 0x21,
        /// CMD_TLBI_EL2_VA.
        TlbiEl2Va = 0x22,
        /// CMD_TLBI_EL2_VAA.
        TlbiEl2Vaa = 0x23,
        /// CMD_TLBI_S12_VMALL.
        TlbiS12Vmall = 0x28,
        /// CMD_TLBI_S2_IPA.
        TlbiS2Ipa = 0x2A,
        /// CMD_TLBI_NSNH_ALL.
        TlbiNsnhAll = 0x30,
        /// CMD_ATC_INV.
        AtcInv = 0x40,
        /// CMD_PRI_RESP.
        PriResp = 0x41,
        /// CMD_RESUME.
        Resume = 0x44,
        /// CMD_STALL_TERM.
        StallTerm = 0x45,
        /// CMD_SYNC.
        Sync = 0x46,
    }
}

/// The address range of a TLB invalidation by address (NH_VA, NH_VAA, EL2_VA,
/// EL2_VAA, S2_IPA).
///
/// With TG = 0 it names one address, TTL hinting the level of its leaf (0: unknown).
/// With TG ≠ 0 (1 = 4K, 2 = 16K, 3 = 64K granule; needs IDR3.RIL) it covers
/// (NUM + 1) × 2^SCALE granules from `addr`.
///
/// ```
/// use smmu_format::TlbiRange;
/// let r = TlbiRange { leaf: true, ttl: 0, tg: 1, num: 3, scale: 2, addr: 0x10_0000 };
/// assert_eq!(r.bytes(), Some(16 * 0x1000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TlbiRange {
    /// Leaf (`dw1[0]`): only last-level entries changed; walk caches may be kept.
    pub leaf: bool,
    /// TTL (`dw1[9:8]`): the level of the leaf (0: unknown).
    pub ttl: u8,
    /// TG (`dw1[11:10]`): the granule of a range; 0 = a single address.
    pub tg: u8,
    /// NUM (`dw0[16:12]`).
    pub num: u8,
    /// SCALE (`dw0[24:20]`).
    pub scale: u8,
    /// The address: a VA (`dw1[63:12]`) or an IPA (`dw1[51:12]`); bits outside the
    /// field are not encoded.
    pub addr: u64,
}

impl TlbiRange {
    /// The bytes a range invalidation covers; `None` for a single-address one (TG = 0).
    pub const fn bytes(&self) -> Option<u64> {
        let granule_shift = match self.tg {
            1 => 12,
            2 => 14,
            3 => 16,
            _ => return None,
        };
        Some((self.num as u64 + 1) << (self.scale as u32 + granule_shift))
    }

    const fn encode(&self, addr: Bits) -> [u64; 2] {
        [
            NUM.put(self.num as u64) | SCALE.put(self.scale as u64),
            LEAF.flag(self.leaf)
                | TTL.put(self.ttl as u64)
                | TG.put(self.tg as u64)
                | addr.of(self.addr),
        ]
    }

    const fn decode(words: [u64; 2], addr: Bits) -> Self {
        TlbiRange {
            leaf: LEAF.is_set(words[1]),
            ttl: TTL.get(words[1]) as u8,
            tg: TG.get(words[1]) as u8,
            num: NUM.get(words[0]) as u8,
            scale: SCALE.get(words[0]) as u8,
            addr: addr.of(words[1]),
        }
    }
}

/// How CMD_SYNC signals its completion (CS, `dw0[13:12]`); 0b11 is reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum SyncCompletion {
    /// 0b00: no signal; software polls CMDQ_CONS.
    #[default]
    None = 0,
    /// 0b01: an MSI write (or the wired interrupt).
    Irq = 1,
    /// 0b10: a send-event.
    Sev = 2,
}

/// A command.
///
/// ```
/// use smmu_format::{Command, TlbiRange};
/// // docs/formats.md §4.2: leaves at 0x1234_5000 of ASID 1 changed.
/// let c = Command::TlbiNhVa {
///     vmid: 0,
///     asid: 1,
///     range: TlbiRange { leaf: true, addr: 0x1234_5000, ..Default::default() },
/// };
/// assert_eq!(c.encode(), [0x0001_0000_0000_0012, 0x1234_5001]);
/// assert_eq!(Command::decode(c.encode()), Ok(c));
/// assert_eq!(Command::CfgiAll.encode(), [0x04, 31]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// CMD_PREFETCH_CONFIG: fetch a stream's configuration ahead.
    PrefetchConfig {
        /// StreamID (`dw0[63:32]`).
        sid: u32,
        /// SSV and SubstreamID (`dw0[11]`, `dw0[31:12]`).
        ssid: Option<u32>,
    },
    /// CMD_CFGI_STE: drop the cached STE of `sid`.
    CfgiSte {
        /// StreamID.
        sid: u32,
        /// Leaf (`dw1[0]`): only the STE, not the L1 descriptor, changed.
        leaf: bool,
    },
    /// CMD_CFGI_STE_RANGE: drop the STEs of 2^(`range`+1) StreamIDs from `sid`
    /// (aligned down). `range` 31 is [`Command::CfgiAll`].
    CfgiSteRange {
        /// StreamID.
        sid: u32,
        /// Range (`dw1[4:0]`).
        range: u8,
    },
    /// CMD_CFGI_ALL (CMD_CFGI_STE_RANGE with Range 31): drop every cached STE and CD.
    CfgiAll,
    /// CMD_CFGI_CD: drop the cached CD of `ssid` in stream `sid`.
    CfgiCd {
        /// StreamID.
        sid: u32,
        /// SubstreamID (`dw0[31:12]`).
        ssid: u32,
        /// Leaf (`dw1[0]`): only the CD, not an L1 CD descriptor, changed.
        leaf: bool,
    },
    /// CMD_CFGI_CD_ALL: drop every cached CD of stream `sid`.
    CfgiCdAll {
        /// StreamID.
        sid: u32,
    },
    /// CMD_TLBI_NH_ALL: drop every stage-1 entry of a VMID.
    TlbiNhAll {
        /// VMID (`dw0[47:32]`).
        vmid: u16,
    },
    /// CMD_TLBI_NH_ASID: drop the stage-1 entries of an ASID.
    TlbiNhAsid {
        /// VMID.
        vmid: u16,
        /// ASID (`dw0[63:48]`).
        asid: u16,
    },
    /// CMD_TLBI_NH_VA: drop the stage-1 entries of addresses in an ASID.
    TlbiNhVa {
        /// VMID.
        vmid: u16,
        /// ASID.
        asid: u16,
        /// The addresses.
        range: TlbiRange,
    },
    /// CMD_TLBI_NH_VAA: as NH_VA, for every ASID.
    TlbiNhVaa {
        /// VMID.
        vmid: u16,
        /// The addresses.
        range: TlbiRange,
    },
    /// CMD_TLBI_EL2_ALL: drop every EL2 entry.
    TlbiEl2All,
    /// CMD_TLBI_EL2_ASID: drop the EL2 entries of an ASID.
    TlbiEl2Asid {
        /// ASID.
        asid: u16,
    },
    /// CMD_TLBI_EL2_VA: drop the EL2 entries of addresses in an ASID.
    TlbiEl2Va {
        /// ASID.
        asid: u16,
        /// The addresses.
        range: TlbiRange,
    },
    /// CMD_TLBI_EL2_VAA: as EL2_VA, for every ASID.
    TlbiEl2Vaa {
        /// The addresses.
        range: TlbiRange,
    },
    /// CMD_TLBI_S12_VMALL: drop every stage-1 and stage-2 entry of a VMID.
    TlbiS12Vmall {
        /// VMID.
        vmid: u16,
    },
    /// CMD_TLBI_S2_IPA: drop the stage-2 entries of IPAs in a VMID.
    TlbiS2Ipa {
        /// VMID.
        vmid: u16,
        /// The IPAs (`dw1[51:12]`).
        range: TlbiRange,
    },
    /// CMD_TLBI_NSNH_ALL: drop every non-secure, non-hypervisor entry.
    TlbiNsnhAll,
    /// CMD_ATC_INV: invalidate a device's ATS translation cache.
    AtcInv {
        /// StreamID.
        sid: u32,
        /// SSV and SubstreamID.
        ssid: Option<u32>,
        /// Global (`dw0[9]`): every SubstreamID.
        global: bool,
        /// Size (`dw1[5:0]`): 2^Size pages of 4 KiB from `addr`, aligned.
        size: u8,
        /// Address (`dw1[63:12]`).
        addr: u64,
    },
    /// CMD_SYNC: complete every earlier command, then signal.
    Sync {
        /// CS (`dw0[13:12]`).
        completion: SyncCompletion,
        /// MSH (`dw0[23:22]`): shareability of the MSI write.
        msh: u8,
        /// MSIAttr (`dw0[27:24]`): memory type of the MSI write.
        msi_attr: u8,
        /// MSIData (`dw0[63:32]`).
        msi_data: u32,
        /// MSIAddress (`dw1[51:2]`); bits outside the field are not encoded.
        msi_addr: PhysAddr,
    },
    /// A defined command whose fields this type does not name (PREFETCH_ADDR, PRI_RESP,
    /// RESUME, STALL_TERM), as its words.
    Other {
        /// The opcode.
        opcode: Opcode,
        /// The words, the opcode included.
        words: [u64; 2],
    },
}

/// `dw0` of a command `op` for stream `sid` with an optional SubstreamID.
const fn stream(op: Opcode, sid: u32, ssid: Option<u32>) -> u64 {
    let ssid = match ssid {
        Some(ssid) => SSV.flag(true) | SSID.put(ssid as u64),
        None => 0,
    };
    OP.put(op as u64) | SID.put(sid as u64) | ssid
}

/// `dw0` of a command `op` tagged with `vmid` and `asid`.
const fn tagged(op: Opcode, vmid: u16, asid: u16) -> u64 {
    OP.put(op as u64) | VMID.put(vmid as u64) | ASID.put(asid as u64)
}

/// `range` of command `op` with tags `dw0`.
const fn ranged(dw0: u64, range: &TlbiRange, addr: Bits) -> [u64; 2] {
    let [r0, r1] = range.encode(addr);
    [dw0 | r0, r1]
}

impl Command {
    /// The opcode.
    pub const fn opcode(&self) -> Opcode {
        match *self {
            Command::PrefetchConfig { .. } => Opcode::PrefetchConfig,
            Command::CfgiSte { .. } => Opcode::CfgiSte,
            Command::CfgiSteRange { .. } | Command::CfgiAll => Opcode::CfgiSteRange,
            Command::CfgiCd { .. } => Opcode::CfgiCd,
            Command::CfgiCdAll { .. } => Opcode::CfgiCdAll,
            Command::TlbiNhAll { .. } => Opcode::TlbiNhAll,
            Command::TlbiNhAsid { .. } => Opcode::TlbiNhAsid,
            Command::TlbiNhVa { .. } => Opcode::TlbiNhVa,
            Command::TlbiNhVaa { .. } => Opcode::TlbiNhVaa,
            Command::TlbiEl2All => Opcode::TlbiEl2All,
            Command::TlbiEl2Asid { .. } => Opcode::TlbiEl2Asid,
            Command::TlbiEl2Va { .. } => Opcode::TlbiEl2Va,
            Command::TlbiEl2Vaa { .. } => Opcode::TlbiEl2Vaa,
            Command::TlbiS12Vmall { .. } => Opcode::TlbiS12Vmall,
            Command::TlbiS2Ipa { .. } => Opcode::TlbiS2Ipa,
            Command::TlbiNsnhAll => Opcode::TlbiNsnhAll,
            Command::AtcInv { .. } => Opcode::AtcInv,
            Command::Sync { .. } => Opcode::Sync,
            Command::Other { opcode, .. } => opcode,
        }
    }

    /// The two words, `dw0` first. Fields wider than their bit ranges are truncated.
    pub const fn encode(&self) -> [u64; 2] {
        let op = OP.put(self.opcode() as u64);
        match *self {
            Command::PrefetchConfig { sid, ssid } => [stream(Opcode::PrefetchConfig, sid, ssid), 0],
            Command::CfgiSte { sid, leaf } => [stream(Opcode::CfgiSte, sid, None), LEAF.flag(leaf)],
            Command::CfgiSteRange { sid, range } => [
                stream(Opcode::CfgiSteRange, sid, None),
                RANGE.put(range as u64),
            ],
            Command::CfgiAll => [op, RANGE_ALL],
            Command::CfgiCd { sid, ssid, leaf } => [
                stream(Opcode::CfgiCd, sid, None) | SSID.put(ssid as u64),
                LEAF.flag(leaf),
            ],
            Command::CfgiCdAll { sid } => [stream(Opcode::CfgiCdAll, sid, None), 0],
            Command::TlbiNhAll { vmid } | Command::TlbiS12Vmall { vmid } => {
                [op | VMID.put(vmid as u64), 0]
            }
            Command::TlbiNhAsid { vmid, asid } => [tagged(Opcode::TlbiNhAsid, vmid, asid), 0],
            Command::TlbiNhVa { vmid, asid, range } => {
                ranged(tagged(Opcode::TlbiNhVa, vmid, asid), &range, VA)
            }
            Command::TlbiNhVaa { vmid, range } => {
                ranged(tagged(Opcode::TlbiNhVaa, vmid, 0), &range, VA)
            }
            Command::TlbiEl2All | Command::TlbiNsnhAll => [op, 0],
            Command::TlbiEl2Asid { asid } => [tagged(Opcode::TlbiEl2Asid, 0, asid), 0],
            Command::TlbiEl2Va { asid, range } => {
                ranged(tagged(Opcode::TlbiEl2Va, 0, asid), &range, VA)
            }
            Command::TlbiEl2Vaa { range } => ranged(op, &range, VA),
            Command::TlbiS2Ipa { vmid, range } => {
                ranged(tagged(Opcode::TlbiS2Ipa, vmid, 0), &range, IPA)
            }
            Command::AtcInv {
                sid,
                ssid,
                global,
                size,
                addr,
            } => [
                stream(Opcode::AtcInv, sid, ssid) | GLOBAL.flag(global),
                ATC_SIZE.put(size as u64) | VA.of(addr),
            ],
            Command::Sync {
                completion,
                msh,
                msi_attr,
                msi_data,
                msi_addr,
            } => [
                op | SYNC_CS.put(completion as u64)
                    | SYNC_MSH.put(msh as u64)
                    | SYNC_MSIATTR.put(msi_attr as u64)
                    | SYNC_MSIDATA.put(msi_data as u64),
                SYNC_MSIADDR.of(msi_addr.0),
            ],
            Command::Other { words, .. } => [(words[0] & !OP.mask()) | op, words[1]],
        }
    }

    /// The command `words`. Bits outside a command's fields are ignored.
    ///
    /// # Errors
    /// [`DecodeError::UnknownOpcode`] for an opcode the SMMU does not define;
    /// [`DecodeError::Illegal`] of [`Structure::Command`] for CMD_SYNC's reserved CS.
    /// Both are CERROR_ILL.
    pub const fn decode(words: [u64; 2]) -> Result<Self, DecodeError> {
        let [dw0, dw1] = words;
        let code = OP.get(dw0) as u8;
        if code == QEMU_CFGI_ALL {
            return Ok(Command::CfgiAll);
        }
        let Some(opcode) = Opcode::from_code(code) else {
            return Err(DecodeError::UnknownOpcode(code));
        };
        let sid = SID.get(dw0) as u32;
        let ssid = if SSV.is_set(dw0) {
            Some(SSID.get(dw0) as u32)
        } else {
            None
        };
        let vmid = VMID.get(dw0) as u16;
        let asid = ASID.get(dw0) as u16;
        let leaf = LEAF.is_set(dw1);
        Ok(match opcode {
            Opcode::PrefetchConfig => Command::PrefetchConfig { sid, ssid },
            Opcode::CfgiSte => Command::CfgiSte { sid, leaf },
            Opcode::CfgiSteRange if RANGE.get(dw1) == RANGE_ALL => Command::CfgiAll,
            Opcode::CfgiSteRange => Command::CfgiSteRange {
                sid,
                range: RANGE.get(dw1) as u8,
            },
            Opcode::CfgiCd => Command::CfgiCd {
                sid,
                ssid: SSID.get(dw0) as u32,
                leaf,
            },
            Opcode::CfgiCdAll => Command::CfgiCdAll { sid },
            Opcode::TlbiNhAll => Command::TlbiNhAll { vmid },
            Opcode::TlbiNhAsid => Command::TlbiNhAsid { vmid, asid },
            Opcode::TlbiNhVa => Command::TlbiNhVa {
                vmid,
                asid,
                range: TlbiRange::decode(words, VA),
            },
            Opcode::TlbiNhVaa => Command::TlbiNhVaa {
                vmid,
                range: TlbiRange::decode(words, VA),
            },
            Opcode::TlbiEl2All => Command::TlbiEl2All,
            Opcode::TlbiEl2Asid => Command::TlbiEl2Asid { asid },
            Opcode::TlbiEl2Va => Command::TlbiEl2Va {
                asid,
                range: TlbiRange::decode(words, VA),
            },
            Opcode::TlbiEl2Vaa => Command::TlbiEl2Vaa {
                range: TlbiRange::decode(words, VA),
            },
            Opcode::TlbiS12Vmall => Command::TlbiS12Vmall { vmid },
            Opcode::TlbiS2Ipa => Command::TlbiS2Ipa {
                vmid,
                range: TlbiRange::decode(words, IPA),
            },
            Opcode::TlbiNsnhAll => Command::TlbiNsnhAll,
            Opcode::AtcInv => Command::AtcInv {
                sid,
                ssid,
                global: GLOBAL.is_set(dw0),
                size: ATC_SIZE.get(dw1) as u8,
                addr: VA.of(dw1),
            },
            Opcode::Sync => Command::Sync {
                completion: match SYNC_CS.get(dw0) {
                    0 => SyncCompletion::None,
                    1 => SyncCompletion::Irq,
                    2 => SyncCompletion::Sev,
                    cs => return Err(Structure::Command.illegal("CS", cs)),
                },
                msh: SYNC_MSH.get(dw0) as u8,
                msi_attr: SYNC_MSIATTR.get(dw0) as u8,
                msi_data: SYNC_MSIDATA.get(dw0) as u32,
                msi_addr: PhysAddr(SYNC_MSIADDR.of(dw1)),
            },
            Opcode::PrefetchAddr | Opcode::PriResp | Opcode::Resume | Opcode::StallTerm => {
                Command::Other { opcode, words }
            }
        })
    }
}
