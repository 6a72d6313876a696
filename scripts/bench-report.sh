#!/usr/bin/env bash
# Runs the criterion suite and writes a Markdown table of medians (and ratios versus the
# peers measured in the same run) into benches/README.md, between the REPORT markers.
#
#   scripts/bench-report.sh quick   # short warm-up and measurement (a few minutes)
#   scripts/bench-report.sh full    # criterion's defaults of this suite
#   scripts/bench-report.sh table   # only rebuild the table from target/criterion
# Extra arguments after the mode are passed to criterion (e.g. a filter regex).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-quick}
shift || true
case "$mode" in
  quick) args=(--warm-up-time 0.2 --measurement-time 0.6 --sample-size 10) ;;
  full) args=() ;;
  table) args=() ;;
  *) echo "usage: $0 [quick|full|table] [criterion args...]" >&2; exit 2 ;;
esac
if [ "$mode" != table ]; then
  cargo bench -p benches -- "${args[@]}" "$@"
fi
cmd="scripts/bench-report.sh $mode${*:+ $*}"
python3 - "$cmd" <<'PY'
import json, os, sys, glob, platform, subprocess, datetime
root = "target/criterion"
rows = {}
for bj in glob.glob(f"{root}/**/new/benchmark.json", recursive=True):
    d = os.path.dirname(bj)
    b = json.load(open(bj))
    est = json.load(open(os.path.join(d, "estimates.json")))
    med = est["median"]["point_estimate"]  # ns per iteration
    elems = (b.get("throughput") or {}).get("Elements", 1) or 1
    rows[b["full_id"]] = (b["group_id"], b["function_id"] or "", b.get("value_str") or "", med, elems)

def per(full):
    r = rows.get(full)
    return r[3] / r[4] if r else None

peers = {
    # ours : peer  (per-element medians compared)
    "arm-s1-4k-48/map_4k/per_call_pin": "aarch64-paging/map_4k/map_range",
    "arm-s1-4k-48/unmap_4k/per_call_pin": "aarch64-paging/unmap_4k/map_range_invalid",
    "arm-s1-4k-48/map_512/existing_tables": "aarch64-paging/map_512/map_range",
    "vtd-ss-48/map_4k/per_call_pin": "aarch64-paging/map_4k/map_range",
    "arm-s1-4k-48/map_2m/map_unmap_pair": "aarch64-paging/map_2m/map_unmap_pair",
    "iova/fast_pair/iova-cache": "iova/fast_pair/vm-allocator",
}
for live in ("10000", "100000", "1000000"):
    peers[f"iova/churn/iova-cache/{live}"] = f"iova/churn/vm-allocator/{live}"
for group in ("random_batch_4096", "uncached_64_256"):
    for half in ("alloc", "free"):
        peers[f"iova/{group}/iova-cache/{half}"] = f"iova/{group}/range-alloc/{half}"

try:
    cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]
except Exception:
    cpu = platform.processor()
rustc = subprocess.run(["rustc", "-V"], capture_output=True, text=True).stdout.strip()
out = []
out.append(f"Machine: {cpu}, {os.cpu_count()} CPUs. Date: {datetime.date.today()}. Toolchain: {rustc}.")
out.append(f"Command: `{sys.argv[1]}` (criterion medians; HTML report in `target/criterion/report/index.html`).")
out.append("")
out.append("| benchmark | median / call | per page (element) | vs peer |")
out.append("|---|---:|---:|---|")
def fmt(ns):
    return f"{ns/1000:.2f} µs" if ns >= 1000 else f"{ns:.2f} ns"
for full in sorted(rows):
    g, f, v, med, el = rows[full]
    ratio = ""
    if full in peers and peers[full] in rows:
        ratio = f"{per(full)/per(peers[full]):.2f}x `{peers[full]}`"
    out.append(f"| `{full}` | {fmt(med)} | {fmt(med/el)} | {ratio} |")
table = "\n".join(out)
path = "benches/README.md"
text = open(path).read() if os.path.exists(path) else "<!-- REPORT -->\n<!-- /REPORT -->\n"
a, b = "<!-- REPORT -->", "<!-- /REPORT -->"
if a in text and b in text:
    text = text[: text.index(a) + len(a)] + "\n" + table + "\n" + text[text.index(b):]
else:
    text += f"\n{a}\n{table}\n{b}\n"
open(path, "w").write(text)
print(table)
PY
python3 scripts/bench_fastpath.py "$cmd" >/dev/null
