//! `iommu-pt simulate`, the main job: one IOMMU domain per format, N device queues
//! mapping, translating and unmapping DMA buffers, and a debugfs dumper reading the
//! table all along; formats run one after another, each for its share of the time.
//!
//! With `--compare`, each format runs four times: this library's lock-free design and
//! the per-domain-lock design it replaces, each with and without the dumper. With
//! `--dirty`, every run tracks dirty pages and a migration thread runs beside the
//! dumper (see [`crate::migration`]).

use crate::args::{ConfigArgs, SimulateArgs};
use crate::domain::{Design, Domain, min_table_pages};
use crate::error::CliError;
use crate::formats::{CliFormat, FormatJob, FormatKind, FormatSpec, size_name};
use crate::latency::{self, Call, CallTimes};
use crate::machine::{self, Machine};
use crate::migration::{self, DirtyWindow, MigrationCounters, Tracking};
use crate::plot;
use crate::summary::{self, Clock, DirtyReport, Latencies, Report, RunConfig, RunReport};
use crate::workload::{
    DmaPlan, ErrorLog, MIN_OAS, Peaks, QueueCounters, ReaderCounters, Shared, debugfs_reader,
    device_queue, leaves_left,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pgtable_core::{Format, Geometry};
use std::fs::File;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How often the progress bar is refreshed and the table's size sampled.
const TICK: Duration = Duration::from_millis(100);

/// The default span: this many last-level tables' worth of IOVA space per queue.
const DEFAULT_TABLE_SPANS: u64 = 8;

/// The runs of each format: (design, dumper running).
const MAIN_JOB: &[(Design, bool)] = &[(Design::LockFree, true)];
const COMPARE: &[(Design, bool)] = &[
    (Design::LockFree, false),
    (Design::LockFree, true),
    (Design::Locked, false),
    (Design::Locked, true),
];

/// Runs the workload on the chosen formats and prints the summary.
///
/// # Errors
/// Bad arguments or configuration, a plot file that cannot be written, or any error
/// seen during the run ([`CliError::Failed`]).
pub fn simulate(args: &SimulateArgs) -> Result<(), CliError> {
    let kinds = match args.format {
        Some(k) => vec![k],
        None => FormatKind::ALL.to_vec(),
    };
    let specs = kinds
        .iter()
        .map(|&k| FormatSpec::new(k, &config_for(k, args), None))
        .collect::<Result<Vec<_>, _>>()?;
    let threads = args.threads.unwrap_or_else(|| default_threads(args.dirty));
    let mut spans = Vec::new();
    for spec in &specs {
        if spec.oas < MIN_OAS {
            return Err(CliError::Usage(format!(
                "--oas {}: simulate needs at least {MIN_OAS} output bits",
                spec.oas
            )));
        }
        let geo = spec.run(GeometryOf)?;
        spans.push(span_for(spec.kind, &geo, args.span, threads)?);
    }
    let plot_file = args.plot.as_deref().map(create_plot).transpose()?;

    let phases = if args.compare { COMPARE } else { MAIN_JOB };
    let runs = specs.len() * phases.len();
    let per_run = args.duration / runs as u32;
    let clock = Clock {
        source: "std::time::Instant",
        overhead_ns: latency::clock_overhead(),
    };
    let progress = Progress::new(args.duration, args.quiet);
    let mut reports = Vec::new();
    for (spec, &span) in specs.iter().zip(&spans) {
        for &(design, dumper) in phases {
            let i = reports.len();
            let job = Simulation {
                threads,
                span,
                design,
                dumper,
                dirty: args.dirty,
                duration: per_run,
                progress: &progress,
                label: format!(
                    "[{}/{runs}] {} {}, dumper {}",
                    i + 1,
                    spec.kind,
                    design.name(),
                    if dumper { "on" } else { "off" }
                ),
                offset: per_run * i as u32,
            };
            reports.push(spec.run(job)??);
        }
    }
    progress.bar.finish_and_clear();

    let config = RunConfig {
        formats: kinds.iter().map(|k| k.name()).collect(),
        threads,
        duration_s: args.duration.as_secs_f64(),
        run_s: per_run.as_secs_f64(),
        compare: args.compare,
        dirty: args.dirty,
    };
    let report = Report::new(config, Machine::detect(), clock, reports);
    if let Some((path, mut file)) = plot_file {
        let svg = plot::svg(&report).map_err(|e| io_error(&path, std::io::Error::other(e)))?;
        file.write_all(svg.as_bytes())
            .map_err(|e| io_error(&path, e))?;
    }
    let text = summary::render(&report);
    if args.json {
        let json = serde_json::to_string_pretty(&report).expect("a report always serialises");
        println!("{json}");
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    if report.errors == 0 {
        return Ok(());
    }
    for r in report.runs.iter().filter(|r| r.errors > 0) {
        eprintln!("{}", summary::details(r));
        for m in &r.messages {
            eprintln!("  {}: {m}", r.format);
        }
    }
    Err(CliError::Failed(format!(
        "{} error{} during the simulation",
        report.errors,
        if report.errors == 1 { "" } else { "s" }
    )))
}

/// One queue per CPU but one, which the dumper gets, so that on an idle machine the
/// dumper costs the writers no CPU time and what it costs them is the design's; with
/// dirty tracking, but two, for the same reason with the migration thread.
fn default_threads(dirty: bool) -> usize {
    machine::logical_cpus()
        .saturating_sub(1 + usize::from(dirty))
        .max(1)
}

/// The configuration for `kind`: with every format running, a non-4K `--granule`
/// applies to the Arm formats only (VT-d has no other).
fn config_for(kind: FormatKind, args: &SimulateArgs) -> ConfigArgs {
    let mut cfg = args.config;
    if args.format.is_none() && matches!(kind, FormatKind::VtdSs | FormatKind::VtdFs) {
        cfg.granule = None;
    }
    cfg
}

/// The IOVA span each of `threads` queues of `kind` keeps mapped: `asked` if it is a
/// power of two of at least one last-level table's span and all queues' spans fit in
/// half the input space (so the allocator always finds aligned room), else 8 spans.
///
/// # Errors
/// [`CliError::Usage`] naming the limit the span breaks.
fn span_for(
    kind: FormatKind,
    geo: &Geometry,
    asked: Option<u64>,
    threads: usize,
) -> Result<u64, CliError> {
    let table_span = geo.entry_span(1);
    let span = asked.unwrap_or(DEFAULT_TABLE_SPANS * table_span);
    let what = match asked {
        Some(s) => format!("--span {}", size_name(s)),
        None => format!("the default --span {}", size_name(span)),
    };
    if !span.is_power_of_two() {
        return Err(CliError::Usage(format!(
            "{what}: the span must be a power of two (e.g. 16M, 1G)"
        )));
    }
    if span < table_span {
        return Err(CliError::Usage(format!(
            "{what}: less than one last-level table's span on {kind} ({}); the largest \
             buffers are that big",
            size_name(table_span)
        )));
    }
    let room = 1u128 << (geo.va_bits - 1);
    if threads as u128 * span as u128 > room {
        return Err(CliError::Usage(format!(
            "{what}: {threads} queue{} of it do not fit in half of {kind}'s {}-bit IOVA \
             space ({})",
            if threads == 1 { "" } else { "s" },
            geo.va_bits,
            size_name(room as u64)
        )));
    }
    Ok(span)
}

/// Checks the `--plot` name and creates the file, so a bad path fails before the run.
fn create_plot(path: &Path) -> Result<(PathBuf, File), CliError> {
    let svg = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    if !svg {
        return Err(CliError::Usage(format!(
            "--plot {}: the picture is SVG; name the file *.svg",
            path.display()
        )));
    }
    let file = File::create(path).map_err(|e| io_error(path, e))?;
    Ok((path.to_path_buf(), file))
}

fn io_error(path: &Path, source: std::io::Error) -> CliError {
    CliError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The geometry of a format, so a bad configuration fails before anything runs and the
/// span can be checked against it.
struct GeometryOf;

impl FormatJob for GeometryOf {
    type Output = Geometry;
    fn run<F: CliFormat>(self, fmt: F, _spec: &FormatSpec) -> Self::Output {
        fmt.geometry()
    }
}

/// The progress bar over the whole run (hidden when quiet or stdout is no terminal).
struct Progress {
    bar: ProgressBar,
}

impl Progress {
    fn new(total: Duration, quiet: bool) -> Self {
        let bar = if quiet || !std::io::stdout().is_terminal() {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::with_draw_target(
                Some(total.as_millis() as u64),
                ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>3} [{bar:30}] {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar
        };
        Progress { bar }
    }
}

/// One run: a format, a design, with or without the dumper.
struct Simulation<'a> {
    threads: usize,
    span: u64,
    design: Design,
    dumper: bool,
    /// Dirty tracking and the migration thread (`--dirty`).
    dirty: bool,
    duration: Duration,
    progress: &'a Progress,
    label: String,
    /// Where this run starts on the progress bar.
    offset: Duration,
}

impl FormatJob for Simulation<'_> {
    type Output = Result<RunReport, CliError>;

    fn run<F: CliFormat>(self, fmt: F, spec: &FormatSpec) -> Self::Output {
        let plan = DmaPlan::new(&fmt, self.span);
        let reserved = fmt.reserved_iova();
        let dom = Domain::new(fmt, self.design, reserved).map_err(|e| match e {
            CliError::Config(m) => CliError::Config(format!("{}: {m}", spec.kind)),
            e => e,
        })?;
        let geo = *dom.pt.geometry();
        let tracking = self
            .dirty
            .then(|| self.tracking(&dom, &plan, spec))
            .transpose()?;
        let stop = AtomicBool::new(false);
        let errors = ErrorLog::default();
        let peaks = Peaks::default();
        let queues: Vec<QueueCounters> = (0..self.threads).map(|_| Default::default()).collect();
        let reader = ReaderCounters::default();
        let shared = Shared {
            dom: &dom,
            plan,
            stop: &stop,
            errors: &errors,
            queues: &queues,
            peaks: &peaks,
            dirty: tracking.as_ref(),
        };
        let start = Instant::now();
        let mut dirt = Dirt::default();
        let (times, waited, passes, migrations, elapsed) = thread::scope(|s| {
            let workers: Vec<_> = queues
                .iter()
                .enumerate()
                .map(|(i, q)| {
                    let shared = &shared;
                    s.spawn(move || device_queue(shared, 0x5eed_0000 + i as u64, q))
                })
                .collect();
            let dumper = self
                .dumper
                .then(|| s.spawn(|| debugfs_reader(&shared, &reader)));
            let migration = tracking
                .as_ref()
                .map(|tr| s.spawn(|| migration::migration_thread(&shared, tr)));
            self.watch(start, &shared);
            let elapsed = start.elapsed();
            // What was reported while the queues ran, for the rate: the passes so far
            // and the harvests the queues published.
            if let Some(tr) = &tracking {
                dirt.in_run = tr.counters.reported.load(Ordering::Relaxed)
                    + queues
                        .iter()
                        .map(|q| q.harvested.load(Ordering::Relaxed))
                        .sum::<u64>();
            }
            let mut times = CallTimes::default();
            let mut waited = Some(0);
            for w in workers {
                let end = join(w);
                times.merge(&end.times);
                waited = waited.zip(end.cpu).map(|(sum, c)| sum + c.waited_ns);
                dirt.dirtied += end.dirtied;
                dirt.harvested += end.harvested;
            }
            (
                times,
                waited,
                dumper.map(join),
                migration.map(join),
                elapsed,
            )
        });

        let left = leaves_left(&dom);
        if left != 0 {
            errors.report(|| format!("{left} leaves still mapped after every queue stopped"));
        }
        let dirty = tracking.as_ref().map(|tr| dirt.verify(&shared, tr));
        let stats = dom.iova.stats();
        dom.iova.flush_caches();
        let live = dom.iova.stats().live_ranges;
        if live != 0 {
            errors
                .report(|| format!("{live} IOVA ranges still allocated after every queue stopped"));
        }
        let sum = |f: fn(&QueueCounters) -> &std::sync::atomic::AtomicU64| {
            queues
                .iter()
                .map(|q| f(q).load(Ordering::Relaxed))
                .sum::<u64>()
        };
        let mut writer_times = times.get(Call::Map).clone();
        writer_times
            .add(times.get(Call::Unmap))
            .expect("histograms of one shape always add");
        let peak_mapped = peaks.mapped.load(Ordering::Relaxed);
        let mut report = RunReport {
            format: spec.kind.name(),
            config: format!("{}/{}/{}", geo.ias(), geo.oas, size_name(geo.granule())),
            granule: geo.granule(),
            design: self.design,
            dumper: self.dumper,
            threads: self.threads,
            span_bytes: self.span,
            elapsed_s: elapsed.as_secs_f64(),
            maps: sum(|q| &q.maps),
            unmaps: sum(|q| &q.unmaps),
            translations: sum(|q| &q.translations),
            invalidated_bytes: sum(|q| &q.invalidated),
            tables_freed: sum(|q| &q.tables_freed),
            iova_hits: stats.cache_hits,
            iova_misses: stats.cache_misses,
            maps_per_s: 0.0,
            unmaps_per_s: 0.0,
            translations_per_s: 0.0,
            writes_per_s: 0.0,
            iova_hit_percent: 0.0,
            writes_vs_no_dumper_percent: None,
            cpu_wait_percent: waited.map(|ns| {
                100.0 * ns as f64 / (elapsed.as_nanos() as f64 * self.threads as f64).max(1.0)
            }),
            peak_mapped_bytes: peak_mapped,
            peak_table_pages: peaks.table_pages.load(Ordering::Relaxed),
            min_table_pages: min_table_pages(&geo, peak_mapped),
            dump_passes: reader.passes.load(Ordering::Relaxed),
            leaves_checked: reader.leaves.load(Ordering::Relaxed),
            latency: Latencies::new(&times, passes.as_ref(), migrations.as_ref()),
            dirty,
            errors: errors.count(),
            messages: errors.messages(),
            writer_times,
        };
        report.derive();
        Ok(report)
    }
}

/// The dirty-tracking counts the queues returned.
#[derive(Debug, Default)]
struct Dirt {
    /// Pages their writes made dirty.
    dirtied: u64,
    /// Pages their unmaps' harvests reported, the teardown's included.
    harvested: u64,
    /// Pages reported (by passes and harvests) while the queues ran.
    in_run: u64,
}

impl Dirt {
    /// Once every thread stopped and every queue harvested and unmapped what it had:
    /// one final pass, then the check that every page dirtied was reported exactly
    /// once (an error of the run if not). Returns the run's dirty-tracking figures.
    fn verify<F: Format>(&self, sh: &Shared<'_, F>, tr: &Tracking) -> DirtyReport {
        // The table is empty by now (or the leak was reported), so this pass finds
        // nothing unless a leaf was left dirty behind a report that never came.
        let mut bitmap = vec![0u64; tr.words(tr.window.chunk)];
        migration::pass(sh, tr, &mut bitmap, None);
        let c = &tr.counters;
        let reported = self.harvested + c.reported.load(Ordering::Relaxed);
        let dirtied = self.dirtied;
        if reported != dirtied {
            let (n, what) = if reported < dirtied {
                (dirtied - reported, "never reported: writes lost")
            } else {
                (
                    reported - dirtied,
                    "reported more than once, or never written",
                )
            };
            sh.errors.report(|| {
                format!(
                    "dirty tracking: the devices dirtied {dirtied} pages, read-and-clear \
                     reported {reported} ({} by unmaps): {n} {what}",
                    self.harvested
                )
            });
        }
        DirtyReport {
            dirtied_pages: dirtied,
            reported_pages: reported,
            harvested_pages: self.harvested,
            reported_in_run: self.in_run,
            dirty_pages_per_s: 0.0,
            migration_passes: c.passes.load(Ordering::Relaxed),
            invalidations: c.invalidations.load(Ordering::Relaxed),
            invalidated_bytes: c.invalidated.load(Ordering::Relaxed),
            window_start: tr.window.start,
            window_bytes: tr.window.len(),
        }
    }
}

/// A thread's result; its panic, if it panicked, carries on in this thread.
fn join<T>(h: thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
}

impl Simulation<'_> {
    /// Turns dirty tracking on in `dom`'s empty table and sets up what the queues and
    /// the migration thread share: the window below the allocator's limit that all
    /// queues' spans fill, in table-span chunks (no buffer is larger, and each is
    /// aligned to its size, so no leaf crosses a chunk).
    ///
    /// # Errors
    /// [`CliError::Config`] if the format has no dirty tracking.
    fn tracking<F: Format>(
        &self,
        dom: &Domain<F>,
        plan: &DmaPlan,
        spec: &FormatSpec,
    ) -> Result<Tracking, CliError> {
        dom.pt
            .set_dirty_tracking(true)
            .map_err(|e| CliError::Config(format!("{}: dirty tracking: {e}", spec.kind)))?;
        let granule_shift = dom.pt.geometry().granule_shift;
        let end = (plan.limit_pfn + 1) << granule_shift;
        Ok(Tracking {
            window: DirtyWindow::new(end, self.threads as u64 * self.span, plan.table_span),
            page_size: 1 << granule_shift,
            counters: MigrationCounters::default(),
        })
    }

    /// Samples the table's size and updates the progress bar until the time is up,
    /// then stops the threads.
    fn watch<F: Format>(&self, start: Instant, sh: &Shared<'_, F>) {
        let deadline = start + self.duration;
        let ops = || {
            sh.queues
                .iter()
                .map(|q| {
                    q.maps.load(Ordering::Relaxed)
                        + q.unmaps.load(Ordering::Relaxed)
                        + q.translations.load(Ordering::Relaxed)
                })
                .sum::<u64>()
        };
        let (mut last_t, mut last_ops) = (start, 0);
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            thread::sleep(TICK.min(deadline - now));
            sh.peaks.sample(sh.dom, sh.queues);
            let (t, n) = (Instant::now(), ops());
            let rate = (n - last_ops) as f64 / (t - last_t).as_secs_f64().max(1e-9);
            (last_t, last_ops) = (t, n);
            let pos = self.offset + (t - start).min(self.duration);
            self.progress.bar.set_position(pos.as_millis() as u64);
            self.progress
                .bar
                .set_message(format!("{}  {} ops/s", self.label, summary::si(rate)));
        }
        sh.peaks.sample(sh.dom, sh.queues);
        sh.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vtd_format::VtdSs;

    #[test]
    fn spans_are_checked_against_the_geometry() {
        let geo = VtdSs::new(48, 48).unwrap().geometry();
        let kind = FormatKind::VtdSs;
        assert_eq!(span_for(kind, &geo, None, 2).unwrap(), 16 << 20);
        assert_eq!(span_for(kind, &geo, Some(1 << 30), 2).unwrap(), 1 << 30);
        assert_eq!(span_for(kind, &geo, Some(2 << 20), 1).unwrap(), 2 << 20);
        // Half of 256T is 128T: two queues of 64T fit, three do not.
        assert_eq!(span_for(kind, &geo, Some(64 << 40), 2).unwrap(), 64 << 40);
        let msg = |r: Result<u64, CliError>| r.unwrap_err().to_string();
        assert_eq!(
            msg(span_for(kind, &geo, Some(64 << 40), 3)),
            "--span 64T: 3 queues of it do not fit in half of vtd-ss's 48-bit IOVA space (128T)"
        );
        assert!(msg(span_for(kind, &geo, Some(3 << 20), 1)).contains("power of two"));
        assert!(msg(span_for(kind, &geo, Some(1 << 20), 1)).contains("(2M)"));
        assert!(matches!(
            span_for(kind, &geo, Some(1 << 20), 1),
            Err(CliError::Usage(_))
        ));
    }
}
