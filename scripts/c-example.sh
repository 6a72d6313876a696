#!/usr/bin/env bash
# Installs the C library into a scratch prefix (scripts/c-install.sh) and builds and
# runs examples/c/*.c against it through pkg-config, linked statically and dynamically:
# what a C programmer does after installing the library.
#
# Usage: scripts/c-example.sh [PREFIX]     (default: target/c-example/prefix)
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX="${1:-target/c-example/prefix}"
scripts/c-install.sh "$PREFIX" >/dev/null
PREFIX="$(cd "$PREFIX" && pwd)"
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
OUT=target/c-example
mkdir -p "$OUT"
CC="${CC:-cc}"
for src in examples/c/*.c; do
    name="$(basename "$src" .c)"
    # Static: the archive, then the system libraries it needs (Libs.private).
    private="$(pkg-config --static --libs-only-l iommu_pt | sed 's/-liommu_pt//')"
    # shellcheck disable=SC2046,SC2086
    "$CC" -std=c11 -Wall -Werror "$src" $(pkg-config --cflags iommu_pt) \
        -Wl,-Bstatic $(pkg-config --libs iommu_pt) -Wl,-Bdynamic $private -o "$OUT/$name-static"
    # Shared: found at run time through its SONAME; a prefix outside the loader's
    # path needs an rpath (or ldconfig, for /usr/local).
    # shellcheck disable=SC2046
    "$CC" -std=c11 -Wall -Werror "$src" $(pkg-config --cflags --libs iommu_pt) \
        -Wl,-rpath,"$PREFIX/lib" -o "$OUT/$name-shared"
    for kind in static shared; do
        echo "== $name ($kind)"
        "$OUT/$name-$kind"
    done
    readelf -d "$OUT/$name-shared" | grep -q 'NEEDED.*\[libiommu_pt\.so\.[0-9.]*\]' \
        || { echo "$name-shared does not load libiommu_pt by its SONAME" >&2; exit 1; }
    if readelf -d "$OUT/$name-static" | grep -q 'NEEDED.*libiommu_pt'; then
        echo "$name-static links libiommu_pt dynamically" >&2
        exit 1
    fi
done
echo "== C examples built with pkg-config and run"
