//! Hostile local users and misuse (issue 9): one daemon per shm prefix. A real `shmbusd` per test.

use shmbus_tests::daemon::{binary, TestDaemon};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `cmd` to completion, killing it after `limit` (a hang guard, not a speed assertion).
fn run_bounded(mut cmd: Command, limit: Duration) -> Option<Output> {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Some(child.wait_with_output().unwrap())
}

fn ok(d: &TestDaemon, args: &[&str]) -> String {
    let mut c = d.cli();
    c.args(args);
    let out = run_bounded(c, Duration::from_secs(20)).expect("the CLI hung");
    assert!(out.status.success(), "{args:?}: {}; log:\n{}", String::from_utf8_lossy(&out.stderr), d.log());
    String::from_utf8(out.stdout).unwrap()
}

/// A second daemon on `d`'s prefix, with the socket `socket`; it must exit by itself (bounded) with a clear error.
fn second_daemon_is_refused(d: &TestDaemon, socket: &std::path::Path) {
    let mut cmd = Command::new(binary("it-shmbusd"));
    cmd.arg("--socket").arg(socket).args(["--shm-prefix", &d.prefix, "--cleanup-on-exit"]);
    cmd.env_remove("NOTIFY_SOCKET").stdin(Stdio::null());
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if child.try_wait().unwrap().is_none() {
        // SAFETY: kill has no memory-safety preconditions; the pid is our own child, not yet reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let out = child.wait_with_output().unwrap();
        panic!("a second daemon on the same prefix kept running; its log:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("already serves shm prefix") && err.contains(&d.prefix), "{err}");
    assert!(!err.contains("adopted"), "the second daemon touched the topics: {err}");
}

fn topic_still_works(d: &TestDaemon, topic: &str) {
    let bus = d.bus();
    let mut sub = bus.subscriber(topic).unwrap();
    let mut p = bus.publisher(topic).unwrap();
    p.send(b"after").unwrap();
    assert_eq!(sub.recv_timeout(Duration::from_secs(10)).unwrap().payload(), b"after");
    assert!(d.leftovers().iter().any(|n| n.contains(&format!("{topic}.data"))), "{:?}", d.leftovers());
}

#[test]
fn second_daemon_on_the_same_prefix_exits_and_touches_nothing() {
    let d = TestDaemon::start(None);
    let bus = d.bus();
    let mut sub = bus.subscriber("kept").unwrap();
    let mut p = bus.publisher("kept").unwrap();
    second_daemon_is_refused(&d, &d.path("other.sock"));
    assert!(!d.path("other.sock").exists());
    second_daemon_is_refused(&d, &d.socket);
    // The first daemon and its clients carry on.
    p.send(b"through").unwrap();
    assert_eq!(sub.recv_timeout(Duration::from_secs(10)).unwrap().payload(), b"through");
    topic_still_works(&d, "kept");
    assert!(ok(&d, &["topics"]).contains("kept"));
}
