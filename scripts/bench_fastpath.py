#!/usr/bin/env python3
"""The fast-path tables of benches/README.md (issue 12), from target/criterion.

Reads the medians criterion wrote for benches/benches/fastpath.rs and the stall
samples it wrote to target/criterion/stalls/, and replaces the text between
<!-- FASTPATH --> and <!-- /FASTPATH --> in benches/README.md. Usage:

    scripts/bench_fastpath.py "the command that produced the numbers"
"""
import glob
import json
import os
import sys

ROOT = "target/criterion"

# Linux 6.12 io-pgtable-arm, Arm stage 1, 4K granule, 48-bit, measured on this machine
# type through a userspace build linked with our C API (issue 12): minimum ns per call
# (per page for the 512-page rows).
LINUX = {
    "map_4k": 16.7,
    "iova_to_phys": 8.8,
    "unmap_4k": 14.6,
    "map_2m": 15.2,
    "unmap_2m": 12.7,
    "map_512": 1.42,
    "unmap_512": 0.93,
}
TARGET = {op: (0.7 if op.endswith("512") else 1.0) for op in LINUX}


def medians():
    rows = {}
    for bj in glob.glob(f"{ROOT}/**/new/benchmark.json", recursive=True):
        d = os.path.dirname(bj)
        b = json.load(open(bj))
        est = json.load(open(os.path.join(d, "estimates.json")))
        elems = (b.get("throughput") or {}).get("Elements", 1) or 1
        rows[b["full_id"]] = est["median"]["point_estimate"] / elems
    return rows


def ns(v):
    if v is None:
        return "–"
    return f"{v / 1000:.2f} µs" if v >= 1000 else f"{v:.2f} ns"


def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "–"


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else "scripts/bench-report.sh"
    r = medians()
    pin = r.get("pin/pin_unpin")
    out = [f"Command: `{cmd}`; medians of one criterion run, all rows from the same run.", ""]

    out.append("**Against Linux** (Arm stage 1, 4K, 48-bit, through the C API, each call "
               "pinning on its own; Linux's figures measured on this machine type, issue 12):")
    out.append("")
    out.append("| per call | Linux (ns) | `capi` | ratio | `capi_session` | ratio | target |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    for op, lin in LINUX.items():
        base = f"fast/arm-s1-4k-48/{op}"
        c, cs = r.get(f"{base}/capi"), r.get(f"{base}/capi_session")
        unit = " (per page)" if op.endswith("512") else ""
        out.append(f"| {op}{unit} | {lin} | {ns(c)} | {ratio(c, lin)} | {ns(cs)} | "
                   f"{ratio(cs, lin)} | ≤ {TARGET[op]} |")
    out.append("")

    out.append(f"**The cost of safety** (one epoch pin and unpin here: {ns(pin)}). "
               "`session` / `floor` must be ≤ 1.2; `per_call` / (`floor` + pin) ≤ 1.2:")
    out.append("")
    out.append("| format | operation | floor | session | per_call | capi | session / floor "
               "| per_call / (floor + pin) |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for fmt in ("arm-s1-4k-48", "vtd-ss-48", "vtd-fs-48"):
        for op in ("map_4k", "unmap_4k", "iova_to_phys", "map_2m", "unmap_2m", "map_512",
                   "unmap_512"):
            base = f"fast/{fmt}/{op}"
            fl, se, pc, c = (r.get(f"{base}/{v}") for v in ("floor", "session", "per_call", "capi"))
            if fl is None and se is None:
                continue
            pfx = " (per page)" if op.endswith("512") else ""
            floor_pin = fl + pin / (512 if op.endswith("512") else 1) if fl and pin else None
            out.append(f"| {fmt} | {op}{pfx} | {ns(fl)} | {ns(se)} | {ns(pc)} | {ns(c)} | "
                       f"{ratio(se, fl)} | {ratio(pc, floor_pin)} |")
    out.append("")

    stalls = sorted(glob.glob(f"{ROOT}/stalls/*.json"))
    if stalls:
        out.append("**No stalls**: after releasing 512 tables, each of the next 512 2 MiB maps "
                   "timed on its own (`Instant` around each call, which adds its own ~20 ns); "
                   "the worst must be ≤ 10× the median:")
        out.append("")
        out.append("| format | calls | median | p99 | max | max / median |")
        out.append("|---|---:|---:|---:|---:|---:|")
        for f in stalls:
            s = json.load(open(f))
            name = os.path.basename(f)[:-5]
            out.append(f"| {name} | {s['calls']} | {s['median_ns']} ns | {s['p99_ns']} ns | "
                       f"{s['max_ns']} ns | {s['max_ns'] / max(s['median_ns'], 1):.1f} |")
        out.append("")

    for fmt in ("arm-s1-4k-48",):
        a, b = r.get(f"release/{fmt}/alone"), r.get(f"release/{fmt}/beside_session")
        if a is not None:
            out.append(f"**Release costs what it releases** ({fmt}, one table per release): "
                       f"{ns(a)} alone, {ns(b)} beside a thread holding a session open for "
                       f"the whole sample (every batch waits behind it): {ratio(b, a)}×.")
            out.append("")
        alone = r.get(f"readers/{fmt}/alone")
        if alone is not None:
            out.append(f"**Readers stay cheap to writers** ({fmt}, one single-page writer, "
                       "map + unmap per iteration, and one reader thread; 2 threads on this "
                       "2-vCPU machine): targets ≤ 5% for translate and walk, ≤ 10% for dump.")
            out.append("")
            out.append("| reader | writer ns / iteration | slowdown |")
            out.append("|---|---:|---:|")
            for rd in ("alone", "translate", "walk", "dump"):
                v = r.get(f"readers/{fmt}/{rd}")
                slow = f"{(v / alone - 1) * 100:+.1f}%" if v and rd != "alone" else ""
                out.append(f"| {rd} | {ns(v)} | {slow} |")
            out.append("")

    rows = []
    for fmt in ("arm-s1-4k-48", "vtd-ss-48"):
        w = r.get(f"dirty/{fmt}/walk")
        if w is None:
            continue
        cl, one = r.get(f"dirty/{fmt}/read_and_clear_clean"), r.get(f"dirty/{fmt}/read_and_clear_1pct")
        rows.append(f"| {fmt} | {ns(w)} | {ns(cl)} | {ratio(cl, w)} | {ns(one)} | {ratio(one, w)} |")
    if rows:
        out.append("**Dirty tracking** (issue 15): `read_and_clear_dirty` over 1 GiB of 4K leaves "
                   "against a plain `walk` of the same range, per page; targets ≤ 1.2 all clean, "
                   "≤ 1.5 with 1% dirty:")
        out.append("")
        out.append("| format | walk | all clean | ratio | 1% dirty | ratio |")
        out.append("|---|---:|---:|---:|---:|---:|")
        out.extend(rows)
        out.append("")

    table = "\n".join(out)
    path = "benches/README.md"
    text = open(path).read()
    a, b = "<!-- FASTPATH -->", "<!-- /FASTPATH -->"
    if a in text and b in text:
        text = text[: text.index(a) + len(a)] + "\n" + table + "\n" + text[text.index(b):]
    else:
        text += f"\n{a}\n{table}\n{b}\n"
    open(path, "w").write(text)
    print(table)


if __name__ == "__main__":
    main()
