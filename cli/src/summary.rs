//! The per-format results of `simulate` and the table they are printed as.

use std::fmt::Write as _;
use std::time::Duration;

/// What one format's run measured.
#[derive(Debug, Clone, Default)]
pub struct FormatReport {
    /// The format's command-line name.
    pub format: &'static str,
    /// Its configuration, e.g. `48/48/4K` (IAS/OAS/granule).
    pub config: String,
    /// Device queues.
    pub threads: usize,
    /// How long the queues ran.
    pub elapsed: Duration,
    /// Buffers mapped.
    pub maps: u64,
    /// Buffers unmapped (one IOTLB invalidation each).
    pub unmaps: u64,
    /// Pages the devices translated.
    pub translations: u64,
    /// Bytes invalidated.
    pub invalidated: u64,
    /// Table pages unmaps unlinked and released for reclamation.
    pub tables_freed: u64,
    /// `alloc_fast` calls served from the per-CPU caches.
    pub iova_hits: u64,
    /// `alloc_fast` calls of a cached size that went to the tree.
    pub iova_misses: u64,
    /// Most table pages allocated at once.
    pub peak_pages: u64,
    /// Whole-table dumps the debug thread wrote.
    pub dump_passes: u64,
    /// Leaves the debug thread checked.
    pub leaves_checked: u64,
    /// Errors of any kind.
    pub errors: u64,
    /// The first error messages.
    pub messages: Vec<String>,
}

impl FormatReport {
    fn per_second(&self, n: u64) -> f64 {
        n as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Queue time per page-table operation (map, unmap or translate), in ns.
    pub fn ns_per_op(&self) -> f64 {
        let ops = self.maps + self.unmaps + self.translations;
        self.elapsed.as_secs_f64() * self.threads as f64 * 1e9 / ops.max(1) as f64
    }

    /// The share of cache-sized IOVA allocations served by the caches, in percent.
    pub fn hit_rate(&self) -> f64 {
        100.0 * self.iova_hits as f64 / (self.iova_hits + self.iova_misses).max(1) as f64
    }
}

/// `12.3M`, `845.2k`, `17`: a rate with an SI suffix.
pub fn si(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// The summary table, one row per format, and a legend.
pub fn render(reports: &[FormatReport]) -> String {
    let header = [
        "format",
        "ias/oas/gran",
        "maps/s",
        "unmaps/s",
        "translations/s",
        "ns/op",
        "IOVA hits",
        "peak pages",
        "freed tables",
        "dump passes",
        "errors",
    ];
    let rows: Vec<[String; 11]> = reports
        .iter()
        .map(|r| {
            [
                r.format.to_string(),
                r.config.clone(),
                si(r.per_second(r.maps)),
                si(r.per_second(r.unmaps)),
                si(r.per_second(r.translations)),
                format!("{:.1}", r.ns_per_op()),
                format!("{:.1}%", r.hit_rate()),
                r.peak_pages.to_string(),
                r.tables_freed.to_string(),
                r.dump_passes.to_string(),
                r.errors.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            // The first two columns are names: left aligned; numbers right aligned.
            if i < 2 {
                let _ = write!(l, "{cell:<w$}  ");
            } else {
                let _ = write!(l, "{cell:>w$}  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    let total_errors: u64 = reports.iter().map(|r| r.errors).sum();
    out.push_str(
        "\nns/op: one device queue's time per map, unmap or page translation.\n\
         IOVA hits: cache-sized IOVA allocations served by the per-CPU caches.\n\
         freed tables: table pages unlinked by unmaps, reclaimed while the dumper read them.\n",
    );
    if total_errors == 0 {
        out.push_str(
            "errors: none; every translation seen by the devices and the dumper was right.\n",
        );
    } else {
        let _ = writeln!(
            out,
            "errors: {total_errors} (wrong translations, failed operations or leaks): FAILED."
        );
    }
    out
}

/// One paragraph per format with its details (more than the table holds).
pub fn details(r: &FormatReport) -> String {
    format!(
        "{}: {} buffers mapped and unmapped by {} queues in {:.2} s, {} pages translated, \
         {} MiB invalidated, {} leaves checked in {} dumps; IOVA cache {} hits, {} misses",
        r.format,
        r.maps,
        r.threads,
        r.elapsed.as_secs_f64(),
        r.translations,
        r.invalidated >> 20,
        r.leaves_checked,
        r.dump_passes,
        r.iova_hits,
        r.iova_misses
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn si_suffixes() {
        assert_eq!(si(17.0), "17");
        assert_eq!(si(845_200.0), "845.2k");
        assert_eq!(si(12_340_000.0), "12.34M");
        assert_eq!(si(2.5e9), "2.50G");
    }

    #[test]
    fn table_has_one_row_per_format() {
        let r = FormatReport {
            format: "vtd-ss",
            config: "48/48/4K".into(),
            threads: 2,
            elapsed: Duration::from_secs(1),
            maps: 1000,
            unmaps: 1000,
            translations: 8000,
            iova_hits: 90,
            iova_misses: 10,
            ..Default::default()
        };
        let text = render(&[r.clone(), r]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("format"));
        assert!(lines[1].starts_with("vtd-ss  48/48/4K"));
        assert!(lines[1].contains("90.0%"));
        assert!(lines[1].contains("200000.0")); // 2 s of queue time over 10,000 ops
        assert!(text.contains("errors: none;"));
    }

    #[test]
    fn errors_are_called_a_failure() {
        let r = FormatReport {
            format: "arm-s1",
            errors: 3,
            ..Default::default()
        };
        let text = render(&[r]);
        assert!(text.contains("errors: 3 (wrong translations"), "{text}");
        assert!(text.contains("FAILED"), "{text}");
    }
}
