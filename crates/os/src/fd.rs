//! Descriptor numbers handed between processes: what a number names (before anything owns it), and keeping
//! chosen descriptors open across `exec` in a child.
//!
//! These functions take a [`RawFd`], not a borrowed descriptor, on purpose: an inherited number may name nothing
//! open, or another file, and must be checked before anything takes ownership of it.

use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::error::{OsError, Result};

/// How a descriptor was opened (`F_GETFL & O_ACCMODE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessMode {
    /// `O_RDONLY`.
    ReadOnly,
    /// `O_WRONLY`.
    WriteOnly,
    /// `O_RDWR`.
    ReadWrite,
}

/// What descriptor number `fd` names: `(is a FIFO or pipe, inode number)` (`fstat`). A number nobody has open
/// is an error (`EBADF`).
///
/// ```
/// use std::os::fd::AsRawFd;
/// let p = shmbus_os::pipe()?;
/// let (fifo, inode) = shmbus_os::fd::fifo_inode(p.read.as_raw_fd())?;
/// assert!(fifo);
/// assert_eq!(shmbus_os::fd::fifo_inode(p.write.as_raw_fd())?, (true, inode), "both ends name one pipe");
/// # Ok::<(), shmbus_os::OsError>(())
/// ```
pub fn fifo_inode(fd: RawFd) -> Result<(bool, u64)> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes one `stat` through a pointer to a live local; any descriptor number is acceptable
    // (EBADF for a closed one), which is why this takes a number rather than a borrowed descriptor.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return Err(OsError::last("fstat", format!("fd {fd}")));
    }
    // SAFETY: fstat returned 0, so it filled in the whole struct.
    let st = unsafe { st.assume_init() };
    Ok((st.st_mode & libc::S_IFMT == libc::S_IFIFO, st.st_ino))
}

/// The access mode descriptor number `fd` was opened with. A number nobody has open is an error (`EBADF`).
///
/// ```
/// use shmbus_os::fd::{access_mode, AccessMode};
/// use std::os::fd::AsRawFd;
/// let p = shmbus_os::pipe()?;
/// assert_eq!(access_mode(p.read.as_raw_fd())?, AccessMode::ReadOnly);
/// assert_eq!(access_mode(p.write.as_raw_fd())?, AccessMode::WriteOnly);
/// # Ok::<(), shmbus_os::OsError>(())
/// ```
pub fn access_mode(fd: RawFd) -> Result<AccessMode> {
    // SAFETY: F_GETFL on any descriptor number has no memory-safety preconditions (EBADF for a closed one).
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(OsError::last("F_GETFL", format!("fd {fd}")));
    }
    match flags & libc::O_ACCMODE {
        libc::O_RDONLY => Ok(AccessMode::ReadOnly),
        libc::O_WRONLY => Ok(AccessMode::WriteOnly),
        libc::O_RDWR => Ok(AccessMode::ReadWrite),
        other => Err(OsError::invalid(
            "F_GETFL",
            format!("fd {fd}"),
            io::ErrorKind::InvalidData,
            format!("unknown access mode {other}"),
        )),
    }
}

/// Makes the child `cmd` spawns inherit descriptors `fds` across `exec`: their `FD_CLOEXEC` flag is cleared in
/// the child only, between `fork` and `exec`, so that this process's copies stay close-on-exec and no other
/// child inherits them. The numbers must be open in this process when `cmd` is spawned; otherwise spawning fails
/// with `EBADF`.
///
/// ```
/// use std::os::fd::AsRawFd;
/// let p = shmbus_os::pipe()?; // close-on-exec
/// let mut cmd = std::process::Command::new("sh");
/// cmd.arg("-c").arg(format!("test -e /proc/self/fd/{}", p.write.as_raw_fd()));
/// shmbus_os::fd::inherit_in_child(&mut cmd, vec![p.write.as_raw_fd()]);
/// assert!(cmd.status().unwrap().success(), "the child has the descriptor");
/// # Ok::<(), shmbus_os::OsError>(())
/// ```
pub fn inherit_in_child(cmd: &mut Command, fds: Vec<RawFd>) {
    let clear = move || -> io::Result<()> {
        for &fd in &fds {
            clear_cloexec(fd)?;
        }
        Ok(())
    };
    // SAFETY: the closure runs in the child between fork and exec. It only calls fcntl, which is
    // async-signal-safe, on descriptor numbers moved in before the fork; it allocates nothing (the vector is
    // only read, and an `io::Error` from errno does not allocate) and takes no locks.
    unsafe { cmd.pre_exec(clear) };
}

/// Clears `FD_CLOEXEC` on descriptor number `fd`. Async-signal-safe: no allocation, no locks, only `fcntl`.
fn clear_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD on any descriptor number have no memory-safety preconditions (EBADF for a closed
    // one).
    let ok = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) >= 0
    };
    if ok {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn numbers_nobody_has_open_are_errors() {
        assert!(fifo_inode(1 << 20).is_err());
        assert!(access_mode(1 << 20).is_err());
        let file = std::fs::File::open("/proc/self/status").unwrap();
        assert!(!fifo_inode(file.as_raw_fd()).unwrap().0);
        assert_eq!(access_mode(file.as_raw_fd()).unwrap(), AccessMode::ReadOnly);
    }

    // `inherit_in_child` spawns children (fork, then exec): its test lives in tests/inherit_in_child.rs, so no
    // test of this binary sees a descriptor held for a moment by another test's child.
}
