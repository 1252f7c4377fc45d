//! Committing and releasing parts of a shm object: a topic's objects are created sparse (`ftruncate` only, so
//! tmpfs commits no page), the parts every participant touches are reserved with `fallocate` (a full `/dev/shm`
//! fails there, never as a `SIGBUS` later), and pages that initialization wrote but nobody needs yet are
//! punched out again.

use std::io::ErrorKind;

use nix::errno::Errno;
use nix::fcntl::{FallocateFlags, OFlag};
use nix::sys::mman;
use nix::unistd;

use crate::error::{OsError, Result};
use crate::shm::{check_mode, ShmObject};

/// The system page size (what `fallocate` hole punching and `madvise` work in).
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

fn off(name: &str, v: u64) -> Result<libc::off_t> {
    libc::off_t::try_from(v).map_err(|_| {
        OsError::invalid("fallocate", name, ErrorKind::InvalidInput, format!("offset {v} does not fit in off_t"))
    })
}

impl ShmObject {
    /// Creates a new object of `size` bytes with permissions exactly `mode`, like
    /// [`ShmObject::create_exclusive`], but without reserving its memory: every page stays uncommitted until
    /// [`ShmObject::reserve_range`] or a first touch. On failure the name is unlinked again.
    pub fn create_sparse(name: &str, size: u64, mode: u32) -> Result<ShmObject> {
        Self::validate_name(name)?;
        let nix_mode = check_mode("shm create", name, mode)?;
        let len = off(name, size)?;
        let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_CLOEXEC;
        let fd =
            mman::shm_open(name, flags, nix_mode).map_err(|e| OsError::nix("shm_open(O_CREAT|O_EXCL)", name, e))?;
        let obj = ShmObject::from_fd(fd, name);
        let done = obj
            .fchmod(mode)
            .and_then(|()| unistd::ftruncate(obj.fd(), len).map_err(|e| OsError::nix("ftruncate", name, e)));
        if let Err(e) = done {
            let _ = mman::shm_unlink(name);
            return Err(e);
        }
        Ok(obj)
    }

    /// Commits `[offset, offset + len)` (`fallocate` mode 0, falling back to `posix_fallocate`), so touching
    /// those pages later cannot fail for lack of space: a full `/dev/shm` is `ENOSPC` here. Idempotent; a range
    /// of length 0 does nothing. The object's size does not change when the range is inside it.
    pub fn reserve_range(&self, offset: u64, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let (o, l) = (off(self.name(), offset)?, off(self.name(), len)?);
        loop {
            match nix::fcntl::fallocate(self.fd(), FallocateFlags::empty(), o, l) {
                Err(Errno::EINTR) => continue,
                Err(Errno::EOPNOTSUPP) => break,
                other => return other.map_err(|e| OsError::nix("fallocate", self.name(), e)),
            }
        }
        loop {
            match nix::fcntl::posix_fallocate(self.fd(), o, l) {
                Err(Errno::EINTR) => continue,
                other => return other.map_err(|e| OsError::nix("posix_fallocate", self.name(), e)),
            }
        }
    }

    /// Returns the whole pages inside `[offset, offset + len)` to the system (`FALLOC_FL_PUNCH_HOLE`): they read
    /// as zeros afterwards, in every process's mapping, and are committed again only when touched or reserved.
    /// Partial pages at either end are left alone. Only for bytes nobody may be using.
    pub fn release_range(&self, offset: u64, len: u64) -> Result<()> {
        let page = page_size() as u64;
        let start = offset.div_ceil(page) * page;
        let end = (offset.saturating_add(len) / page) * page;
        if end <= start {
            return Ok(());
        }
        let (o, l) = (off(self.name(), start)?, off(self.name(), end - start)?);
        let mode = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
        loop {
            match nix::fcntl::fallocate(self.fd(), mode, o, l) {
                Err(Errno::EINTR) => continue,
                other => return other.map_err(|e| OsError::nix("fallocate(PUNCH_HOLE)", self.name(), e)),
            }
        }
    }

    /// Bytes of memory the object commits (`st_blocks` × 512).
    pub fn committed(&self) -> Result<u64> {
        let st = nix::sys::stat::fstat(self.fd()).map_err(|e| OsError::nix("fstat", self.name(), e))?;
        Ok(u64::try_from(st.st_blocks).unwrap_or(0) * 512)
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{unique_name, ShmGuard};
    use crate::ShmObject;

    #[test]
    fn sparse_objects_commit_only_what_is_reserved_and_release_whole_pages() {
        let name = unique_name("sparse");
        let _guard = ShmGuard(name.clone());
        let page = super::page_size() as u64;
        let obj = ShmObject::create_sparse(&name, 64 * page, 0o600).unwrap();
        assert_eq!(obj.size().unwrap(), 64 * page);
        assert_eq!(obj.committed().unwrap(), 0, "ftruncate commits nothing");
        obj.reserve_range(0, 4 * page).unwrap();
        assert_eq!(obj.committed().unwrap(), 4 * page);
        obj.reserve_range(2 * page, 4 * page).unwrap();
        assert_eq!(obj.committed().unwrap(), 6 * page, "reserving is idempotent");
        // Only the whole pages inside the range go: [page/2, 5.5 pages) releases pages 1..5.
        obj.release_range(page / 2, 5 * page).unwrap();
        assert_eq!(obj.committed().unwrap(), 2 * page);
        obj.release_range(0, page / 2).unwrap();
        assert_eq!(obj.committed().unwrap(), 2 * page, "no whole page inside");
        assert!(ShmObject::create_sparse(&name, page, 0o600).is_err(), "exclusive");
    }
}
