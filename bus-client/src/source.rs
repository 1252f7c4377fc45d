//! Where a [`Subscriber`](crate::Subscriber) reads from: the [`Source`] trait, and its two transports (a ring in
//! shared memory attached under a lease, and pipes). The shm/pipe dispatch lives here, once.

use crate::attached::Attached;
use crate::endpoint::Endpoint;
use crate::error::RecvError;
use crate::message::Message;
use crate::pipe_io::io::Wait;
use crate::pipe_io::PipeReader;
use crate::transport::OnTransport;
use shmbus_ring::Mode;

/// The transport side of a subscriber: what [`Subscriber`](crate::Subscriber)'s operations do on it.
pub(crate) trait Source: Endpoint + Send {
    /// The next message, waiting as `wait` allows.
    fn recv(&mut self, wait: Wait) -> Result<Message<'_>, RecvError>;
    /// The subscriber slot.
    fn slot(&self) -> u32;
    /// The next sequence number looked at (on pipes: messages received).
    fn position(&self) -> u64;
    /// Whether publishers are held back for this subscriber.
    fn is_lossless(&self) -> bool;
    /// On pipes, how many messages were dropped unfinished.
    fn pipe_abandoned(&self) -> Option<u64> {
        None
    }
}

/// A subscriber on shared memory.
pub(crate) type ShmSource = Attached<shmbus_ring::Subscriber>;

impl ShmSource {
    /// [`Source::recv`], inlined into [`Subscriber`](crate::Subscriber)'s receives (see its `Inner`).
    #[inline]
    pub(crate) fn recv_inline(&mut self, wait: Wait) -> Result<Message<'_>, RecvError> {
        self.check::<RecvError>()?;
        let m = match wait {
            Wait::Now => self.ring.try_recv()?,
            Wait::Until(d) => self.ring.recv_deadline(Some(d))?,
            Wait::Forever => self.ring.recv()?,
        };
        Ok(Message(OnTransport::Shm(m)))
    }
}

impl Source for ShmSource {
    fn recv(&mut self, wait: Wait) -> Result<Message<'_>, RecvError> {
        self.recv_inline(wait)
    }

    fn slot(&self) -> u32 {
        self.ring.slot() as u32
    }

    fn position(&self) -> u64 {
        self.ring.position()
    }

    fn is_lossless(&self) -> bool {
        self.ring.mode() == Mode::Lossless
    }
}

impl Source for PipeReader {
    fn recv(&mut self, wait: Wait) -> Result<Message<'_>, RecvError> {
        Ok(Message(OnTransport::Pipe(PipeReader::recv(self, wait)?)))
    }

    fn slot(&self) -> u32 {
        0
    }

    fn position(&self) -> u64 {
        self.received()
    }

    fn is_lossless(&self) -> bool {
        true
    }

    fn pipe_abandoned(&self) -> Option<u64> {
        Some(self.abandoned())
    }
}
