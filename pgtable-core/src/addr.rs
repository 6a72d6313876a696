//! Typed addresses: an [`Iova`] (what a device puts on the bus) is not a [`PhysAddr`]
//! (what the IOMMU translates it to), and the type system keeps them apart.
//!
//! Both are plain `u64` newtypes (`#[repr(transparent)]`, `Copy`), print in hex, and do
//! the few pieces of arithmetic page-table code needs: add a byte offset, take the
//! distance between two addresses, test and round alignment.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};

macro_rules! address {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[repr(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The address `raw`.
            #[inline(always)]
            pub const fn new(raw: u64) -> Self {
                $name(raw)
            }

            /// The address as a plain number.
            #[inline(always)]
            pub const fn get(self) -> u64 {
                self.0
            }

            /// Whether the address is a multiple of `align` (a power of two).
            #[inline(always)]
            pub const fn is_aligned(self, align: u64) -> bool {
                self.0 & (align - 1) == 0
            }

            /// The address rounded down to a multiple of `align` (a power of two).
            #[inline(always)]
            pub const fn align_down(self, align: u64) -> Self {
                $name(self.0 & !(align - 1))
            }

            /// The offset of the address inside its `align`-sized block (a power of two).
            #[inline(always)]
            pub const fn offset_in(self, align: u64) -> u64 {
                self.0 & (align - 1)
            }

            /// `self + bytes`, or `None` on overflow.
            #[inline(always)]
            pub const fn checked_add(self, bytes: u64) -> Option<Self> {
                match self.0.checked_add(bytes) {
                    Some(v) => Some($name(v)),
                    None => None,
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }

        impl fmt::LowerHex for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }

        impl Add<u64> for $name {
            type Output = $name;
            #[inline(always)]
            fn add(self, bytes: u64) -> $name {
                $name(self.0 + bytes)
            }
        }

        impl AddAssign<u64> for $name {
            #[inline(always)]
            fn add_assign(&mut self, bytes: u64) {
                self.0 += bytes;
            }
        }

        impl Sub<u64> for $name {
            type Output = $name;
            #[inline(always)]
            fn sub(self, bytes: u64) -> $name {
                $name(self.0 - bytes)
            }
        }

        /// The distance in bytes between two addresses.
        impl Sub<$name> for $name {
            type Output = u64;
            #[inline(always)]
            fn sub(self, other: $name) -> u64 {
                self.0 - other.0
            }
        }

        impl From<$name> for u64 {
            #[inline(always)]
            fn from(a: $name) -> u64 {
                a.0
            }
        }
    };
}

address! {
    /// An I/O virtual address: the address a device uses for DMA, the input of a table.
    ///
    /// ```
    /// use pgtable_core::Iova;
    /// let iova = Iova(0x1234_5678);
    /// assert_eq!(iova.align_down(0x1000), Iova(0x1234_5000));
    /// assert_eq!(iova.offset_in(0x1000), 0x678);
    /// assert_eq!(iova + 0x1000 - iova, 0x1000);
    /// assert_eq!(format!("{iova:?} {iova}"), "Iova(0x12345678) 0x12345678");
    /// ```
    Iova
}

address! {
    /// A physical (output) address: what a leaf maps to, and where table pages live as
    /// the IOMMU sees them. With [`HostMemory`](crate::HostMemory) a table page's
    /// physical address is its host virtual address.
    ///
    /// ```
    /// use pgtable_core::PhysAddr;
    /// let pa = PhysAddr(0x8_0000_0000);
    /// assert!(pa.is_aligned(0x20_0000));
    /// assert_eq!(format!("{pa:?}"), "PhysAddr(0x800000000)");
    /// ```
    PhysAddr
}
