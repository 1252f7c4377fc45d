//! Opening shm objects that must be this process's own (adoption after a restart): by name without following
//! symlinks, checked with `fstat` before anything is mapped, read with `pread`, and reopened through the
//! descriptor already held rather than by name.
//!
//! /dev/shm is world-writable (sticky), so any local user can plant a file under a name the daemon will look
//! for; these helpers make such a file a reported refusal rather than something adopted or mapped.

use std::io::ErrorKind;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::sys::stat::{self, Mode, SFlag};

use crate::error::{OsError, Result};
use crate::shm::{Access, ShmObject, SHM_DIR};

/// What an object must be for its owner to adopt it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// Owning uid (the adopting process's effective uid).
    pub uid: u32,
    /// Exact permission bits (`st_mode & 0o7777`).
    pub mode: u32,
}

impl ShmObject {
    /// Opens an existing object read-write for adoption: `O_NOFOLLOW | O_NONBLOCK` (a symlink is refused, a FIFO
    /// cannot block), then `fstat` must show a regular file owned by `expected.uid`, with permission bits exactly
    /// `expected.mode` and one link. Returns the object and its size; nothing is mapped or read.
    ///
    /// ```no_run
    /// use shmbus_os::{shm_owned::Expected, ShmObject};
    /// let me = nix::unistd::geteuid().as_raw();
    /// let (obj, size) = ShmObject::open_owned("/shmbus.orders.data", Expected { uid: me, mode: 0o600 })?;
    /// # Ok::<(), shmbus_os::OsError>(())
    /// ```
    pub fn open_owned(name: &str, expected: Expected) -> Result<(ShmObject, u64)> {
        ShmObject::validate_name(name)?;
        let path = format!("{SHM_DIR}{name}");
        let flags = OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::open(path.as_str(), flags, Mode::empty()).map_err(|e| OsError::nix("open", name, e))?;
        let st = stat::fstat(&fd).map_err(|e| OsError::nix("fstat", name, e))?;
        let refuse = |why: String| Err(OsError::invalid("adopt", name, ErrorKind::PermissionDenied, why));
        if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG {
            return refuse("not a regular file".into());
        }
        if st.st_uid != expected.uid {
            return refuse(format!("owned by uid {}, not by this process's uid {}", st.st_uid, expected.uid));
        }
        let mode = st.st_mode & 0o7777;
        if mode != expected.mode {
            return refuse(format!("mode {mode:#o}, expected exactly {:#o}", expected.mode));
        }
        if st.st_nlink != 1 {
            return refuse(format!("{} links, expected one", st.st_nlink));
        }
        // st_size of a regular file is never negative.
        Ok((ShmObject::from_fd(fd, name), u64::try_from(st.st_size).unwrap_or(0)))
    }

    /// Reads exactly `buf.len()` bytes at `offset` (`pread`), without mapping the object.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let off = libc::off_t::try_from(offset + done as u64).map_err(|_| {
                OsError::invalid("pread", self.name(), ErrorKind::InvalidInput, "offset does not fit in off_t")
            })?;
            match nix::sys::uio::pread(self.fd(), &mut buf[done..], off) {
                Ok(0) => {
                    return Err(OsError::invalid("pread", self.name(), ErrorKind::UnexpectedEof, "object too short"))
                }
                Ok(n) => done += n,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(OsError::nix("pread", self.name(), e)),
            }
        }
        Ok(())
    }

    /// A new descriptor (its own open file description) for the same object with `access`, reopened through
    /// `/proc/self/fd/N`: it reaches the object this descriptor refers to even when the name was unlinked or
    /// replaced by someone else's file.
    pub fn reopen(&self, access: Access) -> Result<OwnedFd> {
        let path = format!("/proc/self/fd/{}", self.fd().as_raw_fd());
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(access == Access::ReadWrite)
            .open(&path)
            .map_err(|e| OsError::new("reopen", format!("{} ({path})", self.name()), e))?;
        Ok(file.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::temp_shm;

    fn me() -> u32 {
        nix::unistd::geteuid().as_raw()
    }

    #[test]
    fn own_object_opens_and_reads() {
        let (_g, obj) = temp_shm("owned", 4096);
        obj.fchmod(0o600).unwrap();
        let m = crate::map::Mapping::map(obj.fd(), Access::ReadWrite, Some(4096), false).unwrap();
        // SAFETY: offset 100 is within the 4096-byte writable mapping; nothing else touches it.
        unsafe { m.as_mut_ptr().add(100).write_volatile(7) };
        let (o, size) = ShmObject::open_owned(obj.name(), Expected { uid: me(), mode: 0o600 }).unwrap();
        assert_eq!(size, 4096);
        let mut b = [0u8; 2];
        o.read_at(99, &mut b).unwrap();
        assert_eq!(b, [0, 7]);
        assert_eq!(o.read_at(4095, &mut b).unwrap_err().kind(), ErrorKind::UnexpectedEof);
    }

    #[test]
    fn wrong_mode_owner_links_and_symlinks_are_refused() {
        let (_g, obj) = temp_shm("refused", 4096);
        obj.fchmod(0o640).unwrap();
        let e = ShmObject::open_owned(obj.name(), Expected { uid: me(), mode: 0o600 }).unwrap_err();
        assert!(e.to_string().contains("mode 0o640"), "{e}");
        let e = ShmObject::open_owned(obj.name(), Expected { uid: me() + 1, mode: 0o640 }).unwrap_err();
        assert!(e.to_string().contains("owned by uid"), "{e}");
        let link = format!("{}-link", obj.name());
        let _l = crate::testutil::ShmGuard(link.clone());
        std::os::unix::fs::symlink(format!("{SHM_DIR}{}", obj.name()), format!("{SHM_DIR}{link}")).unwrap();
        let e = ShmObject::open_owned(&link, Expected { uid: me(), mode: 0o640 }).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
        let hard = format!("{}-hard", obj.name());
        let _h = crate::testutil::ShmGuard(hard.clone());
        std::fs::hard_link(format!("{SHM_DIR}{}", obj.name()), format!("{SHM_DIR}{hard}")).unwrap();
        let e = ShmObject::open_owned(&hard, Expected { uid: me(), mode: 0o640 }).unwrap_err();
        assert!(e.to_string().contains("2 links"), "{e}");
    }

    #[test]
    fn reopen_read_write_survives_a_replaced_name() {
        let (_g, obj) = temp_shm("reopen", 4096);
        let name = obj.name().to_owned();
        ShmObject::unlink(&name).unwrap();
        let planted = ShmObject::create_exclusive(&name, 8192, 0o600).unwrap();
        let fd = obj.reopen(Access::ReadWrite).unwrap();
        let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL).unwrap();
        assert_eq!(flags & libc::O_ACCMODE, libc::O_RDWR);
        assert_eq!(ShmObject::from_fd(fd, "x").size().unwrap(), 4096, "the held object, not the planted one");
        drop(planted);
    }
}
