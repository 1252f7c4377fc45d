//! Issue 8, defect 5: processes that disagree on membarrier. A topic records at creation whether its wake-ups rely
//! on `membarrier` in every participant; a process that is not registered for it is refused at attach instead of
//! silently pairing its local fence with its peers' compiler fences.
//!
//! The registration flag is process-wide, so this file holds one test and runs as a binary of its own.
#![cfg(not(loom))]

use shmbus_ring::wait::set_light_barrier_cheap;
use shmbus_ring::*;

#[test]
fn processes_that_disagree_on_membarrier_never_share_a_topic() {
    let geo = Geometry::new(8, 64, 4096, 1, 2, 0);

    // A creator that cannot use membarrier makes a full-fence topic: anyone may attach, and nobody uses the cheap
    // barrier on it, registered or not.
    let (data, readers) = (Region::heap(geo.data_len()), Region::heap(geo.readers_len()));
    let full = Admin::create(data.clone(), readers.clone(), &geo, 0, 1).unwrap();
    assert!(!full.barrier_is_cheap());
    // SAFETY: test-only; no other test runs in this process, and no heavy barrier pairs with this flag here.
    unsafe { set_light_barrier_cheap(true) };
    let joined = Topic::attach(data, readers).expect("a registered process joins a full-fence topic");
    assert!(!joined.barrier_is_cheap(), "a full-fence topic makes registered wakers pay a full fence too");

    // A registered creator makes a membarrier topic: registered processes use the cheap barrier on it...
    let (data, readers) = (Region::heap(geo.data_len()), Region::heap(geo.readers_len()));
    let cheap = Admin::create(data.clone(), readers.clone(), &geo, 0, 2).unwrap();
    assert!(cheap.barrier_is_cheap());
    assert!(Topic::attach(data.clone(), readers.clone()).unwrap().barrier_is_cheap());

    // ...and a process that is not registered (seccomp, an old kernel) is refused with a clear error.
    // SAFETY: as above.
    unsafe { set_light_barrier_cheap(false) };
    let refused = Topic::attach(data, readers).unwrap_err();
    assert_eq!(refused, AttachError::Barrier);
    assert_eq!(refused.to_string(), "the topic needs membarrier(2) wake-ups, which this process cannot use");
}
