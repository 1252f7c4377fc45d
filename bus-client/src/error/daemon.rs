//! What every control-path error shares: the failures of the control connection ([`ConnError`]), the hint for
//! an unreachable daemon, and the macro that declares each operation's error around them.

use shmbus_proto::ErrorKind;
use std::io;
use std::path::PathBuf;

/// What to do about a daemon that cannot be reached, for the message of `DaemonUnavailable`.
pub(crate) fn unavailable_hint(e: &io::Error) -> String {
    let env = shmbus_proto::names::SOCKET_ENV;
    // The CLI's flag, named for its users; a program of their own has its own way, or the variable.
    let flag = "shmbus: --socket";
    match e.kind() {
        io::ErrorKind::PermissionDenied => {
            format!("this user may not use that socket; set {env} ({flag}) to one it may use")
        }
        io::ErrorKind::ConnectionRefused => {
            format!("nothing listens there, a stale socket? is shmbusd running? start it, or set {env} ({flag}) to its socket")
        }
        _ => format!("is shmbusd running? start it, or set {env} ({flag}) to its socket"),
    }
}

/// Declares the error of one control-path operation: the variants every such error has (the daemon is not
/// there, speaks another version, or sends nonsense), then its own, and the conversion from [`ConnError`] with the
/// operation's own sorting of refusals, timeouts and I/O failures.
macro_rules! control_error {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            #[doc = $version_doc:literal]
            VersionMismatch,
            #[doc = $protocol_doc:literal]
            Protocol,
            $($own:tt)*
        }
        refused: $refused:expr,
        timeout: $timeout:expr,
        io: $io:expr $(,)?
    ) => {
        $(#[$meta])*
        pub enum $name {
            /// Nothing listens at the control socket (the daemon is not running, or the path is wrong). The
            /// message carries the OS reason and what to do, as in "daemon unavailable at /run/shmbus/shmbusd.sock:
            /// No such file or directory (os error 2) (is shmbusd running? start it, or set SHMBUS_SOCKET
            /// (shmbus: --socket) to its socket)"; a refused connection (`ECONNREFUSED`) also suggests a stale
            /// socket file, a refused permission (`EACCES`) another socket. The reason is also the error's
            /// `source`.
            #[error("daemon unavailable at {}: {source} ({})", path.display(), $crate::error::daemon::unavailable_hint(source))]
            DaemonUnavailable {
                /// The socket path tried.
                path: ::std::path::PathBuf,
                /// Why connecting failed.
                #[source]
                source: ::std::io::Error,
            },
            /// The daemon at the socket runs as a uid this client does not trust (not root, not this user, not
            /// the daemon user of `SHMBUS_DAEMON_USER` or `shmbus`): it may be a fake, so nothing is sent to it.
            #[error(
                "untrusted daemon at {}: uid {uid} is not root, this user or the daemon user \
                 (to allow it, set SHMBUS_DAEMON_USER={uid})",
                path.display()
            )]
            UntrustedDaemon {
                /// The socket path.
                path: ::std::path::PathBuf,
                /// The daemon's uid, from `SO_PEERCRED`.
                uid: u32,
            },
            /// The socket was found in a directory another user owns or may write (it could be planted), so
            /// it was not used.
            #[error("unsafe socket directory for {}: {why}", path.display())]
            UnsafeSocket {
                /// The socket path.
                path: ::std::path::PathBuf,
                /// What is wrong with its directory.
                why: String,
            },
            /// The daemon handed over a memory object that is not its own or that others may write.
            #[error("untrusted memory object: {0}")]
            UntrustedObject(String),
            #[doc = $version_doc]
            #[error("version mismatch: {0}")]
            VersionMismatch(String),
            #[doc = $protocol_doc]
            #[error("protocol error: {0}")]
            Protocol(String),
            $($own)*
        }

        impl From<$crate::error::ConnError> for $name {
            fn from(e: $crate::error::ConnError) -> Self {
                let refused: fn(::shmbus_proto::ErrorKind, String) -> $name = $refused;
                match e {
                    $crate::error::ConnError::Unavailable { path, source } => $name::DaemonUnavailable { path, source },
                    $crate::error::ConnError::UntrustedDaemon { path, uid } => $name::UntrustedDaemon { path, uid },
                    $crate::error::ConnError::UnsafeSocket { path, why } => $name::UnsafeSocket { path, why },
                    $crate::error::ConnError::UntrustedObject(m) => $name::UntrustedObject(m),
                    $crate::error::ConnError::VersionMismatch(m) => $name::VersionMismatch(m),
                    $crate::error::ConnError::Refused { kind, message } => refused(kind, message),
                    $crate::error::ConnError::Timeout => $timeout,
                    $crate::error::ConnError::Protocol(m) => $name::Protocol(m),
                    $crate::error::ConnError::Io(e) => $io(e),
                }
            }
        }
    };
}

/// Failures of the control connection, before they are sorted into the public error of an operation.
#[derive(Debug)]
pub(crate) enum ConnError {
    Unavailable { path: PathBuf, source: io::Error },
    UntrustedDaemon { path: PathBuf, uid: u32 },
    UnsafeSocket { path: PathBuf, why: String },
    UntrustedObject(String),
    VersionMismatch(String),
    Refused { kind: ErrorKind, message: String },
    Timeout,
    Protocol(String),
    Io(io::Error),
}
