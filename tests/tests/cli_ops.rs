//! The operator commands of the `shmbus` CLI against a private daemon (its own socket and shm prefix per test):
//! `wait-ready`, `create` with policy keys, `sub --format`, `pub --raw`, `doctor`, `cleanup` and `clients`.

use shmbus_tests::daemon::{binary, TestDaemon};
use std::process::{Command, Output, Stdio};

/// Standard output and error of a finished command, for assertion messages.
fn show(o: &Output) -> String {
    format!("status {:?}\nstdout:\n{}\nstderr:\n{}", o.status, text(&o.stdout), text(&o.stderr))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A `shmbus` CLI pointed at `socket` (no daemon needed there).
fn cli_at(socket: &std::path::Path) -> Command {
    let mut c = Command::new(binary("it-shmbus"));
    c.env("SHMBUS_SOCKET", socket).env_remove("RUST_LOG").stdin(Stdio::null());
    c
}

#[test]
fn wait_ready_returns_once_the_daemon_answers() {
    let d = TestDaemon::start(None);
    let out = d.cli().args(["wait-ready", "--timeout", "20s"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out.stderr).contains("daemon ready: shmbusd"), "{}", show(&out));
}

#[test]
fn wait_ready_times_out_with_exit_1_and_a_clear_message() {
    let dir = std::env::temp_dir().join(format!("shmbus-waitready-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = cli_at(&dir.join("nobody-listens.sock")).args(["wait-ready", "--timeout", "300ms"]).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = text(&out.stderr);
    assert!(err.contains("did not answer within 300ms"), "{}", show(&out));
    assert!(err.contains("nobody-listens.sock"), "the last attempt's reason names the socket: {}", show(&out));
}

#[test]
fn wait_ready_refuses_bad_durations() {
    let d = TestDaemon::start(None);
    for bad in ["soon", "5 parsecs", "-1s"] {
        let out = d.cli().args(["wait-ready", &format!("--timeout={bad}")]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", show(&out));
        assert!(text(&out.stderr).contains("--timeout"), "{bad}: {}", show(&out));
    }
}
