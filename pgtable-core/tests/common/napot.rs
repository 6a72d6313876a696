//! A RISC-V Sv48-like format with Svnapot: a 64 KiB page is 16 level-0 entries, each
//! with N (bit 63) set and the low four bits of its PPN replaced by `0b1000`, so the
//! contiguous encoding changes the output-address field.
//!
//! Entry: V bit 0, R 1, W 2, X 3, U 4, A 6, D 7, PPN bits 53:10 (pa >> 12), N bit 63. A
//! valid entry with R = W = X = 0 points to the next table.

use pgtable_core::{Entry, Fault, Format, Geometry, HwInfo, OwnEntry, PhysAddr, Prot};

const V: u64 = 1 << 0;
const R: u64 = 1 << 1;
const W: u64 = 1 << 2;
const X: u64 = 1 << 3;
const U: u64 = 1 << 4;
const A: u64 = 1 << 6;
const D: u64 = 1 << 7;
const N: u64 = 1 << 63;
const PPN: u64 = ((1u64 << 44) - 1) << 10;
const K64: u64 = 0x1_0000;

/// Sv48 with Svnapot 64 KiB pages.
#[derive(Debug, Clone, Copy, Default)]
pub struct Napot;

fn ppn_of(pa: u64) -> u64 {
    (pa >> 12) << 10
}

fn pa_of(raw: u64) -> u64 {
    ((raw & PPN) >> 10) << 12
}

// SAFETY: a table entry is `V | ppn(pa)` with R = W = X = 0 and N clear; decode and
// own_entry both give back `pa` for any 4 KiB-aligned pa below 2^56. Leaves always have
// R set (or a run's N), so own_entry never takes them for tables; nothing at level 0 is a
// table; every encoding has V set.
unsafe impl Format for Napot {
    fn geometry(&self) -> Geometry {
        Geometry::new(4, 12, 9, 9, 48, 56, 0x1000 | 0x20_0000 | 0x4000_0000)
            .with_leaf_sizes(0, 0x1000 | K64)
    }

    fn name(&self) -> &'static str {
        "Sv48 + Svnapot (test)"
    }

    fn level_name(&self, level: u32) -> &'static str {
        ["L0", "L1", "L2", "L3"][level as usize]
    }

    fn encode_leaf(&self, pa: u64, _level: u32, prot: Prot) -> u64 {
        let mut e = V | R | A | ppn_of(pa);
        if prot.contains(Prot::WRITE) {
            e |= W | D;
        }
        if !prot.contains(Prot::NOEXEC) {
            e |= X;
        }
        if !prot.contains(Prot::PRIV) {
            e |= U;
        }
        e
    }

    fn encode_leaf_run(&self, pa: u64, level: u32, size: u64, _i: usize, prot: Prot) -> u64 {
        assert_eq!(
            (level, size),
            (0, K64),
            "the only run is a 64K level-0 page"
        );
        // Every entry of the run is identical: PPN[3:0] = 0b1000 says "64 KiB".
        (self.encode_leaf(pa, 0, prot) & !PPN) | ppn_of(pa | 0x8000) | N
    }

    fn encode_table(&self, pa: u64, _level: u32) -> u64 {
        V | ppn_of(pa)
    }

    fn decode(&self, raw: u64, level: u32) -> Entry {
        if raw & V == 0 {
            return Entry::Empty;
        }
        if raw & (R | W | X) == 0 {
            if level == 0 || raw & N != 0 {
                return Entry::Fault(Fault::BadType { raw });
            }
            return Entry::Table(pa_of(raw));
        }
        let mut prot = Prot::READ;
        if raw & W != 0 {
            prot |= Prot::WRITE;
        }
        if raw & X == 0 {
            prot |= Prot::NOEXEC;
        }
        if raw & U == 0 {
            prot |= Prot::PRIV;
        }
        let span = 1u64 << (12 + 9 * level);
        if raw & N != 0 {
            // Only the 64 KiB encoding exists: level 0, PPN[3:0] = 0b1000.
            if level != 0 || (raw >> 10) & 0xf != 0b1000 {
                return Entry::Fault(Fault::Reserved { raw, bits: N });
            }
            return Entry::Leaf {
                pa: pa_of(raw) & !(K64 - 1),
                size: K64,
                prot,
            };
        }
        let pa = pa_of(raw);
        if pa & (span - 1) != 0 {
            return Entry::Fault(Fault::Reserved {
                raw,
                bits: (pa & (span - 1)) >> 2,
            });
        }
        Entry::Leaf {
            pa,
            size: span,
            prot,
        }
    }

    fn own_entry(&self, raw: u64, level: u32) -> OwnEntry {
        if raw == 0 {
            OwnEntry::Empty
        } else if level == 0 || raw & (R | W | X) != 0 {
            OwnEntry::Leaf
        } else {
            OwnEntry::Table(pa_of(raw))
        }
    }

    fn effective_prot(&self, prot: Prot) -> Prot {
        Prot::READ | (prot & (Prot::WRITE | Prot::NOEXEC | Prot::PRIV))
    }

    fn hw_info(&self, root_phys: u64) -> HwInfo {
        HwInfo {
            root_phys: PhysAddr(root_phys),
            regs: [(9u64 << 60) | (root_phys >> 12), 0, 0, 0],
        }
    }
}
