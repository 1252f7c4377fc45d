//! [`ControlError`]: topic administration (create, delete, list, stats).

use shmbus_proto::ErrorKind;
use std::io;

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
