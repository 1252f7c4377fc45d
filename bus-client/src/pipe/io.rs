//! Waiting on pipe descriptors: deadlines and `poll(2)`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

/// How long an operation may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Not at all (`try_*`).
    Now,
    /// Until this instant (`*_timeout`).
    Until(Instant),
    /// As long as it takes.
    Forever,
}

impl Wait {
    /// `Until(now + timeout)`, or `Forever` if that instant cannot be represented.
    pub(crate) fn timeout(t: Duration) -> Wait {
        Instant::now().checked_add(t).map_or(Wait::Forever, Wait::Until)
    }

    /// The `poll` timeout in milliseconds (rounded up, so a wait never ends early and spins), `-1` for ever, or
    /// `None` if the deadline has passed.
    pub(crate) fn poll_ms(self) -> Option<libc::c_int> {
        match self {
            Wait::Now => Some(0),
            Wait::Forever => Some(-1),
            Wait::Until(d) => {
                let now = Instant::now();
                if now >= d {
                    return None;
                }
                let left = d - now;
                let ms = left.as_nanos().div_ceil(1_000_000);
                Some(ms.min(libc::c_int::MAX as u128) as libc::c_int)
            }
        }
    }
}

/// A `pollfd` for `fd`.
pub(crate) fn pollfd(fd: BorrowedFd<'_>, events: libc::c_short) -> libc::pollfd {
    libc::pollfd { fd: fd.as_raw_fd(), events, revents: 0 }
}

/// `poll(2)` on `fds` for at most `ms` milliseconds (`-1`: no limit). An interrupted poll counts as a wake-up with
/// nothing ready (callers loop and recompute what is left of their deadline).
pub(crate) fn poll(fds: &mut [libc::pollfd], ms: libc::c_int) -> io::Result<usize> {
    // SAFETY: `fds` is a live, exclusively borrowed array of `fds.len()` pollfd structs for the whole call.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted { Ok(0) } else { Err(e) };
    }
    Ok(n as usize)
}

/// Waits until `fd` reports one of `events` (or an error or hang-up), at most as long as `wait` allows.
/// `Ok(false)`: the deadline passed.
pub(crate) fn wait_for(fd: BorrowedFd<'_>, events: libc::c_short, wait: Wait) -> io::Result<bool> {
    let Some(ms) = wait.poll_ms() else { return Ok(false) };
    let mut p = [pollfd(fd, events)];
    poll(&mut p, ms)?;
    // Woken, interrupted or timed out: the caller retries its operation, which tells which.
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_timeouts_round_up_and_expire() {
        assert_eq!(Wait::Now.poll_ms(), Some(0));
        assert_eq!(Wait::Forever.poll_ms(), Some(-1));
        assert_eq!(Wait::Until(Instant::now()).poll_ms(), None);
        let ms = Wait::timeout(Duration::from_micros(1500)).poll_ms().unwrap();
        assert!((1..=2).contains(&ms), "{ms}");
        assert_eq!(Wait::timeout(Duration::MAX), Wait::Forever);
    }
}
