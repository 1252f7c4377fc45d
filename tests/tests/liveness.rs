//! Who holds a slot is the daemon's to say, not a byte lock's (issue 16 item 5): a subscriber of a topic run as
//! `nobody` locks every lease byte of the readers object (which every subscriber maps read-write) and keeps
//! them; root can still open publishers and subscribers, and a dead publisher's claim is still cancelled.

use shmbus_tests::daemon::{binary, TestDaemon};
use shmbus_tests::hostile::{root_or_skip, NOBODY};
use shmbus_tests::kid::Kid;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The `intruder` helper with `args` after the mode and the socket, as `uid`.
fn intruder(d: &TestDaemon, mode: &str, topic: &str, uid: u32) -> Kid {
    let mut c = Command::new(binary("intruder"));
    c.arg(mode).arg(&d.socket).arg(topic).uid(uid).gid(uid);
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    Kid::watch(mode, c.spawn().expect("spawn intruder"))
}

/// `holding N of M` → N.
fn held(line: &str) -> usize {
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("not a count: {line}"))
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions; the pid is a child of ours or the test daemon.
    unsafe { libc::kill(pid as i32, sig) };
}

#[test]
fn a_subscriber_holding_every_lease_byte_locks_nobody_out_and_stops_no_reclaim() {
    if !root_or_skip("a_subscriber_holding_every_lease_byte_locks_nobody_out_and_stops_no_reclaim") {
        return;
    }
    let cfg = "[defaults]\npublish = [\"uid:0\"]\nsubscribe = [\"*\"]\n\n[[topic]]\nname = \"orders\"\n\
               max_publishers = 2\nmax_subscribers = 4\n";
    let mut d = TestDaemon::start(Some(cfg));
    std::fs::set_permissions(&d.dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let bus = d.bus();
    let mut sub = bus.subscriber("orders").expect("root's lossless subscriber");

    // Root's publisher 1 claims an entry and hangs on it; publisher 2 publishes behind it.
    let mut victim = intruder(&d, "hold-loan", "orders", 0);
    victim.line("claimed");
    let mut p2 = bus.publisher("orders").expect("root's second publisher");
    p2.send(b"after").unwrap();
    assert!(sub.recv_timeout(Duration::from_millis(300)).is_err(), "the reader waits at the claimed entry");

    // nobody takes a lossy lease, closes its connection, and locks every lease byte it can get.
    let mut thief = intruder(&d, "lock-all", "orders", NOBODY);
    let mut holding = held(&thief.line("holding"));
    // 2 publisher + 4 subscriber bytes: root's two publishers and its subscriber hold theirs; the thief gets the
    // other three (its own lease's and the two free subscriber slots').
    while holding < 3 {
        holding = held(&thief.line("holding"));
    }

    // The victim dies while the daemon is stopped, so the thief has its byte before the daemon can look.
    let daemon = d.pid().expect("daemon running");
    signal(daemon, libc::SIGSTOP);
    signal(victim.child.id(), libc::SIGKILL);
    victim.wait();
    while holding < 4 {
        holding = held(&thief.line("holding"));
    }
    signal(daemon, libc::SIGCONT);

    // The dead publisher's claim is cancelled although its byte is held: the reader passes it.
    let m = sub.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|e| panic!("reader stuck: {e}\n{}", d.log()));
    assert_eq!(m.payload(), b"after");
    drop(m);
    // Every free slot's byte is the thief's, yet root gets both kinds of lease.
    let mut p3 = bus.publisher("orders").unwrap_or_else(|e| panic!("root's publisher refused: {e}\n{}", d.log()));
    let mut s2 = bus.subscriber_builder("orders").lossy().open().expect("root's lossy subscriber");
    p3.send(b"again").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    assert_eq!(sub.recv_timeout(Duration::from_secs(20)).unwrap().payload(), b"again");
    assert_eq!(s2.recv_timeout(deadline.saturating_duration_since(Instant::now())).unwrap().payload(), b"again");
    let st = bus.stats(Some("orders")).unwrap();
    assert_eq!(st[0].cancelled, 1, "one claim cancelled: {st:?}");
    drop(thief);
    d.stop_with(libc::SIGTERM);
}
