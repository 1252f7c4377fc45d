//! The crate's error type: which operation failed, on which object, and why.

use std::io;

/// An operating-system call failed.
///
/// Displays as `"{op} {object}: {source}"`, e.g.
/// `shm_open /shmbus-demo: File exists (os error 17)`.
#[derive(Debug, thiserror::Error)]
#[error("{op} {object}: {source}")]
pub struct OsError {
    /// The operation that failed, usually the system call (`"shm_open"`, `"ftruncate"`, ...).
    pub op: &'static str,
    /// The object it was applied to: a shm or semaphore name, a path, or a descriptor.
    pub object: String,
    /// The underlying OS error (or a synthesized one for validation failures).
    #[source]
    pub source: io::Error,
}

impl OsError {
    /// Builds an error from its parts.
    pub fn new(op: &'static str, object: impl Into<String>, source: io::Error) -> OsError {
        OsError { op, object: object.into(), source }
    }

    /// The [`io::ErrorKind`] of the underlying error.
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }

    /// The raw `errno` value, if the error came from the OS.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.source.raw_os_error()
    }

    /// An error from an `errno` value.
    pub(crate) fn errno(op: &'static str, object: impl Into<String>, errno: i32) -> OsError {
        OsError::new(op, object, io::Error::from_raw_os_error(errno))
    }

    /// An error from a `nix` errno.
    pub(crate) fn nix(op: &'static str, object: impl Into<String>, errno: nix::Error) -> OsError {
        OsError::errno(op, object, errno as i32)
    }

    /// An error from the calling thread's current `errno`.
    pub(crate) fn last(op: &'static str, object: impl Into<String>) -> OsError {
        OsError::new(op, object, io::Error::last_os_error())
    }

    /// A synthesized error (not from a system call) with a message saying why.
    pub(crate) fn invalid(
        op: &'static str,
        object: impl Into<String>,
        kind: io::ErrorKind,
        why: impl Into<String>,
    ) -> OsError {
        OsError::new(op, object, io::Error::new(kind, why.into()))
    }
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, OsError>;

/// A human-readable name for a descriptor, used as the `object` of errors.
pub(crate) fn fd_object(what: &str, fd: std::os::fd::BorrowedFd<'_>) -> String {
    use std::os::fd::AsRawFd;
    if what.is_empty() {
        format!("fd {}", fd.as_raw_fd())
    } else {
        format!("{what} fd {}", fd.as_raw_fd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_op_object_and_cause() {
        let e = OsError::errno("shm_open", "/x", libc::EEXIST);
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
        let s = e.to_string();
        assert!(s.starts_with("shm_open /x: "), "{s}");
        assert!(s.contains("os error 17"), "{s}");
        assert!(std::error::Error::source(&e).is_some());
    }
}
