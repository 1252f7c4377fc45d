//! Waiting on pipe descriptors: deadlines and `poll(2)`.

use shmbus_os::{PollFd, PollFlags};
use std::io;
use std::os::fd::BorrowedFd;
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

    /// How long a `poll` may still wait: `Some(None)` for ever, `Some(Some(d))` at most `d` (zero for `Now`;
    /// [`shmbus_os::poll`] rounds up to whole milliseconds, so a wait never ends early and spins), or `None` if the
    /// deadline has passed.
    pub(crate) fn poll_timeout(self) -> Option<Option<Duration>> {
        match self {
            Wait::Now => Some(Some(Duration::ZERO)),
            Wait::Forever => Some(None),
            Wait::Until(d) => {
                let now = Instant::now();
                if now >= d {
                    return None;
                }
                Some(Some(d - now))
            }
        }
    }
}

/// `poll(2)` on `fds` for at most `timeout` (`None`: no limit). An interrupted poll counts as a wake-up with
/// nothing ready (callers loop and recompute what is left of their deadline).
pub(crate) fn poll(fds: &mut [PollFd<'_>], timeout: Option<Duration>) -> io::Result<usize> {
    shmbus_os::poll(fds, timeout).map_err(crate::error::os_to_io)
}

/// Waits until `fd` reports one of `events` (or an error or hang-up), at most as long as `wait` allows.
/// `Ok(false)`: the deadline passed.
pub(crate) fn wait_for(fd: BorrowedFd<'_>, events: PollFlags, wait: Wait) -> io::Result<bool> {
    let Some(timeout) = wait.poll_timeout() else { return Ok(false) };
    let mut p = [PollFd::new(fd, events)];
    poll(&mut p, timeout)?;
    // Woken, interrupted or timed out: the caller retries its operation, which tells which.
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_timeouts_expire() {
        assert_eq!(Wait::Now.poll_timeout(), Some(Some(Duration::ZERO)));
        assert_eq!(Wait::Forever.poll_timeout(), Some(None));
        assert_eq!(Wait::Until(Instant::now()).poll_timeout(), None);
        // What is left, never more than asked; shmbus_os::poll rounds it up to whole milliseconds.
        let left = Wait::timeout(Duration::from_micros(1500)).poll_timeout().unwrap().unwrap();
        assert!(left > Duration::ZERO && left <= Duration::from_micros(1500), "{left:?}");
        assert_eq!(Wait::timeout(Duration::MAX), Wait::Forever);
    }
}
