//! `iommu-pt simulate`, the main job: one IOMMU domain per format, N device queues
//! mapping, translating and unmapping DMA buffers, and a debugfs reader dumping the
//! table all along; formats run one after another, each for its share of the time.

use crate::args::{ConfigArgs, SimulateArgs};
use crate::error::CliError;
use crate::formats::{CliFormat, FormatJob, FormatKind, FormatSpec, size_name};
use crate::summary::{self, FormatReport};
use crate::workload::{
    DmaPlan, ErrorLog, MIN_OAS, QueueCounters, ReaderCounters, Shared, debugfs_reader,
    device_queue, leaves_left,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use iova_cache::IovaDomain;
use pgtable_core::{HostMemory, PageTable};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How often the progress bar is refreshed.
const TICK: Duration = Duration::from_millis(100);

/// Runs the workload on the chosen formats and prints the summary.
///
/// # Errors
/// Bad configuration, or any error seen during the run ([`CliError::Failed`]).
pub fn simulate(args: &SimulateArgs) -> Result<(), CliError> {
    let kinds = match args.format {
        Some(k) => vec![k],
        None => FormatKind::ALL.to_vec(),
    };
    let specs = kinds
        .iter()
        .map(|&k| FormatSpec::new(k, &config_for(k, args), None))
        .collect::<Result<Vec<_>, _>>()?;
    for spec in &specs {
        if spec.oas < MIN_OAS {
            return Err(CliError::Usage(format!(
                "--oas {}: simulate needs at least {MIN_OAS} output bits",
                spec.oas
            )));
        }
        spec.run(Validate)??;
    }
    let threads = args
        .threads
        .unwrap_or_else(|| thread::available_parallelism().map_or(1, |n| n.get()));
    let per_format = args.duration / specs.len() as u32;
    let progress = Progress::new(args.duration, args.quiet);
    let mut reports = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let job = Simulation {
            threads,
            duration: per_format,
            progress: &progress,
            label: format!("[{}/{}] {}", i + 1, specs.len(), spec.kind),
            offset: per_format * i as u32,
        };
        reports.push(spec.run(job)??);
    }
    progress.bar.finish_and_clear();

    println!(
        "iommu-pt simulate: {threads} device queue{} + 1 debugfs reader per domain, {:.2} s per format\n",
        if threads == 1 { "" } else { "s" },
        per_format.as_secs_f64()
    );
    print!("{}", summary::render(&reports));
    let errors: u64 = reports.iter().map(|r| r.errors).sum();
    if errors == 0 {
        return Ok(());
    }
    for r in &reports {
        eprintln!("{}", summary::details(r));
        for m in &r.messages {
            eprintln!("  {}: {m}", r.format);
        }
    }
    Err(CliError::Failed(format!(
        "{errors} error{} during the simulation",
        if errors == 1 { "" } else { "s" }
    )))
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

/// Builds the format only, so a bad configuration fails before anything runs.
struct Validate;

impl FormatJob for Validate {
    type Output = Result<(), CliError>;
    fn run<F: CliFormat>(self, _fmt: F, _spec: &FormatSpec) -> Self::Output {
        Ok(())
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

/// One format's run.
struct Simulation<'a> {
    threads: usize,
    duration: Duration,
    progress: &'a Progress,
    label: String,
    /// Where this run starts on the progress bar.
    offset: Duration,
}

impl FormatJob for Simulation<'_> {
    type Output = Result<FormatReport, CliError>;

    fn run<F: CliFormat>(self, fmt: F, spec: &FormatSpec) -> Self::Output {
        let pt = PageTable::new(fmt.clone(), Arc::new(HostMemory::new()))
            .map_err(|e| CliError::Config(format!("{}: {e}", spec.kind)))?;
        let geo = *pt.geometry();
        let iova = IovaDomain::new(geo.granule(), 1, false)
            .map_err(|e| CliError::Config(format!("{}: IOVA domain: {e}", spec.kind)))?;
        if let Some((first, last)) = fmt.reserved_iova() {
            iova.reserve(first >> geo.granule_shift, last >> geo.granule_shift)
                .map_err(|e| CliError::Config(format!("{}: IOVA reservation: {e}", spec.kind)))?;
        }
        let stop = AtomicBool::new(false);
        let errors = ErrorLog::default();
        let shared = Shared {
            pt: &pt,
            iova: &iova,
            plan: DmaPlan::new(&fmt),
            stop: &stop,
            errors: &errors,
        };
        let queues: Vec<QueueCounters> = (0..self.threads).map(|_| Default::default()).collect();
        let reader = ReaderCounters::default();
        let start = Instant::now();
        thread::scope(|s| {
            for (i, q) in queues.iter().enumerate() {
                let shared = &shared;
                s.spawn(move || device_queue(shared, 0x5eed_0000 + i as u64, q));
            }
            s.spawn(|| debugfs_reader(&shared, &reader));
            self.watch(start, &queues, &stop);
        });
        let elapsed = start.elapsed();

        let sum = |f: fn(&QueueCounters) -> u64| queues.iter().map(f).sum::<u64>();
        let maps = sum(|q| q.maps.load(Ordering::Relaxed));
        let unmaps = sum(|q| q.unmaps.load(Ordering::Relaxed));
        let left = leaves_left(&pt);
        if left != 0 {
            errors.report(|| format!("{left} leaves still mapped after every queue stopped"));
        }
        let stats = iova.stats();
        iova.flush_caches();
        let live = iova.stats().live_ranges;
        if live != 0 {
            errors
                .report(|| format!("{live} IOVA ranges still allocated after every queue stopped"));
        }
        Ok(FormatReport {
            format: spec.kind.name(),
            config: format!("{}/{}/{}", geo.ias(), geo.oas, size_name(geo.granule())),
            threads: self.threads,
            elapsed,
            maps,
            unmaps,
            translations: sum(|q| q.translations.load(Ordering::Relaxed)),
            invalidated: sum(|q| q.invalidated.load(Ordering::Relaxed)),
            tables_freed: sum(|q| q.tables_freed.load(Ordering::Relaxed)),
            iova_hits: stats.cache_hits,
            iova_misses: stats.cache_misses,
            peak_pages: reader
                .peak_pages
                .load(Ordering::Relaxed)
                .max(pt.info().table_pages),
            dump_passes: reader.passes.load(Ordering::Relaxed),
            leaves_checked: reader.leaves.load(Ordering::Relaxed),
            errors: errors.count(),
            messages: errors.messages(),
        })
    }
}

impl Simulation<'_> {
    /// Updates the progress bar until the time is up, then stops the threads.
    fn watch(&self, start: Instant, queues: &[QueueCounters], stop: &AtomicBool) {
        let deadline = start + self.duration;
        let ops = || {
            queues
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
            let (t, n) = (Instant::now(), ops());
            let rate = (n - last_ops) as f64 / (t - last_t).as_secs_f64().max(1e-9);
            (last_t, last_ops) = (t, n);
            let pos = self.offset + (t - start).min(self.duration);
            self.progress.bar.set_position(pos.as_millis() as u64);
            self.progress
                .bar
                .set_message(format!("{}  {} ops/s", self.label, summary::si(rate)));
        }
        stop.store(true, Ordering::Relaxed);
    }
}
