//! POSIX shared memory objects (`shm_open` and friends).
//!
//! On Linux these are files in the tmpfs mounted at `/dev/shm`; the object
//! `/foo` is the file `/dev/shm/foo`.

use std::io::ErrorKind;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{FallocateFlags, OFlag};
use nix::sys::mman;
use nix::sys::stat::{self, Mode};
use nix::unistd::{self, Gid, Uid};

use crate::error::{OsError, Result};

/// The directory where Linux keeps POSIX shm objects and named semaphores.
pub(crate) const SHM_DIR: &str = "/dev/shm";

/// Largest valid object name, leading `/` included (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// How an object or mapping may be accessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Read only: `O_RDONLY` descriptors, `PROT_READ` mappings.
    ReadOnly,
    /// Read and write: `O_RDWR` descriptors, `PROT_READ | PROT_WRITE` shared mappings.
    ReadWrite,
}

/// An open POSIX shared memory object: an owned descriptor plus the name it was opened by.
///
/// Closing (dropping) the object does not remove the name; use [`ShmObject::unlink`].
#[derive(Debug)]
pub struct ShmObject {
    fd: OwnedFd,
    name: String,
}

/// Unlinks a freshly created name unless disarmed, so a failed creation leaves nothing behind.
struct UnlinkOnFailure<'a> {
    name: &'a str,
    armed: bool,
}

impl Drop for UnlinkOnFailure<'_> {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: the error being returned is the interesting one.
            let _ = mman::shm_unlink(self.name);
        }
    }
}

/// Checks that `mode` only has permission bits (`0o7777`).
pub(crate) fn check_mode(op: &'static str, object: &str, mode: u32) -> Result<Mode> {
    if mode & !0o7777 != 0 {
        return Err(OsError::invalid(
            op,
            object,
            ErrorKind::InvalidInput,
            format!("mode {mode:#o} has bits outside 0o7777"),
        ));
    }
    Ok(Mode::from_bits_truncate(mode))
}

impl ShmObject {
    /// Validates a POSIX shm name: must start with '/', have no other '/', total length
    /// 2..=255, not "/." or "/..". NUL bytes are rejected too.
    ///
    /// Named semaphores follow the same rules.
    pub fn validate_name(name: &str) -> Result<()> {
        let why = if !name.starts_with('/') {
            "must start with '/'"
        } else if name[1..].contains('/') {
            "must not contain '/' after the first character"
        } else if name.len() < 2 {
            "must have at least one character after '/'"
        } else if name.len() > NAME_MAX {
            "is longer than 255 bytes"
        } else if name == "/." || name == "/.." {
            "must not be \"/.\" or \"/..\""
        } else if name.contains('\0') {
            "must not contain NUL bytes"
        } else {
            return Ok(());
        };
        Err(OsError::invalid(
            "validate name",
            format!("{name:?}"),
            ErrorKind::InvalidInput,
            format!("invalid shm name: {why}"),
        ))
    }

    /// Creates a new object of `size` bytes with permissions exactly `mode`.
    ///
    /// Runs `shm_open(O_CREAT|O_EXCL|O_RDWR|O_CLOEXEC, mode)` (so an existing name fails
    /// with `EEXIST`), then `fchmod(mode)` explicitly (the umask applied to the first),
    /// then `ftruncate(size)`, and reserves the memory up front with `fallocate`
    /// (falling back to `posix_fallocate`), so a full `/dev/shm` fails here with
    /// `ENOSPC` rather than with `SIGBUS` on first touch later. A `size` of 0 creates
    /// an empty object.
    ///
    /// On any failure after creation the name is unlinked again: nothing is left behind.
    pub fn create_exclusive(name: &str, size: u64, mode: u32) -> Result<ShmObject> {
        Self::validate_name(name)?;
        let nix_mode = check_mode("shm create", name, mode)?;
        let len = libc::off_t::try_from(size).map_err(|_| {
            OsError::invalid("ftruncate", name, ErrorKind::InvalidInput, format!("size {size} does not fit in off_t"))
        })?;
        let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_CLOEXEC;
        let fd =
            mman::shm_open(name, flags, nix_mode).map_err(|e| OsError::nix("shm_open(O_CREAT|O_EXCL)", name, e))?;
        let mut guard = UnlinkOnFailure { name, armed: true };
        let obj = ShmObject::from_fd(fd, name);

        obj.fchmod(mode)?;
        unistd::ftruncate(&obj.fd, len).map_err(|e| OsError::nix("ftruncate", name, e))?;
        if len > 0 {
            reserve(&obj.fd, len).map_err(|e| OsError::nix("fallocate", name, e))?;
        }

        guard.armed = false;
        Ok(obj)
    }

    /// Opens an existing object (`O_CLOEXEC`), read-only or read-write.
    pub fn open(name: &str, access: Access) -> Result<ShmObject> {
        Self::validate_name(name)?;
        let flags = match access {
            Access::ReadOnly => OFlag::O_RDONLY,
            Access::ReadWrite => OFlag::O_RDWR,
        } | OFlag::O_CLOEXEC;
        let fd = mman::shm_open(name, flags, Mode::empty()).map_err(|e| OsError::nix("shm_open", name, e))?;
        Ok(ShmObject::from_fd(fd, name))
    }

    /// Wraps a descriptor obtained elsewhere (e.g. received over a socket).
    ///
    /// `name` is only used for error messages and [`ShmObject::name`]; it is not validated.
    pub fn from_fd(fd: OwnedFd, name: impl Into<String>) -> ShmObject {
        ShmObject { fd, name: name.into() }
    }

    /// The name the object was created or opened by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Current size in bytes (`fstat`).
    pub fn size(&self) -> Result<u64> {
        let st = stat::fstat(&self.fd).map_err(|e| OsError::nix("fstat", &self.name, e))?;
        // st_size of a regular file is never negative.
        Ok(u64::try_from(st.st_size).unwrap_or(0))
    }

    /// Borrows the descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Gives up the wrapper and returns the descriptor.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// A new descriptor for the same object opened read-only (`O_RDONLY|O_CLOEXEC`),
    /// for handing a read-only fd to a less-privileged peer.
    ///
    /// Reopens through `/proc/self/fd/N`, so it works even after the name was unlinked
    /// or when this descriptor was received from elsewhere. A mapping made from the
    /// returned descriptor can never be writable: `mmap(PROT_WRITE, MAP_SHARED)` on it
    /// fails with `EACCES`.
    pub fn reopen_read_only(&self) -> Result<OwnedFd> {
        self.reopen(Access::ReadOnly)
    }

    /// Removes the name (`shm_unlink`). Existing descriptors and mappings stay valid.
    pub fn unlink(name: &str) -> Result<()> {
        Self::validate_name(name)?;
        mman::shm_unlink(name).map_err(|e| OsError::nix("shm_unlink", name, e))
    }

    /// Changes owner and/or group (`fchown`); `None` leaves that id unchanged.
    pub fn fchown(&self, uid: Option<u32>, gid: Option<u32>) -> Result<()> {
        unistd::fchown(&self.fd, uid.map(Uid::from_raw), gid.map(Gid::from_raw))
            .map_err(|e| OsError::nix("fchown", &self.name, e))
    }

    /// Sets the permission bits to exactly `mode` (`fchmod`; the umask does not apply).
    pub fn fchmod(&self, mode: u32) -> Result<()> {
        let m = check_mode("fchmod", &self.name, mode)?;
        stat::fchmod(&self.fd, m).map_err(|e| OsError::nix("fchmod", &self.name, e))
    }
}

impl AsFd for ShmObject {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Allocates `[0, len)` so later page faults cannot fail for lack of space.
fn reserve(fd: &OwnedFd, len: libc::off_t) -> nix::Result<()> {
    loop {
        match nix::fcntl::fallocate(fd, FallocateFlags::empty(), 0, len) {
            Err(Errno::EINTR) => continue,
            Err(Errno::EOPNOTSUPP) => break,
            other => return other,
        }
    }
    loop {
        match nix::fcntl::posix_fallocate(fd, 0, len) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// Lists names (with leading '/') of objects in /dev/shm whose name starts with
/// `prefix` (prefix given without '/'; a leading '/' is tolerated), excluding
/// semaphores ("sem." files). The order is unspecified.
pub fn list_shm(prefix: &str) -> Result<Vec<String>> {
    let prefix = prefix.strip_prefix('/').unwrap_or(prefix);
    Ok(list_dev_shm()?
        .into_iter()
        .filter(|n| !n.starts_with("sem.") && n.starts_with(prefix))
        .map(|n| format!("/{n}"))
        .collect())
}

/// File names of the regular files in `/dev/shm` (names that aren't UTF-8 are skipped).
pub(crate) fn list_dev_shm() -> Result<Vec<String>> {
    let err = |e| OsError::new("read_dir", SHM_DIR, e);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(SHM_DIR).map_err(err)? {
        let entry = entry.map_err(err)?;
        if !entry.file_type().map_err(err)?.is_file() {
            continue;
        }
        if let Ok(name) = entry.file_name().into_string() {
            out.push(name);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::Mapping;
    use crate::testutil::{temp_shm, unique_name, ShmGuard};

    #[test]
    fn validate_name_rules() {
        for ok in ["/a", "/shmbus-x.y", &format!("/{}", "a".repeat(254))] {
            ShmObject::validate_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let long = format!("/{}", "a".repeat(255));
        for bad in ["", "/", "a", "a/b", "/a/b", "/.", "/..", "/a\0b", long.as_str()] {
            let e = ShmObject::validate_name(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad:?}");
        }
    }

    #[test]
    fn create_open_size_and_exclusive() {
        let name = unique_name("create");
        let _g = ShmGuard(name.clone());
        let obj = ShmObject::create_exclusive(&name, 8192, 0o600).unwrap();
        assert_eq!(obj.name(), name);
        assert_eq!(obj.size().unwrap(), 8192);

        let e = ShmObject::create_exclusive(&name, 4096, 0o600).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
        assert!(e.to_string().contains(&name), "{e}");
        // The failed create must not have removed or resized the existing object.
        let again = ShmObject::open(&name, Access::ReadWrite).unwrap();
        assert_eq!(again.size().unwrap(), 8192);

        assert!(list_shm(&name[1..]).unwrap().contains(&name));
        ShmObject::unlink(&name).unwrap();
        let e = ShmObject::open(&name, Access::ReadOnly).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        assert!(!list_shm(&name[1..]).unwrap().contains(&name));
    }

    #[test]
    fn mode_is_exact_despite_umask() {
        let name = unique_name("mode");
        let _g = ShmGuard(name.clone());
        // 0o660 has group-write, which the usual 0o022 umask would strip.
        let obj = ShmObject::create_exclusive(&name, 4096, 0o660).unwrap();
        let st = stat::fstat(obj.fd()).unwrap();
        assert_eq!(st.st_mode & 0o777, 0o660);
        obj.fchmod(0o640).unwrap();
        assert_eq!(stat::fstat(obj.fd()).unwrap().st_mode & 0o777, 0o640);
        let e = obj.fchmod(0o10000).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn fchown_to_self() {
        let (_g, obj) = temp_shm("chown", 4096);
        let uid = unistd::geteuid().as_raw();
        let gid = unistd::getegid().as_raw();
        obj.fchown(Some(uid), Some(gid)).unwrap();
        obj.fchown(None, None).unwrap();
        let st = stat::fstat(obj.fd()).unwrap();
        assert_eq!((st.st_uid, st.st_gid), (uid, gid));
    }

    #[test]
    fn zero_size_object() {
        let (_g, obj) = temp_shm("zero", 0);
        assert_eq!(obj.size().unwrap(), 0);
    }

    #[test]
    fn reopen_read_only_cannot_be_mapped_writable() {
        let (_g, obj) = temp_shm("rdonly", 4096);
        let name = obj.name().to_owned();
        let rw = Mapping::map(obj.fd(), Access::ReadWrite, Some(4096), false).unwrap();
        // SAFETY: the mapping is 4096 bytes long and writable; nothing else touches it.
        unsafe { rw.as_mut_ptr().add(7).write_volatile(42) };

        let ro_fd = obj.reopen_read_only().unwrap();
        let flags = nix::fcntl::fcntl(&ro_fd, nix::fcntl::FcntlArg::F_GETFL).unwrap();
        assert_eq!(flags & libc::O_ACCMODE, libc::O_RDONLY);
        let fdflags = nix::fcntl::fcntl(&ro_fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(fdflags & libc::FD_CLOEXEC, 0);

        let e = Mapping::map(ro_fd.as_fd(), Access::ReadWrite, None, false).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");

        let ro = Mapping::map(ro_fd.as_fd(), Access::ReadOnly, Some(4096), true).unwrap();
        assert_eq!(ro.access(), Access::ReadOnly);
        // SAFETY: offset 7 is within the 4096-byte mapping; reads only.
        assert_eq!(unsafe { ro.as_ptr().add(7).read_volatile() }, 42);

        // Opening by name read-only gives the same restriction.
        let by_name = ShmObject::open(&name, Access::ReadOnly).unwrap();
        assert!(Mapping::map(by_name.fd(), Access::ReadWrite, None, false).is_err());

        // Reopening still works once the name is gone.
        ShmObject::unlink(&name).unwrap();
        let ro2 = ShmObject::from_fd(obj.reopen_read_only().unwrap(), name.clone());
        assert_eq!(ro2.size().unwrap(), 4096);
    }

    #[test]
    fn enospc_at_create_leaves_no_name() {
        let name = unique_name("enospc");
        let _g = ShmGuard(name.clone());
        let e = ShmObject::create_exclusive(&name, 1 << 50, 0o600).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
        assert!(e.to_string().contains(&name), "{e}");
        let e = ShmObject::open(&name, Access::ReadOnly).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn size_beyond_off_t_is_rejected_before_creation() {
        let name = unique_name("huge");
        let _g = ShmGuard(name.clone());
        let e = ShmObject::create_exclusive(&name, u64::MAX, 0o600).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(ShmObject::open(&name, Access::ReadOnly).is_err());
    }

    #[test]
    fn invalid_names_are_rejected_everywhere() {
        assert!(ShmObject::create_exclusive("no-slash", 1, 0o600).is_err());
        assert!(ShmObject::open("/a/b", Access::ReadOnly).is_err());
        assert!(ShmObject::unlink("/").is_err());
    }

    #[test]
    fn list_excludes_semaphores() {
        let tag = unique_name("list");
        let shm_name = format!("{tag}-shm");
        let _g = ShmGuard(shm_name.clone());
        let _obj = ShmObject::create_exclusive(&shm_name, 4096, 0o600).unwrap();
        // A semaphore's file as glibc names it (`sem.<name>`), such as an older shmbus left behind.
        let sem_file = format!("{SHM_DIR}/sem.{}-sem", &tag[1..]);
        let _s = FileGuard(sem_file.clone());
        std::fs::write(&sem_file, b"").unwrap();
        assert_eq!(list_shm(&tag[1..]).unwrap(), vec![shm_name.clone()]);
    }

    /// Removes a plain file on drop (also when the test panics).
    struct FileGuard(String);

    impl Drop for FileGuard {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}
