//! A wall clock cheap enough to stamp every message: `CLOCK_REALTIME` extrapolated with the CPU's time-stamp
//! counter between readings of the real clock.
//!
//! A vDSO `clock_gettime(CLOCK_REALTIME)` costs 25-30 ns on the project's VM (its `rdtsc` is ordered by a fence
//! that also waits for the publisher's outstanding stores), as much as a whole message through the minimal ring;
//! extrapolating costs about 10 ns. Each thread keeps an anchor (a raw counter reading and the real time taken with
//! it) and re-reads the real clock once the anchor is a second old, so a timestamp is never more than a second
//! of counter drift away from `CLOCK_REALTIME` (well under a microsecond with an invariant TSC, and a wall-clock
//! step is followed within a second). The counter and its calibration are the `quanta` crate's, which falls
//! back to the OS's monotonic clock where the TSC is not invariant (then this costs what `clock_gettime` does).

use std::cell::Cell;
use std::sync::OnceLock;

/// How long an anchor is used before the real clock is read again.
const ANCHOR_NS: u64 = 1_000_000_000;

static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();

thread_local! {
    /// This thread's anchor: (raw counter, real time in ns at that reading); raw 0 means none yet.
    static ANCHOR: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

fn clock() -> &'static quanta::Clock {
    CLOCK.get_or_init(quanta::Clock::new)
}

/// Calibrates the counter now (a few milliseconds, once per process) rather than in the first
/// [`fast_realtime_ns`] call. Publishers call it when they open.
pub fn warm_up() {
    let _ = clock();
}

/// Nanoseconds since the Unix epoch, as [`crate::realtime_ns`] but extrapolated from this thread's last reading
/// of it (at most a second old) with the time-stamp counter: within the counter's drift over a second of
/// `CLOCK_REALTIME`, and not monotonic across a re-anchoring when the wall clock was stepped or slewed.
#[inline]
pub fn fast_realtime_ns() -> u64 {
    let c = clock();
    let raw = c.raw();
    ANCHOR.with(|a| {
        let (at, ns) = a.get();
        if at != 0 && raw >= at {
            let d = c.delta_as_nanos(at, raw);
            if d < ANCHOR_NS {
                return ns.wrapping_add(d);
            }
        }
        reanchor(c, a)
    })
}

#[cold]
fn reanchor(c: &quanta::Clock, a: &Cell<(u64, u64)>) -> u64 {
    let raw = c.raw().max(1);
    let ns = crate::realtime_ns();
    a.set((raw, ns));
    ns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_real_clock() {
        warm_up();
        for _ in 0..5 {
            let before = crate::realtime_ns();
            let fast = fast_realtime_ns();
            let after = crate::realtime_ns();
            // Extrapolated from an anchor at most a second old: within a millisecond of the real clock is a very
            // loose bound for a second of counter drift, and still catches a wrong scale or epoch.
            assert!(fast + 1_000_000 >= before && fast <= after + 1_000_000, "{before} <= {fast} <= {after}");
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }

    #[test]
    fn advances_between_calls() {
        let a = fast_realtime_ns();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let b = fast_realtime_ns();
        assert!(b >= a + 4_000_000, "{a} then {b}");
    }
}
