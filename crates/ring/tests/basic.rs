//! In-process behaviour of the ring on heap regions.
#![cfg(not(loom))] // in-process tests on real memory; the loom models are in tests/loom.rs

mod common;

use common::{publ, sub, w};
use shmbus_ring::*;

fn geo(cap: u32, max: u32, pubs: u32) -> Geometry {
    Geometry::new(cap, max, 16 * 1024, pubs, 8, 2)
}

/// A four-entry topic whose lossless subscriber has not read any of the four messages its publisher sent: the
/// ring is full.
fn full_topic() -> (Admin, Subscriber, Publisher) {
    let t = Admin::heap(&geo(4, 64, 1), 0).unwrap();
    let s = sub(&t, 0, Mode::Lossless);
    let mut p = publ(&t, 0);
    for i in 0..4 {
        p.try_send(&[i]).unwrap();
    }
    (t, s, p)
}

fn payload(i: u64, len: usize) -> Vec<u8> {
    (0..len).map(|k| (i as usize * 31 + k) as u8).collect()
}

#[test]
fn spsc_roundtrip_inline_and_region() {
    for origin in [0u64, u64::MAX - 63] {
        let t = Topic::heap(&geo(8, 1000, 1), origin).unwrap();
        let mut s = sub(&t, 0, Mode::Lossless);
        let mut p = publ(&t, 0);
        for i in 0..200u64 {
            let len = (i as usize * 37) % 1001;
            let m = payload(i, len);
            assert_eq!(p.try_send(&m).unwrap_or_else(|e| panic!("origin {origin} i {i}: {e}")), origin.wrapping_add(i));
            let r = s.try_recv().unwrap();
            assert_eq!(r.payload(), &m[..]);
            assert_eq!(r.seq(), origin.wrapping_add(i));
        }
        assert_eq!(s.try_recv().unwrap_err(), RecvError::Empty);
    }
}

#[test]
fn lossless_gates_publisher() {
    let (_t, mut s, mut p) = full_topic();
    assert_eq!(p.try_send(&[9]).unwrap_err(), SendError::Full);
    assert_eq!(s.try_recv().unwrap().payload(), &[0]);
    p.try_send(&[4]).unwrap();
    for i in 1..5 {
        assert_eq!(s.try_recv().unwrap().payload(), &[i]);
    }
}

#[test]
fn payload_region_gates_too() {
    // 16 KiB budget, 1 publisher: messages of 4000 bytes, only 4 fit in the region though the index has 64 entries.
    let g = Geometry::new(64, 4000, 16 * 1024, 1, 4, 0);
    let t = Topic::heap(&g, 0).unwrap();
    let mut s = sub(&t, 0, Mode::Lossless);
    let mut p = publ(&t, 0);
    let mut sent = 0;
    while p.try_send(&payload(sent, 4000)).is_ok() {
        sent += 1;
    }
    assert!((3..=4).contains(&sent), "{sent}");
    for i in 0..sent {
        assert_eq!(s.try_recv().unwrap().payload(), &payload(i, 4000)[..]);
    }
    p.try_send(&payload(99, 4000)).unwrap();
    assert_eq!(s.try_recv().unwrap().payload(), &payload(99, 4000)[..]);
}

#[test]
fn lossy_reports_exact_lag() {
    let t = Topic::heap(&geo(8, 200, 1), 0).unwrap();
    let mut s = sub(&t, 0, Mode::Lossy);
    let mut p = publ(&t, 0);
    for i in 0..20u64 {
        p.try_send(&payload(i, 150)).unwrap();
    }
    let mut got = vec![];
    let mut lagged = 0;
    loop {
        match s.try_recv() {
            Ok(m) => got.push(m.seq()),
            Err(RecvError::Lagged(n)) => lagged += n,
            Err(RecvError::Empty) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got.len() as u64 + lagged, 20);
    assert!(got.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(*got.last().unwrap(), 19);
}

#[test]
fn lossy_does_not_gate() {
    let t = Topic::heap(&geo(4, 64, 1), 0).unwrap();
    let _s = sub(&t, 0, Mode::Lossy);
    let mut p = publ(&t, 0);
    for i in 0..100u8 {
        p.try_send(&[i]).unwrap();
    }
}

#[test]
fn multi_producer_total_order() {
    let t = Topic::heap(&geo(16, 300, 3), 0).unwrap();
    let mut s = sub(&t, 0, Mode::Lossless);
    let mut ps: Vec<_> = (0..3).map(|i| publ(&t, i)).collect();
    let mut expect = vec![];
    for i in 0..300u64 {
        let k = (i % 3) as usize;
        let m = payload(i, (i as usize * 13) % 300);
        ps[k].try_send(&m).unwrap();
        expect.push((k as u32, m));
        let r = s.try_recv().unwrap();
        assert_eq!((r.publisher(), r.payload().to_vec()), expect.last().cloned().unwrap());
    }
}

#[test]
fn loan_commit_and_abort() {
    let t = Topic::heap(&geo(8, 1000, 1), 0).unwrap();
    let mut s = sub(&t, 0, Mode::Lossless);
    let mut p = publ(&t, 0);
    {
        let mut l = p.try_loan(500).unwrap();
        l.with_buffer(|b| b.fill(7));
        l.commit();
    }
    {
        let _l = p.try_loan(10).unwrap(); // dropped: aborted
    }
    {
        let mut l = p.try_loan(800).unwrap();
        l.write_at(0, b"abc");
        l.commit_len(3);
    }
    assert_eq!(s.try_recv().unwrap().payload(), &[7u8; 500][..]);
    let m = s.try_recv().unwrap();
    assert_eq!(m.payload(), b"abc");
    assert_eq!(m.seq(), 2);
    drop(m);
    assert_eq!(t.stats().subscribers[0].skipped, 1);
}

#[test]
fn too_large_and_closed() {
    let t = Admin::heap(&geo(8, 100, 1), 0).unwrap();
    let mut s = sub(&t, 0, Mode::Lossless);
    let mut p = publ(&t, 0);
    assert_eq!(p.try_send(&[0; 101]).unwrap_err(), SendError::TooLarge { len: 101, max: 100 });
    p.try_send(b"last").unwrap();
    t.close(&PollWaiter).unwrap();
    assert_eq!(p.try_send(b"x").unwrap_err(), SendError::Closed);
    assert_eq!(s.try_recv().unwrap().payload(), b"last");
    assert_eq!(s.try_recv().unwrap_err(), RecvError::Closed);
}

#[test]
fn consumer_group_shares_and_redelivers() {
    let t = Admin::heap(&geo(8, 64, 1), 0).unwrap();
    t.open_group(0, false, &PollWaiter, &|_| false).unwrap();
    t.set_group_redelivery(0, true);
    let mut a = sub(&t, 0, Mode::Group(0));
    let mut b = sub(&t, 1, Mode::Group(0));
    let mut p = publ(&t, 0);
    for i in 0..8u8 {
        p.try_send(&[i]).unwrap();
    }
    assert_eq!(p.try_send(&[99]).unwrap_err(), SendError::Full);
    let mut got = vec![];
    for i in 0..8 {
        let s = if i % 2 == 0 { &mut a } else { &mut b };
        got.push(s.try_recv().unwrap().payload()[0]);
    }
    got.sort();
    assert_eq!(got, (0..8).collect::<Vec<u8>>());
    // b takes message 8 and "dies" holding it.
    p.try_send(&[8]).unwrap();
    let m = b.try_recv().unwrap();
    assert_eq!(m.payload(), &[8]);
    std::mem::forget(m);
    let slot = b.slot();
    std::mem::forget(b);
    assert_eq!(t.release_subscriber(slot, &PollWaiter).unwrap(), Some(Released::Redelivered(8)));
    assert_eq!(a.try_recv().unwrap().payload(), &[8]);
    assert_eq!(a.try_recv().unwrap_err(), RecvError::Empty);
    assert_eq!(t.stats().groups[0].redelivered, 1);
}

#[test]
fn group_member_behind_a_held_message_sees_empty() {
    // Regression (found by the loom suite): b holds message 0 while a reaches position 2, whose ledger word still
    // holds b's claim from the previous lap. That is "nothing yet", not corruption.
    let t = Admin::heap(&geo(2, 64, 1), 0).unwrap();
    t.open_group(0, false, &PollWaiter, &|_| false).unwrap();
    let mut a = sub(&t, 0, Mode::Group(0));
    let mut b = sub(&t, 1, Mode::Group(0));
    let mut p = publ(&t, 0);
    p.try_send(&[0]).unwrap();
    p.try_send(&[1]).unwrap();
    let m = b.try_recv().unwrap();
    assert_eq!(m.seq(), 0);
    assert_eq!(a.try_recv().unwrap().seq(), 1);
    assert_eq!(a.try_recv().unwrap_err(), RecvError::Empty);
    drop(m);
    p.try_send(&[2]).unwrap();
    assert_eq!(a.try_recv().unwrap().payload(), &[2]);
}

#[test]
fn dead_publisher_claim_is_cancelled() {
    let t = Admin::heap(&geo(8, 64, 2), 0).unwrap();
    let mut s = sub(&t, 0, Mode::Lossless);
    let mut dead = publ(&t, 0);
    let mut live = publ(&t, 1);
    let loan = dead.try_loan(4).unwrap();
    std::mem::forget(loan);
    live.try_send(b"after").unwrap();
    assert_eq!(s.try_recv().unwrap_err(), RecvError::Empty, "blocked behind the claim");
    assert_eq!(t.cancel_claims_of(0, &PollWaiter).unwrap(), 1);
    assert_eq!(s.try_recv().unwrap().payload(), b"after");
    assert_eq!(t.stats().cancelled, 1);
}

#[test]
fn dead_subscriber_stops_gating() {
    let (t, s, mut p) = full_topic();
    assert_eq!(p.try_send(&[9]).unwrap_err(), SendError::Full);
    std::mem::forget(s);
    t.release_subscriber(0, &PollWaiter).unwrap();
    p.try_send(&[9]).unwrap();
}

#[test]
fn demotion_unblocks_and_is_reported() {
    let (t, mut s, mut p) = full_topic();
    t.demote(0, &PollWaiter).unwrap();
    for i in 4..10 {
        p.try_send(&[i]).unwrap();
    }
    assert_eq!(s.try_recv().unwrap_err(), RecvError::Demoted);
    assert_eq!(s.mode(), Mode::Lossy);
    assert!(matches!(s.try_recv(), Err(RecvError::Lagged(_))));
    assert_eq!(t.stats().demotions, 1);
}

#[test]
fn late_joiner_from_oldest() {
    let t = Topic::heap(&geo(8, 64, 1), 0).unwrap();
    let mut p = publ(&t, 0);
    for i in 0..20u8 {
        p.try_send(&[i]).unwrap();
    }
    let mut s = Subscriber::attach(
        &t,
        0,
        SubscriberOptions { mode: Mode::Lossless, from_oldest: true, ..Default::default() },
        w(),
        &|_| false,
    )
    .unwrap();
    let first = s.try_recv().unwrap().payload()[0];
    assert!((12..=13).contains(&first), "{first}");
}

#[test]
fn blocking_send_and_recv_across_threads() {
    let t = Topic::heap(&geo(8, 2000, 1), 0).unwrap();
    let mut s = Subscriber::attach(
        &t,
        0,
        SubscriberOptions { idle: IdleStrategy::Blocking, ..Default::default() },
        w(),
        &|_| false,
    )
    .unwrap();
    let t2 = t.clone();
    let h = std::thread::spawn(move || {
        let mut p =
            Publisher::attach(&t2, 0, w(), PublisherOptions { idle: IdleStrategy::Blocking, ..Default::default() })
                .unwrap();
        for i in 0..5000u64 {
            p.send(&payload(i, (i % 2000) as usize)).unwrap();
        }
    });
    for i in 0..5000u64 {
        let m = s.recv_timeout(std::time::Duration::from_secs(20)).unwrap();
        assert_eq!(m.payload(), &payload(i, (i % 2000) as usize)[..]);
    }
    h.join().unwrap();
}
