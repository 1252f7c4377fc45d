//! [`RecvError`]: receiving, with the helpers that answer the usual questions about it.

use super::WaitError;

/// Receiving failed (or reports something the caller must know about).
///
/// One type for every receive call; which variants each call can return:
///
/// | call | can return |
/// |---|---|
/// | `recv`, `iter`, `for m in &mut sub` | `Lagged`, `Demoted`, `Closed`, `Corrupted`, `Forked` |
/// | `try_recv`, `try_iter` | those, and `Empty` (`try_iter` ends there instead) |
/// | `recv_timeout`, `recv_deadline` | those of `recv`, and `Timeout` |
/// | typed and `*_value` calls | those of the untyped call, and `Decode`; typed subscribers also `TypeMismatch` |
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
    /// The topic's payload type, registered by a typed publisher after this typed subscriber opened, is not
    /// this handle's (another name or shape; both are in the message). Final: the registration stays while this
    /// subscriber holds the topic. See [`TypedSubscriber`](crate::TypedSubscriber).
    #[error("payload type mismatch: {0}")]
    TypeMismatch(String),
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
            RecvError::Closed
            | RecvError::Corrupted(_)
            | RecvError::Forked
            | RecvError::Wait(_)
            | RecvError::TypeMismatch(_) => false,
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
