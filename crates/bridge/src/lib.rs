//! The shmbus bridge: local topics exported to Zenoh, remote ones imported onto the local bus, so the same
//! topics reach consumers on other hosts without changing the services.
//!
//! # Guarantees
//!
//! * **Key expressions** `shmbus/<topic>`; every sample carries a [`meta::Meta`] attachment: the exporting
//!   bridge's id and run, a per-(bridge, run, topic) sequence, and the local message's topic sequence,
//!   publisher, timestamp, topic geometry and payload type.
//! * **Order.** One exporter's stream of a topic arrives in the order the local bus gave it (one thread reads
//!   the topic and publishes to one Zenoh publisher over a reliable link).
//! * **Never silent.** A lossless export loses nothing while both bridges run and are connected. Everything
//!   else (a lossy export lapped, a Zenoh `Drop`, a link down, an exporter restarted) leaves a hole in the bridge
//!   sequence or a new run, which the importer counts (`gaps`, `lost`) and logs; see [`sources`].
//! * **No echo.** The exporter skips messages its own importer published (by publisher slot, see [`echo`]), and
//!   the importer ignores its own session's samples, so a topic exported and imported on both hosts does not
//!   loop. Two bridges exporting one topic are separate streams (keyed by bridge id).
//! * **Types.** An imported typed stream opens its local publisher with the exporter's payload type, so a
//!   local topic of another type refuses it (`refused`, logged once per reason).
//! * **Back-pressure.** See [`export`]: lossless exports block (Zenoh `Block`, bounded queue), lossy ones drop
//!   and count; local publishers never wait longer than for any lossless local subscriber.
//! * **Faults.** The bridge holds no state on disk and ordinary client leases, so it restarts without
//!   cleanup; a remote going away only stops its streams; the daemon restarting is survived like by any client
//!   (handles are re-registered by the client library; a recreated topic's export restarts).
//!
//! ```no_run
//! use shmbus_bridge::config::Settings;
//! use std::sync::{atomic::AtomicBool, Arc};
//! let mut s = Settings::default();
//! s.add(&["sensors.*".into()], &[], &["tcp/0.0.0.0:7447".into()], &[]).expect("valid");
//! shmbus_bridge::run(&s, Arc::new(AtomicBool::new(false))).expect("bridge");
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(missing_docs)]

pub mod cli;
pub mod config;
pub mod echo;
pub mod export;
mod exports;
pub mod glob;
mod import;
pub mod meta;
pub mod remotes;
pub mod reporting;
pub mod session;
pub mod sources;
pub mod stats;

use anyhow::Context;
use bus_client::Bus;
use config::Settings;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use zenoh::Wait;

/// What the export and import threads share.
pub struct Shared {
    /// The local bus.
    pub bus: Bus,
    /// The Zenoh session.
    pub session: zenoh::Session,
    /// This bridge's id (hash of its name).
    pub bridge: u64,
    /// This run (process start, ns since the epoch).
    pub run: u64,
    /// Importer slots, for the no-echo rule.
    pub echo: echo::Echo,
    /// Counters, all topics together.
    pub stats: stats::Stats,
    /// Counters per topic, reported to the daemon.
    pub reporting: reporting::Reporting,
    /// The remote importers (liveliness tokens), for the report of exported topics.
    pub remotes: Arc<remotes::Remotes>,
    /// This bridge's id as configured.
    pub id: String,
    /// Set to stop.
    pub shutdown: Arc<AtomicBool>,
}

/// How often the export rules are matched against the local topics.
const SCAN: Duration = Duration::from_secs(1);
/// How often the per-topic counters and remote importers are reported to the daemon.
const REPORT: Duration = Duration::from_secs(1);

/// Runs the bridge until `shutdown` is set (SIGINT/SIGTERM in the binary), then stops every thread.
pub fn run(settings: &Settings, shutdown: Arc<AtomicBool>) -> anyhow::Result<()> {
    settings.validate().map_err(anyhow::Error::msg)?;
    let Some(bus) = connect(settings, &shutdown)? else { return Ok(()) };
    let session = session::open(settings)?;
    let run = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    let sh = Arc::new(Shared {
        bus,
        session,
        bridge: bus_client::typed::fnv1a(settings.id.as_bytes()),
        run,
        echo: echo::Echo::default(),
        stats: stats::Stats::default(),
        reporting: reporting::Reporting::default(),
        remotes: Arc::default(),
        id: settings.id.clone(),
        shutdown: shutdown.clone(),
    });
    tracing::info!(id = %settings.id, bridge = format_args!("{:016x}", sh.bridge), zenoh = %sh.session.zid(),
        listen = ?settings.listen, connect = ?settings.connect, "bridge running");
    let importer = if settings.import.is_empty() {
        None
    } else {
        let (sh2, s2) = (sh.clone(), settings.clone());
        Some(std::thread::Builder::new().name("import".into()).spawn(move || import::run(&sh2, &s2))?)
    };
    // Exporters follow the importers' liveliness tokens (history: the ones declared before this bridge came).
    let _importers = if settings.export.is_empty() {
        None
    } else {
        let remotes = sh.remotes.clone();
        let live = sh.session.liveliness().declare_subscriber(remotes::TOKENS).history(true);
        match live.callback(move |s| remotes.observe(&s)).wait() {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot follow the remote importers; stats will not show them");
                None
            }
        }
    };
    let mut exports = exports::Exports::default();
    let (mut last_scan, mut last_log, mut last_file) = (None::<Instant>, Instant::now(), None::<Instant>);
    let mut last_report = None::<Instant>;
    let mut report_failed = false;
    while !shutdown.load(Ordering::Relaxed) {
        if last_report.is_none_or(|t| t.elapsed() >= REPORT) {
            report(&sh, &mut report_failed);
            last_report = Some(Instant::now());
        }
        if last_scan.is_none_or(|t| t.elapsed() >= SCAN) {
            exports.scan(&sh, settings);
            last_scan = Some(Instant::now());
        }
        if !settings.stats_interval.is_zero() && last_log.elapsed() >= settings.stats_interval {
            sh.stats.log("bridge counters");
            last_log = Instant::now();
        }
        if let Some(p) = &settings.stats_file {
            if last_file.is_none_or(|t| t.elapsed() >= Duration::from_millis(200)) {
                if let Err(e) = sh.stats.write(p) {
                    tracing::warn!(path = %p.display(), error = %e, "cannot write the stats file");
                }
                last_file = Some(Instant::now());
            }
        }
        if importer.as_ref().is_some_and(|h| h.is_finished()) {
            break; // the import failed: report it below
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    shutdown.store(true, Ordering::Relaxed);
    exports.join();
    let imported = importer.map(|h| h.join());
    sh.stats.log("bridge stopped");
    if let Some(p) = &settings.stats_file {
        let _ = sh.stats.write(p);
    }
    match imported {
        Some(Ok(r)) => r.context("import"),
        Some(Err(_)) => anyhow::bail!("the import thread panicked"),
        None => Ok(()),
    }
}

/// Reports the per-topic counters and remote importers to the daemon; a failure is logged once until a
/// report goes through again (a handle closing between the listing and the report is refused: the next one
/// is right).
fn report(sh: &Shared, failed: &mut bool) {
    match sh.bus.report(sh.reporting.reports(&sh.remotes, &sh.id)) {
        Ok(()) => *failed = false,
        Err(e) => {
            if !std::mem::replace(failed, true) {
                tracing::info!(error = %e, "the daemon did not take the bridge's report; retrying");
            }
        }
    }
}

/// Connects to the daemon, waiting (logged once) while it is not up yet; `None` if told to stop meanwhile.
fn connect(settings: &Settings, shutdown: &AtomicBool) -> anyhow::Result<Option<Bus>> {
    let mut logged = false;
    loop {
        let b = Bus::builder().client_name(format!("shmbus-bridge {}", settings.id));
        let b = match &settings.socket {
            Some(p) => b.socket(p),
            None => b,
        };
        match b.connect() {
            Ok(bus) => return Ok(Some(bus)),
            Err(e) if matches!(e, bus_client::ConnectError::Io(_) | bus_client::ConnectError::Timeout) => {
                if !std::mem::replace(&mut logged, true) {
                    tracing::warn!(error = %e, "the daemon is not up yet; waiting for it");
                }
            }
            Err(e) => return Err(e).context("cannot connect to the shmbus daemon"),
        }
        if shutdown.load(Ordering::Relaxed) {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
