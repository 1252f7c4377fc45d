//! Received messages: [`Message`], borrowed from its subscriber until dropped, and [`OwnedMessage`], copied out.

use crate::pipe_io::PipeMessage;
use crate::transport::OnTransport;

/// A received message, borrowing its [`Subscriber`](crate::Subscriber) until dropped (lossless payloads are read in place, in
/// shared memory; on a pipe, in the subscriber's buffer).
#[derive(Debug)]
pub struct Message<'a>(pub(crate) OnTransport<shmbus_ring::Message<'a>, PipeMessage<'a>>);

impl Message<'_> {
    /// The payload.
    pub fn payload(&self) -> &[u8] {
        match &self.0 {
            OnTransport::Shm(m) => m.payload(),
            OnTransport::Pipe(m) => m.payload,
        }
    }

    /// Ring sequence number: one total order across all publishers of the topic. On a pipe: the message's
    /// number among its publisher's messages (from 0).
    pub fn seq(&self) -> u64 {
        match &self.0 {
            OnTransport::Shm(m) => m.seq(),
            OnTransport::Pipe(m) => m.meta.seq,
        }
    }

    /// Id of the publisher that sent it ([`Publisher::id`](crate::Publisher::id)).
    pub fn publisher(&self) -> u32 {
        match &self.0 {
            OnTransport::Shm(m) => m.publisher(),
            OnTransport::Pipe(m) => m.meta.writer,
        }
    }

    /// Publish time, nanoseconds since the Unix epoch (the publisher's clock).
    pub fn timestamp(&self) -> u64 {
        match &self.0 {
            OnTransport::Shm(m) => m.timestamp(),
            OnTransport::Pipe(m) => m.meta.timestamp,
        }
    }

    /// Payload length.
    pub fn len(&self) -> usize {
        match &self.0 {
            OnTransport::Shm(m) => m.len(),
            OnTransport::Pipe(m) => m.payload.len(),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies the message out, releasing it.
    pub fn to_owned_message(&self) -> OwnedMessage {
        OwnedMessage {
            seq: self.seq(),
            publisher: self.publisher(),
            timestamp: self.timestamp(),
            payload: self.payload().to_vec(),
        }
    }
}

/// A message copied out of shared memory (from [`Subscriber::iter`](crate::Subscriber::iter) or [`Message::to_owned_message`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedMessage {
    /// Ring sequence number.
    pub seq: u64,
    /// Publisher id.
    pub publisher: u32,
    /// Publish time, nanoseconds since the Unix epoch.
    pub timestamp: u64,
    /// The payload.
    pub payload: Vec<u8>,
}
