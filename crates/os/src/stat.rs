//! Who owns a file and who may write it (`fstat` on a descriptor, `stat` on a path), for deciding whether a
//! descriptor or directory somebody else made can be trusted.

use std::os::fd::BorrowedFd;
use std::path::Path;

use crate::error::{fd_object, OsError, Result};

/// The owner and permission bits of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// Owning user id.
    pub uid: u32,
    /// Owning group id.
    pub gid: u32,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
}

impl Owner {
    /// Whether the group or everyone else may write it (`mode & 0o022`).
    pub fn shared_writable(&self) -> bool {
        self.mode & 0o022 != 0
    }
}

/// The owner and mode of the file open on `fd` (`fstat`).
///
/// ```
/// use std::os::fd::AsFd;
/// let f = std::fs::File::open("/").unwrap();
/// let o = shmbus_os::fd_owner(f.as_fd())?;
/// assert_eq!(o.uid, 0);
/// assert!(!o.shared_writable());
/// # Ok::<(), shmbus_os::OsError>(())
/// ```
pub fn fd_owner(fd: BorrowedFd<'_>) -> Result<Owner> {
    let st = nix::sys::stat::fstat(fd).map_err(|e| OsError::nix("fstat", fd_object("", fd), e))?;
    Ok(Owner { uid: st.st_uid, gid: st.st_gid, mode: st.st_mode & 0o7777 })
}

/// The owner and mode of `path`, following a final symbolic link (`stat`); `None` when nothing is there.
///
/// ```
/// let o = shmbus_os::path_owner(std::path::Path::new("/"))?.expect("/ exists");
/// assert_eq!(o.uid, 0);
/// assert!(shmbus_os::path_owner(std::path::Path::new("/nonexistent/x"))?.is_none());
/// # Ok::<(), shmbus_os::OsError>(())
/// ```
pub fn path_owner(path: &Path) -> Result<Option<Owner>> {
    match nix::sys::stat::stat(path) {
        Ok(st) => Ok(Some(Owner { uid: st.st_uid, gid: st.st_gid, mode: st.st_mode & 0o7777 })),
        Err(nix::Error::ENOENT) => Ok(None),
        Err(e) => Err(OsError::nix("stat", path.display().to_string(), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn owner_of_a_fresh_file_is_us() {
        let p = std::env::temp_dir().join(format!("shmbus-os-stat-{}", std::process::id()));
        let f = std::fs::File::create(&p).unwrap();
        nix::sys::stat::fchmod(f.as_fd(), nix::sys::stat::Mode::from_bits_truncate(0o620)).unwrap();
        let o = fd_owner(f.as_fd()).unwrap();
        assert_eq!(o.uid, nix::unistd::geteuid().as_raw());
        assert_eq!(o.mode, 0o620);
        assert!(o.shared_writable());
        assert_eq!(path_owner(&p).unwrap(), Some(o));
        std::fs::remove_file(&p).unwrap();
        assert_eq!(path_owner(&p).unwrap(), None);
    }
}
