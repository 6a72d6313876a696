//! The opaque `struct iommu_pt`: one [`PageTable`] of whichever format the config
//! named, and the dispatch from the C calls to it.

use crate::errno::Errno;
use crate::memory::{CFlush, Callbacks};
use crate::types::{
    IOMMU_PT_FMT_ARM_S1, IOMMU_PT_FMT_ARM_S2, IOMMU_PT_FMT_VTD_FS, IOMMU_PT_FMT_VTD_SS,
    iommu_pt_config, iommu_pt_info, iommu_pt_sg, iommu_pt_translation,
};
use pgtable_core::{
    DEFAULT_PAGE_CACHE_BYTES, Error, Format, Gather, HostMemory, Iova, PageTable, PhysAddr, Prot,
    Result, TableMemory, Translation,
};
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

/// One table of each format, on host memory or the caller's: the memory is part of the
/// variant, so one `match` per C call picks a fully monomorphised walker (no dispatch on
/// the memory at every level of the walk).
#[derive(Debug)]
enum Table {
    VtdSs(PageTable<VtdSs, HostMemory>),
    VtdFs(PageTable<VtdFs, HostMemory>),
    ArmS1(PageTable<ArmS1, HostMemory>),
    ArmS2(PageTable<ArmS2, HostMemory>),
    VtdSsMem(PageTable<VtdSs, Callbacks>),
    VtdFsMem(PageTable<VtdFs, Callbacks>),
    ArmS1Mem(PageTable<ArmS1, Callbacks>),
    ArmS2Mem(PageTable<ArmS2, Callbacks>),
}

/// Runs `$body` with `$pt` bound to the table, whatever its format and memory.
macro_rules! dispatch {
    ($table:expr, $pt:ident => $body:expr) => {
        match $table {
            Table::VtdSs($pt) => $body,
            Table::VtdFs($pt) => $body,
            Table::ArmS1($pt) => $body,
            Table::ArmS2($pt) => $body,
            Table::VtdSsMem($pt) => $body,
            Table::VtdFsMem($pt) => $body,
            Table::ArmS1Mem($pt) => $body,
            Table::ArmS2Mem($pt) => $body,
        }
    };
}

/// The format a config names, built (not yet a table).
enum AnyFormat {
    VtdSs(VtdSs),
    VtdFs(VtdFs),
    ArmS1(ArmS1),
    ArmS2(ArmS2),
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
            return Err(Errno::INVAL.because("config flags must be 0"));
        }
        let or_default = |v: u32, d: u32| if v == 0 { d } else { v };
        let ias = or_default(cfg.ias, DEFAULT_BITS);
        let oas = or_default(cfg.oas, DEFAULT_BITS);
        let granule = or_default(cfg.granule, DEFAULT_GRANULE);
        let bitmap = cfg.pgsize_bitmap;
        // SAFETY: forwarded from the caller.
        let mem = unsafe { Callbacks::new(cfg.mem, cfg.mem_ctx) }?;
        let vtd = matches!(cfg.format, IOMMU_PT_FMT_VTD_SS | IOMMU_PT_FMT_VTD_FS);
        if vtd && granule != DEFAULT_GRANULE {
            return Err(Errno::INVAL.because("VT-d tables have a 4 KiB granule"));
        }
        // docs/c-api.md allows VT-d oas 1..=52; the format encodes at least a 4K page.
        let oas_below_granule = vtd && oas < VTD_MIN_OAS;
        let fmt_oas = if vtd { oas.max(VTD_MIN_OAS) } else { oas };
        let arm = ArmConfig::new(u64::from(granule), ias, fmt_oas);
        // SAFETY: `cfg.flush` is NULL or readable (caller's promise).
        let flush = unsafe { CFlush::new(cfg.flush, cfg.flush_ctx) }?;
        let fmt = match cfg.format {
            IOMMU_PT_FMT_VTD_SS => {
                AnyFormat::VtdSs(VtdSs::new(ias, fmt_oas)?.with_pgsize_bitmap(bitmap)?)
            }
            IOMMU_PT_FMT_VTD_FS => {
                AnyFormat::VtdFs(VtdFs::new(ias, fmt_oas)?.with_pgsize_bitmap(bitmap)?)
            }
            IOMMU_PT_FMT_ARM_S1 => AnyFormat::ArmS1(ArmS1::new(arm)?.with_pgsize_bitmap(bitmap)?),
            IOMMU_PT_FMT_ARM_S2 => AnyFormat::ArmS2(ArmS2::new(arm)?.with_pgsize_bitmap(bitmap)?),
            _ => return Err(Errno::INVAL.because("unknown format")),
        };
        let (host, cache) = (HostMemory::new(), DEFAULT_PAGE_CACHE_BYTES);
        let table = match (fmt, mem) {
            (AnyFormat::VtdSs(f), None) => Table::VtdSs(build(f, host, cache, flush)?),
            (AnyFormat::VtdFs(f), None) => Table::VtdFs(build(f, host, cache, flush)?),
            (AnyFormat::ArmS1(f), None) => Table::ArmS1(build(f, host, cache, flush)?),
            (AnyFormat::ArmS2(f), None) => Table::ArmS2(build(f, host, cache, flush)?),
            (AnyFormat::VtdSs(f), Some(m)) => Table::VtdSsMem(build(f, m, 0, flush)?),
            (AnyFormat::VtdFs(f), Some(m)) => Table::VtdFsMem(build(f, m, 0, flush)?),
            (AnyFormat::ArmS1(f), Some(m)) => Table::ArmS1Mem(build(f, m, 0, flush)?),
            (AnyFormat::ArmS2(f), Some(m)) => Table::ArmS2Mem(build(f, m, 0, flush)?),
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
            root_phys: info.hw.root_phys.0,
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
        let (iova, pa) = (Iova(iova), PhysAddr(pa));
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
        let (iova, pa) = (Iova(iova), PhysAddr(pa));
        if self.oas_below_granule {
            dispatch!(&self.table, pt => pt.map(iova, pa, 0, prot))?;
            if len == 0 {
                return Ok(0);
            }
            let granule = u64::from(DEFAULT_GRANULE);
            // The alignment checks `map` makes before its range checks.
            dispatch!(&self.table, pt => pt.map_pages(iova, pa, granule, 0, prot))?;
            if !len.is_multiple_of(granule) {
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

    /// Maps the pieces `sg` one after another from `iova` (as `PageTable::map` each),
    /// under one pin; all or nothing (what was mapped is unmapped through the flush
    /// hook on failure). Returns the bytes mapped.
    pub(crate) fn map_sg(&self, iova: u64, sg: &[iommu_pt_sg], prot: Prot) -> Result<u64> {
        if self.oas_below_granule {
            return match sg.iter().find(|p| p.len != 0) {
                Some(p) => self.map(iova, p.paddr, p.len, prot),
                None => Ok(0),
            };
        }
        dispatch!(&self.table, pt => {
            let s = pt.session();
            let mut at = iova;
            let mut failed = None;
            for piece in sg {
                match s.map(Iova(at), PhysAddr(piece.paddr), piece.len, prot) {
                    Ok(_) => match at.checked_add(piece.len) {
                        Some(next) => at = next,
                        None => {
                            failed = Some(Error::IovaRange {
                                start: Iova(iova),
                                len: u64::MAX,
                                bits: self.ias,
                            });
                            break;
                        }
                    },
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            match failed {
                None => Ok(at - iova),
                Some(e) => {
                    drop(s);
                    let mut g = Gather::new();
                    let _ = pt.unmap(Iova(iova), at - iova, &mut g);
                    pt.flush_and_release(g);
                    Err(match e {
                        Error::Exists { iova, .. } => Error::Exists { iova, mapped: 0 },
                        Error::NoMemory { .. } => Error::NoMemory { mapped: 0 },
                        e => e,
                    })
                }
            }
        })
    }

    fn refuse_output(&self, pa: PhysAddr, count: u64) -> Result<u64> {
        if count == 0 {
            return Ok(0);
        }
        Err(Error::PhysRange {
            start: pa,
            len: u64::from(DEFAULT_GRANULE),
            bits: self.oas,
        })
    }

    /// `PageTable::unmap_pages`, into the caller's gather or, without one, through the
    /// flush hook (`PageTable::flush_and_release`).
    pub(crate) fn unmap_pages(
        &self,
        iova: u64,
        pgsize: u64,
        pgcount: u64,
        gather: Option<&mut Gather>,
    ) -> Result<u64> {
        let iova = Iova(iova);
        dispatch!(&self.table, pt => match gather {
            Some(g) => pt.unmap_pages(iova, pgsize, pgcount, g),
            None => {
                let mut g = Gather::new();
                let r = pt.unmap_pages(iova, pgsize, pgcount, &mut g);
                pt.flush_and_release(g);
                r
            }
        })
    }

    /// `PageTable::unmap` (with a gather) or `PageTable::unmap_now` (without).
    pub(crate) fn unmap(&self, iova: u64, len: u64, gather: Option<&mut Gather>) -> Result<u64> {
        let iova = Iova(iova);
        dispatch!(&self.table, pt => match gather {
            Some(g) => pt.unmap(iova, len, g),
            None => pt.unmap_now(iova, len),
        })
    }

    /// `PageTable::iova_to_phys`.
    pub(crate) fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        dispatch!(&self.table, pt => pt.iova_to_phys(Iova(iova))).map(u64::from)
    }

    /// `PageTable::translate`, in C's layout.
    pub(crate) fn translate(&self, iova: u64) -> Result<iommu_pt_translation> {
        dispatch!(&self.table, pt => pt.translate(Iova(iova))).map(|t| to_c(&t))
    }

    /// `PageTable::walk` over `[iova, iova + len)` (`len == 0`: to the end of the input
    /// space), handing C layouts to `f`.
    pub(crate) fn walk<B>(
        &self,
        iova: u64,
        len: u64,
        mut f: impl FnMut(&iommu_pt_translation) -> ControlFlow<B>,
    ) -> Result<Option<B>> {
        let start = Iova(iova);
        if len == 0 {
            return dispatch!(&self.table, pt => pt.walk(start.., |t| f(&to_c(t))));
        }
        let end = iova.checked_add(len).ok_or(Error::IovaRange {
            start,
            len,
            bits: self.ias,
        })?;
        dispatch!(&self.table, pt => pt.walk(start..Iova(end), |t| f(&to_c(t))))
    }

    /// `PageTable::set_dirty_tracking`.
    pub(crate) fn set_dirty_tracking(&self, on: bool) -> Result<()> {
        dispatch!(&self.table, pt => pt.set_dirty_tracking(on))
    }

    /// `PageTable::read_and_clear_dirty`.
    pub(crate) fn read_and_clear_dirty(
        &self,
        iova: u64,
        len: u64,
        page_size: u64,
        bitmap: &mut [u64],
        flags: pgtable_core::DirtyFlags,
    ) -> Result<()> {
        let iova = Iova(iova);
        dispatch!(&self.table, pt => pt.read_and_clear_dirty(iova, len, page_size, bitmap, flags))
    }

    /// `PageTable::mark_dirty`.
    pub(crate) fn mark_dirty(&self, iova: u64) -> Result<bool> {
        dispatch!(&self.table, pt => pt.mark_dirty(Iova(iova)))
    }

    /// `PageTable::dump`.
    pub(crate) fn dump(&self, out: &mut dyn io::Write) -> io::Result<()> {
        dispatch!(&self.table, pt => pt.dump(out))
    }
}

/// A table of format `F` over `mem` with a page cache of `cache` bytes (host memory
/// recycles table pages; the caller's memory, a DMA pool or guest RAM, gets each page
/// back as soon as the epoch frees it) and the caller's flush hook, if any.
fn build<F: Format, M: TableMemory>(
    fmt: F,
    mem: M,
    cache: usize,
    flush: Option<CFlush>,
) -> Result<PageTable<F, M>> {
    let builder = PageTable::builder(fmt, Arc::new(mem)).page_cache_bytes(cache);
    match flush {
        Some(hook) => builder.flush(hook).build(),
        None => builder.build(),
    }
}

fn to_c(t: &Translation) -> iommu_pt_translation {
    iommu_pt_translation {
        iova: t.iova.0,
        paddr: t.pa.0,
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
            flush: std::ptr::null(),
            flush_ctx: std::ptr::null_mut(),
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
