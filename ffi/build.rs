//! Gives the shared library a SONAME (`libiommu_pt.so.<major>`), so programs linked
//! against it find it by that name after `scripts/c-install.sh` installs it, without
//! `LD_LIBRARY_PATH` (the major version is the ABI version: 0 while the crate is 0.x).

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    if os == "linux" || os == "android" || os.ends_with("bsd") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libiommu_pt.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
