//! The shmbus benchmark harness: shmbus side by side with what users would use instead, in one run on one
//! machine, between two processes.
//!
//! # What is measured
//!
//! For each message size (64 B and 4 KiB by default) and each transport, in a fresh pair of processes (the
//! harness and a peer it starts from its own binary, pinned to CPU 0 and CPU 1 when there are two):
//!
//! * **latency**: ping-pong, one-way = RTT/2, percentiles from an hdrhistogram (p50, p99, p99.9, max);
//! * **throughput**: one way, back to back, messages/s and MB/s.
//!
//! The transports ([`transport::Kind`]): a minimal framed SPSC ring over shared memory (the floor), pipes, a Unix
//! stream socket and POSIX message queues (the baselines), and shmbus through `bus-client` with a private
//! `shmbusd` (`bench-shmbusd`, built next to the harness), busy-polling and blocking. Every message is written
//! in full and read in full on each side. The table gives each result as a ratio to the best baseline of the
//! same run, because only ratios compare across runs on a shared machine.
//!
//! ```text
//! cargo run --release -p shmbus-bench -- --quick --json bench.json
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(missing_docs)]

pub mod cli;
pub mod daemon;
pub mod measure;
pub mod peer;
pub mod pin;
pub mod record;
pub mod report;
pub mod run;
pub mod transport;
pub mod watchdog;

use std::process::ExitCode;

/// Runs the harness or, when started as one, the peer; returns the process's exit code (1: runtime failure).
pub fn main(cli: cli::Cli) -> ExitCode {
    if let Some(cli::Internal::Peer(a)) = &cli.peer {
        return match peer::run(a) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("shmbus-bench peer ({}): {e}", a.transport.name());
                ExitCode::from(1)
            }
        };
    }
    let a = &cli.run;
    let (machine, records) = match run::run(a) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("shmbus-bench: {e}");
            return ExitCode::from(1);
        }
    };
    print!("{}", report::table(&machine, &records));
    let written = a
        .json
        .as_ref()
        .map_or(Ok(()), |p| record::write_json(p, &machine, &records))
        .and_then(|()| a.csv.as_ref().map_or(Ok(()), |p| record::write_csv(p, &records)));
    if let Err(e) = written {
        eprintln!("shmbus-bench: writing the results: {e}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
