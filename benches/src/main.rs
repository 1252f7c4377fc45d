//! `shmbus-bench`: parses the command line and runs the harness (see the library's docs).
use clap::Parser;

fn main() -> std::process::ExitCode {
    shmbus_bench::main(shmbus_bench::cli::Cli::parse())
}
