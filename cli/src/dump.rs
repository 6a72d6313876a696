//! `iommu-pt dump`: build a table from `--map`s in table memory at a fixed physical
//! base, print the debugfs-style dump and the hardware structures, and optionally
//! write the memory as an image for `decode`.

use crate::args::DumpArgs;
use crate::error::CliError;
use crate::formats::{CliFormat, FormatJob, FormatSpec};
use pgtable_core::{ArenaMemory, PageTable};
use pgtable_core::{Iova, PhysAddr};
use std::fmt::Write as _;
use std::sync::Arc;

/// The domain id / ASID / VMID the printed structures carry.
pub const DOMAIN_ID: u16 = 1;

/// The alignment `ArenaMemory` needs of its base.
const BASE_ALIGN: u64 = 1 << 20;

/// Largest table memory `dump` builds.
const MAX_ARENA: u64 = 1 << 30;

/// Runs `dump` and prints its text.
///
/// # Errors
/// Bad configuration or base, a refused `--map`, out of table memory, or a failed write.
pub fn dump(args: &DumpArgs) -> Result<(), CliError> {
    let spec = FormatSpec::new(args.format, &args.config, None)?;
    if !args.base.is_multiple_of(BASE_ALIGN) {
        return Err(CliError::Usage(format!(
            "--base {:#x}: the table memory must start on a 1 MiB boundary",
            args.base
        )));
    }
    if !(1 << 16..=MAX_ARENA).contains(&args.arena_size)
        || args.base.checked_add(args.arena_size).is_none()
    {
        return Err(CliError::Usage(format!(
            "--arena-size {:#x}: must be from 64K to 1G and fit above --base",
            args.arena_size
        )));
    }
    let text = spec.run(Dump { args })??;
    print!("{text}");
    Ok(())
}

/// The `dump` command, for any format.
struct Dump<'a> {
    args: &'a DumpArgs,
}

impl FormatJob for Dump<'_> {
    type Output = Result<String, CliError>;

    fn run<F: CliFormat>(self, fmt: F, spec: &FormatSpec) -> Self::Output {
        let args = self.args;
        let mem = Arc::new(ArenaMemory::new(args.base, args.arena_size as usize));
        let pt = PageTable::new(fmt.clone(), mem.clone()).map_err(|e| {
            CliError::Usage(format!(
                "the top table does not fit in --arena-size {:#x}: {e}",
                args.arena_size
            ))
        })?;
        for m in &args.maps {
            pt.map(Iova(m.iova), PhysAddr(m.pa), m.len, m.prot)
                .map_err(|source| match source {
                    pgtable_core::Error::NoMemory { .. } => CliError::Usage(format!(
                        "--map {}: out of table memory; raise --arena-size (now {:#x})",
                        m.text, args.arena_size
                    )),
                    source => CliError::Map {
                        spec: m.text.clone(),
                        source,
                    },
                })?;
        }
        let mut out = pt.dump_string();
        let info = pt.info();
        let root = info.hw.root_phys;
        let _ = writeln!(out, "\n# hardware registers (id {DOMAIN_ID})");
        for (name, value) in fmt.register_names().iter().zip(info.hw.regs) {
            let _ = writeln!(out, "{name:<14} 0x{value:016x}");
        }
        for (name, words) in fmt.structures(root, DOMAIN_ID) {
            let _ = write!(out, "{name}:");
            for (i, w) in words.iter().enumerate() {
                // Four words to a line keeps 64-byte structures readable.
                if i > 0 && i % 4 == 0 {
                    out.push_str("\n   ");
                }
                let _ = write!(out, " 0x{w:016x}");
            }
            out.push('\n');
        }
        if let Some(path) = &args.image_out {
            std::fs::write(path, mem.snapshot()).map_err(|source| CliError::Io {
                path: path.display().to_string(),
                source,
            })?;
            let _ = writeln!(
                out,
                "\n# image {}: {:#x} bytes at physical base {:#x}, root {root:#x}\n\
                 # decode with: iommu-pt decode --image {} --base {:#x} {} --root {root:#x} IOVA...",
                path.display(),
                mem.capacity(),
                mem.base(),
                path.display(),
                mem.base(),
                spec.options()
            );
        }
        Ok(out)
    }
}
