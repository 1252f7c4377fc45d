//! `shmbus`: publish, subscribe and administer topics on the shmbus shared-memory bus (see the `shmbus_cli`
//! library of this package).

fn main() -> std::process::ExitCode {
    shmbus_cli::main()
}
