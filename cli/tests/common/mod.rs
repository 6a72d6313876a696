//! What the CLI's integration tests share: running the binary, scratch files.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// Runs `iommu-pt` with `args`; returns (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_iommu-pt"))
        .args(args)
        .output()
        .expect("run iommu-pt");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A scratch file path for this test process.
pub fn scratch(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-{name}", std::process::id()))
}
