//! Pipes and descriptor flags.

use std::os::fd::{BorrowedFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::signal::{self, SigHandler, Signal};

use crate::error::{fd_object, OsError, Result};

/// Writes of at most this many bytes to a pipe are atomic (never interleaved with
/// other writers' data).
pub const PIPE_BUF: usize = libc::PIPE_BUF;

/// Both ends of a pipe.
#[derive(Debug)]
pub struct Pipe {
    /// The end to read from.
    pub read: OwnedFd,
    /// The end to write to.
    pub write: OwnedFd,
}

/// Creates a pipe with both ends close-on-exec (`pipe2(O_CLOEXEC)`), blocking.
pub fn pipe() -> Result<Pipe> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| OsError::nix("pipe2", "new pipe", e))?;
    Ok(Pipe { read, write })
}

/// Turns `O_NONBLOCK` on or off.
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> Result<()> {
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(|e| OsError::nix("F_GETFL", fd_object("", fd), e))?;
    let mut flags = OFlag::from_bits_retain(flags);
    flags.set(OFlag::O_NONBLOCK, on);
    fcntl(fd, FcntlArg::F_SETFL(flags)).map(drop).map_err(|e| OsError::nix("F_SETFL(O_NONBLOCK)", fd_object("", fd), e))
}

/// Turns `FD_CLOEXEC` on or off.
pub fn set_cloexec(fd: BorrowedFd<'_>, on: bool) -> Result<()> {
    let flags = fcntl(fd, FcntlArg::F_GETFD).map_err(|e| OsError::nix("F_GETFD", fd_object("", fd), e))?;
    let mut flags = FdFlag::from_bits_retain(flags);
    flags.set(FdFlag::FD_CLOEXEC, on);
    fcntl(fd, FcntlArg::F_SETFD(flags)).map(drop).map_err(|e| OsError::nix("F_SETFD(FD_CLOEXEC)", fd_object("", fd), e))
}

/// Bytes queued in the pipe behind `fd` (either end), not yet read (`ioctl(FIONREAD)`).
pub fn queued(fd: BorrowedFd<'_>) -> Result<usize> {
    ioctl_count(fd, libc::FIONREAD, "ioctl(FIONREAD)", "")
}

/// A byte count from an `ioctl` that writes one `c_int` (`FIONREAD`, `SIOCOUTQ`); `op` and `kind` name the call
/// and the descriptor in errors.
pub(crate) fn ioctl_count(fd: BorrowedFd<'_>, request: libc::Ioctl, op: &'static str, kind: &str) -> Result<usize> {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: `request` is one of the ioctls that write exactly one c_int through the pointer, which points to a
    // live local.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request, &mut n) };
    if rc < 0 {
        return Err(OsError::last(op, fd_object(kind, fd)));
    }
    Ok(n.max(0) as usize)
}

/// How many bytes the pipe behind `fd` can hold (`F_GETPIPE_SZ`).
pub fn capacity(fd: BorrowedFd<'_>) -> Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: F_GETPIPE_SZ takes no argument and has no memory-safety preconditions (EBADF for a closed number).
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETPIPE_SZ) };
    if n < 0 {
        return Err(OsError::last("F_GETPIPE_SZ", fd_object("", fd)));
    }
    Ok(n as usize)
}

/// A duplicate of `fd` at descriptor number `min` or above, close-on-exec (`F_DUPFD_CLOEXEC`): for ends handed
/// to a child, which must not land on 0-2, where the child's standard streams go.
pub fn dup_at_least(fd: BorrowedFd<'_>, min: i32) -> Result<OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: F_DUPFD_CLOEXEC has no memory-safety preconditions; it returns a new descriptor or -1.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    if n < 0 {
        return Err(OsError::last("F_DUPFD_CLOEXEC", fd_object("", fd)));
    }
    // SAFETY: `n` is a descriptor fcntl just created for us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// 32 random bits from the kernel (`getrandom`), for identifiers that must not collide by accident.
pub fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    loop {
        // SAFETY: getrandom writes at most `b.len()` bytes into the live local buffer.
        let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
        if n == b.len() as isize {
            return u32::from_ne_bytes(b);
        }
        // EINTR, or (before the pool is ready, never for 4 bytes after boot) a short read: try again.
    }
}

/// Ignores `SIGPIPE` process-wide (idempotent), so writing to a pipe or socket whose
/// reader is gone returns `EPIPE` instead of killing the process. Replaces any
/// handler installed for it. The pipe transport does not rely on it (a later `SIG_DFL` would undo it); it writes
/// under [`SigpipeBlocked`](crate::SigpipeBlocked).
pub fn ignore_sigpipe() {
    // SAFETY: installing SIG_IGN runs no code in signal context, so none of
    // signal()'s handler-safety requirements apply. It cannot fail for SIGPIPE.
    let _ = unsafe { signal::signal(Signal::SIGPIPE, SigHandler::SigIgn) };
}

/// Gives `SIGHUP` back its default disposition (ends the process), replacing any handler installed for it, so a
/// flag-setting handler can be registered on top (signal-hook chains only to real handlers, not to `SIG_DFL`).
pub fn default_sighup() -> Result<()> {
    // SAFETY: installing SIG_DFL runs no code in signal context, so none of signal()'s handler-safety requirements
    // apply.
    unsafe { signal::signal(Signal::SIGHUP, SigHandler::SigDfl) }
        .map(drop)
        .map_err(|e| OsError::nix("signal(SIGHUP, SIG_DFL)", "SIGHUP", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn fd_flags(fd: BorrowedFd<'_>) -> FdFlag {
        FdFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFD).unwrap())
    }

    fn fl_flags(fd: BorrowedFd<'_>) -> OFlag {
        OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL).unwrap())
    }

    #[test]
    fn pipe_is_cloexec_and_flags_toggle() {
        use std::os::fd::AsFd;
        let p = pipe().unwrap();
        for fd in [p.read.as_fd(), p.write.as_fd()] {
            assert!(fd_flags(fd).contains(FdFlag::FD_CLOEXEC));
            assert!(!fl_flags(fd).contains(OFlag::O_NONBLOCK));
        }
        set_cloexec(p.read.as_fd(), false).unwrap();
        assert!(!fd_flags(p.read.as_fd()).contains(FdFlag::FD_CLOEXEC));
        set_cloexec(p.read.as_fd(), true).unwrap();
        assert!(fd_flags(p.read.as_fd()).contains(FdFlag::FD_CLOEXEC));

        set_nonblocking(p.read.as_fd(), true).unwrap();
        assert!(fl_flags(p.read.as_fd()).contains(OFlag::O_NONBLOCK));
        let mut r = std::fs::File::from(p.read);
        let mut buf = [0u8; 4];
        let e = r.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
        set_nonblocking(r.as_fd(), false).unwrap();
        assert!(!fl_flags(r.as_fd()).contains(OFlag::O_NONBLOCK));

        let mut w = std::fs::File::from(p.write);
        w.write_all(b"ping").unwrap();
        r.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        const { assert!(PIPE_BUF >= 512) };
    }

    #[test]
    fn queued_counts_unread_bytes_from_either_end() {
        use std::os::fd::AsFd;
        let p = pipe().unwrap();
        assert_eq!(queued(p.read.as_fd()).unwrap(), 0);
        nix::unistd::write(&p.write, b"hello").unwrap();
        assert_eq!(queued(p.read.as_fd()).unwrap(), 5);
        assert_eq!(queued(p.write.as_fd()).unwrap(), 5);
        assert!(capacity(p.write.as_fd()).unwrap() >= PIPE_BUF);
    }

    #[test]
    fn duplicates_land_high_and_random_ids_differ() {
        use std::os::fd::{AsFd, AsRawFd};
        let p = pipe().unwrap();
        let d = dup_at_least(p.read.as_fd(), 100).unwrap();
        assert!(d.as_raw_fd() >= 100);
        assert!(fd_flags(d.as_fd()).contains(FdFlag::FD_CLOEXEC));
        assert!((0..8).map(|_| random_u32()).collect::<std::collections::HashSet<_>>().len() > 1);
    }

    #[test]
    fn sigpipe_ignored_gives_epipe() {
        ignore_sigpipe();
        ignore_sigpipe();
        let p = pipe().unwrap();
        drop(p.read);
        let e = nix::unistd::write(&p.write, b"x").unwrap_err();
        assert_eq!(e, nix::errno::Errno::EPIPE);
    }
}
