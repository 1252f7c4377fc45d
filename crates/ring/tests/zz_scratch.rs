//! scratch
use shmbus_ring::*;
use std::sync::Arc;
#[test]
fn member_behind_held_entry() {
    let g = Geometry::new(2, 64, 16 * 1024, 1, 4, 1);
    let t = Topic::heap(&g, 0).unwrap();
    t.open_group(0, false, &PollWaiter, &|_| false).unwrap();
    let w = Arc::new(PollWaiter);
    let mut a =
        Subscriber::attach(&t, 0, SubscriberOptions { mode: Mode::Group(0), ..Default::default() }, w.clone(), &|_| {
            false
        })
        .unwrap();
    let mut b =
        Subscriber::attach(&t, 1, SubscriberOptions { mode: Mode::Group(0), ..Default::default() }, w.clone(), &|_| {
            false
        })
        .unwrap();
    let mut p = Publisher::attach(&t, 0, w, PublisherOptions::default()).unwrap();
    p.try_send(&[0]).unwrap();
    p.try_send(&[1]).unwrap();
    let m = b.try_recv().unwrap();
    assert_eq!(m.seq(), 0);
    assert_eq!(a.try_recv().unwrap().seq(), 1);
    let r = a.try_recv();
    println!("{:?}", r.as_ref().map(|m| m.seq()));
    assert_eq!(r.unwrap_err(), RecvError::Empty);
    drop(m);
}
