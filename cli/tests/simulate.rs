//! The main job: a short simulation on every format ends with 0 errors and exit 0.

use std::process::Command;

/// Runs `iommu-pt` with `args`; returns (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
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

/// The summary row of `format`, split into cells.
fn row<'a>(stdout: &'a str, format: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("{format} ")))
        .unwrap_or_else(|| panic!("no summary row for {format} in:\n{stdout}"))
        .split_whitespace()
        .collect()
}

/// Checks a run succeeded with work done and no errors on `format`'s row.
fn assert_clean(code: i32, stdout: &str, stderr: &str, format: &str) {
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let header: Vec<&str> = stdout
        .lines()
        .find(|l| l.starts_with("format "))
        .expect("summary header")
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    let cells = row(stdout, format);
    assert_eq!(cells.len(), header.len(), "{header:?} vs {cells:?}");
    let cell = |name: &str| cells[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(cell("errors"), "0", "{stdout}");
    assert_ne!(cell("maps/s"), "0", "{stdout}");
    assert_ne!(cell("translations/s"), "0", "{stdout}");
    assert_ne!(cell("dump passes"), "0", "{stdout}");
}

#[test]
fn short_simulation_of_every_format_has_no_errors() {
    for format in ["vtd-ss", "vtd-fs", "arm-s1", "arm-s2"] {
        let (code, out, err) = run(&[
            "simulate",
            "--format",
            format,
            "--duration",
            "0.3",
            "--threads",
            "2",
            "--quiet",
        ]);
        assert_clean(code, &out, &err, format);
    }
}

#[test]
fn default_command_runs_all_formats() {
    // No subcommand: the main job, all four formats one after another.
    let (code, out, err) = run(&["--duration", "0.4", "--threads", "2"]);
    for format in ["vtd-ss", "vtd-fs", "arm-s1", "arm-s2"] {
        assert_clean(code, &out, &err, format);
    }
    assert!(out.contains("errors: none;"), "{out}");
}

#[test]
fn large_granules_and_five_levels_simulate_cleanly() {
    for args in [
        ["--format", "arm-s1", "--granule", "16K", "--ias", "47"],
        ["--format", "arm-s2", "--granule", "64K", "--ias", "42"],
        ["--format", "vtd-ss", "--ias", "57", "--oas", "52"],
    ] {
        let mut all = vec!["simulate", "--duration", "0.2", "--threads", "2", "-q"];
        all.extend(args);
        let (code, out, err) = run(&all);
        assert_clean(code, &out, &err, args[1]);
    }
}
