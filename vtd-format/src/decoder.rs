//! The decoding both stages share: present test, PS leaf rule, reserved-bit masks and
//! address fields, with every per-level mask computed once from the configuration so
//! that decoding an entry on the walk's hot path is a few loads and ANDs.

use crate::bits::addr_field;
use crate::levels::{PDPTE, leaf_shift};
use pgtable_core::{Entry, Fault, OwnEntry, Prot};

/// Bit 7 in both stages: page size, a PDPTE/PDE maps a 1 GiB/2 MiB page; reserved in
/// PML4E/PML5E.
pub(crate) const PS: u64 = 1 << 7;

/// Per-level decode masks of one configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decoder {
    /// An entry is present when any of these bits is set (SS: R|W; FS: P).
    present: u64,
    /// Reserved bits of a leaf / non-leaf entry, by core level.
    leaf_rsvd: [u64; 5],
    table_rsvd: [u64; 5],
    /// Output-address field of a leaf, by core level.
    leaf_addr: [u64; 5],
    /// Next-table address field.
    table_addr: u64,
    /// Whether PS=1 (a leaf) is architecturally enabled at a level.
    large_ok: [bool; 5],
}

impl Decoder {
    /// Decodes nothing as present; replaced by [`Decoder::new`] before any use.
    pub(crate) const UNSET: Decoder = Decoder {
        present: 0,
        leaf_rsvd: [0; 5],
        table_rsvd: [0; 5],
        leaf_addr: [0; 5],
        table_addr: 0,
        large_ok: [false; 5],
    };

    /// Masks from a stage's rules: `reserved(level, leaf)`, the output address size
    /// (leaf addresses), the host address width (table addresses), and which levels
    /// the hardware walks as leaves when PS is set.
    pub(crate) fn new(
        present: u64,
        reserved: impl Fn(u32, bool) -> u64,
        oas: u32,
        haw: u32,
        large_ok: impl Fn(u32) -> bool,
    ) -> Self {
        let by_level =
            |f: &dyn Fn(u32) -> u64| -> [u64; 5] { std::array::from_fn(|l| f(l as u32)) };
        Decoder {
            present,
            leaf_rsvd: by_level(&|l| reserved(l, true)),
            table_rsvd: by_level(&|l| reserved(l, false)),
            leaf_addr: by_level(&|l| addr_field(oas, leaf_shift(l))),
            table_addr: addr_field(haw, 12),
            large_ok: std::array::from_fn(|l| l > 0 && l as u32 <= PDPTE && large_ok(l as u32)),
        }
    }

    /// Decodes `raw` at core `level` as the hardware walks it; `prot` reads a leaf's
    /// permissions.
    #[inline(always)]
    pub(crate) fn decode(&self, raw: u64, level: u32, prot: impl FnOnce(u64) -> Prot) -> Entry {
        if raw & self.present == 0 {
            return Entry::Empty;
        }
        let l = (level as usize).min(4);
        let ps = level > 0 && level <= PDPTE && raw & PS != 0;
        if ps && !self.large_ok[l] {
            // A superpage the hardware does not support: a reserved-field fault.
            let bits = (raw & self.table_rsvd[l]) | PS;
            return Entry::Fault(Fault::Reserved { raw, bits });
        }
        let leaf = level == 0 || ps;
        let bits = raw
            & if leaf {
                self.leaf_rsvd[l]
            } else {
                self.table_rsvd[l]
            };
        if bits != 0 {
            return Entry::Fault(Fault::Reserved { raw, bits });
        }
        if !leaf {
            return Entry::Table(raw & self.table_addr);
        }
        Entry::Leaf {
            pa: raw & self.leaf_addr[l],
            size: 1 << leaf_shift(level),
            prot: prot(raw),
        }
    }
}

/// The address field of an entry this library wrote (bits 51:12 in both stages).
const OWN_TABLE_ADDR: u64 = crate::bits::mask(51, 12);

/// The page a leaf this library wrote maps, in either stage: the address field with
/// the bits below the page size masked (FS superpages keep PAT in bit 12), and the
/// level's size (VT-d has no leaf runs).
#[inline(always)]
pub(crate) fn own_leaf(raw: u64, level: u32) -> Option<(u64, u64)> {
    let size = 1u64 << leaf_shift(level);
    Some((raw & OWN_TABLE_ADDR & !(size - 1), size))
}

/// Classifies an entry of a table this library built, in either stage: 0 is empty, a
/// PTE or an entry with PS is a leaf (whatever the hardware's A/D updates did to it),
/// anything else is one of our table pointers (`pa | permission bits`).
#[inline(always)]
pub(crate) fn own_entry(raw: u64, level: u32) -> OwnEntry {
    if raw == 0 {
        OwnEntry::Empty
    } else if level == 0 || raw & PS != 0 {
        OwnEntry::Leaf
    } else {
        OwnEntry::Table(raw & OWN_TABLE_ADDR)
    }
}
