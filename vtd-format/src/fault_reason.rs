//! The VT-d fault reasons: the 8-bit FR code a fault record carries (docs/formats.md §8.3).
//!
//! Codes 0x1–0xE are the legacy-mode reasons; 0x30 and above the scalable-mode ones.
//! Names are this crate's; the codes and conditions follow Linux's fault-reason tables
//! and QEMU's `VTDFaultReason` (0x91 comes from QEMU's first-stage A/D series only).

use std::fmt;

/// A VT-d DMA-remapping fault reason, by its architectural code.
///
/// ```
/// use vtd_format::FaultReason;
/// assert_eq!(FaultReason::RootEntryReserved as u8, 0xA);
/// assert_eq!(FaultReason::from_code(0x3A), Some(FaultReason::SmRootEntryReserved));
/// assert!(FaultReason::PasidEntryInvalid.is_scalable());
/// assert!(!FaultReason::RootEntryNotPresent.is_qualified());
/// assert_eq!(FaultReason::WriteDenied.to_string(), "0x05 (write to a page without write permission)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
#[non_exhaustive]
pub enum FaultReason {
    /// The root entry for the bus has P = 0.
    RootEntryNotPresent = 0x1,
    /// The context entry for the devfn has P = 0.
    ContextEntryNotPresent = 0x2,
    /// A present context entry is mis-programmed: AW not in CAP.SAGAW, TT reserved or
    /// unsupported, or its second-stage root unreadable.
    ContextEntryInvalid = 0x3,
    /// The input address is at or above 2^min(AGAW, MGAW).
    AddressBeyondMgaw = 0x4,
    /// A write (or AtomicOp) met W = 0 in a second-stage entry.
    WriteDenied = 0x5,
    /// A read met R = 0 in a second-stage entry.
    ReadDenied = 0x6,
    /// A next-level second-stage table could not be read.
    PagingEntryAccess = 0x7,
    /// The root entry could not be read (root-table address not backed).
    RootTableAccess = 0x8,
    /// The context entry could not be read (context-table pointer not backed).
    ContextTableAccess = 0x9,
    /// A present root entry has a reserved bit set.
    RootEntryReserved = 0xA,
    /// A present context entry has a reserved bit set.
    ContextEntryReserved = 0xB,
    /// A present second-stage entry has a reserved bit set.
    PagingEntryReserved = 0xC,
    /// A translation or translated request is blocked by the context entry's TT.
    TranslationTypeBlocked = 0xD,
    /// The translation lands in the interrupt range 0xFEE0_0000..=0xFEEF_FFFF.
    InterruptAddress = 0xE,
    /// Scalable mode: the root-table address is invalid.
    SmRootTableAddressInvalid = 0x30,
    /// A request with PASID while RTADDR.TTM is legacy (QEMU: invalid TTM).
    SmLegacyTtm = 0x31,
    /// A page-group request while RTADDR.TTM is legacy.
    SmPageRequestLegacyTtm = 0x32,
    /// Scalable mode: the root entry could not be read.
    SmRootEntryAccess = 0x38,
    /// Scalable mode: the root entry's LP or UP (whichever the devfn uses) is clear.
    SmRootEntryNotPresent = 0x39,
    /// Scalable mode: a present root-entry half has a reserved bit set.
    SmRootEntryReserved = 0x3A,
    /// Scalable mode: the context entry could not be read.
    SmContextEntryAccess = 0x40,
    /// Scalable mode: the context entry has P = 0.
    SmContextEntryNotPresent = 0x41,
    /// Scalable mode: a present context entry has a reserved bit set.
    SmContextEntryReserved = 0x42,
    /// Scalable mode: the context entry is mis-programmed.
    SmContextEntryInvalid = 0x43,
    /// A translation request (ATS) while the context entry's DTE is 0.
    SmDeviceTlbDisabled = 0x44,
    /// A request with PASID while the context entry's PASIDE is 0.
    SmPasidDisabled = 0x45,
    /// The PASID is beyond the directory size the context entry's PDTS gives.
    SmPasidBeyondDirectory = 0x46,
    /// A page request while the context entry's PRE is 0.
    SmPageRequestDisabled = 0x47,
    /// The context entry's RID_PASID is invalid.
    SmRidPasidInvalid = 0x48,
    /// The PASID-directory entry could not be read.
    PasidDirEntryAccess = 0x50,
    /// The PASID-directory entry has P = 0.
    PasidDirEntryNotPresent = 0x51,
    /// A present PASID-directory entry has a reserved bit set.
    PasidDirEntryReserved = 0x52,
    /// The PASID-table entry could not be read.
    PasidEntryAccess = 0x58,
    /// The PASID-table entry has P = 0.
    PasidEntryNotPresent = 0x59,
    /// A present PASID-table entry has a reserved bit set.
    PasidEntryReserved = 0x5A,
    /// The PASID-table entry is mis-programmed: PGTT reserved or unsupported, AW not
    /// in CAP.SAGAW, FSPM unsupported.
    PasidEntryInvalid = 0x5B,
    /// An execute request while the PASID entry's ERE is 0.
    SmExecuteRequestDisabled = 0x5C,
    /// A supervisor request while the PASID entry's SRE is 0.
    SmSupervisorRequestDisabled = 0x5D,
    /// A non-top first-stage entry could not be read.
    FsEntryAccess = 0x70,
    /// A first-stage entry has P = 0.
    FsEntryNotPresent = 0x71,
    /// A present first-stage entry has a reserved bit set.
    FsEntryReserved = 0x72,
    /// The first-stage root (FSPTPTR) could not be read.
    FsRootAccess = 0x73,
    /// Nested: a first-stage entry's address (a GPA) is beyond the second-stage width.
    NestedFsAddressBeyondSs = 0x74,
    /// Nested: the second stage denies reading the first-stage top-level table.
    NestedFsRootReadDenied = 0x75,
    /// Nested: the second stage denies reading a lower first-stage table.
    NestedFsTableReadDenied = 0x76,
    /// Nested: the second stage denies writing a first-stage entry (A/D update).
    NestedFsWriteDenied = 0x77,
    /// Scalable mode: a second-stage entry could not be read.
    SmSsEntryAccess = 0x78,
    /// Scalable mode: a second-stage entry denies the read or write.
    SmSsPermission = 0x79,
    /// Scalable mode: a present second-stage entry has a reserved bit set.
    SmSsEntryReserved = 0x7A,
    /// Scalable mode: the second-stage root (SSPTPTR) is invalid.
    SmSsRootInvalid = 0x7B,
    /// A second-stage A/D update is needed but the walk is not snooped.
    SmSsAdNotSnooped = 0x7C,
    /// The first-stage input address is not canonical.
    FsNonCanonical = 0x80,
    /// A user request met a first-stage entry with U/S = 0.
    FsUserDenied = 0x81,
    /// An execute request met a non-executable leaf.
    SmExecuteDenied = 0x82,
    /// Scalable mode: the input address is beyond the second-stage address width.
    SmAddressBeyondSs = 0x83,
    /// A second-stage entry's address is beyond the maximum.
    SmSsAddressBeyondMax = 0x84,
    /// Scalable mode: no write permission for a Write or AtomicOp.
    SmWriteDenied = 0x85,
    /// Scalable mode: no read permission for a Read or AtomicOp.
    SmReadDenied = 0x86,
    /// Scalable mode: the translation lands in the interrupt range.
    SmInterruptAddress = 0x87,
    /// A first-stage A/D update is needed but the walk is not snooped.
    FsAdNotSnooped = 0x90,
    /// A first-stage A/D write-back failed (QEMU only).
    FsAdUpdateFailed = 0x91,
}

/// Every reason, by ascending code.
const ALL: [FaultReason; 61] = {
    use FaultReason::*;
    [
        RootEntryNotPresent,
        ContextEntryNotPresent,
        ContextEntryInvalid,
        AddressBeyondMgaw,
        WriteDenied,
        ReadDenied,
        PagingEntryAccess,
        RootTableAccess,
        ContextTableAccess,
        RootEntryReserved,
        ContextEntryReserved,
        PagingEntryReserved,
        TranslationTypeBlocked,
        InterruptAddress,
        SmRootTableAddressInvalid,
        SmLegacyTtm,
        SmPageRequestLegacyTtm,
        SmRootEntryAccess,
        SmRootEntryNotPresent,
        SmRootEntryReserved,
        SmContextEntryAccess,
        SmContextEntryNotPresent,
        SmContextEntryReserved,
        SmContextEntryInvalid,
        SmDeviceTlbDisabled,
        SmPasidDisabled,
        SmPasidBeyondDirectory,
        SmPageRequestDisabled,
        SmRidPasidInvalid,
        PasidDirEntryAccess,
        PasidDirEntryNotPresent,
        PasidDirEntryReserved,
        PasidEntryAccess,
        PasidEntryNotPresent,
        PasidEntryReserved,
        PasidEntryInvalid,
        SmExecuteRequestDisabled,
        SmSupervisorRequestDisabled,
        FsEntryAccess,
        FsEntryNotPresent,
        FsEntryReserved,
        FsRootAccess,
        NestedFsAddressBeyondSs,
        NestedFsRootReadDenied,
        NestedFsTableReadDenied,
        NestedFsWriteDenied,
        SmSsEntryAccess,
        SmSsPermission,
        SmSsEntryReserved,
        SmSsRootInvalid,
        SmSsAdNotSnooped,
        FsNonCanonical,
        FsUserDenied,
        SmExecuteDenied,
        SmAddressBeyondSs,
        SmSsAddressBeyondMax,
        SmWriteDenied,
        SmReadDenied,
        SmInterruptAddress,
        FsAdNotSnooped,
        FsAdUpdateFailed,
    ]
};

impl FaultReason {
    /// The FR code.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The reason with FR code `code`; `None` for codes this crate does not define
    /// (0, the interrupt-remapping codes 0x20–0x26, the gaps).
    pub const fn from_code(code: u8) -> Option<FaultReason> {
        let mut i = 0;
        while i < ALL.len() {
            if ALL[i] as u8 == code {
                return Some(ALL[i]);
            }
            i += 1;
        }
        None
    }

    /// Whether this is a scalable-mode reason (code 0x30 and above).
    pub const fn is_scalable(self) -> bool {
        self.code() >= 0x30
    }

    /// Whether the fault is *qualified*: recorded only when the FPD of the entry that
    /// processed the request is 0. Faults met before that entry could be trusted —
    /// reading the root, context, PASID-directory or PASID entry failed, or its reserved
    /// bits were set, and the root-level scalable-mode faults — are always recorded.
    ///
    /// QEMU's `vtd_qualified_faults` pins the legacy codes and 0x50/0x51/0x58/0x59/0x5B;
    /// the other scalable-mode codes follow the same rule (docs/formats.md §8.1 ⚠).
    pub const fn is_qualified(self) -> bool {
        use FaultReason::*;
        !matches!(
            self,
            RootEntryNotPresent
                | RootTableAccess
                | ContextTableAccess
                | RootEntryReserved
                | ContextEntryReserved
                | SmRootTableAddressInvalid
                | SmLegacyTtm
                | SmPageRequestLegacyTtm
                | SmRootEntryAccess
                | SmRootEntryNotPresent
                | SmRootEntryReserved
                | SmContextEntryAccess
                | SmContextEntryReserved
                | PasidDirEntryAccess
                | PasidDirEntryReserved
                | PasidEntryAccess
                | PasidEntryReserved
        )
    }

    /// What the fault means, in a few words.
    pub const fn description(self) -> &'static str {
        use FaultReason::*;
        match self {
            RootEntryNotPresent => "root entry not present",
            ContextEntryNotPresent => "context entry not present",
            ContextEntryInvalid => "context entry mis-programmed",
            AddressBeyondMgaw => "input address beyond the guest address width",
            WriteDenied => "write to a page without write permission",
            ReadDenied => "read from a page without read permission",
            PagingEntryAccess => "next-level page table unreadable",
            RootTableAccess => "root table unreadable",
            ContextTableAccess => "context table unreadable",
            RootEntryReserved => "reserved bit set in a root entry",
            ContextEntryReserved => "reserved bit set in a context entry",
            PagingEntryReserved => "reserved bit set in a page-table entry",
            TranslationTypeBlocked => "request blocked by the context entry's TT",
            InterruptAddress => "translation lands in the interrupt range",
            SmRootTableAddressInvalid => "root-table address invalid",
            SmLegacyTtm => "request with PASID (or invalid TTM) in legacy mode",
            SmPageRequestLegacyTtm => "page request in legacy mode",
            SmRootEntryAccess => "root entry unreadable",
            SmRootEntryNotPresent => "root entry half (LP/UP) not present",
            SmRootEntryReserved => "reserved bit set in a root entry",
            SmContextEntryAccess => "context entry unreadable",
            SmContextEntryNotPresent => "context entry not present",
            SmContextEntryReserved => "reserved bit set in a context entry",
            SmContextEntryInvalid => "context entry mis-programmed",
            SmDeviceTlbDisabled => "translation request with DTE clear",
            SmPasidDisabled => "request with PASID and PASIDE clear",
            SmPasidBeyondDirectory => "PASID beyond the PASID directory",
            SmPageRequestDisabled => "page request with PRE clear",
            SmRidPasidInvalid => "RID_PASID invalid",
            PasidDirEntryAccess => "PASID-directory entry unreadable",
            PasidDirEntryNotPresent => "PASID-directory entry not present",
            PasidDirEntryReserved => "reserved bit set in a PASID-directory entry",
            PasidEntryAccess => "PASID entry unreadable",
            PasidEntryNotPresent => "PASID entry not present",
            PasidEntryReserved => "reserved bit set in a PASID entry",
            PasidEntryInvalid => "PASID entry mis-programmed",
            SmExecuteRequestDisabled => "execute request with ERE clear",
            SmSupervisorRequestDisabled => "supervisor request with SRE clear",
            FsEntryAccess => "first-stage table unreadable",
            FsEntryNotPresent => "first-stage entry not present",
            FsEntryReserved => "reserved bit set in a first-stage entry",
            FsRootAccess => "first-stage root unreadable",
            NestedFsAddressBeyondSs => "first-stage table address beyond the second stage",
            NestedFsRootReadDenied => "second stage denies reading the first-stage root",
            NestedFsTableReadDenied => "second stage denies reading a first-stage table",
            NestedFsWriteDenied => "second stage denies writing a first-stage entry",
            SmSsEntryAccess => "second-stage table unreadable",
            SmSsPermission => "second-stage entry denies the access",
            SmSsEntryReserved => "reserved bit set in a second-stage entry",
            SmSsRootInvalid => "second-stage root invalid",
            SmSsAdNotSnooped => "second-stage A/D update on a non-snooped walk",
            FsNonCanonical => "first-stage input address not canonical",
            FsUserDenied => "user request to a supervisor-only page",
            SmExecuteDenied => "execute request to a non-executable page",
            SmAddressBeyondSs => "input address beyond the second-stage width",
            SmSsAddressBeyondMax => "second-stage entry address beyond the maximum",
            SmWriteDenied => "write without write permission",
            SmReadDenied => "read without read permission",
            SmInterruptAddress => "translation lands in the interrupt range",
            FsAdNotSnooped => "first-stage A/D update on a non-snooped walk",
            FsAdUpdateFailed => "first-stage A/D update failed",
        }
    }
}

impl fmt::Display for FaultReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#04x} ({})", self.code(), self.description())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_spec_codes() {
        use FaultReason::*;
        let pinned = [
            (RootEntryNotPresent, 0x1),
            (TranslationTypeBlocked, 0xD),
            (InterruptAddress, 0xE),
            (SmRootEntryReserved, 0x3A),
            (SmContextEntryReserved, 0x42),
            (SmPageRequestDisabled, 0x47),
            (PasidDirEntryReserved, 0x52),
            (PasidEntryInvalid, 0x5B),
            (FsRootAccess, 0x73),
            (SmSsRootInvalid, 0x7B),
            (SmInterruptAddress, 0x87),
            (FsAdNotSnooped, 0x90),
        ];
        for (reason, code) in pinned {
            assert_eq!(reason.code(), code);
        }
    }

    #[test]
    fn every_code_round_trips_and_the_rest_are_unknown() {
        let mut known = 0;
        for code in 0..=u8::MAX {
            if let Some(r) = FaultReason::from_code(code) {
                assert_eq!(r.code(), code);
                known += 1;
            }
        }
        assert_eq!(known, ALL.len());
        // Legacy 0x1..=0xE, then the scalable-mode groups of docs/formats.md §8.3.
        let expected: Vec<u8> = (0x1..=0xE)
            .chain(0x30..=0x32)
            .chain(0x38..=0x3A)
            .chain(0x40..=0x48)
            .chain(0x50..=0x52)
            .chain(0x58..=0x5D)
            .chain(0x70..=0x7C)
            .chain(0x80..=0x87)
            .chain(0x90..=0x91)
            .collect();
        assert_eq!(ALL.map(FaultReason::code).to_vec(), expected);
        for code in [
            0x0, 0xF, 0x20, 0x26, 0x33, 0x49, 0x5E, 0x7D, 0x88, 0x92, 0xFF,
        ] {
            assert_eq!(FaultReason::from_code(code), None, "{code:#x}");
        }
    }

    #[test]
    fn qualified_faults_follow_qemu() {
        let qualified: Vec<u8> = (0x1..=0xE)
            .filter_map(FaultReason::from_code)
            .filter(|r| r.is_qualified())
            .map(FaultReason::code)
            .collect();
        assert_eq!(qualified, [0x2, 0x3, 0x4, 0x5, 0x6, 0x7, 0xC, 0xD, 0xE]);
        for (code, q) in [
            (0x50, false),
            (0x51, true),
            (0x58, false),
            (0x59, true),
            (0x5B, true),
        ] {
            assert_eq!(
                FaultReason::from_code(code).unwrap().is_qualified(),
                q,
                "{code:#x}"
            );
        }
    }
}
