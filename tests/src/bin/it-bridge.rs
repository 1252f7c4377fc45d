//! `shmbus-bridge` built inside the tests package, so integration tests can find it next to themselves.
fn main() -> std::process::ExitCode {
    shmbus_bridge::cli::main()
}
