//! Waiting: idle strategies, the asymmetric barrier, and the sleeper/waker handshake over per-slot wake-ups.
//!
//! A sleeper raises its bit in a waiter mask, issues the **heavy** barrier, re-checks its condition and only then
//! sleeps. A waker makes its change visible (a Release store), issues the **light** barrier and reads the mask; on
//! a raised mask it takes the bits with one `swap(0)` and posts one wake-up per bit, so each sleep is posted
//! once. The pair (heavy on the sleeper, light on the waker) gives the store→load ordering both sides need, while
//! the waker (on the hot path) pays only a compiler fence when the process is registered for
//! `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`; otherwise the light barrier is a full fence. Every sleep is a
//! timed wait of at most [`MAX_SLEEP`], so even a missed post can only delay, never hang.

use crate::sync::{fence, spin_hint, yield_now, AtomicU64, Ordering};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// Longest single sleep; a sleeper re-checks its condition at least this often.
pub const MAX_SLEEP: Duration = Duration::from_millis(100);

static LIGHT_IS_COMPILER_FENCE: AtomicBool = AtomicBool::new(false);

/// Declares that this process is registered for `MEMBARRIER_CMD_GLOBAL_EXPEDITED`, so the light barrier may be a
/// compiler fence.
///
/// # Safety
/// Only call after a successful registration, and only if every process that may call [`Waiter::heavy`] against
/// this process's memory issues `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` there.
pub unsafe fn set_light_barrier_cheap(cheap: bool) {
    LIGHT_IS_COMPILER_FENCE.store(cheap, Ordering::Relaxed);
}

/// Whether this process declared itself registered for `MEMBARRIER_CMD_GLOBAL_EXPEDITED`
/// ([`set_light_barrier_cheap`]).
pub fn light_barrier_cheap() -> bool {
    // Relaxed: a process-wide configuration flag set once at start-up.
    LIGHT_IS_COMPILER_FENCE.load(Ordering::Relaxed)
}

/// The waker's half of the asymmetric barrier (see the module docs), for a topic on which every participant's
/// heavy barrier is `membarrier` (`cheap`, the topic's barrier mode as copied at attach) or not.
///
/// A compiler fence is enough only when both hold: this process is registered, and the topic's mode promises that
/// every process attached to it issues `membarrier` as its heavy barrier. A topic created in full-fence mode (its
/// owner could not use `membarrier`) makes every waker pay a full fence, so a sleeper whose heavy barrier is a
/// local fence still pairs with it. (Issue 8, defect 5: processes that disagreed on membarrier lost wake-ups.)
#[inline]
pub(crate) fn light(cheap: bool) {
    #[cfg(not(loom))]
    {
        if cheap {
            std::sync::atomic::compiler_fence(Ordering::SeqCst);
            return;
        }
    }
    let _ = cheap;
    fence(Ordering::SeqCst);
}

/// Who is sleeping or being woken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// The subscriber in this slot (waiting for data).
    Subscriber(usize),
    /// The publisher in this slot (waiting for space).
    Publisher(usize),
}

/// The blocking primitive behind a topic: one counting wake-up per slot (semaphore-like), plus the heavy barrier.
///
/// The OS layer implements it with futex words in the readers object and `membarrier` (`shmbus_shm::FutexWaiter`); tests and loom models with in-process
/// primitives.
pub trait Waiter: Send + Sync {
    /// Posts the target's wake-up once.
    fn post(&self, target: Target);
    /// Takes every pending post of the target's wake-up without blocking.
    fn drain(&self, target: Target);
    /// Waits for one post until `deadline`; `true` if posted. Spurious `true` is allowed.
    fn wait_until(&self, target: Target, deadline: Instant) -> bool;
    /// The sleeper's half of the asymmetric barrier: a full barrier in every thread of every process that uses
    /// the cheap light barrier.
    fn heavy(&self) {
        fence(Ordering::SeqCst);
    }
}

/// A waiter without wake-ups: blocking degrades to sleeping in short slices. For tests and in-process use.
#[derive(Debug, Default)]
pub struct PollWaiter;

impl Waiter for PollWaiter {
    fn post(&self, _target: Target) {}
    fn drain(&self, _target: Target) {}
    fn wait_until(&self, _target: Target, deadline: Instant) -> bool {
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep((deadline - now).min(Duration::from_micros(200)));
        }
        false
    }
}

/// How a handle waits when it cannot make progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IdleStrategy {
    /// Spin on the CPU. Lowest latency; with more spinning threads than cores it is a misuse.
    BusySpin,
    /// Spin a little, then yield the CPU between polls. Never sleeps on the wake-up.
    SpinThenYield,
    /// Sleep on the wake-up as soon as there is nothing to do.
    Blocking,
    /// Spin, then yield, then sleep (the default).
    #[default]
    Adaptive,
}

/// Per-wait progression through an idle strategy.
#[derive(Debug)]
pub(crate) struct Backoff {
    strategy: IdleStrategy,
    step: u32,
}

/// What the backoff wants the caller to do next.
pub(crate) enum Step {
    /// Poll again now.
    Poll,
    /// Go through the sleep handshake.
    Sleep,
}

const SPINS: u32 = 16;
const YIELDS: u32 = 32;

impl Backoff {
    pub(crate) fn new(strategy: IdleStrategy) -> Backoff {
        Backoff { strategy, step: 0 }
    }

    /// Exponential spinning (1, 2, 4 … 64 pause hints), so a poller does not keep stealing the cache line it
    /// waits on from the thread that must write it.
    fn spin(&self) {
        for _ in 0..1u32 << self.step.min(6) {
            spin_hint();
        }
    }

    pub(crate) fn next(&mut self) -> Step {
        self.step = self.step.saturating_add(1);
        match self.strategy {
            IdleStrategy::BusySpin => {
                spin_hint();
                Step::Poll
            }
            IdleStrategy::SpinThenYield => {
                if self.step < SPINS {
                    self.spin()
                } else {
                    yield_now()
                }
                Step::Poll
            }
            IdleStrategy::Blocking => Step::Sleep,
            IdleStrategy::Adaptive => {
                if self.step < SPINS {
                    self.spin();
                    Step::Poll
                } else if self.step < SPINS + YIELDS {
                    yield_now();
                    Step::Poll
                } else {
                    Step::Sleep
                }
            }
        }
    }
}

/// A deadline check that returns `true` once `deadline` has passed.
pub(crate) fn expired(deadline: Option<Instant>) -> bool {
    match deadline {
        // Under loom, time does not advance with the model; models never use deadlines.
        Some(d) => Instant::now() >= d,
        None => false,
    }
}

/// The next sleep's deadline: the caller's deadline capped at [`MAX_SLEEP`] from now.
pub(crate) fn sleep_deadline(deadline: Option<Instant>) -> Instant {
    let cap = Instant::now() + MAX_SLEEP;
    match deadline {
        Some(d) if d < cap => d,
        _ => cap,
    }
}

/// The first half of the sleeper's handshake (see the module docs), without sleeping: takes stale posts, raises
/// `target`'s bit (`(mask, bit)`, in the waiter mask its wakers read), issues the heavy barrier, then runs
/// `recheck`.
///
/// If the re-check finds progress (`Ok(Some(v))`), the bit is lowered again and `v` returned. If it finds none
/// (`Ok(None)`), the bit stays raised: the next waker takes it and posts `target`'s wake-up once, so whoever waits
/// on that wake-up (this thread in [`sleep_once`], or a waker thread watching the word) learns of the progress.
/// An error from the re-check is returned at once with the bit still raised (it costs a spurious post at most).
pub(crate) fn arm<T, E>(
    waiter: &dyn Waiter,
    target: Target,
    (mask, bit): (&AtomicU64, u64),
    recheck: impl FnOnce() -> Result<Option<T>, E>,
) -> Result<Option<T>, E> {
    waiter.drain(target);
    // Relaxed RMW: ordered before the re-check by the heavy barrier that follows (pairs with the waker's light
    // barrier between its Release store, a publisher's stamp or a releasing cursor, and its mask load).
    mask.fetch_or(bit, Ordering::Relaxed);
    waiter.heavy();
    if let Some(v) = recheck()? {
        // Relaxed: a bit lowered late (or already taken by a waker) costs at most a spurious post, which the next
        // sleep drains.
        mask.fetch_and(!bit, Ordering::Relaxed);
        return Ok(Some(v));
    }
    Ok(None)
}

/// One sleep of the sleeper's half of the handshake (see the module docs), shared by publishers waiting for space
/// and subscribers waiting for data: [`arm`], then, if the re-check found no progress, one sleep until a post or
/// [`sleep_deadline`], returning `Ok(None)` (the caller polls again).
pub(crate) fn sleep_once<T, E>(
    waiter: &dyn Waiter,
    target: Target,
    mask: (&AtomicU64, u64),
    deadline: Option<Instant>,
    recheck: impl FnOnce() -> Result<Option<T>, E>,
) -> Result<Option<T>, E> {
    if let Some(v) = arm(waiter, target, mask, recheck)? {
        return Ok(Some(v));
    }
    waiter.wait_until(target, sleep_deadline(deadline));
    Ok(None)
}
