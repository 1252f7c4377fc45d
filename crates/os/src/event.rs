//! An event counter descriptor (`eventfd(2)`): readable while signalled, for waking a `poll(2)` or an async
//! reactor from another thread. Nonblocking and close-on-exec.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use nix::errno::Errno;
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::error::{OsError, Result};

/// A nonblocking, close-on-exec eventfd: [`Event::signal`] makes it readable, [`Event::drain`] takes every
/// signal. Signals from any number of threads coalesce into one readable state.
#[derive(Debug)]
pub struct Event(EventFd);

impl Event {
    /// A new, unsignalled event.
    pub fn new() -> Result<Event> {
        EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map(Event)
            .map_err(|e| OsError::nix("eventfd", "new event", e))
    }

    /// Makes the descriptor readable (adds 1 to its counter). Never blocks: a counter at its maximum is already
    /// readable, so a refused add loses nothing.
    pub fn signal(&self) {
        let _ = self.0.write(1);
    }

    /// Takes every signal without blocking; whether there was one.
    pub fn drain(&self) -> bool {
        match self.0.read() {
            Ok(n) => n > 0,
            // EAGAIN: nothing signalled. Any other error cannot happen on a valid eventfd with an 8-byte read.
            Err(Errno::EAGAIN) | Err(_) => false,
        }
    }
}

impl AsFd for Event {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for Event {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poll::{poll, PollFd, PollFlags};
    use std::time::Duration;

    fn readable(e: &Event) -> bool {
        let mut fds = [PollFd::new(e.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, Some(Duration::ZERO)).unwrap() == 1
    }

    #[test]
    fn signals_coalesce_and_drain() {
        let e = Event::new().unwrap();
        assert!(!readable(&e));
        assert!(!e.drain(), "nothing to take, and no blocking");
        e.signal();
        e.signal();
        assert!(readable(&e));
        assert!(e.drain());
        assert!(!readable(&e), "one drain takes both signals");
    }

    #[test]
    fn a_signal_from_another_thread_wakes_a_poll() {
        let e = std::sync::Arc::new(Event::new().unwrap());
        let e2 = e.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            e2.signal();
        });
        let mut fds = [PollFd::new(e.as_fd(), PollFlags::POLLIN)];
        assert_eq!(poll(&mut fds, Some(Duration::from_secs(10))).unwrap(), 1);
        t.join().unwrap();
    }

    #[test]
    fn the_descriptor_is_close_on_exec_and_nonblocking() {
        let e = Event::new().unwrap();
        let fd = nix::fcntl::fcntl(&e, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(fd & libc::FD_CLOEXEC, 0);
        let fl = nix::fcntl::fcntl(&e, nix::fcntl::FcntlArg::F_GETFL).unwrap();
        assert_ne!(fl & libc::O_NONBLOCK, 0);
    }
}
