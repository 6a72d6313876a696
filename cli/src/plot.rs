//! `--plot`: the writers' latency distributions as an SVG picture, one panel per
//! format, one curve per run (lock-free or locked, dumper on or off).
//!
//! Each curve is the complementary CDF of the map and unmap calls of one run, on log
//! axes: for a latency x, the fraction of calls that took at least x. The median sits
//! where a curve crosses 0.5, p99.9 where it crosses 0.001, and a design whose writers
//! wait for a reader shows as a shelf far to the right.
//!
//! Only plotters' SVG backend is used, with its built-in text layout estimate: text is
//! written as SVG `<text>` elements, so no font files are needed.

use crate::domain::Design;
use crate::summary::{Report, RunReport, duration};
use hdrhistogram::Histogram;
use plotters::prelude::*;

/// One panel's size in pixels.
const PANEL: (u32, u32) = (640, 420);
/// Height of the picture's title.
const TITLE: u32 = 40;
/// A point is kept when its latency is this factor above the last kept one.
const THIN: f64 = 1.02;

/// The picture of `report`, as SVG text.
///
/// # Errors
/// What plotters reports (a message).
pub fn svg(report: &Report) -> Result<String, String> {
    let mut formats: Vec<(&str, &str)> = Vec::new();
    for r in &report.runs {
        if !formats.iter().any(|(f, _)| *f == r.format) {
            formats.push((r.format, &r.config));
        }
    }
    let cols = if formats.len() > 1 { 2 } else { 1 };
    let rows = formats.len().div_ceil(cols).max(1);
    // One x range for every panel, so formats compare at a glance.
    let used: Vec<&Histogram<u64>> = report
        .runs
        .iter()
        .map(|r| &r.writer_times)
        .filter(|h| !h.is_empty())
        .collect();
    let lo = used.iter().map(|h| h.min()).min().unwrap_or(1).max(1) as f64 / 1.5;
    let hi = (used.iter().map(|h| h.max()).max().unwrap_or(1000) as f64 * 1.5).max(lo * 100.0);
    let most = used.iter().map(|h| h.len()).max().unwrap_or(1).max(1) as f64;
    let floor = 0.5 / most;

    let mut buf = String::new();
    {
        let size = (PANEL.0 * cols as u32, PANEL.1 * rows as u32 + TITLE);
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = root
            .titled(
                "iommu-pt: writer latency (map and unmap calls): fraction of calls taking at least x",
                ("sans-serif", 18),
            )
            .map_err(|e| e.to_string())?;
        let panels = root.split_evenly((rows, cols));
        for (panel, (format, config)) in panels.iter().zip(&formats) {
            let mut chart = ChartBuilder::on(panel)
                .caption(format!("{format} ({config})"), ("sans-serif", 16))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d((lo..hi).log_scale(), (floor..1.0).log_scale())
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("latency per call, x (log scale)")
                .y_desc("calls taking at least x")
                .x_label_formatter(&|v| tick(*v))
                .y_label_formatter(&|v| percent(*v))
                .draw()
                .map_err(|e| e.to_string())?;
            for r in report.runs.iter().filter(|r| r.format == *format) {
                draw_run(&mut chart, r)?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerLeft)
                .border_style(BLACK)
                .background_style(WHITE.mix(0.85))
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(buf)
}

/// Draws one run's curve: blue lock-free, red locked; solid with the dumper, dashed
/// without.
fn draw_run<DB: DrawingBackend, X, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, Y>>,
    r: &RunReport,
) -> Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    if r.writer_times.is_empty() {
        return Ok(());
    }
    let color = match r.design {
        Design::LockFree => RGBColor(0x1f, 0x77, 0xb4),
        Design::Locked => RGBColor(0xd6, 0x27, 0x28),
    };
    let label = format!(
        "{}, dumper {}",
        r.design.name(),
        if r.dumper { "on" } else { "off" }
    );
    let style = color.stroke_width(2);
    let points = ccdf(&r.writer_times);
    let drawn = if r.dumper {
        chart.draw_series(LineSeries::new(points, style))
    } else {
        chart.draw_series(DashedLineSeries::new(points, 6, 4, style))
    };
    let dashed = !r.dumper;
    drawn
        .map_err(|e| e.to_string())?
        .label(label)
        .legend(move |(x, y)| {
            if dashed {
                PathElement::new(vec![(x, y), (x + 6, y)], style)
            } else {
                PathElement::new(vec![(x, y), (x + 20, y)], style)
            }
        });
    Ok(())
}

/// A latency on the log axis: `100ns`, `1µs`, `10ms` at powers of ten, three digits
/// elsewhere.
fn tick(ns: f64) -> String {
    let text = duration(ns.round() as u64);
    // `1.00µs` -> `1µs`, `10.0ms` -> `10ms`; `2.50µs` stays.
    match text.split_once('.') {
        Some((whole, rest)) => {
            let unit = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            let fraction = &rest[..rest.len() - unit.len()];
            if fraction.chars().all(|c| c == '0') {
                format!("{whole}{unit}")
            } else {
                text
            }
        }
        None => text,
    }
}

/// A fraction on the log axis as a percentage: `100%`, `1%`, `0.01%`.
fn percent(fraction: f64) -> String {
    let p = fraction * 100.0;
    // Key points of a log axis are powers of ten, up to rounding.
    let digits = (-p.log10().floor()).max(0.0) as usize;
    format!("{p:.digits$}%")
}

/// The complementary CDF of `h`: `(x, fraction of calls taking at least x)` at each
/// recorded value, thinned to one point per 2% of latency.
pub fn ccdf(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let total = h.len() as f64;
    let mut points: Vec<(f64, f64)> = Vec::new();
    let mut before = 0u64;
    let mut last_x = 0.0;
    for v in h.iter_recorded() {
        let x = h.highest_equivalent(v.value_iterated_to()) as f64;
        let at_least = (total - before as f64) / total;
        before += v.count_at_value();
        if points.is_empty() || x >= last_x * THIN || before == h.len() {
            points.push((x, at_least));
            last_x = x;
        }
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::histogram;

    #[test]
    fn time_ticks() {
        assert_eq!(tick(100.0), "100ns");
        assert_eq!(tick(1000.0), "1µs");
        assert_eq!(tick(10_000.0), "10µs");
        assert_eq!(tick(1e7), "10ms");
        assert_eq!(tick(2500.0), "2.50µs");
    }

    #[test]
    fn percent_labels() {
        assert_eq!(percent(1.0), "100%");
        assert_eq!(percent(0.1), "10%");
        assert_eq!(percent(0.001), "0.1%");
        assert_eq!(percent(1e-6), "0.0001%");
        assert_eq!(percent(0.05), "5%");
    }

    #[test]
    fn ccdf_of_a_known_distribution() {
        let mut h = histogram();
        h.record_n(100, 90).unwrap();
        h.record_n(1000, 9).unwrap();
        h.record_n(2000, 1).unwrap();
        assert_eq!(ccdf(&h), vec![(100.0, 1.0), (1000.0, 0.1), (2000.0, 0.01)]);
    }

    #[test]
    fn ccdf_thins_close_values_but_keeps_the_slowest() {
        let mut h = histogram();
        for v in 1000..=1010 {
            h.record(v).unwrap();
        }
        let c = ccdf(&h);
        assert_eq!(c.first(), Some(&(1000.0, 1.0)));
        assert_eq!(c.last().map(|p| p.0), Some(1010.0));
        assert_eq!(c.len(), 2);
    }
}
