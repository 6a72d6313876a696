//! Format selection: the names the command line uses, the configuration options, and
//! the one dispatch from a run-time choice to code generic over [`Format`].
//!
//! Every command is written once as a [`FormatJob`], generic over [`CliFormat`];
//! [`FormatSpec::run`] builds the chosen format and calls it.

use crate::args::ConfigArgs;
use crate::error::CliError;
use clap::ValueEnum;
use pgtable_core::{Format, PhysAddr};
use smmu_format::{Arm, ArmConfig, ArmS1, ArmS2, Stage};
use std::fmt;
use vtd_format::{Vtd, VtdFs, VtdSs, VtdStage};

/// The formats, by their command-line names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatKind {
    /// Intel VT-d second stage.
    VtdSs,
    /// Intel VT-d first stage (x86-64 paging).
    VtdFs,
    /// Arm SMMUv3 stage 1 (context descriptor).
    ArmS1,
    /// Arm SMMUv3 stage 2 (stream table entry).
    ArmS2,
}

impl FormatKind {
    /// Every format, in the order `simulate` runs them.
    pub const ALL: [FormatKind; 4] = [
        FormatKind::VtdSs,
        FormatKind::VtdFs,
        FormatKind::ArmS1,
        FormatKind::ArmS2,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            FormatKind::VtdSs => "vtd-ss",
            FormatKind::VtdFs => "vtd-fs",
            FormatKind::ArmS1 => "arm-s1",
            FormatKind::ArmS2 => "arm-s2",
        }
    }

    fn is_vtd(self) -> bool {
        matches!(self, FormatKind::VtdSs | FormatKind::VtdFs)
    }
}

impl fmt::Display for FormatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A format and its configuration, as chosen on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatSpec {
    /// Which format.
    pub kind: FormatKind,
    /// Input address bits.
    pub ias: u32,
    /// Output address bits.
    pub oas: u32,
    /// Granule in bytes.
    pub granule: u64,
    /// VT-d host address width for decoding table pointers (`None`: the format's
    /// default, 52).
    pub haw: Option<u32>,
}

/// Default input and output address bits.
const DEFAULT_BITS: u32 = 48;
/// Default granule.
const DEFAULT_GRANULE: u64 = 4096;

impl FormatSpec {
    /// The format `kind` with the options of `cfg` (defaults where absent).
    ///
    /// # Errors
    /// [`CliError::Usage`] for a granule other than 4K with VT-d, or `haw` with Arm.
    pub fn new(kind: FormatKind, cfg: &ConfigArgs, haw: Option<u32>) -> Result<Self, CliError> {
        let granule = cfg.granule.unwrap_or(DEFAULT_GRANULE);
        if kind.is_vtd() && granule != 4096 {
            return Err(CliError::Usage(format!(
                "--granule {granule:#x}: VT-d tables have a 4K granule only"
            )));
        }
        if haw.is_some() && !kind.is_vtd() {
            return Err(CliError::Usage(format!(
                "--haw applies to VT-d formats only, not {kind}"
            )));
        }
        Ok(FormatSpec {
            kind,
            ias: cfg.ias.unwrap_or(DEFAULT_BITS),
            oas: cfg.oas.unwrap_or(DEFAULT_BITS),
            granule,
            haw,
        })
    }

    /// The configuration options that select this table again, e.g.
    /// `--format vtd-ss --ias 48 --oas 48`.
    pub fn options(&self) -> String {
        let mut s = format!(
            "--format {} --ias {} --oas {}",
            self.kind, self.ias, self.oas
        );
        if !self.kind.is_vtd() {
            s += &format!(" --granule {}", size_name(self.granule));
        }
        s
    }

    fn refused(&self, e: pgtable_core::Error) -> CliError {
        CliError::Config(format!("{}: {e}", self.kind))
    }

    /// Builds the format and runs `job` with it.
    ///
    /// # Errors
    /// [`CliError::Config`] if the format refuses the configuration.
    pub fn run<J: FormatJob>(&self, job: J) -> Result<J::Output, CliError> {
        let arm = ArmConfig::new(self.granule, self.ias, self.oas);
        Ok(match self.kind {
            FormatKind::VtdSs => {
                let mut f = VtdSs::new(self.ias, self.oas).map_err(|e| self.refused(e))?;
                if let Some(haw) = self.haw {
                    f = f.with_haw(haw).map_err(|e| self.refused(e))?;
                }
                job.run(f, self)
            }
            FormatKind::VtdFs => {
                let mut f = VtdFs::new(self.ias, self.oas).map_err(|e| self.refused(e))?;
                if let Some(haw) = self.haw {
                    f = f.with_haw(haw).map_err(|e| self.refused(e))?;
                }
                job.run(f, self)
            }
            FormatKind::ArmS1 => job.run(ArmS1::new(arm).map_err(|e| self.refused(e))?, self),
            FormatKind::ArmS2 => job.run(ArmS2::new(arm).map_err(|e| self.refused(e))?, self),
        })
    }
}

/// `4K`, `64K`, `2M`, ... for power-of-two sizes, hex otherwise.
pub fn size_name(bytes: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes:#x}")
}

/// A command written once for every format.
pub trait FormatJob {
    /// What the command produces.
    type Output;
    /// Runs the command with the format `fmt`, built from `spec`.
    fn run<F: CliFormat>(self, fmt: F, spec: &FormatSpec) -> Self::Output;
}

/// What the command line needs of a format beyond [`Format`]: the names of its
/// register values and the structures a driver programs. The format crates know both;
/// these impls only forward.
pub trait CliFormat: Format {
    /// The names of `hw_info().regs` (unused ones are not named).
    fn register_names(&self) -> &'static [&'static str];

    /// The structures pointing an IOMMU at the table whose top is at `root`, for
    /// domain id / ASID / VMID `id`, with coherent table walks: each name and its
    /// 64-bit words, lowest first.
    fn structures(&self, root: PhysAddr, id: u16) -> Vec<(&'static str, Vec<u64>)>;

    /// An IOVA range (first, last byte) the IOVA allocator must never hand out.
    fn reserved_iova(&self) -> Option<(u64, u64)> {
        None
    }
}

impl<S: VtdStage> CliFormat for Vtd<S> {
    fn register_names(&self) -> &'static [&'static str] {
        Vtd::register_names(self)
    }

    fn structures(&self, root: PhysAddr, id: u16) -> Vec<(&'static str, Vec<u64>)> {
        self.driver_structures(root, id)
    }

    fn reserved_iova(&self) -> Option<(u64, u64)> {
        Some(Vtd::reserved_iova(self))
    }
}

impl<S: Stage> CliFormat for Arm<S> {
    fn register_names(&self) -> &'static [&'static str] {
        Arm::register_names(self)
    }

    fn structures(&self, root: PhysAddr, id: u16) -> Vec<(&'static str, Vec<u64>)> {
        self.driver_structures(root, id)
    }
}
