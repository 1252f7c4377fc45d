//! Command line of `shmbusd`.

use crate::{run, Config, Controls, RunOptions};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

/// The shmbus daemon: owns topics and hands out leases; never in the data path.
#[derive(Debug, Parser)]
#[command(name = "shmbusd", version, about)]
pub struct Args {
    /// Configuration file (TOML). Without it the daemon runs an embedded default (topics created on first use);
    /// `validate` needs it.
    #[arg(long, env = "SHMBUS_CONFIG", global = true, value_name = "FILE", help_heading = "Global options")]
    pub config: Option<PathBuf>,
    /// Control socket path (default: $XDG_RUNTIME_DIR/shmbus/control.sock, /run/shmbus/control.sock as root, or a
    /// per-user directory under the temp dir).
    #[arg(long, env = "SHMBUS_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Prefix of the shared-memory object names, so several buses can run side by side.
    #[arg(long, env = "SHMBUS_SHM_PREFIX")]
    pub shm_prefix: Option<String>,
    /// Unlink every topic's objects when stopping.
    #[arg(long)]
    pub cleanup_on_exit: bool,
    /// More logging (-v debug, -vv trace); -v and -q override RUST_LOG (default: RUST_LOG, else info).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less logging (-q warnings only, -qq errors only); overrides RUST_LOG.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub quiet: u8,
    /// Subcommand.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the configuration file given with --config (required) as the daemon's start would, and exit: 0 when
    /// valid, 3 when not (the reason on stderr).
    Validate,
}

/// Exit code for usage errors.
pub const EXIT_USAGE: u8 = 2;
/// Exit code for configuration errors.
pub const EXIT_CONFIG: u8 = 3;
/// Exit code for runtime failures.
pub const EXIT_RUNTIME: u8 = 1;

/// Sets up logging to stderr: `-v`/`-q` when given, else `RUST_LOG`, else info; colour and timestamps as
/// [`shmbus_os::stderr_log_style`] says (none in a file or the journal).
///
/// When stderr is a pipe or a socket (the journal's stream, a supervisor's pipe), through [`crate::log_queue`]: a
/// stderr that blocks costs log lines, never the control plane. A file or a terminal is written directly (in
/// order, at once: tests read the log file right after a request). The returned guard flushes what is queued
/// when dropped (for at most a second).
fn init_logging(verbose: u8, quiet: u8) -> Option<crate::log_queue::FlushOnDrop> {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    use tracing_subscriber::EnvFilter;
    let level = match (verbose as i8) - (quiet as i8) {
        i8::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = if verbose > 0 || quiet > 0 {
        EnvFilter::new(level)
    } else {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level))
    };
    let style = shmbus_os::stderr_log_style();
    let (writer, guard) = match stderr_may_block() {
        true => match crate::log_queue::LogQueue::start(std::io::stderr(), LOG_QUEUE_LINES) {
            Ok((q, guard)) => (BoxMakeWriter::new(q), Some(guard)),
            Err(e) => {
                eprintln!("shmbusd: cannot start the log writer thread ({e}): logging to stderr directly");
                (BoxMakeWriter::new(std::io::stderr), None)
            }
        },
        false => (BoxMakeWriter::new(std::io::stderr), None),
    };
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(style.ansi);
    let _ = if style.timestamps { fmt.try_init() } else { fmt.without_time().try_init() };
    guard
}

/// Whether stderr is a pipe or a socket, whose reader may stop reading (a file or a terminal does not block for
/// long).
fn stderr_may_block() -> bool {
    use std::os::fd::AsFd;
    let Ok(st) = nix::sys::stat::fstat(std::io::stderr().as_fd()) else { return false };
    let kind = nix::sys::stat::SFlag::from_bits_truncate(st.st_mode) & nix::sys::stat::SFlag::S_IFMT;
    kind == nix::sys::stat::SFlag::S_IFIFO || kind == nix::sys::stat::SFlag::S_IFSOCK
}

/// Log lines queued for stderr before more are dropped (see `init_logging`).
const LOG_QUEUE_LINES: usize = 16 * 1024;

fn load(args: &Args) -> Result<Config, String> {
    let mut cfg = match &args.config {
        Some(p) => Config::load(p).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    if let Some(p) = &args.shm_prefix {
        shmbus_proto::names::validate_prefix(p).map_err(|e| e.to_string())?;
        cfg.shm_prefix = p.clone();
    }
    Ok(cfg)
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let args = Args::parse();
    let _log = init_logging(args.verbose, args.quiet);
    if let Some(Command::Validate) = args.command {
        let Some(path) = &args.config else {
            eprintln!("shmbusd validate: --config FILE is required");
            return ExitCode::from(EXIT_USAGE);
        };
        return match load(&args).and_then(|c| crate::preflight::check(&c).map(|()| c)) {
            Ok(c) => {
                println!("{}: valid ({} declared topics)", path.display(), c.topics.len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("shmbusd: invalid configuration: {e}");
                ExitCode::from(EXIT_CONFIG)
            }
        };
    }
    let cfg = match load(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shmbusd: invalid configuration: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let controls = Controls::default();
    let stop = controls.shutdown.clone();
    if let Err(e) = ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed)) {
        eprintln!("shmbusd: cannot install the SIGINT/SIGTERM handler: {e}");
        return ExitCode::from(EXIT_RUNTIME);
    }
    // ctrlc's `termination` feature also catches SIGHUP, as a stop: give SIGHUP back its default disposition,
    // then let signal-hook (which only chains to real handlers, not SIG_DFL) turn it into a reload request.
    if let Err(e) = shmbus_os::default_sighup() {
        eprintln!("shmbusd: cannot reset the SIGHUP handler: {e}");
        return ExitCode::from(EXIT_RUNTIME);
    }
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, controls.reload.clone()) {
        eprintln!("shmbusd: cannot install the SIGHUP handler: {e}");
        return ExitCode::from(EXIT_RUNTIME);
    }
    let opts = RunOptions {
        config: cfg,
        config_path: args.config.clone(),
        socket: args.socket.clone(),
        cleanup_on_exit: args.cleanup_on_exit,
    };
    match run(opts, controls) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ crate::DaemonError::Config(_)) => {
            eprintln!("shmbusd: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            eprintln!("shmbusd: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}
