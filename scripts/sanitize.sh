#!/usr/bin/env bash
# The stress and differential batteries under AddressSanitizer and ThreadSanitizer, and
# the core's unit and semantics tests under Miri, with the nightly toolchain (not part of
# CI: nightly is optional on our machines).
#
#   scripts/sanitize.sh            # address, thread and miri
#   scripts/sanitize.sh address    # one of them (address | thread | miri)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! rustup toolchain list | grep -q nightly; then
    echo "sanitize.sh: no nightly toolchain here; nothing to do" >&2
    exit 0
fi
target=$(rustc -vV | sed -n 's/^host: //p')
for san in "${@:-address thread miri}"; do
  for s in $san; do
    if [ "$s" = miri ]; then
      echo "== miri"
      if ! cargo +nightly miri --version >/dev/null 2>&1; then
        echo "sanitize.sh: no Miri ('rustup component add miri --toolchain nightly'); skipped" >&2
        continue
      fi
      # crossbeam-epoch's tagged pointers need tree borrows; the tests read the clock.
      MIRIFLAGS="-Zmiri-tree-borrows -Zmiri-disable-isolation" CARGO_TARGET_DIR="target/miri" \
        cargo +nightly miri test -p pgtable-core --lib --test semantics --test soundness
      continue
    fi
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
