//! Issue 17, async part: pollable descriptors per subscriber, the waker threads behind them, `Select`,
//! `Interrupter`, and the tokio handles (`AsyncSubscriber`, `AsyncPublisher`), against a real daemon. Every test
//! runs under a watchdog: a lost wake-up fails it instead of hanging.

use bus_client::poll::{poll, PollFd, PollFlags};
use bus_client::{AsyncPublisher, AsyncSubscriber, Bus, Interrupter, RecvError, Select, Subscriber, TopicSpec};
use shmbus_tests::daemon::TestDaemon;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

/// Runs `f` on its own thread; fails the test if it takes longer than `secs` (a hang).
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => {
            t.join().unwrap();
            v
        }
        // A panic in `f` drops the sender: join to show it.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("{:?}", t.join().unwrap_err()),
        Err(_) => panic!("hung: no result within {secs} s"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap()
}

fn small(bus: &Bus, name: &str, capacity: u32, subscribers: u32) {
    let spec = TopicSpec {
        capacity: Some(capacity),
        max_message: Some(256),
        payload_budget: Some(64 * 1024),
        max_subscribers: Some(subscribers),
        ..TopicSpec::default()
    };
    bus.create_topic(name, spec).unwrap();
}

/// Whether `sub`'s descriptor becomes readable within `timeout`.
fn readable(sub: &mut Subscriber, timeout: Duration) -> bool {
    let mut fds = [PollFd::new(sub.wait_fd().unwrap(), PollFlags::POLLIN)];
    poll(&mut fds, Some(timeout)).unwrap() == 1
}

#[test]
fn recv_await_wakes_for_messages_sent_from_another_thread() {
    let d = TestDaemon::start(None);
    within(30, move || {
        let bus = d.bus();
        let sub = bus.subscriber("t").unwrap();
        let mut p = bus.publisher("t").unwrap();
        let sender = std::thread::spawn(move || {
            for i in 0..3u8 {
                std::thread::sleep(Duration::from_millis(30));
                p.send(&[i]).unwrap();
            }
        });
        runtime().block_on(async {
            let mut sub = AsyncSubscriber::new(sub).unwrap();
            for i in 0..3u8 {
                assert_eq!(sub.recv().await.unwrap().payload(), &[i]);
            }
        });
        sender.join().unwrap();
    });
}

#[test]
fn more_than_128_armed_subscribers_are_all_woken() {
    let d = TestDaemon::start(None);
    within(60, move || {
        let bus = d.bus();
        small(&bus, "many", 8, 150);
        let mut subs: Vec<Subscriber> =
            (0..150).map(|_| bus.subscriber_builder("many").lossy().open().unwrap()).collect();
        for s in &mut subs {
            assert!(s.try_recv_or_arm().unwrap().is_none(), "nothing yet: armed");
        }
        bus.publisher("many").unwrap().send(b"all").unwrap();
        for (i, s) in subs.iter_mut().enumerate() {
            assert!(readable(s, Duration::from_secs(10)), "subscriber {i} (waker thread {}) was not woken", i / 127);
            assert_eq!(s.try_recv_or_arm().unwrap().unwrap().payload(), b"all");
        }
    });
}

#[test]
fn a_subscriber_dropped_while_armed_leaves_the_others_working() {
    let d = TestDaemon::start(None);
    within(30, move || {
        let bus = d.bus();
        let (mut a, mut b) = (bus.subscriber("t").unwrap(), bus.subscriber("t").unwrap());
        assert!(a.try_recv_or_arm().unwrap().is_none());
        assert!(b.try_recv_or_arm().unwrap().is_none());
        drop(a);
        // Its slot is taken again by a new subscriber, armed too (its word may be the dropped one's).
        let mut c = bus.subscriber("t").unwrap();
        assert!(c.try_recv_or_arm().unwrap().is_none());
        let mut p = bus.publisher("t").unwrap();
        p.send(b"x").unwrap();
        for s in [&mut b, &mut c] {
            assert!(readable(s, Duration::from_secs(10)));
            assert_eq!(s.try_recv_or_arm().unwrap().unwrap().payload(), b"x");
        }
    });
}

#[test]
fn deleting_the_topic_ends_an_await_with_closed() {
    let d = TestDaemon::start(None);
    within(30, move || {
        let bus = d.bus();
        let sub = bus.subscriber("doomed").unwrap();
        let deleter = {
            let bus = bus.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                bus.delete_topic("doomed").unwrap();
            })
        };
        runtime().block_on(async {
            let mut sub = AsyncSubscriber::new(sub).unwrap();
            assert_eq!(sub.recv().await.unwrap_err(), RecvError::Closed);
        });
        deleter.join().unwrap();
    });
}

#[test]
fn select_serves_two_topics_fairly_and_times_out_when_empty() {
    let d = TestDaemon::start(None);
    within(30, move || {
        let bus = d.bus();
        let (mut a, mut b) = (bus.subscriber("a").unwrap(), bus.subscriber("b").unwrap());
        let (mut pa, mut pb) = (bus.publisher("a").unwrap(), bus.publisher("b").unwrap());
        for i in 0..10u8 {
            pa.send(&[i]).unwrap();
            pb.send(&[100 + i]).unwrap();
        }
        let mut sel = Select::new();
        let (ia, ib) = (sel.add(&mut a), sel.add(&mut b));
        let mut order = Vec::new();
        for _ in 0..20 {
            let (i, m) = sel.recv_timeout(Duration::from_secs(5)).unwrap();
            order.push((i, m.unwrap().payload()[0]));
        }
        let from = |ix| order.iter().filter(|(i, _)| *i == ix).map(|(_, v)| *v).collect::<Vec<_>>();
        assert_eq!(from(ia), (0..10).collect::<Vec<_>>());
        assert_eq!(from(ib), (100..110).collect::<Vec<_>>());
        assert!(order.windows(2).all(|w| w[0].0 != w[1].0), "both had messages: served in turn, {order:?}");
        let start = Instant::now();
        assert_eq!(sel.recv_timeout(Duration::from_millis(50)).unwrap_err(), RecvError::Timeout);
        assert!(start.elapsed() >= Duration::from_millis(50));
        // A message on b while both are armed wakes the select.
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            pb.send(b"late").unwrap();
        });
        let (i, m) = sel.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!((i, m.unwrap().payload().to_vec()), (ib, b"late".to_vec()));
        t.join().unwrap();
    });
}

#[test]
fn an_interrupter_ends_a_blocked_wait_from_another_thread() {
    let d = TestDaemon::start(None);
    within(30, move || {
        let bus = d.bus();
        let mut sub = bus.subscriber("t").unwrap();
        let stop = Interrupter::new().unwrap();
        let waiter = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let r = sub.recv_interruptible(&stop, None).map(|m| m.payload);
                (sub, r)
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        stop.interrupt();
        let (mut sub, r) = waiter.join().unwrap();
        assert_eq!(r, Err(RecvError::Interrupted));
        // The interrupt was taken: the next wait times out, and the subscriber still works.
        assert_eq!(sub.recv_interruptible(&stop, Some(Duration::from_millis(20))), Err(RecvError::Timeout));
        bus.publisher("t").unwrap().send(b"on").unwrap();
        assert_eq!(sub.recv_interruptible(&stop, Some(Duration::from_secs(5))).unwrap().payload, b"on");
    });
}

#[test]
fn a_dropped_recv_future_loses_no_message() {
    let d = TestDaemon::start(None);
    within(30, move || {
        let bus = d.bus();
        let sub = bus.subscriber("t").unwrap();
        let mut p = bus.publisher("t").unwrap();
        runtime().block_on(async {
            let mut sub = AsyncSubscriber::new(sub).unwrap();
            {
                let mut fut = pin!(sub.recv());
                let mut cx = Context::from_waker(Waker::noop());
                assert!(fut.as_mut().poll(&mut cx).is_pending(), "nothing yet");
                p.send(b"kept").unwrap();
                // Dropped here, ready or not: the message must stay for the next receive.
            }
            assert_eq!(sub.recv().await.unwrap().payload(), b"kept");
            p.send(b"streamed").unwrap();
            let next = std::future::poll_fn(|cx| futures_core::Stream::poll_next(std::pin::Pin::new(&mut sub), cx));
            assert_eq!(next.await.unwrap().unwrap().payload(), b"streamed");
        });
    });
}

#[test]
fn flowing_messages_never_arm() {
    let d = TestDaemon::start(None);
    within(30, move || {
        let bus = d.bus();
        let mut sub = bus.subscriber("t").unwrap();
        let mut p = bus.publisher("t").unwrap();
        assert!(sub.try_recv_or_arm().unwrap().is_none());
        assert_eq!(sub.armed_waits(), 1);
        for round in 0..5u8 {
            for i in 0..20u8 {
                p.send(&[round, i]).unwrap();
            }
            for i in 0..20u8 {
                assert_eq!(sub.try_recv_or_arm().unwrap().unwrap().payload(), &[round, i]);
            }
        }
        assert_eq!(sub.armed_waits(), 1, "100 messages received without arming (no system call)");
        assert!(sub.try_recv_or_arm().unwrap().is_none());
        assert_eq!(sub.armed_waits(), 2, "nothing left: armed again");
    });
}

#[test]
fn send_await_waits_for_room_on_a_full_lossless_topic() {
    let d = TestDaemon::start(None);
    within(30, move || {
        let bus = d.bus();
        small(&bus, "full", 4, 4);
        let mut sub = bus.subscriber("full").unwrap();
        let p = bus.publisher("full").unwrap();
        runtime().block_on(async {
            let mut p = AsyncPublisher::new(p).unwrap();
            for i in 0..4u8 {
                p.send(&[i]).await.unwrap();
            }
            assert_eq!(p.get_mut().try_send(b"x"), Err(bus_client::SendError::Full));
            let reader = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                (0..5).map(|_| sub.recv_timeout(Duration::from_secs(10)).unwrap().payload()[0]).collect::<Vec<u8>>()
            });
            assert_eq!(p.send(&[4]).await.unwrap(), 4, "sent once the reader made room");
            assert_eq!(reader.join().unwrap(), vec![0, 1, 2, 3, 4]);
        });
    });
}

#[test]
fn a_reactor_gone_fails_the_wait_for_room_instead_of_reporting_closed() {
    let d = TestDaemon::start(None);
    within(30, move || {
        let bus = d.bus();
        small(&bus, "gone", 4, 4);
        let _sub = bus.subscriber("gone").unwrap();
        let mut p = bus.publisher("gone").unwrap();
        for i in 0..4u8 {
            p.try_send(&[i]).unwrap();
        }
        let rt = runtime();
        let mut p = {
            let _in = rt.enter();
            AsyncPublisher::new(p).unwrap()
        };
        drop(rt);
        match p.poll_send(b"x", &mut Context::from_waker(Waker::noop())) {
            std::task::Poll::Ready(Err(bus_client::SendError::Wait(e))) => {
                assert!(e.io_error().is_some(), "the reactor's error is kept as the source: {e}")
            }
            other => panic!("a full topic and no reactor: want Wait, got {other:?}"),
        }
        assert_eq!(p.get_mut().try_send(b"x"), Err(bus_client::SendError::Full), "the topic itself is not closed");
    });
}
