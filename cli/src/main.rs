//! `iommu-pt`: the command line of the iommu-pt page-table library.
//!
//! - `iommu-pt` / `iommu-pt simulate`: the main job, a DMA workload on every format with
//!   a debugfs-style reader dumping the tables concurrently, ending in throughput and
//!   per-call latency percentiles; `--compare` runs the per-domain-lock design beside
//!   it, `--dirty` adds dirty tracking and a migration pass, `--plot` draws the
//!   distributions, `--json` prints every figure for scripts;
//! - `iommu-pt dump`: a table built from `--map`s, its dump and hardware registers, and
//!   optionally a memory image of it;
//! - `iommu-pt decode`: translations and faults of tables in a raw memory image, from a
//!   table's root or from a device's VT-d / SMMUv3 chain.
//!
//! Exit codes, one rule: 2 when the arguments are wrong (a bad value, a missing or
//! conflicting option, a configuration or `--map` the table refuses): nothing ran; 1
//! when the command ran and failed (I/O, an image that cannot be decoded, errors
//! during a simulation); 0 otherwise (a fault that `decode` finds is a result).
//! Errors are one line on stderr.

mod args;
mod chain;
mod decode;
mod domain;
mod dump;
mod error;
mod formats;
mod latency;
mod machine;
mod migration;
mod plot;
mod schedstat;
mod simulate;
mod summary;
mod workload;

use args::{Cli, Command};
use clap::Parser;
use clap::error::ErrorKind;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) => {
            eprintln!(
                "iommu-pt: {} (see iommu-pt --help)",
                one_line(&e.to_string())
            );
            return ExitCode::from(2);
        }
    };
    let result = match &cli.command {
        None => simulate::simulate(&cli.simulate),
        Some(Command::Simulate(a)) => simulate::simulate(a),
        Some(Command::Dump(a)) => dump::dump(a),
        Some(Command::Decode(a)) => decode::decode(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iommu-pt: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// A clap message on one line: its paragraphs before the usage hint, joined.
fn one_line(msg: &str) -> String {
    let text: Vec<&str> = msg
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let joined = text.join(" ");
    joined
        .strip_prefix("error: ")
        .unwrap_or(&joined)
        .to_string()
}
