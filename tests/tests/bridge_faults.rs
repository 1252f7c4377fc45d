//! The bridge's faults of issue 12 that the two-bus tests in `bridge.rs` do not cover: a remote bridge that hangs
//! (SIGSTOP) or dies (SIGKILL) never holds the local bus back for good, and both daemons restarting under
//! running bridges are survived like by any client, without a lost message.

use bus_client::{Bus, IdleStrategy, Subscriber};
use shmbus_tests::bridge::{create, free_port, wait_linked, TestBridge};
use shmbus_tests::daemon::TestDaemon;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bound on any one send or receive (a hang guard, not a speed assertion).
const WAIT: Duration = Duration::from_secs(30);
/// Message size: large enough that a burst overflows the socket buffers of a hung peer.
const SIZE: usize = 480;

fn message(i: u64) -> Vec<u8> {
    let mut m = vec![(i % 251) as u8; SIZE];
    m[..8].copy_from_slice(&i.to_le_bytes());
    m
}

fn index(m: &[u8]) -> u64 {
    u64::from_le_bytes(m[..8].try_into().expect("8-byte index"))
}

/// Publishes `n` messages from `first` on `topic` of `bus`, each send bounded by WAIT; returns the longest send.
fn burst(bus: &Bus, topic: &str, first: u64, n: u64) -> JoinHandle<Duration> {
    let (bus, topic) = (bus.clone(), topic.to_string());
    std::thread::spawn(move || {
        let mut p = bus.publisher_builder(&topic).idle(IdleStrategy::Adaptive).open().expect("publisher");
        let mut longest = Duration::ZERO;
        for i in first..first + n {
            let t = Instant::now();
            p.send_timeout(&message(i), WAIT).unwrap_or_else(|e| panic!("send {i} held back: {e}"));
            longest = longest.max(t.elapsed());
        }
        longest
    })
}

/// Receives `n` messages in order from `first`, byte-exact.
fn expect_run(sub: &mut Subscriber, first: u64, n: u64) {
    for i in first..first + n {
        let m = sub.recv_timeout(WAIT).unwrap_or_else(|e| panic!("local message {i}: {e}"));
        assert_eq!(index(m.payload()), i, "out of order");
        assert_eq!(m.payload(), &message(i)[..], "message {i} differs");
    }
}

#[test]
fn a_remote_bridge_hung_or_killed_never_holds_the_local_bus() {
    let (a, b) = (TestDaemon::start(None), TestDaemon::start(None));
    let (bus_a, bus_b) = (a.bus(), b.bus());
    for bus in [&bus_a, &bus_b] {
        create(bus, "feed", 64);
        create(bus, "feed-warm", 16);
    }
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let mut ba = TestBridge::start("a", &a, &["--export", "feed*", "--listen", &ep]);
    let mut bb = TestBridge::start("b", &b, &["--import", "feed*", "--connect", &ep]);
    wait_linked(&bus_a, &bus_b, "feed-warm");
    let mut local = bus_a.subscriber("feed").expect("local lossless subscriber on A");

    // Hung: B stops reading, so A's lossless export blocks in Zenoh; the local bus must get past it (Zenoh
    // closes the stuck link, or the daemon demotes the stalled export), never wait for good.
    const N: u64 = 20_000;
    bb.signal(libc::SIGSTOP);
    let p = burst(&bus_a, "feed", 0, N);
    expect_run(&mut local, 0, N);
    let longest_hung = p.join().expect("publisher thread");
    bb.signal(libc::SIGCONT);

    // Killed: the link drops at once; nothing on A may notice beyond the export's counters.
    bb.kill();
    let p = burst(&bus_a, "feed", N, N);
    expect_run(&mut local, N, N);
    let longest_dead = p.join().expect("publisher thread");
    println!("longest local send: {longest_hung:?} with B hung, {longest_dead:?} with B dead");
    assert!(ba.alive(), "A's bridge must survive its remote; log:\n{}", ba.log());
    assert!(a.alive() && b.alive(), "neither daemon may be affected");

    // B back: the stream reaches B again without restarting A's bridge.
    bb.spawn();
    wait_linked(&bus_a, &bus_b, "feed-warm");
    let mut remote = bus_b.subscriber("feed").expect("subscribe on B");
    let deadline = Instant::now() + WAIT;
    let mut p = bus_a.publisher("feed").expect("publisher");
    loop {
        p.send_timeout(&message(2 * N), WAIT).expect("send");
        local.recv_timeout(WAIT).expect("local copy");
        if remote.recv_timeout(Duration::from_millis(50)).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the restarted remote never received the stream; log:\n{}", bb.log());
    }
}

#[test]
fn both_daemons_restarting_under_running_bridges_lose_nothing() {
    let (mut a, mut b) = (TestDaemon::start(None), TestDaemon::start(None));
    a.keep_topics_on_stop();
    b.keep_topics_on_stop();
    let (bus_a, bus_b) = (a.bus(), b.bus());
    for bus in [&bus_a, &bus_b] {
        create(bus, "orders", 1024);
        create(bus, "orders-warm", 16);
    }
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let mut ba = TestBridge::start("a", &a, &["--export", "orders*", "--listen", &ep]);
    let mut bb = TestBridge::start("b", &b, &["--import", "orders*", "--connect", &ep]);
    let mut sub = bus_b.subscriber("orders").expect("subscribe on B");
    wait_linked(&bus_a, &bus_b, "orders-warm");

    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (bus_a, stop) = (bus_a.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut p = bus_a.publisher("orders").expect("publish on A");
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                p.send_timeout(&message(i), WAIT).unwrap_or_else(|e| panic!("send {i} across a daemon restart: {e}"));
                i += 1;
                std::thread::sleep(Duration::from_micros(500));
            }
            i
        })
    };
    let mut next = 0u64;
    let recv = |sub: &mut Subscriber, next: &mut u64, n: u64| {
        expect_run(sub, *next, n);
        *next += n;
    };
    recv(&mut sub, &mut next, 200);
    for (name, d) in [("A", &mut a), ("B", &mut b)] {
        d.stop_with(libc::SIGKILL);
        std::thread::sleep(Duration::from_millis(200));
        d.spawn();
        recv(&mut sub, &mut next, 500);
        println!("daemon {name} restarted; B has received {next} messages in order");
    }
    stop.store(true, Ordering::Relaxed);
    let published = publisher.join().expect("publisher thread");
    let rest = published - next;
    recv(&mut sub, &mut next, rest);
    assert!(sub.recv_timeout(Duration::from_millis(300)).is_err(), "a message too many arrived");
    assert_eq!(bb.counter("gaps"), 0, "the restarts lost messages; log:\n{}", bb.log());
    assert!(ba.alive() && bb.alive(), "neither bridge may exit; logs:\n{}\n{}", ba.log(), bb.log());
}
