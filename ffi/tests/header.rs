//! The committed `include/iommu_pt.h` is what cbindgen generates from this crate, and it
//! compiles as strict C11. `IOMMU_PT_BLESS=1` rewrites it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn header_path() -> PathBuf {
    crate_dir().join("../include/iommu_pt.h")
}

fn generate() -> String {
    let dir = crate_dir();
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen failed");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("cbindgen writes UTF-8")
}

#[test]
fn committed_header_is_up_to_date() {
    let fresh = generate();
    let path = header_path();
    if std::env::var_os("IOMMU_PT_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &fresh).expect("write include/iommu_pt.h");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != fresh {
        let first = committed
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(fresh.lines().count()));
        panic!(
            "include/iommu_pt.h differs from a fresh cbindgen run (first at line {}); \
             regenerate with IOMMU_PT_BLESS=1 cargo test -p iommu-pt-ffi --test header",
            first + 1
        );
    }
}

/// Compiles `src` (C) with `cc -std=c11 -Wall -Werror -pedantic` against the header.
fn compiles_strictly(src: &str, tag: &str) {
    let dir = std::env::temp_dir().join(format!("iommu-pt-header-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("check.c");
    std::fs::write(&file, src).unwrap();
    let include = crate_dir().join("../include");
    let status = Command::new("cc")
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-fsyntax-only",
            "-I",
        ])
        .arg(&include)
        .arg(&file)
        .status()
        .expect("run cc");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        status.success(),
        "the header does not compile strictly ({tag})"
    );
}

#[test]
fn header_compiles_as_strict_c11() {
    assert!(
        Path::new(&header_path()).exists(),
        "include/iommu_pt.h is missing"
    );
    // Included twice (include guard), used as `struct name` and as `name`.
    compiles_strictly(
        r#"
#include <iommu_pt.h>
#include <iommu_pt.h>
static int leaf(void *arg, const struct iommu_pt_translation *t) { (void)arg; return t->level; }
int main(void) {
    struct iommu_pt_config cfg = { .format = IOMMU_PT_FMT_VTD_SS };
    iommu_pt_config *alias = &cfg;
    struct iommu_pt *pt = NULL;
    iommu_pt_leaf_fn fn = leaf;
    struct iommu_pt_gather *g = iommu_pt_gather_new();
    struct iova_domain *d = NULL;
    struct iova_options o = { .granule = 4096, .start_pfn = 1, .flags = IOVA_F_CHECKED };
    struct iova_stats s;
    struct iommu_pt_info info;
    struct iommu_pt_mem_ops ops = { 0 };
    (void)ops; (void)s; (void)info;
    if (iommu_pt_new(alias, &pt) == 0) {
        (void)iommu_pt_walk(pt, 0, 0, fn, NULL);
        iommu_pt_free(pt);
    }
    iommu_pt_gather_free(g);
    if (iova_domain_new_with(&o, &d) == 0)
        iova_domain_free(d);
    return IOMMU_PT_READ | IOMMU_PT_WRITE | IOMMU_PT_CACHE | IOMMU_PT_NOEXEC | IOMMU_PT_MMIO |
           IOMMU_PT_PRIV | IOMMU_PT_FMT_VTD_FS | IOMMU_PT_FMT_ARM_S1 | IOMMU_PT_FMT_ARM_S2 ? 0 : 1;
}
"#,
        "use",
    );
}
