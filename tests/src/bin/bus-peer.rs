//! `bus-peer`: the client helper process of the shmbus fault tests. It connects to a daemon through `bus_client`
//! and plays one role (publisher, subscriber of any kind, or a client that dies at a chosen point); see
//! `shmbus_tests::bus_peer`.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = shmbus_tests::bus_peer::Cli::parse();
    match shmbus_tests::bus_peer::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bus-peer: {e}");
            ExitCode::from(3)
        }
    }
}
