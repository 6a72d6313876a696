//! `iommu-pt decode`: translate IOVAs through tables stored in a raw physical-memory
//! image, as the IOMMU would, reporting each fault with its reason.
//!
//! A fault is a result (printed, exit 0); an image or root that cannot be decoded at
//! all is an error (one line on stderr, exit 1).

use crate::args::{DecodeArgs, prot_letters};
use crate::error::CliError;
use crate::formats::{CliFormat, FormatJob, FormatSpec};
use pgtable_core::{Error, Fault, ForeignTable, Format, Iova, PhysAddr, Translation};
use std::fmt::Write as _;
use std::sync::Arc;
use viommu::memory::ImageMemory;

/// Runs `decode` and prints its text.
///
/// # Errors
/// Bad configuration, an unreadable or malformed image, a root outside it, or tables
/// that cannot be dumped (shared or cyclic).
pub fn decode(args: &DecodeArgs) -> Result<(), CliError> {
    let open = || -> Result<Arc<ImageMemory>, CliError> {
        if args.image.is_dir() {
            return Err(CliError::Image(format!(
                "{}: a directory, not a memory image",
                args.image.display()
            )));
        }
        Ok(Arc::new(
            ImageMemory::open(&args.image, args.base).map_err(image_error)?,
        ))
    };
    // From a device: the chain alone is something to show.
    if let (Some(rtaddr), Some(bdf)) = (args.vtd_root, args.bdf) {
        print!("{}", crate::chain::vtd(args, open()?, rtaddr, bdf)?);
        return Ok(());
    }
    if let Some(strtab) = args.smmu_strtab {
        print!("{}", crate::chain::smmu(args, open()?, strtab)?);
        return Ok(());
    }
    if args.iovas.is_empty() && !args.dump {
        return Err(CliError::Usage(
            "nothing to decode: give IOVAs to translate, or --dump".into(),
        ));
    }
    let (Some(format), Some(root)) = (args.format, args.root) else {
        return Err(CliError::Usage(
            "give --format and --root, or a device (--vtd-root with --bdf, --smmu-strtab with --sid)".into(),
        ));
    };
    let spec = FormatSpec::new(format, &args.config, args.haw)?;
    let image = open()?;
    let text = spec.run(Decode { args, image, root })??;
    print!("{text}");
    Ok(())
}

/// An image that cannot be opened is an I/O error; one that cannot be memory says why.
pub(crate) fn image_error(e: viommu::Error) -> CliError {
    match e {
        viommu::Error::Io { path, source } => CliError::Io {
            path: path.display().to_string(),
            source,
        },
        viommu::Error::MisalignedBase { base } => {
            CliError::Image(format!("--base {base:#x} is not 8-byte aligned"))
        }
        other => CliError::Image(other.to_string()),
    }
}

/// The `decode` command, for any format.
struct Decode<'a> {
    args: &'a DecodeArgs,
    image: Arc<ImageMemory>,
    root: u64,
}

impl FormatJob for Decode<'_> {
    type Output = Result<String, CliError>;

    fn run<F: CliFormat>(self, fmt: F, _spec: &FormatSpec) -> Self::Output {
        let (args, image, root) = (self.args, self.image, self.root);
        let geo = fmt.geometry();
        let top_bytes = geo.table_bytes(geo.top()) as u64;
        if image.len() < top_bytes {
            return Err(CliError::Image(format!(
                "{}: the image is {} bytes, shorter than one top table ({top_bytes} bytes)",
                args.image.display(),
                image.len()
            )));
        }
        if root % top_bytes != 0 {
            return Err(CliError::Image(format!(
                "--root {root:#x} is not aligned to the top table's size ({top_bytes:#x})"
            )));
        }
        let end = image.base() + (image.len() - 1);
        let table =
            ForeignTable::new(fmt.clone(), image.clone(), PhysAddr(root)).map_err(|_| {
                CliError::Image(format!(
                    "--root {root:#x}: the top table ({top_bytes:#x} bytes) is not inside the image \
                 ({:#x}..={end:#x})",
                    image.base()
                ))
            })?;
        let mut out = String::new();
        for &iova in &args.iovas {
            let _ = writeln!(out, "{}", describe(&fmt, iova, table.translate(Iova(iova))));
        }
        if args.dump {
            // A dump of shared or cyclic tables would show each table once, which
            // misrepresents what the IOMMU walks: refuse them instead.
            if let Some(shared) = table.shared_table() {
                return Err(CliError::Image(format!(
                    "the table at {:#x} is reached twice (from the {} entry for IOVA {:#x}): \
                     the tables are cyclic or shared, refusing to dump them",
                    shared.phys,
                    fmt.level_name(shared.level),
                    shared.iova
                )));
            }
            let mut text = Vec::new();
            table.dump(&mut text).map_err(|source| CliError::Io {
                path: "dump".into(),
                source,
            })?;
            if !args.iovas.is_empty() {
                out.push('\n');
            }
            out.push_str(&String::from_utf8_lossy(&text));
        }
        Ok(out)
    }
}

/// One line for one IOVA: where it goes, or why the IOMMU would fault.
fn describe<F: Format>(fmt: &F, iova: u64, r: Result<Translation, Error>) -> String {
    match r {
        Ok(t) => format!(
            "0x{iova:016x} -> 0x{:016x}  size {:#x}  prot {}  level {} ({})",
            t.pa,
            t.size,
            prot_letters(t.prot),
            t.level,
            fmt.level_name(t.level)
        ),
        Err(Error::NotMapped(_)) => format!("0x{iova:016x}  fault: not present"),
        Err(Error::IovaRange { bits, .. }) => format!(
            "0x{iova:016x}  fault: {} (beyond the {bits}-bit input address space)",
            Fault::InputRange
        ),
        Err(Error::Fault { fault, .. }) => format!("0x{iova:016x}  fault: {fault}"),
        Err(e) => format!("0x{iova:016x}  fault: {e}"),
    }
}
