//! A benchmark run: every size, scenario and transport in turn, each between the harness and a fresh peer
//! process, and the records of all of them.

use crate::cli::RunArgs;
use crate::measure::{self, Counts, Mode};
use crate::record::{Machine, Record};
use crate::transport::{self, Kind, Params, PrivateBus};
use crate::watchdog::Watchdog;
use std::io;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// The longest a single scenario may take before the watchdog stops the run.
const SCENARIO_LIMIT: Duration = Duration::from_secs(300);

static SCENARIO: AtomicU64 = AtomicU64::new(0);

/// How many messages each scenario moves, from the options.
fn counts(args: &RunArgs, mode: Mode, size: usize) -> Counts {
    let div = if args.quick { 4 } else { 1 };
    match mode {
        Mode::Latency => {
            let count = args.rounds.unwrap_or(100_000 / div);
            Counts { count, warmup: count / 10 }
        }
        Mode::Throughput => {
            let count = args.messages.unwrap_or(((512u64 << 20) / size.max(1) as u64).min(2_000_000) / div);
            Counts { count: count.max(1), warmup: 0 }
        }
    }
}

/// Runs everything the options ask for; prints progress to stderr.
pub fn run(args: &RunArgs) -> io::Result<(Machine, Vec<Record>)> {
    let kinds: Vec<Kind> = if args.transports.is_empty() { Kind::all() } else { args.transports.clone() };
    let modes = if args.scenarios.is_empty() { vec![Mode::Latency, Mode::Throughput] } else { args.scenarios.clone() };
    let needs_bus = kinds.iter().any(|k| k.needs_daemon());
    // Started before pinning, so the daemon keeps every CPU.
    let bus = if needs_bus { Some(PrivateBus::start(&args.sizes)?) } else { None };
    let cpus = crate::pin::available();
    let pinned = !args.no_pin && cpus >= 2 && crate::pin::pin(0);
    let mut records = Vec::new();
    for &size in &args.sizes {
        for &mode in &modes {
            for &kind in &kinds {
                let c = counts(args, mode, size);
                eprintln!("shmbus-bench: {} {mode:?} {size} B ({} messages)", kind.name(), c.count);
                let mut best: Option<Record> = None;
                for _ in 0..args.repeat.max(1) {
                    let mut r = Record::new(kind, mode, size, c.count);
                    if let Err(e) = scenario(kind, mode, size, c, bus.as_ref(), pinned, &mut r) {
                        eprintln!("shmbus-bench: {} {mode:?} {size} B failed: {e}", kind.name());
                        r.error = Some(e.to_string());
                        best = Some(r);
                        break;
                    }
                    if best.as_ref().is_none_or(|b| better(&r, b)) {
                        best = Some(r);
                    }
                }
                let mut r = best.expect("at least one run");
                r.runs = args.repeat.max(1);
                records.push(r);
            }
        }
    }
    let unix_time = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Ok((Machine { unix_time, cpus, pinned, repeat: args.repeat.max(1) }, records))
}

/// Whether run `a` beats run `b` of the same scenario: a lower p50, or a higher throughput.
fn better(a: &Record, b: &Record) -> bool {
    match (a.p50_ns, b.p50_ns) {
        (Some(x), Some(y)) => x < y,
        _ => a.msgs_per_sec.unwrap_or(0.0) > b.msgs_per_sec.unwrap_or(0.0),
    }
}

/// One scenario: prepares the link, starts the peer, measures, and fills `r`.
fn scenario(
    kind: Kind,
    mode: Mode,
    size: usize,
    c: Counts,
    bus: Option<&PrivateBus>,
    pinned: bool,
    r: &mut Record,
) -> io::Result<()> {
    let n = SCENARIO.fetch_add(1, Ordering::Relaxed);
    let p = Params { size, name: format!("shbench{}-{n}", std::process::id()) };
    let mut setup = transport::prepare(kind, &p, bus)?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("peer").arg("--transport").arg(kind.name()).arg("--size").arg(size.to_string());
    cmd.arg("--mode").arg(match mode {
        Mode::Latency => "latency",
        Mode::Throughput => "throughput",
    });
    cmd.arg("--count").arg(c.count.to_string()).arg("--warmup").arg(c.warmup.to_string()).arg("--name").arg(&p.name);
    if pinned {
        cmd.arg("--cpu").arg("1");
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    setup.configure(&mut cmd);
    let mut peer = cmd.spawn()?;
    drop(cmd);
    let mut pids = vec![peer.id()];
    pids.extend(bus.map(PrivateBus::pid));
    let _watchdog = Watchdog::arm(format!("{} {mode:?} {size} B", kind.name()), pids, SCENARIO_LIMIT);
    let outcome = setup.connect(&mut peer).and_then(|mut link| match mode {
        Mode::Latency => {
            let h = measure::latency(&mut *link, size, c)?;
            r.p50_ns = Some(h.value_at_quantile(0.5));
            r.p99_ns = Some(h.value_at_quantile(0.99));
            r.p999_ns = Some(h.value_at_quantile(0.999));
            r.max_ns = Some(h.max());
            Ok(())
        }
        Mode::Throughput => {
            let t = measure::throughput(&mut *link, size, c)?.as_secs_f64();
            let rate = c.count as f64 / t;
            r.msgs_per_sec = Some(rate);
            r.mb_per_sec = Some(rate * size as f64 / 1e6);
            Ok(())
        }
    });
    if outcome.is_err() {
        let _ = peer.kill();
    }
    let status = peer.wait()?;
    outcome?;
    if !status.success() {
        return Err(io::Error::other(format!("the peer exited with {status}")));
    }
    Ok(())
}
