//! Two buses on one machine stand for two hosts: two private daemons (own sockets and shm prefixes), two
//! bridges over Zenoh on the loopback (one listening on a free port, one connecting, scouting off), and the
//! checks of issue 12: a lossless stream arrives byte-exact and in order, a topic bridged both ways does not
//! echo, an exporter SIGKILLed and restarted mid-stream leaves a counted and logged gap, and a typed topic
//! refuses a stream of another payload type.

use bus_client::{Bus, IdleStrategy};
use shmbus_tests::bridge::{create, free_port, reported, reported_counter, wait_linked, TestBridge};
use shmbus_tests::daemon::TestDaemon;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bound on any one test's wait for a message (a hang guard, not a speed assertion).
const WAIT: Duration = Duration::from_secs(30);

/// Message `i` of the lossless stream: its index, then a length and content that vary with it.
fn message(i: u64) -> Vec<u8> {
    let mut m = i.to_le_bytes().to_vec();
    let extra = (i.wrapping_mul(2_654_435_761) % 200) as usize;
    m.extend((0..extra).map(|k| (i as usize + k) as u8));
    m
}

#[test]
fn a_hundred_thousand_messages_arrive_byte_exact_and_in_order() {
    let (a, b) = (TestDaemon::start(None), TestDaemon::start(None));
    let (bus_a, bus_b) = (a.bus(), b.bus());
    for bus in [&bus_a, &bus_b] {
        create(bus, "stream", 1024);
        create(bus, "stream-warm", 16);
    }
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let mut ba = TestBridge::start("a", &a, &["--export", "stream*", "--listen", &ep]);
    let mut bb = TestBridge::start("b", &b, &["--import", "stream*", "--connect", &ep]);
    let mut sub = bus_b.subscriber("stream").expect("subscribe on B");
    wait_linked(&bus_a, &bus_b, "stream-warm");

    const N: u64 = 100_000;
    let publisher = {
        let bus_a = bus_a.clone();
        std::thread::spawn(move || {
            let mut p = bus_a.publisher_builder("stream").idle(IdleStrategy::Blocking).open().expect("publish on A");
            for i in 0..N {
                p.send_timeout(&message(i), WAIT).expect("send (the bridge holds the topic back at most briefly)");
            }
        })
    };
    for i in 0..N {
        let m = sub.recv_timeout(WAIT).unwrap_or_else(|e| panic!("message {i}: {e}; B's bridge log:\n{}", bb.log()));
        assert_eq!(m.payload(), &message(i)[..], "message {i} differs");
    }
    publisher.join().expect("publisher thread");
    assert!(sub.recv_timeout(Duration::from_millis(300)).is_err(), "a message too many arrived");
    bb.eventually("B never counted the imports", |b| b.counter("imported") >= N);
    assert_eq!(bb.counter("gaps"), 0, "a lossless stream had gaps; log:\n{}", bb.log());
    assert_eq!(bb.counter("lost"), 0);
    assert!(ba.counter("exported") >= N);
    // `shmbus stats` on each bus shows the bridge's word: B's counters of the import, B as A's remote subscriber.
    b.eventually("B's stats never showed the bridge's import counters", || {
        reported(&bus_b, "stream")
            .iter()
            .any(|r| reported_counter(r, "imported") >= N && reported_counter(r, "gaps") == 0)
    });
    let importer = |bus: &Bus| {
        reported(bus, "stream").iter().any(|r| r.remote_subscribers.iter().any(|s| s == "bridge b importing stream*"))
    };
    a.eventually("A's stats never showed B as a remote subscriber", || importer(&bus_a));
    assert!(bb.stop(), "bridges must stop cleanly on SIGTERM");
    a.eventually("B left, yet A's stats still show it as a remote subscriber", || {
        let r = reported(&bus_a, "stream");
        !r.is_empty() && !importer(&bus_a)
    });
    assert!(ba.stop(), "bridges must stop cleanly on SIGTERM");
    a.eventually("a stopped bridge's report stays in the stats", || reported(&bus_a, "stream").is_empty());
}

#[test]
fn a_topic_bridged_both_ways_does_not_echo() {
    let (a, b) = (TestDaemon::start(None), TestDaemon::start(None));
    let (bus_a, bus_b) = (a.bus(), b.bus());
    for bus in [&bus_a, &bus_b] {
        create(bus, "duplex", 4096); // room for all 2 000 messages: the test reads only after sending
        create(bus, "duplex-warm", 16);
    }
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let both = ["--export", "duplex*", "--import", "duplex*"];
    let mut ba = TestBridge::start("a", &a, &[&both[..], &["--listen", &ep]].concat());
    let mut bb = TestBridge::start("b", &b, &[&both[..], &["--connect", &ep]].concat());
    let mut sub_a = bus_a.subscriber("duplex").expect("subscribe on A");
    let mut sub_b = bus_b.subscriber("duplex").expect("subscribe on B");
    wait_linked(&bus_a, &bus_b, "duplex-warm");
    wait_linked(&bus_b, &bus_a, "duplex-warm");

    const N: u64 = 1_000;
    let mut pa = bus_a.publisher("duplex").expect("publish on A");
    let mut pb = bus_b.publisher("duplex").expect("publish on B");
    for i in 0..N {
        pa.send_timeout(format!("a{i}").as_bytes(), WAIT).expect("send on A");
        pb.send_timeout(format!("b{i}").as_bytes(), WAIT).expect("send on B");
    }
    for (name, sub) in [("A", &mut sub_a), ("B", &mut sub_b)] {
        let (mut from_a, mut from_b) = (0u64, 0u64);
        for _ in 0..2 * N {
            let m = sub.recv_timeout(WAIT).unwrap_or_else(|e| panic!("bus {name}: {e}"));
            let text = String::from_utf8_lossy(m.payload()).into_owned();
            let (tag, i) = text.split_at(1);
            let i: u64 = i.parse().expect("message index");
            // Each side's own messages arrive in order, and so do the other's: any echo would repeat one.
            match tag {
                "a" => {
                    assert_eq!(i, from_a, "bus {name}: A's message {i} out of order or repeated");
                    from_a += 1;
                }
                _ => {
                    assert_eq!(i, from_b, "bus {name}: B's message {i} out of order or repeated");
                    from_b += 1;
                }
            }
        }
        // Give an echo every chance to come back before saying there is none.
        if let Ok(m) = sub.recv_timeout(Duration::from_secs(1)) {
            panic!("bus {name}: an echo arrived: {:?}", String::from_utf8_lossy(m.payload()));
        }
    }
    // Each bridge sees the other as a remote subscriber of the topic, never itself.
    for (name, d, bus, other) in [("A", &a, &bus_a, "b"), ("B", &b, &bus_b, "a")] {
        let want = vec![format!("bridge {other} importing duplex*")];
        d.eventually(&format!("bus {name}'s stats never showed exactly the other bridge"), || {
            reported(bus, "duplex").iter().any(|r| r.remote_subscribers == want)
        });
    }
    for (name, br) in [("A", &mut ba), ("B", &mut bb)] {
        br.eventually("the exporter never counted its skipped imports", |br| br.counter("echo_skipped") >= N);
        assert_eq!(br.counter("gaps"), 0, "bridge {name}: gaps; log:\n{}", br.log());
    }
}

#[test]
fn an_exporter_killed_and_restarted_mid_stream_leaves_a_counted_gap() {
    let (a, b) = (TestDaemon::start(None), TestDaemon::start(None));
    let (bus_a, bus_b) = (a.bus(), b.bus());
    for bus in [&bus_a, &bus_b] {
        create(bus, "ticks", 1024);
        create(bus, "ticks-warm", 16);
    }
    // The importer listens and the exporter connects, so the restarted exporter needs no port of its own.
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let mut bb = TestBridge::start("b", &b, &["--import", "ticks*", "--listen", &ep]);
    let mut ba = TestBridge::start("a", &a, &["--export", "ticks*", "--connect", &ep]);
    let mut sub = bus_b.subscriber("ticks").expect("subscribe on B");
    wait_linked(&bus_a, &bus_b, "ticks-warm");

    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (bus_a, stop) = (bus_a.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut p = bus_a.publisher("ticks").expect("publish on A");
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // A paced stream: messages are published while the exporter is down, so the gap is certain.
                p.send_timeout(&i.to_le_bytes(), WAIT).expect("a dead exporter must not block local publishers");
                i += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            i
        })
    };
    let index = |m: &[u8]| u64::from_le_bytes(m.try_into().expect("8-byte tick"));
    let mut last = None;
    let mut recv = |sub: &mut bus_client::Subscriber, n: usize| {
        for _ in 0..n {
            let m = sub.recv_timeout(WAIT).expect("ticks keep arriving");
            let i = index(m.payload());
            assert!(last.is_none_or(|l| i > l), "tick {i} after {last:?}: out of order or repeated");
            last = Some(i);
        }
    };
    recv(&mut sub, 300);
    ba.kill();
    std::thread::sleep(Duration::from_millis(300));
    ba.spawn();
    recv(&mut sub, 300);
    stop.store(true, Ordering::Relaxed);
    let published = publisher.join().expect("publisher thread");
    assert!(last.expect("received") < published);
    bb.eventually("the importer never counted the restart", |b| b.counter("source_restarts") >= 1);
    assert!(bb.counter("gaps") >= 1 && bb.counter("lost") >= 1, "gap not counted: {:?}", bb.stats());
    assert!(bb.log().contains("the exporter restarted"), "gap not logged; log:\n{}", bb.log());
    b.eventually("B's stats never showed the gap", || {
        reported(&bus_b, "ticks").iter().any(|r| reported_counter(r, "gaps") >= 1 && reported_counter(r, "lost") >= 1)
    });
    assert!(bb.alive() && ba.alive(), "neither side may crash");
    assert!(a.alive() && b.alive(), "neither daemon may be affected");
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Order {
    id: u64,
    qty: u32,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Invoice {
    number: String,
}

#[test]
fn a_typed_topic_refuses_a_stream_of_another_type() {
    let (a, b) = (TestDaemon::start(None), TestDaemon::start(None));
    let (bus_a, bus_b) = (a.bus(), b.bus());
    for bus in [&bus_a, &bus_b] {
        create(bus, "orders", 64);
    }
    // B's topic carries invoices: a typed publisher holds the type for as long as it is open.
    let _invoices = bus_b.typed_publisher::<Invoice>("orders").expect("typed publisher on B");
    let mut sub = bus_b.subscriber("orders").expect("subscribe on B");
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let _ba = TestBridge::start("a", &a, &["--export", "orders", "--listen", &ep]);
    let mut bb = TestBridge::start("b", &b, &["--import", "orders", "--connect", &ep]);
    let mut orders = bus_a.typed_publisher::<Order>("orders").expect("typed publisher on A");
    let deadline = Instant::now() + WAIT;
    while bb.counter("refused") == 0 {
        orders.send(&Order { id: 1, qty: 2 }).expect("send an order");
        assert!(bb.alive() && Instant::now() < deadline, "the stream was never refused; log:\n{}", bb.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(bb.log().contains("payload type mismatch"), "refusal not logged; log:\n{}", bb.log());
    assert_eq!(bb.counter("imported"), 0, "an order was published on B's invoice topic");
    assert!(sub.recv_timeout(Duration::from_millis(300)).is_err(), "B's subscriber got a refused message");
}
