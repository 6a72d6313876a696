#!/usr/bin/env bash
# Thread scaling only: the disjoint-writer groups (with and without a dumping reader)
# and the allocator's fast pair on 1..N threads (N = BENCH_THREADS or the CPU count),
# printed as aggregate throughput and scaling factor versus one thread.
#
#   BENCH_THREADS=16 scripts/bench-scaling.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p benches -- --warm-up-time 0.3 --measurement-time 1 --sample-size 10 \
  '(disjoint_writers|writers_with_dump_reader|fast_pair_threads)' >/dev/null
python3 - <<'PY'
import json, glob, os, collections
groups = collections.defaultdict(dict)
for bj in glob.glob("target/criterion/**/new/benchmark.json", recursive=True):
    b = json.load(open(bj))
    g = b["group_id"]
    if not any(k in g for k in ("disjoint_writers", "writers_with_dump_reader", "fast_pair_threads")):
        continue
    est = json.load(open(os.path.join(os.path.dirname(bj), "estimates.json")))
    t = int(b.get("value_str") or b["function_id"])
    elems = b["throughput"]["Elements"]
    groups[g][t] = elems / est["median"]["point_estimate"] * 1e9  # ops per second, aggregate
print("| group | threads | aggregate Mops/s | scaling vs 1 thread |")
print("|---|---:|---:|---:|")
for g in sorted(groups):
    base = groups[g].get(1)
    for t in sorted(groups[g]):
        r = groups[g][t]
        print(f"| `{g}` | {t} | {r/1e6:.1f} | {r/base:.2f}x |" if base else f"| `{g}` | {t} | {r/1e6:.1f} | |")
PY
