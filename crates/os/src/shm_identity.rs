//! Which file a shm object is (device and inode), and reopening an object by name only when the name still
//! leads to that very file: the daemon closes the descriptors of idle topics (issue 13) and must never mistake
//! a file planted or put back under the name for its own.
//!
//! Why a name check is enough where a descriptor was the guarantee before (ARCHITECTURE.md §9.6 item 8): the
//! reopened file must be owned by the daemon's uid, which only root or the daemon's user can arrange, and must
//! be the inode recorded at creation or adoption, which catches a replacement by the daemon's own user too
//! (an inode is not reused while the daemon maps the file, so an equal inode on the same device is the same
//! file).

use std::io::ErrorKind;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{self, FileStat, Mode, SFlag};

use crate::error::{OsError, Result};
use crate::shm::{ShmObject, SHM_DIR};
use crate::shm_owned::Expected;

/// Which file an object is: its device and inode number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identity {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

/// What `stat` says of an object: which file it is, its size and what it commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectStat {
    /// Device and inode.
    pub identity: Identity,
    /// `st_size` in bytes.
    pub size: u64,
    /// Bytes committed (`st_blocks` × 512).
    pub committed: u64,
}

fn object_stat(st: &FileStat) -> ObjectStat {
    ObjectStat {
        identity: Identity { dev: st.st_dev, ino: st.st_ino },
        // Neither is ever negative for a regular file.
        size: u64::try_from(st.st_size).unwrap_or(0),
        committed: u64::try_from(st.st_blocks).unwrap_or(0) * 512,
    }
}

/// Why [`ShmObject::reopen_identical`] did not give the object back.
#[derive(Debug, thiserror::Error)]
pub enum ReopenError {
    /// The name no longer leads to the recorded object: it is gone, or another file (or a link, a directory, a
    /// FIFO) is there. Says what was found.
    #[error("{name}: {why}")]
    NotTheObject {
        /// The object's name.
        name: String,
        /// What was found instead.
        why: String,
    },
    /// The system refused for a reason that says nothing about the object (out of descriptors or memory).
    #[error(transparent)]
    Os(#[from] OsError),
}

impl ShmObject {
    /// Which file this object is and its size (`fstat`).
    pub fn stat(&self) -> Result<ObjectStat> {
        let st = stat::fstat(self.fd()).map_err(|e| OsError::nix("fstat", self.name(), e))?;
        Ok(object_stat(&st))
    }

    /// Opens object `name` read-write by name, and only if it is still the recorded one: opened with
    /// `O_NOFOLLOW | O_NONBLOCK` (a symlink is refused, a FIFO cannot block), then `fstat` of the opened
    /// descriptor must show a regular file with identity `identity`, owned by `expected.uid`, with permission bits
    /// exactly `expected.mode`, one link and `size` bytes. The check is on the descriptor that is returned, so no
    /// later swap of the name can slip in between.
    pub fn reopen_identical(
        name: &str,
        expected: Expected,
        identity: Identity,
        size: u64,
    ) -> std::result::Result<ShmObject, ReopenError> {
        ShmObject::validate_name(name)?;
        let path = format!("{SHM_DIR}{name}");
        let flags = OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
        let not = |why: String| ReopenError::NotTheObject { name: name.to_string(), why };
        let fd = match nix::fcntl::open(path.as_str(), flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(e @ (Errno::EMFILE | Errno::ENFILE | Errno::ENOMEM | Errno::EINTR)) => {
                return Err(OsError::nix("open", name, e).into())
            }
            Err(Errno::ENOENT) => return Err(not("unlinked (no object of that name)".into())),
            Err(e) => return Err(not(format!("cannot be opened as the daemon's object: {e}"))),
        };
        let st = stat::fstat(&fd).map_err(|e| OsError::nix("fstat", name, e))?;
        if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG {
            return Err(not("replaced by something that is not a regular file".into()));
        }
        let found = object_stat(&st);
        if found.identity != identity {
            return Err(not(format!(
                "replaced by another file (inode {} on device {}, the topic's is inode {} on device {})",
                found.identity.ino, found.identity.dev, identity.ino, identity.dev
            )));
        }
        if st.st_uid != expected.uid {
            return Err(not(format!("owned by uid {}, not by this process's uid {}", st.st_uid, expected.uid)));
        }
        let mode = st.st_mode & 0o7777;
        if mode != expected.mode {
            return Err(not(format!("mode {mode:#o}, expected exactly {:#o}", expected.mode)));
        }
        if st.st_nlink != 1 {
            return Err(not(format!("{} links, expected one", st.st_nlink)));
        }
        if found.size != size {
            return Err(not(format!("{} bytes, expected {size} (truncated or resized)", found.size)));
        }
        Ok(ShmObject::from_fd(fd, name))
    }
}

/// What `lstat` says of the object `name` (a symlink is reported as itself, never followed); `None` when there
/// is no such name. Only regular files are reported; anything else is an error of kind `InvalidData`.
pub fn stat_by_name(name: &str) -> Result<Option<ObjectStat>> {
    ShmObject::validate_name(name)?;
    let path = format!("{SHM_DIR}{name}");
    match stat::lstat(path.as_str()) {
        Ok(st) if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFREG => {
            Ok(Some(object_stat(&st)))
        }
        Ok(_) => Err(OsError::invalid("lstat", name, ErrorKind::InvalidData, "not a regular file")),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(OsError::nix("lstat", name, e)),
    }
}

/// Unlinks `name` only if it is the object `identity`; returns whether it did. /dev/shm is sticky, so between
/// the check and the unlink only root or the object's owner could put another file under the name.
pub fn unlink_if_identical(name: &str, identity: Identity) -> Result<bool> {
    match stat_by_name(name) {
        Ok(Some(s)) if s.identity == identity => ShmObject::unlink(name).map(|()| true),
        Ok(_) | Err(_) => Ok(false),
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
    fn reopens_the_recorded_object_only() {
        let (_g, obj) = temp_shm("ident", 4096);
        obj.fchmod(0o600).unwrap();
        let name = obj.name().to_owned();
        let id = obj.stat().unwrap().identity;
        let want = Expected { uid: me(), mode: 0o600 };
        let again = ShmObject::reopen_identical(&name, want, id, 4096).unwrap();
        assert_eq!(again.stat().unwrap().identity, id);
        assert_eq!(stat_by_name(&name).unwrap().unwrap().identity, id);
        let e = ShmObject::reopen_identical(&name, want, id, 8192).unwrap_err();
        assert!(matches!(e, ReopenError::NotTheObject { .. }) && e.to_string().contains("truncated"), "{e}");
        let e = ShmObject::reopen_identical(&name, Expected { mode: 0o640, ..want }, id, 4096).unwrap_err();
        assert!(e.to_string().contains("mode 0o600"), "{e}");

        // The same name, another file: refused, and not unlinked by the identity check.
        ShmObject::unlink(&name).unwrap();
        let e = ShmObject::reopen_identical(&name, want, id, 4096).unwrap_err();
        assert!(e.to_string().contains("unlinked"), "{e}");
        let planted = ShmObject::create_exclusive(&name, 4096, 0o600).unwrap();
        let e = ShmObject::reopen_identical(&name, want, id, 4096).unwrap_err();
        assert!(e.to_string().contains("replaced by another file"), "{e}");
        assert!(!unlink_if_identical(&name, id).unwrap());
        assert!(stat_by_name(&name).unwrap().is_some(), "the planted file stays");
        assert!(unlink_if_identical(&name, planted.stat().unwrap().identity).unwrap());
        assert_eq!(stat_by_name(&name).unwrap(), None);
    }

    #[test]
    fn a_symlink_is_not_the_object() {
        let (_g, obj) = temp_shm("identlink", 4096);
        obj.fchmod(0o600).unwrap();
        let id = obj.stat().unwrap().identity;
        let link = format!("{}-link", obj.name());
        let _l = crate::testutil::ShmGuard(link.clone());
        std::os::unix::fs::symlink(format!("{SHM_DIR}{}", obj.name()), format!("{SHM_DIR}{link}")).unwrap();
        let e = ShmObject::reopen_identical(&link, Expected { uid: me(), mode: 0o600 }, id, 4096).unwrap_err();
        assert!(matches!(e, ReopenError::NotTheObject { .. }), "{e}");
        assert!(stat_by_name(&link).is_err(), "a symlink is not reported as a regular file");
    }
}
