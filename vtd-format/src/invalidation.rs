//! Queued-invalidation descriptors: what software writes into the invalidation queue
//! to drop the IOMMU's cached context entries, PASID entries and translations, and to
//! wait for that to finish (docs/formats.md §4.2, §8.7).
//!
//! A descriptor is 128 bits, or 256 bits when IQA_REG.DW = 1 (scalable-mode
//! drivers); the types here use only the low 128, the rest is reserved. The type is
//! `qw0[3:0]`, extended by `qw0[11:9]`.

use crate::bits::{bit, field, flag, mask, place};
use crate::error::{DecodeError, Structure};
use crate::source_id::SourceId;
use pgtable_core::{Iova, PhysAddr};

/// The 4 KiB-aligned address field `qw1[63:12]`.
const ADDR: u64 = mask(63, 12);
/// Granularity `qw0[5:4]` (G).
const G_H: u32 = 5;
const G_L: u32 = 4;
/// Domain id `qw0[31:16]`.
const DID_H: u32 = 31;
const DID_L: u32 = 16;
/// PASID `qw0[51:32]`.
const PASID_H: u32 = 51;
const PASID_L: u32 = 32;
/// AM `qw1[5:0]` and IH `qw1[6]` of the (PASID-based) IOTLB descriptors.
const AM_H: u32 = 5;
const IH: u32 = 6;

/// The bytes an IOTLB invalidation of `addr` with address mask `am` covers: 2^AM
/// pages of 4 KiB, aligned to their size (the low bits of `addr` are ignored).
///
/// ```
/// use pgtable_core::Iova;
/// assert_eq!(vtd_format::invalidation_range(Iova(0x1234_5000), 4), (Iova(0x1234_0000), 0x1_0000));
/// ```
pub const fn invalidation_range(addr: Iova, am: u8) -> (Iova, u64) {
    let len = 0x1000u64 << am;
    (Iova(addr.0 & !(len - 1)), len)
}

/// What a context-cache invalidation drops (`qw0[5:4]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContextCacheScope {
    /// G = 01: every cached context entry.
    Global,
    /// G = 10: the entries of domain `did`.
    Domain {
        /// Domain id.
        did: u16,
    },
    /// G = 11: the entries of `sid` (with the low `function_mask` bits of its function
    /// ignored) in domain `did`.
    Device {
        /// Domain id.
        did: u16,
        /// Requester.
        sid: SourceId,
        /// FM (`qw0[49:48]`): 0 none, 1 the low bit, 2 the low two, 3 all three function
        /// bits ignored.
        function_mask: u8,
    },
}

/// What an IOTLB invalidation drops (`qw0[5:4]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IotlbScope {
    /// G = 01: everything.
    Global,
    /// G = 10: the entries of domain `did` (first-stage and nested ones included).
    Domain {
        /// Domain id.
        did: u16,
    },
    /// G = 11: 2^`am` pages at `addr` in domain `did`.
    Page {
        /// Domain id.
        did: u16,
        /// The first page ([`invalidation_range`]).
        addr: Iova,
        /// AM: log2 of the pages (at most CAP.MAMV).
        am: u8,
        /// IH: only leaves changed; paging-structure caches may be kept.
        ih: bool,
    },
}

/// What a PASID-based IOTLB invalidation drops within one PASID (`qw0[5:4]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PasidIotlbScope {
    /// G = 10: every non-global entry of the PASID.
    Pasid,
    /// G = 11: 2^`am` pages at `addr`.
    Page {
        /// The first page ([`invalidation_range`]).
        addr: Iova,
        /// AM: log2 of the pages.
        am: u8,
        /// IH: only leaves changed.
        ih: bool,
    },
}

/// What a PASID-cache invalidation drops (`qw0[5:4]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PasidCacheScope {
    /// G = 00: every PASID entry of domain `did`.
    Domain {
        /// Domain id.
        did: u16,
    },
    /// G = 01: the entry of `pasid` in domain `did`.
    Pasid {
        /// Domain id.
        did: u16,
        /// The PASID.
        pasid: u32,
    },
    /// G = 11: every cached PASID entry.
    Global,
}

/// What an interrupt-entry-cache invalidation drops (`qw0[4]`, polarity as Linux
/// writes it: docs/formats.md §8.8 #8 ⚠).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InterruptCacheScope {
    /// G = 0: every cached interrupt-remapping entry.
    Global,
    /// G = 1: 2^`mask` entries from `index`.
    Index {
        /// IIDX (`qw0[47:32]`).
        index: u16,
        /// IM (`qw0[31:27]`).
        mask: u8,
    },
}

/// A queued-invalidation descriptor.
///
/// ```
/// use pgtable_core::Iova;
/// use vtd_format::{InvalidationDescriptor, IotlbScope};
/// // docs/formats.md §4.2: leaves of 16 pages at 0x1234_0000 in domain 1 changed.
/// let d = InvalidationDescriptor::Iotlb {
///     scope: IotlbScope::Page { did: 1, addr: Iova(0x1234_0000), am: 4, ih: true },
///     drain_reads: false,
///     drain_writes: false,
/// };
/// assert_eq!(d.encode(), [0x1_0032, 0x1234_0044]);
/// assert_eq!(InvalidationDescriptor::decode(d.encode()), Ok(d));
/// assert_eq!(d.encode_256(), [0x1_0032, 0x1234_0044, 0, 0]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvalidationDescriptor {
    /// Type 0x1: context-cache invalidation.
    ContextCache(ContextCacheScope),
    /// Type 0x2: IOTLB invalidation (second-stage, and by domain first-stage too).
    Iotlb {
        /// What is dropped.
        scope: IotlbScope,
        /// DR (`qw0[7]`): drain reads first.
        drain_reads: bool,
        /// DW (`qw0[6]`): drain writes first.
        drain_writes: bool,
    },
    /// Type 0x3: device-TLB (ATS) invalidation.
    DeviceTlb {
        /// PFSID (`qw0[15:12]` low, `qw0[63:52]` high): the physical function of a
        /// virtual-function requester.
        pfsid: SourceId,
        /// MIP (`qw0[20:16]`): the device's maximum invalidations pending.
        max_pending: u8,
        /// SID (`qw0[47:32]`): the device.
        sid: SourceId,
        /// S (`qw1[0]`): the range size is encoded in `addr`'s low bits.
        size: bool,
        /// ADDR (`qw1[63:12]`).
        addr: Iova,
    },
    /// Type 0x4: interrupt-entry-cache invalidation.
    InterruptEntryCache(InterruptCacheScope),
    /// Type 0x5: invalidation wait.
    Wait {
        /// IF (`qw0[4]`): raise the invalidation-completion interrupt.
        interrupt: bool,
        /// SW (`qw0[5]`) with the status data (`qw0[63:32]`) and its 4-byte-aligned
        /// address (`qw1[63:2]`): write the data there when done.
        status: Option<(PhysAddr, u32)>,
        /// FN (`qw0[6]`): later descriptors wait for this one.
        fence: bool,
        /// PD (`qw0[7]`): drain page requests.
        page_drain: bool,
    },
    /// Type 0x6: PASID-based IOTLB invalidation (first-stage and nested entries).
    PasidIotlb {
        /// Domain id.
        did: u16,
        /// The PASID.
        pasid: u32,
        /// What is dropped.
        scope: PasidIotlbScope,
    },
    /// Type 0x7: PASID-cache invalidation.
    PasidCache(PasidCacheScope),
    /// Type 0x8: PASID-based device-TLB invalidation.
    PasidDeviceTlb {
        /// PFSID (`qw0[15:12]` low, `qw0[63:52]` high).
        pfsid: SourceId,
        /// MIP (`qw0[8:4]`).
        max_pending: u8,
        /// SID (`qw0[31:16]`).
        sid: SourceId,
        /// PASID (`qw0[51:32]`).
        pasid: u32,
        /// G (`qw1[0]`): global translations too.
        global: bool,
        /// S (`qw1[11]`): the range size is encoded in `addr`'s low bits.
        size: bool,
        /// ADDR (`qw1[63:12]`).
        addr: Iova,
    },
}

/// Reserved bits of each type's two words (index = type); unused types all-ones.
const RESERVED: [[u64; 2]; 9] = [
    [u64::MAX, u64::MAX],
    [mask(8, 6) | mask(15, 12) | mask(63, 50), u64::MAX],
    [1 << 8 | mask(15, 12) | mask(63, 32), mask(11, 7)],
    [mask(8, 4) | mask(31, 21) | mask(51, 48), mask(11, 1)],
    [mask(8, 5) | mask(26, 12) | mask(63, 48), u64::MAX],
    [1 << 8 | mask(31, 12), mask(1, 0)],
    [mask(8, 6) | mask(15, 12) | mask(63, 52), mask(11, 7)],
    [mask(8, 6) | mask(15, 12) | mask(63, 52), u64::MAX],
    [0, mask(10, 1)],
];

/// The 16-bit PFSID split over `qw0[15:12]` and `qw0[63:52]`.
const fn place_pfsid(pfsid: SourceId) -> u64 {
    place(pfsid.0 as u64, 15, 12) | place(pfsid.0 as u64 >> 4, 63, 52)
}

const fn pfsid_of(qw0: u64) -> SourceId {
    SourceId((field(qw0, 15, 12) | field(qw0, 63, 52) << 4) as u16)
}

/// Granularity `g` in `qw0[5:4]`.
const fn g(g: u64) -> u64 {
    place(g, G_H, G_L)
}

/// Domain id in `qw0[31:16]`.
const fn did(did: u16) -> u64 {
    place(did as u64, DID_H, DID_L)
}

/// PASID in `qw0[51:32]`.
const fn pasid(pasid: u32) -> u64 {
    place(pasid as u64, PASID_H, PASID_L)
}

/// `qw1` of the IOTLB descriptors: the page, AM and IH.
const fn page_word(addr: Iova, am: u8, ih: bool) -> u64 {
    (addr.0 & ADDR) | place(am as u64, AM_H, 0) | flag(ih, IH)
}

impl InvalidationDescriptor {
    /// The descriptor type (`qw0[11:9] << 4 | qw0[3:0]`).
    pub const fn type_code(&self) -> u8 {
        match self {
            InvalidationDescriptor::ContextCache(_) => 0x1,
            InvalidationDescriptor::Iotlb { .. } => 0x2,
            InvalidationDescriptor::DeviceTlb { .. } => 0x3,
            InvalidationDescriptor::InterruptEntryCache(_) => 0x4,
            InvalidationDescriptor::Wait { .. } => 0x5,
            InvalidationDescriptor::PasidIotlb { .. } => 0x6,
            InvalidationDescriptor::PasidCache(_) => 0x7,
            InvalidationDescriptor::PasidDeviceTlb { .. } => 0x8,
        }
    }

    /// The 128-bit descriptor, `qw0` first.
    pub const fn encode(&self) -> [u64; 2] {
        let ty = self.type_code() as u64;
        let [qw0, qw1] = match *self {
            InvalidationDescriptor::ContextCache(scope) => match scope {
                ContextCacheScope::Global => [g(1), 0],
                ContextCacheScope::Domain { did: d } => [g(2) | did(d), 0],
                ContextCacheScope::Device {
                    did: d,
                    sid,
                    function_mask,
                } => [
                    g(3) | did(d)
                        | place(sid.0 as u64, 47, 32)
                        | place(function_mask as u64, 49, 48),
                    0,
                ],
            },
            InvalidationDescriptor::Iotlb {
                scope,
                drain_reads,
                drain_writes,
            } => {
                let drains = flag(drain_writes, 6) | flag(drain_reads, 7);
                match scope {
                    IotlbScope::Global => [g(1) | drains, 0],
                    IotlbScope::Domain { did: d } => [g(2) | drains | did(d), 0],
                    IotlbScope::Page {
                        did: d,
                        addr,
                        am,
                        ih,
                    } => [g(3) | drains | did(d), page_word(addr, am, ih)],
                }
            }
            InvalidationDescriptor::DeviceTlb {
                pfsid,
                max_pending,
                sid,
                size,
                addr,
            } => [
                place_pfsid(pfsid)
                    | place(max_pending as u64, 20, 16)
                    | place(sid.0 as u64, 47, 32),
                (addr.0 & ADDR) | flag(size, 0),
            ],
            InvalidationDescriptor::InterruptEntryCache(scope) => match scope {
                InterruptCacheScope::Global => [0, 0],
                InterruptCacheScope::Index { index, mask: m } => [
                    flag(true, 4) | place(m as u64, 31, 27) | place(index as u64, 47, 32),
                    0,
                ],
            },
            InvalidationDescriptor::Wait {
                interrupt,
                status,
                fence,
                page_drain,
            } => {
                let flags = flag(interrupt, 4) | flag(fence, 6) | flag(page_drain, 7);
                match status {
                    None => [flags, 0],
                    Some((addr, data)) => [
                        flags | flag(true, 5) | place(data as u64, 63, 32),
                        addr.0 & mask(63, 2),
                    ],
                }
            }
            InvalidationDescriptor::PasidIotlb {
                did: d,
                pasid: p,
                scope,
            } => match scope {
                PasidIotlbScope::Pasid => [g(2) | did(d) | pasid(p), 0],
                PasidIotlbScope::Page { addr, am, ih } => {
                    [g(3) | did(d) | pasid(p), page_word(addr, am, ih)]
                }
            },
            InvalidationDescriptor::PasidCache(scope) => match scope {
                PasidCacheScope::Domain { did: d } => [g(0) | did(d), 0],
                PasidCacheScope::Pasid { did: d, pasid: p } => [g(1) | did(d) | pasid(p), 0],
                PasidCacheScope::Global => [g(3), 0],
            },
            InvalidationDescriptor::PasidDeviceTlb {
                pfsid,
                max_pending,
                sid,
                pasid: p,
                global,
                size,
                addr,
            } => [
                place_pfsid(pfsid)
                    | place(max_pending as u64, 8, 4)
                    | place(sid.0 as u64, 31, 16)
                    | pasid(p),
                (addr.0 & ADDR) | flag(global, 0) | flag(size, 11),
            ],
        };
        [qw0 | ty, qw1]
    }

    /// The 256-bit form (IQA_REG.DW = 1): the 128-bit descriptor and two zero words.
    pub const fn encode_256(&self) -> [u64; 4] {
        let [qw0, qw1] = self.encode();
        [qw0, qw1, 0, 0]
    }

    /// The 128-bit descriptor `words`.
    ///
    /// # Errors
    /// [`DecodeError::UnknownDescriptorType`] for a type other than 0x1–0x8;
    /// [`DecodeError::Reserved`] for a set reserved bit; [`DecodeError::ReservedValue`]
    /// for a reserved granularity (G). The hardware reports each as an
    /// invalidation-queue error (FSTS.IQE), so they carry no fault reason.
    pub fn decode(words: [u64; 2]) -> Result<Self, DecodeError> {
        let [qw0, qw1] = words;
        let ty = (field(qw0, 11, 9) << 4 | field(qw0, 3, 0)) as u8;
        let Some(reserved) = RESERVED.get(ty as usize).filter(|_| ty != 0) else {
            return Err(DecodeError::UnknownDescriptorType(ty));
        };
        Structure::InvalidationDescriptor.check(&words, reserved)?;
        let g = field(qw0, G_H, G_L);
        let bad_g = || Structure::InvalidationDescriptor.invalid("G", g);
        let did = field(qw0, DID_H, DID_L) as u16;
        let pasid = field(qw0, PASID_H, PASID_L) as u32;
        let addr = Iova(qw1 & ADDR);
        let am = field(qw1, AM_H, 0) as u8;
        let ih = bit(qw1, IH);
        Ok(match ty {
            0x1 => InvalidationDescriptor::ContextCache(match g {
                1 => ContextCacheScope::Global,
                2 => ContextCacheScope::Domain { did },
                3 => ContextCacheScope::Device {
                    did,
                    sid: SourceId(field(qw0, 47, 32) as u16),
                    function_mask: field(qw0, 49, 48) as u8,
                },
                _ => return Err(bad_g()),
            }),
            0x2 => InvalidationDescriptor::Iotlb {
                scope: match g {
                    1 => IotlbScope::Global,
                    2 => IotlbScope::Domain { did },
                    3 => IotlbScope::Page { did, addr, am, ih },
                    _ => return Err(bad_g()),
                },
                drain_reads: bit(qw0, 7),
                drain_writes: bit(qw0, 6),
            },
            0x3 => InvalidationDescriptor::DeviceTlb {
                pfsid: pfsid_of(qw0),
                max_pending: field(qw0, 20, 16) as u8,
                sid: SourceId(field(qw0, 47, 32) as u16),
                size: bit(qw1, 0),
                addr,
            },
            0x4 => InvalidationDescriptor::InterruptEntryCache(if bit(qw0, 4) {
                InterruptCacheScope::Index {
                    index: field(qw0, 47, 32) as u16,
                    mask: field(qw0, 31, 27) as u8,
                }
            } else {
                InterruptCacheScope::Global
            }),
            0x5 => InvalidationDescriptor::Wait {
                interrupt: bit(qw0, 4),
                status: if bit(qw0, 5) {
                    Some((PhysAddr(qw1 & mask(63, 2)), field(qw0, 63, 32) as u32))
                } else {
                    None
                },
                fence: bit(qw0, 6),
                page_drain: bit(qw0, 7),
            },
            0x6 => InvalidationDescriptor::PasidIotlb {
                did,
                pasid,
                scope: match g {
                    2 => PasidIotlbScope::Pasid,
                    3 => PasidIotlbScope::Page { addr, am, ih },
                    _ => return Err(bad_g()),
                },
            },
            0x7 => InvalidationDescriptor::PasidCache(match g {
                0 => PasidCacheScope::Domain { did },
                1 => PasidCacheScope::Pasid { did, pasid },
                3 => PasidCacheScope::Global,
                _ => return Err(bad_g()),
            }),
            _ => InvalidationDescriptor::PasidDeviceTlb {
                pfsid: pfsid_of(qw0),
                max_pending: field(qw0, 8, 4) as u8,
                sid: SourceId(field(qw0, 31, 16) as u16),
                pasid,
                global: bit(qw1, 0),
                size: bit(qw1, 11),
                addr,
            },
        })
    }

    /// The 256-bit descriptor `words` (IQA_REG.DW = 1).
    ///
    /// # Errors
    /// As [`InvalidationDescriptor::decode`], and [`DecodeError::Reserved`] when
    /// `words[2]` or `words[3]` is not zero.
    pub fn decode_256(words: [u64; 4]) -> Result<Self, DecodeError> {
        Structure::InvalidationDescriptor.check(&words, &[0, 0, u64::MAX, u64::MAX])?;
        Self::decode([words[0], words[1]])
    }
}
