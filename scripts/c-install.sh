#!/usr/bin/env bash
# Builds the C library and installs it the way C libraries are installed, so that a C
# program finds it with pkg-config:
#
#   PREFIX/include/iommu_pt.h
#   PREFIX/lib/libiommu_pt.a                     (static, stripped: about 5 MB)
#   PREFIX/lib/libiommu_pt.so.X.Y.Z              (shared, SONAME libiommu_pt.so.ABI:
#                                                 X, or 0.Y while X is 0)
#   PREFIX/lib/libiommu_pt.so.ABI -> ...X.Y.Z, PREFIX/lib/libiommu_pt.so -> ...so.ABI
#   PREFIX/lib/pkgconfig/iommu_pt.pc
#
# Usage: scripts/c-install.sh [PREFIX]     (default: /usr/local; e.g. ~/.local)
#
# This is what cargo-c's `cargo cinstall` does, in a script that needs only the Rust
# toolchain and binutils: CI and a fresh machine need no extra cargo subcommand (whose
# own build takes longer than the library's). The SONAME comes from ffi/build.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX="${1:-/usr/local}"
PREFIX="$(mkdir -p "$PREFIX" && cd "$PREFIX" && pwd)"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
MAJOR="${VERSION%%.*}"
MINOR="$(echo "$VERSION" | cut -d. -f2)"
if [ "$MAJOR" = 0 ]; then ABI="0.$MINOR"; else ABI="$MAJOR"; fi
LIBDIR="$PREFIX/lib"

cargo build --quiet -p iommu-pt-ffi --profile release-c
OUT=target/release-c

install -d "$PREFIX/include" "$LIBDIR/pkgconfig"
install -m 644 include/iommu_pt.h "$PREFIX/include/iommu_pt.h"

# The static library holds the Rust standard library's objects and, for link-time
# optimisation, LLVM bitcode: keep the machine code and the symbols a linker needs.
install -m 644 "$OUT/libiommu_pt.a" "$LIBDIR/libiommu_pt.a"
strip --strip-unneeded "$LIBDIR/libiommu_pt.a"
objcopy --remove-section=.llvmbc --remove-section=.llvmcmd "$LIBDIR/libiommu_pt.a"

install -m 755 "$OUT/libiommu_pt.so" "$LIBDIR/libiommu_pt.so.$VERSION"
ln -sf "libiommu_pt.so.$VERSION" "$LIBDIR/libiommu_pt.so.$ABI"
ln -sf "libiommu_pt.so.$ABI" "$LIBDIR/libiommu_pt.so"

cat > "$LIBDIR/pkgconfig/iommu_pt.pc" <<PC
prefix=$PREFIX
exec_prefix=\${prefix}
libdir=\${exec_prefix}/lib
includedir=\${prefix}/include

Name: iommu_pt
Description: IOMMU I/O page tables in the exact formats of Intel VT-d and Arm SMMUv3, readable while they change, and an IOVA allocator
Version: $VERSION
Cflags: -I\${includedir}
Libs: -L\${libdir} -liommu_pt
Libs.private: -lpthread -ldl -lm -lgcc_s -lc
PC

if [ "$(id -u)" = 0 ] && [ "$PREFIX" = /usr/local ] && command -v ldconfig >/dev/null; then
    ldconfig
fi
echo "installed iommu_pt $VERSION in $PREFIX (pkg-config: PKG_CONFIG_PATH=$LIBDIR/pkgconfig)"
