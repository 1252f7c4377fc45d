//! Clock readings in nanoseconds.

use nix::time::{clock_gettime, ClockId};

fn read_ns(clock: ClockId) -> u64 {
    // These clocks always exist on Linux; clock_gettime can only fail for a bad id.
    let ts = clock_gettime(clock).expect("clock_gettime of a standard clock");
    (ts.tv_sec() as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec() as u64)
}

/// `CLOCK_MONOTONIC` in nanoseconds (vDSO `clock_gettime`, no system call).
/// Never goes backwards; the epoch is unspecified (boot, on Linux) and shared by all
/// processes on the machine, so values may be compared across processes.
pub fn monotonic_ns() -> u64 {
    read_ns(ClockId::CLOCK_MONOTONIC)
}

/// `CLOCK_REALTIME` in nanoseconds since the Unix epoch. Can jump when the wall
/// clock is set; use only for timestamps shown to people or other machines.
pub fn realtime_ns() -> u64 {
    read_ns(ClockId::CLOCK_REALTIME)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    #[test]
    fn monotonic_increases() {
        let a = monotonic_ns();
        std::thread::sleep(Duration::from_millis(2));
        let b = monotonic_ns();
        assert!(b > a);
        assert!(b - a >= 2_000_000);
    }

    #[test]
    fn realtime_matches_system_time() {
        let sys = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
        let rt = realtime_ns();
        assert!(rt.abs_diff(sys) < 5_000_000_000);
    }
}
