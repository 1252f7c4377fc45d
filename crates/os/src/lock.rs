//! Per-lease liveness through open-file-description (OFD) byte locks.
//!
//! An OFD lock (`F_OFD_SETLK`) belongs to the open file description, not to the
//! process: it is released exactly when the last descriptor referring to that
//! description is closed, including when the holder dies (even by `SIGKILL`).
//! Unlike classic POSIX `F_SETLK` locks, closing some *other* descriptor of the same
//! file does not drop it, and threads of one process with separate opens conflict.
//! A process signals "I am alive" by holding a lock on its lease byte; others probe
//! with [`is_byte_locked`].

use std::io::ErrorKind;
use std::os::fd::BorrowedFd;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};

use crate::error::{fd_object, OsError, Result};

/// A one-byte lock request of type `l_type` at `offset`.
fn request(op: &'static str, fd: BorrowedFd<'_>, l_type: libc::c_int, offset: u64) -> Result<libc::flock> {
    let start = libc::off_t::try_from(offset).map_err(|_| {
        OsError::invalid(
            op,
            fd_object("lock", fd),
            ErrorKind::InvalidInput,
            format!("offset {offset} does not fit in off_t"),
        )
    })?;
    Ok(libc::flock {
        l_type: l_type as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: start,
        l_len: 1,
        // Must be 0 for OFD locks.
        l_pid: 0,
    })
}

/// Tries to take an exclusive OFD write lock on one byte at `offset` (which may be
/// beyond EOF), without blocking. `Ok(true)` if taken (or already held through this
/// same open file description), `Ok(false)` if another OFD holds a conflicting lock.
///
/// `fd` must be open for writing (else `EBADF`).
pub fn try_lock_byte(fd: BorrowedFd<'_>, offset: u64) -> Result<bool> {
    let fl = request("F_OFD_SETLK", fd, libc::F_WRLCK, offset)?;
    match fcntl(fd, FcntlArg::F_OFD_SETLK(&fl)) {
        Ok(_) => Ok(true),
        Err(Errno::EAGAIN) | Err(Errno::EACCES) => Ok(false),
        Err(e) => Err(OsError::nix("F_OFD_SETLK", format!("{} byte {offset}", fd_object("lock", fd)), e)),
    }
}

/// Releases this open file description's lock on the byte at `offset` (a no-op if it
/// holds none).
pub fn unlock_byte(fd: BorrowedFd<'_>, offset: u64) -> Result<()> {
    let fl = request("F_OFD_SETLK", fd, libc::F_UNLCK, offset)?;
    fcntl(fd, FcntlArg::F_OFD_SETLK(&fl))
        .map(drop)
        .map_err(|e| OsError::nix("F_OFD_SETLK(F_UNLCK)", format!("{} byte {offset}", fd_object("lock", fd)), e))
}

/// Whether another open file description holds a lock on the byte at `offset`
/// (`F_OFD_GETLK` probing with `F_WRLCK`, so read locks count too). A lock held
/// through `fd`'s own OFD does not count. Works on read-only descriptors.
pub fn is_byte_locked(fd: BorrowedFd<'_>, offset: u64) -> Result<bool> {
    let mut fl = request("F_OFD_GETLK", fd, libc::F_WRLCK, offset)?;
    fcntl(fd, FcntlArg::F_OFD_GETLK(&mut fl))
        .map_err(|e| OsError::nix("F_OFD_GETLK", format!("{} byte {offset}", fd_object("lock", fd)), e))?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm::{Access, ShmObject};
    use crate::testutil::temp_shm;

    #[test]
    fn lock_visible_from_other_ofd_until_closed() {
        let (_g, holder) = temp_shm("ofd", 4096);
        let name = holder.name().to_owned();
        let prober = ShmObject::open(&name, Access::ReadOnly).unwrap();
        let rival = ShmObject::open(&name, Access::ReadWrite).unwrap();
        let far = 1 << 40; // far beyond EOF

        for off in [3, far] {
            assert!(!is_byte_locked(prober.fd(), off).unwrap());
            assert!(try_lock_byte(holder.fd(), off).unwrap());
            // Re-locking through the same OFD succeeds; its own lock is invisible to it.
            assert!(try_lock_byte(holder.fd(), off).unwrap());
            assert!(!is_byte_locked(holder.fd(), off).unwrap());
            assert!(is_byte_locked(prober.fd(), off).unwrap());
            assert!(!try_lock_byte(rival.fd(), off).unwrap());
            // Neighbouring bytes are free.
            assert!(!is_byte_locked(prober.fd(), off + 1).unwrap());
        }

        unlock_byte(holder.fd(), 3).unwrap();
        assert!(!is_byte_locked(prober.fd(), 3).unwrap());
        assert!(try_lock_byte(rival.fd(), 3).unwrap());
        unlock_byte(rival.fd(), 3).unwrap();

        // A duplicate descriptor shares the OFD: closing the original keeps the lock.
        let dup = holder.fd().try_clone_to_owned().unwrap();
        drop(holder);
        assert!(is_byte_locked(prober.fd(), far).unwrap());
        drop(dup);
        assert!(!is_byte_locked(prober.fd(), far).unwrap());
        assert!(try_lock_byte(rival.fd(), far).unwrap());
    }

    #[test]
    fn write_lock_needs_writable_fd_and_offset_in_range() {
        let (_g, obj) = temp_shm("ofd-ro", 4096);
        let ro = ShmObject::open(obj.name(), Access::ReadOnly).unwrap();
        let e = try_lock_byte(ro.fd(), 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
        let e = try_lock_byte(ro.fd(), u64::MAX).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
}
