//! An AMD-Vi v1-like format with replicated PTEs: a page larger than its level's span is
//! written as identical entries with Next Level = 7, whose size is encoded in the
//! address field (ones from bit 12 up to one below the size's bit: the first 0 bit above
//! bit 12 gives the size, 2^(bit + 1)).
//!
//! Entry: PR bit 0, Next Level bits 11:9 (0 = a leaf of the level's span, 7 = a
//! replicated page, 1..6 = the level of the table pointed to), address bits 51:12,
//! IR bit 61, IW bit 62.

use pgtable_core::{Entry, Fault, Format, Geometry, HwInfo, OwnEntry, PhysAddr, Prot};

const PR: u64 = 1;
const NL_SHIFT: u32 = 9;
const NL: u64 = 7 << NL_SHIFT;
const ADDR: u64 = ((1u64 << 52) - 1) & !0xfff;
const IR: u64 = 1 << 61;
const IW: u64 = 1 << 62;

/// 4 levels of 512 entries; 4K, 16K, 64K, 2M, 8M and 1G pages.
#[derive(Debug, Clone, Copy, Default)]
pub struct AmdV1;

// SAFETY: a table entry is `pa | PR | NL(level)` with NL in 1..=4, which decode and
// own_entry give back as `pa` for any 4 KiB-aligned pa below 2^52; leaves have NL 0 or 7,
// which own_entry never takes for tables; nothing at level 0 is a table; every encoding
// has PR set.
unsafe impl Format for AmdV1 {
    fn geometry(&self) -> Geometry {
        Geometry::new(4, 12, 9, 9, 48, 52, 0x1000 | 0x20_0000 | 0x4000_0000)
            .with_leaf_sizes(0, 0x1000 | 0x4000 | 0x1_0000)
            .with_leaf_sizes(1, 0x20_0000 | 0x80_0000)
    }

    fn name(&self) -> &'static str {
        "AMD-Vi v1 (test)"
    }

    fn level_name(&self, level: u32) -> &'static str {
        ["PTE", "PDE1", "PDE2", "PDE3"][level as usize]
    }

    fn encode_leaf(&self, pa: u64, _level: u32, prot: Prot) -> u64 {
        let mut e = pa | PR;
        if prot.contains(Prot::READ) {
            e |= IR;
        }
        if prot.contains(Prot::WRITE) {
            e |= IW;
        }
        e
    }

    fn encode_leaf_run(&self, pa: u64, level: u32, size: u64, _i: usize, prot: Prot) -> u64 {
        assert!(
            size > 1 << (12 + 9 * level),
            "a run is larger than its level's span"
        );
        // Ones from bit 12 up to (not including) log2(size) - 1: the size's encoding.
        let ones = (size >> 1) - 1 - 0xfff;
        self.encode_leaf(pa | ones, level, prot) | NL
    }

    fn encode_table(&self, pa: u64, level: u32) -> u64 {
        pa | PR | ((level as u64) << NL_SHIFT)
    }

    fn decode(&self, raw: u64, level: u32) -> Entry {
        if raw & PR == 0 {
            return Entry::Empty;
        }
        let nl = (raw & NL) >> NL_SHIFT;
        let addr = raw & ADDR;
        let mut prot = Prot::empty();
        if raw & IR != 0 {
            prot |= Prot::READ;
        }
        if raw & IW != 0 {
            prot |= Prot::WRITE;
        }
        let span = 1u64 << (12 + 9 * level);
        match nl {
            0 => {
                if addr & (span - 1) != 0 {
                    return Entry::Fault(Fault::Reserved {
                        raw,
                        bits: addr & (span - 1),
                    });
                }
                Entry::Leaf {
                    pa: addr,
                    size: span,
                    prot,
                }
            }
            7 => {
                // The first zero address bit at or above 12 gives the size.
                let bit = (!(addr >> 12)).trailing_zeros() + 12;
                let size = 1u64 << (bit + 1);
                if size <= span || size >= span << 9 {
                    return Entry::Fault(Fault::Reserved { raw, bits: NL });
                }
                Entry::Leaf {
                    pa: addr & !(size - 1),
                    size,
                    prot,
                }
            }
            n if level > 0 && n == level as u64 => Entry::Table(addr),
            _ => Entry::Fault(Fault::BadType { raw }),
        }
    }

    fn own_entry(&self, raw: u64, level: u32) -> OwnEntry {
        let nl = (raw & NL) >> NL_SHIFT;
        if raw == 0 {
            OwnEntry::Empty
        } else if level == 0 || nl == 0 || nl == 7 {
            OwnEntry::Leaf
        } else {
            OwnEntry::Table(raw & ADDR)
        }
    }

    fn effective_prot(&self, prot: Prot) -> Prot {
        prot & Prot::RW
    }

    fn hw_info(&self, root_phys: u64) -> HwInfo {
        HwInfo {
            root_phys: PhysAddr(root_phys),
            regs: [root_phys | (4 << 9), 0, 0, 0],
        }
    }
}
