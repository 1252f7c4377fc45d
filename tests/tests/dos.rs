//! A second user against the daemon's own resources (issue 16): replies left unread to exhaust the descriptors
//! in flight (item 3). The attackers run as `nobody`.

use shmbus_tests::daemon::{binary, TestDaemon};
use shmbus_tests::hostile::{root_or_skip, NOBODY};
use shmbus_tests::kid::Kid;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The hang guard: a bound on waits that should end at once, never asserted on as a speed.
const HANG: Duration = Duration::from_secs(10);

fn as_nobody(name: &str, args: &[&str]) -> Kid {
    let mut c = Command::new(binary(name));
    c.args(args).uid(NOBODY).gid(NOBODY);
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    Kid::watch(name, c.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}")))
}

/// Polls `f` until it is true, bounded (a hang guard, not a speed assertion).
fn eventually(what: &str, d: &TestDaemon, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "{what}; log:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// Item 3. The daemon runs as the unit runs it, without capabilities, so descriptors in unread replies count
/// against its RLIMIT_NOFILE (256 here). nobody pipelines 300 Open/Close pairs on each of 4 connections and reads
/// nothing: with one outstanding reply per connection at most a few descriptors are in flight, root still opens
/// a publisher and a subscriber and exchanges a message, the daemon's descriptor count stays bounded, and the
/// attacker's connections are closed once a reply stayed unread for the request timeout.
#[test]
fn unread_replies_do_not_exhaust_the_daemons_descriptors() {
    if !root_or_skip("unread_replies_do_not_exhaust_the_daemons_descriptors") {
        return;
    }
    let config = "[daemon]\nrequest_timeout_ms = 2000\n\n[defaults]\nmax_subscribers = 256\n\n\
                  [[topic]]\nname = \"flood-a\"\n\n[[topic]]\nname = \"flood-b\"\n";
    let wrap = ["prlimit", "--nofile=256:256", "setpriv", "--inh-caps=-all", "--bounding-set=-all", "--"];
    let d = TestDaemon::start_wrapped(Some(config), &wrap);
    std::fs::set_permissions(&d.dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let pid = d.pid().expect("daemon pid");
    let before = open_fds(pid);
    let socket = d.socket.to_str().unwrap();
    let mut flood = as_nobody("raw-client", &[socket, "flood", "flood", "flood-a,flood-b", "4", "300"]);
    assert_eq!(flood.line("flooded"), "flooded");
    // Without the bound the daemon has answered every request by now (its replies are small).
    std::thread::sleep(Duration::from_millis(500));
    let during = open_fds(pid);
    let bus = d.bus();
    let mut p = bus.publisher("dos-3-chat").expect("root opens a publisher");
    let mut s = bus.subscriber("dos-3-chat").expect("root opens a subscriber");
    p.send(b"still here").unwrap();
    assert_eq!(s.recv_timeout(HANG).expect("root's message").payload(), b"still here");
    assert!(during <= before + 16, "the daemon's descriptors went from {before} to {during}");
    eventually("the attacker's connections were not closed", &d, || d.log().contains("a reply was left unread"));
    drop((p, s, bus, flood));
}

/// Item 3, the lease quota: with `max_leases_per_uid = 2`, nobody's third lease is refused naming the limit,
/// while root (exempt) still opens leases.
#[test]
fn leases_of_one_uid_are_bounded() {
    if !root_or_skip("leases_of_one_uid_are_bounded") {
        return;
    }
    let d = TestDaemon::start(Some("[daemon]\nmax_leases_per_uid = 2\n\n[[topic]]\nname = \"dos-3-quota\"\n"));
    std::fs::set_permissions(&d.dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let socket = d.socket.to_str().unwrap();
    let mut kids: Vec<Kid> =
        (0..3).map(|_| as_nobody("raw-client", &[socket, "quota", "group", "dos-3-quota", "g"])).collect();
    let answers: Vec<String> = kids.iter_mut().map(|k| k.line("")).collect();
    assert_eq!(answers.iter().filter(|a| a.starts_with("granted")).count(), 2, "{answers:?}");
    let refused = answers.iter().find(|a| !a.starts_with("granted")).unwrap();
    assert!(refused.contains("ResourceExhausted") && refused.contains("max_leases_per_uid = 2"), "{refused}");
    let bus = d.bus();
    let _subs: Vec<_> = (0..3).map(|_| bus.subscriber("dos-3-quota").expect("root is exempt")).collect();
}
