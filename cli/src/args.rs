//! The command line: subcommands, options, and the parsers for numbers, sizes,
//! durations and `--map` specifications.

use crate::formats::FormatKind;
use clap::{Args, Parser, Subcommand};
use pgtable_core::Prot;
use std::path::PathBuf;
use std::time::Duration;

/// Lock-free, epoch-reclaimed IOMMU I/O page tables (Intel VT-d, Arm SMMUv3).
///
/// Without a subcommand, runs `simulate`: a device DMA workload through one IOMMU
/// domain per format, with a debugfs-style dumper reading the tables all along.
///
/// Numbers are decimal or 0x-prefixed hex; sizes also take K, M, G, T suffixes
/// (powers of 1024), e.g. 4K, 2M, 1G.
#[derive(Debug, Parser)]
#[command(name = "iommu-pt", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do (default: simulate).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `simulate`, when no subcommand is given.
    #[command(flatten)]
    pub simulate: SimulateArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a DMA workload (map, translate, unmap, invalidate) on N device queues while
    /// a debug thread dumps the tables, and print a summary per format.
    Simulate(SimulateArgs),
    /// Build a table from --map arguments and print its debugfs-style dump and the
    /// hardware structures that point an IOMMU at it.
    Dump(DumpArgs),
    /// Decode tables stored in a raw physical-memory image, as the IOMMU would walk them.
    Decode(DecodeArgs),
}

/// The table configuration every command takes.
#[derive(Debug, Clone, Copy, Args)]
pub struct ConfigArgs {
    /// Input (IOVA) address bits [default: 48]
    #[arg(long, value_name = "BITS", value_parser = parse_bits)]
    pub ias: Option<u32>,
    /// Output (physical) address bits [default: 48]
    #[arg(long, value_name = "BITS", value_parser = parse_bits)]
    pub oas: Option<u32>,
    /// Translation granule: 4K, 16K or 64K for Arm, 4K for VT-d [default: 4K]
    #[arg(long, value_name = "SIZE", value_parser = parse_u64)]
    pub granule: Option<u64>,
}

/// Options of `simulate`.
#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Only this format [default: all four, one after another]
    #[arg(long, value_enum)]
    pub format: Option<FormatKind>,
    /// Table configuration.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Total run time, split evenly between the runs (one per format; four per format
    /// with --compare): seconds (0.5, 2s) or milliseconds (300ms)
    #[arg(long, value_name = "TIME", default_value = "5", value_parser = parse_duration)]
    pub duration: Duration,
    /// Device queues (writer threads) per domain [default: one per CPU but one, which
    /// is left to the dumper; with --dirty, but two, one for the migration thread]
    #[arg(long, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,
    /// IOVA space each queue keeps mapped: it maps buffers until this much is in
    /// flight, then unmaps the oldest. A power of two, at least one last-level table's
    /// span; large spans grow the table (e.g. 64G) [default: 8 table spans, 16M with
    /// the 4K granule]
    #[arg(long, value_name = "SIZE", value_parser = parse_u64)]
    pub span: Option<u64>,
    /// Also run the design this library replaces, one lock per domain (an RwLock taken
    /// by every map and unmap, and by the dumper for a whole pass), and both designs
    /// without the dumper: four runs per format in the same --duration
    #[arg(long)]
    pub compare: bool,
    /// Track dirty pages, as live migration does: the devices write every page of
    /// their writable buffers, a migration thread reads and clears the dirty state of
    /// the queues' IOVA window pass after pass, and each unmap first harvests its
    /// buffer's. Adds dirty pages/s and the pass time to the summary; the run fails
    /// unless every page written was reported exactly once
    #[arg(long)]
    pub dirty: bool,
    /// Draw the writers' latency distributions (map and unmap calls) of every run, one
    /// panel per format, as an SVG file
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Print the whole result as JSON on stdout (configuration, machine, every figure
    /// and percentile); the text summary then goes to stderr
    #[arg(long)]
    pub json: bool,
    /// No progress bar
    #[arg(long, short)]
    pub quiet: bool,
}

/// Options of `dump`.
#[derive(Debug, Clone, Args)]
pub struct DumpArgs {
    /// The table format
    #[arg(long, value_enum)]
    pub format: FormatKind,
    /// Table configuration.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// A mapping IOVA:PA:LEN[:PROT]; PROT letters: r read, w write, c cache (coherent),
    /// n no-exec, m mmio, p privileged [default: rw]. Repeatable
    #[arg(long = "map", value_name = "IOVA:PA:LEN[:PROT]", value_parser = parse_map)]
    pub maps: Vec<MapSpec>,
    /// Physical address the table memory starts at
    #[arg(long, value_name = "PA", default_value = "0x40000000", value_parser = parse_u64)]
    pub base: u64,
    /// Size of the table memory (and of the image)
    #[arg(long, value_name = "SIZE", default_value = "4M", value_parser = parse_u64)]
    pub arena_size: u64,
    /// Also write the table memory as a raw physical-memory image (for `decode`)
    #[arg(long, value_name = "FILE")]
    pub image_out: Option<PathBuf>,
}

/// Options of `decode`.
///
/// Two ways in: a table (`--format` and `--root`), or a device, whose chain from the
/// IOMMU's root structure to its table is walked first (`--vtd-root` with `--bdf`, or
/// `--smmu-strtab` with `--sid`).
#[derive(Debug, Clone, Args)]
pub struct DecodeArgs {
    /// The memory image: raw physical memory, e.g. from QEMU's pmemsave
    #[arg(long, value_name = "FILE")]
    pub image: PathBuf,
    /// Physical address of the image's first byte
    #[arg(long, value_name = "PA", value_parser = parse_u64)]
    pub base: u64,
    /// The table format (with --root)
    #[arg(long, value_enum, required_unless_present_any = ["vtd_root", "smmu_strtab"])]
    pub format: Option<FormatKind>,
    /// Table configuration.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// VT-d only: the IOMMU's host address width; table pointers at or above it fault
    /// [default: 52 for a table, 48 for a device]
    #[arg(long, value_name = "BITS", value_parser = parse_bits)]
    pub haw: Option<u32>,
    /// Physical address of the top table (SSPTPTR, FSPTPTR, TTB0 or S2TTB)
    #[arg(long, value_name = "PA", value_parser = parse_u64,
          required_unless_present_any = ["vtd_root", "smmu_strtab"],
          conflicts_with_all = ["vtd_root", "smmu_strtab"])]
    pub root: Option<u64>,
    /// A VT-d device's chain: the RTADDR_REG value (the root table's address, plus
    /// 0x400 for scalable mode)
    #[arg(long, value_name = "RTADDR", value_parser = parse_u64,
          requires = "bdf", conflicts_with_all = ["format", "smmu_strtab"])]
    pub vtd_root: Option<u64>,
    /// The VT-d requester, bus:device.function in hex (e.g. 00:03.0)
    #[arg(long, value_name = "B:D.F", value_parser = parse_bdf, requires = "vtd_root")]
    pub bdf: Option<u16>,
    /// The PASID the VT-d request carries (none: requests without PASID)
    #[arg(long, value_name = "N", value_parser = parse_u64, requires = "vtd_root")]
    pub pasid: Option<u64>,
    /// An SMMUv3 device's chain: the STRTAB_BASE register value
    #[arg(long, value_name = "STRTAB_BASE", value_parser = parse_u64,
          requires = "sid", conflicts_with = "format")]
    pub smmu_strtab: Option<u64>,
    /// The STRTAB_BASE_CFG register value (LOG2SIZE, SPLIT, FMT) [default: a linear
    /// table of 2^16 StreamIDs]
    #[arg(long, value_name = "CFG", value_parser = parse_u64, requires = "smmu_strtab")]
    pub strtab_cfg: Option<u64>,
    /// The SMMU StreamID
    #[arg(long, value_name = "N", value_parser = parse_u64, requires = "smmu_strtab")]
    pub sid: Option<u64>,
    /// The SubstreamID the SMMU transaction carries (none: without SubstreamID)
    #[arg(long, value_name = "N", value_parser = parse_u64, requires = "smmu_strtab")]
    pub ssid: Option<u64>,
    /// With a device: the access to translate for, letters r (read), w (write), x
    /// (instruction fetch), p (privileged)
    #[arg(long, value_name = "LETTERS", default_value = "r", value_parser = parse_access)]
    pub access: pgtable_core::Access,
    /// Also print the debugfs-style dump of every leaf in the image's table
    #[arg(long)]
    pub dump: bool,
    /// IOVAs to translate
    #[arg(value_name = "IOVA", value_parser = parse_u64)]
    pub iovas: Vec<u64>,
}

/// `bus:device.function` in hex (`00:03.0`) as a requester id.
pub fn parse_bdf(s: &str) -> Result<u16, String> {
    let bad = || format!("'{s}' is not bus:device.function in hex (e.g. 00:03.0)");
    let (bus, rest) = s.split_once(':').ok_or_else(bad)?;
    let (dev, func) = rest.split_once('.').ok_or_else(bad)?;
    let bus = u8::from_str_radix(bus, 16).map_err(|_| bad())?;
    let dev = u8::from_str_radix(dev, 16).map_err(|_| bad())?;
    let func = u8::from_str_radix(func, 16).map_err(|_| bad())?;
    if dev >= 32 || func >= 8 {
        return Err(format!("'{s}': the device is 0..1f and the function 0..7"));
    }
    Ok(u16::from(bus) << 8 | u16::from(dev) << 3 | u16::from(func))
}

/// Access letters (`r`, `w`, `x`, `p`) as an access.
pub fn parse_access(s: &str) -> Result<pgtable_core::Access, String> {
    let mut a = pgtable_core::Access::default();
    for c in s.chars() {
        match c {
            'r' => a.read = true,
            'w' => a.write = true,
            'x' => a.exec = true,
            'p' => a.privileged = true,
            _ => {
                return Err(format!(
                    "'{c}' in '{s}' is not an access letter (r, w, x, p)"
                ));
            }
        }
    }
    if !(a.read || a.write || a.exec) {
        return Err(format!("'{s}' asks for nothing: give r, w or x"));
    }
    Ok(a)
}

/// One `--map IOVA:PA:LEN[:PROT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSpec {
    /// The argument as given, for messages.
    pub text: String,
    /// First IOVA.
    pub iova: u64,
    /// First output address.
    pub pa: u64,
    /// Bytes.
    pub len: u64,
    /// Permissions.
    pub prot: Prot,
}

/// The permission letters, in display order.
const PROT_LETTERS: [(char, Prot); 6] = [
    ('r', Prot::READ),
    ('w', Prot::WRITE),
    ('c', Prot::CACHE),
    ('n', Prot::NOEXEC),
    ('m', Prot::MMIO),
    ('p', Prot::PRIV),
];

/// `prot` as the letters `--map` takes, e.g. `rwc`.
pub fn prot_letters(prot: Prot) -> String {
    let s: String = PROT_LETTERS
        .iter()
        .filter(|(_, p)| prot.contains(*p))
        .map(|(c, _)| *c)
        .collect();
    if s.is_empty() { "-".into() } else { s }
}

/// Parses permission letters (`rw`, `rwc`, ...).
///
/// # Errors
/// An unknown letter, or neither `r` nor `w`.
pub fn parse_prot(s: &str) -> Result<Prot, String> {
    let mut prot = Prot::empty();
    for ch in s.chars() {
        let Some((_, p)) = PROT_LETTERS
            .iter()
            .find(|(c, _)| *c == ch.to_ascii_lowercase())
        else {
            return Err(format!(
                "unknown permission letter '{ch}' (use r, w, c, n, m, p)"
            ));
        };
        prot |= *p;
    }
    if !prot.intersects(Prot::RW) {
        return Err(format!(
            "permissions '{s}' grant neither read (r) nor write (w)"
        ));
    }
    Ok(prot)
}

/// Parses `IOVA:PA:LEN[:PROT]`.
///
/// # Errors
/// A missing or malformed part.
pub fn parse_map(s: &str) -> Result<MapSpec, String> {
    let parts: Vec<&str> = s.split(':').collect();
    if !(3..=4).contains(&parts.len()) {
        return Err("expected IOVA:PA:LEN[:PROT], e.g. 0x100000:0x80000000:8K:rw".into());
    }
    let num = |what: &str, v: &str| parse_u64(v).map_err(|e| format!("{what}: {e}"));
    let spec = MapSpec {
        text: s.to_string(),
        iova: num("IOVA", parts[0])?,
        pa: num("PA", parts[1])?,
        len: num("LEN", parts[2])?,
        prot: match parts.get(3) {
            Some(p) => parse_prot(p)?,
            None => Prot::RW,
        },
    };
    if spec.len == 0 {
        return Err("LEN must not be zero".into());
    }
    Ok(spec)
}

/// Parses a number: decimal, or hex with `0x`; decimal may end in K, M, G or T
/// (powers of 1024, optionally followed by `iB` or `B`); `_` separators are ignored.
///
/// # Errors
/// Anything else, or a value beyond 64 bits.
pub fn parse_u64(s: &str) -> Result<u64, String> {
    let t: String = s.trim().chars().filter(|&c| c != '_').collect();
    let bad = || format!("'{s}' is not a number (use decimal, 0x hex, or a size like 4K, 2M, 1G)");
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        if hex.is_empty() {
            return Err(bad());
        }
        return u64::from_str_radix(hex, 16).map_err(|_| bad());
    }
    let upper = t.to_ascii_uppercase();
    let digits_end = upper
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(upper.len());
    let (digits, suffix) = upper.split_at(digits_end);
    if digits.is_empty() {
        return Err(bad());
    }
    let shift = match suffix {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(bad()),
    };
    let v: u64 = digits.parse().map_err(|_| bad())?;
    v.checked_mul(1 << shift)
        .ok_or_else(|| format!("'{s}' does not fit in 64 bits"))
}

/// Parses an address-size bit count (1..=64).
fn parse_bits(s: &str) -> Result<u32, String> {
    match parse_u64(s) {
        Ok(v @ 1..=64) => Ok(v as u32),
        _ => Err(format!("'{s}' is not a bit count from 1 to 64")),
    }
}

/// Parses a thread count (1..=1024).
fn parse_threads(s: &str) -> Result<usize, String> {
    match parse_u64(s) {
        Ok(v @ 1..=1024) => Ok(v as usize),
        _ => Err(format!("'{s}' is not a thread count from 1 to 1024")),
    }
}

/// Parses a run time: seconds (`5`, `0.3`, `2s`) or milliseconds (`300ms`), more than
/// zero and at most a day.
///
/// # Errors
/// Anything else.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, scale) = if let Some(ms) = t.strip_suffix("ms") {
        (ms, 1e-3)
    } else {
        (t.strip_suffix('s').unwrap_or(t), 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v * scale > 0.0 && v * scale <= 86_400.0 => {
            Ok(Duration::from_secs_f64(v * scale))
        }
        Ok(v) if v.is_finite() && v * scale <= 0.0 => {
            Err(format!("'{s}': the run time must be above zero"))
        }
        Ok(v) if v.is_finite() => Err(format!("'{s}': the run time is at most a day (86400s)")),
        _ => Err(format!(
            "'{s}' is not a run time (seconds like 5 or 0.3, or milliseconds like 300ms)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_every_notation() {
        assert_eq!(parse_u64("0x1000"), Ok(0x1000));
        assert_eq!(parse_u64("0X4000_0000"), Ok(0x4000_0000));
        assert_eq!(parse_u64("4096"), Ok(4096));
        assert_eq!(parse_u64("4K"), Ok(4096));
        assert_eq!(parse_u64("2m"), Ok(2 << 20));
        assert_eq!(parse_u64("1GiB"), Ok(1 << 30));
        assert_eq!(parse_u64("0xffffffffffffffff"), Ok(u64::MAX));
        for bad in [
            "",
            "0x",
            "12Q",
            "K",
            "-1",
            "0x1g",
            "99999999999999999999",
            "16777216T",
        ] {
            assert!(parse_u64(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn map_specs() {
        let m = parse_map("0x12345000:0x800000000:4K").unwrap();
        assert_eq!(
            (m.iova, m.pa, m.len, m.prot),
            (0x1234_5000, 0x8_0000_0000, 4096, Prot::RW)
        );
        let m = parse_map("0:0:2M:rc").unwrap();
        assert_eq!(m.prot, Prot::READ | Prot::CACHE);
        assert!(parse_map("0:0").is_err());
        assert!(parse_map("0:0:0").is_err());
        assert!(parse_map("0:0:4K:c").is_err());
        assert!(parse_map("0:0:4K:rz").is_err());
    }

    #[test]
    fn prot_letters_round_trip() {
        for bits in 1..64u32 {
            let p = Prot::from_bits(bits).unwrap();
            if p.intersects(Prot::RW) {
                assert_eq!(parse_prot(&prot_letters(p)), Ok(p));
            }
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("0.5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        for bad in ["0", "-1", "abc", "inf", "1e9"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
