//! [`SendError`]: publishing.

use super::WaitError;

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
