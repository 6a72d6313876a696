//! `iommu-pt decode` starting from a device: the chain from the IOMMU's root structure
//! to the device's tables, each structure as read, then each IOVA's translation or the
//! fault record the hardware would write.
//!
//! Faults (of the chain or of a translation) are results: printed, exit 0.

use crate::args::DecodeArgs;
use crate::error::CliError;
use pgtable_core::{Access, Format};
use std::fmt::Write as _;
use std::sync::Arc;
use viommu::Perms;
use viommu::memory::ImageMemory;
use viommu::smmu::{SmmuCaps, SmmuUnit};
use viommu::vtd::{ChainLink, VtdCaps, VtdTables, VtdUnit};
use vtd_format::SourceId;

/// The access as letters.
fn access_letters(a: Access) -> String {
    [
        (a.read, 'r'),
        (a.write, 'w'),
        (a.exec, 'x'),
        (a.privileged, 'p'),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, c)| *c)
    .collect()
}

/// What a cached translation grants, in the `--map` letters plus `x` where executable
/// (`p` where only privileged requests get it).
fn perms_letters(p: Perms) -> String {
    let mut s = String::new();
    for (bit, c) in [(Perms::READ, 'r'), (Perms::WRITE, 'w'), (Perms::EXEC, 'x')] {
        if p.intersects(bit) {
            s.push(c);
        }
    }
    if !p.intersects(Perms::USER_READ | Perms::USER_WRITE | Perms::USER_EXEC) {
        s.push('p');
    }
    s
}

/// One line per structure read.
fn links(out: &mut String, links: &[ChainLink]) {
    for l in links {
        let words: Vec<String> = l.words.iter().map(|w| format!("{w:#018x}")).collect();
        let _ = writeln!(
            out,
            "  {:<28} at {:#x}: {}",
            l.name,
            l.pa.0,
            words.join(" ")
        );
    }
}

/// `decode --vtd-root RTADDR --bdf B:D.F [--pasid N]`.
///
/// # Errors
/// A PASID wider than 20 bits.
pub fn vtd(
    args: &DecodeArgs,
    image: Arc<ImageMemory>,
    rtaddr: u64,
    bdf: u16,
) -> Result<String, CliError> {
    let pasid = match args.pasid {
        Some(p) if p >> vtd_format::PASID_BITS != 0 => {
            return Err(CliError::Usage(format!(
                "--pasid {p:#x} is wider than 20 bits"
            )));
        }
        p => p.map(|p| p as u32),
    };
    let caps = VtdCaps {
        haw: args.haw.unwrap_or(48),
        ..VtdCaps::default()
    };
    let unit = Arc::new(VtdUnit::new(image, caps));
    unit.set_root_table(rtaddr);
    let source = SourceId(bdf);
    let mut out = String::new();
    let _ = write!(out, "VT-d device {source}");
    if let Some(p) = pasid {
        let _ = write!(out, " PASID {p:#x}");
    }
    let _ = writeln!(out, ", RTADDR {rtaddr:#x}:");
    let (read, config) = unit.describe_chain(source, pasid);
    links(&mut out, &read);
    let config = match config {
        Ok(c) => c,
        Err(reason) => {
            let _ = writeln!(out, "  chain fault: {reason}");
            return Ok(out);
        }
    };
    let tables = match &config.tables {
        VtdTables::PassThrough => "pass-through".to_string(),
        VtdTables::Second(ss) => format!("{} at {:#x}", ss.format().name(), ss.root_phys().0),
        VtdTables::First(fs) => format!("{} at {:#x}", fs.format().name(), fs.root_phys().0),
        VtdTables::Nested(n) => format!(
            "nested: first stage at GPA {:#x} in the second stage at {:#x}",
            n.stage1_root(),
            n.stage2().root_phys().0
        ),
    };
    let _ = writeln!(
        out,
        "  -> {} mode, domain {}, {tables}{}",
        if config.scalable {
            "scalable"
        } else {
            "legacy"
        },
        config.did,
        if config.fpd {
            ", fault processing disabled"
        } else {
            ""
        }
    );
    let access = args.access;
    for &iova in &args.iovas {
        match unit.translate(source, pasid, iova, access) {
            Ok(m) => {
                let pa = m.translate(iova).unwrap_or(m.pa);
                let _ = writeln!(
                    out,
                    "0x{iova:016x} -> 0x{pa:016x}  size {:#x}  grants {}",
                    m.size,
                    perms_letters(m.perms)
                );
            }
            Err(f) => {
                let [lo, hi] = f.record.encode();
                let _ = writeln!(
                    out,
                    "0x{iova:016x}  fault ({}): {}  record {lo:#018x} {hi:#018x}{}",
                    access_letters(access),
                    f.record.reason,
                    if f.recorded {
                        ""
                    } else {
                        " (not recorded: FPD)"
                    }
                );
            }
        }
    }
    if args.dump {
        let mut text = Vec::new();
        let dumped = match &config.tables {
            VtdTables::Second(ss) => ss.dump(&mut text),
            VtdTables::First(fs) => fs.dump(&mut text),
            VtdTables::Nested(n) => n.stage2().dump(&mut text),
            VtdTables::PassThrough => Ok(()),
        };
        dumped.map_err(|source| CliError::Io {
            path: "dump".into(),
            source,
        })?;
        out.push('\n');
        out.push_str(&String::from_utf8_lossy(&text));
    }
    Ok(out)
}

/// `decode --smmu-strtab STRTAB_BASE [--strtab-cfg CFG] --sid N [--ssid N]`.
///
/// # Errors
/// A StreamID wider than 32 bits, a SubstreamID wider than 20, or `--dump`.
pub fn smmu(args: &DecodeArgs, image: Arc<ImageMemory>, strtab: u64) -> Result<String, CliError> {
    if args.dump {
        return Err(CliError::Usage(
            "--dump with --smmu-strtab: dump the table the chain names with --format and --root"
                .into(),
        ));
    }
    let sid = args.sid.unwrap_or(0);
    let sid = u32::try_from(sid)
        .map_err(|_| CliError::Usage(format!("--sid {sid:#x} is wider than 32 bits")))?;
    let ssid = match args.ssid {
        Some(s) if s >> 20 != 0 => {
            return Err(CliError::Usage(format!(
                "--ssid {s:#x} is wider than 20 bits"
            )));
        }
        s => s.map(|s| s as u32),
    };
    // A linear table of 2^16 StreamIDs unless the configuration says otherwise.
    let cfg = args.strtab_cfg.unwrap_or(16);
    let unit = SmmuUnit::new(image, SmmuCaps::default());
    unit.set_stream_table(strtab, cfg);
    let mut out = String::new();
    let _ = write!(out, "SMMUv3 StreamID {sid:#x}");
    if let Some(s) = ssid {
        let _ = write!(out, " SubstreamID {s:#x}");
    }
    let _ = writeln!(out, ", STRTAB_BASE {strtab:#x}, STRTAB_BASE_CFG {cfg:#x}:");
    let (read, config) = unit.describe_chain(sid, ssid);
    links(&mut out, &read);
    match config {
        Ok(what) => {
            let _ = writeln!(out, "  -> {what}");
        }
        Err(f) => {
            let _ = writeln!(out, "  chain fault: {f}");
            return Ok(out);
        }
    }
    let access = args.access;
    for &iova in &args.iovas {
        match unit.translate(sid, ssid, iova, access) {
            Ok(m) => {
                let pa = m.translate(iova).unwrap_or(m.pa);
                let _ = writeln!(
                    out,
                    "0x{iova:016x} -> 0x{pa:016x}  size {:#x}  grants {}",
                    m.size,
                    perms_letters(m.perms)
                );
            }
            Err(f) => {
                let record = f.event.map_or_else(String::new, |e| {
                    let w = e.encode();
                    format!(
                        "  record {:#018x} {:#018x} {:#018x} {:#018x}",
                        w[0], w[1], w[2], w[3]
                    )
                });
                let _ = writeln!(
                    out,
                    "0x{iova:016x}  fault ({}): {f}{record}",
                    access_letters(access)
                );
            }
        }
    }
    Ok(out)
}
