//! A benchmark run: every size, scenario and transport in turn, each between the harness and fresh peer
//! processes, and the records of all of them.

use crate::cli::RunArgs;
use crate::measure::{self, Counts, Mode};
use crate::progress::Progress;
use crate::record::{Machine, Record};
use crate::transport::{self, Kind, Params, PrivateBus};
use crate::watchdog::Watchdog;
use std::io;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// The longest a single scenario may take before the watchdog stops the run: 300 s, or
/// `SHMBUS_BENCH_SCENARIO_LIMIT_SECS` (the smoke test stops a run this way).
fn scenario_limit() -> Duration {
    let secs = std::env::var("SHMBUS_BENCH_SCENARIO_LIMIT_SECS").ok().and_then(|v| v.parse().ok());
    Duration::from_secs(secs.unwrap_or(300))
}
/// Default latency sizes.
const LATENCY_SIZES: [usize; 4] = [64, 1024, 65536, 1 << 20];
/// Default throughput sizes.
const THROUGHPUT_SIZES: [usize; 5] = [8, 64, 1024, 4096, 65536];
/// Default multi-process sizes.
const MULTI_SIZES: [usize; 2] = [64, 4096];
/// Publisher processes of the fan-in scenarios.
const FAN_IN: [u32; 2] = [2, 4];

static SCENARIO: AtomicU64 = AtomicU64::new(0);

/// The message sizes of `mode` (from `--sizes`, else the defaults).
pub fn sizes(args: &RunArgs, mode: Mode) -> Vec<usize> {
    if !args.sizes.is_empty() {
        return args.sizes.clone();
    }
    match (mode, args.quick) {
        (Mode::Latency, false) => LATENCY_SIZES.to_vec(),
        (Mode::Latency, true) => vec![64, 65536, 1 << 20],
        (Mode::Throughput, false) => THROUGHPUT_SIZES.to_vec(),
        (Mode::Throughput, true) => vec![64, 4096, 65536],
        (_, false) => MULTI_SIZES.to_vec(),
        (_, true) => vec![64],
    }
}

/// How many messages each scenario moves (per publisher), from the options.
fn counts(args: &RunArgs, mode: Mode, size: usize, publishers: u32) -> Counts {
    let div = if args.quick { 4 } else { 1 };
    let size = size.max(1) as u64;
    match mode {
        Mode::Latency => {
            let count = args.rounds.unwrap_or((100_000u64.min((4u64 << 30) / (2 * size)).max(1000)) / div).max(1);
            Counts { count, warmup: count / 10 }
        }
        Mode::Throughput => {
            let count = args.messages.unwrap_or(((512u64 << 20) / size).min(2_000_000) / div);
            Counts { count: count.max(1), warmup: 0 }
        }
        _ => {
            let total = args.messages.unwrap_or(((256u64 << 20) / size).min(500_000) / div);
            Counts { count: (total / u64::from(publishers.max(1))).max(1), warmup: 0 }
        }
    }
}

/// One scenario to run.
#[derive(Clone, Copy, Debug)]
struct Job {
    kind: Kind,
    mode: Mode,
    size: usize,
    /// Publishers of a fan-in (1 otherwise).
    fan_in: u32,
}

impl Job {
    fn describe(&self) -> String {
        let (p, s) = crate::multi::shape(self.mode, self.fan_in);
        let shape = if self.mode.is_multi() { format!(" {p}→{s}") } else { String::new() };
        format!("{} {}{shape} {} B", self.kind.name(), self.mode.name(), self.size)
    }
}

/// Every scenario the options ask for, in order: by scenario, then size, then transport.
fn plan(args: &RunArgs) -> Vec<Job> {
    let kinds: Vec<Kind> = if args.transports.is_empty() { Kind::all() } else { args.transports.clone() };
    let mut jobs = Vec::new();
    for mode in modes(args).into_iter().filter(|&m| m != Mode::Scale) {
        for size in sizes(args, mode) {
            for &kind in kinds.iter().filter(|k| k.supports(mode, size)) {
                let fan_ins: &[u32] = if mode == Mode::FanIn { &FAN_IN } else { &[1] };
                jobs.extend(fan_ins.iter().map(|&fan_in| Job { kind, mode, size, fan_in }));
            }
        }
    }
    jobs
}

/// The scenarios the options ask for: `--scenarios`, else all (`--quick`: all but scale).
fn modes(args: &RunArgs) -> Vec<Mode> {
    if !args.scenarios.is_empty() {
        return args.scenarios.clone();
    }
    Mode::all().into_iter().filter(|&m| !(args.quick && m == Mode::Scale)).collect()
}

/// The topic counts of the scale scenario, if the options ask for it (and for a shmbus transport).
fn scale_counts(args: &RunArgs) -> Vec<u64> {
    let shmbus = args.transports.is_empty() || args.transports.iter().any(|k| k.needs_daemon());
    if !shmbus || !modes(args).contains(&Mode::Scale) {
        return Vec::new();
    }
    if args.scale_counts.is_empty() {
        crate::scale::COUNTS.to_vec()
    } else {
        args.scale_counts.clone()
    }
}

/// Runs everything the options ask for; shows progress on stderr.
pub fn run(args: &RunArgs) -> io::Result<(Machine, Vec<Record>)> {
    let jobs = plan(args);
    let needs_bus = jobs.iter().any(|j| j.kind.needs_daemon());
    let mut pairs: Vec<usize> = [Mode::Latency, Mode::Throughput].iter().flat_map(|&m| sizes(args, m)).collect();
    pairs.sort_unstable();
    pairs.dedup();
    // Started before pinning, so the daemon keeps every CPU.
    let bus = if needs_bus { Some(PrivateBus::start(&pairs, &sizes(args, Mode::FanIn))?) } else { None };
    let cpus = crate::pin::available();
    let pinned = !args.no_pin && cpus >= 2 && crate::pin::pin(0);
    let repeat = args.repeat.max(1);
    let scale = scale_counts(args);
    let progress = Progress::new(jobs.len() as u64 * u64::from(repeat) + scale.len() as u64);
    let mut records = Vec::new();
    for job in jobs {
        let (publishers, subscribers) = crate::multi::shape(job.mode, job.fan_in);
        let c = counts(args, job.mode, job.size, publishers);
        let mut best: Option<Record> = None;
        for i in 0..repeat {
            progress.start(format!("{} ({} messages, run {}/{repeat})", job.describe(), c.count, i + 1));
            let mut r = Record::new(job.kind, job.mode, job.size, c.count, publishers, subscribers);
            r.pinning = pinning(&job, pinned);
            crate::memory::reset_peak_rss();
            let outcome = scenario(&job, c, bus.as_ref(), pinned, &mut r);
            r.harness_peak_rss = crate::memory::peak_rss();
            progress.step();
            if let Err(e) = outcome {
                progress.note(&format!("shmbus-bench: {} failed: {e}", job.describe()));
                r.error = Some(e.to_string());
                best = Some(r);
                progress.inc_skipped(u64::from(repeat - 1 - i));
                break;
            }
            if best.as_ref().is_none_or(|b| better(&r, b)) {
                best = Some(r);
            }
        }
        if let Some(mut r) = best {
            r.runs = repeat;
            records.push(r);
        }
    }
    for (i, &n) in scale.iter().enumerate() {
        progress.start(format!("shmbus scale, {n} idle topics"));
        let r = crate::scale::measure(crate::scale::kind(&args.transports), n, i, pinned);
        progress.step();
        if let Some(why) = &r.skipped {
            progress.note(&format!("shmbus-bench: scale {n} skipped: {why}"));
        }
        if let Some(e) = &r.error {
            progress.note(&format!("shmbus-bench: scale {n} failed: {e}"));
        }
        records.push(r);
    }
    progress.finish();
    let unix_time = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Ok((Machine { unix_time, cpus, pinned, repeat, memory: String::new() }, records))
}

/// The pinning of `job`'s processes, in words.
fn pinning(job: &Job, pinned: bool) -> String {
    let (p, s) = crate::multi::shape(job.mode, job.fan_in);
    match (pinned, job.kind, job.mode.is_multi()) {
        (false, _, _) => "none".into(),
        (true, Kind::Memcpy, _) => "harness on CPU 0 (one process)".into(),
        (true, _, false) => "harness on CPU 0, peer on CPU 1".into(),
        (true, _, true) => match if job.mode == Mode::FanIn { p } else { s } {
            1 => "harness on CPU 0, peer on CPU 1".into(),
            n => format!("harness on CPU 0, {n} peers share CPU 1"),
        },
    }
}

/// Whether run `a` beats run `b` of the same scenario: a lower p50, or a higher throughput.
fn better(a: &Record, b: &Record) -> bool {
    match (a.p50_ns, b.p50_ns) {
        (Some(x), Some(y)) => x < y,
        _ => a.msgs_per_sec.unwrap_or(0.0) > b.msgs_per_sec.unwrap_or(0.0),
    }
}

/// Fills in the rates of a stream of `rate` messages per second of `size` bytes.
fn rates(r: &mut Record, rate: f64, size: usize) {
    r.msgs_per_sec = Some(rate);
    r.mb_per_sec = Some(rate * size as f64 / 1e6);
}

/// One scenario: prepares the link, starts the peers, measures, and fills `r`.
fn scenario(job: &Job, c: Counts, bus: Option<&PrivateBus>, pinned: bool, r: &mut Record) -> io::Result<()> {
    if job.kind == Kind::Memcpy {
        let t = transport::memcpy_bandwidth(job.size, c.count).as_secs_f64();
        rates(r, c.count as f64 / t.max(1e-9), job.size);
        return Ok(());
    }
    if job.mode.is_multi() {
        let bus = bus.ok_or_else(|| io::Error::other("no private daemon"))?;
        let plan = crate::multi::Plan {
            kind: job.kind,
            mode: job.mode,
            fan_in: job.fan_in,
            size: job.size,
            count: c.count,
            bus,
            pinned,
        };
        let watchdog = Watchdog::arm(job.describe(), vec![bus.pid()], scenario_limit());
        let o = crate::multi::run(&plan, &mut |pid| watchdog.watch(pid))?;
        rates(r, o.msgs_per_sec, job.size);
        r.delivered = Some(o.delivered);
        r.lapped = (job.mode == Mode::Lossy).then_some(o.lapped);
        r.peer_peak_rss = Some(o.peer_peak_rss);
        r.shm_bytes = bus.topic_bytes(&crate::multi::topic(job.mode, job.size)).ok();
        return Ok(());
    }
    pair(job, c, bus, pinned, r)
}

/// A two-process scenario (latency or throughput).
fn pair(job: &Job, c: Counts, bus: Option<&PrivateBus>, pinned: bool, r: &mut Record) -> io::Result<()> {
    let (kind, mode, size) = (job.kind, job.mode, job.size);
    let n = SCENARIO.fetch_add(1, Ordering::Relaxed);
    let p = Params { size, name: format!("shbench{}-{n}", std::process::id()) };
    let rss_file = crate::peer::rss_file(&p.name);
    let mut setup = transport::prepare(kind, &p, bus)?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("peer").arg("--transport").arg(kind.name()).arg("--size").arg(size.to_string());
    cmd.arg("--mode").arg(mode.name());
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
    let _watchdog = Watchdog::arm(job.describe(), pids, scenario_limit());
    let outcome = setup.connect(&mut peer).and_then(|mut link| {
        match mode {
            Mode::Latency => {
                let h = measure::latency(&mut *link, size, c)?;
                r.p50_ns = Some(h.value_at_quantile(0.5));
                r.p99_ns = Some(h.value_at_quantile(0.99));
                r.p999_ns = Some(h.value_at_quantile(0.999));
                r.max_ns = Some(h.max());
            }
            _ => {
                let t = measure::throughput(&mut *link, size, c)?.as_secs_f64();
                rates(r, c.count as f64 / t, size);
            }
        }
        // While the link still exists.
        r.shm_bytes = footprint(kind, &p, bus);
        Ok(())
    });
    if outcome.is_err() {
        let _ = peer.kill();
    }
    let status = peer.wait()?;
    r.peer_peak_rss = std::fs::read_to_string(&rss_file).ok().and_then(|s| s.trim().parse().ok());
    let _ = std::fs::remove_file(&rss_file);
    outcome?;
    if !status.success() {
        return Err(io::Error::other(format!("the peer exited with {status}")));
    }
    Ok(())
}

/// Bytes the link's objects occupy in /dev/shm, for the transports that have any there.
fn footprint(kind: Kind, p: &Params, bus: Option<&PrivateBus>) -> Option<u64> {
    match kind {
        Kind::ShmRing | Kind::CacheLine => crate::memory::shm_bytes(&p.name).ok(),
        Kind::Sem => crate::memory::shm_bytes(&format!("sem.{}", p.name)).ok(),
        Kind::ShmbusBusy | Kind::ShmbusBlocking | Kind::ShmbusYield | Kind::ShmbusAsync => {
            let bus = bus?;
            let (down, up) = transport::shmbus_topics(p.size);
            Some(bus.topic_bytes(&down).ok()? + bus.topic_bytes(&up).ok()?)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(a: &[&str]) -> RunArgs {
        crate::cli::Cli::parse_from(std::iter::once("shmbus-bench").chain(a.iter().copied())).run
    }

    #[test]
    fn scale_is_in_the_full_run_and_in_quick_only_when_asked() {
        assert_eq!(scale_counts(&args(&[])), crate::scale::COUNTS);
        assert!(scale_counts(&args(&["--quick"])).is_empty());
        assert_eq!(scale_counts(&args(&["--quick", "--scenarios", "scale", "--scale-counts", "5,7"])), [5, 7]);
        assert!(scale_counts(&args(&["--transports", "pipe"])).is_empty(), "no shmbus transport asked");
        assert!(scale_counts(&args(&["--scenarios", "latency"])).is_empty());
        assert!(plan(&args(&["--scenarios", "scale"])).is_empty(), "no message scenario");
        assert_eq!(crate::scale::kind(&[Kind::Pipe, Kind::ShmbusBusy]), Kind::ShmbusBusy);
    }
}
