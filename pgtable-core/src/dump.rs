//! The debugfs-style text dump, for own tables and foreign views alike.

use crate::format::Format;
use crate::memory::TableMemory;
use crate::sync::epoch;
use crate::table::PageTable;
use crate::walk::{Source, Translation, Walker};
use std::fmt::Write as _;
use std::io;
use std::ops::ControlFlow;

/// Writes the tree `w` walks (top table at `root_phys`) as Linux's IOMMU debugfs prints
/// a domain: a comment line naming the configuration, a header naming the levels in the
/// format's own terms, then one line per leaf in ascending IOVA order with the leaf's
/// IOVA and the raw entry at every level from the top down to the leaf.
pub(crate) fn dump_tree<'g, F: Format, S: Source<'g>>(
    w: &Walker<'g, F, S>,
    root_phys: u64,
    budget: u64,
    out: &mut dyn io::Write,
) -> io::Result<()> {
    let geo = w.geo;
    let mut line = String::with_capacity(256);
    let _ = writeln!(
        line,
        "# {}: {} levels, IAS {}, OAS {}, granule {:#x}, root {:#x}",
        w.fmt.name(),
        geo.levels,
        geo.ias(),
        geo.oas,
        geo.granule(),
        root_phys
    );
    line.push_str("IOVA\t\t");
    for level in (0..geo.levels).rev() {
        let _ = write!(line, "\t{}\t\t", w.fmt.level_name(level));
    }
    line.push('\n');
    out.write_all(line.as_bytes())?;
    let mut visit = |path: &[u64], t: &Translation| {
        line.clear();
        let _ = write!(line, "0x{:016x} |", t.iova.0);
        for raw in path {
            let _ = write!(line, "\t0x{raw:016x}");
        }
        line.push('\n');
        match out.write_all(line.as_bytes()) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    };
    let walk = w.leaves(0, (1u64 << geo.va_bits) - 1, budget, false, &mut visit);
    match (walk.flow, walk.exhausted) {
        (ControlFlow::Break(e), _) => Err(e),
        (_, Some(entries)) => Err(io::Error::other(crate::Error::WalkBudget { entries })),
        (ControlFlow::Continue(()), None) => Ok(()),
    }
}

impl<F: Format, M: TableMemory> PageTable<F, M> {
    /// Writes the table as Linux's IOMMU debugfs prints a domain: a comment line naming
    /// the configuration, a header naming the levels in the format's own terms, then one
    /// line per leaf in ascending IOVA order with the leaf's IOVA and the raw entry at
    /// every level from the top down to the leaf.
    ///
    /// Safe concurrently with mutators (the text is then a mix of before and after).
    ///
    /// # Errors
    /// Whatever `out` returns.
    ///
    /// ```
    /// # use pgtable_core::testfmt::TestFormat;
    /// # use pgtable_core::{HostMemory, Iova, PageTable, PhysAddr, Prot};
    /// # let pt = PageTable::new(TestFormat::new(), std::sync::Arc::new(HostMemory::new()))?;
    /// pt.map_pages(Iova(0x20_0000), PhysAddr(0x4000_0000), 0x20_0000, 1, Prot::RW)?;
    /// let text = pt.dump_string();
    /// assert!(text.lines().nth(1).unwrap().starts_with("IOVA"));
    /// assert!(text.lines().nth(2).unwrap().starts_with("0x0000000000200000 |"));
    /// # Ok::<(), pgtable_core::Error>(())
    /// ```
    pub fn dump(&self, out: &mut dyn io::Write) -> io::Result<()> {
        let g = epoch::pin();
        dump_tree(&self.walker(&g), self.root.phys, u64::MAX, out)
    }

    /// [`PageTable::dump`] into a string.
    pub fn dump_string(&self) -> String {
        let mut v = Vec::new();
        self.dump(&mut v).expect("writing to a Vec cannot fail");
        String::from_utf8(v).expect("the dump is ASCII")
    }
}
