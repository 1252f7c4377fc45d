//! The `shmbus-bridge` command line: flags, the optional `[bridge]` file, logging, signals, exit codes.

use crate::config::Settings;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Bridge shmbus topics to other hosts over Zenoh.
#[derive(Debug, Parser)]
#[command(name = "shmbus-bridge", version)]
pub struct Args {
    /// Local topics to publish to Zenoh: glob patterns (`*`, `?`), each optionally `:lossy`.
    #[arg(long, num_args = 1.., value_name = "PATTERN")]
    pub export: Vec<String>,
    /// Remote topics to publish on the local bus: glob patterns.
    #[arg(long, num_args = 1.., value_name = "PATTERN")]
    pub import: Vec<String>,
    /// Zenoh endpoint to listen on, `tcp/HOST:PORT` (repeatable).
    #[arg(long, value_name = "ENDPOINT")]
    pub listen: Vec<String>,
    /// Zenoh endpoint to connect to, `tcp/HOST:PORT` (repeatable).
    #[arg(long, value_name = "ENDPOINT")]
    pub connect: Vec<String>,
    /// A TOML file with a `[bridge]` section; flags add to it.
    #[arg(long, env = "SHMBUS_BRIDGE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// This bridge's name, unique among the bridges that see each other (default: the host name).
    #[arg(long, env = "SHMBUS_BRIDGE_ID")]
    pub id: Option<String>,
    /// The local daemon's control socket (default: `$SHMBUS_SOCKET`, then the usual locations).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Write the counters as JSON to this file, refreshed five times a second.
    #[arg(long, value_name = "PATH")]
    pub stats_file: Option<PathBuf>,
    /// Log the counters every this many seconds (0: only at exit).
    #[arg(long, value_name = "SECS")]
    pub stats_interval: Option<u64>,
    /// Enable Zenoh multicast scouting and gossip (default: only the given endpoints).
    #[arg(long)]
    pub scouting: bool,
    /// Check the settings and exit (0 when valid): for `ExecStartPre`.
    #[arg(long)]
    pub validate: bool,
}

impl Args {
    /// The settings: the file's, then the flags'.
    pub fn settings(&self) -> Result<Settings, String> {
        let mut s = match &self.config {
            Some(p) => Settings::from_file(p)?,
            None => Settings::default(),
        };
        s.add(&self.export, &self.import, &self.listen, &self.connect)?;
        if let Some(id) = &self.id {
            s.id = id.clone();
        }
        if self.socket.is_some() {
            s.socket = self.socket.clone();
        }
        if self.stats_file.is_some() {
            s.stats_file = self.stats_file.clone();
        }
        if let Some(secs) = self.stats_interval {
            s.stats_interval = std::time::Duration::from_secs(secs);
        }
        s.scouting |= self.scouting;
        s.validate()?;
        Ok(s)
    }
}

/// Exit code for bad settings.
pub const EXIT_CONFIG: u8 = 3;
/// Exit code for a failure while running.
pub const EXIT_RUNTIME: u8 = 1;

/// The binary's `main`: parses, logs to stderr (`RUST_LOG`, default `info,zenoh=warn`), runs until SIGINT or
/// SIGTERM. Exit codes: 0 stopped cleanly, 1 runtime failure, 2 usage, 3 settings.
pub fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,zenoh=warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let settings = match args.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("shmbus-bridge: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if args.validate {
        println!(
            "settings are valid: {} export rules, {} import patterns",
            settings.export.len(),
            settings.import.len()
        );
        return ExitCode::SUCCESS;
    }
    let shutdown = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, shutdown.clone()) {
            eprintln!("shmbus-bridge: cannot handle signal {sig}: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    }
    match crate::run(&settings, shutdown) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmbus-bridge: {e:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}
