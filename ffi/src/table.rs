//! The opaque `struct iommu_pt`: one [`PageTable`] of whichever format the config
//! named, and the dispatch from the C calls to it.

use crate::errno::Errno;
use crate::memory::CMemory;
use crate::types::{
    IOMMU_PT_FMT_ARM_S1, IOMMU_PT_FMT_ARM_S2, IOMMU_PT_FMT_VTD_FS, IOMMU_PT_FMT_VTD_SS,
    iommu_pt_config, iommu_pt_info, iommu_pt_translation,
};
use pgtable_core::{Error, Gather, PageTable, Prot, Result, Translation};
use smmu_format::{ArmConfig, ArmS1, ArmS2};
use std::io;
use std::ops::ControlFlow;
use std::sync::Arc;
use vtd_format::{VtdFs, VtdSs};

/// Address sizes and granule used when the config leaves them 0.
const DEFAULT_BITS: u32 = 48;
const DEFAULT_GRANULE: u32 = 4096;
/// The smallest output size vtd-format (and the core's geometry) accept: one 4K page.
const VTD_MIN_OAS: u32 = 12;

/// One table of each format, over C-selected memory.
#[derive(Debug)]
enum Table {
    VtdSs(PageTable<VtdSs, CMemory>),
    VtdFs(PageTable<VtdFs, CMemory>),
    ArmS1(PageTable<ArmS1, CMemory>),
    ArmS2(PageTable<ArmS2, CMemory>),
}

/// Runs `$body` with `$pt` bound to the table, whatever its format (each arm is
/// monomorphised: no dynamic dispatch below the C call).
macro_rules! dispatch {
    ($table:expr, $pt:ident => $body:expr) => {
        match $table {
            Table::VtdSs($pt) => $body,
            Table::VtdFs($pt) => $body,
            Table::ArmS1($pt) => $body,
            Table::ArmS2($pt) => $body,
        }
    };
}

/// An I/O page table handle (opaque to C).
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct iommu_pt {
    table: Table,
    /// `IOMMU_PT_FMT_*`.
    format: u32,
    /// The configured sizes (defaults resolved), as `iommu_pt_get_info` reports them.
    ias: u32,
    oas: u32,
    /// A VT-d `oas` below 12 bits: the format is built with 12 (the least it encodes),
    /// and every mapping is refused with `-ERANGE` since no page fits below `1 << oas`.
    oas_below_granule: bool,
}

impl iommu_pt {
    /// Builds the table a C config describes.
    ///
    /// # Errors
    /// `EINVAL` for flags, an unknown format, a size, granule or page-size bitmap the
    /// format refuses, or incomplete memory callbacks; `ENOMEM` if the top table cannot be
    /// allocated.
    ///
    /// # Safety
    /// `cfg.mem` must be NULL or point to a readable `iommu_pt_mem_ops`, whose callbacks
    /// obey its contract.
    pub(crate) unsafe fn new(cfg: &iommu_pt_config) -> Result<Self, Errno> {
        if cfg.flags != 0 {
            return Err(Errno::INVAL);
        }
        let or_default = |v: u32, d: u32| if v == 0 { d } else { v };
        let ias = or_default(cfg.ias, DEFAULT_BITS);
        let oas = or_default(cfg.oas, DEFAULT_BITS);
        let granule = or_default(cfg.granule, DEFAULT_GRANULE);
        let bitmap = cfg.pgsize_bitmap;
        // SAFETY: forwarded from the caller.
        let mem = Arc::new(unsafe { CMemory::new(cfg.mem, cfg.mem_ctx) }?);
        let vtd = matches!(cfg.format, IOMMU_PT_FMT_VTD_SS | IOMMU_PT_FMT_VTD_FS);
        if vtd && granule != DEFAULT_GRANULE {
            return Err(Errno::INVAL);
        }
        // C-API.md allows VT-d oas 1..=52; the format encodes at least a 4K page.
        let oas_below_granule = vtd && oas < VTD_MIN_OAS;
        let fmt_oas = if vtd { oas.max(VTD_MIN_OAS) } else { oas };
        let arm = ArmConfig::new(u64::from(granule), ias, fmt_oas);
        let table = match cfg.format {
            IOMMU_PT_FMT_VTD_SS => Table::VtdSs(PageTable::new(
                VtdSs::new(ias, fmt_oas)?.with_pgsize_bitmap(bitmap)?,
                mem,
            )?),
            IOMMU_PT_FMT_VTD_FS => Table::VtdFs(PageTable::new(
                VtdFs::new(ias, fmt_oas)?.with_pgsize_bitmap(bitmap)?,
                mem,
            )?),
            IOMMU_PT_FMT_ARM_S1 => Table::ArmS1(PageTable::new(
                ArmS1::new(arm)?.with_pgsize_bitmap(bitmap)?,
                mem,
            )?),
            IOMMU_PT_FMT_ARM_S2 => Table::ArmS2(PageTable::new(
                ArmS2::new(arm)?.with_pgsize_bitmap(bitmap)?,
                mem,
            )?),
            _ => return Err(Errno::INVAL),
        };
        Ok(iommu_pt {
            table,
            format: cfg.format,
            ias,
            oas,
            oas_below_granule,
        })
    }

    /// Geometry, registers and the live page count.
    pub(crate) fn info(&self) -> iommu_pt_info {
        let info = dispatch!(&self.table, pt => pt.info());
        let geo = info.geometry;
        iommu_pt_info {
            format: self.format,
            levels: geo.levels,
            ias: self.ias,
            oas: self.oas,
            granule: 1 << geo.granule_shift,
            reserved: 0,
            pgsize_bitmap: geo.pgsize_bitmap,
            root_phys: info.hw.root_phys,
            table_pages: info.table_pages,
            regs: info.hw.regs,
        }
    }

    /// `PageTable::map_pages`.
    pub(crate) fn map_pages(
        &self,
        iova: u64,
        pa: u64,
        pgsize: u64,
        pgcount: u64,
        prot: Prot,
    ) -> Result<u64> {
        if self.oas_below_granule {
            // Let the core judge everything but the output range (a count of 0 maps
            // nothing), then refuse: no page ends below `1 << oas`.
            dispatch!(&self.table, pt => pt.map_pages(iova, pa, pgsize, 0, prot))?;
            return self.refuse_output(pa, pgcount);
        }
        dispatch!(&self.table, pt => pt.map_pages(iova, pa, pgsize, pgcount, prot))
    }

    /// `PageTable::map`.
    pub(crate) fn map(&self, iova: u64, pa: u64, len: u64, prot: Prot) -> Result<u64> {
        if self.oas_below_granule {
            dispatch!(&self.table, pt => pt.map(iova, pa, 0, prot))?;
            if len == 0 {
                return Ok(0);
            }
            let granule = u64::from(DEFAULT_GRANULE);
            // The alignment checks `map` makes before its range checks.
            dispatch!(&self.table, pt => pt.map_pages(iova, pa, granule, 0, prot))?;
            if len % granule != 0 {
                return Err(Error::Misaligned {
                    what: "length",
                    value: len,
                    align: granule,
                });
            }
            return self.refuse_output(pa, len);
        }
        dispatch!(&self.table, pt => pt.map(iova, pa, len, prot))
    }

    fn refuse_output(&self, pa: u64, count: u64) -> Result<u64> {
        if count == 0 {
            return Ok(0);
        }
        Err(Error::PhysRange {
            start: pa,
            end: pa.saturating_add(u64::from(DEFAULT_GRANULE)),
            bits: self.oas,
        })
    }

    /// `PageTable::unmap_pages`.
    pub(crate) fn unmap_pages(
        &self,
        iova: u64,
        pgsize: u64,
        pgcount: u64,
        gather: &mut Gather,
    ) -> Result<u64> {
        dispatch!(&self.table, pt => pt.unmap_pages(iova, pgsize, pgcount, gather))
    }

    /// `PageTable::unmap`.
    pub(crate) fn unmap(&self, iova: u64, len: u64, gather: &mut Gather) -> Result<u64> {
        dispatch!(&self.table, pt => pt.unmap(iova, len, gather))
    }

    /// `PageTable::iova_to_phys`.
    pub(crate) fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        dispatch!(&self.table, pt => pt.iova_to_phys(iova))
    }

    /// `PageTable::translate`, in C's layout.
    pub(crate) fn translate(&self, iova: u64) -> Result<iommu_pt_translation> {
        dispatch!(&self.table, pt => pt.translate(iova)).map(|t| to_c(&t))
    }

    /// `PageTable::walk`, handing C layouts to `f`.
    pub(crate) fn walk<B>(
        &self,
        iova: u64,
        len: u64,
        mut f: impl FnMut(&iommu_pt_translation) -> ControlFlow<B>,
    ) -> Result<Option<B>> {
        dispatch!(&self.table, pt => pt.walk(iova, len, |t| f(&to_c(t))))
    }

    /// `PageTable::dump`.
    pub(crate) fn dump(&self, out: &mut dyn io::Write) -> io::Result<()> {
        dispatch!(&self.table, pt => pt.dump(out))
    }
}

fn to_c(t: &Translation) -> iommu_pt_translation {
    iommu_pt_translation {
        iova: t.iova,
        paddr: t.pa,
        size: t.size,
        prot: t.prot.bits(),
        level: t.level,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(format: u32, ias: u32, oas: u32, granule: u32) -> iommu_pt_config {
        iommu_pt_config {
            format,
            ias,
            oas,
            granule,
            pgsize_bitmap: 0,
            flags: 0,
            mem: std::ptr::null(),
            mem_ctx: std::ptr::null_mut(),
        }
    }

    fn build(cfg: &iommu_pt_config) -> Result<iommu_pt, Errno> {
        // SAFETY: `mem` is NULL.
        unsafe { iommu_pt::new(cfg) }
    }

    #[test]
    fn zero_fields_take_the_defaults() {
        let pt = build(&config(IOMMU_PT_FMT_ARM_S1, 0, 0, 0)).unwrap();
        let info = pt.info();
        assert_eq!(
            (info.ias, info.oas, info.granule, info.levels),
            (48, 48, 4096, 4)
        );
        assert_eq!(info.table_pages, 1);
    }

    #[test]
    fn refused_configurations_are_einval() {
        for cfg in [
            config(0, 48, 48, 4096),
            config(5, 48, 48, 4096),
            config(IOMMU_PT_FMT_VTD_SS, 30, 48, 4096),
            config(IOMMU_PT_FMT_VTD_SS, 48, 53, 4096),
            config(IOMMU_PT_FMT_VTD_SS, 48, 48, 16384),
            config(IOMMU_PT_FMT_VTD_FS, 39, 48, 4096),
            config(IOMMU_PT_FMT_ARM_S1, 31, 48, 4096),
            config(IOMMU_PT_FMT_ARM_S2, 52, 52, 4096),
            config(IOMMU_PT_FMT_ARM_S2, 48, 48, 8192),
        ] {
            assert_eq!(build(&cfg).unwrap_err(), Errno::INVAL, "{cfg:?}");
        }
        let mut flags = config(IOMMU_PT_FMT_VTD_SS, 48, 48, 0);
        flags.flags = 1;
        assert_eq!(build(&flags).unwrap_err(), Errno::INVAL);
    }

    #[test]
    fn vtd_output_sizes_below_a_page_build_but_map_nothing() {
        let pt = build(&config(IOMMU_PT_FMT_VTD_SS, 48, 1, 0)).unwrap();
        assert_eq!(pt.info().oas, 1);
        let e = pt.map_pages(0, 0, 0x1000, 1, Prot::RW).unwrap_err();
        assert!(matches!(e, Error::PhysRange { .. }), "{e}");
        let e = pt.map_pages(0, 0, 0x3000, 1, Prot::RW).unwrap_err();
        assert!(matches!(e, Error::UnsupportedSize(_)), "{e}");
        assert_eq!(pt.map_pages(0, 0, 0x1000, 0, Prot::RW), Ok(0));
        assert_eq!(pt.map(0, 0, 0, Prot::RW), Ok(0));
        let e = pt.map(0, 0, 0x1800, Prot::RW).unwrap_err();
        assert!(matches!(e, Error::Misaligned { .. }), "{e}");
        let e = pt.map(0, 0, 0x2000, Prot::RW).unwrap_err();
        assert!(matches!(e, Error::PhysRange { .. }), "{e}");
        assert_eq!(pt.iova_to_phys(0), None);
    }
}
