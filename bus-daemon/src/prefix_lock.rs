//! One daemon per shm prefix: an exclusive `flock` on `/dev/shm/.<prefix>.lock`, taken before anything under the
//! prefix is adopted or created, held for the daemon's life. The lock file lives in /dev/shm because that is the
//! namespace the prefix names, whatever socket each daemon uses; the leading dot keeps it out of every prefix's
//! object names (a prefix never contains a dot), so listings of a prefix's objects never see it; the kernel drops the lock when the holder dies,
//! so a stale file never blocks a restart. The holder unlinks the file when it stops; a daemon that locked a file
//! unlinked meanwhile sees that its inode no longer is the one at the path, and retries with a fresh file. A
//! lock file owned by another user is refused (someone planted it).

use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why the prefix could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another daemon holds the prefix.
    #[error(
        "another shmbusd already serves shm prefix {prefix:?} (it holds the lock {path}); this daemon touched nothing"
    )]
    Held {
        /// The prefix.
        prefix: String,
        /// The lock file.
        path: PathBuf,
    },
    /// The lock file belongs to another user.
    #[error("lock file {path} is owned by uid {owner}, not this daemon's user; refusing to use it (remove it if it is stale)")]
    Foreign {
        /// The lock file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
    },
    /// The lock file could not be opened or locked.
    #[error("lock file {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The held prefix lock; dropping it unlinks the file and releases the lock.
#[derive(Debug)]
pub struct PrefixLock {
    path: PathBuf,
    lock: Option<Flock<File>>,
}

/// The lock file of `prefix`.
pub fn lock_path(prefix: &str) -> PathBuf {
    Path::new("/dev/shm").join(format!(".{prefix}.lock"))
}

impl PrefixLock {
    /// Takes the lock of `prefix` without waiting.
    pub fn acquire(prefix: &str) -> Result<PrefixLock, LockError> {
        let path = lock_path(prefix);
        let io = |source| LockError::Io { path: path.clone(), source };
        let me = nix::unistd::geteuid().as_raw();
        loop {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .mode(0o644)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .map_err(io)?;
            let owner = file.metadata().map_err(io)?.uid();
            if owner != me {
                return Err(LockError::Foreign { path, owner });
            }
            let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(l) => l,
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    return Err(LockError::Held { prefix: prefix.to_string(), path });
                }
                Err((_, e)) => return Err(io(e.into())),
            };
            // The previous holder may have unlinked the file between our open and our lock: retry on a new one.
            let ours = lock.metadata().map_err(io)?;
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.dev() == ours.dev() && m.ino() == ours.ino() => {
                    return Ok(PrefixLock { path, lock: Some(lock) });
                }
                _ => continue,
            }
        }
    }
}

impl Drop for PrefixLock {
    fn drop(&mut self) {
        // Unlink while still holding the lock, so nobody can lock this inode and believe it is current.
        let _ = std::fs::remove_file(&self.path);
        drop(self.lock.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_and_released_on_drop() {
        let prefix = format!("unit-lock-{}", std::process::id());
        let first = PrefixLock::acquire(&prefix).unwrap();
        let e = PrefixLock::acquire(&prefix).unwrap_err();
        assert!(matches!(e, LockError::Held { .. }), "{e}");
        assert!(e.to_string().contains(&prefix), "{e}");
        drop(first);
        assert!(!lock_path(&prefix).exists(), "the holder unlinks the file");
        drop(PrefixLock::acquire(&prefix).unwrap());
    }
}
