//! One result per scenario, and its JSON and CSV forms.

use crate::measure::Mode;
use crate::transport::Kind;
use serde::Serialize;
use std::io::{self, Write};
use std::path::Path;

/// The outcome of one scenario (one transport, one mode, one size).
#[derive(Clone, Debug, Serialize)]
pub struct Record {
    /// Transport name (`shm-ring`, `pipe`, `uds`, `mq`, `shmbus-busy`, `shmbus-blocking`, `iceoryx2`).
    pub transport: Kind,
    /// Whether the transport is a baseline (ratios are taken against the best baseline).
    pub baseline: bool,
    /// `latency` or `throughput`.
    pub scenario: Mode,
    /// Message size in bytes.
    pub size: usize,
    /// Sending processes (1).
    pub publishers: u32,
    /// Receiving processes (1).
    pub subscribers: u32,
    /// Round trips recorded (latency) or messages sent (throughput).
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
    /// Messages per second (throughput only).
    pub msgs_per_sec: Option<f64>,
    /// Payload megabytes (10^6 bytes) per second (throughput only).
    pub mb_per_sec: Option<f64>,
    /// Why the scenario has no numbers, if it failed.
    pub error: Option<String>,
}

impl Record {
    /// A record of `kind` for `mode` and `size` with no numbers yet.
    pub fn new(kind: Kind, mode: Mode, size: usize, messages: u64) -> Record {
        Record {
            transport: kind,
            baseline: kind.is_baseline(),
            scenario: mode,
            size,
            publishers: 1,
            subscribers: 1,
            messages,
            runs: 1,
            p50_ns: None,
            p99_ns: None,
            p999_ns: None,
            max_ns: None,
            msgs_per_sec: None,
            mb_per_sec: None,
            error: None,
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
    /// Whether the harness ran on CPU 0 and its peer on CPU 1.
    pub pinned: bool,
    /// Runs of each scenario (the best is kept).
    pub repeat: u32,
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

/// Writes a header and one line per record to `path`.
pub fn write_csv(path: &Path, records: &[Record]) -> io::Result<()> {
    let mut f = io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(f, "transport,baseline,scenario,size,publishers,subscribers,messages,runs,p50_ns,p99_ns,p999_ns,max_ns,msgs_per_sec,mb_per_sec,error")?;
    let opt = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
    let optf = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.1}"));
    for r in records {
        let mode = match r.scenario {
            Mode::Latency => "latency",
            Mode::Throughput => "throughput",
        };
        writeln!(
            f,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.transport.name(),
            r.baseline,
            mode,
            r.size,
            r.publishers,
            r.subscribers,
            r.messages,
            r.runs,
            opt(r.p50_ns),
            opt(r.p99_ns),
            opt(r.p999_ns),
            opt(r.max_ns),
            optf(r.msgs_per_sec),
            optf(r.mb_per_sec),
            r.error.as_deref().unwrap_or("").replace([',', '\n'], ";"),
        )?;
    }
    f.flush()
}
