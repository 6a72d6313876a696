//! The debugfs-style text dump.

use crate::format::Format;
use crate::memory::TableMemory;
use crate::sync::epoch;
use crate::table::PageTable;
use std::fmt::Write as _;
use std::io;
use std::ops::ControlFlow;

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
    /// # use pgtable_core::{HostMemory, PageTable, Prot};
    /// # let pt = PageTable::new(TestFormat::new(), std::sync::Arc::new(HostMemory::new())).unwrap();
    /// pt.map_pages(0x20_0000, 0x4000_0000, 0x20_0000, 1, Prot::RW).unwrap();
    /// let text = pt.dump_string();
    /// assert!(text.lines().nth(1).unwrap().starts_with("IOVA"));
    /// assert!(text.lines().nth(2).unwrap().starts_with("0x0000000000200000 |"));
    /// ```
    pub fn dump(&self, out: &mut dyn io::Write) -> io::Result<()> {
        let g = epoch::pin();
        let mut line = String::with_capacity(256);
        self.dump_header(&mut line);
        out.write_all(line.as_bytes())?;
        let end = 1u64 << self.geo.va_bits;
        let mut visit = |path: &[u64], t: &crate::Translation| {
            line.clear();
            let _ = write!(line, "0x{:016x} |", t.iova);
            for raw in path {
                let _ = write!(line, "\t0x{raw:016x}");
            }
            line.push('\n');
            match out.write_all(line.as_bytes()) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => ControlFlow::Break(e),
            }
        };
        match self.visit_leaves(&g, 0, end, &mut visit) {
            ControlFlow::Break(e) => Err(e),
            ControlFlow::Continue(()) => Ok(()),
        }
    }

    /// [`PageTable::dump`] into a string.
    pub fn dump_string(&self) -> String {
        let mut v = Vec::new();
        self.dump(&mut v).expect("writing to a Vec cannot fail");
        String::from_utf8(v).expect("the dump is ASCII")
    }

    fn dump_header(&self, s: &mut String) {
        let geo = &self.geo;
        let _ = writeln!(
            s,
            "# {}: {} levels, IAS {}, OAS {}, granule {:#x}, root {:#x}",
            self.fmt.name(),
            geo.levels,
            geo.ias(),
            geo.oas,
            geo.granule(),
            self.root.phys
        );
        s.push_str("IOVA\t\t");
        for level in (0..geo.levels).rev() {
            let _ = write!(s, "\t{}\t\t", self.fmt.level_name(level));
        }
        s.push('\n');
    }
}
