//! What a DMA request asks for ([`Access`]) and what a cached translation grants it
//! ([`Perms`]).

use bitflags::bitflags;

/// What one DMA request asks for: pgtable-core's [`Access`](pgtable_core::Access)
/// (read, write, exec, privileged), so a unit hands it to the walk as it is.
pub use pgtable_core::Access;

bitflags! {
    /// What a translation grants, separately to privileged and unprivileged requests
    /// (every hardware encoding maps onto this exactly: Arm AP\[2:1\] with PXN/UXN, VT-d
    /// first-stage U/S, R/W, XD and WPE, VT-d second-stage R/W/X), plus [`Perms::CLEAN`]
    /// for dirty tracking.
    ///
    /// [`Perms::READ`], [`Perms::WRITE`] and [`Perms::EXEC`] grant both privilege levels.
    ///
    /// ```
    /// use viommu::{Access, Perms};
    /// // Arm stage 1, AP = 0b00: read-write, privileged only.
    /// let p = (Perms::READ | Perms::WRITE).privileged_only();
    /// assert!(p.allows(Access { privileged: true, ..Access::WRITE }));
    /// assert!(!p.allows(Access::READ));
    /// // A clean leaf under dirty tracking: reads hit, a write must walk to set the flag.
    /// let p = Perms::READ | Perms::WRITE | Perms::CLEAN;
    /// assert!(p.allows(Access::READ) && !p.allows(Access::WRITE));
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub struct Perms: u8 {
        /// Privileged requests may read.
        const PRIV_READ = 1 << 0;
        /// Privileged requests may write.
        const PRIV_WRITE = 1 << 1;
        /// Privileged requests may fetch instructions.
        const PRIV_EXEC = 1 << 2;
        /// Unprivileged requests may read.
        const USER_READ = 1 << 3;
        /// Unprivileged requests may write.
        const USER_WRITE = 1 << 4;
        /// Unprivileged requests may fetch instructions.
        const USER_EXEC = 1 << 5;
        /// The leaf's dirty flag was clear when it was walked, with dirty tracking on: a
        /// write must walk again (to set it), so caches do not let writes through.
        const CLEAN = 1 << 6;

        /// Everyone may read.
        const READ = Self::PRIV_READ.bits() | Self::USER_READ.bits();
        /// Everyone may write.
        const WRITE = Self::PRIV_WRITE.bits() | Self::USER_WRITE.bits();
        /// Everyone may fetch instructions.
        const EXEC = Self::PRIV_EXEC.bits() | Self::USER_EXEC.bits();
    }
}

impl Perms {
    /// Read and write for everyone.
    pub const RW: Perms = Perms::READ.union(Perms::WRITE);

    /// What a leaf granting `prot` (pgtable-core's, with the tables' limits ANDed in)
    /// grants: read and write to privileged requests, and to unprivileged ones unless
    /// `PRIV`; execution as well unless `NOEXEC`.
    ///
    /// ```
    /// use pgtable_core::Prot;
    /// use viommu::Perms;
    /// assert_eq!(Perms::from_prot(Prot::RW), Perms::RW | Perms::EXEC);
    /// assert_eq!(
    ///     Perms::from_prot(Prot::READ | Prot::PRIV | Prot::NOEXEC),
    ///     Perms::PRIV_READ
    /// );
    /// ```
    pub const fn from_prot(prot: pgtable_core::Prot) -> Perms {
        use pgtable_core::Prot;
        let mut p = Perms::empty();
        if prot.contains(Prot::READ) {
            p = p.union(Perms::READ);
        }
        if prot.contains(Prot::WRITE) {
            p = p.union(Perms::WRITE);
        }
        if !prot.contains(Prot::NOEXEC) {
            p = p.union(Perms::EXEC);
        }
        if prot.contains(Prot::PRIV) {
            p = p.privileged_only();
        }
        p
    }

    /// The same grants, to privileged requests only.
    pub const fn privileged_only(self) -> Perms {
        self.difference(
            Perms::USER_READ
                .union(Perms::USER_WRITE)
                .union(Perms::USER_EXEC),
        )
    }

    /// Whether a request of kind `access` may use this translation: reads need read
    /// permission, writes need write permission and a leaf that is not
    /// [`Perms::CLEAN`], fetches need execute permission, each for the request's
    /// privilege.
    #[inline]
    pub const fn allows(self, access: Access) -> bool {
        let (r, w, x) = if access.privileged {
            (Perms::PRIV_READ, Perms::PRIV_WRITE, Perms::PRIV_EXEC)
        } else {
            (Perms::USER_READ, Perms::USER_WRITE, Perms::USER_EXEC)
        };
        (!access.read || self.contains(r))
            && (!access.write || self.contains(w) && !self.contains(Perms::CLEAN))
            && (!access.exec || self.contains(x))
    }
}
