//! The table: per scenario and size, each transport's absolute numbers and its ratio to the best baseline of the
//! same run (lowest latency, highest throughput), which is marked with `*`.

use crate::measure::Mode;
use crate::record::{Machine, Record};
use std::fmt::Write as _;

/// The ratio `v / best` to three significant digits (two decimals at least), or "-" when either is missing.
fn ratio(v: Option<f64>, best: Option<f64>) -> String {
    match (v, best) {
        (Some(v), Some(b)) if b > 0.0 && v > 0.0 => {
            let r = v / b;
            let decimals = (2 - r.log10().floor() as i32).clamp(2, 6) as usize;
            format!("{r:.decimals$}x")
        }
        _ => "-".into(),
    }
}

/// The lowest (latency) or highest (throughput) value of `f` among the baselines of `rows`.
fn best(rows: &[&Record], f: impl Fn(&Record) -> Option<f64>, lowest: bool) -> Option<f64> {
    let vals = rows.iter().filter(|r| r.baseline).filter_map(|r| f(r));
    if lowest {
        vals.min_by(f64::total_cmp)
    } else {
        vals.max_by(f64::total_cmp)
    }
}

fn num(v: Option<u64>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

/// Renders the whole table.
pub fn table(machine: &Machine, records: &[Record]) -> String {
    let mut out = String::new();
    let pin = if machine.pinned { "harness on CPU 0, peer on CPU 1" } else { "not pinned" };
    let _ = writeln!(
        out,
        "shmbus-bench: two processes, {} CPUs, {pin}, best of {} run(s) each; ratios against the best baseline (*)",
        machine.cpus, machine.repeat
    );
    let mut sizes: Vec<usize> = records.iter().map(|r| r.size).collect();
    sizes.dedup();
    for mode in [Mode::Latency, Mode::Throughput] {
        for &size in &sizes {
            let rows: Vec<&Record> = records.iter().filter(|r| r.scenario == mode && r.size == size).collect();
            if rows.is_empty() {
                continue;
            }
            match mode {
                Mode::Latency => latency(&mut out, size, &rows),
                Mode::Throughput => throughput(&mut out, size, &rows),
            }
        }
    }
    out
}

fn latency(out: &mut String, size: usize, rows: &[&Record]) {
    let p50 = |r: &Record| r.p50_ns.map(|v| v as f64);
    let p999 = |r: &Record| r.p999_ns.map(|v| v as f64);
    let (b50, b999) = (best(rows, p50, true), best(rows, p999, true));
    let _ = writeln!(out, "\nlatency, {size} B, one-way (RTT/2) in ns");
    let _ = writeln!(
        out,
        "{:<17} {:>9} {:>9} {:>9} {:>10} {:>9} {:>9}",
        "transport", "p50", "p99", "p99.9", "max", "p50 ×", "p99.9 ×"
    );
    for r in rows {
        let mark = if r.baseline && p50(r) == b50 { "*" } else { "" };
        let name = format!("{}{mark}", r.transport.name());
        if let Some(e) = &r.error {
            let _ = writeln!(out, "{name:<17} failed: {e}");
            continue;
        }
        let _ = writeln!(
            out,
            "{name:<17} {:>9} {:>9} {:>9} {:>10} {:>9} {:>9}",
            num(r.p50_ns),
            num(r.p99_ns),
            num(r.p999_ns),
            num(r.max_ns),
            ratio(p50(r), b50),
            ratio(p999(r), b999)
        );
    }
}

fn throughput(out: &mut String, size: usize, rows: &[&Record]) {
    let rate = |r: &Record| r.msgs_per_sec;
    let b = best(rows, rate, false);
    let _ = writeln!(out, "\nthroughput, {size} B, one way");
    let _ = writeln!(out, "{:<17} {:>12} {:>10} {:>9}", "transport", "msgs/s", "MB/s", "msgs/s ×");
    for r in rows {
        let mark = if r.baseline && rate(r) == b { "*" } else { "" };
        let name = format!("{}{mark}", r.transport.name());
        if let Some(e) = &r.error {
            let _ = writeln!(out, "{name:<17} failed: {e}");
            continue;
        }
        let _ = writeln!(
            out,
            "{name:<17} {:>12.0} {:>10.1} {:>9}",
            r.msgs_per_sec.unwrap_or(0.0),
            r.mb_per_sec.unwrap_or(0.0),
            ratio(rate(r), b)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::ratio;

    #[test]
    fn ratios_keep_three_significant_digits() {
        assert_eq!(ratio(Some(3.0), Some(2.0)), "1.50x");
        assert_eq!(ratio(Some(2607.0), Some(3160063.0)), "0.000825x");
        assert_eq!(ratio(Some(1.0), None), "-");
    }
}
