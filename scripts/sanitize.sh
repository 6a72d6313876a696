#!/usr/bin/env bash
# The stress and differential batteries under AddressSanitizer and ThreadSanitizer,
# with the nightly toolchain (not part of CI: nightly is optional on our machines).
#
#   scripts/sanitize.sh            # both sanitizers
#   scripts/sanitize.sh address    # one of them
set -euo pipefail
cd "$(dirname "$0")/.."
if ! rustup toolchain list | grep -q nightly; then
    echo "sanitize.sh: no nightly toolchain here; nothing to do" >&2
    exit 0
fi
target=$(rustc -vV | sed -n 's/^host: //p')
for san in "${@:-address thread}"; do
  for s in $san; do
    echo "== $s sanitizer"
    extra=""
    # TSan needs the standard library instrumented too (nightly's rust-src component).
    if [ "$s" = thread ]; then
      if ! rustup component list --toolchain nightly --installed | grep -q rust-src; then
        echo "sanitize.sh: TSan needs 'rustup component add rust-src --toolchain nightly'; skipped" >&2
        continue
      fi
      extra="-Zbuild-std"
    fi
    RUSTFLAGS="-Zsanitizer=$s" RUSTDOCFLAGS="-Zsanitizer=$s" TSAN_OPTIONS="halt_on_error=1" \
      ASAN_OPTIONS="detect_leaks=1" CARGO_TARGET_DIR="target/san-$s" \
      cargo +nightly test $extra --target "$target" -p pgtable-core \
        --test stress --test differential --test semantics
    RUSTFLAGS="-Zsanitizer=$s" TSAN_OPTIONS="halt_on_error=1" CARGO_TARGET_DIR="target/san-$s" \
      cargo +nightly test $extra --target "$target" -p iova-cache --test stress --test model
  done
done
