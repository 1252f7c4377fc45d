//! Hostile local users and misuse (issue 9, holes 2 to 5): control operations authorized, resource limits, one
//! daemon per shm prefix, no slow work under the daemon's lock, connection limits. A real `shmbusd` per test;
//! "another user" is `nobody`.

use shmbus_tests::daemon::{binary, TestDaemon};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NOBODY: u32 = 65534;

/// Lets `nobody` reach the daemon's socket in its scratch directory.
fn open_dir_to_all(d: &TestDaemon) {
    std::fs::set_permissions(&d.dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

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

/// The CLI as `nobody`.
fn as_nobody(d: &TestDaemon, args: &[&str]) -> Output {
    let mut c = d.cli();
    c.args(args).uid(NOBODY).gid(NOBODY);
    run_bounded(c, Duration::from_secs(20)).expect("the CLI hung")
}

/// The log without terminal colour codes.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut esc = false;
    for c in s.chars() {
        match (esc, c) {
            (false, '\x1b') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

fn ok(d: &TestDaemon, args: &[&str]) -> String {
    let mut c = d.cli();
    c.args(args);
    let out = run_bounded(c, Duration::from_secs(20)).expect("the CLI hung");
    assert!(out.status.success(), "{args:?}: {}; log:\n{}", String::from_utf8_lossy(&out.stderr), d.log());
    String::from_utf8(out.stdout).unwrap()
}

fn refused(d: &TestDaemon, args: &[&str]) -> String {
    let mut c = d.cli();
    c.args(args);
    let out = run_bounded(c, Duration::from_secs(20)).expect("the CLI hung");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} was accepted");
    err
}

#[test]
fn nobody_cannot_delete_or_create_and_the_log_names_the_uid() {
    let d = TestDaemon::start(Some(
        "[defaults]\npublish = [\"uid:0\"]\nsubscribe = [\"uid:0\"]\n\n[[topic]]\nname = \"secret\"\n",
    ));
    open_dir_to_all(&d);
    let bus = d.bus();
    let mut sub = bus.subscriber("secret").unwrap();
    let mut publ = bus.publisher("secret").unwrap();
    for args in [vec!["delete", "secret"], vec!["create", "made-by-nobody"], vec!["pub", "auto-by-nobody", "x"]] {
        let out = as_nobody(&d, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{args:?} as nobody: {err}");
        assert!(err.contains("permission") || err.contains("may not"), "{args:?}: {err}");
    }
    let topics = ok(&d, &["topics"]);
    assert!(topics.contains("secret"), "{topics}");
    assert!(!topics.contains("made-by-nobody") && !topics.contains("auto-by-nobody"), "{topics}");
    // Root's subscriber was not closed.
    publ.send(b"still here").unwrap();
    assert_eq!(sub.recv_timeout(Duration::from_secs(10)).unwrap().payload(), b"still here");
    // Root (an admin by default) may; every grant, refusal, create and delete names the uid.
    ok(&d, &["create", "by-root"]);
    ok(&d, &["delete", "by-root"]);
    let log = strip_ansi(&d.log());
    let has = |needle: &[&str]| log.lines().any(|l| needle.iter().all(|n| l.contains(n)));
    assert!(has(&["request refused", "uid=65534", "may not delete topic \"secret\""]), "{log}");
    assert!(has(&["request refused", "uid=65534", "may not create topic \"made-by-nobody\""]), "{log}");
    assert!(has(&["request refused", "uid=65534", "auto-by-nobody"]), "{log}");
    assert!(has(&["created topic", "by-root", "uid=0"]), "{log}");
    assert!(has(&["deleted topic", "by-root", "uid=0"]), "{log}");
    assert!(has(&["lease granted", "secret", "uid=0"]), "{log}");
}

#[test]
fn payload_budget_topic_footprint_and_daemon_budget_are_honoured() {
    let d = TestDaemon::start(Some(
        "[daemon]\nmax_topic_bytes = 8388608\nshm_budget = 10485760\nmax_auto_topics_per_uid = 2\n",
    ));
    open_dir_to_all(&d);
    // An explicit payload budget is honoured, or the create is refused naming it and the size needed.
    let err = refused(&d, &["create", "c1", "--max-message", "1M", "--payload-budget", "64K"]);
    assert!(err.contains("payload_budget = 65536") && err.contains("8388608"), "{err}");
    ok(&d, &["create", "c2", "--max-message", "4K", "--payload-budget", "64K"]);
    let json: serde_json::Value = serde_json::from_str(&ok(&d, &["topics", "--json"])).unwrap();
    let geo = &json.as_array().unwrap().iter().find(|t| t["name"] == "c2").expect("c2 listed")["geometry"];
    let regions = geo["region_bytes"].as_u64().unwrap() * geo["max_publishers"].as_u64().unwrap();
    assert!(regions <= 65536, "payload regions {regions} exceed the budget: {geo}");
    // Over the per-topic footprint: both numbers named.
    let err = refused(&d, &["create", "c3", "--max-message", "1M"]);
    assert!(err.contains("max_topic_bytes = 8388608") && err.contains("needs"), "{err}");
    // Within the per-topic limit, but over what is left of the daemon's budget.
    ok(&d, &["create", "c4", "--max-message", "512K"]);
    ok(&d, &["create", "c5", "--max-message", "512K"]);
    let err = refused(&d, &["create", "c6", "--max-message", "512K"]);
    assert!(err.contains("shm_budget = 10485760") && err.contains("needs"), "{err}");
    // A geometry over the ring's limits is a bad request naming the limit, not "corrupted shared memory".
    let err = refused(&d, &["create", "c7", "--capacity", "33554432"]);
    assert!(err.contains("2^24") && err.contains("33554432") && !err.contains("corrupt"), "{err}");
    ok(&d, &["delete", "c4"]);
    ok(&d, &["delete", "c5"]);
    // On-demand topics of one uid are bounded.
    for t in ["n1", "n2"] {
        let out = as_nobody(&d, &["pub", t, "x"]);
        assert!(out.status.success(), "{t}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let out = as_nobody(&d, &["pub", "n3", "x"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("max_auto_topics_per_uid = 2"), "{err}");
}

#[test]
fn validate_rejects_configs_over_the_limits_or_the_free_space() {
    let dir = std::env::temp_dir().join(format!("shmbus-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let check = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        Command::new(binary("it-shmbusd")).args(["validate", "--config"]).arg(&p).output().unwrap()
    };
    let huge = "[[topic]]\nname = \"huge\"\nmax_message = 1048576\npayload_budget = 1099511627776\n";
    let out = check("limit.toml", huge);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("max_topic_bytes = 268435456") && err.contains("needs 1099511"), "{err}");
    // Limits raised past it: now /dev/shm's free space refuses it.
    let raised = format!("[daemon]\nmax_topic_bytes = 4398046511104\nshm_budget = 4398046511104\n{huge}");
    let out = check("space.toml", &raised);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("/dev/shm") && err.contains("free"), "{err}");
    let out = check("fine.toml", "[[topic]]\nname = \"fine\"\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
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

/// Waits (bounded) until the daemon's slow work `what` is parked by the test hook.
fn wait_parked(d: &TestDaemon, park: &std::path::Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !park.join(format!("parked-{what}")).exists() {
        assert!(Instant::now() < deadline, "the {what} work did not start; log:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `shmbus topics` from another connection answers (bounded: a hang means it waits behind the parked work).
fn topics_answers(d: &TestDaemon, while_parked: &str) -> String {
    let mut c = d.cli();
    c.args(["topics"]);
    let out = run_bounded(c, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("`shmbus topics` hung behind the parked {while_parked} work"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn slow_work_does_not_hold_other_connections() {
    let park = std::env::temp_dir().join(format!("shmbus-park-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&park);
    std::fs::create_dir_all(&park).unwrap();
    let d = TestDaemon::start_with_env(None, &[("SHMBUSD_TEST_PARK_DIR", park.to_str().unwrap())]);
    struct Release(std::path::PathBuf);
    impl Drop for Release {
        fn drop(&mut self) {
            let _ = std::fs::write(self.0.join("release-group"), b"");
            let _ = std::fs::write(self.0.join("release-topic"), b"");
        }
    }
    let release = Release(park.clone());
    let bus = d.bus();
    let mut p = bus.publisher("slow").unwrap();
    p.send(b"one").unwrap();
    // A group open parked where it would wait for publishers in their claim phase.
    std::fs::write(park.join("park-group"), b"").unwrap();
    let (gdone, cdone) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let socket = d.socket.clone();
    let g = {
        let (done, socket) = (gdone.clone(), socket.clone());
        std::thread::spawn(move || {
            let bus = bus_client::Bus::connect_to(&socket).unwrap();
            let s = bus.subscriber_builder("slow").group("workers").open();
            done.store(true, Ordering::SeqCst);
            s.map(|_| ()).map_err(|e| e.to_string())
        })
    };
    wait_parked(&d, &park, "group");
    assert!(topics_answers(&d, "group").contains("slow"));
    // A topic creation parked where it fallocates; two requests for that new topic at once: one creates it, the
    // other waits for it.
    std::fs::write(park.join("park-topic"), b"").unwrap();
    let creators: Vec<_> = (0..2)
        .map(|_| {
            let (done, socket) = (cdone.clone(), socket.clone());
            std::thread::spawn(move || {
                let bus = bus_client::Bus::connect_to(&socket).unwrap();
                let r = bus.publisher("fresh").map(|_| ()).map_err(|e| e.to_string());
                done.store(true, Ordering::SeqCst);
                r
            })
        })
        .collect();
    wait_parked(&d, &park, "topic");
    assert!(topics_answers(&d, "topic").contains("slow"));
    p.send(b"two").unwrap();
    assert!(bus.stats(Some("slow")).is_ok());
    assert!(!gdone.load(Ordering::SeqCst) && !cdone.load(Ordering::SeqCst), "the parked work finished early");
    drop(release);
    g.join().unwrap().expect("the group member opens once released");
    for c in creators {
        c.join().unwrap().expect("both requests for the new topic succeed");
    }
    let topics = ok(&d, &["topics"]);
    assert_eq!(topics.matches("fresh").count(), 1, "{topics}");
    let _ = std::fs::remove_dir_all(&park);
}

#[test]
fn a_thousand_idle_connections_do_not_starve_a_real_client() {
    let d = TestDaemon::start(Some("[daemon]\nrequest_timeout_ms = 1000\nmax_connections_per_uid = 64\n"));
    open_dir_to_all(&d);
    let mut idle = Command::new(binary("idle-conns"));
    idle.arg(&d.socket).arg("1000").uid(NOBODY).gid(NOBODY).stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = idle.spawn().unwrap();
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let _reap = Reap(child);
    let first = lines.next().expect("idle-conns reports").unwrap();
    // While nobody's connections are open, root's client is served.
    ok(&d, &["pub", "real", "hello"]);
    assert!(ok(&d, &["topics"]).contains("real"));
    let refused: usize = first.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(refused >= 1000 - 64, "the per-uid connection limit did not apply: {first}; log:\n{}", d.log());
    // Idle connections that never complete a request are closed after the request timeout.
    let last = lines.next().expect("idle-conns reports again").unwrap();
    assert_eq!(last, "all closed");
    // And nobody can connect again afterwards.
    let out = as_nobody(&d, &["topics"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(strip_ansi(&d.log()).contains("max_connections_per_uid = 64"));
}

/// A group whose opening request is refused after the group opened (here: its uid's lease quota filled while the
/// opening was parked) does not stay open without members: the upkeep closes it (found by the control fuzz).
#[test]
fn a_group_whose_opener_was_refused_afterwards_is_closed() {
    if !shmbus_tests::hostile::root_or_skip("a_group_whose_opener_was_refused_afterwards_is_closed") {
        return;
    }
    let park = std::env::temp_dir().join(format!("shmbus-park-g-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&park);
    std::fs::create_dir_all(&park).unwrap();
    let cfg = "[daemon]\nmax_leases_per_uid = 1\n\n[defaults]\npublish = [\"uid:0\"]\nsubscribe = [\"*\"]\n";
    let d = TestDaemon::start_with_env(Some(cfg), &[("SHMBUSD_TEST_PARK_DIR", park.to_str().unwrap())]);
    open_dir_to_all(&d);
    let bus = d.bus();
    let _p = bus.publisher("t").unwrap();
    std::fs::write(park.join("park-group"), b"").unwrap();
    let raw = |args: &[&str]| {
        let mut c = Command::new(binary("raw-client"));
        c.arg(&d.socket).arg("g").args(args).uid(NOBODY).gid(NOBODY);
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        shmbus_tests::kid::Kid::watch("raw-client", c.spawn().unwrap())
    };
    let mut opener = raw(&["group", "t", "workers"]);
    wait_parked(&d, &park, "group");
    // Meanwhile the same uid takes its one lease.
    let mut other = raw(&["typed", "t", "Anything"]);
    assert_eq!(other.line(""), "granted");
    std::fs::write(park.join("release-group"), b"").unwrap();
    let said = opener.line("");
    assert!(said.starts_with("refused ResourceExhausted"), "{said}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !bus.stats(Some("t")).unwrap()[0].groups.is_empty() {
        assert!(Instant::now() < deadline, "a group without members stayed open; log:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(d.log().contains("closed consumer group"), "{}", d.log());
    drop((opener, other));
    let _ = std::fs::remove_dir_all(&park);
}

/// The on-demand quota survives a daemon restart: the topics a uid created before it come back adopted and still
/// count against `max_auto_topics_per_uid`.
#[test]
fn the_on_demand_quota_counts_topics_from_before_a_restart() {
    let mut d = TestDaemon::start(Some("[daemon]\nmax_auto_topics_per_uid = 1\n"));
    d.keep_topics_on_stop();
    open_dir_to_all(&d);
    let out = as_nobody(&d, &["pub", "n1", "x"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let over = |d: &TestDaemon| {
        let out = as_nobody(d, &["pub", "n2", "x"]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success() && err.contains("max_auto_topics_per_uid = 1"), "{err}\n{}", d.log());
    };
    over(&d);
    // The charge is written by the upkeep (every 500 ms); then a restart adopts n1 and still charges it.
    d.eventually("the charge was not written", || {
        std::fs::read_to_string(bus_daemon::remembered::path(&d.prefix)).is_ok_and(|t| t.contains("n1\t65534"))
    });
    // Killed (a stop would clean up: the fixture runs it with --cleanup-on-exit), then started again.
    d.stop_with(libc::SIGKILL);
    d.spawn();
    assert!(d.log().contains("adopted existing topic"), "{}", d.log());
    over(&d);
}
