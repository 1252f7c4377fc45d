//! Command line of `shmbus-bench`.

use crate::measure::Mode;
use crate::transport::Kind;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Measures shmbus side by side with pipes, Unix sockets, POSIX message queues and a minimal shared-memory ring,
/// in one run, between two processes, and prints each result as a ratio to the best baseline.
#[derive(Debug, Parser)]
#[command(name = "shmbus-bench", version, about)]
pub struct Cli {
    /// Internal: the peer process the harness starts (not for direct use).
    #[command(subcommand)]
    pub peer: Option<Internal>,
    /// What to measure.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Options of a benchmark run.
#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    /// A quarter of the messages of a full run, and fewer sizes (for a quick look; the numbers are noisier).
    #[arg(long, env = "SHMBUS_BENCH_QUICK")]
    pub quick: bool,
    /// Message sizes in bytes for every scenario, comma separated (default: latency 64,1024,65536,1048576;
    /// throughput 8,64,1024,4096,65536; multi-process 64,4096; --quick: latency 64,65536,1048576, throughput
    /// 64,4096,65536, multi-process 64).
    #[arg(long, env = "SHMBUS_BENCH_SIZES", value_delimiter = ',')]
    pub sizes: Vec<usize>,
    /// Transports to measure, comma separated (default: all).
    #[arg(long, env = "SHMBUS_BENCH_TRANSPORTS", value_delimiter = ',', value_enum)]
    pub transports: Vec<Kind>,
    /// Scenarios to run, comma separated (default: all; --quick: all but scale).
    #[arg(long, env = "SHMBUS_BENCH_SCENARIOS", value_delimiter = ',', value_enum)]
    pub scenarios: Vec<Mode>,
    /// Topic counts of the scale scenario, comma separated (default 10,100,1000,10000; a count the host's
    /// descriptor limit or /dev/shm cannot hold is reported as skipped).
    #[arg(
        long,
        env = "SHMBUS_BENCH_SCALE_COUNTS",
        value_delimiter = ',',
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub scale_counts: Vec<u64>,
    /// Round trips recorded per latency scenario (default 100000, fewer above 16 KiB: 4 GiB worth at least 1000;
    /// --quick a quarter), after a tenth as many unrecorded.
    #[arg(long, env = "SHMBUS_BENCH_ROUNDS")]
    pub rounds: Option<u64>,
    /// Messages per throughput scenario (default: 512 MiB worth, at most 2 million; multi-process: 256 MiB worth,
    /// at most 500000, shared by the publishers; --quick: a quarter).
    #[arg(long, env = "SHMBUS_BENCH_MESSAGES")]
    pub messages: Option<u64>,
    /// Runs of each scenario, each with a fresh peer; the best is kept (lowest p50, highest throughput), since
    /// other load on the machine only ever makes a run slower.
    #[arg(long, env = "SHMBUS_BENCH_REPEAT", default_value_t = 1)]
    pub repeat: u32,
    /// Do not pin the harness to CPU 0 and its peer to CPU 1.
    #[arg(long, env = "SHMBUS_BENCH_NO_PIN")]
    pub no_pin: bool,
    /// Lock every page of the harness and its peers in memory (`mlockall(MCL_CURRENT | MCL_FUTURE)`): each mapping
    /// is faulted in whole when it is made, so no scenario takes a page fault, at the price of committing every
    /// page of every topic (compare the shm KiB column). Needs CAP_IPC_LOCK or a large enough RLIMIT_MEMLOCK.
    /// Huge pages are a host setting, reported in the header:
    /// `echo always > /sys/kernel/mm/transparent_hugepage/shmem_enabled` (as root) to measure with them.
    #[arg(long, env = MLOCK_ENV)]
    pub mlock: bool,
    /// Write one JSON record per scenario to this file.
    #[arg(long, env = "SHMBUS_BENCH_JSON")]
    pub json: Option<PathBuf>,
    /// Write one CSV line per scenario to this file.
    #[arg(long, env = "SHMBUS_BENCH_CSV")]
    pub csv: Option<PathBuf>,
    /// Write SVG plots to this directory (created if missing): latency percentiles per size, throughput
    /// against message size.
    #[arg(long, env = "SHMBUS_BENCH_PLOTS")]
    pub plots: Option<PathBuf>,
}

/// Set for the peers the harness starts when it runs with `--mlock` (and read by `--mlock` itself).
pub const MLOCK_ENV: &str = "SHMBUS_BENCH_MLOCK";

/// Subcommands the harness uses itself.
#[derive(Clone, Debug, Subcommand)]
pub enum Internal {
    /// The other end of a link: opens what the harness prepared and serves one scenario.
    #[command(hide = true)]
    Peer(PeerArgs),
}

/// What the peer serves.
#[derive(Clone, Debug, Args)]
pub struct PeerArgs {
    /// The transport.
    #[arg(long, value_enum)]
    pub transport: Kind,
    /// The scenario.
    #[arg(long, value_enum)]
    pub mode: Mode,
    /// Message size in bytes.
    #[arg(long)]
    pub size: usize,
    /// Messages (throughput) or recorded round trips (latency).
    #[arg(long)]
    pub count: u64,
    /// Unrecorded round trips first (latency).
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
    /// The name the harness created the link's resources under.
    #[arg(long)]
    pub name: String,
    /// The CPU to pin to.
    #[arg(long)]
    pub cpu: Option<usize>,
}
