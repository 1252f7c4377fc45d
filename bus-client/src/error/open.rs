//! [`OpenError`]: opening a publisher or subscriber, and the conversions from the ring, mapping and OS layers.

use super::os_to_io;
use shmbus_proto::ErrorKind;
use std::io;

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
