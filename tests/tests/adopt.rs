//! Issue 16, items 1, 4 and 8, as a second user (`nobody`) would try them against a root daemon: objects planted
//! under the daemon's prefix are not adopted and never stop it; a forged group index in shared memory neither
//! panics the daemon nor leaks leases; lease descriptors are the daemon's objects even when their names were
//! replaced. Item 2 (the socket's mode) is a unit test in `bus-daemon/src/socket.rs`.
//! Tests that need `nobody` are skipped, with a printed message, when not run as root.

use shmbus_proto::names;
use shmbus_ring::Geometry;
use shmbus_shm::{Modes, Segment};
use shmbus_tests::daemon::{binary, sweep, TestDaemon};
use shmbus_tests::hostile::{root_or_skip, NOBODY};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A prefix no other test uses, swept on drop (also when the test fails) of what a daemon did not clean.
struct Prefix(String);

impl Prefix {
    fn new(tag: &str) -> Prefix {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = Prefix(format!("ad{}x{}{tag}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        sweep(&p.0);
        p
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        sweep(&self.0);
    }
}

fn shm_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm{name}"))
}

/// Hands a file to `nobody`, as if nobody had made it.
fn give_to_nobody(p: &PathBuf, mode: u32) {
    std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Valid objects for `topic` (a forged header is as easy), made here and left behind under the prefix.
fn valid_objects(prefix: &str, topic: &str) {
    let geo = Geometry::new(64, 1024, 64 << 10, 2, 4, 2);
    let seg = Segment::create(prefix, topic, &geo, 7, Modes::default()).unwrap();
    drop(seg);
}

#[test]
fn objects_planted_by_nobody_are_refused_and_never_stop_the_daemon() {
    if !root_or_skip("objects_planted_by_nobody_are_refused_and_never_stop_the_daemon") {
        return;
    }
    let p = Prefix::new("plant");
    // 1. nobody's objects with a valid header, for a declared root-only topic.
    valid_objects(&p.0, "secret");
    for n in [names::data_object(&p.0, "secret"), names::readers_object(&p.0, "secret")] {
        give_to_nobody(&shm_path(&n), 0o666);
    }
    // 2. Root's own objects, but with a mode other than the daemon's (0600).
    valid_objects(&p.0, "loose");
    std::fs::set_permissions(shm_path(&names::data_object(&p.0, "loose")), std::fs::Permissions::from_mode(0o644))
        .unwrap();
    // 3. Big sparse objects with garbage: refused without their pages being touched.
    for n in [names::data_object(&p.0, "big"), names::readers_object(&p.0, "big")] {
        let f = std::fs::File::create(shm_path(&n)).unwrap();
        f.set_len(64 << 20).unwrap();
        give_to_nobody(&shm_path(&n), 0o600);
    }
    // 4. An empty file where a declared topic's semaphore of subscriber slot 31 went before layout 2 (wake-ups are
    //    futex words in the readers object now: such a file must neither be used nor matter).
    let s31 = PathBuf::from(format!("/dev/shm/sem.{}.orders.s31", p.0));
    std::fs::File::create(&s31).unwrap();
    give_to_nobody(&s31, 0o666);

    let cfg = "[defaults]\npublish = [\"uid:0\"]\nsubscribe = [\"uid:0\"]\n\n[[topic]]\nname = \"secret\"\n\n\
               [[topic]]\nname = \"orders\"\n";
    let d = TestDaemon::start_with_prefix(&p.0, Some(cfg));
    let log = d.log();
    assert!(d.alive(), "{log}");
    assert!(!log.lines().any(|l| l.contains("adopted existing topic")), "adopted a planted object:\n{log}");
    assert!(log.contains("owned by uid 65534"), "the refusal says why:\n{log}");
    assert!(log.contains("mode 0o644"), "the refusal says why:\n{log}");
    for n in [names::data_object(&p.0, "big"), names::readers_object(&p.0, "big")] {
        let blocks = std::fs::metadata(shm_path(&n)).unwrap().blocks();
        assert!(blocks * 512 < 1 << 20, "{n}: {blocks} blocks allocated by a refused adoption");
    }
    // The declared topic whose old semaphore name was taken works: its wake-ups need no file.
    let bus = d.bus();
    let mut sub = bus.subscriber("orders").unwrap();
    let mut publ = bus.publisher("orders").unwrap();
    publ.send(b"hello").unwrap();
    assert_eq!(sub.recv_timeout(Duration::from_secs(10)).unwrap().payload(), b"hello");
    let mut blocking = bus.subscriber_builder("orders").idle(bus_client::IdleStrategy::Blocking).open().unwrap();
    publ.send(b"woken").unwrap();
    assert_eq!(blocking.recv_timeout(Duration::from_secs(10)).unwrap().payload(), b"woken");
    assert_eq!(std::fs::metadata(&s31).unwrap().uid(), NOBODY, "the daemon neither replaced nor adopted the file");
    // The topic nobody planted is not served from nobody's objects: it stays unavailable, and the log says why.
    assert!(bus.publisher("secret").is_err(), "{log}");
    assert!(log.contains("skipping declared topic"), "{log}");
}

/// A daemon (unless `test` must be skipped: not root) with the declared topic `orders`, published by root and
/// subscribed by `subscribe`.
fn orders_daemon(test: &str, subscribe: &str) -> Option<TestDaemon> {
    if !root_or_skip(test) {
        return None;
    }
    let cfg =
        format!("[defaults]\npublish = [\"uid:0\"]\nsubscribe = [\"{subscribe}\"]\n\n[[topic]]\nname = \"orders\"\n");
    Some(TestDaemon::start(Some(&cfg)))
}

#[test]
fn a_forged_group_index_neither_panics_the_daemon_nor_leaks_leases() {
    let Some(d) = orders_daemon("a_forged_group_index_neither_panics_the_daemon_nor_leaks_leases", "*") else {
        return;
    };
    std::fs::set_permissions(&d.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut c = Command::new(binary("intruder"));
    c.args(["group-resume", d.socket.to_str().unwrap(), &d.prefix, "orders"]).uid(NOBODY).gid(NOBODY);
    let out = c.output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("lossy: Some(true)"), "{said}");
    let bus = d.bus();
    // Every lease of the intruder's two connections is released once it is gone (bounded wait, not a speed test).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let t = bus.topics().unwrap().into_iter().find(|t| t.name == "orders").unwrap();
        if t.subscribers == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} subscriber leases left after the intruder exited:\n{}",
            t.subscribers,
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(d.alive());
    bus.stats(Some("orders")).unwrap();
    let log = d.log();
    assert!(!log.contains("panicked"), "the daemon's handler panicked:\n{log}");
    assert!(said.contains("resume answered: true"), "{said}\n{log}");
}

#[test]
fn a_publisher_lease_is_the_daemons_object_even_when_its_names_were_replaced() {
    let Some(d) = orders_daemon("a_publisher_lease_is_the_daemons_object_even_when_its_names_were_replaced", "uid:0")
    else {
        return;
    };
    let bus = d.bus();
    let mut sub = bus.subscriber("orders").unwrap();
    // The names go (as logind's RemoveIPC does) and nobody plants copies, valid headers and all.
    let mut planted = Vec::new();
    for n in [names::data_object(&d.prefix, "orders"), names::readers_object(&d.prefix, "orders")] {
        let path = shm_path(&n);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        give_to_nobody(&path, 0o666);
        planted.push((path, bytes));
    }
    let mut publ = bus.publisher("orders").expect("a publisher lease after the names were replaced");
    publ.send(b"for root only").unwrap();
    assert_eq!(sub.recv_timeout(Duration::from_secs(10)).unwrap().payload(), b"for root only");
    for (path, bytes) in &planted {
        assert!(std::fs::read(path).unwrap() == *bytes, "{} (nobody's copy) was written to", path.display());
    }
}
