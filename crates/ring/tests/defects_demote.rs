//! Regression tests for issue 8, defect 2: demoting a subscriber that is reading a message in place must not let
//! publishers overwrite that message while the subscriber can still look at it.

use shmbus_ring::*;
use std::sync::Arc;

/// A capacity-2 topic with one publisher and a lossless subscriber in slot 0, two messages of `len` bytes sent.
fn held_topic(len: usize) -> (Admin, Subscriber, Publisher) {
    let admin = Admin::heap(&Geometry::new(2, 600, 1200, 1, 4, 0), 0).unwrap();
    let w = Arc::new(PollWaiter);
    let s = Subscriber::attach(&admin, 0, SubscriberOptions::default(), w.clone(), &|_| false).unwrap();
    let mut p = Publisher::attach(&admin, 0, w, PublisherOptions::default()).unwrap();
    for i in 0..2u8 {
        p.try_send(&vec![i + 1; len]).unwrap();
    }
    (admin, s, p)
}

fn demotion_while_holding(len: usize) {
    let (admin, mut s, mut p) = held_topic(len);
    let m = s.try_recv().unwrap();
    assert_eq!(m.seq(), 0);
    let before = m.payload().to_vec();
    assert_eq!(before, vec![1; len]);
    admin.demote(0, &PollWaiter).unwrap();
    for i in 0..4u8 {
        // The held message still gates: every send is refused, and the payload stays as it was.
        let sent = p.try_send(&vec![0xa0 + i; len]);
        assert_eq!(m.payload(), &before[..], "held payload changed after send {i} ({len}-byte message)");
        assert_eq!(sent, Err(SendError::Full), "send {i} while message 0 is held");
    }
    assert!(admin.stats().subscribers[0].gating, "a demotion not yet acknowledged still gates");
    drop(m);
    // Dropping the message acknowledged the demotion: the subscriber is lossy and publishers go on.
    assert!(!admin.stats().subscribers[0].gating);
    for i in 0..4u8 {
        p.try_send(&vec![0xb0 + i; len]).unwrap();
    }
    assert_eq!(s.try_recv().unwrap_err(), RecvError::Demoted);
    assert_eq!(s.mode(), Mode::Lossy);
    let (mut got, mut lagged) = (Vec::new(), 0);
    loop {
        match s.try_recv() {
            Ok(m) => got.push((m.seq(), m.payload().to_vec())),
            Err(RecvError::Lagged(n)) => lagged += n,
            Err(RecvError::Empty) => break,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    // Message 1 and the four sent after the drop: each received intact or counted lagged.
    assert_eq!(got.len() as u64 + lagged, 5, "received {got:?}, lagged {lagged}");
    for (seq, body) in &got {
        let want = if *seq == 1 { vec![2; len] } else { vec![0xb0 + (*seq - 2) as u8; len] };
        assert_eq!(body, &want, "message {seq}");
    }
    assert_eq!(admin.stats().demotions, 1);
}

/// Issue 8, defect 2 (inline payload): demotion un-gated a subscriber holding an inline message, and the next send
/// overwrote the entry under the held slice.
#[test]
fn defect2_demotion_while_holding_inline_message() {
    demotion_while_holding(8);
}

/// Issue 8, defect 2 (region payload): the same with a 600-byte payload in the publisher's region.
#[test]
fn defect2_demotion_while_holding_region_message() {
    demotion_while_holding(600);
}

/// A subscriber demoted while it holds nothing stops gating at once, without polling again (what the daemon's
/// slow-consumer bound relies on for a subscriber that stopped reading).
#[test]
fn defect2_demotion_of_an_idle_subscriber_takes_effect_at_once() {
    let (admin, mut s, mut p) = held_topic(8);
    assert_eq!(p.try_send(&[9; 8]), Err(SendError::Full));
    admin.demote(0, &PollWaiter).unwrap();
    assert!(!admin.stats().subscribers[0].gating);
    for _ in 0..4 {
        p.try_send(&[9; 8]).unwrap();
    }
    assert_eq!(s.try_recv().unwrap_err(), RecvError::Demoted);
    assert!(matches!(s.try_recv(), Err(RecvError::Lagged(_))));
}
