//! The main job: short simulations end with 0 errors and exit 0; `--json` holds every
//! figure the text prints; `--compare` and `--plot` work and write a well-formed SVG;
//! `--dirty` reports every page the devices wrote exactly once, in both designs.

mod common;
use common::*;

use serde_json::Value;

/// The cells of a table line: columns are two or more spaces apart.
fn cells(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// The tables of a summary: each a header and its rows, in order.
fn tables(text: &str) -> Vec<(Vec<&str>, Vec<Vec<&str>>)> {
    let mut out: Vec<(Vec<&str>, Vec<Vec<&str>>)> = Vec::new();
    let mut open = false;
    for line in text.lines() {
        if line.starts_with("format  ") {
            out.push((cells(line), Vec::new()));
            open = true;
        } else if line.trim().is_empty() {
            open = false;
        } else if open {
            out.last_mut().unwrap().1.push(cells(line));
        }
    }
    out
}

/// Checks a run succeeded with work done and no errors on `format`'s row.
fn assert_clean(code: i32, stdout: &str, stderr: &str, format: &str) {
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let (header, rows) = &tables(stdout)[0];
    let row = rows
        .iter()
        .find(|r| r[0] == format)
        .unwrap_or_else(|| panic!("no summary row for {format} in:\n{stdout}"));
    assert_eq!(row.len(), header.len(), "{header:?} vs {row:?}");
    let cell = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(cell("errors"), "0", "{stdout}");
    assert_ne!(cell("maps/s"), "0", "{stdout}");
    assert_ne!(cell("translations/s"), "0", "{stdout}");
    assert_ne!(cell("dump passes"), "0", "{stdout}");
    assert!(stdout.contains("errors: none;"), "{stdout}");
}

#[test]
fn short_simulation_of_every_format_has_no_errors() {
    for format in ["vtd-ss", "vtd-fs", "arm-s1", "arm-s2"] {
        let (code, out, err) = run(&[
            "simulate",
            "--format",
            format,
            "--duration",
            "0.3",
            "--threads",
            "2",
            "--quiet",
        ]);
        assert_clean(code, &out, &err, format);
    }
}

#[test]
fn default_command_runs_all_formats() {
    // No subcommand: the main job, all four formats one after another.
    let (code, out, err) = run(&["--duration", "0.4", "--threads", "2"]);
    for format in ["vtd-ss", "vtd-fs", "arm-s1", "arm-s2"] {
        assert_clean(code, &out, &err, format);
    }
    // Six latency rows per format: five kinds of call and the dumper's pass.
    let (header, rows) = &tables(&out)[1];
    assert_eq!(
        header,
        &["format", "call", "calls", "p50", "p99", "p99.9", "max"]
    );
    assert_eq!(rows.len(), 24, "{out}");
    assert!(out.contains("Run with --compare"), "{out}");
    // Dirty tracking only with --dirty.
    assert!(!out.to_lowercase().contains("dirty"), "{out}");
    assert!(!out.contains("migration"), "{out}");
}

#[test]
fn large_granules_and_five_levels_simulate_cleanly() {
    for args in [
        ["--format", "arm-s1", "--granule", "16K", "--ias", "47"],
        ["--format", "arm-s2", "--granule", "64K", "--ias", "42"],
        ["--format", "vtd-ss", "--ias", "57", "--oas", "52"],
    ] {
        let mut all = vec!["simulate", "--duration", "0.2", "--threads", "2", "-q"];
        all.extend(args);
        let (code, out, err) = run(&all);
        assert_clean(code, &out, &err, args[1]);
    }
}

#[test]
fn a_larger_span_grows_the_table() {
    let (code, out, err) = run(&[
        "--format",
        "vtd-fs",
        "--span",
        "64M",
        "--duration",
        "0.3",
        "--threads",
        "1",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON on stdout");
    let r = &v["runs"][0];
    assert!(r.get("dirty").is_none(), "{r}");
    assert!(r["latency"].get("dma_write").is_none(), "{r}");
    assert_eq!(r["span_bytes"], 64u64 << 20);
    let mapped = r["peak_mapped_bytes"].as_u64().unwrap();
    assert!(mapped > 32 << 20 && mapped <= 64 << 20, "{r}");
    // 64M of 4K pages need at least 32 last-level tables and three above them.
    let min = r["min_table_pages"].as_u64().unwrap();
    assert_eq!(min, mapped.div_ceil(2 << 20) + 3);
    assert!(r["peak_table_pages"].as_u64().unwrap() >= min, "{r}");
}

/// A printed figure: its value and how far the value behind it may be (half a unit of
/// its last digit). `scale` gives the multiplier of each suffix.
fn figure(cell: &str, scale: &[(&str, f64)]) -> (f64, f64) {
    let (num, mult) = scale
        .iter()
        .find_map(|(unit, m)| cell.strip_suffix(unit).map(|n| (n, *m)))
        .unwrap_or((cell, 1.0));
    let value: f64 = num
        .parse()
        .unwrap_or_else(|_| panic!("'{cell}' is no figure"));
    let decimals = num.split_once('.').map_or(0, |(_, d)| d.len());
    (value * mult, 0.5 * 10f64.powi(-(decimals as i32)) * mult)
}

const RATE: &[(&str, f64)] = &[("G", 1e9), ("M", 1e6), ("k", 1e3)];
const TIME: &[(&str, f64)] = &[("ns", 1.0), ("µs", 1e3), ("ms", 1e6), ("s", 1e9)];
const SIZE: &[(&str, f64)] = &[
    ("T", (1u64 << 40) as f64),
    ("G", (1u64 << 30) as f64),
    ("M", (1u64 << 20) as f64),
    ("K", 1024.0),
];
const PERCENT: &[(&str, f64)] = &[("%", 1.0)];
const COUNT: &[(&str, f64)] = &[];

/// Checks that the text `cell` shows `json` (a number, a string, or null shown as `-`).
fn same(cell: &str, json: &Value, scale: &[(&str, f64)], what: &str) {
    match json {
        Value::String(s) => assert_eq!(cell, s, "{what}"),
        Value::Null => assert_eq!(cell, "-", "{what}"),
        Value::Number(n) => {
            let n = n.as_f64().unwrap();
            let (shown, tolerance) = figure(cell, scale);
            assert!(
                (shown - n).abs() <= tolerance * (1.0 + 1e-9),
                "{what}: the text shows {cell}, the JSON holds {n}"
            );
        }
        other => panic!("{what}: unexpected JSON {other}"),
    }
}

/// The JSON key of a latency row's call.
fn call_key(call: &str) -> String {
    call.replace(' ', "_")
}

#[test]
fn json_holds_every_figure_of_the_text_tables() {
    // The smallest span, so that even the locked writers, starved by the dumper, soon
    // unmap their oldest buffer.
    let (code, out, err) = run(&[
        "--compare",
        "--json",
        "--span",
        "2M",
        "--duration",
        "0.8",
        "--threads",
        "2",
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("stdout is one JSON document");
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 16);
    assert_eq!(v["config"]["threads"], 2);
    assert_eq!(v["config"]["compare"], true);
    assert!(v["machine"]["logical_cpus"].as_u64().unwrap() >= 1);
    assert_eq!(v["errors"], 0);
    for r in runs {
        for call in ["map", "unmap", "translate", "iova_alloc", "iova_free"] {
            let l = &r["latency"][call];
            let p = |k: &str| l[k].as_u64().unwrap();
            // Only the locked writers behind the dumper may not have unmapped yet.
            let starved = r["design"] == "locked" && r["dumper"] == true;
            let needed = ["map", "translate", "iova_alloc"].contains(&call) || !starved;
            assert!(!needed || p("calls") > 0, "{call}: {l}");
            assert!(
                p("min_ns") <= p("p50_ns") && p("p50_ns") <= p("p99_ns"),
                "{l}"
            );
            assert!(
                p("p99_ns") <= p("p99_9_ns") && p("p99_9_ns") <= p("max_ns"),
                "{l}"
            );
            assert_eq!(l["percentiles"].as_array().unwrap().len(), 9);
        }
        assert_eq!(
            r["latency"]["dump_pass"].is_null(),
            r["dumper"] == false,
            "{r}"
        );
    }

    // The text, on stderr: a headline and three tables.
    let headline = err.lines().next().unwrap();
    assert!(
        headline.starts_with("iommu-pt simulate: 2 device queues"),
        "{err}"
    );
    let run_s = headline
        .rsplit("runs of ")
        .next()
        .unwrap()
        .trim_end_matches(" s");
    same(run_s, &v["config"]["run_s"], COUNT, "run_s");
    assert!(headline.contains("16 runs"), "{headline}");
    assert!(
        err.contains(&format!("about {} ns of clock", v["clock"]["overhead_ns"])),
        "{err}"
    );
    let t = tables(&err);
    assert_eq!(t.len(), 3, "{err}");
    let main = |format: &str| {
        runs.iter()
            .find(|r| r["format"] == format && r["design"] == "lock-free" && r["dumper"] == true)
            .unwrap_or_else(|| panic!("no main run of {format}"))
    };

    let (header, rows) = &t[0];
    assert_eq!(rows.len(), 4);
    for row in rows {
        let r = main(row[0]);
        for (h, cell) in header.iter().zip(row) {
            let (key, scale) = match *h {
                "format" => ("format", COUNT),
                "ias/oas/gran" => ("config", COUNT),
                "maps/s" => ("maps_per_s", RATE),
                "unmaps/s" => ("unmaps_per_s", RATE),
                "translations/s" => ("translations_per_s", RATE),
                "IOVA hits" => ("iova_hit_percent", PERCENT),
                "peak mapped" => ("peak_mapped_bytes", SIZE),
                "peak tables" => ("peak_table_pages", COUNT),
                "min tables" => ("min_table_pages", COUNT),
                "freed tables" => ("tables_freed", COUNT),
                "dump passes" => ("dump_passes", COUNT),
                "errors" => ("errors", COUNT),
                other => panic!("workload column '{other}' is not checked against the JSON"),
            };
            same(cell, &r[key], scale, &format!("{} {h}", row[0]));
        }
        let span = headline
            .split("up to ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        same(span, &r["span_bytes"], SIZE, "span");
    }

    let (header, rows) = &t[1];
    assert_eq!(rows.len(), 24);
    for row in rows {
        let l = &main(row[0])["latency"][call_key(row[1])];
        assert!(l.is_object(), "no latency of {} in the JSON", row[1]);
        for (h, cell) in header.iter().zip(row).skip(2) {
            let (key, scale) = match *h {
                "calls" => ("calls", RATE),
                "p50" => ("p50_ns", TIME),
                "p99" => ("p99_ns", TIME),
                "p99.9" => ("p99_9_ns", TIME),
                "max" => ("max_ns", TIME),
                other => panic!("latency column '{other}' is not checked against the JSON"),
            };
            same(cell, &l[key], scale, &format!("{} {} {h}", row[0], row[1]));
        }
    }

    let (header, rows) = &t[2];
    assert_eq!(rows.len(), 16);
    for row in rows {
        let r = runs
            .iter()
            .find(|r| {
                r["format"] == row[0] && r["design"] == row[1] && r["dumper"] == (row[2] == "on")
            })
            .unwrap_or_else(|| panic!("no run for {row:?}"));
        for (h, cell) in header.iter().zip(row).skip(3) {
            let (json, scale) = match *h {
                "writes/s" => (&r["writes_per_s"], RATE),
                "vs no dumper" => (&r["writes_vs_no_dumper_percent"], PERCENT),
                "cpu wait" => (&r["cpu_wait_percent"], PERCENT),
                "map p99.9" => (&r["latency"]["map"]["p99_9_ns"], TIME),
                "unmap p99.9" => (&r["latency"]["unmap"]["p99_9_ns"], TIME),
                "translate p99.9" => (&r["latency"]["translate"]["p99_9_ns"], TIME),
                "dump pass p50" => (&r["latency"]["dump_pass"]["p50_ns"], TIME),
                "dump passes" => (&r["dump_passes"], COUNT),
                "errors" => (&r["errors"], COUNT),
                other => panic!("comparison column '{other}' is not checked against the JSON"),
            };
            same(cell, json, scale, &format!("{row:?} {h}"));
        }
    }
}

#[test]
fn compare_and_plot_write_a_well_formed_svg() {
    let dir = std::env::temp_dir().join(format!("iommu-pt-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("latency.svg");
    let (code, out, err) = run(&[
        "--compare",
        "--plot",
        path.to_str().unwrap(),
        "--format",
        "arm-s1",
        "--duration",
        "0.4",
        "--threads",
        "2",
        "-q",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("The same workload with one lock per domain"),
        "{out}"
    );
    let svg = std::fs::read_to_string(&path).expect("the SVG file is written");
    std::fs::remove_dir_all(&dir).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    let texts: Vec<String> = root
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").trim().to_string())
        .collect();
    for label in [
        "arm-s1 (48/48/4K)",
        "lock-free, dumper on",
        "lock-free, dumper off",
        "locked, dumper on",
        "locked, dumper off",
    ] {
        assert!(
            texts.iter().any(|t| t == label),
            "no '{label}' in {texts:?}"
        );
    }
    // One curve per run, each a polyline with points (plus the legend's samples).
    let curves = root
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .filter(|n| {
            n.attribute("points")
                .is_some_and(|p| p.split(' ').count() > 4)
        })
        .count();
    assert!(curves >= 2, "{curves} curves");
}

/// Checks the dirty-tracking figures of one run of the JSON: no errors, writes made,
/// every page dirtied reported exactly once, passes completed. Returns the pages.
fn assert_dirty_exact(r: &Value) -> u64 {
    let what = format!("{} {} dumper {}", r["format"], r["design"], r["dumper"]);
    assert_eq!(r["errors"], 0, "{what}: {}", r["messages"]);
    let d = &r["dirty"];
    let n = |k: &str| {
        d[k].as_u64()
            .unwrap_or_else(|| panic!("{what}: no {k} in {d}"))
    };
    let dirtied = n("dirtied_pages");
    assert!(dirtied > 0, "{what}: the devices wrote nothing: {d}");
    assert_eq!(n("reported_pages"), dirtied, "{what}: {d}");
    assert!(n("harvested_pages") <= dirtied, "{what}: {d}");
    assert!(n("migration_passes") > 0, "{what}: {d}");
    assert!(n("window_bytes") > 0, "{what}: {d}");
    assert_eq!(
        r["latency"]["migration_pass"]["calls"].as_u64(),
        Some(n("migration_passes")),
        "{what}"
    );
    // Each write to a clean leaf counts it dirty once, one page here (every leaf is one
    // granule); the completion write-back into a buffer's first page mostly finds it
    // still dirty and counts nothing, so there are fewer pages dirtied than writes.
    let writes = r["latency"]["dma_write"]["calls"].as_u64().unwrap();
    assert!(dirtied < writes, "{what}: {writes} writes, {d}");
    dirtied
}

#[test]
fn dirty_tracking_reports_every_write_once_on_every_format() {
    let (code, out, err) = run(&[
        "--dirty",
        "--json",
        "--duration",
        "1.2",
        "--threads",
        "2",
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("stdout is one JSON document");
    assert_eq!(v["config"]["dirty"], true);
    assert_eq!(v["errors"], 0);
    let runs = v["runs"].as_array().unwrap();
    let formats: Vec<&str> = runs.iter().map(|r| r["format"].as_str().unwrap()).collect();
    assert_eq!(formats, ["vtd-ss", "vtd-fs", "arm-s1", "arm-s2"]);
    let total: u64 = runs.iter().map(assert_dirty_exact).sum();

    // The text, on stderr: the headline, the dirty table with the JSON's figures, the
    // latency rows of the writes and passes, and the verdict with the exact count.
    assert!(
        err.lines()
            .next()
            .unwrap()
            .contains("1 debugfs dumper and 1 migration thread"),
        "{err}"
    );
    let t = tables(&err);
    assert_eq!(t.len(), 3, "{err}");
    let (header, rows) = &t[2];
    assert_eq!(rows.len(), 4, "{err}");
    for (row, r) in rows.iter().zip(runs) {
        assert_eq!(row.len(), header.len(), "{header:?} vs {row:?}");
        for (h, cell) in header.iter().zip(row) {
            let (json, scale) = match *h {
                "format" => (&r["format"], COUNT),
                "dirty pages/s" => (&r["dirty"]["dirty_pages_per_s"], RATE),
                "dirtied" => (&r["dirty"]["dirtied_pages"], COUNT),
                "reported" => (&r["dirty"]["reported_pages"], COUNT),
                "by unmaps" => (&r["dirty"]["harvested_pages"], COUNT),
                "passes" => (&r["dirty"]["migration_passes"], COUNT),
                "pass p50" => (&r["latency"]["migration_pass"]["p50_ns"], TIME),
                "pass max" => (&r["latency"]["migration_pass"]["max_ns"], TIME),
                "window" => (&r["dirty"]["window_bytes"], SIZE),
                other => panic!("dirty column '{other}' is not checked against the JSON"),
            };
            same(cell, json, scale, &format!("{} {h}", row[0]));
        }
        // Counts print exactly, so the text shows the equality too.
        assert_eq!(
            cell_of(header, row, "dirtied"),
            cell_of(header, row, "reported")
        );
    }
    let (_, latency) = &t[1];
    for format in formats {
        for call in ["dma write", "migration pass"] {
            let row = latency
                .iter()
                .find(|l| l[0] == format && l[1] == call)
                .unwrap_or_else(|| panic!("no {format} {call} row in\n{err}"));
            let r = runs.iter().find(|r| r["format"] == format).unwrap();
            same(
                row[2],
                &r["latency"][call_key(call)]["calls"],
                RATE,
                &format!("{format} {call} calls"),
            );
        }
    }
    assert!(
        err.contains(&format!(
            "dirty tracking: {total} pages dirtied and {total} reported; every page the \
             devices wrote was reported exactly once."
        )),
        "{err}"
    );
}

/// The cell of `row` under `name`.
fn cell_of<'a>(header: &[&str], row: &[&'a str], name: &str) -> &'a str {
    row[header.iter().position(|h| *h == name).unwrap()]
}

#[test]
fn dirty_tracking_is_exact_in_both_designs() {
    // The locked migration pass holds the domain lock shared, like the dumper, and the
    // lock-free one claims chunks: both must report each page once, and the text has a
    // row per run. The smallest span, so the locked writers behind the dumper still
    // map, write and unmap.
    let (code, out, err) = run(&[
        "--dirty",
        "--compare",
        "--json",
        "--format",
        "arm-s1",
        "--span",
        "2M",
        "--duration",
        "1.2",
        "--threads",
        "2",
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("stdout is one JSON document");
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    for r in runs {
        assert_dirty_exact(r);
    }
    let t = tables(&err);
    let (header, rows) = t.last().unwrap();
    assert_eq!(
        header[..4],
        ["format", "design", "dumper", "dirty pages/s"],
        "{err}"
    );
    let shown: Vec<(&str, &str)> = rows.iter().map(|r| (r[1], r[2])).collect();
    assert_eq!(
        shown,
        [
            ("lock-free", "off"),
            ("lock-free", "on"),
            ("locked", "off"),
            ("locked", "on")
        ]
    );
    assert!(
        err.contains("every page the devices wrote was reported exactly once"),
        "{err}"
    );
}
