//! Errors, one type per operation, with short lowercase messages and variants a caller can act on.
//!
//! * [`ConnectError`]: [`Bus::connect`](crate::Bus::connect) and friends;
//! * [`OpenError`]: opening a publisher or subscriber;
//! * [`ControlError`]: topic administration (create, delete, list, stats);
//! * [`SendError`] and [`RecvError`]: the data path.

use shmbus_proto::ErrorKind;
use std::borrow::Cow;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// What to do about a daemon that cannot be reached, for the message of `DaemonUnavailable`.
fn unavailable_hint(e: &io::Error) -> String {
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
            #[error("daemon unavailable at {}: {source} ({})", path.display(), unavailable_hint(source))]
            DaemonUnavailable {
                /// The socket path tried.
                path: PathBuf,
                /// Why connecting failed.
                #[source]
                source: io::Error,
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
                path: PathBuf,
                /// The daemon's uid, from `SO_PEERCRED`.
                uid: u32,
            },
            /// The socket was found in a directory another user owns or may write (it could be planted), so
            /// it was not used.
            #[error("unsafe socket directory for {}: {why}", path.display())]
            UnsafeSocket {
                /// The socket path.
                path: PathBuf,
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

        impl From<ConnError> for $name {
            fn from(e: ConnError) -> Self {
                let refused: fn(ErrorKind, String) -> $name = $refused;
                match e {
                    ConnError::Unavailable { path, source } => $name::DaemonUnavailable { path, source },
                    ConnError::UntrustedDaemon { path, uid } => $name::UntrustedDaemon { path, uid },
                    ConnError::UnsafeSocket { path, why } => $name::UnsafeSocket { path, why },
                    ConnError::UntrustedObject(m) => $name::UntrustedObject(m),
                    ConnError::VersionMismatch(m) => $name::VersionMismatch(m),
                    ConnError::Refused { kind, message } => refused(kind, message),
                    ConnError::Timeout => $timeout,
                    ConnError::Protocol(m) => $name::Protocol(m),
                    ConnError::Io(e) => $io(e),
                }
            }
        }
    };
}

control_error! {
    /// Connecting to the daemon failed.
    #[derive(Debug, thiserror::Error)]
    pub enum ConnectError {
        /// The daemon speaks another protocol or layout version.
        VersionMismatch,
        /// The daemon sent something this client does not understand.
        Protocol,
        /// The daemon did not answer in time.
        #[error("daemon did not answer in time")]
        Timeout,
        /// I/O on the control connection failed.
        #[error("control connection: {0}")]
        Io(io::Error),
        /// The configuration is not valid (for example `SHMBUS_TRANSPORT` has an unknown value).
        #[error("invalid configuration: {0}")]
        Config(String),
    }
    refused: |kind, message| match kind {
        ErrorKind::VersionMismatch => ConnectError::VersionMismatch(message),
        kind => ConnectError::Protocol(format!("refused ({kind:?}): {message}")),
    },
    timeout: ConnectError::Timeout,
    io: ConnectError::Io,
}

control_error! {
    /// Opening a publisher or subscriber failed.
    #[derive(Debug, thiserror::Error)]
    pub enum OpenError {
        /// The daemon, or the topic's shared memory, speaks another protocol or layout version.
        VersionMismatch,
        /// The daemon sent something this client does not understand, or broke the lease contract.
        Protocol,
        /// The topic does not exist and the daemon does not create topics on first use; the message (the
        /// daemon's) reads `no such topic "NAME"` and may say more.
        #[error("{0}")]
        NoSuchTopic(String),
        /// The topic's policy does not admit this user for this role.
        #[error("permission denied: {0}")]
        PermissionDenied(String),
        /// Every publisher (or subscriber, or group) slot of the topic is taken.
        #[error("no free slot: {0}")]
        NoFreeSlot(String),
        /// Another payload type is registered on the topic.
        #[error("payload type mismatch: {0}")]
        TypeMismatch(String),
        /// The request is not valid: a bad topic or group name, geometry or other argument; the message says which
        /// (it read "invalid topic: invalid group name" for an empty group; issue 11).
        #[error("{0}")]
        InvalidTopic(String),
        /// The topic was closed (deleted or recreated) while opening.
        #[error("topic is closed")]
        Closed,
        /// Shared memory is exhausted (for example /dev/shm is full).
        #[error("out of shared memory: {0}")]
        ResourceExhausted(String),
        /// The topic's shared memory does not validate.
        #[error("corrupted shared memory: {0}")]
        Corrupted(String),
        /// The daemon did not answer in time, or attaching waited too long for a publisher.
        #[error("timed out: {0}")]
        Timeout(String),
        /// The daemon failed for a reason of its own.
        #[error("daemon error: {0}")]
        Daemon(String),
        /// An OS operation (mapping, locking, socket I/O) failed.
        #[error(transparent)]
        Io(io::Error),
    }
    refused: |kind, message| match kind {
        ErrorKind::VersionMismatch => OpenError::VersionMismatch(message),
        ErrorKind::NoSuchTopic => OpenError::NoSuchTopic(message),
        ErrorKind::PermissionDenied => OpenError::PermissionDenied(message),
        ErrorKind::NoFreeSlot => OpenError::NoFreeSlot(message),
        ErrorKind::TypeMismatch => OpenError::TypeMismatch(message),
        ErrorKind::InvalidRequest => OpenError::InvalidTopic(message),
        ErrorKind::Closed => OpenError::Closed,
        ErrorKind::ResourceExhausted => OpenError::ResourceExhausted(message),
        ErrorKind::AlreadyExists | ErrorKind::Internal => OpenError::Daemon(message),
    },
    timeout: OpenError::Timeout("daemon did not answer in time".into()),
    io: OpenError::Io,
}

control_error! {
    /// A topic administration request (create, delete, list, stats) failed.
    #[derive(Debug, thiserror::Error)]
    pub enum ControlError {
        /// The daemon speaks another protocol or layout version.
        VersionMismatch,
        /// The daemon sent something this client does not understand.
        Protocol,
        /// No such topic.
        #[error("{0}")]
        NoSuchTopic(String),
        /// The caller may not do this.
        #[error("permission denied: {0}")]
        PermissionDenied(String),
        /// The topic exists with a different geometry.
        #[error("already exists: {0}")]
        AlreadyExists(String),
        /// A bad name or argument.
        #[error("invalid request: {0}")]
        InvalidRequest(String),
        /// Shared memory is exhausted.
        #[error("out of shared memory: {0}")]
        ResourceExhausted(String),
        /// The daemon did not answer in time.
        #[error("daemon did not answer in time")]
        Timeout,
        /// The daemon failed or refused for another reason.
        #[error("daemon error: {0}")]
        Daemon(String),
        /// I/O on the control connection failed.
        #[error("control connection: {0}")]
        Io(io::Error),
    }
    refused: |kind, message| match kind {
        ErrorKind::VersionMismatch => ControlError::VersionMismatch(message),
        ErrorKind::NoSuchTopic => ControlError::NoSuchTopic(message),
        ErrorKind::PermissionDenied => ControlError::PermissionDenied(message),
        ErrorKind::AlreadyExists => ControlError::AlreadyExists(message),
        ErrorKind::InvalidRequest => ControlError::InvalidRequest(message),
        ErrorKind::ResourceExhausted => ControlError::ResourceExhausted(message),
        ErrorKind::NoFreeSlot | ErrorKind::TypeMismatch | ErrorKind::Closed | ErrorKind::Internal => {
            ControlError::Daemon(message)
        }
    },
    timeout: ControlError::Timeout,
    io: ControlError::Io,
}

/// Publishing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The topic is full (a lossless subscriber or group holds publishers back); `try_send` does not wait.
    #[error("topic is full")]
    Full,
    /// The topic was closed (deleted or recreated).
    #[error("topic is closed")]
    Closed,
    /// The message exceeds the topic's maximum message size.
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Length of the refused message.
        len: usize,
        /// The topic's maximum.
        max: usize,
    },
    /// The waiting variant ran out of time.
    #[error("timed out waiting for space")]
    Timeout,
    /// The topic's shared memory holds values no well-behaved peer writes; the publisher refuses to go on.
    #[error("corrupted shared memory: {0}")]
    Corrupted(&'static str),
    /// The value could not be encoded.
    #[error("encode: {0}")]
    Encode(String),
    /// This handle was created before a `fork`: the child must open its own handles.
    #[error("handle belongs to the parent process (forked); open a new one")]
    Forked,
    /// The handle's pollable descriptor could not be set up or waited on (no descriptor or thread left, a pipe
    /// publisher, which has none, or the async runtime's reactor is gone):
    /// [`Publisher::wait_fd`](crate::Publisher::wait_fd) and the async publisher only. The OS error, if any, is
    /// the [`WaitError`]'s source.
    #[error("cannot wait on a descriptor: {0}")]
    Wait(#[source] WaitError),
}

/// Receiving failed (or reports something the caller must know about).
///
/// One type for every receive call; which variants each call can return:
///
/// | call | can return |
/// |---|---|
/// | `recv`, `iter`, `for m in &mut sub` | `Lagged`, `Demoted`, `Closed`, `Corrupted`, `Forked` |
/// | `try_recv`, `try_iter` | those, and `Empty` (`try_iter` ends there instead) |
/// | `recv_timeout`, `recv_deadline` | those of `recv`, and `Timeout` |
/// | typed and `*_value` calls | those of the untyped call, and `Decode` |
/// | `try_recv_or_arm`, `wait_fd`, async receives | those of `recv`, and `Wait` |
/// | [`Select`](crate::Select), `recv_interruptible` | those of `recv_timeout`, `Wait` and `Interrupted` |
///
/// So a `recv()` caller need not handle `Empty` or `Timeout`; `is_lag`, `is_empty`, `is_timeout`, `is_closed`
/// and [`RecvError::is_transient`] answer the usual questions without a full `match`. (A split into one error
/// type per call, as `std::sync::mpsc` has, would break every caller; these helpers are additive.)
///
/// ```
/// # let (mut p, mut sub) = bus_client::pipe::channel("helpers")?;
/// # p.send(b"x")?;
/// # drop(p);
/// loop {
///     match sub.recv_timeout(std::time::Duration::from_millis(10)) {
///         Ok(m) => println!("{:?}", m.payload()),
///         Err(e) if e.is_timeout() => continue, // nothing yet: do other work
///         Err(e) if e.is_closed() => break,    // the topic is gone: the end
///         Err(e) if e.is_lag() => eprintln!("{e}"), // messages were missed: note it and go on
///         Err(e) => return Err(e.into()),
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// Nothing to read right now (`try_recv` only).
    #[error("no message available")]
    Empty,
    /// The waiting variant ran out of time.
    #[error("timed out waiting for a message")]
    Timeout,
    /// A lossy (or demoted) subscriber was lapped: exactly this many messages were passed over. Reading goes on
    /// at the oldest message still available.
    #[error("lagged behind by {0} messages")]
    Lagged(u64),
    /// A lossless subscriber held publishers back too long and was demoted to lossy; it keeps reading, lossy.
    #[error("demoted to lossy after holding publishers back too long")]
    Demoted,
    /// The topic was closed (deleted or recreated).
    #[error("topic is closed")]
    Closed,
    /// An entry holds values no well-behaved publisher writes.
    #[error("corrupted message: {0}")]
    Corrupted(&'static str),
    /// The payload is not a valid value of the requested type.
    #[error("decode: {0}")]
    Decode(String),
    /// This handle was created before a `fork`: the child must open its own handles.
    #[error("handle belongs to the parent process (forked); open a new one")]
    Forked,
    /// An [`Interrupter`](crate::Interrupter) ended the wait (a [`Select`](crate::Select) or
    /// [`Subscriber::recv_interruptible`](crate::Subscriber::recv_interruptible)); the subscribers go on.
    #[error("wait interrupted")]
    Interrupted,
    /// The handle's pollable descriptor could not be set up or waited on (no descriptor or thread left, a fan-in
    /// pipe subscriber, which has no single descriptor, `poll` failed, or the async runtime's reactor is gone).
    /// The OS error, if any, is the [`WaitError`]'s source.
    #[error("cannot wait on a descriptor: {0}")]
    Wait(#[source] WaitError),
}

/// Why a handle could not wait on its pollable descriptor ([`RecvError::Wait`], [`SendError::Wait`]): what
/// failed, and the OS error behind it (also its [`source`](std::error::Error::source)) when there is one. An
/// OS failure is reported as this, never as a clean `Closed`.
#[derive(Debug, Clone)]
pub struct WaitError {
    what: Cow<'static, str>,
    /// Shared so that the receive and send errors stay `Clone`.
    io: Option<Arc<io::Error>>,
}

impl WaitError {
    /// A failure without an OS error (e.g. a handle that has no descriptor).
    pub(crate) fn new(what: impl Into<Cow<'static, str>>) -> WaitError {
        WaitError { what: what.into(), io: None }
    }

    /// `what` failed with the OS error `e`.
    pub(crate) fn io(what: impl Into<Cow<'static, str>>, e: io::Error) -> WaitError {
        WaitError { what: what.into(), io: Some(Arc::new(e)) }
    }

    /// The OS error behind the failure, if any.
    pub fn io_error(&self) -> Option<&io::Error> {
        self.io.as_deref()
    }
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.io {
            Some(e) => write!(f, "{}: {e}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

impl std::error::Error for WaitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.io.as_deref().map(|e| e as _)
    }
}

/// Equal when they say the same thing: the same failure, and OS errors of the same kind and message (an
/// `io::Error` has no equality of its own).
impl PartialEq for WaitError {
    fn eq(&self, other: &WaitError) -> bool {
        let os = |w: &WaitError| w.io.as_ref().map(|e| (e.kind(), e.to_string()));
        self.what == other.what && os(self) == os(other)
    }
}

impl Eq for WaitError {}

impl RecvError {
    /// How many messages were missed, if this reports a lap ([`RecvError::Lagged`]); the subscriber goes on.
    ///
    /// ```
    /// use bus_client::RecvError;
    /// assert_eq!(RecvError::Lagged(3).lagged(), Some(3));
    /// assert_eq!(RecvError::Closed.lagged(), None);
    /// ```
    pub fn lagged(&self) -> Option<u64> {
        match self {
            RecvError::Lagged(n) => Some(*n),
            _ => None,
        }
    }

    /// Whether this reports lost messages ([`RecvError::Lagged`]): something to note, not the end of the
    /// subscriber.
    ///
    /// ```
    /// use bus_client::RecvError;
    /// assert!(RecvError::Lagged(1).is_lag());
    /// assert!(!RecvError::Demoted.is_lag());
    /// ```
    pub fn is_lag(&self) -> bool {
        matches!(self, RecvError::Lagged(_))
    }

    /// Whether nothing was there to read ([`RecvError::Empty`]; `try_recv` only).
    ///
    /// ```
    /// use bus_client::RecvError;
    /// assert!(RecvError::Empty.is_empty());
    /// assert!(!RecvError::Timeout.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        matches!(self, RecvError::Empty)
    }

    /// Whether a waiting call ran out of time ([`RecvError::Timeout`]; `recv_timeout` and `recv_deadline` only).
    ///
    /// ```
    /// use bus_client::RecvError;
    /// assert!(RecvError::Timeout.is_timeout());
    /// assert!(!RecvError::Empty.is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, RecvError::Timeout)
    }

    /// Whether the topic is closed ([`RecvError::Closed`]: deleted or recreated; on a pipe, every writer gone
    /// and everything read): final, nothing more will come.
    ///
    /// ```
    /// use bus_client::RecvError;
    /// assert!(RecvError::Closed.is_closed());
    /// assert!(!RecvError::Lagged(1).is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, RecvError::Closed)
    }

    /// Whether the subscriber can go on receiving after this error: it reports something about the stream (a
    /// lap: `Lagged`; a change of mode: `Demoted`; one payload that does not decode: `Decode`) or about this call
    /// (`Empty`, `Timeout`), and the next receive may well succeed. `false` for `Closed` and `Forked`, which are
    /// final, and for `Corrupted`, where the safe reaction is to stop (the iterators do).
    ///
    /// In a loop: `Err(e) if e.is_transient() => { log(e); continue }`, anything else ends it (see
    /// [`Subscriber::iter`](crate::Subscriber::iter)).
    ///
    /// ```
    /// use bus_client::RecvError;
    /// assert!(RecvError::Lagged(3).is_transient());
    /// assert!(RecvError::Demoted.is_transient());
    /// assert!(!RecvError::Closed.is_transient());
    /// assert!(!RecvError::Forked.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        match self {
            RecvError::Empty
            | RecvError::Timeout
            | RecvError::Lagged(_)
            | RecvError::Demoted
            | RecvError::Decode(_)
            | RecvError::Interrupted => true,
            RecvError::Closed | RecvError::Corrupted(_) | RecvError::Forked | RecvError::Wait(_) => false,
        }
    }
}

impl From<shmbus_ring::SendError> for SendError {
    fn from(e: shmbus_ring::SendError) -> Self {
        use shmbus_ring::SendError as R;
        match e {
            R::Full => SendError::Full,
            R::Timeout => SendError::Timeout,
            R::TooLarge { len, max } => SendError::TooLarge { len, max },
            R::Closed => SendError::Closed,
            R::Corrupted { what } => SendError::Corrupted(what),
        }
    }
}

impl From<shmbus_ring::RecvError> for RecvError {
    fn from(e: shmbus_ring::RecvError) -> Self {
        use shmbus_ring::RecvError as R;
        match e {
            R::Empty => RecvError::Empty,
            R::Timeout => RecvError::Timeout,
            R::Lagged(n) => RecvError::Lagged(n),
            R::Demoted => RecvError::Demoted,
            R::Closed => RecvError::Closed,
            R::Corrupted { what } => RecvError::Corrupted(what),
        }
    }
}

impl From<shmbus_ring::AttachError> for OpenError {
    fn from(e: shmbus_ring::AttachError) -> Self {
        use shmbus_ring::AttachError as A;
        match e {
            A::VersionMismatch { .. } => OpenError::VersionMismatch(e.to_string()),
            A::Closed => OpenError::Closed,
            A::Corrupted { .. } | A::GeometryMismatch { .. } => OpenError::Corrupted(e.to_string()),
            A::Timeout => OpenError::Timeout(e.to_string()),
            A::Slot(_) | A::ReadOnly => OpenError::Protocol(format!("lease does not fit the topic: {e}")),
            A::Barrier => OpenError::Io(std::io::Error::new(std::io::ErrorKind::Unsupported, e.to_string())),
        }
    }
}

impl From<shmbus_shm::MapError> for OpenError {
    fn from(e: shmbus_shm::MapError) -> Self {
        match e {
            shmbus_shm::MapError::Os(e) => OpenError::Io(os_to_io(e)),
            shmbus_shm::MapError::Attach(e) => e.into(),
        }
    }
}

impl From<shmbus_os::OsError> for OpenError {
    fn from(e: shmbus_os::OsError) -> Self {
        OpenError::Io(os_to_io(e))
    }
}

/// Keeps the OS error's operation and object in the message.
pub(crate) fn os_to_io(e: shmbus_os::OsError) -> io::Error {
    io::Error::new(e.kind(), e)
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

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
