//! End to end: a real `shmbusd` (its own socket and shm prefix per test), driven through the library and through
//! the `shmbus` CLI.

use bus_client::{Bus, OpenError, RecvError, SendError, TopicSpec};
use shmbus_tests::daemon::TestDaemon;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A daemon with the default configuration and a client connected to it.
fn start() -> (TestDaemon, Bus) {
    let d = TestDaemon::start(None);
    let bus = d.bus();
    (d, bus)
}

fn checksum(s: &str) -> u32 {
    s.bytes().fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619))
}

/// Waits until the topic has `n` subscribers (a CLI subscriber attached), bounded.
fn wait_subscribers(d: &TestDaemon, topic: &str, n: usize) {
    let bus = d.bus();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(st) = bus.stats(Some(topic)) {
            if st[0].subscribers.len() >= n {
                return;
            }
        }
        assert!(Instant::now() < deadline, "subscribers did not attach; daemon log:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills the child on drop (a failing test must not leave processes behind).
struct Reap(std::process::Child);
impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn cli_pipe_to_pipe_100k_with_checksums() {
    let d = TestDaemon::start(None);
    let n = 100_000;
    let out = d.path("received.txt");
    let sub = d
        .cli()
        .args(["sub", "pipes", "--count", &n.to_string(), "--timeout", "60s"])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut sub = Reap(sub);
    wait_subscribers(&d, "pipes", 1);
    let mut publisher = d.cli().args(["pub", "pipes"]).stdin(Stdio::piped()).spawn().unwrap();
    {
        let mut stdin = std::io::BufWriter::new(publisher.stdin.take().unwrap());
        for i in 0..n {
            let body = format!("message-{i}-{}", "x".repeat(i % 200));
            writeln!(stdin, "{body} {}", checksum(&body)).unwrap();
        }
    }
    assert!(publisher.wait().unwrap().success());
    assert!(sub.0.wait().unwrap().success(), "subscriber failed; daemon log:\n{}", d.log());
    let lines: Vec<String> = BufReader::new(std::fs::File::open(&out).unwrap()).lines().map(|l| l.unwrap()).collect();
    assert_eq!(lines.len(), n);
    for (i, line) in lines.iter().enumerate() {
        let (body, sum) = line.rsplit_once(' ').expect("body and checksum");
        assert_eq!(sum.parse::<u32>().unwrap(), checksum(body), "line {i} corrupted");
        assert!(body.starts_with(&format!("message-{i}-")), "line {i} out of order: {body}");
    }
}

#[test]
fn fan_out_to_three_subscribers() {
    let (_d, bus) = start();
    let mut subs: Vec<_> = (0..3).map(|_| bus.subscriber("fan").unwrap()).collect();
    let mut p = bus.publisher("fan").unwrap();
    let n = 5000u32;
    let h = std::thread::spawn(move || {
        for i in 0..n {
            p.send(&i.to_le_bytes()).unwrap();
        }
    });
    // Lossless subscribers all gate the publisher: read them in step.
    for i in 0..n {
        for s in subs.iter_mut() {
            let m = s.recv_timeout(Duration::from_secs(30)).unwrap();
            assert_eq!(m.payload(), &i.to_le_bytes());
        }
    }
    h.join().unwrap();
}

#[test]
fn consumer_group_of_two_shares_the_work() {
    let (_d, bus) = start();
    let mut a = bus.subscriber_builder("work").group("workers").open().unwrap();
    let mut b = bus.subscriber_builder("work").group("workers").open().unwrap();
    let mut p = bus.publisher("work").unwrap();
    let n = 2000u32;
    // The share is certain for the first two messages: each goes to the only member asking for one.
    p.send(&0u32.to_le_bytes()).unwrap();
    assert_eq!(a.recv_timeout(Duration::from_secs(30)).unwrap().payload(), &0u32.to_le_bytes());
    p.send(&1u32.to_le_bytes()).unwrap();
    assert_eq!(b.recv_timeout(Duration::from_secs(30)).unwrap().payload(), &1u32.to_le_bytes());
    let (tx, rx) = std::sync::mpsc::channel();
    let mut got = vec![(0, 0), (1, 1)];
    let tx2 = tx.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (s1, s2) = (stop.clone(), stop.clone());
    let ha = std::thread::spawn(move || {
        while !s1.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(m) = a.recv_timeout(Duration::from_millis(50)) {
                tx.send((0, u32::from_le_bytes(m.payload().try_into().unwrap()))).unwrap();
            }
        }
    });
    let hb = std::thread::spawn(move || {
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(m) = b.recv_timeout(Duration::from_millis(50)) {
                tx2.send((1, u32::from_le_bytes(m.payload().try_into().unwrap()))).unwrap();
            }
        }
    });
    for i in 2..n {
        p.send(&i.to_le_bytes()).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < n as usize && Instant::now() < deadline {
        if let Ok(x) = rx.recv_timeout(Duration::from_millis(100)) {
            got.push(x);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    ha.join().unwrap();
    hb.join().unwrap();
    while let Ok(x) = rx.try_recv() {
        got.push(x);
    }
    let mut values: Vec<u32> = got.iter().map(|x| x.1).collect();
    values.sort();
    assert_eq!(values, (0..n).collect::<Vec<_>>(), "every message exactly once across the group");
    let per_member = [got.iter().filter(|x| x.0 == 0).count(), got.iter().filter(|x| x.0 == 1).count()];
    assert!(per_member[0] >= 1 && per_member[1] >= 1, "both members took messages: {per_member:?}");
    println!("consumer_group_of_two_shares_the_work: {per_member:?} messages per member");
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Order {
    id: u64,
    item: String,
    qty: u32,
}

#[test]
fn typed_messages_and_type_mismatch() {
    let (_d, bus) = start();
    let mut s = bus.typed_subscriber::<Order>("orders").unwrap();
    let mut p = bus.typed_publisher::<Order>("orders").unwrap();
    let o = Order { id: 7, item: "widget".into(), qty: 3 };
    p.send(&o).unwrap();
    assert_eq!(s.recv_timeout(Duration::from_secs(10)).unwrap(), o);
    match bus.typed_publisher::<String>("orders") {
        Err(OpenError::TypeMismatch { .. }) => {}
        other => panic!("expected a type mismatch, got {other:?}"),
    }
}

#[test]
fn too_large_is_refused() {
    let (d, bus) = start();
    bus.create_topic("small", TopicSpec { max_message: Some(100), ..Default::default() }).unwrap();
    let mut p = bus.publisher("small").unwrap();
    match p.try_send(&[0u8; 101]) {
        Err(SendError::TooLarge { len: 101, max: 100 }) => {}
        other => panic!("expected TooLarge, got {other:?}"),
    }
    p.try_send(&[0u8; 100]).unwrap();
    let out = d.cli().args(["pub", "small", &"y".repeat(200)]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exceeds"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn unknown_topic_when_auto_create_is_off() {
    let d = TestDaemon::start(Some("[daemon]\nauto_create = false\n\n[[topic]]\nname = \"known\"\n"));
    let bus = d.bus();
    assert!(bus.publisher("known").is_ok());
    match bus.publisher("unknown") {
        Err(OpenError::NoSuchTopic { .. }) => {}
        other => panic!("expected NoSuchTopic, got {other:?}"),
    }
    let out = d.cli().args(["sub", "unknown", "--count", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty());
}

#[test]
fn client_of_another_uid_is_refused() {
    let d = TestDaemon::start(Some("[defaults]\npublish = [\"uid:0\"]\nsubscribe = [\"uid:0\"]\n"));
    // The CLI as `nobody`: it may connect (socket mode 0666) but the topic policy refuses it.
    let dirs = [d.dir.clone()];
    for dir in &dirs {
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    for args in [vec!["pub", "secret", "hi"], vec!["sub", "secret", "--count", "1", "--timeout", "2s"]] {
        let out = d.cli().args(&args).uid(65534).gid(65534).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {err}");
        assert!(err.contains("permission"), "{args:?}: {err}");
    }
    // Root (the test) is admitted, and nobody cannot open the objects directly either.
    let bus = d.bus();
    bus.publisher("secret").unwrap();
    let data = format!("/dev/shm/{}.secret.data", d.prefix);
    let meta = std::fs::metadata(&data).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600);
    let probe = Command::new("cat")
        .arg(&data)
        .uid(65534)
        .gid(65534)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!probe.success(), "nobody could read the data object");
}

#[test]
fn daemon_restart_mid_stream_loses_nothing() {
    let mut d = TestDaemon::start(None);
    d.keep_topics_on_stop();
    let bus = d.bus();
    let mut s = bus.subscriber("stream").unwrap();
    let mut p = bus.publisher("stream").unwrap();
    let n = 20_000u32;
    let producer = std::thread::spawn(move || {
        for i in 0..n {
            p.send(&i.to_le_bytes()).unwrap();
            if i % 1000 == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        p
    });
    let mut next = 0u32;
    let mut restarted = false;
    while next < n {
        let m = s.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|e| panic!("at {next}: {e}\n{}", d.log()));
        assert_eq!(m.payload(), &next.to_le_bytes());
        drop(m);
        next += 1;
        if next == n / 3 && !restarted {
            d.stop_with(libc::SIGKILL);
            d.spawn();
            restarted = true;
        }
    }
    let p = producer.join().unwrap();
    // The handles re-registered their leases with the new daemon.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = bus.stats(Some("stream")).unwrap();
        if st[0].subscribers.iter().any(|x| x.pid.is_some()) && st[0].publishers.iter().any(|x| x.pid.is_some()) {
            break;
        }
        assert!(Instant::now() < deadline, "leases not re-registered: {st:?}\n{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(p);
    drop(s);
}

#[test]
fn killed_subscriber_stops_gating() {
    let (d, bus) = start();
    bus.create_topic("gate", TopicSpec { capacity: Some(8), ..Default::default() }).unwrap();
    let sub = d.cli().args(["sub", "gate"]).stdout(Stdio::null()).spawn().unwrap();
    let mut sub = Reap(sub);
    wait_subscribers(&d, "gate", 1);
    // Stop the subscriber from reading (SIGSTOP), fill the ring, then kill it.
    // SAFETY: signals to our own child.
    unsafe { libc::kill(sub.0.id() as i32, libc::SIGSTOP) };
    let mut p = bus.publisher("gate").unwrap();
    let mut sent = 0;
    while p.try_send(b"fill").is_ok() {
        sent += 1;
        assert!(sent <= 64, "a lossless subscriber should hold the publisher back");
    }
    assert!(matches!(p.try_send(b"x"), Err(SendError::Full)));
    // SAFETY: as above.
    unsafe { libc::kill(sub.0.id() as i32, libc::SIGKILL) };
    let _ = sub.0.wait();
    let killed = Instant::now();
    // The promise is "within a second" (measured by the fault suite); a loaded CI machine must not fail the test
    // for being slow, so the bound here is ten times that, and the time taken is printed.
    while p.try_send(b"after").is_err() {
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "the dead subscriber still gates after {:?}\n{}",
            killed.elapsed(),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("killed_subscriber_stops_gating: the dead subscriber stopped gating after {:?}", killed.elapsed());
}

#[test]
fn cleanup_on_exit_leaves_nothing_in_dev_shm() {
    let mut d = TestDaemon::start(Some("[[topic]]\nname = \"declared\"\n"));
    let bus = d.bus();
    let _p = bus.publisher("auto").unwrap();
    assert!(!d.leftovers().is_empty());
    drop(_p);
    drop(bus);
    d.stop_with(libc::SIGTERM);
    assert_eq!(d.leftovers(), Vec::<String>::new());
    assert!(!d.socket.exists(), "socket removed on stop");
}

#[test]
fn delete_topic_closes_attached_clients() {
    let (d, bus) = start();
    let mut s = bus.subscriber("doomed").unwrap();
    let mut p = bus.publisher("doomed").unwrap();
    p.send(b"last").unwrap();
    let out = d.cli().args(["delete", "doomed"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(s.recv_timeout(Duration::from_secs(5)).unwrap().payload(), b"last");
    assert!(matches!(s.recv_timeout(Duration::from_secs(5)), Err(RecvError::Closed)));
    assert!(matches!(p.send(b"x"), Err(SendError::Closed)));
    assert!(d.leftovers().is_empty(), "{:?}", d.leftovers());
}

#[test]
fn malformed_frames_close_only_that_connection() {
    let (d, bus) = start();
    let mut p = bus.publisher("robust").unwrap();
    for junk in [vec![0xffu8; 4], vec![1, 0, 0, 0, 0xee], b"GET / HTTP/1.0\r\n\r\n".to_vec()] {
        let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(&junk);
        let mut buf = [0u8; 64];
        let _ = std::io::Read::read(&mut s, &mut buf);
    }
    p.send(b"still fine").unwrap();
    assert_eq!(bus.topics().unwrap().len(), 1);
}

#[test]
fn cli_admin_commands() {
    let d = TestDaemon::start(None);
    let ok = |args: &[&str]| {
        let out = d.cli().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    ok(&["create", "adm", "--capacity", "64", "--max-message", "4096"]);
    assert!(ok(&["topics"]).contains("adm"));
    let json: serde_json::Value = serde_json::from_str(&ok(&["topics", "--json"])).unwrap();
    assert_eq!(json[0]["geometry"]["capacity"], 64);
    ok(&["pub", "adm", "a", "b"]);
    let stats: serde_json::Value = serde_json::from_str(&ok(&["stats", "adm", "--json"])).unwrap();
    assert_eq!(stats[0]["publishers"][0]["published"], 2);
    ok(&["delete", "adm"]);
    assert!(!ok(&["topics"]).contains("adm"));
    let out = d.cli().args(["pub"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(shmbus_tests::daemon::binary("it-shmbus"))
        .args(["topics"])
        .env("SHMBUS_SOCKET", "/nonexistent/x.sock")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    // The message says why (the OS reason, once) and what to do.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("daemon unavailable at /nonexistent/x.sock: "), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert!(err.contains("start it, or set SHMBUS_SOCKET"), "{err}");
}

#[test]
fn slow_lossless_subscriber_is_demoted() {
    let d = TestDaemon::start(Some("[[topic]]\nname = \"slow\"\ncapacity = 8\nslow_consumer_ms = 200\n"));
    let bus = d.bus();
    let mut s = bus.subscriber("slow").unwrap();
    let mut p = bus.publisher("slow").unwrap();
    for i in 0..8u8 {
        p.try_send(&[i]).unwrap();
    }
    assert!(matches!(p.try_send(&[8]), Err(SendError::Full)));
    // The subscriber does not read: after the bound the daemon demotes it and the publisher may go on.
    for i in 8..40u8 {
        p.send_timeout(&[i], Duration::from_secs(20)).unwrap_or_else(|e| panic!("{e}\n{}", d.log()));
    }
    assert!(matches!(s.try_recv(), Err(RecvError::Demoted)));
    assert!(!s.is_lossless());
    let mut lagged = 0;
    let mut got = vec![];
    loop {
        match s.try_recv() {
            Ok(m) => got.push(m.payload()[0]),
            Err(RecvError::Lagged(n)) => lagged += n,
            Err(RecvError::Empty) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got.len() as u64 + lagged, 40, "every message received or counted: {got:?}");
    assert_eq!(bus.stats(Some("slow")).unwrap()[0].demotions, 1);
}

#[test]
fn invalid_objects_are_refused_and_kept() {
    let prefix_probe = TestDaemon::start(None);
    let prefix = prefix_probe.prefix.clone();
    drop(prefix_probe);
    // Garbage under a daemon's prefix: it must log, keep the objects and serve everything else.
    let garbage = format!("/dev/shm/{prefix}.junk.data");
    let garbage2 = format!("/dev/shm/{prefix}.junk.readers");
    std::fs::write(&garbage, vec![0xa5u8; 8192]).unwrap();
    std::fs::write(&garbage2, vec![0u8; 100]).unwrap();
    struct Rm(Vec<String>);
    impl Drop for Rm {
        fn drop(&mut self) {
            for f in &self.0 {
                let _ = std::fs::remove_file(f);
            }
        }
    }
    let _rm = Rm(vec![garbage.clone(), garbage2.clone()]);
    let d = TestDaemon::start_with_prefix(&prefix, None);
    assert!(d.log().contains("refusing to adopt"), "{}", d.log());
    assert!(std::path::Path::new(&garbage).exists(), "invalid objects are kept unless told otherwise");
    let bus = d.bus();
    let mut p = bus.publisher("fine").unwrap();
    p.send(b"ok").unwrap();
    assert!(bus.publisher("junk").is_err(), "a topic whose objects are invalid cannot be opened");
}

#[test]
fn prometheus_metrics_on_loopback() {
    // Port 0: the kernel picks a free port and the daemon logs it. (Probing for a free port and handing it over
    // would race with anything else binding ports meanwhile.)
    let d = TestDaemon::start(Some("[daemon]\nmetrics = \"127.0.0.1:0\"\n"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let port: u16 = loop {
        let log = d.log();
        let bound = log.lines().find(|l| l.contains("serving Prometheus metrics")).and_then(|l| {
            let at = l.find("127.0.0.1:")? + "127.0.0.1:".len();
            l[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
        });
        if let Some(p) = bound {
            break p;
        }
        assert!(Instant::now() < deadline, "the daemon never said where it serves metrics; log:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_ne!(port, 0, "the bound port, not the configured one");
    let bus = d.bus();
    let mut p = bus.publisher("metered").unwrap();
    p.send(b"one").unwrap();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    std::io::Read::read_to_string(&mut s, &mut body).unwrap();
    assert!(body.starts_with("HTTP/1.0 200"), "{body}");
    assert!(body.contains("shmbus_publisher_messages_published_total{topic=\"metered\",slot=\"0\"} 1"), "{body}");
}

#[test]
fn publisher_slots_are_limited_freed_on_drop_and_taken_one_per_thread() {
    let d = TestDaemon::start(Some("[[topic]]\nname = \"slots\"\nmax_publishers = 2\n"));
    let bus = d.bus();
    let mut s = bus.subscriber("slots").unwrap();
    // One publisher per thread, as the Bus::publisher docs say: each takes a slot.
    let threads: Vec<_> = (0..2u8)
        .map(|i| {
            let bus = bus.clone();
            std::thread::spawn(move || {
                let mut p = bus.publisher("slots").unwrap();
                p.send(&[i]).unwrap();
                p
            })
        })
        .collect();
    let held: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(matches!(bus.publisher("slots"), Err(OpenError::NoFreeSlot(_))), "both slots are held");
    let mut got: Vec<u8> = (0..2).map(|_| s.recv_timeout(Duration::from_secs(10)).unwrap().payload()[0]).collect();
    got.sort();
    assert_eq!(got, [0, 1], "one total order across the threads' publishers");
    drop(held);
    let mut p = bus.publisher("slots").expect("dropping a publisher frees its slot");
    p.send(b"again").unwrap();
    assert_eq!(s.recv_timeout(Duration::from_secs(10)).unwrap().payload(), b"again");
}
