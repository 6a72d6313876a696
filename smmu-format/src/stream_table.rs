//! The stream table: where the SMMU finds a StreamID's STE. The STRTAB_BASE and
//! STRTAB_BASE_CFG register values, the linear and two-level layouts with their L1
//! descriptors, and the arithmetic from a StreamID to its STE (docs/formats.md §8.4).

use crate::error::{DecodeError, Structure};
use crate::field::Bits;
use crate::ste::STE_SIZE;
use pgtable_core::PhysAddr;

/// An L1 stream table descriptor's size.
pub const L1_STREAM_DESCRIPTOR_SIZE: u64 = 8;

/// STRTAB_BASE: ADDR 51:6, RA 62.
const BASE_ADDR: Bits = Bits::new(51, 6);
const BASE_RA: Bits = Bits::bit(62);
/// STRTAB_BASE_CFG: LOG2SIZE 5:0, SPLIT 10:6, FMT 17:16.
const CFG_LOG2SIZE: Bits = Bits::new(5, 0);
const CFG_SPLIT: Bits = Bits::new(10, 6);
const CFG_FMT: Bits = Bits::new(17, 16);
/// L1STD: SPAN 4:0, L2Ptr 51:6.
const L1_SPAN: Bits = Bits::new(4, 0);
const L1_L2PTR: Bits = Bits::new(51, 6);

/// The stream table's layout (STRTAB_BASE_CFG.FMT); 0b10 and 0b11 are reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum StreamTableFormat {
    /// 0b00: one array of 2^LOG2SIZE STEs.
    #[default]
    Linear = 0,
    /// 0b01: L1 descriptors, each pointing to an array of up to 2^SPLIT STEs.
    TwoLevel = 1,
}

/// The STRTAB_BASE register value (MMIO offset 0x80).
///
/// ```
/// use pgtable_core::PhysAddr;
/// use smmu_format::StreamTableBase;
/// let b = StreamTableBase { table: PhysAddr(0x8000_0000), read_allocate: true };
/// assert_eq!(b.encode(), 0x4000_0000_8000_0000);
/// assert_eq!(StreamTableBase::decode(0x4000_0000_8000_0000), b);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StreamTableBase {
    /// ADDR (`[51:6]`): the linear table or the L1 table, aligned to its size; bits
    /// outside 51:6 are not encoded.
    pub table: PhysAddr,
    /// RA (`[62]`): read-allocate hint for table fetches.
    pub read_allocate: bool,
}

impl StreamTableBase {
    /// The register value.
    pub const fn encode(&self) -> u64 {
        BASE_ADDR.of(self.table.0) | BASE_RA.flag(self.read_allocate)
    }

    /// The register value `value` (other bits ignored).
    pub const fn decode(value: u64) -> Self {
        StreamTableBase {
            table: PhysAddr(BASE_ADDR.of(value)),
            read_allocate: BASE_RA.is_set(value),
        }
    }
}

/// The STRTAB_BASE_CFG register value (MMIO offset 0x88).
///
/// ```
/// use smmu_format::{StreamTableConfig, StreamTableFormat};
/// // Linux: 2-level, SPLIT 8, 2^16 StreamIDs.
/// let cfg = StreamTableConfig { log2size: 16, split: 8, format: StreamTableFormat::TwoLevel };
/// assert_eq!(cfg.encode(), 0x1_0210);
/// assert_eq!(StreamTableConfig::decode(0x1_0210), Ok(cfg));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StreamTableConfig {
    /// LOG2SIZE (`[5:0]`): StreamIDs below 2^LOG2SIZE are valid (the SMMU also caps it
    /// at IDR1.SIDSIZE).
    pub log2size: u8,
    /// SPLIT (`[10:6]`): two-level tables index the L1 table with StreamID\[LOG2SIZE-1:
    /// SPLIT\] (6, 8 or 10).
    pub split: u8,
    /// FMT (`[17:16]`).
    pub format: StreamTableFormat,
}

impl StreamTableConfig {
    /// The register value.
    pub const fn encode(&self) -> u64 {
        CFG_LOG2SIZE.put(self.log2size as u64)
            | CFG_SPLIT.put(self.split as u64)
            | CFG_FMT.put(self.format as u64)
    }

    /// The register value `value` (other bits ignored).
    ///
    /// # Errors
    /// [`DecodeError::Illegal`] for a reserved FMT.
    pub const fn decode(value: u64) -> Result<Self, DecodeError> {
        let format = match CFG_FMT.get(value) {
            0 => StreamTableFormat::Linear,
            1 => StreamTableFormat::TwoLevel,
            fmt => return Err(Structure::StreamTableConfig.illegal("FMT", fmt)),
        };
        Ok(StreamTableConfig {
            log2size: CFG_LOG2SIZE.get(value) as u8,
            split: CFG_SPLIT.get(value) as u8,
            format,
        })
    }
}

/// An L1 stream table descriptor (64 bits): SPAN and the L2 array of STEs.
///
/// ```
/// use pgtable_core::PhysAddr;
/// use smmu_format::L1StreamDescriptor;
/// // Linux: SPAN = SPLIT + 1 = 9, 256 STEs.
/// let d = L1StreamDescriptor { span: 9, l2_table: PhysAddr(0x9_0000) };
/// assert_eq!(d.encode(), 0x9_0009);
/// assert_eq!(L1StreamDescriptor::decode(0x9_0009), d);
/// assert_eq!(d.ste(0x1ff, 8), Ok(PhysAddr(0x9_3fc0)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct L1StreamDescriptor {
    /// SPAN (`[4:0]`): the L2 array holds 2^(SPAN-1) STEs; 0 = no L2 array.
    pub span: u8,
    /// L2Ptr (`[51:6]`): the L2 array, aligned to its size; bits outside 51:6 are not
    /// encoded.
    pub l2_table: PhysAddr,
}

impl L1StreamDescriptor {
    /// The 64-bit descriptor.
    pub const fn encode(&self) -> u64 {
        L1_SPAN.put(self.span as u64) | L1_L2PTR.of(self.l2_table.0)
    }

    /// The descriptor `word` (other bits ignored).
    pub const fn decode(word: u64) -> Self {
        L1StreamDescriptor {
            span: L1_SPAN.get(word) as u8,
            l2_table: PhysAddr(L1_L2PTR.of(word)),
        }
    }

    /// Where the STE of `sid` lies in this descriptor's L2 array, in a table of split
    /// `split`.
    ///
    /// # Errors
    /// [`DecodeError::BadStreamId`] (C_BAD_STREAMID) when SPAN is 0 or the L2 index
    /// (`sid mod 2^split`) is at or beyond the array's 2^(SPAN-1) STEs (the
    /// specification's bound; QEMU allows up to 2^SPAN and raises C_BAD_STE beyond,
    /// docs/formats.md §8.8 #5 ⚠).
    pub const fn ste(&self, sid: u32, split: u8) -> Result<PhysAddr, DecodeError> {
        let index = (sid as u64) & ((1u64 << (split & 31)) - 1);
        if self.span == 0 || self.span > 32 || index >> (self.span - 1) != 0 {
            return Err(DecodeError::BadStreamId(sid));
        }
        Ok(PhysAddr(L1_L2PTR.of(self.l2_table.0) + index * STE_SIZE))
    }
}

/// Where a stream table lookup goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SteLocation {
    /// The STE itself.
    Ste(PhysAddr),
    /// An L1 descriptor; read it and ask [`L1StreamDescriptor::ste`].
    L1Descriptor(PhysAddr),
}

/// A stream table, as STRTAB_BASE and STRTAB_BASE_CFG describe it.
///
/// ```
/// use pgtable_core::PhysAddr;
/// use smmu_format::{SteLocation, StreamTable, StreamTableConfig, StreamTableFormat};
/// let linear = StreamTable {
///     base: PhysAddr(0x8000_0000),
///     config: StreamTableConfig { log2size: 8, split: 0, format: StreamTableFormat::Linear },
/// };
/// assert_eq!(linear.locate(0x10), Ok(SteLocation::Ste(PhysAddr(0x8000_0400))));
/// assert!(linear.locate(0x100).is_err()); // C_BAD_STREAMID
/// let two = StreamTable {
///     config: StreamTableConfig { log2size: 16, split: 8, format: StreamTableFormat::TwoLevel },
///     ..linear
/// };
/// assert_eq!(two.locate(0x1234), Ok(SteLocation::L1Descriptor(PhysAddr(0x8000_0090))));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamTable {
    /// STRTAB_BASE.ADDR.
    pub base: PhysAddr,
    /// STRTAB_BASE_CFG.
    pub config: StreamTableConfig,
}

impl StreamTable {
    /// The first step of finding the STE of `sid`.
    ///
    /// # Errors
    /// [`DecodeError::BadStreamId`] (C_BAD_STREAMID) for `sid` at or above
    /// 2^LOG2SIZE.
    pub const fn locate(&self, sid: u32) -> Result<SteLocation, DecodeError> {
        let log2size = self.config.log2size as u64;
        if log2size < 32 && (sid as u64) >> log2size != 0 {
            return Err(DecodeError::BadStreamId(sid));
        }
        Ok(match self.config.format {
            StreamTableFormat::Linear => {
                SteLocation::Ste(PhysAddr(BASE_ADDR.of(self.base.0) + sid as u64 * STE_SIZE))
            }
            StreamTableFormat::TwoLevel => SteLocation::L1Descriptor(PhysAddr(
                BASE_ADDR.of(self.base.0)
                    + ((sid as u64) >> (self.config.split & 31)) * L1_STREAM_DESCRIPTOR_SIZE,
            )),
        })
    }
}
