//! The scale scenario's plots: `scale-FIGURE.svg`, each figure of [`SCALE`] against the topic count (log x
//! axis), the counts skipped on this host named in the caption.

use crate::measure::Mode;
use crate::plots::{span, whole};
use crate::record::Record;
use plotters::prelude::*;
use std::error::Error;
use std::path::Path;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// Writes the plots of the scale records among `ok` (records without an error) into `dir`, if there are any.
pub fn write(dir: &Path, ok: &[&Record]) -> Result<()> {
    let mut rows: Vec<&Record> = ok.iter().copied().filter(|r| r.mode == Mode::Scale && r.skipped.is_none()).collect();
    rows.sort_by_key(|r| r.scale.topics);
    let skipped: Vec<String> = ok
        .iter()
        .filter(|r| r.mode == Mode::Scale && r.skipped.is_some())
        .filter_map(|r| r.scale.topics.map(|n| n.to_string()))
        .collect();
    let note = if skipped.is_empty() { String::new() } else { format!(" ({} skipped here)", skipped.join(", ")) };
    if !rows.is_empty() {
        for f in &SCALE {
            scale(&dir.join(format!("scale-{}.svg", f.file)), f, &rows, &note)?;
        }
    }
    Ok(())
}

/// One figure of the scale scenario.
pub struct Figure {
    /// `scale-FILE.svg`.
    pub file: &'static str,
    /// The caption.
    pub caption: &'static str,
    /// The y axis.
    pub unit: &'static str,
    /// Whether the y axis is logarithmic (rates and times, which follow the count).
    pub log: bool,
    /// The figure of a record.
    pub value: fn(&Record) -> Option<f64>,
}

/// The scale plots.
pub const SCALE: [Figure; 8] = [
    Figure {
        file: "create",
        caption: "topics created per second",
        unit: "topics/s",
        log: true,
        value: |r| r.scale.create_per_sec,
    },
    Figure {
        file: "topics",
        caption: "listing every topic (`topics`)",
        unit: "ms",
        log: true,
        value: |r| r.scale.list_secs.map(|s| s * 1e3),
    },
    Figure {
        file: "stats",
        caption: "counters of every topic (`stats --json`)",
        unit: "ms",
        log: true,
        value: |r| r.scale.stats_secs.map(|s| s * 1e3),
    },
    Figure {
        file: "adopt",
        caption: "restart after SIGKILL until every topic is listed",
        unit: "ms",
        log: true,
        value: |r| r.scale.adopt_secs.map(|s| s * 1e3),
    },
    Figure {
        file: "rss",
        caption: "daemon resident set per idle topic",
        unit: "KiB",
        log: false,
        value: |r| r.scale.daemon_rss_per_topic.map(|b| b / 1024.0),
    },
    Figure {
        file: "fds",
        caption: "daemon descriptors per idle topic",
        unit: "descriptors",
        log: false,
        value: |r| r.scale.daemon_fds_per_topic,
    },
    Figure {
        file: "shm",
        caption: "/dev/shm committed per idle topic",
        unit: "KiB",
        log: false,
        value: |r| r.scale.shm_bytes_per_topic.map(|b| b / 1024.0),
    },
    Figure {
        file: "objects",
        caption: "/dev/shm objects per idle topic",
        unit: "objects",
        log: false,
        value: |r| r.scale.shm_objects_per_topic,
    },
];

/// An axis label with up to two decimals, trailing zeros dropped.
fn short(v: &f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The plot of figure `f` of `rows`, `note` after the caption.
fn scale(path: &Path, f: &Figure, rows: &[&Record], note: &str) -> Result<()> {
    let pts: Vec<(f64, f64)> =
        rows.iter().filter_map(|r| Some((r.scale.topics? as f64, (f.value)(r)?))).filter(|p| p.0 > 0.0).collect();
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let (xmin, xmax) = span(pts.iter().map(|p| p.0));
    let color = Palette99::pick(0).to_rgba();
    let caption = format!("{}, against idle topics{note}", f.caption);
    let builder = |root| {
        let mut b = ChartBuilder::on(root);
        b.caption(caption.clone(), ("sans-serif", 22)).margin(12).x_label_area_size(40).y_label_area_size(80);
        b
    };
    // One body for both y axes (their coordinate types differ, so a function would need plotters' bounds).
    macro_rules! draw {
        ($y:expr) => {{
            let mut chart = builder(&root).build_cartesian_2d((xmin..xmax).log_scale(), $y)?;
            chart
                .configure_mesh()
                .x_label_formatter(&whole)
                .y_label_formatter(&short)
                .x_desc("topics")
                .y_desc(f.unit)
                .draw()?;
            chart.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?.label("shmbus");
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        }};
    }
    if f.log {
        let (lo, hi) = span(pts.iter().map(|p| p.1));
        draw!((lo..hi).log_scale());
    } else {
        let hi = pts.iter().map(|p| p.1).fold(0f64, f64::max).max(1e-3) * 1.25;
        draw!(0f64..hi);
    }
    root.present()?;
    Ok(())
}
