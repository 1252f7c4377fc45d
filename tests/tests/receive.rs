//! Receiving against a real `shmbusd`: the iterators, deadlines and lag reports of issue 17 (receiving and
//! errors) on shared memory, where the pipe doc-tests cannot reach (lossy subscribers, laps).

use bus_client::{OwnedMessage, RecvError};
use shmbus_tests::daemon::TestDaemon;
use std::time::{Duration, Instant};

const SMALL: &str = "[[topic]]\nname = \"small\"\ncapacity = 8\n";

#[test]
fn a_lapped_lossy_subscriber_reports_lag_and_reads_on() {
    let d = TestDaemon::start(Some(SMALL));
    let bus = d.bus();
    let mut s = bus.subscriber_builder("small").lossy().open().unwrap();
    let mut p = bus.publisher("small").unwrap();
    for i in 0..40u8 {
        p.send(&[i]).unwrap();
    }
    // The loop the iterator docs show: a transient error is reported, anything else ends it.
    let (mut got, mut missed, mut lags) = (Vec::new(), 0, 0);
    for m in s.try_iter() {
        match m {
            Ok(m) => got.push(m.payload()[0]),
            Err(e) if e.is_transient() => {
                assert!(e.is_lag(), "{e}");
                missed += e.lagged().unwrap();
                lags += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(lags >= 1, "the subscriber was lapped");
    assert!(!got.is_empty(), "and read on after the lap: {got:?}");
    assert_eq!(got.len() as u64 + missed, 40, "every message received or counted: {got:?}");
    assert_eq!(*got.last().unwrap(), 39);
}

#[test]
fn try_iter_and_deadlines_on_shared_memory() {
    let d = TestDaemon::start(None);
    let bus = d.bus();
    let mut s = bus.subscriber("shm-iter").unwrap();
    let mut p = bus.publisher("shm-iter").unwrap();
    assert_eq!(s.try_iter().count(), 0, "nothing yet: ends at once");
    for i in 0..3u8 {
        p.send(&[i]).unwrap();
    }
    let batch: Vec<OwnedMessage> = s.try_iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(batch.iter().map(|m| m.payload()[0]).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(batch[2].seq(), batch[0].seq() + 2);
    assert_eq!(batch[0].publisher(), p.id());

    let deadline = Instant::now() + Duration::from_millis(30);
    assert_eq!(s.recv_deadline(deadline).unwrap_err(), RecvError::Timeout);
    assert!(Instant::now() >= deadline);
    p.send(b"x").unwrap();
    assert_eq!(s.recv_deadline(Instant::now()).unwrap().payload(), b"x", "a past deadline still takes what is there");
    p.send_timeout(b"y", Duration::MAX).expect("a timeout past any Instant does not panic");
    assert_eq!(s.recv_timeout(Duration::MAX).unwrap().payload(), b"y", "a timeout past any Instant does not panic");

    let mut typed = bus.typed_subscriber::<u32>("shm-typed").unwrap();
    let mut tp = bus.typed_publisher::<u32>("shm-typed").unwrap();
    tp.send(&5).unwrap();
    assert_eq!(typed.recv_deadline(Instant::now() + Duration::from_secs(10)).unwrap(), 5);
    tp.send(&6).unwrap();
    assert_eq!(typed.iter().next().unwrap().unwrap(), 6);
}

/// `Message` is `Send` (issue 17): a lossless message read in place in shared memory, moved to another thread,
/// read and dropped there, holds publishers back until that drop and releases its entry like one dropped at home;
/// a lossy one (a copy) travels too.
#[test]
fn a_message_moves_to_another_thread_and_is_released_there() {
    let d = TestDaemon::start(Some(SMALL));
    let bus = d.bus();
    let mut s = bus.subscriber("small").unwrap();
    let mut lossy = bus.subscriber_builder("small").lossy().open().unwrap();
    let mut p = bus.publisher("small").unwrap();
    for i in 0..8u8 {
        p.send(&[i; 100]).unwrap();
    }
    let m = s.recv().unwrap();
    let l = lossy.recv().unwrap();
    // The ring is full and the held message gates it: no room until it is dropped, on whichever thread.
    assert!(matches!(p.try_send(b"no room"), Err(bus_client::SendError::Full)));
    std::thread::scope(|t| {
        t.spawn(move || {
            assert_eq!((m.payload(), m.seq()), (&[0u8; 100][..], 0));
            assert_eq!(l.payload(), &[0u8; 100][..]);
        })
        .join()
        .expect("the other thread")
    });
    p.try_send(b"room again").expect("the message was released by its drop on the other thread");
    assert_eq!(s.recv().unwrap().payload(), &[1u8; 100][..]);
}
