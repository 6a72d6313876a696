//! Builds the C test programs of `tests/c/` and the example `examples/c/driver_flow.c`
//! with the system C compiler against `include/iommu_pt.h` and the static library this
//! crate just built, twice (plain, and with `-fsanitize=address,undefined`), and runs
//! them. A program that fails to build, exits non-zero, or does not report
//! `N passed, 0 failed` fails its test.
//!
//! The library is found from this test executable's path: cargo puts integration tests
//! in `target/<profile>/deps/`, and builds every crate type of the library (the
//! staticlib included, unhashed, in the same `deps/`; `cargo build` also copies it up
//! to `target/<profile>/`) before any integration test runs, so no target folder is
//! hard-coded. `CC` picks another compiler; `IOMMU_PT_NO_SANITIZE=1` skips the
//! sanitized builds.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A C program that runs longer than this is killed and fails.
const TIMEOUT: Duration = Duration::from_secs(120);

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/<profile>/`: the parent of the `deps/` folder holding this executable.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps folder");
    deps.parent().expect("profile folder").to_path_buf()
}

/// `libiommu_pt.a`: uplifted into `target/<profile>/`, and rustc's own output in
/// `deps/` (unhashed, as for every staticlib); the newer of the two.
fn static_lib() -> PathBuf {
    let dir = profile_dir();
    let candidates = [dir.join("libiommu_pt.a"), dir.join("deps/libiommu_pt.a")];
    candidates
        .iter()
        .filter_map(|p| Some((std::fs::metadata(p).ok()?.modified().ok()?, p)))
        .max_by_key(|(modified, _)| *modified)
        .map(|(_, p)| p.clone())
        .unwrap_or_else(|| {
            panic!(
                "libiommu_pt.a is missing from {}: cargo builds the library's crate types \
                 (staticlib included) before integration tests",
                dir.display()
            )
        })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Build {
    Plain,
    Sanitized,
}

impl Build {
    fn suffix(self) -> &'static str {
        match self {
            Build::Plain => "",
            Build::Sanitized => "-san",
        }
    }
}

/// Compiles `src` into the test output folder; returns the program's path.
fn compile(src: &Path, build: Build) -> PathBuf {
    let out_dir = profile_dir().join("c-tests");
    std::fs::create_dir_all(&out_dir).unwrap();
    let stem = src.file_stem().unwrap().to_str().unwrap();
    let exe = out_dir.join(format!("{stem}{}", build.suffix()));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let mut cmd = Command::new(&cc);
    cmd.args(["-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror"])
        .arg("-I")
        .arg(crate_dir().join("../include"))
        .arg("-I")
        .arg(crate_dir().join("tests/c"));
    if build == Build::Sanitized {
        cmd.args([
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer",
        ]);
    }
    cmd.arg(src)
        .arg(static_lib())
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe);
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cc}: {e}"));
    assert!(
        out.status.success(),
        "compiling {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// Runs `exe` with a time limit; returns its stdout, or panics with its output.
fn run(exe: &Path) -> String {
    let log = |ext: &str| exe.with_extension(ext);
    let (stdout, stderr) = (log("stdout"), log("stderr"));
    let mut child = Command::new(exe)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        // Sanitizer reports fail the program; leaks are reported too.
        .env("ASAN_OPTIONS", "halt_on_error=1:detect_leaks=1")
        .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", exe.display()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = std::fs::read_to_string(&stdout).unwrap_or_default();
    let err = std::fs::read_to_string(&stderr).unwrap_or_default();
    let tail = |s: &str| {
        s.lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    };
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!(
            "{} failed ({s}):\n--- stdout\n{}\n--- stderr\n{}",
            exe.display(),
            tail(&out),
            tail(&err)
        ),
        None => panic!(
            "{} timed out after {TIMEOUT:?}\n{}",
            exe.display(),
            tail(&err)
        ),
    }
    print!("{out}");
    out
}

fn sanitizers_enabled() -> bool {
    std::env::var_os("IOMMU_PT_NO_SANITIZE").is_none_or(|v| v != "1")
}

/// Builds and runs a test program both ways; each must report no failure.
fn c_test(name: &str) {
    let src = crate_dir().join("tests/c").join(name);
    let mut builds = vec![Build::Plain];
    if sanitizers_enabled() {
        builds.push(Build::Sanitized);
    }
    for build in builds {
        let out = run(&compile(&src, build));
        let summary = out
            .lines()
            .rev()
            .find(|l| l.ends_with(" failed"))
            .unwrap_or_else(|| panic!("{name}: no `N passed, M failed` line"));
        assert!(summary.ends_with(", 0 failed"), "{name}: {summary}");
    }
}

#[test]
fn c_page_size_sweep_over_every_format() {
    c_test("pt_sweep.c");
}

#[test]
fn c_error_rows_leave_the_table_unchanged() {
    c_test("pt_errors.c");
}

#[test]
fn c_gathers_hold_table_pages_until_release() {
    c_test("pt_gather.c");
}

#[test]
fn c_flush_ops_and_gathers_over_two_tables() {
    c_test("pt_flush.c");
}

#[test]
fn c_scatter_gather_maps_and_sessions() {
    c_test("pt_batch.c");
}

#[test]
fn c_dirty_tracking_on_every_format() {
    c_test("pt_dirty.c");
}

#[test]
fn c_threads_never_touch_a_freed_table_page() {
    c_test("pt_threads.c");
}

#[test]
fn c_iova_allocator() {
    c_test("iova.c");
}

#[test]
fn c_driver_flow_example_runs() {
    let src = crate_dir().join("../examples/c/driver_flow.c");
    let out = run(&compile(&src, Build::Plain));
    assert!(out.contains("invalidate IOTLB"), "{out}");
    if sanitizers_enabled() {
        run(&compile(&src, Build::Sanitized));
    }
}
