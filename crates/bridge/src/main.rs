//! `shmbus-bridge`: see [`shmbus_bridge::cli`].
fn main() -> std::process::ExitCode {
    shmbus_bridge::cli::main()
}
