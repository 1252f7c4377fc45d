//! `shmbusd`: the shmbus daemon. See the `bus_daemon` library for everything it does.

fn main() -> std::process::ExitCode {
    bus_daemon::cli::main()
}
