//! The shmbus benchmark harness: shmbus side by side with what users would use instead, in one run on one
//! machine, between two processes.
//!
//! # What is measured
//!
//! For each message size and each transport, in fresh processes (the harness and peers it starts from its own
//! binary; the harness pinned to CPU 0 and its peers to CPU 1 when there are two):
//!
//! * **latency**: ping-pong, one-way = RTT/2, percentiles from an hdrhistogram (p50, p99, p99.9, max), at 64 B,
//!   1 KiB, 64 KiB and 1 MiB by default;
//! * **throughput**: one way, back to back, messages/s and MB/s, from 8 B to 64 KiB;
//! * **multi-process** (shmbus only, [`multi`]): fan-in 2→1 and 4→1, fan-out 1→3, a consumer group of 2, and a
//!   lossy subscriber;
//! * **scale** ([`scale`]): 10, 100, 1,000 and 10,000 idle topics on a fresh private daemon each: create rate,
//!   listing, stats and restart adoption times, the daemon's memory and descriptors and /dev/shm per topic (in the
//!   full run, under a second at 1,000 topics in a release build; not in `--quick` unless `--scenarios scale` asks).
//!
//! The transports ([`transport::Kind`]): the floors (a cache line bounced between two processes, a pair of
//! named semaphores, memcpy in one process), a minimal framed SPSC ring over shared memory, pipes, a Unix stream
//! socket and POSIX message queues (the baselines), and shmbus through `bus-client` with a private `shmbusd`
//! (`bench-shmbusd`, built next to the harness), busy-polling and blocking. Every message is written in full
//! and read in full on each side. The table gives each result as a ratio to the best baseline and to the floor
//! of the same run, because only ratios compare across runs on a shared machine. Each record also has the
//! scenario's shared-memory footprint and the processes' peak resident sets ([`memory`]).
//!
//! ```text
//! cargo run --release -p shmbus-bench -- --quick --json bench.json --plots plots/
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(missing_docs)]

pub mod cli;
pub mod daemon;
pub mod measure;
pub mod memory;
pub mod multi;
pub mod peer;
pub mod pin;
pub mod plots;
pub mod progress;
pub mod record;
pub mod report;
pub mod run;
pub mod scale;
pub mod transport;
pub mod watchdog;

use std::process::ExitCode;

/// Runs the harness or, when started as one, the peer; returns the process's exit code (1: runtime failure).
pub fn main(cli: cli::Cli) -> ExitCode {
    let mlock = cli.run.mlock || std::env::var_os(cli::MLOCK_ENV).is_some_and(|v| v == "true");
    if mlock {
        if let Err(e) = memory::lock_all() {
            eprintln!("shmbus-bench: --mlock: mlockall failed: {e} (needs CAP_IPC_LOCK or a larger RLIMIT_MEMLOCK)");
            return ExitCode::from(1);
        }
        // The peers lock themselves too. Set before any thread starts (the progress bar's comes later).
        std::env::set_var(cli::MLOCK_ENV, "true");
    }
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
    let (mut machine, records) = match run::run(a) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("shmbus-bench: {e}");
            return ExitCode::from(1);
        }
    };
    machine.memory = memory::mode(mlock);
    print!("{}", report::table(&machine, &records));
    let written = a
        .json
        .as_ref()
        .map_or(Ok(()), |p| record::write_json(p, &machine, &records))
        .and_then(|()| a.csv.as_ref().map_or(Ok(()), |p| record::write_csv(p, &records)))
        .and_then(|()| a.plots.as_ref().map_or(Ok(()), |d| plots::write(d, &records)));
    if let Err(e) = written {
        eprintln!("shmbus-bench: writing the results: {e}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
