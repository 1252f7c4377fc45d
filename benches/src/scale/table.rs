//! The scale scenario's table: per topic count, the create rate, listing, stats and adoption times and the
//! per-topic figures.

use crate::record::Record;
use crate::report::num;
use std::fmt::Write as _;

/// Seconds as milliseconds, or "-".
fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.1}", v * 1e3))
}

/// One decimal, or "-".
fn one(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

/// The scale table: one row per topic count, or why it was skipped or failed.
pub fn render(out: &mut String, rows: &[&Record]) {
    let _ =
        writeln!(out, "\nscale: idle topics of the default geometry on a private daemon (per topic: growth from none)");
    let _ = writeln!(
        out,
        "{:>7} {:>10} {:>9} {:>9} {:>9} {:>12} {:>8} {:>11} {:>8}",
        "topics", "create/s", "list ms", "stats ms", "adopt ms", "RSS KiB/top", "fds/top", "shm KiB/top", "obj/top"
    );
    for r in rows {
        let n = num(r.scale.topics);
        if let Some(why) = &r.skipped {
            let _ = writeln!(out, "{n:>7} skipped: {why}");
            continue;
        }
        if let Some(e) = &r.error {
            let _ = writeln!(out, "{n:>7} failed: {e}");
            continue;
        }
        let s = &r.scale;
        let _ = writeln!(
            out,
            "{n:>7} {:>10.0} {:>9} {:>9} {:>9} {:>12} {:>8} {:>11} {:>8}",
            s.create_per_sec.unwrap_or(0.0),
            ms(s.list_secs),
            ms(s.stats_secs),
            ms(s.adopt_secs),
            one(s.daemon_rss_per_topic.map(|b| b / 1024.0)),
            one(s.daemon_fds_per_topic),
            one(s.shm_bytes_per_topic.map(|b| b / 1024.0)),
            one(s.shm_objects_per_topic)
        );
    }
}
