//! `shmbusd` built inside the bench package, so the harness finds it next to itself and starts a private one.
fn main() -> std::process::ExitCode {
    bus_daemon::cli::main()
}
