//! Regression tests for issue 8, defects 4 (a publisher left asleep when the entry or gate it waits on is freed)
//! and 8 (an unbounded gate-scan retry a subscriber can provoke).

use shmbus_ring::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Longest any wait here may take before the test gives up (the ring's own sleeps are 100 ms).
const LIMIT: Duration = Duration::from_secs(20);

#[derive(Default)]
struct Sems {
    pending: HashMap<Target, u32>,
    posts: Vec<Target>,
    sleeping: Vec<Target>,
}

/// A waiter that records every post and whose sleeps ignore the ring's deadline: a sleeper wakes only when
/// posted (or after `LIMIT`), so a missing wake-up shows as a missing post, not as a 100 ms delay.
#[derive(Default)]
struct Recorder {
    sems: Mutex<Sems>,
    cv: Condvar,
}

impl Recorder {
    fn posts_to(&self, t: Target) -> usize {
        self.sems.lock().unwrap().posts.iter().filter(|&&p| p == t).count()
    }

    /// Waits until `t` is asleep in `wait_until`.
    fn await_sleeping(&self, t: Target) {
        let deadline = Instant::now() + LIMIT;
        let mut s = self.sems.lock().unwrap();
        while !s.sleeping.contains(&t) {
            assert!(Instant::now() < deadline, "{t:?} never went to sleep");
            s = self.cv.wait_timeout(s, Duration::from_millis(50)).unwrap().0;
        }
    }
}

impl Waiter for Recorder {
    fn post(&self, target: Target) {
        let mut s = self.sems.lock().unwrap();
        s.posts.push(target);
        *s.pending.entry(target).or_default() += 1;
        self.cv.notify_all();
    }

    fn drain(&self, target: Target) {
        self.sems.lock().unwrap().pending.insert(target, 0);
    }

    fn wait_until(&self, target: Target, _deadline: Instant) -> bool {
        let deadline = Instant::now() + LIMIT;
        let mut s = self.sems.lock().unwrap();
        s.sleeping.push(target);
        self.cv.notify_all();
        let posted = loop {
            if let Some(n) = s.pending.get_mut(&target).filter(|n| **n > 0) {
                *n -= 1;
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
            s = self.cv.wait_timeout(s, Duration::from_millis(50)).unwrap().0;
        };
        s.sleeping.retain(|&t| t != target);
        posted
    }
}

/// The subscriber's waiter in the gating-cursor test: shares the recorder's semaphores, and runs `hook` at its
/// first heavy barrier (the one `publish_gating_cursor` issues after storing the new cursor).
struct Hooked {
    rec: Arc<Recorder>,
    hook: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Waiter for Hooked {
    fn post(&self, target: Target) {
        self.rec.post(target)
    }
    fn drain(&self, target: Target) {
        self.rec.drain(target)
    }
    fn wait_until(&self, target: Target, deadline: Instant) -> bool {
        self.rec.wait_until(target, deadline)
    }
    fn heavy(&self) {
        std::sync::atomic::fence(Ordering::SeqCst);
        let hook = self.hook.lock().unwrap().take();
        if let Some(h) = hook {
            h();
        }
    }
}

fn blocking() -> PublisherOptions {
    PublisherOptions { idle: IdleStrategy::Blocking, ..Default::default() }
}

/// Publisher B finds the ring full because publisher A's older claim on the entry is unpublished, and sleeps; A
/// then commits its loan (`commit`) or aborts it (a skip marker): either frees the entry, and B must be posted.
fn freed_claim_wakes_the_sleeping_publisher(commit: bool) {
    let topic = Topic::heap(&Geometry::new(2, 8, 0, 2, 1, 0), 0).unwrap();
    let rec = Arc::new(Recorder::default());
    let mut a = Publisher::attach(&topic, 0, rec.clone(), blocking()).unwrap();
    let mut b = Publisher::attach(&topic, 1, rec.clone(), blocking()).unwrap();
    let mut loan = a.try_loan(8).unwrap();
    assert_eq!(loan.seq(), 0);
    assert_eq!(b.try_send(&[1; 8]), Ok(1));
    assert_eq!(b.try_send(&[2; 8]), Err(SendError::Full), "entry 0 still holds A's claim");
    let sleeper = std::thread::spawn(move || b.send_timeout(&[2; 8], LIMIT));
    rec.await_sleeping(Target::Publisher(1));
    if commit {
        loan.write_at(0, &[0; 8]);
        assert_eq!(loan.commit(), 0);
    } else {
        drop(loan);
    }
    let how = if commit { "A's commit" } else { "the skip marker of A's aborted loan" };
    assert_eq!(rec.posts_to(Target::Publisher(1)), 1, "{how} freed the entry B sleeps on: B must be posted");
    assert_eq!(sleeper.join().unwrap(), Ok(2));
}

/// Issue 8, defect 4 (commit): A's commit must post B (it used to wake subscribers only, leaving B to its timed
/// sleep).
#[test]
fn defect4_commit_wakes_publisher_waiting_on_the_claim() {
    freed_claim_wakes_the_sleeping_publisher(true);
}

/// Issue 8, defect 4 (skip marker): the same when A aborts its loan instead of committing it.
#[test]
fn defect4_aborted_loan_wakes_publisher_waiting_on_the_claim() {
    freed_claim_wakes_the_sleeping_publisher(false);
}

/// Issue 8, defect 4 (gating cursor raised): a lossless subscriber attaching from the oldest message first
/// publishes its cursor at message 1; a publisher sends message 2 (allowed), finds message 3 gated by that cursor
/// and sleeps; the attach then raises its cursor past what the tail shows may be overwritten (to 2), which frees
/// the entry: the publisher must be posted. The publisher runs inside the attach's heavy barrier, so the order
/// is fixed.
#[test]
fn defect4_raised_gating_cursor_wakes_publisher() {
    let admin = Admin::heap(&Geometry::new(2, 8, 0, 1, 1, 0), 0).unwrap();
    let rec = Arc::new(Recorder::default());
    let mut p = Publisher::attach(&admin, 0, rec.clone(), blocking()).unwrap();
    p.try_send(&[0; 8]).unwrap();
    p.try_send(&[1; 8]).unwrap();
    let sleeper: Arc<Mutex<Option<std::thread::JoinHandle<_>>>> = Arc::default();
    let (slot, rec2) = (sleeper.clone(), rec.clone());
    let hook = Box::new(move || {
        let handle = std::thread::spawn(move || {
            assert_eq!(p.try_send(&[2; 8]), Ok(2), "the first cursor (at 1) allows message 2");
            p.send_timeout(&[3; 8], LIMIT)
        });
        rec2.await_sleeping(Target::Publisher(0));
        *slot.lock().unwrap() = Some(handle);
    });
    let w = Arc::new(Hooked { rec: rec.clone(), hook: Mutex::new(Some(hook)) });
    let opts = SubscriberOptions { from_oldest: true, ..Default::default() };
    let mut s = Subscriber::attach(&admin, 0, opts, w, &|_| false).unwrap();
    assert_eq!(s.position(), 2, "the attach raised its cursor past message 1");
    assert_eq!(
        rec.posts_to(Target::Publisher(0)),
        1,
        "raising the cursor freed the entry: the publisher must be posted"
    );
    let handle = sleeper.lock().unwrap().take().expect("the hook ran");
    assert_eq!(handle.join().unwrap(), Ok(3));
    assert_eq!(s.try_recv().unwrap().seq(), 2);
    assert_eq!(s.try_recv().unwrap().seq(), 3);
}

/// Aborts the whole test process if the test is still running after `LIMIT`: a hang must fail, not stall CI.
fn watchdog(what: &'static str) -> Arc<AtomicBool> {
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    std::thread::spawn(move || {
        let deadline = Instant::now() + LIMIT;
        while Instant::now() < deadline {
            if d.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("watchdog: {what} still running after {LIMIT:?}; aborting");
        std::process::abort();
    });
    done
}

/// Issue 8, defect 8: a subscriber (anyone who can write the readers object) bumps the attach epoch without end
/// while a publisher sends. Every gate scan sees the epoch change and used to retry without limit, so `try_send`
/// could spin forever. Now it gives up after a few rounds, refuses the send as `Full` (never under-gating) and
/// counts it; and the sends go through again once the bumping stops.
#[test]
fn defect8_epoch_bumped_without_end_cannot_stall_try_send() {
    // 64 lossless subscribers that never read: a long scan, so the bumper's stores land inside it.
    let geo = Geometry::new(1024, 8, 0, 1, 64, 0);
    let (data, readers) = (Region::heap(geo.data_len()), Region::heap(geo.readers_len()));
    let admin = Admin::create(data, readers.clone(), &geo, 0, 1).unwrap();
    let w = Arc::new(PollWaiter);
    let _subs: Vec<Subscriber> = (0..64)
        .map(|s| Subscriber::attach(&admin, s, SubscriberOptions::default(), w.clone(), &|_| false).unwrap())
        .collect();
    let mut p = Publisher::attach(&admin, 0, w, PublisherOptions::default()).unwrap();
    let done = watchdog("try_send under a bumped epoch");
    let stop = Arc::new(AtomicBool::new(false));
    let bumper = {
        let (stop, readers) = (stop.clone(), readers.clone());
        std::thread::spawn(move || {
            // The attach epoch is the first word of the readers object's second line.
            let mut e = readers.peek_word(LINE);
            while !stop.load(Ordering::Relaxed) {
                e = e.wrapping_add(1);
                readers.poke_word(LINE, e);
            }
        })
    };
    // Keep sending until a scan was given up at least once (the bumper must have run during a scan); each
    // `try_send` must return.
    let mut sent = 0u64;
    while admin.stats().publishers.first().map_or(0, |s| s.gate_unsettled) == 0 {
        match p.try_send(&[1; 8]) {
            Ok(_) => sent += 1,
            Err(SendError::Full) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    bumper.join().unwrap();
    // Quiet again: the scan settles and sends go on (the subscribers still have room: 1024 entries).
    let before = sent;
    while sent < before + 4 && sent < 1000 {
        p.try_send(&[2; 8]).unwrap();
        sent += 1;
    }
    done.store(true, Ordering::Relaxed);
}
