//! Gives the shared library a SONAME, so programs linked against it find it by that
//! name after `scripts/c-install.sh` installs it, without `LD_LIBRARY_PATH`. The name
//! carries the ABI version as Cargo's semver rules read the crate version: the major
//! number (`libiommu_pt.so.1` for 1.x), or while it is 0, `0.minor` (0.1 and 0.2 may
//! break each other: `libiommu_pt.so.0.1`), as cargo-c names them.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    let minor = std::env::var("CARGO_PKG_VERSION_MINOR").unwrap_or_else(|_| "0".into());
    let abi = if major == "0" {
        format!("0.{minor}")
    } else {
        major
    };
    if os == "linux" || os == "android" || os.ends_with("bsd") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libiommu_pt.so.{abi}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
