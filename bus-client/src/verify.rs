//! Whom the client talks to: the socket's directory (when the socket was found by discovery), the daemon's
//! credentials from the kernel (`SO_PEERCRED`, which a fake daemon cannot forge, unlike its `Hello`), and the
//! owner and mode of every memory object it hands over; and the environment a set-user-ID or set-group-ID process
//! must not trust. See ARCHITECTURE.md §9.6.

use crate::error::ConnError;
use shmbus_proto::trust;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// Logs once per process, at warn level, the trust-redirecting variables ([`trust::REDIRECTING_ENV`]) that are
/// set but ignored because this process runs in secure execution (set-user-ID or set-group-ID).
pub(crate) fn warn_ignored_env() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let ignored = trust::ignored_env();
        if !ignored.is_empty() {
            tracing::warn!(
                variables = %ignored.join(", "),
                "ignoring environment variables that redirect whom shmbus trusts: this is a set-user-ID or \
                 set-group-ID process (AT_SECURE), its environment comes from a less privileged caller"
            );
        }
    });
}

/// Refuses a discovered socket whose directory another user owns or may write (checked again before every
/// connection: a directory can change between discovery and a reconnection).
pub(crate) fn socket_dir(path: &Path) -> Result<(), ConnError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    match trust::dir_problem(dir, &trust::trusted_uids()) {
        None => Ok(()),
        Some(why) => {
            Err(ConnError::UnsafeSocket { path: path.to_path_buf(), why: format!("{} is {why}", dir.display()) })
        }
    }
}

/// The daemon's uid, if it is root, this process's effective uid or the daemon user; refuses anyone else.
pub(crate) fn daemon(stream: &UnixStream, path: &Path) -> Result<u32, ConnError> {
    let cred = shmbus_os::peer_cred(stream.as_fd()).map_err(|e| ConnError::Io(crate::error::os_to_io(e)))?;
    if trust::trusted_uids().contains(&cred.uid) {
        Ok(cred.uid)
    } else {
        Err(ConnError::UntrustedDaemon { path: path.to_path_buf(), uid: cred.uid })
    }
}

/// Refuses memory objects not owned by the daemon's uid or writable by group or others, before anything maps
/// them.
pub(crate) fn objects(fds: &[OwnedFd], daemon_uid: u32) -> Result<(), ConnError> {
    for (i, fd) in fds.iter().enumerate() {
        let what = if i == 0 { "data" } else { "readers" };
        let o = shmbus_os::fd_owner(fd.as_fd()).map_err(|e| ConnError::Io(crate::error::os_to_io(e)))?;
        if o.uid != daemon_uid {
            return Err(ConnError::UntrustedObject(format!(
                "the {what} object is owned by uid {}, the daemon runs as uid {daemon_uid}",
                o.uid
            )));
        }
        if o.shared_writable() {
            return Err(ConnError::UntrustedObject(format!(
                "the {what} object is writable by group or others (mode {:04o})",
                o.mode
            )));
        }
    }
    Ok(())
}
