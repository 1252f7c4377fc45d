//! One result per scenario, and its JSON and CSV forms.
//!
//! `scenario` is one of `latency-busy` and `latency-blocking` (ping-pong; by whether the transport's receiver
//! busy-polls or sleeps), `throughput` (1→1, one way), `fan-in` (N→1), `fan-out` (1→3), `group` (1→a consumer
//! group of 2), `lossy` (1→1 lossy subscriber) and `scale` (idle topics on a private daemon, no messages: one
//! record per topic count in `topics`, with the [`Scale`] fields, or `skipped` when the host cannot hold that many);
//! `publishers` and `subscribers` count processes.

use crate::measure::Mode;
use crate::transport::Kind;
use serde::Serialize;
use std::io::{self, Write};
use std::path::Path;

/// The outcome of one scenario (one transport, one scenario, one size).
#[derive(Clone, Debug, Serialize)]
pub struct Record {
    /// Transport name (`cache-line`, `sem`, `memcpy`, `shm-ring`, `pipe`, `uds`, `mq`, `shmbus-busy`,
    /// `shmbus-blocking`, `iceoryx2`).
    pub transport: Kind,
    /// Whether the transport is a payload-carrying baseline (the `×` ratios are taken against the best one).
    pub baseline: bool,
    /// Whether the transport is a floor (cache-line, sem, memcpy: no message crosses between processes).
    pub floor: bool,
    /// The scenario's name (see the module docs).
    pub scenario: String,
    /// The scenario as the command line names it.
    #[serde(skip)]
    pub mode: Mode,
    /// Message size in bytes.
    pub size: usize,
    /// Sending processes.
    pub publishers: u32,
    /// Receiving processes.
    pub subscribers: u32,
    /// Round trips recorded (latency) or messages sent by each publisher (the other scenarios).
    pub messages: u64,
    /// Runs of the scenario; the record is the best of them.
    pub runs: u32,
    /// One-way latency percentiles and maximum in nanoseconds (latency only).
    pub p50_ns: Option<u64>,
    /// 99th percentile.
    pub p99_ns: Option<u64>,
    /// 99.9th percentile.
    pub p999_ns: Option<u64>,
    /// Largest sample.
    pub max_ns: Option<u64>,
    /// Messages per second (not latency): aggregate for fan-in, at the slowest subscriber for fan-out, through
    /// the group for group, published for lossy.
    pub msgs_per_sec: Option<f64>,
    /// Payload megabytes (10^6 bytes) per second, from `msgs_per_sec`.
    pub mb_per_sec: Option<f64>,
    /// Messages the subscribers received (multi-process scenarios).
    pub delivered: Option<u64>,
    /// Messages the lossy subscriber was told it missed (lossy only).
    pub lapped: Option<u64>,
    /// Bytes the scenario's objects in /dev/shm occupy (`st_blocks * 512`; for shmbus its topics' data and
    /// readers objects); none for transports without any (pipes, sockets, message queues, memcpy).
    pub shm_bytes: Option<u64>,
    /// The harness's peak resident set during the scenario (`VmHWM`, reset before it), in bytes.
    pub harness_peak_rss: Option<u64>,
    /// The peer's peak resident set (the largest of the peers), in bytes.
    pub peer_peak_rss: Option<u64>,
    /// Which CPUs the processes were pinned to.
    pub pinning: String,
    /// Why the scenario has no numbers, if it failed.
    pub error: Option<String>,
    /// Why the scenario was not run on this host (scale: a topic count its limits cannot hold); not a failure.
    pub skipped: Option<String>,
    /// The scale scenario's figures (scale only).
    #[serde(flatten)]
    pub scale: Scale,
}

/// What a number of idle topics cost a private daemon (the `scale` scenario, [`crate::scale`]); every field
/// `None` in the other scenarios. Per-topic figures are the growth from the daemon with no topics, divided by
/// `topics`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Scale {
    /// Idle topics of the default geometry.
    pub topics: Option<u64>,
    /// Topics created per second, one creation request after the other over one connection (as `shmbus create
    /// a b c …` does).
    pub create_per_sec: Option<f64>,
    /// Seconds the listing of every topic took (`Bus::topics`, as `shmbus topics`; paged).
    pub list_secs: Option<f64>,
    /// Seconds the counters of every topic took (`Bus::stats`, as `shmbus stats --json`; paged).
    pub stats_secs: Option<f64>,
    /// Seconds from starting the daemon again after a `SIGKILL` until it listed every topic.
    pub adopt_secs: Option<f64>,
    /// The daemon's resident set with the topics (`VmRSS`, after the listings), in bytes.
    pub daemon_rss: Option<u64>,
    /// Its growth per topic, in bytes.
    pub daemon_rss_per_topic: Option<f64>,
    /// Descriptors the daemon had open with the topics.
    pub daemon_fds: Option<u64>,
    /// Their growth per topic.
    pub daemon_fds_per_topic: Option<f64>,
    /// Objects under the daemon's prefix in /dev/shm.
    pub shm_objects: Option<u64>,
    /// Objects per topic.
    pub shm_objects_per_topic: Option<f64>,
    /// /dev/shm committed per topic (`st_blocks * 512` of the prefix's objects, `shm_bytes` in all), in bytes.
    pub shm_bytes_per_topic: Option<f64>,
}

/// The `scenario` name of `mode` for transport `kind`.
pub fn scenario_name(kind: Kind, mode: Mode) -> String {
    match mode {
        Mode::Latency if kind.is_blocking() => "latency-blocking".into(),
        Mode::Latency => "latency-busy".into(),
        m => m.name().into(),
    }
}

impl Record {
    /// A record of `kind` for `mode` and `size` with no numbers yet, between `publishers` and `subscribers`
    /// processes.
    pub fn new(kind: Kind, mode: Mode, size: usize, messages: u64, publishers: u32, subscribers: u32) -> Record {
        Record {
            transport: kind,
            baseline: kind.is_baseline(),
            floor: kind.is_floor(),
            scenario: scenario_name(kind, mode),
            mode,
            size,
            publishers,
            subscribers,
            messages,
            runs: 1,
            p50_ns: None,
            p99_ns: None,
            p999_ns: None,
            max_ns: None,
            msgs_per_sec: None,
            mb_per_sec: None,
            delivered: None,
            lapped: None,
            shm_bytes: None,
            harness_peak_rss: None,
            peer_peak_rss: None,
            pinning: String::new(),
            error: None,
            skipped: None,
            scale: Scale::default(),
        }
    }
}

/// What the run was measured on, written with the records.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Seconds since the Unix epoch at the end of the run.
    pub unix_time: u64,
    /// CPUs available to the harness.
    pub cpus: usize,
    /// Whether the harness ran on CPU 0 and its peers on CPU 1.
    pub pinned: bool,
    /// Runs of each scenario (the best is kept).
    pub repeat: u32,
    /// How memory was held: `mlockall` or page faults on first touch, and the host's huge-page setting for shared
    /// memory (see [`crate::memory::mode`]).
    pub memory: String,
}

/// Writes `{ "machine": .., "records": [..] }` to `path`.
pub fn write_json(path: &Path, machine: &Machine, records: &[Record]) -> io::Result<()> {
    #[derive(Serialize)]
    struct Doc<'a> {
        machine: &'a Machine,
        records: &'a [Record],
    }
    let text = serde_json::to_string_pretty(&Doc { machine, records }).map_err(io::Error::other)?;
    std::fs::write(path, text + "\n")
}

/// The CSV header (the JSON fields in the same order).
const HEADER: &str = "transport,baseline,floor,scenario,size,publishers,subscribers,messages,runs,p50_ns,p99_ns,\
p999_ns,max_ns,msgs_per_sec,mb_per_sec,delivered,lapped,shm_bytes,harness_peak_rss,peer_peak_rss,pinning,error,\
skipped,topics,create_per_sec,list_secs,stats_secs,adopt_secs,daemon_rss,daemon_rss_per_topic,daemon_fds,\
daemon_fds_per_topic,shm_objects,shm_objects_per_topic,shm_bytes_per_topic";

/// Writes a header and one line per record to `path`.
pub fn write_csv(path: &Path, records: &[Record]) -> io::Result<()> {
    let mut f = io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(f, "{HEADER}")?;
    let opt = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
    let optf = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.1}"));
    let optg = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
    let text = |s: &str| s.replace([',', '\n'], ";");
    for r in records {
        let fields = [
            r.transport.name().to_string(),
            r.baseline.to_string(),
            r.floor.to_string(),
            r.scenario.clone(),
            r.size.to_string(),
            r.publishers.to_string(),
            r.subscribers.to_string(),
            r.messages.to_string(),
            r.runs.to_string(),
            opt(r.p50_ns),
            opt(r.p99_ns),
            opt(r.p999_ns),
            opt(r.max_ns),
            optf(r.msgs_per_sec),
            optf(r.mb_per_sec),
            opt(r.delivered),
            opt(r.lapped),
            opt(r.shm_bytes),
            opt(r.harness_peak_rss),
            opt(r.peer_peak_rss),
            text(&r.pinning),
            text(r.error.as_deref().unwrap_or("")),
            text(r.skipped.as_deref().unwrap_or("")),
            opt(r.scale.topics),
            optf(r.scale.create_per_sec),
            optg(r.scale.list_secs),
            optg(r.scale.stats_secs),
            optg(r.scale.adopt_secs),
            opt(r.scale.daemon_rss),
            optf(r.scale.daemon_rss_per_topic),
            opt(r.scale.daemon_fds),
            optg(r.scale.daemon_fds_per_topic),
            opt(r.scale.shm_objects),
            optg(r.scale.shm_objects_per_topic),
            optf(r.scale.shm_bytes_per_topic),
        ];
        writeln!(f, "{}", fields.join(","))?;
    }
    f.flush()
}
