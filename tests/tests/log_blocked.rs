//! A daemon whose stderr nobody reads still serves. Log lines are written where they happen, some under the
//! registry lock, and they went straight to stderr: once 64 KiB sat unread in the pipe (a stuck journald, a
//! supervisor that stopped reading), every connection stopped, `shmbus topics` included. They go through a
//! bounded, lossy queue now (`bus-daemon/src/log_queue.rs`), and a blocked stderr costs log lines only.

use shmbus_tests::cli::{bounded, show, text};
use shmbus_tests::daemon::TestDaemon;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

#[test]
fn a_daemon_whose_stderr_nobody_reads_still_serves() {
    // The daemon's stderr is a FIFO whose read end this test holds open and never reads. The fixture stops the
    // daemon and sweeps its objects whatever happens.
    let fifo = std::env::temp_dir().join(format!("shmbus-log-blocked-{}", std::process::id()));
    let _ = std::fs::remove_file(&fifo);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR).expect("mkfifo");
    let unread = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(&fifo)
        .expect("open the FIFO's read end");
    let redirect = format!("exec \"$0\" \"$@\" 2>'{}'", fifo.display());
    let d = TestDaemon::start_wrapped(None, &["sh", "-c", &redirect]);
    let _ = std::fs::remove_file(&fifo);
    // Moved after the fixture, so that it is closed first however the test ends: a daemon stuck behind it could
    // not stop.
    let unread = unread;
    let run = |args: &[&str]| {
        let mut c = d.cli();
        c.args(args);
        bounded(c, Duration::from_secs(30))
    };
    // A few thousand log lines (creations at info, requests at debug; the fixture runs the daemon with -v): far
    // more than a pipe holds. Small topics, so that 1 500 fit the default shm_budget.
    let names: Vec<String> = (0..1500).map(|i| format!("t{i}")).collect();
    let mut args = vec!["create", "--capacity", "16", "--max-message", "64", "--payload-budget", "4096"];
    args.extend(names.iter().map(String::as_str));
    let out = run(&args);
    assert!(out.status.success(), "{}", show(&out));
    let out = run(&["topics", "--json"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(text(&out.stdout).contains("\"t1499\""), "{}", show(&out));
    // Let the daemon's log drain before the fixture stops it.
    drop(unread);
}
