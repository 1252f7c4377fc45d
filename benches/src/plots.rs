//! SVG plots of a run (`--plots DIR`): `latency-SIZE.svg`, the latency percentiles of each transport at one
//! message size (log scale), `throughput.svg`, each transport's 1→1 MB/s against the message size (log-log), and
//! for the scale scenario `scale-FIGURE.svg`, each figure against the topic count (log x axis; [`crate::scale::plot`]).

use crate::measure::Mode;
use crate::record::Record;
use plotters::prelude::*;
use std::error::Error;
use std::io;
use std::path::Path;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

const PERCENTILES: [&str; 4] = ["p50", "p99", "p99.9", "max"];

/// Writes the plots of `records` into `dir` (created if missing).
pub fn write(dir: &Path, records: &[Record]) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let ok: Vec<&Record> = records.iter().filter(|r| r.error.is_none()).collect();
    let mut sizes: Vec<usize> = ok.iter().filter(|r| r.mode == Mode::Latency).map(|r| r.size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let fail = |e: Box<dyn Error>| io::Error::other(format!("plotting: {e}"));
    for size in sizes {
        let rows: Vec<&Record> = ok.iter().copied().filter(|r| r.mode == Mode::Latency && r.size == size).collect();
        latency(&dir.join(format!("latency-{size}.svg")), size, &rows).map_err(fail)?;
    }
    let rows: Vec<&Record> = ok.iter().copied().filter(|r| r.mode == Mode::Throughput).collect();
    if !rows.is_empty() {
        throughput(&dir.join("throughput.svg"), &rows).map_err(fail)?;
    }
    crate::scale::plot::write(dir, &ok).map_err(fail)?;
    Ok(())
}

/// An axis label without decimals.
pub(crate) fn whole(v: &f64) -> String {
    format!("{v:.0}")
}

/// A range for a log axis that holds `vals` (a decade when they are all equal or missing).
pub(crate) fn span(vals: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = vals.filter(|v| *v > 0.0).fold((f64::MAX, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if hi <= 0.0 {
        return (1.0, 10.0);
    }
    (lo / 1.5, (hi * 1.5).max(lo * 10.0))
}

/// The transports of `rows` in order of first appearance.
fn transports(rows: &[&Record]) -> Vec<crate::transport::Kind> {
    let mut v = Vec::new();
    for r in rows {
        if !v.contains(&r.transport) {
            v.push(r.transport);
        }
    }
    v
}

fn latency(path: &Path, size: usize, rows: &[&Record]) -> Result<()> {
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let points = |r: &Record| -> Vec<(f64, f64)> {
        [r.p50_ns, r.p99_ns, r.p999_ns, r.max_ns]
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i as f64, v.max(1) as f64)))
            .collect()
    };
    let (lo, hi) = span(rows.iter().flat_map(|r| points(r)).map(|p| p.1));
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("one-way latency (RTT/2), {size} B"), ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.2f64..3.2f64, (lo..hi).log_scale())?;
    let label = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && (0.0..4.0).contains(&i) {
            PERCENTILES[i as usize].to_string()
        } else {
            String::new()
        }
    };
    chart.configure_mesh().x_labels(17).x_label_formatter(&label).y_label_formatter(&whole).y_desc("ns").draw()?;
    for (i, kind) in transports(rows).into_iter().enumerate() {
        let Some(r) = rows.iter().find(|r| r.transport == kind) else { continue };
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(points(r), color.stroke_width(2)))?
            .label(kind.name())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().position(SeriesLabelPosition::UpperLeft).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

fn throughput(path: &Path, rows: &[&Record]) -> Result<()> {
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let (lo, hi) = span(rows.iter().filter_map(|r| r.mb_per_sec));
    let (smin, smax) = rows.iter().fold((usize::MAX, 1), |(a, b), r| (a.min(r.size.max(1)), b.max(r.size)));
    let (smin, smax) = (smin as f64 / 1.5, (smax as f64 * 1.5).max(smin as f64 * 10.0));
    let mut chart = ChartBuilder::on(&root)
        .caption("one-way throughput, 1→1 (memcpy: one process)", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d((smin..smax).log_scale(), (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_label_formatter(&whole)
        .y_label_formatter(&whole)
        .x_desc("message size, bytes")
        .y_desc("MB/s")
        .draw()?;
    for (i, kind) in transports(rows).into_iter().enumerate() {
        let mut pts: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.transport == kind)
            .filter_map(|r| r.mb_per_sec.map(|v| (r.size.max(1) as f64, v)))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))?
            .label(kind.name())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().position(SeriesLabelPosition::UpperLeft).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
