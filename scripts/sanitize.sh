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
    # TSan needs the standard library instrumented too.
    [ "$s" = thread ] && extra="-Zbuild-std"
    RUSTFLAGS="-Zsanitizer=$s" RUSTDOCFLAGS="-Zsanitizer=$s" TSAN_OPTIONS="halt_on_error=1" \
      ASAN_OPTIONS="detect_leaks=1" CARGO_TARGET_DIR="target/san-$s" \
      cargo +nightly test $extra --target "$target" -p pgtable-core \
        --test stress --test differential --test semantics
    RUSTFLAGS="-Zsanitizer=$s" TSAN_OPTIONS="halt_on_error=1" CARGO_TARGET_DIR="target/san-$s" \
      cargo +nightly test $extra --target "$target" -p iova-cache --test stress --test model
  done
done
