//! [`ConnectError`]: connecting to the daemon.

use shmbus_proto::ErrorKind;
use std::io;

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
