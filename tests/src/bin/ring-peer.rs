//! `ring-peer`: the helper process of the shmbus multi-process tests. It opens a topic by name and plays one
//! role (producer, lossless or lossy consumer, group member, or a client that dies mid-claim); see
//! `shmbus_tests::peer`.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = shmbus_tests::peer::Cli::parse();
    match shmbus_tests::peer::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ring-peer: {e}");
            ExitCode::from(3)
        }
    }
}
