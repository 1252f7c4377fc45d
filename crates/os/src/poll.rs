//! Waiting for descriptors to become ready (`poll(2)`).

use std::marker::PhantomData;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use nix::errno::Errno;
pub use nix::poll::PollFlags;

use crate::error::{OsError, Result};

/// `POLLRDHUP`: the peer of a stream socket closed it, or shut down its writing half (Linux; `nix`'s
/// [`PollFlags`] has no name for it).
pub const POLLRDHUP: PollFlags = PollFlags::from_bits_retain(libc::POLLRDHUP);

/// One descriptor to wait for, and what it reported. (Unlike `nix`'s, its [`PollFd::revents`] keeps every bit
/// the kernel set, `POLLRDHUP` included.)
#[derive(Clone, Copy, Debug)]
#[repr(transparent)]
pub struct PollFd<'fd> {
    raw: libc::pollfd,
    /// The descriptor stays open while it is polled.
    _fd: PhantomData<BorrowedFd<'fd>>,
}

impl<'fd> PollFd<'fd> {
    /// Waits for `events` on `fd` (errors and hang-ups are always reported).
    pub fn new(fd: BorrowedFd<'fd>, events: PollFlags) -> PollFd<'fd> {
        PollFd { raw: libc::pollfd { fd: fd.as_raw_fd(), events: events.bits(), revents: 0 }, _fd: PhantomData }
    }

    /// What the last [`poll`] reported for this descriptor (empty before).
    pub fn revents(&self) -> PollFlags {
        PollFlags::from_bits_retain(self.raw.revents)
    }
}

/// Waits until one of `fds` reports one of its events (or an error or hang-up), at most `timeout` (`None`: no
/// limit). The timeout is rounded up to whole milliseconds, so a wait never ends early (and never spins).
/// Returns how many descriptors are ready; read each one's [`PollFd::revents`].
///
/// An interrupted wait (`EINTR`) counts as a wake-up with nothing ready (`Ok(0)`): callers loop and recompute
/// what is left of their deadline.
///
/// ```
/// use shmbus_os::poll::{poll, PollFd, PollFlags};
/// use std::os::fd::AsFd;
/// use std::time::Duration;
///
/// let p = shmbus_os::pipe()?;
/// let mut fds = [PollFd::new(p.write.as_fd(), PollFlags::POLLOUT)];
/// assert_eq!(poll(&mut fds, Some(Duration::ZERO))?, 1, "an empty pipe has room");
/// let mut fds = [PollFd::new(p.read.as_fd(), PollFlags::POLLIN)];
/// assert_eq!(poll(&mut fds, Some(Duration::from_millis(1)))?, 0, "and nothing to read");
/// # Ok::<(), shmbus_os::OsError>(())
/// ```
pub fn poll(fds: &mut [PollFd<'_>], timeout: Option<Duration>) -> Result<usize> {
    let ms = timeout_ms(timeout);
    // SAFETY: `PollFd` is a transparent `libc::pollfd`; `fds` is a live, exclusively borrowed array of
    // `fds.len()` of them for the whole call, and each descriptor is borrowed (open) for as long as its `PollFd`.
    let n = unsafe { libc::poll(fds.as_mut_ptr().cast::<libc::pollfd>(), fds.len() as libc::nfds_t, ms) };
    match Errno::result(n) {
        Ok(n) => Ok(n as usize),
        Err(Errno::EINTR) => Ok(0),
        Err(e) => Err(OsError::nix("poll", format!("{} descriptors", fds.len()), e)),
    }
}

/// `poll`'s timeout: `-1` for none, else the milliseconds rounded up, at most `i32::MAX`.
fn timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    let Some(d) = timeout else { return -1 };
    d.as_nanos().div_ceil(1_000_000).min(libc::c_int::MAX as u128) as libc::c_int
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn timeouts_round_up() {
        assert_eq!((timeout_ms(None)), -1);
        assert_eq!((timeout_ms(Some(Duration::ZERO))), 0);
        assert_eq!((timeout_ms(Some(Duration::from_nanos(1)))), 1);
        assert_eq!((timeout_ms(Some(Duration::from_micros(1500)))), 2);
        assert_eq!((timeout_ms(Some(Duration::MAX))), i32::MAX);
    }

    #[test]
    fn readiness_and_hang_up() {
        let p = crate::pipe().unwrap();
        let mut fds = [PollFd::new(p.read.as_fd(), PollFlags::POLLIN)];
        assert_eq!(poll(&mut fds, Some(Duration::ZERO)).unwrap(), 0);
        nix::unistd::write(&p.write, b"x").unwrap();
        let mut fds = [PollFd::new(p.read.as_fd(), PollFlags::POLLIN)];
        assert_eq!(poll(&mut fds, None).unwrap(), 1);
        assert!(fds[0].revents().contains(PollFlags::POLLIN));
        drop(p.write);
        let mut fds = [PollFd::new(p.read.as_fd(), PollFlags::empty())];
        assert_eq!(poll(&mut fds, Some(Duration::from_secs(5))).unwrap(), 1);
        assert!(fds[0].revents().contains(PollFlags::POLLHUP));
    }
}
