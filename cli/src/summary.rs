//! The result of `simulate`: what each run measured, the text tables it is printed as,
//! and the JSON it is serialised to. Both come from the same [`Report`], so every
//! figure of the text is in the JSON.

use crate::domain::Design;
use crate::latency::{Call, CallTimes, Latency};
use crate::machine::Machine;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::fmt::Write as _;

/// The queues' wait for a CPU, in percent of their run time, from which the summary
/// warns that the machine, not only the design, shaped the throughput.
const CPU_WAIT_NOTE: f64 = 10.0;

/// Everything a simulation produced.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `iommu-pt`.
    pub tool: &'static str,
    /// The tool's version.
    pub version: &'static str,
    /// What was asked for.
    pub config: RunConfig,
    /// Where it ran.
    pub machine: Machine,
    /// How calls were timed.
    pub clock: Clock,
    /// One per format, design and dumper setting, in the order they ran.
    pub runs: Vec<RunReport>,
    /// Errors of all runs together.
    pub errors: u64,
}

/// The configuration of a simulation.
#[derive(Debug, Clone, Serialize)]
pub struct RunConfig {
    /// The formats, by command-line name.
    pub formats: Vec<&'static str>,
    /// Device queues (writer threads) per domain.
    pub threads: usize,
    /// The whole run time asked for, in seconds.
    pub duration_s: f64,
    /// Each run's share of it.
    pub run_s: f64,
    /// Whether the locked design ran too (`--compare`).
    pub compare: bool,
    /// Whether dirty tracking ran (`--dirty`); absent from the JSON when not.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dirty: bool,
}

/// How calls were timed.
#[derive(Debug, Clone, Serialize)]
pub struct Clock {
    /// The clock read around each call.
    pub source: &'static str,
    /// The median of an empty timed region, in ns: every latency includes about this.
    pub overhead_ns: u64,
}

/// The latency distributions of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Latencies {
    /// Map calls (epoch pin, lock if locked, map).
    pub map: Latency,
    /// Unmap calls (epoch pin, lock if locked, unmap, gather release).
    pub unmap: Latency,
    /// Page translations by the device (the shared lock if locked).
    pub translate: Latency,
    /// IOVA allocations.
    pub iova_alloc: Latency,
    /// IOVA frees.
    pub iova_free: Latency,
    /// Whole dump-and-check passes of the dumper; absent without one.
    pub dump_pass: Option<Latency>,
    /// With `--dirty`: the devices' page writes (`mark_dirty`); absent without.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dma_write: Option<Latency>,
    /// With `--dirty`: whole read-and-clear passes of the migration thread over its
    /// window; absent without.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration_pass: Option<Latency>,
}

impl Latencies {
    /// The summaries of the queues' merged `times`, the dumper's `passes`, and with
    /// dirty tracking the migration thread's `migration` passes (the devices' writes are
    /// then reported too).
    pub fn new(
        times: &CallTimes,
        passes: Option<&Histogram<u64>>,
        migration: Option<&Histogram<u64>>,
    ) -> Self {
        let of = |c| Latency::of(times.get(c));
        Latencies {
            map: of(Call::Map),
            unmap: of(Call::Unmap),
            translate: of(Call::Translate),
            iova_alloc: of(Call::IovaAlloc),
            iova_free: of(Call::IovaFree),
            dump_pass: passes.map(Latency::of),
            dma_write: migration.map(|_| of(Call::DmaWrite)),
            migration_pass: migration.map(Latency::of),
        }
    }

    /// The distributions with the names the text prints, in order.
    pub fn named(&self) -> Vec<(&'static str, &Latency)> {
        let mut v = vec![
            (Call::Map.name(), &self.map),
            (Call::Unmap.name(), &self.unmap),
            (Call::Translate.name(), &self.translate),
        ];
        if let Some(w) = &self.dma_write {
            v.push((Call::DmaWrite.name(), w));
        }
        v.push((Call::IovaAlloc.name(), &self.iova_alloc));
        v.push((Call::IovaFree.name(), &self.iova_free));
        if let Some(d) = &self.dump_pass {
            v.push(("dump pass", d));
        }
        if let Some(m) = &self.migration_pass {
            v.push(("migration pass", m));
        }
        v
    }
}

/// What dirty tracking (`--dirty`) counted in one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DirtyReport {
    /// Pages the devices' writes made dirty: each write that found its leaf clean, times
    /// the granules of the leaf (a dirty leaf reports all of them).
    pub dirtied_pages: u64,
    /// Pages read-and-clear reported, by the migration passes and the unmaps'
    /// harvests, those after the queues stopped (teardown, a final pass) included.
    pub reported_pages: u64,
    /// Of those, the pages the unmaps' harvests reported.
    pub harvested_pages: u64,
    /// Pages reported while the queues ran.
    pub reported_in_run: u64,
    /// `reported_in_run` per second of the run.
    pub dirty_pages_per_s: f64,
    /// Whole migration passes over the window while the queues ran.
    pub migration_passes: u64,
    /// IOTLB invalidations the passes issued (one per pass that found a dirty page).
    pub invalidations: u64,
    /// Bytes those invalidations covered.
    pub invalidated_bytes: u64,
    /// First IOVA of the window a pass reads and clears.
    pub window_start: u64,
    /// Bytes of that window.
    pub window_bytes: u64,
}

impl DirtyReport {
    /// Whether every page dirtied was reported exactly once: fewer reported means a
    /// write was lost, more that one was reported twice (or invented).
    pub fn exact(&self) -> bool {
        self.dirtied_pages == self.reported_pages
    }
}

/// What one run (a format, a design, with or without the dumper) measured.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The format's command-line name.
    pub format: &'static str,
    /// Its configuration, e.g. `48/48/4K` (IAS/OAS/granule).
    pub config: String,
    /// The granule (and table page) size in bytes.
    pub granule: u64,
    /// Lock-free or locked.
    pub design: Design,
    /// Whether the debugfs dumper ran.
    pub dumper: bool,
    /// Device queues.
    pub threads: usize,
    /// Bytes of IOVA space each queue kept mapped at most.
    pub span_bytes: u64,
    /// How long the queues ran, in seconds.
    pub elapsed_s: f64,
    /// Buffers mapped.
    pub maps: u64,
    /// Buffers unmapped (one IOTLB invalidation each).
    pub unmaps: u64,
    /// Pages the devices translated.
    pub translations: u64,
    /// Bytes invalidated.
    pub invalidated_bytes: u64,
    /// Table pages unmaps unlinked and released for reclamation.
    pub tables_freed: u64,
    /// `alloc_fast` calls served from the per-CPU caches.
    pub iova_hits: u64,
    /// `alloc_fast` calls of a cached size that went to the tree.
    pub iova_misses: u64,
    /// Buffers mapped per second.
    pub maps_per_s: f64,
    /// Buffers unmapped per second.
    pub unmaps_per_s: f64,
    /// Pages translated per second.
    pub translations_per_s: f64,
    /// Writer calls (maps and unmaps) per second.
    pub writes_per_s: f64,
    /// The share of cache-sized IOVA allocations served by the caches, in percent.
    pub iova_hit_percent: f64,
    /// Writes per second against the same format and design without the dumper, as a
    /// change in percent; only for runs with the dumper when that run exists.
    pub writes_vs_no_dumper_percent: Option<f64>,
    /// The share of the queues' run time they spent runnable but waiting for a CPU, in
    /// percent (Linux only): large on a busy machine, or with fewer CPUs than queues
    /// plus the dumper.
    pub cpu_wait_percent: Option<f64>,
    /// Most bytes mapped at once (sampled).
    pub peak_mapped_bytes: u64,
    /// Most table pages in the tree or awaiting reclamation (sampled).
    pub peak_table_pages: u64,
    /// The fewest table pages `peak_mapped_bytes` need, perfectly packed.
    pub min_table_pages: u64,
    /// Whole dump-and-check passes the dumper completed.
    pub dump_passes: u64,
    /// Leaves the dumper checked.
    pub leaves_checked: u64,
    /// Per-call latency distributions.
    pub latency: Latencies,
    /// With `--dirty`, what dirty tracking counted; absent without.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dirty: Option<DirtyReport>,
    /// Errors of any kind.
    pub errors: u64,
    /// The first error messages.
    pub messages: Vec<String>,
    /// Map and unmap calls together, for the picture.
    #[serde(skip)]
    pub writer_times: Histogram<u64>,
}

impl RunReport {
    /// Whether this is a run of the main job (lock-free, dumper running).
    pub fn is_main(&self) -> bool {
        self.design == Design::LockFree && self.dumper
    }

    /// Fills the figures derived from the counts and the elapsed time.
    pub fn derive(&mut self) {
        let secs = self.elapsed_s.max(1e-9);
        self.maps_per_s = self.maps as f64 / secs;
        self.unmaps_per_s = self.unmaps as f64 / secs;
        self.translations_per_s = self.translations as f64 / secs;
        self.writes_per_s = (self.maps + self.unmaps) as f64 / secs;
        self.iova_hit_percent =
            100.0 * self.iova_hits as f64 / (self.iova_hits + self.iova_misses).max(1) as f64;
        if let Some(d) = &mut self.dirty {
            d.dirty_pages_per_s = d.reported_in_run as f64 / secs;
        }
    }
}

impl Report {
    /// The report of `runs`, with the dumper's cost on writers filled in.
    pub fn new(
        config: RunConfig,
        machine: Machine,
        clock: Clock,
        mut runs: Vec<RunReport>,
    ) -> Self {
        let baselines: Vec<(&'static str, Design, f64)> = runs
            .iter()
            .filter(|r| !r.dumper)
            .map(|r| (r.format, r.design, r.writes_per_s))
            .collect();
        for r in runs.iter_mut().filter(|r| r.dumper) {
            r.writes_vs_no_dumper_percent = baselines
                .iter()
                .find(|(f, d, _)| *f == r.format && *d == r.design)
                .filter(|(_, _, base)| *base > 0.0)
                .map(|(_, _, base)| 100.0 * (r.writes_per_s / base - 1.0));
        }
        let errors = runs.iter().map(|r| r.errors).sum();
        Report {
            tool: "iommu-pt",
            version: env!("CARGO_PKG_VERSION"),
            config,
            machine,
            clock,
            runs,
            errors,
        }
    }
}

/// `12.3M`, `845k`, `1.96k`, `17`: a rate or count to three digits, with an SI suffix.
pub fn si(v: f64) -> String {
    let (scaled, unit) = if v >= 1e9 {
        (v / 1e9, "G")
    } else if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        return format!("{v:.0}");
    };
    three_digits(scaled, unit)
}

/// `scaled` (at least 1) to three significant digits, then `unit`.
fn three_digits(scaled: f64, unit: &str) -> String {
    if scaled < 10.0 {
        format!("{scaled:.2}{unit}")
    } else if scaled < 100.0 {
        format!("{scaled:.1}{unit}")
    } else {
        format!("{scaled:.0}{unit}")
    }
}

/// `850ns`, `8.32µs`, `250µs`, `1.25ms`, `2.10s`: a latency to three digits.
pub fn duration(ns: u64) -> String {
    let v = ns as f64;
    let (scaled, unit) = if ns < 1_000 {
        return format!("{ns}ns");
    } else if ns < 1_000_000 {
        (v / 1e3, "µs")
    } else if ns < 1_000_000_000 {
        (v / 1e6, "ms")
    } else {
        (v / 1e9, "s")
    };
    three_digits(scaled, unit)
}

/// `512K`, `31.8M`, `2.00G`: a byte count in powers of 1024, to three digits.
pub fn bytes(n: u64) -> String {
    let units = [(40, "T"), (30, "G"), (20, "M"), (10, "K")];
    for (shift, unit) in units {
        if n >= 1 << shift {
            let v = n as f64 / (1u64 << shift) as f64;
            return if n.is_multiple_of(1 << shift) && v < 1000.0 {
                format!("{v:.0}{unit}")
            } else {
                three_digits(v, unit)
            };
        }
    }
    format!("{n}")
}

/// `+1.2%`, `-87.0%`, or `-` when there is nothing to compare with.
fn change(p: Option<f64>) -> String {
    p.map_or_else(|| "-".into(), |p| format!("{p:+.1}%"))
}

/// A table: the first `names` columns left aligned, numbers right aligned, columns two
/// spaces apart.
fn table(header: &[&str], rows: &[Vec<String>], names: usize) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i < names {
                let _ = write!(l, "{cell:<w$}  ");
            } else {
                let _ = write!(l, "{cell:>w$}  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// The workload table: one row per run of the main job.
fn workload_table(runs: &[&RunReport]) -> String {
    let header = [
        "format",
        "ias/oas/gran",
        "maps/s",
        "unmaps/s",
        "translations/s",
        "IOVA hits",
        "peak mapped",
        "peak tables",
        "min tables",
        "freed tables",
        "dump passes",
        "errors",
    ];
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.format.to_string(),
                r.config.clone(),
                si(r.maps_per_s),
                si(r.unmaps_per_s),
                si(r.translations_per_s),
                format!("{:.1}%", r.iova_hit_percent),
                bytes(r.peak_mapped_bytes),
                r.peak_table_pages.to_string(),
                r.min_table_pages.to_string(),
                r.tables_freed.to_string(),
                r.dump_passes.to_string(),
                r.errors.to_string(),
            ]
        })
        .collect();
    table(&header, &rows, 2)
}

/// The latency table: one row per kind of call of each run of the main job.
fn latency_table(runs: &[&RunReport]) -> String {
    let header = ["format", "call", "calls", "p50", "p99", "p99.9", "max"];
    let mut rows = Vec::new();
    for r in runs {
        for (name, l) in r.latency.named() {
            rows.push(vec![
                r.format.to_string(),
                name.to_string(),
                si(l.calls as f64),
                duration(l.p50_ns),
                duration(l.p99_ns),
                duration(l.p99_9_ns),
                duration(l.max_ns),
            ]);
        }
    }
    table(&header, &rows, 2)
}

/// The comparison table: every run, writers' throughput and tail latency.
fn compare_table(runs: &[RunReport]) -> String {
    let header = [
        "format",
        "design",
        "dumper",
        "writes/s",
        "vs no dumper",
        "cpu wait",
        "map p99.9",
        "unmap p99.9",
        "translate p99.9",
        "dump pass p50",
        "dump passes",
        "errors",
    ];
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.format.to_string(),
                r.design.name().to_string(),
                if r.dumper { "on" } else { "off" }.to_string(),
                si(r.writes_per_s),
                change(r.writes_vs_no_dumper_percent),
                r.cpu_wait_percent
                    .map_or_else(|| "-".into(), |p| format!("{p:.0}%")),
                duration(r.latency.map.p99_9_ns),
                duration(r.latency.unmap.p99_9_ns),
                duration(r.latency.translate.p99_9_ns),
                r.latency
                    .dump_pass
                    .as_ref()
                    .map_or_else(|| "-".into(), |d| duration(d.p50_ns)),
                r.dump_passes.to_string(),
                r.errors.to_string(),
            ]
        })
        .collect();
    table(&header, &rows, 3)
}

/// The dirty-tracking table: one row per run (the main job's, or every run with
/// `--compare`).
fn dirty_table(runs: &[&RunReport], compare: bool) -> String {
    let mut header = vec!["format"];
    if compare {
        header.extend(["design", "dumper"]);
    }
    header.extend([
        "dirty pages/s",
        "dirtied",
        "reported",
        "by unmaps",
        "passes",
        "pass p50",
        "pass max",
        "window",
    ]);
    let rows: Vec<Vec<String>> = runs
        .iter()
        .filter_map(|r| Some((r, r.dirty.as_ref()?)))
        .map(|(r, d)| {
            let mut row = vec![r.format.to_string()];
            if compare {
                row.push(r.design.name().to_string());
                row.push(if r.dumper { "on" } else { "off" }.to_string());
            }
            let pass = r.latency.migration_pass.as_ref();
            row.extend([
                si(d.dirty_pages_per_s),
                d.dirtied_pages.to_string(),
                d.reported_pages.to_string(),
                d.harvested_pages.to_string(),
                d.migration_passes.to_string(),
                pass.map_or_else(|| "-".into(), |p| duration(p.p50_ns)),
                pass.map_or_else(|| "-".into(), |p| duration(p.max_ns)),
                bytes(d.window_bytes),
            ]);
            row
        })
        .collect();
    table(&header, &rows, if compare { 3 } else { 1 })
}

/// The spans of the runs: one size, or one per format when they differ.
fn spans(runs: &[&RunReport]) -> String {
    let first = runs.first().map_or(0, |r| r.span_bytes);
    if runs.iter().all(|r| r.span_bytes == first) {
        return bytes(first);
    }
    runs.iter()
        .map(|r| format!("{} {}", r.format, bytes(r.span_bytes)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The whole text summary: a headline, the main job's workload and latency tables, the
/// comparison when the locked design ran too, a legend and the verdict.
pub fn render(report: &Report) -> String {
    let main: Vec<&RunReport> = report.runs.iter().filter(|r| r.is_main()).collect();
    let c = &report.config;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "iommu-pt simulate: {} device queue{} per domain, each keeping up to {} mapped, \
         and 1 debugfs dumper{}; {} run{} of {:.2} s\n",
        c.threads,
        if c.threads == 1 { "" } else { "s" },
        spans(&main),
        if c.dirty {
            " and 1 migration thread"
        } else {
            ""
        },
        report.runs.len(),
        if report.runs.len() == 1 { "" } else { "s" },
        c.run_s
    );
    out.push_str(&workload_table(&main));
    let _ = writeln!(
        out,
        "\nLatency per call, lock-free, dumper running (each figure includes about {} ns \
         of clock reading):",
        report.clock.overhead_ns
    );
    out.push_str(&latency_table(&main));
    if c.compare {
        out.push_str(
            "\nThe same workload with one lock per domain (writes: map and unmap calls):\n",
        );
        out.push_str(&compare_table(&report.runs));
    }
    if c.dirty {
        out.push_str(
            "\nDirty tracking (devices write their writable buffers; a migration thread \
             reads and clears the window pass after pass; each unmap harvests its buffer \
             first):\n",
        );
        let runs: Vec<&RunReport> = if c.compare {
            report.runs.iter().collect()
        } else {
            main.clone()
        };
        out.push_str(&dirty_table(&runs, c.compare));
    }
    out.push_str(
        "\nmaps/s, unmaps/s: buffers of 4K to 2M (a table span) per second, all queues; \
         translations/s: pages the devices translated.\n\
         peak tables: most table pages in the tree or awaiting reclamation (a dump pass \
         holds it back while it reads); min tables: the fewest the peak mapped bytes need.\n\
         map and unmap times include the epoch pin, unmap's the gather release; a dump \
         pass dumps the whole table and checks every leaf.\n",
    );
    if c.compare {
        out.push_str(
            "locked: an RwLock per domain, exclusive in map and unmap, shared in each \
             translation and for a whole dump pass; vs no dumper: writes/s against the \
             same design without the dumper.\n",
        );
    }
    if c.dirty {
        out.push_str(
            "dirty pages/s: pages reported per second while the queues ran; dirtied: pages \
             the devices' writes made dirty; reported: pages read-and-clear reported, by the \
             passes and by unmaps (with the teardown's and a final pass's).\n\
             a pass reads and clears the window below the allocator's limit in table-span \
             chunks, beside the queues' maps and unmaps (no lock: each clear reports only \
             what it cleaned), then invalidates what it found dirty; unmap times include \
             the harvest; dma write is \
             the device's write of a page (mark_dirty), each page of a writable buffer \
             and its first again for the completion status.\n",
        );
    }
    let waited = report
        .runs
        .iter()
        .filter_map(|r| r.cpu_wait_percent)
        .fold(0.0, f64::max);
    if waited >= CPU_WAIT_NOTE {
        let _ = writeln!(
            out,
            "note: the device queues waited for a CPU up to {waited:.0}% of their run time \
             (a busy machine, or fewer CPUs than {}); throughput, and the dumper's cost to \
             it, include that wait.",
            if c.dirty {
                "queues, the dumper and the migration thread"
            } else {
                "queues and the dumper"
            }
        );
    }
    if c.dirty {
        let dirty: Vec<&DirtyReport> = report
            .runs
            .iter()
            .filter_map(|r| r.dirty.as_ref())
            .collect();
        let inexact = dirty.iter().filter(|d| !d.exact()).count();
        if inexact == 0 {
            let pages: u64 = dirty.iter().map(|d| d.dirtied_pages).sum();
            let _ = writeln!(
                out,
                "dirty tracking: {pages} pages dirtied and {pages} reported; every page the \
                 devices wrote was reported exactly once."
            );
        } else {
            let _ = writeln!(
                out,
                "dirty tracking: the pages dirtied and reported differ in {inexact} run{}: \
                 FAILED.",
                if inexact == 1 { "" } else { "s" }
            );
        }
    }
    if report.errors == 0 {
        out.push_str(
            "errors: none; every translation seen by the devices and the dumper was right.\n",
        );
    } else {
        let _ = writeln!(
            out,
            "errors: {} (wrong translations, failed operations or leaks): FAILED.",
            report.errors
        );
    }
    if !c.compare {
        out.push_str("Run with --compare to see the same workload under one lock per domain.\n");
    }
    out
}

/// One paragraph per run with its details (more than the tables hold).
pub fn details(r: &RunReport) -> String {
    let dirty = r.dirty.as_ref().map_or_else(String::new, |d| {
        format!(
            "; {} pages dirtied, {} reported ({} by unmaps) in {} migration passes, {} \
             invalidations of {} MiB",
            d.dirtied_pages,
            d.reported_pages,
            d.harvested_pages,
            d.migration_passes,
            d.invalidations,
            d.invalidated_bytes >> 20
        )
    });
    format!(
        "{} ({}, dumper {}): {} buffers mapped and {} unmapped by {} queues in {:.2} s, \
         {} pages translated, {} MiB invalidated, {} leaves checked in {} dumps; IOVA \
         cache {} hits, {} misses{}",
        r.format,
        r.design.name(),
        if r.dumper { "on" } else { "off" },
        r.maps,
        r.unmaps,
        r.threads,
        r.elapsed_s,
        r.translations,
        r.invalidated_bytes >> 20,
        r.leaves_checked,
        r.dump_passes,
        r.iova_hits,
        r.iova_misses,
        dirty
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::histogram;

    /// A run of `format` with known figures: `writes` maps and unmaps in one second, and
    /// every kind of call distributed as 1..=1000 ns once each.
    fn run(format: &'static str, design: Design, dumper: bool, writes: u64) -> RunReport {
        let mut h = histogram();
        for v in 1..=1000 {
            h.record(v).unwrap();
        }
        let lat = Latency::of(&h);
        let mut r = RunReport {
            format,
            config: "48/48/4K".into(),
            granule: 4096,
            design,
            dumper,
            threads: 2,
            span_bytes: 16 << 20,
            elapsed_s: 1.0,
            maps: writes / 2,
            unmaps: writes / 2,
            translations: 8000,
            invalidated_bytes: 0,
            tables_freed: 12,
            iova_hits: 90,
            iova_misses: 10,
            maps_per_s: 0.0,
            unmaps_per_s: 0.0,
            translations_per_s: 0.0,
            writes_per_s: 0.0,
            iova_hit_percent: 0.0,
            writes_vs_no_dumper_percent: None,
            cpu_wait_percent: Some(1.5),
            peak_mapped_bytes: 32 << 20,
            peak_table_pages: 40,
            min_table_pages: 19,
            dump_passes: if dumper { 77 } else { 0 },
            leaves_checked: 0,
            latency: Latencies {
                map: lat.clone(),
                unmap: lat.clone(),
                translate: lat.clone(),
                iova_alloc: lat.clone(),
                iova_free: lat.clone(),
                dump_pass: dumper.then(|| lat.clone()),
                dma_write: None,
                migration_pass: None,
            },
            dirty: None,
            errors: 0,
            messages: vec![],
            writer_times: h,
        };
        r.derive();
        r
    }

    fn report(runs: Vec<RunReport>, compare: bool) -> Report {
        Report::new(
            RunConfig {
                formats: vec!["vtd-ss"],
                threads: 2,
                duration_s: 1.0,
                run_s: 1.0,
                compare,
                dirty: false,
            },
            Machine::detect(),
            Clock {
                source: "Instant",
                overhead_ns: 21,
            },
            runs,
        )
    }

    #[test]
    fn units() {
        assert_eq!(si(17.0), "17");
        assert_eq!(si(845_200.0), "845k");
        assert_eq!(si(1_960.0), "1.96k");
        assert_eq!(si(12_340_000.0), "12.3M");
        assert_eq!(si(2.5e9), "2.50G");
        assert_eq!(duration(850), "850ns");
        assert_eq!(duration(8_321), "8.32µs");
        assert_eq!(duration(83_210), "83.2µs");
        assert_eq!(duration(250_400), "250µs");
        assert_eq!(duration(1_250_000), "1.25ms");
        assert_eq!(duration(2_100_000_000), "2.10s");
        assert_eq!(bytes(512), "512");
        assert_eq!(bytes(16 << 20), "16M");
        assert_eq!(bytes(33_284_096), "31.7M");
        assert_eq!(bytes(1 << 40), "1T");
        assert_eq!(bytes(3 << 29), "1.50G");
        assert_eq!(change(Some(-2.44)), "-2.4%");
        assert_eq!(change(Some(1.0)), "+1.0%");
        assert_eq!(change(None), "-");
    }

    #[test]
    fn main_tables_hold_the_known_figures() {
        let text = render(&report(
            vec![run("vtd-ss", Design::LockFree, true, 2000)],
            false,
        ));
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("iommu-pt simulate: 2 device queues"),
            "{text}"
        );
        assert!(lines[0].contains("each keeping up to 16M mapped"), "{text}");
        assert!(lines[2].starts_with("format"), "{text}");
        let row: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(
            row,
            [
                "vtd-ss", "48/48/4K", "1.00k", "1.00k", "8.00k", "90.0%", "32M", "40", "19", "12",
                "77", "0"
            ]
        );
        let map = text
            .lines()
            .find(|l| l.starts_with("vtd-ss  map"))
            .expect("a map row");
        let cells: Vec<&str> = map.split("  ").filter(|c| !c.is_empty()).collect();
        assert_eq!(
            cells.iter().map(|c| c.trim()).collect::<Vec<_>>(),
            [
                "vtd-ss", "map", "1.00k", "500ns", "990ns", "999ns", "1.00µs"
            ]
        );
        assert!(text.contains("vtd-ss  dump pass"), "{text}");
        assert!(text.contains("about 21 ns of clock"), "{text}");
        assert!(text.contains("errors: none;"), "{text}");
        assert!(text.contains("Run with --compare"), "{text}");
        assert!(!text.contains("one lock per domain (writes"), "{text}");
    }

    #[test]
    fn known_distributions_come_out_as_their_percentiles() {
        // Fed straight to the summary: each kind of call with a distribution whose
        // percentiles are known exactly (values below 2048 ns, or at the top of their
        // HDR bucket, are stored exactly).
        let stall = (1 << 20) - 1;
        let mut times = CallTimes::default();
        for v in 1..=1000 {
            times.record(Call::Map, v);
        }
        for i in 0..5120 {
            // One call in 512 stalls for a millisecond.
            times.record(Call::Unmap, if i % 512 == 511 { stall } else { 100 });
        }
        for _ in 0..10_000 {
            times.record(Call::Translate, 30);
        }
        for v in [10, 20, 30, 40] {
            times.record(Call::IovaAlloc, v);
        }
        times.record(Call::IovaFree, 45_000);
        let mut passes = histogram();
        passes.record_n(700_415, 99).unwrap();
        passes.record(2_000_000_000).unwrap();
        let mut r = run("vtd-fs", Design::LockFree, true, 2000);
        r.latency = Latencies::new(&times, Some(&passes), None);
        let l = &r.latency;
        assert_eq!(
            (l.map.p50_ns, l.map.p99_ns, l.map.p99_9_ns),
            (500, 990, 999)
        );
        assert_eq!((l.unmap.p50_ns, l.unmap.p99_ns), (100, 100));
        assert_eq!((l.unmap.p99_9_ns, l.unmap.max_ns), (stall, stall));
        assert_eq!(
            (l.translate.calls, l.translate.min_ns, l.translate.max_ns),
            (10_000, 30, 30)
        );
        assert_eq!((l.iova_alloc.p50_ns, l.iova_alloc.p99_ns), (20, 40));
        let text = render(&report(vec![r], false));
        let row = |call: &str| -> Vec<String> {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("vtd-fs  {call}  ")))
                .unwrap_or_else(|| panic!("no {call} row in\n{text}"));
            line.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .skip(2)
                .map(String::from)
                .collect()
        };
        assert_eq!(row("map"), ["1.00k", "500ns", "990ns", "999ns", "1.00µs"]);
        assert_eq!(
            row("unmap"),
            ["5.12k", "100ns", "100ns", "1.05ms", "1.05ms"]
        );
        assert_eq!(row("translate"), ["10.0k", "30ns", "30ns", "30ns", "30ns"]);
        assert_eq!(row("iova alloc"), ["4", "20ns", "40ns", "40ns", "40ns"]);
        assert_eq!(
            row("iova free"),
            ["1", "45.0µs", "45.0µs", "45.0µs", "45.0µs"]
        );
        assert_eq!(
            row("dump pass"),
            ["100", "700µs", "700µs", "2.00s", "2.00s"]
        );
    }

    #[test]
    fn comparison_shows_the_dumpers_cost_per_design() {
        let runs = vec![
            run("vtd-ss", Design::LockFree, false, 2000),
            run("vtd-ss", Design::LockFree, true, 1960),
            run("vtd-ss", Design::Locked, false, 1000),
            run("vtd-ss", Design::Locked, true, 100),
        ];
        let rep = report(runs, true);
        let tenths = |p: Option<f64>| p.map(|p| (p * 10.0).round() / 10.0);
        assert_eq!(tenths(rep.runs[1].writes_vs_no_dumper_percent), Some(-2.0));
        assert_eq!(tenths(rep.runs[3].writes_vs_no_dumper_percent), Some(-90.0));
        assert_eq!(rep.runs[0].writes_vs_no_dumper_percent, None);
        let text = render(&rep);
        // The main tables keep to the lock-free run with the dumper.
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("vtd-ss  48/48/4K"))
                .count(),
            1
        );
        let row = |design: &str, dumper: &str| -> Vec<String> {
            text.lines()
                .find(|l| {
                    let c: Vec<&str> = l.split_whitespace().collect();
                    c.len() > 3 && c[0] == "vtd-ss" && c[1] == design && c[2] == dumper
                })
                .unwrap_or_else(|| panic!("no {design} {dumper} row in\n{text}"))
                .split_whitespace()
                .map(String::from)
                .collect()
        };
        assert_eq!(row("lock-free", "on")[3..5], ["1.96k", "-2.0%"]);
        assert_eq!(row("locked", "on")[3..5], ["100", "-90.0%"]);
        assert_eq!(row("locked", "off")[3..5], ["1.00k", "-"]);
        assert_eq!(row("locked", "off")[5], "2%");
        assert_eq!(row("locked", "off")[9], "-");
        assert_eq!(row("locked", "on")[9], "500ns");
        assert!(!text.contains("note: the device queues waited"), "{text}");
        assert!(!text.contains("Run with --compare"), "{text}");
    }

    #[test]
    fn json_holds_the_runs_and_their_percentiles() {
        let rep = report(vec![run("arm-s2", Design::LockFree, true, 2000)], false);
        let v: serde_json::Value = serde_json::to_value(&rep).unwrap();
        let r = &v["runs"][0];
        assert_eq!(r["format"], "arm-s2");
        assert_eq!(r["design"], "lock-free");
        assert_eq!(r["maps_per_s"], 1000.0);
        assert_eq!(r["latency"]["map"]["p99_9_ns"], 999);
        assert_eq!(r["latency"]["dump_pass"]["max_ns"], 1000);
        assert_eq!(
            r["latency"]["translate"]["percentiles"][0],
            serde_json::json!([50.0, 500])
        );
        assert_eq!(v["clock"]["overhead_ns"], 21);
        assert_eq!(v["errors"], 0);
        assert!(r.get("writer_times").is_none());
    }

    #[test]
    fn errors_are_called_a_failure() {
        let mut r = run("arm-s1", Design::LockFree, true, 10);
        r.errors = 3;
        r.cpu_wait_percent = Some(48.7);
        let text = render(&report(vec![r], false));
        assert!(
            text.contains("note: the device queues waited for a CPU up to 49% of their run time"),
            "{text}"
        );
        assert!(text.contains("errors: 3 (wrong translations"), "{text}");
        assert!(text.contains("FAILED"), "{text}");
    }

    /// `r` with dirty tracking: `dirtied` pages dirtied, `reported` reported (a quarter
    /// by unmaps) of which 200k while running for one second, 40 passes of 1..=1000 ns.
    fn with_dirt(mut r: RunReport, dirtied: u64, reported: u64) -> RunReport {
        let mut passes = histogram();
        for v in 1..=1000 {
            passes.record(v).unwrap();
        }
        let mut times = CallTimes::default();
        times.record(Call::DmaWrite, 50);
        r.latency.dma_write = Some(Latency::of(times.get(Call::DmaWrite)));
        r.latency.migration_pass = Some(Latency::of(&passes));
        r.dirty = Some(DirtyReport {
            dirtied_pages: dirtied,
            reported_pages: reported,
            harvested_pages: reported / 4,
            reported_in_run: 200_000,
            dirty_pages_per_s: 0.0,
            migration_passes: 40,
            invalidations: 30,
            invalidated_bytes: 3 << 20,
            window_start: (1 << 48) - (64 << 20),
            window_bytes: 64 << 20,
        });
        r.derive();
        r
    }

    fn dirty_report(runs: Vec<RunReport>, compare: bool) -> Report {
        let mut rep = report(runs, compare);
        rep.config.dirty = true;
        rep
    }

    #[test]
    fn dirty_tracking_has_its_table_rows_and_verdict() {
        let r = with_dirt(
            run("vtd-ss", Design::LockFree, true, 2000),
            123_456,
            123_456,
        );
        assert_eq!(r.dirty.as_ref().unwrap().dirty_pages_per_s, 200_000.0);
        let text = render(&dirty_report(vec![r], false));
        assert!(
            text.lines()
                .next()
                .unwrap()
                .contains("and 1 debugfs dumper and 1 migration thread;"),
            "{text}"
        );
        let lines: Vec<&str> = text.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with("Dirty tracking ("))
            .unwrap_or_else(|| panic!("no dirty table in\n{text}"));
        let header: Vec<&str> = lines[at + 1]
            .split("  ")
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(
            header.iter().map(|c| c.trim()).collect::<Vec<_>>(),
            [
                "format",
                "dirty pages/s",
                "dirtied",
                "reported",
                "by unmaps",
                "passes",
                "pass p50",
                "pass max",
                "window"
            ]
        );
        let row: Vec<&str> = lines[at + 2].split_whitespace().collect();
        assert_eq!(
            row,
            [
                "vtd-ss", "200k", "123456", "123456", "30864", "40", "500ns", "1.00µs", "64M"
            ]
        );
        // The device's write and the pass among the latency rows.
        assert!(text.contains("vtd-ss  dma write "), "{text}");
        // With a CPU-starved machine, the note names the migration thread too.
        let mut r = with_dirt(run("vtd-ss", Design::LockFree, true, 2000), 1, 1);
        r.cpu_wait_percent = Some(30.0);
        let starved = render(&dirty_report(vec![r], false));
        assert!(
            starved.contains("fewer CPUs than queues, the dumper and the migration thread)"),
            "{starved}"
        );
        assert!(text.contains("vtd-ss  migration pass "), "{text}");
        assert!(
            text.contains(
                "dirty tracking: 123456 pages dirtied and 123456 reported; every page the \
                 devices wrote was reported exactly once."
            ),
            "{text}"
        );
    }

    #[test]
    fn dirty_counts_that_differ_fail_and_compare_shows_every_run() {
        let runs = vec![
            with_dirt(run("arm-s2", Design::LockFree, false, 2000), 10, 10),
            with_dirt(run("arm-s2", Design::LockFree, true, 2000), 10, 11),
            with_dirt(run("arm-s2", Design::Locked, false, 2000), 10, 9),
            with_dirt(run("arm-s2", Design::Locked, true, 2000), 0, 0),
        ];
        let text = render(&dirty_report(runs, true));
        assert!(
            text.contains(
                "dirty tracking: the pages dirtied and reported differ in 2 runs: FAILED."
            ),
            "{text}"
        );
        assert!(!text.contains("exactly once"), "{text}");
        let at = text.find("Dirty tracking (").unwrap();
        let rows: Vec<Vec<&str>> = text[at..]
            .lines()
            .skip(2)
            .take_while(|l| !l.trim().is_empty())
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(rows.len(), 4, "{text}");
        assert_eq!(
            rows[1][..6],
            ["arm-s2", "lock-free", "on", "200k", "10", "11"]
        );
        assert_eq!(rows[2][..6], ["arm-s2", "locked", "off", "200k", "10", "9"]);
    }

    #[test]
    fn without_dirty_tracking_nothing_of_it_shows() {
        let rep = report(vec![run("vtd-fs", Design::LockFree, true, 2000)], false);
        let text = render(&rep);
        assert!(!text.to_lowercase().contains("dirty"), "{text}");
        assert!(!text.contains("migration"), "{text}");
        let v = serde_json::to_value(&rep).unwrap();
        assert!(v["config"].get("dirty").is_none(), "{v}");
        assert!(v["runs"][0].get("dirty").is_none(), "{v}");
        assert!(v["runs"][0]["latency"].get("dma_write").is_none(), "{v}");
        assert!(
            v["runs"][0]["latency"].get("migration_pass").is_none(),
            "{v}"
        );
        // With it, all of it does.
        let r = with_dirt(run("vtd-fs", Design::LockFree, true, 2000), 5, 5);
        let v = serde_json::to_value(dirty_report(vec![r], false)).unwrap();
        assert_eq!(v["config"]["dirty"], true);
        assert_eq!(v["runs"][0]["dirty"]["reported_pages"], 5);
        assert_eq!(v["runs"][0]["dirty"]["dirty_pages_per_s"], 200_000.0);
        assert_eq!(v["runs"][0]["latency"]["dma_write"]["p50_ns"], 50);
        assert_eq!(v["runs"][0]["latency"]["migration_pass"]["max_ns"], 1000);
    }
}
