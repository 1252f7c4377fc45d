//! `shmbus`: publish, subscribe and administer topics on the shmbus shared-memory bus (see `bus_client::cli`).

fn main() -> std::process::ExitCode {
    bus_client::cli::main()
}
