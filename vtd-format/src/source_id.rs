//! [`SourceId`]: the PCI requester id that selects a device's root and context entries
//! and that fault records and invalidation descriptors carry.

use std::fmt;

/// A PCI requester id: bus `[15:8]`, device `[7:3]`, function `[2:0]`.
///
/// ```
/// use vtd_format::SourceId;
/// let sid = SourceId::new(0x3a, 0x12);
/// assert_eq!(sid, SourceId(0x3a12));
/// assert_eq!((sid.bus(), sid.devfn(), sid.device(), sid.function()), (0x3a, 0x12, 2, 2));
/// assert_eq!(sid.to_string(), "3a:02.2");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SourceId(pub u16);

impl SourceId {
    /// The requester `devfn` on `bus`.
    pub const fn new(bus: u8, devfn: u8) -> Self {
        SourceId((bus as u16) << 8 | devfn as u16)
    }

    /// The bus: the root-table index.
    pub const fn bus(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// Device and function (`dev << 3 | fn`): the context-table index.
    pub const fn devfn(self) -> u8 {
        self.0 as u8
    }

    /// The device number (0..32).
    pub const fn device(self) -> u8 {
        self.devfn() >> 3
    }

    /// The function number (0..8).
    pub const fn function(self) -> u8 {
        self.devfn() & 7
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02x}:{:02x}.{}",
            self.bus(),
            self.device(),
            self.function()
        )
    }
}
