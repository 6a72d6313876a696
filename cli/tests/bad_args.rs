//! Bad arguments: one clear line on stderr, a non-zero exit, never a panic.

use std::process::Command;

/// Runs `iommu-pt` with `args` and checks it failed with exit code `code` and one line
/// on stderr containing `msg`.
fn fails(args: &[&str], code: i32, msg: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_iommu-pt"))
        .args(args)
        .output()
        .expect("run iommu-pt");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(err.starts_with("iommu-pt: "), "{args:?}: {err}");
    assert!(err.contains(msg), "{args:?}: {err:?} lacks {msg:?}");
    assert!(out.stdout.is_empty(), "{args:?}");
}

#[test]
fn unknown_format() {
    fails(&["dump", "--format", "amd-v1"], 2, "invalid value 'amd-v1'");
    fails(&["simulate", "--format", "x"], 2, "possible values: vtd-ss");
}

#[test]
fn bad_numbers() {
    fails(
        &["dump", "--format", "vtd-ss", "--map", "0xZZ:0:4K"],
        2,
        "is not a number",
    );
    fails(&["--duration", "soon"], 2, "is not a run time");
    fails(&["--threads", "0"], 2, "thread count");
    fails(
        &["dump", "--format", "arm-s1", "--ias", "99"],
        2,
        "bit count",
    );
    fails(
        &[
            "decode", "--image", "x", "--base", "1Q", "--format", "vtd-ss", "--root", "0", "0",
        ],
        2,
        "'1Q' is not a number",
    );
}

#[test]
fn missing_root() {
    fails(
        &[
            "decode", "--image", "x", "--base", "0", "--format", "vtd-ss", "0x1000",
        ],
        2,
        "--root",
    );
}

#[test]
fn configurations_a_format_refuses() {
    fails(
        &["dump", "--format", "vtd-ss", "--granule", "64K"],
        2,
        "4K granule only",
    );
    fails(
        &["dump", "--format", "vtd-fs", "--ias", "40"],
        2,
        "48 or 57",
    );
    fails(
        &["dump", "--format", "arm-s2", "--oas", "52"],
        2,
        "64K granule",
    );
    fails(&["--oas", "30"], 2, "at least 32 output bits");
    fails(
        &["dump", "--format", "vtd-ss", "--base", "0x1234"],
        2,
        "1 MiB boundary",
    );
}

#[test]
fn bad_maps() {
    fails(
        &["dump", "--format", "vtd-ss", "--map", "0x1000"],
        2,
        "IOVA:PA:LEN",
    );
    fails(
        &["dump", "--format", "vtd-ss", "--map", "0:0:4K:x"],
        2,
        "permission letter",
    );
    fails(
        &["dump", "--format", "vtd-ss", "--map", "0:0:4K:c"],
        2,
        "neither read",
    );
    fails(
        &["dump", "--format", "vtd-ss", "--map", "0x800:0:4K"],
        2,
        "not aligned",
    );
    fails(
        &[
            "dump",
            "--format",
            "vtd-ss",
            "--map",
            "0:0:8K",
            "--map",
            "0x1000:0:4K",
        ],
        2,
        "already mapped",
    );
    fails(
        &[
            "dump",
            "--format",
            "vtd-ss",
            "--map",
            "0x1000000000000:0:4K",
        ],
        2,
        "outside the 48-bit input address space",
    );
}

#[test]
fn one_exit_code_rule_for_values() {
    // A zero duration is a bad value, said plainly.
    fails(&["--duration", "0"], 2, "must be above zero");
    fails(&["--duration", "0ms"], 2, "must be above zero");
    // A directory is no memory image: the command ran and failed.
    fails(
        &[
            "decode", "--image", "/tmp", "--base", "0", "--format", "vtd-ss", "--root", "0", "0",
        ],
        1,
        "a directory, not a memory image",
    );
}

#[test]
fn decode_needs_something_to_do() {
    fails(
        &[
            "decode", "--image", "x", "--base", "0", "--format", "vtd-ss", "--root", "0",
        ],
        2,
        "nothing to decode",
    );
    fails(
        &[
            "decode",
            "--image",
            "/nonexistent/image",
            "--base",
            "0",
            "--format",
            "vtd-ss",
            "--root",
            "0",
            "0",
        ],
        1,
        "/nonexistent/image",
    );
}

#[test]
fn unknown_subcommand() {
    fails(&["frobnicate"], 2, "unrecognized subcommand");
}

#[test]
fn bad_spans() {
    fails(
        &["--span", "3M"],
        2,
        "--span 3M: the span must be a power of two",
    );
    fails(
        &["--format", "arm-s1", "--span", "1M"],
        2,
        "less than one last-level table's span on arm-s1 (2M)",
    );
    fails(
        &["--format", "arm-s2", "--granule", "64K", "--span", "256M"],
        2,
        "(512M)",
    );
    fails(
        &["--span", "64T", "--threads", "3"],
        2,
        "--span 64T: 3 queues of it do not fit in half of vtd-ss's 48-bit IOVA space (128T)",
    );
    fails(&["--span", "lots"], 2, "'lots' is not a number");
}

#[test]
fn bad_plot_files() {
    fails(
        &["--plot", "latency.png"],
        2,
        "--plot latency.png: the picture is SVG; name the file *.svg",
    );
    fails(
        &[
            "--plot",
            "/nonexistent/dir/latency.svg",
            "--duration",
            "0.1",
        ],
        1,
        "/nonexistent/dir/latency.svg: No such file",
    );
}
