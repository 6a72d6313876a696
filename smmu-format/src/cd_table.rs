//! The CD table an STE points to: linear, or two levels of L1 CD descriptors and leaf
//! tables, and the arithmetic from a SubstreamID to its CD (docs/formats.md §8.4).

use crate::cd::CD_SIZE;
use crate::error::DecodeError;
use crate::field::Bits;
use pgtable_core::PhysAddr;

/// An L1 CD descriptor's size.
pub const L1_CD_DESCRIPTOR_SIZE: u64 = 8;

/// L1 CD descriptor: V 0, L2Ptr 51:12.
const L1_V: Bits = Bits::bit(0);
const L1_L2PTR: Bits = Bits::new(51, 12);

/// The layout of a CD table (the STE's S1Fmt, `dw0[5:4]`); 0b11 is reserved.
///
/// ```
/// use smmu_format::CdTableFormat;
/// assert_eq!(CdTableFormat::from_code(2), Some(CdTableFormat::TwoLevel64K));
/// assert_eq!(CdTableFormat::TwoLevel64K.leaf_cds(), Some(1024));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CdTableFormat {
    /// 0b00: one array of 2^S1CDMax CDs.
    Linear = 0,
    /// 0b01: L1 descriptors of 4 KiB leaf tables (64 CDs each); Linux never uses it
    /// (docs/formats.md §8.4 ⚠).
    TwoLevel4K = 1,
    /// 0b10: L1 descriptors of 64 KiB leaf tables (1024 CDs each), as Linux builds.
    TwoLevel64K = 2,
}

impl CdTableFormat {
    /// The format of S1Fmt value `code`; `None` for the reserved 0b11.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(CdTableFormat::Linear),
            1 => Some(CdTableFormat::TwoLevel4K),
            2 => Some(CdTableFormat::TwoLevel64K),
            _ => None,
        }
    }

    /// log2 of the CDs in a leaf table of a two-level format.
    const fn leaf_bits(self) -> Option<u32> {
        match self {
            CdTableFormat::Linear => None,
            CdTableFormat::TwoLevel4K => Some(6),
            CdTableFormat::TwoLevel64K => Some(10),
        }
    }

    /// The CDs in one leaf table of a two-level format.
    pub const fn leaf_cds(self) -> Option<u32> {
        match self.leaf_bits() {
            Some(bits) => Some(1 << bits),
            None => None,
        }
    }
}

/// An L1 CD descriptor (64 bits): V and the leaf CD table.
///
/// ```
/// use pgtable_core::PhysAddr;
/// use smmu_format::L1CdDescriptor;
/// let d = L1CdDescriptor { valid: true, l2_table: PhysAddr(0x9_0000) };
/// assert_eq!(d.encode(), 0x9_0001);
/// assert_eq!(L1CdDescriptor::decode(0x9_0001), d);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct L1CdDescriptor {
    /// V (`[0]`): the leaf table exists.
    pub valid: bool,
    /// L2Ptr (`[51:12]`): the leaf table (an IPA when nested); bits outside 51:12 are
    /// not encoded.
    pub l2_table: PhysAddr,
}

impl L1CdDescriptor {
    /// The 64-bit descriptor.
    pub const fn encode(&self) -> u64 {
        L1_V.flag(self.valid) | L1_L2PTR.of(self.l2_table.0)
    }

    /// The descriptor `word` (other bits ignored).
    pub const fn decode(word: u64) -> Self {
        L1CdDescriptor {
            valid: L1_V.is_set(word),
            l2_table: PhysAddr(L1_L2PTR.of(word)),
        }
    }

    /// Where the CD of `ssid` lies in this descriptor's leaf table, for a table of
    /// `format`.
    ///
    /// # Errors
    /// [`DecodeError::BadSubstreamId`] (C_BAD_SUBSTREAMID) when the descriptor is not
    /// valid (docs/formats.md §8.4 ⚠).
    pub const fn cd(&self, ssid: u32, format: CdTableFormat) -> Result<PhysAddr, DecodeError> {
        if !self.valid {
            return Err(DecodeError::BadSubstreamId(ssid));
        }
        let index = match format.leaf_bits() {
            Some(bits) => ssid & ((1 << bits) - 1),
            None => ssid,
        };
        Ok(PhysAddr(
            L1_L2PTR.of(self.l2_table.0) + index as u64 * CD_SIZE,
        ))
    }
}

/// Where a lookup goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CdLocation {
    /// The CD itself.
    Cd(PhysAddr),
    /// An L1 CD descriptor; read it and ask [`L1CdDescriptor::cd`].
    L1Descriptor(PhysAddr),
}

/// A CD table, as an STE describes it ([`crate::StreamTableEntry::cd_table`]).
///
/// ```
/// use pgtable_core::PhysAddr;
/// use smmu_format::{CdLocation, CdTable, CdTableFormat};
/// let t = CdTable { base: PhysAddr(0x10_0000), format: CdTableFormat::TwoLevel64K, s1cdmax: 20 };
/// // SubstreamID 0x1_2345: L1 index 0x48, leaf index 0x345.
/// assert_eq!(t.locate(0x1_2345), Ok(CdLocation::L1Descriptor(PhysAddr(0x10_0240))));
/// let linear = CdTable { format: CdTableFormat::Linear, s1cdmax: 4, ..t };
/// assert_eq!(linear.locate(3), Ok(CdLocation::Cd(PhysAddr(0x10_00c0))));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CdTable {
    /// S1ContextPtr: the linear table or the L1 table.
    pub base: PhysAddr,
    /// S1Fmt.
    pub format: CdTableFormat,
    /// S1CDMax: the table holds 2^S1CDMax CDs.
    pub s1cdmax: u8,
}

impl CdTable {
    /// The first step of finding the CD of `ssid` (use 0 for a transaction that uses
    /// CD 0, see [`crate::StreamTableEntry::substream`]).
    ///
    /// # Errors
    /// [`DecodeError::BadSubstreamId`] (C_BAD_SUBSTREAMID) for `ssid` at or above
    /// 2^S1CDMax.
    pub const fn locate(&self, ssid: u32) -> Result<CdLocation, DecodeError> {
        if self.s1cdmax >= 32 || ssid >> self.s1cdmax != 0 {
            return Err(DecodeError::BadSubstreamId(ssid));
        }
        Ok(match self.format.leaf_bits() {
            None => CdLocation::Cd(PhysAddr(self.base.0 + ssid as u64 * CD_SIZE)),
            Some(bits) => CdLocation::L1Descriptor(PhysAddr(
                self.base.0 + (ssid >> bits) as u64 * L1_CD_DESCRIPTOR_SIZE,
            )),
        })
    }
}
