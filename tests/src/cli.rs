//! Running the `shmbus` CLI against a [`TestDaemon`] in tests: as root or as `nobody`, and showing what it
//! printed in assertion messages.

use crate::daemon::TestDaemon;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// Standard output and error of a finished command, for assertion messages.
pub fn show(o: &Output) -> String {
    format!("status {:?}\nstdout:\n{}\nstderr:\n{}", o.status, text(&o.stdout), text(&o.stderr))
}

/// Bytes as text (lossy).
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `shmbus ARGS` against `d` with no standard input.
pub fn run(d: &TestDaemon, args: &[&str]) -> Output {
    d.cli().args(args).stdin(Stdio::null()).output().expect("run shmbus")
}

/// Runs the CLI as `nobody` (the scratch directory opened so that it can reach the socket).
pub fn as_nobody(d: &TestDaemon, args: &[&str]) -> Output {
    nobody(d, args).output().expect("run shmbus as nobody")
}

/// The CLI command as `nobody`, not started (for a test that needs the child's pid).
pub fn nobody(d: &TestDaemon, args: &[&str]) -> std::process::Command {
    use std::os::unix::process::CommandExt;
    std::fs::set_permissions(&d.dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("open the dir");
    let mut c = d.cli();
    c.args(args).uid(65534).gid(65534).stdin(Stdio::null());
    c
}

/// Runs `cmd` (no standard input, output captured) to the end; killed, and the test failed, after `limit`.
pub fn bounded(mut cmd: Command, limit: Duration) -> Output {
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    bounded_child(child, limit)
}

/// Waits for `child` (its output piped) within `limit`, reading its output meanwhile (a command that prints
/// more than a pipe holds must not look hung); kills it, and fails the test, after `limit`.
pub fn bounded_child(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait for the command"),
        Err(_) => {
            // The pid is our child, not reaped (the waiting thread has not returned).
            crate::stopped::signal(pid, nix::sys::signal::Signal::SIGKILL);
            panic!("the command did not finish within {limit:?}");
        }
    }
}
