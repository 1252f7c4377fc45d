//! Errors, one type per operation, with short lowercase messages (`crossbeam-channel` style).

use thiserror::Error;

/// Why a shared-memory object was refused at attach.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AttachError {
    /// The object was written by another layout version of shmbus.
    #[error("layout version mismatch: object has {found}, this build speaks {expected}")]
    VersionMismatch {
        /// Version found in the object.
        found: u64,
        /// Version this build writes.
        expected: u64,
    },
    /// The object's bytes are not a valid shmbus object.
    #[error("corrupted shared memory: {what}")]
    Corrupted {
        /// What was wrong.
        what: &'static str,
    },
    /// The two objects of a topic, or the object and the expected geometry, disagree.
    #[error("geometry mismatch: {what}")]
    GeometryMismatch {
        /// Which field disagrees.
        what: &'static str,
    },
    /// The topic was closed (deleted or recreated).
    #[error("topic is closed")]
    Closed,
    /// A slot index outside the topic's limits, or a slot already in use.
    #[error("invalid slot: {0}")]
    Slot(&'static str),
    /// The region is mapped read-only but the operation writes it.
    #[error("region is read-only")]
    ReadOnly,
    /// The topic's wake-ups rely on `membarrier(2)` in every participant, and this process is not registered for
    /// it (a seccomp filter, an old kernel). Without it, wake-ups between this process and the others could be
    /// lost, so it may not attach.
    #[error("the topic needs membarrier(2) wake-ups, which this process cannot use")]
    Barrier,
    /// Attaching had to wait for a publisher that neither finished nor was reported dead in time.
    #[error("timed out waiting for a publisher to acknowledge the new subscriber")]
    Timeout,
}

/// Error of [`Publisher::try_send`](crate::Publisher::try_send) and friends.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SendError {
    /// The ring or this publisher's payload region is full (held back by a lossless subscriber or group, or by an
    /// older claim that is not yet published).
    #[error("topic is full")]
    Full,
    /// The waiting variant ran out of time.
    #[error("timed out waiting for space")]
    Timeout,
    /// The message exceeds the topic's maximum message size.
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Length of the refused message.
        len: usize,
        /// The topic's maximum.
        max: usize,
    },
    /// The topic was closed.
    #[error("topic is closed")]
    Closed,
    /// The segment holds values this publisher cannot have written; it refuses to go on.
    #[error("corrupted shared memory: {what}")]
    Corrupted {
        /// What was wrong.
        what: &'static str,
    },
}

/// Error of [`Subscriber::try_recv`](crate::Subscriber::try_recv) and friends.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecvError {
    /// Nothing to read right now.
    #[error("no message available")]
    Empty,
    /// The waiting variant ran out of time.
    #[error("timed out waiting for a message")]
    Timeout,
    /// A lossy (or demoted) subscriber was lapped: exactly `n` ring positions were passed over. Reading resumes at
    /// the oldest message still available.
    #[error("lagged behind by {0} messages")]
    Lagged(u64),
    /// A lossless subscriber was demoted to lossy by the slow-consumer bound; it now reads lossy.
    #[error("demoted to lossy after holding publishers back too long")]
    Demoted,
    /// The topic was closed.
    #[error("topic is closed")]
    Closed,
    /// An entry holds values no publisher can have written (length, offset or owner out of range).
    #[error("corrupted message: {what}")]
    Corrupted {
        /// What was wrong.
        what: &'static str,
    },
}
