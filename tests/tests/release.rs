//! Dropping a handle gives its lease back without waiting for the daemon (issue 17: a drop used to block on the
//! `Close` round trip, up to `CLOSE_TIMEOUT` with the daemon stopped), and the daemon still gets every lease back.

use shmbus_tests::daemon::TestDaemon;
use shmbus_tests::stopped::Stopped;
use std::time::{Duration, Instant};

#[test]
fn dropping_handles_does_not_wait_for_a_stopped_daemon() {
    let d = TestDaemon::start(None);
    let pid = d.pid().expect("daemon running");
    let bus = d.bus();
    let rounds = 8;
    let mut in_drop = Duration::ZERO;
    for i in 0..rounds {
        // Open with the daemon running, drop with it stopped (each round on a fresh connection: the previous
        // round's close timed out and dropped the connection).
        let sub = bus.subscriber("release").unwrap_or_else(|e| panic!("round {i}: {e}\n{}", d.log()));
        let publisher = bus.publisher("release").unwrap_or_else(|e| panic!("round {i}: {e}\n{}", d.log()));
        let stopped = Stopped::new(pid);
        let t = Instant::now();
        drop(publisher);
        drop(sub);
        in_drop += t.elapsed();
        drop(stopped);
    }
    // Waiting for each Close would take at least rounds x CLOSE_TIMEOUT (4 s); not waiting takes microseconds.
    assert!(in_drop < Duration::from_secs(2), "{rounds} rounds of drops took {in_drop:?}");
    assert!(bus_client::CLOSE_TIMEOUT * rounds > Duration::from_secs(2), "the bound tells waiting from not");

    // And the daemon has every lease back.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = bus.stats(Some("release")).unwrap_or_else(|e| panic!("{e}\n{}", d.log()));
        if st[0].publishers.is_empty() && st[0].subscribers.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "leases not given back: {st:?}\n{}", d.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_dropped_handle_is_closed_before_the_next_request() {
    let d = TestDaemon::start(Some("[[topic]]\nname = \"one\"\nmax_publishers = 1\nmax_subscribers = 1\n"));
    let bus = d.bus();
    for _ in 0..50 {
        let p = bus.publisher("one").unwrap_or_else(|e| panic!("{e}\n{}", d.log()));
        let s = bus.subscriber("one").unwrap_or_else(|e| panic!("{e}\n{}", d.log()));
        drop((p, s));
        // The very next request sees both slots free: the queued Closes went first.
        let st = bus.stats(Some("one")).unwrap();
        assert!(st[0].publishers.is_empty() && st[0].subscribers.is_empty(), "{st:?}");
    }
}
