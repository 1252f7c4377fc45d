//! shmbusd, the shmbus control plane.
//!
//! The daemon owns every shared-memory object of the bus, creates topics (declared in the
//! configuration or on first use), hands out publisher and subscriber leases over a Unix socket after checking the
//! peer's credentials, reclaims what dead clients held, re-adopts its topics after a restart, and speaks systemd's
//! notify protocol. It is never in the data path: messages flow client to client through shared memory, and keep
//! flowing while the daemon restarts.
//!
//! [`run`] is the whole daemon; shutdown and reload are inputs, so tests drive it in-process:
//!
//! ```no_run
//! use bus_daemon::{run, Config, Controls, RunOptions};
//! let controls = Controls::default();
//! let opts = RunOptions::new(Config::default());
//! // elsewhere: controls.shutdown.store(true, Ordering::Relaxed) stops it gracefully.
//! run(opts, controls)?;
//! # Ok::<(), bus_daemon::DaemonError>(())
//! ```
//!
//! Configuration is validated without starting anything:
//!
//! ```
//! let cfg = bus_daemon::Config::parse("[[topic]]\nname = \"orders\"\ncapacity = 64\n", "example.toml")?;
//! assert_eq!(cfg.topics[0].0, "orders");
//! # Ok::<(), bus_daemon::config::ConfigError>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(missing_docs)]

pub mod cli;
pub mod config;
pub mod conns;
pub mod fd_limit;
pub mod lease_file;
pub mod limits;
pub mod log_queue;
pub mod metrics;
pub mod policy;
pub mod prefix_lock;
pub mod preflight;
pub mod private_file;
pub mod registry;
pub mod remembered;
pub mod resume_key;
pub mod server;
mod socket;
pub mod systemd;

pub use config::Config;

use registry::State;
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Failures that stop the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The control socket could not be set up.
    #[error("control socket {path}: {source}")]
    Socket {
        /// Socket path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The socket's directory is not the daemon's own, or others may write it (they could replace the socket).
    #[error("unsafe socket directory {}: {why}", dir.display())]
    UnsafeSocketDir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// Another daemon is already listening on the socket.
    #[error("another shmbusd is already listening on {0}")]
    AlreadyRunning(PathBuf),
    /// Another daemon serves the shm prefix (or its lock file cannot be used).
    #[error(transparent)]
    PrefixLocked(#[from] prefix_lock::LockError),
    /// A declared topic could not be created.
    #[error("topic setup: {0}")]
    Topics(String),
}

/// Inputs that stop or reload a running daemon (set them from signal handlers or tests).
#[derive(Clone, Debug, Default)]
pub struct Controls {
    /// Set to stop gracefully.
    pub shutdown: Arc<AtomicBool>,
    /// Set to reload the configuration file.
    pub reload: Arc<AtomicBool>,
}

/// What to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The configuration.
    pub config: Config,
    /// Where it came from (reloaded on SIGHUP; `None`: the embedded default).
    pub config_path: Option<PathBuf>,
    /// Control socket path override.
    pub socket: Option<PathBuf>,
    /// Unlink every topic on exit.
    pub cleanup_on_exit: bool,
}

impl RunOptions {
    /// Options for `config` with everything else defaulted.
    pub fn new(config: Config) -> RunOptions {
        RunOptions { config, config_path: None, socket: None, cleanup_on_exit: false }
    }
}

/// Creates the socket's directory (mode `dir_mode`, never group/other-writable) unless it exists, then refuses a
/// directory this daemon does not own or that others may write, as tmux and ssh-agent do.
fn prepare_dir(path: &std::path::Path, dir_mode: u32) -> Result<(), DaemonError> {
    use std::os::unix::fs::DirBuilderExt;
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else { return Ok(()) };
    let err = |source| DaemonError::Socket { path: path.to_path_buf(), source };
    if std::fs::symlink_metadata(dir).is_err() {
        std::fs::DirBuilder::new().recursive(true).mode(dir_mode & 0o755).create(dir).map_err(err)?;
    }
    let me = nix::unistd::geteuid().as_raw();
    match shmbus_proto::trust::dir_problem(dir, &[me]) {
        None => Ok(()),
        Some(why) => Err(DaemonError::UnsafeSocketDir { dir: dir.to_path_buf(), why }),
    }
}

fn bind(path: &std::path::Path, mode: u32) -> Result<UnixListener, DaemonError> {
    let err = |source| DaemonError::Socket { path: path.to_path_buf(), source };
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(DaemonError::AlreadyRunning(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(err)?;
    }
    // The mode is set without following the name (issue 16 item 2; see `socket`).
    let l = socket::bind_with_mode(path, mode, || {}).map_err(err)?;
    l.set_nonblocking(true).map_err(err)?;
    Ok(l)
}

/// Runs the daemon until `controls.shutdown` is set. Returns after a graceful stop.
pub fn run(opts: RunOptions, controls: Controls) -> Result<(), DaemonError> {
    let socket = opts.socket.clone().or(opts.config.socket.clone());
    let socket = shmbus_proto::names::daemon_socket(socket.as_deref());
    // Before touching shared memory: a daemon that cannot own its socket's directory does not start at all.
    prepare_dir(&socket, opts.config.socket_dir_mode)?;
    let mut systemd = systemd::Systemd::new();
    // Two descriptors per topic in use or cached (see `fd_limit`): more than a soft 1,024 leaves room for more.
    if let Some(soft) = fd_limit::raise() {
        let max_topics = fd_limit::max_map_count().map(fd_limit::max_topics);
        tracing::debug!(nofile = soft, cache_topics = fd_limit::cache_topics(soft), ?max_topics, "descriptor limit");
    }
    // Before anything under the prefix is adopted: a second daemon on the same prefix stops here, touching nothing.
    let _prefix_lock = prefix_lock::PrefixLock::acquire(&opts.config.shm_prefix)?;
    let mut state = State::new(opts.config.clone());
    state.resume_key = resume_key::ResumeKey::load_or_create(&opts.config.shm_prefix);
    let (adopted, refused) = state.adopt_existing();
    state.restore_remembered();
    let restored = state.restore_leases();
    state.create_declared().map_err(|r| DaemonError::Topics(r.message))?;
    let listener = bind(&socket, state.config.socket_mode)?;
    let gate = conns::Gate::new(&state.config.limits);
    let timeout = state.config.limits.request_timeout;
    let metrics_addr = state.config.metrics;
    let state = Arc::new(Mutex::new(state));
    let stop_metrics = Arc::new(AtomicBool::new(false));
    // A taken metrics port costs the metrics, never the daemon (issue 16 item 12); STATUS= says so.
    let (metrics, metrics_note) =
        match metrics_addr.map(|a| (a, metrics::spawn(a, state.clone(), gate.clone(), stop_metrics.clone()))) {
            Some((_, Ok(h))) => (Some(h), String::new()),
            Some((addr, Err(e))) => {
                tracing::error!(%addr, error = %e, "cannot serve Prometheus metrics; running without metrics");
                (None, format!("; metrics off: {addr}: {e}"))
            }
            None => (None, String::new()),
        };
    let summary = server::lock(&state).summary();
    tracing::info!(socket = %socket.display(), adopted, refused, restored, "shmbusd ready: {summary}");
    systemd.ready(&format!("ready: {summary}{metrics_note}"));

    let next_conn = AtomicU64::new(1);
    let mut conns: Vec<(std::os::unix::net::UnixStream, std::thread::JoinHandle<()>)> = Vec::new();
    let mut last_orphan_scan = Instant::now();
    let mut rescan_until = Instant::now();
    let mut last_emfile: Option<Instant> = None;
    while !controls.shutdown.load(Ordering::Relaxed) {
        let mut pfd = [nix::poll::PollFd::new(listener.as_fd(), nix::poll::PollFlags::POLLIN)];
        let _ = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(50u16));
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    let id = next_conn.fetch_add(1, Ordering::Relaxed);
                    conns.extend(server::accept(id, stream, &state, &gate, timeout, &controls.shutdown));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // Out of descriptors: close the idle topics' and accept again; with none to close the connection
                // stays queued (poll() would wake at once: wait a tick instead of spinning) and is said once a
                // second at most.
                Err(e) if fd_limit::exhausted(e.raw_os_error()) => {
                    if server::lock(&state).shed_idle_fds() > 0 {
                        continue;
                    }
                    if last_emfile.is_none_or(|t: Instant| t.elapsed() >= Duration::from_secs(1)) {
                        tracing::warn!(error = %e, "{}", fd_limit::exhausted_message("a new connection"));
                        last_emfile = Some(Instant::now());
                    }
                    std::thread::sleep(Duration::from_millis(50));
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    break;
                }
            }
        }
        let open = conns.len();
        conns.retain(|(_, h)| !h.is_finished());
        if conns.len() < open {
            // A connection ended and its leases were reclaimed as it closed, except any whose lease lock still
            // looked held: a SIGKILLed client's socket can close a moment before its lock's descriptor does.
            // Scan again on the next ticks rather than leave those to the periodic scan, so that a dead client
            // stops gating within a tick or two ("at once", ARCHITECTURE §3), not up to half a second later.
            rescan_until = Instant::now() + Duration::from_millis(250);
        }
        if controls.reload.swap(false, Ordering::Relaxed) {
            systemd.reloading(false);
            reload(&opts, &state);
            systemd.reloading(true);
        }
        {
            let mut st = server::lock(&state);
            st.drop_truncated();
            st.enforce_slow_consumers(Instant::now());
            let periodic = last_orphan_scan.elapsed() >= Duration::from_millis(500);
            if periodic || Instant::now() < rescan_until {
                st.reclaim_orphans();
            }
            if periodic {
                last_orphan_scan = Instant::now();
                systemd.status(&format!("{}{metrics_note}", st.summary()));
            }
        }
        systemd.tick();
    }
    systemd.stopping();
    tracing::info!("shmbusd stopping");
    for (s, _) in &conns {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    for (_, h) in conns {
        let _ = h.join();
    }
    stop_metrics.store(true, Ordering::Relaxed);
    if let Some(m) = metrics {
        let _ = m.join();
    }
    let _ = std::fs::remove_file(&socket);
    if opts.cleanup_on_exit {
        server::lock(&state).cleanup();
        resume_key::remove(&opts.config.shm_prefix);
        lease_file::remove(&opts.config.shm_prefix);
        remembered::remove(&opts.config.shm_prefix);
    }
    tracing::info!("shmbusd stopped");
    Ok(())
}

fn reload(opts: &RunOptions, state: &Mutex<State>) {
    let Some(path) = &opts.config_path else {
        tracing::info!("reload requested; running on the embedded default configuration, nothing to reload");
        return;
    };
    match Config::load(path) {
        Ok(cfg) => {
            let (mut notes, recreate) = server::lock(state).reload(cfg);
            if let Err(r) = registry::create_declared(state) {
                notes.push(format!("creating declared topics: {}", r.message));
            }
            for r in &recreate {
                match registry::drive(state, |st| st.recreate(r)) {
                    Ok(()) => tracing::info!(topic = %r.name, "recreated after revoking leases"),
                    Err(e) => notes.push(format!("recreating topic {:?}: {}", r.name, e.message)),
                }
            }
            for n in &notes {
                tracing::warn!("reload: {n}");
            }
            tracing::info!(config = %path.display(), "configuration reloaded");
        }
        Err(e) => tracing::error!(error = %e, "reload failed; keeping the running configuration"),
    }
}
