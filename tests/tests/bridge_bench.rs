//! Bridged throughput and one-way latency on the loopback against the direct local path. Ignored by default
//! (it prints figures and asserts nothing about speed); run it in release:
//!
//! ```text
//! cargo test --release -p shmbus-tests --test bridge_bench -- --ignored --nocapture
//! ```

use bus_client::{Bus, IdleStrategy, Subscriber, TopicSpec};
use shmbus_tests::bridge::{free_port, TestBridge};
use shmbus_tests::daemon::TestDaemon;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const WAIT: Duration = Duration::from_secs(30);
const SIZE: usize = 64;
const THROUGHPUT_N: u64 = 200_000;
const LATENCY_N: usize = 2_000;

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_nanos() as u64
}

/// Messages per second from `bus_pub` to `sub`, lossless, `n` messages of SIZE bytes.
fn throughput(bus_pub: &Bus, topic: &str, sub: &mut Subscriber, n: u64) -> f64 {
    let bus = bus_pub.clone();
    let topic = topic.to_string();
    let start = Instant::now();
    let t = std::thread::spawn(move || {
        let mut p = bus.publisher_builder(&topic).idle(IdleStrategy::Adaptive).open().expect("publisher");
        let mut m = [0u8; SIZE];
        for i in 0..n {
            m[..8].copy_from_slice(&i.to_le_bytes());
            p.send_timeout(&m, WAIT).expect("send");
        }
    });
    for i in 0..n {
        let m = sub.recv_timeout(WAIT).expect("receive");
        assert_eq!(u64::from_le_bytes(m.payload()[..8].try_into().expect("8 bytes")), i);
    }
    t.join().expect("publisher thread");
    n as f64 / start.elapsed().as_secs_f64()
}

/// One-way latencies (ns), one message every 500 µs, sorted.
fn latency(bus_pub: &Bus, topic: &str, sub: &mut Subscriber) -> Vec<u64> {
    let mut p = bus_pub.publisher(topic).expect("publisher");
    let mut out = Vec::with_capacity(LATENCY_N);
    for _ in 0..LATENCY_N {
        let mut m = [0u8; SIZE];
        m[..8].copy_from_slice(&now_ns().to_le_bytes());
        p.send_timeout(&m, WAIT).expect("send");
        let r = sub.recv_timeout(WAIT).expect("receive");
        let sent = u64::from_le_bytes(r.payload()[..8].try_into().expect("8 bytes"));
        out.push(now_ns().saturating_sub(sent));
        std::thread::sleep(Duration::from_micros(500));
    }
    out.sort_unstable();
    out
}

fn pct(v: &[u64], p: f64) -> f64 {
    v[((v.len() - 1) as f64 * p) as usize] as f64 / 1000.0
}

#[test]
#[ignore = "prints figures; run in release with --ignored --nocapture"]
fn bridged_against_direct() {
    let (a, b) = (TestDaemon::start(None), TestDaemon::start(None));
    let (bus_a, bus_b) = (a.bus(), b.bus());
    for bus in [&bus_a, &bus_b] {
        for t in ["thr", "lat", "direct-thr", "direct-lat", "warm"] {
            let spec = TopicSpec { capacity: Some(1024), max_message: Some(256), ..TopicSpec::default() };
            bus.create_topic(t, spec).expect("create");
        }
    }
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let _ba = TestBridge::start("a", &a, &["--export", "thr", "lat", "warm", "--listen", &ep]);
    let _bb = TestBridge::start("b", &b, &["--import", "thr", "lat", "warm", "--connect", &ep]);
    let mut warm = bus_b.subscriber_builder("warm").lossy().open().expect("warm sub");
    let mut wp = bus_a.publisher("warm").expect("warm pub");
    let deadline = Instant::now() + WAIT;
    while warm.recv_timeout(Duration::from_millis(50)).is_err() {
        let _ = wp.try_send(b"w");
        assert!(Instant::now() < deadline, "not linked");
    }
    let mut direct_thr = bus_a.subscriber("direct-thr").expect("sub");
    let mut direct_lat = bus_a.subscriber("direct-lat").expect("sub");
    let mut bridged_thr = bus_b.subscriber("thr").expect("sub");
    let mut bridged_lat = bus_b.subscriber("lat").expect("sub");
    let d = throughput(&bus_a, "direct-thr", &mut direct_thr, THROUGHPUT_N);
    let br = throughput(&bus_a, "thr", &mut bridged_thr, THROUGHPUT_N);
    let dl = latency(&bus_a, "direct-lat", &mut direct_lat);
    let bl = latency(&bus_a, "lat", &mut bridged_lat);
    println!("{SIZE}-byte messages, lossless, {THROUGHPUT_N} for throughput, {LATENCY_N} paced for latency");
    println!(
        "direct  : {:>10.0} msg/s, one-way p50 {:>8.1} us, p99 {:>8.1} us, max {:>8.1} us",
        d,
        pct(&dl, 0.5),
        pct(&dl, 0.99),
        pct(&dl, 1.0)
    );
    println!(
        "bridged : {:>10.0} msg/s, one-way p50 {:>8.1} us, p99 {:>8.1} us, max {:>8.1} us",
        br,
        pct(&bl, 0.5),
        pct(&bl, 0.99),
        pct(&bl, 1.0)
    );
}
