//! The tables: per scenario and size, each transport's absolute numbers, its ratio to the best payload-carrying
//! baseline of the same run (lowest latency, highest throughput; marked with `*`) and to the floor (latency: the
//! cache line for busy-polling transports, the semaphores for blocking ones; throughput: memcpy), and its memory.

use crate::measure::Mode;
use crate::record::{Machine, Record};
use crate::transport::Kind;
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

/// `f` of the row of transport `kind`, if there is one.
fn of(rows: &[&Record], kind: Kind, f: impl Fn(&Record) -> Option<f64>) -> Option<f64> {
    rows.iter().find(|r| r.transport == kind && r.error.is_none()).and_then(|r| f(r))
}

pub(crate) fn num(v: Option<u64>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

/// KiB, or "-".
fn kib(v: Option<u64>) -> String {
    v.map_or("-".into(), |v| (v / 1024).to_string())
}

/// The memory columns: shared memory, then the harness's and the peers' peak RSS, in KiB.
fn memory(r: &Record) -> String {
    format!("{:>9} {:>8}/{:<8}", kib(r.shm_bytes), kib(r.harness_peak_rss), kib(r.peer_peak_rss))
}

const MEM_HEAD: &str = "  shm KiB  RSS KiB harness/peer";

/// Renders every table.
pub fn table(machine: &Machine, records: &[Record]) -> String {
    let mut out = String::new();
    let pin = if machine.pinned { "harness on CPU 0, peers on CPU 1" } else { "not pinned" };
    let _ = writeln!(
        out,
        "shmbus-bench: {} CPUs, {pin}, best of {} run(s) each; ratios against the best baseline (*) and the floor",
        machine.cpus, machine.repeat
    );
    if !machine.memory.is_empty() {
        let _ = writeln!(out, "memory: {}", machine.memory);
    }
    let mut keys: Vec<(Mode, usize, u32)> = Vec::new();
    for r in records {
        let k = (r.mode, r.size, if r.mode == Mode::FanIn { r.publishers } else { 0 });
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    for (mode, size, pubs) in keys {
        let rows: Vec<&Record> = records
            .iter()
            .filter(|r| r.mode == mode && r.size == size && (pubs == 0 || r.publishers == pubs))
            .collect();
        match mode {
            Mode::Latency => latency(&mut out, size, &rows),
            Mode::Throughput => throughput(&mut out, size, &rows),
            Mode::Scale => crate::scale::table::render(&mut out, &rows),
            _ => multi(&mut out, mode, size, &rows),
        }
    }
    out
}

/// The row's name, with `*` for the best baseline.
fn name(r: &Record, is_best: bool) -> String {
    format!("{}{}", r.transport.name(), if r.baseline && is_best { "*" } else { "" })
}

fn latency(out: &mut String, size: usize, rows: &[&Record]) {
    let p50 = |r: &Record| r.p50_ns.map(|v| v as f64);
    let p999 = |r: &Record| r.p999_ns.map(|v| v as f64);
    let (b50, b999) = (best(rows, p50, true), best(rows, p999, true));
    let _ = writeln!(out, "\nlatency, {size} B, one-way (RTT/2) in ns; floor: cache-line (busy), sem (blocking)");
    let _ = writeln!(
        out,
        "{:<17} {:>9} {:>9} {:>9} {:>10} {:>9} {:>9} {:>9}{MEM_HEAD}",
        "transport", "p50", "p99", "p99.9", "max", "p50 ×", "p99.9 ×", "p50 ×flr"
    );
    for r in rows {
        let name = name(r, p50(r) == b50);
        if let Some(e) = &r.error {
            let _ = writeln!(out, "{name:<17} failed: {e}");
            continue;
        }
        let floor = if r.floor { None } else { of(rows, r.transport.latency_floor(), p50) };
        let _ = writeln!(
            out,
            "{name:<17} {:>9} {:>9} {:>9} {:>10} {:>9} {:>9} {:>9}{}",
            num(r.p50_ns),
            num(r.p99_ns),
            num(r.p999_ns),
            num(r.max_ns),
            ratio(p50(r), b50),
            ratio(p999(r), b999),
            ratio(p50(r), floor),
            memory(r)
        );
    }
}

fn throughput(out: &mut String, size: usize, rows: &[&Record]) {
    let rate = |r: &Record| r.msgs_per_sec;
    let b = best(rows, rate, false);
    let floor = of(rows, Kind::Memcpy, rate);
    let _ = writeln!(out, "\nthroughput, {size} B, one way, 1→1; floor: memcpy");
    let _ = writeln!(
        out,
        "{:<17} {:>12} {:>10} {:>9} {:>9}{MEM_HEAD}",
        "transport", "msgs/s", "MB/s", "msgs/s ×", "× memcpy"
    );
    for r in rows {
        let name = name(r, rate(r) == b);
        if let Some(e) = &r.error {
            let _ = writeln!(out, "{name:<17} failed: {e}");
            continue;
        }
        let to_floor = if r.floor { "-".into() } else { ratio(rate(r), floor) };
        let _ = writeln!(
            out,
            "{name:<17} {:>12.0} {:>10.1} {:>9} {:>9}{}",
            r.msgs_per_sec.unwrap_or(0.0),
            r.mb_per_sec.unwrap_or(0.0),
            ratio(rate(r), b),
            to_floor,
            memory(r)
        );
    }
}

fn multi(out: &mut String, mode: Mode, size: usize, rows: &[&Record]) {
    let Some(first) = rows.first() else { return };
    let what = match mode {
        Mode::FanIn => "aggregate",
        Mode::FanOut => "at the slowest subscriber",
        Mode::Group => "through the group",
        _ => "published",
    };
    let _ = writeln!(
        out,
        "\n{}, {size} B, {}→{} processes, msgs/s {what}; {}",
        mode.name(),
        first.publishers,
        first.subscribers,
        first.pinning
    );
    let _ = writeln!(
        out,
        "{:<17} {:>12} {:>10} {:>10} {:>10}{MEM_HEAD}",
        "transport", "msgs/s", "MB/s", "delivered", "lapped"
    );
    for r in rows {
        let name = r.transport.name();
        if let Some(e) = &r.error {
            let _ = writeln!(out, "{name:<17} failed: {e}");
            continue;
        }
        let _ = writeln!(
            out,
            "{name:<17} {:>12.0} {:>10.1} {:>10} {:>10}{}",
            r.msgs_per_sec.unwrap_or(0.0),
            r.mb_per_sec.unwrap_or(0.0),
            num(r.delivered),
            num(r.lapped),
            memory(r)
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
