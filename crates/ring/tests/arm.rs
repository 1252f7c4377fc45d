//! Arming without sleeping (issue 17): a subscriber or publisher that finds nothing to do raises its waiter bit
//! and returns; the next publish (or release of space) posts its wake-up exactly once; a handle that finds
//! progress while arming gets it at once and leaves no bit raised.
#![cfg(not(loom))]

use shmbus_ring::*;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A waiter that records posts (and never sleeps).
#[derive(Default)]
struct Posts(Mutex<Vec<Target>>);

impl Waiter for Posts {
    fn post(&self, target: Target) {
        self.0.lock().unwrap().push(target);
    }
    fn drain(&self, _target: Target) {}
    fn wait_until(&self, _target: Target, _deadline: Instant) -> bool {
        false
    }
}

impl Posts {
    fn take(&self) -> Vec<Target> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn topic(cap: u32) -> Topic {
    Topic::heap(&Geometry::new(cap, 64, 16 * 1024, 2, 4, 1), 0).unwrap()
}

fn attach(t: &Topic, w: &Arc<Posts>, mode: Mode) -> (Subscriber, Publisher) {
    let opts = SubscriberOptions { mode, ..Default::default() };
    let s = Subscriber::attach(t, 1, opts, w.clone(), &|_| false).unwrap();
    let p = Publisher::attach(t, 0, w.clone(), PublisherOptions::default()).unwrap();
    (s, p)
}

#[test]
fn an_armed_subscriber_is_posted_once_by_the_next_publish() {
    let w = Arc::new(Posts::default());
    let t = topic(8);
    for mode in [Mode::Lossless, Mode::Lossy] {
        let (mut s, mut p) = attach(&t, &w, mode);
        assert!(s.try_recv_or_arm(|| {}).unwrap().is_none(), "{mode:?}: nothing there, armed");
        assert_eq!(s.wake_target(), Target::Subscriber(1));
        assert!(s.wake_word().is_some(), "a writable readers mapping has the word");
        p.try_send(b"a").unwrap();
        p.try_send(b"b").unwrap();
        assert_eq!(w.take(), vec![Target::Subscriber(1)], "{mode:?}: one post for the armed subscriber");
        assert_eq!(s.try_recv_or_arm(|| {}).unwrap().unwrap().payload(), b"a");
        assert_eq!(s.try_recv_or_arm(|| {}).unwrap().unwrap().payload(), b"b");
        assert!(s.try_recv_or_arm(|| {}).unwrap().is_none());
        drop((s, p));
        w.take();
    }
}

#[test]
fn a_subscriber_that_finds_a_message_while_arming_leaves_no_bit_raised() {
    let w = Arc::new(Posts::default());
    let t = topic(8);
    let (mut s, mut p) = attach(&t, &w, Mode::Lossless);
    p.try_send(b"x").unwrap();
    assert_eq!(s.try_recv_or_arm(|| {}).unwrap().unwrap().payload(), b"x");
    p.try_send(b"y").unwrap();
    assert!(w.take().is_empty(), "never armed: nothing posted");
}

#[test]
fn a_closed_topic_is_reported_not_armed() {
    let w = Arc::new(Posts::default());
    let a = Admin::heap(&Geometry::new(8, 64, 16 * 1024, 2, 4, 1), 0).unwrap();
    let (mut s, mut p) = attach(a.topic(), &w, Mode::Lossless);
    assert!(s.try_recv_or_arm(|| {}).unwrap().is_none());
    a.close(&*w).unwrap();
    assert!(w.take().contains(&Target::Subscriber(1)), "the close posts the armed subscriber");
    assert_eq!(s.try_recv_or_arm(|| {}).unwrap_err(), RecvError::Closed);
    assert_eq!(p.try_send_or_arm(b"z", || {}).unwrap_err(), SendError::Closed);
}

#[test]
fn a_publisher_arms_on_a_full_topic_and_is_posted_when_space_frees() {
    let w = Arc::new(Posts::default());
    let t = topic(4);
    let (mut s, mut p) = attach(&t, &w, Mode::Lossless);
    for i in 0..4u8 {
        assert_eq!(p.try_send_or_arm(&[i], || {}).unwrap(), Some(i as u64));
    }
    assert_eq!(p.try_send_or_arm(&[9], || {}).unwrap(), None, "full: armed");
    assert_eq!(p.wake_target(), Target::Publisher(0));
    w.take();
    // Read everything: the cursor moves and the armed publisher is posted.
    while s.try_recv().is_ok() {}
    assert!(w.take().contains(&Target::Publisher(0)), "the freed space posts the publisher");
    assert_eq!(p.try_send_or_arm(&[9], || {}).unwrap(), Some(4));
    assert_eq!(s.try_recv().unwrap().payload(), &[9]);
}
