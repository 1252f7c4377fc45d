//! `shmbus`: publish, subscribe and administer topics on the shmbus shared-memory bus.
//!
//! Exit codes: 0 success, 1 other runtime error (also `wait-ready` timing out), 2 usage, 3 daemon unavailable or connection failure, 4 refused
//! (no such topic, permission denied, no free slot, type mismatch, invalid name, already exists), 5 timeout.
//!
//! This package holds the command line (clap, anyhow, serde_json, the tracing subscriber) so that the
//! `bus-client` library stays free of them; the `shmbus` binary is `src/main.rs`, one call to [`main`].
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(missing_docs)]

mod args;
mod cleanup;
mod clients;
mod create;
mod delete;
mod doctor;
mod doctor_host;
mod exit;
mod format;
mod hz;
mod interrupt;
mod parse;
mod publish;
mod rates;
mod record;
mod record_file;
mod replay;
mod screen;
mod shm_scan;
mod stats;
mod subscribe;
mod table;
mod top;
mod top_view;
mod topics;
mod wait_ready;
mod window;

use clap::Parser;
use std::process::ExitCode;

/// Runs the `shmbus` command line with the process arguments; the binary's `main`.
pub fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(exit::USAGE) } else { ExitCode::SUCCESS };
        }
    };
    args::init_logging(cli.verbose, cli.quiet);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmbus: error: {}", exit::message_of(&e));
            ExitCode::from(exit::code_of(&e))
        }
    }
}

fn run(cli: args::Cli) -> anyhow::Result<()> {
    let socket = cli.socket.filter(|p| !p.as_os_str().is_empty());
    match cli.command {
        args::Command::Pub(a) => publish::run(socket, a),
        args::Command::Sub(a) => subscribe::run(socket, a),
        args::Command::Topics(a) => topics::run(socket, a),
        args::Command::Create(a) => create::run(socket, a),
        args::Command::Delete(a) => delete::run(socket, a),
        args::Command::Stats(a) => stats::run(socket, a),
        args::Command::Doctor(a) => doctor::run(socket, a),
        args::Command::Cleanup(a) => cleanup::run(socket, a),
        args::Command::Clients(a) => clients::run(socket, a),
        args::Command::Record(a) => record::run(socket, a),
        args::Command::Replay(a) => replay::run(socket, a),
        args::Command::WaitReady(a) => wait_ready::run(socket, a, cli.quiet),
        args::Command::Top(a) => top::run(socket, a),
        args::Command::Hz(a) => hz::run(socket, a),
    }
}

/// Connects to the daemon at `socket` (or the default location), with the path in the error.
fn connect(socket: Option<std::path::PathBuf>) -> anyhow::Result<bus_client::Bus> {
    use anyhow::Context;
    let mut b = bus_client::Bus::builder().client_name(format!("shmbus {}", env!("CARGO_PKG_VERSION")));
    if let Some(s) = socket {
        b = b.socket(s);
    }
    b.connect().context("cannot connect to the shmbus daemon")
}

/// Whether `topic` does not exist for the caller, so that opening it would create it on demand (`auto_create`).
/// A topic the caller may not see is "no such topic" too, but then the open is refused, so nothing is said.
fn missing(bus: &bus_client::Bus, topic: &str) -> bool {
    matches!(bus.stats(Some(topic)), Err(bus_client::ControlError::NoSuchTopic(_)))
}

/// Says on stderr that opening `topic` created it (issue 11: a typo such as `shmbus sub ordres` silently made a
/// topic that outlives restarts).
fn say_created_on_demand(topic: &str) {
    eprintln!(
        "shmbus: created topic {topic:?} on demand (auto_create); it stays until deleted (`shmbus delete {topic}`) \
         or, if the daemon sets remove_unused_after, unused that long"
    );
}
