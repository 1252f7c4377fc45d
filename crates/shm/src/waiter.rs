//! The [`Waiter`] of a shared-memory topic: blocking waits on the topic's wake-up words (32-bit futex words in the
//! readers object, one per subscriber slot and per publisher slot), and the `membarrier` heavy barrier.
//!
//! The words live in the readers object, which only admitted clients map (through descriptors the daemon hands
//! out; the object is mode 0600, the daemon's own): no file in /dev/shm carries a topic's wake-ups, so nothing a
//! user outside the topic's policy can open, truncate or post to (issue 9, hole 1).
//!
//! A word counts posts not yet consumed: a waker increments it and wakes one sleeper; a sleeper that finds it
//! nonzero takes every post with `swap(0)`, else sleeps in the kernel while it is zero. The count only decides
//! whether to sleep; what the sleeper waits for is re-checked in the ring's own words, so a lost or spurious post
//! costs at most one bounded sleep (see `shmbus_ring::wait`).

use shmbus_os::futex;
use shmbus_ring::wait::{set_light_barrier_cheap, Target, Waiter};
use shmbus_ring::Topic;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static BARRIER: OnceLock<bool> = OnceLock::new();

/// Longest single kernel sleep; a waiter re-reads its word and its deadline at least this often.
const SLICE: Duration = Duration::from_millis(50);

/// Registers this process for `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` once, so the publish path pays only a
/// compiler fence for the waiter handshake. Returns whether the cheap barrier is in use.
pub fn init_barrier() -> bool {
    *BARRIER.get_or_init(|| match shmbus_os::register_global_expedited() {
        Ok(true) => {
            // SAFETY: registration succeeded, and every heavy barrier issued by shmbus processes against shared
            // topics goes through `FutexWaiter::heavy`, which issues MEMBARRIER_CMD_GLOBAL_EXPEDITED.
            unsafe { set_light_barrier_cheap(true) };
            true
        }
        _ => false,
    })
}

/// The [`Waiter`] of a shared-memory topic: one futex word per slot, in the topic's readers object.
#[derive(Clone)]
pub struct FutexWaiter {
    topic: Topic,
}

impl std::fmt::Debug for FutexWaiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FutexWaiter").field("geometry", &self.topic.geometry()).finish()
    }
}

impl FutexWaiter {
    /// A waiter over `topic`'s wake-up words (it keeps the mapping alive). Registers the `membarrier` barrier
    /// ([`init_barrier`]) if not done yet.
    pub fn new(topic: &Topic) -> FutexWaiter {
        init_barrier();
        FutexWaiter { topic: topic.clone() }
    }

    fn word(&self, t: Target) -> Option<&AtomicU32> {
        self.topic.wake_word(t)
    }
}

/// Takes every post of `w`.
fn consume(w: &AtomicU32) -> bool {
    // Acquire (tag WAKE): pairs with the Release increment in `post`, so a sleeper that takes a post sees what the
    // waker wrote before posting (the ring re-checks its own words with their own orderings anyway).
    w.swap(0, Ordering::Acquire) != 0
}

impl Waiter for FutexWaiter {
    fn post(&self, target: Target) {
        if let Some(w) = self.word(target) {
            // Release (tag WAKE): see `consume`. Wrapping after 2^32 unconsumed posts could only cost one bounded
            // sleep.
            w.fetch_add(1, Ordering::Release);
            // Every waiter, not one: besides the slot's own sleeper, a waker thread relaying the word to a
            // pollable descriptor may wait on it (bus-client's `wake` module); a wake taken by one must not leave
            // the other asleep. Costs nothing more with a single waiter.
            futex::wake(w, u32::MAX);
        }
    }

    fn drain(&self, target: Target) {
        if let Some(w) = self.word(target) {
            consume(w);
        }
    }

    fn wait_until(&self, target: Target, deadline: Instant) -> bool {
        let Some(w) = self.word(target) else {
            // No word (a read-only readers mapping): sleeps degrade to short bounded naps.
            let now = Instant::now();
            if deadline > now {
                std::thread::sleep((deadline - now).min(Duration::from_millis(1)));
            }
            return false;
        };
        loop {
            // Relaxed: only decides whether to sleep; the post is taken (and ordered) by `consume`.
            if w.load(Ordering::Relaxed) != 0 {
                return consume(w);
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // The kernel re-checks that the word is still 0 as it queues us, so a post between the load above and
            // the sleep returns at once (`Changed`) instead of being missed.
            // Every outcome (woken, changed, timed out, interrupted) loops back to re-read the word and the deadline.
            futex::wait(w, 0, (deadline - now).min(SLICE));
        }
    }

    fn heavy(&self) {
        // A full barrier in every registered process; falls back to a local fence when unsupported (then every
        // process's light barrier is a full fence too, see `init_barrier`).
        let _ = shmbus_os::global_expedited();
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shmbus_ring::Geometry;

    fn topic() -> Topic {
        Topic::heap(&Geometry::new(64, 256, 64 * 1024, 2, 3, 1), 0).unwrap()
    }

    #[test]
    fn a_post_wakes_a_sleeper_in_another_thread() {
        let w = FutexWaiter::new(&topic());
        let sleeper = {
            let w = w.clone();
            std::thread::spawn(move || w.wait_until(Target::Subscriber(2), Instant::now() + Duration::from_secs(10)))
        };
        std::thread::sleep(Duration::from_millis(20));
        w.post(Target::Subscriber(2));
        assert!(sleeper.join().unwrap());
        assert_eq!(w.word(Target::Subscriber(2)).unwrap().load(Ordering::Relaxed), 0, "the post was consumed");
    }

    #[test]
    fn posts_are_per_slot_and_drained() {
        let w = FutexWaiter::new(&topic());
        w.post(Target::Publisher(1));
        assert!(!w.wait_until(Target::Publisher(0), Instant::now() + Duration::from_millis(5)));
        w.drain(Target::Publisher(1));
        assert!(!w.wait_until(Target::Publisher(1), Instant::now() + Duration::from_millis(5)));
        w.post(Target::Publisher(1));
        assert!(w.wait_until(Target::Publisher(1), Instant::now() + Duration::from_secs(10)));
    }

    #[test]
    fn slots_outside_the_geometry_have_no_word() {
        let w = FutexWaiter::new(&topic());
        assert!(w.word(Target::Subscriber(3)).is_none());
        assert!(w.word(Target::Publisher(2)).is_none());
        w.post(Target::Subscriber(3));
        assert!(!w.wait_until(Target::Subscriber(3), Instant::now()));
    }
}
