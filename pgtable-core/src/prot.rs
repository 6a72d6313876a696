//! Mapping permissions and attributes, with the values of Linux's `IOMMU_*` flags.

use bitflags::bitflags;

bitflags! {
    /// What a leaf grants a device, in Linux's `IOMMU_*` bit values (also the C API's
    /// `IOMMU_PT_*`).
    ///
    /// A mapping needs at least one of [`Prot::READ`] and [`Prot::WRITE`]. Formats
    /// that cannot express write-only (Arm stage 1, VT-d first stage) map
    /// `WRITE` alone as `READ | WRITE`.
    ///
    /// ```
    /// use pgtable_core::Prot;
    /// let p = Prot::READ | Prot::WRITE | Prot::CACHE;
    /// assert_eq!(p.bits(), 7);
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub struct Prot: u32 {
        /// Device may read.
        const READ = 1;
        /// Device may write.
        const WRITE = 2;
        /// Coherent / cacheable (VT-d: SNP; Arm: normal write-back, inner shareable).
        const CACHE = 4;
        /// Not executable.
        const NOEXEC = 8;
        /// Device (MMIO) memory type (Arm).
        const MMIO = 16;
        /// Privileged accesses only (Arm S1: AP\[1\]=0; VT-d FS: U/S=0).
        const PRIV = 32;
    }
}

impl Prot {
    /// Read and write.
    pub const RW: Prot = Prot::READ.union(Prot::WRITE);

    /// Whether `bits` is a valid mapping request: no unknown bits, READ or WRITE set.
    pub fn from_request(bits: u32) -> Option<Prot> {
        let p = Prot::from_bits(bits)?;
        p.intersects(Prot::RW).then_some(p)
    }

    /// This leaf grant under the `limits` of the tables above it
    /// ([`Format::table_limits`](crate::Format::table_limits)): their `READ`/`WRITE`
    /// are taken away, their `NOEXEC`/`PRIV` added.
    ///
    /// ```
    /// use pgtable_core::Prot;
    /// let leaf = Prot::RW | Prot::CACHE;
    /// assert_eq!(leaf.limited(Prot::WRITE | Prot::PRIV), Prot::READ | Prot::CACHE | Prot::PRIV);
    /// ```
    #[inline(always)]
    pub const fn limited(self, limits: Prot) -> Prot {
        let taken = limits.intersection(Prot::RW);
        let added = limits.intersection(Prot::NOEXEC.union(Prot::PRIV));
        self.difference(taken).union(added)
    }
}
